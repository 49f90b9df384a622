"""The ARKit-52 expressions carried onto any rigged mesh through the ASM chart.

The bundled library (solver/template/arkit_expressions.npz, made from the ICT-FaceKit by
scripts/build_arkit_expressions.py) holds, for each vertex of the kit's face area: its place in the canonical UV
(the MediaPipe canonical face's, the space every chart is warped to), its side of the mouth and of each eye
(solver/rig/openings.py), its neutral position and its 52 expression offsets, both in the canonical face's frame
and centimetres.

On a user's mesh the same warp is made for the rig's chart (`canonical_chart_uv`: a thin-plate spline from the
landmarks' chart UVs to their canonical UVs), and each vertex reads the offsets of the kit's vertices nearest to it
in canonical UV *on its own side* of the mouth and the eyes (the lips and the lids lie almost on top of each other in
UV), scaled to the head and turned into the mesh's frame by the rig's alignment (`carry_expressions`). A vertex that
reads nothing (the back of the head, outside the kit's face area) gets a zero offset with a low weight; one far from
the kit's surface at its UV (the inside of the mouth) and the loose rigid parts (eyeballs, teeth) get no weight.

ARKit's names: the kit's `_L`/`_R` are the subject's left/right, as ARKit's `Left`/`Right` (eyeBlink_L moves the
vertices at +X, the kit's subject's left); ARKit's browInnerUp and cheekPuff are the kit's two halves together;
`tongueOut` is not in the kit: it is kept with zero offsets (a rest pose and an empty shape key), so that face
capture apps that look for all 52 names find them.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from asm_protocol.choices import ARKIT_NAMES

from ..core.errors import ASMInputError
from ..core.geometry import closest_points_on_mesh
from ..model.rig_definition import RigDefinition
from ..model.uv_chart import FAR_AWAY
from ..template.canonical import canonical_face
from .transfer import OUTLIER_DISTANCE, TPS_SMOOTHING

LIBRARY_FILE = Path(__file__).resolve().parents[1] / "template" / "arkit_expressions.npz"

NOT_IN_KIT = ("tongueOut",)  # kept with zero offsets (see the module's docstring)
UNSIDED = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")  # a movement to one side: the kit's names are ARKit's


def kit_sources(arkit_name: str) -> tuple[str, ...]:
    """The ICT-FaceKit expressions whose offsets add up to one ARKit expression (none for tongueOut)."""
    if arkit_name in NOT_IN_KIT:
        return ()
    if arkit_name in UNSIDED:
        return (arkit_name,)
    if arkit_name in ("browInnerUp", "cheekPuff"):
        return (f"{arkit_name}_L", f"{arkit_name}_R")
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if arkit_name.endswith(side):
            return (arkit_name[: -len(side)] + suffix,)
    return (arkit_name,)


@dataclass(frozen=True)
class ExpressionLibrary:
    """Expressions on the kit's face area, K vertices, in the canonical face's frame (cm)."""

    names: tuple[str, ...]  # (E,) ARKit names
    canonical_uv: np.ndarray  # (K, 2)
    sides: np.ndarray  # (K, C) opening sides in [-1, 1] (mouth, eye.L, eye.R)
    neutral: np.ndarray  # (K, 3)
    offsets: np.ndarray  # (E, K, 3)
    uv_spacing: float  # median distance of a kit vertex to its nearest neighbour in canonical UV

    def select(self, names) -> "ExpressionLibrary":
        """The library restricted to `names` (in that order); unknown names are refused."""
        names = tuple(names)
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ASMInputError(f"unknown expression(s) {unknown}; the library has ARKit's 52 names "
                                f"({', '.join(self.names[:3])}, ...)")
        rows = [self.names.index(n) for n in names]
        return ExpressionLibrary(names, self.canonical_uv, self.sides, self.neutral, self.offsets[rows],
                                 self.uv_spacing)


@lru_cache(maxsize=2)
def load_library(path: Path = LIBRARY_FILE) -> ExpressionLibrary:
    """The bundled ARKit library (see the module's docstring)."""
    if not Path(path).is_file():
        raise ASMInputError(f"the expression library {Path(path).name} is missing from the solver; reinstall the "
                            "extension")
    with np.load(path) as data:
        uv = data["canonical_uv"].astype(np.float64)
        spacing = float(np.median(cKDTree(uv).query(uv, k=2)[0][:, 1]))
        return ExpressionLibrary(tuple(str(n) for n in data["names"]), uv, data["sides"].astype(np.float64),
                                 data["neutral"].astype(np.float64), data["offsets"].astype(np.float64), spacing)


def charted_vertices(rig: RigDefinition, triangles: np.ndarray, outer_only: bool = False) -> np.ndarray:
    """(N,) bool: the vertices whose chart place means a place of the face: those of the chart's face island and, in
    a projected chart, the inner layers that share its places (inside the lips, the eye sockets; not with
    `outer_only`); never those of a UV map's other islands, which overlap the face's in UV."""
    triangles = np.asarray(triangles)
    island = np.asarray(rig.triangle_island)
    face_island = island[rig.face_triangles[0]]
    on_face = np.zeros(len(rig.chart_uv), dtype=bool)
    on_face[triangles[rig.face_triangles].reshape(-1)] = True
    if outer_only:
        return on_face
    elsewhere = np.zeros(len(rig.chart_uv), dtype=bool)
    elsewhere[triangles[(island >= 0) & (island != face_island)].reshape(-1)] = True
    placed = (np.abs(rig.chart_uv) < 0.5 * FAR_AWAY).all(1)
    return on_face | (placed & ~elsewhere)


def canonical_chart_uv(vertices: np.ndarray, triangles: np.ndarray, rig: RigDefinition, landmarks: np.ndarray,
                       valid: np.ndarray, outer_only: bool = False) -> np.ndarray:
    """(N, 2) each vertex's place in the canonical face's UV, NaN where the chart says nothing (charted_vertices).

    A thin-plate spline from the landmarks' places in the rig's (normalised) chart to their canonical UVs, the inverse
    of the warp that placed the rig (solver/rig/transfer.py), so that a canonical UV point means the same place of
    the face on every mesh. vertices (N, 3), triangles (T, 3), landmarks (L >= 468, 3) with valid (L,)."""
    face = canonical_face()
    surface = face.surface_count
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64)
    landmarks = np.asarray(landmarks, dtype=np.float64)[:surface]
    valid = np.asarray(valid, dtype=bool)[:surface] & np.isfinite(landmarks).all(1)
    head_unit = float(rig.head_unit)
    residual = np.linalg.norm(rig.alignment.apply(face.vertices[:surface]) - np.where(valid[:, None], landmarks, 0),
                              axis=1)
    used = np.flatnonzero(valid & (residual <= OUTLIER_DISTANCE * head_unit))
    face_tris = triangles[rig.face_triangles]
    _, hit, bary, distance = closest_points_on_mesh(landmarks[used], vertices, face_tris)
    near = distance < 0.1 * head_unit
    if near.sum() < 20:
        raise ASMInputError(f"only {near.sum()} landmarks lie on the rig's face chart; generate the rig again")
    chart_uv = (bary[near, :, None] * rig.chart_uv[face_tris[hit[near]]]).sum(1)
    warp = RBFInterpolator(chart_uv, face.uv[used[near]], kernel="thin_plate_spline", smoothing=TPS_SMOOTHING)
    result = np.full((len(vertices), 2), np.nan)
    inside = charted_vertices(rig, triangles, outer_only)
    result[inside] = warp(rig.chart_uv[inside])
    return result


