"""Speed of writing skinning weights into Blender vertex groups: scene_io's write_weights vs the old per-vertex loop.

    .venv/bin/python -m benchmarks.writeback_speed [--sizes 5000 25000 100000] [--caps 4 8] [--bones 80]

Meshes of N vertices are flat grids made with bmesh. Weights are capped the way the solver caps them: each vertex
takes its k nearest of J bones scattered over the grid, with Gaussian falloff, normalised; one row in ten loses its
smallest weight (a zero to skip) and a few bones do not deform. For each method a write into a mesh without groups
("fresh") and a second write that replaces the groups of the first ("rewrite", as Generate does when run again) are
timed. The reference is the loop write_weights used before, a bmesh deform layer filled vertex by vertex, kept here
verbatim. Both results are read back and compared, and read_weights is timed against its old per-vertex loop too.
Prints tables and writes CSV (and a PNG where matplotlib is installed) to benchmarks/results/. Timings are medians
of repeated calls in this process; nothing is asserted.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import bpy  # first: Blender's own modules (bmesh) are importable once bpy is
import bmesh
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asm_blender.scene_io import armature as armature_io  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def write_weights_reference(mesh_obj, names, bones, values, deform=None) -> None:
    """write_weights as it was before: one vertex group per deforming bone, filled through a bmesh deform layer."""
    armature_io._ensure_object_mode()
    names = list(names)
    armature_io.check_group_names(mesh_obj, names)
    deform = np.ones(len(names), dtype=bool) if deform is None else np.asarray(deform, dtype=bool)
    for old in list(mesh_obj.get(armature_io.GROUPS_PROPERTY, [])):
        group = mesh_obj.vertex_groups.get(old)
        if group is not None:
            mesh_obj.vertex_groups.remove(group)
    group_index = {}
    for j, name in enumerate(names):
        if deform[j]:
            group_index[j] = mesh_obj.vertex_groups.new(name=name).index
    mesh_obj[armature_io.GROUPS_PROPERTY] = [names[j] for j in group_index]

    mesh = mesh_obj.data
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        layer = bm.verts.layers.deform.verify()
        bm.verts.ensure_lookup_table()
        bones = np.asarray(bones)
        values = np.asarray(values, dtype=np.float64)
        for v, vert in enumerate(bm.verts):
            entry = vert[layer]
            for j, w in zip(bones[v].tolist(), values[v].tolist()):
                if w > 0.0 and j in group_index:
                    index = group_index[j]
                    entry[index] = entry.get(index, 0.0) + w
        bm.to_mesh(mesh)
    finally:
        bm.free()
    mesh.update()


def read_weights_reference(mesh_obj, names) -> np.ndarray:
    """read_weights as it was before: MeshVertex.groups visited element by element."""
    index_of = {g.index: names.index(g.name) for g in mesh_obj.vertex_groups if g.name in names}
    weights = np.zeros((len(mesh_obj.data.vertices), len(names)))
    for v, vertex in enumerate(mesh_obj.data.vertices):
        for element in vertex.groups:
            if element.group in index_of:
                weights[v, index_of[element.group]] = element.weight
    return weights


def grid_object(count: int) -> bpy.types.Object:
    """A flat grid of about `count` vertices (side x side), linked into the scene."""
    side = max(2, int(round(np.sqrt(count))))
    bm = bmesh.new()
    try:
        bmesh.ops.create_grid(bm, x_segments=side - 1, y_segments=side - 1, size=1.0)
        mesh = bpy.data.meshes.new(f"grid_{count}")
        bm.to_mesh(mesh)
    finally:
        bm.free()
    obj = bpy.data.objects.new(mesh.name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def capped_weights(points: np.ndarray, bone_count: int, cap: int, seed: int = 0):
    """(bones (N, k), values (N, k), deform (J,)): k nearest bones with Gaussian falloff, rows summing to 1."""
    generator = np.random.default_rng(seed)
    centres = generator.uniform(points.min(0), points.max(0), size=(bone_count, 2))
    sigma = float(np.ptp(points[:, 0])) / np.sqrt(bone_count)
    bones = np.empty((len(points), cap), dtype=np.int64)
    values = np.empty((len(points), cap))
    for start in range(0, len(points), 20000):
        block = points[start:start + 20000]
        distance2 = ((block[:, None, :] - centres[None]) ** 2).sum(-1)
        nearest = np.argpartition(distance2, cap - 1, axis=1)[:, :cap]
        bones[start:start + len(block)] = nearest
        values[start:start + len(block)] = np.exp(-np.take_along_axis(distance2, nearest, 1) / (2 * sigma ** 2))
    rows = generator.random(len(points)) < 0.1
    values[rows, values[rows].argmin(1)] = 0.0
    values /= np.maximum(values.sum(1, keepdims=True), 1e-12)
    deform = np.ones(bone_count, dtype=bool)
    deform[:3] = False  # a root and helpers, as in the real template
    return bones, values, deform


def clear_groups(obj) -> None:
    obj.vertex_groups.clear()
    if armature_io.GROUPS_PROPERTY in obj:
        del obj[armature_io.GROUPS_PROPERTY]


def median_ms(samples) -> float:
    return 1e3 * statistics.median(samples)


def measure(count: int, cap: int, bone_count: int, repeats: int, reference_repeats: int) -> dict:
    obj = grid_object(count)
    co = np.empty(len(obj.data.vertices) * 3, dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    bones, values, deform = capped_weights(co.reshape(-1, 3)[:, :2].astype(np.float64), bone_count, cap, seed=cap)
    names = [f"bone_{j:03d}" for j in range(bone_count)]
    row = {"N": len(obj.data.vertices), "k": cap, "J": bone_count}
    written = {}
    for label, write, runs in (("old", write_weights_reference, reference_repeats),
                               ("new", armature_io.write_weights, repeats)):
        fresh, rewrite = [], []
        for _ in range(runs):
            clear_groups(obj)
            start = time.perf_counter()
            write(obj, names, bones, values, deform)
            fresh.append(time.perf_counter() - start)
            start = time.perf_counter()
            write(obj, names, bones, values, deform)
            rewrite.append(time.perf_counter() - start)
        row[f"{label}_fresh_ms"] = median_ms(fresh)
        row[f"{label}_rewrite_ms"] = median_ms(rewrite)
        written[label] = {"groups": [g.name for g in obj.vertex_groups],
                          "entries": sum(len(v.groups) for v in obj.data.vertices),
                          "weights": read_weights_reference(obj, names) if label == "old" else None}
        if label == "new":
            start = time.perf_counter()
            fast = armature_io.read_weights(obj, names)
            row["new_read_ms"] = 1e3 * (time.perf_counter() - start)
            start = time.perf_counter()
            slow = read_weights_reference(obj, names)
            row["old_read_ms"] = 1e3 * (time.perf_counter() - start)
            written[label]["weights"] = slow
            row["read_max_diff"] = float(np.abs(fast - slow).max())
    row["write_max_diff"] = float(np.abs(written["new"]["weights"] - written["old"]["weights"]).max())
    row["same_groups"] = written["new"]["groups"] == written["old"]["groups"]
    row["same_entries"] = written["new"]["entries"] == written["old"]["entries"]
    bpy.data.objects.remove(obj)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="vertex-group write-back speed: write_weights vs the old loop")
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000, 100000])
    parser.add_argument("--caps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--bones", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    bpy.ops.wm.read_homefile(use_empty=True)
    print(f"Blender {bpy.app.version_string}, numpy {np.__version__}, J = {args.bones} bones (3 not deforming); "
          f"medians of {args.repeats} runs (old loop: {args.reference_repeats})", flush=True)
    rows = []
    for count in args.sizes:
        for cap in args.caps:
            row = measure(count, cap, args.bones, args.repeats, args.reference_repeats)
            rows.append(row)
            print(f"N={row['N']:>7} k={cap}: fresh old {row['old_fresh_ms']:8.1f} ms new {row['new_fresh_ms']:7.1f} ms   "
                  f"rewrite old {row['old_rewrite_ms']:8.1f} ms new {row['new_rewrite_ms']:7.1f} ms", flush=True)
    print("\nwrite_weights, new vs the old per-vertex bmesh loop (ms, ratio = old / new):")
    print(f"{'N':>7} {'k':>2} | {'fresh old':>10} {'new':>8} {'ratio':>6} | {'rewrite old':>11} {'new':>8} {'ratio':>6} | "
          f"{'max |dw|':>9} groups entries")
    for r in rows:
        print(f"{r['N']:>7} {r['k']:>2} | {r['old_fresh_ms']:10.1f} {r['new_fresh_ms']:8.1f} "
              f"{r['old_fresh_ms'] / r['new_fresh_ms']:5.1f}x | {r['old_rewrite_ms']:11.1f} {r['new_rewrite_ms']:8.1f} "
              f"{r['old_rewrite_ms'] / r['new_rewrite_ms']:5.1f}x | {r['write_max_diff']:9.2e} {str(r['same_groups']):>6} "
              f"{str(r['same_entries']):>7}")
    print("\nread_weights, new vs the old per-element loop (ms):")
    for r in rows:
        print(f"{r['N']:>7} {r['k']:>2} | old {r['old_read_ms']:8.1f} new {r['new_read_ms']:8.1f} "
              f"{r['old_read_ms'] / r['new_read_ms']:5.1f}x | max |dw| {r['read_max_diff']:.2e}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "writeback_speed.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written = [RESULTS / "writeback_speed.csv"]
    if plot(rows, args.caps, RESULTS / "writeback_speed.png"):
        written.append(RESULTS / "writeback_speed.png")
    print("\nwrote " + " and ".join(str(path) for path in written))
    return 0


def plot(rows, caps, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(caps), figsize=(6 * len(caps), 4.5), squeeze=False)
    for axis, cap in zip(axes[0], caps):
        for key, style, label in (("old_fresh_ms", "o-", "old loop, fresh"), ("old_rewrite_ms", "o--", "old loop, rewrite"),
                                  ("new_fresh_ms", "s-", "new, fresh"), ("new_rewrite_ms", "s--", "new, rewrite")):
            points = sorted((r["N"], r[key]) for r in rows if r["k"] == cap)
            axis.plot(*zip(*points), style, label=label)
        axis.set(xscale="log", yscale="log", xlabel="vertices", ylabel="write_weights (ms)",
                 title=f"vertex-group write-back, k = {cap}")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


if __name__ == "__main__":
    sys.exit(main())
