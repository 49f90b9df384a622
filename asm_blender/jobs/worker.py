"""The one long-lived solver process the jobs run in (python -m solver.worker --serve QUEUE)."""
from __future__ import annotations

import atexit
import shutil
import subprocess
from pathlib import Path

from ..protocol import tasks
from . import dependencies
from .folders import JobError, folder_error, make_folder

PROJECT_ROOT = dependencies.solver_parent()


class WorkerServer:
    """One long-lived solver process that runs the queued jobs one after another, so that torch and the face models
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
        # torch makes a `torchinductor_<user>` folder in the temporary folder and leaves it there; in the queue
        # folder it goes when the worker stops
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.queue / "torchinductor"))
        try:
            self._log = open(self.queue / tasks.WORKER_LOG, "w")
        except OSError as error:
            raise folder_error(self.queue, error) from error
        python = dependencies.worker_python()
        try:
            self.process = subprocess.Popen([python, "-m", "solver.worker", "--serve", str(self.queue)],
                                            stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                            cwd=str(PROJECT_ROOT))
        except OSError as error:
            self._log.close()
            raise JobError(tasks.INTERNAL_ERROR, f"the solver process could not start ({python}: "
                                                 f"{error.strerror or error}); set ASM_WORKER_PYTHON to a Python "
                                                 "with the solver's packages") from error
        self._tickets = 0
        self._folders: list[Path] = []  # the jobs given to this server, so that stop() can cancel unfinished ones

    @classmethod
    def get(cls) -> "WorkerServer":
        if cls._current is None or not cls._current.alive():
            if cls._current is not None:
                cls._current.stop()
            cls._current = cls()
        return cls._current

    @classmethod
    def running(cls) -> bool:
        return cls._current is not None and cls._current.alive()

    def alive(self) -> bool:
        return self.process.poll() is None

    def submit(self, folder: Path) -> None:
        self._tickets += 1
        self._folders.append(Path(folder))
        ticket = self.queue / f"{self._tickets:06d}{tasks.TICKET_SUFFIX}"
        partial = ticket.with_suffix(tasks.PARTIAL_TICKET_SUFFIX)
        try:
            partial.write_text(str(folder))
            partial.replace(ticket)  # the server never sees half a ticket
        except OSError as error:
            raise folder_error(self.queue, error) from error

    def log_tail(self, characters: int = 2000) -> str:
        path = self.queue / tasks.WORKER_LOG
        return path.read_text()[-characters:] if path.exists() else ""

    def stop(self, wait_seconds: float = 3.0) -> None:
        """Ask the server to stop: unfinished jobs are cancelled (a fit stops at its next step), then the server
        exits; one that does not within `wait_seconds` is killed."""
        if self.alive():
            for folder in self._folders:
                if folder.is_dir() and not (folder / tasks.FINISHED_FILE).exists():
                    try:
                        (folder / tasks.CANCEL_FILE).touch()
                    except OSError:  # the folder went away meanwhile: nothing to cancel
                        pass
            (self.queue / tasks.STOP_FILE).touch()
            try:
                self.process.wait(wait_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.queue, ignore_errors=True)


def stop_worker() -> None:
    """Stop the shared solver process (on exit, on disabling the add-on)."""
    if WorkerServer._current is not None:
        WorkerServer._current.stop()
        WorkerServer._current = None


atexit.register(stop_worker)
