"""Removing what the add-on made from the file."""
from __future__ import annotations

import bpy


def remove_object(obj) -> None:
    """Remove `obj` from the file, then its data (mesh, armature, camera) when nothing else uses it."""
    data = obj.data
    bpy.data.objects.remove(obj)
    if data is None or data.users > 0:
        return
    for kind, collection in ((bpy.types.Mesh, bpy.data.meshes), (bpy.types.Armature, bpy.data.armatures),
                             (bpy.types.Camera, bpy.data.cameras)):
        if isinstance(data, kind):
            collection.remove(data)
            return
