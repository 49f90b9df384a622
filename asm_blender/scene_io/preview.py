"""A colour attribute that shows which bone moves which part of the mesh (for pictures and the viewport)."""
from __future__ import annotations

import colorsys

import bpy
import numpy as np

PREVIEW_ATTRIBUTE = "ASM_weights_preview"


def bone_colours(count: int) -> np.ndarray:
    """(count, 3) well-separated colours: hues spaced by the golden ratio, alternating brightness."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.75, 0.95 if i % 2 else 0.7) for i, h in enumerate(hues)])


def write_weight_preview(mesh_obj: bpy.types.Object, weights: np.ndarray, remainder_bone: int) -> str:
    """Colour each vertex by sum_j w_ij colour_j; the remainder (head) bone shows as light grey.

    weights: (N, J) dense capped weights. Returns the attribute's name (it becomes the active colour).
    """
    colours = bone_colours(weights.shape[1])
    colours[remainder_bone] = (0.8, 0.8, 0.8)
    rgb = np.clip(weights @ colours, 0.0, 1.0)
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1).astype(np.float32)
    attributes = mesh_obj.data.color_attributes
    if PREVIEW_ATTRIBUTE in attributes:
        attributes.remove(attributes[PREVIEW_ATTRIBUTE])
    attribute = attributes.new(PREVIEW_ATTRIBUTE, 'FLOAT_COLOR', 'POINT')
    attribute.data.foreach_set("color", rgba.reshape(-1))
    attributes.active_color = attribute
    return PREVIEW_ATTRIBUTE
