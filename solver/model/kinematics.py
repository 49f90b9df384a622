"""9-DoF local bone poses and forward kinematics, exactly as Blender evaluates an armature (ASM.md §4).

Blender, for a bone with rest matrix B_j (bone.matrix_local, armature space), pose channel M_j
(matrix_basis = T(location) R(rotation) S(scale)), inherit-scale FULL and unconnected bones:
    P_root = B_root M_root,   P_j = P_parent(j) (B_parent(j)^-1 B_j) M_j,   G_j = P_j B_j^-1.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.rotations import rotvec_to_matrix


def homogeneous(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3) -> (..., 4, 4)."""
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(*top.shape[:-2], 1, 4, dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def local_pose_matrices(log_scale: torch.Tensor, rotvec: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Blender's matrix_basis M = T(translation) R(rotvec) S(exp(log_scale)).

    log_scale, rotvec, translation: (..., J, 3) -> (..., J, 4, 4).
    """
    linear = rotvec_to_matrix(rotvec) * torch.exp(log_scale).unsqueeze(-2)
    return homogeneous(linear, translation)


def bind_matrices(rest_rotation: torch.Tensor, bind_position: torch.Tensor) -> torch.Tensor:
    """Rigid rest matrices B_j = [[R_j, p_j], [0, 1]].  (J, 3, 3), (J, 3) -> (J, 4, 4)."""
    return homogeneous(rest_rotation, bind_position)


def rigid_inverse(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid (..., 4, 4) matrices: [[R^T, -R^T t], [0, 1]]."""
    rotation_t = matrix[..., :3, :3].transpose(-1, -2)
    return homogeneous(rotation_t, -(rotation_t @ matrix[..., :3, 3:]).squeeze(-1))


def depth_levels(parents: np.ndarray) -> list[np.ndarray]:
    """Group bone indices by depth (root = level 0). parents: (J,) with -1 for roots, parents first."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"bone {j} comes before its parent {p}; order bones parents-first")
        depth[j] = 0 if p < 0 else depth[p] + 1
    return [np.flatnonzero(depth == d) for d in range(depth.max() + 1)]


def forward_kinematics(bind: torch.Tensor, local: torch.Tensor, parents: np.ndarray) -> torch.Tensor:
    """Posed bone matrices P.  bind: (J, 4, 4) or (..., J, 4, 4); local: (..., J, 4, 4) -> (..., J, 4, 4).

    Evaluated one depth level at a time (a handful of batched matmuls instead of J small ones).
    """
    bind = bind.expand_as(local)
    relative = rigid_inverse(bind[..., np.maximum(parents, 0), :, :]) @ bind  # B_parent^-1 B_j
    levels = depth_levels(parents)
    order = np.concatenate(levels)
    position = np.empty(len(parents), dtype=np.int64)
    position[order] = np.arange(len(order))
    done: list[torch.Tensor] = []
    for level in levels:
        if parents[level[0]] < 0:  # level 0: the roots
            value = bind[..., level, :, :] @ local[..., level, :, :]
        else:
            parent_posed = torch.cat(done, dim=-3)[..., position[parents[level]], :, :]
            value = parent_posed @ relative[..., level, :, :] @ local[..., level, :, :]
        done.append(value)
    return torch.cat(done, dim=-3)[..., position, :, :]


def skinning_matrices(bind: torch.Tensor, posed: torch.Tensor) -> torch.Tensor:
    """G_j = P_j B_j^-1.  (J, 4, 4), (..., J, 4, 4) -> (..., J, 4, 4)."""
    return posed @ rigid_inverse(bind)
