"""Dynamic binding (ASM.md §3): bone binding points live in the ASM UV chart and map onto the rest surface
through the barycentric coordinates of their *containing* triangle."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..core.arrays import checked_array
from ..core.errors import ASMInputError

INSIDE_TOLERANCE = 1e-9
CLAMP_INSET = 1e-3  # a clamped point's share of the way from the border to its triangle's centre


@dataclass(frozen=True)
class Location:
    triangle: np.ndarray  # (P,) int64 index into the chart's triangles
    barycentric: np.ndarray  # (P, 3) weights of the triangle's corners (a, b, c)
    point: np.ndarray  # (P, 2) the located point (equals the query unless it was clamped)
    clamped: np.ndarray  # (P,) bool: the query lay outside the chart and was moved to its nearest point
    off_chart: np.ndarray  # (P,) bool: clamped from further than round-off on the chart's own border (warned)


BORDER_TOLERANCE = 1e-6  # UV units: a point this close outside the chart is on its border, not off it

def barycentric_2d(points: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Exact barycentric coordinates.  points (..., 2), corners (..., 3, 2) -> (..., 3) for corners (a, b, c).

    Solves p = a + beta (b - a) + gamma (c - a); alpha = 1 - beta - gamma. Differentiable in both.
    """
    a, b, c = corners.unbind(-2)
    e0, e1, ep = b - a, c - a, points - a
    det = e0[..., 0] * e1[..., 1] - e0[..., 1] * e1[..., 0]
    beta = (ep[..., 0] * e1[..., 1] - ep[..., 1] * e1[..., 0]) / det
    gamma = (e0[..., 0] * ep[..., 1] - e0[..., 1] * ep[..., 0]) / det
    return torch.stack([1 - beta - gamma, beta, gamma], dim=-1)


