"""ASM Face Rig: Adaptive Skinning Model face rigs in Blender. register()/unregister() only."""
from __future__ import annotations

import bpy

from . import cli
from .registration import register_addon, unregister_addon

_cli_handles = []


def register() -> None:
    register_addon()
    # `blender -b [FILE.blend] -c asm <command> ...` (the same commands as `python -m asm_blender`)
    _cli_handles.append(bpy.utils.register_cli_command("asm", cli.blender_command))


def unregister() -> None:
    while _cli_handles:
        bpy.utils.unregister_cli_command(_cli_handles.pop())
    unregister_addon()
