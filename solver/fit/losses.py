"""Named losses and regularisers for fitting (ASM.md §8). Each is a pure function returning a scalar.

Distances are divided by the head unit (inter-ocular distance, iod) so that loss weights mean the same
on every mesh, whatever its units.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..core.geometry import barycentric_points, closest_points_on_mesh, face_normals, vertex_normals
from ..model.weights import Mixture, cholesky_factor
from ..vision.photometric import PATCH_SPACING, patch_consistency, patch_points, sample_colours, visibility
from ..vision.silhouette import INSIDE_BAND, OUTLINE_BAND, contour_vertices, outline_distance, sample_field
from ..vision.stereo import match_surface, triangulate

# iod: correspondences further apart than these are ignored. A scan point is real surface, so it may pull
# from far (a rig placed from landmarks can be 0.3 iod off at the temples); only hair and shoulders are
# beyond that. A rig vertex may lie where a partial scan has nothing, so it pulls only from near.
SCAN_TO_MESH_TRIM = 0.5
MESH_TO_SCAN_TRIM = 0.15
NORMAL_AGREEMENT = 0.5  # cos 60 degrees: with scan normals, pairs whose normals disagree more pull nothing
# (a lip point must not pull the inside of the mouth, nor a cheek point a fold of the ear)


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
    triangles: torch.Tensor | None = None  # (T, 3) long, for point-to-surface losses
    cache: dict = field(default_factory=dict)  # correspondences kept between steps
    refresh: bool = True  # recompute nearest-point correspondences this step
    data_unit: torch.Tensor | float | None = None  # the unit of the data terms: head_unit times the target
    # alignment's scale change since the fit began, so that shrinking the target together with the rig
    # (which shrinks every residual) gains nothing; None: head_unit
    weights: torch.Tensor | None = None  # (N, J) dense capped weights, only for the losses that read them
    bone_points: tuple[torch.Tensor, torch.Tensor] | None = None  # (J, 2, 3) head and tail of each bone, posed and
    # at rest; computed only for the losses that read bones
    cameras: object | None = None  # solver.vision.cameras.Cameras of the photos, for the 2D losses
    posed_views: torch.Tensor | None = None  # (V, N, 3) each photo's posed vertices (its own expression on top
    # of the shared pose), when the fit has per-photo expressions; the 2D losses read it instead of `posed`
    expressions: object | None = None  # solver.model.Pose (V, J, 3) of per-photo expression offsets, masked


def _data_unit(context: FitContext):
    return context.head_unit if context.data_unit is None else context.data_unit


def _trim_unit(context: FitContext) -> float:
    unit = _data_unit(context)
    return float(unit.detach()) if torch.is_tensor(unit) else float(unit)


def vertex_loss(context: FitContext) -> torch.Tensor:
    """Mean squared distance to targets["vertices"] (N, 3), same topology; targets["vertex_weights"] (N,) optional."""
    squared = ((context.posed - context.targets["vertices"]) ** 2).sum(-1) / _data_unit(context)**2
    weights = context.targets.get("vertex_weights")
    return squared.mean() if weights is None else (squared * weights).sum() / weights.sum()


def landmark_loss(context: FitContext) -> torch.Tensor:
    """Mean squared distance of surface points (targets["landmark_vertices"] (L, 3) ids, "landmark_bary" (L, 3))
    to targets["landmarks"] (L, 3)."""
    ids, bary = context.targets["landmark_vertices"], context.targets["landmark_bary"]
    points = (bary.unsqueeze(-1) * context.posed[ids]).sum(-2)
    return (((points - context.targets["landmarks"]) ** 2).sum(-1) / _data_unit(context)**2).mean()


LANDMARK_2D_SCALE = 0.05  # of the face's size in a photo: residuals beyond this count less and less (pseudo-Huber)


def pseudo_huber(squared: torch.Tensor, scale: float) -> torch.Tensor:
    """The robust penalty of squared residuals (...): quadratic below `scale` (a squared residual), linear in the
    residual above it, so that a few wrong detections cannot dominate."""
    return scale * (torch.sqrt(1 + squared / scale) - 1)


def landmark_2d_loss(context: FitContext) -> torch.Tensor:
    """Robust reprojection error of the rig's landmark points (targets["landmark_vertices"], "landmark_bary")
    in every photo: targets["landmarks_2d"] (V, L, 2) detected pixels, "landmark_confidence" (V, L) (0 where
    not detected), "face_size_2d" (V,) the face's size in each photo in pixels (residuals are measured in it, so
    a small photo weighs as much as a large one)."""
    ids, bary = context.targets["landmark_vertices"], context.targets["landmark_bary"]
    points = barycentric_points(_photo_posed(context), ids, bary)
    pixels, _ = context.cameras.project(points)
    squared = ((pixels - context.targets["landmarks_2d"]) ** 2).sum(-1) / context.targets["face_size_2d"][:, None] ** 2
    robust = pseudo_huber(squared, LANDMARK_2D_SCALE ** 2)
    confidence = context.targets["landmark_confidence"]
    return (robust * confidence).sum() / confidence.sum().clamp_min(1e-12)


def _photo_posed(context: FitContext) -> torch.Tensor:
    """(N, 3) or (V, N, 3): what each photo shows."""
    return context.posed if context.posed_views is None else context.posed_views


def photometric_loss(context: FitContext) -> torch.Tensor:
    """Multi-view patch consistency of points on the face (solver/vision/photometric.py): targets["photo_sample_ids"]
    (S, 3), "photo_sample_bary" (S, 3), "photo_images" (list of V (3, h, w)), "photo_image_scale" (V,). The
    visibility of each point in each photo is refreshed with the correspondences (cache "photo_seen")."""
    ids, bary = context.targets["photo_sample_ids"], context.targets["photo_sample_bary"]
    posed = _photo_posed(context)
    if context.refresh or "photo_seen" not in context.cache:
        context.cache["photo_seen"] = visibility(posed.detach(), context.triangles, ids, bary, context.cameras,
                                                 context.head_unit)
    seen = context.cache["photo_seen"]
    points = barycentric_points(posed, ids, bary)
    with torch.no_grad():
        normals = barycentric_points(vertex_normals(posed.detach(), context.triangles), ids, bary)
    spacing = PATCH_SPACING * context.head_unit
    if points.ndim == 2:
        patches = patch_points(points, normals, spacing).reshape(-1, 3)  # (S*K, 3)
    else:  # each photo its own expression: (V, S*K, 3)
        patches = torch.stack([patch_points(p, n, spacing).reshape(-1, 3) for p, n in zip(points, normals)])
    pixels, _ = context.cameras.project(patches)  # (V, S*K, 2)
    colours = sample_colours(context.targets["photo_images"], pixels, context.targets["photo_image_scale"])
    grey = colours.mean(-1).reshape(len(seen), seen.shape[1], -1)  # (V, S, K)
    return patch_consistency(grey, seen.to(grey.dtype))


STEREO_HEIGHT_SCALE = 0.03  # iod (about 2 mm): triangulated points further off the surface count less and less
STEREO_PIXEL_SCALE = 0.01  # of the face's size: the same for the reprojection of the triangulated points
STEREO_REMATCH = 5  # refreshes between two matchings (matching costs about a second per pair of photos)


def stereo_loss(context: FitContext) -> torch.Tensor:
    """Dense multi-view geometry (solver/vision/stereo.py): points of the face matched between every two photos
    are triangulated with the current cameras; the surface is pulled to them along its normal (point-to-plane, so
    the surface may slide under them) and the cameras are pulled to where the two rays meet (bundle adjustment).
    targets["stereo_images"] (V (1, h, w)), "stereo_image_scale" (V,), "photo_sample_ids" / "photo_sample_bary"
    (S, 3) the face's sample points, "face_size_2d" (V,). The matches are made again every STEREO_REMATCH refreshes,
    from the current surface and cameras, as ICP does (cache "stereo_matches")."""
    posed = context.posed if context.posed_views is None else context.posed_views.mean(0)
    ids, bary = context.targets["photo_sample_ids"], context.targets["photo_sample_bary"]
    cameras = context.cameras
    if context.refresh:
        context.cache["stereo_refreshes"] = context.cache.get("stereo_refreshes", -1) + 1
    if "stereo_matches" not in context.cache or (context.refresh
                                                 and context.cache["stereo_refreshes"] % STEREO_REMATCH == 0):
        context.cache["stereo_matches"] = match_surface(
            posed.detach(), context.triangles, ids, bary, cameras, context.targets["stereo_images"],
            context.targets["stereo_image_scale"], context.head_unit)
    matches = context.cache["stereo_matches"]
    if len(matches) == 0:
        return posed.sum() * 0.0
    points = triangulate(cameras, matches).to(posed.dtype)
    surface = barycentric_points(posed, ids[matches.sample], bary[matches.sample])
    height = ((points - surface) * matches.normal.to(posed.dtype)).sum(-1) / _data_unit(context)
    pixels, _ = cameras.project(points)  # (V, M, 2)
    rows = torch.arange(len(matches), device=points.device)
    face_size = context.targets["face_size_2d"].to(points.dtype)
    reprojection = sum((((pixels[views, rows] - seen_at) / face_size[views, None]) ** 2).sum(-1)
                       for views, seen_at in ((matches.view_a, matches.pixel_a), (matches.view_b, matches.pixel_b)))
    confidence = matches.confidence.to(points.dtype)
    robust = pseudo_huber(height ** 2, STEREO_HEIGHT_SCALE ** 2) \
        + pseudo_huber(reprojection, STEREO_PIXEL_SCALE ** 2) * (STEREO_HEIGHT_SCALE / STEREO_PIXEL_SCALE) ** 2
    return (robust * confidence).sum() / confidence.sum()


def silhouette_loss(context: FitContext) -> torch.Tensor:
    """The rig's outline in each photo onto the person's outline (solver/vision/silhouette.py): targets
    ["silhouette_distance"] (list of V (h, w) signed distances in working pixels), "silhouette_scale" (V,) working
    per original pixel, "silhouette_candidates" (C,) the face's vertex ids, "face_size_2d" (V,). Which vertices
    are on the outline is refreshed with the correspondences (cache "contours")."""
    posed = _photo_posed(context)
    cameras = context.cameras
    if context.refresh or "contours" not in context.cache:
        context.cache["contours"] = _outline_contours(context, posed)
    total, count = posed.sum() * 0.0, 0  # zero with a gradient where no photo shows an outline of the face
    for v, (ids, own) in enumerate(context.cache["contours"]):
        if len(ids) == 0:
            continue
        points = posed[v, ids] if posed.ndim == 3 else posed[ids]
        pixels, _ = cameras.project(points)
        field = context.targets["silhouette_distance"][v]
        scale = context.targets["silhouette_scale"][v].to(points.dtype)
        unit = scale * context.targets["face_size_2d"][v]  # the face's size in working pixels
        distance = sample_field(field, pixels[v], scale)
        kept = distance / unit > -INSIDE_BAND  # inside hair and ears
        # each vertex as far from the person's outline as it lies from the rig's own
        squared = ((distance[kept] - own[kept].to(distance)) / unit) ** 2
        total = total + pseudo_huber(squared, LANDMARK_2D_SCALE ** 2).sum()
        count += int(kept.sum())
    return total / max(count, 1)


@torch.no_grad()
def _outline_contours(context: FitContext, posed: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per photo: the ids of the face's vertices on the rig's outer outline there (turned away from the camera and
    within OUTLINE_BAND of the outline of the whole rig's projection) and their (K,) signed distance to it in
    working pixels."""
    cameras = context.cameras
    centres = cameras.centres()
    candidates = context.targets["silhouette_candidates"]
    triangles = context.triangles.cpu().numpy()
    all_normals = vertex_normals(posed.detach(), context.triangles)  # (N, 3), or (V, N, 3) per photo
    found = []
    for v in range(len(cameras.image_size)):
        surface = (posed[v] if posed.ndim == 3 else posed).detach()
        normals = all_normals[v] if all_normals.ndim == 3 else all_normals
        ids = contour_vertices(surface, normals, candidates, centres[v].to(surface.dtype))
        field = context.targets["silhouette_distance"][v]
        scale = context.targets["silhouette_scale"][v].to(surface.dtype)
        pixels, _ = cameras.one(v).project(surface)
        own_field = torch.as_tensor(outline_distance((pixels[0] * scale).cpu().numpy(), triangles,
                                                     tuple(field.shape[-2:])), dtype=surface.dtype)
        own = sample_field(own_field, pixels[0, ids], scale)
        on_outline = own.abs() <= OUTLINE_BAND
        found.append((ids[on_outline], own[on_outline]))
    return found


