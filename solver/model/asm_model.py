"""The ASM forward model: binding -> rest matrices -> kinematics -> capped GMM weights -> LBS."""
from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..core.arrays import checked_array
from ..core.config import WeightConfig
from ..core.errors import ASMInputError
from .binding import locate, needs_relocation, surface_points
from .rigid_parts import bite_plane, eyeball_parts, fixed_weights, loose_parts
from .kinematics import bind_matrices, forward_kinematics, local_pose_matrices, skinning_matrices
from .rig_definition import RigDefinition
from .weights import (CappedWeights, Mixture, SparseWeights, blend_vertices, dense_weights, raw_from_covariance)


@dataclass
class Pose:
    """Local 9-DoF pose per bone (Blender's matrix_basis), each (..., J, 3)."""

    log_scale: torch.Tensor
    rotvec: torch.Tensor
    translation: torch.Tensor

    @classmethod
    def zeros(cls, bone_count: int, dtype=torch.float32, device="cpu", batch: tuple = ()) -> "Pose":
        make = lambda: torch.zeros(*batch, bone_count, 3, dtype=dtype, device=device)  # noqa: E731
        return cls(make(), make(), make())

    def masked(self, free: torch.Tensor) -> "Pose":
        """Zero the parameter groups a bone may not use. free: (J, 3) bool for (scale, rotation, translation)."""
        f = free.to(self.rotvec.dtype)
        return Pose(self.log_scale * f[:, 0:1], self.rotvec * f[:, 1:2], self.translation * f[:, 2:3])


@dataclass(frozen=True)
class Relocation:
    """What `ASMModel.relocate_bindings` did: the bones whose binding point changed triangle, and the names of those
    pushed off their chart island and held at its border."""

    moved: np.ndarray  # (M,) bone indices
    clamped: tuple[str, ...] = ()


