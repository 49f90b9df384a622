"""Expressions: can an artist pose the generated rig into the ICT-FaceKit's artist-made expressions?

    .venv/bin/python -m benchmarks.expressions [--expressions jawOpen eyeBlink_L ...] [--pictures] [--out DIR]

The rig is generated (full preset, cap 4) on the whole ICT-FaceKit head, mouth socket, teeth, tongue and eyes
included, from MediaPipe landmarks found on renders of it (cached in benchmarks/results/), as Generate Rig does.
Each of the kit's expression shapes (neutral + offset) is then a target:

- (A) bone poses alone, the generated Gaussians and bindings unchanged: what an artist can reach by posing. The
  poses start from the expression's pose in solver/template/expression_poses.json where it has one (learned
  with the template's Gaussians on this very head: benchmarks/template_mixtures.py) and settle together under the
  learning's loss (face-weighted vertices, each face triangle's normal, the error's Laplacian);
  `residual_from_rest` is the same from an L-BFGS pose fit from the rest pose.
- (B) the Gaussians and the bindings shared by all the expressions of the run, each with its own pose, fitted
  together.

Per expression, over the kit's face area (vertices 0-9408), in millimetres:
- `own_rms_mm`: the expression's own RMS displacement; `rms_mm`: the posed rig's RMS distance to the target;
  `residual`: their ratio (0: the rig reaches the shape, 1: no better than the neutral face);
- `folded`: the share of face triangles turned more than 60 degrees from the target's normal (`folded_target`: the
  target against the neutral face, for scale);
- `crease`: the creases and ripples a fold misses: the RMS of the error field's uniform Laplacian over the face, over
  that of the expression's own displacement (crease_ratio);
- `inside_rms_mm`, `inside_max_mm`, `inside_folded`: the same distance over the mouth's inside (the kit's mouth
  socket, gums, tongue and teeth), and the share of its triangles folded;
- where the target opens the lips (lip vertex pairs closer than 1.5 mm at rest and 5 mm apart in the target): the
  median opening of those pairs in the target and in the posed rig, and the smallest distance between them;
- where the target closes the lids or the lips (pairs more than 5 mm apart at rest that meet in the target):
  their median gap in the target and in the posed rig.

Before the table, the jaw's hinge: the kit's jawOpen turns the lower teeth rigidly about an axis; how far the rig's
jaw head (the point the bone turns about) lies from that axis, and how far the lower teeth land from the kit's if
the jaw bone only turns by the kit's angle, with no translation (what an artist animating the jaw's rotation sees).

Then the artist's first test: the jaw bone alone turned by the kit's angle about its head, measured as a row is
(expressions_jaw.csv, with the hinge's numbers).

Writes expressions.csv (and, with --pictures, expressions.png: target beside the posed rig, close up on the
mouth and eyes) into --out (default benchmarks/results). Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import CM_TO_MM, FACE_VERTICES, RESULTS, SHARED, ict_landmarks, ict_missing  # noqa: E402
from benchmarks.common import write_csv  # noqa: E402
from solver.core.config import WeightConfig  # noqa: E402
from solver.core.geometry import edge_graph, face_normals, spread_subset  # noqa: E402
from solver.fit.engine import Stage, fit  # noqa: E402
from solver.fit.losses import uniform_laplacian  # noqa: E402
from solver.model import ASMModel, Pose  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.template.poses import EXPRESSION_POSES, load_named_poses  # noqa: E402
from solver.template.canonical import parse_obj, triangulate_faces  # noqa: E402

PICTURED = ("jawOpen", "eyeBlink_L", "mouthSmile_L", "mouthPucker", "browInnerUp_L")
FOLD_DEGREES = 60.0
ACROSS_SURFACE_CM = 1.0  # pairs this far apart along the rest surface lie on two sides of an opening
LIP_CONTACT_CM, LIP_OPEN_CM = 0.15, 0.5  # lip pairs: this close at rest, this far apart in the target
CLOSE_APART_CM, CLOSE_MEET_CM = 0.5, 0.1  # closing pairs (lids, lips): this far apart at rest, this close in the target
OTHER_FIT_VERTICES = 3000  # fitted besides the face area: a spread subset of the mouth's inside, the eyes, the head
OTHER_VERTEX_WEIGHT = 1.0  # and they count as much in the fits (at 0.1 the jaw-open pose tore the mouth's inside)
POSE_STAGES = (  # L-BFGS on the poses: the vertex loss is smooth in them, and Adam stalls on small shapes
    Stage(name="pose", groups=("pose",), losses={"vertex": 1.0, "pose_prior": 1e-6}, iterations=80,
          learning_rate=1.0, optimizer="lbfgs", patience=10, early_stop=1e-5),
)


def ict_whole_head():
    """The kit's whole neutral head (every part): vertices (N, 3) cm, triangles (T, 3), corner UVs (T, 3, 2)."""
    vertices, uvs, faces = parse_obj(SHARED / "ict_facekit" / "generic_neutral_mesh.obj")
    triangles, uv_ids = triangulate_faces(faces)
    return vertices, triangles, uvs[uv_ids]


