"""write_weights (numpy columns through Attribute Convert) writes exactly what the old per-vertex bmesh loop wrote.

The reference loop is kept in benchmarks/writeback_speed.py, which times the two against each other.
"""
from __future__ import annotations

import bpy
import numpy as np
import pytest

from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io.mesh import SceneInputError
from benchmarks.writeback_speed import read_weights_reference, write_weights_reference

BONES = 24


def twin(obj):
    """A copy of `obj` with its own copy of the mesh (user groups, attributes and properties included)."""
    copy = obj.copy()
    copy.data = obj.data.copy()
    for collection in obj.users_collection:
        collection.objects.link(copy)
    return copy


def entries(obj) -> list[dict[str, float]]:
    """Per vertex: the name and stored (float32) weight of every vertex-group entry it has."""
    names = [g.name for g in obj.vertex_groups]
    return [{names[e.group]: e.weight for e in v.groups} for v in obj.data.vertices]


def random_rows(count: int, seed: int, cap: int = 6):
    """Bone rows as awkward as they come: repeats in a row, zeros, negatives, padding (-1) and out-of-range indices."""
    generator = np.random.default_rng(seed)
    bones = generator.integers(0, BONES, size=(count, cap))
    repeat = generator.random(count) < 0.3
    bones[repeat, 0] = bones[repeat, cap - 1]  # the same bone twice in a row: summed
    values = generator.random((count, cap))
    values[generator.random((count, cap)) < 0.2] = 0.0
    values[generator.random((count, cap)) < 0.05] *= -1.0
    bones[generator.random((count, cap)) < 0.03] = -1
    bones[generator.random((count, cap)) < 0.01] = BONES + 5
    deform = np.ones(BONES, dtype=bool)
    deform[[0, 7, 13]] = False
    return bones, values, deform


def repeated_pairs(bones, names) -> set[tuple[int, str]]:
    """(vertex, bone name) written as the sum of more than one weight (rounded once, not after every add)."""
    found = set()
    for v, row in enumerate(bones.tolist()):
        for j in set(row):
            if 0 <= j < len(names) and row.count(j) > 1:
                found.add((v, names[j]))
    return found


def assert_same_entries(fast_obj, reference_obj, summed=frozenset()):
    fast, reference = entries(fast_obj), entries(reference_obj)
    assert [g.name for g in fast_obj.vertex_groups] == [g.name for g in reference_obj.vertex_groups]
    assert fast_obj.vertex_groups.active_index == reference_obj.vertex_groups.active_index
    assert list(fast_obj[armature_io.GROUPS_PROPERTY]) == list(reference_obj[armature_io.GROUPS_PROPERTY])
    for v, (mine, theirs) in enumerate(zip(fast, reference)):
        assert mine.keys() == theirs.keys(), v
        for name, weight in mine.items():
            if (v, name) in summed:  # the old loop rounded to float32 after each add: one unit in the last place
                np.testing.assert_array_max_ulp(np.float32(weight), np.float32(theirs[name]), maxulp=1)
            else:
                assert weight == theirs[name], (v, name)


def test_fast_path_writes_what_the_per_vertex_loop_wrote(sample_head):
    names = [f"bone_{j:02d}" for j in range(BONES)]
    bones, values, deform = random_rows(len(sample_head.data.vertices), seed=1)
    reference = twin(sample_head)
    armature_io.write_weights(sample_head, names, bones, values, deform)
    write_weights_reference(reference, names, bones, values, deform)
    assert_same_entries(sample_head, reference, repeated_pairs(bones, names))
    assert [g.name for g in sample_head.vertex_groups] == [n for n, d in zip(names, deform) if d]
    assert not any(name.startswith("asm_weights_tmp") for name in sample_head.data.attributes.keys())


