"""The fitting engine: stages as data, named weighted losses, early stop, progress with cancel (ASM.md §8).

    stages = [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0, "pose_prior": 1e-3}, iterations=200),
              Stage(name="all", groups=ALL_GROUPS, losses={...}, iterations=300, learning_rate=5e-3)]
    result = fit(model, {"vertices": target}, stages, progress=lambda stage, step, loss: False)

Targets (see solver/fit/losses.py): "vertices" (same topology), "landmarks" with "landmark_vertices" and
"landmark_bary", "scan_points" for scans of any topology, "laplacian" for smoothness. The group
"alignment" moves a similarity of the target (vertices, landmarks, scan points) into the model's frame.

A progress callback returning True asks to stop; the engine stops before the next step and leaves the
model at the best parameters seen so far.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..core.errors import ASMInputError
from ..core.rotations import rotvec_to_matrix
from ..model import ASMModel, Pose
from ..model.kinematics import forward_kinematics, local_pose_matrices
from ..vision.cameras import Cameras
from .losses import BONE_LOSSES, CAMERA_LOSSES, LOSSES, WEIGHT_LOSSES, FitContext, mirror_targets

ALL_GROUPS = ("pose", "binding", "bind_offset", "gaussian_weights", "gaussian_means", "gaussian_covariances")
PARAMETER_GROUPS = ALL_GROUPS + ("alignment", "cameras", "expressions")  # ALL_GROUPS: the rig itself; "alignment"
# moves the 3D target, "cameras" the photos' cameras, "expressions" each photo's own expression offsets
ALIGNED_TARGETS = ("vertices", "landmarks", "scan_points")
CORRESPONDENCE_LOSSES = ("scan_to_mesh", "mesh_to_scan", "photometric", "silhouette", "stereo")  # refreshed every
# few steps (pairs, visibility, matches): only a refreshed step measures the true loss
OPTIMIZERS = ("adam", "lbfgs")


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One fitting stage: which parameter groups move, which losses with which weights, how long. Built with
    keywords (a stage is data: its fields say what they are)."""

    name: str
    groups: tuple[str, ...]
    losses: dict[str, float]
    iterations: int = 200
    learning_rate: float = 1e-2
    optimizer: str = "adam"
    early_stop: float = 1e-6  # stop when the best loss improved by less than this fraction over `patience` steps
    patience: int = 20
    refresh_every: int = 10  # steps between nearest-point searches of the scan losses
    bones: tuple[str, ...] = ()  # only these bones' parameters move (empty: all), e.g. a coarse stage
    final_learning_rate: float | None = None  # Adam: decays exponentially to this by the last iteration

    def __post_init__(self):
        unknown = set(self.groups) - set(PARAMETER_GROUPS)
        if unknown:
            raise ASMInputError(f"stage {self.name!r}: unknown parameter group(s) {sorted(unknown)}; "
                                f"use {list(PARAMETER_GROUPS)}")
        unknown = set(self.losses) - set(LOSSES)
        if unknown:
            raise ASMInputError(f"stage {self.name!r}: unknown loss(es) {sorted(unknown)}; use {sorted(LOSSES)}")
        if not self.groups or not self.losses:
            raise ASMInputError(f"stage {self.name!r}: needs at least one parameter group and one loss")
        if self.optimizer not in OPTIMIZERS:
            raise ASMInputError(f"stage {self.name!r}: unknown optimizer {self.optimizer!r}; use {OPTIMIZERS}")
        if self.final_learning_rate is not None and not self.final_learning_rate > 0:
            raise ASMInputError(f"stage {self.name!r}: final_learning_rate must be > 0")
        if self.iterations < 1 or not self.learning_rate > 0 or self.refresh_every < 1:
            raise ASMInputError(f"stage {self.name!r}: iterations and refresh_every must be >= 1 and learning_rate > 0")
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "bones", tuple(self.bones))

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "groups": list(self.groups), "bones": list(self.bones)}

    @classmethod
    def from_dict(cls, data: dict) -> "Stage":
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - allowed
        if unknown:
            raise ASMInputError(f"stage {data.get('name', '?')!r}: unknown field(s) {sorted(unknown)}")
        return cls(**{**data, "groups": tuple(data.get("groups", ())), "bones": tuple(data.get("bones", ()))})

    def bone_mask(self, names) -> torch.Tensor | None:
        """(J,) bool of the bones this stage moves, or None for all; refuses bones the rig does not have."""
        if not self.bones:
            return None
        missing = sorted(set(self.bones) - set(names))
        if missing:
            raise ASMInputError(f"stage {self.name!r} names bone(s) {missing[:6]} that this rig does not have "
                                f"(its preset has {len(names)} bones); check the preset or the stage")
        return torch.as_tensor([name in self.bones for name in names])


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # per step: stage, step, total and each named loss
    best_loss: float = math.inf
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. binding points held at the chart's border
    alignment: dict = field(default_factory=dict)  # target -> model similarity: scale, rotation (3, 3), translation


