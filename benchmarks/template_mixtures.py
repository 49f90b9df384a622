"""Learn the template's Gaussians from the ICT-FaceKit's artist-made expressions (issue 21), and measure them.

    .venv/bin/python -m benchmarks.template_mixtures [--write] [--hold-out] [--steps N]

The template's Gaussians are ellipses drawn by hand in the canonical UV chart (skeleton.json `sigma`, `angle`).
Here they are fitted instead, once, on the rig generated from that plain template on the ICT-FaceKit head
(MIT): every expression of the kit gets its own bone poses, and the Gaussians (weights, means, covariances of the
full preset's face bones) are shared by all expressions, as (B) in benchmarks/expressions.py. The loss counts each
expression by its own displacement, so a 0.5 mm squint weighs as much as a jaw opening (blinks 4x: EMPHASIS), adds
each face triangle's turn from the target's normal (folds) and the uniform Laplacian of the error (creases and
ripples), and holds every component within 1.5 drawn standard
deviations of its bone's drawn ellipse, its spread within 1.5x, measured in canonical UV: a bone keeps its place
and an artist can still name what it moves. Each component is also held at least as wide as Generate makes it
(1.5 local edge lengths, transfer.SPREAD_FLOOR_IN_EDGES), and the artist's single-bone tests are learned beside
the expressions: the blinks by the upper lid bone's turn alone, jawOpen by the jaw's (ARTIST_CONTROLS).

The fitted Gaussians are carried back into canonical UV through the inverse of the transfer's spline (its
Jacobian at each bone's anchor: solver/rig/transfer.py), made left-right symmetric (a .L bone averaged with its
mirrored .R twin, matched component by component), and, with --write, saved as
solver/template/skeleton_mixtures.json, which the full preset then uses on every mesh; the expressions' poses,
settled on the rig that template makes, go to solver/template/expression_poses.json (where the ARKit library's and
this benchmark's pose fits start).

--hold-out learns from half of the expression families only (both sides of each) and poses the rig into the other
half: what the learned Gaussians give on shapes they never saw. Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import FACE_VERTICES, RESULTS, ict_landmarks, ict_missing  # noqa: E402
from benchmarks.common import write_csv  # noqa: E402
from benchmarks.expressions import (OTHER_VERTEX_WEIGHT, face_detail, fit_vertices, ict_expressions,  # noqa: E402
                                   ict_whole_head, kit_jaw_turn, measure, pose_fit)
from solver.core.config import WeightConfig  # noqa: E402
from solver.core.geometry import edge_graph, face_normals  # noqa: E402
from solver.fit.losses import uniform_laplacian  # noqa: E402
from solver.model import ASMModel, Pose  # noqa: E402
from solver.model.uv_chart import cylindrical_chart  # noqa: E402
from solver.model.weights import cholesky_factor  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.rig.transfer import (SPREAD_FLOOR_IN_EDGES, canonical_chart_map, clamped_covariance,  # noqa: E402
                                 initial_mixture, local_edge_length, robust_alignment)
from solver.template import TEMPLATE_DIR  # noqa: E402
from solver.template.canonical import canonical_face  # noqa: E402
from solver.template.skeleton import load_skeleton, mirrored_component, mirrored_name  # noqa: E402

OUTPUT = TEMPLATE_DIR / "skeleton_mixtures.json"
POSES_OUTPUT = TEMPLATE_DIR / "expression_poses.json"
# Families that count more in the shared loss: a blink is the artist's first test of the lids, and its error lies in
# a few hundred vertices that the other 51 expressions outvote (learned without it: the blink 42 % of its size).
EMPHASIS = {"eyeBlink": 4.0}
SHARED_STEPS = 800  # the loss still fell by a fifth from 400 to 800 steps ((B) median 16.0 -> 15.5 %)
POSE_LEARNING_RATE, MIXTURE_LEARNING_RATE = 3e-3, 1e-3
# A bone keeps its place: a component's mean may leave the drawn ellipse's centre by this many of its standard
# deviations, and its spread may change by this factor, before a penalty of this weight holds it (unheld, a nostril
# bone grew over the cheek and the upper lid's outer bone over the brow: bones an artist could not name any more).
REACH_IN_SIGMAS, SPREAD_FACTOR, HOLD_WEIGHT = 1.5, 1.5, 0.1  # summed over the components: each counts
# Each face triangle's normal against the target's, (1 - cos)^2: the vertex loss alone left creases under the jaw
# and inside the lips (folds of 1.2-1.9 % of the face's triangles on jawOpen and mouthClose).
NORMAL_WEIGHT = 10.0
# The uniform Laplacian of the error over the face, over the target's own: creases and ripples too small to turn a
# triangle far. Learned without it, the template rippled where the lips' weights step: its poses, applied as they
# are, left an error Laplacian 1.8 / 2.0 / 1.6 / 1.2 times the expression's own on jawOpen / mouthSmile_L /
# mouthPucker / eyeBlink_L, for residuals of 19 / 16 / 16 / 29 %; learned with it at 0.1, 0.9 / 1.0 / 0.9 / 0.8 for
# 23 / 22 / 18 / 25 %. ((B), 800 steps: median 0.76 against 1.18 times, residual 16.4 against 15.5 %.)
CREASE_WEIGHT = 0.1
RELOCATE_EVERY = 50  # steps between re-finding the triangles of binding points that moved (learn_bindings)
# An artist's first tests of a face rig turn one bone: the jaw to open the mouth, the upper lid to blink. The learning
# also fits those shapes with that bone's rotation alone (its own turn learned, every other bone at rest), at this
# weight each beside an expression's 1: learned from the full poses only, the outer lid bone spread up to the brow
# and the child's counter-turn hid it, so the lid bone alone creased the skin from the lid to the brow.
ARTIST_CONTROLS = {"eyeBlink_L": "lid_upper.L", "eyeBlink_R": "lid_upper.R", "jawOpen": "jaw"}
CONTROL_WEIGHT = 0.5


def family(name: str) -> str:
    """An expression's family: its name without the side (eyeBlink_L and eyeBlink_R are one)."""
    return name[:-2] if name.endswith(("_L", "_R")) else name


