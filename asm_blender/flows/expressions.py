"""The ARKit-52 pose library as steps (see flows/steps.py): the solver's "expressions" job fits each expression of
the bundled library, carried onto the head through its chart, as a pose of the rig as it stands (its Gaussians and
bindings unchanged); the last step writes one Action per expression and, on request, the shape keys
(scene_io.expressions).

    summary = run_to_completion(expression_steps(armature, shape_keys=True))

Nothing in the scene changes before the last step, so cancelling at any point leaves the scene as it was, and one
undo step takes the whole library back. The expressions start from the armature's current pose (a photo fit's
identity, when it was not baked), and the shape keys hold each expression's difference from it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import bpy
import numpy as np

from .. import jobs
from ..protocol import choices, keys, settings, tasks
from ..scene_io import expressions as expressions_io
from ..scene_io.mesh import SceneInputError, check_mesh_object
from ..scene_io.rig import RIG_PROPERTY, check_rig_format, existing_rig, mesh_of
from . import rebake
from .photos import job_folder
from .steps import Status, Steps

SUMMARY_PROPERTY = "asm_expressions_summary"  # on the mesh object: JSON of the last library made


def rig_for_expressions(obj) -> bpy.types.Object:
    """The ASM armature of the head (a mesh, or its armature); a message saying what to do when there is none."""
    if obj is not None and obj.type == 'ARMATURE' and RIG_PROPERTY in obj:
        obj = mesh_of(obj)
    if obj is None or obj.type != 'MESH':
        kind = "nothing" if obj is None else f"{obj.name!r} (a {obj.type.lower()})"
        raise SceneInputError(f"the expressions need a rigged head mesh; {kind} was given: select the head mesh")
    check_mesh_object(obj)
    arm = existing_rig(obj)
    if arm is None:
        raise SceneInputError(f"mesh {obj.name!r} has no ASM rig yet: press Generate Rig first (or run the generate "
                              "command), then make the expressions")
    check_rig_format(arm, obj)
    return arm


def _checked_rig(arm) -> tuple[list[str], np.ndarray, float]:
    """The rig's bone names, rest matrices and head unit from its record, the armature checked against them."""
    record = json.loads(arm[RIG_PROPERTY])
    names = [str(n) for n in record["names"]]
    head_unit = float(record["head_unit"])
    missing = [n for n in names if n not in arm.pose.bones]
    if missing:  # before the job: a renamed bone fails in seconds, not after the fit
        expressions_io.check_rig_bones(arm, names, np.zeros((len(names), 4, 4)), head_unit)
    return names, record, head_unit


def expression_steps(arm, shape_keys: bool = False, expressions=(), workdir: Path | None = None) -> Steps:
    """The pose library of `arm`'s rig (see the module's docstring): `expressions` ARKit names (none: all 52),
    `shape_keys` also bakes them as shape keys. Returns a summary dict."""
    started = time.perf_counter()
    mesh_obj = mesh_of(arm)
    arm_name, mesh_name = arm.name, mesh_obj.name
    names, _record, _unit = _checked_rig(arm)
    try:
        job_settings = settings.expressions_job({}, names, expressions)
    except ValueError as error:
        raise SceneInputError(str(error)) from None
    if shape_keys:
        expressions_io.check_shape_keys(mesh_obj, expressions or choices.ARKIT_NAMES)
    yield Status(f"fitting the ARKit expressions to {mesh_name!r}", 0.02, solver_until=0.9)
    rig_settings, inputs = rebake.rig_job_inputs(arm)
    base = expressions_io.current_pose(arm, names)
    inputs.update(dict(zip(keys.BASE_POSE_KEYS, base)))
    job = jobs.Job(tasks.EXPRESSIONS, {**job_settings, "generate": rig_settings["generate"]}, inputs,
                   folder=job_folder(workdir, "expressions"))
    yield job.start()
    result = job.result()
    return (yield from finish_expression_steps(arm_name, mesh_name, result, base, shape_keys, started))


def finish_expression_steps(arm_name: str, mesh_name: str, result: dict, base, shape_keys: bool = False,
                            started: float | None = None) -> Steps:
    """The last step after the "expressions" job: `result` (a stored one in tests) written on the rig `arm_name` of
    `mesh_name`; base: the pose the job started from (log_scale, rotvec, translation), (J, 3) each."""
    started = time.perf_counter() if started is None else started
    yield Status("writing the expressions" + (" and shape keys" if shape_keys else ""), 0.92)

    # Everything that can refuse is checked before the first change.
    arm, mesh_obj = bpy.data.objects.get(arm_name), bpy.data.objects.get(mesh_name)
    if arm is None or mesh_obj is None or existing_rig(mesh_obj) != arm:
        raise SceneInputError(f"the rig {arm_name!r} or its mesh {mesh_name!r} was removed or renamed meanwhile; "
                              "nothing was changed")
    names, _record, head_unit = _checked_rig(arm)
    if list(map(str, result["names"])) != names:
        raise jobs.JobError(tasks.INTERNAL_ERROR, "the solver returned poses for other bones than the rig's")
    expressions_io.check_rig_bones(arm, names, np.asarray(result["bind"], dtype=float), head_unit)
    made_for = [str(n) for n in result["expression_names"]]
    poses = tuple(np.asarray(result[key], dtype=float) for key in keys.EXPRESSION_POSE_KEYS)
    actions, shape_key_names = expressions_io.write_library(arm, mesh_obj, names, made_for, poses, base, shape_keys)
    own, rms = np.asarray(result["expression_own_rms"]), np.asarray(result["expression_rms"])
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.where(own > 0, rms / own, np.nan)
    fitted = np.isfinite(residual)
    summary = {
        "armature": arm.name, "mesh": mesh_obj.name, "expressions": made_for, "actions": actions,
        "shape_keys": shape_key_names,
        "residual": {name: (round(float(r), 3) if np.isfinite(r) else None) for name, r in zip(made_for, residual)},
        "median_residual": round(float(np.median(residual[fitted])), 3) if fitted.any() else None,
        "empty": [name for name, ok in zip(made_for, fitted) if not ok],
        "fit_seconds": round(float(result["seconds"]), 1), "seconds": round(time.perf_counter() - started, 1),
        "warnings": list(result["warnings"]),
    }
    mesh_obj[SUMMARY_PROPERTY] = json.dumps({k: v for k, v in summary.items() if k != "residual"})
    return summary

