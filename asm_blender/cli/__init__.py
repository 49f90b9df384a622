"""Headless commands. Each command is a module with `execute(argv, prog) -> exit code`, so tests can call it
directly; the same commands run as `python -m asm_blender ...` (the bpy module) and as
`blender -b [FILE.blend] -c asm ...` (registered with bpy.utils.register_cli_command when the add-on is enabled).

    python -m asm_blender generate MESH [-o OUT.blend] [--object NAME] [--preset full|standard|game] [--cap 4|8] [--json]
    python -m asm_blender fit MESH PHOTO... [-o OUT.blend] [--quality fast|balanced|best]
                              [--expressions per_photo|shared] [--bake-identity] [--glb OUT.glb] [--json]
    python -m asm_blender expressions HEAD.blend [-o OUT.blend] [--object NAME] [--shape-keys] [--only NAME...]
                                      [--glb OUT.glb] [--json]   (the ARKit-52 pose library of a rigged head)
    python -m asm_blender export [FILE.blend] -o OUT.glb|OUT.gltf|OUT.fbx [--object HEAD] [--influences 4|8] [--json]
    python -m asm_blender info [FILE.blend] [--json]
    python -m asm_blender batch MANIFEST [--jobs N] [--timeout S] [--retry-failed] [--force] [--skip-invalid]
                                [--ray [ADDRESS]] [--json]   (a manifest of heads: asm_blender/cli/batch)
    python -m asm_blender sample [--output DIR] [--preset ...] [--cap 4|8] [--fit fast|balanced|best|none]
                                 (a checkout only: the samples are not in the extension)

export and info read FILE.blend, or the file Blender has open (`blender -b FILE.blend -c asm info`).

Every failure is one `error: ...` line on stderr and exit code 1; SIGINT (Ctrl+C) and SIGTERM stop a command
cleanly (stopping.py) with exit code 130 or 143.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback

from ..jobs import JobError, stop_worker
from ..scene_io.mesh import SceneInputError, blender_error
from . import export, expressions, fit, generate, info, sample
from .batch import command as batch
from .common import BLENDER_PROG, PYTHON_PROG
from .stopping import Stopped, stop_on_signals, watch_parent

COMMANDS = {"generate": generate.execute, "fit": fit.execute, "export": export.execute, "info": info.execute,
            "expressions": expressions.execute, "batch": batch.execute, "sample": sample.execute}


def commands() -> dict:
    """The commands this copy has: `sample` needs the repository's samples, which the extension does not carry."""
    return {name: run for name, run in COMMANDS.items() if name != "sample" or sample.SAMPLE_MESH.is_file()}


def main(argv: list[str] | None = None, prog: str = PYTHON_PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = commands()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        known = ", ".join(available)
        print(f"usage: {prog} <command> [options]   (commands: {known}; each has --help)", file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        with stop_on_signals():
            watch_parent()
            return available[argv[0]](argv[1:], f"{prog} {argv[0]}")
    except SystemExit as exit_:  # argparse: --help or a usage error
        return int(exit_.code or 0)
    except (JobError, SceneInputError, OSError) as error:
        return _failed(str(error) if not isinstance(error, OSError) else _os_error(error))
    except KeyboardInterrupt as interrupt:  # Stopped by a signal, or a Ctrl+C before the handlers were set
        stopped = interrupt if isinstance(interrupt, Stopped) else Stopped(signal.SIGINT)
        stop_worker()  # also when the signal came between two jobs: no solver process outlives the command
        return _failed(stopped.message, stopped.exit_code)
    except Exception as error:  # noqa: BLE001 - a bug or an error nobody foresaw: still one line, not a traceback
        if os.environ.get("ASM_TRACEBACK"):
            traceback.print_exc()
        return _failed(f"{type(error).__name__}: {blender_error(error)} (unexpected: please report it with the "
                       "command line; ASM_TRACEBACK=1 shows where it happened)")


def _failed(message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _os_error(error: OSError) -> str:
    """A file error as one line naming the file."""
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def blender_command(argv: list[str]) -> int:
    """`blender -b [FILE.blend] -c asm <command> ...`: registered on the add-on's register()."""
    return main(list(argv), BLENDER_PROG)
