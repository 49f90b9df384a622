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
    return _write_point_colours(mesh_obj, PREVIEW_ATTRIBUTE, np.clip(weights @ colours, 0.0, 1.0))


def _write_point_colours(mesh_obj: bpy.types.Object, name: str, rgb: np.ndarray) -> str:
    """(Re)create the colour attribute `name` from (N, 3) RGB and make it the active colour."""
    rgba = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1).astype(np.float32)
    attributes = mesh_obj.data.color_attributes
    if name in attributes:
        attributes.remove(attributes[name])
    attribute = attributes.new(name, 'FLOAT_COLOR', 'POINT')
    attribute.data.foreach_set("color", rgba.reshape(-1))
    attributes.active_color = attribute
    return name


ERROR_ATTRIBUTE = "ASM_fit_error"
# Colour ramp for errors, from 0 (dark blue) through cyan, green and yellow to the limit (red). Hand-written
# (five stops, linear in between): Blender-side code has no colour-map library beyond numpy.
ERROR_RAMP = np.array([(0.05, 0.1, 0.5), (0.1, 0.6, 0.9), (0.2, 0.8, 0.3), (0.95, 0.85, 0.1), (0.85, 0.1, 0.05)])


def error_colours(errors: np.ndarray, limit: float) -> np.ndarray:
    """(N,) non-negative errors -> (N, 3) RGB on ERROR_RAMP, saturating at `limit`."""
    position = np.clip(np.asarray(errors, dtype=np.float64) / limit, 0.0, 1.0) * (len(ERROR_RAMP) - 1)
    low = np.minimum(np.floor(position).astype(int), len(ERROR_RAMP) - 2)
    t = (position - low)[:, None]
    return (1 - t) * ERROR_RAMP[low] + t * ERROR_RAMP[low + 1]


UNMEASURED_GREY = (0.55, 0.55, 0.55)


def write_error_colours(mesh_obj: bpy.types.Object, errors: np.ndarray, limit: float,
                        measured: np.ndarray | None = None) -> str:
    """Colour each vertex of `mesh_obj` by its error (see error_colours), grey where `measured` (N,) bool is
    False (outside the measured crop); becomes the active colour attribute."""
    colours = error_colours(errors, limit)
    if measured is not None:
        colours[~np.asarray(measured, dtype=bool)] = UNMEASURED_GREY
    return _write_point_colours(mesh_obj, ERROR_ATTRIBUTE, colours)
