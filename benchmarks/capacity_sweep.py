"""Capacity sweep: error against the number of free parameters, for rigs of 24 / 52 / 83 bones (the game,
standard and full presets) with K = 1 / 2 / 3 Gaussians per bone, beside the unfitted rig, static skinning (the
full rig's bone poses only) and the ICT 3DMM.

    .venv/bin/python -m benchmarks.capacity_sweep [--targets 1] [--fit-vertices 3000] [--out DIR]

Targets are random faces of the ICT-FaceKit morphable model (as in benchmarks/capacity.py: identity ~ N(0, 1) on
all 100 components plus three expressions at 0.3-1.0), fitted vertex to vertex by each rig generated on the kit's
neutral head (the 3DMM represents them exactly by construction: it is the upper bound, not a rival here). Each
rig is fitted on a spread subset of the head's vertices and measured on all of the face area's vertices.
Needs ../shared/data. Writes capacity_sweep.csv.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import (POSE, RESULTS, errors_mm, ict_head, ict_landmarks, ict_missing,  # noqa: E402
                                 ict_targets, morphable_fit, parameter_count, refine)
from benchmarks.common import write_csv  # noqa: E402
from solver.core.config import WeightConfig  # noqa: E402
from solver.fit.engine import ALL_GROUPS, fit  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.core.geometry import spread_subset  # noqa: E402
from solver.model import ASMModel  # noqa: E402

PRESETS = ("game", "standard", "full")
GAUSSIANS = (1, 2, 3)


def fitted_errors(rig, vertices, triangles, cap: int, gaussians: int, stages, targets, subset) -> tuple[list, float]:
    errors, seconds = [], []
    for target in targets:
        model = ASMModel(rig, vertices, triangles, WeightConfig(gaussians_per_bone=gaussians, influence_cap=cap))
        began = time.perf_counter()
        fit(model.restricted(subset), {"vertices": torch.as_tensor(target[subset], dtype=torch.float32)}, stages)
        seconds.append(time.perf_counter() - began)
        with torch.no_grad():
            errors.append(errors_mm(model.forward().double().numpy(), target))
    return errors, float(np.mean(seconds))


def run(target_count: int, seed: int, fit_vertices: int, iterations: int, log=print) -> list[dict]:
    vertices, triangles, corner_uv = ict_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_head_landmarks.json")
    neutral, targets, basis = ict_targets(target_count, seed)
    subset = spread_subset(vertices, fit_vertices) if fit_vertices else np.arange(len(vertices))

    def row(model, bones, gaussians, parameters, errors, seconds):
        return {"model": model, "bones": bones, "gaussians_per_bone": gaussians, "parameters": parameters,
                "mean_mm": float(np.mean([e[0] for e in errors])), "rms_mm": float(np.mean([e[1] for e in errors])),
                "seconds_per_target": seconds, "targets": len(targets)}

    rows = [row("unfitted rig (the mean face)", 0, 0, 0, [errors_mm(neutral, t) for t in targets], 0.0),
            row("ICT 3DMM (least squares, upper bound)", 0, 0, basis.shape[1],
                [errors_mm(morphable_fit(neutral, basis, t), t) for t in targets], 0.0)]
    stages = [POSE, refine(ALL_GROUPS, iterations)]
    for preset in PRESETS:
        for gaussians in GAUSSIANS:
            rig, _ = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings(preset, 4, gaussians))
            if preset == "full" and gaussians == max(GAUSSIANS):
                errors, seconds = fitted_errors(rig, vertices, triangles, 4, gaussians, [POSE], targets, subset)
                rows.append(row("static skinning (full rig, poses only)", len(rig.names), gaussians,
                                parameter_count(rig, [POSE], gaussians), errors, seconds))
                log(f"  {rows[-1]['model']}: {rows[-1]['mean_mm']:.3f} mm mean, {seconds:.0f} s")
            errors, seconds = fitted_errors(rig, vertices, triangles, 4, gaussians, stages, targets, subset)
            rows.append(row(f"ASM {preset}, K={gaussians}", len(rig.names), gaussians,
                            parameter_count(rig, stages, gaussians), errors, seconds))
            log(f"  {rows[-1]['model']} ({len(rig.names)} bones, {rows[-1]['parameters']} parameters): "
                f"{rows[-1]['mean_mm']:.3f} mm mean, {rows[-1]['rms_mm']:.3f} mm RMS, {seconds:.0f} s")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=1, help="random ICT faces")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fit-vertices", type=int, default=3000, help="spread subset fitted (0: all)")
    parser.add_argument("--iterations", type=int, default=300, help="iterations of the refine stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if ict_missing("the sweep"):
        return 2
    torch.set_num_threads(args.threads)
    rows = run(args.targets, args.seed, args.fit_vertices, args.iterations,
               log=lambda message: print(message, file=sys.stderr, flush=True))
    write_csv(args.out / "capacity_sweep.csv", rows)
    print(f"\n{'model':<42} {'bones':>5} {'K':>2} {'params':>7} {'mean mm':>8} {'RMS mm':>7} {'s':>5}")
    for r in rows:
        print(f"{r['model']:<42} {r['bones']:>5} {r['gaussians_per_bone']:>2} {r['parameters']:>7} {r['mean_mm']:8.3f} "
              f"{r['rms_mm']:7.3f} {r['seconds_per_target']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
