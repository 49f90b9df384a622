"""ASM_PG_* settings, per head mesh on Object.asm: saved with the file, so Regenerate and Fit use them again."""
from __future__ import annotations

import bpy

from .protocol import choices


def _items(values, labels: dict) -> list[tuple[str, str, str]]:
    """Enum items for the protocol's `values`, each with its (name, description) from `labels`."""
    return [(str(value), *labels[value]) for value in values]


PRESET_ITEMS = _items(choices.PRESETS, {
    "full": ("Full (83 bones)", "Paper-like rig: brows, lids, eyes, nose, cheeks, lips, jaw, ears, neck"),
    "standard": ("Standard (52 bones)", "The game bones plus nose tip and wings, cheekbones, lip sides, eye corners, "
                 "temples and ears"),
    "game": ("Game (24 bones)", "Fewer, wider bones for game engines")})
INFLUENCE_ITEMS = _items(choices.INFLUENCE_CAPS, {4: ("4", "glTF / three.js"), 8: ("8", "Unreal / Godot")})
FACE_DIRECTION_ITEMS = _items((choices.AUTO_DIRECTION, *choices.FACE_DIRECTIONS), {
    choices.AUTO_DIRECTION: ("Auto", "Find the direction from renders of the four sides"),
    "-Y": ("-Y (Blender front)", "The face looks along world -Y"),
    "+Y": ("+Y", "The face looks along world +Y"),
    "-X": ("-X", "The face looks along world -X"),
    "+X": ("+X", "The face looks along world +X")})


PHOTO_STATUS_ITEMS = [
    ("UNCHECKED", "Not Checked", "Press Check Photos to find the face in it"),
    ("OK", "Face Found", "The face was found"),
    ("WARNING", "Face Found, with a Note", "The face was found; see the note (several faces, downscaled)"),
    ("NO_FACE", "No Face", "No face was found: the fit would refuse it"),
    ("MISSING", "File Not Found", "The file is not where the list says"),
    ("ERROR", "Unreadable", "The file could not be read as an image"),
]
QUALITY_ITEMS = _items(choices.QUALITIES, {
    "fast": ("Fast", "Fewest iterations: a quick look (tens of seconds)"),
    "balanced": ("Balanced", "The default"),
    "best": ("Best", "Most iterations: slowest, closest fit")})
EXPRESSION_ITEMS = _items(choices.EXPRESSION_MODES, {
    "per_photo": ("Each Photo's Own", "Each photo may show its own expression (jaw, lips, lids, brows move per "
                  "photo); the identity is shared. Each photo's pose becomes an Action on the armature"),
    "shared": ("One for All", "All photos show the same expression: one pose for all of them")})


def _photo_path_changed(self, context) -> None:
    """A new file: the last check says nothing about it."""
    self.status, self.face_found, self.landmark_count = "UNCHECKED", False, 0
    self.image_size, self.message = (0, 0), ""


# Blender 4.5 warns about "//" paths in properties that do not say they take them (and 4.2-4.4 know no such option).
_RELATIVE_PATHS = {'PATH_SUPPORTS_BLEND_RELATIVE'} if bpy.app.version >= (4, 5, 0) else set()


class ASM_PG_photo(bpy.types.PropertyGroup):
    """One photo of the person to fit the rig to; its status comes from Check Photos."""
    filepath: bpy.props.StringProperty(
        name="Photo", description="The photo's image file", subtype='FILE_PATH', options=_RELATIVE_PATHS,
        update=_photo_path_changed)
    enabled: bpy.props.BoolProperty(name="Use", description="Fit the rig to this photo", default=True)
    status: bpy.props.EnumProperty(
        name="Status", description="What Check Photos found (set by the check; not for editing)",
        items=PHOTO_STATUS_ITEMS, default="UNCHECKED")
    face_found: bpy.props.BoolProperty(name="Face Found", description="The check found a face in the photo")
    landmark_count: bpy.props.IntProperty(name="Landmarks", description="Landmarks the check found in the photo",
                                          min=0)
    image_size: bpy.props.IntVectorProperty(name="Image Size", description="Width and height in pixels, upright",
                                            size=2, min=0)
    message: bpy.props.StringProperty(name="Message", description="The check's note on this photo")


