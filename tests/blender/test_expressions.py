"""Make ARKit Expressions as the artist uses it (the sidebar's operator, in background mode) and as a pipeline uses it
(`python -m asm_blender expressions`): one Action per expression, ARKit-named shape keys on request, the user's data
kept, bad input refused with a message and the scene unchanged, cancel and undo; the glb carries the keys as morph
targets under ARKit's names.

The first test runs the real solver job on a few expressions and keeps its result; the others write that stored
result through the flow's last step (the rig is generated the same way each time, so it fits it)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import bpy
import numpy as np
import pytest

from asm_blender import cli, jobs
from asm_blender.flows import expressions as expression_flow
from asm_blender.flows.steps import StepRunner, run_to_completion
from asm_blender.protocol import choices
from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io import expressions as expressions_io
from asm_blender.scene_io.mesh import SceneInputError
from asm_blender.scene_io.rig import existing_rig

from .test_export_and_info import gltf_validator, validate  # noqa: F401  (a fixture, used by name)
from .test_generate_rig import with_markers

FEW = ("jawOpen", "eyeBlinkLeft", "tongueOut")
STORED: dict = {}  # the real job's result for FEW, from the first test


def rigged(head):
    """The head with its game rig from the stored landmarks (no detector needed)."""
    with_markers(head)
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    return head


def user_data(head) -> dict:
    """The user's own data on the head, which nothing here may change."""
    keys = head.data.shape_keys
    return {"groups": sorted(g.name for g in head.vertex_groups), "modifiers": [m.name for m in head.modifiers],
            "uv": [uv.name for uv in head.data.uv_layers],
            "keys": {k.name: np.array([d.co[:] for d in k.data]) for k in keys.key_blocks} if keys else {}}


def expression_state(head) -> dict:
    arm = existing_rig(head)
    return {"actions": sorted(a.name for a in bpy.data.actions),
            "keys": [k.name for k in head.data.shape_keys.key_blocks] if head.data.shape_keys else [],
            "pose": np.array([np.array(b.matrix_basis) for b in arm.pose.bones]),
            "animation": arm.animation_data is not None and arm.animation_data.action is not None}


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, after[key]), key
        elif isinstance(value, dict):
            assert value.keys() == after[key].keys(), key
            for name in value:
                assert np.array_equal(value[name], after[key][name]), (key, name)
        else:
            assert value == after[key], key


def stored_result(head) -> dict:
    if not STORED:
        pytest.skip("needs the result of the real job (test_the_expressions_become_actions_and_arkit_shape_keys)")
    return STORED


def finish(head, result, shape_keys=False) -> dict:
    arm = existing_rig(head)
    names = [str(n) for n in result["names"]]
    base = expressions_io.current_pose(arm, names)
    return run_to_completion(expression_flow.finish_expression_steps(arm.name, head.name, result, base, shape_keys),
                             print)


def armature_vertices(head, arm, action_name: str | None) -> np.ndarray:
    """The head deformed by the armature alone, in the Action's pose (or the rest pose)."""
    animation = arm.animation_data_create()
    animation.action = bpy.data.actions[action_name] if action_name else None
    if action_name is None:
        armature_io.set_pose(arm, [b.name for b in arm.pose.bones], *(np.zeros((len(arm.pose.bones), 3)),) * 3)
    bpy.context.scene.frame_set(bpy.context.scene.frame_start)
    try:
        return expressions_io.armature_only_vertices(head)
    finally:
        arm.animation_data_clear()


