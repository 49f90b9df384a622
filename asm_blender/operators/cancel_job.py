"""Cancel: stops the running ASM job."""
from __future__ import annotations

import bpy

from .base import RunningJob, job_running


class ASM_OT_cancel_job(bpy.types.Operator):
    """Stop the running ASM job; the scene stays as it was"""
    bl_idname = "asm.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return job_running()

    def execute(self, context):
        RunningJob.cancel_requested = True
        return {'FINISHED'}
