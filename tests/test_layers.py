"""The layers of the house (docs/architecture.md), checked on every import statement of the three packages, those
inside functions included (an import placed in a function still makes a cycle, it only hides it):

- `asm_protocol` imports only numpy and the standard library;
- `solver` never imports Blender (bpy, mathutils, bmesh) nor the extension;
- `asm_blender` never imports the solver, torch or the worker's other packages: it reaches the solver only through
  job folders (asm_blender.jobs) and `asm_protocol`;
- inside each package, a layer imports only layers below it (LAYERS);
- no module imports itself back through others (no cycles).

Hand-written with `ast` rather than import-linter: these rules fit in this file and need no extra dependency in
each of the test environments.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("asm_protocol", "solver", "asm_blender")
BLENDER_MODULES = ("bpy", "mathutils", "bmesh", "bpy_extras", "addon_utils", "bl_ui", "bl_operators")
WORKER_ONLY = ("torch", "scipy", "cv2", "ai_edge_litert", "mediapipe", "PIL", "matplotlib", "solver")
# Rank of each layer: a module may import modules of a lower rank, or of its own layer (a layer is a package's
# folder; modules of one folder form one layer). The first matching prefix decides.
LAYERS = {
    "asm_protocol": 0,
    "solver.core": 1, "solver.template": 2, "solver.model": 3, "solver.rig": 4, "solver.vision": 5,
    "solver.fit": 6, "solver.worker": 7, "solver": 8,
    "asm_blender.protocol": 0.5, "asm_blender.jobs": 1, "asm_blender.scene_io": 1, "asm_blender.flows": 2,
    "asm_blender.properties": 3, "asm_blender.operators": 3, "asm_blender.panels": 4, "asm_blender.registration": 5,
    "asm_blender.cli": 6, "asm_blender": 7, "asm_blender.__main__": 8,
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = module_files()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved from `module`)."""
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """Every module `module` imports, anywhere in its file: the project's own modules by full name (`from x import
    y` names the module x.y when there is one), others by their top-level name."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target.startswith("asm_blender.asm_protocol"):  # the built extension's copy (asm_blender/protocol.py)
                target = target[len("asm_blender."):]
            if target.split(".")[0] in PACKAGES:
                while target not in MODULES and "." in target:  # `import solver.core.geometry as g` and the like
                    target = target.rsplit(".", 1)[0]
                names.add(target)
            else:
                names.add(target.split(".")[0])
    names.discard(module)
    return names


GRAPH = {module: imports_of(module) for module in MODULES}


def layer(module: str) -> tuple[str, int]:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return prefix, LAYERS[prefix]


def test_every_module_has_a_layer():
    assert all(layer(module) for module in MODULES)


def test_the_protocol_needs_only_numpy_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"numpy", "asm_protocol"}
    offenders = {m: sorted(i for i in GRAPH[m] if i.split(".")[0] not in allowed) for m in MODULES
                 if m.startswith("asm_protocol")}
    assert not any(offenders.values()), offenders


def test_the_solver_never_imports_blender_or_the_extension():
    offenders = {m: sorted(i for i in GRAPH[m] if i.split(".")[0] in BLENDER_MODULES + ("asm_blender",))
                 for m in MODULES if m.startswith("solver")}
    assert not any(offenders.values()), offenders


def test_the_extension_never_imports_the_solver_or_torch():
    offenders = {m: sorted(i for i in GRAPH[m] if i.split(".")[0] in WORKER_ONLY) for m in MODULES
                 if m.startswith("asm_blender")}
    assert not any(offenders.values()), offenders


def test_layers_import_only_downward():
    upward = []
    for module, imported in GRAPH.items():
        own_layer, rank = layer(module)
        for target in imported:
            if target in MODULES:
                target_layer, target_rank = layer(target)
                if target_rank > rank or (target_rank == rank and target_layer != own_layer):
                    upward.append(f"{module} ({own_layer}) imports {target} ({target_layer})")
    assert upward == []


def test_no_import_cycles():
    """Tarjan's strongly connected components over the project's modules: any component of two or more is a cycle."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(t for t in GRAPH[node] if t in MODULES):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_rules_see_a_function_level_import(tmp_path):
    """The checker itself: an import inside a function counts (the cycles the layout removed were hidden so)."""
    source = "def f():\n    from ..fit import engine\n    import bpy\n"
    tree = ast.parse(source)
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert _resolve("solver.model.asm_model", node) == "solver.fit"
    assert any(isinstance(n, ast.Import) and n.names[0].name == "bpy" for n in ast.walk(tree))


@pytest.mark.parametrize("package", ["solver", "asm_protocol"])
def test_importing_every_module_loads_no_blender_module(package):
    modules = sorted(m for m in MODULES if m.split(".")[0] == package and not m.endswith("__main__"))
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "bad = [m for m in ('bpy', 'mathutils', 'bmesh') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)\n")
    completed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr
