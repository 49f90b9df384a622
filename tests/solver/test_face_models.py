"""The face models on LiteRT (solver/vision/face_models.py): the real models on real images, against MediaPipe 0.10.21
where it is installed (the main environment), and the message when a model file is missing."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from solver.vision import face_models
from solver.vision.detector import detect_face_landmarks, face_when_turned, looks_upside_down, upright_scores
from solver.vision.model_files import MissingModelError, model_path
from tests.conftest import PROJECT_ROOT
from tests.solver.test_photo_input import _render_face

PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"
# Measured (this module's first version) against MediaPipe 0.10.21's refined face mesh, in % of the eye distance:
# median 1.2 (sample photo), 1.8 (render), 1.8 (real portrait); p90 2.5, 3.8, 2.7. Away from the lids (which the iris
# model refines), against its plain face mesh, at most 0.012 %: the same steps as MediaPipe's graphs.
REFINED_MEDIAN, REFINED_P90, PLAIN_MAX = 2.5, 5.0, 0.05


def _photo() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="module", params=["photo", "render"])
def image(request) -> np.ndarray:
    return _photo() if request.param == "photo" else _render_face()


def _mediapipe(image: np.ndarray, refine: bool) -> np.ndarray:
    mediapipe = pytest.importorskip("mediapipe", reason="MediaPipe 0.10.21 is the reference (main environment)")
    height, width = image.shape[:2]
    with mediapipe.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=refine,
                                                min_detection_confidence=0.3) as mesh:
        (face,) = mesh.process(image).multi_face_landmarks
    return np.array([[p.x * width, p.y * height] for p in face.landmark])


def test_the_face_is_found_on_a_sample_photo_and_a_render(image):
    detection = detect_face_landmarks(image)
    assert detection.found and detection.faces_found == 1
    points = detection.points
    assert points.shape == (478, 2) and np.isfinite(points).all()
    height, width = image.shape[:2]
    assert (points >= 0).all() and (points[:, 0] < width).all() and (points[:, 1] < height).all()
    # MediaPipe's order: 33 is the subject's right eye (image left), the iris of 33/133 is 468, the nose tip (1)
    # lies between the eyes and above the mouth (13)
    assert points[33, 0] < points[133, 0] < points[362, 0] < points[263, 0]
    first_eye = points[[33, 133]].mean(0)
    assert np.linalg.norm(points[468] - first_eye) < np.linalg.norm(points[473] - first_eye)
    assert points[33, 0] < points[1, 0] < points[263, 0] and points[1, 1] < points[13, 1]


def test_the_points_agree_with_mediapipe(image):
    points = detect_face_landmarks(image).points
    refined = _mediapipe(image, refine=True)
    eye = np.linalg.norm(refined[33] - refined[263])
    distance = 100 * np.linalg.norm(points - refined, axis=1) / eye
    assert np.median(distance) < REFINED_MEDIAN and np.percentile(distance, 90) < REFINED_P90
    plain = _mediapipe(image, refine=False)
    away_from_lids = [i for i in range(468) if i not in {j for rim in face_models.EYE_RIM_IDS for j in rim}]
    assert (100 * np.linalg.norm(points[away_from_lids] - plain[away_from_lids], axis=1) / eye).max() < PLAIN_MAX


@pytest.mark.parametrize("blank", ["black", "grey", "noise"])
def test_no_face_on_a_blank_image(blank):
    image = {"black": np.zeros((480, 640, 3), np.uint8), "grey": np.full((480, 640, 3), 128, np.uint8),
             "noise": np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)}[blank]
    detection = detect_face_landmarks(image, small_faces=True)
    assert not detection.found and detection.points.shape == (0, 2)
    if blank != "noise":  # on noise the detector scores 0.52 somewhere; the landmark model sees no face there
        assert upright_scores(image) == (0.0, 0.0)


def test_a_face_upside_down_is_told_apart():
    photo = _photo()
    upside_down = np.ascontiguousarray(photo[::-1, ::-1])
    assert not looks_upside_down(photo) and looks_upside_down(upside_down)
    # what Generate asks of a render where no face was found as it is (tests/blender: a head upside down)
    assert face_when_turned(upside_down) and not face_when_turned(np.full((480, 640, 3), 128, np.uint8))


def test_the_person_mask_covers_the_face_and_matches_mediapipe():
    photo = _photo()
    mask = face_models.segment_person(photo)
    assert mask.shape == photo.shape[:2] and mask.dtype == np.float32
    nose = detect_face_landmarks(photo).points[1].astype(int)
    assert mask[nose[1], nose[0]] > 0.9 and mask[:20, :20].max() < 0.1
    mediapipe = pytest.importorskip("mediapipe", reason="MediaPipe 0.10.21 is the reference (main environment)")
    with mediapipe.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as segmenter:
        reference = np.asarray(segmenter.process(photo).segmentation_mask)
    assert np.abs(mask - reference).max() < 0.05  # measured 0.04 on this photo, 0 on others


def test_anchors_and_weighted_non_max_suppression():
    anchors = face_models.anchor_centres()
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[:2], [[1 / 32, 1 / 32]] * 2)  # stride 8: 16 x 16 cells, 2 anchors each
    np.testing.assert_allclose(anchors[512:518], [[1 / 16, 1 / 16]] * 6)  # stride 16: 8 x 8 cells, 6 anchors each
    np.testing.assert_allclose(anchors[-1], [15 / 16, 15 / 16])
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    keypoints = np.arange(3 * 6 * 2, dtype=float).reshape(3, 6, 2)
    merged = face_models.weighted_nms(boxes, keypoints, np.array([0.6, 0.9, 0.7]))
    assert [score for _, _, score in merged] == [0.9, 0.7]  # best first; the overlapping pair became one
    np.testing.assert_allclose(merged[0][0], [0.06, 0.0, 1.06, 1.0])  # weighted 0.6 : 0.9
    np.testing.assert_allclose(merged[0][1], 0.4 * keypoints[0] + 0.6 * keypoints[1])
    np.testing.assert_allclose(merged[1][0], boxes[2])


def test_a_crop_turns_the_eye_line_level_and_maps_back():
    centre, angle = np.array([300.0, 200.0]), np.radians(25.0)
    transform = face_models.crop_transform(centre, 120.0, angle, 192)
    eye_line = centre + np.array([[-30.0, 0.0], [30.0, 0.0]]) @ np.array([[np.cos(angle), np.sin(angle)],
                                                                           [-np.sin(angle), np.cos(angle)]])
    in_crop = eye_line @ transform[:, :2].T + transform[:, 2]
    np.testing.assert_allclose(in_crop[:, 1], 96.0)  # level, through the crop's middle
    np.testing.assert_allclose(in_crop[:, 0], [96 - 48, 96 + 48])  # 30 of 120 pixels -> 48 of 192
    np.testing.assert_allclose(face_models.to_image(transform, in_crop), eye_line)


def test_a_missing_model_file_is_named_with_what_to_do(tmp_path):
    with pytest.raises(MissingModelError, match=r"face_landmark\.tflite is missing.*build\.py --models"):
        model_path("face_landmark.tflite", tmp_path)
    # the whole detector, in a copy of the solver without its models, in a fresh process
    shutil.copytree(PROJECT_ROOT / "solver", tmp_path / "solver",
                    ignore=shutil.ignore_patterns("__pycache__", "*.tflite"))
    shutil.copytree(PROJECT_ROOT / "asm_protocol", tmp_path / "asm_protocol")
    script = ("import numpy as np\nfrom solver.vision.detector import detect_face_landmarks\n"
              "try:\n    detect_face_landmarks(np.zeros((64, 64, 3), np.uint8))\n"
              "except Exception as error:\n    print(type(error).__name__, error)\n")
    completed = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                               timeout=120)
    assert completed.stdout.startswith("MissingModelError the face model file face_detection_short_range.tflite "
                                       "is missing"), completed.stdout + completed.stderr
