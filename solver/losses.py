"""Named losses and regularisers for fitting (ASM.md §8). Each is a pure function returning a scalar.

Distances are divided by the head unit (inter-ocular distance, iod) so that loss weights mean the same
on every mesh, whatever its units.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .weights import Mixture, cholesky_factor


@dataclass
class FitContext:
    """What the losses see at one step."""

    posed: torch.Tensor  # (N, 3) posed vertices
    rest: torch.Tensor  # (N, 3)
    head_unit: float
    targets: dict  # name -> tensor, see each loss
    mixture: Mixture
    rotvec: torch.Tensor  # (J, 3) masked local pose
    translation: torch.Tensor
    log_scale: torch.Tensor
    bind_offset: torch.Tensor
    initial_bind_offset: torch.Tensor


def vertex_loss(context: FitContext) -> torch.Tensor:
    """Mean squared distance to targets["vertices"] (N, 3), same topology; targets["vertex_weights"] (N,) optional."""
    squared = ((context.posed - context.targets["vertices"]) ** 2).sum(-1) / context.head_unit**2
    weights = context.targets.get("vertex_weights")
    return squared.mean() if weights is None else (squared * weights).sum() / weights.sum()


def landmark_loss(context: FitContext) -> torch.Tensor:
    """Mean squared distance of surface points (targets["landmark_vertices"] (L, 3) ids, "landmark_bary" (L, 3))
    to targets["landmarks"] (L, 3)."""
    ids, bary = context.targets["landmark_vertices"], context.targets["landmark_bary"]
    points = (bary.unsqueeze(-1) * context.posed[ids]).sum(-2)
    return (((points - context.targets["landmarks"]) ** 2).sum(-1) / context.head_unit**2).mean()


def pose_prior(context: FitContext) -> torch.Tensor:
    """Small local poses: rotation in radians, translation in iod, log-scale."""
    return (context.rotvec**2).sum(-1).mean() + ((context.translation / context.head_unit) ** 2).sum(-1).mean() \
        + (context.log_scale**2).sum(-1).mean()


def bind_offset_prior(context: FitContext) -> torch.Tensor:
    """Bind offsets stay near the template's (in iod)."""
    return (((context.bind_offset - context.initial_bind_offset) / context.head_unit) ** 2).sum(-1).mean()


def gaussian_size_bounds(context: FitContext, smallest: float = 0.004, largest: float = 0.3) -> torch.Tensor:
    """Gaussian standard deviations stay within [smallest, largest] canonical-UV units (squared hinge)."""
    spread = torch.linalg.svdvals(cholesky_factor(context.mixture.cholesky_raw))  # principal standard deviations
    return ((torch.relu(smallest - spread) / smallest) ** 2 + (torch.relu(spread - largest) / largest) ** 2).mean()


def deformation_smoothness(context: FitContext) -> torch.Tensor:
    """Uniform-Laplacian smoothness of the displacement field, targets["laplacian"] (sparse N x N), in iod."""
    displacement = (context.posed - context.rest) / context.head_unit
    return (torch.sparse.mm(context.targets["laplacian"], displacement) ** 2).sum(-1).mean()


LOSSES = {
    "vertex": vertex_loss,
    "landmarks": landmark_loss,
    "pose_prior": pose_prior,
    "bind_offset_prior": bind_offset_prior,
    "gaussian_size": gaussian_size_bounds,
    "smoothness": deformation_smoothness,
}


def uniform_laplacian(triangles: torch.Tensor, vertex_count: int, dtype=torch.float32) -> torch.Tensor:
    """Sparse (N, N) L = I - D^-1 A from triangle edges: (L x)_i = x_i - mean of its neighbours."""
    edges = torch.cat([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = torch.unique(torch.cat([edges, edges.flip(1)]), dim=0)
    degree = torch.zeros(vertex_count, dtype=dtype).index_add(0, edges[:, 0], torch.ones(len(edges), dtype=dtype))
    values = -1.0 / degree[edges[:, 0]]
    diagonal = torch.arange(vertex_count)
    indices = torch.cat([edges.T, torch.stack([diagonal, diagonal])], dim=1)
    values = torch.cat([values, (degree > 0).to(dtype)])
    return torch.sparse_coo_tensor(indices, values, (vertex_count, vertex_count), check_invariants=True).coalesce()
