"""build.py and blender_manifest.toml: the zip Blender's own builder accepts, and a wheel list that gives every
platform and Python the worker's packages once (the install itself is tests/packaging, marked slow)."""
from __future__ import annotations

import importlib.util
import os
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
from asm_protocol import zips  # noqa: E402
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


def test_every_platform_and_python_gets_each_worker_package_once():
    platforms = MANIFEST["platforms"]
    assert "linux-x64" in platforms and list(zips.PYTHONS) == ["3.11", "3.13"]
    for platform in platforms:
        for python in zips.PYTHONS:
            own = [wheel_name(w)[0] for w in build.zip_wheels(MANIFEST["wheels"], platform, python, platforms)]
            assert sorted(own) == sorted(set(own)), (platform, python, own)  # one wheel per package: one cv2, one torch
            assert set(BUNDLED) <= set(own), (platform, python, set(BUNDLED) - set(own))
            assert not {"numpy", "opencv_contrib_python", "opencv_python", "jax", "jaxlib"} & set(own)
            # the face models run on LiteRT: MediaPipe and what only it needed stay out
            assert not {"mediapipe", "matplotlib", "attrs", "protobuf"} & set(own)
    # every wheel goes into some zip, and a zip of one Python never carries another's
    for wheel in MANIFEST["wheels"]:
        assert zips.wheel_python(Path(wheel).name) in (None, *zips.PYTHONS), wheel
        assert build.wheel_platforms(wheel, platforms), wheel


def test_a_wheel_serves_the_python_of_its_tags():
    assert zips.wheel_python("torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl") == "3.13"
    assert zips.wheel_python("./wheels/scipy-1.17.1-cp311-cp311-win_amd64.whl") == "3.11"
    assert zips.wheel_python("opencv_contrib_python_headless-4.11.0.86-cp37-abi3-win_amd64.whl") is None  # any 3.x
    assert zips.wheel_python("sympy-1.14.0-py3-none-any.whl") is None
    assert zips.zip_name("asm_face_rig", "0.1.0", "linux-x64", "3.13") == "asm_face_rig-0.1.0-linux_x64-python3.13.zip"
    assert zips.zip_name("asm_face_rig", "0.1.0", "linux-x64", None) == "asm_face_rig-0.1.0.zip"


def test_each_python_zip_takes_only_the_blenders_that_run_its_python():
    text = (PROJECT_ROOT / "blender_manifest.toml").read_text()
    own = build.zip_wheels(MANIFEST["wheels"], "linux-x64", "3.11", MANIFEST["platforms"])
    old = tomllib.loads(build.staged_manifest(text, ["linux-x64"], own, "3.11"))
    new = tomllib.loads(build.staged_manifest(text, ["linux-x64"], own, "3.13"))
    assert (old["blender_version_min"], old["blender_version_max"]) == ("4.2.0", "5.1.0")  # max: exclusive
    assert new["blender_version_min"] == "5.1.0" and "blender_version_max" not in new
    assert old["wheels"] == own and old["platforms"] == ["linux-x64"]
    without = tomllib.loads(build.staged_manifest(text, [], []))  # --no-wheels: every Blender from 4.2 on
    assert without["blender_version_min"] == MANIFEST["blender_version_min"] and "blender_version_max" not in without
    # each Python's range follows the one before it, from the manifest's own minimum
    ranges = list(zips.PYTHONS.values())
    assert ranges[0].version_min == MANIFEST["blender_version_min"]
    assert all(a.version_max == b.version_min for a, b in zip(ranges, ranges[1:])) and ranges[-1].version_max is None


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
    assert command[command.index("--python-version") + 1] == "3.11"  # any Python 3: asked as the oldest a zip serves
    platforms = [command[i + 1] for i, part in enumerate(command) if part == "--platform"]
    assert platforms == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert "--extra-index-url" not in command
    torch = build.pip_download_command("torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl", tmp_path,
                                       build.TORCH_CPU_INDEX)
    assert torch[-1] == "torch==2.13.0+cpu"  # the CPU build, never the CUDA one
    assert torch[torch.index("--python-version") + 1] == "3.13" and torch[torch.index("--abi") + 1] == "cp313"
    assert torch[torch.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert build.from_torch_cpu_index("torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl")
    assert not build.from_torch_cpu_index("torch-2.13.0-cp313-cp313-win_amd64.whl")
    sympy = build.pip_download_command("sympy-1.14.0-py3-none-any.whl", tmp_path)
    assert sympy[sympy.index("--python-version") + 1] == "3.11"


def test_wheel_paths_are_relative_and_out_of_git():
    for wheel in MANIFEST["wheels"]:
        assert wheel.startswith("./wheels/") and re.fullmatch(r"[\w.+\-/]+\.whl", wheel)
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "wheels/" in ignored and "dist/" in ignored


def test_list_shows_each_zip_with_its_wheels_sources_and_an_unknown_platform_is_refused(tmp_path):
    out_of_reach = (tmp_path / "no_index").as_uri()  # PyTorch's CPU index out of reach, on any machine
    listed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--list", "--wheels-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, ASM_TORCH_CPU_INDEX=out_of_reach))
    assert listed.returncode == 0, listed.stderr
    for platform in MANIFEST["platforms"]:
        for python, blenders in zips.PYTHONS.items():
            name = zips.zip_name(MANIFEST["id"], MANIFEST["version"], platform, python)
            assert f"{platform}, Python {python} ({blenders.blenders}): {name}, " in listed.stdout
    assert "missing torch-" in listed.stdout  # an empty wheel folder: everything to download
    linux_torch = "torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl"
    line = next(line for line in listed.stdout.splitlines() if linux_torch in line)
    assert f"from PyTorch's CPU wheel index {out_of_reach}, or pip's own sources; the index cannot be" in line
    assert "scipy-1.17.1-cp313-cp313-win_amd64.whl (from the package index)" in listed.stdout
    note = listed.stdout.splitlines()[-1]
    assert note.startswith(f"note: only PyTorch's CPU wheel index ({out_of_reach}; ASM_TORCH_CPU_INDEX")
    assert linux_torch in note
    assert "asm_face_rig-0.1.0-linux_x64-python3.13.zip cannot be built here" in note
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


