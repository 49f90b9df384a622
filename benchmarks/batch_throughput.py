"""Throughput of `asm batch` (issue 20): generate-only jobs (game preset, the sample head) on the local pool with 1
and 2 processes, on a local Ray instance when Ray is installed, and one in-process Generate for the per-job
overhead (a process per job pays its start: Python, bpy, the add-on, the solver worker's torch and face models).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.batch_throughput [--jobs-per-run 6] [--pools 1 2] [--ray]

Each pool runs the same manifest of --jobs-per-run heads with --force. The in-process figure: `generate` run
--jobs-per-run times in one process (the first run starts the solver worker; the mean of the later ones is a warm
Generate). Columns: wall s = the batch's own time from its first job to its summary (jobs per minute from it);
command s = the whole command (Python, bpy and, for Ray, starting the local instance); s/job = the mean wall time
of one job; overhead = s/job minus a warm in-process Generate. Prints a table and writes
benchmarks/results/batch_throughput.csv; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_csv

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
HEAD = PROJECT_ROOT / "samples" / "makehuman_head" / "base_head.obj"

IN_PROCESS = """
import json, sys, time
from asm_blender import cli
times = []
for i, out in enumerate(sys.argv[2:]):
    started = time.perf_counter()
    assert cli.main(["generate", sys.argv[1], "-o", out, "--preset", "game"]) == 0
    times.append(time.perf_counter() - started)
print("TIMES", json.dumps(times), flush=True)
import os
os._exit(0)  # the bpy module can hang at interpreter exit
"""


def environment(tmp: Path) -> dict[str, str]:
    return dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join(
        filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))


def in_process(folder: Path, count: int) -> list[float]:
    outputs = [str(folder / f"inproc_{i}.blend") for i in range(count)]
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", IN_PROCESS, str(HEAD), *outputs], capture_output=True, text=True,
                         env=environment(folder), cwd=folder)
    wall = time.perf_counter() - started
    line = next((text for text in run.stdout.splitlines() if text.startswith("TIMES ")), None)
    if run.returncode != 0 or line is None:
        raise SystemExit(f"the in-process Generate failed:\n{run.stderr[-3000:]}")
    times = json.loads(line[len("TIMES "):])
    return [wall, *times]


def batch(folder: Path, manifest: Path, *options: str) -> dict:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "asm_blender", "batch", str(manifest), "--force", "--json",
                          *options], capture_output=True, text=True, env=environment(folder), cwd=folder)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"the batch {' '.join(options)} failed:\n{run.stderr[-3000:]}")
    summary = json.loads(run.stdout)
    return {"wall": wall, "batch_wall": summary["totals"]["wall_seconds"],
            "mean_job": summary["totals"]["mean_job_seconds"], "jobs": summary["totals"]["ran_now"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs-per-run", type=int, default=6)
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--ray", action="store_true", help="also on a local Ray instance with the largest pool's CPUs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="asm_batch_bench_"))
    try:
        shutil.copy(HEAD, folder / "head.obj")
        rows_text = '[defaults]\npreset = "game"\n\n' + "".join(
            f'[[head]]\nname = "h{i}"\nmesh = "head.obj"\noutput = "out/h{i}.blend"\n\n'
            for i in range(args.jobs_per_run))
        (folder / "heads.toml").write_text(rows_text)
        rows = []
        times = in_process(folder, args.jobs_per_run)
        warm = sum(times[2:]) / max(1, len(times) - 2)
        rows.append({"run": "in-process generate (one process)", "processes": 1, "jobs": args.jobs_per_run,
                     "wall_s": round(times[0], 1), "command_wall_s": round(times[0], 1),
                     "jobs_per_min": round(args.jobs_per_run / times[0] * 60, 2),
                     "per_job_s": round(warm, 2), "first_s": round(times[1], 2)})
        for pool in args.pools:
            result = batch(folder, folder / "heads.toml", "--jobs", str(pool))
            rows.append({"run": f"local pool, {pool} process(es)", "processes": pool, "jobs": result["jobs"],
                         "wall_s": round(result["batch_wall"], 1), "command_wall_s": round(result["wall"], 1),
                         "jobs_per_min": round(result["jobs"] / result["batch_wall"] * 60, 2),
                         "per_job_s": result["mean_job"],
                         "overhead_vs_in_process_s": round(result["mean_job"] - warm, 2)})
        if args.ray:
            pool = max(args.pools)
            result = batch(folder, folder / "heads.toml", "--ray", "--jobs", str(pool))
            rows.append({"run": f"local Ray, {pool} CPUs", "processes": pool, "jobs": result["jobs"],
                         "wall_s": round(result["batch_wall"], 1), "command_wall_s": round(result["wall"], 1),
                         "jobs_per_min": round(result["jobs"] / result["batch_wall"] * 60, 2),
                         "per_job_s": result["mean_job"],
                         "overhead_vs_in_process_s": round(result["mean_job"] - warm, 2)})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'run':36} {'jobs':>4} {'wall s':>7} {'command s':>9} {'jobs/min':>9} {'s/job':>6} {'overhead s':>10}")
    for row in rows:
        print(f"{row['run']:36} {row['jobs']:>4} {row['wall_s']:>7} {row['command_wall_s']:>9} "
              f"{row['jobs_per_min']:>9} {row['per_job_s']:>6} {row.get('overhead_vs_in_process_s', '-'):>10}")
    print(f"wrote {write_csv(RESULTS / 'batch_throughput.csv', rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
