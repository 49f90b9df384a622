"""Open a head for the headless commands: a .blend (its active or a named mesh object) or a mesh file imported
with Blender's own importers (.obj, .ply, .glb/.gltf, .fbx), into the current file."""
from __future__ import annotations

from pathlib import Path

import addon_utils
import bpy

from .mesh import SceneInputError

MESH_SUFFIXES = (".blend", ".obj", ".ply", ".glb", ".gltf", ".fbx")
_IMPORTERS = {  # suffix -> (add-on that provides it or None, operator path)
    ".obj": (None, ("wm", "obj_import")),
    ".ply": (None, ("wm", "ply_import")),
    ".glb": ("io_scene_gltf2", ("import_scene", "gltf")),
    ".gltf": ("io_scene_gltf2", ("import_scene", "gltf")),
    ".fbx": ("io_scene_fbx", ("import_scene", "fbx")),
}


def open_head(path: Path, object_name: str | None = None) -> tuple[bpy.types.Object, list[str]]:
    """The head mesh object from `path` and notes (e.g. which of several meshes was taken).

    A .blend replaces the current file; other formats are imported into it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SceneInputError(f"mesh file not found: {path}")
    if suffix not in MESH_SUFFIXES:
        raise SceneInputError(f"{path.name}: unsupported file type {suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    if suffix == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(path))
        candidates = [o for o in bpy.context.scene.objects if o.type == 'MESH']
        active = bpy.context.view_layer.objects.active
        preferred = active if active is not None and active.type == 'MESH' else None
    else:
        addon, (module, name) = _IMPORTERS[suffix]
        if addon is not None:
            addon_utils.enable(addon, default_set=False)
        before = set(bpy.data.objects)
        result = getattr(getattr(bpy.ops, module), name)(filepath=str(path))
        if 'FINISHED' not in result:
            raise SceneInputError(f"{path.name}: Blender's importer could not read it")
        candidates = [o for o in bpy.data.objects if o not in before and o.type == 'MESH']
        preferred = None
    if object_name is not None:
        chosen = next((o for o in candidates if o.name == object_name), None)
        if chosen is None:
            names = sorted(o.name for o in candidates)
            raise SceneInputError(f"{path.name} has no mesh object named {object_name!r}; it has {names[:10]}")
        return chosen, []
    if preferred is not None:
        return preferred, []
    if not candidates:
        raise SceneInputError(f"{path.name} holds no mesh object")
    chosen = max(candidates, key=lambda o: len(o.data.vertices))
    notes = [] if len(candidates) == 1 else [
        f"{path.name} holds {len(candidates)} meshes; took the largest, {chosen.name!r} (choose with --object)"]
    return chosen, notes
