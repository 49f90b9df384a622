"""The rig's landmarks as an editable object: one vertex per landmark found, shown as small dots.

The markers are a mesh object parented to the head with an identity parent inverse, so its vertex
coordinates are the head's object-space coordinates. An integer attribute keeps each vertex's MediaPipe
index, so deleting a wrong landmark (or moving it in Edit Mode) and pressing Regenerate uses the edit.
The dots are instances of a small sphere on the vertices (Blender does not draw loose vertices outside
Edit Mode); neither object renders.
"""
from __future__ import annotations

import bmesh
import bpy
import numpy as np

from ..protocol import landmarks as landmark_ids
from .mesh import SceneInputError
from .objects import remove_object

INDEX_ATTRIBUTE = "asm_landmark"
OWNER_PROPERTY = "asm_landmarks_of"  # on the markers object: the name of the head it belongs to
MARKERS_PROPERTY = "asm_landmarks"  # on the head: the markers object
LANDMARK_COUNT = landmark_ids.LANDMARK_COUNT
DOT_FRACTION = 0.004  # dot radius as a fraction of the head's size


def find_markers(mesh_obj: bpy.types.Object) -> bpy.types.Object | None:
    markers = mesh_obj.get(MARKERS_PROPERTY)
    if isinstance(markers, bpy.types.Object) and markers.name in bpy.data.objects and markers.type == 'MESH':
        return markers
    return None


def read_markers(mesh_obj: bpy.types.Object) -> tuple[np.ndarray, np.ndarray] | None:
    """(478, 3) object-space landmark positions (NaN where none) and (478,) valid, from the head's markers
    object, or None when it has none."""
    markers = find_markers(mesh_obj)
    if markers is None:
        return None
    if markers.mode == 'EDIT':
        markers.update_from_editmode()
    mesh = markers.data
    attribute = mesh.attributes.get(INDEX_ATTRIBUTE)
    if attribute is None or attribute.domain != 'POINT' or attribute.data_type != 'INT':
        raise SceneInputError(f"the landmark object {markers.name!r} has lost its {INDEX_ATTRIBUTE!r} attribute; "
                              "delete it and press Generate to detect the landmarks again")
    count = len(mesh.vertices)
    co = np.empty(count * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    index = np.empty(count, dtype=np.int32)
    attribute.data.foreach_get("value", index)
    keep = (index >= 0) & (index < LANDMARK_COUNT)
    positions = np.full((LANDMARK_COUNT, 3), np.nan)
    # The markers may have been moved as an object: their world position is what the user sees.
    if markers.parent == mesh_obj:  # no depsgraph update needed (matrix_world may be stale)
        to_head = np.array(markers.matrix_parent_inverse @ markers.matrix_basis)
    else:
        bpy.context.view_layer.update()
        to_head = np.array(mesh_obj.matrix_world.inverted() @ markers.matrix_world)
    points = co.reshape(-1, 3).astype(np.float64) @ to_head[:3, :3].T + to_head[:3, 3]
    positions[index[keep]] = points[keep]
    return positions, np.isfinite(positions).all(1)


def write_markers(mesh_obj: bpy.types.Object, positions: np.ndarray, valid: np.ndarray) -> bpy.types.Object:
    """Create or replace the head's landmark markers from (478, 3) object-space positions."""
    valid = np.asarray(valid, dtype=bool) & np.isfinite(positions).all(1)
    index = np.flatnonzero(valid)
    name = f"{mesh_obj.name} ASM landmarks"
    markers = find_markers(mesh_obj)
    if markers is None:
        markers = bpy.data.objects.new(name, bpy.data.meshes.new(name))
        for collection in mesh_obj.users_collection:
            collection.objects.link(markers)
        markers.parent = mesh_obj
        markers.matrix_parent_inverse.identity()
        markers[OWNER_PROPERTY] = mesh_obj.name
        mesh_obj[MARKERS_PROPERTY] = markers
        markers.hide_render = True
        markers.instance_type = 'VERTS'
        markers.show_instancer_for_viewport = True
        markers.display_type = 'WIRE'
        _add_dot(markers, mesh_obj)
    else:
        markers.matrix_basis.identity()
    mesh = markers.data
    bm = bmesh.new()
    try:
        for point in np.asarray(positions)[index]:
            bm.verts.new(point.tolist())
        bm.to_mesh(mesh)
    finally:
        bm.free()
    if INDEX_ATTRIBUTE in mesh.attributes:
        mesh.attributes.remove(mesh.attributes[INDEX_ATTRIBUTE])
    mesh.attributes.new(INDEX_ATTRIBUTE, 'INT', 'POINT').data.foreach_set("value", index.astype(np.int32))
    mesh.update()
    return markers


def _add_dot(markers: bpy.types.Object, mesh_obj: bpy.types.Object) -> None:
    """A small sphere parented to the markers: instanced on every vertex, so each landmark shows as a dot."""
    corners = np.array([list(c) for c in mesh_obj.bound_box])
    radius = DOT_FRACTION * float(np.ptp(corners, axis=0).max())
    mesh = bpy.data.meshes.new(f"{markers.name} dot")
    bm = bmesh.new()
    try:
        bmesh.ops.create_icosphere(bm, subdivisions=1, radius=max(radius, 1e-6))
        bm.to_mesh(mesh)
    finally:
        bm.free()
    dot = bpy.data.objects.new(f"{markers.name} dot", mesh)
    for collection in markers.users_collection:
        collection.objects.link(dot)
    dot.parent = markers
    dot.hide_render = True
    dot.hide_select = True
    dot.color = (1.0, 0.35, 0.1, 1.0)


def remove_markers(mesh_obj: bpy.types.Object) -> None:
    markers = find_markers(mesh_obj)
    if MARKERS_PROPERTY in mesh_obj:
        del mesh_obj[MARKERS_PROPERTY]
    if markers is None:
        return
    for child in list(markers.children):
        remove_object(child)
    remove_object(markers)
