"""Speed of the full ASM forward (weights + cap + kinematics + LBS), fast path vs the dense reference.

    .venv/bin/python -m benchmarks.forward_speed [--sizes 5000 25000 100000] [--threads 2]

Meshes of N vertices are regular grids over the face island of the sample rig's chart (the real
template's 83 bones and 3 Gaussians each, as transferred onto the bundled head), so each Gaussian covers
as many vertices as it would on a head of that density. Bones bound outside the face island are clamped
onto the grid. Prints a table and writes CSV and PNG to benchmarks/results/. Timings are medians (and
fastest runs) of repeated calls measured in this process; nothing is asserted.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.model.binding import locate  # noqa: E402
from solver.template.canonical import parse_obj, triangulate_faces  # noqa: E402
from solver.core.config import WeightConfig  # noqa: E402
from asm_protocol.landmarks import load_landmarks  # noqa: E402
from solver.model import ASMModel, Pose  # noqa: E402
from solver.template.skeleton import load_skeleton  # noqa: E402
from solver.rig.transfer import transfer_template  # noqa: E402
from solver.model.uv_chart import chart_from_uv_map  # noqa: E402
from solver.model.weights import OpeningSides, blend_vertices_dense  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SAMPLE = ROOT / "samples" / "makehuman_head"


def sample_rig():
    vertices, uvs, faces = parse_obj(SAMPLE / "base_head.obj")
    triangles, uv_ids = triangulate_faces(faces)
    corner_uv = uvs[uv_ids]
    landmarks, valid = load_landmarks(SAMPLE / "landmarks.json")
    chart = chart_from_uv_map(len(vertices), triangles, corner_uv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig = transfer_template(load_skeleton("full"), vertices, triangles, chart, landmarks, valid)
    return rig, rig.chart_uv[np.unique(triangles[rig.face_triangles])]


def grid_mesh(rig, face_uv: np.ndarray, count: int):
    """A regular grid of about `count` vertices over the face's chart island, with the rig re-bound onto it.

    All vertices lie where the face's Gaussians are, as on a head whose vertices are mostly on the face.
    """
    low, high = face_uv.min(0), face_uv.max(0)
    side = int(round(np.sqrt(count)))
    u, v = np.meshgrid(np.linspace(low[0], high[0], side), np.linspace(low[1], high[1], side))
    uv = np.column_stack([u.ravel(), v.ravel()])
    scale = rig.head_unit / 0.45  # canonical UV: about 0.45 units between the outer eye corners
    vertices = np.column_stack([uv * scale, 0.3 * scale * np.sin(3 * uv[:, 0]) * np.cos(2 * uv[:, 1])])
    ids = np.arange(side * side).reshape(side, side)
    quads = np.stack([ids[:-1, :-1], ids[:-1, 1:], ids[1:, 1:], ids[1:, :-1]], -1).reshape(-1, 4)
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        location = locate(rig.zeta, uv, triangles, clamp=True)
    # The openings' sides come along from the nearest chart vertex, so the fast path gates as on a head.
    nearest = cKDTree(rig.chart_uv).query(uv)[1]
    openings = None if rig.openings is None else OpeningSides(rig.openings.vertex[nearest], rig.openings.bone)
    grid_rig = dataclasses.replace(rig, chart_uv=uv, chart_triangles=np.arange(len(triangles)),
                                   face_triangles=np.arange(len(triangles)), zeta=location.point,
                                   bind_triangle=location.triangle, openings=openings)
    return grid_rig, vertices, triangles


def timed(function, repeats: int) -> tuple[float, float]:
    """(median, fastest) seconds over `repeats` calls after one warm-up call (which also builds caches)."""
    function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples)


def _times(forward: tuple[float, float], backward: tuple[float, float]) -> dict:
    return {"forward_ms": 1e3 * forward[0], "forward_backward_ms": 1e3 * backward[0],
            "forward_min_ms": 1e3 * forward[1], "forward_backward_min_ms": 1e3 * backward[1]}


def learnable(model: ASMModel, pose: Pose) -> list[torch.Tensor]:
    tensors = [model.zeta, model.bind_offset, model.mixture.logits, model.mixture.offsets, model.mixture.cholesky_raw,
               pose.log_scale, pose.rotvec, pose.translation]
    for tensor in tensors:
        tensor.requires_grad_(True)
    return tensors


def measure(count: int, cap: int, rig, face_uv, repeats: int) -> list[dict]:
    grid_rig, vertices, triangles = grid_mesh(rig, face_uv, count)
    rows = []
    generator = torch.Generator().manual_seed(0)
    size = float(np.ptp(vertices, axis=0).max())
    reference_model = None
    for method in ("dense", "gather"):
        model = ASMModel(grid_rig, vertices, triangles, WeightConfig(influence_cap=cap, lbs=method))
        bones = model.bone_count
        pose = Pose(0.05 * torch.randn(bones, 3, generator=generator), 0.2 * torch.randn(bones, 3, generator=generator),
                    0.01 * torch.randn(bones, 3, generator=generator))
        parameters = learnable(model, pose)
        target = model.vertices + 0.01

        def fast_forward():
            with torch.no_grad():
                return model.forward(pose)

        def fast_backward():
            loss = (model.forward(pose) - target).square().sum()
            torch.autograd.grad(loss, parameters)

        start = time.perf_counter()
        model.sparse.rebuild_support(model.zeta, model.mixture)
        support_seconds = time.perf_counter() - start
        rows.append({"N": len(vertices), "k": cap, "path": f"fast ({method} LBS)",
                     **_times(timed(fast_forward, repeats), timed(fast_backward, repeats)),
                     "support_ms": 1e3 * support_seconds, "pairs": model.sparse.pair_count})
        reference_model = model
    model = reference_model

    def dense_forward():
        with torch.no_grad():
            return blend_vertices_dense(model.vertices, model.skinning(pose), model.dense_weights())

    def dense_backward():
        posed = blend_vertices_dense(model.vertices, model.skinning(pose), model.dense_weights())
        torch.autograd.grad((posed - target).square().sum(), parameters)

    dense_repeats = max(1, repeats // 2) if len(vertices) > 50_000 else repeats
    rows.append({"N": len(vertices), "k": cap, "path": "dense reference",
                 **_times(timed(dense_forward, dense_repeats), timed(dense_backward, dense_repeats)), "support_ms": 0.0,
                 "pairs": len(vertices) * model.bone_count * model.config.gaussians_per_bone})
    with torch.no_grad():
        weight_difference = (model.weights().to_dense(model.bone_count) - model.dense_weights()).abs().max().item()
        vertex_difference = (fast_forward() - dense_forward()).abs().max().item() / size
    for row in rows:
        row["max_weight_diff"] = weight_difference
        row["max_vertex_diff_rel"] = vertex_difference
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ASM forward speed: fast path vs dense reference")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000, 100000])
    parser.add_argument("--caps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rig, face_uv = sample_rig()
    config = WeightConfig()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, J = {len(rig.names)} bones, "
          f"K = {config.gaussians_per_bone}, cull tolerance {config.cull_tolerance} (x eps_root {config.remainder_density})",
          flush=True)
    rows = []
    for count in args.sizes:
        for cap in args.caps:
            rows.extend(measure(count, cap, rig, face_uv, args.repeats))
            for row in rows[-3:]:
                print(f"N={row['N']:>7} k={row['k']} {row['path']:<20} forward {row['forward_ms']:9.1f} ms   "
                      f"fwd+bwd {row['forward_backward_ms']:9.1f} ms   pairs {row['pairs']:>9}", flush=True)
    print("\nspeed-up of the fast path (dense LBS) over the dense reference, forward+backward:")
    for count in sorted({r["N"] for r in rows}):
        for cap in args.caps:
            group = {r["path"]: r for r in rows if r["N"] == count and r["k"] == cap}
            fast, dense = group["fast (dense LBS)"], group["dense reference"]
            print(f"  N={count:>7} k={cap}: {dense['forward_backward_ms'] / fast['forward_backward_ms']:6.1f}x "
                  f"(fastest runs {dense['forward_backward_min_ms'] / fast['forward_backward_min_ms']:5.1f}x, "
                  f"forward {dense['forward_ms'] / fast['forward_ms']:5.1f}x); max |w_fast - w_dense| = "
                  f"{fast['max_weight_diff']:.2e}, max vertex difference = {fast['max_vertex_diff_rel']:.2e} x mesh size")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "forward_speed.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.caps, RESULTS / "forward_speed.png")
    print(f"\nwrote {RESULTS / 'forward_speed.csv'} and {RESULTS / 'forward_speed.png'}")
    return 0


def plot(rows, caps, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(caps), figsize=(6 * len(caps), 4.5), squeeze=False)
    for axis, cap in zip(axes[0], caps):
        for path_name, style in (("dense reference", "o-"), ("fast (dense LBS)", "s-"), ("fast (gather LBS)", "^--")):
            points = sorted((r["N"], r["forward_backward_ms"]) for r in rows if r["k"] == cap and r["path"] == path_name)
            if points:
                axis.plot(*zip(*points), style, label=path_name)
        axis.set(xscale="log", yscale="log", xlabel="vertices", ylabel="forward + backward (ms)",
                 title=f"ASM forward+backward, k = {cap}")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
