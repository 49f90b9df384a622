"""Editing a rig's ASM parameters in the scene: each bone's binding point and Gaussians sit on its pose bone
(`PoseBone.asm`); changing one re-bakes the weights (and moves the bone's rest place with its binding point).

The solver worker rebuilds the rig exactly as Generate made it (same mesh, landmarks, settings and chart), puts
the edited parameters in and returns new weights and rest matrices (task "rebake"). Edits in the sidebar are
collected for a moment and then re-baked in the background (a timer polls the job); `rebake_now` is the
blocking form for scripts and background mode.
"""
from __future__ import annotations

import json

import bpy
import numpy as np

from .. import jobs
from ..protocol import settings, tasks
from ..scene_io import markers as markers_io
from ..scene_io import rig as rig_io
from ..scene_io.mesh import SceneInputError, mesh_arrays
from ..scene_io.rig import RIG_PROPERTY, SETTINGS_PROPERTY, apply_rebake, edited_parameters, mesh_of

DELAY_SECONDS = 0.3  # edits within this time share one re-bake
POLL_SECONDS = 0.1

_live: dict[str, dict] = {}  # armature name -> {"job": Job | None, "dirty": bool}
last_message = ""


def rig_job_inputs(arm) -> tuple[dict, dict[str, np.ndarray]]:
    """The settings and input arrays that let the solver rebuild `arm`'s rig as it stands (generate settings,
    bone names, mesh, landmarks and the pose bones' edited parameters): for "rebake" and "fit_photos"."""
    record = json.loads(arm[RIG_PROPERTY])
    made = json.loads(arm.get(SETTINGS_PROPERTY, "{}"))
    mesh_obj = mesh_of(arm)
    stored = markers_io.read_markers(mesh_obj)
    if stored is None:
        raise SceneInputError(f"mesh {mesh_obj.name!r} has lost its landmark markers, which place the rig; "
                              "generate the rig again")
    landmarks, valid = stored
    arrays = mesh_arrays(mesh_obj)
    generate = settings.generate_settings(made.get("preset", "full"), int(made.get("influence_cap", 4)),
                                          int(np.asarray(record["mixture_logits"]).shape[1]),
                                          record.get("chart", "auto"))
    inputs = {"vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
              "landmarks": np.where(valid[:, None], landmarks, 0.0), "landmark_valid": valid,
              **edited_parameters(arm, record)}
    return settings.rig_job(generate, record["names"]), inputs


def start_rebake(arm) -> jobs.Job:
    """Queue the re-bake of `arm`'s rig from its pose bones' parameters."""
    job_settings, inputs = rig_job_inputs(arm)
    return jobs.Job(tasks.REBAKE, job_settings, inputs).start()


def rebake_now(arm) -> list[str]:
    """Re-bake and wait (scripts, background mode, the Re-bake button); returns the bones whose rest place moved."""
    job = start_rebake(arm)
    try:
        return apply_rebake(arm, job.result())
    finally:
        job.discard()


def parameter_edited(arm) -> None:
    """A pose bone's ASM parameter changed in the UI: re-bake shortly, in the background."""
    if rig_io.filling or bpy.app.background or RIG_PROPERTY not in arm:
        return
    state = _live.get(arm.name)
    if state is not None:
        state["dirty"] = True
        return
    _live[arm.name] = {"job": None, "dirty": True}
    bpy.app.timers.register(lambda: _tick(arm.name), first_interval=DELAY_SECONDS)


def _tick(arm_name: str) -> float | None:
    """Timer: start the re-bake when edits are waiting, apply it when the worker is done."""
    global last_message
    state = _live.get(arm_name)
    arm = bpy.data.objects.get(arm_name)
    if state is None or arm is None:
        _live.pop(arm_name, None)
        return None
    try:
        if state["job"] is None:
            state["dirty"] = False
            state["job"] = start_rebake(arm)
            last_message = "re-baking..."
            return POLL_SECONDS
        if not state["job"].done():
            return POLL_SECONDS
        try:
            moved = apply_rebake(arm, state["job"].result())
        finally:
            state["job"].discard()  # every edit re-bakes: its folders would pile up
        last_message = f"re-baked{'; moved ' + ', '.join(moved[:3]) if moved else ''}"
    except (SceneInputError, jobs.JobError) as error:
        last_message = f"re-bake failed: {error}"
        _live.pop(arm_name, None)
        return None
    state["job"] = None
    if state["dirty"]:  # more edits came in while the worker was busy
        return DELAY_SECONDS
    _live.pop(arm_name, None)
    return None
