"""Runs in a fresh bpy process (tests/packaging/test_install.py starts it): installs the built extension zips
into a temporary user extension repository the way a user does (Install from Disk), drives it and writes what it
saw as JSON. Blender's user folders must point at a temporary folder (environment) before this starts.

    python install_driver.py SCENARIO SPEC.json REPORT.json

SCENARIO "lifecycle": old zip without wheels (missing packages), upgrade to the full zip, install it twice, the
solver's packages, the `asm` command (generate, info, fit, export), disabling while a fit runs, uninstall.
SCENARIO "read_only": install, then the extension folders read-only (re-enable, a job, uninstall refused cleanly),
and an install into a read-only repository. Run it in its own mount namespace (`unshare -m`, as root).
SCENARIO "wrong_python": each zip of another Python is installed and refused by Blender; where its files were
installed all the same, the add-on's own register() is called, as where its code runs all the same: its panel's and
its command's message; uninstall.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import bpy

PACKAGE = "bl_ext.user_default.asm_face_rig"
REPORT: dict = {"steps": []}
COMMANDS: dict[str, list] = {}  # command id -> live execute callables registered under it

_register_cli_command, _unregister_cli_command = bpy.utils.register_cli_command, bpy.utils.unregister_cli_command
_handles: dict[int, tuple[str, object]] = {}


def _recording_register(command_id, execute):
    """bpy.utils.register_cli_command as Blender's `-c` sees it (the real registration happens), with the callable
    kept so that this process can run `blender -c asm ...`'s handler (the bpy module has no `-c`)."""
    handle = _register_cli_command(command_id, execute)
    COMMANDS.setdefault(command_id, []).append(execute)
    _handles[id(handle)] = (command_id, execute)
    return handle


def _recording_unregister(handle):
    command_id, execute = _handles.pop(id(handle), (None, None))
    if command_id is not None:
        COMMANDS[command_id].remove(execute)
    return _unregister_cli_command(handle)


bpy.utils.register_cli_command, bpy.utils.unregister_cli_command = _recording_register, _recording_unregister


def step(name: str, **values) -> None:
    REPORT["steps"].append(name)
    REPORT[name] = values
    print(f"[driver] {name}: {json.dumps(values)[:300]}", file=sys.stderr, flush=True)


def state() -> dict:
    """What Blender has registered of the add-on now."""
    package = sys.modules.get(PACKAGE)
    return {
        "enabled": PACKAGE in bpy.context.preferences.addons,
        "panel": hasattr(bpy.types, "VIEW3D_PT_asm_info"),
        "operators": sorted(name for name in dir(bpy.ops.asm) if not name.startswith("_")),
        "object_settings": hasattr(bpy.types.Object, "asm"),
        "asm_commands": len(COMMANDS.get("asm", [])),
        "module_file": getattr(package, "__file__", None),
        "missing_packages": list(sys.modules[PACKAGE + ".panels"].MISSING_PACKAGES) if package else None,
    }


def install(path: str) -> dict:
    try:
        result = bpy.ops.extensions.package_install_files(filepath=path, repo="user_default", enable_on_install=True)
        return {"result": sorted(result), "error": None}
    except RuntimeError as error:  # the operator's error report
        return {"result": [], "error": str(error)}


def run_command(argv: list[str], stderr: bool = False) -> dict:
    """`blender -b -c asm ARGV` through the handler the add-on registered; its stdout (the --json summary) and, with
    `stderr`, what it wrote to sys.stderr (its error line)."""
    execute = COMMANDS["asm"][-1]
    captured, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(captured), (contextlib.redirect_stderr(errors) if stderr else
                                                contextlib.nullcontext()):
        code = execute(list(argv))
    text = captured.getvalue()
    try:
        parsed = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        parsed = None
    return {"code": code, "json": parsed, "stdout": text[-2000:], **({"stderr": errors.getvalue()} if stderr else {})}


def installed_version() -> str:
    import tomllib

    folder = Path(bpy.utils.user_resource('EXTENSIONS'), "user_default", "asm_face_rig")
    return tomllib.loads((folder / "blender_manifest.toml").read_text())["version"]