def test_user_groups_kept_and_rewrite_replaces_the_rigs_groups(sample_head):
    user = sample_head.vertex_groups.new(name="UserMask")
    user.add(list(range(0, len(sample_head.data.vertices), 3)), 0.375, 'REPLACE')
    user.add([1, 2, 4], 1.0, 'REPLACE')
    user_before = [{k: w for k, w in e.items() if k == "UserMask"} for e in entries(sample_head)]
    reference = twin(sample_head)
    first = [f"bone_{j:02d}" for j in range(BONES)]
    second = [f"bone_{j:02d}" for j in range(0, BONES, 2)] + ["new_bone"]  # some groups go, one is new
    count = len(sample_head.data.vertices)
    for names, seed in ((first, 2), (second, 3)):
        bones, values, _ = random_rows(count, seed)
        bones %= len(names)
        deform = np.ones(len(names), dtype=bool)
        deform[1] = False
        armature_io.write_weights(sample_head, names, bones, values, deform)
        write_weights_reference(reference, names, bones, values, deform)
        assert_same_entries(sample_head, reference, repeated_pairs(bones, names))
    groups = [g.name for g in sample_head.vertex_groups]
    assert groups == ["UserMask"] + [n for j, n in enumerate(second) if j != 1]
    assert [{k: w for k, w in e.items() if k == "UserMask"} for e in entries(sample_head)] == user_before
    assert list(sample_head[armature_io.GROUPS_PROPERTY]) == groups[1:]


def test_user_attributes_and_the_active_attribute_are_untouched(sample_head):
    """The temporary attribute never takes a user's name (attributes and vertex groups share one namespace)."""
    mesh = sample_head.data
    count = len(mesh.vertices)
    names = ["asm_weights_tmp", "jaw", "lip"]  # a bone named like the temporary attribute would be
    kept = {}
    for name in ("jaw.001", "asm_weights_tmp.001", "MyFloat"):
        attribute = mesh.attributes.new(name, 'FLOAT', 'POINT')
        kept[name] = np.linspace(0.0, 1.0, count, dtype=np.float32)[::-1].copy()
        attribute.data.foreach_set("value", kept[name])
    mesh.attributes.active = mesh.attributes["MyFloat"]
    attributes_before = sorted(mesh.attributes.keys())
    bones, values, _ = random_rows(count, seed=4, cap=3)
    bones %= len(names)
    reference = twin(sample_head)
    armature_io.write_weights(sample_head, names, bones, values)
    write_weights_reference(reference, names, bones, values)
    assert_same_entries(sample_head, reference, repeated_pairs(bones, names))
    assert mesh.attributes.active.name == "MyFloat"
    for name, data in kept.items():
        read = np.empty(count, dtype=np.float32)
        mesh.attributes[name].data.foreach_get("value", read)
        assert np.array_equal(read, data), name
    assert sorted(mesh.attributes.keys()) == attributes_before  # (the bmesh round trip of the old loop added some)


@pytest.mark.parametrize("broken", ["refused", "fails after three bones"])
def test_without_the_operator_the_bmesh_fallback_writes_the_same(sample_head, monkeypatch, broken):
    """Where Attribute Convert cannot run, the bmesh fallback writes the same groups and keeps the user's attributes
    and the active one."""
    names = [f"bone_{j:02d}" for j in range(BONES)]
    bones, values, deform = random_rows(len(sample_head.data.vertices), seed=5)
    expected = twin(sample_head)
    armature_io.write_weights(expected, names, bones, values, deform)
    mesh, count = sample_head.data, len(sample_head.data.vertices)
    mine = np.arange(count, dtype=np.float32)
    mesh.attributes.new("MyFloat", 'FLOAT', 'POINT').data.foreach_set("value", mine)
    colour = np.random.default_rng(0).random(count * 4).astype(np.float32)
    mesh.attributes.new("MyColour", 'FLOAT_COLOR', 'POINT').data.foreach_set("color", colour)
    mesh.attributes.active = mesh.attributes["MyFloat"]
    calls = []
    real = armature_io._convert_active_attribute

    def failing(*args):
        calls.append(args)
        if broken == "refused" or len(calls) > 3:
            raise RuntimeError("Operator bpy.ops.geometry.attribute_convert.poll() failed, context is incorrect")
        return real(*args)

    monkeypatch.setattr(armature_io, "_convert_active_attribute", failing)
    armature_io.write_weights(sample_head, names, bones, values, deform)
    assert_same_entries(sample_head, expected)
    read = np.empty(count, dtype=np.float32)
    mesh.attributes["MyFloat"].data.foreach_get("value", read)
    assert np.array_equal(read, mine)
    read = np.empty(count * 4, dtype=np.float32)
    mesh.attributes["MyColour"].data.foreach_get("color", read)
    assert np.array_equal(read, colour)
    assert mesh.attributes.active.name == "MyFloat"
    assert armature_io.QUIET_SCENE not in bpy.data.scenes


