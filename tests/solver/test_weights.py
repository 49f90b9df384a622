"""GMM skinning weights: the fast sparse path equals the dense reference; the cap really caps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver.core.config import WeightConfig
from solver.core.errors import ASMInputError
from solver.model import ASMModel, Pose
from solver.model.weights import blend_vertices_dense


@pytest.fixture(scope="module", params=[4, 8], ids=["cap4", "cap8"])
def model(request, sample_mesh, sample_rig):
    config = WeightConfig(influence_cap=request.param)
    return ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], config, dtype=torch.float64)


def test_fast_weights_equal_dense_reference(model):
    with torch.no_grad():
        fast = model.weights().to_dense(model.bone_count)
        dense = model.dense_weights()
    # cull_tolerance bounds each dropped term at tol * eps_root, i.e. ~tol on a weight.
    assert (fast - dense).abs().max().item() < 20 * model.config.cull_tolerance


def test_cap_keeps_at_most_k_normalised_weights(model):
    with torch.no_grad():
        capped = model.weights()
        dense = capped.to_dense(model.bone_count)
    assert capped.bones.shape[1] == model.config.influence_cap
    assert ((dense > 0).sum(1) <= model.config.influence_cap).all()
    assert torch.allclose(dense.sum(1), torch.ones(len(dense), dtype=dense.dtype), atol=1e-12)
    assert (dense >= 0).all()
    # bones without Gaussians never get weight, except the remainder (head) bone
    without = ~model.has_gaussians
    without[model.rig.remainder_bone] = False
    assert dense[:, without].abs().max() == 0


def test_cap_changes_the_weights_where_more_bones_overlap(sample_mesh, sample_rig):
    uncapped = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"],
                        WeightConfig(influence_cap=len(sample_rig.names)), dtype=torch.float64)
    with torch.no_grad():
        full = uncapped.dense_weights()
    assert ((full > 1e-3).sum(1) > 4).any(), "the sample has vertices where more than 4 bones matter"


def test_posed_mesh_equals_dense_reference(model):
    generator = torch.Generator().manual_seed(5)
    count = model.bone_count
    pose = Pose(0.1 * torch.randn(count, 3, generator=generator, dtype=torch.float64),
                0.3 * torch.randn(count, 3, generator=generator, dtype=torch.float64),
                0.05 * torch.randn(count, 3, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        fast = model.forward(pose)
        reference = blend_vertices_dense(model.vertices, model.skinning(pose), model.dense_weights())
    size = float(np.ptp(model.vertices.numpy(), axis=0).max())
    assert (fast - reference).abs().max().item() < 1e-4 * size


def test_support_is_rebuilt_only_when_gaussians_move_far(model):
    with torch.no_grad():
        model.weights()
        rebuilds = model.sparse.rebuilds
        model.weights()
        assert model.sparse.rebuilds == rebuilds  # nothing moved: cached support reused
        original = model.zeta.clone()
        try:
            model.zeta += 0.2  # far beyond the padding
            fast = model.weights().to_dense(model.bone_count)
            assert model.sparse.rebuilds == rebuilds + 1
            assert (fast - model.dense_weights()).abs().max().item() < 20 * model.config.cull_tolerance
        finally:
            model.zeta.copy_(original)


def test_gather_and_dense_lbs_agree(sample_mesh, sample_rig):
    results = []
    for method in ("dense", "gather"):
        model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], WeightConfig(lbs=method),
                         dtype=torch.float64)
        pose = Pose.zeros(model.bone_count, dtype=torch.float64)
        pose.rotvec[:] = 0.2
        with torch.no_grad():
            results.append(model.forward(pose))
    assert torch.allclose(results[0], results[1], atol=1e-10)


def test_cap_larger_than_bone_count_is_rejected(sample_rig, sample_mesh):
    with pytest.raises(ASMInputError, match="influence_cap k=90 must be between 1 and the bone count"):
        ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], WeightConfig(influence_cap=90))


def test_float32_is_the_default_and_float64_on_request(sample_rig, sample_mesh):
    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"])
    assert model.forward().dtype == torch.float32


@pytest.mark.parametrize("table", [True, False])
def test_support_keys_are_deduplicated_as_np_unique_does(table, monkeypatch):
    from solver.model import weights

    if not table:
        monkeypatch.setattr(weights, "DENSE_KEYS_LIMIT", 10)  # the sorting fallback for huge key ranges
    keys = np.random.default_rng(5).integers(0, 5000, size=20000)
    distinct, inverse = weights._unique_keys(keys, 5000)
    expected_distinct, expected_inverse = np.unique(keys, return_inverse=True)
    np.testing.assert_array_equal(distinct, expected_distinct)
    np.testing.assert_array_equal(inverse, expected_inverse)
    assert inverse.dtype == np.int64
