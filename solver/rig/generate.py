"""Generate an ASM rig on a mesh: chart, template transfer, fast-path weights. Pure arrays in and out."""
from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from asm_protocol.choices import CHARTS
from asm_protocol.keys import RIG_PARAMETER_KEYS

from ..core.config import WeightConfig
from ..core.errors import ASMInputError
from ..model import ASMModel, RigDefinition
from ..model.uv_chart import chart_from_uv_map, cylindrical_chart
from ..model.weights import cholesky_factor
from ..template.canonical import canonical_face
from ..template.poses import load_named_poses
from ..template.skeleton import Skeleton, load_skeleton
from .transfer import robust_alignment, transfer_template



@dataclass(frozen=True)
class GenerateSettings:
    preset: str = "full"
    influence_cap: int = 4
    gaussians_per_bone: int = 3
    chart: str = "auto"  # "uv": the mesh's own UV map, "projected": cylindrical, "auto": UV when it qualifies

    def weight_config(self) -> WeightConfig:
        return WeightConfig(gaussians_per_bone=self.gaussians_per_bone, influence_cap=self.influence_cap)


def _transfer(skeleton, vertices, triangles, chart, landmarks, valid, config) -> RigDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same messages come back in rig.warnings
        return transfer_template(skeleton, vertices, triangles, chart, landmarks, valid, config)


def _bound_outside_face_island(rig: RigDefinition) -> list[str]:
    """Bones with Gaussians whose binding point is not on the face's UV island (their weights would stop
    at the island's border and tear the surface there)."""
    on_face = np.isin(rig.bind_triangle, rig.face_triangles)
    return [name for name, inside, gaussians in zip(rig.names, on_face, rig.has_gaussians) if gaussians and not inside]


def place_rig(vertices: np.ndarray, triangles: np.ndarray, corner_uv: np.ndarray | None, landmarks: np.ndarray,
              landmark_valid: np.ndarray, settings: GenerateSettings = GenerateSettings(),
              progress=lambda stage, fraction: None, skeleton: Skeleton | None = None) -> tuple[RigDefinition, str]:
    """The rig definition on a mesh and the chart it uses ("uv" or "projected"), chosen per settings.chart.
    `skeleton`: another template than the preset's (benchmarks/template_mixtures.py learns from the plain one)."""
    if settings.chart not in CHARTS:
        raise ASMInputError(f"unknown chart {settings.chart!r}; use one of {CHARTS}")
    progress("template", 0.1)
    skeleton = skeleton or load_skeleton(settings.preset)
    config = settings.weight_config()
    face = canonical_face()
    landmarks = np.asarray(landmarks, dtype=float)
    valid = np.asarray(landmark_valid, dtype=bool) & np.isfinite(landmarks).all(1)
    alignment, _ = robust_alignment(face.vertices[:face.surface_count], landmarks[:face.surface_count],
                                    valid[:face.surface_count], skeleton.iod_canonical)
    progress("chart", 0.3)
    to_canonical = alignment.invert
    projected = None
    if settings.chart != "uv":
        # The projected chart is made on a second thread while the mesh's own UV map is tried (numpy and the
        # KD-trees release the GIL): where the UV map does not qualify, it is ready sooner; where it does, the
        # thread's work is dropped.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asm_chart")
        projected = pool.submit(cylindrical_chart, vertices, triangles, to_canonical)
        pool.shutdown(wait=False)
    notes: list[str] = []
    if settings.chart in ("auto", "uv"):
        if corner_uv is None:
            if settings.chart == "uv":
                raise ASMInputError("the mesh has no UV map; choose the projected chart")
            notes.append("the mesh has no UV map: the rig uses a projected chart")
        else:
            rig = _transfer(skeleton, vertices, triangles, chart_from_uv_map(len(vertices), triangles, corner_uv),
                            landmarks, valid, config)
            outside = _bound_outside_face_island(rig)
            if not outside or settings.chart == "uv":
                return rig, "uv"
            notes.append(f"the mesh's UV island of the face ends before the bones {outside[:4]} reach: "
                         "the rig uses a projected chart (the UV maps are unchanged)")
    rig = _transfer(skeleton, vertices, triangles, projected.result(), landmarks, valid, config)
    rig.warnings[:0] = notes
    return rig, "projected"


