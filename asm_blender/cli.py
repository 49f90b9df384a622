"""Headless commands. Each command is a plain function `(argv, prog) -> exit code` so tests can call it directly;
the same commands run as `python -m asm_blender ...` (the bpy module) and as `blender -b [FILE.blend] -c asm ...`
(registered with bpy.utils.register_cli_command when the add-on is enabled, see `blender_command`).

    python -m asm_blender generate MESH [-o OUT.blend] [--object NAME] [--preset full|game] [--cap 4|8] [--json]
    python -m asm_blender fit MESH PHOTO... [-o OUT.blend] [--quality fast|balanced|best]
                              [--expressions per_photo|shared] [--bake-identity] [--glb OUT.glb] [--json]
    python -m asm_blender export [FILE.blend] -o OUT.glb|OUT.gltf|OUT.fbx [--object HEAD] [--influences 4|8] [--json]
    python -m asm_blender info [FILE.blend] [--json]
    python -m asm_blender sample [--output DIR] [--preset full|game] [--cap 4|8] [--fit fast|balanced|best|none]
                                 (a checkout only: the samples are not in the extension)

export and info read FILE.blend, or the file Blender has open (`blender -b FILE.blend -c asm info`).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PYTHON_PROG = "python -m asm_blender"
BLENDER_PROG = "blender -b [FILE.blend] -c asm"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "samples" / "makehuman_head"
SAMPLE_MESH = SAMPLE_DIR / "base_head.obj"
SCAN_DIR = Path(__file__).resolve().parents[1] / "samples" / "fran_scan"
SCAN_MESH = SCAN_DIR / "fran_cut.obj"
ERROR_LIMIT_MM = 4.0  # the error colours saturate here


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library handle on this platform: nothing buffered to lose
        pass


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptor 1 (Blender's own C-level messages included) to stderr,
    so that stdout carries only the command's result (e.g. the --json summary)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        _flush_c_stdio()  # Blender's reports sit in the C library's buffer until flushed
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def addon_registered():
    """The add-on's classes and properties registered for the command (and unregistered after: a process that
    exits with classes registered can hang), unless something registered them before."""
    import bpy

    from . import register, unregister

    if hasattr(bpy.types.Object, "asm"):
        yield
        return
    register()
    try:
        yield
    finally:
        unregister()


def _report(summary: dict, as_json: bool, done: str) -> int:
    """A command's result: the JSON summary on stdout with --json, else one line on stderr."""
    if as_json:
        print(json.dumps(summary, indent=1), flush=True)
    else:
        _log(done)
    return 0


