"""`expressions HEAD.blend [-o OUT.blend] [--shape-keys] [--glb OUT.glb]`: a rigged head's ARKit-52 pose library."""
from __future__ import annotations

import argparse
from pathlib import Path

import bpy

from ..flows.expressions import expression_steps, rig_for_expressions
from ..flows.steps import ProgressLog, run_to_completion
from ..protocol import choices
from ..scene_io.exporters import export_glb
from ..scene_io.mesh import SceneInputError
from .common import PYTHON_PROG, addon_registered, log, open_blend, report, rigged_heads, save_blend, stdout_to_stderr
from .outputs import check_output, written_atomically


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} expressions") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fit the 52 ARKit expressions (from the ICT-FaceKit, carried onto the head through its ASM chart) "
                    "as poses of a rigged head's armature: one Action per expression (a pose library), and with "
                    "--shape-keys also shape keys named as ARKit names them; saved as a .blend. Progress goes to "
                    "stderr.")
    parser.add_argument("mesh", type=Path, metavar="HEAD.blend", help="a .blend with a rigged head (see generate)")
    parser.add_argument("--output", "-o", type=Path,
                        help="the .blend to write (default: HEAD's name + _expressions.blend in the current folder)")
    parser.add_argument("--object", help="the head mesh (or its armature) when the file holds several rigged heads")
    parser.add_argument("--shape-keys", action="store_true",
                        help="also bake the expressions as shape keys (Basis + 52, ARKit's names): for iPhone face "
                             "capture (Live Link Face), VRChat, Unreal; the mesh's own shape keys stay")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=choices.ARKIT_NAMES,
                        help="only these ARKit expressions (default: all 52)")
    parser.add_argument("--glb", type=Path, help="also export the head (mesh and armature, skinned, with the shape "
                                                 "keys as morph targets when made) as this .glb")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    output = check_output(args.output or Path(f"{args.mesh.stem}_expressions.blend"), "--output", (".blend",),
                          (args.mesh,))
    if args.glb is not None:
        args.glb = check_output(args.glb, "--glb", (".glb",), (args.mesh, output))
    with stdout_to_stderr(), addon_registered():
        source = open_blend(args.mesh)
        head = _head(source, args.object)
        arm = rig_for_expressions(head)
        summary = run_to_completion(expression_steps(arm, args.shape_keys, tuple(args.only or ())), ProgressLog())
        save_blend(output)
        summary["blend"] = str(output)
        if args.glb is not None:
            with written_atomically(args.glb) as temporary:
                export_glb(bpy.data.objects[summary["mesh"]], bpy.data.objects[summary["armature"]], temporary)
            summary["glb"] = str(args.glb)
            log(f"exported {summary['glb']}")
    keys = f" and {len(summary['shape_keys'])} shape keys" if summary["shape_keys"] else ""
    exported = f" and {summary['glb']}" if summary.get("glb") else ""
    median = summary["median_residual"]
    return report(summary, args.json, f"done: {len(summary['actions'])} expression Actions{keys} on "
                                      f"{summary['mesh']!r}" + (f" (median residual {median:.0%})" if median is not None
                                                                else "") + f"; wrote {output}{exported}")


def _head(source: str, name: str | None):
    """The head to work on: --object (a mesh, or an ASM armature), else the file's only rigged head."""
    if name is not None:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise SceneInputError(f"{source} has no object named {name!r}; its rigged heads: "
                                  f"{[h.name for h in rigged_heads()]}")
        return obj
    heads = rigged_heads()
    if not heads:
        raise SceneInputError(f"{source} holds no ASM rig: run the generate command first (or Generate Rig in "
                              "Blender), then make the expressions")
    if len(heads) > 1:
        raise SceneInputError(f"{source} holds {len(heads)} rigged heads {[h.name for h in heads]}: choose one with "
                              "--object")
    return heads[0]