def generate_rig(vertices: np.ndarray, triangles: np.ndarray, corner_uv: np.ndarray | None, landmarks: np.ndarray,
                 landmark_valid: np.ndarray, settings: GenerateSettings = GenerateSettings(),
                 progress=lambda stage, fraction: None) -> dict[str, np.ndarray | list]:
    """Everything the scene needs for a new rig, as plain arrays (see the keys of the returned dict)."""
    rig, chart_kind = place_rig(vertices, triangles, corner_uv, landmarks, landmark_valid, settings, progress)
    progress("weights", 0.6)
    model = ASMModel(rig, vertices, triangles, settings.weight_config(), dtype=torch.float64)
    arrays = rig_arrays(model, chart_kind)
    progress("done", 1.0)
    return arrays





def restore_model(vertices: np.ndarray, triangles: np.ndarray, corner_uv: np.ndarray | None, landmarks: np.ndarray,
                  landmark_valid: np.ndarray, settings: GenerateSettings, names: list[str],
                  edited: dict[str, np.ndarray], progress=lambda stage, fraction: None) -> tuple[ASMModel, str]:
    """The model of a rig as it stands in a scene (edited or fitted), and its chart kind.

    The chart, islands and bone frames are made again exactly as Generate made them (same mesh, landmarks and
    settings, settings.chart naming the chart the rig uses); the parameters in `edited` (keys of RIG_PARAMETER_KEYS:
    binding points, bind offsets, Gaussians) then replace the template's, and binding points moved out of their
    triangle are found again in the chart."""
    rig, chart_kind = place_rig(vertices, triangles, corner_uv, landmarks, landmark_valid, settings, progress)
    if list(rig.names) != list(names):
        raise ASMInputError(f"the rig's bones do not match the {settings.preset!r} preset of this version; "
                            "remove the rig and generate it again")
    unknown = set(edited) - set(RIG_PARAMETER_KEYS)
    if unknown:
        raise ASMInputError(f"not editable rig parameters: {sorted(unknown)}")
    replaced = {}
    for key, value in edited.items():
        value = np.asarray(value)
        current = np.asarray(getattr(rig, key))
        if value.shape != current.shape:
            raise ASMInputError(f"rig parameter {key!r}: expected shape {current.shape}, got {value.shape}")
        replaced[key] = value.astype(current.dtype)
    model = ASMModel(dataclasses.replace(rig, **replaced), vertices, triangles, settings.weight_config(),
                     dtype=torch.float64)
    model.relocate_bindings()
    return model, chart_kind


def rig_arrays(model: ASMModel, chart_kind: str) -> dict[str, np.ndarray | list]:
    """Everything the scene needs to write `model`'s rig as it stands now (fitted or not), as plain arrays,
    with the template's named demo poses."""
    rig = model.rig
    with torch.no_grad():
        capped = model.weights()
        bind = model.bind().double().cpu().numpy()
        covariance = cholesky_factor(model.mixture.cholesky_raw.double())
        covariance = (covariance @ covariance.transpose(-1, -2)).cpu().numpy()
        as_numpy = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
        poses = load_named_poses(rig.names, rig.head_unit)
        return {
            "names": np.array(rig.names), "parents": rig.parents, "bind": bind, "length": rig.length,
            "deform": rig.deform, "free": rig.free, "remainder_bone": np.array(rig.remainder_bone),
            "has_gaussians": np.asarray(rig.has_gaussians),
            "weight_bones": capped.bones.cpu().numpy(), "weight_values": as_numpy(capped.values),
            "zeta": as_numpy(model.zeta), "bind_triangle": model.bind_triangle.cpu().numpy(),
            "bind_offset": as_numpy(model.bind_offset), "rest_rotation": rig.rest_rotation,
            "mixture_logits": as_numpy(model.mixture.logits), "mixture_offsets": as_numpy(model.mixture.offsets),
            "mixture_covariance": covariance, "chart_uv": rig.chart_uv, "chart": np.array(chart_kind),
            "head_unit": np.array(rig.head_unit), "pose_names": np.array(list(poses)),
            "pose_log_scale": np.stack([p["log_scale"] for p in poses.values()]),
            "pose_rotvec": np.stack([p["rotvec"] for p in poses.values()]),
            "pose_translation": np.stack([p["translation"] for p in poses.values()]),
            "warnings": list(rig.warnings),
        }
