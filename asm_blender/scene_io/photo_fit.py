"""A photo fit written into the scene: the fitted rig and its pose (or, with the identity baked, the fitted face as
the mesh's rest shape and the rig bound again on it), one camera per photo in the head's photos collection, and
each photo's expression as an Action on the armature. Also the numpy forward kinematics that turns the photos'
poses into bone matrices, which Blender evaluates the same way."""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree
from mathutils.geometry import barycentric_transform

from . import armature as armature_io
from . import markers as markers_io
from . import rig as rig_io
from .cameras import add_photo_camera
from .objects import remove_object
from .photos import remember_photos
from .rig import CHART_ATTRIBUTE

CAMERA_PROPERTY = "asm_photo"  # on each photo camera and photo action: the photo's path
OWNER_PROPERTY = "asm_fit_of"  # on each photo camera, action and the photos' collection: the head mesh's name
ACTION_PROPERTY = "asm_action"  # on each photo camera: the name of its photo's expression Action


def write_fit(arm, mesh_obj, photos: list[Path], result: dict, photo_poses: list | None,
              rebound: dict | None = None, moved_landmarks: np.ndarray | None = None) -> tuple[list[str], str, list[str]]:
    """Write a photo fit (the "fit_photos" job's `result`) into the scene, all at once. photo_poses: each photo's
    (log_scale, rotvec, translation), (J, 3) each, for its expression Action, or None for no Actions. rebound: the
    "rebake" result of the rig bound again on the fitted face, with the landmarks `moved_landmarks` (478, 3, NaN
    where not found) carried onto it. Returns the cameras' names, their collection's and the Actions'."""
    names = [str(n) for n in result["names"]]
    parents = np.asarray(result["parents"], dtype=int)
    # The photos' poses as armature-space bone matrices on the fitted rig, so that they can be keyed on whatever
    # rest the rig ends with (the fitted one, or the one bound again on the fitted face).
    photo_matrices = []
    for log_scale, rotvec, translation in photo_poses or []:
        armature_io.set_pose(arm, names, log_scale, rotvec, translation)
        basis = np.array([np.array(arm.pose.bones[name].matrix_basis) for name in names])
        photo_matrices.append(pose_matrices(np.asarray(result["bind"], dtype=float), parents, basis))
    if rebound is None:
        rig_io.apply_rebake(arm, result)
        armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    else:
        write_rest_shape(mesh_obj, np.asarray(result["fit_vertices"], dtype=float))
        valid = np.isfinite(moved_landmarks).all(1)
        markers_io.write_markers(mesh_obj, moved_landmarks, valid)
        write_chart(mesh_obj, rebound)
        rig_io.apply_rebake(arm, rebound)
    actions = write_photo_actions(arm, mesh_obj, names, parents, photo_matrices, photos)
    if rebound is None:
        armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    else:
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
    cameras, collection = replace_cameras(mesh_obj, photos, result)
    for camera, action in zip(cameras, actions):
        bpy.data.objects[camera][ACTION_PROPERTY] = action
    remember_photos(mesh_obj, photos)
    return cameras, collection, actions


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


def write_photo_actions(arm, mesh_obj, names, parents, photo_matrices, photos) -> list[str]:
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


def replace_cameras(mesh_obj, photos: list[Path], result: dict) -> tuple[list[str], str]:
    """Remove the previous fit's photo cameras of `mesh_obj` and add one per photo in its photos' collection."""
    for camera in [o for o in bpy.data.objects if o.type == 'CAMERA' and o.get(OWNER_PROPERTY) == mesh_obj.name]:
        remove_object(camera)
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


def carried_landmarks(landmarks: np.ndarray, valid: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
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


def write_rest_shape(mesh_obj: bpy.types.Object, vertices: np.ndarray) -> None:
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


def write_chart(mesh_obj: bpy.types.Object, rig: dict) -> None:
    """The rig's per-vertex chart (it follows the shape when the chart is projected) into the chart attribute."""
    attribute = mesh_obj.data.attributes.get(CHART_ATTRIBUTE)
    if attribute is not None and "chart_uv" in rig and len(rig["chart_uv"]) == len(attribute.data):
        attribute.data.foreach_set("vector", np.asarray(rig["chart_uv"], dtype=np.float32).reshape(-1))


def blender_vs_solver(mesh_obj: bpy.types.Object, fitted_vertices: np.ndarray) -> float | None:
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
