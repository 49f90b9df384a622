"""Speed of Generate Rig end to end (renders, landmark detection, solver, write-back) on heads of 5k-100k vertices.

    .venv/bin/python -m benchmarks.generate_speed [--sizes 5000 25000 100000] [--runs 2] [--modal] [--warm-up]

The bundled sample head (MakeHuman, 4,280 vertices) is subdivided and decimated to about each size;
every size is generated `--runs` times in one Blender session: the first run of the session also starts the
solver worker (Python, torch and MediaPipe imports), later runs reuse it, as an artist's second Generate does.
With --warm-up the solver process is started and loaded first, as opening the sidebar's ASM tab does.
Per run: seconds per phase (from the progress statuses) and in total. With --modal, each size is also driven as the
sidebar's modal operator drives it (one step per timer tick). Writes benchmarks/results/generate_speed.csv.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
PHASES = {"finding": "direction", "rendering": "views", "placing": "lift", "solver": "solver", "writing": "write",
          "reading": "read"}


def head_with_vertices(target: int):
    """The sample head subdivided (Catmull-Clark) past `target` vertices, then decimated to about `target`."""
    import bpy

    from asm_blender.cli.sample import SAMPLE_MESH
    from asm_blender.scene_io.sample import import_obj

    bpy.ops.wm.read_homefile(use_empty=True)
    head = import_obj(SAMPLE_MESH)
    head.name = "Head"
    bpy.context.view_layer.objects.active = head
    levels = 0
    while len(head.data.vertices) * 4 ** levels < target:
        levels += 1
    if levels:
        modifier = head.modifiers.new("subdivide", 'SUBSURF')
        modifier.levels = levels
        bpy.ops.object.modifier_apply(modifier=modifier.name)
        modifier = head.modifiers.new("decimate", 'DECIMATE')
        modifier.ratio = target / len(head.data.vertices)
        bpy.ops.object.modifier_apply(modifier=modifier.name)
    return head


def modal_run(steps, report) -> dict:
    """Drive `steps` as the modal operator does: one StepRunner tick per timer event. Blender's window timer is
    modelled as firing TIMER_SECONDS after the last tick ended (its worst case; redraws not counted)."""
    from asm_blender.flows.steps import StepRunner
    from asm_blender.operators.base import TIMER_SECONDS

    runner = StepRunner(steps)
    while True:
        time.sleep(TIMER_SECONDS)
        try:
            status = runner.tick()
        except StopIteration as finished:
            return finished.value
        if status is not None:
            report(status)


def timed_generate(head, modal: bool = False) -> dict:
    from asm_blender.flows.generate import GenerateOptions, generate_steps
    from asm_blender.flows.steps import run_to_completion

    marks = []

    def report(status):
        marks.append((time.perf_counter(), status.text))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        steps = generate_steps(head, GenerateOptions(preset="full", detect_again=True), Path(tmp))
        summary = modal_run(steps, report) if modal else run_to_completion(steps, report)
    total = time.perf_counter() - started
    phases: dict[str, float] = {}
    times = [started] + [t for t, _ in marks] + [started + total]
    labels = ["start"] + [text for _, text in marks]
    for (begin, end, label) in zip(times[:-1], times[1:], labels):
        key = next((name for word, name in PHASES.items() if label.startswith(word)), "other")
        phases[key] = phases.get(key, 0.0) + end - begin
    return {"vertices": summary["vertices"], "landmarks": summary["landmarks"], "total_s": round(total, 2),
            **{f"{key}_s": round(value, 2) for key, value in phases.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000, 100000])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--modal", action="store_true",
                        help="also drive each size as the sidebar's modal operator does (timer ticks)")
    parser.add_argument("--warm-up", action="store_true",
                        help="start the solver process first and wait for its warm-up, as opening the ASM tab does")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from asm_blender.cli.common import addon_registered, stdout_to_stderr

    rows = []
    with stdout_to_stderr(), addon_registered():
        if args.warm_up:
            from asm_blender import jobs

            started = time.perf_counter()
            jobs.warm_worker().wait(lambda progress: None, 0.02)
            print(f"warm-up (solver process started, torch and MediaPipe loaded): "
                  f"{time.perf_counter() - started:.2f} s", file=sys.stderr, flush=True)
        for size in args.sizes:
            for mode in ("headless", "modal") if args.modal else ("headless",):
                for run in range(args.runs):
                    head = head_with_vertices(size)
                    row = {"target": size, "mode": mode, "run": run + 1, **timed_generate(head, mode == "modal")}
                    rows.append(row)
                    print(row, file=sys.stderr, flush=True)
    columns = sorted({key for row in rows for key in row},
                     key=lambda k: (k not in ("target", "mode", "run", "vertices"), k))
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "generate_speed.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, columns)
        writer.writeheader()
        writer.writerows(rows)
    print("\nGenerate Rig, full preset, automatic face direction (run 1 of the session starts the worker; modal: "
          "the sidebar operator's timer ticks, modelled)")
    print("  ".join(f"{c:>10}" for c in columns))
    for row in rows:
        print("  ".join(f"{row.get(c, ''):>10}" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
