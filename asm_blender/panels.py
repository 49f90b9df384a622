"""VIEW3D_PT_asm_* sidebar panels (tab "ASM")."""
from __future__ import annotations

import bpy


def rig_state(context) -> str:
    """One word for what the active object is, so every panel draws from the same state."""
    obj = context.active_object
    if obj is None or obj.type != 'MESH':
        return "no_mesh"
    has_rig = any(m.type == 'ARMATURE' and m.object is not None and "asm_rig" in m.object for m in obj.modifiers)
    return "rigged" if has_rig else "mesh"


class VIEW3D_PT_asm_info(bpy.types.Panel):
    bl_label = "ASM Face Rig"
    bl_idname = "VIEW3D_PT_asm_info"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "ASM"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.asm
        state = rig_state(context)
        messages = {
            "no_mesh": "Select a head mesh to rig.",
            "mesh": f"{context.active_object.name if context.active_object else ''}: no ASM rig yet.",
            "rigged": f"{context.active_object.name if context.active_object else ''}: rigged.",
        }
        layout.label(text=messages[state], icon='INFO')
        column = layout.column()
        column.prop(settings, "preset")
        column.prop(settings, "influence_cap")
        column.prop(settings, "gaussians_per_bone")


CLASSES = (VIEW3D_PT_asm_info,)