class ASMModel:
    """An ASM rig on one mesh, as tensors. Learnable: zeta, bind_offset, mixture, pose (ASM.md §2)."""

    def __init__(self, rig: RigDefinition, vertices: np.ndarray, triangles: np.ndarray,
                 config: WeightConfig = WeightConfig(), dtype: torch.dtype = torch.float32, device="cpu"):
        self.config = config.validated(len(rig.names))
        vertices = checked_array("mesh vertices", vertices, (None, 3))
        checked_array("the rig's chart", rig.chart_uv, (len(vertices), 2))
        triangles = np.asarray(triangles, dtype=np.int64)
        if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
            raise ASMInputError(f"mesh triangles: expected a non-empty (T, 3) array, got shape {triangles.shape}")
        if rig.openings is not None and len(rig.openings.vertex) != len(vertices):
            raise ASMInputError(f"the rig's opening sides cover {len(rig.openings.vertex)} vertices but the mesh has "
                                f"{len(vertices)}; generate the rig on this mesh again")
        if rig.bind_triangle.max() >= len(triangles):
            raise ASMInputError(f"the rig binds to triangle {rig.bind_triangle.max()} but the mesh has {len(triangles)}")
        self.rig = rig
        # Copies, never views: fitting changes these tensors in place, and the rig definition must not change.
        as_tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
        self.vertices = as_tensor(vertices)
        self.triangles = torch.as_tensor(np.asarray(triangles), dtype=torch.long, device=device)
        self.uv = as_tensor(rig.chart_uv)
        self.parents = np.asarray(rig.parents)
        self.rest_rotation = as_tensor(rig.rest_rotation)
        self.bind_triangle = torch.tensor(rig.bind_triangle, dtype=torch.long, device=device)
        self.has_gaussians = torch.as_tensor(rig.has_gaussians, device=device)
        self.free = torch.as_tensor(rig.free, device=device)
        self.zeta = as_tensor(rig.zeta)
        self.bind_offset = as_tensor(rig.bind_offset)
        self.mixture = Mixture(as_tensor(rig.mixture_logits), as_tensor(rig.mixture_offsets),
                               raw_from_covariance(torch.as_tensor(rig.mixture_covariance, dtype=torch.float64)).to(dtype).to(device))
        self.pose = Pose.zeros(len(rig.names), dtype=dtype, device=device)
        self.sparse = SparseWeights(rig.chart_uv, len(rig.names), rig.remainder_bone, rig.has_gaussians, self.config,
                                    rig.openings)
        self.evaluated: torch.Tensor | None = None  # vertex ids the forward pass returns; None: all
        # Weights of loose parts (eyeballs, teeth, tongue), set by the part: bones (N, 2), -1 in rows the Gaussians
        # weigh, and values (N, 2); None when the mesh has none.
        self.fixed: CappedWeights | None = None
        if self.config.rigid_parts:
            self._find_rigid_parts(vertices, triangles)

    def _find_rigid_parts(self, vertices: np.ndarray, triangles: np.ndarray) -> None:
        """Give loose parts inside the head (eyeballs, teeth, gums and tongue) fixed weights
        (solver/model/rigid_parts.py); an eye bone that gets an eyeball gives up its own Gaussians."""
        vertices = np.asarray(vertices, dtype=float)
        labels, small = loose_parts(vertices, np.asarray(triangles))
        if labels.max() == 0:
            return
        with torch.no_grad():
            heads = self.bind_positions().double().cpu().numpy()
        eyeballs, along_lids = eyeball_parts(vertices, labels, small, self.rig.names, heads, self.rig.head_unit)
        if eyeballs:
            has_gaussians = np.asarray(self.rig.has_gaussians, dtype=bool).copy()
            has_gaussians[list(set(eyeballs.values()))] = False
            self.rig = dataclasses.replace(self.rig, has_gaussians=has_gaussians)
            self.has_gaussians = torch.as_tensor(has_gaussians, device=self.vertices.device)
            self.sparse = SparseWeights(self.rig.chart_uv, len(self.rig.names), self.rig.remainder_bone,
                                        has_gaussians, self.config, self.rig.openings)
        bite = bite_plane(self.rig.names, heads, np.asarray(self.rig.rest_rotation), self.rig.head_unit)
        fixed = fixed_weights(vertices, np.asarray(triangles), labels, small, eyeballs, along_lids, self.rig.names,
                              self.rig.remainder_bone, bite)
        if fixed.chosen.any():
            device = self.vertices.device
            self.fixed = CappedWeights(torch.as_tensor(fixed.bones, device=device),
                                       torch.as_tensor(fixed.values, dtype=self.vertices.dtype, device=device))

    @property
    def rigid(self) -> torch.Tensor | None:
        """(N,) the bone that carries most of each vertex's fixed weight, -1 where the Gaussians weigh it; None
        when nothing is fixed."""
        if self.fixed is None:
            return None
        larger = self.fixed.values[:, 1] > self.fixed.values[:, 0]
        return torch.where(larger, self.fixed.bones[:, 1], self.fixed.bones[:, 0])

    def _fixed_evaluated(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The fixed weights of the evaluated vertices: chosen (M,) bool, bones (M, 2) >= 0, values (M, 2)."""
        bones, values = self.fixed.bones, self.fixed.values
        if self.evaluated is not None:
            bones, values = bones[self.evaluated], values[self.evaluated]
        return bones[:, 0] >= 0, bones.clamp(min=0), values

    def _with_rigid_parts(self, capped: CappedWeights) -> CappedWeights:
        if self.fixed is None:
            return capped
        chosen, fixed_bones, fixed_values = self._fixed_evaluated()
        kept = min(2, capped.bones.shape[-1])  # with a cap of one, a blended vertex keeps its larger share
        bones = capped.bones.clone()
        values = torch.zeros_like(capped.values)
        if kept == 2:
            bones[:, :2], values[:, :2] = fixed_bones, fixed_values.to(values)
        else:
            bones[:, 0] = torch.where(fixed_values[:, 1] > fixed_values[:, 0], fixed_bones[:, 1], fixed_bones[:, 0])
            values[:, 0] = 1.0
        chosen = chosen.unsqueeze(-1)
        return CappedWeights(torch.where(chosen, bones, capped.bones), torch.where(chosen, values, capped.values))

    def restricted(self, vertex_ids: np.ndarray) -> "ASMModel":
        """A view that poses only `vertex_ids` and shares every parameter tensor with this model.

        No parameter belongs to a vertex (ASM.md §8), so a fit on a well-spread subset applies unchanged
        to the whole mesh. Binding still uses the whole rest surface.
        """
        ids = np.asarray(vertex_ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0 or ids.min() < 0 or ids.max() >= len(self.vertices):
            raise ASMInputError(f"vertex subset: expected ids in 0..{len(self.vertices) - 1}")
        view = copy.copy(self)
        view.evaluated = torch.as_tensor(ids, device=self.vertices.device)
        view.sparse = SparseWeights(self.rig.chart_uv[ids], len(self.rig.names), self.rig.remainder_bone,
                                    self.rig.has_gaussians, self.config, view._openings_evaluated())
        return view

    @property
    def evaluated_vertices(self) -> torch.Tensor:
        """(M, 3) rest positions of the vertices the forward pass returns."""
        return self.vertices if self.evaluated is None else self.vertices[self.evaluated]

    @property
    def evaluated_uv(self) -> torch.Tensor:
        return self.uv if self.evaluated is None else self.uv[self.evaluated]

    @property
    def bone_count(self) -> int:
        return len(self.rig.names)

    def bind_positions(self) -> torch.Tensor:
        """(J, 3) bone heads at rest: surface point of zeta plus the bind offset."""
        return surface_points(self.zeta, self.bind_triangle, self.uv, self.triangles, self.vertices) + self.bind_offset

    def bind(self) -> torch.Tensor:
        """(J, 4, 4) rest matrices B_j (Blender's bone.matrix_local in the mesh's object space)."""
        return bind_matrices(self.rest_rotation, self.bind_positions())

    def skinning(self, pose: Pose | None = None) -> torch.Tensor:
        """(..., J, 4, 4) skinning matrices G_j = P_j B_j^-1."""
        pose = (pose or self.pose).masked(self.free)
        bind = self.bind()
        local = local_pose_matrices(pose.log_scale, pose.rotvec, pose.translation)
        return skinning_matrices(bind, forward_kinematics(bind, local, self.parents))

    def weights(self) -> CappedWeights:
        """The fast path's capped weights (what Blender gets)."""
        return self._with_rigid_parts(self.sparse(self.evaluated_uv, self.zeta, self.mixture))

    def dense_weights(self) -> torch.Tensor:
        """(N, J) capped weights from the dense reference."""
        weights = dense_weights(self.evaluated_uv, self.zeta, self.mixture, self.has_gaussians,
                                self.rig.remainder_bone, self.config,
                                self._openings_evaluated())
        if self.fixed is None:
            return weights
        fixed = self._with_rigid_parts(CappedWeights(torch.zeros_like(weights[:, :self.config.influence_cap],
                                                                      dtype=torch.long),
                                                     torch.zeros_like(weights[:, :self.config.influence_cap])))
        chosen = self._fixed_evaluated()[0].unsqueeze(-1)
        return torch.where(chosen, fixed.to_dense(weights.shape[-1]), weights)

    def _openings_evaluated(self):
        """The opening sides of the vertices the forward pass returns (None: the rig has none)."""
        if self.rig.openings is None or self.evaluated is None:
            return self.rig.openings
        return self.rig.openings.subset(self.evaluated.cpu().numpy())

    def forward(self, pose: Pose | None = None) -> torch.Tensor:
        """(..., M, 3) posed vertices (all N, or the restricted subset)."""
        return blend_vertices(self.evaluated_vertices, self.skinning(pose), self.weights(), self.config.lbs)

    def relocate_bindings(self) -> Relocation:
        """Re-find the triangle of every binding point that left its own, on the same chart island; a point
        pushed off its island is clamped to it (named in the result, which the caller reports)."""
        zeta = self.zeta.detach().cpu().double().numpy()
        uv = self.rig.chart_uv
        triangles = self.triangles.cpu().numpy()
        current = self.bind_triangle.cpu().numpy()
        moved = np.flatnonzero(needs_relocation(zeta, current, uv, triangles))
        clamped: list[str] = []
        for island in np.unique(self.rig.triangle_island[current[moved]]):
            bones = moved[self.rig.triangle_island[current[moved]] == island]
            candidates = np.flatnonzero(self.rig.triangle_island == island)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the clamped ones are returned by name instead
                location = locate(zeta[bones], uv, triangles[candidates], what="binding point",
                                  names=[f"bone {self.rig.names[j]!r}" for j in bones], clamp=True)
            clamped += [self.rig.names[j] for j in bones[location.off_chart]]
            with torch.no_grad():
                self.zeta[bones] = torch.as_tensor(location.point, dtype=self.zeta.dtype, device=self.zeta.device)
                self.bind_triangle[bones] = torch.as_tensor(candidates[location.triangle], device=self.zeta.device)
        return Relocation(moved, tuple(clamped))
