"""Validation helpers for arrays that enter the solver from outside (scene, files, users)."""
from __future__ import annotations

import numpy as np

from .errors import ASMInputError


def checked_array(name: str, value, shape: tuple, dtype=np.float64) -> np.ndarray:
    """Return `value` as an array of `dtype`, raising ASMInputError when its shape or values are wrong.

    `shape` uses None for a free dimension, e.g. (None, 3). Non-finite values are rejected with the
    index of the first one, because a NaN that enters the solver surfaces much later as a broken rig.
    """
    array = np.asarray(value, dtype=dtype)
    if array.ndim != len(shape) or any(w is not None and w != s for w, s in zip(shape, array.shape)):
        wanted = "(" + ", ".join("N" if w is None else str(w) for w in shape) + ")"
        raise ASMInputError(f"{name}: expected an array of shape {wanted}, got {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        first = np.argwhere(~np.isfinite(array))[0]
        raise ASMInputError(f"{name}: contains NaN or infinite values (first at index {tuple(int(i) for i in first)})")
    return array
