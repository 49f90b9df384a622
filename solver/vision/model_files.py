"""The face models' files: which ones, where they lie, and the message when one is missing.

They are MediaPipe 0.10.21's Apache-2.0 TensorFlow Lite models, run by LiteRT (`ai-edge-litert`). They are never
downloaded at run time: `python build.py --models` (which scripts/env.sh runs) takes them, with MediaPipe's licence,
out of the mediapipe 0.10.21 wheel into `solver/vision/models/` (kept out of git), and build.py puts that folder into
the extension zip. Standard library only, so that build.py can read this table without the solver's packages.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.errors import ASMInputError

MODELS_DIR = Path(__file__).resolve().parent / "models"
MEDIAPIPE_VERSION = "0.10.21"
# file name -> (its path inside the mediapipe wheel, its SHA-256 there)
MODEL_FILES = {
    "face_detection_short_range.tflite": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "face_landmark.tflite": (
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"),
    "iris_landmark.tflite": (
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f"),
    "selfie_segmentation.tflite": (
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
}
LICENCE_FILE = "LICENSE.mediapipe"  # the wheel's own licence file (dist-info LICENSE), beside the models
WHEEL_LICENCE = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"


class MissingModelError(ASMInputError):
    """A face model file is not where the solver looks for it (a checkout without `build.py --models`, a damaged
    install)."""


def missing_model_message(name: str, folder: Path = MODELS_DIR) -> str:
    return (f"the face model file {name} is missing from {folder}: in a checkout run `python build.py --models` "
            f"(it takes the file from the mediapipe {MEDIAPIPE_VERSION} wheel); in Blender install the ASM Face Rig "
            "zip again")


def model_path(name: str, folder: Path = MODELS_DIR) -> Path:
    """The path of model file `name`; MissingModelError naming the file and what to do when it is not there."""
    path = folder / name
    if not path.is_file():
        raise MissingModelError(missing_model_message(name, folder))
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def complete(folder: Path = MODELS_DIR) -> bool:
    """Whether `folder` holds every model file, unchanged, and the licence."""
    return (folder / LICENCE_FILE).is_file() and all(
        (folder / name).is_file() and sha256((folder / name).read_bytes()) == digest
        for name, (_, digest) in MODEL_FILES.items())
