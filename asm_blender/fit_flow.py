"""Fit a rig to photos as steps (like generate_flow): check the photos, run the solver's "fit_photos" job
(landmarks in every photo, cameras, fit), then write the fitted rig, its pose, one camera per photo and each
photo's expression.

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
from typing import Generator

import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree
from mathutils.geometry import barycentric_transform

from . import jobs, rebake
from .generate_flow import Status, Step
from .scene_io import armature as armature_io
from .scene_io import markers as markers_io
from .scene_io.cameras import add_photo_camera
from .scene_io.mesh import SceneInputError, check_mesh_object
from .scene_io.rig import CHART_ATTRIBUTE, RIG_PROPERTY, existing_rig

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
QUALITIES = ("fast", "balanced", "best")
EXPRESSIONS = ("per_photo", "shared")  # solver.photo_fit.EXPRESSION_MODES
CAMERA_PROPERTY = "asm_photo"  # on each photo camera and photo action: the photo's path
OWNER_PROPERTY = "asm_fit_of"  # on each photo camera, action and the photos' collection: the head mesh's name
ACTION_PROPERTY = "asm_action"  # on each photo camera: the name of its photo's expression Action
MESH_INPUTS = frozenset({"vertices", "triangles", "corner_uv", "landmarks", "landmark_valid"})  # the rest: rig's
PHOTO_POSE_KEYS = ("photo_log_scale", "photo_rotvec", "photo_translation")  # (V, J, 3) each photo's whole pose


def collect_photos(paths) -> list[Path]:
    """Photo files from files and folders (a folder's images in name order); a clear error for anything else."""
    photos: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            photos += sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif not path.is_file():
            raise SceneInputError(f"photo not found: {path}")
        elif path.suffix.lower() not in PHOTO_SUFFIXES:
            raise SceneInputError(f"{path.name}: not a photo this fit reads ({', '.join(PHOTO_SUFFIXES)})")
        else:
            photos.append(path)
    if not photos:
        raise SceneInputError("no photos to fit: give image files or a folder of them")
    return photos


def photo_path(photo) -> Path:
    """The file of a photo in a mesh's list (ASM_PG_photo), relative paths ("//") resolved."""
    return Path(bpy.path.abspath(photo.filepath))


def enabled_photos(mesh_obj: bpy.types.Object) -> list[Path]:
    """The ticked photos of `mesh_obj`'s list as files; a message naming the first that cannot be fitted."""
    photos = [photo for photo in mesh_obj.asm.photos if photo.enabled]
    if not photos:
        raise SceneInputError(f"no photos are ticked in the photo list of {mesh_obj.name!r}; add photos (Add Photos) "
                              "or tick the ones to fit")
    paths = []
    for photo in photos:
        if not photo.filepath.strip():
            raise SceneInputError(f"a photo in the list of {mesh_obj.name!r} has no file; choose its file or remove it")
        path = photo_path(photo)
        if not path.is_file():
            raise SceneInputError(f"photo {path.name!r} not found ({path}): it was moved or deleted after it was "
                                  "added; find it again or remove it from the list")
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            raise SceneInputError(f"{path.name}: not a photo this fit reads ({', '.join(PHOTO_SUFFIXES)})")
        paths.append(path)
    return paths


def rig_for_fit(mesh_obj: bpy.types.Object | None) -> bpy.types.Object:
    """The ASM armature of the head to fit; a message saying what to do when there is none."""
    check_mesh_object(mesh_obj)
    arm = existing_rig(mesh_obj)
    if arm is None:
        raise SceneInputError(f"mesh {mesh_obj.name!r} has no ASM rig yet: press Generate Rig first, then fit it "
                              "to the photos")
    return arm


def _folder(workdir: Path | None, name: str) -> Path | None:
    return None if workdir is None else Path(workdir) / name


# -- Check Photos ------------------------------------------------------------------------------------------------

def check_steps(mesh_obj: bpy.types.Object, workdir: Path | None = None) -> Generator[Step, None, dict]:
    """Find the face in every photo of `mesh_obj`'s list (the worker's "detect" task, one job per photo, so an
    unreadable file gets its own message and the others are still checked); the last step writes each photo's
    status (ASM_PG_photo). Returns a summary."""
    mesh_name = mesh_obj.name
    entries = [(photo.filepath, photo_path(photo)) for photo in mesh_obj.asm.photos]
    if not entries:
        raise SceneInputError(f"the photo list of {mesh_name!r} is empty; add photos first")
    found: dict[str, dict] = {}
    for index, (key, path) in enumerate(entries):
        if key in found:
            continue
        yield Status(f"finding the face in {path.name}", 0.05 + 0.9 * index / len(entries))
        if not key.strip() or not path.is_file():
            found[key] = {"status": "MISSING", "message": f"file not found: {path}"}
            continue
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            found[key] = {"status": "ERROR", "message": f"not an image type the fit reads ({', '.join(PHOTO_SUFFIXES)})"}
            continue
        job = jobs.Job("detect", {"images": [str(path.resolve())]}, {}, folder=_folder(workdir, f"detect_{index}"))
        yield job.start()
        try:
            detected = job.result()
        except jobs.JobError as error:
            if error.kind != "input":  # cancelled, or the worker failed: the check as a whole stops
                raise
            found[key] = {"status": "ERROR", "message": str(error)}
            continue
        found[key] = _photo_status(detected)
    yield Status("writing the photos' statuses", 0.97)
    mesh_obj = bpy.data.objects.get(mesh_name)
    if mesh_obj is None:
        raise SceneInputError(f"mesh {mesh_name!r} was removed or renamed during the check")
    for photo in mesh_obj.asm.photos:
        status = found.get(photo.filepath)
        if status is None:  # added while the check ran
            continue
        photo.status = status["status"]
        photo.face_found = status.get("face_found", False)
        photo.landmark_count = status.get("landmarks", 0)
        photo.image_size = status.get("image_size", (0, 0))
        photo.message = status["message"]
    counts = {}
    for status in found.values():
        counts[status["status"]] = counts.get(status["status"], 0) + 1
    return {"mesh": mesh_name, "photos": len(found), "faces_found": counts.get("OK", 0) + counts.get("WARNING", 0),
            "statuses": counts,
            "problems": [f"{Path(key).name}: {status['message']}" for key, status in found.items()
                         if status["status"] not in ("OK",)]}


def _photo_status(detected: dict) -> dict:
    """One photo's status from a "detect" result (faces_found and warnings only from newer workers)."""
    ok = bool(detected["found"][0])
    size = tuple(int(round(float(s))) for s in detected["image_size"][0])
    faces = int(detected["faces_found"][0]) if "faces_found" in detected else int(ok)
    notes = [str(note) for note in detected.get("warnings", [])]
    if not ok:
        return {"status": "NO_FACE", "face_found": False, "image_size": size,
                "message": "; ".join(["no face found: the fit would refuse this photo"] + notes)}
    count = int(np.isfinite(np.asarray(detected["points"][0], dtype=float)).all(-1).sum())
    if faces > 1 and not any("face" in note for note in notes):
        notes.append(f"{faces} faces: the largest is used")
    return {"status": "WARNING" if notes else "OK", "face_found": True, "landmarks": count, "image_size": size,
            "message": "; ".join(notes) if notes else f"{count} landmarks, {size[0]}x{size[1]} px"}


# -- Fit ---------------------------------------------------------------------------------------------------------

def fit_steps(arm: bpy.types.Object, photos: list[Path], quality: str = "balanced", expressions: str = "per_photo",
              bake_identity: bool = False, workdir: Path | None = None, *,
              match_texture: bool = True, same_lens: bool = False) -> Generator[Step, None, dict]:
    """The photo fit of `arm`'s rig (see the module docstring); returns a summary dict. `workdir`: where the jobs'
    folders go (a new temporary folder each when None). match_texture False: landmarks only (no patch term);
    same_lens: every photo from one camera and lens."""
    started = time.perf_counter()
    if quality not in QUALITIES:
        raise SceneInputError(f"unknown fit quality {quality!r}; use one of {list(QUALITIES)}")
    if expressions not in EXPRESSIONS:
        raise SceneInputError(f"unknown expression handling {expressions!r}; use one of {list(EXPRESSIONS)}")
    photos = collect_photos(photos)
    check_mesh_object(rebake.mesh_of(arm))
    arm_name = arm.name
    yield Status(f"fitting {arm_name!r} to {len(photos)} photo(s)", 0.02)
    settings, inputs = rebake.rig_job_inputs(arm)
    fit = {"quality": quality, "expressions": expressions, "same_lens": same_lens,
           **({} if match_texture else {"photometric": 0.0})}
    job = jobs.Job("fit_photos", {**settings, "fit": fit,
                                  "images": [str(p.resolve()) for p in photos]}, inputs,
                   folder=_folder(workdir, "fit"))
    yield job.start()
    result = job.result()
    arm = bpy.data.objects.get(arm_name)  # looked up again: the user may have removed it meanwhile
    if arm is None or RIG_PROPERTY not in arm:
        raise SceneInputError(f"the rig {arm_name!r} was removed or renamed during the fit; nothing was changed")
    return (yield from finish_fit_steps(arm, photos, result, bake_identity=bake_identity, workdir=workdir,
                                        expressions=expressions, quality=quality, started=started))


def finish_fit_steps(arm: bpy.types.Object, photos: list[Path], result: dict, bake_identity: bool = False,
                     workdir: Path | None = None, expressions: str | None = None, quality: str | None = None,
                     started: float | None = None) -> Generator[Step, None, dict]:
    """The steps after the "fit_photos" job: with `bake_identity` the rig is bound again on the fitted face (a
    "rebake" job), then the last step writes everything. `result` is the job's result (a stored one in tests);
    `expressions`, `quality` and `started` (time.perf_counter() at the fit's start) are for the summary."""
    started = time.perf_counter() if started is None else started
    arm_name, mesh_name = arm.name, rebake.mesh_of(arm).name
    mesh_obj = rebake.mesh_of(arm)
    fitted_vertices = np.asarray(result["fit_vertices"], dtype=float)
    if len(fitted_vertices) != len(mesh_obj.data.vertices):
        raise SceneInputError(f"mesh {mesh_name!r} has {len(mesh_obj.data.vertices)} vertices but the fit was made "
                              f"for {len(fitted_vertices)}; it changed during the fit: fit again")
    if len(result["camera_focal"]) != len(photos):
        raise jobs.JobError("internal", f"the fit returned {len(result['camera_focal'])} cameras for {len(photos)} "
                                        "photos")
    rebound = None
    if bake_identity:
        settings, inputs = rebake.rig_job_inputs(arm)
        yield Status("binding the rig again on the fitted face", 0.9)
        landmark_valid = inputs["landmark_valid"].astype(bool)
        moved = _moved_landmarks(inputs["landmarks"], landmark_valid, inputs["vertices"], inputs["triangles"],
                                 fitted_vertices)
        inputs.update({key: np.asarray(result[key]) for key in set(inputs) - MESH_INPUTS},  # the fitted rig
                      vertices=fitted_vertices, landmarks=moved)
        job = jobs.Job("rebake", settings, inputs, folder=_folder(workdir, "rebind"))
        yield job.start()
        rebound = job.result()
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
    names = [str(n) for n in result["names"]]
    parents = np.asarray(result["parents"], dtype=int)
    per_photo = _photo_poses(result, len(photos)) if expressions in (None, "per_photo") else None

    # The photos' poses as armature-space bone matrices on the fitted rig, so that they can be keyed on whatever
    # rest the rig ends with (the fitted one, or the one bound again on the fitted face).
    photo_matrices = []
    for log_scale, rotvec, translation in per_photo or []:
        armature_io.set_pose(arm, names, log_scale, rotvec, translation)
        basis = np.array([np.array(arm.pose.bones[name].matrix_basis) for name in names])
        photo_matrices.append(pose_matrices(np.asarray(result["bind"], dtype=float), parents, basis))
    if rebound is None:
        rebake.apply_rebake(arm, result)
        armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    else:
        _write_rest_shape(mesh_obj, fitted_vertices)
        markers_io.write_markers(mesh_obj, np.where(landmark_valid[:, None], moved, np.nan), landmark_valid)
        _write_chart(mesh_obj, rebound)
        rebake.apply_rebake(arm, rebound)
    actions = _write_photo_actions(arm, mesh_obj, names, parents, photo_matrices, photos)
    if rebound is None:
        armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    else:
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
    cameras, collection = _replace_cameras(mesh_obj, photos, result)
    for camera, action in zip(cameras, actions):
        bpy.data.objects[camera][ACTION_PROPERTY] = action
    _remember_photos(mesh_obj, photos)
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
        "max_blender_vs_solver": _blender_vs_solver(mesh_obj, fitted_vertices),
    }
    if hasattr(mesh_obj, "asm"):
        mesh_obj.asm.fit_summary = json.dumps(summary)
    return summary


