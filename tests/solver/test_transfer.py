"""Template transfer onto meshes: the canonical face itself, and the bundled sample head."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from solver.template.canonical import canonical_face
from solver.core.errors import ASMInputError
from solver.model import ASMModel
from solver.template.skeleton import load_skeleton
from solver.rig.transfer import transfer_template
from solver.model.uv_chart import chart_from_uv_map


def canonical_as_mesh(scale=1.0, rotation=np.eye(3), shift=np.zeros(3)):
    face = canonical_face()
    vertices = scale * face.vertices[:468] @ rotation.T + shift
    triangles = face.triangles
    chart = chart_from_uv_map(468, triangles, face.uv[triangles])
    landmarks = scale * face.vertices @ rotation.T + shift
    return vertices, triangles, chart, landmarks


def test_on_the_canonical_face_binding_points_are_the_template_anchors():
    skeleton = load_skeleton("full")
    vertices, triangles, chart, landmarks = canonical_as_mesh()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig = transfer_template(skeleton, vertices, triangles, chart, landmarks)
    face_bones = ~skeleton.has_reach
    # chart = canonical UV and the spline is (nearly) the identity
    np.testing.assert_allclose(rig.zeta[face_bones], skeleton.anchor_uv[face_bones], atol=2e-3)
    np.testing.assert_allclose(rig.head_unit, skeleton.iod_canonical, rtol=1e-9)
    np.testing.assert_allclose(rig.rest_rotation, skeleton.rest_rotation, atol=1e-9)


def test_transfer_follows_a_similarity_of_the_mesh():
    skeleton = load_skeleton("full")
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    results = []
    for scale, rot, shift in ((1.0, np.eye(3), np.zeros(3)), (0.01, rotation, np.array([1.0, 2.0, 3.0]))):
        vertices, triangles, chart, landmarks = canonical_as_mesh(scale, rot, shift)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rig = transfer_template(skeleton, vertices, triangles, chart, landmarks)
        with torch.no_grad():
            bind = ASMModel(rig, vertices, triangles, dtype=torch.float64).bind().numpy()
        results.append((rig, bind))
    (rig_a, bind_a), (rig_b, bind_b) = results
    # Beyond-face bones bind to the nearest surface point, which below the canonical face's chin is a
    # tie between mirror-image points; their bone heads (target + offset) do not depend on the tie.
    face_bones = ~skeleton.has_reach
    np.testing.assert_allclose(rig_b.zeta[face_bones], rig_a.zeta[face_bones], atol=1e-9)
    np.testing.assert_allclose(bind_b[:, :3, 3], 0.01 * bind_a[:, :3, 3] @ rotation.T + [1.0, 2.0, 3.0], atol=1e-9)
    np.testing.assert_allclose(bind_b[:, :3, :3], rotation @ bind_a[:, :3, :3], atol=1e-9)


def test_sample_head_rig_is_placed_sensibly(sample_mesh, sample_rig):
    rig = sample_rig
    assert 80 <= len(rig.names) <= 88
    with torch.no_grad():
        heads = ASMModel(rig, sample_mesh["vertices"], sample_mesh["triangles"], dtype=torch.float64).bind().numpy()[:, :3, 3]
    names = list(rig.names)
    unit = rig.head_unit
    # The sample is symmetric about x = 0, so left and right bones mirror each other up to the detector's
    # own asymmetry (median 0.03 iod over the landmarks); on the face's outline, where the detector is
    # least sure, up to 0.2 iod.
    outline = ("temple", "jaw_angle", "ear", "ear_top", "ear_lobe")
    for j, name in enumerate(names):
        if name.endswith(".L"):
            twin = names.index(name[:-2] + ".R")
            assert heads[j, 0] > 0 > heads[twin, 0], name
            tolerance = (0.2 if name[:-2] in outline else 0.08) * unit
            np.testing.assert_allclose(heads[twin] * [-1, 1, 1], heads[j], atol=tolerance, err_msg=name)
    # the jaw pivots behind and above the chin, inside the head; eyes sit behind the lids
    jaw, chin = heads[names.index("jaw")], heads[names.index("chin")]
    assert jaw[1] > chin[1] + 0.5 * unit and jaw[2] < chin[2] - 0.4 * unit
    assert heads[names.index("eye.L"), 2] < heads[names.index("lid_upper_out.L"), 2] + 0.1 * unit
    assert heads[names.index("brow.L"), 1] > heads[names.index("eye.L"), 1] > heads[names.index("mouth_corner.L"), 1]
    # inter-ocular distance of the sample in decimetres: about 0.9 dm for an adult head
    assert 0.7 < unit < 1.1


def jaw_hinge_in_canonical_frame(rig, vertices, triangles) -> np.ndarray:
    """The jaw's head (where it turns) in the canonical frame, iod units: +Y up, +Z forward, x = 0 the middle."""
    with torch.no_grad():
        head = ASMModel(rig, vertices, triangles, dtype=torch.float64).bind_positions().numpy()[rig.names.index("jaw")]
    return (head - rig.alignment.translation) @ rig.alignment.rotation / rig.head_unit


