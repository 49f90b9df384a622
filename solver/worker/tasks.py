"""The worker's tasks: name (asm_protocol.tasks) -> function(inputs, settings, progress, job_dir) -> result arrays.

Each function turns a job's arrays and settings into calls of the solver's layers and their results back into
arrays (the keys: asm_protocol.keys, and each function's docstring). `progress(stage, fraction, loss=None)` raises
Cancelled when the client asked to stop: a cancelled job is an error, never a half-done result. A result's
"warnings" (a list of str) reach the user.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from asm_protocol import tasks as names
from asm_protocol.keys import (BASE_POSE_KEYS, EXPRESSION_POSE_KEYS, FIT_POSE_KEYS, PHOTO_POSE_KEYS,
                               RIG_PARAMETER_KEYS)
from asm_protocol.landmarks import LANDMARK_COUNT

from ..fit.expression_poses import LibraryFitSettings, fit_library_poses
from ..fit.photo_fit import PhotoFitSettings, PhotoObservations, fit_to_photos
from ..fit.scan_fit import ScanFitSettings, compare_surfaces, fit_to_scan, prepare_scan
from ..model import ASMModel, Pose
from ..rig.generate import GenerateSettings, generate_rig, place_rig, restore_model, rig_arrays
from ..rig.geometry_landmarks import landmarks_from_geometry
from ..template.canonical import canonical_face
from ..vision.detector import face_when_turned, looks_upside_down, prepare_detector
from ..vision.face_models import model
from ..vision.model_files import MODEL_FILES, MissingModelError
from ..vision.photos import MAX_WORKING_SIDE, detect_photo, load_photo
from .checks import refuse_several_heads

WORKER_MODULES = ("numpy", "torch", "scipy", "cv2", "ai_edge_litert", "PIL")


def _mesh(inputs: dict) -> tuple:
    """The head's arrays as the rig functions take them: vertices, triangles, corner UVs, landmarks, valid."""
    return (inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"), inputs["landmarks"],
            inputs["landmark_valid"].astype(bool))


DETECTION_SHARE = 0.1  # of a photo fit's progress, when it finds the landmarks itself


def _share(progress, start: float, end: float):
    """progress(stage, fraction, loss) reporting its fraction within [start, end] of the caller's."""
    return lambda stage, fraction, loss=None: progress(stage, start + (end - start) * fraction, loss)


def _step_counter(progress, total_steps: int):
    """A fit's progress(stage, step, loss) -> False that reports the share of all steps done."""
    done = {"steps": 0}

    def report(stage: str, step: int, loss: float) -> bool:
        done["steps"] += 1
        progress(f"fit {stage}", min(done["steps"] / total_steps, 1.0), loss)
        return False

    return report


def _pose_arrays(prefix_keys: tuple[str, str, str], pose: Pose) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {key: value.double().numpy() for key, value in zip(prefix_keys, (pose.log_scale, pose.rotvec,
                                                                                 pose.translation))}


def _fitted_rig(model: ASMModel, chart_kind: str) -> dict:
    """The fitted rig as scene arrays (solver.rig.generate.rig_arrays), its pose ("fit_*") and surface."""
    arrays = rig_arrays(model, chart_kind)
    arrays.update(_pose_arrays(FIT_POSE_KEYS, model.pose.masked(model.free)))
    with torch.no_grad():
        arrays["fit_vertices"] = model.forward().double().numpy()
    return arrays


def _history(result) -> dict:
    return {"history_total": np.array([h["total"] for h in result.history]),
            "history_stage": np.array([h["stage"] for h in result.history])}


