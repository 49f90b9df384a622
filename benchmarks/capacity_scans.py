"""Capacity on real head scans: the ICT-head rig fitted to Lee Perry-Smith and Fran by point-to-surface.

    .venv/bin/python -m benchmarks.capacity_scans [--quality fast|balanced|best] [--ablations]

Each scan is imported into Blender, rendered, and MediaPipe landmarks are found on it as on the rig's
mesh. Every model starts from the same similarity alignment (from the landmarks) and is fitted by the
product's scan fit (solver/fit/scan_fit.py: point-to-surface both ways with normal-compatible, trimmed
correspondences, landmarks, the same smoothness and pose priors for every model). Reported: RMS distance
from the scan's vertices within 1.05 outer-eye-corner distances (about 95 mm) of its nose tip to the
fitted surface after an ICP similarity refinement on that crop (the same for every model and baseline),
as a fraction of that distance and in mm for the metric scan (Fran); the same within
60 mm of the nose tip; and the fraction of the rig's face triangles turned by more than 60 degrees
(a fit that folds the surface to reach noisy points is no fit). Baselines: the unfitted rig after the
landmark alignment, and the ICT 3DMM fitted by iterated closest points with its own similarity
re-alignment. Needs ../shared/data; writes benchmarks/results/capacity_scans.csv.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import HEAD_VERTICES, RESULTS, SHARED, ict_head, ict_landmarks  # noqa: E402
from solver.fit.engine import ALL_GROUPS  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.core.geometry import Similarity, closest_points_on_mesh, similarity_transform  # noqa: E402
from solver.model import ASMModel  # noqa: E402
from solver.fit.scan_fit import ScanFitSettings, fit_to_scan, landmark_start, prepare_scan, scan_errors  # noqa: E402

SCANS = {  # name: (file, face direction in Blender's world, metres per unit or None)
    "Lee Perry-Smith": ("lee_perry_smith/LeePerrySmith.glb", (0.0, -1.0, 0.0), None),
    # Fran is said to look towards +X; on renders it looks half-way to +Y (Blender's world after import).
    "Fran": ("vtk_fran_face/fran_cut.obj", (1.0, 1.0, 0.0), 1.0),
}
TIGHT_CROP_MM = 60.0
MODELS = {  # name: (preset, influence cap, groups the refine stage moves)
    "static skinning (poses only)": ("full", 4, ("pose",)),
    "ASM full, cap 4": ("full", 4, ALL_GROUPS),
}
ABLATIONS = {
    "ASM without dynamic binding": ("full", 4, tuple(g for g in ALL_GROUPS if g not in ("binding", "bind_offset"))),
    "ASM without GMM weights": ("full", 4, tuple(g for g in ALL_GROUPS if not g.startswith("gaussian"))),
    "ASM full, cap 8": ("full", 8, ALL_GROUPS),
    "ASM game preset, cap 4": ("game", 4, ALL_GROUPS),
}


def load_scan(relative: str, direction):
    """Scan vertices, triangles (in the file's object space) and MediaPipe landmarks (478, 3) with validity."""
    import bpy
    from mathutils import Vector

    from asm_blender.scene_io.mesh import mesh_arrays
    from asm_blender.scene_io.views import landmarks_from_renders
    from solver.vision.photos import detect_face_landmarks_in_file

    bpy.ops.wm.read_homefile(use_empty=True)
    path = SHARED / relative
    if path.suffix == ".glb":
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        bpy.ops.wm.obj_import(filepath=str(path))
    scan = next(o for o in bpy.data.objects if o.type == 'MESH')
    arrays = mesh_arrays(scan)
    with tempfile.TemporaryDirectory() as tmp:
        found = landmarks_from_renders(scan, arrays, detect_face_landmarks_in_file, Path(tmp), Vector(direction))
    return arrays.vertices, arrays.triangles, found.positions, found.valid


def morphable_icp(neutral, basis, triangles, scan, iterations=10, ridge=1e-4):
    """ICT 3DMM fitted to scan points (already roughly aligned) by iterated closest points: each round
    re-aligns the scan with a similarity (Umeyama) and solves the 153 coefficients by ridge least squares.
    Returns the shape and the similarity that maps the given points onto it."""
    shape = neutral.copy()
    moved = scan.copy()
    per_vertex = basis.reshape(len(neutral), 3, -1)
    for _ in range(iterations):
        closest, tri, bary, distance = closest_points_on_mesh(moved, shape, triangles)
        keep = distance <= np.percentile(distance, 90)
        moved = similarity_transform(moved[keep], closest[keep]).apply(moved)
        closest, tri, bary, distance = closest_points_on_mesh(moved, shape, triangles)
        keep = distance <= np.percentile(distance, 90)
        ids, weights = triangles[tri[keep]], bary[keep]
        rows = np.einsum("pc,pcdk->pdk", weights, per_vertex[ids]).reshape(-1, per_vertex.shape[-1])
        rhs = (moved[keep] - np.einsum("pc,pcd->pd", weights, neutral[ids])).reshape(-1)
        coefficients = np.linalg.solve(rows.T @ rows + ridge * len(rhs) * np.eye(rows.shape[1]), rows.T @ rhs)
        shape = neutral + (basis @ coefficients).reshape(neutral.shape)
    return shape, similarity_transform(scan, moved)


def _row(scan_name, model, scan, errors, in_crop, metres, parameters, turned, seconds) -> dict:
    eye = scan.eye_distance
    tight = np.linalg.norm(scan.vertices - scan.nose_tip, axis=1) <= (TIGHT_CROP_MM / 1000 / metres if metres
                                                                      else 0.6 * eye)
    rms = float(np.sqrt((errors[in_crop] ** 2).mean()))
    rms_tight = float(np.sqrt((errors[tight] ** 2).mean()))
    return {"scan": scan_name, "model": model, "parameters": parameters, "rms_over_eye_distance": rms / eye,
            "rms_mm": rms * metres * 1000 if metres else None,
            "rms_tight_mm": rms_tight * metres * 1000 if metres else None,
            "rms_tight_over_eye_distance": rms_tight / eye, "turned_face_triangles": turned,
            "points": int(in_crop.sum()), "seconds": seconds}


def run(quality: str = "fast", ablations: bool = False, threads: int = 2) -> list[dict]:
    torch.set_num_threads(threads)
    vertices, triangles, corner_uv = ict_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_head_landmarks.json")
    models = {**MODELS, **(ABLATIONS if ablations else {})}
    rigs = {(p, c): place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings(p, c))[0]
            for p, c, _ in models.values()}
    shapes = np.load(SHARED / "ict_facekit" / "ict_shapes.npz")
    in_kit = np.flatnonzero(shapes["expression_in_kit_list"])
    basis = np.concatenate([shapes["identity_offsets"][:, :HEAD_VERTICES],
                            shapes["expression_offsets"][in_kit][:, :HEAD_VERTICES]]).astype(np.float64)
    basis = basis.reshape(len(basis), -1).T
    rows = []
    from benchmarks.capacity import parameter_count

    for name, (relative, direction, metres) in SCANS.items():
        scan_vertices, scan_triangles, scan_landmarks, scan_valid = load_scan(relative, direction)
        scan = prepare_scan(scan_vertices, scan_triangles, scan_landmarks, scan_valid, name)
        print(f"{name}: {len(scan.vertices)} vertices, outer-eye-corner distance {scan.eye_distance:.4g} units "
              f"({scan.eye_distance * metres * 1000:.0f} mm)" if metres else
              f"{name}: {len(scan.vertices)} vertices, outer-eye-corner distance {scan.eye_distance:.4g} units",
              flush=True)
        fitted = None
        for model_name, (preset, cap, groups) in models.items():
            rig = rigs[(preset, cap)]
            model = ASMModel(rig, vertices, triangles, GenerateSettings(preset, cap).weight_config())
            settings = ScanFitSettings(quality, groups=groups)
            fitted = fit_to_scan(model, landmarks, valid, scan, settings)
            if len(rows) == 0 or rows[-1]["scan"] != name:  # the unfitted rig, after the landmark alignment
                rows.append(_row(name, "unfitted rig (after alignment)", scan, fitted.error_before, fitted.in_crop,
                                 metres, 0, 0.0, 0.0))
            rows.append(_row(name, model_name, scan, fitted.error_after, fitted.in_crop, metres,
                             parameter_count(rig, settings.stages(rig.names), 3), fitted.turned, fitted.seconds))
            print(f"  {model_name:<34} {rows[-1]['rms_over_eye_distance']:.4f} eye distances, "
                  f"{fitted.turned:.1%} folded, {fitted.seconds:.0f} s", flush=True)
        began = time.perf_counter()
        start, _ = landmark_start(vertices, triangles, landmarks, valid, scan)
        moved = start.apply(scan.points)
        cropped = np.linalg.norm(scan.points - scan.nose_tip, axis=1) <= 1.05 * scan.eye_distance
        shape, to_shape = morphable_icp(vertices, basis, triangles, moved[cropped])
        both = Similarity(to_shape.scale * start.scale, to_shape.rotation @ start.rotation,
                          to_shape.scale * to_shape.rotation @ start.translation + to_shape.translation)
        errors, _, _ = scan_errors(scan, both, shape, triangles)  # measured as every rig is
        rows.append(_row(name, "ICT 3DMM (ICP, same alignment)", scan, errors, fitted.in_crop, metres, basis.shape[1],
                         0.0, time.perf_counter() - began))
    return rows


