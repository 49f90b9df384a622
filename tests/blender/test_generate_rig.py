"""Generate Rig as the artist uses it (the asm.* operators, in background mode) and as a pipeline uses it
(`python -m asm_blender generate`): it builds, regenerates, removes, survives awkward meshes, and refuses bad
input with a message naming the object while leaving the scene as it was."""
from __future__ import annotations

import json
import math
import shutil

import bmesh
import bpy
import numpy as np
import pytest
from mathutils import Matrix

from asm_blender import cli
from asm_blender.flows.generate import GenerateOptions, generate_steps
from asm_blender.flows.steps import run_to_completion
from asm_blender.jobs import Job
from asm_blender.operators import ASM_OT_generate_rig
from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io import markers as markers_io
from asm_blender.scene_io.mesh import SceneInputError, mesh_arrays
from asm_blender.scene_io.rig import RIG_PROPERTY, existing_rig

from ..conftest import SAMPLE_DIR
from .conftest import sample_landmarks
from .test_roundtrip import solver_posed, random_pose


def with_markers(mesh_obj, landmarks=None, valid=None):
    """The head with its landmark markers (the stored sample landmarks), active and selected: Generate then
    needs no detector, so these tests also run where the detector (LiteRT) is not installed."""
    if landmarks is None:
        landmarks, valid = sample_landmarks()
    markers_io.write_markers(mesh_obj, landmarks, valid)
    bpy.context.view_layer.objects.active = mesh_obj
    mesh_obj.select_set(True)
    mesh_obj.asm.preset = "game"
    return mesh_obj


def scene_state() -> dict:
    """Everything a failed Generate must leave as it was."""
    return {obj.name: (obj.type, sorted(g.name for g in obj.vertex_groups) if obj.type == 'MESH' else None,
                       [m.name for m in obj.modifiers], len(obj.data.vertices) if obj.type == 'MESH' else None,
                       dict(obj.items()).get(RIG_PROPERTY))
            for obj in bpy.data.objects}


def test_generate_regenerate_and_remove(sample_head):
    head = with_markers(sample_head)
    user_group = head.vertex_groups.new(name="MyGroup")
    user_group.add([0, 1, 2], 0.5, 'REPLACE')
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    arm = existing_rig(head)
    summary = json.loads(head.asm.summary)
    assert summary["bones"] == len(arm.data.bones) == 24 and summary["landmarks"] == 478
    assert summary["landmarks_from"] == "markers" and summary["face_direction"] == "-Y"
    groups = sorted(g.name for g in head.vertex_groups)

    assert bpy.ops.asm.generate_rig() == {'FINISHED'}  # Regenerate: replaces the rig, no duplicates
    assert [o for o in bpy.data.objects if o.type == 'ARMATURE'] == [existing_rig(head)]
    assert sorted(g.name for g in head.vertex_groups) == groups
    assert len([o for o in bpy.data.objects if markers_io.OWNER_PROPERTY in o]) == 1
    assert 'UNDO' in ASM_OT_generate_rig.bl_options

    assert bpy.ops.asm.remove_rig() == {'FINISHED'}
    assert existing_rig(head) is None and not any(o.type == 'ARMATURE' for o in bpy.data.objects)
    assert [g.name for g in head.vertex_groups] == ["MyGroup"] and len(head.modifiers) == 0
    assert markers_io.find_markers(head) is not None  # kept for the next Generate
    assert bpy.ops.asm.remove_rig(keep_landmarks=False) == {'FINISHED'}
    assert [o.name for o in bpy.data.objects] == ["Head"]


def test_saved_file_reopens_and_regenerates_with_its_settings(sample_head, tmp_path):
    head = with_markers(sample_head)
    head.asm.influence_cap = "8"
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "rigged.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "rigged.blend"))
    head = bpy.data.objects["Head"]
    assert head.asm.preset == "game" and head.asm.influence_cap == "8"
    bpy.context.view_layer.objects.active = head
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    assert json.loads(head.asm.summary)["influence_cap"] == 8
    weights = armature_io.read_weights(head, [b.name for b in existing_rig(head).data.bones])
    assert (weights > 0).sum(1).max() <= 8