def ict_expressions(names: list[str] | None) -> dict[str, np.ndarray]:
    """The kit's expression offsets (N, 3) in cm by name (only those in the kit's own list)."""
    shapes = np.load(SHARED / "ict_facekit" / "ict_shapes.npz")
    chosen = {}
    for name, offsets, in_kit in zip(shapes["expression_names"], shapes["expression_offsets"],
                                     shapes["expression_in_kit_list"]):
        if in_kit and (not names or str(name) in names):
            chosen[str(name)] = offsets.astype(np.float64)
    missing = set(names or ()) - set(chosen)
    if missing:
        raise SystemExit(f"unknown expression(s) {sorted(missing)}; the kit has {list(shapes['expression_names'])}")
    return chosen


TEETH = (17039, 21450)  # the kit's teeth vertices (ict_regions.json, inclusive)
MOUTH_INSIDE = ((11248, 13293), (14062, 21450))  # its mouth socket, and its gums, tongue and teeth (inclusive)


def kit_jaw_turn(vertices: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rigid motion (rotation (3, 3), translation (3,)) the kit's jawOpen (`offsets` (N, 3)) gives the lower
    teeth (the teeth that move), and those teeth's vertex ids."""
    teeth = np.arange(TEETH[0], TEETH[1] + 1)
    moved = teeth[np.linalg.norm(offsets[teeth], axis=1) > 0.05]
    rest, posed = vertices[moved], vertices[moved] + offsets[moved]
    u, _, vt = np.linalg.svd((rest - rest.mean(0)).T @ (posed - posed.mean(0)))
    rotation = vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    return rotation, posed.mean(0) - rest.mean(0) @ rotation.T, moved


def hinge_report(model: ASMModel, vertices: np.ndarray, turn: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict:
    """How far the rig's jaw head lies from the kit's jawOpen axis, and the lower teeth's RMS distance from the
    kit's when the jaw only turns by the kit's rotation about its head (mm); `turn`: kit_jaw_turn's result."""
    rotation, translation, teeth = turn
    angle = np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1))
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    axis /= np.linalg.norm(axis)
    on_axis = np.linalg.lstsq(np.eye(3) - rotation, translation, rcond=None)[0]  # a point the motion keeps
    with torch.no_grad():
        head = model.bind_positions()[list(model.rig.names).index("jaw")].double().numpy()
    away = (head - on_axis) - axis * ((head - on_axis) @ axis)
    turned = (vertices[teeth] - head) @ rotation.T + head
    target = vertices[teeth] @ rotation.T + translation
    return {"kit_angle_deg": float(np.degrees(angle)), "hinge_from_axis_mm": float(np.linalg.norm(away) * CM_TO_MM),
            "teeth_turn_only_mm": float(np.sqrt((np.linalg.norm(turned - target, axis=1) ** 2).mean()) * CM_TO_MM)}


