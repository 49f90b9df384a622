"""Solver jobs in a worker process: the Blender side never imports torch and never blocks on the solver.

A job is a folder (see solver/worker.py for the protocol), run by one shared worker process. `Job.done()` and
`Job.progress()` are cheap enough for a modal operator's timer; `run_blocking` is the headless form that prints
progress on stderr.
"""
from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dependencies
from .dependencies import worker_python

PROJECT_ROOT = dependencies.solver_parent()


class JobError(RuntimeError):
    """The solver reported a failure; `kind` is "input", "cancelled" or "internal"."""

    def __init__(self, kind: str, message: str, details: str = ""):
        super().__init__(message)
        self.kind, self.details = kind, details


@dataclass
class Progress:
    stage: str
    fraction: float
    loss: float | None = None  # the fit's current total loss, for fitting stages


class WorkerServer:
    """One long-lived solver process that runs the queued jobs one after another, so that torch and MediaPipe
    are imported once per Blender session rather than once per job (about two seconds each).

    A job is queued by writing a ticket (a file holding the job folder's path) into the server's queue folder;
    the server writes `finished` into the job folder when it is done with it. The server exits when asked
    (a `stop` file), when this process goes away, or after half an hour idle; a dead server is restarted by
    the next job.
    """

    _current: "WorkerServer | None" = None

    def __init__(self):
        self.queue = make_folder("asm_worker_")
        env = dependencies.worker_environment()
        try:
            self._log = open(self.queue / "worker.log", "w")
        except OSError as error:
            raise _folder_error(self.queue, error) from error
        try:
            self.process = subprocess.Popen([worker_python(), "-m", "solver.worker", "--serve", str(self.queue)],
                                            stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                            cwd=str(PROJECT_ROOT))
        except OSError as error:
            self._log.close()
            raise JobError("internal", f"the solver process could not start ({worker_python()}: "
                                       f"{error.strerror or error}); set ASM_WORKER_PYTHON to a Python with the "
                                       "solver's packages") from error
        self._tickets = 0
        self._folders: list[Path] = []  # the jobs given to this server, so that stop() can cancel unfinished ones

    @classmethod
    def get(cls) -> "WorkerServer":
        if cls._current is None or not cls._current.alive():
            if cls._current is not None:
                cls._current.stop()
            cls._current = cls()
        return cls._current

    def alive(self) -> bool:
        return self.process.poll() is None

    def submit(self, folder: Path) -> None:
        self._tickets += 1
        self._folders.append(Path(folder))
        ticket = self.queue / f"{self._tickets:06d}.job"
        partial = ticket.with_suffix(".partial")
        try:
            partial.write_text(str(folder))
            partial.replace(ticket)  # the server never sees half a ticket
        except OSError as error:
            raise _folder_error(self.queue, error) from error

    def log_tail(self, characters: int = 2000) -> str:
        path = self.queue / "worker.log"
        return path.read_text()[-characters:] if path.exists() else ""

    def stop(self, wait_seconds: float = 3.0) -> None:
        """Ask the server to stop: unfinished jobs are cancelled (a fit stops at its next step), then the server
        exits; one that does not within `wait_seconds` is killed."""
        if self.alive():
            for folder in self._folders:
                if folder.is_dir() and not (folder / "finished").exists():
                    try:
                        (folder / "cancel").touch()
                    except OSError:  # the folder went away meanwhile: nothing to cancel
                        pass
            (self.queue / "stop").touch()
            try:
                self.process.wait(wait_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.queue, ignore_errors=True)


def _folder_error(folder: Path | str, error: OSError) -> JobError:
    return JobError("input", f"cannot write the solver's job folder {str(folder)!r} ({error.strerror or error}); "
                             "make it writable, or point the TMPDIR environment variable at a writable folder and "
                             "restart Blender")


def make_folder(prefix: str) -> Path:
    """A new folder for a job (or the worker's queue) in the system's temporary folder; JobError naming the folder
    when it cannot be made there (not writable, full, missing)."""
    parent = tempfile.gettempdir()
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        raise _folder_error(parent, error) from error


def warm_worker() -> Job | None:
    """Start the solver process ahead of the first job and have it load torch and MediaPipe (about two seconds)
    while the user is still busy: the sidebar does this when the ASM tab is first shown, the headless commands
    before they open the mesh. Does nothing when a solver process is running already or packages are missing;
    returns the warm-up job when it started one."""
    running = WorkerServer._current is not None and WorkerServer._current.alive()
    if running or dependencies.missing_packages("warm_up"):
        return None
    try:
        server = WorkerServer.get()
        return Job("warm_up", {}, {}, folder=server.queue / "warm_up").start()  # removed with the queue folder
    except JobError:  # packages missing or no writable temporary folder: the real job will say so
        return None


def stop_worker() -> None:
    """Stop the shared solver process (on exit, on disabling the add-on)."""
    if WorkerServer._current is not None:
        WorkerServer._current.stop()
        WorkerServer._current = None


atexit.register(stop_worker)


class Job:
    def __init__(self, task: str, settings: dict, inputs: dict[str, np.ndarray], folder: Path | None = None):
        """Write the job's folder (a new temporary one unless `folder` is given); JobError naming the folder when
        it cannot be written."""
        self.task = task
        self.owns_folder = folder is None  # a temporary folder of its own: `discard` removes it
        self.folder = Path(folder) if folder is not None else make_folder("asm_job_")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "job.json").write_text(json.dumps({"task": task, "settings": settings}))
            np.savez(self.folder / "inputs.npz", **{k: v for k, v in inputs.items() if v is not None})
        except OSError as error:
            raise _folder_error(self.folder, error) from error
        self.server: WorkerServer | None = None

    def start(self) -> "Job":
        missing = dependencies.missing_packages(self.task)
        if missing:  # say which wheel is missing rather than let the worker fail on an import
            raise JobError("input", dependencies.missing_message(missing))
        self.server = WorkerServer.get()
        self.server.submit(self.folder)
        return self

    def progress(self) -> Progress | None:
        path = self.folder / "progress.jsonl"
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
        return self.server is not None and ((self.folder / "finished").exists() or not self.server.alive())

    def cancel(self) -> None:
        (self.folder / "cancel").touch()

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
            raise JobError("internal", "the job was never started")
        while not self.done():
            time.sleep(0.02)
        error_path = self.folder / "error.json"
        if error_path.exists():
            error = json.loads(error_path.read_text())
            raise JobError(error["kind"], error["message"], error.get("traceback", ""))
        result_path = self.folder / "result.npz"
        if not result_path.exists():
            raise self._stopped_error()
        with np.load(result_path, allow_pickle=False) as npz:
            result = {k: npz[k] for k in npz.files}
        result["warnings"] = json.loads(str(result["warnings"]))
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
        return JobError("internal", f"the solver process stopped before finishing the {self.task!r} job ({how}); "
                                    "run it again (a new solver process starts)" + (f". Its log ends: {last[:200]}"
                                                                                    if last else ""), log)


def run_blocking(task: str, settings: dict, inputs: dict[str, np.ndarray], report=None,
                 poll_seconds: float = 0.1) -> dict:
    """Run a job to completion, reporting progress changes through `report(progress)` (stderr by default)."""
    report = report or (lambda p: print(f"  {p.stage} {p.fraction:4.0%}" + (f"  loss {p.loss:.4g}" if p.loss is not None
                                                                               else ""), file=sys.stderr))
    job = Job(task, settings, inputs).start()
    job.wait(report, poll_seconds)
    return job.result()
