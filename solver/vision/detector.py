"""MediaPipe's 478 face landmarks on an image (the landmark vocabulary of ASM.md §7, asm_protocol.landmarks).

Uses the legacy `solutions.face_mesh` model that ships inside the mediapipe wheel: nothing is downloaded.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


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