def run_sample(argv: list[str], prog: str = f"{PYTHON_PROG} sample") -> int:
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Build the ASM rig on the bundled sample head and show it posed.")
    parser.add_argument("--output", "-o", type=Path, default=Path("out"), help="output folder (default: out)")
    parser.add_argument("--preset", choices=("full", "standard", "game"), default="full")
    parser.add_argument("--cap", type=int, choices=(4, 8), default=4, help="influences per vertex")
    parser.add_argument("--fit", choices=("fast", "balanced", "best", "none"), default="fast",
                        help="fit the rig to the bundled Fran scan and to the bundled photos of Lee Perry-Smith at "
                             "this quality (none: skip; default: fast)")
    parser.add_argument("--skip-photos", action="store_true",
                        help="leave out the photo fit (it needs the worker's OpenCV and MediaPipe)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.output.mkdir(parents=True, exist_ok=True)
    with stdout_to_stderr(), addon_registered():  # registered: the bones get their editable ASM parameters
        summary = _build_sample(args, started)
    return _report(summary, args.json,
                   f"done: {summary['bones']} bones, {summary['vertex_groups']} vertex groups, {summary['seconds']} s")


def _build_sample(args, started: float) -> dict:
    import bpy

    from solver.landmarks import load_landmarks

    from . import jobs
    from .scene_io import armature as armature_io
    from .scene_io.mesh import mesh_arrays
    from .scene_io.preview import write_weight_preview
    from .scene_io.rig import apply_rig
    from .scene_io.sample import import_obj
    from .scene_io.views import render_views, tile_images

    bpy.ops.wm.read_homefile(use_empty=True)
    _log(f"importing {SAMPLE_MESH.name}")
    head = import_obj(SAMPLE_MESH)
    head.name = "Head"
    arrays = mesh_arrays(head)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    _log(f"generating the {args.preset} rig ({int(valid.sum())} landmarks, {len(arrays.vertices)} vertices)")
    result = jobs.run_blocking("generate", {"preset": args.preset, "influence_cap": args.cap}, {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": landmarks, "landmark_valid": valid})
    for warning in result["warnings"]:
        _log(f"  note: {warning}")
    arm = apply_rig(head, result, name="Head_ASM")
    names = [str(n) for n in result["names"]]
    with tempfile.TemporaryDirectory() as tmp:
        columns = []
        for p, pose_name in enumerate(result["pose_names"]):
            armature_io.set_pose(arm, names, result["pose_log_scale"][p], result["pose_rotvec"][p],
                                 result["pose_translation"][p])
            views = render_views(head, Path(tmp) / f"pose{p}", yaw_degrees=(0.0, 35.0), size=384,
                                 extra_objects=(arm,), label=str(pose_name))
            columns.append([v.image_path for v in views])
        armature_io.set_pose(arm, names, *(np.zeros((len(names), 3)) for _ in range(3)))
        write_weight_preview(head, armature_io.read_weights(head, names), int(result["remainder_bone"]))
        weights_views = render_views(head, Path(tmp) / "weights", yaw_degrees=(0.0, 35.0), size=384,
                                     extra_objects=(arm,), label="weights", colour_attribute=True)
        columns.append([v.image_path for v in weights_views])
        picture = tile_images([list(row) for row in zip(*columns)], (args.output / "sample_rig_poses.png").resolve())
    _log(f"wrote {picture}")
    fitted = None if args.fit == "none" else _fit_sample_to_scan(args, head, arrays, landmarks, valid)
    photo_fit = None
    if args.fit != "none" and not args.skip_photos:
        from .sample_photo_fit import fit_sample_to_photos

        photo_fit = fit_sample_to_photos(args.output, SAMPLE_MESH, head, arrays, landmarks, valid, args.preset, args.cap,
                                         args.fit, _log)
    blend_path = (args.output / "sample_rig.blend").resolve()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend_path))
    _log(f"wrote {blend_path}")
    summary = {
        "blend": str(blend_path), "picture": str(picture), "bones": len(names),
        "vertex_groups": len(head.get(armature_io.GROUPS_PROPERTY, [])), "vertices": len(arrays.vertices),
        "landmarks": int(valid.sum()), "preset": args.preset, "influence_cap": args.cap,
        "warnings": result["warnings"], "seconds": round(time.perf_counter() - started, 2),
    }
    if fitted is not None:
        summary["fit"] = fitted
    if photo_fit is not None:
        summary["photo_fit"] = photo_fit
    return summary


def _fit_sample_to_scan(args, head, arrays, landmarks, valid) -> dict:
    """Fit the sample rig to the bundled Fran scan in the worker, write the fitted rig onto a second copy of
    the head (beside the first) with the scan aligned onto it, and picture the error before and after."""
    from mathutils import Matrix

    from solver.landmarks import load_landmarks

    from . import jobs
    from .scene_io import armature as armature_io
    from .scene_io.mesh import mesh_arrays
    from .scene_io.preview import write_error_colours
    from .scene_io.rig import apply_rig
    from .scene_io.sample import import_obj
    from .scene_io.views import render_views, tile_images

    scan = import_obj(SCAN_MESH)
    scan.name = "Fran scan"
    scan_arrays = mesh_arrays(scan)
    scan_landmarks, scan_valid = load_landmarks(SCAN_DIR / "landmarks.json")
    _log(f"fitting the rig to {SCAN_MESH.name} ({len(scan_arrays.vertices)} vertices, quality {args.fit})")
    result = jobs.run_blocking("fit_scan", {"generate": {"preset": args.preset, "influence_cap": args.cap},
                                            "fit": {"quality": args.fit}}, {
        "vertices": arrays.vertices, "triangles": arrays.triangles, "corner_uv": arrays.corner_uv,
        "landmarks": landmarks, "landmark_valid": valid, "scan_vertices": scan_arrays.vertices,
        "scan_triangles": scan_arrays.triangles, "scan_landmarks": scan_landmarks, "scan_landmark_valid": scan_valid})
    for warning in result["warnings"]:
        _log(f"  note: {warning}")
    # The fitted copy stands beside the sample, one and a half head widths to its left.
    world = np.array(head.matrix_world)
    width = float(np.ptp(arrays.vertices @ world[:3, :3].T[:, 0]))
    offset = Matrix.Translation((1.5 * width, 0.0, 0.0))
    fitted_head = import_obj(SAMPLE_MESH)
    fitted_head.name = "Head fitted to scan"
    fitted_head.matrix_world = offset @ head.matrix_world
    arm = apply_rig(fitted_head, result, name="Head fitted to scan_ASM")
    names = [str(n) for n in result["names"]]
    armature_io.set_pose(arm, names, result["fit_log_scale"], result["fit_rotvec"], result["fit_translation"])
    exactness = float(np.abs(armature_io.evaluated_vertices(fitted_head) - result["fit_vertices"]).max())
    to_head = np.eye(4)
    to_head[:3, :3] = float(result["alignment_scale"]) * result["alignment_rotation"]
    to_head[:3, 3] = result["alignment_translation"]
    scan.matrix_world = fitted_head.matrix_world @ Matrix([list(r) for r in to_head])
    in_crop = result["in_crop"].astype(bool)
    mm = {k: result[k] * 1000.0 for k in ("error_before", "error_after")}  # the scan is in metres
    rms = {k: float(np.sqrt((v[in_crop] ** 2).mean())) for k, v in mm.items()}
    with tempfile.TemporaryDirectory() as tmp:
        columns = []
        for key, title in (("error_before", "unfitted"), ("error_after", "fitted")):
            write_error_colours(scan, mm[key], ERROR_LIMIT_MM)
            label = f"scan to {title} rig: RMS {rms[key]:.2f} mm (blue 0, red {ERROR_LIMIT_MM:g}+ mm)"
            views = render_views(scan, Path(tmp) / key, yaw_degrees=(0.0, 35.0), size=384, label=label,
                                 colour_attribute=True)
            columns.append([v.image_path for v in views])
        write_error_colours(scan, mm["error_after"], ERROR_LIMIT_MM)  # what the saved file shows
        views = render_views(fitted_head, Path(tmp) / "fitted", yaw_degrees=(0.0, 35.0), size=384, extra_objects=(arm,),
                             label="fitted rig (pose + weights + bindings)")
        columns.append([v.image_path for v in views])
        picture = tile_images([list(row) for row in zip(*columns)], (args.output / "sample_fit.png").resolve())
    _log(f"scan RMS within {result['in_crop'].sum()} cropped scan vertices: {rms['error_before']:.2f} mm unfitted, "
         f"{rms['error_after']:.2f} mm fitted ({float(result['seconds']):.0f} s); wrote {picture}")
    return {"scan": SCAN_MESH.name, "quality": args.fit, "rms_before_mm": round(rms["error_before"], 3),
            "rms_after_mm": round(rms["error_after"], 3), "cropped_scan_vertices": int(in_crop.sum()),
            "face_triangles_turned_over_60_degrees": round(float(result["turned"]), 4),
            "seconds": round(float(result["seconds"]), 1), "picture": str(picture),
            "blender_vs_solver_max_difference": exactness, "notes": result["warnings"]}


def _output_blend(args, default_suffix: str) -> Path:
    """The .blend a command writes: --output, else the input's name + `default_suffix` in the current folder;
    never the input itself."""
    from .scene_io.mesh import SceneInputError

    output = (args.output or Path(f"{args.mesh.stem}{default_suffix}.blend")).resolve()
    if output.suffix.lower() != ".blend":
        raise SceneInputError(f"--output {output.name}: the rig is saved as a .blend")
    if args.mesh.exists() and output == args.mesh.resolve():
        raise SceneInputError(f"--output {output.name} is the input file; choose another name (the input is kept)")
    return output


def run_generate(argv: list[str], prog: str = f"{PYTHON_PROG} generate") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Generate an ASM face rig on a head mesh and save it as a .blend. Progress goes to stderr.")
    parser.add_argument("mesh", type=Path, help="a .blend (its active mesh, or --object) or a .obj/.ply/.glb/.gltf/.fbx")
    parser.add_argument("--output", "-o", type=Path, help="the .blend to write (default: MESH's name + _asm.blend "
                                                          "in the current folder; the input is never overwritten)")
    parser.add_argument("--object", help="the mesh object to rig when the file holds several")
    parser.add_argument("--preset", choices=("full", "standard", "game"), default="full")
    parser.add_argument("--cap", type=int, choices=(4, 8), default=4, help="influences per vertex")
    parser.add_argument("--gaussians", type=int, default=3, choices=range(1, 7), metavar="1-6",
                        help="Gaussians per bone (default 3)")
    parser.add_argument("--face-direction", default="AUTO", choices=("AUTO", "-Y", "+Y", "-X", "+X"),
                        help="world axis the face looks along (default: found from renders)")
    parser.add_argument("--geometry-fallback", action="store_true",
                        help="when no face is detected, place the landmarks from the mesh's shape instead of failing")
    parser.add_argument("--detect-again", action="store_true",
                        help="ignore landmark markers stored with the head and detect anew")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    output = _output_blend(args, "_asm")
    with stdout_to_stderr(), addon_registered():
        summary = _generate(args, output)
    return _report(summary, args.json,
                   f"done: {summary['bones']} bones on {summary['mesh']!r}, {summary['seconds']} s; wrote {output}")


def _generate(args, output: Path) -> dict:
    import bpy

    from . import jobs
    from .generate_flow import GenerateOptions, generate_steps, run_to_completion
    from .scene_io.importers import open_head

    started = time.perf_counter()
    jobs.warm_worker()  # the solver loads torch and MediaPipe while the mesh is read
    if args.mesh.suffix.lower() != ".blend":
        bpy.ops.wm.read_homefile(use_empty=True)
    _log(f"opening {args.mesh}")
    head, notes = open_head(args.mesh, args.object)
    for note in notes:
        _log(f"  note: {note}")
    options = GenerateOptions(preset=args.preset, influence_cap=args.cap, gaussians_per_bone=args.gaussians,
                              face_direction=args.face_direction, detect_again=args.detect_again,
                              geometry_fallback=args.geometry_fallback)
    with tempfile.TemporaryDirectory(prefix="asm_generate_") as workdir:
        summary = run_to_completion(generate_steps(head, options, Path(workdir)))
    for line in summary["notes"] + summary["warnings"]:
        _log(f"  note: {line}")
    head.asm.preset, head.asm.influence_cap = args.preset, str(args.cap)
    head.asm.gaussians_per_bone, head.asm.face_direction = args.gaussians, args.face_direction
    head.asm.geometry_fallback = args.geometry_fallback
    head.asm.summary = json.dumps(summary)
    output.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(output))
    summary.update(blend=str(output), input=str(args.mesh), notes=notes + summary["notes"],
                   seconds=round(time.perf_counter() - started, 2))
    return summary


