"""ASM_PG_* settings, per head mesh on Object.asm: saved with the file, so Regenerate uses them again."""
from __future__ import annotations

import bpy

FACE_DIRECTION_ITEMS = [
    ("AUTO", "Auto", "Find the direction from renders of the four sides"),
    ("-Y", "-Y (Blender front)", "The face looks along world -Y"),
    ("+Y", "+Y", "The face looks along world +Y"),
    ("-X", "-X", "The face looks along world -X"),
    ("+X", "+X", "The face looks along world +X"),
]


class ASM_PG_object_settings(bpy.types.PropertyGroup):
    preset: bpy.props.EnumProperty(
        name="Preset", description="Which skeleton the rig uses",
        items=[("full", "Full (83 bones)", "Paper-like rig: brows, lids, eyes, nose, cheeks, lips, jaw, ears, neck"),
               ("game", "Game (24 bones)", "Fewer, wider bones for game engines")],
        default="full")
    influence_cap: bpy.props.EnumProperty(
        name="Influences", description="Bones per vertex kept in the weights (game engines need 4 or 8)",
        items=[("4", "4", "glTF / three.js"), ("8", "8", "Unreal / Godot")], default="4")
    gaussians_per_bone: bpy.props.IntProperty(
        name="Gaussians per Bone", description="Gaussians in each bone's weight mixture", default=3, min=1, max=6)
    face_direction: bpy.props.EnumProperty(
        name="Face Direction", description="Which way the face looks in the world (Auto: found from renders)",
        items=FACE_DIRECTION_ITEMS, default="AUTO")
    summary: bpy.props.StringProperty(
        name="Last Result", description="JSON summary of the last Generate on this mesh", options={'HIDDEN'})


CLASSES = (ASM_PG_object_settings,)


def attach() -> None:
    bpy.types.Object.asm = bpy.props.PointerProperty(type=ASM_PG_object_settings)


def detach() -> None:
    del bpy.types.Object.asm
