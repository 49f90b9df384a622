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
    geometry_fallback: bpy.props.BoolProperty(
        name="Landmarks from Shape if No Face", description="When no face is detected (a sculpt without "
        "features, a stylised head), place the landmarks from the mesh's shape (nose tip, symmetry, width) "
        "instead of stopping; check them with Edit Landmarks", default=False)
    summary: bpy.props.StringProperty(
        name="Last Result", description="JSON summary of the last Generate on this mesh", options={'HIDDEN'})


def _edited(self, context) -> None:
    from . import rebake  # the property module is registered before the rest of the add-on

    rebake.parameter_edited(self.id_data)


class ASM_PG_gaussian(bpy.types.PropertyGroup):
    """One Gaussian of a bone's weight mixture, in the ASM chart (units: the chart's, about 1 per face width)."""
    weight: bpy.props.FloatProperty(
        name="Weight", description="Share of this Gaussian in the bone's mixture (the shares are normalised)",
        default=1.0, min=1e-4, max=1.0, update=_edited)
    size: bpy.props.FloatVectorProperty(
        name="Size", description="Standard deviations along the Gaussian's own axes, in chart units",
        size=2, default=(0.02, 0.02), min=1e-4, max=1.0, precision=4, step=0.01, update=_edited)
    angle: bpy.props.FloatProperty(
        name="Angle", description="Direction of the Gaussian's first axis in the chart", subtype='ANGLE',
        default=0.0, update=_edited)
    offset: bpy.props.FloatVectorProperty(
        name="Offset", description="Centre relative to the bone's binding point, in chart units",
        size=2, default=(0.0, 0.0), precision=4, step=0.01, update=_edited)


class ASM_PG_bone(bpy.types.PropertyGroup):
    """A bone's ASM parameters on its pose bone: editing them re-bakes the weights (and the bone's rest place)."""
    binding: bpy.props.FloatVectorProperty(
        name="Binding Point", description="Where the bone is bound in the ASM chart (moves the bone and its "
        "Gaussians over the surface)", size=2, precision=4, step=0.01, update=_edited)
    gaussians: bpy.props.CollectionProperty(type=ASM_PG_gaussian)


CLASSES = (ASM_PG_object_settings, ASM_PG_gaussian, ASM_PG_bone)


def attach() -> None:
    bpy.types.Object.asm = bpy.props.PointerProperty(type=ASM_PG_object_settings)
    bpy.types.PoseBone.asm = bpy.props.PointerProperty(type=ASM_PG_bone)


def detach() -> None:
    del bpy.types.PoseBone.asm
    del bpy.types.Object.asm
