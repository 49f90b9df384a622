"""The headless landmark pipeline behind samples/landmarks.json: render, detect, cast onto the surface."""
from __future__ import annotations

import numpy as np
import pytest

from asm_blender.scene_io.mesh import mesh_arrays
from asm_blender.scene_io.views import landmarks_from_renders
from solver.template.canonical import canonical_face
from solver.core.geometry import similarity_transform

from .conftest import sample_landmarks

cv2 = pytest.importorskip("cv2", reason="landmark detection needs OpenCV and LiteRT (main environment)")
pytest.importorskip("ai_edge_litert", reason="landmark detection needs LiteRT (main environment)")


def test_landmarks_found_on_renders_reproduce_the_stored_ones(sample_head, tmp_path):
    from solver.vision.photos import detect_face_landmarks_in_file

    found = landmarks_from_renders(sample_head, mesh_arrays(sample_head), detect_face_landmarks_in_file, tmp_path)
    assert found.detections[0] is not None and found.detections[0].shape == (478, 2)
    positions, valid = found.positions, found.valid
    stored, stored_valid = sample_landmarks()
    both = valid & stored_valid
    assert both.sum() > 450
    eye_distance = np.linalg.norm(stored[33] - stored[263])
    # The stored ones come from MediaPipe 0.10.21's refined face mesh (its attention model); MediaPipe's models on
    # LiteRT (the plain face mesh and the iris model) place them 1.6 % of the eye distance from those (median,
    # measured when the detector moved to LiteRT; the detectors' own points differ by 2.2 % on these renders).
    assert np.median(np.linalg.norm(positions[both] - stored[both], axis=1)) < 0.02 * eye_distance
    # and they are a face: the canonical face fits them to within a few millimetres (median)
    face = canonical_face()
    surface = both[:468]
    fit = similarity_transform(face.vertices[:468][surface], positions[:468][surface])
    residual = np.linalg.norm(fit.apply(face.vertices[:468][surface]) - positions[:468][surface], axis=1)
    assert np.median(residual) < 0.08 * eye_distance


def test_detector_finds_a_real_face_in_a_photo(shared_data):
    from solver.vision.photos import detect_face_landmarks_in_file

    found = detect_face_landmarks_in_file(shared_data / "photos" / "astronaut.png")
    assert found.faces_found == 1 and found.points.shape == (478, 2)
    # the portrait's face is about 120 px wide, upper middle of the 512 px image
    width = np.ptp(found.points[:, 0])
    assert 80 < width < 200
    assert 100 < found.points[:, 0].mean() < 300 and found.points[:, 1].mean() < 256


def test_no_face_gives_an_empty_detection():
    from solver.vision.detector import detect_face_landmarks

    found = detect_face_landmarks(np.full((256, 256, 3), 127, dtype=np.uint8))
    assert not found.found and found.points.shape == (0, 2)


def test_a_mesh_seen_from_behind_gets_a_clear_message(sample_head, tmp_path):
    from mathutils import Vector

    from asm_blender.scene_io.mesh import SceneInputError
    from solver.vision.photos import detect_face_landmarks_in_file

    with pytest.raises(SceneInputError, match="no face was found on the front render of 'Head'; check which way"):
        landmarks_from_renders(sample_head, mesh_arrays(sample_head), detect_face_landmarks_in_file, tmp_path,
                               face_direction=Vector((0.0, 1.0, 0.0)))
