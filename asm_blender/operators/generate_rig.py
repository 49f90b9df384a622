"""Generate Rig (and Detect Again): the rig built on the active head mesh (flows/generate.py)."""
from __future__ import annotations

import json
from pathlib import Path

import bpy

from ..flows.generate import GenerateOptions, generate_steps
from .base import StepsOperator, poll_head, target_mesh


def _options(mesh_obj: bpy.types.Object, detect_again: bool) -> GenerateOptions:
    settings = mesh_obj.asm
    return GenerateOptions(preset=settings.preset, influence_cap=int(settings.influence_cap),
                           gaussians_per_bone=settings.gaussians_per_bone, face_direction=settings.face_direction,
                           detect_again=detect_again, geometry_fallback=settings.geometry_fallback)


class ASM_OT_generate_rig(StepsOperator, bpy.types.Operator):
    """Build an ASM face rig on the selected head mesh: find the face landmarks, make the chart, the armature
    and the Gaussian-mixture weights (replaces this mesh's previous ASM rig; your own data is kept)"""
    bl_idname = "asm.generate_rig"
    bl_label = "Generate Rig"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Generate Rig"

    detect_again: bpy.props.BoolProperty(
        name="Detect Landmarks Again", description="Ignore the head's landmark markers and detect them anew",
        default=False)

    @classmethod
    def poll(cls, context):
        return poll_head(cls, context) is not None

    def _steps(self, context, workdir: Path):
        self.mesh_obj = target_mesh(context)
        return generate_steps(self.mesh_obj, _options(self.mesh_obj, self.detect_again), workdir)

    def _finish(self, summary: dict) -> None:
        self.mesh_obj.asm.summary = json.dumps(summary)
        for note in summary["notes"]:
            self.report({'INFO'}, note)
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        self.report({'INFO'}, f"{summary['mesh']}: {summary['bones']} bones, {summary['landmarks']} landmarks, "
                              f"{summary['seconds']:.1f} s")