def test_the_expressions_become_actions_and_arkit_shape_keys(sample_head, tmp_path, monkeypatch):
    original = expression_flow.finish_expression_steps

    def keep_result(arm_name, mesh_name, result, *args, **options):  # the job's result, for the other tests
        STORED.clear()
        STORED.update(result)
        return original(arm_name, mesh_name, result, *args, **options)

    monkeypatch.setattr(expression_flow, "finish_expression_steps", keep_result)
    head = rigged(sample_head)
    head.shape_key_add(name="Basis", from_mix=False)
    mine = head.shape_key_add(name="My Smile", from_mix=False)  # the user's own key stays as it is
    mine.data[0].co = (mine.data[0].co[0] + 0.1, mine.data[0].co[1], mine.data[0].co[2])
    head.vertex_groups.new(name="my group")
    before = user_data(head)
    arm = existing_rig(head)
    seen = []
    steps = expression_flow.expression_steps(arm, shape_keys=True, expressions=FEW, workdir=tmp_path)
    summary = run_to_completion(steps, seen.append)
    assert [s.fraction for s in seen] == sorted(s.fraction for s in seen) and len(seen) > 3  # progress, forward
    assert summary["expressions"] == list(FEW)
    assert summary["actions"] == [f"Head {name}" for name in FEW]
    assert summary["shape_keys"] == list(FEW) and summary["empty"] == ["tongueOut"]
    assert summary["residual"]["jawOpen"] < 0.5 and summary["residual"]["eyeBlinkLeft"] < 0.8
    # the user's data is kept: their key (its offset too), groups, modifiers, UV maps
    after = user_data(head)
    assert after["keys"]["My Smile"].tolist() == before["keys"]["My Smile"].tolist()
    assert set(before["groups"]) <= set(after["groups"]) and after["modifiers"] == before["modifiers"]
    assert after["uv"] == before["uv"]
    assert [k.name for k in head.data.shape_keys.key_blocks] == ["Basis", "My Smile", *FEW]
    for name in FEW:
        action = bpy.data.actions[f"Head {name}"]
        assert action.use_fake_user and action[expressions_io.EXPRESSION_PROPERTY] == name
        if hasattr(action, "asset_mark"):
            assert action.asset_data is not None and "ARKit" in action.asset_data.tags
    assert arm.animation_data is None  # the armature's own animation is left as it was (none)
    assert all(np.abs(np.array(b.matrix_basis) - np.eye(4)).max() < 1e-6 for b in arm.pose.bones)  # and its pose
    # each shape key is what its Action does to the mesh; the jaw opens downwards; tongueOut is empty
    basis = np.array([d.co[:] for d in head.data.shape_keys.key_blocks["Basis"].data])
    rest = armature_vertices(head, arm, None)
    for name in FEW:
        key = np.array([d.co[:] for d in head.data.shape_keys.key_blocks[name].data]) - basis
        posed = armature_vertices(head, arm, f"Head {name}") - rest
        assert np.abs(key - posed).max() < 1e-4, name
    key = lambda name: np.array([d.co[:] for d in head.data.shape_keys.key_blocks[name].data]) - basis  # noqa: E731
    assert key("jawOpen")[:, 2].min() < -0.05 and np.abs(key("tongueOut")).max() == 0.0
    blink = key("eyeBlinkLeft")
    most = np.argsort(np.linalg.norm(blink, axis=1))[-30:]
    assert np.linalg.norm(blink[most], axis=1).min() > 1e-3
    assert (basis[most, 0] > 0).all()  # the subject's left lid: +X on a head facing -Y


def test_a_second_library_replaces_ours_and_keeps_the_users(sample_head):
    head = rigged(sample_head)
    result = stored_result(head)
    finish(head, result, shape_keys=True)
    head.shape_key_add(name="My Frown", from_mix=False)
    summary = finish(head, result, shape_keys=True)
    assert summary["actions"] == [f"Head {name}" for name in FEW]  # no ".001": the earlier ones were replaced
    assert sorted(a.name for a in bpy.data.actions) == sorted(summary["actions"])
    assert [k.name for k in head.data.shape_keys.key_blocks] == ["Basis", "My Frown", *FEW]


