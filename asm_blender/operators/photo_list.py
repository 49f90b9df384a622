"""The head's photo list: Add Photos, Remove Photo, Clear Photos."""
from __future__ import annotations

from pathlib import Path

import bpy

from ..protocol import choices
from ..scene_io.photos import photo_path
from .base import poll_head, poll_photo_list, target_mesh

PHOTO_SUFFIXES = choices.PHOTO_SUFFIXES
IMAGE_GLOB = ";".join(f"*{suffix}" for suffix in PHOTO_SUFFIXES)


class ASM_OT_add_photos(bpy.types.Operator):
    """Add photos of the person to the head's photo list: select one or several image files, or a folder to add
    all its images"""
    bl_idname = "asm.add_photos"
    bl_label = "Add Photos"
    bl_options = {'REGISTER', 'UNDO'}

    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: bpy.props.StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    filter_glob: bpy.props.StringProperty(default=IMAGE_GLOB, options={'HIDDEN'})
    filter_image: bpy.props.BoolProperty(default=True, options={'HIDDEN'})
    filter_folder: bpy.props.BoolProperty(default=True, options={'HIDDEN'})
    relative_path: bpy.props.BoolProperty(
        name="Relative Path", description="Store the photos' paths relative to the saved .blend file", default=True)

    @classmethod
    def poll(cls, context):
        return poll_head(cls, context) is not None

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def execute(self, context):
        mesh_obj = target_mesh(context)
        if not self.directory:
            self.report({'ERROR'}, "choose photo files or a folder of photos")
            return {'CANCELLED'}
        directory = Path(bpy.path.abspath(self.directory))
        names = [entry.name for entry in self.files if entry.name]
        if names:
            candidates = [directory / name for name in names]
        elif directory.is_dir():  # a folder chosen without files: all its images
            candidates = sorted(p for p in directory.iterdir() if p.is_file())
        else:
            self.report({'ERROR'}, f"folder not found: {directory}")
            return {'CANCELLED'}
        listed = {photo_path(photo).resolve() for photo in mesh_obj.asm.photos}
        added, skipped = [], []
        for path in candidates:
            if path.suffix.lower() not in PHOTO_SUFFIXES:
                if names:  # a folder's other files are skipped silently
                    skipped.append(f"{path.name} (not an image the fit reads)")
                continue
            if not path.is_file():
                skipped.append(f"{path.name} (not found)")
                continue
            if path.resolve() in listed:
                skipped.append(f"{path.name} (already in the list)")
                continue
            photo = mesh_obj.asm.photos.add()
            photo.filepath = self._stored_path(path)
            listed.add(path.resolve())
            added.append(path.name)
        if added:
            mesh_obj.asm.photo_index = len(mesh_obj.asm.photos) - 1
        if not added:
            self.report({'ERROR'}, f"no photos added: {', '.join(skipped)}" if skipped else
                        f"no photos ({', '.join(PHOTO_SUFFIXES)}) in {directory}")
            return {'CANCELLED'}
        if skipped:
            self.report({'WARNING'}, f"skipped {', '.join(skipped)}")
        self.report({'INFO'}, f"{mesh_obj.name}: added {len(added)} photo(s); {len(mesh_obj.asm.photos)} in the list")
        return {'FINISHED'}

    def _stored_path(self, path: Path) -> str:
        if self.relative_path and bpy.data.filepath:
            try:
                return bpy.path.relpath(str(path))
            except ValueError:  # another drive (Windows): keep it absolute
                pass
        return str(path)


class ASM_OT_remove_photo(bpy.types.Operator):
    """Remove the selected photo from the list (the file stays)"""
    bl_idname = "asm.remove_photo"
    bl_label = "Remove Photo"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return poll_photo_list(cls, context)

    def execute(self, context):
        settings = target_mesh(context).asm
        index = min(settings.photo_index, len(settings.photos) - 1)
        settings.photos.remove(index)
        settings.photo_index = max(min(index, len(settings.photos) - 1), 0)
        return {'FINISHED'}


class ASM_OT_clear_photos(bpy.types.Operator):
    """Remove every photo from the list (the files, cameras and last fit stay)"""
    bl_idname = "asm.clear_photos"
    bl_label = "Clear Photos"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return poll_photo_list(cls, context)

    def execute(self, context):
        settings = target_mesh(context).asm
        settings.photos.clear()
        settings.photo_index = 0
        return {'FINISHED'}
