"""Placing a rig on a mesh (ASM.md §7): the template's transfer, Generate's arrays, landmarks from the shape alone.
Imports `core`, `template` and `model`."""
