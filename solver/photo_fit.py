"""Fit a rig and the cameras to uncalibrated photos of a person from their 2D landmarks (ASM.md §8).

    fitted = fit_to_photos(model, rig_landmarks, rig_valid, detections, found, image_sizes, PhotoFitSettings())

Each photo's camera starts from PnP of its detected landmarks against the rig's landmark points, with a search
over focal lengths; then stages move the cameras alone, the big bones with them, and finally every group of the
rig (identity shared by all photos). Landmarks only, so far: the photometric and silhouette terms come later.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .cameras import Cameras, solve_camera
from .errors import ASMInputError
from .fitting import ALL_GROUPS, FitResult, Stage, fit
from .geometry import closest_points_on_mesh
from .landmarks import SURFACE_LANDMARKS
from .model import ASMModel
from .skeleton import load_skeleton

QUALITY_STEPS = {"fast": (100, 200, 200), "balanced": (150, 300, 500), "best": (200, 500, 1000)}
EXPRESSION_MODES = ("shared", "per_photo")  # one pose for all photos, or each photo's own expression on top
MIN_PHOTO_LANDMARKS = 50


@dataclass(frozen=True)
class PhotoFitSettings:
    quality: str = "balanced"
    # Measured on synthetic photos of the posed sample rig (tests/solver/test_photo_fit.py): with the scan fit's
    # weights (0.003, 1e-3) the landmarks stayed 3.7 px off (fast), with none 1.0-1.5 px, with these 1.9-2.1 px
    # (fast) or 1.7-2.0 px (balanced).
    smoothness: float = 3e-4
    pose_prior: float = 1e-4
    expressions: str = "per_photo"
    seed: int = 0

    def __post_init__(self):
        if self.quality not in QUALITY_STEPS:
            raise ASMInputError(f"unknown quality {self.quality!r}; use one of {list(QUALITY_STEPS)}")
        if self.expressions not in EXPRESSION_MODES:
            raise ASMInputError(f"unknown expression handling {self.expressions!r}; use one of {list(EXPRESSION_MODES)}")

    def stages(self, bone_names) -> list[Stage]:
        cameras_steps, coarse_steps, refine_steps = QUALITY_STEPS[self.quality]
        big = tuple(name for name in load_skeleton("game").names if name in bone_names)
        priors = {name: weight for name, weight in (("pose_prior", self.pose_prior), ("smoothness", self.smoothness))
                  if weight > 0}
        return [
            Stage("cameras", ("cameras",), {"landmarks_2d": 1.0}, cameras_steps, 0.01, patience=40),
            Stage("coarse", ("pose", "cameras"), {"landmarks_2d": 1.0, **priors}, coarse_steps, 0.005, patience=60,
                  bones=big),
            Stage("refine", ALL_GROUPS + ("cameras",),
                  {"landmarks_2d": 1.0, **priors, "gaussian_size": 1e-3, "bind_offset_prior": 1e-5},
                  refine_steps, 0.003, patience=100, final_learning_rate=0.0003),
        ]


@dataclass
class PhotoFit:
    result: FitResult
    cameras: Cameras
    pixel_error_before: np.ndarray  # (V,) RMS landmark error per photo in pixels, after the camera start
    pixel_error_after: np.ndarray  # (V,)
    seconds: float
    notes: list[str] = field(default_factory=list)


def landmark_surface(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                     valid: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The rig's surface landmarks as (L,) MediaPipe indices, (L, 3) vertex ids and (L, 3) barycentrics."""
    which = np.flatnonzero(np.asarray(valid[:SURFACE_LANDMARKS], dtype=bool)
                           & np.isfinite(landmarks[:SURFACE_LANDMARKS]).all(1))
    _, triangle, bary, _ = closest_points_on_mesh(landmarks[which], vertices, triangles)
    return which, torch.as_tensor(triangles[triangle]), torch.as_tensor(bary)


def _pixel_rms(model: ASMModel, cameras: Cameras, ids, bary, detected, confidence) -> np.ndarray:
    with torch.no_grad():
        points = (bary.to(model.vertices.dtype).unsqueeze(-1) * model.forward()[ids]).sum(-2)
        pixels, _ = cameras.project(points)
        squared = ((pixels - detected.to(pixels.dtype)) ** 2).sum(-1) * confidence
        return torch.sqrt(squared.sum(-1) / confidence.sum(-1).clamp_min(1)).cpu().numpy()