def site_packages() -> Path:
    return Path(bpy.utils.user_resource('EXTENSIONS'), ".local", "lib",
                f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")


def environment_job() -> dict:
    jobs = importlib.import_module(PACKAGE + ".jobs")
    try:
        result = jobs.run_blocking("environment", {}, {}, report=lambda progress: None)
    except jobs.JobError as error:
        return {"error": str(error), "kind": error.kind}
    return {"python": str(result["python"]),
            "files": {str(m): str(f) for m, f in zip(result["modules"], result["files"])},
            "versions": {str(m): str(v) for m, v in zip(result["modules"], result["versions"])}}


def lifecycle(spec: dict) -> None:
    work = Path(spec["work"])
    step("old_install", install=install(spec["old_zip"]), version=installed_version(), state=state(),
         environment=environment_job(),
         generate=run_command(["generate", spec["mesh"], "-o", str(work / "never.blend")]))
    step("upgrade", install=install(spec["zip"]), version=installed_version(), state=state())
    step("install_twice", install=install(spec["zip"]), version=installed_version(), state=state())
    step("environment", site_packages=str(site_packages()), wheels_installed=sorted(os.listdir(site_packages())),
         **environment_job())
    for command in ("generate", "fit", "export", "info"):
        run = run_command([command, "--help"])
        assert run["code"] == 0, run
    head_blend, fit_blend = work / "head_rigged.blend", work / "head_fitted.blend"
    started = time.perf_counter()
    generate = run_command(["generate", spec["mesh"], "-o", str(head_blend), "--json"])
    step("generate", seconds=round(time.perf_counter() - started, 1), **generate)
    step("info", **run_command(["info", str(head_blend), "--json"]))
    started = time.perf_counter()
    fit = run_command(["fit", str(head_blend), spec["photo"], "-o", str(fit_blend), "--quality", "fast",
                       "--no-texture", "--json"])
    step("fit", seconds=round(time.perf_counter() - started, 1), **fit)
    step("export_glb", **run_command(["export", str(fit_blend), "-o", str(work / "head.glb"), "--json"]))
    step("export_fbx", **run_command(["export", str(fit_blend), "-o", str(work / "head.fbx"), "--json"]))
    step("bad_command", **run_command(["export", str(work / "missing.blend"), "-o", str(work / "x.glb")]))

    # Disable while a fit runs: the worker must stop with the add-on, nothing may be left registered.
    bpy.ops.wm.open_mainfile(filepath=str(head_blend))
    fit_flow = importlib.import_module(PACKAGE + ".flows.fit")
    rig = importlib.import_module(PACKAGE + ".scene_io.rig")
    head = next(o for o in bpy.data.objects if o.type == 'MESH' and rig.existing_rig(o) is not None)
    jobs = importlib.import_module(PACKAGE + ".jobs")
    steps = fit_flow.fit_steps(rig.existing_rig(head), [Path(spec["photo"])], "fast", workdir=work / "running_fit")
    running = next(steps)
    while not isinstance(running, jobs.Job):
        running = next(steps)
    time.sleep(2.0)
    worker = running.server.process
    was_running = worker.poll() is None and not running.done()
    started = time.perf_counter()
    error = None
    try:
        bpy.ops.preferences.addon_disable(module=PACKAGE)
    except Exception as exception:  # noqa: BLE001 - recorded for the test
        error = f"{type(exception).__name__}: {exception}"
    steps.close()
    step("disable_during_fit", was_running=was_running, worker_exit=worker.poll(), error=error,
         seconds=round(time.perf_counter() - started, 2), state=state())
    bpy.ops.preferences.addon_enable(module=PACKAGE)
    step("enable_again", state=state())

    bpy.ops.wm.read_homefile(use_empty=True)
    repo_index = next(i for i, r in enumerate(bpy.context.preferences.extensions.repos) if r.module == "user_default")
    result = bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="asm_face_rig")
    folder = Path(bpy.utils.user_resource('EXTENSIONS'), "user_default", "asm_face_rig")
    left = sorted(os.listdir(site_packages())) if site_packages().is_dir() else []
    step("uninstall", result=sorted(result), state=state(), folder_left=folder.exists(), wheels_left=left,
         modules_left=sorted(m for m in sys.modules if m.startswith(PACKAGE)))


def uninstall() -> dict:
    bpy.ops.wm.read_homefile(use_empty=True)
    repo_index = next(i for i, r in enumerate(bpy.context.preferences.extensions.repos) if r.module == "user_default")
    result = bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="asm_face_rig")
    folder = Path(bpy.utils.user_resource('EXTENSIONS'), "user_default", "asm_face_rig")
    left = sorted(os.listdir(site_packages())) if site_packages().is_dir() else []
    return {"result": sorted(result), "state": state(), "folder_left": folder.exists(), "wheels_left": left}


