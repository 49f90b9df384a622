"""Bone poses for expression targets, the rig's Gaussians and bindings unchanged ("(A)": what an artist reaches by
posing the generated rig).

    poses = fit_expression_poses(model, carried, ExpressionFitSettings(), progress=progress)
    poses = fit_library_poses(model, landmarks, valid)  # the bundled ARKit 52, carried and fitted

The weights and rest matrices, which (A) leaves alone, are computed once; each expression is then an L-BFGS fit of
the poses alone on the chosen vertices (about 0.4 s each on one thread). Several expressions can share one
optimisation (`batch`: poses (B, J, 3), the sum of their losses, each divided by its own size at the start so that a
0.5 mm squint is not drowned by a 10 mm jaw opening), but one L-BFGS shares its line search and curvature between
them, and 8 together ended at 2-3 times the residual of 8 alone in the same steps: one at a time by default. Losses as the fitting engine's "vertex" (weighted, in
head units) and "pose_prior".
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from asm_protocol.choices import ARKIT_NAMES

from ..core.errors import ASMInputError
from ..core.geometry import spread_subset
from ..model import ASMModel, Pose
from ..model.kinematics import forward_kinematics, local_pose_matrices, skinning_matrices
from ..model.weights import blend_vertices
from ..rig.arkit import (CarriedExpressions, CarrySettings, ExpressionLibrary, canonical_chart_uv, carry_expressions,
                         kit_sources, load_library)
from ..template.poses import EXPRESSION_POSES, load_named_poses


@dataclass(frozen=True)
class ExpressionFitSettings:
    iterations: int = 80  # L-BFGS steps per batch at most
    batch: int = 1  # expressions per optimisation: one L-BFGS shares its line search, and 8 together converged to
    # 2-3x the residual of 8 alone in 80 steps (ICT head), for 0.6x the time: one at a time by default
    pose_prior: float = 1e-6  # as benchmarks/expressions.py's POSE_STAGES
    early_stop: float = 1e-5  # stop when the loss improved by less than this fraction over `patience` steps
    patience: int = 10
    smallest_offset: float = 1e-4  # head units: an expression smaller than this (tongueOut: none) keeps the base pose


@dataclass
class ExpressionPoses:
    """Whole local poses (E, J, 3) each (the base pose plus the expression), and per expression: the weighted RMS
    of the target offsets and of the posed rig's distance to the target over the fitted vertices (mesh units), and
    the seconds of its batch shared out."""

    names: tuple[str, ...]
    log_scale: np.ndarray
    rotvec: np.ndarray
    translation: np.ndarray
    own_rms: np.ndarray  # (E,)
    rms: np.ndarray  # (E,)
    seconds: float = 0.0

    @property
    def residual(self) -> np.ndarray:
        """(E,) rms / own_rms (0: the rig reaches the shape, 1: no better than the base pose); NaN for empty ones."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.own_rms > 0, self.rms / self.own_rms, np.nan)


