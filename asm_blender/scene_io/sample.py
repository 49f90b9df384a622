"""Import a bundled sample head (OBJ) the way Blender's importer does by default."""
from __future__ import annotations

from pathlib import Path

import bpy

from .mesh import SceneInputError


def import_obj(path: Path) -> bpy.types.Object:
    """Import an OBJ with Blender's default axes and return its mesh object.

    The importer keeps the file's `v` records as the mesh's object-space coordinates and puts the axis
    change (file +Y up -> Blender +Z up) into the object's matrix, so points stored in file coordinates
    are object-space points of the imported mesh.
    """
    path = Path(path)
    if not path.is_file():
        raise SceneInputError(f"mesh file not found: {path}")
    before = set(bpy.data.objects)
    bpy.ops.wm.obj_import(filepath=str(path))
    meshes = [o for o in bpy.data.objects if o not in before and o.type == 'MESH']
    if len(meshes) != 1:
        raise SceneInputError(f"{path} should hold exactly one mesh, found {len(meshes)}")
    return meshes[0]
