"""Everything that defines an ASM rig on one mesh, as numpy arrays: what Generate makes (solver/rig/transfer.py) and
the forward model (solver/model/asm_model.py) turns into tensors."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.geometry import Similarity
from .weights import OpeningSides


@dataclass
class RigDefinition:
    """Everything that defines an ASM rig on one mesh (numpy; the solver turns it into tensors)."""

    names: tuple[str, ...]
    parents: np.ndarray  # (J,)
    rest_rotation: np.ndarray  # (J, 3, 3)
    zeta: np.ndarray  # (J, 2) binding points in the normalised chart
    bind_triangle: np.ndarray  # (J,) mesh triangle index containing zeta
    bind_offset: np.ndarray  # (J, 3) mesh units
    length: np.ndarray  # (J,) mesh units
    free: np.ndarray  # (J, 3) bool (scale, rotation, translation)
    deform: np.ndarray  # (J,) bool
    has_gaussians: np.ndarray  # (J,) bool
    remainder_bone: int
    mixture_logits: np.ndarray  # (J, K)
    mixture_offsets: np.ndarray  # (J, K, 2)
    mixture_covariance: np.ndarray  # (J, K, 2, 2)
    chart_uv: np.ndarray  # (N, 2) normalised chart
    chart_triangles: np.ndarray  # (C,) mesh triangles valid in the chart
    face_triangles: np.ndarray  # (F,) the chart triangles of the face island
    triangle_island: np.ndarray  # (T,) chart island of every mesh triangle, -1 outside the chart
    head_unit: float  # mesh units per iod
    alignment: Similarity  # canonical (cm) -> mesh
    warnings: list[str] = field(default_factory=list)
    openings: OpeningSides | None = None  # which side of the mouth and eyes each vertex and bone is on
