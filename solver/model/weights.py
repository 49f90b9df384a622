"""Gaussian-mixture skinning weights in the ASM UV chart (ASM.md §5): a dense reference and a fast sparse path.

Influence of bone j on vertex i:  a_ij = sum_k softmax(logits_j)_k N(u_i; zeta_j + mu_jk, L_jk L_jk^T).
Weights: w_ij = a_ij / (eps + sum_j a_ij), the remainder eps / (...) going to the remainder (head) bone;
then the top-k per vertex are kept and renormalised, inside the forward pass.

Openings (mouth, eyes): a_ij is multiplied by a gate g_ij = exp(-sharpness * sum_c relu(-s_ic * b_jc)), where s_ic in
[-1, 1] says on which side of opening c vertex i lies (solver/rig/openings.py) and b_jc in {-1, 0, 1} on which side
bone j belongs (the template's openings). The lips and lids touch in the chart, but a bone of one lip never reaches
the other; bones of neither side (b = 0) are not gated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.config import WeightConfig


def cholesky_factor(raw: torch.Tensor) -> torch.Tensor:
    """(..., 3) unconstrained -> (..., 2, 2) lower-triangular factor with softplus-positive diagonal."""
    l00 = torch.nn.functional.softplus(raw[..., 0])
    l11 = torch.nn.functional.softplus(raw[..., 2])
    zero = torch.zeros_like(l00)
    return torch.stack([l00, zero, raw[..., 1], l11], dim=-1).reshape(*raw.shape[:-1], 2, 2)


def raw_from_covariance(covariance: torch.Tensor) -> torch.Tensor:
    """Inverse of cholesky_factor: (..., 2, 2) SPD covariances -> (..., 3) raw parameters."""
    factor = torch.linalg.cholesky(covariance)
    inverse_softplus = lambda y: y + torch.log(-torch.expm1(-y))  # noqa: E731  (log(exp(y) - 1), stable)
    return torch.stack([inverse_softplus(factor[..., 0, 0]), factor[..., 1, 0], inverse_softplus(factor[..., 1, 1])], -1)


def gaussian_density(points: torch.Tensor, centers: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """N(points; centers, L L^T) for broadcastable (..., 2), (..., 2), (..., 2, 2) -> (...)."""
    diff = points - centers
    y0 = diff[..., 0] / factor[..., 0, 0]
    y1 = (diff[..., 1] - factor[..., 1, 0] * y0) / factor[..., 1, 1]
    norm = 2 * math.pi * factor[..., 0, 0] * factor[..., 1, 1]
    return torch.exp(-0.5 * (y0 * y0 + y1 * y1)) / norm


@dataclass
class Mixture:
    """Per-bone Gaussian mixtures. J bones, K Gaussians each."""

    logits: torch.Tensor  # (J, K)
    offsets: torch.Tensor  # (J, K, 2) means relative to the bone's binding point zeta_j
    cholesky_raw: torch.Tensor  # (J, K, 3)

    def centers(self, zeta: torch.Tensor) -> torch.Tensor:
        """(J, 2) binding points -> (J, K, 2) Gaussian means."""
        return zeta.unsqueeze(-2) + self.offsets

    def component_weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)


@dataclass(frozen=True)
class OpeningSides:
    """Sides of the face's openings: vertex (N, C) in [-1, 1] and bone (J, C) in {-1, 0, 1}, C openings."""

    vertex: np.ndarray
    bone: np.ndarray

    def subset(self, vertex_ids: np.ndarray) -> "OpeningSides":
        return OpeningSides(self.vertex[vertex_ids], self.bone)


def opening_gate(vertex_side: np.ndarray, bone_side: np.ndarray, sharpness: float) -> np.ndarray:
    """(..., C) vertex sides, (..., C) bone sides (broadcastable) -> (...) gate in (0, 1]."""
    conflict = np.maximum(-vertex_side * bone_side, 0.0).sum(-1)
    return np.exp(-sharpness * conflict)