@dataclass
class Alignment:
    """Similarity that maps the target into the model's frame: x -> exp(log_scale) R(rotvec) x + translation."""

    log_scale: torch.Tensor  # (1,)
    rotvec: torch.Tensor  # (3,)
    translation: torch.Tensor  # (3,)

    @classmethod
    def identity(cls, dtype, device) -> "Alignment":
        return cls(*(torch.zeros(n, dtype=dtype, device=device) for n in (1, 3, 3)))

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_scale) * points @ rotvec_to_matrix(self.rotvec).T + self.translation

    def as_arrays(self) -> dict:
        with torch.no_grad():
            return {"scale": float(torch.exp(self.log_scale)), "rotation": rotvec_to_matrix(self.rotvec).cpu().numpy(),
                    "translation": self.translation.cpu().numpy()}


@dataclass
class ExpressionOffsets:
    """Each photo's own expression: local pose offsets (V, J, 3) added to the shared pose, on `bones` only."""

    offsets: Pose
    bones: torch.Tensor  # (J,) bool: the expression bones (jaw, lips, lids, brows, cheeks, eyes)

    @classmethod
    def zeros(cls, views: int, bones: torch.Tensor, dtype, device="cpu") -> "ExpressionOffsets":
        return cls(Pose.zeros(len(bones), dtype=dtype, device=device, batch=(views,)), bones.to(device))

    def masked(self, free: torch.Tensor) -> Pose:
        """The offsets a bone may use: its free channels, expression bones only."""
        return self.offsets.masked(free & self.bones[:, None].to(free.device))

    def poses(self, shared: Pose, free: torch.Tensor) -> Pose:
        """(V, J, 3) each photo's pose: the shared pose plus its offsets."""
        offsets = self.masked(free)
        return Pose(shared.log_scale + offsets.log_scale, shared.rotvec + offsets.rotvec,
                    shared.translation + offsets.translation)

    def tensors(self) -> list[torch.Tensor]:
        return [self.offsets.log_scale, self.offsets.rotvec, self.offsets.translation]


def _group_tensors(model: ASMModel, alignment: Alignment, cameras: Cameras | None,
                   expressions: ExpressionOffsets | None) -> dict[str, list[torch.Tensor]]:
    return {
        "alignment": [alignment.log_scale, alignment.rotvec, alignment.translation],
        "cameras": [] if cameras is None else cameras.tensors(),
        "expressions": [] if expressions is None else expressions.tensors(),
        "pose": [model.pose.log_scale, model.pose.rotvec, model.pose.translation],
        "binding": [model.zeta],
        "bind_offset": [model.bind_offset],
        "gaussian_weights": [model.mixture.logits],
        "gaussian_means": [model.mixture.offsets],
        "gaussian_covariances": [model.mixture.cholesky_raw],
    }


PER_BONE_GROUPS = ("pose", "binding", "bind_offset", "gaussian_weights", "gaussian_means", "gaussian_covariances")


def _step_scales(model: ASMModel, alignment: Alignment, cameras: Cameras | None,
                 expressions: ExpressionOffsets | None) -> dict[int, float]:
    """Learning-rate scale per tensor: lengths move in head units, the rest in their own units."""
    unit = float(model.rig.head_unit)
    scales = {id(model.pose.translation): unit, id(model.bind_offset): unit, id(alignment.translation): unit}
    if cameras is not None:
        scales[id(cameras.translation)] = unit
    if expressions is not None:
        scales[id(expressions.offsets.translation)] = unit
    return scales


def _relocate(model: ASMModel, clamped: set[str]) -> None:
    """Re-locate moved binding points; the clamped ones are collected for one note per bone."""
    with torch.no_grad():
        clamped.update(model.relocate_bindings().clamped)


