"""Named poses from a data file (template/demo_poses.json), turned into solver Pose arrays.

A named pose lists bone channels, or is composed from the learned expressions (template/expression_poses.json):
`{"from_expressions": ["mouthSmile_L", "mouthSmile_R"]}` is the sum of their channels (rotation vectors and
translations added, scales multiplied), with any bone channels beside it added on top."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.errors import TemplateError
from . import TEMPLATE_DIR

DEMO_POSES = TEMPLATE_DIR / "demo_poses.json"
EXPRESSION_POSES = TEMPLATE_DIR / "expression_poses.json"  # the ICT-FaceKit's expressions, learned with the template
COMPOSED = "from_expressions"
CHANNELS = {"rotation", "translation", "scale"}


def load_named_poses(names: tuple[str, ...], head_unit: float, path: Path = DEMO_POSES,
                     expressions_path: Path = EXPRESSION_POSES) -> dict[str, dict[str, np.ndarray]]:
    """{pose name: {"log_scale", "rotvec", "translation": (J, 3)}} for the rig's bones; mesh units.

    Bones the rig lacks are left out (a smaller preset). A pose composed `from_expressions` reads
    `expressions_path` (once, only when some pose asks for it); an expression it does not hold is a TemplateError."""
    data = json.loads(Path(path).read_text())
    index = {n: j for j, n in enumerate(names)}
    expressions = None
    poses = {}
    for pose_name, channels in data["poses"].items():
        arrays = {k: np.zeros((len(names), 3)) for k in ("log_scale", "rotvec", "translation")}
        channels = dict(channels)
        parts = channels.pop(COMPOSED, None)
        if parts is not None:
            if isinstance(parts, str) or not isinstance(parts, list) or not parts \
                    or not all(isinstance(p, str) for p in parts):
                raise TemplateError(f"{path}: pose {pose_name!r}: {COMPOSED!r} must be a non-empty list of "
                                    f"expression names, not {parts!r}")
            if expressions is None:
                try:
                    expressions = json.loads(Path(expressions_path).read_text())["poses"]
                except (OSError, ValueError, KeyError) as error:
                    raise TemplateError(f"{path}: pose {pose_name!r} is composed from learned expressions, but "
                                        f"{Path(expressions_path).name} cannot be read: {error}") from error
            for part in parts:
                if part not in expressions:
                    raise TemplateError(f"{path}: pose {pose_name!r}: unknown expression {part!r} "
                                        f"(not in {Path(expressions_path).name})")
                _add_channels(arrays, expressions[part], index, head_unit, f"{expressions_path}: expression {part!r}")
        _add_channels(arrays, channels, index, head_unit, f"{path}: pose {pose_name!r}")
        poses[pose_name] = arrays
    return poses


def _add_channels(arrays: dict[str, np.ndarray], channels: dict, index: dict[str, int], head_unit: float,
                  where: str) -> None:
    for bone, values in channels.items():
        if bone not in index:
            continue  # a smaller preset lacks this bone; its pose simply leaves it out
        unknown = set(values) - CHANNELS
        if unknown:
            raise TemplateError(f"{where}, bone {bone!r}: unknown channel(s) {sorted(unknown)}")
        j = index[bone]
        arrays["rotvec"][j] += np.radians(values.get("rotation", [0, 0, 0]))
        arrays["translation"][j] += np.asarray(values.get("translation", [0, 0, 0]), float) * head_unit
        arrays["log_scale"][j] += np.log(np.asarray(values.get("scale", [1, 1, 1]), float))
