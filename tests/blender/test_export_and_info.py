"""The export and info commands (shared by `python -m asm_blender` and `blender -c asm`): glTF with at most 4
normalised influences per vertex (checked in the file, by Blender's importer and by the Khronos glTF validator),
FBX, the rigs' summary, and their bad inputs."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.blender.conftest import bpy, generate, sample_landmarks
from tests.conftest import PROJECT_ROOT

import asm_blender  # noqa: E402
from asm_blender import cli  # noqa: E402

VALIDATOR_VERSION = "2.0.0-dev.3.10"
VALIDATOR_HOME = PROJECT_ROOT / ".cache" / "gltf-validator"  # kept out of git
COMPONENTS = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


@pytest.fixture(scope="module")
def rigged_blend(tmp_path_factory) -> Path:
    """The sample head with its generated rig, saved (what the commands read)."""
    from asm_blender.scene_io.rig import apply_rig
    from asm_blender.scene_io.sample import import_obj
    from tests.conftest import SAMPLE_DIR

    bpy.ops.wm.read_homefile(use_empty=True)
    head = import_obj(SAMPLE_DIR / "base_head.obj")
    head.name = "Head"
    _arrays, result = generate(head, *sample_landmarks())
    apply_rig(head, result, name="Head_ASM")
    path = tmp_path_factory.mktemp("rigged") / "rigged.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return path


def run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def glb_parts(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, _version, _length = struct.unpack_from("<III", data, 0)
    assert magic == 0x46546C67  # "glTF"
    json_length, _ = struct.unpack_from("<II", data, 12)
    document = json.loads(data[20:20 + json_length])
    binary_length, _ = struct.unpack_from("<II", data, 20 + json_length)
    start = 28 + json_length
    return document, data[start:start + binary_length]


def accessor(document: dict, binary: bytes, index: int) -> np.ndarray:
    item = document["accessors"][index]
    view = document["bufferViews"][item["bufferView"]]
    dtype, width = COMPONENTS[item["componentType"]], WIDTH[item["type"]]
    stride = view.get("byteStride", np.dtype(dtype).itemsize * width)
    offset = view.get("byteOffset", 0) + item.get("byteOffset", 0)
    rows = np.frombuffer(binary, np.uint8, count=stride * (item["count"] - 1) + np.dtype(dtype).itemsize * width,
                         offset=offset)
    table = np.lib.stride_tricks.as_strided(rows, (item["count"], np.dtype(dtype).itemsize * width), (stride, 1))
    values = np.ascontiguousarray(table).view(dtype).reshape(item["count"], width).astype(np.float64)
    if item.get("normalized"):
        values /= np.iinfo(dtype).max
    return values


@pytest.fixture(scope="module")
def gltf_validator() -> list[str]:
    """`node scripts/gltf_validate.js` with the Khronos glTF validator (npm gltf-validator) installed into
    .cache/gltf-validator the first time; skips when node or npm is missing or the install fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Khronos glTF validator (npm package gltf-validator)")
    if not (VALIDATOR_HOME / "node_modules" / "gltf-validator" / "package.json").is_file():
        VALIDATOR_HOME.mkdir(parents=True, exist_ok=True)
        completed = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(VALIDATOR_HOME),
                                    f"gltf-validator@{VALIDATOR_VERSION}"], capture_output=True, text=True,
                                   timeout=300)
        if completed.returncode != 0:
            pytest.skip(f"npm could not install gltf-validator: {completed.stderr.strip()[-300:]}")
    return [node, str(PROJECT_ROOT / "scripts" / "gltf_validate.js")]


def validate(gltf_validator: list[str], path: Path) -> dict:
    completed = subprocess.run([*gltf_validator, str(path)], capture_output=True, text=True, timeout=300,
                               env={"NODE_PATH": str(VALIDATOR_HOME / "node_modules"), "PATH": ""})
    assert completed.stdout.strip(), completed.stderr
    return json.loads(completed.stdout)


