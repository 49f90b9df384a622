"""Fit a rig to photos as steps (like generate_flow): check the photos, run the solver's "fit_photos" job
(landmarks in every photo, cameras, fit), then write the fitted rig, its pose and one camera per photo.

    summary = run_to_completion(fit_steps(armature, [Path("front.jpg"), ...], quality="balanced"))

Nothing in the scene changes before the last step.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Generator

import bpy
import numpy as np

from . import jobs, rebake
from .generate_flow import Status, Step
from .scene_io import armature as armature_io
from .scene_io.cameras import add_photo_camera
from .scene_io.mesh import SceneInputError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
CAMERA_PROPERTY = "asm_photo"  # on each photo camera: the photo's path


def collect_photos(paths) -> list[Path]:
    """Photo files from files and folders (a folder's images in name order); a clear error for anything else."""
    photos: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            photos += sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif not path.is_file():
            raise SceneInputError(f"photo not found: {path}")
        elif path.suffix.lower() not in PHOTO_SUFFIXES:
            raise SceneInputError(f"{path.name}: not a photo this fit reads ({', '.join(PHOTO_SUFFIXES)})")
        else:
            photos.append(path)
    if not photos:
        raise SceneInputError("no photos to fit: give image files or a folder of them")
    return photos


def fit_steps(arm: bpy.types.Object, photos: list[Path], quality: str = "balanced") -> Generator[Step, None, dict]:
    started = time.perf_counter()
    photos = collect_photos(photos)
    yield Status(f"fitting {arm.name!r} to {len(photos)} photo(s)", 0.02)
    settings, inputs = rebake.rig_job_inputs(arm)
    job = jobs.Job("fit_photos", {**settings, "fit": {"quality": quality},
                                  "images": [str(p.resolve()) for p in photos]}, inputs).start()
    yield job
    result = job.result()
    yield Status("writing the fitted rig and the cameras", 0.97)
    mesh_obj = rebake.mesh_of(arm)
    rebake.apply_rebake(arm, result)
    names = [str(n) for n in result["names"]]
    armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    cameras = []
    for index, photo in enumerate(photos):
        camera = add_photo_camera(mesh_obj, f"{mesh_obj.name} photo {index + 1}", result["camera_rotvec"][index],
                                  result["camera_translation"][index], float(result["camera_focal"][index]),
                                  result["camera_image_size"][index], photo)
        camera[CAMERA_PROPERTY] = str(photo)
        cameras.append(camera.name)
    return {
        "armature": arm.name, "mesh": mesh_obj.name, "photos": [str(p) for p in photos], "cameras": cameras,
        "focal_pixels": [round(float(f), 1) for f in result["camera_focal"]],
        "pixel_error_before": [round(float(e), 2) for e in result["pixel_error_before"]],
        "pixel_error_after": [round(float(e), 2) for e in result["pixel_error_after"]],
        "quality": quality, "warnings": list(result["warnings"]),
        "fit_seconds": round(float(result["seconds"]), 1), "seconds": round(time.perf_counter() - started, 1),
        "max_blender_vs_solver": float(np.abs(armature_io.evaluated_vertices(mesh_obj)
                                              - result["fit_vertices"]).max()),
    }
