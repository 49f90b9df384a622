"""`fit MESH PHOTO... [-o OUT.blend]`: a head's rig (generated first when it has none) fitted to photos."""
from __future__ import annotations

import argparse
from pathlib import Path

import bpy

from .. import jobs
from ..flows.fit import fit_steps
from ..flows.generate import GenerateOptions
from ..flows.photos import collect_photos, detection_steps
from ..flows.steps import ProgressLog, run_to_completion
from ..protocol import choices
from ..scene_io.exporters import export_glb
from ..scene_io.importers import check_head_file, open_head
from ..scene_io.overlay import render_photo_overlay
from ..scene_io.rig import existing_rig
from .common import PYTHON_PROG, addon_registered, log, output_blend, report, save_blend, stdout_to_stderr
from .outputs import check_output, check_output_folder, written_atomically
from .generate import generated_rig, rig_arguments

GENERATE_SHARE = 0.1  # of the command's progress when the head gets its rig first (a few seconds of a fit's minute)


def execute(argv: list[str], prog: str = f"{PYTHON_PROG} fit") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fit a head's ASM rig (generated first when it has none) to photos of a person: one camera per "
                    "photo, the fitted rig and pose; saved as a .blend. Progress goes to stderr.")
    parser.add_argument("mesh", type=Path, help="a .blend (its active mesh, or --object) or a mesh file")
    parser.add_argument("photos", type=Path, nargs="+", help="photo files or folders of photos")
    parser.add_argument("--output", "-o", type=Path, help="the .blend to write (default: MESH's name + _fit.blend)")
    parser.add_argument("--object", help="the mesh object when the file holds several")
    parser.add_argument("--quality", choices=choices.QUALITIES, default=choices.DEFAULT_QUALITY,
                        help=f"how long the fit works: fast, balanced or best (default: {choices.DEFAULT_QUALITY})")
    rig_arguments(parser, for_a_head_without_one=True)
    parser.add_argument("--expressions", choices=choices.EXPRESSION_MODES, default=choices.DEFAULT_EXPRESSIONS,
                        help="shared (default): one pose for all photos; per_photo: each photo may show its own "
                             "expression (one Action per photo)")
    parser.add_argument("--same-lens", action="store_true",
                        help="the photos come from one camera and lens (their focal length over the photo's size is "
                             "shared; on by itself where every photo's EXIF names one camera, lens and focal length)")
    parser.add_argument("--no-texture", action="store_true",
                        help="landmarks only: leave out the last stage that compares patches of the face between the "
                             "photos (for photos without texture or with strongly different lighting)")
    parser.add_argument("--bake-identity", action="store_true",
                        help="make the fitted face the mesh's rest shape and bind the rig again on it (default: the "
                             "mesh keeps its shape and the fitted face is the armature's pose)")
    parser.add_argument("--glb", type=Path, help="also export the rigged head (mesh and armature only, skinned, at "
                                                 "most 4 influences per vertex) as this .glb")
    parser.add_argument("--overlays", type=Path, metavar="DIR",
                        help="also write each photo with the fitted head drawn over it through its camera "
                             "(DIR/<photo>_overlay.png)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    output = output_blend(args, "_fit")
    check_head_file(args.mesh)
    if args.glb is not None:
        args.glb = check_output(args.glb, "--glb", (".glb",), (args.mesh, output))
    if args.overlays is not None:
        args.overlays = check_output_folder(args.overlays, "--overlays")
    with stdout_to_stderr(), addon_registered():
        summary = _fit(args, output)
    errors = ", ".join(f"{e:.1f}" for e in summary["pixel_error_after"])
    exported = f" and {summary['glb']}" if summary.get("glb") else ""
    return report(summary, args.json, f"done: {len(summary['cameras'])} cameras, landmark error {errors} px, "
                                      f"identity {summary['identity']}; wrote {output}{exported}")


def _fit(args, output: Path) -> dict:
    photos = collect_photos(args.photos)  # before any work: a wrong path or a photo given twice fails at once
    with jobs.work_folder("asm_fit_") as workdir:
        # the faces in the photos before the rig: an unusable photo is refused in seconds, not after a Generate
        detections = run_to_completion(detection_steps(photos, workdir), report=lambda status: None)
        for note in detections["warnings"]:
            log(f"  note: {note}")
        if args.mesh.suffix.lower() != ".blend":
            bpy.ops.wm.read_homefile(use_empty=True)
        head, notes = open_head(args.mesh, args.object)
        arm = existing_rig(head)
        generated_first = arm is None
        if generated_first:
            log(f"{head.name!r} has no ASM rig: generating it first")
            generated = generated_rig(head, GenerateOptions(preset=args.preset, influence_cap=args.cap),
                                      (0.0, GENERATE_SHARE))
            notes += generated["notes"] + generated["warnings"]
            arm = existing_rig(head)
        head.asm.fit_quality, head.asm.expressions, head.asm.bake_identity = args.quality, args.expressions, \
            args.bake_identity
        head.asm.match_texture, head.asm.same_lens = not args.no_texture, args.same_lens
        fitting = fit_steps(arm, photos, args.quality, args.expressions, args.bake_identity, workdir,
                            match_texture=not args.no_texture, same_lens=args.same_lens, detections=detections)
        summary = run_to_completion(fitting, ProgressLog(span=(GENERATE_SHARE if generated_first else 0.0, 1.0)))
    save_blend(output)
    summary.update(blend=str(output), notes=notes)
    if args.glb is not None:
        with written_atomically(args.glb) as temporary:
            export_glb(head, arm, temporary)
        summary["glb"] = str(args.glb)
        log(f"exported {summary['glb']}")
    if args.overlays is not None:
        summary["overlays"] = _write_overlays(head, arm, summary, args.overlays)
    return summary


def _write_overlays(head, arm, summary: dict, folder: Path) -> list[str]:
    """Each photo with the fitted head (in the armature's current pose) drawn over it through its camera."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for camera_name, photo, error in zip(summary["cameras"], summary["photos"], summary["pixel_error_after"]):
        photo = Path(photo)
        label = f"{photo.name}: landmark error {error:.1f} px"
        written.append(str(render_photo_overlay(bpy.data.objects[camera_name], photo,
                                                folder / f"{photo.stem}_overlay.png", (head, arm), label)))
        log(f"wrote {written[-1]}")
    return written
