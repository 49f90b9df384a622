"""A batch run: which jobs run (the state file says which finished), the executor that runs them, the state
recorded as each job starts and ends, the progress line, a clean stop on SIGINT / SIGTERM, and the summaries.

An executor (LocalExecutor here, ray_executor.RayExecutor) runs job payloads (plan.payload) with process.run_job:
    capacity() -> int           how many jobs it runs at once
    start(payload, on_step)     run one (on_step(attempt, what, pid) as each process starts, where it can tell)
    finished(wait) -> [(payload, result)]   the jobs that ended, waiting up to `wait` seconds for one
    stop()                      ask every running job to stop (their processes get SIGTERM)
    busy() -> bool              whether a job still runs or its result waits to be collected
    close()
"""
from __future__ import annotations

import datetime
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ...scene_io.mesh import SceneInputError
from . import plan, process, report
from .manifest import Job, Manifest
from .state import DONE, FAILED, QUEUED, RUNNING, StateFile, intact


class LocalExecutor:
    """`workers` jobs at once on this machine: a thread per running job, which only waits on the job's processes."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self._stop = threading.Event()
        self._results: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []

    def capacity(self) -> int:
        return self.workers

    def start(self, payload: dict, on_step) -> None:
        thread = threading.Thread(target=self._run, args=(payload, on_step), name=f"job {payload['name']}",
                                  daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, payload: dict, on_step) -> None:
        try:
            result = process.run_job(payload, self._stop, on_step)
        except Exception as error:  # noqa: BLE001 - a bug here must fail this job only, and say so
            result = failed_result(f"the batch could not run this job ({type(error).__name__}: {error})")
        self._results.put((payload, result))

    def finished(self, wait: float) -> list[tuple[dict, dict]]:
        ended = []
        try:
            ended.append(self._results.get(timeout=wait))
            while True:
                ended.append(self._results.get_nowait())
        except queue.Empty:
            pass
        self._threads = [t for t in self._threads if t.is_alive()]
        return ended

    def stop(self) -> None:
        self._stop.set()

    def busy(self) -> bool:
        """Whether a job is still running or its result not collected yet."""
        return any(t.is_alive() for t in self._threads) or not self._results.empty()

    def close(self) -> None:
        pass


def failed_result(reason: str, status: str = "failed") -> dict:
    now = time.time()
    return {"status": status, "reason": reason, "attempts": 0, "started": now, "finished": now, "seconds": 0.0,
            "outputs": {}, "summaries": [], "crashes": []}


@dataclass
class Options:
    batch_dir: Path
    workers: int
    threads: int = 1
    timeout: float | None = None
    retry_failed: bool = False
    force: bool = False
    grace: float = 15.0
    prefix: list[str] = field(default_factory=plan.command_prefix)


@dataclass
class Decision:
    job: Job
    run: bool
    why: str  # why it runs, or why not


def decide(manifest: Manifest, state: StateFile, payloads: dict[str, dict], options: Options) -> list[Decision]:
    """For each job: run it, or leave it as the state file has it (done with its outputs intact, or failed
    without --retry-failed)."""
    decisions = []
    for job in manifest.jobs:
        record = state.latest.get(job.name)
        status = record["status"] if record else None
        if options.force:
            decisions.append(Decision(job, True, "--force"))
        elif status == DONE:
            if record.get("spec") != payloads[job.name]["spec"]:
                decisions.append(Decision(job, True, "its row or its inputs changed since it was done"))
            elif (problem := intact(record.get("outputs") or {})) is not None:
                decisions.append(Decision(job, True, f"done earlier, but {problem}"))
            else:
                decisions.append(Decision(job, False, "done earlier, outputs intact"))
        elif status == FAILED and not options.retry_failed:
            decisions.append(Decision(job, False, f"failed earlier ({record.get('reason')}); --retry-failed runs "
                                                  "it again"))
        else:
            decisions.append(Decision(job, True, {None: "new", QUEUED: "not run yet", RUNNING: "interrupted",
                                                  FAILED: "--retry-failed"}.get(status, "new")))
    return decisions


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def _essentials(summary: dict) -> dict:
    """What the summary keeps of a command's --json summary."""
    keys = ("bones", "vertices", "landmarks", "landmarks_from", "preset", "influence_cap", "face_direction",
            "pixel_error_after", "quality", "expressions", "warnings", "notes", "seconds", "blend", "glb", "output")
    return {k: summary[k] for k in keys if k in summary}


