"""Named poses from a data file (template/demo_poses.json), turned into solver Pose arrays."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import TemplateError
from . import TEMPLATE_DIR

DEMO_POSES = TEMPLATE_DIR / "demo_poses.json"
EXPRESSION_POSES = TEMPLATE_DIR / "expression_poses.json"  # the ICT-FaceKit's expressions, learned with the template


def load_named_poses(names: tuple[str, ...], head_unit: float, path: Path = DEMO_POSES) -> dict[str, dict[str, np.ndarray]]:
    """{pose name: {"log_scale", "rotvec", "translation": (J, 3)}} for the rig's bones; mesh units."""
    data = json.loads(Path(path).read_text())
    index = {n: j for j, n in enumerate(names)}
    poses = {}
    for pose_name, channels in data["poses"].items():
        arrays = {k: np.zeros((len(names), 3)) for k in ("log_scale", "rotvec", "translation")}
        for bone, values in channels.items():
            if bone not in index:
                continue  # a smaller preset lacks this bone; its pose simply leaves it out
            unknown = set(values) - {"rotation", "translation", "scale"}
            if unknown:
                raise TemplateError(f"{path}: pose {pose_name!r}, bone {bone!r}: unknown channel(s) {sorted(unknown)}")
            j = index[bone]
            arrays["rotvec"][j] = np.radians(values.get("rotation", [0, 0, 0]))
            arrays["translation"][j] = np.asarray(values.get("translation", [0, 0, 0]), float) * head_unit
            arrays["log_scale"][j] = np.log(np.asarray(values.get("scale", [1, 1, 1]), float))
        poses[pose_name] = arrays
    return poses