def test_a_users_shape_key_named_like_arkits_is_refused_and_nothing_changes(sample_head, tmp_path):
    head = rigged(sample_head)
    head.shape_key_add(name="Basis", from_mix=False)
    head.shape_key_add(name="jawOpen", from_mix=False)
    before = expression_state(head)
    with pytest.raises(SceneInputError, match=r"'Head' already has shape keys named like ARKit's \(jawOpen\)"):
        next(expression_flow.expression_steps(existing_rig(head), shape_keys=True, workdir=tmp_path))
    assert_same(before, expression_state(head))
    # without shape keys the Actions are made, and the user's key stays
    STORED or pytest.skip("needs the stored result")
    finish(head, STORED, shape_keys=False)
    assert [k.name for k in head.data.shape_keys.key_blocks] == ["Basis", "jawOpen"]


def test_no_rig_or_no_mesh_is_told_what_to_do(sample_head):
    with pytest.raises(SceneInputError, match="'Head' has no ASM rig yet: press Generate Rig first"):
        expression_flow.rig_for_expressions(sample_head)
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    with pytest.raises(SceneInputError, match=r"need a rigged head mesh; 'Cam' \(a camera\) was given"):
        expression_flow.rig_for_expressions(camera)
    bpy.context.view_layer.objects.active = sample_head
    assert not bpy.ops.asm.make_expressions.poll()


def test_renamed_or_moved_bones_are_refused(sample_head, tmp_path):
    head = rigged(sample_head)
    arm = existing_rig(head)
    arm.data.bones["jaw"].name = "my jaw"
    before = expression_state(head)
    with pytest.raises(SceneInputError, match=r"has no bone 'jaw': its bones were renamed or deleted"):
        next(expression_flow.expression_steps(arm, workdir=tmp_path))
    assert_same(before, expression_state(head))
    arm.data.bones["my jaw"].name = "jaw"
    result = stored_result(head)
    bpy.context.view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode='EDIT')
    arm.data.edit_bones["jaw"].head.z += 0.1
    bpy.ops.object.mode_set(mode='OBJECT')
    before = expression_state(head)
    with pytest.raises(SceneInputError, match=r"bone 'jaw' of 'Head_ASM' was moved in Edit Mode"):
        finish(head, result)
    assert_same(before, expression_state(head))


def test_cancelling_changes_nothing(sample_head, tmp_path):
    head = rigged(sample_head)
    before = expression_state(head)
    runner = StepRunner(expression_flow.expression_steps(existing_rig(head), shape_keys=True, workdir=tmp_path))
    while not isinstance(runner.step, jobs.Job):
        runner.tick()
    runner.cancel()  # what Esc and the panel's Cancel do in the modal operator
    assert_same(before, expression_state(head))


def test_the_operator_makes_the_library_and_undo_takes_it_back(sample_head, monkeypatch):
    head = rigged(sample_head)
    result = stored_result(head)
    from asm_blender.operators import expressions as operator_module

    monkeypatch.setattr(operator_module, "expression_steps", lambda arm, shape_keys, workdir=None: (
        expression_flow.finish_expression_steps(arm.name, head.name, result,
                                                expressions_io.current_pose(arm, list(result["names"])), shape_keys)))
    bpy.ops.ed.undo_push(message="before the expressions")
    before = expression_state(head)
    assert bpy.ops.asm.make_expressions('EXEC_DEFAULT', True, shape_keys=True) == {'FINISHED'}
    head = bpy.data.objects["Head"]
    assert len(expression_state(head)["actions"]) == len(FEW) and "jawOpen" in expression_state(head)["keys"]
    assert json.loads(head["asm_expressions_summary"])["shape_keys"] == list(FEW)
    bpy.ops.ed.undo()
    assert_same(before, expression_state(bpy.data.objects["Head"]))


def glb_json(path: Path) -> dict:
    """The JSON chunk of a .glb."""
    data = path.read_bytes()
    length, kind = struct.unpack_from("<II", data, 12)
    assert kind == 0x4E4F534A  # "JSON"
    return json.loads(data[20:20 + length])


