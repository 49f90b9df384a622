"""The settings a user chooses from, as both sides spell them (the CLI, the sidebar and the solver's settings)."""
from __future__ import annotations

PRESETS = ("full", "standard", "game")  # the skeleton template's presets (solver/template/skeleton.json)
DEFAULT_PRESET = "full"
INFLUENCE_CAPS = (4, 8)  # weights kept per vertex: glTF / three.js read 4, Unreal / Godot 8
DEFAULT_INFLUENCE_CAP = 4
GAUSSIANS_PER_BONE = range(1, 7)
DEFAULT_GAUSSIANS_PER_BONE = 3
CHARTS = ("auto", "uv", "projected")  # the mesh's own UV map, a cylindrical projection, or UV where it qualifies
QUALITIES = ("fast", "balanced", "best")  # how long a fit works
DEFAULT_QUALITY = "balanced"
EXPRESSION_MODES = ("per_photo", "shared")  # each photo's own expression on the shared identity, or one pose
DEFAULT_EXPRESSIONS = "shared"  # measured: on photos of one expression, per-photo poses absorb the
# shape the dense term finds (issue 19)
AUTO_DIRECTION = "AUTO"
FACE_DIRECTIONS = {"-Y": (0.0, -1.0, 0.0), "+Y": (0.0, 1.0, 0.0), "-X": (-1.0, 0.0, 0.0), "+X": (1.0, 0.0, 0.0)}
# the world axis a head's face looks along; AUTO finds it from renders
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")  # the image files the worker reads

# ARKit's 52 blend shapes in ARKit's own order (ARFaceAnchor.BlendShapeLocation, as Live Link Face sends them): the
# pose library's Actions and shape keys (solver/rig/arkit.py)
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawLeft", "jawRight", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthLeft", "mouthRight", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)


def checked(what: str, value, allowed):
    """`value` when it is one of `allowed`, else ValueError naming the setting and the choices."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; use one of {list(allowed)}")
    return value
