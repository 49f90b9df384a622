"""The solver never imports Blender: it must run in a plain Python with torch."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SOLVER = Path(__file__).resolve().parents[2] / "solver"


def test_no_bpy_import_in_source():
    pattern = re.compile(r"^\s*(import|from)\s+(bpy|mathutils|bmesh|bpy_extras)\b", re.MULTILINE)
    offenders = [p.name for p in SOLVER.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_importing_every_solver_module_loads_no_blender_module():
    modules = sorted(f"solver.{p.stem}" for p in SOLVER.glob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = [m for m in ('bpy', 'mathutils', 'bmesh') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=SOLVER.parent, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
