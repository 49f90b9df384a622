"""The ARKit-52 library (solver/rig/arkit.py) carried onto the sample head and fitted as bone poses
(solver/fit/expression_poses.py); the worker's "expressions" task."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from solver.rig.arkit import ARKIT_NAMES, LIBRARY_FILE, canonical_chart_uv, carry_expressions, kit_sources, load_library

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def sample_model(sample_mesh):
    from solver.core.config import WeightConfig
    from solver.model import ASMModel
    from solver.rig.generate import GenerateSettings, place_rig

    mesh = sample_mesh
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig, _chart = place_rig(mesh["vertices"], mesh["triangles"], mesh["corner_uv"], mesh["landmarks"],
                                mesh["landmark_valid"], GenerateSettings("full", 4))
    return ASMModel(rig, mesh["vertices"], mesh["triangles"], WeightConfig(influence_cap=4))


def _in_canonical_frame(rig, offsets: np.ndarray) -> np.ndarray:
    """Mesh-frame offsets (..., 3) turned into the canonical face's frame (+X the subject's left, +Y up)."""
    return offsets @ rig.alignment.rotation / rig.alignment.scale


def test_the_library_holds_arkits_52_names_and_is_small():
    library = load_library()
    assert library.names == ARKIT_NAMES and len(set(ARKIT_NAMES)) == 52
    assert LIBRARY_FILE.stat().st_size < 3e6
    assert library.offsets.shape == (52, len(library.canonical_uv), 3)
    assert not library.offsets[ARKIT_NAMES.index("tongueOut")].any()  # not in the kit: kept, empty
    assert np.abs(library.offsets[ARKIT_NAMES.index("jawOpen")]).max() > 1.0  # cm
    # the kit's _L is the subject's left (+X in the canonical frame), as ARKit's Left
    for name, side in (("eyeBlinkLeft", 1), ("eyeBlinkRight", -1), ("mouthSmileLeft", 1), ("browOuterUpRight", -1)):
        moved = np.linalg.norm(library.offsets[ARKIT_NAMES.index(name)], axis=1)
        assert side * (moved @ library.neutral[:, 0]) / moved.sum() > 1.0, name


def test_the_kits_53_expressions_each_feed_one_arkit_name():
    sources = [s for name in ARKIT_NAMES for s in kit_sources(name)]
    assert len(sources) == len(set(sources)) == 53
    assert kit_sources("eyeBlinkLeft") == ("eyeBlink_L",) and kit_sources("jawLeft") == ("jawLeft",)
    assert kit_sources("browInnerUp") == ("browInnerUp_L", "browInnerUp_R") and kit_sources("tongueOut") == ()


@pytest.mark.shared_data
def test_the_library_is_the_kits_shapes(shared_data):
    """Its offsets are the kit's (halves added, renamed), turned and scaled by one similarity, to float16."""
    shapes = np.load(shared_data / "ict_facekit" / "ict_shapes.npz")
    kit = {str(n): o for n, o in zip(shapes["expression_names"], shapes["expression_offsets"])}
    with np.load(LIBRARY_FILE) as data:
        kept = data["kit_vertices"]
    library = load_library()
    ratios = []
    for row, name in enumerate(ARKIT_NAMES):
        if not kit_sources(name):
            continue
        truth = np.linalg.norm(sum(kit[s] for s in kit_sources(name))[kept], axis=1)
        ours = np.linalg.norm(library.offsets[row], axis=1)
        moving = truth > 0.05
        ratios.append(ours[moving] / truth[moving])
    ratios = np.concatenate(ratios)
    assert np.ptp(ratios) / ratios.mean() < 0.01  # one scale for every vertex and expression


