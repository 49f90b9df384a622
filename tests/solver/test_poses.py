"""Named poses: bone channels, or composed from the learned expressions (solver/template/poses.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from solver.core.errors import TemplateError
from solver.template.poses import DEMO_POSES, EXPRESSION_POSES, load_named_poses
from solver.template.skeleton import load_skeleton

NAMES = ("jaw", "lid_upper.L", "lid_upper.R")
EXPRESSIONS = {"about": "", "poses": {
    "blinkL": {"lid_upper.L": {"rotation": [-30, 0, 0], "scale": [1.2, 1, 1]}, "no_such_bone": {"rotation": [1, 2, 3]}},
    "blinkR": {"lid_upper.R": {"rotation": [-20, 0, 0]}, "lid_upper.L": {"rotation": [-10, 0, 0], "scale": [1.5, 1, 1],
                                                                          "translation": [0.1, 0, 0]}},
}}


def write(tmp_path, poses, expressions=EXPRESSIONS):
    (tmp_path / "expressions.json").write_text(json.dumps(expressions))
    (tmp_path / "poses.json").write_text(json.dumps({"about": "", "poses": poses}))
    return dict(path=tmp_path / "poses.json", expressions_path=tmp_path / "expressions.json")


def test_a_composed_pose_is_the_sum_of_its_expressions_plus_its_own_channels(tmp_path):
    files = write(tmp_path, {"blink": {"from_expressions": ["blinkL", "blinkR"], "jaw": {"rotation": [-5, 0, 0]}},
                             "plain": {"jaw": {"rotation": [-16, 0, 0]}}})
    poses = load_named_poses(NAMES, 2.0, **files)
    blink = poses["blink"]
    assert np.allclose(np.degrees(blink["rotvec"]), [[-5, 0, 0], [-40, 0, 0], [-20, 0, 0]])
    assert np.allclose(np.exp(blink["log_scale"]), [[1, 1, 1], [1.8, 1, 1], [1, 1, 1]])  # scales multiply
    assert np.allclose(blink["translation"], [[0, 0, 0], [0.2, 0, 0], [0, 0, 0]])  # in head units
    assert np.allclose(np.degrees(poses["plain"]["rotvec"][0]), [-16, 0, 0])


@pytest.mark.parametrize("entry, message", [
    (["blinkL", "wink"], "pose 'blink': unknown expression 'wink'"),
    ("blinkL", "pose 'blink': 'from_expressions' must be a non-empty list"),
    ([], "pose 'blink': 'from_expressions' must be a non-empty list"),
])
def test_a_composed_pose_is_checked(tmp_path, entry, message):
    with pytest.raises(TemplateError, match=message):
        load_named_poses(NAMES, 1.0, **write(tmp_path, {"blink": {"from_expressions": entry}}))
    files = write(tmp_path, {"blink": {"from_expressions": ["blinkL"]}})
    files["expressions_path"].unlink()
    with pytest.raises(TemplateError, match="pose 'blink' is composed from learned expressions"):
        load_named_poses(NAMES, 1.0, **files)


def test_the_demo_poses_read_the_learned_expressions_on_every_preset():
    composed = {name: pose["from_expressions"] for name, pose in json.loads(DEMO_POSES.read_text())["poses"].items()
                if "from_expressions" in pose}
    assert {"jaw open", "smile", "pucker", "blink", "brows up"} <= set(composed)
    learned = json.loads(EXPRESSION_POSES.read_text())["poses"]
    for preset in ("full", "standard", "game"):
        names = load_skeleton(preset).names
        poses = load_named_poses(tuple(names), 1.0)
        assert list(poses)[0] == "neutral" and not any(np.any(a) for a in poses["neutral"].values())
        for name in composed:
            assert np.any(poses[name]["rotvec"]) or np.any(poses[name]["translation"]), (preset, name)
        # the sum: the jaw of "jaw open" turns as jawOpen's does
        jaw = names.index("jaw")
        assert np.allclose(np.degrees(poses["jaw open"]["rotvec"][jaw]), learned["jawOpen"]["jaw"]["rotation"])
