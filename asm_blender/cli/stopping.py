"""Stopping a headless command: SIGINT (Ctrl+C in a terminal) and SIGTERM (`kill`, a batch system's time limit) stop
it through the same path as Esc in the sidebar. The running solver job is cancelled, the solver process stopped,
the job folders removed, and the command exits with 128 + the signal's number (130, 143) after one line.

Python raises KeyboardInterrupt for SIGINT only, and only while its default handler is in place (Blender's own
background-mode handler merely sets a break flag, so `blender -b -c asm` ran on); SIGTERM ends a process at once
by default, leaving the solver process and the folders behind. Both are turned into `Stopped`, a
KeyboardInterrupt, which every "Ctrl+C cancels" path of the flows and jobs already handles.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading

SIGNALS = {signal.SIGINT: "SIGINT (Ctrl+C)", signal.SIGTERM: "SIGTERM"}
STOP_WITH_PARENT = "ASM_STOP_WITH_PARENT"  # set by `batch` for its jobs' commands (see watch_parent)


class Stopped(KeyboardInterrupt):
    """The command was asked to stop by the signal `signum`."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by that signal

    @property
    def message(self) -> str:
        return (f"stopped by {SIGNALS.get(self.signum, f'signal {self.signum}')}: the running job was cancelled, "
                "the solver process stopped and the temporary files removed")


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT and SIGTERM raise Stopped in the main thread while the command runs (the handlers before are put back
    afterwards). A second signal during the clean-up is ignored: the clean-up takes a few seconds at most and
    would otherwise leave what it was removing half done."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers can only be set there
        yield
        return
    stopping = []

    def stop(signum, _frame):
        if not stopping:
            stopping.append(signum)
            raise Stopped(signum)

    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def watch_parent(seconds: float = 0.5) -> None:
    """When STOP_WITH_PARENT is set (a batch's job): SIGTERM to this process, the clean stop, as soon as the process
    that started it is gone (a batch killed outright), so that no job computes on for nobody. A daemon thread
    that looks every `seconds`."""
    if not os.environ.get(STOP_WITH_PARENT) or not hasattr(os, "getppid"):
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="asm-parent-watch", daemon=True).start()
