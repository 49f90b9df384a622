"""Flows as generators of steps, shared by the modal operators (one step per timer tick) and the headless commands
(all steps in a loop).

    summary = run_to_completion(generate_steps(mesh_obj, options, workdir), report)

A step is either a `Status` (what is being done, overall fraction) or a started solver `Job` to wait for; the
driver waits (or polls) and resumes the generator. Nothing in the scene changes before a flow's last step, which
writes everything at once, so closing the generator part way (cancel) leaves the scene as it was.

Progress only goes forward: a job's own progress moves the overall fraction only within the share the Status
before it gives (`solver_until`), and the drivers never report a smaller fraction than before. The headless log
(`ProgressLog`) prints a stage's first status at once and then at most one line a second.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Generator

from .. import jobs


@dataclass(frozen=True)
class Status:
    text: str
    fraction: float
    solver_until: float | None = None  # the jobs that follow move the fraction from `fraction` up to this
    detail: str = ""  # changes within the stage (a fit's loss): not a new stage for the log


Step = Status | jobs.Job
Steps = Generator[Step, None, dict]


class Fractions:
    """The overall progress as a flow's steps come: a Status sets it, a job's progress fills the share that Status
    gave it (none: the fraction stays and the solver's stage shows), and it never goes backwards."""

    def __init__(self):
        self.status, self.fraction = Status("starting", 0.0), 0.0

    def of_status(self, status: Status) -> Status:
        self.status = status
        return self._forward(status)

    def of_job(self, progress: jobs.Progress) -> Status:
        start, until = self.status.fraction, self.status.solver_until
        fraction = start if until is None else start + (until - start) * progress.fraction
        detail = f"(loss {progress.loss:.3g})" if progress.loss is not None else ""
        return self._forward(Status(f"solver: {progress.stage}", fraction, detail=detail))

    def _forward(self, status: Status) -> Status:
        self.fraction = max(self.fraction, status.fraction)
        return replace(status, fraction=self.fraction)


class ProgressLog:
    """`report` for the headless commands: one line on stderr per stage (the status's text) as it starts, then at
    most one every `interval` seconds while it lasts. `span`: the part of the command's whole progress this flow
    is (a fit that generates the rig first runs two flows)."""

    def __init__(self, write=None, interval: float = 1.0, clock=time.monotonic, span: tuple[float, float] = (0, 1)):
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.interval, self.clock, self.span = interval, clock, span
        self.stage, self.printed_at = None, 0.0

    def __call__(self, status: Status) -> None:
        now = self.clock()
        if status.text == self.stage and now - self.printed_at < self.interval:
            return
        self.stage, self.printed_at = status.text, now
        fraction = self.span[0] + (self.span[1] - self.span[0]) * status.fraction
        self.write(f"  {fraction:4.0%} {status.text}" + (f" {status.detail}" if status.detail else ""))


def run_to_completion(steps: Steps, report=None, poll_seconds: float = 0.02) -> dict:
    """Drive `steps` to the end, waiting for each job; `report(status)` sees every change (a ProgressLog on stderr
    by default). Ctrl+C cancels the running job and leaves the scene unchanged."""
    report = report or ProgressLog()
    fractions = Fractions()
    try:
        step = next(steps)
        while True:
            if isinstance(step, jobs.Job):
                step.wait(lambda progress: report(fractions.of_job(progress)), poll_seconds)  # Ctrl+C cancels it
            else:
                report(fractions.of_status(step))
            step = next(steps)
    except StopIteration as finished:
        return finished.value
    except KeyboardInterrupt:
        steps.close()
        raise


class StepRunner:
    """Advances a flow's steps one timer tick at a time, never waiting on the solver: what a modal operator does
    between redraws. `tick()` returns the new Status (None when nothing changed) and raises StopIteration carrying
    the flow's summary when it is done; `cancel()` stops the running job and closes the flow, which has changed
    nothing yet."""

    def __init__(self, steps: Steps):
        self.steps, self.step, self.fractions = steps, None, Fractions()

    def tick(self) -> Status | None:
        if isinstance(self.step, jobs.Job) and not self.step.done():
            progress = self.step.progress()
            return None if progress is None else self.fractions.of_job(progress)
        self.step = next(self.steps)
        return self.fractions.of_status(self.step) if isinstance(self.step, Status) else None

    def cancel(self) -> None:
        if isinstance(self.step, jobs.Job):
            self.step.cancel()
            self.step.kill()
        self.steps.close()