def learn_shared_mixtures(model: ASMModel, view: ASMModel, rest: np.ndarray, targets: dict[str, np.ndarray],
                          steps: int, log, emphasis: dict[str, float] = EMPHASIS, starts: dict[str, Pose] | None = None,
                          learn_gaussians: bool = True, normal_weight: float = NORMAL_WEIGHT,
                          crease_weight: float = CREASE_WEIGHT, learn_bindings: bool = False,
                          controls: dict[str, tuple[np.ndarray, int, np.ndarray]] | None = None,
                          control_weight: float = CONTROL_WEIGHT) -> dict[str, Pose]:
    """(B) on `targets` (name -> (N, 3)): per-expression poses from `starts` or from (A) fits, then poses and the
    mixture (logits, offsets, Cholesky factors; with `learn_gaussians` False the poses alone; with `learn_bindings`
    the binding points and offsets too) together with Adam. `controls` (label -> (target (N, 3), bone, its starting
    rotation vector (3,))) are shapes fitted by that one bone's rotation, every other bone at rest, at
    `control_weight` each. Changes `model`'s mixture (and bindings) in place; returns each target's and control's
    pose."""
    controls = controls or {}
    poses = []
    joints = model.vertices.new_zeros(len(model.rig.names), 3)
    for name, target in targets.items():
        if starts is None:
            pose_fit(model, view, target)
            start = model.pose
        else:
            start = starts[name]
        poses.append([t.detach().clone() for t in (start.log_scale, start.rotvec, start.translation)])
    free = torch.ones(len(targets) + len(controls), len(joints), 1, dtype=joints.dtype)  # (E, J, 1)
    turns = torch.ones_like(free)
    for c, (_, bone, rotation) in enumerate(controls.values()):
        rotvec = joints.clone()
        rotvec[bone] = torch.as_tensor(rotation, dtype=joints.dtype)
        poses.append([joints.clone(), rotvec, joints.clone()])
        free[len(targets) + c] = 0.0
        turns[len(targets) + c] = 0.0
        turns[len(targets) + c, bone] = 1.0
    raw = Pose(*[torch.stack([p[i] for p in poses]).requires_grad_() for i in range(3)])
    ids = view.evaluated.numpy()
    fitted = torch.stack([torch.as_tensor(t[ids], dtype=model.vertices.dtype)
                          for t in [*targets.values(), *(c[0] for c in controls.values())]])
    rest_fitted = torch.as_tensor(rest[ids], dtype=model.vertices.dtype)
    in_face = torch.as_tensor(ids < FACE_VERTICES)
    own = torch.sqrt(((fitted - rest_fitted) ** 2).sum(-1)[:, in_face].mean(1)).clamp(min=1e-4)  # (E,)
    vertex_weight = torch.where(in_face, 1.0, OTHER_VERTEX_WEIGHT).to(fitted)
    counts = torch.as_tensor([emphasis.get(family(name), 1.0) for name in targets]
                             + [control_weight] * len(controls)).to(fitted)
    if not (ids[:FACE_VERTICES] == np.arange(FACE_VERTICES)).all():
        raise ValueError("the fitted vertices must start with the whole face area (expressions.fit_vertices)")
    triangles = torch.as_tensor(model.triangles.numpy()[(model.triangles.numpy() < FACE_VERTICES).all(1)])
    target_normals = face_normals(fitted, triangles)
    laplacian = uniform_laplacian(triangles, FACE_VERTICES, fitted.dtype)
    own_detail = torch.sqrt((face_detail(laplacian, fitted - rest_fitted) ** 2).sum(-1).mean(1)).clamp(min=1e-5)  # (E,)
    shared = [model.mixture.logits, model.mixture.offsets, model.mixture.cholesky_raw] if learn_gaussians else []
    shared += [model.zeta, model.bind_offset] if learn_bindings else []
    hold = _drawn_place(model) if learn_gaussians else (lambda: torch.zeros(()))
    for tensor in shared:
        tensor.requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": [raw.log_scale, raw.rotvec, raw.translation],
                                   "lr": POSE_LEARNING_RATE},
                                  {"params": shared, "lr": MIXTURE_LEARNING_RATE}])
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1 / steps))
    started = time.perf_counter()
    for step in range(steps):
        optimizer.zero_grad()
        pose = Pose(raw.log_scale * free, raw.rotvec * turns, raw.translation * free)
        surface = view.forward(pose)
        error = ((surface - fitted) ** 2).sum(-1) * vertex_weight
        turned = ((1 - (face_normals(surface, triangles) * target_normals).sum(-1)) ** 2).mean(-1)  # (E,)
        creased = (face_detail(laplacian, surface - fitted) ** 2).sum(-1).mean(1) / own_detail**2 \
            if crease_weight else 0.0  # (E,): crease_ratio squared
        loss = (counts * (error.mean(1) / own**2 + normal_weight * turned + crease_weight * creased)).sum() \
            / counts.sum() \
            + HOLD_WEIGHT * hold()
        loss.backward()
        optimizer.step()
        decay.step()
        if learn_bindings and (step % RELOCATE_EVERY == RELOCATE_EVERY - 1 or step == steps - 1):
            model.relocate_bindings()  # a binding point that left its triangle reads the one it entered
        if step % 100 == 0 or step == steps - 1:
            log(f"  shared step {step}: loss {loss.item():.4f} ({time.perf_counter() - started:.0f} s)")
    for tensor in shared:
        tensor.requires_grad_(False)
    pose = Pose(raw.log_scale * free, raw.rotvec * turns, raw.translation * free)
    return {name: Pose(pose.log_scale[e].detach(), pose.rotvec[e].detach(), pose.translation[e].detach())
            for e, name in enumerate([*targets, *controls])}