def run_fit(argv: list[str], prog: str = f"{PYTHON_PROG} fit") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fit a head's ASM rig (generated first when it has none) to photos of a person: one camera per "
                    "photo, the fitted rig and pose; saved as a .blend. Progress goes to stderr.")
    parser.add_argument("mesh", type=Path, help="a .blend (its active mesh, or --object) or a mesh file")
    parser.add_argument("photos", type=Path, nargs="+", help="photo files or folders of photos")
    parser.add_argument("--output", "-o", type=Path, help="the .blend to write (default: MESH's name + _fit.blend)")
    parser.add_argument("--object", help="the mesh object when the file holds several")
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="balanced")
    parser.add_argument("--preset", choices=("full", "standard", "game"), default="full", help="for a head without a rig")
    parser.add_argument("--cap", type=int, choices=(4, 8), default=4, help="for a head without a rig")
    parser.add_argument("--expressions", choices=("per_photo", "shared"), default="per_photo",
                        help="per_photo (default): each photo may show its own expression (one Action per photo); "
                             "shared: one pose for all photos")
    parser.add_argument("--same-lens", action="store_true",
                        help="the photos come from one camera and lens (their focal length over the photo's size is "
                             "shared)")
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
    output = _output_blend(args, "_fit")
    if args.glb is not None and args.glb.suffix.lower() != ".glb":
        from .scene_io.mesh import SceneInputError

        raise SceneInputError(f"--glb {args.glb.name}: the export is a binary glTF; name it .glb")
    with stdout_to_stderr(), addon_registered():
        summary = _fit(args, output)
    errors = ", ".join(f"{e:.1f}" for e in summary["pixel_error_after"])
    exported = f" and {summary['glb']}" if summary.get("glb") else ""
    return _report(summary, args.json, f"done: {len(summary['cameras'])} cameras, landmark error {errors} px, "
                                       f"identity {summary['identity']}; wrote {output}{exported}")