def _check_targets(model: ASMModel, targets: dict, stages: list[Stage], alignment: Alignment, notes: list[str]) -> None:
    """Refuse targets that would give a silently wrong fit; start the alignment at the scan's units."""
    for name, value in targets.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not value.is_sparse \
                and not torch.isfinite(value).all():
            first = tuple(int(i) for i in torch.nonzero(~torch.isfinite(value))[0])
            raise ASMInputError(f"target {name!r} contains NaN or infinite values (first at index {first})")
    rest = model.evaluated_vertices
    if "vertices" in targets and tuple(targets["vertices"].shape) != tuple(rest.shape):
        raise ASMInputError(f"target 'vertices' has shape {tuple(targets['vertices'].shape)} but the rig's mesh has "
                            f"{tuple(rest.shape)}: vertex-to-vertex fitting needs the same topology (use a scan loss)")
    scan = targets.get("scan_points")
    if scan is None:
        return
    if scan.ndim != 2 or scan.shape[1] != 3 or len(scan) == 0:
        raise ASMInputError(f"target 'scan_points' must be a non-empty (P, 3) point set, got {tuple(scan.shape)}")
    # Units: compare the spread of the scan, as the alignment places it, with the rig's head (a face scan
    # covers at most the head).
    spread = lambda points: float(points.std(0).norm())  # noqa: E731
    with torch.no_grad():
        ratio = spread(alignment.apply(scan).double()) / spread(rest.double())
    if 0.25 <= ratio <= 4.0:
        return
    power = 10.0 ** round(-math.log10(ratio))
    aligned = any("alignment" in stage.groups for stage in stages)
    if abs(math.log10(ratio * power)) > 0.6 or not aligned:
        raise ASMInputError(f"the scan is {ratio:.3g} times the size of the head; check its units (or add an "
                            "'alignment' stage, which can absorb a factor of 10, 100 or 1000)")
    with torch.no_grad():  # scale the aligned scan by `power` about the head's centre: A' = power A + shift
        aligned_centre = alignment.apply(scan).mean(0)
        alignment.log_scale.add_(math.log(power))
        alignment.translation.copy_(power * alignment.translation + rest.mean(0) - power * aligned_centre)
    notes.append(f"the scan is about {1 / power:g} times the head's size: assumed other units and started the "
                 f"alignment at scale {power:g}")