def fit_to_photos(model: ASMModel, rig_landmarks: np.ndarray, rig_valid: np.ndarray, detections: np.ndarray,
                  found: np.ndarray, image_sizes: np.ndarray, settings: PhotoFitSettings = PhotoFitSettings(),
                  progress=None, photo_names: list[str] | None = None) -> PhotoFit:
    """Fit `model` (in place) and one camera per photo to the photos' landmarks.

    rig_landmarks (478, 3) on the rig's mesh, detections (V, 478, 2) pixels (NaN where missing), found (V,) bool
    (photos without a face are refused: the caller names them), image_sizes (V, 2) width, height."""
    started = time.perf_counter()
    detections = np.asarray(detections, dtype=float)
    found = np.asarray(found, dtype=bool)
    if len(detections) == 0:
        raise ASMInputError("no photos to fit")
    if not found.all():
        missing = [photo_names[i] if photo_names else int(i) for i in np.flatnonzero(~found)]
        raise ASMInputError(f"no face was found in photo(s) {missing}; remove or replace them")
    vertices = model.vertices.detach().double().cpu().numpy()
    triangles = model.triangles.cpu().numpy()
    which, ids, bary = landmark_surface(vertices, triangles, np.asarray(rig_landmarks, float), rig_valid)
    if len(which) < MIN_PHOTO_LANDMARKS:
        raise ASMInputError(f"only {len(which)} of the rig's landmarks lie on its mesh; regenerate the rig")
    detected = torch.as_tensor(detections[:, which])
    confidence = torch.isfinite(detected).all(-1).double()
    detected = torch.nan_to_num(detected)
    with torch.no_grad():
        rest_points = (bary.to(model.vertices.dtype).unsqueeze(-1) * model.forward()[ids]).sum(-2).double().numpy()
    starts = [solve_camera(rest_points, detections[v, which], image_sizes[v]) for v in range(len(detections))]
    cameras = Cameras.from_arrays([s["rotvec"] for s in starts], [s["translation"] for s in starts],
                                  [s["focal"] for s in starts], image_sizes)
    face_size = torch.as_tensor([float(np.nanmax(np.ptp(d[:, 0][np.isfinite(d[:, 0])]))) for d in detections[:, which]])
    targets = {"landmark_vertices": ids, "landmark_bary": bary.to(model.vertices.dtype), "landmarks_2d": detected,
               "landmark_confidence": confidence, "face_size_2d": face_size}
    before = _pixel_rms(model, cameras, ids, bary, detected, confidence)
    if settings.smoothness > 0:
        from .losses import uniform_laplacian

        targets["laplacian"] = uniform_laplacian(model.triangles, len(model.vertices), model.vertices.dtype)
    result = fit(model, targets, settings.stages(model.rig.names), progress=progress, seed=settings.seed,
                 cameras=cameras)
    after = _pixel_rms(model, cameras, ids, bary, detected, confidence)
    return PhotoFit(result, cameras, before, after, time.perf_counter() - started, list(result.notes))


def fit_photos_job(inputs: dict[str, np.ndarray], generate: dict, names: list[str], fit_settings: dict,
                   progress, photo_names: list[str] | None = None) -> dict:
    """The worker's "fit_photos" task: the rig as it stands in the scene (solver.generate.restore_model, with the
    edited parameters in `inputs`, or as generated when there are none), fitted to the photos' landmarks
    ("detections" (V, 478, 2), "found" (V,), "image_size" (V, 2)). Returns the fitted rig as scene arrays plus
    the fitted pose ("fit_*"), the cameras ("camera_*") and each photo's landmark error in pixels."""
    from .generate import EDITABLE, GenerateSettings, place_rig, restore_model, rig_arrays

    settings = PhotoFitSettings(**fit_settings)
    rig_settings = GenerateSettings(**generate)
    valid = inputs["landmark_valid"].astype(bool)
    edited = {key: inputs[key] for key in EDITABLE if key in inputs}
    if edited:
        model, chart_kind = restore_model(inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"),
                                          inputs["landmarks"], valid, rig_settings, names, edited)
    else:
        rig, chart_kind = place_rig(inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"),
                                    inputs["landmarks"], valid, rig_settings)
        model = ASMModel(rig, inputs["vertices"], inputs["triangles"], rig_settings.weight_config())
    total_steps = sum(stage.iterations for stage in settings.stages(model.rig.names))
    done = {"steps": 0}

    def report(stage: str, step: int, loss: float) -> bool:
        done["steps"] += 1
        progress(f"fit {stage}", min(done["steps"] / total_steps, 1.0), loss)
        return False

    fitted = fit_to_photos(model, inputs["landmarks"], valid, inputs["detections"], inputs["found"].astype(bool),
                           inputs["image_size"], settings, report, photo_names)
    arrays = rig_arrays(model, chart_kind)
    pose = model.pose.masked(model.free)
    with torch.no_grad():
        arrays.update({"fit_log_scale": pose.log_scale.double().numpy(), "fit_rotvec": pose.rotvec.double().numpy(),
                       "fit_translation": pose.translation.double().numpy(),
                       "fit_vertices": model.forward().double().numpy()})
    arrays.update(fitted.cameras.as_arrays())
    arrays.update({"pixel_error_before": fitted.pixel_error_before, "pixel_error_after": fitted.pixel_error_after,
                   "history_total": np.array([h["total"] for h in fitted.result.history]),
                   "history_stage": np.array([h["stage"] for h in fitted.result.history]),
                   "seconds": np.array(fitted.seconds)})
    arrays["warnings"] = list(arrays["warnings"]) + fitted.notes
    return arrays