def _fit(args, output: Path) -> dict:
    import bpy

    from . import jobs
    from .fit_flow import collect_photos, fit_steps
    from .generate_flow import GenerateOptions, generate_steps, run_to_completion
    from .scene_io.importers import open_head
    from .scene_io.rig import existing_rig

    photos = collect_photos(args.photos)  # before any work: a wrong path fails at once
    jobs.warm_worker()  # the solver loads torch and MediaPipe while the mesh is read
    if args.mesh.suffix.lower() != ".blend":
        bpy.ops.wm.read_homefile(use_empty=True)
    head, notes = open_head(args.mesh, args.object)
    arm = existing_rig(head)
    if arm is None:
        _log(f"{head.name!r} has no ASM rig: generating it first")
        with tempfile.TemporaryDirectory(prefix="asm_generate_") as workdir:
            generated = run_to_completion(generate_steps(head, GenerateOptions(preset=args.preset,
                                                                                influence_cap=args.cap), Path(workdir)))
        notes += generated["notes"] + generated["warnings"]
        arm = existing_rig(head)
    head.asm.fit_quality, head.asm.expressions, head.asm.bake_identity = args.quality, args.expressions, \
        args.bake_identity
    head.asm.match_texture, head.asm.same_lens = not args.no_texture, args.same_lens
    with tempfile.TemporaryDirectory(prefix="asm_fit_") as workdir:
        summary = run_to_completion(fit_steps(arm, photos, args.quality, args.expressions, args.bake_identity,
                                              Path(workdir), match_texture=not args.no_texture,
                                              same_lens=args.same_lens))
    output.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(output))
    summary.update(blend=str(output), notes=notes)
    if args.glb is not None:
        summary["glb"] = str(_export_glb(head, arm, args.glb.resolve()))
        _log(f"exported {summary['glb']}")
    if args.overlays is not None:
        summary["overlays"] = _write_overlays(head, arm, summary, args.overlays.resolve())
    return summary


