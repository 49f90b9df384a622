"""build.py and blender_manifest.toml: the zip Blender's own builder accepts, and a wheel list that gives every
platform the worker's packages once (the install itself is tests/packaging, marked slow)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT))
import build  # noqa: E402
from solver.vision import model_files  # noqa: E402

MANIFEST = tomllib.loads((PROJECT_ROOT / "blender_manifest.toml").read_text())
PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
# distribution -> the import name it provides, for what the worker imports (asm_blender/jobs/dependencies.py)
BUNDLED = {"torch": "torch", "scipy": "scipy", "ai_edge_litert": "ai_edge_litert",
           "opencv_contrib_python_headless": "cv2", "pillow": "PIL"}


def wheel_name(path: str) -> tuple[str, str]:
    name, version = Path(path).name.split("-")[:2]
    return name.lower(), version


def test_build_writes_a_valid_extension_zip_without_wheels(tmp_path):
    pytest.importorskip("bpy", reason="the extension builder ships with the bpy module")
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--output-dir", str(tmp_path),
                                "--no-wheels"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "builder not found" not in completed.stderr  # validated by Blender's own extension builder
    archives = list(tmp_path.glob("asm_face_rig-*.zip"))
    assert len(archives) == 1
    with zipfile.ZipFile(archives[0]) as archive:
        names = archive.namelist()
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode())
    for required in ("blender_manifest.toml", "__init__.py", "scene_io/armature.py", "solver/model/weights.py",
                     "jobs/dependencies.py", "solver/worker/__main__.py", "asm_protocol/tasks.py", "protocol.py",
                     "solver/template/skeleton.json", "solver/template/LICENSE.mediapipe", "LICENSE",
                     "solver/vision/models/LICENSE.mediapipe", "solver/vision/models/SOURCE.md",
                     *(f"solver/vision/models/{name}" for name in model_files.MODEL_FILES)):
        assert required in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("wheels/")]
    assert "wheels" not in manifest and "platforms" not in manifest  # nothing promised that is not there
    assert f"{archives[0].name}: " in completed.stdout  # the size is printed


def test_every_platform_gets_each_worker_package_once():
    platforms = MANIFEST["platforms"]
    assert "linux-x64" in platforms
    for platform in platforms:
        own = [wheel_name(w)[0] for w in MANIFEST["wheels"] if platform in build.wheel_platforms(w, platforms)]
        assert sorted(own) == sorted(set(own)), (platform, own)  # one wheel per package: one cv2, one torch
        assert set(BUNDLED) <= set(own), (platform, set(BUNDLED) - set(own))
        assert not {"numpy", "opencv_contrib_python", "opencv_python", "jax", "jaxlib"} & set(own)
        # the face models run on LiteRT: MediaPipe and what only it needed stay out
        assert not {"mediapipe", "matplotlib", "attrs", "protobuf"} & set(own)


def test_bundled_versions_are_the_ones_the_project_is_tested_with():
    pins = {}
    for requirement in PYPROJECT["project"]["dependencies"]:
        name, _, version = requirement.partition("==")
        pins[name.lower().replace("-", "_")] = version
    for path in MANIFEST["wheels"]:
        name, version = wheel_name(path)
        key = "opencv_contrib_python" if name == "opencv_contrib_python_headless" else name
        if key in pins:
            assert version.split("+")[0] == pins[key], (path, pins[key])


def test_wheel_platforms_agree_with_blenders_builder():
    bpy = pytest.importorskip("bpy", reason="the extension builder ships with the bpy module")
    script = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    spec = importlib.util.spec_from_file_location("blender_ext_for_test", script)
    blender_ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(blender_ext)
    platforms = MANIFEST["platforms"]
    for wheel in MANIFEST["wheels"]:
        theirs = [p for p in platforms
                  if blender_ext.blender_platform_compatible_with_wheel_platform_from_filepath(p, wheel)]
        assert build.wheel_platforms(wheel, platforms) == theirs, wheel


def test_each_wheel_is_downloaded_by_its_own_tags(tmp_path):
    command = build.pip_download_command(
        "opencv_contrib_python_headless-4.11.0.86-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", tmp_path)
    assert command[-1] == "opencv-contrib-python-headless==4.11.0.86"
    assert command[command.index("--abi") + 1] == "abi3" and "--no-deps" in command
    platforms = [command[i + 1] for i, part in enumerate(command) if part == "--platform"]
    assert platforms == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    torch = build.pip_download_command("torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", tmp_path)
    assert torch[-1] == "torch==2.13.0+cpu"  # the CPU build, never the CUDA one


def test_wheel_paths_are_relative_and_out_of_git():
    for wheel in MANIFEST["wheels"]:
        assert wheel.startswith("./wheels/") and re.fullmatch(r"[\w.+\-/]+\.whl", wheel)
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "wheels/" in ignored and "dist/" in ignored


def test_list_shows_each_platform_and_an_unknown_platform_is_refused(tmp_path):
    listed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--list", "--wheels-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    for platform in MANIFEST["platforms"]:
        assert f"{platform}: " in listed.stdout
    assert "missing torch-" in listed.stdout  # an empty wheel folder: everything to download
    for platform in build.UNSUPPORTED:  # and the platforms without a zip, with the reason
        assert f"{platform}: no zip (" in listed.stdout and platform not in MANIFEST["platforms"]
    refused = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--platform", "macos-x64",
                              "--wheels-dir", str(tmp_path), "--output-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "macos-x64: no torch 2.13 wheel" in refused.stderr
    assert not list(tmp_path.glob("*.whl")) and not list(tmp_path.glob("*.zip"))


def test_the_zipfile_fallback_writes_what_blenders_builder_accepts(tmp_path):
    bpy = pytest.importorskip("bpy", reason="Blender's extension validator ships with the bpy module")
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--output-dir", str(tmp_path),
                                "--no-wheels", "--zipfile"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    (archive,) = tmp_path.glob("asm_face_rig-*.zip")
    script = Path(bpy.utils.system_resource('SCRIPTS')) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    validated = subprocess.run([sys.executable, str(script), "validate", str(archive)], capture_output=True,
                               text=True, timeout=120)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "__init__.py" in zipfile.ZipFile(archive).namelist()


def test_the_face_models_come_out_of_the_mediapipe_wheel_with_its_licence(tmp_path):
    pytest.importorskip("mediapipe", reason="the main environment has mediapipe 0.10.21, the models' source")
    folder = tmp_path / "models"
    assert build.extract_models(folder, tmp_path / "wheels") is None
    assert model_files.complete(folder)
    assert "Apache License" in (folder / model_files.LICENCE_FILE).read_text()
    (folder / "iris_landmark.tflite").write_bytes(b"damaged")  # a changed file is taken again
    assert not model_files.complete(folder)
    assert build.extract_models(folder, tmp_path / "wheels") is None and model_files.complete(folder)
    assert not (tmp_path / "wheels").exists()  # from the installed package: nothing downloaded
