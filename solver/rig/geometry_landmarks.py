"""Landmarks from the shape alone, for a head on which no face is detected (a sculpt without features, a
stylised head): the canonical face placed by the nose tip, the symmetry plane and the head's width.

    landmarks, valid = landmarks_from_geometry(vertices, triangles, forward, up)

The result is rough (an eye or the mouth can be off by a tenth of the eye distance); the caller says so and
shows the landmarks as markers to be corrected.
"""
from __future__ import annotations

import numpy as np

from asm_protocol.landmarks import NOSE_TIP, OUTER_EYE_CORNERS

from ..core.errors import ASMInputError
from ..core.geometry import closest_points_on_mesh
from ..template.canonical import canonical_face

HEAD_REGION = 0.65  # the nose is searched in the top part of the mesh, this fraction of its height, ...
MIDDLE_BAND = 0.15  # ... within this fraction of its width from its middle (not a cheek or an ear), ...
WIDTH_SLAB = 0.08  # ... and the head's width measured in a slab of this fraction of the height around the nose
WIDTH_PER_EYE_DISTANCE = 1.9  # a head with its ears is about 1.9 outer-eye-corner distances wide at the nose


def landmarks_from_geometry(vertices: np.ndarray, triangles: np.ndarray, forward: np.ndarray,
                            up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) landmark positions on the surface and (478,) valid, for a head that looks along `forward`
    with `up` up (vertices (N, 3) and the directions in one frame)."""
    vertices = np.asarray(vertices, dtype=float)
    forward = np.asarray(forward, dtype=float) / np.linalg.norm(forward)
    up = np.asarray(up, dtype=float)
    up = up - forward * (up @ forward)
    if np.linalg.norm(up) < 1e-9:
        raise ASMInputError("the face direction and the up direction must differ")
    up /= np.linalg.norm(up)
    side = np.cross(up, forward)  # the subject's left, like the canonical face's +X
    height = vertices @ up
    across = vertices @ side
    middle = np.abs(across - (across.max() + across.min()) / 2) <= MIDDLE_BAND * np.ptp(across)
    top = (height >= height.max() - HEAD_REGION * np.ptp(height)) & middle
    tip = vertices[top][np.argmax(vertices[top] @ forward)]
    slab = np.abs(height - tip @ up) <= WIDTH_SLAB * np.ptp(height)
    width = np.ptp(vertices[slab] @ side)
    if width <= 0:
        raise ASMInputError("the mesh has no width at its nose's height; it does not look like a head")
    face = canonical_face()
    canonical_eye_distance = np.linalg.norm(face.vertices[OUTER_EYE_CORNERS[0]] - face.vertices[OUTER_EYE_CORNERS[1]])
    scale = width / WIDTH_PER_EYE_DISTANCE / canonical_eye_distance
    axes = np.stack([side, up, forward], axis=1)  # canonical (x, y, z) -> mesh
    placed = (face.vertices - face.vertices[NOSE_TIP]) @ axes.T * scale + tip
    # onto the surface: the closest point, kept where it is near (a landmark over a hole has none)
    surface, _, _, distance = closest_points_on_mesh(placed, vertices, np.asarray(triangles))
    valid = distance < 0.2 * width / WIDTH_PER_EYE_DISTANCE
    return np.where(valid[:, None], surface, np.nan), valid
