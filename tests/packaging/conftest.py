"""Packaging tests: the built extension zips, installed into a fresh Blender (the bpy module in a subprocess).

Marked `packaging` and `slow` (they build a 320 MB zip and fit a rig through the bundled wheels), on Blender 4.5
(Python 3.11) and 5.3 (Python 3.13):
    .venv/bin/python -m pytest -m packaging tests/packaging
    .venv-bpy53/bin/python -m pytest -m packaging tests/packaging
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

MANIFEST = tomllib.loads((PROJECT_ROOT / "blender_manifest.toml").read_text())
DRIVER = Path(__file__).with_name("install_driver.py")
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # the Python of the Blender under test
OTHER_PYTHON = {"3.11": "3.13", "3.13": "3.11"}[THIS_PYTHON]


def run_build(output_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "build.py"), "--output-dir", str(output_dir), *arguments],
                          capture_output=True, text=True, timeout=1800)


def build_for_python(python: str, output: Path) -> tuple[Path, list[str]]:
    """The zip for this platform and `python`, made by build.py with its wheels, and the wheels it lacks: none where
    build.py can have them all; where only PyTorch's CPU build cannot be had (its index is out of reach, as for
    Linux cp313 on a machine that reaches only the package index), the zip built from a copy of the manifest
    without it, so that everything else can still be installed and tested. Skips when other wheels cannot be had."""
    completed = run_build(output, "--python", python)
    absent = []
    if completed.returncode != 0 and "could not be had" in completed.stderr:
        absent = re.findall(r"^  (\S+\.whl): PyTorch's CPU build of torch", completed.stderr, flags=re.M)
        if not absent:
            pytest.skip(f"the wheels could not be downloaded (no package index here): {completed.stderr[-500:]}")
        text = (PROJECT_ROOT / "blender_manifest.toml").read_text()
        manifest = output / "manifest_without_cpu_torch.toml"
        manifest.write_text("".join(line for line in text.splitlines(keepends=True)
                                    if not any(f"/{wheel}" in line for wheel in absent)))
        completed = run_build(output, "--python", python, "--manifest", str(manifest))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    archives = sorted(output.glob(f"{MANIFEST['id']}-{MANIFEST['version']}-*-python{python}.zip"))
    assert len(archives) == 1, archives
    return archives[0], absent


@pytest.fixture(scope="session")
def this_python_zip(tmp_path_factory) -> tuple[Path, list[str]]:
    """The zip for this platform and the running Blender's Python, and the wheels it lacks (build_for_python)."""
    return build_for_python(THIS_PYTHON, tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def zip_under_test(this_python_zip, tmp_path_factory) -> tuple[Path, Path, set[str]]:
    """(the zip for this platform and Blender's Python, the Python the worker runs on, the modules the zip lacks):
    where the zip is complete, the worker runs on a Python with numpy only, as Blender's own, so that everything
    else must come from the zip's wheels; where it lacks PyTorch's CPU build (its index out of reach: Linux cp313
    here), on one with numpy and this environment's torch, so that everything else can still be tested."""
    archive, absent = this_python_zip
    modules = {Path(w).name.split("-")[0] for w in absent}
    assert modules <= {"torch"}, absent  # build_for_python leaves out PyTorch's CPU builds only
    folder = tmp_path_factory.mktemp("stock_python_with_torch" if modules else "stock_python")
    if modules:
        print(f"{archive.name} lacks {', '.join(absent)} (PyTorch's CPU index out of reach): the worker's Python "
              "has torch")
    return archive, make_stock_python(folder, with_torch=bool(modules)), modules


@pytest.fixture(scope="session")
def other_python_zip(tmp_path_factory) -> Path:
    """The zip for this platform and the other Python (of Blender 4.2 to 5.0 or 5.1 and later): the wrong zip for
    the Blender under test. Its wheels need not be complete: Blender refuses it before any is used."""
    return build_for_python(OTHER_PYTHON, tmp_path_factory.mktemp("dist_other"))[0]


@pytest.fixture(scope="session")
def old_cp311_zip(other_python_zip, tmp_path_factory) -> Path:
    """The zip as released before there were zips per Python: cp311 wheels only and no blender_version_max (the
    3.11 zip without that line), for Blender 5.1 and later."""
    if OTHER_PYTHON != "3.11":
        pytest.skip("an old cp311-only zip is the wrong zip for Blender 5.1 and later (Python 3.13) only")
    old = tmp_path_factory.mktemp("dist_old_cp311") / other_python_zip.name.replace("-python3.11", "")
    with zipfile.ZipFile(other_python_zip) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "blender_manifest.toml":
                text = data.decode()
                assert 'blender_version_max = "5.1.0"\n' in text
                data = text.replace('blender_version_max = "5.1.0"\n', "").encode()
            target.writestr(item, data)
    return old


@pytest.fixture(scope="session")
def old_zip_without_wheels(tmp_path_factory) -> Path:
    """An older version (0.0.1) of the extension without its wheels: the upgrade's start, and the missing-packages
    case."""
    output = tmp_path_factory.mktemp("dist_old")
    completed = run_build(output, "--no-wheels")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    built = output / f"{MANIFEST['id']}-{MANIFEST['version']}.zip"
    old = output / f"{MANIFEST['id']}-0.0.1.zip"
    with zipfile.ZipFile(built) as source, zipfile.ZipFile(old, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "blender_manifest.toml":
                data = data.decode().replace(f'version = "{MANIFEST["version"]}"', 'version = "0.0.1"', 1).encode()
            target.writestr(item, data)
    return old


@pytest.fixture(scope="session")
def stock_python(tmp_path_factory) -> Path:
    return make_stock_python(tmp_path_factory.mktemp("stock_python"))


# what this environment's torch brings beside it: its own packages, and the CUDA build's libraries (nvidia, cuda)
TORCH_ENTRIES = ("torch", "torchgen", "functorch", "nvidia", "cuda")


def make_stock_python(folder: Path, with_torch: bool = False) -> Path:
    """A Python like the one inside Blender: the standard library and numpy (Blender ships numpy), nothing else, so
    that a worker run with it can only find the solver's other packages in the extension's wheels; `with_torch`:
    and this environment's torch (for a zip that lacks it)."""
    import numpy

    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    names = ("numpy", *(TORCH_ENTRIES if with_torch else ()))
    for entry in Path(numpy.__file__).parent.parent.iterdir():
        if entry.name in names or entry.name.startswith(tuple(f"{n}-" for n in names) + ("numpy.libs",)):
            os.symlink(entry, site / entry.name)
    # torch imports typing_extensions (and sympy when it optimises), which the zips bundle; they come from there
    probe = subprocess.run([str(python), "-c", "import numpy\ntry:\n import scipy\nexcept ImportError:\n print('ok')\n"
                            "import importlib.util\nprint(importlib.util.find_spec('torch') is not None)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["ok", str(with_torch)], probe.stdout + probe.stderr  # numpy there, scipy not
    return python


def run_driver(scenario: str, spec: dict, home: Path, stock_python: Path, own_mounts: bool = False,
               timeout: float = 1500) -> tuple[dict, subprocess.CompletedProcess]:
    """Run install_driver.py in a fresh bpy process with Blender's user folders in `home` and the worker on
    `stock_python` (a Python with numpy only, or another the test chooses); optionally in its own mount namespace
    (`unshare -m`), where it may mount folders read-only."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLENDER_USER_", "PYTHON"))}
    for variable in ("BLENDER_USER_RESOURCES", "BLENDER_USER_CONFIG", "BLENDER_USER_SCRIPTS",
                     "BLENDER_USER_DATAFILES", "BLENDER_USER_EXTENSIONS"):
        env[variable] = str(home / variable.lower())
    env.update(ASM_WORKER_PYTHON=str(stock_python), HOME=str(home), TMPDIR=str(home))
    spec_path, report_path = home / "spec.json", home / "report.json"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, str(DRIVER), scenario, str(spec_path), str(report_path)]
    if own_mounts:
        command = ["unshare", "--mount", "--propagation", "private", *command]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=home)
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return report, completed


def can_mount_read_only(folder: Path) -> bool:
    """Whether this process may make a folder read-only in a mount namespace of its own (root, `unshare`)."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = ("mount --bind {0} {0} && mount -o remount,bind,ro {0} {0} && ! touch {0}/probe 2>/dev/null"
             .format(shlex.quote(str(folder))))
    try:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", probe],
                              capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