def artist_controls(rig, vertices: np.ndarray, expressions: dict[str, np.ndarray]) -> dict:
    """learn_shared_mixtures' `controls` for ARTIST_CONTROLS among `expressions` (name -> offsets (N, 3)): the jaw
    starts turned as the kit's lower teeth turn, a lid turned 30 degrees down about its X axis."""
    names = list(rig.names)
    controls = {}
    for expression, bone in ARTIST_CONTROLS.items():
        if expression not in expressions or bone not in names:
            continue
        j = names.index(bone)
        if bone == "jaw":
            rest = np.asarray(rig.rest_rotation[j])
            start = Rotation.from_matrix(rest.T @ kit_jaw_turn(vertices, expressions[expression])[0] @ rest).as_rotvec()
        else:
            start = np.array([-np.radians(30.0), 0.0, 0.0])  # about +X, a positive turn lifts the lid
        controls[f"{expression} ({bone} alone)"] = (vertices + expressions[expression], j, start)
    return controls


def _drawn_place(model: ASMModel):
    """A penalty () that holds each bone's components near the mixture the drawn template gave it, in the chart
    (see REACH_IN_SIGMAS): the bone's whole drawn mixture as one covariance (J, 2, 2) measures both. to_canonical
    holds them again in canonical UV, where the spline's Jacobian squeezes the chart (landmarks crowd round the
    nostrils and the lips) and a Gaussian held in the chart could grow fivefold."""
    factor = cholesky_factor(model.mixture.cholesky_raw.detach())
    drawn = (factor @ factor.transpose(-1, -2)).mean(1) + (model.mixture.offsets.detach() ** 2).mean(1)[..., None] \
        * torch.eye(2, dtype=factor.dtype)  # (J, 2, 2)
    whiten = torch.linalg.inv(torch.linalg.cholesky(drawn))  # (J, 2, 2)
    chosen = model.has_gaussians
    # the floor Generate holds every component at (transfer.SPREAD_FLOOR_IN_EDGES), so that the learning does not
    # lean on Gaussians narrower than the mesh's edges, which Generate would widen
    rig = model.rig
    floor = torch.as_tensor(SPREAD_FLOOR_IN_EDGES * local_edge_length(
        rig.chart_uv, model.triangles.numpy()[rig.face_triangles],
        model.mixture.centers(model.zeta).detach().double().numpy())).to(factor).log()  # (J, K)

    def penalty() -> torch.Tensor:
        reach = torch.linalg.norm((whiten[:, None] @ model.mixture.offsets.unsqueeze(-1)).squeeze(-1), dim=-1)
        current = cholesky_factor(model.mixture.cholesky_raw)
        spread = torch.linalg.eigvalsh(whiten[:, None] @ current @ current.transpose(-1, -2)
                                       @ whiten[:, None].transpose(-1, -2)).sqrt()  # (J, K, 2) relative sd
        absolute = torch.linalg.eigvalsh(current @ current.transpose(-1, -2)).sqrt()  # (J, K, 2)
        outside = torch.relu(reach - REACH_IN_SIGMAS) ** 2 + (torch.relu(spread.log().abs() - math.log(SPREAD_FACTOR))
                                                              ** 2).sum(-1) \
            + (torch.relu(floor[..., None] - absolute.log()) ** 2).sum(-1)
        return outside[chosen].sum()

    return penalty


