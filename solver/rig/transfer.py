"""Template transfer (ASM.md §7): place the canonical skeleton on a mesh from its MediaPipe landmarks.

1. Similarity-align the canonical face to the mesh landmarks: rotation for rest orientations, scale for
   the head unit (iod = outer-eye-corner distance).
2. Normalise the mesh's chart with a 2D similarity so that its landmark UVs best match the canonical
   UVs: Gaussian sizes in the template then mean the same thing on every mesh, and so does eps_root.
3. Fit a thin-plate spline canonical UV -> normalised chart UV on the landmark correspondences and push
   binding points and Gaussian means through it, covariances through its Jacobian.
4. Bones beyond the canonical face (ears, neck, skull) are placed in 3D (landmarks + reach) and bound
   to the nearest chart point on the mesh itself; where the mesh has no surface there (a face-only
   mask), they are clamped with a warning.
5. A bone with a pivot (the jaw) has its head, the point it turns about, placed from the mesh's landmarks at the
   ear side of the face outline (`place_pivot`); its binding point stays where its Gaussians are. Where the mouth
   is open in the rest mesh, the jaw's rest frame is turned open by the lips' angle seen from the hinge
   (`rest_jaw_opening`), so that the jaw's rest pose is the mesh as it is and closing it is a turn back.
6. An eye bone's head moves to the centre of its eyeball where the mesh has one, and bones that turn about another
   (the lids) take that bone's head (`place_eye_centres`): a lid turned about the eyeball's centre slides over it.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

from ..core.arrays import checked_array
from ..core.config import WeightConfig
from ..core.errors import ASMInputError
from ..core.geometry import Similarity, closest_points_on_mesh, similarity_transform, triangle_centre_tree
from ..model.binding import locate
from ..model.rig_definition import RigDefinition
from ..model.rigid_parts import eyeball_centres
from ..model.uv_chart import Chart
from ..template.canonical import canonical_face
from ..template.skeleton import Pivot, Skeleton
from .openings import opening_sides

TPS_SMOOTHING = 1e-5  # canonical-UV units squared; tolerates a few centimetre-scale landmark slips
JACOBIAN_STEP = 1e-3
FAR_FROM_SURFACE = 0.35  # iod: a beyond-face bone whose surface target is further than this is clamped
MIN_LANDMARKS = 40
OUTLIER_DISTANCE = 0.2  # iod: further than this from the aligned canonical face, a landmark is not trusted
SKIN_OVER_PIVOT = 0.1  # iod: the mesh's surface lies this near the pivot's height and depth on each side of the face
JAW_BONE = "jaw"
INNER_LIPS, MOUTH_CORNERS = (13, 14), (78, 308)  # MediaPipe: inner lip line's middle (upper, lower), inner corners
OPEN_MOUTH_RATIO = 0.25  # inner lip gap / mouth width above which the rest mouth is open (relaxed closed lips: < 0.15)
# A Gaussian narrower than the mesh's edges there gives one row of vertices its bone and the next row none: a
# sawtooth when posed. Each component's standard deviations are held at least this many local edge lengths (the
# median over the chart triangles nearest its centre, in the normalised chart).
SPREAD_FLOOR_IN_EDGES = 1.5
FLOOR_NEIGHBOURS = 12


def robust_alignment(canonical: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, iod_canonical: float,
                     rounds: int = 4) -> tuple[Similarity, np.ndarray]:
    """Similarity canonical -> mesh fitted to the inlier landmarks; returns it and the (L,) inlier mask."""
    if valid.sum() < MIN_LANDMARKS:
        raise ASMInputError(f"only {valid.sum()} of {len(valid)} landmarks were found; at least "
                            f"{MIN_LANDMARKS} are needed to place the rig")
    inliers = valid.copy()
    for _ in range(rounds):
        if inliers.sum() < MIN_LANDMARKS:
            break
        alignment = similarity_transform(canonical[inliers], landmarks[inliers])
        residual = np.linalg.norm(alignment.apply(canonical) - np.where(valid[:, None], landmarks, 0.0), axis=1)
        updated = valid & (residual <= OUTLIER_DISTANCE * alignment.scale * iod_canonical)
        if (updated == inliers).all():
            break
        inliers = updated
    if inliers.sum() < MIN_LANDMARKS:
        raise ASMInputError(f"only {inliers.sum()} landmarks agree with a face shape; the detection failed "
                            "(check that the mesh is a face and faces the camera)")
    return similarity_transform(canonical[inliers], landmarks[inliers]), inliers


def _face_island(chart: Chart, landmark_triangle: np.ndarray) -> np.ndarray:
    """Chart triangles of the island that holds most landmarks (the face)."""
    islands = chart.island[landmark_triangle]
    islands = islands[islands >= 0]
    if len(islands) == 0:
        raise ASMInputError("no landmark lies on the mesh's UV chart; the face region has no usable UVs")
    face = np.bincount(islands).argmax()
    return np.flatnonzero(chart.island == face)


def initial_mixture(sigma: np.ndarray, angle: np.ndarray, gaussians_per_bone: int) -> tuple[np.ndarray, np.ndarray]:
    """K Gaussians approximating one ellipse per bone, spread along its major axis.

    sigma (J, 2), angle (J,) -> offsets (J, K, 2), covariance (J, K, 2, 2), in canonical UV units.
    """
    k = gaussians_per_bone
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (J, 2, 2)
    covariance = rotation @ (np.eye(2) * (sigma**2)[:, None, :]) @ np.swapaxes(rotation, -1, -2)
    spread = np.linspace(-1.0, 1.0, k) if k > 1 else np.zeros(1)
    major = np.argmax(sigma, axis=1)
    axis = rotation[np.arange(len(sigma)), :, major]  # (J, 2) unit major direction
    offsets = 0.6 * spread[None, :, None] * (sigma.max(1)[:, None, None] * axis[:, None, :])
    shrink = 0.75**2 if k > 1 else 1.0
    return offsets, np.repeat(covariance[:, None] * shrink, k, axis=1)


@dataclass(frozen=True)
class ChartMap:
    """How the canonical face lands on a mesh: the similarity canonical -> mesh, the head unit, the mesh's chart
    normalised to canonical UV scale, and the spline canonical UV -> normalised chart UV with its Jacobian."""

    alignment: Similarity
    head_unit: float
    landmark_valid: np.ndarray  # (468,) the landmarks trusted after the robust alignment
    chart_uv: np.ndarray  # (N, 2)
    face_triangles: np.ndarray  # chart triangles of the face's island
    warp: object  # (P, 2) canonical UV -> (P, 2) normalised chart UV
    jacobian: object  # (P, 2) -> (P, 2, 2)
    chart_tree: object
    notes: tuple[str, ...]


def canonical_chart_map(vertices: np.ndarray, triangles: np.ndarray, chart: Chart, landmarks: np.ndarray,
                        landmark_valid: np.ndarray, iod_canonical: float) -> ChartMap:
    """Steps 1-3 of the transfer (module docstring) for landmarks (468, 3) and their (468,) validity."""
    face = canonical_face()
    surface = face.surface_count
    notes: list[str] = []

    # 1. canonical -> mesh similarity, head unit; landmarks far from the aligned canonical face are
    #    detector or lifting failures (a ray through an eye opening, a grazing outline point).
    alignment, inliers = robust_alignment(face.vertices[:surface], landmarks, landmark_valid, iod_canonical)
    head_unit = alignment.scale * iod_canonical
    outliers = int(landmark_valid.sum() - inliers.sum())
    if outliers:
        notes.append(f"{outliers} landmarks were more than {OUTLIER_DISTANCE} iod from the aligned canonical face "
                     "and were ignored")
    landmark_valid = inliers
    valid = np.flatnonzero(landmark_valid)

    # Landmarks on the chart: closest chart triangle.
    chart_tris = triangles[chart.triangles]
    chart_tree = triangle_centre_tree(vertices, chart_tris)
    _, hit, bary, distance = closest_points_on_mesh(landmarks[valid], vertices, chart_tris, centre_tree=chart_tree)
    landmark_triangle = chart.triangles[hit]
    face_triangles = _face_island(chart, landmark_triangle)
    on_face = np.isin(landmark_triangle, face_triangles) & (distance < 0.1 * head_unit)
    if on_face.sum() < MIN_LANDMARKS:
        raise ASMInputError(f"only {on_face.sum()} landmarks lie on the mesh's face chart; the face region needs "
                            "one UV island (the general chart for any topology comes with rig generation)")
    if (~on_face).any():
        notes.append(f"{(~on_face).sum()} landmarks lie off the face's UV island (e.g. inside the mouth) and "
                     "were not used for the UV warp")
    landmark_uv = (bary[:, :, None] * chart.uv[triangles[landmark_triangle]]).sum(1)
    used = valid[on_face]
    used_uv = landmark_uv[on_face]

    # 2. normalise the chart to canonical UV scale and orientation (reflection allowed: V may point down).
    normalise = similarity_transform(used_uv, face.uv[used], allow_reflection=True)
    chart_uv = np.where(chart.in_chart[:, None], normalise.apply(chart.uv), chart.uv)
    used_uv = normalise.apply(used_uv)

    # 3. thin-plate spline canonical UV -> normalised chart UV.
    warp = RBFInterpolator(face.uv[used], used_uv, kernel="thin_plate_spline", smoothing=TPS_SMOOTHING)

    def jacobian(points: np.ndarray) -> np.ndarray:
        """(P, 2) -> (P, 2, 2) by central differences (the spline has no derivative API)."""
        columns = []
        for axis in range(2):
            step = np.zeros(2)
            step[axis] = JACOBIAN_STEP
            columns.append((warp(points + step) - warp(points - step)) / (2 * JACOBIAN_STEP))
        return np.stack(columns, axis=-1)

    return ChartMap(alignment, head_unit, landmark_valid, chart_uv, face_triangles, warp, jacobian, chart_tree,
                    tuple(notes))


def transfer_template(skeleton: Skeleton, vertices: np.ndarray, triangles: np.ndarray, chart: Chart,
                      landmarks: np.ndarray, landmark_valid: np.ndarray | None = None,
                      config: WeightConfig = WeightConfig(),
                      spread_floor: float = SPREAD_FLOOR_IN_EDGES) -> RigDefinition:
    """Place `skeleton` on a mesh (`spread_floor`: the Gaussians' least spread in local edge lengths; 0: none).

    vertices (N, 3), triangles (T, 3), chart from uv_chart, landmarks (L >= 468, 3) mesh positions of the
    MediaPipe points (surface ones first), landmark_valid (L,) bool for the ones that were found.
    """
    config = config.validated(skeleton.bone_count)
    vertices = checked_array("mesh vertices", vertices, (None, 3))
    triangles = np.asarray(triangles, dtype=np.int64)
    if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
        raise ASMInputError(f"mesh triangles: expected a non-empty (T, 3) array, got shape {triangles.shape}")
    if triangles.min() < 0 or triangles.max() >= len(vertices):
        raise ASMInputError(f"mesh triangles refer to vertex {triangles.max()} but the mesh has {len(vertices)} vertices")
    if len(chart.uv) != len(vertices):
        raise ASMInputError(f"the chart has {len(chart.uv)} vertices but the mesh has {len(vertices)}")
    face = canonical_face()
    surface = face.surface_count
    if landmark_valid is None:
        landmark_valid = np.ones(len(landmarks), dtype=bool)
    landmark_valid = np.asarray(landmark_valid, dtype=bool)[:surface]
    landmarks = np.asarray(landmarks, dtype=float)
    if landmarks.ndim != 2 or landmarks.shape[1] != 3 or len(landmarks) < surface:
        raise ASMInputError(f"landmarks: expected ({surface} or 478, 3) positions, got {landmarks.shape}")
    landmarks = landmarks[:surface]
    landmark_valid &= np.isfinite(landmarks).all(1)
    if landmark_valid.sum() < MIN_LANDMARKS:
        raise ASMInputError(f"only {landmark_valid.sum()} of {surface} landmarks were found; at least "
                            f"{MIN_LANDMARKS} are needed to place the rig")
    mapping = canonical_chart_map(vertices, triangles, chart, landmarks, landmark_valid, skeleton.iod_canonical)
    notes, alignment, head_unit = list(mapping.notes), mapping.alignment, mapping.head_unit
    landmark_valid, chart_uv, face_triangles = mapping.landmark_valid, mapping.chart_uv, mapping.face_triangles
    warp, jacobian, chart_tree = mapping.warp, mapping.jacobian, mapping.chart_tree
    chart_tris = triangles[chart.triangles]

    j_count, k = skeleton.bone_count, config.gaussians_per_bone
    offsets_c, covariance_c = initial_mixture(skeleton.sigma, skeleton.angle, k)
    logits = np.zeros((j_count, k))
    sigma = skeleton.sigma.copy()  # the range a warped covariance is held in (clamped_covariance)
    learned = skeleton.mixtures
    if learned is not None and learned.gaussians_per_bone == k:
        chosen = learned.has
        offsets_c[chosen], covariance_c[chosen] = learned.offsets[chosen], learned.covariance[chosen]
        logits[chosen] = learned.logits[chosen]
        spread = np.sqrt(np.linalg.eigvalsh(learned.covariance[chosen]))  # (n, K, 2)
        sigma[chosen] = np.stack([spread.max((1, 2)), spread.min((1, 2))], -1)
    zeta = np.zeros((j_count, 2))
    bind_triangle = np.zeros(j_count, dtype=np.int64)
    bind_offset = np.zeros((j_count, 3))
    mixture_offsets = np.zeros((j_count, k, 2))
    mixture_covariance = np.zeros((j_count, k, 2, 2))
    rotation = alignment.rotation

    face_bones = np.flatnonzero(~skeleton.has_reach)
    warped = warp(skeleton.anchor_uv[face_bones])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        location = locate(warped, chart_uv, triangles[face_triangles], what="binding point",
                          names=[f"bone {skeleton.names[j]!r}" for j in face_bones], clamp=True)
    notes.extend(str(w.message) for w in caught)
    zeta[face_bones] = location.point
    bind_triangle[face_bones] = face_triangles[location.triangle]
    bind_offset[face_bones] = (skeleton.offset[face_bones] @ rotation.T) * head_unit
    surface_point = np.einsum("pc,pcd->pd", location.barycentric, vertices[triangles[bind_triangle[face_bones]]])
    on_surface = np.zeros((j_count, 3))  # each bone's binding point on the mesh: its head is this + bind_offset
    on_surface[face_bones] = surface_point
    jac = jacobian(skeleton.anchor_uv[face_bones])
    for n, j in enumerate(face_bones):
        mixture_offsets[j] = warp(skeleton.anchor_uv[j] + offsets_c[j]) - warped[n]
        mixture_covariance[j] = clamped_covariance(jac[n] @ covariance_c[j] @ jac[n].T, sigma[j])

    # 4. bones beyond the face: a 3D target, bound to the nearest chart point of the mesh itself.
    reach_bones = np.flatnonzero(skeleton.has_reach)
    if len(reach_bones):
        targets = np.stack([skeleton.anchor_weights[j] @ _filled(landmarks, landmark_valid, skeleton.anchor_landmarks[j], alignment)
                            for j in reach_bones])
        targets += (skeleton.reach[reach_bones] @ rotation.T) * head_unit
        closest, hit, bary, distance = closest_points_on_mesh(targets, vertices, chart_tris, centre_tree=chart_tree)
        for n, j in enumerate(reach_bones):
            tri = chart.triangles[hit[n]]
            bind_triangle[j] = tri
            zeta[j] = bary[n] @ chart_uv[triangles[tri]]
            bind_offset[j] = (targets[n] - closest[n]) + (skeleton.offset[j] @ rotation.T) * head_unit
            on_surface[j] = closest[n]
            mixture_offsets[j] = offsets_c[j]
            mixture_covariance[j] = covariance_c[j]
            if distance[n] > FAR_FROM_SURFACE * head_unit:
                notes.append(f"bone {skeleton.names[j]!r}: the mesh has no surface near its place "
                             f"({distance[n] / head_unit:.2f} iod away); bound to the nearest point instead")

    if spread_floor > 0:
        chosen = np.flatnonzero(skeleton.has_gaussians)
        floor = spread_floor * local_edge_length(chart_uv, triangles[face_triangles],
                                                 zeta[chosen, None] + mixture_offsets[chosen])
        mixture_covariance[chosen] = floored_covariance(mixture_covariance[chosen], floor)

    # 5. bones whose head is placed from the mesh (the jaw's hinge), bound where their Gaussians are.
    for pivot in skeleton.pivots:
        if skeleton.has_reach[pivot.bone]:
            raise ASMInputError(f"bone {skeleton.names[pivot.bone]!r}: a pivot bone must be bound on the face")
        head, pivot_notes = place_pivot(pivot, skeleton.names[pivot.bone], vertices, triangles, landmarks,
                                        landmark_valid, alignment, head_unit)
        notes.extend(pivot_notes)
        bind_offset[pivot.bone] = head - surface_point[np.searchsorted(face_bones, pivot.bone)]
    rest_rotation = rotation @ skeleton.rest_rotation
    if JAW_BONE in skeleton.names and any(p.bone == skeleton.index(JAW_BONE) for p in skeleton.pivots):
        jaw = skeleton.index(JAW_BONE)
        hinge = bind_offset[jaw] + surface_point[np.searchsorted(face_bones, jaw)]
        angle, ratio = rest_jaw_opening(landmarks, landmark_valid, alignment, hinge)
        if angle:
            rest_rotation[jaw] = _turn(rotation[:, 0], angle) @ rest_rotation[jaw]
            notes.append(f"the mouth is open in the rest mesh (lips {ratio:.2f} of the mouth's width apart): the "
                         f"jaw's rest pose starts opened by {np.degrees(angle):.0f} degrees, so its rotation 0 is the "
                         f"mesh as it is; turn the jaw back by {np.degrees(angle):.0f} degrees about its X axis "
                         "(the opposite of its 'jaw open' pose) to close the mouth")

    # 6. the eyes at their eyeballs' centres, and the bones that turn about them (the lids).
    place_eye_centres(skeleton, vertices, triangles, on_surface, bind_offset, head_unit)

    # 7. the sides of the mouth and the eyes, so that the lips and lids part (solver/rig/openings.py).
    openings, opening_notes = opening_sides(vertices, triangles, landmarks, landmark_valid, skeleton.openings,
                                            head_unit)
    notes.extend(opening_notes)
    for message in notes:
        warnings.warn(message, stacklevel=2)
    return RigDefinition(
        names=skeleton.names, parents=skeleton.parents.copy(),
        rest_rotation=rest_rotation,
        zeta=zeta, bind_triangle=bind_triangle, bind_offset=bind_offset,
        length=skeleton.length * head_unit, free=skeleton.free.copy(), deform=skeleton.deform.copy(),
        has_gaussians=skeleton.has_gaussians.copy(), remainder_bone=skeleton.remainder_bone,
        mixture_logits=logits, mixture_offsets=mixture_offsets,
        mixture_covariance=mixture_covariance, chart_uv=chart_uv, chart_triangles=chart.triangles,
        face_triangles=face_triangles, triangle_island=chart.island, head_unit=head_unit, alignment=alignment, warnings=notes,
        openings=openings)


def place_eye_centres(skeleton: Skeleton, vertices: np.ndarray, triangles: np.ndarray, on_surface: np.ndarray,
                      bind_offset: np.ndarray, head_unit: float) -> None:
    """Move each eye bone's head to the centre of its eyeball where the mesh has one (rigid_parts.eyeball_centres),
    and give every bone that turns about another (the lids) that bone's head, in place in `bind_offset` (J, 3);
    `on_surface` (J, 3) holds the binding points. Where the mesh has no eyeball, the eye stays where its landmarks
    put it, and the lids turn about that point."""
    for eye, centre in eyeball_centres(vertices, triangles, skeleton.names, on_surface + bind_offset,
                                       head_unit).items():
        bind_offset[eye] = centre - on_surface[eye]
    for j in np.flatnonzero(skeleton.turns_about >= 0):
        about = skeleton.turns_about[j]
        bind_offset[j] = on_surface[about] + bind_offset[about] - on_surface[j]


def place_pivot(pivot: Pivot, name: str, vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                valid: np.ndarray, alignment: Similarity, head_unit: float) -> tuple[np.ndarray, list[str]]:
    """The (3,) mesh position of a pivot bone's head and notes: the mean of its landmarks (left and right, so on
    the face's middle) plus its offset. Landmarks the alignment did not trust come from the aligned canonical face.
    The mesh is checked for skin over the pivot on both sides of the face (in front of the ears, below the
    cheekbone); where there is none (a face-only mask), the landmarks there lie on the mask's border, not where
    the face's outline is, so the pivot is placed from the aligned canonical face's proportions instead."""
    points = _filled(landmarks, valid, pivot.landmarks, alignment)
    head = points.mean(0) + (alignment.rotation @ pivot.offset) * head_unit
    # The skin beside the pivot: each side's landmarks' lateral distance from the middle, at the pivot's height and
    # depth, in the canonical frame.
    canonical_points, canonical_head = alignment.invert(points), alignment.invert(head)
    lateral = np.abs(canonical_points[:, 0]).mean()
    beside = np.stack([np.array([side * lateral, canonical_head[1], canonical_head[2]]) for side in (-1.0, 1.0)])
    _, _, _, distance = closest_points_on_mesh(alignment.apply(beside), vertices, triangles)
    if (distance <= SKIN_OVER_PIVOT * head_unit).all():
        return head, []
    canonical = alignment.apply(canonical_face().vertices[pivot.landmarks])
    head = canonical.mean(0) + (alignment.rotation @ pivot.offset) * head_unit
    return head, [f"bone {name!r}: the mesh has no surface in front of the ears ({distance.max() / head_unit:.2f} iod "
                  "from where the skin over the hinge would be: a face-only mask?); its hinge is placed from the "
                  "face's proportions"]


def rest_jaw_opening(landmarks: np.ndarray, valid: np.ndarray, alignment: Similarity,
                     hinge: np.ndarray) -> tuple[float, float]:
    """How far the mouth is open in the rest mesh: the angle (radians, positive: open) between the inner lip line's
    upper and lower middles seen from the jaw's hinge (3,) about the face's left-right axis, and the lip gap as a
    share of the mouth's width. The angle is 0 where the gap is below OPEN_MOUTH_RATIO of the width (lips that
    touch, or part a little as relaxed lips do) or the landmarks are missing."""
    ids = list(INNER_LIPS + MOUTH_CORNERS)
    if not valid[ids].all():
        return 0.0, 0.0
    upper, lower, corner_a, corner_b = landmarks[ids]
    ratio = float(np.linalg.norm(upper - lower) / max(np.linalg.norm(corner_a - corner_b), 1e-12))
    if ratio < OPEN_MOUTH_RATIO:
        return 0.0, ratio
    # In the canonical frame (+X the subject's left): a turn about +X by a positive angle takes forward to down.
    a, b = ((point - hinge) @ alignment.rotation for point in (upper, lower))
    angle = float(np.arctan2(a[1] * b[2] - a[2] * b[1], a[1] * b[1] + a[2] * b[2]))
    return max(angle, 0.0), ratio


def _turn(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by `angle` (radians) about the unit `axis` (Rodrigues)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def clamped_covariance(covariance: np.ndarray, sigma: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Keep the principal standard deviations of warped covariances (K, 2, 2) within [1/factor, factor] x the
    template's: the spline's Jacobian collapses where landmarks crowd (inner and outer lip lines), and a
    Gaussian squashed to a line would move a single row of vertices."""
    return floored_covariance(covariance, sigma.min() / factor, sigma.max() * factor)


