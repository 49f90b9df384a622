"""The skeleton template file and its validation."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from solver.template.canonical import canonical_face
from solver.core.errors import TemplateError
from solver.template.skeleton import DEFAULT_TEMPLATE, load_skeleton, skeleton_from_dict


@pytest.fixture()
def template():
    return json.loads(DEFAULT_TEMPLATE.read_text())


def test_presets_have_paper_like_sizes():
    full, game = load_skeleton("full"), load_skeleton("game")
    assert 80 <= full.bone_count <= 88
    assert 20 <= game.bone_count <= 28
    assert set(game.names) < set(full.names)
    for required in ("root", "head", "neck", "jaw", "chin", "forehead", "nose_tip", "eye.L", "eye.R", "lid_upper.L",
                     "brow_inner.R", "cheek_apple.L", "lip_upper", "lip_lower", "mouth_corner.L", "temple.R", "ear.L"):
        assert required in full.names


def test_hierarchy_is_valid_and_shallow():
    skeleton = load_skeleton("full")
    assert (skeleton.parents[1:] < np.arange(1, skeleton.bone_count)).all()  # parents first
    assert skeleton.parents[0] == -1 and (skeleton.parents[1:] >= 0).all()
    head = skeleton.index("head")
    for j in range(skeleton.bone_count):
        steps, ancestor = 0, j
        while ancestor not in (-1, head):
            ancestor, steps = skeleton.parents[ancestor], steps + 1
        if ancestor == head:
            assert steps <= 3, skeleton.names[j]


def test_left_and_right_bones_mirror():
    skeleton = load_skeleton("full")
    face = canonical_face()
    flip = np.diag([-1.0, 1.0, 1.0])
    for j, name in enumerate(skeleton.names):
        if not name.endswith(".L"):
            continue
        twin = skeleton.index(name[:-2] + ".R")
        assert skeleton.parents[twin] == skeleton.index(skeleton.names[skeleton.parents[j]].replace(".L", ".R")) or \
            skeleton.names[skeleton.parents[j]] == skeleton.names[skeleton.parents[twin]]
        left = skeleton.anchor_weights[j] @ face.vertices[skeleton.anchor_landmarks[j]]
        right = skeleton.anchor_weights[twin] @ face.vertices[skeleton.anchor_landmarks[twin]]
        np.testing.assert_allclose(right, flip @ left, atol=1e-4)
        np.testing.assert_allclose(skeleton.rest_rotation[twin][:, 1:], flip @ skeleton.rest_rotation[j][:, 1:], atol=1e-12)


def test_free_masks_and_rest_frames():
    skeleton = load_skeleton("full")
    eye = skeleton.index("eye.L")
    assert list(skeleton.free[eye]) == [False, True, False]  # eyeballs only rotate
    rotations = skeleton.rest_rotation
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, 1, 2), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)
    assert not skeleton.has_gaussians[skeleton.remainder_bone]
    assert not skeleton.deform[skeleton.index("root")]


def test_standard_preset_sits_between_game_and_full():
    full, standard, game = (load_skeleton(p) for p in ("full", "standard", "game"))
    assert 48 <= standard.bone_count <= 56
    assert set(game.names) < set(standard.names) < set(full.names)
    for name in standard.names:  # left and right come in pairs
        if name.endswith((".L", ".R")):
            assert name[:-1] + ("R" if name.endswith(".L") else "L") in standard.names
    # Bones whose neighbours the preset leaves out cover their part with wider Gaussians.
    cheek = standard.index("cheek.L")
    assert (standard.sigma[cheek] > full.sigma[full.index("cheek.L")]).all()
    assert np.allclose(standard.sigma[standard.index("nose_tip")], full.sigma[full.index("nose_tip")])
    assert standard.names[standard.parents[standard.index("nostril.L")]] == "nose"


def test_game_preset_reparents_to_nearest_kept_ancestor():
    game = load_skeleton("game")
    assert game.names[game.parents[game.index("brow_inner.L")]] == "head"
    assert game.names[game.parents[game.index("lip_lower")]] == "jaw"


def _bone(template, name):
    return next(b for b in template["bones"] if b["name"] == name)


@pytest.mark.parametrize("mutate, message", [
    (lambda t: _bone(t, "head").__setitem__("parent", "jaw"), "cycle: .*head.*jaw.*head"),
    (lambda t: _bone(t, "chin").__setitem__("parent", "jawbone"), "bone 'chin': parent 'jawbone' does not exist"),
    (lambda t: t["bones"].append(copy.deepcopy(_bone(t, "chin"))), "duplicate bone name 'chin'"),
    (lambda t: _bone(t, "chin")["anchor"].__setitem__("landmarks", [199, 512]), "bone 'chin': unknown landmark index 512"),
    (lambda t: _bone(t, "chin")["anchor"].__setitem__("landmarks", [470]), "bone 'chin': unknown landmark index 470"),
    (lambda t: _bone(t, "chin").__setitem__("sigm", [0.1, 0.1]), r"bone 'chin': unknown field\(s\) \['sigm'\]"),
    (lambda t: _bone(t, "brow.L")["anchor"].__setitem__("landmarks", [105]), "bone 'brow.L': its anchor lies at x = -"),
    (lambda t: _bone(t, "chin").__setitem__("free", ["wobble"]), "bone 'chin': unknown parameter group"),
    (lambda t: _bone(t, "chin").__setitem__("sigma", [0.1, -1]), "bone 'chin': sigma must be positive"),
    (lambda t: _bone(t, "chin").__setitem__("z_axis", [0, 0, 1]), "bone 'chin': z_axis is parallel to y_axis"),
    (lambda t: _bone(t, "root").__setitem__("parent", "neck"), "cycle"),
    (lambda t: _bone(t, "jaw")["pivot"].__setitem__("landmarks", [234, 93, 454]),
     r"bone 'jaw': pivot 'landmarks' must hold each landmark's mirror twin too.*add \[323\]"),
    (lambda t: _bone(t, "jaw").__setitem__("offset", [0, 1, 0]), "bone 'jaw': a bone with a 'pivot' .* drop 'offset'"),
    (lambda t: _bone(t, "jaw")["pivot"].__setitem__("reach", [0, 1, 0]), "bone 'jaw': 'pivot' needs exactly the fields"),
    (lambda t: _bone(t, "jaw")["pivot"].__setitem__("offset", [0, 1]), "bone 'jaw': field 'pivot.offset' must be a list of 3"),
    (lambda t: _bone(t, "jaw")["pivot"].__setitem__("landmarks", [234, 999]), "bone 'jaw': pivot 'landmarks' must be"),
    (lambda t: _bone(t, "lid_upper.L").__setitem__("turns_about", "eyeball.L"),
     "bone 'lid_upper.L': 'turns_about' must name a bone of the template, got 'eyeball.L'"),
    (lambda t: _bone(t, "lid_upper.L").__setitem__("offset", [0, 0, -0.1]),
     "bone 'lid_upper.L': a bone with 'turns_about' has its head at that bone's; drop 'offset'"),
    (lambda t: _bone(t, "lid_upper_out.L").__setitem__("turns_about", "lid_upper.L"),
     "bone 'lid_upper_out.L': it turns about 'lid_upper.L', which itself turns about another bone"),
])
def test_bad_templates_raise_one_clear_error(template, mutate, message):
    mutate(template)
    with pytest.raises(TemplateError, match=message):
        skeleton_from_dict(template, "full")


def test_a_bone_cannot_turn_about_one_its_preset_leaves_out(template):
    _bone(template, "lid_upper.L")["turns_about"] = "eye_corner_out.L"  # full and standard only
    standard = skeleton_from_dict(copy.deepcopy(template), "standard")
    assert standard.names[standard.turns_about[standard.index("lid_upper.L")]] == "eye_corner_out.L"
    with pytest.raises(TemplateError, match="bone 'lid_upper.L': it turns about 'eye_corner_out.L', which this "
                                            "preset leaves out"):
        skeleton_from_dict(template, "game")


def test_the_lids_turn_about_their_eye_in_every_preset():
    for preset in ("full", "standard", "game"):
        skeleton = load_skeleton(preset)
        for j, name in enumerate(skeleton.names):
            expected = name.replace(name.split(".")[0], "eye") if name.startswith("lid_") else None
            assert (skeleton.names[skeleton.turns_about[j]] if skeleton.turns_about[j] >= 0 else None) == expected


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(TemplateError, match="unknown preset 'mobile'"):
        load_skeleton("mobile")
    with pytest.raises(TemplateError, match="not found"):
        load_skeleton("full", tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TemplateError, match="not valid JSON"):
        load_skeleton("full", tmp_path / "bad.json")


def test_learned_mixtures_are_mirrored_and_only_in_the_full_preset():
    from solver.template.skeleton import LEARNED_MIXTURES

    document = json.loads(LEARNED_MIXTURES.read_text())
    assert not any(name.endswith(".R") for name in document["bones"])  # the loader makes the .R twins
    full = load_skeleton("full")
    mixtures = full.mixtures
    assert mixtures is not None and mixtures.gaussians_per_bone == document["gaussians_per_bone"]
    for name in ("lid_upper.L", "mouth_corner.L", "cheek.L"):
        left, right = full.index(name), full.index(name[:-2] + ".R")
        assert mixtures.has[left] and mixtures.has[right]
        np.testing.assert_allclose(mixtures.offsets[right], mixtures.offsets[left] * [-1.0, 1.0])
        np.testing.assert_allclose(mixtures.covariance[right][:, 0, 1], -mixtures.covariance[left][:, 0, 1])
        np.testing.assert_allclose(np.exp(mixtures.logits[left]).sum(), 1.0)
    assert not mixtures.has[full.remainder_bone]  # the head takes the remainder, it has no Gaussians
    assert load_skeleton("game").mixtures is None and load_skeleton("full", mixtures=None).mixtures is None


@pytest.mark.parametrize("entry, message", [
    ({"weights": [1, 1], "offsets": [[0, 0]] * 3, "covariances": [[1e-4, 0, 1e-4]] * 3}, "expected 3 weights"),
    ({"weights": [1, 1, 1], "offsets": [[0, 0]] * 3, "covariances": [[1e-4, 2e-4, 1e-4]] * 3}, "weights and covariances must be positive"),
    ({"weights": [1, 0, 1], "offsets": [[0, 0]] * 3, "covariances": [[1e-4, 0, 1e-4]] * 3}, "weights and covariances must be positive"),
])
def test_bad_learned_mixtures_name_the_bone(tmp_path, entry, message):
    path = tmp_path / "mixtures.json"
    path.write_text(json.dumps({"gaussians_per_bone": 3, "bones": {"chin.L": entry}}))
    with pytest.raises(TemplateError, match=f"bone 'chin.L': {message}"):
        load_skeleton("full", mixtures=path)
    path.write_text(json.dumps({"gaussians_per_bone": 3, "bones": {"chin.X": entry}}))
    with pytest.raises(TemplateError, match="bone 'chin.X' is not in the template"):
        load_skeleton("full", mixtures=path)
