"""Stopping a headless command (issue 22): real commands (`python -m asm_blender ...`) in their own process group with
a private TMPDIR, stopped by real signals. SIGINT to the process group (Ctrl+C in a terminal) and SIGTERM to the
command (`kill`, a batch system) cancel through the cancel path: exit code 130 / 143 and one `error:` line, no
solver process left, nothing left in TMPDIR (job folders, the worker's folder, torch's cache). A command killed
outright (SIGKILL) leaves no solver process computing either: the worker watches its parent."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, SAMPLE_DIR

HEAD = SAMPLE_DIR / "base_head.obj"
PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"
STEP_SECONDS = 0.1

needs_detector = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                    reason="finding a face needs LiteRT (not in the Blender 5.0 test environment)")
needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(),
                                reason="the solver processes are found through /proc")


class Command:
    """`python -m asm_blender ARGV` in a new process group (as a shell starts a job), with its own TMPDIR; stderr
    goes to a file the test reads while it runs."""

    def __init__(self, folder: Path, *argv: str):
        self.folder, self.tmpdir = folder, folder / "tmp"
        self.tmpdir.mkdir()
        self.stderr_path = folder / "stderr.txt"
        env = dict(os.environ, TMPDIR=str(self.tmpdir),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        with self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen([sys.executable, "-m", "asm_blender", *argv], cwd=folder, env=env,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                            start_new_session=True)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, text: str, limit_seconds: float = 300.0) -> None:
        """Until `text` shows on stderr; fails when the command ends first."""
        deadline = time.monotonic() + limit_seconds
        while text not in self.stderr():
            assert self.process.poll() is None, f"the command ended before {text!r}:\n{self.stderr()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} on stderr:\n{self.stderr()[-3000:]}"
            time.sleep(STEP_SECONDS)

    def finish(self, limit_seconds: float = 120.0) -> int:
        return self.process.wait(limit_seconds)

    def solver_processes(self) -> list[int]:
        """The processes whose command line names this command's TMPDIR: its solver worker (python -m solver.worker
        --serve TMPDIR/asm_worker_...)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                arguments = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # ended meanwhile
                continue
            if b"solver.worker" in arguments and any(str(self.tmpdir).encode() in a for a in arguments):
                found.append(int(entry.name))
        return found

    def close(self) -> None:
        for pid in [self.process.pid] + self.solver_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


@pytest.fixture()
def command(tmp_path):
    started = []

    def start(*argv: str) -> Command:
        started.append(Command(tmp_path, *argv))
        return started[-1]

    yield start
    for running in started:
        running.close()


def assert_stopped_cleanly(run: Command, code: int, signal_name: str) -> None:
    assert run.finish() == code, run.stderr()[-3000:]
    text = run.stderr()
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors == [text.splitlines()[-1]] and errors[0].startswith(f"error: stopped by {signal_name}"), text[-3000:]
    assert "Traceback" not in text
    assert run.solver_processes() == []
    assert sorted(os.listdir(run.tmpdir)) == []  # no asm_* job or worker folder, no torchinductor_* cache
    assert not (run.folder / "out.blend").exists()


@needs_detector
@needs_proc
def test_ctrl_c_to_the_process_group_stops_generate(command):
    run = command("generate", str(HEAD), "-o", "out.blend")
    run.wait_for("finding which way the face looks")
    os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl+C in a terminal does: the solver process gets it too
    assert_stopped_cleanly(run, 130, "SIGINT")


@needs_detector
@needs_proc
def test_sigterm_to_the_command_stops_a_photo_fit(command):
    run = command("fit", str(HEAD), str(PHOTO), "-o", "out.blend", "--quality", "fast")
    run.wait_for("solver: fit")
    assert run.solver_processes()
    os.kill(run.process.pid, signal.SIGTERM)  # `kill PID`: the command alone gets it
    assert_stopped_cleanly(run, 143, "SIGTERM")


@needs_proc
def test_ctrl_c_stops_the_sample_job_in_its_scan_fit(command):
    run = command("sample", "--output", "out", "--skip-photos")
    run.wait_for("fitting the rig to fran_cut.obj")
    os.killpg(run.process.pid, signal.SIGINT)
    assert_stopped_cleanly(run, 130, "SIGINT")


@needs_proc
def test_a_killed_command_leaves_no_solver_process_computing(command):
    """SIGKILL cannot be caught: the worker notices that its parent is gone, also in the middle of a job, exits and
    removes its own folder (the killed command's job folder stays: nobody is left to remove it)."""
    run = command("sample", "--output", "out", "--skip-photos")
    run.wait_for("fitting the rig to fran_cut.obj")
    assert run.solver_processes()
    run.process.kill()
    run.process.wait()
    deadline = time.monotonic() + 60.0
    while run.solver_processes() and time.monotonic() < deadline:
        time.sleep(STEP_SECONDS)
    assert run.solver_processes() == []
    assert not [name for name in os.listdir(run.tmpdir) if name.startswith("asm_worker_")]
