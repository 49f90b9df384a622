"""Write an ASM rig into the scene: armature with exact rest matrices, vertex groups, Armature modifier, pose."""
from __future__ import annotations

from itertools import chain

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from .mesh import SceneInputError

GROUPS_PROPERTY = "asm_vertex_groups"  # names of the vertex groups the rig owns, stored on the mesh
MODIFIER_NAME = "ASM Rig"

# write_weights calls Attribute Convert once per bone. Every operator call updates the context's view layer before
# and after it (bpy.ops' Python wrapper in Blender 4.2 to 5.0, the C caller from 5.1 on), which re-evaluates the mesh
# and makes the next conversion copy every vertex's deform weights: 5-10 ms per bone on 100k vertices, more than the
# per-vertex loop it replaces. The operator only reads the original mesh, so it runs with an empty scene of its own as
# the context's scene and view layer: that update then has nothing to evaluate.
QUIET_SCENE = "asm_weights_tmp"


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
    """Refuse to overwrite vertex groups the user made that happen to share a bone's name, and to make a group named
    like one of the mesh's attributes: vertex groups and attributes share one namespace, and a mesh that holds both
    under one name loses the attribute in Blender 5.1 and later (at the next bmesh round trip or edit-mode exit)."""
    owned = set(mesh_obj.get(GROUPS_PROPERTY, []))
    clashes = [n for n in names if n in mesh_obj.vertex_groups and n not in owned]
    if clashes:
        raise SceneInputError(
            f"mesh {mesh_obj.name!r} already has vertex group(s) {clashes[:5]} that the rig needs for its bones; "
            "rename or remove them first (they were not made by ASM, so they are left untouched)")
    attributes = [n for n in names if n in mesh_obj.data.attributes]
    if attributes:
        raise SceneInputError(
            f"mesh {mesh_obj.name!r} has attribute(s) {attributes[:5]} named like the rig's bones, whose vertex "
            "groups would take those names (attributes and vertex groups share names in Blender); rename the "
            "attributes first (Object Data properties > Attributes); nothing was changed")


def write_weights(mesh_obj: bpy.types.Object, names, bones: np.ndarray, values: np.ndarray,
                  deform: np.ndarray | None = None) -> None:
    """One vertex group per deforming bone, each written whole from a numpy column.

    bones (N, k) bone indices, values (N, k) weights; zero weights are skipped and repeated bones in a
    row are summed. Groups this rig wrote before are replaced; the user's own groups stay as they are.

    Why this is fast: Blender has no bulk setter for deform weights, so every other route goes through
    Python once per vertex or per weight (100k vertices, 8 weights each: bmesh deform layer 0.23 s,
    VertexGroup.add per distinct weight 1.8 s). Here numpy sums each bone's column, foreach_set puts it into
    a temporary float point attribute, and the Attribute Convert operator (mode VERTEX_GROUP) turns that
    attribute into a vertex group in C, leaving out zeros: 0.07 s (benchmarks/writeback_speed.py). Where
    the operator cannot run, the remaining groups are filled through a bmesh deform layer as before: the
    same weights, only slower.
    """
    _ensure_object_mode()
    names = list(names)
    check_group_names(mesh_obj, names)
    mesh = mesh_obj.data
    count = len(mesh.vertices)
    bones = np.asarray(bones)
    values = np.asarray(values, dtype=np.float64)
    if bones.ndim != 2 or bones.shape != values.shape or len(bones) != count:
        raise ValueError(f"weights for {count} vertices need bones and values of shape ({count}, k); "
                         f"got {bones.shape} and {values.shape}")
    deform = np.ones(len(names), dtype=bool) if deform is None else np.asarray(deform, dtype=bool)
    columns = _summed_columns(bones, values, deform, count)  # lazily, one (N,) column at a time
    pending = next(columns, None)

    for old in list(mesh_obj.get(GROUPS_PROPERTY, [])):
        group = mesh_obj.vertex_groups.get(old)
        if group is not None:
            mesh_obj.vertex_groups.remove(group)
    attributes = mesh.attributes
    previous_active = attributes.active.name if attributes.active is not None else None
    temporary = _free_name(mesh_obj, "asm_weights_tmp", set(names))
    use_operator = True
    written, unfilled = [], {}
    quiet_scene = bpy.data.scenes.new(QUIET_SCENE)
    try:
        for j, name in enumerate(names):
            if not deform[j]:
                continue
            column, group = None, None
            if pending is not None and pending[0] == j:  # both go through the bones in order
                column, pending = pending[1], next(columns, None)
            if column is not None and use_operator:
                group = _group_from_attribute(mesh_obj, temporary, column, quiet_scene)
                use_operator = group is not None
            if group is None:
                group = mesh_obj.vertex_groups.new(name=name)
                if column is not None:
                    unfilled[group.index] = column
            else:
                group.name = name  # made unique among the groups, as vertex_groups.new(name=name) would
            written.append(name)
    finally:
        bpy.data.scenes.remove(quiet_scene)
        mesh_obj[GROUPS_PROPERTY] = written
        if temporary in attributes:
            attributes.remove(attributes[temporary])
        if previous_active is not None and previous_active in attributes:
            attributes.active = attributes[previous_active]
    if written:
        mesh_obj.vertex_groups.active_index = len(mesh_obj.vertex_groups) - 1
    if unfilled:
        _fill_through_bmesh(mesh, unfilled)
    mesh.update()


