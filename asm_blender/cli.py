"""Headless commands. Each command is a plain function `argv -> exit code` so tests can call it directly.

    python -m asm_blender sample [--output DIR] [--preset full|game] [--cap 4|8]
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "samples" / "makehuman_head"
SAMPLE_MESH = SAMPLE_DIR / "base_head.obj"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle on this platform: nothing buffered to lose
        pass


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptor 1 (Blender's own C-level messages included) to stderr,
    so that stdout carries only the command's result (e.g. the --json summary)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()  # Blender's reports sit in the C library's buffer until flushed
        os.dup2(saved, 1)
        os.close(saved)


def run_sample(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m asm_blender sample",
                                     description="Build the ASM rig on the bundled sample head and show it posed.")
    parser.add_argument("--output", "-o", type=Path, default=Path("out"), help="output folder (default: out)")
    parser.add_argument("--preset", choices=("full", "game"), default="full")
    parser.add_argument("--cap", type=int, choices=(4, 8), default=4, help="influences per vertex")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    with stdout_to_stderr():
        summary = _build_sample(args, started)
    if args.json:
        print(json.dumps(summary, indent=1), flush=True)
    else:
        _log(f"done: {summary['bones']} bones, {summary['vertex_groups']} vertex groups, {summary['seconds']} s")
    return 0


def _build_sample(args, started: float) -> dict:
    import bpy

    from solver.landmarks import load_landmarks

    from . import jobs
    from .scene_io import armature as armature_io
    from .scene_io.mesh import mesh_arrays
    from .scene_io.preview import write_weight_preview
    from .scene_io.rig import apply_rig
    from .scene_io.sample import import_obj
    from .scene_io.views import render_views, tile_images

    bpy.ops.wm.read_homefile(use_empty=True)
    _log(f"importing {SAMPLE_MESH.name}")
    head = import_obj(SAMPLE_MESH)
    head.name = "Head"
    arrays = mesh_arrays(head)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    _log(f"generating the {args.preset} rig ({int(valid.sum())} landmarks, {len(arrays.vertices)} vertices)")
    result = jobs.run_blocking("generate", {"preset": args.preset, "influence_cap": args.cap}, {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": landmarks, "landmark_valid": valid})
    for warning in result["warnings"]:
        _log(f"  note: {warning}")
    arm = apply_rig(head, result, name="Head_ASM")
    names = [str(n) for n in result["names"]]
    with tempfile.TemporaryDirectory() as tmp:
        columns = []
        for p, pose_name in enumerate(result["pose_names"]):
            armature_io.set_pose(arm, names, result["pose_log_scale"][p], result["pose_rotvec"][p],
                                 result["pose_translation"][p])
            views = render_views(head, Path(tmp) / f"pose{p}", yaw_degrees=(0.0, 35.0), size=384,
                                 extra_objects=(arm,), label=str(pose_name))
            columns.append([v.image_path for v in views])
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
        write_weight_preview(head, armature_io.read_weights(head, names), int(result["remainder_bone"]))
        weights_views = render_views(head, Path(tmp) / "weights", yaw_degrees=(0.0, 35.0), size=384,
                                     extra_objects=(arm,), label="weights", colour_attribute=True)
        columns.append([v.image_path for v in weights_views])
        picture = tile_images([list(row) for row in zip(*columns)], (args.output / "sample_rig_poses.png").resolve())
    _log(f"wrote {picture}")
    blend_path = (args.output / "sample_rig.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))
    _log(f"wrote {blend_path}")
    summary = {
        "blend": str(blend_path), "picture": str(picture), "bones": len(names),
        "vertex_groups": len(head.get(armature_io.GROUPS_PROPERTY, [])), "vertices": len(arrays.vertices),
        "landmarks": int(valid.sum()), "preset": args.preset, "influence_cap": args.cap,
        "warnings": result["warnings"], "seconds": round(time.perf_counter() - started, 2),
    }
    return summary


COMMANDS = {"sample": run_sample}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        print(f"usage: python -m asm_blender <command> [options]   (commands: {known}; each has --help)", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from .jobs import JobError
    from .scene_io.mesh import SceneInputError

    try:
        return COMMANDS[argv[0]](argv[1:])
    except SystemExit as exit_:  # argparse: --help or a usage error
        return int(exit_.code or 0)
    except (JobError, SceneInputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