def test_an_attribute_named_like_a_bone_is_refused_and_nothing_changes(sample_head):
    """Blender 5.1 and later drop an attribute that shares its name with a vertex group (4.5 kept both), so the rig
    never makes such a group: the user renames the attribute first."""
    mesh, count = sample_head.data, len(sample_head.data.vertices)
    data = np.linspace(0.0, 1.0, count, dtype=np.float32)
    mesh.attributes.new("bone_04", 'FLOAT', 'POINT').data.foreach_set("value", data)
    names = [f"bone_{j:02d}" for j in range(BONES)]
    bones, values, deform = random_rows(count, seed=9)
    with pytest.raises(SceneInputError, match="bone_04"):
        armature_io.write_weights(sample_head, names, bones, values, deform)
    assert len(sample_head.vertex_groups) == 0
    assert armature_io.GROUPS_PROPERTY not in sample_head
    read = np.empty(count, dtype=np.float32)
    mesh.attributes["bone_04"].data.foreach_get("value", read)
    assert np.array_equal(read, data)


def test_a_user_group_named_like_a_bone_is_refused_and_nothing_changes(sample_head):
    sample_head.vertex_groups.new(name="bone_03").add([0, 1], 0.5, 'REPLACE')
    names = [f"bone_{j:02d}" for j in range(BONES)]
    bones, values, deform = random_rows(len(sample_head.data.vertices), seed=6)
    with pytest.raises(SceneInputError, match="bone_03"):
        armature_io.write_weights(sample_head, names, bones, values, deform)
    assert [g.name for g in sample_head.vertex_groups] == ["bone_03"]
    assert armature_io.GROUPS_PROPERTY not in sample_head


def test_read_weights_reads_what_the_element_loop_reads(sample_head):
    mesh = sample_head.data
    names = [f"bone_{j:02d}" for j in range(BONES)]
    assert np.array_equal(armature_io.read_weights(sample_head, names), np.zeros((len(mesh.vertices), BONES)))
    sample_head.vertex_groups.new(name="UserMask").add(list(range(0, len(mesh.vertices), 5)), 0.5, 'REPLACE')
    bones, values, deform = random_rows(len(mesh.vertices), seed=7)
    armature_io.write_weights(sample_head, names, bones, values, deform)
    for asked in (names, names[::-1] + ["UserMask", "no_such_group"], ("bone_05", "bone_05", "bone_06")):
        fast = armature_io.read_weights(sample_head, asked)
        assert fast.shape == (len(mesh.vertices), len(asked))
        assert np.array_equal(fast, read_weights_reference(sample_head, list(asked)))


def test_weights_survive_save_and_reload(sample_head, tmp_path):
    names = [f"bone_{j:02d}" for j in range(BONES)]
    bones, values, deform = random_rows(len(sample_head.data.vertices), seed=8)
    armature_io.write_weights(sample_head, names, bones, values, deform)
    written = armature_io.read_weights(sample_head, names)
    name, path = sample_head.name, tmp_path / "weights.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    head = bpy.data.objects[name]
    assert np.array_equal(armature_io.read_weights(head, names), written)
