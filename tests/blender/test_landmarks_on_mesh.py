"""The headless landmark pipeline behind samples/landmarks.json: render, detect, cast onto the surface."""
from __future__ import annotations

import numpy as np
import pytest

from asm_blender.scene_io.mesh import mesh_arrays
from asm_blender.scene_io.views import lift_to_surface, render_views
from solver.canonical import canonical_face
from solver.geometry import similarity_transform

from .conftest import sample_landmarks

cv2 = pytest.importorskip("cv2", reason="landmark detection needs OpenCV and MediaPipe (main environment)")
pytest.importorskip("mediapipe", reason="landmark detection needs MediaPipe (main environment)")


def test_landmarks_found_on_renders_reproduce_the_stored_ones(sample_head, tmp_path):
    from solver.landmarks import detect_face_landmarks

    arrays = mesh_arrays(sample_head)
    views = render_views(sample_head, tmp_path)
    detections = []
    for view in views:
        found = detect_face_landmarks(cv2.cvtColor(cv2.imread(str(view.image_path)), cv2.COLOR_BGR2RGB))
        detections.append(found.points if found.found else None)
    assert detections[0] is not None and detections[0].shape == (478, 2)
    positions, valid, _ = lift_to_surface(sample_head, arrays, views, detections)
    stored, stored_valid = sample_landmarks()
    both = valid & stored_valid
    assert both.sum() > 450
    eye_distance = np.linalg.norm(stored[33] - stored[263])
    assert np.median(np.linalg.norm(positions[both] - stored[both], axis=1)) < 0.01 * eye_distance
    # and they are a face: the canonical face fits them to within a few millimetres (median)
    face = canonical_face()
    surface = both[:468]
    fit = similarity_transform(face.vertices[:468][surface], positions[:468][surface])
    residual = np.linalg.norm(fit.apply(face.vertices[:468][surface]) - positions[:468][surface], axis=1)
    assert np.median(residual) < 0.08 * eye_distance


def test_detector_finds_a_real_face_in_a_photo(shared_data):
    from solver.landmarks import detect_face_landmarks

    image = cv2.cvtColor(cv2.imread(str(shared_data / "photos" / "astronaut.png")), cv2.COLOR_BGR2RGB)
    found = detect_face_landmarks(image)
    assert found.faces_found == 1 and found.points.shape == (478, 2)
    # the portrait's face is about 120 px wide, upper middle of the 512 px image
    width = np.ptp(found.points[:, 0])
    assert 80 < width < 200
    assert 100 < found.points[:, 0].mean() < 300 and found.points[:, 1].mean() < 256


def test_no_face_gives_an_empty_detection():
    from solver.landmarks import detect_face_landmarks

    found = detect_face_landmarks(np.full((256, 256, 3), 127, dtype=np.uint8))
    assert not found.found and found.points.shape == (0, 2)
