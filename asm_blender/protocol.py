"""The extension's way to `asm_protocol`, what the Blender side and the solver agree on: inside the built extension
the package sits beside the add-on's modules (build.py copies it in); in a checkout it is the repository's own."""
try:
    from .asm_protocol import choices, keys, landmarks, settings, tasks, zips
except ImportError:  # a checkout: the repository's top-level package
    from asm_protocol import choices, keys, landmarks, settings, tasks, zips

__all__ = ["choices", "keys", "landmarks", "settings", "tasks", "zips"]
