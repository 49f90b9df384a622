"""Capacity: how well each model represents faces, ASM against a static skinning rig and the ICT 3DMM.

    .venv/bin/python -m benchmarks.capacity            # default subset: 3 ICT faces + both scans (fast fits)
    .venv/bin/python -m benchmarks.capacity --full     # 20 ICT faces + scans with balanced fits and ablations

Part (a), here: random ICT faces fitted vertex to vertex. Part (b), benchmarks/capacity_scans.py: the
real scans by point-to-surface. One command runs both, prints both tables and writes CSVs and one PNG.

The rig is generated on the ICT-FaceKit head (face + head-and-neck skin, 11,248 vertices) from MediaPipe
landmarks found on Workbench renders of it (cached in benchmarks/results/). Targets are random faces of
the kit's own morphable model (identity ~ N(0, 1) on all 100 components, three expressions at 0.3-1.0),
which favours the 3DMM: it represents them exactly by construction. The rigs are fitted to all of the
target's vertices (or a spread subset, --fit-vertices); errors are per-vertex distances in millimetres
over the kit's full face area (vertices 0-9408). Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.template.canonical import parse_obj, triangulate_faces  # noqa: E402
from solver.core.config import WeightConfig  # noqa: E402
from solver.fit.engine import ALL_GROUPS, Stage, fit  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from asm_protocol.landmarks import load_landmarks  # noqa: E402
from solver.core.geometry import spread_subset  # noqa: E402
from solver.model import ASMModel  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
HEAD_VERTICES = 11248  # face + head_and_neck parts of the kit
HEAD_POLYGONS = 11144
FACE_VERTICES = 9409  # the kit's full face area
CM_TO_MM = 10.0

POSE = Stage(name="pose", groups=("pose",), losses={"vertex": 1.0, "pose_prior": 1e-5}, iterations=400, learning_rate=0.01, patience=40)


def refine(groups, iterations=500) -> Stage:
    return Stage(name="refine", groups=tuple(groups), losses={"vertex": 1.0, "pose_prior": 1e-5, "gaussian_size": 1e-3,
                                           "bind_offset_prior": 1e-5}, iterations=iterations, learning_rate=0.003,
                 patience=40)


MODELS = {  # name: (preset, influence cap, stages)
    "static skinning (poses only)": ("full", 4, [POSE]),
    "ASM without dynamic binding": ("full", 4, [POSE, refine([g for g in ALL_GROUPS if g not in ("binding", "bind_offset")])]),
    "ASM without GMM weights": ("full", 4, [POSE, refine([g for g in ALL_GROUPS if not g.startswith("gaussian")])]),
    "ASM full, cap 4": ("full", 4, [POSE, refine(ALL_GROUPS)]),
    "ASM full, cap 8": ("full", 8, [POSE, refine(ALL_GROUPS)]),
    "ASM game preset, cap 4": ("game", 4, [POSE, refine(ALL_GROUPS)]),
}


def ict_missing(who: str = "this benchmark") -> bool:
    """True, after one error line on stderr, when ../shared/data has no ICT-FaceKit."""
    kit = SHARED / "ict_facekit"
    if (kit / "generic_neutral_mesh.obj").is_file() and (kit / "ict_shapes.npz").is_file():
        return False
    print(f"error: the ICT-FaceKit data is not in {kit}; {who} needs ../shared/data", file=sys.stderr)
    return True


def ict_head():
    vertices, uvs, faces = parse_obj(SHARED / "ict_facekit" / "generic_neutral_mesh.obj")
    faces = faces[:HEAD_POLYGONS]
    triangles, uv_ids = triangulate_faces(faces)
    if triangles.max() >= HEAD_VERTICES:
        raise ValueError("the kit's head polygons use vertices beyond the head part")
    return vertices[:HEAD_VERTICES], triangles, uvs[uv_ids]


def ict_landmarks(vertices, triangles, cache: Path):
    """MediaPipe landmarks on renders of the head, cast onto it (cached: they depend only on the mesh)."""
    if cache.exists():
        return load_landmarks(cache)
    import bpy
    from mathutils import Matrix

    from asm_blender.scene_io.mesh import mesh_arrays, mesh_from_arrays
    from asm_blender.scene_io.views import landmarks_from_renders
    from solver.vision.photos import detect_face_landmarks_in_file

    bpy.ops.wm.read_homefile(use_empty=True)
    head = mesh_from_arrays("ICT head", vertices, triangles)
    head.matrix_world = Matrix.Rotation(np.pi / 2, 4, 'X')  # the kit is +Y up, +Z forward, like an OBJ import
    with tempfile.TemporaryDirectory() as tmp:
        found = landmarks_from_renders(head, mesh_arrays(head), detect_face_landmarks_in_file, Path(tmp))
    points, valid = found.positions, found.valid
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"about": "MediaPipe landmarks on the ICT head (benchmarks/capacity.py)",
                                 "points": [p.tolist() if ok else None for p, ok in zip(points, valid)]}))
    return points, valid


def ict_targets(count: int, seed: int):
    shapes = np.load(SHARED / "ict_facekit" / "ict_shapes.npz")
    neutral = shapes["neutral_vertices"][:HEAD_VERTICES].astype(np.float64)
    identity = shapes["identity_offsets"][:, :HEAD_VERTICES].astype(np.float64)
    in_kit = np.flatnonzero(shapes["expression_in_kit_list"])
    expression = shapes["expression_offsets"][in_kit][:, :HEAD_VERTICES].astype(np.float64)
    generator = np.random.default_rng(seed)
    targets = []
    for _ in range(count):
        identity_weights = generator.normal(size=len(identity))
        expression_weights = np.zeros(len(expression))
        chosen = generator.choice(len(expression), size=3, replace=False)
        expression_weights[chosen] = generator.uniform(0.3, 1.0, size=3)
        targets.append(neutral + np.tensordot(identity_weights, identity, 1) + np.tensordot(expression_weights, expression, 1))
    basis = np.concatenate([identity, expression]).reshape(len(identity) + len(expression), -1).T  # (3N, 153)
    return neutral, targets, basis


def morphable_fit(neutral, basis, target, ridge=1e-6):
    """Least-squares coefficients of the 3DMM (100 identity + 53 expression) for `target`."""
    residual = (target - neutral).reshape(-1)
    gram = basis.T @ basis + ridge * np.eye(basis.shape[1])
    coefficients = np.linalg.solve(gram, basis.T @ residual)
    return neutral + (basis @ coefficients).reshape(neutral.shape)


def errors_mm(fitted, target):
    distance = np.linalg.norm(fitted[:FACE_VERTICES] - target[:FACE_VERTICES], axis=1) * CM_TO_MM
    return float(distance.mean()), float(np.sqrt((distance**2).mean()))


def parameter_count(rig, stages, gaussians_per_bone: int) -> int:
    """Free numbers per face: 9 per bone pose, 2 + 3 per bone binding, 6 per Gaussian (ASM.md §10)."""
    groups = {g for stage in stages for g in stage.groups}
    bones = len(rig.names)
    gaussian_bones = int(rig.has_gaussians.sum())
    sizes = {"pose": 9 * bones, "binding": 2 * bones, "bind_offset": 3 * bones,
             "gaussian_weights": gaussians_per_bone * gaussian_bones, "gaussian_means": 2 * gaussians_per_bone * gaussian_bones,
             "gaussian_covariances": 3 * gaussians_per_bone * gaussian_bones}
    return sum(sizes[g] for g in groups if g in sizes)  # the target alignment is not the model's


def run_ict(target_count: int, seed: int, fit_vertices: int = 0) -> list[dict]:
    vertices, triangles, corner_uv = ict_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_head_landmarks.json")
    print(f"ICT head: {len(vertices)} vertices, {len(triangles)} triangles, {int(valid.sum())} landmarks", flush=True)
    neutral, targets, basis = ict_targets(target_count, seed)
    rigs = {}
    for preset, cap in {(p, c) for p, c, _ in MODELS.values()}:
        rigs[(preset, cap)], _ = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings(preset, cap))
    subset = spread_subset(vertices, fit_vertices) if fit_vertices else np.arange(len(vertices))
    print(f"fitting on {len(subset)} of {len(vertices)} vertices, errors over all {FACE_VERTICES} face-area vertices",
          flush=True)
    rows = []
    unfitted = [errors_mm(neutral, t) for t in targets]
    rows.append({"model": "unfitted rig (the neutral mean face)", "parameters": 0,
                 "mean_mm": np.mean([e[0] for e in unfitted]), "rms_mm": np.mean([e[1] for e in unfitted]), "seconds": 0.0})
    started = time.perf_counter()
    morph = [errors_mm(morphable_fit(neutral, basis, t), t) for t in targets]
    rows.append({"model": "ICT 3DMM (100 id + 53 expr), least squares", "parameters": basis.shape[1],
                 "mean_mm": np.mean([e[0] for e in morph]), "rms_mm": np.mean([e[1] for e in morph]),
                 "seconds": (time.perf_counter() - started) / len(targets)})
    print(f"{rows[0]['model']:<46} {rows[0]['mean_mm']:7.3f} mm", flush=True)
    print(f"{rows[1]['model']:<46} {rows[1]['mean_mm']:7.3f} mm", flush=True)
    for name, (preset, cap, stages) in MODELS.items():
        rig = rigs[(preset, cap)]
        errors, seconds = [], []
        for target in targets:
            model = ASMModel(rig, vertices, triangles, WeightConfig(influence_cap=cap))
            start = time.perf_counter()
            # No parameter belongs to a vertex: fit on a spread subset, measure on the whole face.
            fit(model.restricted(subset), {"vertices": torch.as_tensor(target[subset], dtype=torch.float32)}, stages)
            seconds.append(time.perf_counter() - start)
            with torch.no_grad():
                errors.append(errors_mm(model.forward().double().numpy(), target))
        rows.append({"model": name, "parameters": parameter_count(rig, stages, 3),
                     "mean_mm": np.mean([e[0] for e in errors]), "rms_mm": np.mean([e[1] for e in errors]),
                     "seconds": float(np.mean(seconds))})
        print(f"{name:<46} {rows[-1]['mean_mm']:7.3f} mm  ({rows[-1]['seconds']:.1f} s per target)", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ASM capacity on ICT faces and real scans vs static skinning and "
                                                 "the ICT 3DMM")
    parser.add_argument("--full", action="store_true",
                        help="the full set: 20 ICT faces, balanced scan fits, ablation rows on the scans")
    parser.add_argument("--targets", type=int, default=None, help="random ICT faces (default 3; 20 with --full)")
    parser.add_argument("--scan-quality", choices=("fast", "balanced", "best"), default=None,
                        help="scan fit quality (default fast; balanced with --full)")
    parser.add_argument("--skip-scans", action="store_true", help="only the ICT faces")
    parser.add_argument("--skip-ict", action="store_true", help="only the scans")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fit-vertices", type=int, default=0,
                        help="fit on a spread subset of this many vertices (0: all; subsets fit faster but generalise "
                             "worse to the unfitted vertices)")
    args = parser.parse_args(argv)
    args.targets = args.targets or (20 if args.full else 3)
    args.scan_quality = args.scan_quality or ("balanced" if args.full else "fast")
    if ict_missing():
        return 2
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    ict_rows = [] if args.skip_ict else run_ict(args.targets, args.seed, args.fit_vertices)
    scan_rows = []
    if not args.skip_scans:
        from benchmarks import capacity_scans

        scan_rows = capacity_scans.run(args.scan_quality, args.full, args.threads)
    if ict_rows:
        _report(ict_rows, args)
    if scan_rows:
        capacity_scans.report(scan_rows, args.scan_quality)
    _plot(ict_rows, scan_rows, args)
    print(f"\ncapacity benchmark took {(time.perf_counter() - began) / 60:.1f} minutes")
    return 0


def _report(rows, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"\ncapacity on {args.targets} random ICT faces (seed {args.seed}); error over the full face area, mm")
    print(f"{'model':<46} {'params':>7} {'mean':>8} {'RMS':>8} {'s/target':>9}")
    for row in rows:
        print(f"{row['model']:<46} {row['parameters']:>7} {row['mean_mm']:8.3f} {row['rms_mm']:8.3f} {row['seconds']:9.1f}")
    stem = f"capacity_ict_{args.targets}"
    with (RESULTS / f"{stem}.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {RESULTS / (stem + '.csv')}")


def _plot(ict_rows, scan_rows, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ([("ict", ict_rows)] if ict_rows else []) + [(scan, [r for r in scan_rows if r["scan"] == scan])
                                                          for scan in dict.fromkeys(r["scan"] for r in scan_rows)]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for axis, (name, rows) in zip(axes[:, 0], panels):
        if name == "ict":
            values, label = [r["mean_mm"] for r in rows], "mean per-vertex error over the face (mm)"
            title = f"{args.targets} random ICT faces (vertex fits; the set favours the 3DMM)"
        else:
            metric = "rms_mm" if rows[0]["rms_mm"] is not None else "rms_over_eye_distance"
            values = [r[metric] for r in rows]
            label = ("RMS scan-to-surface within 95 mm of the nose tip (mm)" if metric == "rms_mm"
                     else "RMS scan-to-surface within 1.05 eye distances (fraction of the eye distance)")
            title = f"{name} scan (point-to-surface, {args.scan_quality} fits)"
        axis.barh([r["model"] for r in rows][::-1], values[::-1], color="#4477aa")
        axis.set_xlabel(label)
        axis.set_title(title)
    figure.tight_layout()
    path = RESULTS / "capacity.png"
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
