"""Mesh data out of Blender as numpy arrays."""
from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np


class SceneInputError(ValueError):
    """A Blender object cannot be used as asked; the message names it and says what to do."""


def blender_error(error: Exception) -> str:
    """The gist of an error Blender's operators raise ("Error: ... \n" with Blender's own prefix): one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    return text.removeprefix("Error:").strip()


@dataclass(frozen=True)
class MeshArrays:
    vertices: np.ndarray  # (N, 3) object space, float64
    triangles: np.ndarray  # (T, 3) vertex indices of the loop triangles
    corner_uv: np.ndarray | None  # (T, 3, 2) of the active UV map, None when the mesh has none
    uv_layer: str | None


def check_mesh_object(obj: bpy.types.Object | None) -> None:
    """Refuse, with a message naming the object and what to do, what a rig cannot be written to."""
    if obj is None:
        raise SceneInputError("no active object; select a head mesh")
    if obj.type != 'MESH':
        raise SceneInputError(f"{obj.name!r} is a {obj.type.lower()} object, not a mesh; select a head mesh")
    if obj.mode == 'EDIT':
        raise SceneInputError(f"mesh {obj.name!r} is in Edit Mode; switch to Object Mode (Tab) first")
    if obj.library is not None or obj.data.library is not None:
        source = (obj.library or obj.data.library).filepath
        raise SceneInputError(f"mesh {obj.name!r} is linked from {source!r} and cannot be changed here; "
                              "make it local first (Object > Relations > Make Local)")
    if obj.override_library is not None and obj.override_library.is_system_override:
        raise SceneInputError(f"mesh {obj.name!r} is a non-editable library override; make it editable first")
    if len(obj.data.vertices) == 0 or len(obj.data.polygons) == 0:
        raise SceneInputError(f"mesh {obj.name!r} has no faces; a rig needs a surface")


def update_world_matrices() -> None:
    """Bring world matrices up to date (of objects just moved or parented by a script) before they are read."""
    bpy.context.view_layer.update()


def mesh_arrays(obj: bpy.types.Object) -> MeshArrays:
    """Rest-shape vertices, triangles and per-corner UVs of a mesh object (modifiers not applied)."""
    if obj is None or obj.type != 'MESH':
        raise SceneInputError(f"{getattr(obj, 'name', None)!r} is not a mesh object; select a head mesh")
    mesh = obj.data
    if len(mesh.vertices) == 0 or len(mesh.polygons) == 0:
        raise SceneInputError(f"mesh {obj.name!r} has no faces; a rig needs a surface")
    vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
    mesh.vertices.foreach_get("co", vertices)
    mesh.calc_loop_triangles()
    loops = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    loop_vertex = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", loop_vertex)
    triangles = loop_vertex[loops].reshape(-1, 3).astype(np.int64)
    corner_uv, layer_name = None, None
    layer = mesh.uv_layers.active
    if layer is not None:
        uv = np.empty(len(mesh.loops) * 2, dtype=np.float32)
        layer.data.foreach_get("uv", uv)
        corner_uv = uv.reshape(-1, 2)[loops].reshape(-1, 3, 2).astype(np.float64)
        layer_name = layer.name
    vertices = vertices.reshape(-1, 3).astype(np.float64)
    broken = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if len(broken):
        raise SceneInputError(f"mesh {obj.name!r} has {len(broken)} vertices with NaN or infinite coordinates (the "
                              f"first: vertex {broken[0]}); fix or delete them (Edit Mode), then try again")
    return MeshArrays(vertices, triangles, corner_uv, layer_name)


def mesh_from_arrays(name: str, vertices: np.ndarray, triangles: np.ndarray, corner_uv: np.ndarray | None = None,
                     collection: bpy.types.Collection | None = None) -> bpy.types.Object:
    """A new mesh object from (N, 3) vertices, (T, 3) triangles and optional (T, 3, 2) corner UVs."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(np.asarray(vertices, float).tolist(), [], np.asarray(triangles, int).tolist())
    if corner_uv is not None:
        layer = mesh.uv_layers.new(name="UVMap")
        layer.data.foreach_set("uv", np.asarray(corner_uv, dtype=np.float32).reshape(-1))
    mesh.validate(clean_customdata=False)
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    (collection or bpy.context.scene.collection).objects.link(obj)
    return obj