def test_the_glb_has_at_most_4_normalised_influences_and_passes_the_validator(rigged_blend, tmp_path, capsys,
                                                                              gltf_validator):
    from asm_blender.scene_io import armature as armature_io
    from asm_blender.scene_io.rig import RIG_PROPERTY, existing_rig

    glb = tmp_path / "head.glb"
    code, summary, err = run(capsys, "export", str(rigged_blend), "-o", str(glb), "--json")
    assert code == 0, err
    assert summary["output"] == str(glb) and summary["influences"] == 4 and summary["head"] == "Head"
    document, binary = glb_parts(glb)
    assert len(document["skins"]) == 1 and not document.get("animations")
    primitives = [p for mesh in document["meshes"] for p in mesh["primitives"]]
    for primitive in primitives:
        attributes = primitive["attributes"]
        assert "JOINTS_0" in attributes and "WEIGHTS_0" in attributes and "JOINTS_1" not in attributes
        weights = accessor(document, binary, attributes["WEIGHTS_0"])
        assert np.allclose(weights.sum(axis=1), 1.0, atol=2e-3)  # normalised (the exporter's own quantisation)
        assert ((weights > 0).sum(axis=1) <= 4).all()

    report = validate(gltf_validator, glb)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:10]
    print(f"gltf-validator {report['validatorVersion']}: {report['issues']['numErrors']} errors, "
          f"{report['issues']['numWarnings']} warnings, {report['issues']['numInfos']} infos")

    # Blender's importer reads it back: the same head, skinned, each vertex in at most 4 groups whose weights are
    # the rig's strongest 4, normalised.
    bpy.ops.wm.open_mainfile(filepath=str(rigged_blend))
    head = bpy.data.objects["Head"]
    names = json.loads(existing_rig(head)[RIG_PROPERTY])["names"]
    expected = armature_io.read_weights(head, names)
    vertex_count = len(head.data.vertices)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    imported = next(o for o in bpy.data.objects if o.type == 'MESH')
    assert any(o.type == 'ARMATURE' for o in bpy.data.objects)
    assert len(imported.data.vertices) >= vertex_count  # glTF splits vertices at UV seams
    weights = armature_io.read_weights(imported, names)
    assert ((weights > 0).sum(axis=1) <= 4).all()
    assert np.allclose(weights.sum(axis=1), 1.0, atol=2e-3)
    # each imported vertex matches a source vertex's weights (same position: the rig's weights, at most 4 anyway)
    from mathutils.kdtree import KDTree

    bpy.ops.wm.open_mainfile(filepath=str(rigged_blend))
    source = bpy.data.objects["Head"]
    world = np.array(source.matrix_world)
    points = np.array([world[:3, :3] @ v.co[:] + world[:3, 3] for v in source.data.vertices])
    tree = KDTree(len(points))
    for index, point in enumerate(points):
        tree.insert(point, index)
    tree.balance()
    assert weights.shape[1] == expected.shape[1]
    top = np.sort(expected, axis=1)[:, ::-1][:, :4]
    assert np.allclose(np.sort(weights, axis=1)[:, ::-1][:, :4].sum(axis=1), 1.0, atol=2e-3)
    assert np.allclose(top.sum(axis=1), 1.0, atol=1e-3)  # the rig itself has at most 4 influences, normalised


def test_fbx_export_and_its_reimport(rigged_blend, tmp_path, capsys):
    fbx = tmp_path / "head.fbx"
    code, summary, err = run(capsys, "export", str(rigged_blend), "-o", str(fbx), "--json")
    assert code == 0, err
    assert summary["format"] == "fbx" and fbx.stat().st_size > 10_000
    bpy.ops.wm.read_homefile(use_empty=True)
    import addon_utils

    addon_utils.enable("io_scene_fbx", default_set=False)
    bpy.ops.import_scene.fbx(filepath=str(fbx))
    meshes = [o for o in bpy.data.objects if o.type == 'MESH']
    armatures = [o for o in bpy.data.objects if o.type == 'ARMATURE']
    assert len(meshes) == 1 and len(armatures) == 1
    assert len(meshes[0].vertex_groups) > 20 and any(m.type == 'ARMATURE' for m in meshes[0].modifiers)


