"""Generate Rig on every head in ../shared/data, as an artist would: open the file, (optionally) delete its UV
maps, press Generate with automatic face direction, look at the rig posed.

    .venv/bin/python -m benchmarks.generate_heads [--preset full|game] [--heads NAME ...] [--no-uv-runs]

Per head and UV state: vertices, landmarks found, face direction found, chart used, seconds (whole Generate,
renders + detection + solver + write-back), notes, and the exactness of Blender's evaluated mesh against the
solver's forward pass under random 9-DoF poses (from the armature and groups in the scene). Writes
`benchmarks/results/heads/<head>.png` (PICTURE_POSES: front, 35 degrees, mouth and eyes close up),
`benchmarks/results/generate_heads.png` (every head's front views over their close-ups; copy it to docs/ by hand)
and `benchmarks/results/generate_heads.csv`.
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

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared" / "data"
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
HEADS = {
    "ict_facekit": "ict_facekit/generic_neutral_mesh.obj",
    "lee_perry_smith": "lee_perry_smith/LeePerrySmith.glb",
    "fran": "vtk_fran_face/fran_cut.obj",
    "makehuman": "makehuman_base/base_head.obj",
    "mediapipe_canonical": "mediapipe_canonical_face/canonical_face_model.obj",
}
PICTURE_POSES = ("neutral", "jaw open", "smile", "pucker", "blink", "brows up")  # solver/template/demo_poses.json
SHEET_SIZE = 320  # the front views of the contact sheet, pixels; its close-ups are half as wide


def exactness(head, arm) -> float:
    """Max |Blender - solver| over three random 9-DoF poses, as a fraction of the head's size."""
    import torch

    from asm_blender.scene_io import armature as armature_io
    from asm_blender.scene_io.mesh import mesh_arrays
    from asm_blender.scene_io.rig import RIG_PROPERTY
    from solver.model.kinematics import forward_kinematics, local_pose_matrices, skinning_matrices
    from solver.model.weights import CappedWeights, blend_vertices

    record = json.loads(arm[RIG_PROPERTY])
    names, parents = record["names"], np.array(record["parents"])
    free = np.array(record["free"], dtype=float)
    bind = torch.as_tensor(armature_io.rest_matrices(arm, names).astype(np.float64))  # float32 on Blender 5.0
    weights = armature_io.read_weights(head, names)
    order = np.argsort(-weights, axis=1)[:, :8]
    capped = CappedWeights(torch.as_tensor(order), torch.as_tensor(np.take_along_axis(weights, order, 1)))
    vertices = mesh_arrays(head).vertices
    size = float(np.ptp(vertices, axis=0).max())
    worst = 0.0
    for seed in range(3):
        generator = np.random.default_rng(seed)
        pose = [scale * generator.normal(size=(len(names), 3)) * free[:, g:g + 1]
                for g, scale in enumerate((0.15, 0.35, 0.03 * record["head_unit"]))]
        armature_io.set_pose(arm, names, *pose)
        local = local_pose_matrices(*(torch.as_tensor(p) for p in pose))
        solver = blend_vertices(torch.as_tensor(vertices), skinning_matrices(bind, forward_kinematics(bind, local, parents)),
                                capped).numpy()
        worst = max(worst, float(np.abs(armature_io.evaluated_vertices(head) - solver).max()) / size)
    armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
    return worst


def picture(head, arm, output: Path, label: str) -> None:
    """`output`: per pose (columns) the front and 35-degree views and the mouth and eyes close up (rows);
    `<output>_front.png`: one row for the contact sheet, per pose the front view over its two close-ups."""
    from asm_blender.scene_io import armature as armature_io
    from asm_blender.scene_io.rig import RIG_PROPERTY
    from mathutils import Vector

    from asm_blender.scene_io.views import pose_views, tile_images
    from solver.template.poses import load_named_poses

    record = json.loads(arm[RIG_PROPERTY])
    names = record["names"]
    poses = load_named_poses(names, record["head_unit"])
    direction = Vector(json.loads(head.asm.summary)["direction_vector"] or (0.0, -1.0, 0.0))

    with tempfile.TemporaryDirectory() as tmp:
        columns, cells = [], []
        for pose_name in PICTURE_POSES:
            pose = poses[pose_name]
            armature_io.set_pose(arm, names, pose["log_scale"], pose["rotvec"], pose["translation"])
            folder = Path(tmp) / pose_name.replace(" ", "_")
            columns.append(pose_views(head, arm, folder, label=f"{label}: {pose_name}",
                                      size=SHEET_SIZE, face_direction=direction))
            small = pose_views(head, arm, folder / "small", yaw_degrees=(), size=SHEET_SIZE // 2,
                               face_direction=direction)  # the close-ups at half size, side by side
            close = tile_images([small], folder / "close_ups.png")
            cells.append(tile_images([[columns[-1][0]], [close]], folder / "cell.png"))
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
        tile_images([list(row) for row in zip(*columns)], output)
        tile_images([cells], output.with_name(output.stem + "_front.png"))


