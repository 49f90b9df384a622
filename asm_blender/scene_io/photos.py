"""A head's photo list (ASM_PG_photo on Object.asm): the files it names, what Check Photos found, the last fit."""
from __future__ import annotations

import json
from pathlib import Path

import bpy

from .mesh import SceneInputError


def photo_path(photo) -> Path:
    """The file of a photo in a mesh's list (ASM_PG_photo), relative paths ("//") resolved."""
    return Path(bpy.path.abspath(photo.filepath))


def write_photo_statuses(mesh_name: str, found: dict[str, dict]) -> None:
    """Each listed photo's check result (filepath -> {"status", "message", "face_found", "landmarks",
    "image_size"}); photos added while the check ran keep theirs."""
    mesh_obj = bpy.data.objects.get(mesh_name)
    if mesh_obj is None:
        raise SceneInputError(f"mesh {mesh_name!r} was removed or renamed during the check")
    for photo in mesh_obj.asm.photos:
        status = found.get(photo.filepath)
        if status is None:
            continue
        photo.status = status["status"]
        photo.face_found = status.get("face_found", False)
        photo.landmark_count = status.get("landmarks", 0)
        photo.image_size = status.get("image_size", (0, 0))
        photo.message = status["message"]


def remember_photos(mesh_obj, photos: list[Path]) -> None:
    """Fitted photos that are not in the mesh's photo list yet (the headless command) join it."""
    if not hasattr(mesh_obj, "asm"):
        return
    listed = {photo_path(photo).resolve() for photo in mesh_obj.asm.photos}
    for path in photos:
        if Path(path).resolve() not in listed:
            mesh_obj.asm.photos.add().filepath = str(path)


def store_fit_summary(mesh_obj, summary: dict) -> None:
    """The last photo fit's summary on the head, for the sidebar and `info`."""
    if hasattr(mesh_obj, "asm"):
        mesh_obj.asm.fit_summary = json.dumps(summary)
