"""Which side of the mouth and of each eye every vertex lies on, measured along the surface.

The chart is continuous across the lips and the lids: where they touch, an upper-lip vertex and a lower-lip vertex
lie a fraction of an edge apart in it, so the Gaussians cannot tell them apart. Along the surface they are far
apart where the mesh is open (the path goes round the mouth corner or through the mouth), and close where it is
sewn shut. So each vertex gets, per opening, s = (d_lower - d_upper) / (d_lower + d_upper) from its surface
distances to the seeds of the two sides (the template's landmarks; both distances capped at OPENING_REACH):
+1 on the upper lip or lid, -1 on the lower, jumping across an open slit, changing smoothly across a sewn one
and round the corners, and fading to 0 away from the opening. Parts of the mesh that no seed reaches (a separate
mouth socket, gums, tongue) take the side of the nearest vertex that one reaches. The weights use it as a gate
(solver/model/weights.py).

A mouth with no slit in the mesh (sewn shut, a scan) is found by the surface distance between its two sides'
seeds: about the straight distance where the surface runs across, several times that where the way goes round the
corners or through the mouth. It gets a note: the gate then changes smoothly across it, so the lips follow the jaw
with a soft blend (SEWN_CHECKED says why the eyes are not checked this way).
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from ..core.geometry import edge_graph
from ..model.rigid_parts import mesh_parts
from ..model.weights import OpeningSides
from ..template.skeleton import Opening

OPENING_REACH = 1.0  # iod along the surface: a vertex this far from both sides of an opening is on neither
MIN_SEEDS = 2  # landmark seeds a side needs (the rest may be missing)
SEWN_RATIO = 1.6  # surface / straight distance between the two sides' seeds below which the opening has no hole
# Openings checked for a hole. Not the eyes: an eye socket behind open lids makes the way from lid to lid about as
# short as across a sculpted eye (1.1-2.0x the straight distance on the ICT, MakeHuman and Lee Perry-Smith heads,
# whose eyes are open), while the mouths measure 3.5-5.3x open and 1.1x sewn (the Fran scan).
SEWN_CHECKED = ("mouth",)


def sewn_note(name: str, ratio: float) -> str:
    return (f"the {name} has no slit: its lips are one surface (the way along it from one lip to the other is "
            f"{ratio:.1f}x the straight distance); the rig works, and the lips follow the jaw with a soft blend "
            "instead of parting")


def opening_sides(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray, valid: np.ndarray,
                  openings: tuple[Opening, ...], head_unit: float) -> tuple[OpeningSides | None, list[str]]:
    """Vertex sides (N, C) and bone sides (J, C) of the template's C openings, and notes for openings left out
    (too few landmarks). vertices (N, 3), triangles (T, 3), landmarks (L, 3) with valid (L,)."""
    if not openings:
        return None, []
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    graph = edge_graph(vertices, triangles)
    parts = mesh_parts(len(vertices), triangles)
    skin = np.flatnonzero(parts == np.bincount(parts).argmax())
    skin_tree = cKDTree(vertices[skin])
    reach = OPENING_REACH * head_unit
    sides = np.zeros((len(vertices), len(openings)))
    notes = []
    for column, opening in enumerate(openings):
        seeds = {}
        for side, groups in opening.seeds.items():
            points = [landmarks[list(g)].mean(0) for g in groups if valid[list(g)].all()]
            if len(points) >= MIN_SEEDS:
                seeds[side] = np.unique(skin[skin_tree.query(np.asarray(points))[1]])
        if len(seeds) == 2:  # a vertex both sides snap to (near a corner) belongs to neither
            shared = np.intersect1d(seeds["upper"], seeds["lower"])
            seeds = {side: np.setdiff1d(ids, shared) for side, ids in seeds.items()}
        if len(seeds) < 2 or min(len(ids) for ids in seeds.values()) < MIN_SEEDS:
            notes.append(f"too few landmarks were found around the {opening.name}: its two sides share weights")
            continue
        distance = {side: np.minimum(dijkstra(graph, directed=False, indices=ids, min_only=True, limit=reach), reach)
                    for side, ids in seeds.items()}
        across = np.median(distance["upper"][seeds["lower"]])
        straight = np.median(cKDTree(vertices[seeds["upper"]]).query(vertices[seeds["lower"]])[0])
        if opening.name in SEWN_CHECKED and across < SEWN_RATIO * straight:
            notes.append(sewn_note(opening.name, across / max(straight, 1e-12)))
        side = (distance["lower"] - distance["upper"]) / (distance["lower"] + distance["upper"])
        seeded_parts = np.isin(parts, parts[np.concatenate(list(seeds.values()))])
        if not seeded_parts.all():
            nearest = cKDTree(vertices[seeded_parts]).query(vertices[~seeded_parts])[1]
            side[~seeded_parts] = side[seeded_parts][nearest]
        sides[:, column] = side
    bone = np.stack([opening.bone_side for opening in openings], axis=1)
    return OpeningSides(vertex=sides, bone=bone), notes