def dense_influence(uv: torch.Tensor, zeta: torch.Tensor, mixture: Mixture, has_gaussians: torch.Tensor,
                    gate: torch.Tensor | None = None) -> torch.Tensor:
    """Reference: every Gaussian on every vertex.  uv (N, 2), optional gate (N, J) -> (N, J)."""
    density = gaussian_density(uv[:, None, None, :], mixture.centers(zeta)[None],
                               cholesky_factor(mixture.cholesky_raw)[None])  # (N, J, K)
    influence = (density * mixture.component_weights()[None]).sum(-1)
    if gate is not None:
        influence = influence * gate.to(influence)
    return influence * has_gaussians.to(influence.dtype)


def normalize_with_remainder(influence: torch.Tensor, remainder_bone: int, remainder_density: float) -> torch.Tensor:
    """(N, J) raw influences -> (N, J) weights summing to 1; the remainder goes to `remainder_bone`."""
    denominator = remainder_density + influence.sum(-1, keepdim=True)
    weights = influence / denominator
    remainder = torch.zeros_like(weights)
    remainder[:, remainder_bone] = 1.0
    return weights + remainder * (remainder_density / denominator)


def cap_top_k(weights: torch.Tensor, k: int) -> torch.Tensor:
    """Keep each row's k largest weights and renormalise.  (N, J) -> (N, J)."""
    values, bones = torch.topk(weights, k, dim=-1)
    values = values / values.sum(-1, keepdim=True)
    return torch.zeros_like(weights).scatter(-1, bones, values)


def dense_weights(uv: torch.Tensor, zeta: torch.Tensor, mixture: Mixture, has_gaussians: torch.Tensor,
                  remainder_bone: int, config: WeightConfig, sides: OpeningSides | None = None) -> torch.Tensor:
    """The plain dense reference of the capped weights, (N, J)."""
    gate = None
    if sides is not None:
        gate = torch.as_tensor(opening_gate(sides.vertex[:, None, :], sides.bone[None], config.opening_sharpness))
    influence = dense_influence(uv, zeta, mixture, has_gaussians, gate)
    return cap_top_k(normalize_with_remainder(influence, remainder_bone, config.remainder_density), config.influence_cap)


@dataclass
class CappedWeights:
    """Top-k weights per vertex: bones (N, k) long, values (N, k) summing to 1 per row."""

    bones: torch.Tensor
    values: torch.Tensor

    def to_dense(self, bone_count: int) -> torch.Tensor:
        """(N, J) with zeros outside the kept bones (scatter_add: a bone never appears twice in a row)."""
        dense = torch.zeros(self.values.shape[0], bone_count, dtype=self.values.dtype, device=self.values.device)
        return dense.scatter_add(-1, self.bones, self.values)


DENSE_KEYS_LIMIT = 50_000_000  # key ranges up to this are deduplicated in a table (50 MB + 200 MB), not sorted


