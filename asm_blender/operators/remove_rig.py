"""Remove Rig: what Generate added to the head, and nothing of the user's."""
from __future__ import annotations

import bpy

from ..scene_io import markers as markers_io
from ..scene_io.rig import existing_rig, remove_rig
from .base import job_running, target_mesh


class ASM_OT_remove_rig(bpy.types.Operator):
    """Remove the ASM rig from the head mesh: armature, Armature modifier, the rig's vertex groups and chart
    (your own vertex groups, modifiers, shape keys and UV maps are kept)"""
    bl_idname = "asm.remove_rig"
    bl_label = "Remove Rig"
    bl_options = {'REGISTER', 'UNDO'}

    keep_landmarks: bpy.props.BoolProperty(
        name="Keep Landmarks", description="Keep the landmark markers (and your edits to them) for the next Generate",
        default=True)

    @classmethod
    def poll(cls, context):
        mesh_obj = target_mesh(context)
        if mesh_obj is None or job_running():
            return False
        return existing_rig(mesh_obj) is not None or markers_io.find_markers(mesh_obj) is not None \
            or bool(mesh_obj.get("asm_vertex_groups"))

    def execute(self, context):
        mesh_obj = target_mesh(context)
        if mesh_obj.mode == 'EDIT':
            self.report({'ERROR'}, f"mesh {mesh_obj.name!r} is in Edit Mode; switch to Object Mode first")
            return {'CANCELLED'}
        if context.active_object is not None and context.active_object.mode != 'OBJECT':
            bpy.ops.object.mode_set(mode='OBJECT')
        removed = remove_rig(mesh_obj)
        if not self.keep_landmarks and markers_io.find_markers(mesh_obj) is not None:
            markers_io.remove_markers(mesh_obj)
            removed.append("landmarks")
        mesh_obj.asm.summary = ""
        if context.view_layer.objects.active is None and mesh_obj.name in context.view_layer.objects:
            context.view_layer.objects.active = mesh_obj
        self.report({'INFO'}, f"{mesh_obj.name}: removed {', '.join(removed) or 'nothing'}")
        return {'FINISHED'}
