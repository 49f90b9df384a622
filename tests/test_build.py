"""build.py makes an extension zip that Blender's own builder accepts."""
from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT


def test_build_writes_a_valid_extension_zip(tmp_path):
    pytest.importorskip("bpy", reason="the extension builder ships with the bpy module")
    completed = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--output-dir", str(tmp_path)],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "builder not found" not in completed.stderr  # validated by Blender's own extension builder
    archives = list(tmp_path.glob("asm_face_rig-*.zip"))
    assert len(archives) == 1
    names = zipfile.ZipFile(archives[0]).namelist()
    for required in ("blender_manifest.toml", "__init__.py", "scene_io/armature.py", "solver/weights.py",
                     "solver/template/skeleton.json", "solver/template/LICENSE.mediapipe", "LICENSE"):
        assert required in names
    assert not [n for n in names if "__pycache__" in n]
