"""MediaPipe's 478 face landmarks on an image (the landmark vocabulary of ASM.md §7, asm_protocol.landmarks).

Runs MediaPipe's face models on LiteRT (solver/vision/face_models.py); their files come with the solver, nothing is
downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import face_models


@dataclass(frozen=True)
class Detection:
    points: np.ndarray  # (478, 2) pixel coordinates (x right, y down), or empty when no face was found
    faces_found: int

    @property
    def found(self) -> bool:
        return self.faces_found > 0


DEFAULT_CONFIDENCE = 0.3


def prepare_detector(min_confidence: float = DEFAULT_CONFIDENCE) -> None:
    """Load the face models now (the worker's warm-up), not at the first image. min_confidence: kept for callers,
    the models do not depend on it."""
    face_models.load_face_models()


def detect_face_landmarks(image_rgb: np.ndarray, min_confidence: float = DEFAULT_CONFIDENCE,
                          small_faces: bool = False) -> Detection:
    """image_rgb (H, W, 3) uint8 -> Detection of the largest face (by landmark extent). small_faces: when the whole
    image shows none, look again in windows of it (see `_faces_in_windows`): for photos, where several people or a
    picture made of several portraits make each face small; not for renders, which show one head filling the frame
    (a render without a face would only cost more time)."""
    image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
    faces = _faces(image, min_confidence)
    if not faces and small_faces:
        faces = _faces_in_windows(image, min_confidence)
    if not faces:
        return Detection(np.zeros((0, 2)), 0)
    return Detection(max(faces, key=_box_area), len(faces))


def _faces(image: np.ndarray, min_confidence: float) -> list[np.ndarray]:
    """Every face found on the image: (478, 2) pixel coordinates each."""
    return face_models.find_faces(image, min_confidence)


def _box_area(points: np.ndarray) -> float:
    return float(np.ptp(points[:, 0]) * np.ptp(points[:, 1]))


WINDOW_SHARES = (1.0, 0.5)  # window sides as shares of the image's shorter side, tried in this order


def _faces_in_windows(image: np.ndarray, min_confidence: float) -> list[np.ndarray]:
    """The faces in square windows of the image, half overlapping, in image pixels. The face detector (MediaPipe's
    short-range model) sees the whole image shrunk to 128 pixels, so a face narrower than about a tenth of a wide
    image is lost; in a window it is larger. Windows of the shorter side first, then of half of it; a face seen
    in two windows counts once."""
    height, width = image.shape[:2]
    for share in WINDOW_SHARES:
        side = int(min(height, width) * share)
        if side < 64 or (side >= height and side >= width):  # too small to hold a face, or the image itself
            continue
        faces: list[np.ndarray] = []
        for top in _window_starts(height, side):
            for left in _window_starts(width, side):
                for points in _faces(np.ascontiguousarray(image[top:top + side, left:left + side]), min_confidence):
                    _add_unless_seen(faces, points + [left, top])
        if faces:
            return faces
    return []


def _window_starts(length: int, side: int) -> list[int]:
    """Starts of windows of `side` pixels along `length`, half overlapping, the last one ending at the edge."""
    if side >= length:
        return [0]
    count = int(np.ceil((length - side) / (side / 2))) + 1
    return [int(round(i * (length - side) / (count - 1))) for i in range(count)]


def _add_unless_seen(faces: list[np.ndarray], points: np.ndarray) -> None:
    """Add a face found in one window unless another window found it already (its centre within half of the face's
    size); the larger view of it is kept (a window's edge may cut one off)."""
    centre, size = points.mean(axis=0), np.sqrt(_box_area(points))
    for index, seen in enumerate(faces):
        if np.linalg.norm(seen.mean(axis=0) - centre) < 0.5 * max(size, np.sqrt(_box_area(seen))):
            if _box_area(points) > _box_area(seen):
                faces[index] = points
            return
    faces.append(points)


# how much higher the score of the image turned by 180 degrees must be. Sample head's front render, scores as it is /
# turned: upright 0.87 / 0.54, upside down 0.61 / 0.81.
UPSIDE_DOWN_MARGIN = 0.15


def upright_scores(image_rgb: np.ndarray) -> tuple[float, float]:
    """The face detector's best score on the image as it is and turned by 180 degrees (0 where it finds none)."""
    image = np.ascontiguousarray(image_rgb[..., :3], dtype=np.uint8)
    return tuple(face_models.best_detection_score(np.ascontiguousarray(i)) for i in (image, image[::-1, ::-1]))


def face_when_turned(image_rgb: np.ndarray, min_confidence: float = DEFAULT_CONFIDENCE) -> bool:
    """Whether the image turned by 180 degrees shows a face: for a render where none was found as it is. The
    landmark model (MediaPipe's face mesh without the attention model) can reject a face upside down (a render of
    the sample head turned over: no face), where the refined one placed an upright face's landmarks; and the scores
    of `looks_upside_down` alone would call a render of a face-like head (Suzanne) upside down."""
    image = np.ascontiguousarray(image_rgb[::-1, ::-1, :3], dtype=np.uint8)
    return bool(_faces(image, min_confidence))


def looks_upside_down(image_rgb: np.ndarray, margin: float = UPSIDE_DOWN_MARGIN) -> bool:
    """Whether the face on the image (a render of one head) stands upside down. The face mesh cannot tell: on an
    upside-down face it places an upright face's landmarks, the chin where the forehead is. The face detector
    scores a face turned the right way up clearly higher."""
    as_is, turned = upright_scores(image_rgb)
    return turned > as_is + margin
