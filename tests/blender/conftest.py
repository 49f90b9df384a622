"""Blender-side tests: the real bpy module, a fresh empty file per test, the add-on registered once."""
from __future__ import annotations

import atexit
import typing
import warnings

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the Blender-side tests need the bpy module (Blender as a Python module)")

from tests.conftest import SAMPLE_DIR  # noqa: E402

pytestmark = pytest.mark.blender


@atexit.register
def _release_typing_caches() -> None:
    """With torch imported in the process (the tests' own solver calls) and a glTF export run, the bpy 4.5 module can
    hang after the tests, at exit: typing's caches keep the bpy module alive through the interpreter's teardown, so
    Blender never stops its sound-device thread and a C++ destructor then waits on that thread's condition variable
    forever (not seen with bpy 5.0.1; `python -m asm_blender fit --glb` imports no torch). Emptying the caches at exit
    lets bpy shut down."""
    for cleanup in getattr(typing, "_cleanups", []):
        cleanup()


@pytest.fixture(scope="session", autouse=True)
def registered_addon():
    import asm_blender

    asm_blender.register()
    yield
    asm_blender.unregister()  # a process that exits with classes registered can hang


@pytest.fixture(autouse=True)
def fresh_file():
    bpy.ops.wm.read_homefile(use_empty=True)
    yield


@pytest.fixture()
def sample_head():
    from asm_blender.scene_io.sample import import_obj

    head = import_obj(SAMPLE_DIR / "base_head.obj")
    head.name = "Head"
    return head


def generate(mesh_obj, landmarks, valid, preset="full", cap=4):
    """Run the solver's generate step in-process (the tests have torch) on a Blender mesh."""

    from asm_blender.scene_io.mesh import mesh_arrays
    from solver.rig.generate import GenerateSettings, generate_rig

    arrays = mesh_arrays(mesh_obj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = generate_rig(arrays.vertices, arrays.triangles, arrays.corner_uv, landmarks, valid,
                              GenerateSettings(preset=preset, influence_cap=cap))
    return arrays, result


def sample_landmarks():
    from asm_protocol.landmarks import load_landmarks

    return load_landmarks(SAMPLE_DIR / "landmarks.json")


def random_pose(bone_count: int, seed: int, free: np.ndarray) -> dict[str, np.ndarray]:
    """Random 9-DoF local poses with non-uniform scale, limited to each bone's free groups."""
    generator = np.random.default_rng(seed)
    pose = {"log_scale": 0.15 * generator.normal(size=(bone_count, 3)),
            "rotvec": 0.35 * generator.normal(size=(bone_count, 3)),
            "translation": 0.03 * generator.normal(size=(bone_count, 3))}
    for group, key in enumerate(("log_scale", "rotvec", "translation")):
        pose[key] *= free[:, group:group + 1]
    return pose
