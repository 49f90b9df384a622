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
