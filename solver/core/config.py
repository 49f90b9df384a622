"""Dataclass configs shared by the solver's pieces."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ASMInputError


@dataclass(frozen=True)
class WeightConfig:
    """Gaussian-mixture skinning weights (ASM.md §5)."""

    gaussians_per_bone: int = 3
    influence_cap: int = 4  # k_max: weights kept per vertex (glTF/three.js 4, Unreal/Godot 8)
    remainder_density: float = 1.0  # eps_root, in density units of the normalised chart (see transfer.py)
    cull_tolerance: float = 1e-6  # the fast path drops a Gaussian where its influence < tol * eps_root
    support_slack: float = 0.05  # cached supports are padded by this fraction, so small moves need no rebuild
    lbs: str = "dense"  # "dense": one (N x J) @ (J x 12) GEMM, "gather": N x k gathered matrices
    rigid_parts: bool = True  # loose parts inside the head get fixed weights (solver/model/rigid_parts.py)
    opening_sharpness: float = 8.0  # a bone's influence on the far side of the mouth or an eye: x exp(-this)

    def validated(self, bone_count: int) -> "WeightConfig":
        if self.gaussians_per_bone < 1:
            raise ASMInputError(f"gaussians_per_bone must be at least 1, got {self.gaussians_per_bone}")
        if not 1 <= self.influence_cap <= bone_count:
            raise ASMInputError(
                f"influence_cap k={self.influence_cap} must be between 1 and the bone count ({bone_count})")
        if not self.remainder_density > 0:
            raise ASMInputError(f"remainder_density must be positive, got {self.remainder_density}")
        if not 0 < self.cull_tolerance < 1:
            raise ASMInputError(f"cull_tolerance must be in (0, 1), got {self.cull_tolerance}")
        if self.opening_sharpness < 0:
            raise ASMInputError(f"opening_sharpness must be >= 0, got {self.opening_sharpness}")
        if self.lbs not in ("dense", "gather"):
            raise ASMInputError(f"lbs must be 'dense' or 'gather', got {self.lbs!r}")
        return self
