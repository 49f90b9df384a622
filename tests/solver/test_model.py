"""The forward model's state handling: re-locating binding points, free-parameter masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver.model import ASMModel, Pose


@pytest.fixture()
def model(sample_mesh, sample_rig):
    return ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64)


def test_binding_points_are_relocated_when_they_leave_their_triangle(model):
    chin = model.rig.names.index("chin")
    old_triangle = int(model.bind_triangle[chin])
    assert len(model.relocate_bindings().moved) == 0  # nothing moved yet
    with torch.no_grad():
        model.zeta[chin] += torch.tensor([0.0, 0.03], dtype=torch.float64)  # several triangles up
    moved = model.relocate_bindings().moved
    assert list(moved) == [chin]
    new_triangle = int(model.bind_triangle[chin])
    assert new_triangle != old_triangle
    corners = model.uv[model.triangles[new_triangle]].numpy()
    from solver.model.binding import barycentric_2d

    bary = barycentric_2d(model.zeta[chin], torch.as_tensor(corners)).numpy()
    assert (bary >= -1e-9).all()  # the new triangle really contains the point


def test_a_binding_point_pushed_off_the_chart_is_clamped_and_named(model):
    nose = model.rig.names.index("nose_tip")
    with torch.no_grad():
        model.zeta[nose] = torch.tensor([50.0, 50.0], dtype=torch.float64)
    relocation = model.relocate_bindings()
    assert relocation.clamped == ("nose_tip",) and list(relocation.moved) == [nose]
    assert float(model.zeta[nose].abs().max()) < 5


def test_locked_parameter_groups_do_not_move_the_mesh(model):
    eye = model.rig.names.index("eye.L")
    pose = Pose.zeros(model.bone_count, dtype=torch.float64)
    pose.translation[eye] = 1.0  # eyeballs only rotate: this must do nothing
    pose.log_scale[eye] = 0.5
    with torch.no_grad():
        np.testing.assert_allclose(model.forward(pose).numpy(), model.vertices.numpy(), atol=1e-12)
        pose.rotvec[eye] = torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)
        assert (model.forward(pose) - model.vertices).abs().max() > 1e-4


def test_mismatched_or_broken_meshes_are_refused(sample_mesh, sample_rig):
    from solver.core.errors import ASMInputError

    vertices, triangles = sample_mesh["vertices"], sample_mesh["triangles"]
    with pytest.raises(ASMInputError, match=r"the rig's chart: expected an array of shape \(4279, 2\)"):
        ASMModel(sample_rig, vertices[:-1], triangles)
    broken = vertices.copy()
    broken[3, 0] = np.inf
    with pytest.raises(ASMInputError, match=r"mesh vertices: contains NaN or infinite values \(first at index \(3, 0\)\)"):
        ASMModel(sample_rig, broken, triangles)
    with pytest.raises(ASMInputError, match="mesh triangles: expected a non-empty"):
        ASMModel(sample_rig, vertices, np.zeros((0, 3), dtype=int))


def test_fitting_state_never_writes_back_into_the_rig_definition(sample_mesh, sample_rig):
    zeta, triangle = sample_rig.zeta.copy(), sample_rig.bind_triangle.copy()
    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64)
    with torch.no_grad():
        model.zeta += 0.05
    assert model.relocate_bindings().clamped  # a few points land off their island's border
    assert np.array_equal(sample_rig.zeta, zeta) and np.array_equal(sample_rig.bind_triangle, triangle)


def test_a_restricted_view_poses_its_subset_and_shares_parameters(sample_mesh, sample_rig):
    from solver.core.geometry import spread_subset

    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64)
    ids = spread_subset(sample_mesh["vertices"], 800)
    assert 600 <= len(ids) <= 800 and len(np.unique(ids)) == len(ids)
    view = model.restricted(ids)
    with torch.no_grad():
        model.pose.rotvec[model.rig.names.index("jaw")] = torch.tensor([-0.3, 0.0, 0.0], dtype=torch.float64)
        np.testing.assert_allclose(view.forward().numpy(), model.forward().numpy()[ids], atol=1e-10)
    assert view.pose is model.pose and view.zeta is model.zeta
