"""The face detector on LiteRT (solver/vision/face_models.py) against MediaPipe 0.10.21's face mesh, on the same images.

    .venv/bin/python -m benchmarks.detector_compare [--heads NAME ...] [--repeats 3]

Images: every shared head's detection renders, made by Generate's own landmark steps with the new detector
(benchmarks.detection_renders: the face direction renders and the five views, each read at the detector's 448
pixels as the worker reads them), the sample photos (samples/lps_photos) and the real portrait of ../shared/data.
MediaPipe runs as the product ran it before (solutions.face_mesh, static images, refined landmarks, at most 4 faces,
confidence 0.3, the largest face kept); the new detector through solver.vision.detector (no window search).

Per image set: the images where each finds a face, the per-landmark distance between the two (where both find
one) in % of the eye distance (outer corners 33-263; median and 90th percentile over all 478 points, medians over
the lips: the 80 points MediaPipe's attention model refines, and the eyes: both lids' 16 rim points and the 10 iris
points) and the milliseconds per image (median of --repeats runs each, after a warm-up; 2 cores). On the sample
photos, whose true cameras views.json gives, both against the oracle too: the Lee Perry-Smith scan's landmarks
(samples/lee_perry_smith/landmarks.json, found by MediaPipe's refined face mesh on multi-view renders of the scan and
cast onto it) projected through each true camera. Writes benchmarks/results/detector_compare.csv and prints the
table (benchmarks.report's detector part shows it in docs/results.md). Needs mediapipe 0.10.21 (.venv) and
../shared/data.
"""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = PROJECT_ROOT / "benchmarks" / "results"
PHOTO_DIR = PROJECT_ROOT / "samples" / "lps_photos"
SCAN_LANDMARKS = PROJECT_ROOT / "samples" / "lee_perry_smith" / "landmarks.json"
CONFIDENCE = 0.3  # solver.vision.detector.DEFAULT_CONFIDENCE
# The lip points MediaPipe's attention model refines (its face landmark graph's LandmarksRefinementCalculator).
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409, 78, 95, 88, 178,
        87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415, 76, 77, 90, 180, 85, 16, 315, 404,
        320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408, 62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183,
        42, 41, 38, 12, 268, 271, 272, 407)


def eye_ids() -> tuple[int, ...]:
    from solver.vision.face_models import EYE_RIM_IDS

    return tuple(i for rim in EYE_RIM_IDS for i in rim) + tuple(range(468, 478))


@functools.lru_cache(maxsize=1)
def _face_mesh():
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=4, refine_landmarks=True,
                                           min_detection_confidence=CONFIDENCE)


def mediapipe_landmarks(image: np.ndarray) -> np.ndarray | None:
    """MediaPipe 0.10.21's (478, 2) pixel landmarks of the largest face on (H, W, 3) uint8 RGB, None without one."""
    from solver.vision.detector import _box_area

    height, width = image.shape[:2]
    faces = [np.array([[p.x * width, p.y * height] for p in face.landmark])
             for face in _face_mesh().process(image).multi_face_landmarks or []]
    return max(faces, key=_box_area) if faces else None


def litert_landmarks(image: np.ndarray) -> np.ndarray | None:
    """The new detector's (478, 2) pixel landmarks of the largest face, None without one."""
    from solver.vision.detector import detect_face_landmarks

    detection = detect_face_landmarks(image, CONFIDENCE)
    return detection.points if detection.found else None


DETECTORS = {"litert": litert_landmarks, "mediapipe": mediapipe_landmarks}


def timed(detect, image: np.ndarray, repeats: int) -> tuple[np.ndarray | None, float]:
    """(the detector's points, median seconds of `repeats` runs)."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        points = detect(image)
        seconds.append(time.perf_counter() - started)
    return points, statistics.median(seconds)


def distances(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(478,) distances in % of the reference's eye distance (NaN where the reference has no point)."""
    eye = np.linalg.norm(reference[33] - reference[263])
    return 100 * np.linalg.norm(points - reference, axis=1) / eye


