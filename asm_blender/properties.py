"""ASM_PG_* settings stored on the scene (Scene.asm)."""
from __future__ import annotations

import bpy


class ASM_PG_scene_settings(bpy.types.PropertyGroup):
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


CLASSES = (ASM_PG_scene_settings,)


def attach() -> None:
    bpy.types.Scene.asm = bpy.props.PointerProperty(type=ASM_PG_scene_settings)


def detach() -> None:
    del bpy.types.Scene.asm