def _write_overlays(head, arm, summary: dict, folder: Path) -> list[str]:
    """Each photo with the fitted head (in the armature's current pose) drawn over it through its camera."""
    import bpy

    from .scene_io.overlay import render_photo_overlay

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for camera_name, photo, error in zip(summary["cameras"], summary["photos"], summary["pixel_error_after"]):
        photo = Path(photo)
        label = f"{photo.name}: landmark error {error:.1f} px"
        written.append(str(render_photo_overlay(bpy.data.objects[camera_name], photo,
                                                folder / f"{photo.stem}_overlay.png", (head, arm), label)))
        _log(f"wrote {written[-1]}")
    return written


def _select_only(objects) -> None:
    import bpy

    view_layer = bpy.context.view_layer
    for obj in view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.hide_set(False)
        obj.select_set(True)
    view_layer.objects.active = objects[0]


def _export_glb(head, arm, path: Path, influences: int = 4) -> Path:
    """The rigged head alone (mesh and armature, skinned, at most `influences` (4 or 8) influences per vertex,
    weights normalised by the exporter) as glTF (.glb binary or .gltf with its .bin) that shows the fitted face: the
    armature's current pose (the fitted identity, when it was not baked) is the skeleton's pose in the file. No
    animations (the photos' expressions stay in the .blend)."""
    import bpy

    from .scene_io.mesh import SceneInputError

    _select_only((head, arm))
    path.parent.mkdir(parents=True, exist_ok=True)
    finished = bpy.ops.export_scene.gltf(
        filepath=str(path), export_format='GLB' if path.suffix.lower() == ".glb" else 'GLTF_SEPARATE',
        use_selection=True, export_skins=True, export_influence_nb=influences, export_all_influences=False,
        export_rest_position_armature=False, export_animations=False)
    if finished != {'FINISHED'} or not path.is_file():
        raise SceneInputError(f"the glTF export to {path} did not finish")
    return path


