"""ASM Face Rig: Adaptive Skinning Model face rigs in Blender. register()/unregister() only."""
from __future__ import annotations

import sys

import bpy

from . import cli, dependencies, jobs, operators, panels, properties

_register_modules, _unregister_modules = bpy.utils.register_classes_factory(
    properties.CLASSES + operators.CLASSES + panels.CLASSES)
_cli_handles = []


def register() -> None:
    _register_modules()
    properties.attach()
    # `blender -b [FILE.blend] -c asm <command> ...` (the same commands as `python -m asm_blender`)
    _cli_handles.append(bpy.utils.register_cli_command("asm", cli.blender_command))
    panels.MISSING_PACKAGES[:] = dependencies.missing_packages()
    if panels.MISSING_PACKAGES:  # the add-on still enables: the sidebar and every job say what is missing
        print(f"ASM Face Rig: {dependencies.missing_message(panels.MISSING_PACKAGES)}", file=sys.stderr)


def unregister() -> None:
    jobs.stop_worker()  # a fit must not outlive the add-on that would receive it
    while _cli_handles:
        bpy.utils.unregister_cli_command(_cli_handles.pop())
    properties.detach()
    _unregister_modules()
