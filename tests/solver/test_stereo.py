"""Dense multi-view matching (solver/vision/stereo.py) on photos rendered exactly: a textured plane seen by two
cameras 40 degrees apart, the surface the matcher starts from placed wrongly in front of it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver.core.geometry import vertex_normals
from solver.vision.cameras import Cameras
from solver.vision.photometric import face_samples, visibility
from solver.vision.stereo import match_views, stereo_image, triangulate

cv2 = pytest.importorskip("cv2", reason="the photos are prepared with OpenCV (main environment)")

SIZE, FOCAL, DISTANCE = 480, 900.0, 4.0  # pixels, pixels, head units from the plane
TEXTURE_CELLS = 512  # texture pixels across the plane's 2 x 2 head units


def texture(seed: int = 0) -> np.ndarray:
    """(T, T) skin-like detail: noise blurred to a few texture pixels, in 0..1."""
    noise = np.random.default_rng(seed).random((TEXTURE_CELLS, TEXTURE_CELLS)).astype(np.float32)
    detail = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return (detail - detail.min()) / np.ptp(detail)


def plane_cameras(yaws_degrees=(-20.0, 20.0)) -> Cameras:
    """Cameras looking at the plane z = 0 from +z, turned about the y axis around its centre."""
    rotvecs, translations = [], []
    for yaw in np.radians(yaws_degrees):
        # camera looks along -z of the world at yaw 0: rotation by pi about y, then the yaw
        rotation = cv2.Rodrigues(np.array([0.0, np.pi + yaw, 0.0]))[0]
        rotvecs.append(cv2.Rodrigues(rotation)[0].ravel())
        translations.append([0.0, 0.0, DISTANCE])  # the plane's centre DISTANCE in front of each camera
    count = len(yaws_degrees)
    return Cameras.from_arrays(rotvecs, translations, [FOCAL] * count, [[SIZE, SIZE]] * count)


def photograph(cameras: Cameras, pattern: np.ndarray) -> list[np.ndarray]:
    """Each camera's exact view of the textured plane z = 0 (x, y in [-1, 1]): every pixel's ray meets it."""
    photos = []
    rows, columns = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    for v in range(len(cameras.image_size)):
        rotation = cv2.Rodrigues(cameras.rotvec[v].numpy())[0]
        centre = cameras.centres()[v].numpy()
        rays = np.stack([(columns - SIZE / 2) / FOCAL, (rows - SIZE / 2) / FOCAL, np.ones_like(rows)], -1) @ rotation
        along = -centre[2] / rays[..., 2]
        hit = centre + along[..., None] * rays
        u = ((hit[..., 0] + 1) / 2 * TEXTURE_CELLS - 0.5).astype(np.float32)
        w = ((hit[..., 1] + 1) / 2 * TEXTURE_CELLS - 0.5).astype(np.float32)
        grey = cv2.remap(pattern, u, w, cv2.INTER_LINEAR, borderValue=0.5)
        photos.append(np.repeat((grey * 255).round().astype(np.uint8)[..., None], 3, -1))
    return photos


def plane_mesh(height: float, cells: int = 24):
    """A grid over [-0.6, 0.6]^2 at z = height, facing +z: (N, 3) vertices and (T, 3) triangles."""
    steps = np.linspace(-0.6, 0.6, cells + 1)
    x, y = np.meshgrid(steps, steps)
    vertices = np.stack([x.ravel(), y.ravel(), np.full(x.size, height)], -1)
    index = np.arange(x.size).reshape(x.shape)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, c, b], -1), np.stack([b, c, d], -1)])
    return vertices, triangles


def matched(photos, cameras, height: float):
    vertices, triangles = plane_mesh(height)
    posed = torch.as_tensor(vertices)
    faces = torch.as_tensor(triangles)
    if float(vertex_normals(posed, faces)[:, 2].mean()) < 0:
        faces = faces.flip(1)
    ids, bary = face_samples(vertices, faces.numpy(), np.arange(len(vertices)), limit=3000)
    seen = visibility(posed, faces, ids, bary, cameras, 1.0)
    images = [stereo_image(photo, dtype=torch.float64) for photo in photos]
    return match_views(posed, vertex_normals(posed, faces), ids, bary, seen, cameras, images,
                       torch.ones(len(photos), dtype=torch.float64), 1.0)


def test_matches_find_the_surface_the_start_missed():
    cameras = plane_cameras()
    photos = photograph(cameras, texture())
    matches = matched(photos, cameras, height=0.08)  # the start lies 0.08 head units (about 5 mm) in front
    assert len(matches) > 500, len(matches)
    points = triangulate(cameras, matches)
    # measured: median 0.002 head units off the true plane; the start was 0.08 off
    assert float(points[:, 2].abs().median()) < 0.01, points[:, 2].abs().median()
    assert float((points[:, 2].abs() < 0.02).double().mean()) > 0.9


def test_photos_of_different_things_give_no_matches():
    """A texture in one photo that is not in the other: the left-right check and the correlation floor keep few
    chance matches (measured: 134 where the same texture gives 2978), scattered in depth, which the fit's robust
    loss discounts."""
    cameras = plane_cameras()
    first = photograph(cameras, texture(0))[0]
    second = photograph(cameras, texture(1))[1]
    same = matched(photograph(cameras, texture(0)), cameras, height=0.08)
    different = matched([first, second], cameras, height=0.08)
    assert len(different) < 0.06 * len(same), (len(different), len(same))


def test_triangulation_is_exact_for_consistent_pixels():
    cameras = plane_cameras((-30.0, 10.0))
    truth = torch.as_tensor(np.random.default_rng(2).uniform(-0.5, 0.5, (50, 3)), dtype=torch.float64)
    pixels, _ = cameras.project(truth)
    from solver.vision.stereo import DenseMatches

    count = len(truth)
    matches = DenseMatches(torch.arange(count), torch.zeros(count, dtype=torch.long), torch.ones(count, dtype=torch.long),
                           pixels[0], pixels[1], torch.ones(count, dtype=torch.float64),
                           torch.zeros(count, 3, dtype=torch.float64))
    assert torch.allclose(triangulate(cameras, matches), truth, atol=1e-9)
