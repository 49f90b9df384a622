"""MediaPipe's 478 face landmarks on an image (the one landmark vocabulary of ASM.md §7).

Uses the legacy `solutions.face_mesh` model that ships inside the mediapipe wheel: nothing is downloaded.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LANDMARK_COUNT = 478
SURFACE_LANDMARKS = 468  # the first 468 lie on the face; the iris points (468-477) float in front of the eyeball
NOSE_TIP, OUTER_EYE_CORNERS = 1, (33, 263)  # indices the pipeline measures with (eye distance: the head unit)
# The face's outline (MediaPipe's FACEMESH_FACE_OVAL, listed here so the solver needs no mediapipe): these lie
# on the silhouette of the face, which slides over the surface as the head turns.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148, 176,
             149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


@dataclass(frozen=True)
class Detection:
    points: np.ndarray  # (478, 2) pixel coordinates (x right, y down), or empty when no face was found
    faces_found: int

    @property
    def found(self) -> bool:
        return self.faces_found > 0


DEFAULT_CONFIDENCE = 0.3


@functools.lru_cache(maxsize=2)
def _face_mesh(min_confidence: float):
    """One MediaPipe graph per confidence, kept for the worker's life: building it costs more than running it on an
    image, and in static image mode every image is processed on its own."""
    import mediapipe as mp  # heavy import, only in the worker

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True,
                                           min_detection_confidence=min_confidence)


def prepare_detector(min_confidence: float = DEFAULT_CONFIDENCE) -> None:
    """Load MediaPipe and build its graph now (the worker's warm-up), not at the first image."""
    _face_mesh(min_confidence)


def detect_face_landmarks(image_rgb: np.ndarray, min_confidence: float = DEFAULT_CONFIDENCE) -> Detection:
    """image_rgb (H, W, 3) uint8 -> Detection of the largest face (by landmark extent)."""
    image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
    height, width = image.shape[:2]
    result = _face_mesh(min_confidence).process(image)
    faces = result.multi_face_landmarks or []
    if not faces:
        return Detection(np.zeros((0, 2)), 0)
    candidates = [np.array([[p.x * width, p.y * height] for p in face.landmark]) for face in faces]
    largest = max(candidates, key=lambda pts: np.ptp(pts[:, 0]) * np.ptp(pts[:, 1]))
    return Detection(largest, len(faces))


def detect_face_landmarks_in_file(path: Path, max_side: int | None = None) -> Detection:
    """Detection on an image file, loaded by solver.photos.load_photo (upright, downscaled to `max_side` pixels, by
    default only when huge): points in the file's own upright pixels. Raises ASMInputError (a ValueError) naming an
    unreadable file."""
    from .photos import MAX_WORKING_SIDE, detect_photo, load_photo

    detection = detect_photo(load_photo(path, max_side or MAX_WORKING_SIDE))
    return Detection(detection.landmarks if detection.found else np.zeros((0, 2)), detection.faces_found)


def load_landmarks(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(478, 3) positions (NaN where missing) and (478,) valid, from a landmarks.json beside a mesh."""
    record = json.loads(Path(path).read_text())
    points = np.array([p if p is not None else [np.nan] * 3 for p in record["points"]], dtype=float)
    if points.shape != (LANDMARK_COUNT, 3):
        raise ValueError(f"{path}: expected {LANDMARK_COUNT} landmark entries, found {len(points)}")
    return points, np.isfinite(points).all(1)
