"""`--ray [ADDRESS]`: the batch's jobs as Ray tasks, on a running cluster (`ray.init(address=ADDRESS)`) or on a
local Ray instance started for the batch.

Each task is process.run_job, shipped by value (the workers need neither bpy nor the add-on to import it), with
`num_cpus` = the threads per job. It runs the job's command lines as they are, so every node needs the same set-up
at the same paths: this Python with the bpy module and the solver's packages (or Blender with the extension), and
the inputs, the outputs and the batch folder (state, logs) on a shared folder mounted at the same path everywhere.
The state file is written by this process (the driver) alone.

Ray retries a task once when its worker process or node dies (max_retries=1); a job's own crash is retried inside
the task, as on the local pool.
"""
from __future__ import annotations

import time

from . import process
from .runner import failed_result

INSTALL = ("--ray needs Ray, which is not installed in this Python: `pip install ray` (or the project's extra: "
           "`pip install .[ray]`) into the environment that runs the batch, and on every node of the cluster")


class RayMissing(RuntimeError):
    pass


def ray_module():
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL) from None
    return ray


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, threads: int, local_cpus: int | None = None):
        """address None: a local Ray instance (with `local_cpus` CPUs, else all of them)."""
        ray = self.ray = ray_module()
        self.threads = threads
        self._started_here = not ray.is_initialized()
        if self._started_here:
            options = {"address": address} if address else {"num_cpus": local_cpus}
            try:
                ray.init(**options, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
            except Exception as error:  # noqa: BLE001 - Ray's own errors have no common base
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                hint = ("; Ray keeps its sockets in TMPDIR: point TMPDIR at a short path such as /tmp"
                        if "socket" in str(error).lower() else "")
                raise RayMissing(f"could not start {where} ({type(error).__name__}: "
                                 f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}){hint}") \
                    from None
        ray.cloudpickle.register_pickle_by_value(process)
        self._task = ray.remote(num_cpus=threads, max_retries=1)(process.run_job)
        self._refs: dict = {}  # ObjectRef -> payload
        self._capacity = 1
        self._checked = 0.0

    def capacity(self) -> int:
        """Jobs at once: the cluster's CPUs over the threads per job (asked again every few seconds, as nodes come
        and go); the driver keeps that many tasks submitted, so that its `running` means running."""
        if time.monotonic() - self._checked > 5.0:
            cpus = self.ray.cluster_resources().get("CPU", 1)
            self._capacity = max(1, int(cpus // self.threads))
            self._checked = time.monotonic()
        return self._capacity

    def start(self, payload: dict, on_step) -> None:
        self._refs[self._task.remote(payload)] = payload  # on_step: a remote task's processes are not seen here

    def finished(self, wait: float) -> list[tuple[dict, dict]]:
        if not self._refs:
            time.sleep(wait)
            return []
        ready, _ = self.ray.wait(list(self._refs), num_returns=len(self._refs), timeout=wait)
        ended = []
        for ref in ready:
            payload = self._refs.pop(ref)
            try:
                result = self.ray.get(ref)
            except self.ray.exceptions.TaskCancelledError:
                result = failed_result("the batch was stopped", status="stopped")
            except self.ray.exceptions.RayError as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                result = failed_result(f"the Ray task failed ({type(error).__name__}: {first})")
            ended.append((payload, result))
        return ended

    def busy(self) -> bool:
        return bool(self._refs)

    def stop(self) -> None:
        for ref in list(self._refs):
            self.ray.cancel(ref)  # a KeyboardInterrupt in the task: run_job stops its process (SIGTERM, then kill)

    def close(self) -> None:
        if self._started_here:
            self.ray.shutdown()
