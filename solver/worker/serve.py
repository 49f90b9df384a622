"""Running one job folder, or serving a queue of them (the protocol: asm_protocol.tasks; the tasks: tasks.TASKS)."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from asm_protocol import tasks as protocol

from ..core.errors import ASMInputError

PROGRESS_SECONDS = 0.5
IDLE_SECONDS = 1800.0
PARENT_POLL_SECONDS = 0.5


class Cancelled(Exception):
    """The client asked the job to stop (its folder holds `cancel`)."""


def _write_json_line(path: Path, record: dict) -> None:
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def _progress_reporter(job_dir: Path):
    """progress(stage, fraction, loss=None) for a job: raises Cancelled once the client asked to stop, and writes a
    line at most every PROGRESS_SECONDS per stage (fits report every step)."""
    progress_path = job_dir / protocol.PROGRESS_FILE
    last = {"time": 0.0, "stage": None}

    def progress(stage: str, fraction: float, loss: float | None = None) -> None:
        if (job_dir / protocol.CANCEL_FILE).exists():
            raise Cancelled()
        now = time.monotonic()
        if stage == last["stage"] and now - last["time"] < PROGRESS_SECONDS and fraction < 1.0:
            return
        last.update(time=now, stage=stage)
        record = {"stage": stage, "fraction": round(fraction, 4)}
        if loss is not None:
            record["loss"] = float(loss)
        _write_json_line(progress_path, record)

    return progress


def _write_error(job_dir: Path, kind: str, message: str, details: str | None = None) -> int:
    record = {"kind": kind, "message": message, **({} if details is None else {"traceback": details})}
    (job_dir / protocol.ERROR_FILE).write_text(json.dumps(record))
    return protocol.EXIT_CODES[kind]


def run_job(job_dir: Path) -> int:
    """Run the job in `job_dir`: result.npz on success, error.json on failure; returns the exit code."""
    job_dir = Path(job_dir)
    spec = json.loads((job_dir / protocol.JOB_FILE).read_text())
    try:
        from .tasks import TASKS  # in here: a package the solver's layers need and cannot load is reported
        with np.load(job_dir / protocol.INPUTS_FILE, allow_pickle=False) as npz:
            inputs = {k: npz[k] for k in npz.files}
        task = TASKS.get(spec["task"])
        if task is None:
            raise ASMInputError(f"unknown task {spec['task']!r}")
        result = task(inputs, spec.get("settings", {}), _progress_reporter(job_dir), job_dir)
        warnings_text = json.dumps(result.pop("warnings", []))
        partial = job_dir / protocol.PARTIAL_RESULT_FILE
        np.savez(partial, warnings=np.array(warnings_text), **result)
        partial.replace(job_dir / protocol.RESULT_FILE)  # atomic: the client never reads half a file
        return 0
    except Cancelled:
        return _write_error(job_dir, protocol.CANCELLED, "cancelled by the user")
    except ASMInputError as error:
        return _write_error(job_dir, protocol.INPUT_ERROR, str(error))
    except ImportError as error:  # a package missing from the worker's Python, or built for another platform
        return _write_error(
            job_dir, protocol.INTERNAL_ERROR,
            f"the solver's Python ({sys.executable}) cannot load {error.name or 'a package'}: {error}. The "
            "extension's bundled packages are missing or built for another platform: install the zip built for "
            "this platform again (or set ASM_WORKER_PYTHON to a Python with the solver's packages)",
            traceback.format_exc())
    except Exception as error:  # noqa: BLE001 - reported to the client with its traceback
        return _write_error(job_dir, protocol.INTERNAL_ERROR, f"{type(error).__name__}: {error}",
                            traceback.format_exc())


def _exit_with_parent(parent: int, queue: Path, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Thread: end this process as soon as the process that started it is gone (killed, crashed), also in the
    middle of a long job, so that no orphan keeps computing; its queue folder goes with it, as nobody else will
    remove it now. (The serve loop's own check only runs between jobs.)"""
    while os.getppid() == parent:
        time.sleep(poll_seconds)
    shutil.rmtree(queue, ignore_errors=True)
    os._exit(0)


def serve(queue: Path, idle_seconds: float = IDLE_SECONDS, poll_seconds: float = 0.02) -> int:
    """Run queued jobs one after another: each ticket `queue/NNNNNN.job` holds a job folder's path; `finished`
    is written into that folder when its job is over (result or error). Stops on `queue/stop`, when the
    process that started it is gone (at once, also during a job), or after `idle_seconds` without work.

    Ctrl+C in a terminal reaches the whole process group, this worker too: it is ignored here, because the client
    decides (it cancels its job through the job folder and stops this process, which leaves no half-written
    folder behind)."""
    queue = Path(queue)
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent, queue), name="exit-with-parent", daemon=True).start()
    last_work = time.monotonic()
    while not (queue / protocol.STOP_FILE).exists():
        if os.getppid() != parent:  # Blender quit (or crashed) without stopping us
            return 0
        tickets = sorted(queue.glob(f"*{protocol.TICKET_SUFFIX}"))
        if not tickets:
            if time.monotonic() - last_work > idle_seconds:
                return 0
            time.sleep(poll_seconds)
            continue
        folder = Path(tickets[0].read_text())
        tickets[0].unlink()
        if not (folder / protocol.JOB_FILE).is_file():  # its client cancelled and removed it before its turn came
            continue
        try:
            run_job(folder)
        except FileNotFoundError:
            if folder.exists():
                raise
            # The client cancelled the job and removed its folder while it ran: nobody reads its answer.
        finally:
            with contextlib.suppress(OSError):  # the client may remove a cancelled job's folder while it runs
                (folder / protocol.FINISHED_FILE).touch()
        sys.stdout.flush()
        last_work = time.monotonic()
    return 0