class Run:
    """One run of a batch: call `run(executor)`; the summary is returned and written beside the state file."""

    def __init__(self, manifest: Manifest, options: Options):
        self.manifest, self.options = manifest, options
        self.folder = Path(options.batch_dir)
        self.logs = self.folder / "logs"
        self.state = StateFile(self.folder / "state.jsonl")
        self.payloads = {job.name: plan.payload(job, options.prefix, self.logs, options.threads, options.timeout,
                                                options.grace) for job in manifest.jobs}
        self.decisions = decide(manifest, self.state, self.payloads, options)
        self.ran: set[str] = set()
        self.stopped: str | None = None

    @property
    def to_run(self) -> list[Job]:
        return [d.job for d in self.decisions if d.run]

    def run(self, executor) -> dict:
        """Run the jobs to run on `executor`; the summary. On SIGINT / SIGTERM (KeyboardInterrupt) or any error
        here, the running jobs are stopped and recorded before it propagates: no job outlives the batch."""
        try:  # before anything runs: a batch that cannot keep its state must not start
            self.logs.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SceneInputError(f"cannot make the batch folder {self.folder} ({error.strerror or error}); give "
                                  "--batch-dir a folder you can write to") from None
        started = time.monotonic()
        pending = deque(self.to_run)
        running: dict[str, Job] = {}
        counts = {"done": 0, "failed": 0}
        progress = report.Progress(len(pending), executor.capacity())
        try:
            for job in pending:
                self.state.record(job.name, QUEUED, spec=self.payloads[job.name]["spec"], where=job.where)
            progress.update(0, 0, 0, force=True)
            while pending or running:
                while pending and len(running) < executor.capacity():
                    job = pending.popleft()
                    self.ran.add(job.name)
                    self.state.record(job.name, RUNNING, spec=self.payloads[job.name]["spec"], attempt=1,
                                      step=None, pid=None, where=job.where, started_at=report_now())
                    executor.start(self.payloads[job.name], self._on_step(job))
                    running[job.name] = job
                    progress.update(counts["done"], counts["failed"], len(running))
                self._collect(executor.finished(0.5), running, counts, progress)
                progress.update(counts["done"], counts["failed"], len(running))
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                from ..stopping import SIGNALS

                self.stopped = SIGNALS.get(getattr(error, "signum", 2), "SIGINT (Ctrl+C)")
            else:
                self.stopped = f"an error in the batch: {type(error).__name__}: {error}"
            progress.message(f"stopping: {len(running)} running job(s) get SIGTERM; finished jobs stay recorded")
            executor.stop()
            while running and executor.busy():  # each ends within its grace time (then SIGKILL)
                self._collect(executor.finished(0.5), running, counts, progress)
            self._collect(executor.finished(0.0), running, counts, progress)
            for name in list(running):  # a result lost to the signal: the job runs again next time
                self._record(running.pop(name), failed_result("the batch was stopped", status="stopped"))
            raise
        finally:
            progress.close()
            self.summary = self._summary(time.monotonic() - started, executor)
            executor.close()
            report.write_summaries(self.folder, self.summary)
        return self.summary

    def _collect(self, ended, running: dict, counts: dict, progress) -> None:
        for payload, result in ended:
            job = running.pop(payload["name"])
            if self._record(job, result):
                counts["done"] += 1
            elif result["status"] != "stopped":
                counts["failed"] += 1
                progress.message(f"failed: {job.name} ({job.where}): {result['reason']}")
            progress.update(counts["done"], counts["failed"], len(running))

    def _on_step(self, job: Job):
        spec = self.payloads[job.name]["spec"]

        def on_step(attempt: int, what: str, pid: int | None) -> None:
            self.state.record(job.name, RUNNING, spec=spec, attempt=attempt, step=what, pid=pid, where=job.where,
                              started_at=report_now())
        return on_step

    def _record(self, job: Job, result: dict) -> bool:
        """The job's end in the state file; True when it is done. A job the batch stopped is queued again."""
        spec = self.payloads[job.name]["spec"]
        common = dict(spec=spec, where=job.where, reason=result["reason"], attempts=result["attempts"],
                      started_at=_iso(result["started"]), finished_at=_iso(result["finished"]),
                      seconds=result["seconds"], outputs=result["outputs"], crashes=result["crashes"],
                      summaries=[_essentials(s) for s in result["summaries"]],
                      log=os.path.relpath(self.payloads[job.name]["log"], self.folder))
        if result["status"] == "done":
            self.state.record(job.name, DONE, **common)
            return True
        if result["status"] == "stopped":
            self.state.record(job.name, QUEUED, **{**common, "reason": "stopped when the batch was stopped; it "
                                                                         "runs again next time"})
            return False
        self.state.record(job.name, FAILED, **common)
        return False

    def _summary(self, wall: float, executor) -> dict:
        entries = []
        for decision in self.decisions:
            job = decision.job
            record = self.state.latest.get(job.name)
            log = record.get("log") if record else None
            entries.append(report.job_entry(job.name, job.where, record, job.name in self.ran,
                                            str(self.folder / log) if log else None))
        return report.summary(str(self.manifest.path), str(self.state.path), executor.name, executor.capacity(),
                              entries, list(self.manifest.invalid), wall, self.stopped)


def report_now() -> str:
    from .state import now

    return now()
