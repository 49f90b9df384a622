"""Multi-view accuracy against ground truth: for each textured scan, seeded Cycles view sets of 1-8 views, the
sample rig (generated on the MakeHuman head: another mesh and another person) fitted to each set, and each
result measured against the scan.

    .venv/bin/python -m benchmarks.multiview.run [--views 1 2 4 8] [--quality fast] [--out DIR]

Measure (solver/scan_fit.compare_to_scan, as the field does on Florence MICC): the scan's landmarks start a
similarity onto the fitted surface, ICP refines it on the scan within 1.05 outer-eye-corner distances of the nose
tip (about 95 mm); **scale is allowed**, because uncalibrated photos carry none. Reported: RMS point-to-surface
distance from the scan's vertices in that crop and in a 60 mm crop, in mm at the rig's scale (the MakeHuman head
is an adult head in decimetres), and landmark NME (the rig's 468 surface landmarks to the scan's, over the scan's
outer-eye-corner distance). Rows: the unfitted rig (do nothing), a landmarks-only fit and the default fit
(landmarks + multi-view patches); the fitted surface is the one the fit shows in view 1 (with that photo's
expression: the Fran scan smiles); rms_95_mm_shared_pose measures the shared pose without it. Writes
multiview.csv and multiview.json, the renders under out/multiview/<scan>/ (reused when nothing changed) and a
heat-map figure per scan.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.common import exit_after, write_csv  # noqa: E402

SAMPLE_DIR = ROOT / "samples" / "makehuman_head"
MM_PER_RIG_UNIT = 100.0  # the MakeHuman head is in decimetres
ERROR_LIMIT_MM = 6.0  # the heat maps saturate here
FITS = {"landmarks only": {"photometric": 0.0, "stereo": 0.0}, "default (landmarks + patches + dense)": {}}
UNFITTED = "unfitted rig (do nothing)"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SampleRig:
    """The rig generated on the sample MakeHuman head (its bundled landmarks), and its landmark surface points."""

    def __init__(self, preset: str = "full"):
        from solver.template.canonical import parse_obj, triangulate_faces
        from solver.rig.generate import GenerateSettings, place_rig
        from asm_protocol.landmarks import load_landmarks
        from solver.fit.landmark_surface import landmark_surface

        vertices, uvs, faces = parse_obj(SAMPLE_DIR / "base_head.obj")
        self.vertices = vertices
        self.triangles, uv_ids = triangulate_faces(faces)
        self.landmarks, self.valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
        self.rig, _ = place_rig(vertices, self.triangles, uvs[uv_ids], np.nan_to_num(self.landmarks), self.valid,
                                GenerateSettings(preset))
        self.which, self.ids, self.bary = landmark_surface(vertices, self.triangles, self.landmarks, self.valid)
        self.found = np.zeros(len(self.landmarks), dtype=bool)
        self.found[self.which] = True

    def model(self):
        from solver.model import ASMModel

        return ASMModel(self.rig, self.vertices, self.triangles)

    def measure(self, posed: np.ndarray, scan) -> dict:
        from solver.fit.scan_fit import compare_to_scan

        points = np.zeros_like(self.landmarks)
        points[self.which] = (self.bary.numpy()[..., None] * posed[self.ids.numpy()]).sum(1)
        measured = compare_to_scan(posed, self.triangles, points, self.found, scan)
        return {"rms_95_mm": measured["rms"] * MM_PER_RIG_UNIT, "rms_60_mm": measured["rms_tight"] * MM_PER_RIG_UNIT,
                "landmark_nme": measured["nme"], "distance_mm": measured["distance"] * MM_PER_RIG_UNIT,
                "in_crop": measured["in_crop"], "alignment": measured["alignment"]}


def shown_surface(model, fitted) -> np.ndarray:
    """(N, 3) the fitted surface as view 1 shows it (with that photo's own expression when there is one)."""
    import torch

    with torch.no_grad():
        if fitted is None or fitted.expressions is None:
            return model.forward().double().numpy()
        return model.forward(fitted.expressions.poses(model.pose, model.free))[0].double().numpy()


def detect_views(paths: list[Path]):
    from solver.vision.photos import detect_photo, load_photo

    photos = [load_photo(path) for path in paths]
    return photos, [detect_photo(photo) for photo in photos]


def fit_photos(model, landmarks: np.ndarray, valid: np.ndarray, photos, detections, quality: str,
               overrides: dict | None = None):
    """The product's photo fit of `model` (in place) to loaded photos and their detections; returns the PhotoFit."""
    from solver.fit.photo_fit import PhotoFitSettings, PhotoObservations, fit_to_photos

    return fit_to_photos(model, landmarks, valid, PhotoObservations.from_photos(photos, detections),
                         PhotoFitSettings(quality, **(overrides or {})))


def heat_map_figure(scan, sample: SampleRig, surfaces: dict, photo: Path, output: Path) -> Path:
    """A column per fit (unfitted, landmarks only, default): the fitted surface put into the scan's frame, and
    below it the scan coloured by its distance to that surface (grey: outside the measured crop), from the front
    and 35 degrees aside; the first photo in the first column."""
    import bpy
    import cv2
    from mathutils import Vector

    from asm_blender.scene_io.mesh import mesh_from_arrays
    from asm_blender.scene_io.preview import write_error_colours
    from asm_blender.scene_io.views import render_views, tile_images

    direction = Vector(scan.face_direction.tolist())
    size = 300
    with tempfile.TemporaryDirectory(prefix="asm_multiview_figure_") as tmp:
        tmp = Path(tmp)
        square = tmp / "photo.png"
        image = cv2.imread(str(photo))
        side = max(image.shape[:2])
        padded = np.full((side, side, 3), 255, np.uint8)
        top, left = (side - image.shape[0]) // 2, (side - image.shape[1]) // 2
        padded[top:top + image.shape[0], left:left + image.shape[1]] = image
        cv2.imwrite(str(square), cv2.resize(padded, (size, size), interpolation=cv2.INTER_AREA))
        columns = [[square]]
        for number, (name, (posed, measured)) in enumerate(surfaces.items()):
            alignment = measured["alignment"]  # scan -> surface
            in_scan = alignment.invert(posed)
            head = mesh_from_arrays(f"{name} in the scan's frame", in_scan, sample.triangles)
            write_error_colours(scan.obj, measured["distance_mm"], ERROR_LIMIT_MM, measured["in_crop"])
            fitted = render_views(head, tmp / f"fit{number}", (0.0,), size=size, face_direction=direction,
                                  label=f"{name}")
            heat = render_views(scan.obj, tmp / f"scan{number}", (0.0, 35.0), size=size, face_direction=direction,
                                colour_attribute=True, label=f"RMS {measured['rms_95_mm']:.2f} mm")
            columns.append([fitted[0].image_path] + [v.image_path for v in heat])
            mesh = head.data
            bpy.data.objects.remove(head, do_unlink=True)
            bpy.data.meshes.remove(mesh)
        rows = [[column[r] for column in columns if r < len(column)] for r in range(3)]
        rows[1:] = [[tmp / "blank.png"] + row for row in rows[1:]]
        cv2.imwrite(str(tmp / "blank.png"), np.full((size, size, 3), 255, np.uint8))
        return tile_images(rows, output)


def run_scan(spec, sample: SampleRig, view_counts: list[int], quality: str, figures: Path | None,
             samples: int) -> list[dict]:
    from benchmarks.multiview.render import render_views, view_sequence
    from benchmarks.multiview.scans import load_scan
    from solver.fit.scan_fit import prepare_scan

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="asm_multiview_") as tmp:
        scan = load_scan(spec, Path(tmp))
    target = prepare_scan(scan.vertices, scan.triangles, np.nan_to_num(scan.landmarks), scan.valid, spec.name,
                          samples=0)
    log(f"{spec.name}: {len(scan.vertices)} vertices, {int(scan.valid.sum())} landmarks found on its renders "
        f"({time.perf_counter() - started:.0f} s)")
    records = render_views(scan, view_sequence(spec.name, max(view_counts)), ROOT / "out" / "multiview" / spec.key,
                           samples, log)
    paths = [ROOT / "out" / "multiview" / spec.key / r["image"] for r in records]
    photos, detections = detect_views(paths)
    rows = []
    unfitted_model = sample.model()
    unfitted = sample.measure(shown_surface(unfitted_model, None), target)
    base = {"scan": spec.name, "scan_vertices": len(scan.vertices), "quality": quality}
    figure_surfaces = {}
    for count in view_counts:
        faces = [i for i in range(count) if detections[i].found]
        row_base = {**base, "views": count, "views_with_face": len(faces),
                    "render_seconds": round(sum(r["render_seconds"] for r in records[:count]), 1)}
        rows.append({**row_base, "fit": UNFITTED, **{k: unfitted[k] for k in ("rms_95_mm", "rms_60_mm",
                                                                                "landmark_nme")}})
        if not faces:
            log(f"  {count} view(s): no face found in any; only the unfitted row")
            continue
        chosen_photos, chosen = [photos[i] for i in faces], [detections[i] for i in faces]
        for name, overrides in FITS.items():
            began = time.perf_counter()
            model = sample.model()
            fitted = fit_photos(model, sample.landmarks, sample.valid, chosen_photos, chosen, quality, overrides)
            seconds = time.perf_counter() - began
            posed = shown_surface(model, fitted)
            measured = sample.measure(posed, target)
            shared = sample.measure(shown_surface(model, None), target)  # without view 1's own expression
            rows.append({**row_base, "fit": name, **{k: measured[k] for k in ("rms_95_mm", "rms_60_mm",
                                                                             "landmark_nme")},
                         "rms_95_mm_shared_pose": shared["rms_95_mm"],
                         "pixel_error": float(fitted.pixel_error_after.mean()), "fit_seconds": round(seconds, 1),
                         "stage_seconds": json.dumps({k: round(v, 2) for k, v in fitted.stage_seconds.items()})})
            log(f"  {count} view(s), {name}: RMS {measured['rms_95_mm']:.2f} mm (60 mm {measured['rms_60_mm']:.2f}), "
                f"NME {measured['landmark_nme']:.4f}, {fitted.pixel_error_after.mean():.1f} px, {seconds:.0f} s")
            if count == max(view_counts):
                figure_surfaces[name] = (posed, measured)
    if figures is not None:
        surfaces = {UNFITTED: (shown_surface(unfitted_model, None), unfitted), **figure_surfaces}
        picture = heat_map_figure(scan, sample, surfaces, paths[0],
                                  (figures / f"multiview_{spec.key}.png").resolve())
        log(f"  wrote {picture.relative_to(ROOT) if picture.is_relative_to(ROOT) else picture}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, nargs="+", default=[1, 2, 4, 8], help="view counts (1-8)")
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="fast")
    parser.add_argument("--samples", type=int, default=8, help="Cycles samples per pixel (denoised)")
    parser.add_argument("--scans", nargs="*", default=None, help="only these scans (names)")
    parser.add_argument("--extra", nargs="*", default=(), type=Path, help="more scan folders (mesh, image, SOURCE.md)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="CSV / JSON folder")
    parser.add_argument("--figures", type=Path, default=None, help="write the heat-map figures here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not all(1 <= v <= 8 for v in args.views):
        parser.error("--views must be between 1 and 8")
    import torch

    from benchmarks.multiview.scans import available_scans

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    specs, missing = available_scans(args.extra)
    for note in missing:
        log(note)
    if args.scans:
        specs = [s for s in specs if s.name in args.scans]
    if not specs:
        log("error: no scans to measure")
        return 2
    sample = SampleRig()
    rows = []
    for spec in specs:
        rows += run_scan(spec, sample, sorted(set(args.views)), args.quality, args.figures, args.samples)
    write_csv(args.out / "multiview.csv", rows)
    (args.out / "multiview.json").write_text(json.dumps({"rows": rows, "left_out": missing, "quality": args.quality,
                                                         "samples": args.samples}, indent=1))
    print(f"\n{'scan':<16} {'views':>5} {'fit':<32} {'RMS 95':>7} {'RMS 60':>7} {'NME':>7} {'s':>5}")
    for row in rows:
        print(f"{row['scan']:<16} {row['views']:>5} {row['fit']:<32} {row['rms_95_mm']:7.2f} {row['rms_60_mm']:7.2f} "
              f"{row['landmark_nme']:7.4f} {row.get('fit_seconds', 0):5.0f}")
    return 0


if __name__ == "__main__":
    exit_after(main)
