"""A solver job: a folder with its task, settings and input arrays, run by the shared worker process. `Job.done()`
and `Job.progress()` are cheap enough for a modal operator's timer; `run_blocking` is the headless form that prints
progress on stderr."""
from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..protocol import keys, tasks
from . import dependencies
from .folders import JobError, folder_error, make_folder
from .worker import WorkerServer, stop_worker


WORKER_STOPPED = "the solver process stopped before finishing"  # a batch retries a job that fails with it


@dataclass
class Progress:
    stage: str
    fraction: float
    loss: float | None = None  # the fit's current total loss, for fitting stages


class Job:
    def __init__(self, task: str, settings: dict, inputs: dict[str, np.ndarray], folder: Path | None = None):
        """Write the job's folder (a new temporary one unless `folder` is given); JobError naming the folder when
        it cannot be written."""
        self.task = task
        self.owns_folder = folder is None  # a temporary folder of its own: `discard` removes it
        self.folder = Path(folder) if folder is not None else make_folder("asm_job_")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / tasks.JOB_FILE).write_text(json.dumps({"task": task, "settings": settings}))
            np.savez(self.folder / tasks.INPUTS_FILE, **{k: v for k, v in inputs.items() if v is not None})
        except OSError as error:
            raise folder_error(self.folder, error) from error
        self.server: WorkerServer | None = None

    def start(self) -> "Job":
        missing = dependencies.missing_packages(self.task)
        if missing:  # say which wheel is missing rather than let the worker fail on an import
            raise JobError(tasks.INPUT_ERROR, dependencies.missing_message(missing))
        self.server = WorkerServer.get()
        self.server.submit(self.folder)
        return self

    def progress(self) -> Progress | None:
        path = self.folder / tasks.PROGRESS_FILE
        if not path.exists():
            return None
        lines = path.read_text().strip().splitlines()
        if not lines:
            return None
        try:
            return Progress(**json.loads(lines[-1]))
        except json.JSONDecodeError:  # the worker is writing that line right now
            return None

    def done(self) -> bool:
        return self.server is not None and ((self.folder / tasks.FINISHED_FILE).exists() or not self.server.alive())

    def cancel(self) -> None:
        (self.folder / tasks.CANCEL_FILE).touch()

    def kill(self, grace_seconds: float = 2.0) -> None:
        """Cancel and wait a moment for the worker to stop; a worker stuck in one long step is ended (the next
        job starts a fresh one)."""
        if self.server is None or self.done():
            return
        self.cancel()
        deadline = time.monotonic() + grace_seconds
        while not self.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.done():
            self.server.process.kill()
            self.server.process.wait()

    def wait(self, report, poll_seconds: float = 0.1) -> None:
        """Block until the job is over, passing each new progress to `report(progress)`; Ctrl+C cancels it."""
        last = None
        try:
            while not self.done():
                current = self.progress()
                if current is not None and current != last:
                    report(current)
                    last = current
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            self.cancel()
            self.kill()
            raise

    def result(self) -> dict:
        """The result arrays; raises JobError with the worker's own message on failure."""
        if self.server is None:
            raise JobError(tasks.INTERNAL_ERROR, "the job was never started")
        while not self.done():
            time.sleep(0.02)
        error_path = self.folder / tasks.ERROR_FILE
        if error_path.exists():
            error = json.loads(error_path.read_text())
            raise JobError(error["kind"], error["message"], error.get("traceback", ""))
        result_path = self.folder / tasks.RESULT_FILE
        if not result_path.exists():
            raise self._stopped_error()
        with np.load(result_path, allow_pickle=False) as npz:
            result = {k: npz[k] for k in npz.files}
        result[keys.WARNINGS_KEY] = json.loads(str(result[keys.WARNINGS_KEY]))
        return result

    def discard(self) -> None:
        """Remove the job's own temporary folder once its result is read (a caller's folder stays)."""
        if self.owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _stopped_error(self) -> JobError:
        """The worker process ended (killed, crashed, out of memory) before this job's result: say so plainly, with
        the last line it wrote."""
        code = self.server.process.poll()
        how = (f"killed by signal {-code}" if code is not None and code < 0 else
               f"exit code {code}" if code is not None else "it stopped answering")
        log = self.server.log_tail()
        last = next((line.strip() for line in reversed(log.splitlines()) if line.strip()), "")
        return JobError(tasks.INTERNAL_ERROR, f"{WORKER_STOPPED} the {self.task!r} job "
                                              f"({how}); run it again (a new solver process starts)"
                                              + (f". Its log ends: {last[:200]}" if last else ""), log)


def run_blocking(task: str, settings: dict, inputs: dict[str, np.ndarray], report=None,
                 poll_seconds: float = 0.1) -> dict:
    """Run a job to completion, reporting progress changes through `report(progress)` (stderr by default); its
    folder is removed once the result is read (or the job failed)."""
    report = report or (lambda p: print(f"  {p.stage} {p.fraction:4.0%}" + (f"  loss {p.loss:.4g}" if p.loss is not None
                                                                               else ""), file=sys.stderr))
    with work_folder("asm_job_") as folder:
        job = Job(task, settings, inputs, folder=folder / "job").start()
        job.wait(report, poll_seconds)
        return job.result()


@contextlib.contextmanager
def work_folder(prefix: str):
    """A temporary folder for a flow's jobs, removed afterwards. When the flow is stopped (Ctrl+C, a signal) the
    solver process is stopped first: a job still running or queued would write into the folder while it goes."""
    folder = make_folder(prefix)
    try:
        yield folder
    except KeyboardInterrupt:
        stop_worker()
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def warm_worker() -> Job | None:
    """Start the solver process ahead of the first job and have it load torch and the face models (about two seconds)
    while the user is still busy: the sidebar does this when the ASM tab is first shown, the headless commands
    before they open the mesh. Does nothing when a solver process is running already or packages are missing;
    returns the warm-up job when it started one."""
    if WorkerServer.running() or dependencies.missing_packages(tasks.WARM_UP):
        return None
    try:
        server = WorkerServer.get()
        return Job(tasks.WARM_UP, {}, {}, folder=server.queue / tasks.WARM_UP).start()  # removed with the queue
    except JobError:  # packages missing or no writable temporary folder: the real job will say so
        return None