def test_edited_markers_are_what_regenerate_uses(sample_head):
    head = with_markers(sample_head)
    markers = markers_io.find_markers(head)
    markers.location.x += 0.25  # the user moved the whole marker object: its world position counts
    positions, valid = markers_io.read_markers(head)
    stored, _ = sample_landmarks()
    offset = np.array(head.matrix_world.inverted().to_3x3() @ markers.location)
    assert np.allclose(positions[valid] - stored[valid], offset, atol=1e-5)
    markers.location.x -= 0.25
    bm = bmesh.new()  # ... and deleted 100 of them
    bm.from_mesh(markers.data)
    bmesh.ops.delete(bm, geom=list(bm.verts)[:100], context='VERTS')
    bm.to_mesh(markers.data)
    bm.free()
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    assert json.loads(head.asm.summary)["landmarks"] == 378


def awkward_head(head):
    """The sample head plus an n-gon, loose vertices and edges, a zero-area face and a non-manifold fin."""
    bm = bmesh.new()
    bm.from_mesh(head.data)
    low = np.array([v.co for v in bm.verts]).min(0)
    ring = [bm.verts.new((low[0] + 0.3 * math.cos(a), low[1] - 0.5, low[2] + 0.3 * math.sin(a)))
            for a in np.linspace(0, 2 * math.pi, 7)[:-1]]
    bm.faces.new(ring)  # hexagon behind/below the head
    loose = [bm.verts.new(tuple(low - 0.4 + 0.01 * i)) for i in range(3)]
    bm.edges.new(loose[:2])
    same = [bm.verts.new(tuple(low - 0.8)) for _ in range(3)]
    bm.faces.new(same)  # zero area
    bm.edges.ensure_lookup_table()
    edge = bm.edges[100]
    fin_tip = bm.verts.new(tuple((edge.verts[0].co + edge.verts[1].co) / 2 + edge.verts[0].normal * 0.05))
    bm.faces.new((edge.verts[0], edge.verts[1], fin_tip))  # a third face on an edge: non-manifold
    bm.to_mesh(head.data)
    bm.free()
    head.data.update()
    return head


@pytest.mark.parametrize("case", ["mirrored scale", "awkward topology", "parented and turned"])
def test_awkward_meshes_get_an_exact_rig(sample_head, case):
    head = sample_head
    if case == "mirrored scale":
        head.scale = (-1.0, 1.0, 1.0)
    elif case == "awkward topology":
        awkward_head(head)
    else:
        parent = bpy.data.objects.new("Parent", None)
        bpy.context.scene.collection.objects.link(parent)
        parent.matrix_world = Matrix.Rotation(math.radians(120), 4, 'Z') @ Matrix.Scale(2.0, 4)
        head.parent = parent
        head.scale = (0.5, 0.7, 0.5)
    landmarks, valid = sample_landmarks()
    with_markers(head, landmarks, valid)
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    arm = existing_rig(head)
    record = json.loads(arm[RIG_PROPERTY])
    names = record["names"]
    result = {"bind": armature_io.rest_matrices(arm, names).astype(np.float64), "parents": np.array(record["parents"])}
    weights = armature_io.read_weights(head, names)
    order = np.argsort(-weights, axis=1)[:, :4]
    result["weight_bones"], result["weight_values"] = order, np.take_along_axis(weights, order, 1)
    pose = random_pose(len(names), 0, np.array(record["free"], dtype=float))
    armature_io.set_pose(arm, names, pose["log_scale"], pose["rotvec"], pose["translation"])
    arrays = mesh_arrays(head)
    size = float(np.ptp(arrays.vertices, axis=0).max())
    expected = solver_posed(arrays, result, pose)
    assert np.abs(expected - arrays.vertices).max() > 0.02 * size
    assert np.abs(armature_io.evaluated_vertices(head) - expected).max() <= 1e-5 * size


def make_linked_mesh(tmp_path, sample_head):
    path = tmp_path / "library.blend"
    bpy.data.libraries.write(str(path), {sample_head.data, sample_head})
    bpy.ops.wm.read_homefile(use_empty=True)
    with bpy.data.libraries.load(str(path), link=True) as (source, target):
        target.objects = ["Head"]
    linked = target.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    return linked


def older_rig(tmp_path, sample_head):
    head = with_markers(sample_head)
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    arm = existing_rig(head)
    record = json.loads(arm[RIG_PROPERTY])
    record["format"] = "asm-rig/0"
    arm[RIG_PROPERTY] = json.dumps(record)
    return head


def empty_mesh(tmp_path, sample_head):
    obj = bpy.data.objects.new("Nothing", bpy.data.meshes.new("Nothing"))
    bpy.context.scene.collection.objects.link(obj)
    return obj