def test_the_jaw_hinge_is_placed_from_the_mesh_in_front_of_the_ears(sample_mesh, sample_rig):
    # The sample head has ears; its hinge lies on the face's middle, below the eyes (y 0.3) and above the mouth's
    # corners (y -0.48), well behind the cheek's outline (z -0.27) and in front of the ear's middle (z -0.7).
    hinge = jaw_hinge_in_canonical_frame(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"])
    assert abs(hinge[0]) < 0.03 and -0.3 < hinge[1] < 0.05 and -0.6 < hinge[2] < -0.3, hinge
    assert not [w for w in sample_rig.warnings if "'jaw'" in w]


def test_on_a_face_only_mask_the_jaw_hinge_comes_from_the_proportions_with_a_note():
    from tests.solver.conftest import fran_scan_rig

    vertices, triangles, rig, _ = fran_scan_rig("game")
    notes = [w for w in rig.warnings if "'jaw'" in w]
    assert len(notes) == 1 and "no surface in front of the ears" in notes[0] and "proportions" in notes[0]
    hinge = jaw_hinge_in_canonical_frame(rig, vertices, triangles)
    skeleton = load_skeleton("game")
    pivot = skeleton.pivots[0]
    expected = canonical_face().vertices[pivot.landmarks].mean(0) / skeleton.iod_canonical + pivot.offset
    np.testing.assert_allclose(hinge, expected, atol=1e-6)


def test_missing_landmarks_and_bad_meshes_raise_clear_errors(sample_mesh):
    skeleton = load_skeleton("game")
    vertices, triangles = sample_mesh["vertices"], sample_mesh["triangles"]
    chart = chart_from_uv_map(len(vertices), triangles, sample_mesh["corner_uv"])
    few = sample_mesh["landmark_valid"].copy()
    few[30:] = False
    with pytest.raises(ASMInputError, match="only 30 of 468 landmarks were found"):
        transfer_template(skeleton, vertices, triangles, chart, sample_mesh["landmarks"], few)
    with pytest.raises(ASMInputError, match="the chart has 4280 vertices but the mesh has 4279"):
        transfer_template(skeleton, vertices[:-1], triangles[:10], chart, sample_mesh["landmarks"])
    bad = vertices.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ASMInputError, match=r"mesh vertices: contains NaN.*\(7, 1\)"):
        transfer_template(skeleton, bad, triangles, chart, sample_mesh["landmarks"])
    with pytest.raises(ASMInputError, match="non-empty"):
        transfer_template(skeleton, vertices, np.zeros((0, 3)), chart, sample_mesh["landmarks"])
    with pytest.raises(ASMInputError, match="no faces"):
        chart_from_uv_map(10, np.zeros((0, 3)), np.zeros((0, 3, 2)))


