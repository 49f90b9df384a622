"""Speed and peak memory of the photo fit per stage, for heads of about 5k, 25k and 100k vertices and 1, 4 and 8
photos (default fit, fast quality, 2 threads).

    .venv/bin/python -m benchmarks.fit_speed [--sizes 5000 25000 100000] [--photos 1 4 8] [--quality fast]

Heads: the bundled sample head subdivided and decimated to each size (benchmarks/generate_speed.py), its rig
placed from the sample's landmarks (timed: the solver's part of Generate Rig). Photos: the multi-view benchmark's
Cycles renders of the Lee Perry-Smith scan (out/multiview/lee_perry_smith/, made by benchmarks.multiview.run;
the first N), else the bundled samples/lps_photos (4). Every (size, photos) pair runs in a fresh process, so its
peak resident memory (ru_maxrss: bpy, torch and the fit together) is its own; the fit is the first of that process,
as the solver worker's first fit is. Writes fit_speed.csv.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import exit_after, write_csv  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RENDERS = ROOT / "out" / "multiview" / "lee_perry_smith"


def photo_paths(count: int) -> list[Path]:
    renders = sorted(RENDERS.glob("view_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))
    bundled = sorted((ROOT / "samples" / "lps_photos").glob("photo_*.jpg"))
    chosen = renders if len(renders) >= count else bundled
    if len(chosen) < count:
        raise SystemExit(f"error: {count} photos asked for, {len(renders)} renders in {RENDERS.relative_to(ROOT)} and "
                         f"{len(bundled)} bundled; run benchmarks.multiview.run --views 8 first")
    return chosen[:count]


def measure_one(size: int, photos: int, quality: str, threads: int) -> dict:
    import torch

    from asm_blender.scene_io.mesh import mesh_arrays
    from benchmarks.generate_speed import head_with_vertices
    from benchmarks.multiview.run import detect_views, fit_photos
    from solver.rig.generate import GenerateSettings, place_rig
    from asm_protocol.landmarks import load_landmarks
    from solver.model import ASMModel

    torch.set_num_threads(threads)
    warnings.simplefilter("ignore")
    arrays = mesh_arrays(head_with_vertices(size))
    landmarks, valid = load_landmarks(ROOT / "samples" / "makehuman_head" / "landmarks.json")
    began = time.perf_counter()
    rig, chart = place_rig(arrays.vertices, arrays.triangles, arrays.corner_uv, np.nan_to_num(landmarks), valid,
                           GenerateSettings())
    place_seconds = time.perf_counter() - began
    paths = photo_paths(photos)
    began = time.perf_counter()
    loaded, detections = detect_views(paths)
    detect_seconds = time.perf_counter() - began
    model = ASMModel(rig, arrays.vertices, arrays.triangles)
    began = time.perf_counter()
    fitted = fit_photos(model, landmarks, valid, loaded, detections, quality)
    fit_seconds = time.perf_counter() - began
    return {"target_vertices": size, "vertices": len(arrays.vertices), "photos": photos, "quality": quality,
            "place_rig_s": round(place_seconds, 2), "detect_s": round(detect_seconds, 2),
            **{f"{stage}_s": round(seconds, 2) for stage, seconds in fitted.stage_seconds.items() if stage != "total"},
            "fit_s": round(fit_seconds, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "pixel_error": round(float(fitted.pixel_error_after.mean()), 2), "photo_source": paths[0].parent.name}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000, 100000])
    parser.add_argument("--photos", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one size and photo count
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure_one(args.sizes[0], args.photos[0], args.quality, args.threads)))
        return 0
    rows = []
    for size in args.sizes:
        for photos in args.photos:
            command = [sys.executable, "-m", "benchmarks.fit_speed", "--one", "--sizes", str(size), "--photos",
                       str(photos), "--quality", args.quality, "--threads", str(args.threads)]
            completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
            lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
            if completed.returncode != 0 or not lines:
                print(completed.stderr[-3000:], file=sys.stderr)
                print(f"error: the fit of {photos} photo(s) on {size} vertices failed", file=sys.stderr)
                return 1
            rows.append(json.loads(lines[-1]))
            print(rows[-1], file=sys.stderr, flush=True)
    write_csv(args.out / "fit_speed.csv", rows)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print("  ".join(f"{c:>12}" for c in columns))
    for row in rows:
        print("  ".join(f"{str(row.get(c, '')):>12}" for c in columns))
    return 0


if __name__ == "__main__":
    exit_after(main)