def wrong_python(spec: dict) -> None:
    for name, path in spec["zips"].items():
        print(f"[driver] installing {name}", flush=True)  # Blender's own messages follow on stdout
        installed = install(path)
        folder = Path(bpy.utils.user_resource('EXTENSIONS'), "user_default", "asm_face_rig")
        step(name, install=installed, state=state(), folder_installed=folder.is_dir(),
             wheels_installed=sorted(os.listdir(site_packages())) if site_packages().is_dir() else [])
        if not folder.is_dir():  # refused before anything was installed
            continue
        try:  # enabling it again, as a user would from the Preferences
            bpy.ops.preferences.addon_enable(module=PACKAGE)
            error = None
        except RuntimeError as exception:
            error = str(exception)
        step(f"{name}_enable", error=error, state=state())
        # Where the add-on's code runs with this zip all the same: its register(), as Blender's enable would call it
        package = importlib.import_module(PACKAGE)
        package.register()
        try:
            dependencies = importlib.import_module(PACKAGE + ".jobs.dependencies")
            missing = list(sys.modules[PACKAGE + ".panels"].MISSING_PACKAGES)
            step(f"{name}_own_code", missing_packages=missing, panel=list(dependencies.missing_parts(missing)),
                 message=dependencies.missing_message(missing), asm_commands=len(COMMANDS.get("asm", [])),
                 generate=run_command(["generate", spec["mesh"], "-o", str(Path(spec["work"]) / "never.blend")],
                                      stderr=True))
        finally:
            package.unregister()
            for module in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
                del sys.modules[module]  # the next zip's modules are its own
        step(f"{name}_uninstall", **uninstall())


def _make_read_only(folder: Path) -> None:
    """`folder` on a read-only file system from now on (a bind mount; this process runs in its own mount namespace,
    `unshare -m`), like an extension repository on a read-only share: file permissions would not stop root."""
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder), str(folder)], check=True)


def read_only(spec: dict) -> None:
    step("install", install=install(spec["zip"]), state=state())
    extensions = Path(bpy.utils.user_resource('EXTENSIONS'))
    _make_read_only(extensions / "user_default")
    _make_read_only(extensions / ".local")
    probe = extensions / "user_default" / "probe"
    try:
        probe.mkdir()
        writable = True
    except OSError:
        writable = False
    bpy.ops.preferences.addon_disable(module=PACKAGE)
    bpy.ops.preferences.addon_enable(module=PACKAGE)
    step("read_only_enable", folder_writable=writable, state=state(), environment=environment_job(),
         info=run_command(["info", "--json"]))
    repo_index = next(i for i, r in enumerate(bpy.context.preferences.extensions.repos) if r.module == "user_default")
    try:
        result, error = sorted(bpy.ops.extensions.package_uninstall(repo_index=repo_index, pkg_id="asm_face_rig")), None
    except RuntimeError as exception:
        result, error = [], str(exception)
    step("read_only_uninstall", result=result, error=error, state=state())
    step("read_only_install_again", install=install(spec["zip"]), state=state())
    try:  # Blender disabled it before its refused removal: it enables again from the read-only folder
        bpy.ops.preferences.addon_enable(module=PACKAGE)
        error = None
    except RuntimeError as exception:
        error = str(exception)
    step("read_only_enable_again", error=error, state=state())
    if PACKAGE in bpy.context.preferences.addons:  # leave nothing registered behind (a hang at exit otherwise)
        bpy.ops.preferences.addon_disable(module=PACKAGE)
    step("end", state=state())


def main() -> int:
    scenario, spec_path, report_path = sys.argv[1:4]
    spec = json.loads(Path(spec_path).read_text())
    try:
        {"lifecycle": lifecycle, "read_only": read_only, "wrong_python": wrong_python}[scenario](spec)
    except Exception:  # noqa: BLE001 - the test reads it from the report
        REPORT["error"] = traceback.format_exc()
    finally:
        if PACKAGE in bpy.context.preferences.addons:
            bpy.ops.preferences.addon_disable(module=PACKAGE)
        Path(report_path).write_text(json.dumps(REPORT, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())  # a normal exit: the test's time limit catches a hang at exit
