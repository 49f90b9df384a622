"""Solver jobs in a worker process: the Blender side never imports torch and never blocks on the solver.

A job is a folder (see solver/worker.py for the protocol). `Job.poll()` is cheap enough for a modal
operator's timer; `run_blocking` is the headless form that prints progress on stderr.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

def _solver_parent() -> Path:
    """The folder that holds the `solver` package: inside the built extension, or the repository root."""
    here = Path(__file__).resolve().parent
    return here if (here / "solver").is_dir() else here.parent


PROJECT_ROOT = _solver_parent()


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


def worker_python() -> str:
    """The interpreter that runs the solver: ASM_WORKER_PYTHON when set, else this process's Python."""
    return os.environ.get("ASM_WORKER_PYTHON") or sys.executable


class Job:
    def __init__(self, task: str, settings: dict, inputs: dict[str, np.ndarray], folder: Path | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="asm_job_"))
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "job.json").write_text(json.dumps({"task": task, "settings": settings}))
        np.savez(self.folder / "inputs.npz", **{k: v for k, v in inputs.items() if v is not None})
        self.process: subprocess.Popen | None = None

    def start(self) -> "Job":
        env = dict(os.environ)
        paths = [str(PROJECT_ROOT)] + [p for p in sys.path if p.endswith("site-packages")]
        env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
        self._log = open(self.folder / "worker.log", "w")
        self.process = subprocess.Popen([worker_python(), "-m", "solver.worker", str(self.folder)],
                                        stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=str(PROJECT_ROOT))
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
        return self.process is not None and self.process.poll() is not None

    def cancel(self) -> None:
        (self.folder / "cancel").touch()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def result(self) -> dict:
        """The result arrays; raises JobError with the worker's own message on failure."""
        if self.process is not None:
            self.process.wait()
            self._log.close()
        error_path = self.folder / "error.json"
        if error_path.exists():
            error = json.loads(error_path.read_text())
            raise JobError(error["kind"], error["message"], error.get("traceback", ""))
        result_path = self.folder / "result.npz"
        if not result_path.exists():
            log = (self.folder / "worker.log").read_text()[-2000:] if (self.folder / "worker.log").exists() else ""
            raise JobError("internal", f"the solver worker stopped without a result (exit code "
                                       f"{self.process.returncode if self.process else '?'})", log)
        with np.load(result_path, allow_pickle=False) as npz:
            result = {k: npz[k] for k in npz.files}
        result["warnings"] = json.loads(str(result["warnings"]))
        return result


def run_blocking(task: str, settings: dict, inputs: dict[str, np.ndarray], report=None,
                 poll_seconds: float = 0.1) -> dict:
    """Run a job to completion, reporting progress changes through `report(progress)` (stderr by default)."""
    report = report or (lambda p: print(f"  {p.stage} {p.fraction:4.0%}" + (f"  loss {p.loss:.4g}" if p.loss is not None
                                                                               else ""), file=sys.stderr))
    job = Job(task, settings, inputs).start()
    last = None
    try:
        while not job.done():
            current = job.progress()
            if current is not None and current != last:
                report(current)
                last = current
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        job.cancel()
        job.kill()
        raise
    return job.result()
