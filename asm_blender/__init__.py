"""ASM Face Rig: Adaptive Skinning Model face rigs in Blender. register()/unregister() only."""
from __future__ import annotations

import bpy

from . import jobs, operators, panels, properties

_register_modules, _unregister_modules = bpy.utils.register_classes_factory(
    properties.CLASSES + operators.CLASSES + panels.CLASSES)


def register() -> None:
    _register_modules()
    properties.attach()


def unregister() -> None:
    jobs.stop_worker()  # a fit must not outlive the add-on that would receive it
    properties.detach()
    _unregister_modules()