def _export_fbx(head, arm, path: Path) -> Path:
    """The rigged head alone as FBX (mesh, armature and every vertex group; FBX keeps all influences, so the cap
    stays the rig's own), for engines that take FBX: no leaf bones, deform bones only, the armature's current pose
    as the rest of the file's scene. Units as Blender writes them (1 unit = 1 m)."""
    import addon_utils
    import bpy

    from .scene_io.mesh import SceneInputError

    addon_utils.enable("io_scene_fbx", default_set=False)
    _select_only((head, arm))
    path.parent.mkdir(parents=True, exist_ok=True)
    finished = bpy.ops.export_scene.fbx(filepath=str(path), use_selection=True, object_types={'ARMATURE', 'MESH'},
                                        add_leaf_bones=False, use_armature_deform_only=True, bake_anim=False)
    if finished != {'FINISHED'} or not path.is_file():
        raise SceneInputError(f"the FBX export to {path} did not finish")
    return path


def _open_blend(path: Path | None) -> str:
    """Open `path` (a .blend) unless it is None (then the file Blender has open is used); its name for messages."""
    import bpy

    from .scene_io.mesh import SceneInputError

    if path is None:
        return bpy.data.filepath or "the open file"
    if not path.is_file():
        raise SceneInputError(f"file not found: {path}")
    if path.suffix.lower() != ".blend":
        raise SceneInputError(f"{path.name}: give a .blend (rig a mesh file with the generate command first)")
    bpy.ops.wm.open_mainfile(filepath=str(path))
    return str(path)


def rigged_heads() -> list:
    """The mesh objects of the open file that an ASM rig deforms, by name."""
    import bpy

    from .scene_io.rig import existing_rig

    return sorted((o for o in bpy.data.objects if o.type == 'MESH' and existing_rig(o) is not None),
                  key=lambda o: o.name)


