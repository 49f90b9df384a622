"""`generate MESH [-o OUT.blend]`: an ASM rig generated on a head mesh and saved as a .blend."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import bpy

from .. import jobs
from ..flows.generate import GenerateOptions, generate_steps
from ..flows.steps import ProgressLog, run_to_completion
from ..protocol import choices, tasks
from ..scene_io.importers import check_head_file, open_head
from ..scene_io.mesh import SceneInputError
from .common import PYTHON_PROG, addon_registered, log, output_blend, report, save_blend, stdout_to_stderr


def rig_arguments(parser: argparse.ArgumentParser, for_a_head_without_one: bool = False) -> None:
    """--preset and --cap, as generate and fit take them."""
    extra = "; for a head without a rig" if for_a_head_without_one else ""
    parser.add_argument("--preset", choices=choices.PRESETS, default=choices.DEFAULT_PRESET,
                        help=f"the skeleton: full (83 bones), standard (52) or game (24); default "
                             f"{choices.DEFAULT_PRESET}{extra}")
    parser.add_argument("--cap", type=int, choices=choices.INFLUENCE_CAPS, default=choices.DEFAULT_INFLUENCE_CAP,
                        help=f"influences per vertex (default {choices.DEFAULT_INFLUENCE_CAP}){extra}")


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} generate") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate an ASM face rig on a head mesh and save it as a .blend. Progress goes to stderr.")
    parser.add_argument("mesh", type=Path, help="a .blend (its active mesh, or --object) or a .obj/.ply/.glb/.gltf/.fbx")
    parser.add_argument("--output", "-o", type=Path, help="the .blend to write (default: MESH's name + _asm.blend "
                                                          "in the current folder; the input is never overwritten)")
    parser.add_argument("--object", help="the mesh object to rig when the file holds several")
    rig_arguments(parser)
    parser.add_argument("--gaussians", type=int, default=choices.DEFAULT_GAUSSIANS_PER_BONE,
                        choices=choices.GAUSSIANS_PER_BONE,
                        metavar=f"{choices.GAUSSIANS_PER_BONE[0]}-{choices.GAUSSIANS_PER_BONE[-1]}",
                        help=f"Gaussians per bone (default {choices.DEFAULT_GAUSSIANS_PER_BONE})")
    parser.add_argument("--face-direction", default=choices.AUTO_DIRECTION,
                        choices=(choices.AUTO_DIRECTION, *choices.FACE_DIRECTIONS),
                        help="world axis the face looks along (default: found from renders)")
    parser.add_argument("--geometry-fallback", action="store_true",
                        help="when no face is detected, place the landmarks from the mesh's shape instead of failing")
    parser.add_argument("--detect-again", action="store_true",
                        help="ignore landmark markers stored with the head and detect anew")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    output = output_blend(args, "_asm")
    check_head_file(args.mesh)
    with stdout_to_stderr(), addon_registered():
        summary = _generate(args, output)
    return report(summary, args.json,
                  f"done: {summary['bones']} bones on {summary['mesh']!r}, {summary['seconds']} s; wrote {output}")


def generated_rig(head, options: GenerateOptions, progress_span: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Generate the rig on `head` in a temporary work folder; the flow's summary. The solver's refusals name the
    head. progress_span: the part of the command's progress that the Generate is."""
    with jobs.work_folder("asm_generate_") as workdir:
        try:
            return run_to_completion(generate_steps(head, options, workdir), ProgressLog(span=progress_span))
        except jobs.JobError as error:
            if error.kind != tasks.INPUT_ERROR:
                raise
            raise SceneInputError(f"{head.name!r}: {error}") from None


def _generate(args, output: Path) -> dict:
    started = time.perf_counter()
    jobs.warm_worker()  # the solver loads torch and the face models while the mesh is read
    if args.mesh.suffix.lower() != ".blend":
        bpy.ops.wm.read_homefile(use_empty=True)
    log(f"opening {args.mesh}")
    head, notes = open_head(args.mesh, args.object)
    for note in notes:
        log(f"  note: {note}")
    options = GenerateOptions(preset=args.preset, influence_cap=args.cap, gaussians_per_bone=args.gaussians,
                              face_direction=args.face_direction, detect_again=args.detect_again,
                              geometry_fallback=args.geometry_fallback)
    summary = generated_rig(head, options)
    for line in summary["notes"] + summary["warnings"]:
        log(f"  note: {line}")
    head.asm.preset, head.asm.influence_cap = args.preset, str(args.cap)
    head.asm.gaussians_per_bone, head.asm.face_direction = args.gaussians, args.face_direction
    head.asm.geometry_fallback = args.geometry_fallback
    head.asm.summary = json.dumps(summary)
    save_blend(output)
    summary.update(blend=str(output), input=str(args.mesh), notes=notes + summary["notes"],
                   seconds=round(time.perf_counter() - started, 2))
    return summary