def run_head(key: str, remove_uv: bool, preset: str, pictures: bool) -> dict:
    import bpy

    from asm_blender.flows.generate import GenerateOptions, generate_steps
    from asm_blender.flows.steps import run_to_completion
    from asm_blender.scene_io.importers import open_head
    from asm_blender.scene_io.rig import existing_rig

    bpy.ops.wm.read_homefile(use_empty=True)
    head, notes = open_head(SHARED / HEADS[key])
    if remove_uv:
        while head.data.uv_layers:
            head.data.uv_layers.remove(head.data.uv_layers[0])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_to_completion(generate_steps(head, GenerateOptions(preset=preset), Path(tmp)),
                                    report=lambda status: None)
    seconds = time.perf_counter() - started
    head.asm.summary = json.dumps(summary)
    arm = existing_rig(head)
    row = {"head": key, "uv": "removed" if remove_uv else "kept", "vertices": summary["vertices"],
           "landmarks": summary["landmarks"], "face_direction": summary["face_direction"], "chart": summary["chart"],
           "bones": summary["bones"], "seconds": round(seconds, 2), "notes": len(notes + summary["warnings"]),
           "max_error_per_head_size": exactness(head, arm)}
    if pictures:
        (RESULTS / "heads").mkdir(parents=True, exist_ok=True)
        picture(head, arm, RESULTS / "heads" / f"{key}{'_no_uv' if remove_uv else ''}.png",
                f"{key}{' (no UVs)' if remove_uv else ''}")
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=("full", "standard", "game"), default="full")
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS))
    parser.add_argument("--no-uv-runs", action="store_true", help="skip the runs with the UV maps removed")
    parser.add_argument("--no-pictures", action="store_true")
    args = parser.parse_args(argv)
    if not (SHARED / "README.md").is_file():
        print(f"this benchmark needs the shared data folder ({SHARED.name} in ../shared)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(PROJECT_ROOT))
    from asm_blender.cli.common import addon_registered, stdout_to_stderr

    rows = []
    with stdout_to_stderr(), addon_registered():
        for key in args.heads:
            for remove_uv in (False, True)[:1 if args.no_uv_runs else 2]:
                try:
                    rows.append(run_head(key, remove_uv, args.preset, not args.no_pictures))
                except Exception as error:  # noqa: BLE001 - a head that fails is a row of the report
                    rows.append({"head": key, "uv": "removed" if remove_uv else "kept", "error": str(error)})
                print(rows[-1], file=sys.stderr, flush=True)
    fronts = [RESULTS / "heads" / f"{row['head']}_front.png" for row in rows if row.get("uv") == "kept"]
    if not args.no_pictures and fronts and all(path.exists() for path in fronts):
        import bpy  # noqa: F401  (Blender's image I/O)

        from asm_blender.scene_io.views import tile_images

        tile_images([[path] for path in fronts], RESULTS / "generate_heads.png")
    columns = ["head", "uv", "vertices", "landmarks", "face_direction", "chart", "bones", "seconds", "notes",
               "max_error_per_head_size", "error"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "generate_heads.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nGenerate Rig on the shared heads ({args.preset} preset)")
    print(f"{'head':20} {'UVs':8} {'verts':>6} {'lmks':>4} {'facing':>20} {'chart':>9} {'s':>6} {'notes':>5} {'exact':>8}")
    for row in rows:
        if "error" in row:
            print(f"{row['head']:20} {row['uv']:8} FAILED: {row['error']}")
            continue
        print(f"{row['head']:20} {row['uv']:8} {row['vertices']:6d} {row['landmarks']:4d} {row['face_direction']:>20} "
              f"{row['chart']:>9} {row['seconds']:6.1f} {row['notes']:5d} {row['max_error_per_head_size']:8.1e}")
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
