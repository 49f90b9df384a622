"""The solver worker: runs jobs from job folders in its own process, one job (python -m solver.worker JOB_DIR) or
every job queued for a long-lived server (python -m solver.worker --serve QUEUE_DIR, see `serve`).

Job folder protocol (shared with asm_blender/jobs.py, which never imports torch):
    job.json        {"task": "generate"|"detect"|"geometry_landmarks"|"rebake"|"fit_scan"|"fit_photos"|"compare_to_scan", ...}   written by the client
    inputs.npz      input arrays                                  written by the client
    cancel          created by the client to ask for a stop
    progress.jsonl  one {"stage", "fraction"[, "loss"]} per line   appended by the worker (at most 2 a second)
    result.npz      result arrays (+ "warnings" as JSON text)     written by the worker on success
    error.json      {"message", "kind"}                           written by the worker on failure
    finished        written by a serving worker when it is done with the job (either way)
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from .errors import ASMInputError


PROGRESS_SECONDS = 0.5


class Cancelled(Exception):
    pass


def _write_json_line(path: Path, record: dict) -> None:
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def load_photos(paths: list[str], max_side: int | None = None) -> list:
    """The photos as solver.photos.Photo (upright, 8-bit RGB, at most `max_side` px, 2048 by default); an unreadable
    one raises ASMInputError naming it."""
    from .photos import MAX_WORKING_SIDE, load_photo

    return [load_photo(path, max_side or MAX_WORKING_SIDE) for path in paths]


def detect_in_images(paths: list[str], progress, max_side: int | None = None) -> dict:
    """`detect_in_photos` of the photo files `paths`, each read at most `max_side` pixels wide and high (points are
    still in the files' own pixels)."""
    return detect_in_photos(load_photos(paths, max_side), progress)


def detect_in_photos(photos: list, progress) -> dict:
    """MediaPipe landmarks on each photo (solver.photos.Photo, loaded upright): points (V, 478, 2) in the photo's
    original pixels (NaN where no face), found (V,) bool, faces_found (V,) int, image_size (V, 2) width, height as
    the user sees the photo, focal_px (V,) from EXIF (NaN where absent) and warnings (list of str: downscaled
    photos, several faces, no face)."""
    from .landmarks import LANDMARK_COUNT
    from .photos import detect_photo

    points = np.full((len(photos), LANDMARK_COUNT, 2), np.nan)
    found = np.zeros(len(photos), dtype=bool)
    faces_found = np.zeros(len(photos), dtype=np.int64)
    sizes = np.zeros((len(photos), 2))
    focal = np.full(len(photos), np.nan)
    notes: list[str] = []
    for index, photo in enumerate(photos):
        progress("landmarks", index / max(len(photos), 1))
        detection = detect_photo(photo)
        points[index], found[index], faces_found[index] = detection.landmarks, detection.found, detection.faces_found
        sizes[index] = photo.original_size
        focal[index] = np.nan if photo.focal_px is None else photo.focal_px
        notes += photo.notes + detection.notes
    progress("landmarks", 1.0)
    return {"points": points, "found": found, "faces_found": faces_found, "image_size": sizes, "focal_px": focal,
            "warnings": notes}


def upright_copies(photos: list, folder: Path) -> np.ndarray:
    """(V,) str: for each photo (solver.photos.Photo) stored sideways or flipped (EXIF orientation), an upright PNG
    copy written into `folder` (Blender shows images as stored, so a camera's background needs it); "" for photos
    stored upright."""
    import cv2

    copies = []
    for index, photo in enumerate(photos):
        if photo.orientation == 1:
            copies.append("")
            continue
        copy = Path(folder) / f"upright_{index}_{photo.path.stem}.png"
        cv2.imwrite(str(copy), np.ascontiguousarray(photo.rgb[..., ::-1]))
        copies.append(str(copy))
    return np.array(copies)


WORKER_MODULES = ("numpy", "torch", "scipy", "cv2", "mediapipe", "PIL", "matplotlib")


def environment() -> dict:
    """Where this worker's packages come from (the `environment` task, for the add-on's checks and the install
    test): modules (M,) str, files (M,) str, versions (M,) str, python (the interpreter); mediapipe's face mesh and
    selfie segmentation solutions are loaded too (they import more than mediapipe itself)."""
    import importlib

    files, versions = [], []
    for name in WORKER_MODULES:
        module = importlib.import_module(name)
        files.append(str(Path(module.__file__).resolve()))
        versions.append(str(getattr(module, "__version__", "")))
    import mediapipe as mp

    _ = mp.solutions.face_mesh.FaceMesh, mp.solutions.selfie_segmentation.SelfieSegmentation
    return {"modules": np.array(WORKER_MODULES), "files": np.array(files), "versions": np.array(versions),
            "python": np.array(sys.executable), "warnings": []}


def warm_up() -> dict:
    """The `warm_up` task: import the solver (torch, scipy) and the landmark detector and read their data once, so
    that the first Generate of a session does not wait two seconds for them. `loaded` (M,) str names what loaded;
    a part that cannot load is left to the job that needs it, which reports it."""
    loaded = []
    try:
        from .canonical import canonical_face
        from .generate import generate_rig  # noqa: F401 - imported for torch, scipy and the solver's modules

        canonical_face()
        loaded.append("solver")
    except ImportError:
        pass
    try:
        from .landmarks import prepare_detector

        prepare_detector()
        loaded.append("detector")
    except ImportError:
        pass
    return {"loaded": np.array(loaded), "warnings": []}


def run_job(job_dir: Path) -> int:
    job_dir = Path(job_dir)
    spec = json.loads((job_dir / "job.json").read_text())
    progress_path = job_dir / "progress.jsonl"

    last = {"time": 0.0, "stage": None}

    def progress(stage: str, fraction: float, loss: float | None = None) -> None:
        if (job_dir / "cancel").exists():
            raise Cancelled()
        now = time.monotonic()
        if stage == last["stage"] and now - last["time"] < PROGRESS_SECONDS and fraction < 1.0:
            return  # fits report every step; the client needs a line a second at most
        last.update(time=now, stage=stage)
        record = {"stage": stage, "fraction": round(fraction, 4)}
        if loss is not None:
            record["loss"] = float(loss)
        _write_json_line(progress_path, record)

    try:
        with np.load(job_dir / "inputs.npz", allow_pickle=False) as npz:
            inputs = {k: npz[k] for k in npz.files}
        if spec["task"] == "generate":
            from .generate import GenerateSettings, generate_rig

            settings = GenerateSettings(**spec.get("settings", {}))
            result = generate_rig(inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"),
                                  inputs["landmarks"], inputs["landmark_valid"].astype(bool), settings, progress)
        elif spec["task"] == "rebake":
            from .generate import EDITABLE, GenerateSettings, restore_model, rig_arrays

            settings = spec.get("settings", {})
            model, chart_kind = restore_model(
                inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"), inputs["landmarks"],
                inputs["landmark_valid"].astype(bool), GenerateSettings(**settings.get("generate", {})),
                settings.get("names", []), {key: inputs[key] for key in EDITABLE if key in inputs}, progress)
            progress("weights", 0.8)
            result = rig_arrays(model, chart_kind)
        elif spec["task"] == "geometry_landmarks":
            from .geometry_landmarks import landmarks_from_geometry

            points, valid = landmarks_from_geometry(inputs["vertices"], inputs["triangles"], inputs["forward"],
                                                    inputs["up"])
            result = {"points": points, "valid": valid}
        elif spec["task"] == "fit_photos":
            from .photo_fit import fit_photos_job

            settings = spec.get("settings", {})
            photos = load_photos(settings.get("images", []))  # once: landmarks, colours and upright copies
            detection_notes = []
            if "detections" not in inputs:  # photos as files: find their landmarks first
                found = detect_in_photos(photos, progress)
                inputs.update(detections=found["points"], found=found["found"], image_size=found["image_size"],
                              exif_focal=found["focal_px"])
                detection_notes = found["warnings"]
            result = fit_photos_job(inputs, settings.get("generate", {}), settings.get("names", []),
                                    settings.get("fit", {}), progress, [p.name for p in photos] or None,
                                    photos or None)
            result["warnings"] = detection_notes + list(result["warnings"])
            result["upright_photos"] = upright_copies(photos, job_dir)
        elif spec["task"] == "detect":
            settings = spec.get("settings", {})
            result = detect_in_images(settings.get("images", []), progress, settings.get("max_side"))
        elif spec["task"] == "environment":
            result = environment()
        elif spec["task"] == "warm_up":
            result = warm_up()
        elif spec["task"] == "compare_to_scan":
            from .scan_fit import compare_job

            result = compare_job(inputs)
        elif spec["task"] == "fit_scan":
            from .scan_fit import fit_scan_job

            settings = spec.get("settings", {})
            result = fit_scan_job(inputs, settings.get("generate", {}), settings.get("fit", {}), progress)
        else:
            raise ASMInputError(f"unknown task {spec['task']!r}")
        warnings_text = json.dumps(result.pop("warnings", []))
        partial = job_dir / "result.partial.npz"
        np.savez(partial, warnings=np.array(warnings_text), **result)
        partial.replace(job_dir / "result.npz")  # atomic: the client never reads half a file
        return 0
    except Cancelled:
        (job_dir / "error.json").write_text(json.dumps({"kind": "cancelled", "message": "cancelled by the user"}))
        return 3
    except ASMInputError as error:
        (job_dir / "error.json").write_text(json.dumps({"kind": "input", "message": str(error)}))
        return 2
    except ImportError as error:  # a package missing from the worker's Python, or built for another platform
        (job_dir / "error.json").write_text(json.dumps({
            "kind": "internal", "traceback": traceback.format_exc(),
            "message": f"the solver's Python ({sys.executable}) cannot load {error.name or 'a package'}: {error}. "
                       "The extension's bundled packages are missing or built for another platform: install the zip "
                       "built for this platform again (or set ASM_WORKER_PYTHON to a Python with the solver's "
                       "packages)"}))
        return 1
    except Exception as error:  # noqa: BLE001 - reported to the client with its traceback
        (job_dir / "error.json").write_text(json.dumps({
            "kind": "internal", "message": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}))
        return 1


IDLE_SECONDS = 1800.0


def serve(queue: Path, idle_seconds: float = IDLE_SECONDS, poll_seconds: float = 0.02) -> int:
    """Run queued jobs one after another: each ticket `queue/NNNNNN.job` holds a job folder's path; `finished`
    is written into that folder when its job is over (result or error). Stops on `queue/stop`, when the
    process that started it is gone, or after `idle_seconds` without work."""
    queue = Path(queue)
    parent = os.getppid()
    last_work = time.monotonic()
    while not (queue / "stop").exists():
        if os.getppid() != parent:  # Blender quit (or crashed) without stopping us
            return 0
        tickets = sorted(queue.glob("*.job"))
        if not tickets:
            if time.monotonic() - last_work > idle_seconds:
                return 0
            time.sleep(poll_seconds)
            continue
        folder = Path(tickets[0].read_text())
        tickets[0].unlink()
        if not (folder / "job.json").is_file():  # its client cancelled and removed it before its turn came
            continue
        try:
            run_job(folder)
        finally:
            with contextlib.suppress(OSError):  # the client may remove a cancelled job's folder while it runs
                (folder / "finished").touch()
        sys.stdout.flush()
        last_work = time.monotonic()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        sys.exit(serve(Path(sys.argv[2])))
    if len(sys.argv) != 2:
        print("usage: python -m solver.worker JOB_DIR   or   python -m solver.worker --serve QUEUE_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_job(Path(sys.argv[1])))