def jaw_alone(model: ASMModel, rotation: np.ndarray) -> np.ndarray:
    """(N, 3) the rig posed by the jaw bone alone, turned by `rotation` (3, 3, the mesh's frame) about its head."""
    names = list(model.rig.names)
    jaw = names.index("jaw")
    rest = np.asarray(model.rig.rest_rotation[jaw])
    pose = Pose.zeros(len(names), dtype=model.vertices.dtype)
    pose.rotvec[jaw] = torch.as_tensor(Rotation.from_matrix(rest.T @ rotation @ rest).as_rotvec())
    with torch.no_grad():
        return model.forward(pose).double().numpy()


LID_ALONE_DEGREES = np.arange(5, 65, 5)  # the upper lid bone's turns tried in the artist's blink


def lid_alone(model: ASMModel, rest: np.ndarray, target: np.ndarray, triangles: np.ndarray, graph,
              side: str = "L") -> dict:
    """An artist's blink: the upper lid bone alone turned down about its own X axis (the face's left-right: the
    template's lids point forward), by the turn of LID_ALONE_DEGREES that brings the face closest to `target`
    (N, 3); that turn's measure() row with its "degrees"."""
    names = list(model.rig.names)
    lid = names.index(f"lid_upper.{side}")
    best = None
    for degrees in LID_ALONE_DEGREES:
        pose = Pose.zeros(len(names), dtype=model.vertices.dtype)
        pose.rotvec[lid, 0] = -np.radians(float(degrees))  # about +X, a positive turn lifts the lid
        with torch.no_grad():
            posed = model.forward(pose).double().numpy()
        row = {**measure(f"eyeBlink_{side}", rest, target, posed, triangles, graph), "degrees": float(degrees)}
        if best is None or row["residual"] < best["residual"]:
            best = row
    return best


def opening_pairs(rest: np.ndarray, target: np.ndarray, graph, near: float, far: float, opens: bool) -> np.ndarray:
    """(P, 2) face vertex pairs across an opening: far apart along the surface (ACROSS_SURFACE_CM) and either
    opening (closer than `near` at rest, further than `far` in the target) or, with `opens` False, closing
    (closer than `near` in the target, further than `far` at rest)."""
    closer, further = (rest, target) if opens else (target, rest)
    pairs = np.array(sorted(cKDTree(closer[:FACE_VERTICES]).query_pairs(near)), dtype=np.int64).reshape(-1, 2)
    pairs = pairs[np.linalg.norm(further[pairs[:, 0]] - further[pairs[:, 1]], axis=1) > far]
    if len(pairs) == 0:
        return pairs
    starts, back = np.unique(pairs[:, 0], return_inverse=True)
    along = dijkstra(graph, directed=False, indices=starts, limit=ACROSS_SURFACE_CM)[back, pairs[:, 1]]
    return pairs[along >= ACROSS_SURFACE_CM]


def pair_distances(points: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1) * CM_TO_MM


def folded_share(surface: np.ndarray, target: np.ndarray, face_triangles: np.ndarray) -> float:
    """Share of the triangles whose normal on `surface` is turned more than FOLD_DEGREES from the target's."""
    a, b = face_normals(surface, face_triangles), face_normals(target, face_triangles)
    return float(((a * b).sum(1) < np.cos(np.radians(FOLD_DEGREES))).mean())


