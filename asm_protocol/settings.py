"""Job settings, built in one place for every client (the sidebar's flows, the CLI, the sample job, the benchmarks)
and read by the solver's settings dataclasses (solver.rig.generate.GenerateSettings, solver.fit.photo_fit and
solver.fit.scan_fit's settings)."""
from __future__ import annotations

from pathlib import Path

from . import choices
from .choices import checked


def generate_settings(preset: str = choices.DEFAULT_PRESET, influence_cap: int = choices.DEFAULT_INFLUENCE_CAP,
                      gaussians_per_bone: int = choices.DEFAULT_GAUSSIANS_PER_BONE, chart: str = "auto") -> dict:
    """How a rig is placed on a mesh (the "generate" task's settings, and the "generate" part of the others)."""
    return {"preset": checked("preset", preset, choices.PRESETS),
            "influence_cap": int(influence_cap), "gaussians_per_bone": int(gaussians_per_bone),
            "chart": checked("chart", chart, choices.CHARTS)}


def photo_fit_settings(quality: str = choices.DEFAULT_QUALITY, expressions: str = choices.DEFAULT_EXPRESSIONS,
                       same_lens: bool = False, match_texture: bool = True) -> dict:
    """How a photo fit runs. match_texture False leaves out the photos' pixels (the patch and
    dense multi-view terms): landmarks only."""
    return {"quality": checked("fit quality", quality, choices.QUALITIES),
            "expressions": checked("expression handling", expressions, choices.EXPRESSION_MODES),
            "same_lens": bool(same_lens), **({} if match_texture else {"photometric": 0.0, "stereo": 0.0})}


def scan_fit_settings(quality: str = choices.DEFAULT_QUALITY) -> dict:
    return {"quality": checked("quality", quality, choices.QUALITIES)}


def rig_job(generate: dict, names=None) -> dict:
    """Settings of a job on a rig as it stands (rebake, fit_photos): how it was generated and its bone names."""
    return {"generate": dict(generate), **({} if names is None else {"names": [str(n) for n in names]})}


def photo_fit_job(generate: dict, fit: dict, images, names=None) -> dict:
    return {**rig_job(generate, names), "fit": dict(fit), "images": [str(Path(p)) for p in images]}


def scan_fit_job(generate: dict, fit: dict) -> dict:
    return {**rig_job(generate), "fit": dict(fit)}


def detect_job(images, max_side: int | None = None, renders: bool = False) -> dict:
    """renders: the images are Generate's renders of one head filling the frame, not photos: a render without a
    face is not searched again for smaller faces, and each is checked for a head standing upside down."""
    return {"images": [str(Path(p)) for p in images], "renders": bool(renders),
            **({} if max_side is None else {"max_side": int(max_side)})}


def expressions_job(generate: dict, names, expressions=()) -> dict:
    """The "expressions" task's settings: the rig as it stands (rig_job) and the ARKit names to fit (none: all 52)."""
    return {**rig_job(generate, names),
            "expressions": [checked("ARKit expression", str(e), choices.ARKIT_NAMES) for e in expressions]}
