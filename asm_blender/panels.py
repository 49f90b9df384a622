"""VIEW3D_PT_asm_* sidebar panels (tab "ASM")."""
from __future__ import annotations

import json

import bpy

from . import operators, rebake
from .scene_io import markers as markers_io
from .scene_io.rig import existing_rig


def rig_state(context) -> str:
    """One word for what the sidebar acts on, so every panel draws from the same state."""
    mesh_obj = operators.target_mesh(context)
    if mesh_obj is None:
        return "no_mesh"
    return "rigged" if existing_rig(mesh_obj) is not None else "mesh"


class VIEW3D_PT_asm_info(bpy.types.Panel):
    bl_label = "ASM Face Rig"
    bl_idname = "VIEW3D_PT_asm_info"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ASM"

    def draw(self, context):
        layout = self.layout
        state = rig_state(context)
        mesh_obj = operators.target_mesh(context)
        if state == "no_mesh":
            layout.label(text="Select a head mesh to rig.", icon='INFO')
            return
        layout.label(text=mesh_obj.name, icon='MESH_DATA')
        settings = mesh_obj.asm
        column = layout.column()
        column.enabled = not operators.job_running()
        column.prop(settings, "preset")
        column.prop(settings, "influence_cap")
        column.prop(settings, "gaussians_per_bone")
        column.prop(settings, "face_direction")
        column.prop(settings, "geometry_fallback")

        if operators.job_running():
            text, fraction = operators.running_status()
            box = layout.box()
            box.label(text=text, icon='SORTTIME')
            if hasattr(box, "progress"):  # Blender 4.0+
                box.progress(factor=fraction, type='BAR', text=f"{fraction:.0%}")
            box.operator("asm.cancel_job", icon='CANCEL')
            return
        row = layout.row(align=True)
        row.scale_y = 1.4
        row.operator("asm.generate_rig", text="Regenerate Rig" if state == "rigged" else "Generate Rig",
                     icon='FILE_REFRESH' if state == "rigged" else 'ARMATURE_DATA')
        row = layout.row(align=True)
        has_markers = markers_io.find_markers(mesh_obj) is not None
        row.operator("asm.edit_landmarks", icon='EDITMODE_HLT')
        if has_markers:
            row.operator("asm.generate_rig", text="Detect Again", icon='VIEWZOOM').detect_again = True
        layout.operator("asm.remove_rig", icon='X')
        _draw_summary(layout, settings.summary)


def _draw_summary(layout, summary_json: str) -> None:
    if not summary_json:
        return
    try:
        summary = json.loads(summary_json)
    except json.JSONDecodeError:
        return
    box = layout.box()
    box.label(text=f"{summary['bones']} bones, {summary['vertices']} vertices", icon='BONE_DATA')
    box.label(text=f"{summary['landmarks']} landmarks, face looks {summary['face_direction']}", icon='SHADERFX')
    box.label(text=f"chart: {summary['chart']}, {summary['influence_cap']} influences", icon='UV')
    for warning in summary.get("warnings", [])[:4]:
        box.label(text=warning, icon='ERROR')


class VIEW3D_PT_asm_bone(bpy.types.Panel):
    """The active bone's ASM parameters: editing them re-bakes its weights."""
    bl_label = "ASM Bone"
    bl_idname = "VIEW3D_PT_asm_bone"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ASM"

    @classmethod
    def poll(cls, context):
        arm = operators.active_rig_armature(context)
        return arm is not None and arm.data.bones.active is not None

    def draw(self, context):
        layout = self.layout
        arm = operators.active_rig_armature(context)
        bone = arm.pose.bones.get(arm.data.bones.active.name)
        if bone is None:
            return
        layout.label(text=bone.name, icon='BONE_DATA')
        layout.prop(bone.asm, "binding")
        if len(bone.asm.gaussians) == 0:
            layout.label(text="No weights of its own (moves its children)", icon='INFO')
        for k, gaussian in enumerate(bone.asm.gaussians):
            box = layout.box()
            box.label(text=f"Gaussian {k + 1}")
            box.prop(gaussian, "weight")
            box.prop(gaussian, "size")
            box.prop(gaussian, "angle")
            box.prop(gaussian, "offset")
        layout.operator("asm.rebake_rig", icon='FILE_REFRESH')
        if rebake.last_message:
            layout.label(text=rebake.last_message, icon='INFO')


CLASSES = (VIEW3D_PT_asm_info, VIEW3D_PT_asm_bone)