def focal_prior(context: FitContext) -> torch.Tensor:
    """Lenses near a usual one: squared log ratio of each photo's focal length to targets["typical_focal"] (V,)
    pixels, times "focal_trust" (V,) where given (a lens read from the photo's EXIF is trusted more). Landmarks
    alone trade a long lens for a flatter face; this keeps the lens believable."""
    ratio = context.cameras.log_focal - torch.log(context.targets["typical_focal"].to(context.cameras.log_focal))
    trust = context.targets.get("focal_trust")
    return (ratio ** 2 * (1.0 if trust is None else trust.to(ratio))).mean()


def focal_agreement(context: FitContext) -> torch.Tensor:
    """One lens for every photo: the spread of the focal lengths over each photo's larger side
    (targets["image_side"] (V,) pixels), as the variance of their logs."""
    relative = context.cameras.log_focal - torch.log(context.targets["image_side"].to(context.cameras.log_focal))
    return ((relative - relative.mean()) ** 2).mean()


def expression_prior(context: FitContext) -> torch.Tensor:
    """Small per-photo expression offsets (the shared pose explains what all photos have in common)."""
    offsets = context.expressions
    if offsets is None:
        return context.posed.new_zeros(())
    return (offsets.rotvec ** 2).sum(-1).mean() + ((offsets.translation / context.head_unit) ** 2).sum(-1).mean() \
        + (offsets.log_scale ** 2).sum(-1).mean()


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
    """Uniform-Laplacian smoothness of the displacement field, targets["laplacian"] (sparse N x N).

    The Laplacian is divided by the mean squared edge length (in iod), so that it approximates the second
    derivative of the displacement and a weight means the same on a coarse and a fine mesh."""
    displacement = (context.posed - context.rest) / context.head_unit
    if "mean_edge" not in context.cache:  # the rest mesh does not change during a stage
        corners = context.rest[context.triangles]
        context.cache["mean_edge"] = float((corners - corners.roll(1, dims=1)).norm(dim=-1).mean()) / context.head_unit
    curvature = torch.sparse.mm(context.targets["laplacian"], displacement) / context.cache["mean_edge"] ** 2
    return (curvature ** 2).sum(-1).mean()


