"""The one landmark vocabulary (ASM.md §7): MediaPipe's 478 face landmarks, the ids the pipeline measures with, and
the landmarks.json files that store them beside a mesh."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LANDMARK_COUNT = 478
SURFACE_LANDMARKS = 468  # the first 468 lie on the face; the iris points (468-477) float in front of the eyeball
NOSE_TIP = 1
OUTER_EYE_CORNERS = (33, 263)  # their distance is the head unit
# The face's outline (MediaPipe's FACEMESH_FACE_OVAL): these lie on the silhouette of the face, which slides over
# the surface as the head turns.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
# Left/right twins across the face (outer and inner eye corners, mouth corners, brows, nose wings, lids).
MIRRORED_PAIRS = ((33, 263), (133, 362), (61, 291), (105, 334), (70, 300), (98, 327), (159, 386), (145, 374))


def load_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) positions (NaN where missing) and (478,) valid, from a landmarks.json beside a mesh."""
    record = json.loads(Path(path).read_text())
    points = np.array([p if p is not None else [np.nan] * 3 for p in record["points"]], dtype=float)
    if points.shape != (LANDMARK_COUNT, 3):
        raise ValueError(f"{path}: expected {LANDMARK_COUNT} landmark entries, found {len(points)}")
    return points, np.isfinite(points).all(1)
