"""python -m asm_blender ... (with the bpy module): the headless commands."""
import sys

from .cli import main

sys.exit(main())
