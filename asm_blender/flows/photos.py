"""The photos of a fit: collected from files and folders, taken from a head's photo list, and checked (Check
Photos: the face found in each, as steps like the other flows)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .. import jobs
from ..protocol import choices, settings, tasks
from ..scene_io import photos as photos_io
from ..scene_io.mesh import SceneInputError
from ..scene_io.photos import photo_path
from .steps import Status, Steps

PHOTO_SUFFIXES = choices.PHOTO_SUFFIXES


def collect_photos(paths) -> list[Path]:
    """Photo files from files and folders (a folder's images in name order); a clear error for anything else."""
    photos: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            photos += sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif not path.is_file():
            raise SceneInputError(f"photo not found: {path}")
        elif path.suffix.lower() not in PHOTO_SUFFIXES:
            raise SceneInputError(f"{path.name}: not a photo this fit reads ({', '.join(PHOTO_SUFFIXES)})")
        else:
            photos.append(path)
    if not photos:
        raise SceneInputError("no photos to fit: give image files or a folder of them")
    refuse_duplicates(photos)
    return photos


def refuse_duplicates(photos: list[Path]) -> None:
    """The same image given twice (under two names, or as a file and in its folder) would count as two views of
    the face and hide the one-photo warning: refuse it, naming both files."""
    seen: dict[str, Path] = {}
    for photo in photos:
        digest = hashlib.sha256(photo.read_bytes()).hexdigest()
        if digest in seen:
            raise SceneInputError(f"photo {photo} is the same image as {seen[digest].name} ({seen[digest]}); give "
                                  "each photo once")
        seen[digest] = photo


def detection_steps(photos: list[Path], workdir: Path | None = None) -> Steps:
    """Find the face in every photo (one "detect" job): the check that a fit's photos are usable, before any other
    work. Refuses a photo that cannot be read or shows no face, naming it; returns the job's result (points,
    found, faces_found, image_size, focal_px, warnings), which `fit_steps` takes as its detections."""
    job = jobs.Job(tasks.DETECT, settings.detect_job([p.resolve() for p in photos]), {},
                   folder=job_folder(workdir, "detect_photos"))
    yield job.start()
    detected = job.result()
    missing = [photo.name for photo, found in zip(photos, detected["found"]) if not found]
    if missing:
        raise SceneInputError(f"no face was found in photo(s) {', '.join(missing)}: remove or replace "
                              f"{'them' if len(missing) > 1 else 'it'} (a photo where the face is clearly visible)")
    return detected


def enabled_photos(mesh_obj) -> list[Path]:
    """The ticked photos of `mesh_obj`'s list as files; a message naming the first that cannot be fitted."""
    photos = [photo for photo in mesh_obj.asm.photos if photo.enabled]
    if not photos:
        raise SceneInputError(f"no photos are ticked in the photo list of {mesh_obj.name!r}; add photos (Add Photos) "
                              "or tick the ones to fit")
    paths = []
    for photo in photos:
        if not photo.filepath.strip():
            raise SceneInputError(f"a photo in the list of {mesh_obj.name!r} has no file; choose its file or remove it")
        path = photo_path(photo)
        if not path.is_file():
            raise SceneInputError(f"photo {path.name!r} not found ({path}): it was moved or deleted after it was "
                                  "added; find it again or remove it from the list")
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            raise SceneInputError(f"{path.name}: not a photo this fit reads ({', '.join(PHOTO_SUFFIXES)})")
        paths.append(path)
    refuse_duplicates(paths)
    return paths


def job_folder(workdir: Path | None, name: str) -> Path | None:
    return None if workdir is None else Path(workdir) / name


def check_steps(mesh_obj, workdir: Path | None = None) -> Steps:
    """Find the face in every photo of `mesh_obj`'s list (the worker's "detect" task, one job per photo, so an
    unreadable file gets its own message and the others are still checked); the last step writes each photo's
    status (ASM_PG_photo). Returns a summary."""
    mesh_name = mesh_obj.name
    entries = [(photo.filepath, photo_path(photo)) for photo in mesh_obj.asm.photos]
    if not entries:
        raise SceneInputError(f"the photo list of {mesh_name!r} is empty; add photos first")
    found: dict[str, dict] = {}
    for index, (key, path) in enumerate(entries):
        if key in found:
            continue
        yield Status(f"finding the face in {path.name}", 0.05 + 0.9 * index / len(entries))
        if not key.strip() or not path.is_file():
            found[key] = {"status": "MISSING", "message": f"file not found: {path}"}
            continue
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            found[key] = {"status": "ERROR", "message": f"not an image type the fit reads ({', '.join(PHOTO_SUFFIXES)})"}
            continue
        job = jobs.Job(tasks.DETECT, settings.detect_job([path.resolve()]), {},
                       folder=job_folder(workdir, f"detect_{index}"))
        yield job.start()
        try:
            detected = job.result()
        except jobs.JobError as error:
            if error.kind != tasks.INPUT_ERROR:  # cancelled, or the worker failed: the check as a whole stops
                raise
            found[key] = {"status": "ERROR", "message": str(error)}
            continue
        found[key] = _photo_status(detected)
    yield Status("writing the photos' statuses", 0.97)
    photos_io.write_photo_statuses(mesh_name, found)
    counts = {}
    for status in found.values():
        counts[status["status"]] = counts.get(status["status"], 0) + 1
    return {"mesh": mesh_name, "photos": len(found), "faces_found": counts.get("OK", 0) + counts.get("WARNING", 0),
            "statuses": counts,
            "problems": [f"{Path(key).name}: {status['message']}" for key, status in found.items()
                         if status["status"] not in ("OK",)]}


def _photo_status(detected: dict) -> dict:
    """One photo's status from a "detect" result (faces_found and warnings only from newer workers)."""
    ok = bool(detected["found"][0])
    size = tuple(int(round(float(s))) for s in detected["image_size"][0])
    faces = int(detected["faces_found"][0]) if "faces_found" in detected else int(ok)
    notes = [str(note) for note in detected.get("warnings", [])]
    if not ok:
        return {"status": "NO_FACE", "face_found": False, "image_size": size,
                "message": "; ".join(["no face found: the fit would refuse this photo"] + notes)}
    count = int(np.isfinite(np.asarray(detected["points"][0], dtype=float)).all(-1).sum())
    if faces > 1 and not any("face" in note for note in notes):
        notes.append(f"{faces} faces: the largest is used")
    return {"status": "WARNING" if notes else "OK", "face_found": True, "landmarks": count, "image_size": size,
            "message": "; ".join(notes) if notes else f"{count} landmarks, {size[0]}x{size[1]} px"}