def head_info(head) -> dict:
    """A rigged head's summary: its armature, bones, vertices, influences, landmarks and fit."""
    from .scene_io import armature as armature_io
    from .scene_io.markers import find_markers
    from .scene_io.rig import RIG_PROPERTY, existing_rig

    arm = existing_rig(head)
    record = json.loads(arm[RIG_PROPERTY])
    names = record["names"]
    weights = armature_io.read_weights(head, names)
    influences = (weights > 0).sum(axis=1)
    fit = json.loads(head.asm.fit_summary) if hasattr(head, "asm") and head.asm.fit_summary else {}
    markers = find_markers(head)
    return {
        "head": head.name, "armature": arm.name, "bones": len(arm.data.bones),
        "deforming_bones": int(np.sum(record["deform"])), "vertices": len(head.data.vertices),
        "vertex_groups": len(head.get(armature_io.GROUPS_PROPERTY, [])),
        "max_influences": int(influences.max()) if len(influences) else 0,
        "unweighted_vertices": int((influences == 0).sum()),
        "preset": head.asm.preset if hasattr(head, "asm") else None,
        "influence_cap": int(head.asm.influence_cap) if hasattr(head, "asm") else None,
        "landmark_markers": markers.name if markers is not None else None,
        "photos": [p.filepath for p in head.asm.photos] if hasattr(head, "asm") else [],
        "fitted": bool(fit), "fit_cameras": fit.get("cameras", []),
    }


def run_info(argv: list[str], prog: str = f"{PYTHON_PROG} info") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="List the ASM rigs in a .blend: each rigged head, its armature, bones, vertex groups, "
                               "influences per vertex, landmarks and photo fit.")
    parser.add_argument("blend", type=Path, nargs="?", help="the .blend (default: the file Blender has open)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    args = parser.parse_args(argv)
    with stdout_to_stderr(), addon_registered():
        source = _open_blend(args.blend)
        heads = [head_info(head) for head in rigged_heads()]
    summary = {"file": source, "rigs": heads}
    if args.json:
        print(json.dumps(summary, indent=1), flush=True)
        return 0
    if not heads:
        _log(f"{source}: no ASM rig (generate one with the generate command)")
    for item in heads:
        _log(f"{item['head']}: armature {item['armature']!r}, {item['bones']} bones ({item['deforming_bones']} "
             f"deforming), {item['vertices']} vertices, at most {item['max_influences']} influences per vertex, "
             f"preset {item['preset']}, {'fitted to ' + str(len(item['fit_cameras'])) + ' photos' if item['fitted'] else 'not fitted'}")
    return 0


EXPORT_SUFFIXES = (".glb", ".gltf", ".fbx")


def run_export(argv: list[str], prog: str = f"{PYTHON_PROG} export") -> int:
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
    from .scene_io.mesh import SceneInputError

    suffix = args.output.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise SceneInputError(f"--output {args.output.name}: use one of {', '.join(EXPORT_SUFFIXES)}")
    started = time.perf_counter()
    with stdout_to_stderr(), addon_registered():
        from .scene_io.rig import existing_rig

        source = _open_blend(args.blend)
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
        output = args.output.resolve()
        if suffix == ".fbx":
            _export_fbx(head, existing_rig(head), output)
        else:
            _export_glb(head, existing_rig(head), output, args.influences)
        summary = {"file": source, "head": head.name, "output": str(output), "format": suffix[1:],
                   "influences": None if suffix == ".fbx" else args.influences,
                   "bytes": output.stat().st_size, "seconds": round(time.perf_counter() - started, 2)}
    return _report(summary, args.json, f"exported {head.name!r} to {output}")


COMMANDS = {"generate": run_generate, "fit": run_fit, "export": run_export, "info": run_info, "sample": run_sample}


def commands() -> dict:
    """The commands this copy has: `sample` needs the repository's samples, which the extension does not carry."""
    return {name: run for name, run in COMMANDS.items() if name != "sample" or SAMPLE_MESH.is_file()}


def main(argv: list[str] | None = None, prog: str = PYTHON_PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = commands()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in available:
        known = ", ".join(available)
        print(f"usage: {prog} <command> [options]   (commands: {known}; each has --help)", file=sys.stderr)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from .jobs import JobError
    from .scene_io.mesh import SceneInputError

    try:
        return available[argv[0]](argv[1:], f"{prog} {argv[0]}")
    except SystemExit as exit_:  # argparse: --help or a usage error
        return int(exit_.code or 0)
    except (JobError, SceneInputError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def blender_command(argv: list[str]) -> int:
    """`blender -b [FILE.blend] -c asm <command> ...`: registered on the add-on's register()."""
    return main(list(argv), BLENDER_PROG)
