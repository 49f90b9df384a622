"""`batch MANIFEST`: many heads, each a job in its own process, resumable and failure-isolated (asm_blender/cli/batch)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import manifest as manifests
from .runner import LocalExecutor, Options, Run
from ...protocol import choices
from ...scene_io.mesh import SceneInputError
from ..common import PYTHON_PROG, log


def default_workers(threads: int) -> int:
    """The cores this process may use, over the threads per job."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, threads))


def batch_folder(manifest: Path) -> Path:
    """Where a batch keeps its state, logs and summaries: MANIFEST's name + .batch beside a manifest file, or
    asm_batch/ inside a folder of heads."""
    manifest = manifest.expanduser().resolve()
    return manifest / "asm_batch" if manifest.is_dir() else manifest.with_name(f"{manifest.stem}.batch")


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} batch") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Rig (and fit) many heads listed in a manifest, each job in its own process. The manifest is "
                    "TOML, JSON or CSV with a row per head (mesh, photos, settings, outputs; paths relative to its "
                    "folder), or a folder of HEAD.obj files with HEAD/ photo folders beside them. The whole "
                    "manifest is checked first. A state file records each job, so running the command again "
                    "skips the finished jobs and runs the rest. Progress goes to stderr; a JSON and a Markdown "
                    "summary are written beside the state file.")
    parser.add_argument("manifest", type=Path, help="heads.toml, heads.json, heads.csv or a folder of heads")
    parser.add_argument("--jobs", "-j", type=int, metavar="N",
                        help="jobs at once (default: the cores / --threads)")
    parser.add_argument("--threads", type=int, default=1, metavar="T",
                        help="threads per job for the solver (default 1); on Ray, each task's num_cpus")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="stop a job that runs longer (a row's own `timeout` wins); it is marked failed")
    parser.add_argument("--retry-failed", action="store_true", help="run the jobs that failed before again")
    parser.add_argument("--force", action="store_true", help="run every job again, also the finished ones")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="run the valid rows when some are invalid (they are listed as failed)")
    parser.add_argument("--check", action="store_true",
                        help="check the manifest and say what would run, without running anything")
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run the jobs as Ray tasks: on the cluster at ADDRESS (e.g. auto, or ray://HOST:10001), "
                             "or on a local Ray instance when no address is given; inputs and outputs must be on a "
                             "folder every node sees at the same path")
    parser.add_argument("--batch-dir", type=Path, metavar="DIR",
                        help="where the state file, the logs and the summaries go (default: MANIFEST's name + "
                             ".batch beside it; asm_batch/ inside a folder manifest)")
    defaults = parser.add_argument_group("settings for rows that give none (the manifest's own [defaults] win)")
    defaults.add_argument("--preset", choices=choices.PRESETS)
    defaults.add_argument("--cap", type=int, choices=choices.INFLUENCE_CAPS)
    defaults.add_argument("--quality", choices=choices.QUALITIES)
    defaults.add_argument("--expressions", choices=choices.EXPRESSION_MODES)
    defaults.add_argument("--same-lens", action="store_true", default=None)
    folder = parser.add_argument_group("a folder of heads")
    folder.add_argument("--glb", action="store_true", help="also export each head as asm_out/HEAD.glb")
    folder.add_argument("--fbx", action="store_true", help="also export each head as asm_out/HEAD.fbx")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.jobs is not None and args.jobs < 1):
        raise SceneInputError("--jobs and --threads take a number of 1 or more")
    if args.timeout is not None and not args.timeout > 0:
        raise SceneInputError("--timeout takes a number of seconds above 0")
    executor = None
    if args.ray is not None:
        from .ray_executor import RayMissing, ray_module

        try:
            ray_module()
        except RayMissing as error:
            raise SceneInputError(str(error)) from None
    cli_defaults = {"preset": args.preset, "cap": args.cap, "quality": args.quality,
                    "expressions": args.expressions, "same_lens": args.same_lens, "timeout": args.timeout}
    exports = tuple(key for key in ("glb", "fbx") if getattr(args, key))
    if exports and not args.manifest.is_dir():
        raise SceneInputError("--glb and --fbx are for a folder of heads; in a manifest file give each row's glb / "
                              "fbx path")
    manifest = manifests.read_manifest(args.manifest, cli_defaults, exports)
    skipping = args.skip_invalid and not manifest.fatal
    for problem in manifest.problems:
        log(f"{'skipped: ' if skipping else ''}{problem}")
    if manifest.fatal:
        raise SceneInputError(f"{manifest.path.name}: {len(manifest.problems)} problem(s) (listed above); nothing was "
                              "started. Fix the manifest's own problems first (--skip-invalid leaves out bad rows "
                              "only)" if args.skip_invalid else f"{manifest.path.name}: {len(manifest.problems)} "
                              "problem(s) (listed above); nothing was started. Fix them")
    if manifest.problems and not args.skip_invalid:
        rows = len(manifest.invalid)
        raise SceneInputError(
            f"{manifest.path.name}: {len(manifest.problems)} problem(s)" + (f" in {rows} row(s)" if rows else "")
            + " (listed above); nothing was started. Fix them, or give --skip-invalid to run the "
            f"{len(manifest.jobs)} valid row(s)")
    threads = args.threads
    workers = args.jobs or default_workers(threads)
    folder_path = (args.batch_dir.expanduser().resolve() if args.batch_dir else batch_folder(args.manifest))
    options = Options(batch_dir=folder_path, workers=workers, threads=threads, timeout=args.timeout,
                      retry_failed=args.retry_failed, force=args.force)
    run = Run(manifest, options)
    for decision in run.decisions:
        if not decision.run:
            log(f"skipped: {decision.job.name} ({decision.why})")
    log(f"{len(run.to_run)} of {len(manifest.jobs)} job(s) to run; state in {run.state.path}")
    if args.check:
        listing = [{"name": d.job.name, "where": d.job.where, "run": d.run, "why": d.why,
                    "steps": [s["argv"] for s in run.payloads[d.job.name]["steps"]]} for d in run.decisions]
        if args.json:
            print(json.dumps({"manifest": str(manifest.path), "jobs": listing, "invalid": manifest.invalid},
                             indent=1), flush=True)
        else:
            for decision in run.decisions:
                if decision.run:
                    log(f"would run: {decision.job.name} ({decision.why})")
        return 0
    if args.ray is not None:
        from .ray_executor import RayExecutor, RayMissing

        try:
            executor = RayExecutor(args.ray or None, threads,
                                   local_cpus=args.jobs * threads if args.jobs and not args.ray else None)
        except RayMissing as error:
            raise SceneInputError(str(error)) from None
    else:
        executor = LocalExecutor(workers)
    try:
        summary = run.run(executor)
    except KeyboardInterrupt as stopped:
        from ..stopping import Stopped

        stopped = stopped if isinstance(stopped, Stopped) else Stopped(2)
        totals = run.summary["totals"]
        if args.json:
            print(json.dumps(run.summary, indent=1), flush=True)
        log(f"error: stopped by {run.stopped}: the running jobs were stopped; {totals['done']} done, "
            f"{totals['failed']} failed, {totals['queued']} left, recorded in {run.state.path}; run the same "
            "command again to go on")
        return stopped.exit_code
    totals = summary["totals"]
    if args.json:
        print(json.dumps(summary, indent=1), flush=True)
    where = f"summary in {options.batch_dir / 'summary.md'}"
    if totals["failed"] or totals["invalid"]:
        names = ", ".join(f["name"] for f in summary["failed"][:5]) + (", ..." if len(summary["failed"]) > 5 else "")
        log(f"error: {totals['failed'] + totals['invalid']} of {totals['jobs']} job(s) failed or were invalid "
            f"({names}); {where}; --retry-failed runs the failed ones again")
        return 1
    log(f"done: {totals['done']} job(s) ({totals['done_earlier']} done earlier); {where}")
    return 0