def print_rows(rows) -> None:
    print(f"\n{'scan':<16} {'model':<34} {'params':>7} {'RMS/eye':>8} {'0.6 eye':>8} {'mm':>6} {'60mm':>6} "
          f"{'folded':>7} {'s':>5}")
    for row in rows:
        mm = f"{row['rms_mm']:6.2f}" if row["rms_mm"] is not None else "     -"
        tight = f"{row['rms_tight_mm']:6.2f}" if row["rms_tight_mm"] is not None else "     -"
        print(f"{row['scan']:<16} {row['model']:<34} {row['parameters']:>7} {row['rms_over_eye_distance']:8.4f} "
              f"{row['rms_tight_over_eye_distance']:8.4f} {mm} {tight} {row['turned_face_triangles']:7.1%} "
              f"{row['seconds']:5.0f}")


def report(rows, quality: str) -> None:
    print(f"\ncapacity on real scans ({quality} fits)")
    print_rows(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "capacity_scans.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {RESULTS / 'capacity_scans.csv'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="ASM capacity on real scans vs static skinning and the ICT 3DMM")
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="fast")
    parser.add_argument("--ablations", action="store_true", help="also the ablation rows (about twice as long)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not (SHARED / "ict_facekit").is_dir():
        print(f"error: this benchmark needs ../shared/data (not found at {SHARED})", file=sys.stderr)
        return 2
    report(run(args.quality, args.ablations, args.threads), args.quality)
    return 0


if __name__ == "__main__":
    sys.exit(main())
