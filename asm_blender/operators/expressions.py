"""Make ARKit Expressions: the 52 ARKit expressions as poses of the head's rig (one Action each, a pose library) and,
when ticked, as shape keys named as ARKit names them (flows/expressions.py)."""
from __future__ import annotations

from pathlib import Path

import bpy

from ..flows.expressions import expression_steps, rig_for_expressions
from .base import StepsOperator, poll_rigged_head, target_mesh


class ASM_OT_make_expressions(StepsOperator, bpy.types.Operator):
    """Fit the 52 ARKit expressions (from the ICT-FaceKit, carried onto this head) as poses of its rig: one Action
    per expression (a pose library) and, when ticked, shape keys named as ARKit names them"""
    bl_idname = "asm.make_expressions"
    bl_label = "Make ARKit Expressions"
    bl_options = {'REGISTER', 'UNDO'}
    action = "Make ARKit Expressions"

    shape_keys: bpy.props.BoolProperty(
        name="Shape Keys", description="Also bake each expression as a shape key named as ARKit names it (for face "
        "capture apps, VRChat, Unreal); the mesh's own shape keys stay", default=False)

    @classmethod
    def poll(cls, context):
        return poll_rigged_head(cls, context) is not None

    def invoke(self, context, event):
        mesh_obj = target_mesh(context)
        if mesh_obj is not None and not self.properties.is_property_set("shape_keys"):
            self.shape_keys = mesh_obj.asm.expression_shape_keys
        return super().invoke(context, event)

    def _steps(self, context, workdir: Path):
        return expression_steps(rig_for_expressions(target_mesh(context)), self.shape_keys, workdir=workdir)

    def _finish(self, summary: dict) -> None:
        for warning in summary["warnings"]:
            self.report({'WARNING'}, warning)
        keys = f" and {len(summary['shape_keys'])} shape keys" if summary["shape_keys"] else ""
        self.report({'INFO'}, f"{summary['mesh']}: {len(summary['actions'])} expression Actions{keys} "
                              f"(median residual {summary['median_residual']:.0%}); {summary['seconds']:.0f} s")
