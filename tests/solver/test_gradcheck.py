"""torch.autograd.gradcheck in float64 on every differentiable piece of the model."""
from __future__ import annotations

import numpy as np
import torch
from torch.autograd import gradcheck

from solver.model.binding import barycentric_2d, surface_points
from solver.core.config import WeightConfig
from solver.model.kinematics import bind_matrices, forward_kinematics, local_pose_matrices, skinning_matrices
from solver.core.rotations import quaternion_to_matrix, rotvec_to_matrix, rotvec_to_quaternion
from solver.model.weights import (CappedWeights, Mixture, SparseWeights, blend_vertices, blend_vertices_dense,
                            cap_top_k, dense_influence, gaussian_density, normalize_with_remainder)

torch.manual_seed(0)
F64 = dict(dtype=torch.float64)


def rand(*shape, scale=1.0):
    return (scale * torch.randn(*shape, **F64)).requires_grad_(True)


def test_rotations():
    assert gradcheck(rotvec_to_matrix, (rand(5, 3),))
    assert gradcheck(rotvec_to_quaternion, (rand(5, 3),))
    assert gradcheck(quaternion_to_matrix, (rand(5, 4),))
    # at the identity, where Rodrigues' formula needs care
    assert gradcheck(rotvec_to_matrix, (torch.zeros(2, 3, **F64).requires_grad_(True),))


def test_kinematics():
    parents = np.array([-1, 0, 1, 1, 2])
    rest = rotvec_to_matrix(torch.randn(5, 3, **F64)).detach()

    def pipeline(bind_position, log_scale, rotvec, translation):
        bind = bind_matrices(rest, bind_position)
        local = local_pose_matrices(log_scale, rotvec, translation)
        return skinning_matrices(bind, forward_kinematics(bind, local, parents))

    assert gradcheck(pipeline, (rand(5, 3), rand(5, 3, scale=0.2), rand(5, 3, scale=0.5), rand(5, 3)))


def test_binding():
    corners = torch.tensor([[[0.0, 0.0], [1.0, 0.1], [0.2, 1.0]]], **F64).requires_grad_(True)
    points = torch.tensor([[0.3, 0.3]], **F64).requires_grad_(True)
    assert gradcheck(barycentric_2d, (points, corners))
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], **F64).requires_grad_(True)
    triangles = torch.tensor([[0, 1, 2], [1, 3, 2]])
    vertices = rand(4, 3)
    zeta = torch.tensor([[0.2, 0.3], [0.8, 0.7]], **F64).requires_grad_(True)
    assert gradcheck(lambda z, u, v: surface_points(z, torch.tensor([0, 1]), u, triangles, v), (zeta, uv, vertices))


def _mixture(bones, k, spread=0.3):
    return (torch.randn(bones, k, **F64).requires_grad_(True), (spread * torch.randn(bones, k, 2, **F64)).requires_grad_(True),
            (torch.randn(bones, k, 3, **F64) * 0.3 - 1.5).requires_grad_(True))


def test_gaussian_weights_dense():
    uv = torch.rand(40, 2, **F64)
    zeta = torch.rand(4, 2, **F64).requires_grad_(True)
    logits, offsets, raw = _mixture(4, 3, spread=0.1)
    has = torch.tensor([True, False, True, True])

    def weights(zeta, logits, offsets, raw):
        influence = dense_influence(uv, zeta, Mixture(logits, offsets, raw), has)
        return cap_top_k(normalize_with_remainder(influence, 1, 0.5), 2)

    assert gradcheck(weights, (zeta, logits, offsets, raw))
    assert gradcheck(gaussian_density, (rand(6, 2), rand(6, 2), torch.eye(2, **F64).expand(6, 2, 2).clone().requires_grad_(True)))


def test_gaussian_weights_sparse_and_lbs():
    generator = np.random.default_rng(1)
    uv_numpy = generator.random((60, 2))
    uv = torch.from_numpy(uv_numpy)
    has = np.array([False, True, True, True])
    sparse = SparseWeights(uv_numpy, 4, 0, has, WeightConfig(influence_cap=3, remainder_density=0.5))
    zeta = torch.rand(4, 2, **F64).requires_grad_(True)
    logits, offsets, raw = _mixture(4, 2, spread=0.1)

    def weights(zeta, logits, offsets, raw):
        capped = sparse(uv, zeta, Mixture(logits, offsets, raw))
        return capped.to_dense(4)

    assert gradcheck(weights, (zeta, logits, offsets, raw))
    vertices = rand(60, 3)
    skin = rand(4, 4, 4)
    capped = sparse(uv, zeta.detach(), Mixture(logits.detach(), offsets.detach(), raw.detach()))
    values = capped.values.detach().requires_grad_(True)
    for method in ("dense", "gather"):
        assert gradcheck(lambda v, s, w: blend_vertices(v, s, CappedWeights(capped.bones, w), method), (vertices, skin, values))
    dense = capped.to_dense(4).detach().requires_grad_(True)
    assert gradcheck(blend_vertices_dense, (vertices, skin, dense))