def measure_images(images: list[np.ndarray], repeats: int, truths: list[np.ndarray] | None = None) -> list[dict]:
    """Both detectors on each (H, W, 3) image: one record per image with each one's points and time, and the
    distances between them (and to `truths`, (478, 2) each, where given)."""
    records = []
    for index, image in enumerate(images):
        record = {}
        for name, detect in DETECTORS.items():
            record[name], record[f"{name}_s"] = timed(detect, image, repeats)
        if record["litert"] is not None and record["mediapipe"] is not None:
            record["between"] = distances(record["litert"], record["mediapipe"])
        if truths is not None:
            for name in DETECTORS:
                if record[name] is not None:
                    record[f"{name}_truth"] = distances(record[name], truths[index])
        records.append(record)
    return records


def summary(group: str, records: list[dict], key: str = "between", extra: dict | None = None) -> dict:
    """One table row for an image set: faces found, the pooled distances `key` (median, p90, lips, eyes), times."""
    pooled = [r[key] for r in records if key in r]
    row = {"images": group, "compared": key, "count": len(records),
           "litert_found": sum(r["litert"] is not None for r in records),
           "mediapipe_found": sum(r["mediapipe"] is not None for r in records)}
    if pooled:
        stacked = np.stack(pooled)
        finite = lambda values: values[np.isfinite(values)]  # noqa: E731 - the oracle lacks a few points
        row.update(median=np.median(finite(stacked)), p90=np.percentile(finite(stacked), 90),
                   lips=np.median(finite(stacked[:, LIPS])), eyes=np.median(finite(stacked[:, eye_ids()])))
    row["litert_ms"] = 1000 * statistics.median(r["litert_s"] for r in records)
    row["mediapipe_ms"] = 1000 * statistics.median(r["mediapipe_s"] for r in records)
    row.update(extra or {})
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}


def head_renders(heads: dict[str, str], shared: Path, workdir: Path) -> dict[str, tuple[list[Path], dict]]:
    """Per head: the detection renders Generate's landmark steps made (PNG files), and what Generate got from them
    with the new detector: the views with a face and, on the MediaPipe canonical face, the landmarks' distance from
    the truth (its vertices; median and p90 in % of the eye distance)."""
    import bpy

    from asm_blender.scene_io.importers import open_head
    from asm_blender.scene_io.mesh import mesh_arrays
    from benchmarks.detection_renders import TRUTH_HEAD, detected_landmarks, truth_distances

    renders = {}
    for key, relative in heads.items():
        bpy.ops.wm.read_homefile(use_empty=True)
        head, _ = open_head(shared / relative)
        arrays, folder, generated = mesh_arrays(head), workdir / key, {}
        try:
            landmarks, valid, generated["generate_views_with_face"] = detected_landmarks(head, arrays, folder)
        except Exception as error:  # noqa: BLE001 - a head without a face is a result too
            print(f"{key}: {error}", file=sys.stderr)
            generated["generate_views_with_face"] = 0
        if key == TRUTH_HEAD and generated["generate_views_with_face"]:
            truth = 100 * truth_distances(landmarks, valid, arrays.vertices,
                                          float(np.linalg.norm(arrays.vertices[33] - arrays.vertices[263])))
            generated.update(generate_truth_median=float(np.median(truth)),
                             generate_truth_p90=float(np.percentile(truth, 90)))
        renders[key] = (sorted(folder.rglob("*.png")), generated)
    return renders


def oracle_points() -> list[np.ndarray]:
    """The scan's 478 landmarks projected through each sample photo's true camera: (478, 2) pixels (NaN where the
    scan has none), in the order of views.json."""
    from asm_protocol.landmarks import load_landmarks

    points, _ = load_landmarks(SCAN_LANDMARKS)
    projected = []
    for view in json.loads((PHOTO_DIR / "views.json").read_text())["views"]:
        matrix = np.array(view["camera_from_scan"], dtype=float)
        camera = points @ matrix[:3, :3].T + matrix[:3, 3]
        projected.append(view["focal_px"] * camera[:, :2] / camera[:, 2:] + [view["width"] / 2, view["height"] / 2])
    return projected


