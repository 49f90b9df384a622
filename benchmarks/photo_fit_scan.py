"""Photo fit against ground truth: the sample rig (MakeHuman head) fitted to the bundled Cycles photos of the Lee
Perry-Smith scan (samples/lps_photos, a different person and mesh), measured against that scan.

    .venv/bin/python -m benchmarks.photo_fit_scan [--views 4] [--quality fast|balanced|best] [--detector mediapipe]

Rows: the unfitted rig (do nothing), a landmarks-only fit, the default fit (landmarks + multi-view patch
consistency) and the fit with silhouettes added. Each fitted surface is compared with the scan as the field
does: the scan's landmarks start a similarity (scale allowed: photos carry no scale), ICP refines it on the scan's
face within 1.05 outer-eye-corner distances (about 95 mm) of the nose tip, then the RMS point-to-surface
distance over that crop and over a tighter 60 mm crop; millimetres assume the rig's units (the MakeHuman head is
in decimetres). Landmark NME: the rig's 468 surface landmarks to the scan's after that alignment, over the scan's
outer-eye-corner distance. Also the 2D landmark error in the photos and the time of each stage (2 cores).
--detector mediapipe finds the photos' landmarks with MediaPipe 0.10.21's face mesh instead of the product's detector
(LiteRT), for the comparison in benchmarks.detector_compare.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE_DIR = ROOT / "samples" / "makehuman_head"
SCAN_DIR = ROOT / "samples" / "lee_perry_smith"
PHOTO_DIR = ROOT / "samples" / "lps_photos"
RESULTS = ROOT / "benchmarks" / "results"
MM_PER_RIG_UNIT = 100.0  # the MakeHuman head is in decimetres
ROWS = {"landmarks only": {"photometric": 0.0, "silhouette": 0.0}, "default (landmarks + patches)": {},
        "default + silhouettes": {"silhouette": 1.0}}


def load_scan():
    """The Lee Perry-Smith scan in its glb's own coordinates (where its landmarks are), through Blender's importer."""
    import bpy

    from asm_blender.scene_io.importers import open_head
    from asm_blender.scene_io.mesh import mesh_arrays
    from asm_protocol.landmarks import load_landmarks
    from solver.fit.scan_fit import prepare_scan

    bpy.ops.wm.read_homefile(use_empty=True)
    scan_obj, _ = open_head(SCAN_DIR / "LeePerrySmith.glb")
    arrays = mesh_arrays(scan_obj)
    vertices = arrays.vertices @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # Blender (x, -z, y) -> glTF
    landmarks, valid = load_landmarks(SCAN_DIR / "landmarks.json")
    return prepare_scan(vertices, arrays.triangles, landmarks, valid, "the Lee Perry-Smith scan", samples=0)


def measure(posed: np.ndarray, triangles: np.ndarray, rig_points: np.ndarray, rig_found: np.ndarray, scan) -> dict:
    """Errors of a posed rig surface against the scan (solver.fit.scan_fit.compare_to_scan), in millimetres."""
    from solver.fit.scan_fit import compare_to_scan

    measured = compare_to_scan(posed, triangles, rig_points, rig_found, scan)
    return {"rms_95_mm": measured["rms"] * MM_PER_RIG_UNIT, "rms_60_mm": measured["rms_tight"] * MM_PER_RIG_UNIT,
            "landmark_nme": measured["nme"]}


def mediapipe_detection(photo):
    """MediaPipe 0.10.21's landmarks of a photo (benchmarks.detector_compare), as detect_photo returns them."""
    from benchmarks.detector_compare import mediapipe_landmarks
    from solver.vision.photos import PhotoDetection

    points = mediapipe_landmarks(photo.rgb)
    width, height = photo.working_size
    return PhotoDetection(landmarks=points * [photo.original_size[0] / width, photo.original_size[1] / height],
                          faces_found=1) if points is not None else PhotoDetection(np.full((478, 2), np.nan), 0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=4, help="how many of the sample photos (1-4)")
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="fast")
    parser.add_argument("--detector", choices=("litert", "mediapipe"), default="litert",
                        help="the photos' landmarks from the product's detector or from MediaPipe 0.10.21")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from solver.template.canonical import parse_obj, triangulate_faces
    from solver.rig.generate import GenerateSettings, place_rig
    from asm_protocol.landmarks import load_landmarks
    from solver.model import ASMModel
    from solver.fit.landmark_surface import landmark_surface
    from solver.fit.photo_fit import PhotoFitSettings, PhotoObservations, fit_to_photos
    from solver.vision.photos import detect_photo, load_photo

    scan = load_scan()
    vertices, uvs, faces = parse_obj(SAMPLE_DIR / "base_head.obj")
    triangles, uv_ids = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    rig, _ = place_rig(vertices, triangles, uvs[uv_ids], np.nan_to_num(landmarks), valid, GenerateSettings())
    which, ids, bary = landmark_surface(vertices, triangles, landmarks, valid)
    found = np.zeros(len(landmarks), dtype=bool)
    found[which] = True

    def errors(model: ASMModel) -> dict:
        with torch.no_grad():
            posed = model.forward().double().numpy()
        points = np.zeros_like(landmarks)
        points[which] = (bary.numpy()[..., None] * posed[ids.numpy()]).sum(1)
        return measure(posed, triangles, points, found, scan)

    paths = sorted(PHOTO_DIR.glob("photo_*.jpg"))[:args.views]
    photos = [load_photo(path) for path in paths]
    detect = detect_photo if args.detector == "litert" else mediapipe_detection
    detections = [detect(photo) for photo in photos]
    rows = [{"fit": "unfitted rig (do nothing)", **errors(ASMModel(rig, vertices, triangles))}]
    for name, overrides in ROWS.items():
        model = ASMModel(rig, vertices, triangles)
        started = time.perf_counter()
        fitted = fit_to_photos(model, landmarks, valid, PhotoObservations.from_photos(photos, detections),
                               PhotoFitSettings(args.quality, **overrides))
        rows.append({"fit": name, **errors(model), "pixel_error": float(fitted.pixel_error_after.mean()),
                     "seconds": round(time.perf_counter() - started, 1), "stages": json.dumps(fitted.stage_seconds)})
        print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"\nPhoto fit on {args.views} Cycles photo(s) of Lee Perry-Smith, quality {args.quality} "
          "(RMS after similarity ICP; mm in the rig's scale)")
    print(f"{'fit':32s} {'RMS 95 mm':>10s} {'RMS 60 mm':>10s} {'lmk NME':>8s} {'2D px':>7s} {'s':>6s}")
    for row in rows:
        print(f"{row['fit']:32s} {row['rms_95_mm']:10.3f} {row['rms_60_mm']:10.3f} {row['landmark_nme']:8.4f} "
              f"{row.get('pixel_error', float('nan')):7.2f} {row.get('seconds', float('nan')):6.1f}")
    for row in rows[1:]:
        print(f"  {row['fit']}: seconds per stage {row['stages']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_mediapipe" if args.detector == "mediapipe" else ""
    out = RESULTS / f"photo_fit_scan_{args.views}views_{args.quality}{suffix}.csv"
    with out.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=sorted({k for row in rows for k in row}))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
