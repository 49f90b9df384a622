"""asm_protocol says what both sides agree on: each of its lists must match what the solver actually takes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from asm_protocol import choices, keys, landmarks, settings, tasks

torch = pytest.importorskip("torch", reason="the solver's side of the protocol needs torch")


def test_the_presets_are_the_templates():
    from solver.template.skeleton import DEFAULT_TEMPLATE

    assert set(choices.PRESETS) == set(json.loads(DEFAULT_TEMPLATE.read_text())["presets"])


def test_the_choices_are_what_the_solver_accepts():
    from solver.core.errors import ASMInputError
    from solver.fit.photo_fit import QUALITY_STEPS as PHOTO_STEPS, PhotoFitSettings
    from solver.fit.scan_fit import QUALITY_STEPS as SCAN_STEPS, ScanFitSettings
    from solver.rig.generate import GenerateSettings

    assert tuple(PHOTO_STEPS) == tuple(SCAN_STEPS) == choices.QUALITIES
    for mode in choices.EXPRESSION_MODES:
        PhotoFitSettings(**settings.photo_fit_settings(expressions=mode))
    with pytest.raises(ASMInputError):
        PhotoFitSettings(expressions="each")
    for quality in choices.QUALITIES:
        ScanFitSettings(**settings.scan_fit_settings(quality))
    for chart in choices.CHARTS:
        assert GenerateSettings(**settings.generate_settings(chart=chart)).chart == chart
    no_texture = PhotoFitSettings(**settings.photo_fit_settings("fast", "shared", True, match_texture=False))
    assert no_texture.photometric == 0 and no_texture.same_lens and no_texture.expressions == "shared"


def test_the_builders_refuse_what_no_side_knows():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        settings.generate_settings(preset="huge")
    with pytest.raises(ValueError, match="unknown fit quality 'ultra'"):
        settings.photo_fit_settings(quality="ultra")


def test_every_task_has_a_worker_function_and_no_other():
    from solver.worker.tasks import TASKS

    assert set(TASKS) == set(tasks.TASKS)
    assert set(tasks.PHOTO_TASKS) <= set(tasks.TASKS)


def test_the_array_keys_are_the_ones_the_worker_returns(sample_mesh):
    from solver.rig.generate import GenerateSettings, generate_rig

    result = generate_rig(sample_mesh["vertices"], sample_mesh["triangles"], sample_mesh["corner_uv"],
                          np.nan_to_num(sample_mesh["landmarks"]), sample_mesh["landmark_valid"],
                          GenerateSettings(preset="game"))
    assert set(keys.RIG_PARAMETER_KEYS) <= set(result)
    assert keys.WARNINGS_KEY in result


def test_the_landmark_vocabulary_is_mediapipes():
    mediapipe = pytest.importorskip("mediapipe", reason="mediapipe names the face's outline (main environment)")
    oval = {i for edge in mediapipe.solutions.face_mesh.FACEMESH_FACE_OVAL for i in edge}
    assert set(landmarks.FACE_OVAL) == oval
    assert landmarks.LANDMARK_COUNT == 478 and landmarks.SURFACE_LANDMARKS == 468
    for left, right in landmarks.MIRRORED_PAIRS:
        assert 0 <= left < landmarks.SURFACE_LANDMARKS and 0 <= right < landmarks.SURFACE_LANDMARKS
