"""Fit a rig to a 3D scan of any topology: landmark similarity alignment, then point-to-surface stages.

    scan = prepare_scan(scan_vertices, scan_triangles, scan_landmarks, scan_valid)
    fitted = fit_to_scan(model, rig_landmarks, rig_valid, scan, ScanFitSettings("balanced"))

The scan's MediaPipe landmarks (found on renders of it, like the rig's) give the starting similarity;
the stages then move the rig's parameters and the alignment together. The scan may be partial (a face
without the back of the head): correspondences further than the trims of solver/fit/losses.py pull nothing, and only the
rig's vertices near the face are drawn to the scan.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from asm_protocol.landmarks import NOSE_TIP, OUTER_EYE_CORNERS, SURFACE_LANDMARKS

from ..core.errors import ASMInputError
from ..core.geometry import (Similarity, closest_points_on_mesh, face_normals, similarity_transform, triangle_areas,
                             vertex_normals)
from ..model import ASMModel
from ..rig.transfer import robust_alignment
from ..template.skeleton import load_skeleton
from .engine import ALL_GROUPS, Alignment, FitResult, Stage, fit
from .landmark_surface import CROP, face_vertices, landmark_surface
from .losses import uniform_laplacian

SCAN_LOSSES = {"scan_to_mesh": 1.0, "mesh_to_scan": 0.5, "landmarks": 0.1}
QUALITY_STEPS = {"fast": (150, 250), "balanced": (300, 800), "best": (400, 1500)}  # (pose steps, refine steps)


@dataclass(frozen=True)
class ScanFitSettings:
    quality: str = "balanced"
    groups: tuple[str, ...] = ALL_GROUPS  # what the refine stage may move (ablations drop some)
    symmetry: float = 0.0  # weight of the left-right symmetry prior on bone motion (0: off)
    smoothness: float = 0.003  # weight of the smoothness of the displacement (0: off): without it the fit copies
    # a scan's noise with folds
    pose_prior: float = 1e-3  # weight of the small-pose prior
    surface_samples: int = 20000  # extra scan points sampled on its triangles (area-weighted)
    scan_radius: float = 1.5  # only scan points within this many eye distances of its nose tip are fitted
    # (a head rig has no shoulders: a bust scan's chest would only pull the neck)
    normal_check: bool = False  # pairs whose normals disagree pull nothing (off: pairs moving in and out made
    # the fit drift)
    coarse: bool = False  # a first stage on the big bones only (no better where tried)
    seed: int = 0

    def __post_init__(self):
        if self.quality not in QUALITY_STEPS:
            raise ASMInputError(f"unknown quality {self.quality!r}; use one of {list(QUALITY_STEPS)}")
        if self.symmetry < 0 or self.smoothness < 0 or self.surface_samples < 0:
            raise ASMInputError("symmetry, smoothness and surface_samples must not be negative")

    def stages(self, bone_names=()) -> list[Stage]:
        """The stages for a rig with these bones: with coarse, first only the bones the game preset also has
        (large regions: head shape, jaw, cheeks) so that small bones do not take up what big ones should."""
        pose_steps, refine_steps = QUALITY_STEPS[self.quality]
        extra = {name: weight for name, weight in (("symmetry", self.symmetry), ("smoothness", self.smoothness),
                                                   ("pose_prior", self.pose_prior)) if weight > 0}
        losses = {**SCAN_LOSSES, **extra}
        coarse = tuple(name for name in load_skeleton("game").names if name in bone_names) if self.coarse else ()
        stages = []
        if 0 < len(coarse) < len(bone_names):
            stages.append(Stage(name="coarse", groups=("pose", "alignment"), losses=losses,
                                iterations=pose_steps // 2, learning_rate=0.005, refresh_every=5, patience=40,
                                bones=coarse))
        stages.append(Stage(name="pose", groups=("pose", "alignment"), losses=losses, iterations=pose_steps,
                            learning_rate=0.005, refresh_every=5, patience=40))
        if tuple(self.groups) != ("pose",):
            stages.append(Stage(name="refine", groups=tuple(self.groups) + ("alignment",),
                                losses={**SCAN_LOSSES, **extra, "gaussian_size": 1e-3, "bind_offset_prior": 1e-5},
                                iterations=refine_steps, learning_rate=0.003, refresh_every=5, patience=100,
                                final_learning_rate=0.0003))
        return stages


@dataclass
class Scan:
    """A scan ready to fit: its points (vertices plus area-weighted samples) and landmarks, in its own units."""

    points: np.ndarray  # (P, 3)
    normals: np.ndarray  # (P, 3) unit surface normals at the points (their orientation is checked when fitting)
    vertices: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (T, 3) the non-degenerate ones
    landmarks: np.ndarray  # (478, 3)
    landmark_valid: np.ndarray  # (478,) bool
    notes: list[str] = field(default_factory=list)

    @property
    def eye_distance(self) -> float:
        """Outer-eye-corner distance in scan units (about 90 mm on an adult)."""
        return float(np.linalg.norm(self.landmarks[OUTER_EYE_CORNERS[0]] - self.landmarks[OUTER_EYE_CORNERS[1]]))

    @property
    def nose_tip(self) -> np.ndarray:
        return self.landmarks[NOSE_TIP]


def surface_samples(vertices: np.ndarray, triangles: np.ndarray, count: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(count, 3) points uniformly distributed over the surface (area-weighted triangles, Dirichlet barycentrics)
    and the (count,) triangle each lies on."""
    generator = np.random.default_rng(seed)
    areas = triangle_areas(vertices, triangles)
    chosen = generator.choice(len(triangles), size=count, p=areas / areas.sum())
    weights = generator.dirichlet(np.ones(3), size=count)
    points = np.einsum("pc,pcd->pd", weights, vertices[triangles[chosen]])
    return points, chosen


