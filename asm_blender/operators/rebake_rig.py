"""Re-bake Weights: the rig baked again from its bones' ASM parameters (flows/rebake.py)."""
from __future__ import annotations

import bpy

from .. import jobs
from ..flows import rebake
from ..scene_io.mesh import SceneInputError
from .base import active_rig_armature, job_running


class ASM_OT_rebake_rig(bpy.types.Operator):
    """Re-bake the rig's weights and bone rest places from the bones' ASM parameters (binding points and
    Gaussians, under Bone in the sidebar)"""
    bl_idname = "asm.rebake_rig"
    bl_label = "Re-bake Weights"
    bl_options = {'REGISTER', 'UNDO'}

    @classmethod
    def poll(cls, context):
        return not job_running() and active_rig_armature(context) is not None

    def execute(self, context):
        arm = active_rig_armature(context)
        try:
            moved = rebake.rebake_now(arm)
        except (SceneInputError, jobs.JobError) as error:
            self.report({'ERROR'}, str(error))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{arm.name}: weights re-baked" + (f"; moved {', '.join(moved)}" if moved else ""))
        return {'FINISHED'}
