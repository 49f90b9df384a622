"""The built extension installed as a user installs it (Install from Disk) into a fresh Blender, with a temporary
user extension repository: registration, the solver through the bundled wheels only, the `asm` command-line
command, upgrade, installing twice, disabling during a fit, uninstalling, a read-only extension folder; the zip of
the other Python (and, on Blender 5.1 and later, the old cp311-only zip) refused with a message that names it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PROJECT_ROOT, SAMPLE_DIR
from tests.packaging.conftest import OTHER_PYTHON, THIS_PYTHON, can_mount_read_only, run_driver

sys.path.insert(0, str(PROJECT_ROOT))
import build  # noqa: E402

pytestmark = [pytest.mark.packaging, pytest.mark.slow]
pytest.importorskip("bpy", reason="the install test needs the bpy module (Blender's extension installer)")

PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"
BUNDLED = ("torch", "scipy", "cv2", "ai_edge_litert", "PIL")


@pytest.fixture(scope="module")
def lifecycle(zip_under_test, old_zip_without_wheels, tmp_path_factory):
    """The lifecycle run with the zip for this Blender's Python; `absent`: the solver modules it lacks (PyTorch's
    CPU build where its index is out of reach: Linux cp313 here), which the worker's Python has of its own."""
    archive, worker_python, absent = zip_under_test
    home = tmp_path_factory.mktemp("blender_home")
    work = home / "work"
    work.mkdir()
    report, completed = run_driver("lifecycle", {
        "zip": str(archive), "old_zip": str(old_zip_without_wheels), "mesh": str(SAMPLE_DIR / "base_head.obj"),
        "photo": str(PHOTO), "work": str(work)}, home, worker_python)
    print(completed.stderr[-6000:])
    assert completed.returncode == 0, completed.stderr[-4000:]  # and it exited: no hang (the run has a time limit)
    assert "error" not in report, report.get("error")
    return report, work, worker_python, home, absent


def test_an_old_version_without_wheels_enables_and_names_the_missing_packages(lifecycle):
    report, absent = lifecycle[0]["old_install"], lifecycle[4]
    assert report["install"]["result"] == ["FINISHED"] and report["version"] == "0.0.1"
    assert report["state"]["enabled"] and report["state"]["panel"]
    assert set(report["state"]["missing_packages"]) >= set(BUNDLED) - absent
    assert report["environment"]["kind"] == "input" and "missing " in report["environment"]["error"]
    assert "scipy (scipy)" in report["environment"]["error"]
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


def test_the_worker_sees_only_the_bundled_wheels_of_this_python(lifecycle):
    report, _work, worker_python, home, absent = lifecycle
    environment = report["environment"]
    site = Path(environment["site_packages"])
    assert site.is_relative_to(home) and site.parent.name == f"python{THIS_PYTHON}"
    assert Path(environment["python"]) == worker_python
    for module in BUNDLED:  # every solver package from the extension's wheels, none from the test's environment
        bundled = Path(environment["files"][module]).is_relative_to(site.resolve())
        assert bundled == (module not in absent), (module, environment["files"])  # absent: the worker's own
    assert not Path(environment["files"]["numpy"]).is_relative_to(site.resolve())  # Blender's own numpy
    assert environment["versions"]["torch"].startswith("2.13.0") and environment["versions"]["scipy"] == "1.17.1"
    print("cv2:", environment["files"]["cv2"], "torch:", environment["versions"]["torch"],
          environment["files"]["torch"])
    installed = set(environment["wheels_installed"])
    for unused in ("jax", "jaxlib", "sounddevice", "sentencepiece", "networkx", "jinja2"):
        assert unused not in installed
    # Blender extracted the wheels of its own Python only (the zip carries no other)
    assert [name for name in installed if name.startswith("scipy-")] == ["scipy-1.17.1.dist-info"]
    assert ("torch" in installed) == ("torch" not in absent)


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


def test_a_read_only_extension_folder(zip_under_test, tmp_path_factory):
    archive, worker_python, _absent = zip_under_test
    home = tmp_path_factory.mktemp("blender_home_read_only")
    if not can_mount_read_only(home / "probe"):
        pytest.skip("making a folder read-only needs `unshare -m` and mount (root); file permissions stop no root")
    report, completed = run_driver("read_only", {"zip": str(archive)}, home, worker_python, own_mounts=True)
    print(completed.stderr[-4000:])
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "error" not in report, report.get("error")
    assert report["install"]["state"]["enabled"]
    enabled = report["read_only_enable"]
    assert not enabled["folder_writable"]
    assert enabled["state"]["enabled"] and enabled["state"]["missing_packages"] == []
    assert Path(enabled["environment"]["files"]["scipy"]).is_relative_to(home)  # the solver runs from there
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


