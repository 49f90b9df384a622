"""The solver worker's Python packages: where the worker looks for them and which are missing.

Installed as an extension, the worker's packages are the wheels bundled in the zip, which Blender extracts into
its extensions' `.local/lib/python3.X/site-packages` folder; the worker is given that folder and the folder that
holds the `solver` package, and nothing else of this process's path. Run from a checkout (the bpy module in a
virtual environment), it is given this process's site-packages. The check runs without importing anything (the
Blender side never imports torch).

Each zip carries the wheels of one Python (asm_protocol/zips.py): Blender refuses to enable a zip whose wheels are
for another Python than its own, and where this add-on runs with such a zip all the same, its message says so and
names the zip to install instead of listing every package as missing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from ..protocol import tasks, zips

# import name -> the wheel that provides it (numpy ships with Blender and is never bundled); every job needs the
# first three, the photo tasks (face detection, photo fits) all of them
WORKER_PACKAGES = {
    "numpy": "numpy (ships with Blender)",
    "torch": "torch",
    "scipy": "scipy",
    "cv2": "opencv-contrib-python-headless",
    "ai_edge_litert": "ai-edge-litert (runs the face models)",
    "PIL": "pillow",
}
CORE_PACKAGES = ("numpy", "torch", "scipy")


def solver_parent() -> Path:
    """The folder that holds the `solver` package: inside the built extension, or the repository root."""
    extension = Path(__file__).resolve().parents[1]  # asm_blender, the root of the built extension
    return extension if (extension / "solver").is_dir() else extension.parent


def is_extension() -> bool:
    """Whether this add-on runs as an installed Blender extension (its package lives under `bl_ext.`)."""
    return __name__.startswith("bl_ext.")


def extension_site_packages() -> Path | None:
    """The folder Blender extracts extensions' wheels into; None when this add-on is not an installed extension."""
    if not is_extension():
        return None
    import bpy

    return Path(bpy.utils.user_resource('EXTENSIONS'), ".local", "lib",
                f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")


def worker_python() -> str:
    """The interpreter that runs the solver: ASM_WORKER_PYTHON when set, else this process's Python (Blender's own
    Python inside Blender)."""
    return os.environ.get("ASM_WORKER_PYTHON") or sys.executable


def worker_path() -> list[str]:
    """The worker's PYTHONPATH: the solver's folder, then the extension's wheels (installed as an extension) or
    this process's site-packages (run from a checkout)."""
    wheels = extension_site_packages()
    if wheels is not None:
        return [str(solver_parent()), str(wheels)]
    return [str(solver_parent())] + [p for p in sys.path if p.endswith("site-packages")]


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The worker's environment variables: `base` (this process's) with the worker's PYTHONPATH. As an extension,
    the path is exactly `worker_path()` and the user's own site-packages are off, so that packages installed
    elsewhere on the machine never shadow the bundled wheels."""
    env = dict(os.environ if base is None else base)
    paths = worker_path()
    if is_extension():
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONNOUSERSITE"] = "1"
    else:
        env["PYTHONPATH"] = os.pathsep.join(paths + [env["PYTHONPATH"]] if env.get("PYTHONPATH") else paths)
    return env


def missing_packages(task: str | None = None) -> list[str]:
    """The import names of WORKER_PACKAGES (of those `task` needs, when given) that the worker cannot find. When the
    worker is this interpreter, they are looked for in its path (Blender's Python ships numpy); another interpreter
    (ASM_WORKER_PYTHON) is asked, with the worker's environment, so that its own packages count too; one that cannot
    be run is trusted for numpy and checked for the rest in its PYTHONPATH (starting the worker then says why)."""
    needed = WORKER_PACKAGES if task is None or task in tasks.PHOTO_TASKS else CORE_PACKAGES
    # by path, not by the file it links to: a virtual environment's python links to its base interpreter
    same = os.path.abspath(worker_python()) == os.path.abspath(sys.executable)
    if not same and (answer := _missing_in(worker_python(), list(needed))) is not None:
        return answer
    search = worker_path()
    if same:
        search += [p for p in sys.path if p not in search]
    names = [n for n in needed if same or n != "numpy"]
    # each is a package folder; looked up on disk each time (importlib's path cache would remember a wheel folder
    # that did not exist yet as empty)
    return [n for n in names if not any(Path(folder, n, "__init__.py").is_file() for folder in search if folder)]


_FIND = "import importlib.util, sys\nprint(*[n for n in sys.argv[1:] if importlib.util.find_spec(n) is None])"


def _missing_in(python: str, names: list[str]) -> list[str] | None:
    """Which of `names` the interpreter `python` cannot find with the worker's environment (found, not imported);
    None when it cannot be run."""
    try:
        completed = subprocess.run([python, "-c", _FIND, *names], env=worker_environment(), capture_output=True,
                                   text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.split() if completed.returncode == 0 else None


def this_python() -> str:
    """The Python this Blender runs ("3.13"): the one whose wheels Blender extracts for the worker."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def installed_manifest() -> dict:
    """The installed extension's manifest (blender_manifest.toml beside the add-on); {} when this add-on is not an
    installed extension or the file cannot be read."""
    if not is_extension():
        return {}
    try:
        return tomllib.loads((Path(__file__).resolve().parents[1] / "blender_manifest.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def bundled_pythons() -> list[str]:
    """The Pythons that the installed zip's wheels (for this platform: the builder's generated list) are built for,
    e.g. ["3.11"] for a zip of Blender 4.2 to 5.0; [] without an installed zip or without wheels of one Python."""
    manifest = installed_manifest()
    wheels = manifest.get("build", {}).get("generated", {}).get("wheels") or manifest.get("wheels") or []
    return sorted({v for w in wheels if isinstance(w, str) and (v := zips.wheel_python(w))})


def python_mismatch() -> list[str] | None:
    """The Pythons the installed zip's wheels are for when none of them is this Blender's (an old zip, or the zip of
    another Blender); None when they match or there are none."""
    pythons = bundled_pythons()
    return pythons if pythons and this_python() not in pythons else None


def zip_for_this_blender() -> str:
    """The zip to install here, named: its file name (this version's), the platform and the Blender versions."""
    manifest = installed_manifest()
    python, platform = this_python(), _blender_platform()
    if python not in zips.PYTHONS:
        ranges = ", ".join(f"Python {v} ({r.blenders})" for v, r in zips.PYTHONS.items())
        return f"an ASM Face Rig zip built for Python {python} (this version has zips for {ranges} only)"
    name = zips.zip_name(manifest.get("id", "asm_face_rig"), manifest.get("version", "0.1.0"), platform, python)
    return f"{name} (or a newer ASM Face Rig zip for {platform} and {zips.PYTHONS[python].blenders})"


def missing_parts(missing: list[str]) -> tuple[str, list[str], str]:
    """(what cannot run, the missing wheels, what to do) for the packages `missing`; when the installed zip's wheels
    are for another Python, that is what cannot run, with no wheels listed (they are all missing for one cause)."""
    what = ("the solver cannot run" if set(missing) & set(CORE_PACKAGES) else
            "face detection and photo fits cannot run")
    install = "(Preferences > Get Extensions > Install from Disk)"
    if (pythons := python_mismatch()) is not None:
        blenders = " and ".join(zips.PYTHONS[v].blenders for v in pythons if v in zips.PYTHONS)
        what = (f"{what}: this ASM Face Rig zip carries the solver's packages for Python {', '.join(pythons)}"
                + (f" ({blenders})" if blenders else "") + f", and this Blender runs Python {this_python()}")
        return what, [], f"install the zip built for this Blender instead: {zip_for_this_blender()} {install}"
    wheels = [f"{WORKER_PACKAGES[n]} ({n})" for n in missing]
    if is_extension():
        where = (f"install the ASM Face Rig zip built for this platform ({_blender_platform()}) and Blender again: "
                 f"{zip_for_this_blender()} {install}")
    else:
        where = f"install them into the Python that runs the solver ({worker_python()}) or set ASM_WORKER_PYTHON"
    return what, wheels, where


def missing_message(missing: list[str]) -> str:
    """What to tell the user when the worker's packages are missing: each wheel, or the Python the zip is for."""
    what, wheels, where = missing_parts(missing)
    return f"{what}: missing {', '.join(wheels)}; {where}" if wheels else f"{what}; {where}"


def _blender_platform() -> str:
    import platform

    system = {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    return f"{system}-{'arm64' if machine in ('arm64', 'aarch64') else 'x64'}"