def held_in_canonical(offsets: np.ndarray, covariance: np.ndarray, sigma: np.ndarray, angle: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A bone's canonical components (K, 2), (K, 2, 2) held as _drawn_place holds them in the chart, against its
    drawn ellipse (sigma (2,), angle): means within REACH_IN_SIGMAS of it, standard deviations within SPREAD_FACTOR
    of its own."""
    _, drawn = initial_mixture(sigma[None], np.array([angle]), 1)
    root = np.linalg.cholesky(drawn[0, 0])
    whitened = offsets @ np.linalg.inv(root).T
    reach = np.linalg.norm(whitened, axis=-1, keepdims=True)
    offsets = (whitened * np.minimum(1.0, REACH_IN_SIGMAS / np.maximum(reach, 1e-12))) @ root.T
    return offsets, clamped_covariance(covariance, sigma, SPREAD_FACTOR)


def to_canonical(model: ASMModel, skeleton, jacobian) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The model's face-bone mixtures in canonical UV relative to each anchor: name -> (weights (K,),
    offsets (K, 2), covariances (K, 2, 2)), through the inverse of the spline's Jacobian at the anchor, held near
    the drawn ellipse there (held_in_canonical)."""
    face_bones = np.flatnonzero(~skeleton.has_reach & skeleton.has_gaussians)
    inverse = np.linalg.inv(jacobian(skeleton.anchor_uv[face_bones]))  # (n, 2, 2)
    weights = model.mixture.component_weights().double().numpy()
    offsets = model.mixture.offsets.double().numpy()
    factor = cholesky_factor(model.mixture.cholesky_raw).double().numpy()
    covariance = factor @ np.swapaxes(factor, -1, -2)
    result = {}
    for n, j in enumerate(face_bones):
        held = held_in_canonical(offsets[j] @ inverse[n].T, inverse[n] @ covariance[j] @ inverse[n].T,
                                 skeleton.sigma[j], skeleton.angle[j])
        result[skeleton.names[j]] = (weights[j], *held)
    return result


def symmetric(mixtures: dict[str, tuple]) -> dict[str, tuple]:
    """Left-right symmetric mixtures: each .L bone (and each middle bone) averaged with its mirrored twin, the
    components matched by their means. Returns the .L and middle bones only (the loader mirrors the .R)."""
    result = {}
    for name, (weights, offsets, covariance) in mixtures.items():
        if name.endswith(".R"):
            continue
        twin_weights, twin_offsets, twin_covariance = mixtures[mirrored_name(name)]
        twin_offsets, twin_covariance = mirrored_component(twin_offsets, twin_covariance)
        distance = np.linalg.norm(offsets[:, None] - twin_offsets[None], axis=-1)
        rows, columns = linear_sum_assignment(distance)
        order = columns[np.argsort(rows)]
        result[name] = ((weights + twin_weights[order]) / 2, (offsets + twin_offsets[order]) / 2,
                        (covariance + twin_covariance[order]) / 2)
    return result


def mixtures_json(mixtures: dict[str, tuple], about: dict) -> dict:
    bones = {}
    for name, (weights, offsets, covariance) in sorted(mixtures.items()):
        bones[name] = {"weights": np.round(weights, 6).tolist(), "offsets": np.round(offsets, 6).tolist(),
                       "covariances": np.round(np.stack([covariance[:, 0, 0], covariance[:, 0, 1],
                                                         covariance[:, 1, 1]], -1), 9).tolist()}
    return {"format": "asm-skeleton-mixtures", **about, "gaussians_per_bone": len(next(iter(mixtures.values()))[0]),
            "bones": bones}


def poses_json(poses: dict[str, Pose], names, head_unit: float, about: str) -> dict:
    """Poses in the named-pose format of solver/template/poses.py (degrees, iod units, factors); bones that do not
    move are left out."""
    document = {"about": about, "poses": {}}
    for expression, pose in poses.items():
        channels = {}
        for j, bone in enumerate(names):
            rotation = np.degrees(pose.rotvec[j].double().numpy())
            translation = pose.translation[j].double().numpy() / head_unit
            scale = np.exp(pose.log_scale[j].double().numpy())
            entry = {}
            if np.abs(rotation).max() > 0.05:
                entry["rotation"] = np.round(rotation, 3).tolist()
            if np.abs(translation).max() > 1e-4:
                entry["translation"] = np.round(translation, 5).tolist()
            if np.abs(scale - 1).max() > 1e-3:
                entry["scale"] = np.round(scale, 4).tolist()
            if entry:
                channels[bone] = entry
        document["poses"][expression] = channels
    return document


def ict_setup():
    vertices, triangles, corner_uv = ict_whole_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_whole_head_landmarks.json")
    return vertices, triangles, corner_uv, landmarks, valid


def plain_model(vertices, triangles, corner_uv, landmarks, valid):
    """The rig from the hand-drawn template (no learned Gaussians) and its skeleton and canonical chart map."""
    skeleton = load_skeleton("full", mixtures=None)
    rig, chart_kind = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4),
                                skeleton=skeleton)
    if chart_kind != "projected":
        raise SystemExit(f"expected the projected chart on the ICT head, got {chart_kind!r}")
    face = canonical_face()
    surface = face.surface_count
    alignment, _ = robust_alignment(face.vertices[:surface], landmarks[:surface], valid[:surface],
                                    skeleton.iod_canonical)
    chart = cylindrical_chart(vertices, triangles, alignment.invert)
    mapping = canonical_chart_map(vertices, triangles, chart, landmarks[:surface], valid[:surface],
                                  skeleton.iod_canonical)
    if not np.allclose(mapping.chart_uv, rig.chart_uv):
        raise SystemExit("the chart map does not reproduce the rig's chart")
    return rig, skeleton, mapping


