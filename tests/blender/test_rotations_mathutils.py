"""The solver's rotation conventions equal Blender's mathutils (quaternions are w, x, y, z)."""
from __future__ import annotations

import numpy as np
import torch
from mathutils import Matrix, Quaternion, Vector

from solver.core.rotations import quaternion_to_matrix, rotvec_to_matrix, rotvec_to_quaternion


def test_rotation_vectors_quaternions_and_matrices_match_mathutils():
    generator = np.random.default_rng(0)
    for rotvec in generator.normal(size=(20, 3)) * 1.5:
        angle = float(np.linalg.norm(rotvec))
        axis = Vector(rotvec / angle)
        expected_matrix = np.array(Matrix.Rotation(angle, 3, axis))
        expected_quaternion = np.array(Quaternion(axis, angle))
        r = torch.tensor(rotvec, dtype=torch.float64)
        np.testing.assert_allclose(rotvec_to_matrix(r).numpy(), expected_matrix, atol=1e-6)
        quaternion = rotvec_to_quaternion(r).numpy()
        # q and -q are the same rotation; mathutils wraps angles past pi, the solver does not
        sign = np.sign(quaternion @ expected_quaternion)
        np.testing.assert_allclose(sign * quaternion, expected_quaternion, atol=1e-6)
        np.testing.assert_allclose(quaternion_to_matrix(torch.tensor(expected_quaternion)).numpy(),
                                   np.array(Quaternion(expected_quaternion).to_matrix()), atol=1e-6)