def test_chart_keeps_seams_out(sample_mesh):
    chart = chart_from_uv_map(len(sample_mesh["vertices"]), sample_mesh["triangles"], sample_mesh["corner_uv"])
    valid = sample_mesh["triangles"][chart.triangles]
    np.testing.assert_allclose(chart.uv[valid], sample_mesh["corner_uv"][chart.triangles], atol=1e-7)
    assert len(chart.triangles) < len(sample_mesh["triangles"])  # the sample's lips and lids are seams
    assert len(np.unique(chart.island[chart.island >= 0])) == 5  # face, mouth, neck and two eye sockets


def test_generate_falls_back_to_a_projected_chart_where_the_uv_island_ends(sample_mesh):
    from solver.rig.generate import GenerateSettings, generate_rig

    auto = generate_rig(sample_mesh["vertices"], sample_mesh["triangles"], sample_mesh["corner_uv"],
                        sample_mesh["landmarks"], sample_mesh["landmark_valid"], GenerateSettings(preset="game"))
    assert str(auto["chart"]) == "projected"
    assert any("UV island of the face ends" in w for w in auto["warnings"])
    forced = generate_rig(sample_mesh["vertices"], sample_mesh["triangles"], sample_mesh["corner_uv"],
                          sample_mesh["landmarks"], sample_mesh["landmark_valid"], GenerateSettings(preset="game", chart="uv"))
    assert str(forced["chart"]) == "uv"
    no_uv = generate_rig(sample_mesh["vertices"], sample_mesh["triangles"], None, sample_mesh["landmarks"],
                         sample_mesh["landmark_valid"], GenerateSettings(preset="game"))
    assert str(no_uv["chart"]) == "projected" and any("no UV map" in w for w in no_uv["warnings"])
    np.testing.assert_allclose(no_uv["chart_uv"], auto["chart_uv"])
    with pytest.raises(ASMInputError, match="unknown chart 'sphere'"):
        generate_rig(sample_mesh["vertices"], sample_mesh["triangles"], None, sample_mesh["landmarks"],
                     sample_mesh["landmark_valid"], GenerateSettings(chart="sphere"))


def test_projected_chart_is_continuous_and_binds_only_to_the_outer_skin(sample_mesh):
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.core.geometry import closest_points_on_mesh

    vertices, triangles = sample_mesh["vertices"], sample_mesh["triangles"]
    rig, kind = place_rig(vertices, triangles, None, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                          GenerateSettings(preset="game", chart="projected"))
    assert kind == "projected"
    # the face's outer skin is in the chart: the triangles under the (outer) surface landmarks
    valid = sample_mesh["landmark_valid"][:468]
    _, hit, _, _ = closest_points_on_mesh(sample_mesh["landmarks"][:468][valid], vertices, triangles)
    assert np.isin(hit, rig.chart_triangles).mean() > 0.9
    # the inner layers are not: the mouth's inside lies behind the inner lip landmarks
    left_out = np.setdiff1d(np.arange(len(triangles)), rig.chart_triangles)
    centres = vertices[triangles[left_out]].mean(1)
    mouth = sample_mesh["landmarks"][[13, 14]].mean(0)  # between the inner lips
    eye_distance = np.linalg.norm(sample_mesh["landmarks"][33] - sample_mesh["landmarks"][263])
    assert (np.linalg.norm(centres - mouth, axis=1) < 0.3 * eye_distance).sum() > 100
    # continuity: no chart triangle spans a large part of the chart (the seam is cut at the back)
    uv = rig.chart_uv
    kept = triangles[rig.chart_triangles]
    edges = np.abs(uv[kept][:, [0, 1, 2]] - uv[kept][:, [1, 2, 0]])
    assert edges.max() < 0.2 * np.ptp(uv[kept].reshape(-1, 2), axis=0).max()