def photo_rows(shared: Path, repeats: int) -> list[dict]:
    from solver.vision.photos import load_photo

    views = json.loads((PHOTO_DIR / "views.json").read_text())["views"]
    photos = [load_photo(PHOTO_DIR / view["image"]).rgb for view in views]
    records = measure_images(photos, repeats, oracle_points())
    rows = [summary("sample photos (4)", records),
            summary("sample photos (4)", records, "litert_truth"), summary("sample photos (4)", records,
                                                                            "mediapipe_truth")]
    rows += [summary(f"  {view['image']} (yaw {view['yaw_deg']:.0f})", [record], key)
             for view, record in zip(views, records) for key in ("litert_truth", "mediapipe_truth")]
    portraits = sorted((shared / "photos").glob("*.png")) + sorted((shared / "photos").glob("*.jpg"))
    if portraits:
        rows.append(summary(f"real portrait ({len(portraits)})",
                            measure_images([load_photo(p).rgb for p in portraits], repeats)))
    return rows


def render_rows(heads: dict[str, str], shared: Path, repeats: int) -> list[dict]:
    from asm_blender.scene_io.views import DETECTOR_SIZE
    from solver.vision.photos import load_photo

    rows, every = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for key, (paths, generated) in head_renders(heads, shared, Path(tmp)).items():
            records = measure_images([load_photo(p, max_side=DETECTOR_SIZE).rgb for p in paths], repeats)
            every += records
            rows.append(summary(f"{key} renders", records, extra=generated))
            print(rows[-1], file=sys.stderr, flush=True)
    return [summary("all head renders", every)] + rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", nargs="+", default=None, help="shared heads (benchmarks.generate_heads.HEADS)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image and detector")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT_ROOT))
    from asm_blender.cli.common import addon_registered, stdout_to_stderr
    from benchmarks.common import write_csv
    from benchmarks.generate_heads import HEADS, SHARED
    from solver.vision.detector import prepare_detector

    if not (SHARED / "README.md").is_file():
        print(f"this benchmark needs the shared data folder ({SHARED.name} in ../shared)", file=sys.stderr)
        return 2
    warm_up = np.zeros((64, 64, 3), np.uint8)
    prepare_detector()
    mediapipe_landmarks(warm_up)
    heads = {key: HEADS[key] for key in (args.heads or HEADS)}
    with stdout_to_stderr(), addon_registered():
        rows = photo_rows(SHARED, args.repeats) + render_rows(heads, SHARED, args.repeats)
    write_csv(RESULTS / "detector_compare.csv", rows)
    print(detector_table(rows))
    return 0


def generated(row: dict) -> str:
    views = row.get("generate_views_with_face", "")
    truth = row.get("generate_truth_median", "")
    return f"{views}" + (f" ({truth}, p90 {row.get('generate_truth_p90')})" if truth not in ("", None) else "")


def detector_table(rows: list[dict]) -> str:
    """The rows as a markdown table (also benchmarks.report's detector part)."""
    what = {"between": "LiteRT vs MediaPipe", "litert_truth": "LiteRT vs oracle",
            "mediapipe_truth": "MediaPipe vs oracle"}
    header = ["images", "distance of", "faces found (LiteRT / MediaPipe)", "median %", "p90 %", "lips %", "eyes %",
              "ms per image (LiteRT / MediaPipe)", "Generate with LiteRT: views with a face (to the truth %)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = [row["images"], what.get(row["compared"], row["compared"]),
                 f"{row['litert_found']} / {row['mediapipe_found']} of {row['count']}",
                 *(str(row.get(c, "-")) for c in ("median", "p90", "lips", "eyes")),
                 f"{row['litert_ms']} / {row['mediapipe_ms']}", generated(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    from benchmarks.common import exit_after

    exit_after(main)