def prepare_scan(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray, landmark_valid: np.ndarray,
                 name: str = "the scan", samples: int = 20000, seed: int = 0) -> Scan:
    """Check a scan and add surface samples. Zero-area triangles are dropped with a note; a scan without
    usable triangles, non-finite coordinates or without eye-corner and nose landmarks is refused."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    valid = np.asarray(landmark_valid, dtype=bool) & np.isfinite(landmarks).all(1)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ASMInputError(f"{name} has no vertices (expected a (V, 3) array, got {vertices.shape})")
    if not np.isfinite(vertices).all():
        raise ASMInputError(f"{name} has NaN or infinite vertex coordinates (first at vertex "
                            f"{int(np.flatnonzero(~np.isfinite(vertices).all(1))[0])}); clean the mesh first")
    if len(triangles) and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise ASMInputError(f"{name}: a triangle refers to a vertex that does not exist")
    notes = []
    scale = float(np.ptp(vertices, axis=0).max()) or 1.0
    areas = triangle_areas(vertices, triangles) if len(triangles) else np.zeros(0)
    degenerate = areas <= 1e-12 * scale**2
    if degenerate.any():
        notes.append(f"{name}: ignored {int(degenerate.sum())} zero-area triangle(s) of {len(triangles)}")
        triangles = triangles[~degenerate]
    if len(triangles) == 0:
        raise ASMInputError(f"{name} has no triangles with area; a scan must be a surface, not only points")
    needed = (NOSE_TIP, *OUTER_EYE_CORNERS)
    if landmarks.shape != (478, 3) or not valid[list(needed)].all():
        raise ASMInputError(f"{name}: the nose tip and both outer eye corners must be among its landmarks "
                            "(no face was found on it, or it looks another way than assumed)")
    normals = vertex_normals(vertices, triangles)
    if samples:
        sampled, on_triangle = surface_samples(vertices, triangles, samples, seed)
        points = np.concatenate([vertices, sampled])
        normals = np.concatenate([normals, face_normals(vertices, triangles[on_triangle])])
    else:
        points = vertices
    return Scan(points, normals, vertices, triangles, landmarks, valid, notes)


def landmark_start(rig_vertices: np.ndarray, rig_triangles: np.ndarray, rig_landmarks: np.ndarray,
                   rig_valid: np.ndarray, scan: Scan) -> tuple[Similarity, dict]:
    """The similarity from the scan's landmarks onto the rig's, and the landmark targets for fitting
    (surface points of the rig as triangle corners + barycentrics, with the scan's positions)."""
    both = scan.landmark_valid[:SURFACE_LANDMARKS] & np.asarray(rig_valid, bool)[:SURFACE_LANDMARKS]
    if both.sum() < 10:
        raise ASMInputError(f"only {both.sum()} landmarks were found on both the rig's mesh and the scan; "
                            "at least 10 are needed to align them")
    rig_points = np.where(both[:, None], np.asarray(rig_landmarks, dtype=np.float64)[:SURFACE_LANDMARKS], 0.0)
    _, triangle, bary, _ = closest_points_on_mesh(rig_points, rig_vertices, rig_triangles)
    on_rig = (bary[:, :, None] * rig_vertices[rig_triangles[triangle]]).sum(1)
    # Landmarks that disagree with the face's shape (outline points on hair or ears, a missed detection)
    # are left out of the alignment and of the fit.
    start, inliers = robust_alignment(scan.landmarks[:SURFACE_LANDMARKS], on_rig, both, scan.eye_distance)
    both = np.flatnonzero(inliers)
    triangle, bary = triangle[both], bary[both]
    targets = {"landmark_vertices": torch.as_tensor(rig_triangles[triangle]),
               "landmark_bary": torch.as_tensor(bary), "landmarks": torch.as_tensor(scan.landmarks[both])}
    return start, targets


def oriented_normals(scan: Scan, start: Similarity, rest: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """The scan's normals, flipped if they point into the head: a scan's winding says nothing reliable about
    its outside, so they are compared with the rig's rest normals at the landmark alignment."""
    _, nearest = cKDTree(rest).query(start.apply(scan.vertices))
    agreement = (scan.normals[:len(scan.vertices)] @ start.rotation.T * vertex_normals(rest, triangles)[nearest]).sum(1)
    return scan.normals if np.median(agreement) >= 0 else -scan.normals


def alignment_from(similarity: Similarity, dtype=torch.float32, device="cpu") -> Alignment:
    alignment = Alignment.identity(dtype, device)
    with torch.no_grad():
        alignment.log_scale.fill_(math.log(similarity.scale))
        alignment.rotvec.copy_(torch.as_tensor(Rotation.from_matrix(similarity.rotation).as_rotvec()))
        alignment.translation.copy_(torch.as_tensor(similarity.translation))
    return alignment


def icp_alignment(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, start: Similarity,
                  iterations: int = 15, keep: float = 0.9) -> Similarity:
    """Refine the similarity `start` (points -> mesh) by iterated closest points: each round pairs every point
    with its closest surface point, drops the worst (1 - keep) and solves the similarity (Umeyama)."""
    current = start
    for _ in range(iterations):
        closest, _, _, distance = closest_points_on_mesh(current.apply(points), vertices, triangles)
        inliers = distance <= np.quantile(distance, keep)
        current = similarity_transform(points[inliers], closest[inliers])
    return current


def scan_errors(scan: Scan, alignment: Similarity, posed: np.ndarray, triangles: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, Similarity]:
    """Distance of every scan vertex to the posed rig surface in scan units, after `alignment` refined by ICP
    on the face crop (CROP eye distances around the nose tip); which vertices lie in the crop; the alignment
    used. Every model and baseline is measured this way (the ICP-aligned RMSE of the field)."""
    in_crop = np.linalg.norm(scan.vertices - scan.nose_tip, axis=1) <= CROP * scan.eye_distance
    alignment = icp_alignment(scan.vertices[in_crop], posed, triangles, alignment)
    distance = closest_points_on_mesh(alignment.apply(scan.vertices), posed, triangles)[3] / alignment.scale
    return distance, in_crop, alignment


TIGHT_CROP = 0.6  # eye distances: the tighter face crop (about 60 mm on an adult)


def compare_to_scan(posed: np.ndarray, triangles: np.ndarray, rig_points: np.ndarray, rig_found: np.ndarray,
                    scan: Scan) -> dict:
    """A fitted surface measured against a scan as the field does: the scan's landmarks start a similarity onto
    the surface (scale allowed), ICP refines it on the scan's face crop (CROP eye distances of its nose tip), then
    RMS point-to-surface over that crop and over TIGHT_CROP, in the surface's units; landmark NME: the surface's
    landmark points (rig_points (478, 3), rig_found (478,)) to the scan's, over the scan's eye distance.

    Returns rms, rms_tight, nme, distance (scan vertices, surface units), in_crop and the similarity."""
    start, _ = landmark_start(posed, triangles, rig_points, rig_found, scan)
    distance, in_crop, alignment = scan_errors(scan, start, posed, triangles)
    distance = distance * alignment.scale
    tight = np.linalg.norm(scan.vertices - scan.nose_tip, axis=1) <= TIGHT_CROP * scan.eye_distance
    both = np.flatnonzero(np.asarray(rig_found, bool)[:SURFACE_LANDMARKS] & scan.landmark_valid[:SURFACE_LANDMARKS])
    gaps = np.linalg.norm(alignment.apply(scan.landmarks[both]) - np.asarray(rig_points)[both], axis=1)
    return {"rms": float(np.sqrt((distance[in_crop] ** 2).mean())),
            "rms_tight": float(np.sqrt((distance[tight] ** 2).mean())),
            "nme": float(gaps.mean() / (alignment.scale * scan.eye_distance)), "distance": distance,
            "in_crop": in_crop, "alignment": alignment}


def turned_triangles(rest: np.ndarray, posed: np.ndarray, triangles: np.ndarray, limit_degrees: float = 60.0,
                     only: np.ndarray | None = None) -> float:
    """Fraction of triangles (or of the triangles `only`) whose normal turned by more than `limit_degrees`
    from rest to posed, after removing the best rotation of the whole mesh: folds and crumples."""
    rotation = similarity_transform(rest, posed).rotation
    chosen = triangles if only is None else triangles[only]
    agreement = (face_normals(posed, chosen) * (face_normals(rest, chosen) @ rotation.T)).sum(1)
    return float(np.mean(agreement < np.cos(np.radians(limit_degrees))))


@dataclass
class ScanFit:
    fit: FitResult
    start: Similarity  # scan -> rig where the fit began: the landmarks' alignment refined by ICP
    alignment: Similarity  # scan -> rig, after fitting (before the final ICP of the error measure)
    error_before: np.ndarray  # (V,) scan vertex to the unfitted rig (after the landmark alignment), scan units
    error_after: np.ndarray  # (V,) scan vertex to the fitted rig, scan units
    in_crop: np.ndarray  # (V,) bool
    turned: float = 0.0  # fraction of the rig's face triangles turned by more than 60 degrees (folds)
    seconds: float = 0.0

    def rms(self, which: str = "after", crop: bool = True) -> float:
        errors = self.error_after if which == "after" else self.error_before
        errors = errors[self.in_crop] if crop else errors
        return float(np.sqrt((errors**2).mean()))


def _similarity(alignment: dict) -> Similarity:
    return Similarity(float(alignment["scale"]), np.asarray(alignment["rotation"], dtype=np.float64),
                      np.asarray(alignment["translation"], dtype=np.float64))


def fit_to_scan(model: ASMModel, rig_landmarks: np.ndarray, rig_valid: np.ndarray, scan: Scan,
                settings: ScanFitSettings = ScanFitSettings(), progress=None,
                fit_vertices: np.ndarray | None = None) -> ScanFit:
    """Fit `model` (in place) to `scan`. progress(stage, step, loss) -> True cancels (the best so far stays).
    fit_vertices: rig vertices drawn to the scan (default: the face region around the nose tip)."""
    started = time.perf_counter()
    rest = model.vertices.detach().cpu().double().numpy()
    triangles = model.triangles.cpu().numpy()
    dtype, device = model.vertices.dtype, model.vertices.device
    start, landmark_targets = landmark_start(rest, triangles, rig_landmarks, rig_valid, scan)
    if fit_vertices is None:
        fit_vertices = face_vertices(rest, np.asarray(rig_landmarks), rig_valid)
    near = np.linalg.norm(scan.points - scan.nose_tip, axis=1) <= settings.scan_radius * scan.eye_distance
    targets = {"scan_points": torch.as_tensor(scan.points[near], dtype=dtype, device=device),
               "fit_vertices": torch.as_tensor(np.asarray(fit_vertices), device=device),
               **{k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype)
                  for k, v in landmark_targets.items()}}
    if settings.normal_check:
        targets["scan_normals"] = torch.as_tensor(oriented_normals(scan, start, rest, triangles)[near], dtype=dtype,
                                                  device=device)
    if settings.smoothness > 0:
        targets["laplacian"] = uniform_laplacian(model.triangles.cpu(), len(rest), dtype).to(device)
    with torch.no_grad():
        before = model.forward().double().cpu().numpy()
    # The do-nothing baseline: the unfitted rig after the landmarks' alignment refined by ICP on the face.
    # The fit starts from that alignment.
    error_before, in_crop, start = scan_errors(scan, start, before, triangles)
    alignment = alignment_from(start, dtype, device)
    result = fit(model, targets, settings.stages(model.rig.names), progress=progress, seed=settings.seed,
                 alignment=alignment)
    result.notes[:0] = scan.notes
    final = _similarity(result.alignment)
    with torch.no_grad():
        after = model.forward().double().cpu().numpy()
    error_after, _, _ = scan_errors(scan, final, after, triangles)
    face = np.flatnonzero(np.isin(triangles, np.asarray(fit_vertices)).all(1))
    turned = turned_triangles(rest, after, triangles, only=face)
    return ScanFit(result, start, final, error_before, error_after, in_crop, turned, time.perf_counter() - started)


def compare_surfaces(surfaces: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray, landmark_valid: np.ndarray,
                     scan: Scan) -> dict:
    """`compare_to_scan` for surfaces (K, N, 3) of one rig mesh (triangles (T, 3)), whose surface landmarks at rest
    (landmarks (478, 3), landmark_valid (478,)) move with each surface. Per surface (K,): rms, rms_tight, nme,
    distance (K, S), in_crop (S,), and the similarity scan -> surface as alignment_scale, _rotation, _translation."""
    surfaces = np.asarray(surfaces, dtype=float)
    triangles = np.asarray(triangles)
    which, ids, bary = landmark_surface(surfaces[0], triangles, landmarks, landmark_valid)
    found = np.zeros(len(landmarks), dtype=bool)
    found[which] = True
    rows = []
    for posed in surfaces:
        points = np.zeros((len(found), 3))
        points[which] = (bary.numpy()[..., None] * posed[ids.numpy()]).sum(1)
        rows.append(compare_to_scan(posed, triangles, points, found, scan))
    return {"rms": np.array([r["rms"] for r in rows]), "rms_tight": np.array([r["rms_tight"] for r in rows]),
            "nme": np.array([r["nme"] for r in rows]), "distance": np.stack([r["distance"] for r in rows]),
            "in_crop": rows[0]["in_crop"], "alignment_scale": np.array([r["alignment"].scale for r in rows]),
            "alignment_rotation": np.stack([r["alignment"].rotation for r in rows]),
            "alignment_translation": np.stack([r["alignment"].translation for r in rows])}
