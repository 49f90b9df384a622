"""Check Photos: the face found in each listed photo (flows/photos.py)."""
from __future__ import annotations

from pathlib import Path

import bpy

from ..flows.photos import check_steps
from .base import StepsOperator, poll_photo_list, target_mesh


class ASM_OT_check_photos(StepsOperator, bpy.types.Operator):
    """Find the face in each photo of the list and show what was found (a face, how many landmarks, the size, or
    what is wrong with the file), before fitting"""
    bl_idname = "asm.check_photos"
    bl_label = "Check Photos"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Check Photos"

    @classmethod
    def poll(cls, context):
        return poll_photo_list(cls, context)

    def _steps(self, context, workdir: Path):
        return check_steps(target_mesh(context), workdir)

    def _finish(self, summary: dict) -> None:
        for problem in summary["problems"]:
            self.report({'WARNING'}, problem)
        self.report({'INFO'}, f"{summary['mesh']}: a face in {summary['faces_found']} of {summary['photos']} photo(s)")