def _closest_point_on_triangles(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Closest point of each 2D triangle to each point.  points (P, K, 2), corners (P, K, 3, 2) -> (P, K, 2).

    Hand-written (no 2D point-triangle distance in numpy/scipy): inside -> the point itself, otherwise
    the closest point on the nearest edge.
    """
    bary = barycentric_2d(torch.from_numpy(points), torch.from_numpy(corners)).numpy()
    inside = (bary >= 0).all(-1)
    best = np.where(inside[..., None], points, np.nan)
    best_distance = np.where(inside, 0.0, np.inf)
    for i, k in ((0, 1), (1, 2), (2, 0)):
        start, end = corners[..., i, :], corners[..., k, :]
        edge = end - start
        t = np.clip(((points - start) * edge).sum(-1) / np.maximum((edge * edge).sum(-1), 1e-300), 0, 1)
        candidate = start + t[..., None] * edge
        distance = np.linalg.norm(candidate - points, axis=-1)
        better = distance < best_distance
        best = np.where(better[..., None], candidate, best)
        best_distance = np.where(better, distance, best_distance)
    return best


def locate(points: np.ndarray, uv: np.ndarray, triangles: np.ndarray, what: str = "UV point",
           names: list[str] | None = None, clamp: bool = False, candidates: int = 32) -> Location:
    """Find the chart triangle containing each UV point and its exact barycentric coordinates.

    points (P, 2); uv (N, 2) per-vertex chart; triangles (T, 3) chart triangles. A point outside the
    chart raises ASMInputError naming it, or with clamp=True moves to the chart's nearest point and warns.
    """
    points = checked_array(what, points, (None, 2))
    uv = checked_array("chart UVs", uv, (None, 2))
    triangles = np.asarray(triangles, dtype=np.int64)
    if len(triangles) == 0:
        raise ASMInputError("the chart has no triangles (a mesh with no faces cannot carry a rig)")
    corners = uv[triangles]  # (T, 3, 2)
    tree = cKDTree(corners.mean(axis=1))
    k = min(candidates, len(triangles))
    _, nearest = tree.query(points, k=k)
    nearest = nearest.reshape(len(points), k)

    triangle = np.empty(len(points), dtype=np.int64)
    located = points.copy()
    clamped = np.zeros(len(points), dtype=bool)
    off_chart = np.zeros(len(points), dtype=bool)
    boxes = None
    for p in range(len(points)):
        found = _containing(points[p], corners, nearest[p])
        if found is None and k < len(triangles):  # large triangles far away: any whose box holds the point
            if boxes is None:
                boxes = _boxes(corners)
            found = _containing(points[p], corners, _boxes_holding(boxes, points[p]))
        if found is not None:
            triangle[p] = found
            continue
        label = names[p] if names else f"{what} {p}"
        if not clamp:
            raise ASMInputError(f"{label} at UV {tuple(np.round(points[p], 4))} lies outside the chart; "
                                "move it onto the mesh's face region")
        closest = _closest_point_on_triangles(
            np.broadcast_to(points[p], (k, 2)).copy()[None], corners[nearest[p]][None])[0]
        best = int(np.argmin(np.linalg.norm(closest - points[p], axis=-1)))
        # a hair inside the triangle, not on its edge: a point on the edge stored in float32 can read as outside
        inset = closest[best] + CLAMP_INSET * (corners[nearest[p, best]].mean(0) - closest[best])
        triangle[p], located[p], clamped[p] = nearest[p, best], inset, True
        moved = float(np.linalg.norm(closest[best] - points[p]))
        if moved > BORDER_TOLERANCE:  # further than round-off on the chart's own border: say so
            off_chart[p] = True
            warnings.warn(f"{label} at UV {tuple(np.round(points[p], 4))} lay outside the chart and was clamped "
                          f"to {tuple(np.round(closest[best], 4))} ({moved:.2g} UV units away)", stacklevel=2)
    bary = barycentric_2d(torch.from_numpy(located), torch.from_numpy(corners[triangle])).numpy()
    bary = np.clip(bary, 0.0, None)
    return Location(triangle, bary / bary.sum(-1, keepdims=True), located, clamped, off_chart)


def _boxes(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes (T, 2) low and high of triangles (T, 3, 2), grown so that every point `_containing` accepts
    (barycentric coordinates down to -INSIDE_TOLERANCE, at most two of them negative) lies in its triangle's box."""
    low, high = corners.min(1), corners.max(1)
    margin = 3 * INSIDE_TOLERANCE * (high - low).max(1, keepdims=True)
    return low - margin, high + margin


def _boxes_holding(boxes: tuple[np.ndarray, np.ndarray], point: np.ndarray) -> np.ndarray:
    low, high = boxes
    return np.flatnonzero(((low <= point) & (point <= high)).all(1))


def _containing(point: np.ndarray, corners: np.ndarray, candidates: np.ndarray) -> int | None:
    bary = barycentric_2d(torch.from_numpy(point).expand(len(candidates), 2),
                          torch.from_numpy(corners[candidates])).numpy()
    worst = bary.min(axis=-1)
    valid = np.isfinite(worst) & (worst >= -INSIDE_TOLERANCE)
    if not valid.any():
        return None
    return int(candidates[np.flatnonzero(valid)[np.argmax(worst[valid])]])


def needs_relocation(zeta: np.ndarray, triangle: np.ndarray, uv: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(J,) bool: which binding points have left their triangle (so `locate` must run again)."""
    bary = barycentric_2d(torch.from_numpy(np.asarray(zeta, float)),
                          torch.from_numpy(uv[triangles[triangle]])).numpy()
    return bary.min(axis=-1) < -INSIDE_TOLERANCE


def surface_points(zeta: torch.Tensor, triangle: torch.Tensor, uv: torch.Tensor, triangles: torch.Tensor,
                   vertices: torch.Tensor) -> torch.Tensor:
    """s_j = sum_c b_c(zeta_j) V[F[t_j, c]]: binding points on the rest surface.

    zeta (J, 2), triangle (J,) long, uv (N, 2), triangles (T, 3) long, vertices (..., N, 3) -> (..., J, 3).
    Differentiable in zeta, uv and vertices.
    """
    corner_ids = triangles[triangle]  # (J, 3)
    bary = barycentric_2d(zeta, uv[corner_ids])  # (J, 3)
    return (bary.unsqueeze(-1) * vertices[..., corner_ids, :]).sum(-2)