def local_edge_length(chart_uv: np.ndarray, triangles: np.ndarray, points: np.ndarray,
                      neighbours: int = FLOOR_NEIGHBOURS) -> np.ndarray:
    """The mesh's edge length in the chart near each point: chart_uv (N, 2), triangles (T, 3), points (..., 2) ->
    (...) the median of the mean edge length of the `neighbours` triangles whose chart centres lie nearest."""
    centres = (chart_uv[triangles[:, 0]] + chart_uv[triangles[:, 1]] + chart_uv[triangles[:, 2]]) / 3
    _, nearest = cKDTree(centres, balanced_tree=False).query(points.reshape(-1, 2),
                                                             k=min(neighbours, len(triangles)))
    corners = chart_uv[triangles[nearest.reshape(len(nearest), -1)]]  # (P, neighbours, 3, 2)
    edge = np.linalg.norm(corners - np.roll(corners, 1, axis=-2), axis=-1).mean(-1)
    return np.median(edge, axis=1).reshape(points.shape[:-1])


def floored_covariance(covariance: np.ndarray, floor, ceiling=np.inf) -> np.ndarray:
    """Covariances (..., 2, 2) whose principal standard deviations are at least `floor` (... or a number) and at
    most `ceiling`."""
    values, vectors = np.linalg.eigh(covariance)
    values = np.clip(values, np.asarray(floor)[..., None] ** 2, np.asarray(ceiling)[..., None] ** 2)
    return vectors @ (values[..., :, None] * np.swapaxes(vectors, -1, -2))


def _filled(landmarks: np.ndarray, valid: np.ndarray, ids: np.ndarray, alignment: Similarity) -> np.ndarray:
    """Mesh positions of landmarks `ids`; missing ones come from the aligned canonical face."""
    positions = landmarks[ids].copy()
    missing = ~valid[ids]
    if missing.any():
        positions[missing] = alignment.apply(canonical_face().vertices[ids[missing]])
    return positions
