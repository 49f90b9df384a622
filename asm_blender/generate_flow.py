"""Generate Rig as a sequence of steps, shared by the modal operator (one step per timer tick) and the headless
command (all steps in a loop).

    steps = generate_steps(mesh_obj, GenerateOptions(preset="game"), workdir)
    summary = run_to_completion(steps, report)

A step yields either a `Status` (what is being done, overall fraction) or a started solver `Job` to wait for;
the driver waits (or polls) and resumes the generator. Nothing in the scene changes before the last step,
which writes armature, vertex groups, modifier and landmark markers all at once, so cancelling at any
point (closing the generator) leaves the scene as it was.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generator

import bpy
import numpy as np
from mathutils import Vector

from . import jobs
from .scene_io import markers as markers_io
from .scene_io import views as views_io
from .scene_io.mesh import SceneInputError, check_mesh_object, mesh_arrays
from .scene_io.rig import RIG_FORMAT, RIG_PROPERTY, SETTINGS_PROPERTY, apply_rig, existing_rig
from .scene_io.views import (CANDIDATE_YAWS, FACE_DIRECTIONS, VIEW_YAWS, detection_views, facing_direction,
                             frontalness, lift_to_surface, render_direction_candidates, surface_tree)

MIN_LANDMARKS = 100  # fewer surface landmarks than this cannot place 80 bones reliably
FRONTAL_ENOUGH = 0.7  # frontalness of the -Y render that spares the renders from the other directions
SAME_VIEW_DEGREES = 5.0  # a direction render this close to the face's direction serves as its front view


@dataclass(frozen=True)
class GenerateOptions:
    preset: str = "full"
    influence_cap: int = 4
    gaussians_per_bone: int = 3
    face_direction: str = "AUTO"  # or a key of FACE_DIRECTIONS (world axis the face looks along)
    detect_again: bool = False  # ignore the head's landmark markers and detect anew
    geometry_fallback: bool = False  # no face found: place the landmarks from the shape instead of stopping


@dataclass(frozen=True)
class Status:
    text: str
    fraction: float


Step = Status | jobs.Job


def generate_steps(mesh_obj: bpy.types.Object, options: GenerateOptions,
                   workdir: Path) -> Generator[Step, None, dict]:
    """The Generate Rig steps for `mesh_obj` (see the module docstring); returns a summary dict."""
    started = time.perf_counter()
    check_mesh_object(mesh_obj)
    previous = existing_rig(mesh_obj)
    if previous is not None:
        recorded = json.loads(previous[RIG_PROPERTY]).get("format") if isinstance(previous[RIG_PROPERTY], str) else None
        if recorded != RIG_FORMAT:
            raise SceneInputError(f"the rig {previous.name!r} on {mesh_obj.name!r} was made by another ASM version "
                                  f"(format {recorded!r}, this one reads {RIG_FORMAT!r}); press Remove Rig, "
                                  "then Generate")
    yield Status("reading the mesh", 0.02)
    bpy.context.view_layer.update()  # world matrices of objects just moved or parented by a script
    arrays = mesh_arrays(mesh_obj)
    workdir = Path(workdir)
    stored = None if options.detect_again else markers_io.read_markers(mesh_obj)
    notes: list[str] = []
    if stored is not None:
        landmarks, valid = stored
        landmarks_from = "markers"
        notes.append(f"used the {int(valid.sum())} landmarks of {markers_io.find_markers(mesh_obj).name!r}")
    else:
        found = yield from _detected_landmarks(mesh_obj, arrays, options, workdir)
        if found is not None:
            landmarks, valid = found
            landmarks_from = "detected"
        else:
            landmarks, valid = yield from _geometry_landmarks(mesh_obj, arrays, options, workdir)
            landmarks_from = "geometry"
            notes.append(f"no face was found on {mesh_obj.name!r}: its landmarks were placed from its shape (nose "
                         "tip, symmetry, width); check them with Edit Landmarks and regenerate")
    world = np.array(mesh_obj.matrix_world)
    facing = facing_direction(np.where(valid[:, None], landmarks @ world[:3, :3].T + world[:3, 3], np.nan))
    surface_count = int(valid[:468].sum())  # the face's own points; the iris points float
    if surface_count < MIN_LANDMARKS:
        raise SceneInputError(f"only {surface_count} face landmarks lie on {mesh_obj.name!r} (at least "
                              f"{MIN_LANDMARKS} are needed); move or add markers, or detect again")
    job = jobs.Job("generate", {"preset": options.preset, "influence_cap": options.influence_cap,
                                "gaussians_per_bone": options.gaussians_per_bone},
                   {"vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
                    "landmarks": np.where(valid[:, None], landmarks, 0.0), "landmark_valid": valid},
                   folder=workdir / "generate").start()
    yield job
    result = job.result()
    yield Status("writing the rig", 0.95)
    arm = apply_rig(mesh_obj, result)
    facing_text = _describe(Vector(facing)) if facing is not None else "unknown"
    arm[SETTINGS_PROPERTY] = json.dumps({**asdict(options), "face_direction_found": facing_text})
    markers = markers_io.write_markers(mesh_obj, landmarks, valid)
    return {
        "mesh": mesh_obj.name, "armature": arm.name, "landmark_object": markers.name,
        "bones": len(result["names"]), "vertex_groups": len(mesh_obj.get("asm_vertex_groups", [])),
        "vertices": len(arrays.vertices), "landmarks": int(valid.sum()), "landmarks_from": landmarks_from,
        "face_direction": facing_text,
        "direction_vector": None if facing is None else [round(float(c), 4) for c in facing],
        "chart": str(result["chart"]), "preset": options.preset, "influence_cap": options.influence_cap,
        "notes": notes, "warnings": list(result["warnings"]), "seconds": round(time.perf_counter() - started, 2),
    }


def _detected_landmarks(mesh_obj, arrays, options: GenerateOptions, workdir: Path):
    """Steps that find the landmarks with the detector; returns ((478, 3) object-space positions, (478,) valid),
    or None when no face is found and options.geometry_fallback allows going on without one. Closed part way
    (cancelled), it cancels the detections it queued."""
    started: list[jobs.Job] = []
    try:
        return (yield from _detection_steps(mesh_obj, arrays, options, workdir, started))
    finally:
        for job in started:
            if not job.done():
                job.cancel()


def _detection_steps(mesh_obj, arrays, options: GenerateOptions, workdir: Path, started: list):
    """The steps of `_detected_landmarks`; every detection job they queue is appended to `started`."""

    def detect(views, folder: Path) -> jobs.Job:
        started.append(_detect_job(views, folder))
        return started[-1]

    no_face, tree = None, None
    if options.face_direction == "AUTO":
        yield Status("finding which way the face looks", 0.05)
        # Blender's front (-Y) first: most heads face it, and then the seven other renders are not needed.
        candidates = render_direction_candidates(mesh_obj, workdir / "directions", yaws=CANDIDATE_YAWS[:1])
        job = detect(candidates, workdir / "detect_front")
        tree = surface_tree(mesh_obj)  # while the solver process looks for the face
        yield job
        found = job.result()
        points_found, faces_found = list(found["points"]), list(found["found"])
        if not (faces_found[0] and frontalness(points_found[0]) >= FRONTAL_ENOUGH):
            yield Status("the face is not towards -Y: looking around it", 0.1)
            around = []
            for yaw in CANDIDATE_YAWS[1:]:  # one render per step: a modal operator stays responsive between
                view = render_direction_candidates(mesh_obj, workdir / "directions", yaws=(yaw,))[0]
                around.append((view, detect([view], workdir / f"detect_around_{yaw:03d}")))
                yield Status("the face is not towards -Y: looking around it", 0.1 + 0.1 * len(around) / 7)
            for view, job in around:
                yield job
                found = job.result()
                candidates.append(view)
                points_found.append(found["points"][0])
                faces_found.append(bool(found["found"][0]))
        scores = [frontalness(points) if ok else -1.0 for points, ok in zip(points_found, faces_found)]
        best = int(np.argmax(scores))
        if scores[best] < 0:
            no_face = (f"no face was found on renders of {mesh_obj.name!r} from eight directions around it; check "
                       "that it is a head standing upright (+Z up), set Face Direction by hand, or allow "
                       "landmarks from the geometry")
        else:
            # The best candidate may see the face up to 22 degrees off: its landmarks on the surface say
            # exactly where the face looks.
            points, ok, _ = lift_to_surface(mesh_obj, arrays, [candidates[best]], [points_found[best]], tree=tree)
            to_world = np.array(mesh_obj.matrix_world)
            forward = facing_direction(np.where(ok[:, None], points @ to_world[:3, :3].T + to_world[:3, 3], np.nan))
            fallback = candidates[best].camera_to_world[:3, 2]  # the camera's backward axis points at it
            direction = Vector(forward if forward is not None else fallback)
            direction_key = _describe(direction)
    elif options.face_direction in FACE_DIRECTIONS:
        direction = Vector(FACE_DIRECTIONS[options.face_direction])
        direction_key = options.face_direction
    else:
        raise SceneInputError(f"unknown face direction {options.face_direction!r}; "
                              f"use AUTO or one of {list(FACE_DIRECTIONS)}")
    if no_face is None:
        yield Status(f"rendering {mesh_obj.name!r} facing {direction_key}", 0.25)
        views, view_jobs, points_known = [], [], []
        if options.face_direction == "AUTO" and _angle_degrees(candidates[best].camera_to_world[:3, 2],
                                                                direction) < SAME_VIEW_DEGREES:
            # The direction render already is the front view, its landmarks already found.
            views.append(candidates[best])
            points_known.append((points_found[best], faces_found[best]))
        for yaw in VIEW_YAWS[len(views):]:
            view = detection_views(mesh_obj, workdir / "views", (yaw,), face_direction=direction)[0]
            # Each view's detection starts at once: the solver process finds its landmarks on the other core
            # while Blender renders the next view.
            view_jobs.append(detect([view], workdir / f"detect_view_{len(views):02d}"))
            views.append(view)
            yield Status(f"rendering {mesh_obj.name!r} facing {direction_key}",
                         0.25 + 0.2 * len(views) / len(VIEW_YAWS))
        for job in view_jobs:
            yield job
            found = job.result()
            points_known.append((found["points"][0], bool(found["found"][0])))
        if points_known[0][1]:
            yield Status("placing the landmarks on the surface", 0.5)
            detections = [points if ok else None for points, ok in points_known]
            landmarks, valid, _ = lift_to_surface(mesh_obj, arrays, views, detections, tree=tree)
            return landmarks, valid
        no_face = (f"no face was found on the front render of {mesh_obj.name!r} (facing {direction_key}); set "
                   "Face Direction to where the face looks, or allow landmarks from the geometry")
    if not options.geometry_fallback:
        raise SceneInputError(no_face)
    return None


def _geometry_landmarks(mesh_obj, arrays, options: GenerateOptions, workdir: Path):
    """Steps that place the landmarks from the mesh's shape (solver/geometry_landmarks.py), looking along the set
    Face Direction (Blender's front, -Y, for Auto), +Z up."""
    yield Status("placing the landmarks from the shape", 0.4)
    to_world = np.array(mesh_obj.matrix_world)
    forward = FACE_DIRECTIONS.get(options.face_direction, FACE_DIRECTIONS["-Y"])
    job = jobs.Job("geometry_landmarks", {}, {
        "vertices": arrays.vertices @ to_world[:3, :3].T + to_world[:3, 3], "triangles": arrays.triangles,
        "forward": np.array(forward), "up": np.array([0.0, 0.0, 1.0])}, folder=workdir / "geometry").start()
    yield job
    found = job.result()
    valid = found["valid"].astype(bool)
    world_points = np.where(valid[:, None], found["points"], 0.0)
    to_object = np.linalg.inv(to_world)
    landmarks = world_points @ to_object[:3, :3].T + to_object[:3, 3]
    return np.where(valid[:, None], landmarks, np.nan), valid


def _describe(direction: Vector) -> str:
    """A horizontal direction as text: a world axis ("-Y") when within 5 degrees of one, else its angle."""
    x, y = direction.x, direction.y
    angle = np.degrees(np.arctan2(y, x))
    for key, axis in FACE_DIRECTIONS.items():
        if np.degrees(np.arccos(np.clip(x * axis[0] + y * axis[1], -1, 1))) < 5:
            return key
    return f"{angle:.0f} degrees from +X"


def _detect_job(views, folder: Path) -> jobs.Job:
    return jobs.Job("detect", {"images": [str(view.image_path) for view in views],
                               "max_side": views_io.DETECTOR_SIZE}, {}, folder=folder).start()


def _angle_degrees(first, second) -> float:
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    cosine = first @ second / (np.linalg.norm(first) * np.linalg.norm(second))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def solver_status(progress: jobs.Progress, start: float = 0.5, end: float = 0.95) -> Status:
    """A solver job's progress as an overall Status between `start` and `end`."""
    loss = f" (loss {progress.loss:.3g})" if progress.loss is not None else ""
    return Status(f"solver: {progress.stage}{loss}", start + (end - start) * progress.fraction)


def run_to_completion(steps: Generator[Step, None, dict], report=None, poll_seconds: float = 0.02) -> dict:
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
