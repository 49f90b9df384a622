"""Fit to Photos: the rig and one camera per photo fitted to the ticked photos (flows/fit.py)."""
from __future__ import annotations

from pathlib import Path

import bpy

from ..flows.fit import fit_steps, rig_for_fit
from ..flows.photos import enabled_photos
from .base import StepsOperator, poll_rigged_head, target_mesh


class ASM_OT_fit_photos(StepsOperator, bpy.types.Operator):
    """Fit the head's rig to the ticked photos: a camera per photo (the photo as its background), the fitted face
    as the armature's pose (or baked into the mesh) and each photo's expression as an Action"""
    bl_idname = "asm.fit_photos"
    bl_label = "Fit to Photos"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Fit to Photos"

    @classmethod
    def poll(cls, context):
        mesh_obj = poll_rigged_head(cls, context)
        if mesh_obj is None:
            return False
        if not any(photo.enabled for photo in mesh_obj.asm.photos):
            cls.poll_message_set("add photos (Add Photos) and tick the ones to fit")
            return False
        return True

    def _steps(self, context, workdir: Path):
        mesh_obj = target_mesh(context)
        arm = rig_for_fit(mesh_obj)
        photos = enabled_photos(mesh_obj)
        settings = mesh_obj.asm
        return fit_steps(arm, photos, settings.fit_quality, settings.expressions, settings.bake_identity,
                                  workdir, match_texture=settings.match_texture, same_lens=settings.same_lens)

    def _finish(self, summary: dict) -> None:
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        errors = ", ".join(f"{e:.1f}" for e in summary["pixel_error_after"])
        self.report({'INFO'}, f"{summary['mesh']}: fitted to {len(summary['photos'])} photo(s), landmarks off by "
                              f"{errors} px; {summary['identity_note']}; {summary['seconds']:.0f} s")