def _photo_poses(result: dict, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """Each photo's whole pose (log_scale, rotvec, translation), (J, 3) each, when the worker returned them."""
    if not all(key in result for key in PHOTO_POSE_KEYS):
        return None
    arrays = [np.asarray(result[key], dtype=float) for key in PHOTO_POSE_KEYS]
    if any(a.shape != (count, len(result["names"]), 3) for a in arrays):
        return None
    return [tuple(a[v] for a in arrays) for v in range(count)]


def pose_matrices(rest: np.ndarray, parents: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(J, 4, 4) armature-space pose matrices of bones with rest matrices `rest` (J, 4, 4) and pose channels
    `basis` (J, 4, 4, matrix_basis), as Blender evaluates the ASM rig's bones (full inherited scale, local
    location, parents first): pose = parent_pose @ parent_rest^-1 @ rest @ basis."""
    posed = np.empty_like(basis)
    for j, parent in enumerate(parents):
        above = np.eye(4) if parent < 0 else posed[parent] @ np.linalg.inv(rest[parent])
        posed[j] = above @ rest[j] @ basis[j]
    return posed


def pose_basis(rest: np.ndarray, parents: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """The inverse of pose_matrices: (J, 4, 4) pose channels that put the bones at `posed` on rest `rest`."""
    basis = np.empty_like(posed)
    for j, parent in enumerate(parents):
        above = np.eye(4) if parent < 0 else posed[parent] @ np.linalg.inv(rest[parent])
        basis[j] = np.linalg.inv(above @ rest[j]) @ posed[j]
    return basis


def _write_photo_actions(arm, mesh_obj, names, parents, photo_matrices, photos) -> list[str]:
    """Replace the previous fit's photo Actions of `mesh_obj` by one per photo, keyed (one frame) on every bone so
    that the bones stand at `photo_matrices[v]`; the armature's own animation data is left as it was."""
    for action in [a for a in bpy.data.actions if a.get(OWNER_PROPERTY) == mesh_obj.name]:
        bpy.data.actions.remove(action)
    if not photo_matrices:
        return []
    had_animation = arm.animation_data is not None
    previous = arm.animation_data.action if had_animation else None
    animation = arm.animation_data_create()
    rest = armature_io.rest_matrices(arm, names).astype(float)
    frame = bpy.context.scene.frame_start
    made = []
    try:
        for index, (photo, posed) in enumerate(zip(photos, photo_matrices)):
            action = bpy.data.actions.new(f"{mesh_obj.name} photo {index + 1}")
            action.use_fake_user = True  # kept in the saved file although no object uses it
            action[OWNER_PROPERTY] = mesh_obj.name
            action[CAMERA_PROPERTY] = str(photo)
            made.append(action.name)
            animation.action = action
            for name, basis in zip(names, pose_basis(rest, parents, posed)):
                pose_bone = arm.pose.bones[name]
                pose_bone.rotation_mode = 'QUATERNION'
                pose_bone.matrix_basis = Matrix(basis.tolist())
                for path in ("location", "rotation_quaternion", "scale"):
                    pose_bone.keyframe_insert(path, frame=frame, group=name)
    finally:
        if had_animation:
            animation.action = previous
        else:
            arm.animation_data_clear()
    return made


def _replace_cameras(mesh_obj, photos: list[Path], result: dict) -> tuple[list[str], str]:
    """Remove the previous fit's photo cameras of `mesh_obj` and add one per photo in its photos' collection."""
    for camera in [o for o in bpy.data.objects if o.type == 'CAMERA' and o.get(OWNER_PROPERTY) == mesh_obj.name]:
        data = camera.data
        bpy.data.objects.remove(camera)
        if data.users == 0:
            bpy.data.cameras.remove(data)
    collection = next((c for c in bpy.data.collections if c.get(OWNER_PROPERTY) == mesh_obj.name), None)
    if collection is None:
        collection = bpy.data.collections.new(f"{mesh_obj.name} photos")
        collection[OWNER_PROPERTY] = mesh_obj.name
        parent = mesh_obj.users_collection[0] if mesh_obj.users_collection else bpy.context.scene.collection
        parent.children.link(collection)
    cameras = []
    upright = [str(p) for p in result.get("upright_photos", [""] * len(photos))]
    for index, photo in enumerate(photos):
        camera = add_photo_camera(mesh_obj, f"{mesh_obj.name} photo {index + 1}", result["camera_rotvec"][index],
                                  result["camera_translation"][index], float(result["camera_focal"][index]),
                                  result["camera_image_size"][index], photo,
                                  Path(upright[index]) if upright[index] else None)
        for other in list(camera.users_collection):
            other.objects.unlink(camera)
        collection.objects.link(camera)
        camera[CAMERA_PROPERTY] = str(photo)
        camera[OWNER_PROPERTY] = mesh_obj.name
        cameras.append(camera.name)
    return cameras, collection.name


def _remember_photos(mesh_obj, photos: list[Path]) -> None:
    """Fitted photos that are not in the mesh's photo list yet (the headless command) join it."""
    if not hasattr(mesh_obj, "asm"):
        return
    listed = {photo_path(photo).resolve() for photo in mesh_obj.asm.photos}
    for path in photos:
        if Path(path).resolve() not in listed:
            mesh_obj.asm.photos.add().filepath = str(path)


# -- Bake identity -----------------------------------------------------------------------------------------------

def _moved_landmarks(landmarks: np.ndarray, valid: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
                     new_vertices: np.ndarray) -> np.ndarray:
    """(478, 3) landmarks carried from the surface `vertices` onto the same triangles of `new_vertices` (each keeps
    its place in its nearest triangle); invalid ones stay 0."""
    moved = np.zeros_like(np.asarray(landmarks, dtype=float))
    tree = BVHTree.FromPolygons(np.asarray(vertices).tolist(), np.asarray(triangles).tolist(), all_triangles=True)
    for i in np.flatnonzero(valid):
        point = Vector(landmarks[i])
        _, _, index, _ = tree.find_nearest(point)
        if index is None:
            moved[i] = landmarks[i]
            continue
        corners = triangles[index]
        carried = np.array(barycentric_transform(point, *(Vector(vertices[k]) for k in corners),
                                                 *(Vector(new_vertices[k]) for k in corners)))
        if not np.isfinite(carried).all():  # a degenerate triangle: move with its first corner
            carried = landmarks[i] + new_vertices[corners[0]] - vertices[corners[0]]
        moved[i] = carried
    return moved


def _write_rest_shape(mesh_obj: bpy.types.Object, vertices: np.ndarray) -> None:
    """Make `vertices` (N, 3, object space) the mesh's rest shape: its vertex positions and, with shape keys, the
    Basis key; every other key keeps its offset from the Basis. UVs, groups and modifiers are not touched."""
    mesh = mesh_obj.data
    flat = np.asarray(vertices, dtype=np.float32).reshape(-1)
    keys = mesh.shape_keys
    if keys is not None:
        basis = keys.reference_key
        old = np.empty(len(flat), dtype=np.float32)
        basis.data.foreach_get("co", old)
        for block in keys.key_blocks:
            if block == basis:
                continue
            co = np.empty(len(flat), dtype=np.float32)
            block.data.foreach_get("co", co)
            block.data.foreach_set("co", co - old + flat)
        basis.data.foreach_set("co", flat)
    mesh.vertices.foreach_set("co", flat)
    mesh.update()


def _write_chart(mesh_obj: bpy.types.Object, rig: dict) -> None:
    """The rig's per-vertex chart (it follows the shape when the chart is projected) into the chart attribute."""
    attribute = mesh_obj.data.attributes.get(CHART_ATTRIBUTE)
    if attribute is not None and "chart_uv" in rig and len(rig["chart_uv"]) == len(attribute.data):
        attribute.data.foreach_set("vector", np.asarray(rig["chart_uv"], dtype=np.float32).reshape(-1))


def _blender_vs_solver(mesh_obj: bpy.types.Object, fitted_vertices: np.ndarray) -> float | None:
    """Largest difference between Blender's mesh deformed by the rig alone (the user's other modifiers off for the
    moment) and the solver's fitted surface; None when they cannot be compared."""
    others = [m for m in mesh_obj.modifiers if m.name != armature_io.MODIFIER_NAME and m.show_viewport]
    for modifier in others:
        modifier.show_viewport = False
    try:
        evaluated = armature_io.evaluated_vertices(mesh_obj)
    finally:
        for modifier in others:
            modifier.show_viewport = True
    if evaluated.shape != fitted_vertices.shape:
        return None
    return float(np.abs(evaluated - fitted_vertices).max())
