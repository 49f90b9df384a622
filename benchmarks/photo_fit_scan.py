"""Photo fit against ground truth, with its error budget: the sample rig (MakeHuman head) fitted to the bundled
Cycles photos of the Lee Perry-Smith scan (samples/lps_photos, a different person and mesh, whose true cameras are
in views.json), measured against that scan.

    .venv/bin/python -m benchmarks.photo_fit_scan [--views 4] [--quality fast|balanced|best] [--rows ...]
                                                 [--detector mediapipe]

Rows: the unfitted rig (do nothing); the product's default fit (the face models' landmarks + the multi-view patch
term + dense multi-view geometry); the same without the dense term, and with landmarks only (the method comparison);
then the error budget: the default fit with oracle landmarks (the scan's own, projected with the true cameras),
with the true cameras (held fixed), with both, and the rig fitted to the scan itself in 3D (what the rig can
reach). The true cameras are carried into the rig's frame by the unfitted rig's alignment to the scan.

Each fitted surface is compared with the scan as the field does: the scan's landmarks start a similarity (scale
allowed: photos carry no scale), ICP refines it on the scan's face within 1.05 outer-eye-corner distances (about
95 mm) of the nose tip, then the RMS point-to-surface distance over that crop and over a tighter 60 mm crop; mm
assume the rig's units (the MakeHuman head is in decimetres). Landmark NME: the rig's 468 surface landmarks to the
scan's after that alignment, over the scan's outer-eye-corner distance. Where the error lies: the RMS within 95 mm
split into the skin that dense matching can reach (scan vertices within COVERED_MM of a point that the product's
stereo matching (solver.vision.stereo) triangulates on the photos from the unfitted rig's surface with the true
cameras) and the rest (smooth skin with too little texture, the eyes, the nostrils, hidden parts). Also the 2D
landmark error, each solved
camera's focal length over the true one and its rotation error, and the time of each stage (2 cores).
--detector mediapipe finds the photos' landmarks with MediaPipe 0.10.21's face mesh instead of the product's
detector (LiteRT), for the comparison in benchmarks.detector_compare.
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
COVERED_MM = 3.0  # a scan vertex this close to a triangulated dense point counts as reached by dense matching
# row key -> (label, settings overrides, landmarks: "mediapipe" | "oracle", cameras: "solved" | "true")
PHOTO_ROWS = {
    "default": ("default (landmarks + patches + dense)", {}, "mediapipe", "solved"),
    "no-dense": ("without the dense term (landmarks + patches)", {"stereo": 0.0}, "mediapipe", "solved"),
    "landmarks": ("landmarks only", {"photometric": 0.0, "stereo": 0.0}, "mediapipe", "solved"),
    "oracle-landmarks": ("budget: oracle landmarks", {}, "oracle", "solved"),
    "true-cameras": ("budget: true cameras", {}, "mediapipe", "true"),
    "oracle-both": ("budget: oracle landmarks + true cameras", {}, "oracle", "true"),
}
UNFITTED = ("unfitted", "unfitted rig (do nothing)")
SCAN_FIT = ("scan-fit", "budget: the rig's 3D fit to the scan (reach)")
ALL_ROWS = (UNFITTED[0], *PHOTO_ROWS, SCAN_FIT[0])


def load_scan(samples: int = 0):
    """The Lee Perry-Smith scan in its glb's own coordinates (where its landmarks are), through Blender's importer;
    `samples` extra points on its triangles for a fit to it (measuring reads only its vertices)."""
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
    return prepare_scan(vertices, arrays.triangles, landmarks, valid, "the Lee Perry-Smith scan", samples=samples)


def measure(posed: np.ndarray, triangles: np.ndarray, rig_points: np.ndarray, rig_found: np.ndarray, scan,
            covered: np.ndarray | None = None) -> dict:
    """Errors of a posed rig surface against the scan (solver.fit.scan_fit.compare_to_scan), in millimetres; with
    covered ((scan vertices,) bool), the RMS within 95 mm on the covered vertices and on the rest."""
    from solver.fit.scan_fit import compare_to_scan

    measured = compare_to_scan(posed, triangles, rig_points, rig_found, scan)
    errors = {"rms_95_mm": measured["rms"] * MM_PER_RIG_UNIT, "rms_60_mm": measured["rms_tight"] * MM_PER_RIG_UNIT,
              "landmark_nme": measured["nme"]}
    if covered is not None:
        distance, crop = measured["distance"] * MM_PER_RIG_UNIT, measured["in_crop"]
        for key, part in (("rms_95_covered_mm", crop & covered), ("rms_95_uncovered_mm", crop & ~covered)):
            errors[key] = float(np.sqrt((distance[part] ** 2).mean()))
    return errors


def dense_coverage(posed: np.ndarray, triangles: np.ndarray, face: np.ndarray, photos, cameras, head_unit: float,
                   scan, scan_to_rig) -> np.ndarray:
    """(scan vertices,) bool: within COVERED_MM of a point that stereo matching triangulates on the photos, started
    from the surface `posed` (the rig's frame) with `cameras`; scan_to_rig carries the points back to the scan."""
    from scipy.spatial import cKDTree

    from solver.vision.photometric import face_samples
    from solver.vision.stereo import match_surface, stereo_image, triangulate

    ids, bary = face_samples(posed, triangles, face, 8000)
    images = [stereo_image(photo.rgb, dtype=torch.float64) for photo in photos]
    scale = torch.tensor([photo.scale for photo in photos], dtype=torch.float64)
    matches = match_surface(torch.as_tensor(posed), torch.as_tensor(triangles), ids, bary, cameras, images, scale,
                            head_unit)
    points = triangulate(cameras, matches).numpy()
    in_scan = (points - scan_to_rig.translation) @ scan_to_rig.rotation / scan_to_rig.scale
    distance, _ = cKDTree(in_scan).query(scan.vertices)
    return distance * scan_to_rig.scale * MM_PER_RIG_UNIT <= COVERED_MM


def mediapipe_detection(photo):
    """MediaPipe 0.10.21's landmarks of a photo (benchmarks.detector_compare), as detect_photo returns them."""
    from benchmarks.detector_compare import mediapipe_landmarks
    from solver.vision.photos import PhotoDetection

    points = mediapipe_landmarks(photo.rgb)
    width, height = photo.working_size
    return PhotoDetection(landmarks=points * [photo.original_size[0] / width, photo.original_size[1] / height],
                          faces_found=1) if points is not None else PhotoDetection(np.full((478, 2), np.nan), 0)


def oracle_landmarks(views: list[dict], scan) -> np.ndarray:
    """(V, 478, 2) the scan's own landmarks projected through each photo's true camera (views.json)."""
    points = np.c_[scan.landmarks, np.ones(len(scan.landmarks))]
    detections = []
    for view in views:
        in_camera = points @ np.array(view["camera_from_scan"], dtype=float).T
        pixels = view["focal_px"] * in_camera[:, :2] / in_camera[:, 2:3] + [view["width"] / 2, view["height"] / 2]
        detections.append(np.where(scan.landmark_valid[:, None], pixels, np.nan))
    return np.stack(detections)


def true_cameras(views: list[dict], scan_to_rig):
    """The photos' true cameras in the rig's frame: camera(p) = R_c (A^-1 p) + t_c for A the similarity scan -> rig
    (s R x + t); scaled by s (a projection does not change), that is R_c R^T p + (s t_c - R_c R^T t)."""
    import cv2

    from solver.vision.cameras import Cameras

    s, rotation, translation = scan_to_rig.scale, scan_to_rig.rotation, scan_to_rig.translation
    rotvecs, translations = [], []
    for view in views:
        matrix = np.array(view["camera_from_scan"], dtype=float)
        turned = matrix[:3, :3] @ rotation.T
        rotvecs.append(cv2.Rodrigues(turned)[0].ravel())
        translations.append(s * matrix[:3, 3] - turned @ translation)
    return Cameras.from_arrays(rotvecs, translations, [v["focal_px"] for v in views],
                               [[v["width"], v["height"]] for v in views])


def camera_errors(solved, truth) -> dict:
    """Each solved camera's focal over the true one, and the angle between their rotations in degrees."""
    from solver.core.rotations import rotvec_to_matrix

    with torch.no_grad():
        focal = torch.exp(solved.log_focal - truth.log_focal.to(solved.log_focal)).numpy()
        relative = rotvec_to_matrix(solved.rotvec).transpose(-1, -2) @ rotvec_to_matrix(truth.rotvec.to(solved.rotvec))
        angle = torch.rad2deg(torch.arccos(((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)))
    return {"focal_ratio": json.dumps([round(float(f), 3) for f in focal]),
            "rotation_error_deg": json.dumps([round(float(a), 2) for a in angle.numpy()])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=4, help="how many of the sample photos (1-4)")
    parser.add_argument("--quality", choices=("fast", "balanced", "best"), default="fast")
    parser.add_argument("--detector", choices=("litert", "mediapipe"), default="litert",
                        help="the photos' landmarks from the product's detector or from MediaPipe 0.10.21")
    parser.add_argument("--rows", nargs="+", choices=ALL_ROWS, default=list(ALL_ROWS),
                        help="which rows (default: all)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from solver.template.canonical import parse_obj, triangulate_faces
    from solver.rig.generate import GenerateSettings, place_rig
    from asm_protocol.landmarks import load_landmarks
    from solver.model import ASMModel
    from solver.fit.landmark_surface import CROP, face_vertices, landmark_surface
    from solver.fit.photo_fit import PhotoFitSettings, PhotoObservations, fit_to_photos
    from solver.fit.scan_fit import ScanFitSettings, compare_to_scan, fit_to_scan, prepare_scan
    from solver.vision.photos import detect_photo, load_photo

    scan = load_scan(samples=20000)  # the rig's 3D fit row fits to it too
    vertices, uvs, faces = parse_obj(SAMPLE_DIR / "base_head.obj")
    triangles, uv_ids = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    rig, _ = place_rig(vertices, triangles, uvs[uv_ids], np.nan_to_num(landmarks), valid, GenerateSettings())
    which, ids, bary = landmark_surface(vertices, triangles, landmarks, valid)
    found = np.zeros(len(landmarks), dtype=bool)
    found[which] = True

    def surface(model: ASMModel) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            posed = model.forward().double().numpy()
        points = np.zeros_like(landmarks)
        points[which] = (bary.numpy()[..., None] * posed[ids.numpy()]).sum(1)
        return posed, points

    def errors(model: ASMModel) -> dict:
        posed, points = surface(model)
        return measure(posed, triangles, points, found, scan, covered)

    paths = sorted(PHOTO_DIR.glob("photo_*.jpg"))[:args.views]
    views = json.loads((PHOTO_DIR / "views.json").read_text())["views"][:args.views]
    photos = [load_photo(path) for path in paths]
    detect = detect_photo if args.detector == "litert" else mediapipe_detection
    detections = [detect(photo) for photo in photos]
    unfitted = ASMModel(rig, vertices, triangles)
    posed, points = surface(unfitted)
    scan_to_rig = compare_to_scan(posed, triangles, points, found, scan)["alignment"]
    truth = true_cameras(views, scan_to_rig)
    oracle = oracle_landmarks(views, scan)
    covered = dense_coverage(posed, triangles, face_vertices(vertices, landmarks, valid), photos, truth,
                             float(rig.head_unit), scan, scan_to_rig) if len(photos) >= 2 else None
    rows = []
    if UNFITTED[0] in args.rows:
        rows.append({"fit": UNFITTED[1], **errors(unfitted)})
    for key, (name, overrides, landmark_source, camera_source) in PHOTO_ROWS.items():
        if key not in args.rows:
            continue
        observations = PhotoObservations.from_photos(photos, detections)
        if landmark_source == "oracle":
            observations.detections = oracle
        model = ASMModel(rig, vertices, triangles)
        started = time.perf_counter()
        fitted = fit_to_photos(model, landmarks, valid, observations, PhotoFitSettings(args.quality, **overrides),
                               known_cameras=truth if camera_source == "true" else None)
        rows.append({"fit": name, **errors(model), "pixel_error": float(fitted.pixel_error_after.mean()),
                     "seconds": round(time.perf_counter() - started, 1), "stages": json.dumps(fitted.stage_seconds),
                     **camera_errors(fitted.cameras, truth)})
        print(f"{name}: {rows[-1]}", file=sys.stderr, flush=True)
    if SCAN_FIT[0] in args.rows:
        model = ASMModel(rig, vertices, triangles)
        started = time.perf_counter()
        fit_to_scan(model, landmarks, valid, scan, ScanFitSettings("balanced"))
        rows.append({"fit": SCAN_FIT[1], **errors(model), "seconds": round(time.perf_counter() - started, 1)})
    print(f"\nPhoto fit on {args.views} Cycles photo(s) of Lee Perry-Smith, quality {args.quality} "
          "(RMS after similarity ICP; mm in the rig's scale)")
    print(f"{'fit':46s} {'RMS 95 mm':>10s} {'RMS 60 mm':>10s} {'covered':>8s} {'rest':>6s} {'lmk NME':>8s} "
          f"{'2D px':>7s} {'s':>6s}  focal / true")
    for row in rows:
        print(f"{row['fit']:46s} {row['rms_95_mm']:10.3f} {row['rms_60_mm']:10.3f} "
              f"{row.get('rms_95_covered_mm', float('nan')):8.3f} {row.get('rms_95_uncovered_mm', float('nan')):6.3f} "
              f"{row['landmark_nme']:8.4f} {row.get('pixel_error', float('nan')):7.2f} "
              f"{row.get('seconds', float('nan')):6.1f}  {row.get('focal_ratio', '')} {row.get('rotation_error_deg', '')}")
    if covered is not None:
        crop = np.linalg.norm(scan.vertices - scan.nose_tip, axis=1) <= CROP * scan.eye_distance
        print(f"covered: the {covered[crop].mean():.0%} of the scan's vertices within 95 mm that lie within "
              f"{COVERED_MM:.0f} mm of a dense point (true cameras, from the unfitted surface); rest: the others")
    for row in rows:
        if "stages" in row:
            print(f"  {row['fit']}: seconds per stage {row['stages']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_mediapipe" if args.detector == "mediapipe" else ""
    out = RESULTS / f"photo_fit_scan{suffix}.csv"  # the latest run (its quality and views are in the printed title)
    with out.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=sorted({k for row in rows for k in row}))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