def test_landmarks_from_the_shape_alone_land_near_the_detected_ones(sample_mesh):
    from solver.rig.geometry_landmarks import landmarks_from_geometry

    # the sample's OBJ coordinates: +Y up, the face looks along +Z
    placed, valid = landmarks_from_geometry(sample_mesh["vertices"], sample_mesh["triangles"], [0, 0, 1], [0, 1, 0])
    detected, detected_valid = sample_mesh["landmarks"], sample_mesh["landmark_valid"]
    both = valid & detected_valid
    assert both[:468].sum() > 400
    eye_distance = np.linalg.norm(detected[33] - detected[263])
    error = np.linalg.norm(placed[both] - detected[both], axis=1) / eye_distance
    assert np.median(error) < 0.15
    assert np.linalg.norm(placed[1] - detected[1]) < 0.1 * eye_distance  # the nose tip itself
    with pytest.raises(ASMInputError, match="must differ"):
        landmarks_from_geometry(sample_mesh["vertices"], sample_mesh["triangles"], [0, 0, 1], [0, 0, 2])


def test_local_edge_length_and_the_spread_floor():
    from solver.rig.transfer import floored_covariance, local_edge_length

    # a grid of squares of side 0.02 cut into right triangles: edges 0.02, 0.02 and 0.02 * sqrt(2)
    side, cells = 0.02, 20
    u, v = np.meshgrid(np.arange(cells + 1) * side, np.arange(cells + 1) * side * 0.5)  # rows half as far apart
    uv = np.stack([u.ravel(), v.ravel()], -1)
    corner = (np.arange(cells)[:, None] * (cells + 1) + np.arange(cells)[None]).ravel()
    triangles = np.concatenate([np.stack([corner, corner + 1, corner + cells + 2], -1),
                                np.stack([corner, corner + cells + 2, corner + cells + 1], -1)])
    expected = (side + side / 2 + np.hypot(side, side / 2)) / 3
    points = np.array([[[0.2, 0.1], [0.1, 0.05]]])  # (1, 2, 2): any leading shape
    np.testing.assert_allclose(local_edge_length(uv, triangles, points), np.full((1, 2), expected), rtol=1e-9)

    turn = np.array([[np.cos(0.3), -np.sin(0.3)], [np.sin(0.3), np.cos(0.3)]])
    covariance = turn @ np.diag([0.03 ** 2, 0.004 ** 2]) @ turn.T
    floored = floored_covariance(covariance[None], np.array([0.01]))[0]
    values, vectors = np.linalg.eigh(floored)
    np.testing.assert_allclose(np.sqrt(values), [0.01, 0.03], rtol=1e-9)  # the narrow axis widened, the long kept
    np.testing.assert_allclose(np.abs(vectors[:, 1] @ turn[:, 0]), 1.0, rtol=1e-9)  # along the same direction
    np.testing.assert_allclose(floored_covariance(floored[None], np.array([0.005]))[0], floored, rtol=1e-12)


def test_the_sample_rigs_weights_change_over_several_rows_of_vertices(sample_mesh, sample_rig):
    # A Gaussian narrower than the mesh's edges hands one row of vertices to its bone and the next to another: a
    # sawtooth when posed. On the sample head (4k vertices, edges about twice as long in the chart as on the
    # template's 27k-vertex head) the learned Gaussians without a floor left 6-7 % of the face's edges with some
    # weight jumping by more than 0.5 across them (with it, 1 %).
    from solver.core.config import WeightConfig

    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"], WeightConfig(influence_cap=4))
    with torch.no_grad():
        weights = model.weights().to_dense(len(sample_rig.names)).numpy()
    face = sample_mesh["triangles"][sample_rig.face_triangles]
    edges = np.unique(np.sort(np.concatenate([face[:, [0, 1]], face[:, [1, 2]], face[:, [2, 0]]]), 1), axis=0)
    jump = np.abs(weights[edges[:, 0]] - weights[edges[:, 1]]).max(1)
    assert (jump > 0.5).mean() < 0.025
