"""The main job's photo fit: the sample rig fitted to the bundled Cycles photos of the Lee Perry-Smith scan
(samples/lps_photos, another person and mesh), written beside the sample with one camera per photo (the photo as
its background) and the scan aligned onto it, coloured by its distance.

Pictures: out/sample_photo_fit.png (each photo with the fitted head drawn over it through its solved camera,
detected landmarks green, fitted red, the landmark error in the label) and the scan's error before and after.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from mathutils import Matrix

from .. import jobs
from ..protocol import landmarks as landmark_files, settings, tasks
from ..scene_io import armature as armature_io
from ..scene_io.cameras import add_photo_camera
from ..scene_io.importers import open_head
from ..scene_io.mesh import mesh_arrays
from ..scene_io.overlay import render_photo_overlay
from ..scene_io.preview import write_error_colours
from ..scene_io.rig import apply_rig
from ..scene_io.sample import import_obj
from ..scene_io.views import render_views, tile_images

ROOT = Path(__file__).resolve().parents[2]
PHOTO_DIR = ROOT / "samples" / "lps_photos"
SCAN_DIR = ROOT / "samples" / "lee_perry_smith"
SCAN_MESH = SCAN_DIR / "LeePerrySmith.glb"
MM_PER_UNIT = 100.0  # the sample head is in decimetres
ERROR_LIMIT_MM = 4.0
GLTF_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # Blender's glTF import: (x, -z, y)


def fit_sample_to_photos(output: Path, mesh_path: Path, head, arrays, landmarks: np.ndarray, valid: np.ndarray,
                         preset: str, cap: int, quality: str, log) -> dict:
    """Fit the rig of `head` (imported from `mesh_path`) to the sample photos in the worker and write the result
    onto a second copy of the head beside it."""
    started = time.perf_counter()
    photos = sorted(PHOTO_DIR.glob("photo_*.jpg"))
    log(f"fitting the rig to {len(photos)} photos of another person ({PHOTO_DIR.name}, quality {quality})")
    result = jobs.run_blocking(tasks.FIT_PHOTOS, settings.photo_fit_job(
        settings.generate_settings(preset, cap), settings.photo_fit_settings(quality), photos), {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": np.nan_to_num(landmarks), "landmark_valid": valid})
    for warning in result["warnings"]:
        log(f"  note: {warning}")
    world = np.array(head.matrix_world)
    width = float(np.ptp(arrays.vertices @ world[:3, :3].T[:, 0]))
    fitted_head = import_obj(mesh_path)
    fitted_head.name = "Head fitted to photos"
    fitted_head.matrix_world = Matrix.Translation((-1.5 * width, 0.0, 0.0)) @ head.matrix_world
    arm = apply_rig(fitted_head, result, name="Head fitted to photos_ASM")
    names = [str(n) for n in result["names"]]
    used = result["landmarks_used"].astype(bool)
    detected, fitted = result["landmarks_detected_px"], result["landmarks_fitted_px"]
    views = []
    with tempfile.TemporaryDirectory(prefix="asm_sample_photos_") as tmp:
        overlays = []
        for index, photo in enumerate(photos):
            camera = add_photo_camera(fitted_head, f"Photo {index + 1} ({photo.name})",
                                      result["camera_rotvec"][index], result["camera_translation"][index],
                                      float(result["camera_focal"][index]), result["camera_image_size"][index], photo)
            armature_io.set_pose(arm, names, result["photo_log_scale"][index], result["photo_rotvec"][index],
                                 result["photo_translation"][index])
            face_width = float(np.nanmax(np.ptp(detected[index][:, 0][np.isfinite(detected[index][:, 0])])))
            error = float(result["pixel_error_after"][index])
            label = (f"{photo.name}: landmark error {error:.1f} px = {100 * error / face_width:.1f} % of the face width "
                     f"(green detected, red fitted); focal {float(result['camera_focal'][index]):.0f} px")
            overlays.append(render_photo_overlay(camera, photo, Path(tmp) / f"overlay_{index}.png", (fitted_head, arm),
                                                 label, np.where(used[index][:, None], detected[index], np.nan),
                                                 np.where(used[index][:, None], fitted[index], np.nan), max_side=480))
            views.append({"photo": photo.name, "camera": camera.name, "landmark_error_px": round(error, 2),
                          "landmark_error_of_face_width": round(error / face_width, 4),
                          "focal_px": round(float(result["camera_focal"][index]), 1)})
        armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
        picture = tile_images([overlays], (output / "sample_photo_fit.png").resolve())
    exactness = float(np.abs(armature_io.evaluated_vertices(fitted_head) - result["fit_vertices"]).max())
    log(f"wrote {picture}")
    comparison = _compare_with_scan(output, fitted_head, arrays, landmarks, valid, result, log)
    return {"photos": [p.name for p in photos], "quality": quality, "views": views, "picture": str(picture),
            "stage_seconds": json.loads(str(result["stage_seconds"])),
            "dense_matches": json.loads(str(result["dense_matches"])) if "dense_matches" in result else {},
            "fit_seconds": round(float(result["seconds"]), 1), "seconds": round(time.perf_counter() - started, 1),
            "blender_vs_solver_max_difference": exactness, **comparison, "notes": list(result["warnings"])}


def _compare_with_scan(output: Path, fitted_head, arrays, landmarks, valid, result, log) -> dict:
    """The unfitted and the fitted surface against the Lee Perry-Smith scan (worker task "compare_to_scan"); the
    scan is placed onto the fitted head and coloured by its distance to it."""
    scan, _ = open_head(SCAN_MESH)
    scan.name = "Lee Perry-Smith scan (photographed)"
    scan_arrays = mesh_arrays(scan)
    scan_landmarks, scan_valid = landmark_files.load_landmarks(SCAN_DIR / "landmarks.json")
    scan_landmarks = scan_landmarks @ GLTF_TO_BLENDER.T  # glTF file coordinates -> the imported object's
    compared = jobs.run_blocking(tasks.COMPARE_TO_SCAN, {}, {
        "surfaces": np.stack([arrays.vertices, result["fit_vertices"]]), "triangles": arrays.triangles,
        "landmarks": np.nan_to_num(landmarks), "landmark_valid": valid, "scan_vertices": scan_arrays.vertices,
        "scan_triangles": scan_arrays.triangles, "scan_landmarks": np.nan_to_num(scan_landmarks),
        "scan_landmark_valid": scan_valid})
    to_head = np.eye(4)
    to_head[:3, :3] = float(compared["alignment_scale"][1]) * compared["alignment_rotation"][1]
    to_head[:3, 3] = compared["alignment_translation"][1]
    scan.matrix_world = fitted_head.matrix_world @ Matrix([list(r) for r in to_head])
    millimetres = compared["distance"] * MM_PER_UNIT
    rms = compared["rms"] * MM_PER_UNIT
    with tempfile.TemporaryDirectory(prefix="asm_sample_scan_") as tmp:
        columns = []
        for index, title in enumerate(("unfitted", "photo-fitted")):
            write_error_colours(scan, millimetres[index], ERROR_LIMIT_MM)
            label = f"scan to {title} rig: RMS {rms[index]:.2f} mm (blue 0, red {ERROR_LIMIT_MM:g}+ mm)"
            views = render_views(scan, Path(tmp) / title, yaw_degrees=(0.0, 35.0), size=384, label=label,
                                 colour_attribute=True)
            columns.append([v.image_path for v in views])
        picture = tile_images([list(row) for row in zip(*columns)], (output / "sample_photo_fit_scan.png").resolve())
    log(f"Lee Perry-Smith scan RMS within 95 mm of the nose tip: {rms[0]:.2f} mm unfitted, {rms[1]:.2f} mm fitted "
        f"to the photos (60 mm: {compared['rms_tight'][0] * MM_PER_UNIT:.2f} -> "
        f"{compared['rms_tight'][1] * MM_PER_UNIT:.2f}); wrote {picture}")
    return {"scan": SCAN_MESH.name, "scan_rms_95_mm": [round(float(v), 3) for v in rms],
            "scan_rms_60_mm": [round(float(v) * MM_PER_UNIT, 3) for v in compared["rms_tight"]],
            "scan_landmark_nme": [round(float(v), 4) for v in compared["nme"]], "scan_picture": str(picture),
            "rows": ["unfitted", "fitted"]}
