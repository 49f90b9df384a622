"""The per-vertex ASM UV chart (ASM.md §6) built from a mesh's own per-corner UV map.

A UV map stores one UV per face corner; the chart needs one per vertex. Vertices on a seam keep the UV
of their largest island (the face, on a head), and the triangles whose corners disagree with the
per-vertex UVs (those across a seam) are left out of the chart.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

from ..core.arrays import checked_array
from ..core.errors import ASMInputError
from .rigid_parts import mesh_parts

SKIN_PART = 0.5  # connected parts at least this large next to the largest count as skin in a projected chart
FAR_AWAY = 1.0e6  # chart position of vertices that no chart triangle uses: no Gaussian reaches them


@dataclass(frozen=True)
class Chart:
    uv: np.ndarray  # (N, 2) per-vertex chart coordinates
    triangles: np.ndarray  # (C,) indices of mesh triangles that are valid in the chart
    island: np.ndarray  # (T,) island id of each mesh triangle (connected in UV), -1 outside the chart
    in_chart: np.ndarray  # (N,) bool: the vertex belongs to at least one chart triangle


def uv_islands(triangles: np.ndarray, corner_uv: np.ndarray) -> np.ndarray:
    """Island id per triangle: triangles sharing an edge with identical UVs on both ends are connected."""
    t_count = len(triangles)
    quantized = np.round(corner_uv.reshape(-1, 2) * 1e6).astype(np.int64)
    corner_vertex = np.asarray(triangles, dtype=np.int64).reshape(-1)
    # One id per distinct (vertex, u, v): the corners of a UV map's own vertices. Sorting three columns once here
    # lets the edges below be single numbers, sorted several times faster than rows.
    order = np.lexsort((quantized[:, 1], quantized[:, 0], corner_vertex))
    keys = np.column_stack([corner_vertex, quantized])[order]
    new_key = np.r_[True, (keys[1:] != keys[:-1]).any(1)]
    uv_vertex = np.empty(len(order), dtype=np.int64)
    uv_vertex[order] = np.cumsum(new_key) - 1
    uv_vertex = uv_vertex.reshape(t_count, 3)
    ends = uv_vertex, np.roll(uv_vertex, -1, axis=1)  # each triangle's edges (corner c to corner c + 1)
    edge = (np.minimum(*ends) * (int(uv_vertex.max()) + 1) + np.maximum(*ends)).T.reshape(-1)  # corner-major
    by_edge = np.argsort(edge, kind="stable")
    same = edge[by_edge][1:] == edge[by_edge][:-1]
    owner = np.tile(np.arange(t_count), 3)
    rows, cols = owner[by_edge][:-1][same], owner[by_edge][1:][same]
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(t_count, t_count))
    return connected_components(graph, directed=False)[1]


def chart_from_uv_map(vertex_count: int, triangles: np.ndarray, corner_uv: np.ndarray) -> Chart:
    """vertex_count N, triangles (T, 3), corner_uv (T, 3, 2) -> Chart."""
    triangles = np.asarray(triangles, dtype=np.int64)
    corner_uv = checked_array("UV map", corner_uv, (len(triangles), 3, 2))
    if len(triangles) == 0:
        raise ASMInputError("the mesh has no faces; a rig needs a surface")
    island = uv_islands(triangles, corner_uv)
    island_size = np.bincount(island)
    # Each vertex takes the UV of the corner in its largest island.
    corner_vertex = triangles.reshape(-1)
    corner_rank = np.repeat(island_size[island], 3)
    order = np.lexsort((-corner_rank, corner_vertex))  # by vertex, then biggest island first
    first = order[np.r_[True, corner_vertex[order][1:] != corner_vertex[order][:-1]]]
    uv = np.full((vertex_count, 2), FAR_AWAY)
    uv[corner_vertex[first]] = corner_uv.reshape(-1, 2)[first]
    agrees = np.abs(uv[triangles] - corner_uv).max(axis=(1, 2)) < 1e-7
    in_chart = np.zeros(vertex_count, dtype=bool)
    in_chart[triangles[agrees].reshape(-1)] = True
    uv[~in_chart] = FAR_AWAY
    return Chart(uv, np.flatnonzero(agrees), np.where(agrees, island, -1), in_chart)


LAYER_NEIGHBOURS = 16  # chart-nearest triangles tested for covering a triangle's centre
LAYER_CHUNK = 50000  # triangles tested at a time
LAYER_DEPTH = 0.3  # cm (canonical face): a covering triangle this much further out hides the one below
CAVITY_RADIUS = 1.0  # cm: the skin around a place in the chart (the 3 x 3 cells of this size around it) ...
CAVITY_DEPTH = 1.5  # cm: ... that lies this much further out than it marks the place as a cavity's floor


def outermost(corners: np.ndarray, distance: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """(T,) bool: candidate triangles whose chart centre no other candidate covers further from the axis.

    corners (T, 3, 2) chart positions, distance (T, 3) of the corners from the axis (canonical cm). A depth
    test in chart space, hand-written (no library does it): the LAYER_NEIGHBOURS triangles with the nearest
    chart centres are tested for containing the centre, and their distance there is interpolated."""
    keep = candidates.copy()
    index = np.flatnonzero(candidates)
    if len(index) < 2:
        return keep
    centre = corners[index].mean(1)
    depth = distance[index].mean(1)
    tree = cKDTree(centre)
    kept_corners, kept_distance = corners[index], distance[index]
    highest = kept_distance.max(1)  # a triangle's distance inside it is at most its highest corner's
    covered = np.zeros(len(index), dtype=bool)
    for start in range(0, len(index), LAYER_CHUNK):  # in chunks: the (chunk, K) arrays stay small
        rows = np.arange(start, min(start + LAYER_CHUNK, len(index)))
        _, near = tree.query(centre[rows], k=min(LAYER_NEIGHBOURS, len(index)), workers=-1)
        # Only a neighbour reaching LAYER_DEPTH above the centre can cover it: on most of a head none does,
        # so the containment test runs on those few pairs alone.
        row, column = np.nonzero(highest[near] > depth[rows, None] + LAYER_DEPTH)
        row, other = rows[row], near[row, column]
        a, b, c = kept_corners[other, 0], kept_corners[other, 1], kept_corners[other, 2]
        e0, e1, ep = b - a, c - a, centre[row] - a
        det = e0[:, 0] * e1[:, 1] - e0[:, 1] * e1[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            beta = (ep[:, 0] * e1[:, 1] - ep[:, 1] * e1[:, 0]) / det
            gamma = (e0[:, 0] * ep[:, 1] - e0[:, 1] * ep[:, 0]) / det
        alpha = 1 - beta - gamma
        inside = (alpha >= 0) & (beta >= 0) & (gamma >= 0) & np.isfinite(det) & (det != 0)
        there = (np.stack([alpha, beta, gamma], -1) * kept_distance[other]).sum(-1)
        covered[row[inside & (there > depth[row] + LAYER_DEPTH)]] = True
    # Seen through an opening (the back of an eye socket between the lids, the mouth's inside between the
    # lips) nothing covers a cavity's floor, but it lies far below the skin around it.
    envelope = _neighbourhood_max(centre, depth, CAVITY_RADIUS)
    keep[index[covered | (depth < envelope - CAVITY_DEPTH)]] = False
    return keep


def _neighbourhood_max(points: np.ndarray, values: np.ndarray, cell: float) -> np.ndarray:
    """(P,) the largest value among the points in the 3 x 3 grid cells (of size `cell`) around each point:
    linear in the number of points (a ball query per point is quadratic where a mesh is dense)."""
    index = np.floor((points - points.min(0)) / cell).astype(np.int64)
    grid = np.full(index.max(0) + 1, -np.inf)
    np.maximum.at(grid, (index[:, 0], index[:, 1]), values)
    grid = maximum_filter(grid, size=3, mode="constant", cval=-np.inf)
    return grid[index[:, 0], index[:, 1]]


def cylindrical_chart(vertices: np.ndarray, triangles: np.ndarray, to_canonical, axis_depth: float = -2.0) -> Chart:
    """A chart for any topology: the angle around the head's vertical axis and the height (ASM.md §6).

    `to_canonical` maps mesh points into the canonical face frame (+Y up, +Z forward, centimetres);
    the axis is vertical through x = 0, z = axis_depth there (about the middle of an adult head), so the
    chart is continuous over the face and the ears, with its seam at the back of the head. Triangles
    across the seam or around the poles are left out, and so are those of parts much smaller than the largest
    (eyeballs, teeth) and inner layers of the skin (eye sockets, inside the lips): their vertices keep chart
    positions, so Gaussians weigh them, but bones bind only to the outer skin. The result is in centimetres of arc at the face's radius.
    """
    triangles = np.asarray(triangles, dtype=np.int64)
    if len(triangles) == 0:
        raise ASMInputError("the mesh has no faces; a rig needs a surface")
    local = to_canonical(np.asarray(vertices, dtype=np.float64))
    depth = local[:, 2] - axis_depth
    angle = np.arctan2(local[:, 0], depth)
    radius = 8.0  # cm: only sets the chart's scale; transfer normalises it anyway
    uv = np.column_stack([angle * radius, local[:, 1]])
    # Triangles across the seam span almost 2 pi; those around the poles (crown, under the neck) also
    # span a wide angle and would cover large false areas of the chart: both are left out.
    across_seam = np.ptp(angle[triangles], axis=1) > np.pi / 3
    in_chart = np.zeros(len(vertices), dtype=bool)
    in_chart[triangles[~across_seam].reshape(-1)] = True
    uv[~in_chart] = FAR_AWAY
    # Parts inside the head (eyeballs, teeth, mouth socket) project onto the face too: they keep chart
    # positions (so Gaussians weigh them) but no bone may bind to them, only to the skin.
    part = mesh_parts(len(vertices), triangles)
    sizes = np.bincount(part)
    skin = sizes[part[triangles[:, 0]]] >= SKIN_PART * sizes.max()
    # Where the skin folds in (eye sockets, inside the lips, nostrils) several layers share chart positions:
    # only the outermost one may hold a binding point.
    distance = np.hypot(local[:, 0], depth)
    outer = outermost(uv[triangles], distance[triangles], ~across_seam & skin)
    island = np.where(across_seam | ~skin | ~outer, -1, 0)
    return Chart(uv, np.flatnonzero(island == 0), island, in_chart)
