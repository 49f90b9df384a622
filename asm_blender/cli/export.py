"""`export [FILE.blend] -o OUT.glb|OUT.gltf|OUT.fbx`: a rigged head exported for game engines."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..scene_io.exporters import export_fbx, export_glb
from ..scene_io.mesh import SceneInputError
from ..scene_io.rig import existing_rig
from .common import PYTHON_PROG, addon_registered, open_blend, report, rigged_heads, stdout_to_stderr
from .outputs import check_output, written_atomically

EXPORT_SUFFIXES = (".glb", ".gltf", ".fbx")


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} export") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Export a rigged head (mesh and ASM armature, skinned) for game engines: glTF with at "
                               "most 4 (or 8) normalised influences per vertex, or FBX.")
    parser.add_argument("blend", type=Path, nargs="?", help="the .blend (default: the file Blender has open)")
    parser.add_argument("--output", "-o", type=Path, required=True, help="OUT.glb, OUT.gltf (+ .bin) or OUT.fbx")
    parser.add_argument("--object", help="the rigged head to export when the file holds several")
    parser.add_argument("--influences", type=int, choices=(4, 8), default=4,
                        help="glTF: influences per vertex (4: one JOINTS/WEIGHTS set, what every engine reads)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    output = check_output(args.output, "--output", EXPORT_SUFFIXES, () if args.blend is None else (args.blend,))
    suffix = output.suffix.lower()
    started = time.perf_counter()
    with stdout_to_stderr(), addon_registered():
        source = open_blend(args.blend)
        heads = rigged_heads()
        names = [h.name for h in heads]
        if not heads:
            raise SceneInputError(f"{source} holds no ASM rig (generate one with the generate command)")
        if args.object is not None:
            heads = [h for h in heads if h.name == args.object]
            if not heads:
                raise SceneInputError(f"{source} has no rigged head named {args.object!r}; it has {names}")
        elif len(heads) > 1:
            raise SceneInputError(f"{source} holds {len(heads)} rigged heads {names}: choose one with --object")
        head = heads[0]
        with written_atomically(output) as temporary:
            if suffix == ".fbx":
                export_fbx(head, existing_rig(head), temporary)
            else:
                export_glb(head, existing_rig(head), temporary, args.influences)
        summary = {"file": source, "head": head.name, "output": str(output), "format": suffix[1:],
                   "influences": None if suffix == ".fbx" else args.influences,
                   "bytes": output.stat().st_size, "seconds": round(time.perf_counter() - started, 2)}
    return report(summary, args.json, f"exported {head.name!r} to {output}")
