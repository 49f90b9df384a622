"""Generate an ASM rig on a mesh: chart, template transfer, fast-path weights. Pure arrays in and out."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .config import WeightConfig
from .errors import ASMInputError
from .model import ASMModel
from .poses import load_named_poses
from .skeleton import load_skeleton
from .transfer import RigDefinition, transfer_template
from .uv_chart import chart_from_uv_map


@dataclass(frozen=True)
class GenerateSettings:
    preset: str = "full"
    influence_cap: int = 4
    gaussians_per_bone: int = 3

    def weight_config(self) -> WeightConfig:
        return WeightConfig(gaussians_per_bone=self.gaussians_per_bone, influence_cap=self.influence_cap)


def generate_rig(vertices: np.ndarray, triangles: np.ndarray, corner_uv: np.ndarray | None, landmarks: np.ndarray,
                 landmark_valid: np.ndarray, settings: GenerateSettings = GenerateSettings(),
                 progress=lambda stage, fraction: None) -> dict[str, np.ndarray | list]:
    """Everything the scene needs for a new rig, as plain arrays (see the keys of the returned dict)."""
    if corner_uv is None:
        raise ASMInputError("the mesh has no UV map; for now the rig needs the mesh's own UVs over the face "
                            "(a UV chart for any topology comes with rig generation in Blender)")
    progress("chart", 0.1)
    chart = chart_from_uv_map(len(vertices), triangles, corner_uv)
    progress("template", 0.3)
    skeleton = load_skeleton(settings.preset)
    config = settings.weight_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same messages come back in rig.warnings
        rig: RigDefinition = transfer_template(skeleton, vertices, triangles, chart, landmarks, landmark_valid, config)
    progress("weights", 0.6)
    model = ASMModel(rig, vertices, triangles, config, dtype=torch.float64)
    with torch.no_grad():
        capped = model.weights()
        bind = model.bind().numpy()
    progress("done", 1.0)
    poses = load_named_poses(rig.names, rig.head_unit)
    return {
        "names": np.array(rig.names), "parents": rig.parents, "bind": bind, "length": rig.length,
        "deform": rig.deform, "free": rig.free, "weight_bones": capped.bones.numpy(),
        "weight_values": capped.values.numpy(), "zeta": rig.zeta, "bind_triangle": rig.bind_triangle,
        "bind_offset": rig.bind_offset, "rest_rotation": rig.rest_rotation, "mixture_logits": rig.mixture_logits,
        "mixture_offsets": rig.mixture_offsets, "mixture_covariance": rig.mixture_covariance,
        "chart_uv": rig.chart_uv, "head_unit": np.array(rig.head_unit),
        "pose_names": np.array(list(poses)),
        "pose_log_scale": np.stack([p["log_scale"] for p in poses.values()]),
        "pose_rotvec": np.stack([p["rotvec"] for p in poses.values()]),
        "pose_translation": np.stack([p["translation"] for p in poses.values()]),
        "warnings": list(rig.warnings),
    }
