"""Write an ASM rig into the scene: armature with exact rest matrices, vertex groups, Armature modifier, pose."""
from __future__ import annotations

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from .mesh import SceneInputError

GROUPS_PROPERTY = "asm_vertex_groups"  # names of the vertex groups the rig owns, stored on the mesh
MODIFIER_NAME = "ASM Rig"


def _ensure_object_mode() -> None:
    if bpy.context.object is not None and bpy.context.object.mode != 'OBJECT':
        bpy.ops.object.mode_set(mode='OBJECT')


def build_armature(mesh_obj: bpy.types.Object, names, parents, bind: np.ndarray, lengths: np.ndarray,
                   name: str | None = None) -> bpy.types.Object:
    """A new armature object at the mesh's world transform whose bone.matrix_local equal `bind`.

    names (J,), parents (J,) (-1 root, parents first), bind (J, 4, 4) rigid in the mesh's object space,
    lengths (J,). Bones are unconnected, inherit rotation and scale (FULL), local location: exactly the
    kinematics the solver uses.
    """
    _ensure_object_mode()
    data = bpy.data.armatures.new(name or f"{mesh_obj.name}_ASM")
    arm = bpy.data.objects.new(name or f"{mesh_obj.name}_ASM", data)
    for collection in mesh_obj.users_collection:
        collection.objects.link(arm)
    arm.matrix_world = mesh_obj.matrix_world.copy()
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        edit_bones = data.edit_bones
        created = []
        for j, bone_name in enumerate(names):
            bone = edit_bones.new(bone_name)
            bone.head = (0.0, 0.0, 0.0)
            bone.tail = (0.0, float(lengths[j]), 0.0)
            bone.matrix = Matrix([list(row) for row in np.asarray(bind[j], dtype=np.float64)])
            bone.length = float(lengths[j])
            bone.use_connect = False
            bone.inherit_scale = 'FULL'
            bone.use_inherit_rotation = True
            bone.use_local_location = True
            created.append(bone)
        for j, parent in enumerate(parents):
            if parent >= 0:
                created[j].parent = created[parent]
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')
        view_layer.objects.active = previous_active
    return arm


def rest_matrices(arm: bpy.types.Object, names) -> np.ndarray:
    """(J, 4, 4) bone.matrix_local as Blender stores them."""
    return np.array([np.array(arm.data.bones[n].matrix_local) for n in names])


def check_group_names(mesh_obj: bpy.types.Object, names) -> None:
    """Refuse to overwrite vertex groups the user made that happen to share a bone's name."""
    owned = set(mesh_obj.get(GROUPS_PROPERTY, []))
    clashes = [n for n in names if n in mesh_obj.vertex_groups and n not in owned]
    if clashes:
        raise SceneInputError(
            f"mesh {mesh_obj.name!r} already has vertex group(s) {clashes[:5]} that the rig needs for its bones; "
            "rename or remove them first (they were not made by ASM, so they are left untouched)")


def write_weights(mesh_obj: bpy.types.Object, names, bones: np.ndarray, values: np.ndarray,
                  deform: np.ndarray | None = None) -> None:
    """One vertex group per deforming bone, filled through a bmesh deform layer.

    bones (N, k) bone indices, values (N, k) weights; zero weights are skipped and repeated bones in a
    row are summed. Groups this rig wrote before are replaced; the user's own groups stay as they are.
    """
    _ensure_object_mode()
    names = list(names)
    check_group_names(mesh_obj, names)
    deform = np.ones(len(names), dtype=bool) if deform is None else np.asarray(deform, dtype=bool)
    for old in list(mesh_obj.get(GROUPS_PROPERTY, [])):
        group = mesh_obj.vertex_groups.get(old)
        if group is not None:
            mesh_obj.vertex_groups.remove(group)
    group_index = {}
    for j, name in enumerate(names):
        if deform[j]:
            group_index[j] = mesh_obj.vertex_groups.new(name=name).index
    mesh_obj[GROUPS_PROPERTY] = [names[j] for j in group_index]

    mesh = mesh_obj.data
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        layer = bm.verts.layers.deform.verify()
        bm.verts.ensure_lookup_table()
        bones = np.asarray(bones)
        values = np.asarray(values, dtype=np.float64)
        for v, vert in enumerate(bm.verts):
            entry = vert[layer]
            for j, w in zip(bones[v].tolist(), values[v].tolist()):
                if w > 0.0 and j in group_index:
                    index = group_index[j]
                    entry[index] = entry.get(index, 0.0) + w
        bm.to_mesh(mesh)
    finally:
        bm.free()
    mesh.update()


def read_weights(mesh_obj: bpy.types.Object, names) -> np.ndarray:
    """(N, J) weights of the groups named like the bones (0 where a vertex is not in a group)."""
    index_of = {g.index: names.index(g.name) for g in mesh_obj.vertex_groups if g.name in names}
    weights = np.zeros((len(mesh_obj.data.vertices), len(names)))
    for v, vertex in enumerate(mesh_obj.data.vertices):
        for element in vertex.groups:
            if element.group in index_of:
                weights[v, index_of[element.group]] = element.weight
    return weights


def add_armature_modifier(mesh_obj: bpy.types.Object, arm: bpy.types.Object) -> bpy.types.Modifier:
    """Point the rig's Armature modifier at `arm` (created first in the stack); other modifiers untouched."""
    modifier = mesh_obj.modifiers.get(MODIFIER_NAME)
    if modifier is None or modifier.type != 'ARMATURE':
        modifier = mesh_obj.modifiers.new(MODIFIER_NAME, 'ARMATURE')
        if hasattr(mesh_obj.modifiers, "move"):  # deform before the user's generators (e.g. subdivision)
            mesh_obj.modifiers.move(len(mesh_obj.modifiers) - 1, 0)
    modifier.object = arm
    modifier.use_vertex_groups = True
    modifier.use_bone_envelopes = False
    modifier.use_deform_preserve_volume = False
    return modifier


def set_pose(arm: bpy.types.Object, names, log_scale: np.ndarray, rotvec: np.ndarray, translation: np.ndarray) -> None:
    """Pose channels (matrix_basis) from the solver's 9-DoF local pose, rotation as quaternions."""
    for j, name in enumerate(names):
        pose_bone = arm.pose.bones[name]
        pose_bone.rotation_mode = 'QUATERNION'
        angle = float(np.linalg.norm(rotvec[j]))
        axis = Vector(rotvec[j] / angle) if angle > 0 else Vector((1.0, 0.0, 0.0))
        pose_bone.rotation_quaternion = Quaternion(axis, angle)
        pose_bone.location = Vector(translation[j])
        pose_bone.scale = Vector(np.exp(log_scale[j]))


def evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    """(N, 3) vertices after modifiers (depsgraph-evaluated), in object space."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)
