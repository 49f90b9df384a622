"""The bundled sample photos (Cycles renders of the Lee Perry-Smith scan) and their true cameras agree.

Cheap: numpy, OpenCV and JSON only (no Blender, no MediaPipe). samples/render_scan_photos.py makes them.
"""
from __future__ import annotations

import json
import struct

import cv2
import numpy as np

from tests.conftest import PROJECT_ROOT

SCAN_DIR = PROJECT_ROOT / "samples" / "lee_perry_smith"
PHOTO_DIR = PROJECT_ROOT / "samples" / "lps_photos"


def glb_json(path) -> dict:
    data = path.read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20:20 + length])


def views() -> list[dict]:
    return json.loads((PHOTO_DIR / "views.json").read_text())["views"]


def project(view: dict, point: np.ndarray) -> np.ndarray:
    matrix = np.array(view["camera_from_scan"], dtype=float)
    camera = matrix[:3, :3] @ point + matrix[:3, 3]
    assert camera[2] > 0
    return view["focal_px"] * camera[:2] / camera[2] + np.array([view["width"], view["height"]]) / 2


def test_scan_has_its_measured_vertex_count():
    gltf = glb_json(SCAN_DIR / "LeePerrySmith.glb")
    primitive = gltf["meshes"][0]["primitives"][0]
    assert gltf["accessors"][primitive["attributes"]["POSITION"]]["count"] == 9279
    assert gltf["accessors"][primitive["indices"]]["count"] == 3 * 17684


def test_photos_decode_at_the_sizes_views_json_gives():
    records = views()
    assert [v["image"] for v in records] == [f"photo_{i}.jpg" for i in range(1, 5)]
    for view in records:
        image = cv2.imread(str(PHOTO_DIR / view["image"]))
        assert image is not None, view["image"]
        assert image.shape == (view["height"], view["width"], 3)
        assert view["principal_point_px"] == [view["width"] / 2, view["height"] / 2]
        assert np.isclose(view["focal_px"], view["focal_mm"] / 36.0 * max(view["width"], view["height"]))
        rotation = np.array(view["camera_from_scan"], dtype=float)[:3, :3]
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) and np.linalg.det(rotation) > 0
    assert sum((PHOTO_DIR / v["image"]).stat().st_size for v in records) < 1_000_000


def test_scan_nose_tip_projects_onto_skin_near_the_middle_of_each_photo():
    record = json.loads((SCAN_DIR / "landmarks.json").read_text())
    nose_tip = np.array(record["points"][1], dtype=float)  # MediaPipe's nose tip, in the glb's coordinates
    for view in views():
        width, height = view["width"], view["height"]
        x, y = project(view, nose_tip)
        assert 0.2 * width < x < 0.8 * width and 0.3 * height < y < 0.75 * height, (view["image"], x, y)
        # The scan's own front-most vertex, projected by the render script, is on the same nose.
        assert np.hypot(*(np.array([x, y]) - view["nose_tip_vertex_px"])) < 0.04 * max(width, height)
        image = cv2.imread(str(PHOTO_DIR / view["image"])).astype(int)  # BGR
        patch = image[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].reshape(-1, 3)
        corner = image[:20, :20].reshape(-1, 3)
        assert np.median(patch[:, 2] - patch[:, 0]) > 20, view["image"]  # skin: redder than blue
        assert abs(np.median(corner[:, 2] - corner[:, 0])) < 15, view["image"]  # the neutral backdrop