def morph_target_names(path: Path) -> list[list[str]]:
    gltf = glb_json(path)
    return [mesh.get("extras", {}).get("targetNames", []) for mesh in gltf["meshes"]
            if any("targets" in p for p in mesh["primitives"])]


def test_the_command_writes_the_blend_and_a_glb_with_arkit_morph_targets(sample_head, tmp_path, capfd,
                                                                          gltf_validator):
    rigged(sample_head)
    source = tmp_path / "head.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    capfd.readouterr()  # Generate's messages
    output, glb = tmp_path / "head_expressions.blend", tmp_path / "head.glb"
    code = cli.main(["expressions", str(source), "-o", str(output), "--shape-keys", "--only", "jawOpen",
                     "mouthSmileLeft", "--glb", str(glb), "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["shape_keys"] == ["jawOpen", "mouthSmileLeft"] and output.is_file()
    assert morph_target_names(glb) == [["jawOpen", "mouthSmileLeft"]]
    report = validate(gltf_validator, glb)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]
    bpy.ops.wm.open_mainfile(filepath=str(output))
    assert sorted(a.name for a in bpy.data.actions) == ["Head jawOpen", "Head mouthSmileLeft"]


def test_the_command_refuses_a_file_without_a_rig_and_a_non_mesh_object(sample_head, tmp_path, capfd):
    source = tmp_path / "plain.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    assert cli.main(["expressions", str(source), "-o", str(tmp_path / "out.blend")]) == 1
    assert "holds no ASM rig: run the generate command first" in capfd.readouterr().err
    rigged(bpy.data.objects["Head"])
    bpy.context.scene.collection.objects.link(bpy.data.objects.new("Lamp", bpy.data.lights.new("Lamp", 'POINT')))
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    assert cli.main(["expressions", str(source), "--object", "Lamp", "-o", str(tmp_path / "out.blend")]) == 1
    assert "'Lamp' (a light) was given" in capfd.readouterr().err
    assert not (tmp_path / "out.blend").exists()
    assert cli.main(["expressions", str(source), "--only", "eyeBlink_L"]) == 2  # argparse: not an ARKit name


@pytest.mark.slow
def test_all_52_as_shape_keys_go_out_as_morph_targets_the_validator_accepts(sample_head, tmp_path, capfd,
                                                                             gltf_validator):
    rigged(sample_head)
    source = tmp_path / "head.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(source))
    capfd.readouterr()
    glb = tmp_path / "head.glb"
    code = cli.main(["expressions", str(source), "-o", str(tmp_path / "out.blend"), "--shape-keys", "--glb", str(glb),
                     "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert len(summary["actions"]) == 52 and summary["shape_keys"] == list(choices.ARKIT_NAMES)
    print(f"52 expressions: fit {summary['fit_seconds']} s, whole command {summary['seconds']} s, median residual "
          f"{summary['median_residual']}")
    assert morph_target_names(glb) == [list(choices.ARKIT_NAMES)]
    report = validate(gltf_validator, glb)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:5]


def test_the_panel_leads_to_generate_first_then_offers_the_library_and_its_result(sample_head):
    from asm_blender.panels import VIEW3D_PT_asm_expressions

    from .test_fit_ui import FakeLayout

    def drawn() -> list:
        calls = []
        VIEW3D_PT_asm_expressions.draw(type("Panel", (), {"layout": FakeLayout(calls)})(), bpy.context)
        return calls

    bpy.context.view_layer.objects.active = sample_head
    assert ("label", "Generate the rig first (above);") in drawn()
    head = rigged(sample_head)
    assert ("operator", "asm.make_expressions", None) in drawn() and bpy.ops.asm.make_expressions.poll()
    finish(head, stored_result(head), shape_keys=True)
    texts = [call[-1] for call in drawn()]
    assert f"{len(FEW)} Actions (Head jawOpen, ...)" in texts and f"{len(FEW)} shape keys" in texts