def generate(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """A new rig on the mesh (solver.rig.generate.generate_rig): every array the scene needs. A mesh with several
    heads is refused first (checks.refuse_several_heads)."""
    vertices, triangles, _uv, landmarks, valid = mesh = _mesh(inputs)
    refuse_several_heads(vertices, triangles, landmarks, valid)
    return generate_rig(*mesh, GenerateSettings(**settings), progress)


def rebake(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """The rig as it stands in the scene (settings "generate", "names"; its edited parameters in `inputs`, keys
    RIG_PARAMETER_KEYS) baked again: new weights and rest matrices."""
    model, chart_kind = restore_model(*_mesh(inputs), GenerateSettings(**settings.get("generate", {})),
                                      settings.get("names", []),
                                      {key: inputs[key] for key in RIG_PARAMETER_KEYS if key in inputs}, progress)
    progress("weights", 0.8)
    return rig_arrays(model, chart_kind)


def expressions(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """The ARKit-52 expressions (settings["expressions"]: these names only) as bone poses of the rig as it stands
    (inputs and settings as "rebake"), starting from the pose BASE_POSE_KEYS when given (else the rest pose):
    solver.fit.expression_poses.fit_library_poses. Returns "expression_names" (E,), each expression's whole pose
    (EXPRESSION_POSE_KEYS, (E, J, 3)), the weighted RMS of its target offsets and of the posed rig's distance to them
    ("expression_own_rms", "expression_rms", (E,) mesh units), the rig's names and rest matrices ("names", "bind")
    and the seconds."""
    mesh = _mesh(inputs)
    model, _chart = restore_model(*mesh, GenerateSettings(**settings.get("generate", {})), settings.get("names", []),
                                  {key: inputs[key] for key in RIG_PARAMETER_KEYS if key in inputs})
    base = None
    if all(key in inputs for key in BASE_POSE_KEYS):
        base = Pose(*(torch.as_tensor(inputs[key], dtype=model.vertices.dtype) for key in BASE_POSE_KEYS))
    fit_settings = LibraryFitSettings(expressions=tuple(settings.get("expressions", ())))
    poses = fit_library_poses(model, mesh[3], mesh[4], fit_settings, base, progress=progress)
    with torch.no_grad():
        bind = model.bind().double().numpy()
    return {"expression_names": np.array(poses.names),
            **dict(zip(EXPRESSION_POSE_KEYS, (poses.log_scale, poses.rotvec, poses.translation))),
            "expression_rms": poses.rms, "expression_own_rms": poses.own_rms, "names": np.array(model.rig.names),
            "bind": bind, "seconds": np.array(poses.seconds), "warnings": []}


def geometry_landmarks(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """Landmarks from the shape: "vertices", "triangles", "forward", "up" (one frame) -> "points", "valid"."""
    points, valid = landmarks_from_geometry(inputs["vertices"], inputs["triangles"], inputs["forward"], inputs["up"])
    return {"points": points, "valid": valid}


def _load_photos(paths: list[str], max_side: int | None = None) -> list:
    return [load_photo(path, max_side or MAX_WORKING_SIDE) for path in paths]


def detect_in_photos(photos: list, progress, renders: bool = False) -> dict:
    """The face's landmarks on each photo (solver.vision.photos.Photo, loaded upright): points (V, 478, 2) in the
    photo's original pixels (NaN where no face), found (V,) bool, faces_found (V,) int, image_size (V, 2) width,
    height as the user sees the photo, focal_px (V,) from EXIF (NaN where absent), upside_down (V,) bool and
    warnings (downscaled photos, several faces, no face). renders: the images are renders of one head (see
    asm_protocol.settings.detect_job): no search for small faces; upside_down says whether the face stands upside
    down (always False for photos): the face detector scores the render turned by 180 degrees higher, or, where no
    face was found, the render turned shows one (the landmark model can reject a face upside down)."""
    points = np.full((len(photos), LANDMARK_COUNT, 2), np.nan)
    found = np.zeros(len(photos), dtype=bool)
    faces_found = np.zeros(len(photos), dtype=np.int64)
    upside_down = np.zeros(len(photos), dtype=bool)
    sizes = np.zeros((len(photos), 2))
    focal = np.full(len(photos), np.nan)
    notes: list[str] = []
    for index, photo in enumerate(photos):
        progress("landmarks", index / max(len(photos), 1))
        detection = detect_photo(photo, small_faces=not renders)
        points[index], found[index], faces_found[index] = detection.landmarks, detection.found, detection.faces_found
        upside_down[index] = renders and (looks_upside_down(photo.rgb) if detection.found
                                          else face_when_turned(photo.rgb))
        sizes[index] = photo.original_size
        focal[index] = np.nan if photo.focal_px is None else photo.focal_px
        notes += photo.notes + detection.notes
    progress("landmarks", 1.0)
    return {"points": points, "found": found, "faces_found": faces_found, "image_size": sizes, "focal_px": focal,
            "upside_down": upside_down, "warnings": notes}


def detect(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """`detect_in_photos` of the image files settings["images"], each read at most settings["max_side"] pixels
    wide and high (the points are still in the files' own pixels), settings["renders"] as there."""
    return detect_in_photos(_load_photos(settings.get("images", []), settings.get("max_side")), progress,
                            settings.get("renders", False))


def upright_copies(photos: list, folder: Path) -> np.ndarray:
    """(V,) str: for each photo stored sideways or flipped (EXIF orientation), an upright PNG copy written into
    `folder` (Blender shows images as stored, so a camera's background needs it); "" for photos stored upright."""
    import cv2

    copies = []
    for index, photo in enumerate(photos):
        if photo.orientation == 1:
            copies.append("")
            continue
        copy = Path(folder) / f"upright_{index}_{photo.path.stem}.png"
        cv2.imwrite(str(copy), np.ascontiguousarray(photo.rgb[..., ::-1]))
        copies.append(str(copy))
    return np.array(copies)


def fit_photos(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """The rig as it stands in the scene (restore_model with the edited parameters in `inputs`, or as generated when
    there are none) fitted to the photos settings["images"] (their landmarks are found here unless `inputs` holds
    "detections", "found", "image_size"). Returns the fitted rig as scene arrays plus its pose ("fit_*"), each
    photo's own pose with its expression ("photo_*", (V, J, 3)), the cameras ("camera_*"), each photo's landmark
    error in pixels and the upright copies of photos stored sideways."""
    photos = _load_photos(settings.get("images", []))  # once: landmarks, colours and upright copies
    detection_notes = []
    if "detections" not in inputs:
        found = detect_in_photos(photos, _share(progress, 0.0, DETECTION_SHARE))
        progress = _share(progress, DETECTION_SHARE, 1.0)  # the fit's steps after it: its fraction goes on
        inputs = {**inputs, "detections": found["points"], "found": found["found"], "image_size": found["image_size"],
                  "exif_focal": found["focal_px"]}
        detection_notes = found["warnings"]
    fit_settings = PhotoFitSettings(**settings.get("fit", {}))
    rig_settings = GenerateSettings(**settings.get("generate", {}))
    mesh = _mesh(inputs)
    edited = {key: inputs[key] for key in RIG_PARAMETER_KEYS if key in inputs}
    if edited:
        model, chart_kind = restore_model(*mesh, rig_settings, settings.get("names", []), edited)
    else:
        rig, chart_kind = place_rig(*mesh, rig_settings)
        model = ASMModel(rig, inputs["vertices"], inputs["triangles"], rig_settings.weight_config())
    views = len(inputs["detections"])
    with_pixels = bool(photos) and views >= 2 and fit_settings.photometric > 0
    observations = PhotoObservations(
        inputs["detections"], inputs["found"].astype(bool), inputs["image_size"],
        names=[p.name for p in photos] or None, images=[p.rgb for p in photos] if with_pixels else None,
        image_scale=[p.scale for p in photos] if with_pixels else None, exif_focal=inputs.get("exif_focal"))
    stages = fit_settings.stages(model.rig.names, views, with_pixels)
    report = _step_counter(progress, sum(stage.iterations for stage in stages))
    fitted = fit_to_photos(model, inputs["landmarks"], mesh[4], observations, fit_settings, report)
    arrays = _fitted_rig(model, chart_kind)
    pose = model.pose.masked(model.free)
    per_photo = (fitted.expressions.poses(model.pose, model.free) if fitted.expressions is not None else
                 Pose(*(t.expand(views, *t.shape) for t in (pose.log_scale, pose.rotvec, pose.translation))))
    arrays.update(_pose_arrays(PHOTO_POSE_KEYS, per_photo.masked(model.free)))
    arrays.update(fitted.cameras.as_arrays())
    arrays.update({"pixel_error_before": fitted.pixel_error_before, "pixel_error_after": fitted.pixel_error_after,
                   **_history(fitted.result), "landmark_ids": fitted.landmark_ids,
                   "landmarks_detected_px": fitted.detected_px, "landmarks_fitted_px": fitted.fitted_px,
                   "landmarks_used": fitted.used, "seconds": np.array(fitted.seconds),
                   "stage_seconds": np.array(json.dumps(fitted.stage_seconds)),
                   "dense_matches": np.array(json.dumps({f"{a + 1}-{b + 1}": n
                                                         for (a, b), n in fitted.dense_matches.items()})),
                   "upright_photos": upright_copies(photos, job_dir)})
    arrays["warnings"] = detection_notes + list(arrays["warnings"]) + fitted.notes
    return arrays


def _scan(inputs: dict, samples: int = 0, seed: int = 0):
    return prepare_scan(inputs["scan_vertices"], inputs["scan_triangles"], inputs["scan_landmarks"],
                        inputs["scan_landmark_valid"].astype(bool), "the scan", samples, seed)


def fit_scan(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """Place the rig on the mesh (as "generate" does), fit it to the scan ("scan_*") and return the fitted rig as
    scene arrays plus the fitted pose ("fit_*"), the scan-to-rig similarity ("alignment_*", and "start_*" where
    the fit began), per-scan-vertex errors before and after, and the loss history."""
    fit_settings = ScanFitSettings(**settings.get("fit", {}))
    rig_settings = GenerateSettings(**settings.get("generate", {}))
    rig, chart_kind = place_rig(*_mesh(inputs), rig_settings)
    scan = _scan(inputs, fit_settings.surface_samples, fit_settings.seed)
    model = ASMModel(rig, inputs["vertices"], inputs["triangles"], rig_settings.weight_config())
    report = _step_counter(progress, sum(stage.iterations for stage in fit_settings.stages(rig.names)))
    fitted = fit_to_scan(model, inputs["landmarks"], inputs["landmark_valid"].astype(bool), scan, fit_settings,
                         report)
    arrays = _fitted_rig(model, chart_kind)
    arrays.update({
        "alignment_scale": np.array(fitted.alignment.scale), "alignment_rotation": fitted.alignment.rotation,
        "alignment_translation": fitted.alignment.translation,
        "start_scale": np.array(fitted.start.scale), "start_rotation": fitted.start.rotation,
        "start_translation": fitted.start.translation,
        "error_before": fitted.error_before, "error_after": fitted.error_after, "in_crop": fitted.in_crop,
        **_history(fitted.fit), "seconds": np.array(fitted.seconds), "turned": np.array(fitted.turned),
    })
    arrays["warnings"] = list(arrays["warnings"]) + fitted.fit.notes
    return arrays


def compare_to_scan(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """Surfaces "surfaces" (K, N, 3) of one rig mesh ("triangles", its surface landmarks at rest "landmarks",
    "landmark_valid") against a scan ("scan_*"): solver.fit.scan_fit.compare_surfaces."""
    return compare_surfaces(inputs["surfaces"], inputs["triangles"], inputs["landmarks"], inputs["landmark_valid"],
                            _scan(inputs))


def environment(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """Where this worker's packages come from (for the add-on's checks and the install test): modules (M,) str,
    files (M,) str, versions (M,) str, python (the interpreter); every face model is loaded by LiteRT too (the
    files the zip carries, and the runtime's own libraries)."""
    files, versions = [], []
    for name in WORKER_MODULES:
        module = importlib.import_module(name)
        files.append(str(Path(module.__file__).resolve()))
        versions.append(str(getattr(module, "__version__", "")))
    for name in MODEL_FILES:
        model(name)
    return {"modules": np.array(WORKER_MODULES), "files": np.array(files), "versions": np.array(versions),
            "python": np.array(sys.executable), "warnings": []}


def warm_up(inputs: dict, settings: dict, progress, job_dir: Path) -> dict:
    """Read the solver's data and load the landmark detector once, so that the first Generate of a session does not
    wait for them. `loaded` (M,) str names what loaded; a part that cannot load is left to the job that needs it,
    which reports it (a missing package or model file)."""
    canonical_face()
    loaded = ["solver"]
    try:
        prepare_detector()
        loaded.append("detector")
    except (ImportError, MissingModelError):
        pass
    return {"loaded": np.array(loaded), "warnings": []}


TASKS = {names.GENERATE: generate, names.REBAKE: rebake, names.GEOMETRY_LANDMARKS: geometry_landmarks,
         names.DETECT: detect, names.FIT_PHOTOS: fit_photos, names.FIT_SCAN: fit_scan,
         names.COMPARE_TO_SCAN: compare_to_scan, names.ENVIRONMENT: environment, names.WARM_UP: warm_up,
         names.EXPRESSIONS: expressions}
