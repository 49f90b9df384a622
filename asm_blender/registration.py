"""The add-on's classes and properties registered into Blender, and the check of the solver's packages."""
from __future__ import annotations

import sys

import bpy

from . import jobs, operators, panels, properties
from .jobs import dependencies

_register_classes, _unregister_classes = bpy.utils.register_classes_factory(
    properties.CLASSES + operators.CLASSES + panels.CLASSES)


def register_addon(report_missing: bool = True) -> None:
    """report_missing False: no line on stderr for missing solver packages (a headless command, whose jobs say so
    in their error when they need them: its first stderr line stays its own)."""
    _register_classes()
    properties.attach()
    panels.MISSING_PACKAGES[:] = dependencies.missing_packages()
    if panels.MISSING_PACKAGES and report_missing:  # the add-on still enables: the sidebar and every job say it
        print(f"ASM Face Rig: {dependencies.missing_message(panels.MISSING_PACKAGES)}", file=sys.stderr)


def unregister_addon() -> None:
    jobs.stop_worker()  # a fit must not outlive the add-on that would receive it
    properties.detach()
    _unregister_classes()


def is_registered() -> bool:
    return hasattr(bpy.types.Object, "asm")
