"""Rigging never loses the user's data and never leaves the scene half-changed."""
from __future__ import annotations

import bpy
import numpy as np
import pytest

from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io.mesh import SceneInputError, mesh_arrays
from asm_blender.scene_io.rig import CHART_ATTRIBUTE, apply_rig

from .conftest import generate, sample_landmarks


def add_user_data(head):
    group = head.vertex_groups.new(name="MyGroup")
    group.add(list(range(0, 4000, 7)), 0.25, 'REPLACE')
    head.shape_key_add(name="Basis")
    smile = head.shape_key_add(name="MySmile")
    smile.data[10].co.z += 0.5
    head.data.uv_layers.new(name="MySecondUV")
    head.modifiers.new("MySubsurf", 'SUBSURF')
    return {"uv": [layer.name for layer in head.data.uv_layers], "uv0": np.array([d.uv[:] for d in head.data.uv_layers[0].data])}


def test_user_groups_shape_keys_uvs_and_modifiers_are_kept(sample_head):
    before = add_user_data(sample_head)
    landmarks, valid = sample_landmarks()
    _, result = generate(sample_head, landmarks, valid, "game")
    for _ in range(2):  # generate twice: the second rig replaces the first cleanly
        apply_rig(sample_head, result)
    names = [str(n) for n in result["names"]]
    groups = [g.name for g in sample_head.vertex_groups]
    assert groups.count("MyGroup") == 1 and len(groups) == len(set(groups)) == 1 + int(result["deform"].sum())
    my_group = sample_head.vertex_groups["MyGroup"].index
    weights = [next(e.weight for e in sample_head.data.vertices[v].groups if e.group == my_group) for v in range(0, 4000, 7)]
    assert np.allclose(weights, 0.25)
    assert [k.name for k in sample_head.data.shape_keys.key_blocks] == ["Basis", "MySmile"]
    assert sample_head.data.shape_keys.key_blocks["MySmile"].data[10].co.z != sample_head.data.shape_keys.key_blocks["Basis"].data[10].co.z
    assert [layer.name for layer in sample_head.data.uv_layers] == before["uv"]
    assert np.array_equal(np.array([d.uv[:] for d in sample_head.data.uv_layers[0].data]), before["uv0"])
    assert [m.name for m in sample_head.modifiers] == [armature_io.MODIFIER_NAME, "MySubsurf"]
    assert CHART_ATTRIBUTE in sample_head.data.attributes
    armatures = [o for o in bpy.data.objects if o.type == 'ARMATURE']
    assert len(armatures) == 1 and len(armatures[0].data.bones) == len(names)


def test_a_user_group_named_like_a_bone_is_refused_and_nothing_changes(sample_head):
    sample_head.vertex_groups.new(name="jaw").add([1, 2, 3], 1.0, 'REPLACE')
    landmarks, valid = sample_landmarks()
    _, result = generate(sample_head, landmarks, valid, "game")
    with pytest.raises(SceneInputError, match=r"mesh 'Head' already has vertex group\(s\) \['jaw'\]"):
        apply_rig(sample_head, result)
    assert [g.name for g in sample_head.vertex_groups] == ["jaw"]
    assert not [o for o in bpy.data.objects if o.type == 'ARMATURE']
    assert len(sample_head.modifiers) == 0


def test_a_rig_for_another_mesh_is_refused(sample_head):
    landmarks, valid = sample_landmarks()
    _, result = generate(sample_head, landmarks, valid, "game")
    result["chart_uv"] = result["chart_uv"][:-1]
    with pytest.raises(SceneInputError, match="made for 4279 vertices but mesh 'Head' has 4280"):
        apply_rig(sample_head, result)


def test_meshes_without_faces_and_non_meshes_get_clear_errors():
    mesh = bpy.data.meshes.new("Points")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0)], [], [])
    points = bpy.data.objects.new("Points", mesh)
    bpy.context.scene.collection.objects.link(points)
    with pytest.raises(SceneInputError, match="mesh 'Points' has no faces"):
        mesh_arrays(points)
    empty = bpy.data.objects.new("Empty", None)
    with pytest.raises(SceneInputError, match="'Empty' is not a mesh object"):
        mesh_arrays(empty)
