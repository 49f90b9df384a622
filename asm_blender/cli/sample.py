"""`sample`: the main job on the bundled sample head (a checkout only: the samples are not in the extension). The
rig built and posed (out/sample_rig_poses.png: each named pose whole and close up on the mouth and eyes), fitted
to the bundled Fran scan (out/sample_fit.png) and to the bundled photos of Lee Perry-Smith (sample_photo_fit.py), all saved in out/sample_rig.blend."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .. import jobs
from ..protocol import choices, landmarks as landmark_files, settings, tasks
from ..scene_io import armature as armature_io
from ..scene_io.mesh import mesh_arrays
from ..scene_io.preview import write_error_colours, write_weight_preview
from ..scene_io.rig import apply_rig
from ..scene_io.sample import import_obj
from ..scene_io.views import pose_views, render_views, tile_images
from .common import PYTHON_PROG, addon_registered, log, report, stdout_to_stderr
from .generate import rig_arguments
from .sample_photo_fit import fit_sample_to_photos

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "samples" / "makehuman_head"
SAMPLE_MESH = SAMPLE_DIR / "base_head.obj"
SCAN_DIR = ROOT / "samples" / "fran_scan"
SCAN_MESH = SCAN_DIR / "fran_cut.obj"
ERROR_LIMIT_MM = 4.0  # the error colours saturate here


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} sample") -> int:
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Build the ASM rig on the bundled sample head and show it posed.")
    parser.add_argument("--output", "-o", type=Path, default=Path("out"), help="output folder (default: out)")
    rig_arguments(parser)
    parser.add_argument("--fit", choices=(*choices.QUALITIES, "none"), default="fast",
                        help="fit the rig to the bundled Fran scan and to the bundled photos of Lee Perry-Smith at "
                             "this quality (none: skip; default: fast)")
    parser.add_argument("--skip-photos", action="store_true",
                        help="leave out the photo fit (it needs the worker's OpenCV and LiteRT)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    with stdout_to_stderr(), addon_registered():  # registered: the bones get their editable ASM parameters
        summary = _build_sample(args, started)
    return report(summary, args.json,
                   f"done: {summary['bones']} bones, {summary['vertex_groups']} vertex groups, {summary['seconds']} s")


def _build_sample(args, started: float) -> dict:
    bpy.ops.wm.read_homefile(use_empty=True)
    log(f"importing {SAMPLE_MESH.name}")
    head = import_obj(SAMPLE_MESH)
    head.name = "Head"
    arrays = mesh_arrays(head)
    landmarks, valid = landmark_files.load_landmarks(SAMPLE_DIR / "landmarks.json")
    log(f"generating the {args.preset} rig ({int(valid.sum())} landmarks, {len(arrays.vertices)} vertices)")
    result = jobs.run_blocking(tasks.GENERATE, settings.generate_settings(args.preset, args.cap), {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": landmarks, "landmark_valid": valid})
    for warning in result["warnings"]:
        log(f"  note: {warning}")
    arm = apply_rig(head, result, name="Head_ASM")
    names = [str(n) for n in result["names"]]
    with tempfile.TemporaryDirectory() as tmp:
        columns = []  # per pose: front, 35 degrees, mouth and eyes close up
        for p, pose_name in enumerate(result["pose_names"]):
            armature_io.set_pose(arm, names, result["pose_log_scale"][p], result["pose_rotvec"][p],
                                 result["pose_translation"][p])
            columns.append(pose_views(head, arm, Path(tmp) / f"pose{p}", label=str(pose_name)))
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
        write_weight_preview(head, armature_io.read_weights(head, names), int(result["remainder_bone"]))
        columns.append(pose_views(head, arm, Path(tmp) / "weights", label="weights", colour_attribute=True))
        picture = tile_images([list(row) for row in zip(*columns)], (args.output / "sample_rig_poses.png").resolve())
    log(f"wrote {picture}")
    fitted = None if args.fit == "none" else _fit_sample_to_scan(args, head, arrays, landmarks, valid)
    photo_fit = None
    if args.fit != "none" and not args.skip_photos:
        photo_fit = fit_sample_to_photos(args.output, SAMPLE_MESH, head, arrays, landmarks, valid, args.preset, args.cap,
                                         args.fit, log)
    blend_path = (args.output / "sample_rig.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))
    log(f"wrote {blend_path}")
    summary = {
        "blend": str(blend_path), "picture": str(picture), "bones": len(names),
        "vertex_groups": len(head.get(armature_io.GROUPS_PROPERTY, [])), "vertices": len(arrays.vertices),
        "landmarks": int(valid.sum()), "preset": args.preset, "influence_cap": args.cap,
        "warnings": result["warnings"], "seconds": round(time.perf_counter() - started, 2),
    }
    if fitted is not None:
        summary["fit"] = fitted
    if photo_fit is not None:
        summary["photo_fit"] = photo_fit
    return summary


def _fit_sample_to_scan(args, head, arrays, landmarks, valid) -> dict:
    """Fit the sample rig to the bundled Fran scan in the worker, write the fitted rig onto a second copy of
    the head (beside the first) with the scan aligned onto it, and picture the error before and after."""
    scan = import_obj(SCAN_MESH)
    scan.name = "Fran scan"
    scan_arrays = mesh_arrays(scan)
    scan_landmarks, scan_valid = landmark_files.load_landmarks(SCAN_DIR / "landmarks.json")
    log(f"fitting the rig to {SCAN_MESH.name} ({len(scan_arrays.vertices)} vertices, quality {args.fit})")
    result = jobs.run_blocking(tasks.FIT_SCAN, settings.scan_fit_job(settings.generate_settings(args.preset, args.cap),
                                                                     settings.scan_fit_settings(args.fit)), {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": landmarks, "landmark_valid": valid, "scan_vertices": scan_arrays.vertices,
        "scan_triangles": scan_arrays.triangles, "scan_landmarks": scan_landmarks, "scan_landmark_valid": scan_valid})
    for warning in result["warnings"]:
        log(f"  note: {warning}")
    # The fitted copy stands beside the sample, one and a half head widths to its left.
    world = np.array(head.matrix_world)
    width = float(np.ptp(arrays.vertices @ world[:3, :3].T[:, 0]))
    offset = Matrix.Translation((1.5 * width, 0.0, 0.0))
    fitted_head = import_obj(SAMPLE_MESH)
    fitted_head.name = "Head fitted to scan"
    fitted_head.matrix_world = offset @ head.matrix_world
    arm = apply_rig(fitted_head, result, name="Head fitted to scan_ASM")
    names = [str(n) for n in result["names"]]
    armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    exactness = float(np.abs(armature_io.evaluated_vertices(fitted_head) - result["fit_vertices"]).max())
    to_head = np.eye(4)
    to_head[:3, :3] = float(result["alignment_scale"]) * result["alignment_rotation"]
    to_head[:3, 3] = result["alignment_translation"]
    scan.matrix_world = fitted_head.matrix_world @ Matrix([list(r) for r in to_head])
    in_crop = result["in_crop"].astype(bool)
    mm = {k: result[k] * 1000.0 for k in ("error_before", "error_after")}  # the scan is in metres
    rms = {k: float(np.sqrt((v[in_crop] ** 2).mean())) for k, v in mm.items()}
    with tempfile.TemporaryDirectory() as tmp:
        columns = []
        for key, title in (("error_before", "unfitted"), ("error_after", "fitted")):
            write_error_colours(scan, mm[key], ERROR_LIMIT_MM)
            label = f"scan to {title} rig: RMS {rms[key]:.2f} mm (blue 0, red {ERROR_LIMIT_MM:g}+ mm)"
            views = render_views(scan, Path(tmp) / key, yaw_degrees=(0.0, 35.0), size=384, label=label,
                                 colour_attribute=True)
            columns.append([v.image_path for v in views])
        write_error_colours(scan, mm["error_after"], ERROR_LIMIT_MM)  # what the saved file shows
        views = render_views(fitted_head, Path(tmp) / "fitted", yaw_degrees=(0.0, 35.0), size=384, extra_objects=(arm,),
                             label="fitted rig (pose + weights + bindings)")
        columns.append([v.image_path for v in views])
        picture = tile_images([list(row) for row in zip(*columns)], (args.output / "sample_fit.png").resolve())
    log(f"scan RMS within {result['in_crop'].sum()} cropped scan vertices: {rms['error_before']:.2f} mm unfitted, "
         f"{rms['error_after']:.2f} mm fitted ({float(result['seconds']):.0f} s); wrote {picture}")
    return {"scan": SCAN_MESH.name, "quality": args.fit, "rms_before_mm": round(rms["error_before"], 3),
            "rms_after_mm": round(rms["error_after"], 3), "cropped_scan_vertices": int(in_crop.sum()),
            "face_triangles_turned_over_60_degrees": round(float(result["turned"]), 4),
            "seconds": round(float(result["seconds"]), 1), "picture": str(picture),
            "blender_vs_solver_max_difference": exactness, "notes": result["warnings"]}