def test_info_lists_the_rig(rigged_blend, capsys):
    code, summary, err = run(capsys, "info", str(rigged_blend), "--json")
    assert code == 0, err
    (rig,) = summary["rigs"]
    assert rig["head"] == "Head" and rig["armature"] == "Head_ASM" and rig["bones"] > 20
    assert 1 <= rig["max_influences"] <= rig["influence_cap"] and rig["unweighted_vertices"] == 0
    assert not rig["fitted"]
    assert cli.main(["info", str(rigged_blend)]) == 0
    assert "Head: armature 'Head_ASM'" in capsys.readouterr().out  # the listing is the result: on stdout


def test_export_and_info_refuse_bad_input_with_a_message(rigged_blend, tmp_path, capsys):
    code, _none, err = run(capsys, "export", str(rigged_blend), "-o", str(tmp_path / "head.obj"))
    assert code == 1 and "use one of .glb, .gltf, .fbx" in err
    code, _none, err = run(capsys, "export", str(tmp_path / "missing.blend"), "-o", str(tmp_path / "x.glb"))
    assert code == 1 and "file not found" in err
    code, _none, err = run(capsys, "export", str(rigged_blend), "-o", str(tmp_path / "x.glb"), "--object", "Nope")
    assert code == 1 and "no rigged head named 'Nope'" in err and "'Head'" in err
    empty = tmp_path / "empty.blend"
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(empty))
    capsys.readouterr()  # Blender's "Saved as" message
    code, _none, err = run(capsys, "export", str(empty), "-o", str(tmp_path / "x.glb"))
    assert code == 1 and "holds no ASM rig" in err
    code, summary, _err = run(capsys, "info", str(empty), "--json")
    assert code == 0 and summary["rigs"] == []
    code, _none, err = run(capsys, "info", str(PROJECT_ROOT / "samples" / "makehuman_head" / "base_head.obj"))
    assert code == 1 and "give a .blend" in err
    assert not list(tmp_path.glob("x.*"))


def test_the_blender_command_is_registered_and_has_help_for_each_command(capsys):
    assert len(asm_blender._cli_handles) == 1  # registered by register() (the session fixture registered it)
    for command in ("generate", "fit", "export", "info"):
        assert cli.blender_command([command, "--help"]) == 0
        assert f"usage: blender -b [FILE.blend] -c asm {command}" in capsys.readouterr().out
    assert cli.blender_command([]) == 2 and "commands: generate, fit, export, info" in capsys.readouterr().err
    assert cli.blender_command(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err


def test_a_gltf_with_8_influences_and_its_bin_passes_the_validator(rigged_blend, tmp_path, capsys, gltf_validator):
    gltf = tmp_path / "head.gltf"
    code, summary, err = run(capsys, "export", str(rigged_blend), "-o", str(gltf), "--influences", "8", "--json")
    assert code == 0, err
    assert summary["influences"] == 8 and summary["format"] == "gltf"
    document = json.loads(gltf.read_text())
    (buffer,) = document["buffers"]
    binary = (tmp_path / buffer["uri"]).read_bytes()
    for primitive in (p for mesh in document["meshes"] for p in mesh["primitives"]):
        sets = [key for key in primitive["attributes"] if key.startswith("WEIGHTS_")]
        total = sum(accessor(document, binary, primitive["attributes"][key]) for key in sets)
        assert 1 <= len(sets) <= 2 and np.allclose(total.sum(axis=1), 1.0, atol=2e-3)
    report = validate(gltf_validator, gltf)
    assert report["issues"]["numErrors"] == 0, report["issues"]["messages"][:10]
