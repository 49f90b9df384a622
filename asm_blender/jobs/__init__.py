"""Solver jobs in a worker process: the Blender side never imports torch and never blocks on the solver.

A job is a folder (the protocol: asm_protocol.tasks) run by one shared worker process (`worker`); `job` writes it,
follows its progress and reads its result; `dependencies` says whether the worker's packages are there.
"""
from .folders import JobError, make_folder
from .job import Job, Progress, run_blocking, warm_worker, work_folder
from .worker import PROJECT_ROOT, WorkerServer, stop_worker

__all__ = ["Job", "JobError", "PROJECT_ROOT", "Progress", "WorkerServer", "make_folder", "run_blocking",
           "stop_worker", "warm_worker", "work_folder"]