def _summed_columns(bones: np.ndarray, values: np.ndarray, deform: np.ndarray, count: int):
    """(bone, (N,) float32 weights) for each deforming bone that has a positive weight somewhere.

    Pairs with weight <= 0 (or NaN) and bones that are out of range or do not deform are dropped; a bone
    repeated in one row gets the sum of its weights (in float64, in row order, rounded to float32 once),
    and sums above 1 are stored as 1, as the bmesh deform layer always clamped them (Blender's weight range).
    """
    k = bones.shape[1]
    bone = bones.ravel()
    weight = values.ravel()
    keep = (weight > 0.0) & (bone >= 0) & (bone < len(deform))
    keep[keep] = deform[bone[keep].astype(np.int64)]
    pairs = np.flatnonzero(keep)
    key = bone[pairs].astype(np.int16 if len(deform) < 2 ** 15 else np.int64)
    order = np.argsort(key, kind="stable")  # radix sort for int16; stable keeps a row's repeats in order
    pairs, key = pairs[order], key[order]
    vertex, weight = pairs // k, weight[pairs]
    ends = np.cumsum(np.bincount(key, minlength=len(deform)))
    start = 0
    for j, end in enumerate(ends.tolist()):
        if end > start:
            column = np.bincount(vertex[start:end], weights=weight[start:end], minlength=count)
            yield j, np.minimum(column, 1.0).astype(np.float32)
        start = end


def _free_name(mesh_obj: bpy.types.Object, stem: str, avoid: set[str]) -> str:
    """A name that is no attribute or vertex group of `mesh_obj` (they share a namespace) and not in `avoid`."""
    name, number = stem, 0
    while name in avoid or name in mesh_obj.data.attributes or name in mesh_obj.vertex_groups:
        number += 1
        name = f"{stem}.{number:03d}"
    return name


def _group_from_attribute(mesh_obj: bpy.types.Object, name: str, column: np.ndarray, quiet_scene: bpy.types.Scene):
    """The new vertex group `name` holding the positive entries of `column`, or None where Attribute
    Convert cannot run here (nothing is left behind then). quiet_scene: an empty scene, the operator's context."""
    attributes = mesh_obj.data.attributes
    attribute = attributes.new(name, 'FLOAT', 'POINT')
    if attribute is None:
        return None
    attribute.data.foreach_set("value", column)
    attributes.active = attribute
    try:
        _convert_active_attribute(mesh_obj, quiet_scene)
    except (RuntimeError, TypeError):  # poll failed, or no mesh object in this context to offer the mode
        pass
    if name in attributes:
        attributes.remove(attributes[name])
        return None
    return mesh_obj.vertex_groups.get(name)


def _convert_active_attribute(mesh_obj: bpy.types.Object, quiet_scene: bpy.types.Scene) -> None:
    """Attribute Convert: the mesh's active attribute becomes a vertex group of the same name."""
    with bpy.context.temp_override(object=mesh_obj, active_object=mesh_obj, scene=quiet_scene,
                                   view_layer=quiet_scene.view_layers[0]):
        bpy.ops.geometry.attribute_convert(mode='VERTEX_GROUP')


def _fill_through_bmesh(mesh: bpy.types.Mesh, columns: dict[int, np.ndarray]) -> None:
    """Fill empty vertex groups (group index -> (N,) weights) vertex by vertex through a bmesh deform layer."""
    active = mesh.attributes.active.name if mesh.attributes.active is not None else None
    group_of = np.array(list(columns), dtype=np.int64)
    table = np.stack(list(columns.values()), axis=1)  # (N, groups)
    vertex, slot = np.nonzero(table > 0.0)
    starts = np.searchsorted(vertex, np.arange(len(table) + 1)).tolist()
    groups, weights = group_of[slot].tolist(), table[vertex, slot].tolist()
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        layer = bm.verts.layers.deform.verify()
        for v, vert in enumerate(bm.verts):
            if starts[v] < starts[v + 1]:
                entry = vert[layer]
                for i in range(starts[v], starts[v + 1]):
                    entry[groups[i]] = weights[i]
        bm.to_mesh(mesh)
    finally:
        bm.free()
    if active is not None and active in mesh.attributes:
        mesh.attributes.active = mesh.attributes[active]


def read_weights(mesh_obj: bpy.types.Object, names) -> np.ndarray:
    """(N, J) weights of the groups named like the bones (0 where a vertex is not in a group).

    Read through a bmesh deform layer, whose keys() and values() hand over a vertex's groups and weights as two
    plain lists: about half the time of visiting MeshVertex.groups element by element (Blender has no bulk
    getter for deform weights either); numpy scatters the lists into the table.
    """
    names = list(names)
    column_of = {}
    for j, name in enumerate(names):
        column_of.setdefault(name, j)
    column = np.full(len(mesh_obj.vertex_groups) + 1, -1, dtype=np.int64)  # last entry: groups out of range
    for group in mesh_obj.vertex_groups:
        column[group.index] = column_of.get(group.name, -1)
    weights = np.zeros((len(mesh_obj.data.vertices), len(names)))
    bm = bmesh.new()
    try:
        bm.from_mesh(mesh_obj.data)
        layer = bm.verts.layers.deform.active
        if layer is None:
            return weights
        deform_verts = [vertex[layer] for vertex in bm.verts]
        keys = [entry.keys() for entry in deform_verts]
        values = [entry.values() for entry in deform_verts]
    finally:
        bm.free()
    counts = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys))
    total = int(counts.sum())
    group = np.fromiter(chain.from_iterable(keys), dtype=np.int64, count=total)
    weight = np.fromiter(chain.from_iterable(values), dtype=np.float64, count=total)
    target = column[np.where((group >= 0) & (group < len(column) - 1), group, len(column) - 1)]
    rows = np.repeat(np.arange(len(counts)), counts)
    inside = target >= 0
    weights[rows[inside], target[inside]] = weight[inside]
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
