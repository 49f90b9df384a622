"""Flows as generators of steps, shared by the modal operators (one step per timer tick) and the headless commands
(all steps in a loop).

    summary = run_to_completion(generate_steps(mesh_obj, options, workdir), report)

A step is either a `Status` (what is being done, overall fraction) or a started solver `Job` to wait for; the
driver waits (or polls) and resumes the generator. Nothing in the scene changes before a flow's last step, which
writes everything at once, so closing the generator part way (cancel) leaves the scene as it was.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Generator

from .. import jobs


@dataclass(frozen=True)
class Status:
    text: str
    fraction: float


Step = Status | jobs.Job
Steps = Generator[Step, None, dict]


def solver_status(progress: jobs.Progress, start: float = 0.5, end: float = 0.95) -> Status:
    """A solver job's progress as an overall Status between `start` and `end`."""
    loss = f" (loss {progress.loss:.3g})" if progress.loss is not None else ""
    return Status(f"solver: {progress.stage}{loss}", start + (end - start) * progress.fraction)


def run_to_completion(steps: Steps, report=None, poll_seconds: float = 0.02) -> dict:
    """Drive `steps` to the end, waiting for each job; `report(status)` sees every change (stderr by default).
    Ctrl+C cancels the running job and leaves the scene unchanged."""
    report = report or (lambda status: print(f"  {status.fraction:4.0%} {status.text}", file=sys.stderr, flush=True))
    try:
        step = next(steps)
        while True:
            if isinstance(step, jobs.Job):
                step.wait(lambda progress: report(solver_status(progress)), poll_seconds)  # Ctrl+C cancels it
            else:
                report(step)
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

    def __init__(self, steps: Steps, solver_range: tuple[float, float] = (0.5, 0.95)):
        self.steps, self.step, self.solver_range, self.fraction = steps, None, solver_range, 0.0

    def tick(self) -> Status | None:
        if isinstance(self.step, jobs.Job) and not self.step.done():
            progress = self.step.progress()
            if progress is None:
                return None
            status = solver_status(progress, *self.solver_range)
            return Status(status.text, max(status.fraction, self.fraction))  # a later job never goes backwards
        self.step = next(self.steps)
        if isinstance(self.step, Status):
            self.fraction = self.step.fraction
            return self.step
        return None

    def cancel(self) -> None:
        if isinstance(self.step, jobs.Job):
            self.step.cancel()
            self.step.kill()
        self.steps.close()
