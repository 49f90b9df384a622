"""One batch job run as processes of the existing commands (`generate`/`fit`, then `export` for each further
output), each in a session of its own: a crash, a hang or a kill ends that job only, and the job's process group
(its solver worker included) can be ended as a whole.

The job's outputs are written under staged names beside the final ones (`.NAME.batch-partial.blend`) and moved into
place only when every step succeeded, so a final name never holds a half-written or half-done output.

Standard library only, and nothing else of the add-on: Ray ships this module by value to its workers, which need
neither bpy nor the add-on to run it (only the command line each step names).

A job is a plain dict (see `plan.payload`): name, steps [{"what", "argv"}], env (variables added to the
process's own), cwd, log, timeout (seconds for all steps of one attempt, or None), staged [[staged, final]],
retries (after a crash), grace (seconds between SIGTERM and SIGKILL), crash_errors (texts of an `error:` line
that mean a crash, not a clean failure: the command's solver process died).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

POLL_SECONDS = 0.1
CLEAN_EXITS = (0, 1, 2)  # done, a clean error (one `error:` line), a usage error
STOP_EXITS = (128 + signal.SIGINT, 128 + signal.SIGTERM)  # the commands' clean stop


class _Outcome:
    def __init__(self, kind: str, reason: str | None = None, summaries: list | None = None):
        self.kind, self.reason, self.summaries = kind, reason, summaries or []  # kind: ok failed crashed stopped


def run_job(job: dict, stop: threading.Event | None = None, on_step=None) -> dict:
    """Run `job` to its end: its result dict (status "done", "failed" or "stopped", reason, attempts, started,
    finished, seconds, outputs {final path: sha256}, summaries: each step's --json summary, crashes).
    `stop`: set it to stop the job (its process gets SIGTERM, the commands' clean stop). `on_step(attempt, what,
    pid)` is called as each step's process starts."""
    stop = stop or threading.Event()
    started = time.time()
    crashes: list[str] = []
    attempt = 0
    Path(job["log"]).parent.mkdir(parents=True, exist_ok=True)
    with open(job["log"], "ab") as log:
        while True:
            attempt += 1
            _remove_staged(job)
            outcome = _attempt(job, attempt, stop, log, on_step)
            if outcome.kind == "crashed" and attempt <= job.get("retries", 1) and not stop.is_set():
                crashes.append(outcome.reason)
                _note(log, f"== the job's process crashed ({outcome.reason}): running it again ==")
                continue
            break
        if outcome.kind == "ok":
            try:
                outputs = _move_into_place(job)
            except OSError as error:
                outcome = _Outcome("failed", f"cannot move the output {error.filename} into place "
                                             f"({error.strerror or error}); choose a folder you can write to")
        _remove_staged(job)
        if outcome.kind != "ok":
            outputs = {}
        finished = time.time()
        reason = outcome.reason
        if outcome.kind == "crashed" and crashes:
            reason = f"{reason}, on its one retry too" + ("" if crashes[0] == reason else f" (first: {crashes[0]})")
        status = {"ok": "done", "crashed": "failed"}.get(outcome.kind, outcome.kind)
        _note(log, f"== {status}{': ' + reason if reason else ''} ==")
    return {"status": status, "reason": reason, "attempts": attempt, "started": started, "finished": finished,
            "seconds": round(finished - started, 2), "outputs": outputs, "summaries": outcome.summaries,
            "crashes": crashes}


def _attempt(job: dict, attempt: int, stop: threading.Event, log, on_step) -> _Outcome:
    deadline = None if job.get("timeout") is None else time.monotonic() + float(job["timeout"])
    summaries = []
    env = dict(os.environ, **job.get("env", {}))
    for step in job["steps"]:
        if stop.is_set():
            return _Outcome("stopped", "the batch was stopped")
        _note(log, f"== attempt {attempt}: {step['what']}: {' '.join(step['argv'])} ==")
        offset = log.tell()
        stdout_path = Path(f"{job['log']}.stdout")
        with open(stdout_path, "wb") as stdout:
            try:
                process = subprocess.Popen(step["argv"], stdout=stdout, stderr=log, stdin=subprocess.DEVNULL,
                                           cwd=job.get("cwd"), env=env, start_new_session=True)
            except OSError as error:
                return _Outcome("failed", f"{step['what']}: cannot start {step['argv'][0]} "
                                          f"({error.strerror or error})")
        try:
            if on_step is not None:
                on_step(attempt, step["what"], process.pid)
            ended = _wait(process, stop, deadline, job.get("grace", 15.0))
        except BaseException:  # Ray cancelling the task (KeyboardInterrupt), or a bug: the process goes too
            _end(process, job.get("grace", 15.0))
            raise
        finally:
            _kill_group(process.pid)  # whatever of the job is left (its solver worker exits on its own too)
            output = stdout_path.read_bytes() if stdout_path.exists() else b""
            stdout_path.unlink(missing_ok=True)
        log.write(output)
        log.flush()
        code = process.returncode
        if ended == "timeout":
            return _Outcome("failed", f"timed out after {float(job['timeout']):g} s in {step['what']}: the job's "
                                      "processes were stopped (raise the limit with --timeout or the row's "
                                      "timeout)")
        if ended == "stopped" or (code != 0 and stop.is_set()):
            # a process that ended on its own as the batch stopped (its parent gone, or the stop's SIGTERM between
            # two polls) was stopped too: it runs again next time instead of counting as failed
            return _Outcome("stopped", "the batch was stopped")
        if code == 0:
            summaries.append(_json_summary(output))
            continue
        error = _error_line(job["log"], offset)
        if code == 1 and error and any(marker in error for marker in job.get("crash_errors", [])):
            return _Outcome("crashed", f"{step['what']}: {error}")  # its solver process died: a crash too
        if code in CLEAN_EXITS:
            return _Outcome("failed", f"{step['what']}: {error or f'exited with code {code}'}")
        if code < 0:
            name = _signal_name(-code)
            more = " (out of memory?)" if -code == getattr(signal, "SIGKILL", None) else ""
            return _Outcome("crashed", f"{step['what']}: the job's process was killed by {name}{more}")
        if code in STOP_EXITS:
            return _Outcome("crashed", f"{step['what']}: the job's process was stopped by "
                                       f"{_signal_name(code - 128)} from outside the batch")
        return _Outcome("crashed", f"{step['what']}: the job's process ended with exit code {code}"
                                   f"{': ' + error if error else ''}")
    return _Outcome("ok", None, summaries)


def _wait(process: subprocess.Popen, stop: threading.Event, deadline: float | None, grace: float) -> str:
    """"exited", "stopped" (the batch is stopping) or "timeout"; the process has ended in every case."""
    while True:
        try:
            process.wait(POLL_SECONDS)
            return "exited"
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set():
            _end(process, grace)
            return "stopped"
        if deadline is not None and time.monotonic() > deadline:
            _end(process, min(grace, 10.0))
            return "timeout"


def _end(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM (the command's clean stop: its solver job cancelled, its temporary files removed), then, after
    `grace` seconds, SIGKILL to the job's whole process group."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            pass
    _kill_group(process.pid)
    if process.poll() is None:  # Windows: no group to kill
        process.kill()
    process.wait()


def _kill_group(pgid: int) -> None:
    """SIGKILL to the process group `pgid` (the job's session); nothing on Windows, which has no process groups of
    this kind (there the command's solver worker notices that its parent is gone and exits)."""
    if not hasattr(os, "killpg"):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # nothing of the group is left
        pass


def _json_summary(output: bytes) -> dict:
    """A command's --json summary from its standard output: the JSON object that ends it (Blender itself may print
    lines before it, such as warnings on reading a .blend saved by another version); {} without one (a command
    without --json: the job is done all the same)."""
    text = output.decode("utf-8", "replace")
    starts = [0] + [i + 1 for i in range(len(text) - 1) if text[i] == "\n" and text[i + 1] == "{"]
    for start in starts:
        try:
            summary = json.loads(text[start:])
        except ValueError:
            continue
        return summary if isinstance(summary, dict) else {}
    return {}


def _error_line(log_path: str, offset: int) -> str | None:
    """The last `error:` line the step wrote (the commands end a failure with one), without the prefix; else its
    last line (e.g. an exception's)."""
    try:
        with open(log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = None
    for line in text.splitlines():
        if line.startswith("error: "):
            found = line[len("error: "):].strip()
        elif ": error: " in line and found is None:  # argparse: "prog: error: ..."
            found = line.split(": error: ", 1)[1].strip()
    if found is None:
        last = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("==")]
        found = last[-1][:300] if last else None
    return found


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _note(log, text: str) -> None:
    log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode())
    log.flush()


def _remove_staged(job: dict) -> None:
    for staged, _final in job.get("staged", []):
        path = Path(staged)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _move_into_place(job: dict) -> dict[str, str]:
    """Each staged output renamed to its final name (a folder replaces the previous one), then their checksums."""
    for staged, final in job.get("staged", []):
        staged, final = Path(staged), Path(final)
        if staged.is_dir():
            old = final.with_name(f".{final.name}.batch-old")
            shutil.rmtree(old, ignore_errors=True)
            if final.exists():
                os.replace(final, old)
            os.replace(staged, final)
            shutil.rmtree(old, ignore_errors=True)
        elif staged.is_file():
            os.replace(staged, final)
        else:
            raise FileNotFoundError(2, "the command did not write it", str(final))
    outputs = {}
    for _staged, final in job.get("staged", []):
        final = Path(final)
        for path in (sorted(p for p in final.rglob("*") if p.is_file()) if final.is_dir() else [final]):
            outputs[str(path)] = sha256(path)
    return outputs


def sha256(path: Path) -> str:
    """The file's SHA-256, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
