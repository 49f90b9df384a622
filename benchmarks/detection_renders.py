"""How Generate Rig's renders for the landmark detector are made: quality and speed of the render settings.

    .venv/bin/python -m benchmarks.detection_renders [--settings 8:512:512 OFF:768:384 ...] [--heads NAME ...]

A setting is ANTI_ALIASING:RENDER_SIZE:DETECTOR_SIZE (Workbench's render samples, the square render's pixels, the
longest side the detector reads it at). The first one is the reference; the default compares Blender's own 8 samples
at 512 pixels (what Generate used before) with the settings it uses now (asm_blender/scene_io/views.py).

Per shared head and setting, Generate's own landmark steps (automatic face direction, 5 views) give the landmarks on
the surface; the table shows how many views found a face, how far the landmarks lie from the reference setting's
(median and 90th percentile, in eye distances), how well the canonical face fits them (median residual after a
similarity, in eye distances: lower is a more face-like set) and, on the MediaPipe canonical face, whose vertices
are the landmarks, the error against that truth. Then seconds per render on the sample head subdivided to 100k
vertices. Writes benchmarks/results/detection_renders.csv. Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
DEFAULT_SETTINGS = ("8:512:512", "OFF:896:448")
TIMED_VERTICES = 100_000
TIMED_RENDERS = 4


@contextlib.contextmanager
def detection_settings(setting: str):
    """The detection render constants of asm_blender.scene_io.views set to `setting` for the duration."""
    from asm_blender.scene_io import views

    anti_aliasing, size, detector = setting.split(":")
    names = ("DETECTION_ANTI_ALIASING", "DETECTION_RENDER_SIZE", "DETECTOR_SIZE")
    saved = [getattr(views, name) for name in names]
    for name, value in zip(names, (anti_aliasing, int(size), int(detector))):
        setattr(views, name, value)
    try:
        yield
    finally:
        for name, value in zip(names, saved):
            setattr(views, name, value)


def detected_landmarks(head, arrays, workdir: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Generate's landmark steps on `head`: (478, 3) positions, (478,) valid, number of the views with a face."""
    from asm_blender.flows.generate import GenerateOptions, _detected_landmarks
    from asm_blender.flows.steps import run_to_completion
    from asm_blender.scene_io.views import VIEW_YAWS

    landmarks, valid = run_to_completion(_detected_landmarks(head, arrays, GenerateOptions(), workdir),
                                         report=lambda status: None)
    found = [bool(np.load(path)["found"][0]) for path in sorted(workdir.glob("detect_view_*/result.npz"))]
    if len(found) < len(VIEW_YAWS):  # the direction render served as the front view
        found.insert(0, True)
    return landmarks, valid, sum(found)


TRUTH_HEAD = "mediapipe_canonical"  # its vertices are the landmarks (shared data README)


def truth_distances(landmarks: np.ndarray, valid: np.ndarray, vertices: np.ndarray, eye: float) -> np.ndarray:
    """Distances of the valid ones of the 468 surface landmarks (478, 3) from the canonical face's own vertices, in
    units of `eye`."""
    surface = valid[:468]
    return np.linalg.norm(landmarks[:468][surface] - vertices[:468][surface], axis=1) / eye


def quality_rows(heads: dict[str, str], shared: Path, settings: list[str]) -> list[dict]:
    import bpy

    from asm_blender.scene_io.importers import open_head
    from asm_blender.scene_io.mesh import mesh_arrays
    from solver.template.canonical import canonical_face
    from solver.core.geometry import similarity_transform

    face = canonical_face()
    rows = []
    for key, relative in heads.items():
        bpy.ops.wm.read_homefile(use_empty=True)
        head, _ = open_head(shared / relative)
        arrays = mesh_arrays(head)
        found = {}
        for setting in settings:
            with detection_settings(setting), tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                try:
                    found[setting] = (*detected_landmarks(head, arrays, Path(tmp)), time.perf_counter() - started)
                except Exception as error:  # noqa: BLE001 - a setting that finds no face is a result too
                    rows.append({"head": key, "setting": setting, "error": str(error)[:120]})
        if settings[0] not in found:
            continue
        reference, reference_valid = found[settings[0]][:2]
        eye = float(np.linalg.norm(reference[33] - reference[263]))
        for setting, (landmarks, valid, views_found, seconds) in found.items():
            both = valid & reference_valid
            to_reference = np.linalg.norm(landmarks[both] - reference[both], axis=1) / eye
            surface = valid[:468]
            fit = similarity_transform(face.vertices[:468][surface], landmarks[:468][surface])
            residual = np.linalg.norm(fit.apply(face.vertices[:468][surface]) - landmarks[:468][surface], axis=1) / eye
            row = {"head": key, "setting": setting, "views_with_face": views_found, "landmarks": int(valid.sum()),
                   "to_reference_median": round(float(np.median(to_reference)), 4),
                   "to_reference_p90": round(float(np.percentile(to_reference, 90)), 4),
                   "canonical_residual_median": round(float(np.median(residual)), 4), "seconds": round(seconds, 2)}
            if key == TRUTH_HEAD:
                truth = truth_distances(landmarks, valid, arrays.vertices, eye)
                row["truth_median"] = round(float(np.median(truth)), 4)
                row["truth_p90"] = round(float(np.percentile(truth, 90)), 4)
            rows.append(row)
            print(row, file=sys.stderr, flush=True)
    return rows


def speed_rows(settings: list[str]) -> list[dict]:
    from asm_blender.scene_io.views import detection_views
    from benchmarks.generate_speed import head_with_vertices

    head = head_with_vertices(TIMED_VERTICES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        detection_views(head, Path(tmp), (0.0,))  # the first render of a session sets up the GPU context
        for setting in settings:
            with detection_settings(setting):
                started = time.perf_counter()
                for n in range(TIMED_RENDERS):
                    detection_views(head, Path(tmp), (15.0 * n,))
                per_render = (time.perf_counter() - started) / TIMED_RENDERS
            rows.append({"head": f"sample head, {len(head.data.vertices)} vertices", "setting": setting,
                         "seconds_per_render": round(per_render, 3)})
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    parser.add_argument("--heads", nargs="+", default=None)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from benchmarks.common import write_csv
    from benchmarks.generate_heads import HEADS, SHARED

    if not (SHARED / "README.md").is_file():
        print(f"this benchmark needs the shared data folder ({SHARED.name} in ../shared)", file=sys.stderr)
        return 2
    heads = {key: HEADS[key] for key in (args.heads or HEADS)}
    from asm_blender.cli.common import addon_registered, stdout_to_stderr

    with stdout_to_stderr(), addon_registered():
        rows = quality_rows(heads, SHARED, args.settings) + speed_rows(args.settings)
    write_csv(RESULTS / "detection_renders.csv", rows)
    columns = ["head", "setting", "views_with_face", "landmarks", "to_reference_median", "to_reference_p90",
               "canonical_residual_median", "truth_median", "truth_p90", "seconds", "seconds_per_render", "error"]
    columns = [c for c in columns if any(c in row for row in rows)]
    print(f"\nDetection renders (reference: {args.settings[0]}; distances in eye distances)")
    print("  ".join(f"{c:>24}" if c in ("head",) else f"{c:>12}" for c in columns))
    for row in rows:
        print("  ".join(f"{str(row.get(c, '')):>24}" if c in ("head",) else f"{str(row.get(c, '')):>12}"
                        for c in columns))
    return 0


if __name__ == "__main__":
    from benchmarks.common import exit_after

    exit_after(main)