def without_pip_sources(tmp_path: Path, torch_index: str) -> dict:
    """An environment in which pip's only source is an empty local index (no configuration files, no find-links),
    and PyTorch's CPU index is `torch_index`: what build.py finds does not depend on this machine."""
    empty = tmp_path / "empty_index"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return dict(env, PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL=empty.as_uri(), ASM_TORCH_CPU_INDEX=torch_index)


def test_without_pytorchs_cpu_index_the_build_names_the_wheel_and_the_index_and_builds_nothing(tmp_path):
    out_of_reach = (tmp_path / "no_index").as_uri()
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--platform", "linux-x64",
                                "--wheels-dir", str(tmp_path / "wheels"), "--output-dir", str(tmp_path / "dist")],
                               capture_output=True, text=True, timeout=300, env=without_pip_sources(tmp_path,
                                                                                                    out_of_reach))
    assert completed.returncode == 1, completed.stdout + completed.stderr
    error = completed.stderr[completed.stderr.index("error: "):]
    for python in ("311", "313"):
        assert f"torch-2.13.0+cpu-cp{python}-cp{python}-manylinux_2_28_x86_64.whl: PyTorch's CPU build of torch: " \
               f"it comes from PyTorch's CPU wheel index {out_of_reach}, which cannot be reached from here" in error
    assert "set ASM_TORCH_CPU_INDEX to a copy of that index, or put the file into " in error
    # nothing else was downloaded in vain, nothing built
    assert not list((tmp_path / "wheels").glob("*.whl")) and not (tmp_path / "dist").exists()


def test_the_build_says_which_python_can_be_built_without_the_missing_wheel(tmp_path):
    """Only the cp313 CPU torch out of reach (the cp311 one in the wheel folder): --python 3.11 is named."""
    cp311 = PROJECT_ROOT / "wheels" / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    if not cp311.is_file():
        pytest.skip(f"needs {cp311.name} in the wheel cache (wheels/, filled by build.py)")
    (tmp_path / "wheels").mkdir()
    os.symlink(cp311, tmp_path / "wheels" / cp311.name)
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--platform", "linux-x64",
                                "--wheels-dir", str(tmp_path / "wheels"), "--output-dir", str(tmp_path / "dist")],
                               capture_output=True, text=True, timeout=300,
                               env=without_pip_sources(tmp_path, (tmp_path / "no_index").as_uri()))
    assert completed.returncode == 1
    assert "torch-2.13.0+cpu-cp313-cp313-manylinux_2_28_x86_64.whl: PyTorch's CPU build" in completed.stderr
    assert "cp311-cp311-manylinux_2_28_x86_64.whl: " not in completed.stderr
    assert completed.stderr.rstrip().endswith("the zips for Python 3.11 have all their wheels here: build them with "
                                              "--python 3.11")
    assert [p.name for p in (tmp_path / "wheels").iterdir()] == [cp311.name]


def test_check_asks_the_torch_cpu_index_that_asm_torch_cpu_index_names(tmp_path):
    """A local copy of PyTorch's CPU index (one wheel in it, from the wheel cache) is where --check finds the CPU
    build; the other wheels are missing from the empty index pip is given."""
    cp311 = PROJECT_ROOT / "wheels" / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    if not cp311.is_file():
        pytest.skip(f"needs {cp311.name} in the wheel cache (wheels/, filled by build.py)")
    index = tmp_path / "torch_cpu_index"
    (index / "torch").mkdir(parents=True)
    os.symlink(cp311, index / "torch" / cp311.name)
    (index / "torch" / "index.html").write_text(
        f'<html><body><a href="{cp311.name.replace("+", "%2B")}">{cp311.name}</a></body></html>')
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--check", "--platform", "linux-x64",
                                "--python", "3.11"], capture_output=True, text=True, timeout=300,
                               env=without_pip_sources(tmp_path, index.as_uri()))
    assert completed.returncode == 1  # the rest is not in the empty index
    lines = completed.stdout.splitlines()
    assert f"  ok      {cp311.name} (from PyTorch's CPU wheel index {index.as_uri()}, or pip's own sources)" in lines
    assert "  MISSING scipy-1.17.1-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl" in lines
    assert lines[-1].startswith("1 of 8 wheels available: missing ")
