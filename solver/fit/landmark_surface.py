"""Where the landmarks and the face lie on a rig's surface: the fixed surface points that the photo and scan fits pull
(landmark_surface), and the face region around the nose tip that a face scan or a photo covers (face_vertices)."""
from __future__ import annotations

import numpy as np
import torch

from asm_protocol.landmarks import NOSE_TIP, OUTER_EYE_CORNERS, SURFACE_LANDMARKS

from ..core.errors import ASMInputError
from ..core.geometry import closest_points_on_mesh

CROP = 1.05  # outer-eye-corner distances around the nose tip: the face region (about 95 mm on an adult)


def landmark_surface(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                     valid: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The rig's surface landmarks as (L,) MediaPipe indices, (L, 3) vertex ids and (L, 3) barycentrics."""
    which = np.flatnonzero(np.asarray(valid[:SURFACE_LANDMARKS], dtype=bool)
                           & np.isfinite(landmarks[:SURFACE_LANDMARKS]).all(1))
    _, triangle, bary, _ = closest_points_on_mesh(landmarks[which], vertices, triangles)
    return which, torch.as_tensor(triangles[triangle]), torch.as_tensor(bary)


def face_vertices(rig_vertices: np.ndarray, rig_landmarks: np.ndarray, rig_valid: np.ndarray) -> np.ndarray:
    """Ids of the rig's vertices within CROP eye distances of its nose tip (the part a face scan covers)."""
    needed = (NOSE_TIP, *OUTER_EYE_CORNERS)
    if not np.asarray(rig_valid, bool)[list(needed)].all():
        raise ASMInputError("the rig's landmarks lack the nose tip or an outer eye corner")
    eye_distance = np.linalg.norm(rig_landmarks[OUTER_EYE_CORNERS[0]] - rig_landmarks[OUTER_EYE_CORNERS[1]])
    return np.flatnonzero(np.linalg.norm(rig_vertices - rig_landmarks[NOSE_TIP], axis=1) <= CROP * eye_distance)
