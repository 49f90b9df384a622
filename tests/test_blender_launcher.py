"""scripts/blender: the bpy module with Blender's command-line form, so that tools that start a Blender executable
(pytest-blender, `blender -b FILE.blend -c asm ...` pipelines) run here without a Blender build."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytest.importorskip("bpy", reason="the launcher runs the bpy module")

LAUNCHER = PROJECT_ROOT / "scripts" / "blender"


def blender(*args: str, timeout: float = 300, home: Path | None = None, **extra: str) -> subprocess.CompletedProcess:
    """scripts/blender ARGS; with `home`, Blender's user folders there (else the test session's)."""
    env = dict(os.environ, ASM_BPY_PYTHON=sys.executable, PYTHONPATH=str(PROJECT_ROOT), **extra)
    if home is not None:
        env.pop("PYTHONPATH")  # the add-on comes from the installed extension only
        for variable in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                         "BLENDER_USER_DATAFILES", "BLENDER_USER_EXTENSIONS"):
            env[variable] = str(home / variable.lower())
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_version_python_and_exit_codes(tmp_path):
    import bpy

    version = blender("--version")
    assert version.returncode == 0 and version.stdout.startswith(f"Blender {bpy.app.version_string}")
    script = tmp_path / "script.py"
    script.write_text("import sys, bpy\nprint('ARGS', sys.argv[sys.argv.index('--') + 1:])\n"
                      "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])\nsys.exit(3)\n")
    saved = tmp_path / "saved.blend"
    run = blender("-b", "--python", str(script), "--", "a", str(saved))
    assert run.returncode == 3 and f"ARGS ['a', '{saved}']" in run.stdout and saved.is_file()
    failing = blender("-b", "--python-exit-code", "7", "--python-expr", "raise ValueError('boom')")
    assert failing.returncode == 7 and "ValueError: boom" in failing.stderr
    opened = blender("-b", str(saved), "--python-expr", "import bpy; print('FILE', bpy.data.filepath)")
    assert opened.returncode == 0 and f"FILE {saved}" in opened.stdout
    assert blender("-b", "--frobnicate").returncode == 2


def test_the_asm_command_runs_through_blenders_c_option(tmp_path):
    empty = tmp_path / "empty.blend"
    assert blender("-b", "--python-expr", f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={str(empty)!r})"
                   ).returncode == 0
    info = blender("-b", str(empty), "--addons", "asm_blender", "-c", "asm", "info", "--json")
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout[info.stdout.index("{"):])
    assert summary == {"file": str(empty), "rigs": []}
    failing = blender("-b", str(empty), "--addons", "asm_blender", "-c", "asm", "export", "-o",
                      str(tmp_path / "head.glb"))
    assert failing.returncode == 1 and "holds no ASM rig" in failing.stderr
    usage = blender("-b", "--addons", "asm_blender", "-c", "asm", "fit", "--help")
    assert usage.returncode == 0 and "usage: blender -b [FILE.blend] -c asm fit" in usage.stdout
    unknown = blender("-b", "--addons", "asm_blender", "-c", "nope")
    assert unknown.returncode == 1 and "'nope' not found" in unknown.stderr and "asm" in unknown.stderr


def test_pytest_blender_runs_tests_inside_the_launcher():
    """`pytest --blender-executable scripts/blender`: pytest-blender starts "Blender" and runs the tests there."""
    pytest.importorskip("pytest_blender", reason="pytest-blender is in the test dependencies")
    # --pytest-blender-debug last: pytest-blender 3.0.8 skips the argument after each of its own options
    command = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "--blender-executable",
               str(LAUNCHER), "tests/blender/test_roundtrip.py", "-q", "--pytest-blender-debug"]
    env = dict(os.environ, ASM_BPY_PYTHON=sys.executable)
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"Running blender with: {LAUNCHER} -b --python" in run.stdout  # inside the launcher, not this process
    assert " passed" in run.stdout and " failed" not in run.stdout


def test_an_extension_installed_with_blenders_own_command_gives_the_asm_command(tmp_path):
    """As a pipeline does it: `blender -c extension install-file -e ZIP`, then `blender -b -c asm ...` in later runs
    (the user's preferences enable it). This zip has no wheels and the solver runs on a Python with numpy only (as
    Blender's own): the command that needs the solver says which packages are missing and exits 1."""
    from tests.packaging.conftest import make_stock_python

    built = subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--no-wheels", "--output-dir",
                            str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (archive,) = (tmp_path / "dist").glob("*.zip")
    home = tmp_path / "home"
    installed = blender("-b", "-c", "extension", "install-file", "-r", "user_default", "-e", str(archive), home=home)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    info = blender("-b", "-c", "asm", "info", "--json", home=home)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout[info.stdout.index("{"):])["rigs"] == []
    mesh = PROJECT_ROOT / "samples" / "makehuman_head" / "base_head.obj"
    generate = blender("-b", "-c", "asm", "generate", str(mesh), "-o", str(tmp_path / "head.blend"), home=home,
                       ASM_WORKER_PYTHON=str(make_stock_python(tmp_path / "stock_python")))
    assert generate.returncode == 1 and "missing torch (torch)" in generate.stderr
    assert "install the ASM Face Rig zip built for this platform" in generate.stderr
    assert not (tmp_path / "head.blend").exists()
    factory = blender("-b", "--factory-startup", "-c", "asm", "info", home=home)
    assert factory.returncode == 1 and "'asm' not found" in factory.stderr  # factory settings: no extensions
