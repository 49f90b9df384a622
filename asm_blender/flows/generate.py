"""Generate Rig as steps (see flows/steps.py):

    summary = run_to_completion(generate_steps(mesh_obj, GenerateOptions(preset="game"), workdir))

The landmarks come from the head's markers, or from renders of it (the face's direction found first unless it is
given), or from its shape alone; then the solver places the rig ("generate" job), and the last step writes
armature, vertex groups, modifier and landmark markers all at once.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from mathutils import Vector

from .. import jobs
from ..protocol import choices, landmarks as landmark_ids, settings, tasks
from ..scene_io import markers as markers_io
from ..scene_io import views as views_io
from ..scene_io.mesh import SceneInputError, check_mesh_object, mesh_arrays, update_world_matrices
from ..scene_io.rig import apply_rig, check_rig_format, existing_rig, store_generate_settings
from ..scene_io.views import (CANDIDATE_YAWS, VIEW_YAWS, View, detection_views, facing_direction, frontalness,
                              lift_to_surface, render_direction_candidates, surface_tree)
from .rig_checks import refuse_wrong_layout
from .steps import Status, Steps

MIN_LANDMARKS = 100  # fewer surface landmarks than this cannot place 80 bones reliably
FRONTAL_ENOUGH = 0.7  # frontalness of the -Y render that spares the renders from the other directions
SAME_VIEW_DEGREES = 5.0  # a direction render this close to the face's direction serves as its front view


@dataclass(frozen=True)
class GenerateOptions:
    preset: str = choices.DEFAULT_PRESET
    influence_cap: int = choices.DEFAULT_INFLUENCE_CAP
    gaussians_per_bone: int = choices.DEFAULT_GAUSSIANS_PER_BONE
    face_direction: str = choices.AUTO_DIRECTION  # or a key of choices.FACE_DIRECTIONS
    detect_again: bool = False  # ignore the head's landmark markers and detect anew
    geometry_fallback: bool = False  # no face found: place the landmarks from the shape instead of stopping

    def job_settings(self) -> dict:
        return settings.generate_settings(self.preset, self.influence_cap, self.gaussians_per_bone)


@dataclass
class _Rendered:
    """A detection render and what the detector found on it."""

    view: View
    points: np.ndarray  # (478, 2) pixels, NaN where no face
    found: bool
    upside_down: bool = False  # the face on it stands upside down (the detector's landmarks are then wrong)

    @classmethod
    def from_detection(cls, view: View, detected: dict, index: int = 0) -> "_Rendered":
        return cls(view, detected["points"][index], bool(detected["found"][index]),
                   bool(detected["upside_down"][index]))


def generate_steps(mesh_obj, options: GenerateOptions, workdir: Path) -> Steps:
    """The Generate Rig steps for `mesh_obj` (see the module docstring); returns a summary dict."""
    started = time.perf_counter()
    check_mesh_object(mesh_obj)
    previous = existing_rig(mesh_obj)
    if previous is not None:
        check_rig_format(previous, mesh_obj)
    yield Status("reading the mesh", 0.02)
    update_world_matrices()  # of objects just moved or parented by a script
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
    surface_count = int(valid[:landmark_ids.SURFACE_LANDMARKS].sum())  # the face's own points; the iris points float
    if surface_count < MIN_LANDMARKS:
        raise SceneInputError(f"only {surface_count} face landmarks lie on {mesh_obj.name!r} (at least "
                              f"{MIN_LANDMARKS} are needed); move or add markers, or detect again")
    yield Status("placing the rig", 0.55, solver_until=0.95)
    job = jobs.Job(tasks.GENERATE, options.job_settings(),
                   {"vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
                    "landmarks": np.where(valid[:, None], landmarks, 0.0), "landmark_valid": valid},
                   folder=workdir / "generate").start()
    yield job
    result = job.result()
    refuse_wrong_layout(mesh_obj.name, result["names"], result["bind"], world, facing)
    yield Status("writing the rig", 0.95)
    arm = apply_rig(mesh_obj, result)
    facing_text = _describe(Vector(facing)) if facing is not None else "unknown"
    store_generate_settings(arm, {**asdict(options), "face_direction_found": facing_text})
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

    def detect(views: list[View], folder: Path) -> jobs.Job:
        started.append(jobs.Job(tasks.DETECT, settings.detect_job([view.image_path for view in views],
                                                                   views_io.DETECTOR_SIZE, renders=True), {},
                                folder=folder).start())
        return started[-1]

    try:
        return (yield from _detection_steps(mesh_obj, arrays, options, workdir, detect))
    finally:
        for job in started:
            if not job.done():
                job.cancel()


def _detection_steps(mesh_obj, arrays, options: GenerateOptions, workdir: Path, detect):
    """The steps of `_detected_landmarks`, queueing each detection with `detect(views, folder)`."""
    front, tree = None, None
    if options.face_direction == choices.AUTO_DIRECTION:
        tree = [None]  # built while the solver process looks for the face
        best = yield from _face_direction_steps(mesh_obj, workdir, detect, tree)
        tree = tree[0]
        if best is None:
            return _no_face(options, f"no face was found on renders of {mesh_obj.name!r} from eight directions "
                                     "around it; check that it is a head standing upright (+Z up), set Face Direction "
                                     "by hand, or allow landmarks from the geometry")
        _refuse_upside_down(mesh_obj, best)
        direction = _looking_direction(mesh_obj, arrays, best, tree)
        direction_key = _describe(direction)
        if _angle_degrees(best.view.camera_to_world[:3, 2], direction) < SAME_VIEW_DEGREES:
            front = best  # the direction render already is the front view, its landmarks already found
    elif options.face_direction in choices.FACE_DIRECTIONS:
        direction = Vector(choices.FACE_DIRECTIONS[options.face_direction])
        direction_key = options.face_direction
    else:
        raise SceneInputError(f"unknown face direction {options.face_direction!r}; "
                              f"use {choices.AUTO_DIRECTION} or one of {list(choices.FACE_DIRECTIONS)}")
    rendered = yield from _view_steps(mesh_obj, direction, direction_key, front, workdir, detect)
    _refuse_upside_down(mesh_obj, rendered[0])  # first: the landmark model can find no face in one upside down
    if not rendered[0].found:
        return _no_face(options, f"no face was found on the front render of {mesh_obj.name!r} (facing "
                                 f"{direction_key}); set Face Direction to where the face looks, or allow landmarks "
                                 "from the geometry")
    yield Status("placing the landmarks on the surface", 0.5)
    landmarks, valid, _ = lift_to_surface(mesh_obj, arrays, [r.view for r in rendered],
                                          [r.points if r.found else None for r in rendered], tree=tree)
    return landmarks, valid


def _refuse_upside_down(mesh_obj, front: _Rendered) -> None:
    """The landmarks of a face seen upside down are an upright face's, the chin where the forehead is: a rig on them
    would be wrong from top to bottom. Renders look along the horizon with +Z up, so the head must stand upright."""
    if front.upside_down:
        raise SceneInputError(f"the face of {mesh_obj.name!r} is upside down on its renders (Generate needs the head "
                              "standing upright, +Z up): turn the object 180 degrees about the axis its face looks "
                              "along (or fix the import's axes) and generate again")


def _no_face(options: GenerateOptions, message: str) -> None:
    """No face was found: refuse with `message`, or go on without detected landmarks when the options allow."""
    if not options.geometry_fallback:
        raise SceneInputError(message)
    return None


def _face_direction_steps(mesh_obj, workdir: Path, detect, tree: list):
    """Steps that find which way the face looks: Blender's front (-Y) first, as most heads face it, and only when
    the face is not frontal there the seven other directions. Returns the most frontal render with a face, or None
    when no render shows one (a render that shows a face only when turned upside down is returned, to be refused);
    tree[0] becomes the mesh's ray-casting tree."""
    yield Status("finding which way the face looks", 0.05)
    candidates = render_direction_candidates(mesh_obj, workdir / "directions", yaws=CANDIDATE_YAWS[:1])
    job = detect(candidates, workdir / "detect_front")
    tree[0] = surface_tree(mesh_obj)  # while the solver process looks for the face
    yield job
    rendered = [_Rendered.from_detection(candidates[0], job.result())]
    if not (rendered[0].found and frontalness(rendered[0].points) >= FRONTAL_ENOUGH):
        yield Status("the face is not towards -Y: looking around it", 0.1)
        around = []
        for yaw in CANDIDATE_YAWS[1:]:  # one render per step: a modal operator stays responsive between
            view = render_direction_candidates(mesh_obj, workdir / "directions", yaws=(yaw,))[0]
            around.append((view, detect([view], workdir / f"detect_around_{yaw:03d}")))
            yield Status("the face is not towards -Y: looking around it", 0.1 + 0.1 * len(around) / 7)
        for view, job in around:
            yield job
            rendered.append(_Rendered.from_detection(view, job.result()))
    scores = [frontalness(r.points) if r.found else -1.0 for r in rendered]
    best = int(np.argmax(scores))
    if scores[best] >= 0:
        return rendered[best]
    return next((r for r in rendered if r.upside_down), None)


