"""ASM solver: the Adaptive Skinning Model in numpy/torch, in layers (core, template, model, rig, vision, fit,
worker; docs/architecture.md). Never imports bpy (tests/test_layers.py)."""
