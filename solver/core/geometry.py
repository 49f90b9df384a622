"""Geometric helpers: similarity alignment, closest points on a triangle mesh, and the mesh's normals, areas and
barycentric points (written once, for numpy arrays and torch tensors alike)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import coo_matrix
from scipy.spatial import cKDTree

from .errors import ASMInputError


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation (rotation may be a reflection when allowed)."""

    scale: float
    rotation: np.ndarray  # (D, D)
    translation: np.ndarray  # (D,)

    def apply(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def invert(self, points: np.ndarray) -> np.ndarray:
        """The inverse map, target -> source: (..., D) -> (..., D)."""
        return (points - self.translation) @ self.rotation / self.scale


def similarity_transform(source: np.ndarray, target: np.ndarray, allow_reflection: bool = False) -> Similarity:
    """Least-squares similarity mapping source (M, D) onto target (M, D) (Umeyama 1991).

    Hand-written: scipy's Rotation.align_vectors gives the rotation only, without scale or reflection.
    """
    if len(source) < source.shape[1] + 1:
        raise ASMInputError(f"need at least {source.shape[1] + 1} corresponding points to align, got {len(source)}")
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(t.T @ s / len(source))
    correction = np.ones(len(singular))
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        correction[-1] = -1.0
    rotation = u @ np.diag(correction) @ vt
    variance = (s**2).sum() / len(source)
    if variance <= 0:
        raise ASMInputError("cannot align: all source points coincide")
    scale = float((singular * correction).sum() / variance)
    return Similarity(scale, rotation, mean_t - scale * rotation @ mean_s)


def closest_point_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closest point on triangles (a, b, c) to points, all (..., 3). Returns (closest (..., 3), barycentric (..., 3)).

    Ericson, Real-Time Collision Detection §5.1.5, vectorised. Hand-written: neither numpy nor scipy
    has a point-triangle distance.
    """
    ab, ac, ap = b - a, c - a, points - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = points - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = points - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        bary = np.stack([1 - v_in - w_in, v_in, w_in], -1)
        regions = [
            ((d1 <= 0) & (d2 <= 0), np.stack([np.ones_like(d1), 0 * d1, 0 * d1], -1)),
            ((d3 >= 0) & (d4 <= d3), np.stack([0 * d1, np.ones_like(d1), 0 * d1], -1)),
            ((d6 >= 0) & (d5 <= d6), np.stack([0 * d1, 0 * d1, np.ones_like(d1)], -1)),
        ]
        t_ab = d1 / (d1 - d3)
        regions.append(((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, 0 * d1], -1)))
        t_ac = d2 / (d2 - d6)
        regions.append(((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, 0 * d1, t_ac], -1)))
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        regions.append(((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([0 * d1, 1 - t_bc, t_bc], -1)))
    # Apply in reverse so the first matching Voronoi region (Ericson's order) wins.
    for mask, value in reversed(regions):
        bary = np.where(mask[..., None], value, bary)
    bary = np.nan_to_num(bary, nan=1.0 / 3.0)
    closest = bary[..., :1] * a + bary[..., 1:2] * b + bary[..., 2:] * c
    return closest, bary


def edge_graph(vertices: np.ndarray, triangles: np.ndarray):
    """(N, N) sparse graph of the mesh's edges weighted by their lengths (each edge once)."""
    ends = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    count = len(vertices)
    unique = np.unique(ends[:, 0] * count + ends[:, 1])
    first, second = unique // count, unique % count
    length = np.linalg.norm(vertices[first] - vertices[second], axis=1)
    return coo_matrix((np.maximum(length, 1e-12), (first, second)), shape=(count, count)).tocsr()


def triangle_centre_tree(vertices: np.ndarray, triangles: np.ndarray) -> cKDTree:
    """A KD-tree over the centroids of triangles (T, 3) of vertices (N, 3), for `closest_points_on_mesh`."""
    return cKDTree(vertices[triangles].mean(1))


def closest_points_on_mesh(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray,
                           candidates: int = 24, centre_tree: cKDTree | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each point (P, 3): closest surface point (P, 3), triangle (P,), barycentric (P, 3), distance (P,).

    Candidate triangles are the `candidates` nearest by centroid, enough for meshes without slivers much
    longer than their neighbours; exactness on such meshes is not needed by the callers (landmark lifting).
    `centre_tree`: `triangle_centre_tree(vertices, triangles)`, for callers that ask several times.
    """
    if len(triangles) == 0:
        raise ASMInputError("the mesh has no faces")
    corners = vertices[triangles]
    k = min(candidates, len(triangles))
    tree = centre_tree if centre_tree is not None else triangle_centre_tree(vertices, triangles)
    _, nearest = tree.query(points, k=k)
    nearest = nearest.reshape(len(points), k)
    cand = corners[nearest]  # (P, k, 3, 3)
    closest, bary = closest_point_on_triangles(points[:, None, :], cand[..., 0, :], cand[..., 1, :], cand[..., 2, :])
    distance = np.linalg.norm(closest - points[:, None, :], axis=-1)
    best = distance.argmin(1)
    rows = np.arange(len(points))
    return closest[rows, best], nearest[rows, best], bary[rows, best], distance[rows, best]


def spread_subset(points: np.ndarray, count: int) -> np.ndarray:
    """About `count` indices of `points` (N, 3) spread evenly in space: one point per cell of a voxel grid
    sized to hold `count` occupied cells (the cell size found by bisection). Deterministic."""
    if count >= len(points):
        return np.arange(len(points))
    low, high = points.min(0), points.max(0)
    extent = float(np.max(high - low))
    small, large = extent / 1e4, extent
    chosen = np.arange(len(points))
    for _ in range(40):
        size = np.sqrt(small * large)
        cells = np.floor((points - low) / size).astype(np.int64)
        _, first = np.unique(cells, axis=0, return_index=True)
        if len(first) > count:
            small = size
        else:
            large, chosen = size, np.sort(first)
        if large / small < 1.01:
            break
    return chosen


def _cross(first, second):
    return torch.cross(first, second, dim=-1) if torch.is_tensor(first) else np.cross(first, second)


def _unit(vectors):
    """Rows scaled to length 1 (zero rows stay zero)."""
    if torch.is_tensor(vectors):
        return F.normalize(vectors, dim=-1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-30)


def face_normals(vertices, triangles, unit: bool = True):
    """(..., N, 3) vertices, (T, 3) triangles -> (..., T, 3) face normals: of length 1 with `unit`, else of twice
    the triangle's area. numpy arrays or torch tensors (dtype and device kept)."""
    corners = vertices[..., triangles, :]
    normals = _cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
    return _unit(normals) if unit else normals


def vertex_normals(vertices, triangles):
    """(..., N, 3) -> (..., N, 3) unit area-weighted vertex normals (zero for vertices on no triangle); numpy arrays
    or torch tensors."""
    face = face_normals(vertices, triangles, unit=False)
    if torch.is_tensor(vertices):
        normals = torch.zeros_like(vertices)
        for corner in range(3):
            normals = normals.index_add(-2, triangles[:, corner], face)
    else:
        normals = np.zeros_like(vertices)
        for corner in range(3):
            np.add.at(normals, (Ellipsis, triangles[:, corner], slice(None)), face)
    return _unit(normals)


def triangle_areas(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) areas of triangles (T, 3) of vertices (N, 3)."""
    return 0.5 * np.linalg.norm(face_normals(vertices, triangles, unit=False), axis=-1)


def barycentric_points(vertices: torch.Tensor, ids: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) vertices -> (..., S, 3) points at barycentrics `bary` (S, 3) of the triangles `ids` (S, 3)."""
    return (bary.to(vertices.dtype).unsqueeze(-1) * vertices[..., ids, :]).sum(-2)