def _truncated_mean(squared: torch.Tensor, count: int, trim: float, anchor: torch.Tensor) -> torch.Tensor:
    """Truncated least squares: the kept pairs' squared distances (in iod^2) capped at trim^2, every other of
    the `count` pairs counted as trim^2. Unlike a mean over the kept pairs only, this does not rise when a
    far point comes within reach, so the losses of different steps (and refreshes) compare."""
    capped = torch.clamp(squared, max=trim**2)
    return (capped.sum() + (count - len(squared)) * trim**2) / max(count, 1) + anchor.sum() * 0.0


def scan_to_mesh(context: FitContext) -> torch.Tensor:
    """Point-to-surface: each scan point (targets["scan_points"] (P, 3)) to its nearest point on the posed
    surface, truncated at SCAN_TO_MESH_TRIM iod (pairs further apart, or whose normals disagree by more than
    NORMAL_AGREEMENT with targets["scan_normals"] (P, 3) if given, count as the trim). Nearest points are
    found on the detached surface when `refresh` and kept as (triangle, barycentric) pairs, so the loss stays
    differentiable in the vertices."""
    scan = context.targets["scan_points"]
    if context.refresh or "scan_to_mesh" not in context.cache:
        posed = context.posed.detach().cpu().double().numpy()
        triangles = context.triangles.cpu().numpy()
        _, triangle, bary, distance = closest_points_on_mesh(scan.detach().cpu().double().numpy(), posed, triangles)
        keep = distance <= SCAN_TO_MESH_TRIM * _trim_unit(context)
        if "scan_normals" in context.targets:
            normals = face_normals(posed, triangles[triangle])
            scan_normals = context.targets["scan_normals"].detach().cpu().double().numpy()
            keep &= (normals * scan_normals).sum(1) > NORMAL_AGREEMENT
        context.cache["scan_to_mesh"] = (torch.as_tensor(triangles[triangle[keep]], device=scan.device),
                                         torch.as_tensor(bary[keep], dtype=scan.dtype, device=scan.device),
                                         torch.as_tensor(np.flatnonzero(keep), device=scan.device))
    corners, bary, kept = context.cache["scan_to_mesh"]
    surface = (bary.unsqueeze(-1) * context.posed[corners]).sum(-2)
    return _truncated_mean(((surface - scan[kept]) ** 2).sum(-1) / _data_unit(context)**2, len(scan),
                           SCAN_TO_MESH_TRIM, context.posed)


