"""The fitting engine: losses vanish at the answer, a posed rig is recovered, stages are data, cancel works."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import torch

from solver.core.errors import ASMInputError
from solver.fit.engine import ALL_GROUPS, Alignment, Stage, fit
from solver.fit.losses import LOSSES, FitContext, mirror_targets, symmetry_prior, uniform_laplacian
from solver.model import ASMModel, Pose
from solver.core.rotations import rotvec_to_matrix


@pytest.fixture()
def model(sample_mesh, sample_rig):
    return ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"])


def known_pose(model, seed=1):
    generator = torch.Generator().manual_seed(seed)
    count = model.bone_count
    unit = float(model.rig.head_unit)
    return Pose(0.05 * torch.randn(count, 3, generator=generator), 0.1 * torch.randn(count, 3, generator=generator),
                0.02 * unit * torch.randn(count, 3, generator=generator))


def bone_ends(model):
    """(J, 2, 3) rest head and tail of every bone."""
    with torch.no_grad():
        bind = model.bind()
    length = torch.as_tensor(model.rig.length, dtype=bind.dtype)[:, None]
    return torch.stack([bind[:, :3, 3], bind[:, :3, 3] + length * bind[:, :3, 1]], 1)


def front_cameras(model, count=2):
    """Cameras looking at the head from the front and 30 degrees aside, about 3 head units away (OpenCV axes: the
    sample's +Y up is the camera's -y, its +Z forward faces the camera)."""
    from solver.vision.cameras import Cameras

    unit = float(model.rig.head_unit)
    centre = model.vertices.mean(0).double().numpy()
    rotvecs, translations = [], []
    for yaw in np.radians([0.0, 30.0, -25.0][:count]):
        turn = Rotation.from_euler("y", yaw) * Rotation.from_euler("x", np.pi)  # face the camera, y down
        rotvecs.append(turn.as_rotvec())
        translations.append(-turn.apply(centre) + [0.0, 0.0, 6.0 * unit])
    return Cameras.from_arrays(rotvecs, translations, [1200.0] * count, [[1000, 800]] * count)


def photo_targets(model, cameras, posed, ids, bary, with_images=False):
    """Landmark pixels of `posed` in the photos of `cameras`; with_images: also textured photos of it, their
    outlines as signed distances and the points compared between them (rendered: a few seconds)."""
    with torch.no_grad():
        pixels, _ = cameras.project((bary.unsqueeze(-1) * posed[ids].double()).sum(-2))
    targets = {"landmarks_2d": pixels, "landmark_confidence": torch.ones(pixels.shape[:2], dtype=torch.float64),
               "face_size_2d": torch.full((pixels.shape[0],), 200.0, dtype=torch.float64),
               "typical_focal": torch.exp(cameras.log_focal.detach()).clone(),
               "image_side": cameras.image_size.max(-1).values}
    if not with_images:
        return targets
    from solver.fit.photo_fit import prepared_photos
    from solver.vision.photometric import face_samples
    from solver.vision.silhouette import signed_distance
    from solver.vision.stereo import stereo_image
    from tests.synthetic_cameras import textured_photos

    vertices, triangles = posed.detach().double().numpy(), model.triangles.numpy()
    images, masks, _ = textured_photos(vertices, triangles, cameras, scale=0.5, detail=80.0)  # fine: "skin"
    views = len(images)
    face = np.flatnonzero(vertices[:, 2] > np.quantile(vertices[:, 2], 0.6))  # the front of the head (+Z)
    targets["photo_images"], targets["photo_image_scale"] = prepared_photos(
        images, [0.5] * views, np.full(views, 200.0), 0.01, torch.float32)
    targets["photo_sample_ids"], targets["photo_sample_bary"] = face_samples(model.vertices.numpy(), triangles, face,
                                                                             2000)
    targets["stereo_images"] = [stereo_image(image) for image in images]
    targets["stereo_image_scale"] = torch.full((views,), 0.5)
    targets["silhouette_distance"] = [torch.as_tensor(signed_distance(mask.astype(np.float32))) for mask in masks]
    targets["silhouette_scale"] = torch.full((views,), 0.5)
    targets["silhouette_candidates"] = torch.as_tensor(face)
    return targets


def context_at(model, targets, posed=None, bone_points=None, cameras=None):
    pose = model.pose.masked(model.free)
    with torch.no_grad():
        posed = model.forward() if posed is None else posed
    rest_bones = bone_ends(model)
    return FitContext(posed, model.vertices, float(model.rig.head_unit), targets, model.mixture, pose.rotvec,
                      pose.translation, pose.log_scale, model.bind_offset, model.bind_offset.clone(), model.triangles,
                      # weight smoothness is zero for weights that do not vary over the surface
                      weights=torch.full((len(posed), model.bone_count), 1.0 / model.bone_count),
                      bone_points=(rest_bones if bone_points is None else bone_points, rest_bones), cameras=cameras)


def test_every_loss_is_zero_at_the_exact_answer(model):
    with torch.no_grad():
        rest = model.forward()
    ids = torch.tensor([[0, 1, 2], [10, 11, 12]])
    bary = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    targets = {"vertices": rest, "landmark_vertices": ids, "landmark_bary": bary,
               "landmarks": (bary.unsqueeze(-1) * rest[ids]).sum(-2),
               "laplacian": uniform_laplacian(model.triangles, len(rest)), "scan_points": rest.clone(),
               **mirror_targets(model.rig.names, model.bind_positions())}
    cameras = front_cameras(model)
    targets.update(photo_targets(model, cameras, rest, ids, bary, with_images=True))
    context = context_at(model, targets, cameras=cameras)
    moved = context_at(model, targets, posed=rest + 0.01 * float(model.rig.head_unit) * torch.randn_like(rest),
                       cameras=cameras)
    shifted = context_at(model, targets, posed=rest + torch.tensor([0.05 * float(model.rig.head_unit), 0.0, 0.0]),
                         cameras=cameras)
    for name, loss in LOSSES.items():
        if name in IMAGE_LOSSES:  # rendered photos: the interpolated colours and outlines are a pixel off
            assert float(loss(context)) < 0.8 * float(loss(shifted)), name
            continue
        # smoothness divides float32 round-off (1e-7 iod) by the squared edge length (0.08 iod) before squaring
        assert float(loss(context)) == pytest.approx(0.0, abs=1e-7 if name == "smoothness" else 1e-10), name
    # and not zero elsewhere
    for name in ("vertex", "landmarks", "landmarks_2d", "smoothness", "scan_to_mesh", "mesh_to_scan"):
        assert float(LOSSES[name](moved)) > 1e-6, name


def test_symmetry_prior_is_zero_for_mirrored_motion_only(model):
    targets = mirror_targets(model.rig.names, model.bind_positions().detach())
    pairs, mirror = targets["mirror_pairs"], targets["mirror"]
    assert len(pairs) > 20 and {model.rig.names[int(j)] for j in pairs[:, 0]} >= {"brow.L", "eye.L", "mouth_corner.L"}
    # The reflection is one: its normal points across the face (x is the sample's left-right axis).
    assert torch.allclose(mirror @ mirror, torch.eye(3), atol=1e-5) and float(mirror[0, 0]) < -0.95
    rest = bone_ends(model)
    unit = float(model.rig.head_unit)
    motion = 0.05 * unit * torch.randn(len(pairs), 2, 3, generator=torch.Generator().manual_seed(3))
    mirrored, one_sided = rest.clone(), rest.clone()
    mirrored[pairs[:, 0]] += motion
    mirrored[pairs[:, 1]] += motion @ mirror.T
    one_sided[pairs[:, 0]] += motion
    assert float(symmetry_prior(context_at(model, targets, bone_points=mirrored))) < 1e-10
    assert float(symmetry_prior(context_at(model, targets, bone_points=one_sided))) > 1e-4


def test_the_symmetry_prior_makes_a_one_sided_target_fit_symmetric(model):
    """A target where only the left brow rose: with the prior the right brow follows part of the way."""
    brow = model.rig.names.index("brow.L")
    pose = Pose.zeros(model.bone_count)
    pose.translation[brow, 1] = 0.08 * float(model.rig.head_unit)
    with torch.no_grad():
        target = model.forward(pose)
    right = model.rig.names.index("brow.R")

    def right_brow_motion(weight):
        fitted = ASMModel(model.rig, model.vertices.numpy(), model.triangles.numpy())
        losses = {"vertex": 1.0, **({"symmetry": weight} if weight else {})}
        fit(fitted, {"vertices": target}, [Stage(name="pose", groups=("pose",), losses=losses, iterations=300, learning_rate=0.003,
                                                 patience=60)])
        with torch.no_grad():
            return float(fitted.pose.masked(fitted.free).translation[right].norm() / model.rig.head_unit)

    alone, with_prior = right_brow_motion(0.0), right_brow_motion(1.0)
    assert alone < 0.01 and with_prior > max(3 * alone, 0.02), (alone, with_prior)


def test_a_stage_moves_only_the_bones_it_names(model):
    with torch.no_grad():
        target = model.forward(known_pose(model, seed=5))
    jaw = ("jaw", "chin")
    result = fit(model, {"vertices": target}, [Stage(name="jaw", groups=("pose", "binding", "gaussian_means"), losses={"vertex": 1.0},
                                                     iterations=20, learning_rate=0.01, bones=jaw)])
    moved = model.pose.rotvec.norm(dim=-1) + model.pose.translation.norm(dim=-1)
    named = torch.as_tensor([name in jaw for name in model.rig.names])
    assert float(moved[named].min()) > 0 and float(moved[~named].max()) == 0.0
    assert result.history[-1]["total"] < result.history[0]["total"]
    assert Stage.from_dict(Stage(name="jaw", groups=("pose",), losses={"vertex": 1.0}, bones=jaw).to_dict()).bones == jaw
    with pytest.raises(ASMInputError, match=r"names bone\(s\) \['cheek_puff.L'\] that this rig does not have"):
        fit(model, {"vertices": target}, [Stage(name="x", groups=("pose",), losses={"vertex": 1.0}, bones=("jaw", "cheek_puff.L"))])


def test_a_posed_rig_is_recovered_from_its_vertices(model):
    with torch.no_grad():
        target = model.forward(known_pose(model))
        start = (model.vertices - target).norm(dim=-1).mean()
    result = fit(model, {"vertices": target}, [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0}, iterations=300,
                                                     learning_rate=0.02)])
    with torch.no_grad():
        error = (model.forward() - target).norm(dim=-1) / model.rig.head_unit
    totals = [h["total"] for h in result.history]
    assert totals[-1] < 1e-3 * totals[0]
    assert float(start / model.rig.head_unit) > 0.2  # the target really was far from the rest shape
    assert float(error.mean()) < 0.01 and float(torch.quantile(error, 0.95)) < 0.02  # iod


def test_all_groups_move_and_bindings_stay_on_the_chart(model):
    with torch.no_grad():
        target = model.forward(known_pose(model, seed=2))
    result = fit(model, {"vertices": target}, [
        Stage(name="pose", groups=("pose",), losses={"vertex": 1.0, "pose_prior": 1e-4}, iterations=60, learning_rate=0.02),
        Stage(name="all", groups=ALL_GROUPS, losses={"vertex": 1.0, "gaussian_size": 1e-3, "bind_offset_prior": 1e-4},
              iterations=40, learning_rate=0.005)])
    stages = [h["stage"] for h in result.history]
    assert stages[0] == "pose" and stages[-1] == "all"
    last = [h["vertex"] for h in result.history if h["stage"] == "all"]
    assert min(last) <= last[0]
    from solver.model.binding import needs_relocation

    assert not needs_relocation(model.zeta.numpy().astype(float), model.bind_triangle.numpy(), model.rig.chart_uv,
                                model.triangles.numpy()).any()


def test_stages_are_data_and_reject_unknown_names():
    stage = Stage(name="coarse", groups=("pose", "binding"), losses={"vertex": 1.0, "pose_prior": 0.01}, iterations=5)
    assert Stage.from_dict(stage.to_dict()) == stage
    with pytest.raises(ASMInputError, match=r"stage 'x': unknown parameter group\(s\) \['lights'\]"):
        Stage(name="x", groups=("lights",), losses={"vertex": 1.0})
    with pytest.raises(ASMInputError, match=r"stage 'x': unknown loss\(es\) \['sonar'\]"):
        Stage(name="x", groups=("pose",), losses={"sonar": 1.0})
    with pytest.raises(ASMInputError, match=r"unknown field\(s\) \['lr'\]"):
        Stage.from_dict({"name": "x", "groups": ["pose"], "losses": {"vertex": 1.0}, "lr": 0.1})
    with pytest.raises(ASMInputError, match="unknown optimizer"):
        Stage(name="x", groups=("pose",), losses={"vertex": 1.0}, optimizer="sgd")


def test_cancel_stops_within_one_step_and_keeps_the_best_parameters(model):
    with torch.no_grad():
        target = model.forward(known_pose(model))
    calls = []

    def progress(stage, step, loss):
        calls.append(step)
        return step == 3

    result = fit(model, {"vertices": target}, [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0}, iterations=100)], progress)
    assert result.cancelled and calls == [0, 1, 2, 3] and len(result.history) == 4
    best = min(h["total"] for h in result.history)
    with torch.no_grad():
        pose = model.pose.masked(model.free)
        now = LOSSES["vertex"](FitContext(model.forward(), model.vertices, float(model.rig.head_unit), {"vertices": target},
                                          model.mixture, pose.rotvec, pose.translation, pose.log_scale,
                                          model.bind_offset, model.bind_offset))
    assert float(now) == pytest.approx(best, rel=1e-5)


def test_fits_are_deterministic(sample_mesh, sample_rig):
    results = []
    for _ in range(2):
        model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"])
        with torch.no_grad():
            target = model.forward(known_pose(model))
        fit(model, {"vertices": target}, [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0}, iterations=20)], seed=3)
        results.append(model.pose.rotvec.clone())
    assert torch.equal(results[0], results[1])
    assert np.isfinite(results[0].numpy()).all()


def test_bindings_held_at_the_chart_border_are_reported_in_one_note(model):
    with torch.no_grad():
        target = model.forward(known_pose(model, seed=2))
    # A strong push on every binding point: some reach the border of their chart island.
    result = fit(model, {"vertices": target}, [Stage(name="bind", groups=("binding",), losses={"vertex": 1.0}, iterations=30,
                                                     learning_rate=0.05)])
    assert len(result.notes) == 1 and "reached the chart's border" in result.notes[0], result.notes
    held = [name for name in model.rig.names if repr(name) in result.notes[0]]
    assert len(held) >= 1 and f"of {len(held)} bone" in result.notes[0], result.notes


def test_a_scan_of_another_topology_is_fitted_after_a_similarity_alignment(model):
    """Target: the rig posed with known parameters, resampled as a point cloud (no shared topology), moved by a
    known similarity, with the back third missing (a partial scan) and 35 landmarks on its front."""
    unit = float(model.rig.head_unit)
    small = known_pose(model, seed=4)
    with torch.no_grad():
        posed = model.forward(Pose(0.3 * small.log_scale, 0.3 * small.rotvec, 0.3 * small.translation))
    generator = torch.Generator().manual_seed(0)
    triangles = model.triangles
    chosen = torch.randint(0, len(triangles), (6000,), generator=generator)
    weights = torch.rand(6000, 3, generator=generator)
    weights = weights / weights.sum(1, keepdim=True)
    points = (weights.unsqueeze(-1) * posed[triangles[chosen]]).sum(1)
    points = points[points[:, 2] > points[:, 2].quantile(0.33)]
    rotation = rotvec_to_matrix(torch.tensor([0.0, 0.15, 0.05]))
    shift = torch.tensor([0.3, -0.2, 0.1]) * unit
    move = lambda x: 1.1 * x @ rotation.T + shift  # noqa: E731
    ids = torch.nonzero(posed[:, 2] > posed[:, 2].quantile(0.8)).squeeze(1)[::25]
    targets = {"scan_points": move(points), "landmark_vertices": ids[:, None].expand(-1, 3),
               "landmark_bary": torch.tensor([[1.0, 0.0, 0.0]]).expand(len(ids), 3), "landmarks": move(posed[ids])}
    front = posed[:, 2] > posed[:, 2].quantile(0.5)

    def front_error(result):
        aligned = result.alignment  # the true surface, carried into the model's frame by the fitted alignment
        truth = aligned["scale"] * move(posed) @ torch.as_tensor(aligned["rotation"]).T \
            + torch.as_tensor(aligned["translation"])
        with torch.no_grad():
            return float(((model.forward() - truth).norm(dim=-1) / unit)[front].mean())

    alignment = Alignment.identity(torch.float32, "cpu")
    aligned_only = fit(model, targets, [Stage(name="align", groups=("alignment",), losses={"landmarks": 1.0}, iterations=300,
                                              learning_rate=0.02)], alignment=alignment)
    assert abs(aligned_only.alignment["scale"] - 1 / 1.1) < 0.03
    before = front_error(aligned_only)
    result = fit(model, targets, [Stage(name="pose", groups=("pose", "alignment"), losses={"scan_to_mesh": 1.0, "mesh_to_scan": 0.5,
                                                                         "landmarks": 0.1, "pose_prior": 1e-4},
                                        iterations=200, learning_rate=0.003, refresh_every=5, patience=50)],
                 alignment=alignment)
    after = front_error(result)
    assert after < 0.5 * before and after < 0.03, (before, after)
    scan_terms = [h["scan_to_mesh"] for h in result.history]
    assert min(scan_terms) < 0.2 * scan_terms[0]


def test_bad_targets_are_refused_with_a_clear_message(model):
    with torch.no_grad():
        rest = model.forward()
    broken = rest.clone()
    broken[5, 1] = float("nan")
    stages = [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0}, iterations=2)]
    with pytest.raises(ASMInputError, match=r"target 'vertices' contains NaN or infinite values \(first at index \(5, 1\)\)"):
        fit(model, {"vertices": broken}, stages)
    with pytest.raises(ASMInputError, match="has shape \\(4279, 3\\) but the rig's mesh has \\(4280, 3\\)"):
        fit(model, {"vertices": rest[:-1]}, stages)
    scan_stage = [Stage(name="scan", groups=("pose",), losses={"mesh_to_scan": 1.0}, iterations=2)]
    with pytest.raises(ASMInputError, match="non-empty"):
        fit(model, {"scan_points": torch.zeros(0, 3)}, scan_stage)
    with pytest.raises(ASMInputError, match="times the size of the head; check its units"):
        fit(model, {"scan_points": rest * 1000}, scan_stage)


def test_a_scan_in_other_units_starts_the_alignment_at_that_scale(model):
    with torch.no_grad():
        rest = model.forward()
    scan = rest[rest[:, 2] > rest[:, 2].median()] * 100.0  # the same head, in units 100 times smaller
    result = fit(model, {"scan_points": scan}, [Stage(name="align", groups=("alignment",), losses={"mesh_to_scan": 1.0}, iterations=30,
                                                      learning_rate=0.01)])
    assert any("assumed other units" in note for note in result.notes)
    assert abs(math.log10(result.alignment["scale"]) + 2) < 0.1


def test_lbfgs_stages_reduce_the_loss_too(model):
    with torch.no_grad():
        target = model.forward(known_pose(model, seed=6))
    result = fit(model, {"vertices": target}, [Stage(name="pose", groups=("pose",), losses={"vertex": 1.0}, iterations=15,
                                                     learning_rate=1.0, optimizer="lbfgs")])
    totals = [h["total"] for h in result.history]
    assert min(totals) < 0.2 * totals[0]


LOSS_SETUPS = {  # loss: (groups it is fitted with, how the start differs from its answer)
    "vertex": (("pose",), "target"), "landmarks": (("pose",), "target"), "scan_to_mesh": (("pose",), "target"),
    "mesh_to_scan": (("pose",), "target"), "pose_prior": (("pose",), "posed"), "smoothness": (("pose",), "posed"),
    "symmetry": (("pose",), "posed"), "bind_offset_prior": (("bind_offset",), "moved"),
    "gaussian_size": (("gaussian_covariances",), "narrow"),
    "weight_smoothness": (("gaussian_means", "gaussian_covariances", "gaussian_weights"), "as generated"),
    "landmarks_2d": (("pose",), "target"), "photometric": (("pose",), "target"), "silhouette": (("pose",), "target"),
    "stereo": (("pose",), "target"),
    "focal_prior": (("cameras",), "long lens"), "expression_prior": (("expressions",), "expressions"),
    "focal_agreement": (("cameras",), "two lenses"),
}
IMAGE_LOSSES = ("photometric", "silhouette", "stereo")


@pytest.mark.parametrize("name", sorted(LOSS_SETUPS))
def test_each_loss_decreases_under_the_engine(model, name):
    assert set(LOSS_SETUPS) == set(LOSSES)  # a new loss needs its row here
    groups, start = LOSS_SETUPS[name]
    with torch.no_grad():
        posed = model.forward(known_pose(model, seed=7))
        if start == "posed":
            pose = known_pose(model, seed=7)
            for mine, theirs in zip((model.pose.log_scale, model.pose.rotvec, model.pose.translation),
                                    (pose.log_scale, pose.rotvec, pose.translation)):
                mine.copy_(theirs)
        elif start == "narrow":
            model.mixture.cholesky_raw[..., 0].fill_(-6.0)  # softplus(-6) ~ 0.0025: below the smallest size
    ids = torch.arange(0, 4000, 97)
    targets = {"vertices": posed, "landmark_vertices": ids[:, None].expand(-1, 3),
               "landmark_bary": torch.tensor([[1.0, 0.0, 0.0]]).expand(len(ids), 3), "landmarks": posed[ids],
               "scan_points": posed, "laplacian": uniform_laplacian(model.triangles, len(posed))}
    cameras = front_cameras(model)
    targets.update(photo_targets(model, cameras, posed, targets["landmark_vertices"], targets["landmark_bary"],
                                 with_images=name in IMAGE_LOSSES))
    if name == "silhouette":  # the synthetic head's outline lies at its sides, outside the front's candidates
        targets["silhouette_candidates"] = torch.arange(len(posed))
    expressions = None
    if start == "long lens":
        targets["typical_focal"] = 2.0 * targets["typical_focal"]
    elif start == "two lenses":
        cameras.log_focal[1] += 0.5
    elif start == "expressions":
        from solver.fit.engine import ExpressionOffsets
        from solver.fit.photo_fit import expression_bones

        expressions = ExpressionOffsets.zeros(len(cameras.image_size), expression_bones(model.rig.names),
                                              torch.float32)
        expressions.offsets.rotvec.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(2))
    # The bind-offset prior is zero where a fit starts: another loss moves the offsets first.
    before = [Stage(name="move", groups=groups, losses={"vertex": 1.0}, iterations=30, learning_rate=0.01)] if start == "moved" else []
    result = fit(model, targets, before + [Stage(name=name, groups=groups, losses={name: 1.0}, iterations=40, learning_rate=0.01,
                                                 patience=40)], cameras=cameras, expressions=expressions)
    values = [h[name] for h in result.history if h["stage"] == name]
    assert values[0] > 0 and min(values) < 0.9 * values[0], values[::8]