def test_canonical_uv_puts_the_sample_face_where_the_library_has_it(sample_mesh, sample_model):
    rig = sample_model.rig
    mesh = sample_mesh
    uv = canonical_chart_uv(mesh["vertices"], mesh["triangles"], rig, mesh["landmarks"], mesh["landmark_valid"])
    library = load_library()
    face = np.isfinite(uv).all(1)
    assert face.sum() > 1000
    # the sample's nose tip (MediaPipe point 1) lands where the kit's does
    from solver.template.canonical import canonical_face

    tip = np.argmin(np.linalg.norm(mesh["vertices"] - mesh["landmarks"][1], axis=1))
    assert np.linalg.norm(uv[tip] - canonical_face().uv[1]) < 5 * library.uv_spacing


def test_carried_lips_part_and_sides_stay_the_subjects(sample_mesh, sample_model):
    """jawOpen carried onto the sample: the lower lip moves down far more than the upper one (they touch in UV: the
    opening sides keep them apart); eyeBlinkLeft moves the subject's left lid."""
    rig = sample_model.rig
    mesh = sample_mesh
    library = load_library().select(["jawOpen", "eyeBlinkLeft"])
    uv = canonical_chart_uv(mesh["vertices"], mesh["triangles"], rig, mesh["landmarks"], mesh["landmark_valid"])
    every = np.arange(len(mesh["vertices"]))
    carried = carry_expressions(library, rig, mesh["vertices"], uv, every)
    down = -_in_canonical_frame(rig, carried.offsets[0])[:, 1]
    mouth = rig.openings.vertex[:, 0]
    to_lips = np.linalg.norm(mesh["vertices"][:, None] - mesh["landmarks"][[13, 14]], axis=2).min(1)
    near = to_lips < 0.1 * rig.head_unit  # the inner lip line: both lips lie a fraction of an edge apart in UV
    upper, lower = near & (mouth > 0.5), near & (mouth < -0.5)
    assert upper.sum() > 5 and lower.sum() > 5
    assert down[lower].mean() > 0.05 * rig.head_unit
    # every upper-lip vertex reads the upper lip (without the sides, three of them moved down like the lower lip)
    assert down[upper].max() < 0.3 * down[lower].mean()
    moved = np.linalg.norm(carried.offsets[1], axis=1)
    across = _in_canonical_frame(rig, mesh["vertices"] - rig.alignment.translation)[:, 0]
    assert (moved @ across) / moved.sum() > 0  # the subject's left
    assert carried.weights.min() >= 0 and carried.weights.max() <= 1


def test_three_expressions_fit_as_poses_and_leave_the_model_alone(sample_mesh, sample_model):
    from solver.fit.expression_poses import LibraryFitSettings, fit_library_poses

    before = sample_model.pose.rotvec.clone()
    seen = []
    poses = fit_library_poses(sample_model, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                              LibraryFitSettings(expressions=("jawOpen", "mouthSmileLeft", "tongueOut")),
                              progress=lambda stage, fraction: seen.append(fraction))
    assert poses.names == ("jawOpen", "mouthSmileLeft", "tongueOut")
    assert poses.rotvec.shape == (3, sample_model.bone_count, 3)
    assert poses.residual[0] < 0.35 and poses.residual[1] < 0.5  # measured: 15 % and 19 %
    assert not np.isfinite(poses.residual[2]) and not poses.rotvec[2].any()  # tongueOut: the rest pose
    jaw = sample_model.rig.names.index("jaw")
    assert np.linalg.norm(poses.rotvec[0, jaw]) > 0.05  # the jaw turns open
    assert seen and seen == sorted(seen) and seen[-1] == 1.0
    assert torch.equal(sample_model.pose.rotvec, before)


def test_a_cancelled_fit_raises_and_leaves_the_model_alone(sample_mesh, sample_model):
    from solver.fit.expression_poses import LibraryFitSettings, fit_library_poses

    class Stop(Exception):
        pass

    def progress(stage, fraction):
        if fraction > 0.1:
            raise Stop

    with pytest.raises(Stop):
        fit_library_poses(sample_model, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                          LibraryFitSettings(expressions=("jawOpen", "eyeBlinkLeft")), progress=progress)
    assert not sample_model.pose.rotvec.any()
    assert not any(t.requires_grad for t in (sample_model.pose.rotvec, sample_model.zeta))


