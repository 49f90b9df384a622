"""Loose parts inside a head (eyeballs, corneas, teeth, gums, tongue, eye wetness, lashes) follow fixed bones.

Through the chart, an eyeball lands under the lids' Gaussians and a tooth under the lips': closing the lids
then drags the eyeball through them and a smile bends the teeth. So every connected part of the mesh that is
small next to the skin (the largest part) is given to a single bone instead: an eye bone when the part is
round and sits around that eye's pivot (the eyeball centre; thin parts there, lashes and the wet rim along the
lids, keep Gaussian weights and follow the lids), else the jaw when it lies below the bite (lower teeth), else the
remainder bone (upper teeth, the rest of the head).

The bite is a plane through the jaw's hinge axis and the point where the lips meet, moved to the widest gap between
the teeth below and above it (upper molars sit a little below the plane through the hinge). Parts inside the mouth
that are not small and touch both rows of teeth (gums and tongue in one piece) are split vertex by vertex, with a
short blend between the jaw and the remainder bone: by the way along the part to its vertices next to the lower
teeth against the way to those next to the upper teeth, so that the tongue, joined to the lower gums by the floor
of the mouth, opens with the jaw even where its back rises above the bite, and the upper gums stay (on the
ICT-FaceKit head 95 % of these vertices go where the kit's jawOpen moves them, against 86 % by the side of the
bite).
An eye bone that moves an eyeball keeps no Gaussians of its own: on a mesh with eyeballs its Gaussians
would only take the lids' margins away from the lid bones. Known limit: other small parts lying on the skin (separate eyebrow cards, stubble) are made rigid too; join
them to the skin or keep them as separate objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from ..core.geometry import edge_graph

SMALL_PART = 0.05  # a part with fewer than this fraction of the mesh's vertices is moved rigidly
EYE_REACH = 0.35  # iod: a small part whose centre is this close to an eye bone's pivot belongs to that eye ...
ROUND = 0.6  # ... and turns with it when it is round (smallest extent / largest): an eyeball or a cornea
EYE_BONES = ("eye.L", "eye.R")
JAW_BONE = "jaw"
LIP_BONES = ("lip_upper", "lip_lower")  # their heads' middle is where the lips meet
MOUTH_REACH = 0.75  # iod: a loose part centred this close to where the lips meet lies inside the mouth
BITE_GAP = 0.05  # iod: the teeth's centres must leave a gap this wide across the bite to move the plane to it
BITE_SHIFT = 0.15  # iod: ... and the gap must lie this close to the plane through the hinge
BLEND = 0.03  # iod: a large part inside the mouth blends from the jaw to the remainder bone over twice this
BESIDE_TEETH = 0.03  # iod: a vertex of such a part this close to a tooth starts the way to it


@dataclass(frozen=True)
class Bite:
    """The plane between the upper and the lower teeth: a point on it and its unit normal (towards the upper lip),
    in mesh units; where the lips meet; and the head unit."""

    point: np.ndarray
    normal: np.ndarray
    lips: np.ndarray
    head_unit: float

    def height(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) -> (...) signed distance above the bite in iod."""
        return (np.asarray(points) - self.point) @ self.normal / self.head_unit


@dataclass(frozen=True)
class FixedWeights:
    """Weights of the vertices of loose parts, set by the part instead of the Gaussians: bones (N, 2), -1 in rows
    the Gaussians weigh, and values (N, 2) summing to 1 in the others."""

    bones: np.ndarray
    values: np.ndarray

    @property
    def chosen(self) -> np.ndarray:
        return self.bones[:, 0] >= 0


def mesh_parts(vertex_count: int, triangles: np.ndarray) -> np.ndarray:
    """(N,) connected-part label of every vertex (a vertex in no triangle is a part of its own)."""
    # Two edges of each triangle join all three corners; as a directed graph's weak components, the graph need not
    # be made symmetric first (half the time on a 100k-vertex head).
    triangles = np.asarray(triangles)
    graph = csr_matrix((np.ones(2 * len(triangles), dtype=np.int32),
                        (np.concatenate([triangles[:, 0], triangles[:, 1]]),
                         np.concatenate([triangles[:, 1], triangles[:, 2]]))), shape=(vertex_count, vertex_count))
    return connected_components(graph, directed=True, connection="weak")[1]


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


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """(P, 3) points on a sphere -> (3,) its centre: the linear least-squares fit of |p|^2 = 2 c.p + (r^2 - |c|^2)
    (hand-written: scipy has no sphere fit, and this one is four columns of lstsq)."""
    system = np.column_stack([2 * points, np.ones(len(points))])
    solution = np.linalg.lstsq(system, (points ** 2).sum(1), rcond=None)[0]
    return solution[:3]


def eyeball_centres(vertices: np.ndarray, triangles: np.ndarray, names, bone_heads: np.ndarray,
                    head_unit: float) -> dict[int, np.ndarray]:
    """{eye bone: (3,) centre of its eyeball} for each eye that has a round loose part around it (eyeball_parts),
    the roundest one's (an eyeball rather than a cornea's shell with its bulge): the point the eye and the lids turn
    about. Eyes without one (a scan, a sculpt) are left out."""
    labels, small = loose_parts(vertices, triangles)
    eyeballs, _ = eyeball_parts(vertices, labels, small, names, bone_heads, head_unit)
    roundest: dict[int, tuple[float, int]] = {}
    for part, eye in eyeballs.items():
        extent = np.ptp(vertices[labels == part], axis=0)
        roundness = extent.min() / extent.max()
        if eye not in roundest or roundness > roundest[eye][0]:
            roundest[eye] = (roundness, part)
    return {eye: sphere_centre(vertices[labels == part]) for eye, (_, part) in roundest.items()}


