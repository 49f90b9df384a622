"""Fit a rig to photos as steps (see flows/steps.py): the solver's "fit_photos" job (landmarks in every photo,
cameras, fit), with `bake_identity` a "rebake" job that binds the rig again on the fitted face, then the last step
writes everything (scene_io.photo_fit.write_fit).

    summary = run_to_completion(fit_steps(armature, [Path("front.jpg"), ...], quality="balanced"))

Nothing in the scene changes before the last step, so cancelling at any point (closing the generator) leaves the
scene as it was, and one undo step takes the whole fit back. The last step writes:
- the fitted rig (rest places, weights, the bones' ASM parameters) and its pose: the shared fitted pose, or with
  `bake_identity` the rest pose of a rig bound again on the fitted face, which became the mesh's rest shape
  (shape keys keep their offsets; UVs, vertex groups and modifiers stay);
- one camera per photo, with the photo as background, in the collection "<mesh> photos" (a re-fit replaces them);
- with `expressions="per_photo"` and a worker that returns each photo's pose, one Action per photo ("<mesh> photo
  N", with a fake user), keyed on the armature's pose bones (a re-fit replaces them too).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import bpy
import numpy as np

from .. import jobs
from ..protocol import choices, keys, settings, tasks
from ..scene_io import photo_fit as photo_fit_io
from ..scene_io.mesh import SceneInputError, check_mesh_object
from ..scene_io.photos import store_fit_summary
from ..scene_io.rig import RIG_PROPERTY, existing_rig, mesh_of
from . import rebake
from .photos import collect_photos, job_folder
from .steps import Status, Steps


def rig_for_fit(mesh_obj) -> bpy.types.Object:
    """The ASM armature of the head to fit; a message saying what to do when there is none."""
    check_mesh_object(mesh_obj)
    arm = existing_rig(mesh_obj)
    if arm is None:
        raise SceneInputError(f"mesh {mesh_obj.name!r} has no ASM rig yet: press Generate Rig first, then fit it "
                              "to the photos")
    return arm


def fit_steps(arm, photos: list[Path], quality: str = choices.DEFAULT_QUALITY,
              expressions: str = choices.DEFAULT_EXPRESSIONS, bake_identity: bool = False,
              workdir: Path | None = None, *, match_texture: bool = True, same_lens: bool = False,
              detections: dict | None = None) -> Steps:
    """The photo fit of `arm`'s rig (see the module docstring); returns a summary dict. `workdir`: where the jobs'
    folders go (a new temporary folder each when None). match_texture False: landmarks only (no patch term);
    same_lens: every photo from one camera and lens. `detections`: the photos' landmarks found already
    (photos.detection_steps), which the fit then uses instead of finding them again."""
    started = time.perf_counter()
    try:
        fit = settings.photo_fit_settings(quality, expressions, same_lens, match_texture)
    except ValueError as error:
        raise SceneInputError(str(error)) from None
    photos = collect_photos(photos)
    check_mesh_object(mesh_of(arm))
    arm_name = arm.name
    yield Status(f"fitting {arm_name!r} to {len(photos)} photo(s)", 0.02, solver_until=0.9)
    rig_settings, inputs = rebake.rig_job_inputs(arm)
    if detections is not None:
        inputs.update(detections=detections["points"], found=detections["found"],
                      image_size=detections["image_size"], exif_focal=detections["focal_px"])
    job = jobs.Job(tasks.FIT_PHOTOS, settings.photo_fit_job(rig_settings["generate"], fit,
                                                           [p.resolve() for p in photos], rig_settings["names"]),
                   inputs, folder=job_folder(workdir, "fit"))
    yield job.start()
    result = job.result()
    if detections is not None:  # the notes of finding the faces (several faces, downscaled photos) stay with the fit
        result["warnings"] = list(detections["warnings"]) + list(result["warnings"])
    arm = bpy.data.objects.get(arm_name)  # looked up again: the user may have removed it meanwhile
    if arm is None or RIG_PROPERTY not in arm:
        raise SceneInputError(f"the rig {arm_name!r} was removed or renamed during the fit; nothing was changed")
    return (yield from finish_fit_steps(arm, photos, result, bake_identity=bake_identity, workdir=workdir,
                                        expressions=expressions, quality=quality, started=started))


def finish_fit_steps(arm, photos: list[Path], result: dict, bake_identity: bool = False,
                     workdir: Path | None = None, expressions: str | None = None, quality: str | None = None,
                     started: float | None = None) -> Steps:
    """The steps after the "fit_photos" job: with `bake_identity` the rig is bound again on the fitted face (a
    "rebake" job), then the last step writes everything. `result` is the job's result (a stored one in tests);
    `expressions`, `quality` and `started` (time.perf_counter() at the fit's start) are for the summary."""
    started = time.perf_counter() if started is None else started
    mesh_obj = mesh_of(arm)
    arm_name, mesh_name = arm.name, mesh_obj.name
    fitted_vertices = np.asarray(result["fit_vertices"], dtype=float)
    if len(fitted_vertices) != len(mesh_obj.data.vertices):
        raise SceneInputError(f"mesh {mesh_name!r} has {len(mesh_obj.data.vertices)} vertices but the fit was made "
                              f"for {len(fitted_vertices)}; it changed during the fit: fit again")
    if len(result["camera_focal"]) != len(photos):
        raise jobs.JobError(tasks.INTERNAL_ERROR, f"the fit returned {len(result['camera_focal'])} cameras for "
                                                  f"{len(photos)} photos")
    rebound = moved = None
    if bake_identity:
        rebound, moved = yield from _rebind_steps(arm, result, fitted_vertices, workdir)
    yield Status("writing the fitted rig and the cameras", 0.97)

    # Everything that can refuse is checked before the first change.
    arm, mesh_obj = bpy.data.objects.get(arm_name), bpy.data.objects.get(mesh_name)
    if arm is None or mesh_obj is None or existing_rig(mesh_obj) != arm:
        raise SceneInputError(f"the rig {arm_name!r} or its mesh {mesh_name!r} was removed or renamed during the "
                              "fit; nothing was changed")
    missing = [photo for photo in photos if not Path(photo).is_file()]
    if missing:
        raise SceneInputError(f"photo {missing[0].name!r} not found ({missing[0]}): it was moved or deleted during "
                              "the fit; nothing was changed")
    per_photo = _photo_poses(result, len(photos)) if expressions in (None, "per_photo") else None
    cameras, collection, actions = photo_fit_io.write_fit(arm, mesh_obj, photos, result, per_photo, rebound, moved)
    history = np.asarray(result.get("history_total", []), dtype=float)
    summary = {
        "armature": arm.name, "mesh": mesh_obj.name, "photos": [str(p) for p in photos],
        "cameras": cameras, "camera_collection": collection, "actions": actions,
        "focal_pixels": [round(float(f), 1) for f in result["camera_focal"]],
        "pixel_error_before": [round(float(e), 2) for e in result["pixel_error_before"]],
        "pixel_error_after": [round(float(e), 2) for e in result["pixel_error_after"]],
        "final_loss": float(history[-1]) if len(history) else None,
        "quality": quality, "expressions": expressions, "identity": "baked" if rebound is not None else "pose",
        "identity_note": ("the fitted face is the mesh's rest shape now and the rig was bound again on it (rest pose)"
                          if rebound is not None else "the fitted face is the armature's pose; the mesh's rest "
                          "shape is unchanged"),
        "warnings": list(result["warnings"]) + (list(rebound["warnings"]) if rebound is not None else [])
        + ([] if per_photo is not None or expressions == "shared" else
           ["this solver returned no per-photo poses: no expression Actions were made"]),
        "fit_seconds": round(float(result["seconds"]), 1), "seconds": round(time.perf_counter() - started, 1),
        "stage_seconds": json.loads(str(result["stage_seconds"])) if "stage_seconds" in result else {},
        "dense_matches": json.loads(str(result["dense_matches"])) if "dense_matches" in result else {},
        "max_blender_vs_solver": photo_fit_io.blender_vs_solver(mesh_obj, fitted_vertices),
    }
    store_fit_summary(mesh_obj, summary)
    return summary


def _rebind_steps(arm, result: dict, fitted_vertices: np.ndarray, workdir: Path | None):
    """Steps that bind the fitted rig again on the fitted face ("rebake" on the fitted surface, its landmarks
    carried along); returns the job's result and the carried landmarks (478, 3), NaN where not found."""
    rig_settings, inputs = rebake.rig_job_inputs(arm)
    yield Status("binding the rig again on the fitted face", 0.9, solver_until=0.96)
    valid = inputs["landmark_valid"].astype(bool)
    moved = photo_fit_io.carried_landmarks(inputs["landmarks"], valid, inputs["vertices"], inputs["triangles"],
                                           fitted_vertices)
    inputs.update({key: np.asarray(result[key]) for key in set(inputs) - set(keys.MESH_KEYS)},  # the fitted rig
                  vertices=fitted_vertices, landmarks=moved)
    job = jobs.Job(tasks.REBAKE, rig_settings, inputs, folder=job_folder(workdir, "rebind"))
    yield job.start()
    return job.result(), np.where(valid[:, None], moved, np.nan)


def _photo_poses(result: dict, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Each photo's whole pose (log_scale, rotvec, translation), (J, 3) each, when the worker returned them."""
    if not all(key in result for key in keys.PHOTO_POSE_KEYS):
        return None
    arrays = [np.asarray(result[key], dtype=float) for key in keys.PHOTO_POSE_KEYS]
    if any(a.shape != (count, len(result["names"]), 3) for a in arrays):
        return None
    return [tuple(a[v] for a in arrays) for v in range(count)]