@dataclass(frozen=True)
class CarrySettings:
    neighbours: int = 4  # kit vertices averaged per vertex (inverse-distance weights in canonical UV)
    candidates: int = 32  # nearest kit vertices looked at, before those on the other side of an opening are dropped
    side_conflict: float = 0.25  # a kit vertex with sum_c relu(-s_vertex,c * s_kit,c) above this is on the other side
    reach: tuple[float, float] = (2.0, 5.0)  # kit UV spacings: the data's weight fades from 1 to 0 between these
    depth: tuple[float, float] = (0.12, 0.25)  # iod from the kit's surface at the same UV: weight 1 -> 0 (mouth inside)
    outside_weight: float = 0.05  # weight of a zero offset where the kit has no data (the back of the head)


@dataclass(frozen=True)
class CarriedExpressions:
    """Expression targets on a mesh: offsets (E, M, 3) of the vertices `vertex_ids` (M,), in the mesh's frame and
    units, with a weight (M,) in [0, 1] saying how much the data says there."""

    names: tuple[str, ...]
    vertex_ids: np.ndarray
    offsets: np.ndarray
    weights: np.ndarray


def _ramp(value: np.ndarray, full: float, none: float) -> np.ndarray:
    """1 below `full`, 0 above `none`, linear between."""
    return np.clip((none - value) / (none - full), 0.0, 1.0)