def _looking_direction(mesh_obj, arrays, best: _Rendered, tree) -> Vector:
    """Where the face looks, from its landmarks on the surface (the best direction render may see it up to 22
    degrees off), or that render's camera axis when they are too few."""
    points, ok, _ = lift_to_surface(mesh_obj, arrays, [best.view], [best.points], tree=tree)
    to_world = np.array(mesh_obj.matrix_world)
    forward = facing_direction(np.where(ok[:, None], points @ to_world[:3, :3].T + to_world[:3, 3], np.nan))
    return Vector(forward if forward is not None else best.view.camera_to_world[:3, 2])


def _view_steps(mesh_obj, direction: Vector, direction_key: str, front: _Rendered | None, workdir: Path, detect):
    """Steps that render the views around the face's direction (VIEW_YAWS) and find their landmarks; each view's
    detection starts at once, so the solver process works on the other core while Blender renders the next view.
    `front`: the front view when a direction render already is one. Returns the renders, front first."""
    yield Status(f"rendering {mesh_obj.name!r} facing {direction_key}", 0.25)
    rendered = [] if front is None else [front]
    queued = []
    for yaw in VIEW_YAWS[len(rendered):]:
        view = detection_views(mesh_obj, workdir / "views", (yaw,), face_direction=direction)[0]
        queued.append((view, detect([view], workdir / f"detect_view_{len(rendered) + len(queued):02d}")))
        yield Status(f"rendering {mesh_obj.name!r} facing {direction_key}",
                     0.25 + 0.2 * (len(rendered) + len(queued)) / len(VIEW_YAWS))
    for view, job in queued:
        yield job
        rendered.append(_Rendered.from_detection(view, job.result()))
    return rendered


def _geometry_landmarks(mesh_obj, arrays, options: GenerateOptions, workdir: Path):
    """Steps that place the landmarks from the mesh's shape (solver/rig/geometry_landmarks.py), looking along the
    set Face Direction (Blender's front, -Y, for Auto), +Z up."""
    yield Status("placing the landmarks from the shape", 0.4)
    to_world = np.array(mesh_obj.matrix_world)
    forward = choices.FACE_DIRECTIONS.get(options.face_direction, choices.FACE_DIRECTIONS["-Y"])
    job = jobs.Job(tasks.GEOMETRY_LANDMARKS, {}, {
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
    for key, axis in choices.FACE_DIRECTIONS.items():
        if np.degrees(np.arccos(np.clip(x * axis[0] + y * axis[1], -1, 1))) < 5:
            return key
    return f"{angle:.0f} degrees from +X"


def _angle_degrees(first, second) -> float:
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    cosine = first @ second / (np.linalg.norm(first) * np.linalg.norm(second))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