def mesh_to_scan(context: FitContext) -> torch.Tensor:
    """Each mesh vertex (targets["fit_vertices"] (M,) ids, default all) to its nearest scan point, truncated
    at MESH_TO_SCAN_TRIM iod so that parts the scan lacks (a face-only scan of a full head) pull nothing."""
    scan = context.targets["scan_points"]
    ids = context.targets.get("fit_vertices")
    posed = context.posed if ids is None else context.posed[ids]
    if context.refresh or "mesh_to_scan" not in context.cache:
        # The scan moves with the alignment stage, so its tree is rebuilt with each refresh.
        distance, nearest = cKDTree(scan.detach().cpu().double().numpy()).query(posed.detach().cpu().double().numpy())
        keep = distance <= MESH_TO_SCAN_TRIM * _trim_unit(context)
        if "scan_normals" in context.targets:
            normals = vertex_normals(context.posed.detach().cpu().double().numpy(), context.triangles.cpu().numpy())
            normals = normals if ids is None else normals[ids.cpu().numpy()]
            scan_normals = context.targets["scan_normals"].detach().cpu().double().numpy()[nearest]
            keep &= (normals * scan_normals).sum(1) > NORMAL_AGREEMENT
        context.cache["mesh_to_scan"] = (torch.as_tensor(np.flatnonzero(keep), device=scan.device),
                                         torch.as_tensor(nearest[keep], device=scan.device))
    kept, nearest = context.cache["mesh_to_scan"]
    return _truncated_mean(((posed[kept] - scan[nearest]) ** 2).sum(-1) / _data_unit(context)**2, len(posed),
                           MESH_TO_SCAN_TRIM, context.posed)


