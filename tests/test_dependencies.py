"""asm_blender/jobs/dependencies.py: which of the worker's packages are missing, per task, and what the message says
(the installed-extension case is tests/packaging)."""
from __future__ import annotations

import sys

import pytest

from asm_blender.jobs import dependencies


def test_a_checkout_gives_the_worker_this_environment():
    path = dependencies.worker_path()
    assert path[0] == str(dependencies.solver_parent())
    assert (dependencies.solver_parent() / "solver" / "worker" / "__main__.py").is_file()
    assert [p for p in sys.path if p.endswith("site-packages")] == path[1:]
    assert not dependencies.is_extension()


def test_missing_packages_are_found_per_task_and_named_with_their_wheels(tmp_path, monkeypatch):
    monkeypatch.setenv("ASM_WORKER_PYTHON", str(tmp_path / "bin" / "python"))  # another interpreter: numpy trusted
    monkeypatch.setattr(dependencies, "worker_path", lambda: [str(tmp_path)])
    assert dependencies.missing_packages("generate") == ["torch", "scipy"]
    everything = dependencies.missing_packages("fit_photos")
    assert everything == [n for n in dependencies.WORKER_PACKAGES if n != "numpy"]
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    assert dependencies.missing_packages("generate") == ["scipy"]
    message = dependencies.missing_message(["scipy"])
    assert message.startswith("the solver cannot run: missing scipy (scipy);") and "ASM_WORKER_PYTHON" in message
    assert dependencies.missing_message(["cv2"]).startswith("face detection and photo fits cannot run: missing "
                                                            "opencv-contrib-python-headless (cv2)")


def test_this_environment_has_what_every_task_needs():
    pytest.importorskip("torch", reason="the main environment has the solver's packages")
    assert dependencies.missing_packages("generate") == []


def test_another_worker_python_is_asked_what_it_finds_with_the_workers_path(tmp_path, monkeypatch):
    """ASM_WORKER_PYTHON: its own packages count (numpy here), and those in the worker's PYTHONPATH."""
    from tests.packaging.conftest import make_stock_python

    monkeypatch.setenv("ASM_WORKER_PYTHON", str(make_stock_python(tmp_path / "stock_python")))  # numpy only
    wheels = tmp_path / "wheels"
    (wheels / "scipy").mkdir(parents=True)
    (wheels / "scipy" / "__init__.py").write_text("")
    monkeypatch.setattr(dependencies, "worker_path", lambda: [str(wheels)])
    assert dependencies.missing_packages("generate") == ["torch"]  # numpy its own, scipy in its path
    assert dependencies.missing_packages("fit_photos") == ["torch", "cv2", "ai_edge_litert", "PIL"]


def installed_zip(monkeypatch, wheels: list[str], python: str) -> None:
    """This add-on as if installed from a zip whose manifest lists `wheels`, in a Blender running `python`."""
    monkeypatch.setattr(dependencies, "is_extension", lambda: True)
    monkeypatch.setattr(dependencies, "this_python", lambda: python)
    monkeypatch.setattr(dependencies, "_blender_platform", lambda: "linux-x64")
    monkeypatch.setattr(dependencies, "installed_manifest", lambda: {
        "id": "asm_face_rig", "version": "0.2.0",
        "build": {"generated": {"wheels": [f"./wheels/{w}" for w in wheels]}}})


SHARED = ["opencv_contrib_python_headless-4.11.0.86-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "sympy-1.14.0-py3-none-any.whl"]


@pytest.mark.parametrize("zip_python, blender_python, zip_blenders, right_blenders", [
    ("3.11", "3.13", "Blender 4.2 to 5.0", "Blender 5.1 and later"),
    ("3.13", "3.11", "Blender 5.1 and later", "Blender 4.2 to 5.0")])
def test_a_zip_of_another_python_is_named_with_the_zip_to_install(monkeypatch, zip_python, blender_python,
                                                                  zip_blenders, right_blenders):
    tag = "cp" + zip_python.replace(".", "")
    installed_zip(monkeypatch, [f"torch-2.13.0+cpu-{tag}-{tag}-manylinux_2_28_x86_64.whl", *SHARED], blender_python)
    assert dependencies.bundled_pythons() == [zip_python] and dependencies.python_mismatch() == [zip_python]
    what, wheels, where = dependencies.missing_parts(["torch", "scipy"])
    assert what == (f"the solver cannot run: this ASM Face Rig zip carries the solver's packages for Python "
                    f"{zip_python} ({zip_blenders}), and this Blender runs Python {blender_python}")
    assert wheels == []
    assert where == (f"install the zip built for this Blender instead: asm_face_rig-0.2.0-linux_x64-python"
                     f"{blender_python}.zip (or a newer ASM Face Rig zip for linux-x64 and {right_blenders}) "
                     "(Preferences > Get Extensions > Install from Disk)")
    assert dependencies.missing_message(["torch", "scipy"]) == f"{what}; {where}"


def test_a_zip_of_this_python_names_the_missing_wheels_and_a_python_without_a_zip_is_said(monkeypatch):
    installed_zip(monkeypatch, ["scipy-1.17.1-cp313-cp313-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
                                *SHARED], "3.13")
    assert dependencies.python_mismatch() is None  # its torch is missing, not its Python
    message = dependencies.missing_message(["torch"])
    assert message == ("the solver cannot run: missing torch (torch); install the ASM Face Rig zip built for this "
                       "platform (linux-x64) and Blender again: asm_face_rig-0.2.0-linux_x64-python3.13.zip (or a "
                       "newer ASM Face Rig zip for linux-x64 and Blender 5.1 and later) (Preferences > Get Extensions "
                       "> Install from Disk)")
    installed_zip(monkeypatch, SHARED, "3.13")  # wheels that any Python takes: no mismatch to tell
    assert dependencies.bundled_pythons() == [] and dependencies.python_mismatch() is None
    installed_zip(monkeypatch, ["scipy-1.17.1-cp313-cp313-win_amd64.whl"], "3.14")  # a Blender after 5.x's Python
    assert dependencies.missing_parts(["scipy"])[2].startswith(
        "install the zip built for this Blender instead: an ASM Face Rig zip built for Python 3.14 (this version has "
        "zips for Python 3.11 (Blender 4.2 to 5.0), Python 3.13 (Blender 5.1 and later) only)")