class ASM_PG_object_settings(bpy.types.PropertyGroup):
    preset: bpy.props.EnumProperty(
        name="Preset", description="Which skeleton the rig uses",
        items=PRESET_ITEMS, default=choices.DEFAULT_PRESET)
    influence_cap: bpy.props.EnumProperty(
        name="Influences", description="Bones per vertex kept in the weights (game engines need 4 or 8)",
        items=INFLUENCE_ITEMS, default=str(choices.DEFAULT_INFLUENCE_CAP))
    gaussians_per_bone: bpy.props.IntProperty(
        name="Gaussians per Bone", description="Gaussians in each bone's weight mixture",
        default=choices.DEFAULT_GAUSSIANS_PER_BONE, min=choices.GAUSSIANS_PER_BONE[0],
        max=choices.GAUSSIANS_PER_BONE[-1])
    face_direction: bpy.props.EnumProperty(
        name="Face Direction", description="Which way the face looks in the world (Auto: found from renders)",
        items=FACE_DIRECTION_ITEMS, default=choices.AUTO_DIRECTION)
    geometry_fallback: bpy.props.BoolProperty(
        name="Landmarks from Shape if No Face", description="When no face is detected (a sculpt without "
        "features, a stylised head), place the landmarks from the mesh's shape (nose tip, symmetry, width) "
        "instead of stopping; check them with Edit Landmarks", default=False)
    summary: bpy.props.StringProperty(
        name="Last Result", description="JSON summary of the last Generate on this mesh", options={'HIDDEN'})
    photos: bpy.props.CollectionProperty(type=ASM_PG_photo, name="Photos",
                                         description="Photos of the person to fit the rig to")
    photo_index: bpy.props.IntProperty(name="Active Photo", description="The photo selected in the list", min=0)
    fit_quality: bpy.props.EnumProperty(
        name="Quality", description="How long the photo fit works on it", items=QUALITY_ITEMS,
        default=choices.DEFAULT_QUALITY)
    expressions: bpy.props.EnumProperty(
        name="Expressions", description="Whether the photos share one expression or each shows its own",
        items=EXPRESSION_ITEMS, default=choices.DEFAULT_EXPRESSIONS)
    bake_identity: bpy.props.BoolProperty(
        name="Bake Identity into Mesh", description="After the fit, make the fitted face the mesh's rest shape and "
        "bind the rig again on it (rest pose = the person). Off: the mesh keeps its shape and the fitted identity is "
        "the armature's pose", default=False)
    same_lens: bpy.props.BoolProperty(
        name="Same Lens for All Photos", description="The photos come from one camera and lens (their focal length "
        "over the photo's size is shared): steadier lenses and depth than each photo's own. On by itself where every "
        "photo's EXIF names one camera, lens and focal length", default=False)
    match_texture: bpy.props.BoolProperty(
        name="Match Skin Texture", description="Last, compare small patches of the face between the photos (skin "
        "texture, lid and lip edges) to refine the shape. Turn off for photos without texture or with strongly "
        "different lighting (it then moves the surface wrongly): the landmarks alone place the face",
        default=True)
    fit_summary: bpy.props.StringProperty(
        name="Last Fit", description="JSON summary of the last photo fit on this mesh", options={'HIDDEN'})
    expression_shape_keys: bpy.props.BoolProperty(
        name="Also as Shape Keys", description="Make ARKit Expressions also bakes each expression as a shape key "
        "named as ARKit names it (Basis + 52: iPhone face capture, VRChat, Unreal); your own shape keys stay",
        default=False)


def _edited(self, context) -> None:
    from .flows import rebake  # here: the properties are registered before the flows are needed

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


CLASSES = (ASM_PG_photo, ASM_PG_object_settings, ASM_PG_gaussian, ASM_PG_bone)  # parts before what holds them


def attach() -> None:
    bpy.types.Object.asm = bpy.props.PointerProperty(type=ASM_PG_object_settings)
    bpy.types.PoseBone.asm = bpy.props.PointerProperty(type=ASM_PG_bone)


def detach() -> None:
    del bpy.types.PoseBone.asm
    del bpy.types.Object.asm
