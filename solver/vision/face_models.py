"""MediaPipe's face models run by LiteRT: detection -> rotated crop -> 468 landmarks -> iris, in numpy and OpenCV.

    faces = find_faces(rgb, min_confidence)     # [(478, 2) pixel points], best detection first
    score = best_detection_score(rgb)           # the face detector's top score (0 where it sees none)
    mask = segment_person(rgb)                  # (H, W) selfie segmentation

The steps and their numbers are those of MediaPipe 0.10.21's graphs (face_detection_short_range, the face landmark
front graph, iris_landmark_left_and_right, selfie_segmentation; read from the graph definitions inside its wheel),
written here for the models alone, which LiteRT runs on Python 3.11 and 3.13 (no MediaPipe for 3.13 has them):

1. The short-range detector sees the whole image letterboxed to 128 x 128 (values in [-1, 1]); 896 SSD anchors
   give boxes and six keypoints (eyes, nose tip, mouth, ears); weighted non-max suppression merges them.
2. Each face's crop: its box's centre, the longer side x 1.5, turned so that the line from the first eye keypoint to
   the second is horizontal; 192 x 192 in [0, 1] -> the 468 mesh landmarks (and a face presence score).
3. Each eye's crop: around the eye's two corner landmarks, their longer extent x 2.3, turned along them; 64 x 64
   (the second eye mirrored, as the model sees a left eye) -> 5 iris points and 71 eye contour and brow points.
   The iris points become landmarks 468-477; the eye's rim replaces the mesh's own lid points (a part of the
   refinement MediaPipe's attention model makes; that model's file needs a custom op LiteRT lacks).

Points are (x right, y down) image pixels; a crop is the affine map from image pixels to the model's input pixels.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import threading

import numpy as np

from .model_files import model_path

DETECTOR_SIZE = 128
DETECTOR_STRIDES = (8, 16, 16, 16)  # one SSD layer per stride; layers of the same stride share a grid
ANCHORS_PER_LAYER = 2  # aspect ratio 1 plus the interpolated scale; the anchors are fixed at unit size
DETECTOR_KEYPOINTS = 6
NMS_IOU = 0.3
MAX_FACES = 4  # as the face mesh was run before (max_num_faces)

LANDMARK_SIZE = 192
FACE_CROP_SCALE = 1.5
FACE_PRESENCE = 0.5  # the landmark model's own face score below which its points are dropped
MESH_LANDMARKS = 468

IRIS_SIZE = 64
EYE_CROP_SCALE = 2.3
# (first corner, second corner) of each eye, the crop's x axis running from the first to the second, and whether
# the crop is mirrored for the model; the first eye's iris becomes landmarks 468-472, the second's 473-477
EYES = (((33, 133), False), ((362, 263), True))
# Mesh landmarks that the iris model's first 16 eye contour points (of 71: the eye's rim, then rings around it and the
# brow) stand for, for each eye of EYES (the second eye's crop is mirrored: its ids are the mirrored ones). From the
# LandmarksRefinementCalculator options of MediaPipe's face landmark graph, which maps its attention model's eye
# outputs (the same 71 points) onto the mesh this way. Only the rim replaces the mesh's points: on the four sample
# photos it brings the lids 0.4-0.9 % of the eye distance closer to MediaPipe's refined ones (median), while the
# other 55 points moved the rest of the eye region away from them.
EYE_RIM_IDS = ((33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
               (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398))

SEGMENTATION_SIZE = 256
# XNNPACK threads per model: on two idle cores two threads take 0.51 / 0.36 / 0.40 ms for the landmark, iris and
# detector models against 0.77 / 0.58 / 0.64 ms with one (MediaPipe's own graph runs its models threaded too)
MODEL_THREADS = max(1, min(4, os.cpu_count() or 1))


# --- the models -------------------------------------------------------------------------------------------------

class _Model:
    """One LiteRT interpreter and a lock: an interpreter holds its tensors between calls, so two threads must not
    run it at once."""

    def __init__(self, name: str):
        from ai_edge_litert.interpreter import Interpreter  # heavy import, only in the worker

        self.interpreter = Interpreter(model_path=str(model_path(name)), num_threads=MODEL_THREADS)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.lock = threading.Lock()

    def __call__(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """(S, S, 3) float32 input -> each output by name, its batch axis dropped."""
        with self.lock:
            self.interpreter.set_tensor(self.input, tensor[None].astype(np.float32))
            self.interpreter.invoke()
            return {name: self.interpreter.get_tensor(index)[0] for name, index in self.outputs.items()}


@functools.lru_cache(maxsize=None)
def model(name: str) -> _Model:
    """The model of file `name`, loaded once per process (MissingModelError when its file is missing)."""
    return _Model(name)


def load_face_models() -> None:
    """Load the detector, landmark and iris models now (the worker's warm-up), not at the first image."""
    for name in ("face_detection_short_range.tflite", "face_landmark.tflite", "iris_landmark.tflite"):
        model(name)


# --- crops: affine maps from image pixels to a model's input pixels -------------------------------------------

def crop_transform(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """(2, 3) affine map from image pixels to the pixels of a size x size crop: the square of `side` pixels around
    `centre` (2,), its x axis turned by `angle` (radians, clockwise on the image as y points down). The square's
    edges go to the crop's edges 0 and size (as MediaPipe's ImageToTensor maps a rectangle's corners)."""
    cos, sin = math.cos(angle), math.sin(angle)
    linear = size / side * np.array([[cos, sin], [-sin, cos]])
    return np.hstack([linear, (size / 2 - linear @ np.asarray(centre, float))[:, None]])


def to_image(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) crop pixels -> (N, 2) image pixels, through the inverse of the (2, 3) crop transform."""
    import cv2

    inverse = cv2.invertAffineTransform(transform)  # a tenth of np.linalg.inv's time on a 2 x 2 matrix
    return np.asarray(points, float) @ inverse[:, :2].T + inverse[:, 2]


def crop(image: np.ndarray, transform: np.ndarray, size: int, value_range: tuple[float, float],
         zero_border: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 image -> (size, size, 3) float32 crop with values in value_range. Bilinear, like MediaPipe's
    ImageToTensor; outside the image the edge repeats, or black with zero_border (the detector's letterbox)."""
    import cv2

    border = cv2.BORDER_CONSTANT if zero_border else cv2.BORDER_REPLICATE
    warped = cv2.warpAffine(image, transform, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    low, high = value_range
    return warped.astype(np.float32) * ((high - low) / 255.0) + low


# --- 1. the face detector ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def anchor_centres(size: int = DETECTOR_SIZE, strides: tuple[int, ...] = DETECTOR_STRIDES,
                   per_layer: int = ANCHORS_PER_LAYER) -> np.ndarray:
    """(A, 2) SSD anchor centres in [0, 1] (x, y), in the detector's output order: per grid of a stride, row by row,
    each cell's anchors together (A = 896 for the short-range detector: 16 x 16 x 2 + 8 x 8 x 6). Written here
    rather than taken from a library: MediaPipe's SsdAnchorsCalculator has no Python twin."""
    grids = []
    for stride, layers in itertools.groupby(strides):
        cells = math.ceil(size / stride)
        along = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(along, along, indexing="ij")
        grids.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), per_layer * len(list(layers)), axis=0))
    return np.concatenate(grids)


