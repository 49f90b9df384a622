"""A thin `blender` executable made of the bpy module: Blender's command-line form for tools that start Blender
(pytest-blender, pipelines) where no Blender build is installed. `scripts/blender` runs it with the project's
Python. Arguments are handled in order, as Blender does:

    -b / --background        accepted (the bpy module is always in the background)
    FILE.blend               open it
    --python FILE            run FILE as __main__ (sys.argv is the whole command line, as in Blender)
    --python-expr EXPR       run EXPR
    --python-exit-code N     exit with N when a script raises (Blender's default: 0 and go on)
    --addons A,B             enable these add-ons
    -c / --command ID ARGS   run the command an add-on registered with bpy.utils.register_cli_command; its
                             return value is the exit code (everything after ID belongs to the command)
    --version / -v           print Blender's version
    --                       stop: what follows is for the scripts (sys.argv)
    --factory-startup        the factory preferences (otherwise the user's, with their add-ons and extensions)
    --debug*, -noaudio, --python-use-system-env, --disable-autoexec   accepted, ignored

Any other option is refused with exit code 2 (better than a run that silently does something else).
"""
from __future__ import annotations

import runpy
import sys
import traceback
from pathlib import Path

import bpy

IGNORED = {"--factory-startup", "-noaudio", "--python-use-system-env", "--disable-autoexec", "-y",
           "--enable-autoexec", "--debug", "--debug-python", "--quiet", "-q"}
_commands: dict[str, object] = {}


def _capture_cli_commands() -> None:
    """Keep the callables that add-ons register as `-c` commands (the bpy module has no `-c` of its own): wrap
    bpy.utils.register_cli_command, then enable the enabled add-ons again so their register() passes through it."""
    import addon_utils

    register, unregister = bpy.utils.register_cli_command, bpy.utils.unregister_cli_command
    owners: dict[int, str] = {}

    def recording_register(command_id, execute):
        handle = register(command_id, execute)
        _commands[command_id] = execute
        owners[id(handle)] = command_id
        return handle

    def recording_unregister(handle):
        _commands.pop(owners.pop(id(handle), None), None)
        return unregister(handle)

    bpy.utils.register_cli_command, bpy.utils.unregister_cli_command = recording_register, recording_unregister
    for module in list(bpy.context.preferences.addons.keys()):
        addon_utils.disable(module, default_set=False)
        addon_utils.enable(module, default_set=False, persistent=True)


def _disable_addons() -> None:
    """Unregister every add-on before the process ends (classes left registered can hang the exit)."""
    import addon_utils

    for module in list(bpy.context.preferences.addons.keys()):
        addon_utils.disable(module, default_set=False)


def _run_python(action, exit_code: int | None) -> int | None:
    try:
        action()
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
    except Exception:  # noqa: BLE001 - Blender prints the traceback and goes on (or exits with --python-exit-code)
        traceback.print_exc()
        if exit_code is not None:
            return exit_code
    return None


def _load_user_preferences(args: list[str]) -> None:
    """Blender starts with the user's preferences (and so their enabled add-ons and extensions); the bpy module
    starts with factory settings. --factory-startup keeps those."""
    before_scripts = args[:args.index("--")] if "--" in args else args
    if "--factory-startup" in before_scripts:
        return
    if Path(bpy.utils.user_resource('CONFIG'), "userpref.blend").is_file():
        bpy.ops.wm.read_userpref()


def main(argv: list[str]) -> int:
    args = argv[1:]
    _load_user_preferences(args)
    exit_code: int | None = None
    index = 0
    captured = False
    while index < len(args):
        arg = args[index]
        index += 1
        if arg in ("-b", "--background") or arg in IGNORED or arg.startswith("--debug"):
            continue
        if arg in ("-v", "--version"):
            print(f"Blender {bpy.app.version_string}")
            print("\tbuild: the bpy module (scripts/blender_launcher.py)")
            return 0
        if arg == "--":
            break
        if arg == "--python-exit-code":
            exit_code = int(args[index])
            index += 1
        elif arg in ("--python", "-P"):
            path = args[index]
            index += 1
            code = _run_python(lambda: runpy.run_path(path, run_name="__main__"), exit_code)
            if code is not None:
                return code
        elif arg == "--python-expr":
            expression = args[index]
            index += 1
            code = _run_python(lambda: exec(compile(expression, "<string>", "exec"), {"__name__": "__main__"}),
                               exit_code)
            if code is not None:
                return code
        elif arg == "--addons":
            import addon_utils

            for module in args[index].split(","):
                addon_utils.enable(module.strip(), default_set=True, persistent=True)
            index += 1
        elif arg in ("-c", "--command"):
            if not captured:
                _capture_cli_commands()
                captured = True
            if index >= len(args):
                print("Error: --command requires a command id", file=sys.stderr)
                return 1
            command_id, rest = args[index], args[index + 1:]
            if command_id not in _commands:
                known = ", ".join(sorted(_commands)) or "none"
                print(f"Error: command {command_id!r} not found (registered: {known})", file=sys.stderr)
                return 1
            return int(_commands[command_id](rest) or 0)
        elif arg.endswith(".blend") and not arg.startswith("-"):
            bpy.ops.wm.open_mainfile(filepath=arg)
        else:
            print(f"Error: {arg!r}: this launcher does not handle that Blender option", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.argv[0] = "blender"
    try:
        status = main(sys.argv)
    finally:
        _disable_addons()
    sys.exit(status)