@dataclass
class _Problem:
    """What the stages of one fit share: the model, its targets and the other moving parts (alignment, cameras,
    per-photo expressions), and the state at the fit's start that the priors compare with."""

    model: ASMModel
    targets: dict
    alignment: Alignment
    cameras: Cameras | None
    expressions: ExpressionOffsets | None
    rest: torch.Tensor = field(init=False)  # (M, 3) the vertices the forward pass returns, at rest
    initial_bind_offset: torch.Tensor = field(init=False)
    start_log_scale: float = field(init=False)
    groups: dict[str, list[torch.Tensor]] = field(init=False)
    rest_bones: torch.Tensor | None = field(init=False, default=None)

    def __post_init__(self):
        self.rest = self.model.evaluated_vertices
        self.initial_bind_offset = self.model.bind_offset.detach().clone()
        self.start_log_scale = float(self.alignment.log_scale[0])
        self.groups = _group_tensors(self.model, self.alignment, self.cameras, self.expressions)

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [t for tensors in self.groups.values() for t in tensors]

    def bone_points(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(J, 2, 3) head and tail of every bone (tail: head + length along its Y axis), posed and at the rest of
        the fit's start, so that their difference holds every change of the fit (binding and pose)."""
        model, rest = self.model, self.rest
        length = torch.as_tensor(model.rig.length, dtype=rest.dtype, device=rest.device)[:, None]

        def ends(matrices: torch.Tensor) -> torch.Tensor:
            return torch.stack([matrices[:, :3, 3], matrices[:, :3, 3] + length * matrices[:, :3, 1]], 1)

        bind = model.bind()
        pose = model.pose.masked(model.free)
        posed = forward_kinematics(bind, local_pose_matrices(pose.log_scale, pose.rotvec, pose.translation),
                                   model.parents)
        if self.rest_bones is None:
            self.rest_bones = ends(bind.detach())
        return ends(posed), self.rest_bones

    def context(self, stage: Stage, cache: dict, refresh: bool) -> FitContext:
        """What the losses see at this step (solver.fit.losses.FitContext)."""
        model, alignment = self.model, self.alignment
        pose = model.pose.masked(model.free)
        aligned = {k: (alignment.apply(v) if k in ALIGNED_TARGETS else v) for k, v in self.targets.items()}
        if "scan_normals" in self.targets:  # directions turn with the alignment, without scale or shift
            aligned["scan_normals"] = self.targets["scan_normals"] @ rotvec_to_matrix(alignment.rotvec).T
        head_unit = float(model.rig.head_unit)
        context = FitContext(
            posed=model.forward(), rest=self.rest, head_unit=head_unit, targets=aligned, mixture=model.mixture,
            rotvec=pose.rotvec, translation=pose.translation, log_scale=pose.log_scale,
            bind_offset=model.bind_offset, initial_bind_offset=self.initial_bind_offset, triangles=model.triangles,
            cache=cache, refresh=refresh,
            data_unit=head_unit * torch.exp(alignment.log_scale[0] - self.start_log_scale),
            weights=(model.weights().to_dense(model.bone_count)
                     if any(n in WEIGHT_LOSSES for n in stage.losses) else None),
            bone_points=self.bone_points() if any(n in BONE_LOSSES for n in stage.losses) else None,
            cameras=self.cameras)
        if self.expressions is not None:
            context.expressions = self.expressions.masked(model.free)
            context.posed_views = model.forward(self.expressions.poses(model.pose, model.free))
        return context

    def evaluate(self, stage: Stage, cache: dict, refresh: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """The stage's weighted total loss and each named loss's value."""
        context = self.context(stage, cache, refresh)
        named = {name: LOSSES[name](context) for name in stage.losses}
        total = sum(weight * named[name] for name, weight in stage.losses.items())
        return total, {name: float(value.detach()) for name, value in named.items()}


def _optimizer(stage: Stage, free: list[torch.Tensor], scales: dict[int, float]):
    """The stage's optimiser and its learning-rate schedule (None without one)."""
    if stage.optimizer == "lbfgs":
        # One L-BFGS iteration per step (progress and cancel stay per step); its line search needs its own
        # evaluation budget, which max_eval would otherwise cap at one.
        return torch.optim.LBFGS(free, lr=stage.learning_rate, max_iter=1, max_eval=25,
                                 line_search_fn="strong_wolfe"), None
    optimizer = torch.optim.Adam([{"params": [t], "lr": stage.learning_rate * scales.get(id(t), 1.0)} for t in free])
    if stage.final_learning_rate is None:
        return optimizer, None
    decay = (stage.final_learning_rate / stage.learning_rate) ** (1.0 / max(stage.iterations - 1, 1))
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, decay)


def _bone_mask_hooks(problem: _Problem, stage: Stage, mask: torch.Tensor | None) -> list:
    """Gradient hooks that keep the bones a stage leaves alone where they are (per-bone groups only)."""
    if mask is None:
        return []
    return [t.register_hook(lambda grad, m=mask.to(t.device): grad * m.view(-1, *([1] * (grad.ndim - 1))).to(grad))
            for g in stage.groups if g in PER_BONE_GROUPS for t in problem.groups[g]]


def run_stage(problem: _Problem, stage: Stage, mask: torch.Tensor | None, scales: dict[int, float], progress,
              result: FitResult) -> None:
    """Run one stage: its groups move, its losses are minimised; the parameters end at the stage's best step.
    Appends to result.history and result.notes; sets result.cancelled when `progress` asked to stop."""
    everything = problem.parameters
    free = [t for g in stage.groups for t in problem.groups[g]]
    for tensor in everything:
        tensor.requires_grad_(any(tensor is f for f in free))
    hooks = _bone_mask_hooks(problem, stage, mask)
    optimizer, schedule = _optimizer(stage, free, scales)
    moves_bindings = "binding" in stage.groups
    best_total, best_state = math.inf, None
    uses_correspondences = any(name in CORRESPONDENCE_LOSSES for name in stage.losses)
    recent: list[float] = []
    clamped: set[str] = set()
    cache: dict = {}
    try:
        for step in range(stage.iterations):
            record = {}
            refresh = step % stage.refresh_every == 0

            def closure():
                optimizer.zero_grad()
                total, named = problem.evaluate(stage, cache, refresh)
                total.backward()
                record.update(named, total=float(total.detach()))
                return total

            before = [t.detach().clone() for t in everything]  # the parameters the step's loss belongs to
            optimizer.step(closure)
            if schedule is not None:
                schedule.step()
            if moves_bindings:
                _relocate(problem.model, clamped)
            total = record["total"]
            result.history.append({"stage": stage.name, "step": step, **record})
            # With nearest-point losses, only a step that searched its correspondences afresh measures the
            # true loss (stale pairs can look better than they are); only those steps may become the best.
            if total < best_total and (refresh or not uses_correspondences):
                best_total, best_state = total, before
            if progress is not None and progress(stage.name, step, total):
                result.cancelled = True
                break
            # Early stop on the best loss so far: nearest-point refreshes make single steps jump up.
            recent.append(best_total)
            if len(recent) > stage.patience:
                old = recent.pop(0)
                if old - best_total <= stage.early_stop * max(abs(old), 1e-12):
                    break
    finally:
        for hook in hooks:
            hook.remove()
    if best_state is not None:
        with torch.no_grad():
            for tensor, best in zip(everything, best_state):
                tensor.copy_(best)
        if moves_bindings:
            _relocate(problem.model, clamped)
    if clamped:  # one line per stage: a fit that moves bindings may hold dozens of them
        names, many = ", ".join(repr(name) for name in sorted(clamped)), len(clamped) > 1
        result.notes.append(f"stage {stage.name!r}: the binding point{'s' * many} of {len(clamped)} bone{'s' * many} "
                            f"({names}) reached the chart's border and {'were' if many else 'was'} held there")
    result.best_loss = best_total


def fit(model: ASMModel, targets: dict, stages: list[Stage], progress=None, seed: int = 0,
        alignment: Alignment | None = None, cameras: Cameras | None = None,
        expressions: ExpressionOffsets | None = None) -> FitResult:
    """Fit `model` in place, stage by stage. targets: tensors the losses read (see solver/fit/losses.py).

    progress(stage_name, step, total_loss) -> bool: True asks to stop. The model ends at the best
    parameters seen (by total loss of the stage being run). `alignment` (updated in place) continues an
    earlier fit's target alignment; by default it starts at the identity. `cameras` (updated in place by the
    group "cameras") are the photos' cameras the 2D losses project through; `expressions` (group "expressions")
    each photo's own expression on top of the shared pose.
    """
    if cameras is None and any("cameras" in stage.groups or set(stage.losses) & set(CAMERA_LOSSES)
                               for stage in stages):
        raise ASMInputError("a stage moves cameras or measures photo landmarks, but no cameras were given")
    if model.evaluated is not None and any("scan_to_mesh" in stage.losses for stage in stages):
        raise ASMInputError("scan_to_mesh needs the whole posed surface; fit scans with the full model, not a "
                            "restricted vertex subset")
    torch.manual_seed(seed)
    alignment = alignment or Alignment.identity(model.vertices.dtype, model.vertices.device)
    result = FitResult()
    _check_targets(model, targets, stages, alignment, result.notes)
    masks = [stage.bone_mask(model.rig.names) for stage in stages]  # refuse unknown bones before fitting
    if expressions is not None and (cameras is None or expressions.offsets.rotvec.shape[0] != len(cameras.image_size)):
        raise ASMInputError("per-photo expressions need one offset pose per camera")
    if any(name in BONE_LOSSES for stage in stages for name in stage.losses) and "mirror_pairs" not in targets:
        with torch.no_grad():
            targets = {**targets, **mirror_targets(model.rig.names, model.bind_positions())}
        if len(targets["mirror_pairs"]) == 0:
            result.notes.append("the symmetry prior found no left/right bone pairs (*.L / *.R) and does nothing")
    problem = _Problem(model, targets, alignment, cameras, expressions)
    scales = _step_scales(model, alignment, cameras, expressions)
    try:
        for stage, mask in zip(stages, masks):
            run_stage(problem, stage, mask, scales, progress, result)
            if result.cancelled:
                break
    finally:
        for tensor in problem.parameters:
            tensor.requires_grad_(False)
    result.alignment = alignment.as_arrays()
    return result
