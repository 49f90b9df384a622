"""What build.py and the add-on agree on about the extension zips: which Python each range of Blender runs, which
Python a bundled wheel is for, and each zip's file name (the add-on names the zip a user should install).

One zip per platform and Python: Blender 4.2 to 5.0 run Python 3.11, Blender 5.1 and later Python 3.13, and torch,
SciPy, LiteRT and Pillow are built per Python, so a zip carrying both would nearly double (Blender keeps the zip's
wheels folder in the installed extension too). Each zip's manifest has the Blender range of its Python
(`blender_version_max` is exclusive), and Blender extracts only the wheels that match its own Python.
"""
from __future__ import annotations

from typing import NamedTuple


class BlenderPython(NamedTuple):
    version_min: str  # the first Blender that runs this Python
    version_max: str | None  # the first Blender that no longer does (exclusive, as Blender reads it); None: still
    blenders: str  # the same range in words


PYTHONS = {
    "3.11": BlenderPython("4.2.0", "5.1.0", "Blender 4.2 to 5.0"),
    "3.13": BlenderPython("5.1.0", None, "Blender 5.1 and later"),
}


def wheel_python(filename: str) -> str | None:
    """The Python a wheel file is built for, from its tags ("3.13" for cp313-cp313); None for a wheel that every
    Python 3 takes (py3-none, cp37-abi3)."""
    python_tag, abi = filename.rsplit("/", 1)[-1].removesuffix(".whl").split("-")[-3:-1]
    if abi == "abi3" or not python_tag.startswith("cp"):
        return None
    return f"{python_tag[2]}.{python_tag[3:]}"


def zip_name(package_id: str, version: str, platform: str, python: str | None) -> str:
    """The file name of the zip for `platform` (e.g. linux-x64) and `python` (None: the zip without wheels)."""
    if python is None:
        return f"{package_id}-{version}.zip"
    return f"{package_id}-{version}-{platform.replace('-', '_')}-python{python}.zip"
