"""Open a head for the headless commands: a .blend (its active or a named mesh object) or a mesh file imported
with Blender's own importers (.obj, .ply, .glb/.gltf, .fbx), into the current file."""
from __future__ import annotations

import math
from pathlib import Path

import addon_utils
import bpy

from .mesh import SceneInputError, blender_error

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

    A .blend replaces the current file; other formats are imported into it. The headless commands check the file
    first with `check_head_file`, before any work."""
    path = Path(path)
    suffix = path.suffix.lower()
    _check_found_and_type(path)
    if suffix == ".blend":
        open_blend_file(path)
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


_ZSTD, _GZIP = b"\x28\xb5\x2f\xfd", b"\x1f\x8b"
_ZSTD_SEEK_TABLE_END = b"\xb1\xea\x92\x8f"  # Blender writes compressed files as seekable zstd, this last


def blend_file_problem(path: Path) -> str | None:
    """What is wrong with `path` as a .blend, read from its first and last bytes (None when it looks whole): a
    file of another kind, or one cut short (a copy or download that stopped). Blender itself would print its own
    errors first and then fail; this says it in one line."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(7)
        stream.seek(max(0, size - 64))
        tail = stream.read()
    if head.startswith(b"BLENDER"):
        whole = b"ENDB" in tail  # the last block of an uncompressed file
    elif head.startswith(_ZSTD):
        whole = tail.endswith(_ZSTD_SEEK_TABLE_END)
    elif head.startswith(_GZIP):  # files of Blender 2.x and older: nothing cheap to check
        whole = True
    else:
        return "is not a .blend file (it does not start like one); give a file saved by Blender"
    return None if whole else "is cut short (truncated); copy or save it again"


def check_head_file(path: Path) -> None:
    """What can be checked of a head's file before any work, from the file alone: there, of a type the commands
    read, and whole (a .blend) or with finite coordinates (text formats); SceneInputError naming it otherwise."""
    suffix = path.suffix.lower()
    _check_found_and_type(path)
    if suffix == ".blend":
        _check_blend_file(path)
    if suffix in _TEXT_COORDINATES:
        check_coordinates(path, *_TEXT_COORDINATES[suffix])


def _check_found_and_type(path: Path) -> None:
    if not path.is_file():
        raise SceneInputError(f"mesh file not found: {path}")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise SceneInputError(f"{path.name}: unsupported file type {path.suffix.lower()!r}; use one of "
                              f"{', '.join(MESH_SUFFIXES)}")


def _check_blend_file(path: Path) -> None:
    problem = blend_file_problem(path)
    if problem is not None:
        raise SceneInputError(f"{path} {problem}")


def open_blend_file(path: Path) -> None:
    """Open the .blend `path` in place of the current file; SceneInputError naming it when Blender cannot."""
    _check_blend_file(path)
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path))
    except RuntimeError as error:
        raise SceneInputError(f"{path}: Blender cannot open it ({blender_error(error)}); save it again from "
                              "Blender") from None


# text formats whose coordinates Blender's importers read without a check: a "nan" or "inf" becomes 0 there
_TEXT_COORDINATES = {".obj": ("v ", "vertex")}


def check_coordinates(path: Path, prefix: str, what: str) -> None:
    """Refuse a text mesh file with a coordinate that is not a finite number (NaN, inf, a word), naming its line:
    Blender's importer would read it as 0 and a wrong rig would follow."""
    index = 0
    with path.open("r", errors="replace") as stream:
        for number, line in enumerate(stream, 1):
            if not line.startswith(prefix):
                continue
            index += 1
            for value in line.split()[1:4]:
                try:
                    if math.isfinite(float(value)):
                        continue
                except ValueError:
                    pass
                raise SceneInputError(f"{path.name}, line {number}: {what} {index} has the coordinate {value!r}, "
                                      "not a finite number; fix or delete that vertex in the file and try again")
