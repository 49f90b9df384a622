"""Checks of a job's input that the solver's layers do not make, before the work starts: what would give a wrong rig
without any error."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..core.errors import ASMInputError
from ..model.rigid_parts import mesh_parts

HEAD_SIZED = 0.6  # a loose part whose box is at least this share of the face's part's box diagonal is head-sized


def refuse_several_heads(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                         valid: np.ndarray) -> None:
    """Refuse a mesh that holds another head-sized loose part beside the one the face was found on (e.g. two copies
    of a head in one object): the rig would reach across, one head's vertices weighted to the other's bones. Parts
    inside or overlapping the face's part (eyeballs, teeth, a mouth socket, hair) are the head's own and pass."""
    labels = mesh_parts(len(vertices), triangles)
    if labels.max() == 0:
        return
    _distance, nearest = cKDTree(vertices).query(landmarks[valid])
    face = int(np.bincount(labels[nearest]).argmax())
    low, high = _box(vertices[labels == face])
    others = []
    for part in np.unique(labels):
        part_low, part_high = _box(vertices[labels == part])
        overlaps = np.all(part_low <= high) and np.all(low <= part_high)
        if part != face and not overlaps and np.linalg.norm(part_high - part_low) >= HEAD_SIZED * np.linalg.norm(
                high - low):
            others.append(int((labels == part).sum()))
    if others:
        raise ASMInputError(
            f"the mesh holds {len(others) + 1} separate head-sized parts (the face was found on the one of "
            f"{int((labels == face).sum())} vertices; the others have {', '.join(map(str, others))}): one rig would "
            "weight each to the other's bones. Separate them (Edit Mode: Mesh > Separate > By Loose Parts) and "
            "generate on one head (headless: --object NAME)")


def _box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return points.min(axis=0), points.max(axis=0)
