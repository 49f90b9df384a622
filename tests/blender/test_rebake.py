"""Editing a bone's ASM parameters (binding point, Gaussians) in the scene and re-baking: the weights and rest
places Blender gets are the solver's for the edited parameters."""
from __future__ import annotations

import json

import bpy
import numpy as np
import pytest

from asm_blender.flows import rebake
from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io import markers as markers_io
from asm_blender.scene_io.mesh import SceneInputError, mesh_arrays
from asm_blender.scene_io.rig import RIG_PROPERTY, edited_parameters, existing_rig

from .test_generate_rig import with_markers


def generated(head):
    with_markers(head)
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    arm = existing_rig(head)
    return arm, json.loads(arm[RIG_PROPERTY])["names"]


def solver_rig(head, arm):
    """What the solver makes of the parameters the pose bones hold now (in this process)."""
    from solver.rig.generate import GenerateSettings, restore_model, rig_arrays

    record = json.loads(arm[RIG_PROPERTY])
    arrays = mesh_arrays(head)
    landmarks, valid = markers_io.read_markers(head)
    settings = GenerateSettings(preset="game", influence_cap=4, chart=record["chart"])
    model, kind = restore_model(arrays.vertices, arrays.triangles, arrays.corner_uv, np.nan_to_num(landmarks), valid,
                                settings, record["names"], edited_parameters(arm, record))
    return rig_arrays(model, kind)


def test_rebake_without_edits_changes_nothing(sample_head):
    arm, names = generated(sample_head)
    weights, rest = armature_io.read_weights(sample_head, names), armature_io.rest_matrices(arm, names)
    assert bpy.ops.asm.rebake_rig() == {'FINISHED'}
    assert np.abs(armature_io.read_weights(sample_head, names) - weights).max() < 1e-5
    # the pose bones keep the parameters in float32 (Blender properties): rest places agree to that
    assert np.abs(armature_io.rest_matrices(arm, names) - rest).max() < 1e-5


def test_edited_gaussians_and_binding_are_what_blender_gets(sample_head):
    arm, names = generated(sample_head)
    before = armature_io.read_weights(sample_head, names)
    rest_before = armature_io.rest_matrices(arm, names)
    jaw = arm.pose.bones["jaw"].asm
    for gaussian in jaw.gaussians:
        gaussian.size = (1.5 * gaussian.size[0], 1.5 * gaussian.size[1])
    jaw.gaussians[0].weight = 0.6
    jaw.binding = (jaw.binding[0], jaw.binding[1] + 0.02)
    assert bpy.ops.asm.rebake_rig() == {'FINISHED'}

    j = names.index("jaw")
    after = armature_io.read_weights(sample_head, names)
    assert after[:, j].sum() > 1.1 * before[:, j].sum()  # wider Gaussians reach more of the face
    rest_after = armature_io.rest_matrices(arm, names)
    assert np.abs(rest_after[j, :3, 3] - rest_before[j, :3, 3]).max() > 1e-3  # the bone followed its binding
    unmoved = [i for i, name in enumerate(names) if name != "jaw"]  # rest places do not depend on the parent's
    assert np.abs(rest_after[unmoved] - rest_before[unmoved]).max() < 1e-5

    expected = solver_rig(sample_head, arm)
    dense = np.zeros_like(after)
    rows = np.arange(len(dense))
    for column in range(expected["weight_bones"].shape[1]):
        np.add.at(dense, (rows, expected["weight_bones"][:, column]), expected["weight_values"][:, column])
    dense[:, ~np.asarray(expected["deform"], dtype=bool)] = 0.0
    assert np.abs(after - dense).max() < 1e-5
    assert np.abs(rest_after - expected["bind"]).max() < 1e-5


def test_edits_survive_save_and_reopen(sample_head, tmp_path):
    arm, names = generated(sample_head)
    arm.pose.bones["jaw"].asm.gaussians[1].offset = (0.01, 0.02)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "edited.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "edited.blend"))
    arm = bpy.data.objects["Head_ASM"]
    assert tuple(round(c, 6) for c in arm.pose.bones["jaw"].asm.gaussians[1].offset) == (0.01, 0.02)
    bpy.context.view_layer.objects.active = arm
    assert bpy.ops.asm.rebake_rig() == {'FINISHED'}
    record = json.loads(arm[RIG_PROPERTY])
    assert np.allclose(record["mixture_offsets"][names.index("jaw")][1], (0.01, 0.02))


def test_rebake_without_the_landmarks_says_what_to_do(sample_head):
    arm, _ = generated(sample_head)
    markers_io.remove_markers(sample_head)
    with pytest.raises(SceneInputError, match="'Head' has lost its landmark markers.*generate the rig again"):
        rebake.rebake_now(arm)


def test_a_rebake_leaves_no_job_folder_behind(sample_head):
    import tempfile
    from pathlib import Path

    arm, _ = generated(sample_head)
    before = set(Path(tempfile.gettempdir()).glob("asm_job_*"))
    rebake.rebake_now(arm)
    assert set(Path(tempfile.gettempdir()).glob("asm_job_*")) <= before
