"""ASM solver: the Adaptive Skinning Model in numpy/torch. Never imports bpy (see tests/solver/test_no_bpy.py)."""