def test_unknown_names_are_refused():
    from solver.core.errors import ASMInputError

    with pytest.raises(ASMInputError, match="eyeBlink_L"):
        load_library().select(["eyeBlink_L"])


def test_the_worker_task_returns_poses_for_the_rig_as_it_stands(sample_mesh, tmp_path):
    from asm_protocol import settings
    from asm_protocol.keys import EXPRESSION_POSE_KEYS
    from solver.rig.generate import GenerateSettings, generate_rig
    from solver.worker import tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig = generate_rig(*(sample_mesh[k] for k in ("vertices", "triangles", "corner_uv", "landmarks",
                                                       "landmark_valid")), GenerateSettings("game", 4))
    base = {"base_log_scale": np.zeros((len(rig["names"]), 3)), "base_rotvec": np.zeros((len(rig["names"]), 3)),
            "base_translation": np.zeros((len(rig["names"]), 3))}
    jaw = list(rig["names"]).index("jaw")
    base["base_rotvec"][jaw, 0] = 0.05  # the expressions start from this pose and keep what they do not move
    job = settings.expressions_job(settings.generate_settings("game", 4, 3, str(rig["chart"])), rig["names"],
                                   ["eyeBlinkRight"])
    result = tasks.expressions({**sample_mesh, **base}, job, lambda stage, fraction, loss=None: None, tmp_path)
    assert list(result["expression_names"]) == ["eyeBlinkRight"]
    for key in EXPRESSION_POSE_KEYS:
        assert result[key].shape == (1, len(rig["names"]), 3)
    assert abs(result["expression_rotvec"][0, jaw, 0] - 0.05) < 0.02
    assert np.allclose(result["bind"], rig["bind"], atol=1e-6)
    assert result["expression_rms"][0] < 0.7 * result["expression_own_rms"][0]


@pytest.mark.slow
def test_all_52_fit_on_the_sample_head(sample_mesh, sample_model):
    from solver.fit.expression_poses import fit_library_poses

    poses = fit_library_poses(sample_model, sample_mesh["landmarks"], sample_mesh["landmark_valid"])
    assert poses.names == ARKIT_NAMES
    fitted = np.isfinite(poses.residual)
    assert fitted.sum() == 51  # all but tongueOut
    assert (poses.residual[fitted] < 0.6).all(), dict(zip(ARKIT_NAMES, poses.residual.round(2)))
    assert np.median(poses.residual[fitted]) < 0.35  # measured: 26 %


def test_fits_start_from_the_learned_poses_where_those_are_closer(sample_mesh, sample_model):
    """The template's learned poses (solver/template/expression_poses.json) as ARKit starts: both halves of
    browInnerUp, none for tongueOut; on the sample head a learned start brings the smile closer than the rest pose,
    and the fit from it ends at least as close as the fit from the rest pose."""
    from solver.fit.expression_poses import LibraryFitSettings, fit_library_poses, learned_starts
    from solver.template.poses import EXPRESSION_POSES, load_named_poses

    names, unit = sample_model.rig.names, float(sample_model.rig.head_unit)
    starts = learned_starts(names, unit)
    assert set(starts) == set(ARKIT_NAMES) - {"tongueOut"}
    kit = load_named_poses(tuple(names), unit, EXPRESSION_POSES)
    np.testing.assert_allclose(starts["browInnerUp"]["rotvec"],
                               kit["browInnerUp_L"]["rotvec"] + kit["browInnerUp_R"]["rotvec"])
    fits = {}
    for learned in (True, False):
        fits[learned] = fit_library_poses(sample_model, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                                          LibraryFitSettings(expressions=("mouthSmileLeft",), learned_starts=learned))
    assert fits[True].residual[0] <= fits[False].residual[0] + 0.01, (fits[True].residual, fits[False].residual)
    assert not np.allclose(fits[True].rotvec, fits[False].rotvec)  # it did start elsewhere