def carry_expressions(library: ExpressionLibrary, rig: RigDefinition, vertices: np.ndarray, canonical_uv: np.ndarray,
                      vertex_ids: np.ndarray, rigid: np.ndarray | None = None,
                      settings: CarrySettings = CarrySettings()) -> CarriedExpressions:
    """The library's expressions on the mesh's vertices `vertex_ids` (M,) (see the module's docstring).

    vertices (N, 3) rest positions, canonical_uv (N, 2) from canonical_chart_uv (NaN off the face island), rigid (N,)
    the bone each vertex follows rigidly (-1: none; ASMModel.rigid) or None."""
    ids = np.asarray(vertex_ids, dtype=np.int64)
    if rig.openings is None or rig.openings.vertex.shape[1] != library.sides.shape[1]:
        raise ASMInputError("the rig has no sides of the mouth and the eyes (made by an older version): generate the "
                            "rig again")
    alignment = rig.alignment
    points = alignment.invert(np.asarray(vertices, dtype=np.float64)[ids])  # in the canonical frame
    uv, sides = canonical_uv[ids], rig.openings.vertex[ids]
    on_chart = np.isfinite(uv).all(1)
    offsets = np.zeros((len(library.names), len(ids), 3))
    weights = np.full(len(ids), settings.outside_weight)
    if on_chart.any():
        tree = cKDTree(library.canonical_uv)
        count = min(settings.candidates, len(library.canonical_uv))
        distance, nearest = tree.query(uv[on_chart], k=count)
        conflict = np.maximum(-sides[on_chart][:, None, :] * library.sides[nearest], 0.0).sum(-1)
        distance = np.where(conflict > settings.side_conflict, np.inf, distance)
        order = np.argsort(distance, axis=1, kind="stable")[:, :settings.neighbours]
        distance = np.take_along_axis(distance, order, 1)
        nearest = np.take_along_axis(nearest, order, 1)
        spacing = library.uv_spacing
        share = np.where(np.isfinite(distance), 1.0 / (distance + 0.05 * spacing) ** 2, 0.0)
        readable = share.sum(1) > 0
        share[readable] /= share[readable].sum(1, keepdims=True)
        reach = _ramp(np.where(readable, distance[:, 0], np.inf) / spacing, *settings.reach)
        kit_point = (share[..., None] * library.neutral[nearest]).sum(1)
        iod = _canonical_iod()
        depth = _ramp(np.linalg.norm(points[on_chart] - kit_point, axis=1) / iod, *settings.depth)
        read = np.einsum("pn,epnc->epc", share, library.offsets[:, nearest])  # (E, P, 3) canonical cm
        offsets[:, on_chart] = reach[None, :, None] * read
        weights[on_chart] = np.maximum(reach * depth, settings.outside_weight * (1.0 - reach))
    if rigid is not None:
        weights[np.asarray(rigid)[ids] >= 0] = 0.0
    offsets = alignment.scale * offsets @ alignment.rotation.T  # into the mesh's frame and units
    return CarriedExpressions(library.names, ids, offsets, weights)


@lru_cache(maxsize=1)
def _canonical_iod() -> float:
    """cm between the canonical face's outer eye corners (MediaPipe points 33 and 263)."""
    vertices = canonical_face().vertices
    return float(np.linalg.norm(vertices[33] - vertices[263]))
