"""Silhouettes (ASM.md §8): where the face turns away from a camera, its outline must lie on the person's outline
in the photo. In a turned photo that outline is the face's profile (brow, nose, lips, chin), the depth that
landmarks leave open.

    mask = person_mask(rgb)                          # (H, W) in [0, 1], MediaPipe's selfie segmentation model
    distance = signed_distance(mask)                 # (H, W) pixels to the outline, negative inside
    loss = silhouette_loss(context)                  # solver/fit/losses.py: contour points of the rig onto the outline

The segmentation model comes with the solver (solver/vision/models, run by LiteRT; nothing is downloaded).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .face_models import segment_person

CONTOUR_COSINE = 0.2  # a rig vertex whose normal is this close to perpendicular to the view is on the outline
OUTLINE_BAND = 2.0  # working pixels: a contour vertex this close to the rig's own outline in a photo is on it (one
# further inside is hidden behind the rig's other parts: the cheek behind the nose, the face inside the ears)
INSIDE_BAND = 0.04  # of the face's size: contour points deeper inside the person's outline than this are on an
# inner outline (the cheek behind the nose) or where hair and ears stick out beyond the face: left alone


def person_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 photo -> (H, W) float32 probability that a pixel shows the person (MediaPipe's selfie
    segmentation model)."""
    return segment_person(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))


def signed_distance(mask: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(H, W) mask -> (H, W) float32 distance in pixels to its outline: positive outside, negative inside."""
    import cv2

    inside = (mask >= threshold).astype(np.uint8)
    outside_distance = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    inside_distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    return (outside_distance - inside_distance).astype(np.float32)


def sample_field(field: torch.Tensor, pixels: torch.Tensor, scale) -> torch.Tensor:
    """Bilinear values of a (h, w) field at (P, 2) photo pixels (original pixels; `scale` working per original)."""
    height, width = field.shape[-2:]
    working = pixels * scale
    grid = torch.stack([2 * working[:, 0] / width - 1, 2 * working[:, 1] / height - 1], -1)
    return F.grid_sample(field[None, None].to(pixels.dtype), grid[None, None], mode="bilinear",
                         padding_mode="border", align_corners=False)[0, 0, 0]


def contour_vertices(posed: torch.Tensor, normals: torch.Tensor, candidates: torch.Tensor, camera_centre: torch.Tensor
                     ) -> torch.Tensor:
    """Ids among `candidates` (C,) of the vertices on the outline seen from `camera_centre` (3,): their normal
    (N, 3) nearly perpendicular to the direction to the camera."""
    towards = F.normalize(camera_centre - posed[candidates], dim=-1)
    cosine = (F.normalize(normals[candidates], dim=-1) * towards).sum(-1)
    return candidates[cosine.abs() < CONTOUR_COSINE]


def outline_distance(pixels: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The rig's own outline in a photo: (N, 2) its vertices' working pixels and (T, 3) triangles -> (h, w)
    signed distance in working pixels to the outer outline of the triangles' union (negative inside)."""
    import cv2

    height, width = shape
    mask = np.zeros((height, width), dtype=np.uint8)
    corners = np.round(np.asarray(pixels, float)[triangles] * 16).astype(np.int32)  # 4 bits of sub-pixel
    cv2.fillPoly(mask, list(corners), 1, lineType=cv2.LINE_8, shift=4)
    # the eyes' and the mouth's openings are not outlines: only the outer boundary counts
    outer, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(mask, outer, -1, 1, thickness=cv2.FILLED)
    return signed_distance(mask.astype(np.float32))
