"""What the headless commands share: stdout kept for the result (and Blender's noise left out), the add-on
registered for the command, the summary printed, the output .blend chosen and saved, a .blend opened and the
rigged heads in it."""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
import threading
from pathlib import Path

from .outputs import WRITE_ADVICE, check_output, written_atomically

PYTHON_PROG = "python -m asm_blender"
BLENDER_PROG = "blender -b [FILE.blend] -c asm"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle on this platform: nothing buffered to lose
        pass


# Lines Blender prints that mean nothing to a user: headless, without a display, every render reports this EGL
# error and then renders fine; a .blend is saved under a hidden temporary name first (outputs.written_atomically),
# and the command says itself where it wrote it.
NOISE = (b"EGL Error (0x3009)", b'Info: Saved copy as "."')


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptors 1 and 2 (Blender's own C-level messages included) to stderr,
    without the NOISE lines, so that stdout carries only the command's result (e.g. the --json summary). Both go
    through one pipe that a thread copies line by line, which keeps their order."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    read_end, write_end = os.pipe()
    forward = threading.Thread(target=_forward_lines, args=(read_end, saved_err), name="stderr-filter", daemon=True)
    forward.start()
    try:
        os.dup2(write_end, 1)
        os.dup2(write_end, 2)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        _flush_c_stdio()  # Blender's reports sit in the C library's buffer until flushed
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(write_end)
        forward.join(timeout=5.0)  # the pipe is closed: it copies what is left and ends
        os.close(saved_out)
        if not forward.is_alive():  # else a process started meanwhile still holds the pipe: leave it the fd
            os.close(saved_err)


def _forward_lines(read_end: int, target: int) -> None:
    """Copy the pipe `read_end` to the file descriptor `target` line by line, leaving out the NOISE lines."""
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            _write_all(target, b"".join(line + b"\n" for line in lines if not line.startswith(NOISE)))
    if not pending.startswith(NOISE):
        _write_all(target, pending)


def _write_all(target: int, data: bytes) -> None:
    while data:  # a write may take part of it (a signal, a full pipe)
        data = data[os.write(target, data):]


@contextlib.contextmanager
def addon_registered():
    """The add-on's classes and properties registered for the command (and unregistered after: a process that
    exits with classes registered can hang), unless something registered them before."""
    from ..registration import is_registered, register_addon, unregister_addon

    if is_registered():
        yield
        return
    register_addon(report_missing=False)
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
    """The .blend a command writes, checked before any work: --output, else the input's name + `default_suffix` in
    the current folder; never the input itself."""
    output = args.output or Path(f"{args.mesh.stem}{default_suffix}.blend")
    return check_output(output, "--output", (".blend",), (args.mesh,))


def save_blend(output: Path) -> None:
    """Save the open file as `output`, atomically (see outputs.written_atomically); one message naming the file
    when Blender cannot."""
    import bpy

    from ..scene_io.mesh import SceneInputError, blender_error

    with written_atomically(output) as temporary:
        try:
            bpy.ops.wm.save_as_mainfile(filepath=str(temporary), copy=True)  # copy: the open file keeps its name
        except RuntimeError as error:
            raise SceneInputError(f"cannot save {output} ({blender_error(error)}); {WRITE_ADVICE}") from None


def open_blend(path: Path | None) -> str:
    """Open `path` (a .blend) unless it is None (then the file Blender has open is used); its name for messages."""
    import bpy

    from ..scene_io.importers import open_blend_file
    from ..scene_io.mesh import SceneInputError

    if path is None:
        return bpy.data.filepath or "the open file"
    if not path.is_file():
        raise SceneInputError(f"file not found: {path}")
    if path.suffix.lower() != ".blend":
        raise SceneInputError(f"{path.name}: give a .blend (rig a mesh file with the generate command first)")
    open_blend_file(path)
    return str(path)


def rigged_heads() -> list:
    """The mesh objects of the open file that an ASM rig deforms, by name."""
    import bpy

    from ..scene_io.rig import existing_rig

    return sorted((o for o in bpy.data.objects if o.type == 'MESH' and existing_rig(o) is not None),
                  key=lambda o: o.name)
