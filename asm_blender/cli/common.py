"""What the headless commands share: stdout kept for the result, the add-on registered for the command, the
summary printed, the output .blend chosen, a .blend opened and the rigged heads in it."""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from pathlib import Path

PYTHON_PROG = "python -m asm_blender"
BLENDER_PROG = "blender -b [FILE.blend] -c asm"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle on this platform: nothing buffered to lose
        pass


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptor 1 (Blender's own C-level messages included) to stderr,
    so that stdout carries only the command's result (e.g. the --json summary)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()  # Blender's reports sit in the C library's buffer until flushed
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def addon_registered():
    """The add-on's classes and properties registered for the command (and unregistered after: a process that
    exits with classes registered can hang), unless something registered them before."""
    from ..registration import is_registered, register_addon, unregister_addon

    if is_registered():
        yield
        return
    register_addon()
    try:
        yield
    finally:
        unregister_addon()


def report(summary: dict, as_json: bool, done: str) -> int:
    """A command's result: the JSON summary on stdout with --json, else one line on stderr."""
    if as_json:
        print(json.dumps(summary, indent=1), flush=True)
    else:
        log(done)
    return 0


def output_blend(args, default_suffix: str) -> Path:
    """The .blend a command writes: --output, else the input's name + `default_suffix` in the current folder;
    never the input itself."""
    from ..scene_io.mesh import SceneInputError

    output = (args.output or Path(f"{args.mesh.stem}{default_suffix}.blend")).resolve()
    if output.suffix.lower() != ".blend":
        raise SceneInputError(f"--output {output.name}: the rig is saved as a .blend")
    if args.mesh.exists() and output == args.mesh.resolve():
        raise SceneInputError(f"--output {output.name} is the input file; choose another name (the input is kept)")
    return output


def open_blend(path: Path | None) -> str:
    """Open `path` (a .blend) unless it is None (then the file Blender has open is used); its name for messages."""
    import bpy

    from ..scene_io.mesh import SceneInputError

    if path is None:
        return bpy.data.filepath or "the open file"
    if not path.is_file():
        raise SceneInputError(f"file not found: {path}")
    if path.suffix.lower() != ".blend":
        raise SceneInputError(f"{path.name}: give a .blend (rig a mesh file with the generate command first)")
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return str(path)


def rigged_heads() -> list:
    """The mesh objects of the open file that an ASM rig deforms, by name."""
    import bpy

    from ..scene_io.rig import existing_rig

    return sorted((o for o in bpy.data.objects if o.type == 'MESH' and existing_rig(o) is not None),
                  key=lambda o: o.name)
