"""The error measure every accuracy figure uses (solver.fit.scan_fit.compare_to_scan): a surface against itself is
zero, ICP recovers a known similarity, the crop keeps exactly the points within its radius, and a known offset
gives the expected RMSE. On the bundled Fran scan (metres, face only)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from solver.template.canonical import parse_obj, triangulate_faces
from asm_protocol.landmarks import load_landmarks
from solver.core.geometry import vertex_normals
from solver.fit.scan_fit import CROP, TIGHT_CROP, compare_to_scan, prepare_scan
from tests.conftest import SCAN_DIR


@pytest.fixture(scope="module")
def fran():
    vertices, _, faces = parse_obj(SCAN_DIR / "fran_cut.obj")
    triangles, _ = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SCAN_DIR / "landmarks.json")
    return vertices, triangles, np.nan_to_num(landmarks), valid


def test_a_surface_against_itself_is_zero_and_the_crops_are_exact(fran):
    vertices, triangles, landmarks, valid = fran
    scan = prepare_scan(vertices, triangles, landmarks, valid, samples=0)
    measured = compare_to_scan(vertices, triangles, landmarks, valid, scan)
    tiny = 1e-5 * scan.eye_distance  # ICP's closest-point round-off
    assert measured["rms"] < tiny and measured["rms_tight"] < tiny and measured["nme"] < 1e-5
    reach = np.linalg.norm(vertices - scan.nose_tip, axis=1)
    assert np.array_equal(measured["in_crop"], reach <= CROP * scan.eye_distance)
    assert 0 < measured["in_crop"].sum() < len(vertices)  # Fran's cut scan reaches beyond 95 mm
    assert abs(measured["alignment"].scale - 1) < 1e-5


@pytest.mark.parametrize("scale", [1.0, 7.5], ids=["rigid", "similarity"])
def test_icp_recovers_a_known_similarity(fran, scale):
    vertices, triangles, landmarks, valid = fran
    rotation = Rotation.from_euler("xyz", [8.0, -15.0, 5.0], degrees=True).as_matrix()
    shift = np.array([0.3, -1.2, 0.8])
    moved = scale * vertices @ rotation.T + shift  # the surface in other units, turned and moved
    scan = prepare_scan(vertices, triangles, landmarks, valid, samples=0)
    measured = compare_to_scan(moved, triangles, scale * landmarks @ rotation.T + shift, valid, scan)
    found = measured["alignment"]
    assert abs(found.scale / scale - 1) < 1e-4 and np.allclose(found.rotation, rotation, atol=1e-4)
    assert np.allclose(found.translation, shift, atol=1e-4 * scale)
    assert measured["rms"] < 1e-5 * scale * scan.eye_distance  # in the surface's units


def test_a_known_offset_gives_its_rmse(fran):
    """The nose pushed out 1 mm along its normals: ICP (which trims the worst tenth of the pairs) keeps the
    rest of the face in place, so the scan's nose lies 1 mm from the surface and the RMS over the crop is
    1 mm times the square root of the nose's share of the cropped scan points."""
    vertices, triangles, landmarks, valid = fran
    scan = prepare_scan(vertices, triangles, landmarks, valid, samples=0)
    nose = np.linalg.norm(vertices - scan.nose_tip, axis=1) <= 0.2 * scan.eye_distance
    offset = 0.001  # Fran is in metres
    pushed = vertices + offset * nose[:, None] * vertex_normals(vertices, triangles)
    measured = compare_to_scan(pushed, triangles, landmarks, valid, scan)
    crop = measured["in_crop"]
    share = (nose & crop).sum() / crop.sum()
    assert 0.02 < share < 0.1
    assert measured["rms"] == pytest.approx(offset * np.sqrt(share), rel=0.15), (measured["rms"], share)
    assert np.median(measured["distance"][nose & crop]) == pytest.approx(offset, rel=0.15)
    assert np.median(measured["distance"][crop & ~nose]) < 0.05 * offset
    tight = np.linalg.norm(vertices - scan.nose_tip, axis=1) <= TIGHT_CROP * scan.eye_distance
    assert tight.sum() < crop.sum() and measured["rms_tight"] > measured["rms"]  # the nose weighs more there