def camera(tmp_path, sample_head):
    obj = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    bpy.context.scene.collection.objects.link(obj)
    return obj


def in_edit_mode(tmp_path, sample_head):
    bpy.context.view_layer.objects.active = sample_head
    bpy.ops.object.mode_set(mode='EDIT')
    return sample_head


def few_landmarks(tmp_path, sample_head):
    landmarks, valid = sample_landmarks()
    valid = valid.copy()
    valid[60:] = False
    return with_markers(sample_head, landmarks, valid)


BAD_INPUTS = {
    "no active object": (lambda tmp_path, head: None, "no active object; select a head mesh"),
    "not a mesh": (camera, "'Cam' is a camera object, not a mesh"),
    "empty mesh": (empty_mesh, "mesh 'Nothing' has no faces"),
    "edit mode": (in_edit_mode, "mesh 'Head' is in Edit Mode; switch to Object Mode"),
    "linked from a library": (make_linked_mesh, "mesh 'Head' is linked from .*library.blend.*Make Local"),
    "rig of an older version": (older_rig, "made by another ASM version .*'asm-rig/0'.*Remove Rig"),
    "too few landmarks": (few_landmarks, "only 60 face landmarks lie on 'Head'"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_message_and_changes_nothing(sample_head, tmp_path, case):
    make, message = BAD_INPUTS[case]
    obj = make(tmp_path, sample_head)
    before = scene_state()
    with pytest.raises(SceneInputError, match=message):
        run_to_completion(generate_steps(obj, GenerateOptions(preset="game"), tmp_path / "work"), report=print)
    if obj is not None and obj.type == 'MESH' and obj.mode != 'EDIT':
        bpy.context.view_layer.objects.active = obj
        with pytest.raises(RuntimeError, match=message):  # the operator's error report, as scripts see it
            bpy.ops.asm.generate_rig()
    assert scene_state() == before


def test_cancelling_while_the_solver_works_changes_nothing(sample_head, tmp_path):
    head = with_markers(sample_head)
    before = scene_state()
    steps = generate_steps(head, GenerateOptions(preset="full"), tmp_path)
    step = next(steps)
    while not isinstance(step, Job):
        step = next(steps)
    step.cancel()  # what Esc does in the modal operator
    step.kill()
    steps.close()
    assert scene_state() == before


# -- with the landmark detector (LiteRT in the worker) ----------------------------------------------------------

def needs_detector():
    pytest.importorskip("ai_edge_litert", reason="landmark detection needs LiteRT (main environment)")


def median_distance_to_stored_landmarks(head) -> float:
    """Median distance of the head's landmark markers from the stored sample landmarks, in eye distances."""
    found, valid = markers_io.read_markers(head)
    stored, stored_valid = sample_landmarks()
    both = valid & stored_valid
    eye_distance = np.linalg.norm(stored[33] - stored[263])
    return float(np.median(np.linalg.norm(found[both] - stored[both], axis=1)) / eye_distance)


def test_landmarks_are_detected_on_a_turned_scaled_parented_head(sample_head, tmp_path):
    needs_detector()
    parent = bpy.data.objects.new("Parent", None)
    bpy.context.scene.collection.objects.link(parent)
    parent.matrix_world = Matrix.Rotation(math.radians(130), 4, 'Z') @ Matrix.Scale(3.0, 4)
    sample_head.parent = parent
    sample_head.scale = (0.5, 0.5, 0.5)
    summary = run_to_completion(generate_steps(sample_head, GenerateOptions(preset="game"), tmp_path), print)
    assert summary["landmarks"] > 450 and "degrees" in summary["face_direction"]
    assert median_distance_to_stored_landmarks(sample_head) < 0.02


def test_a_head_facing_the_front_is_rendered_five_times_in_all(sample_head, tmp_path):
    """The -Y direction render serves as the front view: four more views, each detected while the next renders."""
    needs_detector()
    summary = run_to_completion(generate_steps(sample_head, GenerateOptions(preset="game", detect_again=True),
                                               tmp_path), print)
    assert summary["face_direction"] == "-Y" and summary["landmarks"] > 450
    assert len(list((tmp_path / "directions").glob("*.png"))) == 1
    assert len(list((tmp_path / "views").glob("*.png"))) == 4
    assert len(list(tmp_path.glob("detect_view_*/result.npz"))) == 4
    assert median_distance_to_stored_landmarks(sample_head) < 0.02


def test_cancelling_between_renders_drops_the_queued_detections_and_changes_nothing(sample_head, tmp_path):
    needs_detector()
    before = scene_state()
    work = tmp_path / "work"
    steps = generate_steps(sample_head, GenerateOptions(preset="game", detect_again=True), work)
    while len(list(work.glob("views/*.png"))) < 2:  # two side views rendered, their detections queued
        step = next(steps)
        if isinstance(step, Job):  # the front view's detection
            step.wait(lambda progress: None)
    steps.close()  # what Esc does between two timer ticks
    queued = sorted(work.glob("detect_view_*"))
    assert queued and all((folder / "cancel").exists() or (folder / "finished").exists() for folder in queued)
    assert scene_state() == before
    shutil.rmtree(work)  # the operator removes its work folder at once: the worker goes on with the next job
    summary = run_to_completion(generate_steps(with_markers(sample_head), GenerateOptions(preset="game"),
                                               tmp_path / "next"), print)
    assert summary["bones"] == 24


def test_a_mesh_without_a_face_is_refused(tmp_path):
    needs_detector()
    bpy.ops.mesh.primitive_monkey_add()  # Suzanne has eyes but no human face
    suzanne = bpy.context.active_object
    before = scene_state()
    with pytest.raises(SceneInputError, match="no face was found on renders of 'Suzanne' from eight directions"):
        run_to_completion(generate_steps(suzanne, GenerateOptions(), tmp_path), print)
    assert scene_state() == before


def test_without_a_face_the_shape_can_place_the_landmarks(tmp_path):
    needs_detector()
    bpy.ops.mesh.primitive_monkey_add()
    suzanne = bpy.context.active_object
    bpy.ops.object.modifier_add(type='SUBSURF')
    bpy.ops.object.modifier_apply(modifier=suzanne.modifiers[0].name)
    summary = run_to_completion(generate_steps(suzanne, GenerateOptions(preset="game", geometry_fallback=True),
                                               tmp_path), print)
    assert summary["landmarks_from"] == "geometry" and summary["landmarks"] > 300
    assert any("placed from its shape" in note for note in summary["notes"])
    assert existing_rig(suzanne) is not None and markers_io.find_markers(suzanne) is not None


def test_generate_command_writes_a_rigged_blend(tmp_path, capfd):
    needs_detector()
    output = tmp_path / "rigged.blend"
    assert cli.main(["generate", str(SAMPLE_DIR / "base_head.obj"), "-o", str(output), "--preset", "game",
                     "--json"]) == 0
    captured = capfd.readouterr()
    summary = json.loads(captured.out)
    assert summary["bones"] == 24 and summary["face_direction"] == "-Y" and summary["blend"] == str(output)
    assert "writing the rig" in captured.err  # progress on stderr
    bpy.ops.wm.open_mainfile(filepath=str(output))
    head = bpy.data.objects[summary["mesh"]]
    assert existing_rig(head) is not None and markers_io.find_markers(head) is not None


@pytest.mark.parametrize("arguments, message", [
    (["missing.obj"], "mesh file not found: missing.obj"),
    (["notes.txt"], "unsupported file type '.txt'"),
    ([str(SAMPLE_DIR / "base_head.obj"), "-o", str(SAMPLE_DIR / "base_head.obj")], "name it .blend"),
])
def test_generate_command_errors_exit_non_zero_with_a_message(tmp_path, capfd, arguments, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a mesh")
    assert cli.main(["generate", *arguments]) == 1
    assert message in capfd.readouterr().err


def test_uv_islands_across_the_face_fall_back_to_a_projected_chart_and_keep_the_uvs(sample_head):
    head = with_markers(sample_head)
    layer = head.data.uv_layers.active
    uv = np.empty(len(layer.data) * 2, dtype=np.float32)
    layer.data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    loop_vertex = np.array([loop.vertex_index for loop in head.data.loops])
    left = np.array([v.co.x for v in head.data.vertices])[loop_vertex] > 0
    uv[left, 0] += 1.5  # the face's left half becomes its own island, far from the right half
    layer.data.foreach_set("uv", uv.reshape(-1))
    assert bpy.ops.asm.generate_rig() == {'FINISHED'}
    summary = json.loads(head.asm.summary)
    assert summary["chart"] == "projected"
    assert any("UV island" in warning for warning in summary["warnings"])
    kept = np.empty(len(layer.data) * 2, dtype=np.float32)
    head.data.uv_layers.active.data.foreach_get("uv", kept)
    assert np.array_equal(kept.reshape(-1, 2), uv)  # the user's UVs are untouched