def symmetry_prior(context: FitContext) -> torch.Tensor:
    """Left and right bones move as mirror images: for each pair (targets["mirror_pairs"] (K, 2) ids), the
    motion of the left bone's head and tail against the mirrored motion of the right one's, with
    targets["mirror"] (3, 3) the reflection across the face's plane. In iod."""
    posed, rest = context.bone_points
    motion = (posed - rest) / context.head_unit
    pairs, mirror = context.targets["mirror_pairs"], context.targets["mirror"]
    return ((motion[pairs[:, 0]] - motion[pairs[:, 1]] @ mirror.T) ** 2).sum(-1).mean()


def weight_smoothness(context: FitContext) -> torch.Tensor:
    """Uniform-Laplacian smoothness of the capped skinning weights over the surface, targets["laplacian"]
    (sparse N x N): large where a vertex's weights differ from its neighbours' (the top-k cap's creases)."""
    return (torch.sparse.mm(context.targets["laplacian"], context.weights) ** 2).sum(-1).mean()


BONE_LOSSES = ("symmetry",)  # losses that need FitContext.bone_points
WEIGHT_LOSSES = ("weight_smoothness",)  # losses that need FitContext.weights
CAMERA_LOSSES = ("landmarks_2d", "photometric", "focal_prior", "silhouette", "focal_agreement", "stereo")  # losses that need FitContext.cameras

LOSSES = {
    "vertex": vertex_loss,
    "landmarks": landmark_loss,
    "landmarks_2d": landmark_2d_loss,
    "pose_prior": pose_prior,
    "bind_offset_prior": bind_offset_prior,
    "gaussian_size": gaussian_size_bounds,
    "smoothness": deformation_smoothness,
    "scan_to_mesh": scan_to_mesh,
    "mesh_to_scan": mesh_to_scan,
    "symmetry": symmetry_prior,
    "weight_smoothness": weight_smoothness,
    "photometric": photometric_loss,
    "expression_prior": expression_prior,
    "focal_prior": focal_prior,
    "silhouette": silhouette_loss,
    "focal_agreement": focal_agreement,
    "stereo": stereo_loss,
}


def mirror_targets(names, bind_positions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pairs of bones named *.L / *.R and the reflection across the plane that best separates them.

    The plane's normal is the mean direction from right to left bone heads at rest; it passes through
    their midpoints. Returns {"mirror_pairs": (K, 2) long, "mirror": (3, 3)}; K may be 0.
    """
    index = {name: j for j, name in enumerate(names)}
    pairs = [(j, index[name[:-2] + ".R"]) for j, name in enumerate(names)
             if name.endswith(".L") and name[:-2] + ".R" in index]
    dtype, device = bind_positions.dtype, bind_positions.device
    if not pairs:
        return {"mirror_pairs": torch.zeros((0, 2), dtype=torch.long, device=device),
                "mirror": torch.eye(3, dtype=dtype, device=device)}
    ids = torch.as_tensor(pairs, device=device)
    across = bind_positions[ids[:, 0]] - bind_positions[ids[:, 1]]
    normal = torch.nn.functional.normalize(torch.nn.functional.normalize(across, dim=-1).mean(0), dim=0)
    return {"mirror_pairs": ids, "mirror": torch.eye(3, dtype=dtype, device=device) - 2 * torch.outer(normal, normal)}


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
