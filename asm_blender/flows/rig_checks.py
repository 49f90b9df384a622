"""A placed rig checked against the layout of a face before it is written: wrong landmarks (a face detected upside
down, markers moved onto the wrong features) give a rig that runs without error and deforms the wrong parts."""
from __future__ import annotations

import numpy as np

from ..scene_io.mesh import SceneInputError

# (lower, upper): bones of every preset that an upright face has one below the other, in world space (+Z up, as
# Generate's renders need the head)
BELOW = (("chin", "nose"), ("mouth", "eye.L"), ("mouth", "eye.R"))


def layout_problems(names, bind: np.ndarray, to_world: np.ndarray, facing: np.ndarray | None) -> list[str]:
    """What is out of place in the rig's bones (names (J,), bind (J, 4, 4) in object space) on a head whose object
    matrix is `to_world` and whose face looks along `facing` (world, None when unknown): the chin below the nose,
    the eyes above the mouth, the left eye on the subject's left. (Not the forehead: on a low brow, such as
    Suzanne's, its bone sits at the eyes' height.)"""
    heads = np.asarray(bind, dtype=float)[:, :3, 3] @ np.asarray(to_world)[:3, :3].T + np.asarray(to_world)[:3, 3]
    place = dict(zip((str(n) for n in names), heads))
    problems = [f"{low} is above {high}" for low, high in BELOW
                if low in place and high in place and place[low][2] >= place[high][2]]
    if facing is not None and "eye.L" in place and "eye.R" in place:
        subjects_left = np.cross([0.0, 0.0, 1.0], facing)  # looking along `facing`, +Z up: the subject's left
        # a mirrored object (negative scale) shows the mesh's left side on the world's right: the rig follows it
        handedness = np.sign(np.linalg.det(np.asarray(to_world)[:3, :3]))
        if handedness * (place["eye.L"] - place["eye.R"]) @ subjects_left <= 0:
            problems.append("eye.L is on the subject's right")
    return problems


def refuse_wrong_layout(mesh_name: str, names, bind: np.ndarray, to_world: np.ndarray,
                        facing: np.ndarray | None) -> None:
    """SceneInputError saying what is out of place when the rig does not have a face's layout (layout_problems)."""
    problems = layout_problems(names, bind, to_world, facing)
    if problems:
        raise SceneInputError(f"the rig placed on {mesh_name!r} does not have a face's layout ({'; '.join(problems)}): "
                              "its landmarks are wrong. Stand the head upright (+Z up), check the landmarks (Edit "
                              "Landmarks) or detect them again, then generate again; nothing was changed")