def decode_detections(regressors: np.ndarray, logits: np.ndarray, min_score: float, size: int = DETECTOR_SIZE
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detector's (A, 16) regressors and (A,) score logits -> the detections scoring at least min_score:
    boxes (K, 4) as x_min, y_min, x_max, y_max, keypoints (K, 6, 2), both in [0, 1] of the detector's input, and
    scores (K,). Offsets are in input pixels from the anchor centres (unit anchors)."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)))
    keep = scores >= min_score
    anchors = anchor_centres(size)[keep]
    values = regressors[keep] / size
    centres, half = anchors + values[:, :2], values[:, 2:4] / 2
    keypoints = anchors[:, None] + values[:, 4:4 + 2 * DETECTOR_KEYPOINTS].reshape(-1, DETECTOR_KEYPOINTS, 2)
    return np.hstack([centres - half, centres + half]), keypoints, scores[keep]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (K, 4) boxes (x_min, y_min, x_max, y_max) -> (K,)."""
    low, high = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = np.prod(box[2:] - box[:2]) + areas - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Weighted non-max suppression (as MediaPipe's face detector runs it): the best remaining detection takes every
    remaining one that overlaps it by more than `iou`, and its box and keypoints become their score-weighted mean;
    its score stays. Hand-written: OpenCV's and torchvision's NMS keep the best box instead of averaging.
    -> [(box (4,), keypoints (6, 2), score)], best first."""
    order = np.argsort(-scores, kind="stable")
    merged = []
    while order.size:
        overlap = box_iou(boxes[order[0]], boxes[order]) > iou
        group, order = order[overlap], order[~overlap]
        weights = scores[group] / scores[group].sum()
        merged.append((weights @ boxes[group], np.tensordot(weights, keypoints[group], axes=1),
                       float(scores[group[0]])))
    return merged


def detector_transform(height: int, width: int) -> np.ndarray:
    """The whole image letterboxed into the detector's square input (the (2, 3) crop transform)."""
    return crop_transform(np.array([width / 2, height / 2]), max(height, width), 0.0, DETECTOR_SIZE)


def detect(image: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(H, W, 3) uint8 RGB -> [(box (2, 2) corners, keypoints (6, 2), score)] in image pixels, best first."""
    transform = detector_transform(*image.shape[:2])
    outputs = model("face_detection_short_range.tflite")(crop(image, transform, DETECTOR_SIZE, (-1.0, 1.0),
                                                              zero_border=True))
    boxes, keypoints, scores = decode_detections(outputs["regressors"], outputs["classificators"], min_score)
    return [(to_image(transform, box.reshape(2, 2) * DETECTOR_SIZE), to_image(transform, points * DETECTOR_SIZE),
             score) for box, points, score in weighted_nms(boxes, keypoints, scores)]


def best_detection_score(image: np.ndarray, min_score: float = 0.05) -> float:
    """The detector's best face score on (H, W, 3) uint8 RGB, 0 where none reaches min_score."""
    return max((score for _, _, score in detect(image, min_score)), default=0.0)


# --- 2. the face mesh --------------------------------------------------------------------------------------------

def line_angle(start: np.ndarray, end: np.ndarray) -> float:
    """The angle (radians, clockwise on the image) of the line from pixel `start` to `end`."""
    return math.atan2(end[1] - start[1], end[0] - start[0])


def face_crop(box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """The landmark model's crop transform for a detection: box (2, 2) corners and keypoints (6, 2) in pixels."""
    side = FACE_CROP_SCALE * float(np.max(box[1] - box[0]))
    return crop_transform(box.mean(axis=0), side, line_angle(keypoints[0], keypoints[1]), LANDMARK_SIZE)


def face_mesh(image: np.ndarray, transform: np.ndarray) -> np.ndarray | None:
    """The 468 mesh landmarks (468, 2) in image pixels in the crop `transform`; None when the model sees no face."""
    outputs = model("face_landmark.tflite")(crop(image, transform, LANDMARK_SIZE, (0.0, 1.0)))
    presence = 1.0 / (1.0 + math.exp(-float(outputs["conv2d_31"].ravel()[0])))
    if presence < FACE_PRESENCE:
        return None
    return to_image(transform, outputs["conv2d_21"].reshape(MESH_LANDMARKS, 3)[:, :2])


# --- 3. the eyes -------------------------------------------------------------------------------------------------

def eye_crop(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The iris model's crop transform around an eye's two corner points (pixels)."""
    side = EYE_CROP_SCALE * float(np.max(np.abs(second - first)))
    return crop_transform((first + second) / 2, side, line_angle(first, second), IRIS_SIZE)


def eye_points(image: np.ndarray, corners: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray]:
    """(iris (5, 2), rim (16, 2)) image pixels of the eye between `corners` (2, 2): the centre of the iris first,
    then four points on its edge; the eye's rim in the order of EYE_RIM_IDS."""
    transform = eye_crop(corners[0], corners[1])
    tensor = crop(image, transform, IRIS_SIZE, (0.0, 1.0))
    outputs = model("iris_landmark.tflite")(tensor[:, ::-1] if mirrored else tensor)
    iris, contour = (outputs[name].reshape(-1, 3)[:, :2].copy()
                     for name in ("output_iris", "output_eyes_contours_and_brows"))
    if mirrored:
        iris[:, 0], contour[:, 0] = IRIS_SIZE - iris[:, 0], IRIS_SIZE - contour[:, 0]
    return to_image(transform, iris), to_image(transform, contour[:len(EYE_RIM_IDS[0])])


def with_eyes(image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """(468, 2) mesh landmarks -> (478, 2): the eyes' rims refined by the iris model, and the two irises appended
    (MediaPipe's order: the eye of landmarks 33/133 first)."""
    points, irises = mesh.copy(), []
    for ((first, second), mirrored), ids in zip(EYES, EYE_RIM_IDS):
        iris, rim = eye_points(image, mesh[[first, second]], mirrored)
        points[list(ids)] = rim
        irises.append(iris)
    return np.vstack([points] + irises)


def find_faces(image: np.ndarray, min_confidence: float, max_faces: int = MAX_FACES) -> list[np.ndarray]:
    """(H, W, 3) uint8 RGB -> the (478, 2) pixel landmarks of each face found (at most max_faces detections are
    followed, best first; one the landmark model does not confirm is dropped)."""
    faces = []
    for box, keypoints, _ in detect(image, min_confidence)[:max_faces]:
        mesh = face_mesh(image, face_crop(box, keypoints))
        if mesh is not None:
            faces.append(with_eyes(image, mesh))
    return faces


# --- the selfie segmentation -------------------------------------------------------------------------------------

def segment_person(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 probability that a pixel shows the person: the whole image stretched
    to 256 x 256 in [0, 1], the model's mask stretched back (bilinear), as MediaPipe's selfie segmentation does."""
    import cv2

    height, width = image.shape[:2]
    stretch = np.array([[SEGMENTATION_SIZE / width, 0.0, 0.0], [0.0, SEGMENTATION_SIZE / height, 0.0]])
    tensor = crop(image, stretch, SEGMENTATION_SIZE, (0.0, 1.0))
    mask = next(iter(model("selfie_segmentation.tflite")(tensor).values()))
    return cv2.resize(mask[..., 0], (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
