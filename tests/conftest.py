"""Shared test set-up.

Blender's user folders point at a temporary directory *before* anything imports bpy, so the tests never
read or write a user's Blender configuration. `../shared/data` is read only through `shared_data`.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

_blender_home = tempfile.mkdtemp(prefix="asm_test_blender_")
for variable in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                 "BLENDER_USER_DATAFILES", "BLENDER_USER_EXTENSIONS"):
    os.environ[variable] = os.path.join(_blender_home, variable.lower())

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
SAMPLE_DIR = PROJECT_ROOT / "samples" / "makehuman_head"
SCAN_DIR = PROJECT_ROOT / "samples" / "fran_scan"  # the main job's fitting target


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The licensed assets in ../shared/data; tests that need them skip with a reason when absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"shared data folder not found beside the project ({SHARED_DATA.name} in ../shared); "
                    "these tests compare against the original assets")
    return SHARED_DATA
