"""Forward kinematics: the level-batched evaluation equals a plain recursive one; helpers are exact."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver.model.kinematics import (bind_matrices, depth_levels, forward_kinematics, local_pose_matrices, rigid_inverse,
                               skinning_matrices)
from solver.core.rotations import rotvec_to_matrix
from solver.template.skeleton import load_skeleton


def test_forward_kinematics_matches_recursive_definition():
    skeleton = load_skeleton("full")
    count = skeleton.bone_count
    generator = torch.Generator().manual_seed(3)
    rest = rotvec_to_matrix(torch.randn(count, 3, generator=generator, dtype=torch.float64))
    bind = bind_matrices(rest, torch.randn(count, 3, generator=generator, dtype=torch.float64))
    local = local_pose_matrices(0.2 * torch.randn(count, 3, generator=generator, dtype=torch.float64),
                                torch.randn(count, 3, generator=generator, dtype=torch.float64),
                                torch.randn(count, 3, generator=generator, dtype=torch.float64))
    posed = forward_kinematics(bind, local, skeleton.parents)
    expected = []
    for j, parent in enumerate(skeleton.parents):
        if parent < 0:
            expected.append(bind[j] @ local[j])
        else:
            expected.append(expected[parent] @ torch.linalg.inv(bind[parent]) @ bind[j] @ local[j])
    assert torch.allclose(posed, torch.stack(expected), atol=1e-10)


def test_batched_poses_and_identity():
    parents = np.array([-1, 0, 0, 2])
    bind = bind_matrices(rotvec_to_matrix(torch.randn(4, 3, dtype=torch.float64)), torch.randn(4, 3, dtype=torch.float64))
    zeros = torch.zeros(7, 4, 3, dtype=torch.float64)
    skin = skinning_matrices(bind, forward_kinematics(bind, local_pose_matrices(zeros, zeros, zeros), parents))
    assert skin.shape == (7, 4, 4, 4)
    assert torch.allclose(skin, torch.eye(4, dtype=torch.float64).expand_as(skin), atol=1e-12)


def test_rigid_inverse_and_pose_order():
    rotation = rotvec_to_matrix(torch.tensor([[0.3, -0.2, 0.9]], dtype=torch.float64))
    matrix = bind_matrices(rotation, torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64))
    assert torch.allclose(rigid_inverse(matrix) @ matrix, torch.eye(4, dtype=torch.float64), atol=1e-12)
    # Blender's matrix_basis applies scale first, then rotation, then translation.
    local = local_pose_matrices(torch.log(torch.tensor([[2.0, 1.0, 1.0]])), torch.tensor([[0.0, 0.0, np.pi / 2]]),
                                torch.tensor([[0.0, 0.0, 5.0]]))
    moved = local[0] @ torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert torch.allclose(moved, torch.tensor([0.0, 2.0, 5.0, 1.0]), atol=1e-6)


def test_bones_must_come_after_their_parents():
    with pytest.raises(ValueError, match="before its parent"):
        depth_levels(np.array([1, -1]))