def face_detail(laplacian: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """The face area's part of `field` (..., N, 3) through the uniform Laplacian (F, F) of the face's triangles
    (solver.fit.losses.uniform_laplacian: each vertex less the mean of its neighbours) -> (..., F, 3)."""
    face = field[..., :FACE_VERTICES, :]
    lead = face.shape[:-2]
    columns = face.reshape(-1, FACE_VERTICES, 3).permute(1, 0, 2).reshape(FACE_VERTICES, -1)  # (F, B * 3)
    return torch.sparse.mm(laplacian, columns).reshape(FACE_VERTICES, -1, 3).permute(1, 0, 2).reshape(
        *lead, FACE_VERTICES, 3)


def crease_ratio(rest: np.ndarray, target: np.ndarray, posed: np.ndarray, face_triangles: np.ndarray) -> float:
    """The posed surface's creases and ripples against the target, for scale over the target's own: the RMS of
    the face_detail of the error field over the face, divided by that of the expression's own displacement. A smooth
    deformation close to the target is well below 1 (the template's learning minimises its square: CREASE_WEIGHT)."""
    laplacian = uniform_laplacian(torch.as_tensor(face_triangles), FACE_VERTICES, torch.float64)
    def rms(field: np.ndarray) -> float:
        return float(torch.sqrt((face_detail(laplacian, torch.as_tensor(field)) ** 2).sum(-1).mean()))

    return rms(posed - target) / max(rms(target - rest), 1e-12)


def measure(name: str, rest: np.ndarray, target: np.ndarray, posed: np.ndarray, triangles: np.ndarray, graph) -> dict:
    """One expression's row (see the module's docstring); graph: the rest mesh's edge_graph."""
    face_triangles = triangles[(triangles < FACE_VERTICES).all(1)]
    displacement = np.linalg.norm(target[:FACE_VERTICES] - rest[:FACE_VERTICES], axis=1) * CM_TO_MM
    error = np.linalg.norm(posed[:FACE_VERTICES] - target[:FACE_VERTICES], axis=1) * CM_TO_MM
    own, rms = float(np.sqrt((displacement**2).mean())), float(np.sqrt((error**2).mean()))
    row = {"expression": name, "own_rms_mm": own, "rms_mm": rms, "residual": rms / own,
           "max_mm": float(error.max()), "folded": folded_share(posed, target, face_triangles),
           "folded_target": folded_share(rest, target, face_triangles),
           "crease": crease_ratio(rest, target, posed, face_triangles)}
    inside = np.concatenate([np.arange(first, last + 1) for first, last in MOUTH_INSIDE])
    inside_error = np.linalg.norm(posed[inside] - target[inside], axis=1) * CM_TO_MM
    inside_triangles = triangles[np.isin(triangles, inside).all(1)]
    row.update(inside_rms_mm=float(np.sqrt((inside_error**2).mean())), inside_max_mm=float(inside_error.max()),
               inside_folded=folded_share(posed, target, inside_triangles))
    lips = opening_pairs(rest, target, graph, LIP_CONTACT_CM, LIP_OPEN_CM, opens=True)
    if len(lips) >= 3:
        row.update(lip_pairs=len(lips), lip_open_target_mm=float(np.median(pair_distances(target, lips))),
                   lip_open_mm=float(np.median(pair_distances(posed, lips))),
                   lip_min_gap_mm=float(pair_distances(posed, lips).min()))
    closing = opening_pairs(rest, target, graph, CLOSE_MEET_CM, CLOSE_APART_CM, opens=False)
    if len(closing) >= 3:
        row.update(closing_pairs=len(closing), close_gap_target_mm=float(np.median(pair_distances(target, closing))),
                   close_gap_mm=float(np.median(pair_distances(posed, closing))))
    return row


def fit_vertices(vertices: np.ndarray, spread: int = OTHER_FIT_VERTICES) -> np.ndarray:
    """Every vertex of the face area and a spread subset of the rest (inside the mouth, the eyes, the head)."""
    others = np.arange(FACE_VERTICES, len(vertices))
    return np.concatenate([np.arange(FACE_VERTICES), others[spread_subset(vertices[others], spread)]])


def pose_fit(model: ASMModel, view: ASMModel, target: np.ndarray, start: dict | None = None) -> np.ndarray:
    """(A): the bone poses that bring the rig closest to `target`, everything else as generated, from the rest pose
    or from `start` ({"log_scale", "rotvec", "translation": (J, 3)}). `view` is `model` restricted to the vertices
    fitted (no parameter belongs to a vertex); all are measured."""
    with torch.no_grad():
        for key in ("log_scale", "rotvec", "translation"):
            tensor = getattr(model.pose, key)
            tensor.copy_(torch.as_tensor(start[key]) if start is not None else torch.zeros_like(tensor))
    ids = view.evaluated.numpy()
    fitted = torch.as_tensor(target[ids], dtype=model.vertices.dtype)
    weights = torch.as_tensor(np.where(ids < FACE_VERTICES, 1.0, OTHER_VERTEX_WEIGHT), dtype=model.vertices.dtype)
    fit(view, {"vertices": fitted, "vertex_weights": weights}, list(POSE_STAGES))
    with torch.no_grad():
        return model.forward().double().numpy()


def render_pictures(rows: list[tuple[str, np.ndarray, np.ndarray]], triangles: np.ndarray, landmarks: np.ndarray,
                    output: Path) -> None:
    """Target beside posed rig for each pictured expression, close up on the mouth or on the eyes (front and
    40 degrees): only the face's triangles near there are drawn, so the renders frame them."""
    import tempfile

    import bpy
    from mathutils import Matrix

    from asm_blender.scene_io.mesh import mesh_from_arrays
    from asm_blender.scene_io.objects import remove_object
    from asm_blender.scene_io.views import render_views, tile_images

    rest = rows[0][1]
    face = triangles[(triangles < FACE_VERTICES).all(1)]
    mouth = np.linalg.norm(rest - landmarks[[13, 14]].mean(0), axis=1) < 3.2  # MediaPipe inner lip middle
    eye_line = landmarks[[33, 263]].mean(0)  # MediaPipe outer eye corners
    eyes = (np.abs(rest[:, 1] - eye_line[1] - 0.8) < 2.6) & (np.abs(rest[:, 0] - eye_line[0]) < 6.0)
    bpy.ops.wm.read_homefile(use_empty=True)
    with tempfile.TemporaryDirectory() as tmp:
        picture_rows = []
        for name, target, posed in rows[1:]:
            region = eyes if name.startswith(("eye", "brow")) else mouth
            keep = face[region[face].all(1)]
            used, corners = np.unique(keep, return_inverse=True)  # only the drawn vertices: they set the framing
            cells = []
            for label, points in (("ICT artist shape", target), ("rig, bone poses only", posed)):
                obj = mesh_from_arrays(f"{name} {label}", points[used], corners.reshape(-1, 3))
                obj.matrix_world = Matrix.Rotation(np.pi / 2, 4, 'X')  # the kit looks along +Z, Y up
                views = render_views(obj, Path(tmp) / f"{name}_{len(cells)}", yaw_degrees=(0.0, 40.0), size=360,
                                     label=f"{name}: {label}")
                cells.extend(v.image_path for v in views)
                remove_object(obj)
            picture_rows.append(cells)
        tile_images(picture_rows, output)


def shared_fit(model: ASMModel, view: ASMModel, vertices: np.ndarray, triangles: np.ndarray, expressions: dict,
               rows: list[dict], graph, log) -> None:
    """(B): the rig's Gaussians and bindings shared by all `expressions` at once, each with its own pose
    (benchmarks/template_mixtures.py's fit, from the product's rig); adds residual_shared, folded_shared and
    crease_shared to `rows`. Changes `model`'s Gaussians and bindings."""
    from benchmarks.template_mixtures import SHARED_STEPS, learn_shared_mixtures

    started = time.perf_counter()
    poses = learn_shared_mixtures(model, view, vertices, {n: vertices + o for n, o in expressions.items()},
                                  SHARED_STEPS, lambda line: None, learn_bindings=True)
    for row in rows:
        with torch.no_grad():
            posed = model.forward(poses[row["expression"]]).double().numpy()
        shared = measure(row["expression"], vertices, vertices + expressions[row["expression"]], posed, triangles,
                         graph)
        row.update(residual_shared=shared["residual"], folded_shared=shared["folded"], crease_shared=shared["crease"])
    log(f"(B) Gaussians shared by the {len(rows)} expressions, each its own pose: median residual "
        f"{np.median([r['residual_shared'] for r in rows]):.1%}, median crease "
        f"{np.median([r['crease_shared'] for r in rows]):.2f}, worst fold {max(r['folded_shared'] for r in rows):.2%}"
        f" ({time.perf_counter() - started:.0f} s)")


def run(names: list[str] | None, pictures: bool, out: Path, sharpness: float = WeightConfig.opening_sharpness,
        log=lambda line: print(line, flush=True)) -> list[dict]:
    vertices, triangles, corner_uv = ict_whole_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_whole_head_landmarks.json")
    started = time.perf_counter()
    rig, chart = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4))
    log(f"ICT whole head: {len(vertices)} vertices, {int(valid.sum())} landmarks, {len(rig.names)} bones, "
        f"{chart} chart, placed in {time.perf_counter() - started:.1f} s")
    model = ASMModel(rig, vertices, triangles, WeightConfig(influence_cap=4, opening_sharpness=sharpness))
    kit = ict_expressions(["jawOpen", "eyeBlink_L"])  # the artist's tests below: one read of the kit's shapes
    jaw_open = kit["jawOpen"]
    turn = kit_jaw_turn(vertices, jaw_open)
    hinge = hinge_report(model, vertices, turn)
    log(f"jaw hinge: {hinge['hinge_from_axis_mm']:.1f} mm from the axis the kit's jawOpen turns the lower teeth about "
        f"({hinge['kit_angle_deg']:.1f} degrees); turned alone by that angle, the jaw puts the lower teeth "
        f"{hinge['teeth_turn_only_mm']:.1f} mm RMS from the kit's")
    view = model.restricted(fit_vertices(vertices))
    graph = edge_graph(vertices, triangles)
    alone = measure("jawOpen", vertices, vertices + jaw_open, jaw_alone(model, turn[0]), triangles, graph)
    log(f"the jaw bone alone turned by the kit's angle (an artist's first test): jawOpen residual "
        f"{alone['residual']:.1%}, folded {alone['folded']:.2%}, crease {alone['crease']:.2f}, lips open "
        f"{alone.get('lip_open_mm', float('nan')):.1f} of {alone.get('lip_open_target_mm', float('nan')):.1f} mm, "
        f"inside the mouth {alone['inside_rms_mm']:.1f} mm")
    blink = lid_alone(model, vertices, vertices + kit["eyeBlink_L"], triangles, graph)
    log(f"the upper lid bone alone turned down (an artist's blink), {blink['degrees']:.0f} degrees, the closest of "
        f"{LID_ALONE_DEGREES[0]}-{LID_ALONE_DEGREES[-1]}: eyeBlink_L residual {blink['residual']:.1%}, folded "
        f"{blink['folded']:.2%}, crease {blink['crease']:.2f}, closing gap "
        f"{blink.get('close_gap_mm', float('nan')):.1f} (target {blink.get('close_gap_target_mm', float('nan')):.1f}) mm")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "expressions_jaw.csv", [{**hinge, **{f"jaw_alone_{k}": v for k, v in alone.items()
                                                         if k != "expression"},
                                             **{f"lid_alone_{k}": v for k, v in blink.items() if k != "expression"}}])
    from benchmarks.template_mixtures import SHARED_STEPS, learn_shared_mixtures

    learned = load_named_poses(rig.names, rig.head_unit, EXPRESSION_POSES) if EXPRESSION_POSES.is_file() else {}
    expressions = ict_expressions(names)
    targets = {name: vertices + offsets for name, offsets in expressions.items()}
    as_pose = lambda arrays: Pose(*(torch.as_tensor(arrays[k], dtype=model.vertices.dtype)  # noqa: E731
                                    for k in ("log_scale", "rotvec", "translation")))
    started = time.perf_counter()
    rest_starts = {}
    for name, target in targets.items():  # from the rest pose: an L-BFGS pose fit each
        pose_fit(model, view, target)
        rest_starts[name] = Pose(*(t.detach().clone() for t in (model.pose.log_scale, model.pose.rotvec,
                                                                 model.pose.translation)))
    pose_sets = {}
    for label, starts in (("from_rest", rest_starts),
                          ("learned", {n: as_pose(learned[n]) if n in learned else rest_starts[n] for n in targets})):
        # then all together with the learning's loss (face-weighted vertices, each triangle's normal, creases), the
        # Gaussians held: the poses an artist would keep, without creases the vertex loss alone accepts
        pose_sets[label] = learn_shared_mixtures(model, view, vertices, targets, SHARED_STEPS, lambda line: None,
                                                 starts=starts, learn_gaussians=False)
    seconds = (time.perf_counter() - started) / len(targets)
    rows, pictured = [], [("neutral", vertices, vertices)]
    for name, target in targets.items():
        measured = {}
        for label, poses in pose_sets.items():
            with torch.no_grad():
                measured[label] = model.forward(poses[name]).double().numpy()
        posed = measured["learned"]
        from_rest = measure(name, vertices, target, measured["from_rest"], triangles, graph)
        row = {**measure(name, vertices, target, posed, triangles, graph), "seconds": seconds,
               "residual_from_rest": from_rest["residual"], "folded_from_rest": from_rest["folded"]}
        rows.append(row)
        log(f"{name:<18} own {row['own_rms_mm']:6.2f} mm  (A) {row['rms_mm']:5.2f} mm = {row['residual']:5.1%}  "
            f"folded {row['folded']:6.2%} (target {row['folded_target']:.2%}), crease {row['crease']:.2f}, from rest "
            f"{row['residual_from_rest']:5.1%}"
            + f"  inside the mouth {row['inside_rms_mm']:.1f} mm (at most {row['inside_max_mm']:.1f})"
            + (f"  lips open {row['lip_open_mm']:.1f} of {row['lip_open_target_mm']:.1f} mm" if "lip_pairs" in row
               else "")
            + (f"  closing gap {row['close_gap_mm']:.1f} (target {row['close_gap_target_mm']:.1f}) mm"
               if "closing_pairs" in row else ""))
        if name in PICTURED:
            pictured.append((name, target, posed))
    residuals = np.array([r["residual"] for r in rows])
    log(f"(A) median residual {np.median(residuals):.1%} over {len(rows)} expressions, median crease "
        f"{np.median([r['crease'] for r in rows]):.2f}; worst fold "
        f"{max(r['folded'] for r in rows):.2%} ({max(rows, key=lambda r: r['folded'])['expression']}); from the "
        f"rest pose: {np.median([r['residual_from_rest'] for r in rows]):.1%}")
    shared_fit(model, view, vertices, triangles, expressions, rows, graph, log)
    write_csv(out / "expressions.csv", rows)
    if pictures and len(pictured) > 1:
        render_pictures(pictured, triangles, landmarks, out / "expressions.png")
        log(f"wrote {out / 'expressions.png'}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="the generated rig posed into the ICT-FaceKit's expressions")
    parser.add_argument("--expressions", nargs="+", default=None, help="only these (default: all in the kit's list)")
    parser.add_argument("--pictures", action="store_true", help="render target beside rig for " + ", ".join(PICTURED))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--opening-sharpness", type=float, default=WeightConfig.opening_sharpness,
                        help="the weights' gate across the mouth and eyes (0: none, the rig before openings)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if ict_missing("this benchmark"):
        return 2
    torch.set_num_threads(args.threads)
    run(args.expressions, args.pictures, args.out, args.opening_sharpness)
    return 0


if __name__ == "__main__":
    sys.exit(main())
