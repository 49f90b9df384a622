"""Edit Landmarks: the head's landmark markers in Edit Mode."""
from __future__ import annotations

import bpy

from ..scene_io import markers as markers_io
from .base import job_running, target_mesh


class ASM_OT_edit_landmarks(bpy.types.Operator):
    """Select the head's landmark markers and enter Edit Mode: move or delete wrong ones, then Regenerate"""
    bl_idname = "asm.edit_landmarks"
    bl_label = "Edit Landmarks"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        mesh_obj = target_mesh(context)
        return mesh_obj is not None and not job_running() and markers_io.find_markers(mesh_obj) is not None

    def execute(self, context):
        markers = markers_io.find_markers(target_mesh(context))
        if context.active_object is not None and context.active_object.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        for obj in context.selected_objects:
            obj.select_set(False)
        markers.hide_set(False)
        markers.select_set(True)
        context.view_layer.objects.active = markers
        bpy.ops.object.mode_set(mode='EDIT')
        return {'FINISHED'}