def held_out_rows(rig, vertices, triangles, expressions: dict, graph, log) -> list[dict]:
    rows = []
    model = ASMModel(rig, vertices, triangles, WeightConfig(influence_cap=4))
    view = model.restricted(fit_vertices(vertices))
    for name, offsets in expressions.items():
        posed = pose_fit(model, view, vertices + offsets)
        rows.append(measure(name, vertices, vertices + offsets, posed, triangles, graph))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="learn the template's Gaussians from the ICT-FaceKit's expressions")
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT.relative_to(ROOT)}")
    parser.add_argument("--hold-out", action="store_true",
                        help="learn from half the expression families, measure (A) on the other half")
    parser.add_argument("--steps", type=int, default=SHARED_STEPS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if ict_missing("this benchmark"):
        return 2
    torch.set_num_threads(args.threads)
    log = lambda line: print(line, flush=True)  # noqa: E731
    vertices, triangles, corner_uv, landmarks, valid = ict_setup()
    rig, skeleton, mapping = plain_model(vertices, triangles, corner_uv, landmarks, valid)
    expressions = ict_expressions(None)
    families = sorted({family(name) for name in expressions})
    learned_from = set(families[0::2]) if args.hold_out else set(families)
    training = {n: vertices + o for n, o in expressions.items() if family(n) in learned_from}
    log(f"learning from {len(training)} expressions ({len(learned_from)} families), {args.steps} shared steps")
    model = ASMModel(rig, vertices, triangles, WeightConfig(influence_cap=4))
    view = model.restricted(fit_vertices(vertices))
    started = time.perf_counter()
    controls = artist_controls(rig, vertices, {n: expressions[n] for n in training})
    poses = learn_shared_mixtures(model, view, vertices, training, args.steps, log, controls=controls)
    graph = edge_graph(vertices, triangles)
    for label in controls:
        with torch.no_grad():
            posed = model.forward(poses[label]).double().numpy()
        alone = measure(label.split()[0], vertices, controls[label][0], posed, triangles, graph)
        log(f"{label}: turned {np.degrees(np.linalg.norm(poses[label].rotvec[controls[label][1]].numpy())):.0f} "
            f"degrees, residual {alone['residual']:.1%}, folded {alone['folded']:.2%}, crease {alone['crease']:.2f}")
    log(f"learned in {time.perf_counter() - started:.0f} s")
    shared_rows = []
    for name, target in training.items():
        with torch.no_grad():
            posed = model.forward(poses[name]).double().numpy()
        shared_rows.append(measure(name, vertices, target, posed, triangles, graph))
    log(f"(B) on the drawn template's rig, Gaussians shared by {len(training)} expressions: median residual "
        f"{np.median([r['residual'] for r in shared_rows]):.1%}; "
        + ", ".join(f"{r['expression']} {r['residual']:.1%}" for r in shared_rows if family(r["expression"])
                    in ("eyeBlink", "jawOpen", "mouthSmile", "mouthPucker")))
    mixtures = symmetric(to_canonical(model, skeleton, mapping.jacobian))
    about = {"about": "Gaussian mixtures of the full preset's face bones in canonical UV, relative to each bone's "
                      "anchor, learned by benchmarks/template_mixtures.py from the ICT-FaceKit's expression shapes "
                      "(MIT, see solver/template/SOURCE.md); a .L entry also sets its .R twin, mirrored.",
             "learned_from": sorted(learned_from), "shared_steps": args.steps}
    document = mixtures_json(mixtures, about)
    path = OUTPUT if args.write else args.out / "skeleton_mixtures_candidate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    log(f"wrote {path}")
    if args.write:
        # The poses go with the rig the template now makes (carried through canonical UV and made symmetric, its
        # Gaussians are not the ones fitted): settled on it, the Gaussians held, from where they ended.
        product_rig, _ = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4),
                                   skeleton=load_skeleton("full", mixtures=OUTPUT))
        product = ASMModel(product_rig, vertices, triangles, WeightConfig(influence_cap=4))
        poses = learn_shared_mixtures(product, product.restricted(view.evaluated.numpy()), vertices, training,
                                      args.steps, log, starts=poses, learn_gaussians=False)
        about_poses = ("The ICT-FaceKit's expressions (the kit's names) as poses of the full rig, learned with "
                       "skeleton_mixtures.json by benchmarks/template_mixtures.py (MIT, see SOURCE.md): where a "
                       "pose fit of these expressions starts on any mesh. " + json.loads(
                           (TEMPLATE_DIR / "demo_poses.json").read_text())["about"].split(". ", 1)[1])
        POSES_OUTPUT.write_text(json.dumps(poses_json(poses, rig.names, rig.head_unit, about_poses), indent=1)
                                + "\n")
        log(f"wrote {POSES_OUTPUT}")
    if not args.hold_out:
        return 0
    learned_skeleton = load_skeleton("full", mixtures=path)
    learned_rig, _ = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4),
                               skeleton=learned_skeleton)
    unseen = {n: o for n, o in expressions.items() if family(n) not in learned_from}
    plain_rows = held_out_rows(rig, vertices, triangles, unseen, graph, log)
    learned_rows = held_out_rows(learned_rig, vertices, triangles, unseen, graph, log)
    rows = []
    for plain, learned in zip(plain_rows, learned_rows):
        rows.append({"expression": plain["expression"], "own_rms_mm": plain["own_rms_mm"],
                     "residual_drawn": plain["residual"], "residual_learned": learned["residual"],
                     "folded_drawn": plain["folded"], "folded_learned": learned["folded"]})
        log(f"{plain['expression']:<18} drawn {plain['residual']:6.1%} (folded {plain['folded']:.2%})  "
            f"learned {learned['residual']:6.1%} (folded {learned['folded']:.2%})")
    log(f"held out: median residual drawn {np.median([r['residual_drawn'] for r in rows]):.1%}, learned "
        f"{np.median([r['residual_learned'] for r in rows]):.1%} over {len(rows)} unseen expressions")
    write_csv(args.out / "template_mixtures_held_out.csv", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