@pytest.fixture(scope="module")
def wrong_python(other_python_zip, stock_python, tmp_path_factory, request):
    zips = {"other_python": str(other_python_zip)}
    if OTHER_PYTHON == "3.11":  # Blender 5.1 and later: also the zip as released before there was one per Python
        zips["old_zip"] = str(request.getfixturevalue("old_cp311_zip"))
    home = tmp_path_factory.mktemp("blender_home_wrong_python")
    (home / "work").mkdir()
    report, completed = run_driver("wrong_python", {"zips": zips, "mesh": str(SAMPLE_DIR / "base_head.obj"),
                                                    "work": str(home / "work")}, home, stock_python)
    print(completed.stdout[-3000:], completed.stderr[-6000:])
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "error" not in report, report.get("error")
    return report, zips, completed.stdout + completed.stderr


def test_blender_refuses_the_zip_of_the_other_python_before_installing_it(wrong_python):
    """Each zip's manifest has the Blender range of its Python: Blender's installer refuses it with its own
    message, and nothing is installed."""
    report, _zips, output = wrong_python
    installed = report["other_python"]
    assert not installed["folder_installed"] and installed["wheels_installed"] == []
    state = installed["state"]
    assert not state["enabled"] and not state["panel"] and state["operators"] == [] and state["asm_commands"] == 0
    version = ".".join(map(str, bpy_version()))
    expected = (f"This Blender version ({version}) must be less than the maximum version (5.1.0)"
                if OTHER_PYTHON == "3.11" else
                f"This Blender version ({version}) doesn't meet the minimum supported version (5.1.0)")
    assert f"ERROR asm_face_rig: {expected}" in output


def bpy_version() -> tuple[int, int, int]:
    import bpy

    return tuple(bpy.app.version)


def test_blender_installs_the_old_cp311_zip_but_refuses_to_enable_it(wrong_python):
    """The zip released before there was one per Python (cp311 wheels, no Blender range) on Blender 5.1 and later:
    its files are installed, but Blender does not enable it (nor later, from the Preferences) and says why; none of
    its wheels is extracted, nothing of the add-on registers, `blender -c asm` is not there."""
    report, zips, _output = wrong_python
    if "old_zip" not in zips:
        pytest.skip("the old cp311-only zip is the wrong zip for Blender 5.1 and later (Python 3.13) only")
    refusal = f"This Python version ({THIS_PYTHON}) isn't compatible with ({OTHER_PYTHON})"
    installed = report["old_zip"]
    assert installed["install"]["result"] == [] and refusal in installed["install"]["error"], installed
    assert "Extension bl_ext.user_default.asm_face_rig is incompatible" in installed["install"]["error"]
    assert installed["folder_installed"] and installed["wheels_installed"] == []
    for state in (installed["state"], report["old_zip_enable"]["state"]):
        assert not state["enabled"] and not state["panel"] and state["operators"] == [] and state["asm_commands"] == 0
    assert refusal in report["old_zip_enable"]["error"]
    uninstall = report["old_zip_uninstall"]
    assert uninstall["result"] == ["FINISHED"] and not uninstall["folder_left"]


def test_with_the_old_zip_the_addon_names_the_python_mismatch_and_the_zip_to_install(wrong_python):
    """Where the add-on's code runs with the old zip all the same (its register() called directly, as a Blender
    without that check would), the panel and the `asm` command give one message: the Python the zip is for, this
    Blender's Python, and the zip to install instead (rather than a list of missing packages)."""
    report, zips, _output = wrong_python
    if "old_zip" not in zips:
        pytest.skip("the old cp311-only zip is the wrong zip for Blender 5.1 and later (Python 3.13) only")
    platform = build.this_platform()
    own = report["old_zip_own_code"]
    assert {"torch", "scipy"} <= set(own["missing_packages"]) and own["asm_commands"] == 1
    what, wheels, where = own["panel"]
    assert what == ("the solver cannot run: this ASM Face Rig zip carries the solver's packages for Python 3.11 "
                    f"(Blender 4.2 to 5.0), and this Blender runs Python {THIS_PYTHON}")
    assert wheels == []  # one cause, not a list of packages
    assert where.startswith("install the zip built for this Blender instead: "
                            f"asm_face_rig-0.1.0-{platform.replace('-', '_')}-python{THIS_PYTHON}.zip (or a newer ASM "
                            f"Face Rig zip for {platform} and Blender 5.1 and later)")
    assert own["message"] == f"{what}; {where}"
    generate = own["generate"]
    last = generate["stderr"].strip().splitlines()[-1]  # the command's one error line, naming the head
    assert generate["code"] == 1 and last.startswith("error: 'base_head': ") and last.endswith(own["message"])
    print(own["message"])
