"""The built extension installed as a user installs it (Install from Disk) into a fresh Blender, with a temporary
user extension repository: registration, the solver through the bundled wheels only, the `asm` command-line
command, upgrade, installing twice, disabling during a fit, uninstalling, a read-only extension folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT, SAMPLE_DIR
from tests.packaging.conftest import can_mount_read_only, run_driver

pytestmark = [pytest.mark.packaging, pytest.mark.slow]
pytest.importorskip("bpy", reason="the install test needs the bpy module (Blender's extension installer)")

PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"
BUNDLED = ("torch", "scipy", "cv2", "ai_edge_litert", "PIL")


@pytest.fixture(scope="module")
def lifecycle(built_zip, old_zip_without_wheels, stock_python, tmp_path_factory):
    home = tmp_path_factory.mktemp("blender_home")
    work = home / "work"
    work.mkdir()
    report, completed = run_driver("lifecycle", {
        "zip": str(built_zip), "old_zip": str(old_zip_without_wheels), "mesh": str(SAMPLE_DIR / "base_head.obj"),
        "photo": str(PHOTO), "work": str(work)}, home, stock_python)
    print(completed.stderr[-6000:])
    assert completed.returncode == 0, completed.stderr[-4000:]  # and it exited: no hang (the run has a time limit)
    assert "error" not in report, report.get("error")
    return report, work, stock_python, home


def test_an_old_version_without_wheels_enables_and_names_the_missing_packages(lifecycle):
    report = lifecycle[0]["old_install"]
    assert report["install"]["result"] == ["FINISHED"] and report["version"] == "0.0.1"
    assert report["state"]["enabled"] and report["state"]["panel"]
    assert set(report["state"]["missing_packages"]) >= set(BUNDLED)
    assert report["environment"]["kind"] == "input" and "torch" in report["environment"]["error"]
    assert report["generate"]["code"] == 1  # the command fails with the message, not a traceback


def test_upgrade_and_a_second_install_leave_one_registration(lifecycle):
    for name in ("upgrade", "install_twice"):
        report = lifecycle[0][name]
        assert report["install"]["result"] == ["FINISHED"], report
        assert report["version"] != "0.0.1"
        state = report["state"]
        assert state["enabled"] and state["panel"] and state["object_settings"] and state["missing_packages"] == []
        assert state["asm_commands"] == 1  # `blender -c asm` registered once
        assert {"generate_rig", "fit_photos"} <= set(state["operators"])


def test_the_worker_sees_only_the_bundled_wheels(lifecycle):
    report, _work, stock_python, home = lifecycle
    environment = report["environment"]
    site = Path(environment["site_packages"])
    assert site.is_relative_to(home)
    assert Path(environment["python"]) == stock_python
    for module in BUNDLED:  # every solver package from the extension's wheels, none from the test's environment
        assert Path(environment["files"][module]).is_relative_to(site.resolve()), (module, environment["files"])
    assert not Path(environment["files"]["numpy"]).is_relative_to(site.resolve())  # Blender's own numpy
    assert environment["versions"]["torch"].startswith("2.13.0")
    print("cv2:", environment["files"]["cv2"], "torch:", environment["versions"]["torch"])
    installed = set(environment["wheels_installed"])
    for unused in ("jax", "jaxlib", "sounddevice", "sentencepiece", "networkx", "jinja2"):
        assert unused not in installed


def test_generate_info_fit_and_export_through_the_asm_command(lifecycle):
    report, work = lifecycle[0], lifecycle[1]
    generate = report["generate"]
    assert generate["code"] == 0 and generate["json"]["bones"] > 20
    assert (work / "head_rigged.blend").is_file()
    rigs = report["info"]["json"]["rigs"]
    assert len(rigs) == 1 and 1 <= rigs[0]["max_influences"] <= 4 and rigs[0]["bones"] == generate["json"]["bones"]
    fit = report["fit"]
    assert fit["code"] == 0, fit["stdout"]
    assert len(fit["json"]["cameras"]) == 1 and np.isfinite(fit["json"]["pixel_error_after"]).all()
    assert (work / "head_fitted.blend").is_file()
    for name, suffix in (("export_glb", ".glb"), ("export_fbx", ".fbx")):
        assert report[name]["code"] == 0 and Path(report[name]["json"]["output"]).suffix == suffix
        assert Path(report[name]["json"]["output"]).stat().st_size > 10_000
    assert report["bad_command"]["code"] == 1


def test_disabling_during_a_fit_stops_the_worker_and_unregisters(lifecycle):
    report = lifecycle[0]
    disabled = report["disable_during_fit"]
    assert disabled["was_running"] and disabled["error"] is None
    assert disabled["worker_exit"] == 0  # the worker stopped with the add-on: its fit cancelled, no kill needed
    state = disabled["state"]
    assert not state["enabled"] and not state["panel"] and not state["object_settings"] and state["asm_commands"] == 0
    assert report["enable_again"]["state"]["panel"]


def test_uninstall_removes_everything(lifecycle):
    uninstall = lifecycle[0]["uninstall"]
    assert uninstall["result"] == ["FINISHED"]
    state = uninstall["state"]
    assert not state["enabled"] and not state["panel"] and not state["object_settings"]
    assert state["operators"] == [] and state["asm_commands"] == 0
    assert not uninstall["folder_left"]
    assert not [name for name in uninstall["wheels_left"] if name.split("-")[0] in ("torch", "ai_edge_litert", "scipy")]


def test_a_read_only_extension_folder(built_zip, stock_python, tmp_path_factory):
    home = tmp_path_factory.mktemp("blender_home_read_only")
    if not can_mount_read_only(home / "probe"):
        pytest.skip("making a folder read-only needs `unshare -m` and mount (root); file permissions stop no root")
    report, completed = run_driver("read_only", {"zip": str(built_zip)}, home, stock_python, own_mounts=True)
    print(completed.stderr[-4000:])
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "error" not in report, report.get("error")
    assert report["install"]["state"]["enabled"]
    enabled = report["read_only_enable"]
    assert not enabled["folder_writable"]
    assert enabled["state"]["enabled"] and enabled["state"]["missing_packages"] == []
    assert Path(enabled["environment"]["files"]["torch"]).is_relative_to(home)  # the solver runs from there
    assert enabled["info"]["code"] == 0
    for name in ("read_only_uninstall", "read_only_install_again"):  # Blender refuses with a message
        refused = report[name]
        error = refused["error"] if "error" in refused else refused["install"]["error"]
        assert "Read-only file system" in error, refused
        state = refused["state"]  # Blender disabled the add-on first: nothing is left half registered
        assert not state["panel"] and not state["object_settings"] and state["asm_commands"] == 0
    again = report["read_only_enable_again"]
    assert again["error"] is None and again["state"]["panel"] and again["state"]["asm_commands"] == 1
    assert not report["end"]["state"]["panel"]
