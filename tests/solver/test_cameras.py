"""Cameras for uncalibrated photos: projection, the PnP start with a focal search, and a joint fit of cameras and
bones to 2D landmarks (synthetic photos of the sample rig with known cameras)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from solver.vision.cameras import Cameras, solve_camera
from solver.core.errors import ASMInputError
from solver.fit.engine import Stage, fit
from solver.core.geometry import closest_points_on_mesh
from solver.model import ASMModel, Pose
from tests.synthetic_cameras import camera_set

cv2 = pytest.importorskip("cv2", reason="the camera start uses OpenCV's PnP (main environment)")


@pytest.fixture(scope="module")
def photo_setup(sample_mesh, sample_rig):
    landmarks, valid = sample_mesh["landmarks"][:468], sample_mesh["landmark_valid"][:468]
    _, triangle, bary, _ = closest_points_on_mesh(landmarks[valid], sample_mesh["vertices"], sample_mesh["triangles"])
    ids = torch.as_tensor(sample_mesh["triangles"][triangle])
    unit = float(sample_rig.head_unit)
    # the focal lengths differ per photo: each camera stands where its lens frames the head alike
    rotvec, translation, focal, size = camera_set(sample_mesh["vertices"].mean(0), 0.0)
    translation[:, 2] = focal / 1000.0 * 5.0 * unit
    return {"ids": ids, "bary": torch.as_tensor(bary), "cameras": (rotvec, translation, focal, size)}


def test_projection_matches_opencv(photo_setup, sample_mesh):
    rotvec, translation, focal, size = photo_setup["cameras"]
    cameras = Cameras.from_arrays(rotvec, translation, focal, size)
    points = np.ascontiguousarray(sample_mesh["vertices"][::50])
    pixels, depth = cameras.project(torch.as_tensor(points))
    for v in range(len(focal)):
        matrix = np.array([[focal[v], 0, size[v, 0] / 2], [0, focal[v], size[v, 1] / 2], [0, 0, 1]])
        expected, _ = cv2.projectPoints(points, rotvec[v], translation[v], matrix, None)
        np.testing.assert_allclose(pixels[v].numpy(), expected.reshape(-1, 2), atol=1e-6)
        assert (depth[v] > 0).all()


def test_pnp_with_a_focal_search_finds_each_camera(photo_setup, sample_mesh):
    rotvec, translation, focal, size = photo_setup["cameras"]
    landmarks, valid = sample_mesh["landmarks"][:468], sample_mesh["landmark_valid"][:468]
    cameras = Cameras.from_arrays(rotvec, translation, focal, size)
    pixels, _ = cameras.project(torch.as_tensor(landmarks[valid]))
    noise = np.random.default_rng(0).normal(scale=0.5, size=pixels.shape)  # half a pixel, like a detector
    for v in range(len(focal)):
        found = solve_camera(landmarks[valid], pixels[v].numpy() + noise[v], size[v])
        assert abs(found["focal"] / focal[v] - 1) < 0.12, (found["focal"], focal[v])
        angle = np.degrees((Rotation.from_rotvec(found["rotvec"]).inv() * Rotation.from_rotvec(rotvec[v])).magnitude())
        assert angle < 2.0 and found["rms"] < 1.5
    with pytest.raises(ASMInputError, match="only 3 landmarks to place the camera"):
        solve_camera(landmarks[:3], pixels[0, :3].numpy(), size[0])


def test_cameras_and_bones_are_fitted_together_to_photo_landmarks(photo_setup, sample_mesh, sample_rig):
    """Three photos of the rig with its jaw open: from cameras found by PnP on the closed-jaw rig, the fit finds
    the jaw's rotation and brings the landmarks onto the detections."""
    names = list(sample_rig.names)
    jaw = names.index("jaw")
    truth = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64)
    pose = Pose.zeros(truth.bone_count, dtype=torch.float64)
    pose.rotvec[jaw, 0] = np.radians(-12.0)
    rotvec, translation, focal, size = photo_setup["cameras"]
    true_cameras = Cameras.from_arrays(rotvec, translation, focal, size)
    ids, bary = photo_setup["ids"], photo_setup["bary"]
    with torch.no_grad():
        detected, _ = true_cameras.project((bary.unsqueeze(-1) * truth.forward(pose)[ids]).sum(-2))
    face_size = torch.as_tensor([float(np.ptp(d[:, 0])) for d in detected.numpy()])

    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64)
    with torch.no_grad():
        rest_points = (bary.unsqueeze(-1) * model.forward()[ids]).sum(-2).numpy()
    starts = [solve_camera(rest_points, detected[v].numpy(), size[v]) for v in range(len(focal))]
    cameras = Cameras.from_arrays([s["rotvec"] for s in starts], [s["translation"] for s in starts],
                                  [s["focal"] for s in starts], size)
    targets = {"landmark_vertices": ids, "landmark_bary": bary, "landmarks_2d": detected,
               "landmark_confidence": torch.ones(detected.shape[:2], dtype=torch.float64), "face_size_2d": face_size}

    def pixel_rms():
        with torch.no_grad():
            pixels, _ = cameras.project((bary.unsqueeze(-1) * model.forward()[ids]).sum(-2))
        return float(((pixels - detected) ** 2).sum(-1).mean().sqrt())

    before = pixel_rms()
    # rigid (cameras) -> coarse bones, as a photo fit runs: with every bone free, the lips and the chin would
    # share the jaw's motion between them (the landmarks fit as well; the rotation would not be the jaw's)
    stages = [Stage(name="cameras", groups=("cameras",), losses={"landmarks_2d": 1.0}, iterations=150, learning_rate=0.01),
              Stage(name="coarse", groups=("pose", "cameras"), losses={"landmarks_2d": 1.0, "pose_prior": 1e-4}, iterations=400,
                    learning_rate=0.005, patience=60, bones=("neck", "head", "jaw"))]
    result = fit(model, targets, stages, cameras=cameras)
    after = pixel_rms()
    assert before > 3.0 and after < 0.35 * before, (before, after)
    with torch.no_grad():
        fitted_jaw = np.degrees(float(model.pose.masked(model.free).rotvec[jaw, 0]))
    assert -16.0 < fitted_jaw < -7.0, fitted_jaw  # the truth: -12 degrees
    assert result.history[-1]["landmarks_2d"] < result.history[0]["landmarks_2d"]
    with pytest.raises(ASMInputError, match="no cameras were given"):
        fit(model, targets, stages)


def test_camera_centres_sit_at_depth_zero_and_one_camera_is_its_slice():
    from tests.synthetic_cameras import camera_set

    rotvec, translation, focal, size = camera_set(np.array([0.1, 0.2, 0.3]), 5.0)
    cameras = Cameras.from_arrays(rotvec, translation, focal, size)
    centres = cameras.centres()
    for v in range(len(focal)):
        _, depth = cameras.one(v).project(centres[v:v + 1])
        assert abs(float(depth[0, 0])) < 1e-9
    assert torch.equal(cameras.one(1).translation[0], cameras.translation[1])