def _unique_keys(keys: np.ndarray, key_range: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(keys, return_inverse=True) for integer keys in [0, key_range): the sorted distinct keys (E,) and
    each key's index among them (P,). Marks the keys in a table and counts them off, several times faster than the
    sort np.unique does, where the range is small enough for a table."""
    if key_range > DENSE_KEYS_LIMIT:
        return np.unique(keys, return_inverse=True)
    present = np.zeros(key_range, dtype=bool)
    present[keys] = True
    rank = np.cumsum(present, dtype=np.int32 if key_range < 2**31 else np.int64) - 1
    return np.flatnonzero(present), rank[keys].astype(np.int64)


class SparseWeights:
    """The fast path: each bone's Gaussians are evaluated only on the vertices inside their support.

    Support of Gaussian g: Mahalanobis radius r_g with  pi_g * peak_g * exp(-r_g^2 / 2) = tol * eps,
    so every dropped term is below tol * eps_root, i.e. changes no weight by more than about `tol`.
    The vertex lists come from a KD-tree over the chart, padded (`support_slack`, doubled while fitting
    moves Gaussians quickly) and cached; they are rebuilt only when a Gaussian moved or grew past its
    padding, which keeps the bound exact.

    Layout: Gaussians are grouped into buckets of similar support size; a bucket is a dense block
    (Gaussians, vertices) evaluated by broadcasting its few parameters, so no per-pair gathers of
    parameters (and no scatter-adds of their gradients) are needed. The influences add up in a
    per-vertex padded table (slot 0 = the remainder) through one scatter_add, and torch.topk picks the
    k largest.
    """

    BUCKET_GROWTH = 1.6  # support sizes within a bucket differ by at most this factor

    def __init__(self, uv: np.ndarray, bone_count: int, remainder_bone: int, has_gaussians: np.ndarray,
                 config: WeightConfig, sides: OpeningSides | None = None):
        self.uv_numpy = np.asarray(uv, dtype=np.float64)
        self.sides = sides
        self._by_u = None  # the chart sorted by u, made at the first support rebuild
        self.bone_count = bone_count
        self.remainder_bone = remainder_bone
        self.has_gaussians = np.asarray(has_gaussians, dtype=bool)
        if self.has_gaussians[remainder_bone]:
            raise ValueError("the remainder bone must not carry Gaussians of its own")
        self.config = config
        self.rebuilds = 0
        self._support = None
        # The padding adapts: supports rebuilt again within a few calls (Gaussians moving fast while
        # fitting) get twice the padding, supports that lasted long shrink back to the configured one.
        self.slack = config.support_slack
        self._calls_since_rebuild = 0

    def _radii(self, factor: np.ndarray, mix: np.ndarray) -> np.ndarray:
        """Euclidean support radius per Gaussian (G,)."""
        peak = 1.0 / (2 * np.pi * factor[:, 0, 0] * factor[:, 1, 1])
        ratio = mix * peak / (self.config.cull_tolerance * self.config.remainder_density)
        mahalanobis = np.sqrt(2 * np.log(np.maximum(ratio, 1.0)))
        largest_std = np.linalg.svd(factor, compute_uv=False)[:, 0]
        return mahalanobis * largest_std

    def _snapshot(self, zeta: torch.Tensor, mixture: Mixture):
        with torch.no_grad():
            centers = mixture.centers(zeta).reshape(-1, 2).double().cpu().numpy()
            factor = cholesky_factor(mixture.cholesky_raw).reshape(-1, 2, 2).double().cpu().numpy()
            mix = mixture.component_weights().reshape(-1).double().cpu().numpy()
        radius = self._radii(factor, mix)
        gaussians_per_bone = mixture.logits.shape[-1]
        radius[~np.repeat(self.has_gaussians, gaussians_per_bone)] = -1.0  # never evaluated
        return centers, radius

    def support_is_valid(self, zeta: torch.Tensor, mixture: Mixture) -> bool:
        if self._support is None:
            return False
        centers, radius = self._snapshot(zeta, mixture)
        old_centers, old_radius = self._support["centers"], self._support["padded_radius"]
        if centers.shape != old_centers.shape:
            return False
        moved = np.linalg.norm(centers - old_centers, axis=-1)
        return bool(np.all((radius < 0) | (moved + radius <= old_radius)))

    def rebuild_support(self, zeta: torch.Tensor, mixture: Mixture) -> None:
        centers, radius = self._snapshot(zeta, mixture)
        k = mixture.logits.shape[-1]
        if self._support is not None:
            if self._calls_since_rebuild < 8:
                self.slack = min(2.0 * self.slack, 0.5)
            elif self._calls_since_rebuild > 64:
                self.slack = max(0.5 * self.slack, self.config.support_slack)
        self._calls_since_rebuild = 0
        padded = np.where(radius > 0, radius * (1 + self.slack), -1.0)
        vertex_count = len(self.uv_numpy)
        supports = self._vertices_within(centers, padded)
        # Each (vertex, bone) entry gets a slot in its vertex's row of the padded table; slot 0 = remainder.
        pair_vertex = np.concatenate(list(supports.values())) if supports else np.zeros(0, np.int64)
        pair_bone = np.repeat(np.array(list(supports), dtype=np.int64) // k, [len(v) for v in supports.values()])
        entry_key, pair_entry = _unique_keys(pair_vertex * self.bone_count + pair_bone, vertex_count * self.bone_count)
        entry_vertex, entry_bone = entry_key // self.bone_count, entry_key % self.bone_count
        slot = np.arange(len(entry_key)) - np.searchsorted(entry_vertex, entry_vertex, side="left") + 1
        width = max(int(slot.max()) + 1 if len(slot) else 1, self.config.influence_cap)
        slot_bone = np.full((vertex_count, width), self.remainder_bone, dtype=np.int64)
        slot_bone[entry_vertex, slot] = entry_bone
        pair_target = (entry_vertex * width + slot)[pair_entry.reshape(-1)]
        trash = vertex_count * width  # padding cells land in one extra cell, dropped afterwards
        # Buckets of Gaussians with similar support sizes, each one dense (Gaussians x vertices) block.
        offsets = dict(zip(supports, np.cumsum([0] + [len(v) for v in supports.values()])[:-1]))
        by_size = sorted(supports, key=lambda g: len(supports[g]))
        buckets, current = [], []
        for g in by_size:
            if current and len(supports[g]) > self.BUCKET_GROWTH * len(supports[current[0]]):
                buckets.append(current)
                current = []
            current.append(g)
        if current:
            buckets.append(current)
        blocks, targets, cells = [], [], 0
        for bucket in buckets:
            width_b = max(len(supports[g]) for g in bucket)
            vertex_block = np.zeros((len(bucket), width_b), dtype=np.int64)
            target_block = np.full((len(bucket), width_b), trash, dtype=np.int64)
            for row, g in enumerate(bucket):
                n = len(supports[g])
                vertex_block[row, :n] = supports[g]
                target_block[row, :n] = pair_target[offsets[g]:offsets[g] + n]
            block = {"gaussians": torch.from_numpy(np.array(bucket, dtype=np.int64)),
                     "u": torch.from_numpy(self.uv_numpy[vertex_block, 0]),
                     "v": torch.from_numpy(self.uv_numpy[vertex_block, 1])}
            if self.sides is not None:  # constant per (Gaussian, vertex): made once per support
                bone = np.array(bucket, dtype=np.int64) // k
                block["gate"] = torch.from_numpy(opening_gate(self.sides.vertex[vertex_block],
                                                              self.sides.bone[bone][:, None, :],
                                                              self.config.opening_sharpness))
            blocks.append(block)
            targets.append(target_block.reshape(-1))
            cells += target_block.size
        self._support = {"centers": centers, "padded_radius": padded, "blocks": blocks, "width": width,
                         "target": torch.from_numpy(np.concatenate(targets) if targets else np.zeros(0, np.int64)),
                         "slot_bone": torch.from_numpy(slot_bone), "evaluated": cells,
                         "cache": {}}
        self.rebuilds += 1

    def _vertices_within(self, centers: np.ndarray, radius: np.ndarray) -> dict[int, np.ndarray]:
        """{Gaussian: its chart vertices within `radius` of its centre, ascending} for the Gaussians with radius > 0
        and any vertex. centers (G, 2), radius (G,). Each Gaussian's vertices come from the band of the chart sorted
        by u that its disc spans: a few hundred numpy calls, where a KD-tree's ball query returns millions of
        Python integers."""
        if self._by_u is None:
            order = np.argsort(self.uv_numpy[:, 0], kind="stable")
            self._by_u = order, self.uv_numpy[order, 0], self.uv_numpy[order, 1]
        order, u_sorted, v_sorted = self._by_u
        first = np.searchsorted(u_sorted, centers[:, 0] - radius, side="left")
        last = np.searchsorted(u_sorted, centers[:, 0] + radius, side="right")
        # Ascending vertex order (the order in which a fit's gradients add up) through a mask: cheaper than a sort.
        inside = np.zeros(len(order), dtype=bool)
        supports = {}
        for g in np.flatnonzero((radius > 0) & (last > first)):
            band = slice(first[g], last[g])
            squared = (u_sorted[band] - centers[g, 0]) ** 2 + (v_sorted[band] - centers[g, 1]) ** 2
            inside[order[band][squared <= radius[g] ** 2]] = True
            members = np.flatnonzero(inside)
            inside[members] = False
            if len(members):
                supports[int(g)] = members
        return supports

    @property
    def pair_count(self) -> int:
        """Gaussian evaluations per forward pass (vertex x Gaussian), padding included."""
        return 0 if self._support is None else self._support["evaluated"]

    def _blocks_on(self, dtype: torch.dtype, device) -> list[dict]:
        cache = self._support["cache"]
        key = (dtype, str(device))
        if key not in cache:
            cache[key] = [{name: (t.to(device) if name == "gaussians" else t.to(device=device, dtype=dtype))
                           for name, t in b.items()} for b in self._support["blocks"]]
            cache[key + ("target",)] = self._support["target"].to(device)
            cache[key + ("slot_bone",)] = self._support["slot_bone"].to(device)
        return cache[key]

    def __call__(self, uv: torch.Tensor, zeta: torch.Tensor, mixture: Mixture) -> CappedWeights:
        """uv (N, 2) the chart (only its size is used), zeta (J, 2) -> CappedWeights."""
        if not self.support_is_valid(zeta, mixture):
            self.rebuild_support(zeta, mixture)
        self._calls_since_rebuild += 1
        dtype, device = zeta.dtype, zeta.device
        blocks = self._blocks_on(dtype, device)
        centers_all = mixture.centers(zeta).reshape(-1, 2)  # (G, 2)
        factor_all = cholesky_factor(mixture.cholesky_raw).reshape(-1, 2, 2)
        l00_all, l10_all, l11_all = factor_all[:, 0, 0], factor_all[:, 1, 0], factor_all[:, 1, 1]
        scale_all = mixture.component_weights().reshape(-1) / (2 * math.pi * l00_all * l11_all)
        values = []
        for block in blocks:
            g = block["gaussians"]
            y0 = (block["u"] - centers_all[g, 0:1]) / l00_all[g].unsqueeze(-1)  # (B, M)
            y1 = (block["v"] - centers_all[g, 1:2] - l10_all[g].unsqueeze(-1) * y0) / l11_all[g].unsqueeze(-1)
            value = torch.exp(-0.5 * (y0 * y0 + y1 * y1)) * scale_all[g].unsqueeze(-1)
            if "gate" in block:
                value = value * block["gate"]
            values.append(value.reshape(-1))
        vertex_count = uv.shape[0]
        width = self._support["width"]
        base = torch.zeros(vertex_count * width + 1, dtype=dtype, device=device)
        base[:-1].view(vertex_count, width)[:, 0] = self.config.remainder_density
        if values:  # the K Gaussians of a bone add up in the bone's slot
            base = base.scatter_add(0, self._support["cache"][(dtype, str(device), "target")], torch.cat(values))
        table = base[:-1].view(vertex_count, width)
        # Dividing a row by its normaliser (eps + sum of influences) changes neither the order nor the
        # renormalised top-k values, so the raw influences are capped directly.
        top, slots = torch.topk(table, self.config.influence_cap, dim=-1)
        bones = self._support["cache"][(dtype, str(device), "slot_bone")].gather(-1, slots)
        return CappedWeights(bones, top / top.sum(-1, keepdim=True))


def blend_vertices(vertices: torch.Tensor, skin: torch.Tensor, weights: CappedWeights, method: str = "dense") -> torch.Tensor:
    """Linear blend skinning.  vertices (N, 3), skin (..., J, 4, 4), top-k weights -> (..., N, 3).

    "dense": scatter the top-k weights into W (N, J) and blend all matrices with one GEMM;
    "gather": gather k matrices per vertex. The benchmark measures both.
    """
    bone_count = skin.shape[-3]
    affine = skin[..., :3, :].reshape(*skin.shape[:-3], bone_count, 12)
    if method == "dense":
        blended = weights.to_dense(bone_count) @ affine  # (..., N, 12)
    else:
        blended = (weights.values.unsqueeze(-1) * affine[..., weights.bones, :]).sum(-2)
    blended = blended.reshape(*blended.shape[:-1], 3, 4)
    return (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 3]


def blend_vertices_dense(vertices: torch.Tensor, skin: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Reference LBS with a full (N, J) weight matrix: v'_i = sum_j w_ij G_j [v_i; 1]."""
    homogeneous = torch.cat([vertices, torch.ones_like(vertices[:, :1])], dim=-1)  # (N, 4)
    per_bone = torch.einsum("...jab,nb->...nja", skin[..., :3, :], homogeneous)  # (..., N, J, 3)
    return (weights.unsqueeze(-1) * per_bone).sum(-2)
