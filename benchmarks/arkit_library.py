"""The ARKit-52 pose library (solver.fit.expression_poses.fit_library_poses): time and residuals.

    .venv/bin/python -m benchmarks.arkit_library [--heads ict sample] [--expressions jawOpen ...] [--out DIR]

- `ict`: the rig generated on the ICT-FaceKit's whole head (as benchmarks/expressions.py places it), the bundled
  library carried onto that head through its chart and fitted; measured against the kit's own shapes over its face
  area (vertices 0-9408, mm): `own_rms_mm`, `rms_mm` and `residual` as in benchmarks/expressions.py, so that the
  loss from carrying (outer skin only, float16, interpolation) shows beside (A)'s. Needs ../shared/data.
- `sample`: the bundled MakeHuman head with its landmarks (samples/makehuman_head): no ground truth, so the fit's own
  weighted residual against the carried targets (`fit_residual`).

Writes arkit_library.csv into --out (default benchmarks/results); prints the seconds for all the expressions.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import CM_TO_MM, FACE_VERTICES, RESULTS, SHARED, ict_landmarks, ict_missing  # noqa: E402
from benchmarks.common import write_csv  # noqa: E402
from solver.core.config import WeightConfig  # noqa: E402
from solver.fit.expression_poses import LibraryFitSettings, fit_library_poses  # noqa: E402
from solver.model import ASMModel, Pose  # noqa: E402
from solver.rig.arkit import ARKIT_NAMES  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.template.canonical import parse_obj, triangulate_faces  # noqa: E402

SAMPLE = ROOT / "samples" / "makehuman_head"


def _rigged(vertices, triangles, corner_uv, landmarks, valid) -> ASMModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig, _chart = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4))
        return ASMModel(rig, vertices, triangles, WeightConfig(influence_cap=4))


def _head(path: Path):
    vertices, uvs, faces = parse_obj(path)
    triangles, uv_ids = triangulate_faces(faces)
    return vertices, triangles, uvs[uv_ids]


def run_head(head: str, names: tuple[str, ...], log, learned_starts: bool = True) -> list[dict]:
    if head == "ict":
        from scripts.build_arkit_expressions import arkit_offsets

        vertices, triangles, corner_uv = _head(SHARED / "ict_facekit" / "generic_neutral_mesh.obj")
        landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_whole_head_landmarks.json")
        truth = arkit_offsets(np.load(SHARED / "ict_facekit" / "ict_shapes.npz"))
    else:
        from asm_protocol.landmarks import load_landmarks

        vertices, triangles, corner_uv = _head(SAMPLE / "base_head.obj")
        landmarks, valid = load_landmarks(SAMPLE / "landmarks.json")
        truth = None
    model = _rigged(vertices, triangles, corner_uv, landmarks, valid)
    started = time.perf_counter()
    poses = fit_library_poses(model, landmarks, valid, LibraryFitSettings(expressions=names,
                                                                         learned_starts=learned_starts))
    seconds = time.perf_counter() - started
    log(f"{head}: {len(vertices)} vertices, {len(names)} expressions in {seconds:.1f} s "
        f"({seconds / len(names):.2f} s each)")
    rows = []
    for e, name in enumerate(poses.names):
        row = {"head": head, "learned_starts": learned_starts, "expression": name, "fit_residual": float(poses.residual[e]),
               "fit_own_rms": float(poses.own_rms[e]), "seconds_all": seconds}
        if truth is not None:
            pose = Pose(*(torch.as_tensor(a[e], dtype=model.vertices.dtype)
                          for a in (poses.log_scale, poses.rotvec, poses.translation)))
            with torch.no_grad():
                posed = model.forward(pose).double().numpy()[:FACE_VERTICES]
            offsets = truth[ARKIT_NAMES.index(name)][:FACE_VERTICES]
            own = float(np.sqrt((np.linalg.norm(offsets, axis=1) ** 2).mean())) * CM_TO_MM
            error = np.linalg.norm(posed - vertices[:FACE_VERTICES] - offsets, axis=1) * CM_TO_MM
            rms = float(np.sqrt((error ** 2).mean()))
            row.update(own_rms_mm=own, rms_mm=rms, residual=rms / own if own > 0 else float("nan"))
        rows.append(row)
        log(f"  {name:<20} fit residual {row['fit_residual']:6.1%}"
            + (f"   own {row['own_rms_mm']:5.2f} mm, rig {row['rms_mm']:5.2f} mm = {row['residual']:6.1%}"
               if "residual" in row else ""))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="the ARKit-52 pose library: time and residuals")
    parser.add_argument("--heads", nargs="+", choices=("ict", "sample"), default=["ict", "sample"])
    parser.add_argument("--expressions", nargs="+", default=list(ARKIT_NAMES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--starts", nargs="+", choices=("learned", "rest"), default=["learned", "rest"],
                        help="where each fit starts: the template's learned pose (where closer) or the rest pose")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for head in args.heads:
        if head == "ict" and ict_missing("the ICT part of this benchmark"):
            continue
        for start in args.starts:
            rows += run_head(head, tuple(args.expressions), lambda line: print(line, flush=True), start == "learned")
    for head in args.heads:
        for start in args.starts:
            chosen = [r for r in rows if r["head"] == head and r["learned_starts"] == (start == "learned")]
            values = [r["residual"] for r in chosen if "residual" in r and np.isfinite(r["residual"])]
            fits = [r["fit_residual"] for r in chosen if np.isfinite(r["fit_residual"])]
            if fits:
                print(f"{head}, from the {start} poses: median fit residual {np.median(fits):.1%}"
                      + (f", median residual against the kit's shapes {np.median(values):.1%}" if values else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "arkit_library.csv", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
