"""Small loose parts inside a head (eyeballs, corneas, teeth, eye wetness, lashes) move rigidly with one bone.

Through the chart, an eyeball lands under the lids' Gaussians and a tooth under the lips': closing the lids
then drags the eyeball through them and a smile bends the teeth. So every connected part of the mesh that is
small next to the skin (the largest part) is given to a single bone instead: an eye bone when the part is
round and sits around that eye's pivot (the eyeball centre; thin parts there, lashes and the wet rim along the
lids, keep Gaussian weights and follow the lids), else the jaw when the part's own Gaussian weights are mostly on
the jaw and its children (lower teeth, tongue), else the remainder bone (upper teeth, the rest of the head).
An eye bone that moves an eyeball keeps no Gaussians of its own: on a mesh with eyeballs its Gaussians
would only take the lids' margins away from the lid bones. Known limit: other small parts lying on the skin (separate eyebrow cards, stubble) are made rigid too; join
them to the skin or keep them as separate objects.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

SMALL_PART = 0.05  # a part with fewer than this fraction of the mesh's vertices is moved rigidly
EYE_REACH = 0.35  # iod: a small part whose centre is this close to an eye bone's pivot belongs to that eye ...
ROUND = 0.6  # ... and turns with it when it is round (smallest extent / largest): an eyeball or a cornea
EYE_BONES = ("eye.L", "eye.R")
JAW_BONE = "jaw"


def mesh_parts(vertex_count: int, triangles: np.ndarray) -> np.ndarray:
    """(N,) connected-part label of every vertex (a vertex in no triangle is a part of its own)."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(vertex_count, vertex_count))
    return connected_components(graph, directed=False)[1]


def subtree(parents: np.ndarray, root: int) -> np.ndarray:
    """(J,) bool: `root` and all its descendants (parents come before children)."""
    inside = np.zeros(len(parents), dtype=bool)
    inside[root] = True
    for j, parent in enumerate(parents):
        if parent >= 0 and inside[parent]:
            inside[j] = True
    return inside


def loose_parts(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) part label of every vertex and the labels of the small parts (none when every part is small:
    then there is no skin to tell them from)."""
    labels = mesh_parts(len(vertices), triangles)
    sizes = np.bincount(labels)
    small = np.flatnonzero(sizes < SMALL_PART * len(vertices))
    return labels, (small if len(small) < len(sizes) else small[:0])


def eyeball_parts(vertices: np.ndarray, labels: np.ndarray, small: np.ndarray, names, bone_heads: np.ndarray,
                  head_unit: float) -> tuple[dict[int, int], set[int]]:
    """Small parts centred within EYE_REACH of an eye bone's pivot: {round part: eye bone} (eyeballs, corneas)
    and the set of the others there (lashes, the wet rim along the lids: thin shells that follow the lids)."""
    names = list(names)
    eyes = [names.index(n) for n in EYE_BONES if n in names]
    eyeballs, along_lids = {}, set()
    for part in small:
        points = vertices[labels == part]
        distance = [np.linalg.norm(points.mean(0) - bone_heads[eye]) for eye in eyes]
        if not distance or min(distance) >= EYE_REACH * head_unit:
            continue
        extent = np.ptp(points, axis=0)
        if extent.min() >= ROUND * extent.max():
            eyeballs[int(part)] = eyes[int(np.argmin(distance))]
        else:
            along_lids.add(int(part))
    return eyeballs, along_lids


def rigid_bones(labels: np.ndarray, small: np.ndarray, eyeballs: dict[int, int], along_lids: set[int], names,
                parents: np.ndarray, weights: tuple[np.ndarray, np.ndarray], remainder_bone: int) -> np.ndarray:
    """(N,) the bone each vertex of a small loose part follows rigidly, -1 for vertices of the skin: the eye of
    an eyeball part, else the jaw when the part's Gaussian weights (bones (N, k), values (N, k)) are mostly on
    the jaw and its children, else the remainder bone."""
    weight_bones, weight_values = weights
    assigned = np.full(len(labels), -1, dtype=np.int64)
    names = list(names)
    jaw_chain = subtree(parents, names.index(JAW_BONE)) if JAW_BONE in names else np.zeros(len(names), bool)
    for part in small:
        if int(part) in along_lids:
            continue
        members = labels == part
        if int(part) in eyeballs:
            assigned[members] = eyeballs[int(part)]
        elif (weight_values[members] * jaw_chain[weight_bones[members]]).sum(1).mean() >= 0.5:
            assigned[members] = names.index(JAW_BONE)
        else:
            assigned[members] = remainder_bone
    return assigned