def bite_plane(names, heads: np.ndarray, rest_rotation: np.ndarray, head_unit: float) -> Bite | None:
    """The plane through the jaw's hinge axis (its head and local X axis) and where the lips meet (the middle of
    LIP_BONES' heads), facing the upper lip; None for a rig without those bones."""
    names = list(names)
    if JAW_BONE not in names or not all(b in names for b in LIP_BONES):
        return None
    jaw = names.index(JAW_BONE)
    upper, lower = (heads[names.index(b)] for b in LIP_BONES)
    lips = (upper + lower) / 2
    normal = np.cross(rest_rotation[jaw][:, 0], lips - heads[jaw])
    if np.linalg.norm(normal) < 1e-9 * head_unit:
        return None
    normal = normal / np.linalg.norm(normal)
    if normal @ (upper - lower) < 0:
        normal = -normal
    return Bite(lips, normal, lips, float(head_unit))


def settled_bite(bite: Bite, centres: np.ndarray) -> Bite:
    """The bite moved along its normal to the middle of the widest gap between the centres (P, 3) of the small
    parts inside the mouth (the teeth), when that gap is wider than BITE_GAP and lies within BITE_SHIFT of it."""
    heights = np.sort(bite.height(centres))
    if len(heights) < 2:
        return bite
    gaps = np.diff(heights)
    widest = int(np.argmax(gaps))
    middle = (heights[widest] + heights[widest + 1]) / 2
    if gaps[widest] < BITE_GAP or abs(middle) > BITE_SHIFT:
        return bite
    return Bite(bite.point + middle * bite.head_unit * bite.normal, bite.normal, bite.lips, bite.head_unit)


def _jaw_share(vertices: np.ndarray, triangles: np.ndarray, members: np.ndarray, lower: np.ndarray,
               upper: np.ndarray, head_unit: float) -> np.ndarray | None:
    """(M,) the jaw's share of each vertex of a large part inside the mouth (`members`), from the vertices of the
    lower and the upper teeth (see the module's docstring); None when the part touches only one row of teeth or
    none (a beard, a mouth without teeth: it keeps its Gaussians)."""
    reach = BESIDE_TEETH * head_unit
    starts = []
    for teeth in (lower, upper):
        if len(teeth) == 0:
            return None
        near = np.flatnonzero(cKDTree(vertices[teeth]).query(vertices[members], distance_upper_bound=reach)[0] < reach)
        if len(near) == 0:
            return None
        starts.append(near)
    local = np.full(len(vertices), -1)
    local[members] = np.arange(len(members))
    graph = edge_graph(vertices[members], local[triangles[np.isin(triangles, members).all(1)]])
    to_lower, to_upper = (dijkstra(graph, directed=False, indices=near, min_only=True) for near in starts)
    to_lower, to_upper = (np.where(np.isfinite(d), d, 1e3 * head_unit) for d in (to_lower, to_upper))
    return np.clip(0.5 + (to_upper - to_lower) / (2 * BLEND * head_unit), 0.0, 1.0)


def fixed_weights(vertices: np.ndarray, triangles: np.ndarray, labels: np.ndarray, small: np.ndarray,
                  eyeballs: dict[int, int], along_lids: set[int], names, remainder_bone: int, bite: Bite | None
                  ) -> FixedWeights:
    """The weights loose parts get (see the module's docstring): eyeballs to their eye; parts inside the mouth
    (centred within MOUTH_REACH of where the lips meet) to the jaw below the bite and the remainder bone above it,
    small ones whole, larger ones that touch both rows of teeth vertex by vertex with a blend; other small parts to
    the remainder bone. The skin (the largest part), the thin parts along the lids and other large parts keep their
    Gaussians."""
    bones = np.full((len(labels), 2), -1, dtype=np.int64)
    values = np.zeros((len(labels), 2))
    names = list(names)
    sizes = np.bincount(labels)
    skin = int(np.argmax(sizes))
    small = set(int(p) for p in small) - along_lids
    sums = np.stack([np.bincount(labels, weights=vertices[:, axis]) for axis in range(3)], axis=1)
    centres = {p: sums[p] / sizes[p] for p in range(len(sizes)) if p != skin}
    mouth = set()
    if bite is not None:
        mouth = {p for p, c in centres.items() if p not in eyeballs and p not in along_lids
                 and np.linalg.norm(c - bite.lips) < MOUTH_REACH * bite.head_unit}
        bite = settled_bite(bite, np.array([centres[p] for p in mouth & small]).reshape(-1, 3))
    teeth = {"lower": [], "upper": []}
    for part in sorted(small):
        members = np.flatnonzero(labels == part)
        values[members, 0] = 1.0
        if part in eyeballs:
            bones[members] = eyeballs[part]
        elif part in mouth and bite.height(centres[part]) < 0:
            bones[members] = names.index(JAW_BONE)
            teeth["lower"].append(members)
        else:
            bones[members] = remainder_bone
            if part in mouth:
                teeth["upper"].append(members)
    lower, upper = (np.concatenate(t) if t else np.zeros(0, dtype=np.int64) for t in teeth.values())
    for part in sorted(mouth - small):
        members = np.flatnonzero(labels == part)
        share = _jaw_share(vertices, triangles, members, lower, upper, bite.head_unit)
        if share is None:
            continue
        bones[members, 0], bones[members, 1] = names.index(JAW_BONE), remainder_bone
        values[members, 0], values[members, 1] = share, 1.0 - share
    return FixedWeights(bones, values)