def _weighted_mean_squared(difference: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(..., M, 3), (M,) -> (...)."""
    return ((difference ** 2).sum(-1) * weights).sum(-1) / weights.sum()


def fit_expression_poses(model: ASMModel, carried: CarriedExpressions,
                         settings: ExpressionFitSettings = ExpressionFitSettings(), base: Pose | None = None,
                         progress=lambda stage, fraction: None,
                         starts: dict[str, dict[str, np.ndarray]] | None = None) -> ExpressionPoses:
    """Fit one pose per expression of `carried` (targets on `carried.vertex_ids`); the model is not changed.

    base: the pose the expressions are measured against ((J, 3) each; None: the rest pose), e.g. a photo fit's
    identity. starts: per expression name, a pose change {"log_scale", "rotvec", "translation": (J, 3)} added to
    `base` where the fit starts, when that fits the target better than `base` itself (learned_starts). progress(stage,
    fraction) is called after every step (the worker's raises to cancel)."""
    started = time.perf_counter()
    ids = np.asarray(carried.vertex_ids, dtype=np.int64)
    if len(ids) == 0 or carried.offsets.shape != (len(carried.names), len(ids), 3):
        raise ASMInputError("no expression targets to fit")
    if not (carried.weights > 0).any():
        raise ASMInputError("no vertex of the mesh reads the expressions' data (the rig's face chart and the library "
                            "do not overlap); generate the rig again")
    view = model.restricted(ids)
    dtype, device = model.vertices.dtype, model.vertices.device
    as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    joints = model.bone_count
    base = base or Pose.zeros(joints, dtype=dtype, device=device)
    base = Pose(*(as_tensor(t.detach().cpu().numpy()) for t in (base.log_scale, base.rotvec, base.translation)))
    unit = float(model.rig.head_unit)
    free = model.free
    with torch.no_grad():
        weights_capped = view.weights()
        bind = model.bind()
        rest = view.evaluated_vertices

        def posed(pose: Pose) -> torch.Tensor:
            masked = pose.masked(free)
            local = local_pose_matrices(masked.log_scale, masked.rotvec, masked.translation)
            return blend_vertices(rest, skinning_matrices(bind, forward_kinematics(bind, local, model.parents)),
                                  weights_capped, model.config.lbs)

        start_surface = posed(base)  # (M, 3)
    weights = as_tensor(carried.weights)
    count = len(carried.names)
    result = {key: np.zeros((count, joints, 3)) for key in ("log_scale", "rotvec", "translation")}
    own, reached = np.zeros(count), np.zeros(count)
    batches = [list(range(s, min(s + max(settings.batch, 1), count))) for s in range(0, count, max(settings.batch, 1))]
    for number, rows in enumerate(batches):
        targets = start_surface + as_tensor(carried.offsets[rows])  # (B, M, 3)
        with torch.no_grad():
            size = _weighted_mean_squared(targets - start_surface, weights) / unit ** 2  # (B,)
        moving = size > settings.smallest_offset ** 2
        pose = Pose(*(t.expand(len(rows), joints, 3).clone() for t in (base.log_scale, base.rotvec, base.translation)))
        if starts:
            _start_where_better(pose, posed, targets, weights, [starts.get(carried.names[r]) for r in rows],
                                as_tensor)
        if moving.any():
            _fit_batch(pose, posed, targets, weights, size, moving, base, unit, settings,
                       lambda fraction: progress(f"expressions {rows[0] + 1}-{rows[-1] + 1} of {count}",
                                                 (number + fraction) / len(batches)))
        with torch.no_grad():
            final = posed(pose)
            own[rows] = torch.sqrt(size).cpu().numpy() * unit
            reached[rows] = torch.sqrt(_weighted_mean_squared(final - targets, weights)).cpu().numpy()
        masked = pose.masked(free)
        for key in result:
            result[key][rows] = getattr(masked, key).detach().double().cpu().numpy()
        progress(f"expressions {rows[-1] + 1} of {count}", (number + 1) / len(batches))
    return ExpressionPoses(tuple(carried.names), result["log_scale"], result["rotvec"], result["translation"],
                           own, reached, time.perf_counter() - started)


def _start_where_better(pose: Pose, posed, targets: torch.Tensor, weights: torch.Tensor, changes: list,
                        as_tensor) -> None:
    """Add each row's pose change (or None) to `pose` (B, J, 3) in place where the posed rig is then closer to
    that row's target."""
    with torch.no_grad():
        for row, change in enumerate(changes):
            if change is None:
                continue
            moved = Pose(*(getattr(pose, key)[row] + as_tensor(change[key])
                           for key in ("log_scale", "rotvec", "translation")))
            at_base = Pose(pose.log_scale[row], pose.rotvec[row], pose.translation[row])
            if _weighted_mean_squared(posed(moved) - targets[row], weights) < \
                    _weighted_mean_squared(posed(at_base) - targets[row], weights):
                for key in ("log_scale", "rotvec", "translation"):
                    getattr(pose, key)[row] = getattr(moved, key)


def learned_starts(names: tuple[str, ...], head_unit: float) -> dict[str, dict[str, np.ndarray]]:
    """Per ARKit name, the pose the template's learning found for it on the ICT-FaceKit head
    (solver/template/expression_poses.json, the kit's names; ARKit's browInnerUp and cheekPuff add the kit's two
    halves), for the rig's bones `names`; {} where that file is missing."""
    if not EXPRESSION_POSES.is_file():
        return {}
    learned = load_named_poses(tuple(names), head_unit, EXPRESSION_POSES)
    starts = {}
    for arkit_name in ARKIT_NAMES:
        sources = [learned[kit] for kit in kit_sources(arkit_name) if kit in learned]
        if sources:
            starts[arkit_name] = {key: sum(source[key] for source in sources)
                                  for key in ("log_scale", "rotvec", "translation")}
    return starts


def _fit_batch(pose: Pose, posed, targets: torch.Tensor, weights: torch.Tensor, size: torch.Tensor,
               moving: torch.Tensor, base: Pose, unit: float, settings: ExpressionFitSettings, progress) -> None:
    """L-BFGS on a batch of poses (B, J, 3) in place; expressions that do not move (`moving` False) stay at `base`."""
    parameters = [pose.log_scale, pose.rotvec, pose.translation]
    for tensor in parameters:
        tensor.requires_grad_(True)
    scale = torch.where(moving, 1.0 / size.clamp(min=1e-30), torch.zeros_like(size))
    optimizer = torch.optim.LBFGS(parameters, lr=1.0, max_iter=1, max_eval=25, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        data = _weighted_mean_squared(posed(pose) - targets, weights) / unit ** 2  # (B,)
        prior = ((pose.rotvec - base.rotvec) ** 2).sum(-1).mean(-1) \
            + (((pose.translation - base.translation) / unit) ** 2).sum(-1).mean(-1) \
            + ((pose.log_scale - base.log_scale) ** 2).sum(-1).mean(-1)
        return ((data + settings.pose_prior * prior) * scale).sum()

    def closure():
        optimizer.zero_grad()
        total = loss()
        total.backward()
        return total

    best, best_state, recent = math.inf, None, []
    try:
        for step in range(settings.iterations):
            before = [t.detach().clone() for t in parameters]
            total = float(optimizer.step(closure).detach())
            if total < best:
                best, best_state = total, before
            progress((step + 1) / settings.iterations)
            recent.append(best)
            if len(recent) > settings.patience:
                old = recent.pop(0)
                if old - best <= settings.early_stop * max(abs(old), 1e-12):
                    break
        with torch.no_grad():  # the last step's parameters, when better than the best one's start
            if float(loss()) > best and best_state is not None:
                for tensor, value in zip(parameters, best_state):
                    tensor.copy_(value)
    finally:
        for tensor in parameters:
            tensor.requires_grad_(False)
        with torch.no_grad():
            for tensor, value in zip(parameters, (base.log_scale, base.rotvec, base.translation)):
                tensor[~moving] = value


@dataclass(frozen=True)
class LibraryFitSettings:
    expressions: tuple[str, ...] = ()  # ARKit names to fit (empty: all 52, in ARKit's order)
    face_vertices: int = 4000  # fitted vertices where the library has data (spread over the face)
    other_vertices: int = 500  # and where it has none (zero offsets, low weight: the back of the head)
    carry: CarrySettings = CarrySettings()
    fit: ExpressionFitSettings = ExpressionFitSettings()
    learned_starts: bool = True  # each fit starts from the template's learned pose where that is closer


def fitted_vertices(vertices: np.ndarray, weights: np.ndarray, outside_weight: float, face_count: int,
                    other_count: int) -> np.ndarray:
    """(M,) sorted vertex ids to fit: about `face_count` spread over the vertices the data reaches (weight above
    `outside_weight`) and `other_count` over the rest that carry any weight. vertices (N, 3), weights (N,)."""
    face = np.flatnonzero(weights > outside_weight * 1.001)
    other = np.flatnonzero((weights > 0) & (weights <= outside_weight * 1.001))
    chosen = [ids[spread_subset(vertices[ids], count)] for ids, count in ((face, face_count), (other, other_count))
              if len(ids) and count > 0]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def fit_library_poses(model: ASMModel, landmarks: np.ndarray, landmark_valid: np.ndarray,
                      settings: LibraryFitSettings = LibraryFitSettings(), base: Pose | None = None,
                      library: ExpressionLibrary | None = None, progress=lambda stage, fraction: None
                      ) -> ExpressionPoses:
    """The bundled ARKit expressions (solver.rig.arkit) carried onto `model`'s mesh and fitted as bone poses.

    landmarks (L, 3) and landmark_valid (L,): the mesh's landmarks the rig was placed from; base: as
    fit_expression_poses. progress(stage, fraction) as there."""
    library = library or load_library()
    if settings.expressions:
        library = library.select(settings.expressions)
    vertices = model.vertices.detach().double().cpu().numpy()
    triangles = model.triangles.cpu().numpy()
    rigid = None if model.rigid is None else model.rigid.cpu().numpy()
    progress("carrying the expressions onto the mesh", 0.0)
    canonical_uv = canonical_chart_uv(vertices, triangles, model.rig, landmarks, landmark_valid)
    every = np.arange(len(vertices))
    reach = carry_expressions(library.select(()), model.rig, vertices, canonical_uv, every, rigid, settings.carry)
    ids = fitted_vertices(vertices, reach.weights, settings.carry.outside_weight, settings.face_vertices,
                          settings.other_vertices)
    carried = carry_expressions(library, model.rig, vertices, canonical_uv, ids, rigid, settings.carry)
    starts = learned_starts(model.rig.names, float(model.rig.head_unit)) if settings.learned_starts else None
    return fit_expression_poses(model, carried, settings.fit, base, progress, starts)
