"""Photos for the photo fit: each loaded upright as 8-bit RGB at a working resolution, its face found by MediaPipe with
the landmarks in the photo's own pixels, and after the fit a check that every photo shows the same person.

Decoding is pillow's, not OpenCV's, because of what each does with a bad or unusual file (OpenCV 4.11, pillow 13,
checked when this was written):
- EXIF orientation: `cv2.imread(path)` (IMREAD_COLOR) turns the image upright, but IMREAD_UNCHANGED and
  IMREAD_IGNORE_ORIENTATION do not, so a size read one way and landmarks found on the other disagree for a phone photo
  stored sideways. Pillow leaves the pixels as stored and reports the tag (0x0112); we apply it ourselves.
- Truncation: `cv2.imread` decodes half a JPEG without complaint (libjpeg prints "Premature end of JPEG file" on stderr
  and fills the missing rows with grey) and returns None for half a PNG. Pillow's `load()` raises OSError ("image
  file is truncated") for both; `Image.verify()` does not catch a cut JPEG (it only checks PNG chunk checksums).
- 16-bit: pillow decodes 16-bit RGB PNG/TIFF to 8 bits itself, but a 16-bit grey PNG comes as mode "I;16", which
  `convert("L")` clips to white: it is scaled here.
- Huge JPEGs: pillow's draft mode decodes at 1/2, 1/4 or 1/8 scale inside libjpeg, so a 12000x9000 photo never
  occupies its full 324 MB.
"""
from __future__ import annotations

import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asm_protocol.landmarks import LANDMARK_COUNT, SURFACE_LANDMARKS

from ..core.errors import ASMInputError
from .detector import Detection, detect_face_landmarks

# Longest side the solver works at. MediaPipe finds landmarks on a 192-256 pixel crop of the face, so more pixels do
# not help detection; for the photometric term a face that fills a third of a 2048-pixel frame is still ~700 pixels
# wide, more detail than a face rig's colours need. A 2048x1536 photo is 9 MB as uint8 and 38 MB as float32, so a
# dozen photos fit in memory with room to spare, and every step that touches pixels stays fast.
MAX_WORKING_SIDE = 2048
# Photos above this many pixels are refused before decoding (a 200-megapixel phone photo is 16320x12240, below it).
# Pillow's own "decompression bomb" check (89 MP warns, 179 MP refuses) would refuse such a phone photo; it is lifted
# while a photo opens and this limit applies instead.
MAX_PIXELS = 300_000_000
NEUTRAL_BACKGROUND = 128  # transparent pixels become mid grey: no edge MediaPipe or the photometric term could latch on

_ORIENTATION_TAG = 0x0112
_EXIF_IFD, _FOCAL_35MM_TAG = 0x8769, 0xA405  # the Exif sub-directory and its FocalLengthIn35mmFilm
_MAKE_TAG, _MODEL_TAG = 0x010F, 0x0110  # the camera's maker and model (main directory)
_LENS_MODEL_TAG, _FOCAL_TAG = 0xA434, 0x920A  # the lens and its focal length in mm (Exif sub-directory)
FULL_FRAME_DIAGONAL_MM = 43.27  # "35 mm equivalent" focal lengths keep the field of view across the diagonal
_SIDEWAYS = (5, 6, 7, 8)  # orientations whose upright image swaps width and height
_ACTION = "re-export it as JPEG or PNG (or copy it again from its source)"


@dataclass
class Photo:
    path: Path
    rgb: np.ndarray  # (H, W, 3) uint8, upright, at working resolution
    original_size: tuple[int, int]  # (width, height) of the file as the user sees it (EXIF orientation applied)
    scale: float = 1.0  # working pixels per original pixel: 1.0 unless the photo was downscaled
    notes: list[str] = field(default_factory=list)
    focal_px: float | None = None  # focal length in original pixels from the EXIF 35 mm equivalent, when present
    orientation: int = 1  # the EXIF orientation the pixels were turned upright from (1: stored upright)
    camera: str | None = None  # the camera, lens and focal length its EXIF names ("Canon EOS R6, RF50mm F1.8, 50 mm");
    # None where it names no camera or no focal length: photos with one such name share one lens

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def working_size(self) -> tuple[int, int]:
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


@dataclass
class PhotoDetection:
    landmarks: np.ndarray  # (478, 2) float, x right y down, in the photo's ORIGINAL upright pixels; NaN without a face
    faces_found: int
    confidence: float | None = None  # the legacy face mesh reports no score (its result holds only the landmarks)
    notes: list[str] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.faces_found > 0


@contextmanager
def _pillow_settings():
    """Pillow's module-wide switches as this loader needs them, for the time a photo loads."""
    from PIL import Image, ImageFile

    previous = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None  # MAX_PIXELS is checked instead, from the header, before decoding
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a cut file must raise, whatever another library set
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _looks_like_heif(path: Path) -> bool:
    with path.open("rb") as stream:
        head = stream.read(16)
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def _rgb8(image) -> np.ndarray:
    """Any pillow image mode -> (H, W, 3) uint8 RGB: grey, palette, 16-bit, float, CMYK, alpha over grey."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = float(np.nanmax(values)) if values.size else 0.0
        if mode.startswith("I;16") or 255 < top <= 65535:
            values = values / 257.0
        elif mode == "F" and top <= 1.0:
            values = values * 255.0
        elif top > 255:
            values = values * (255.0 / top)
        grey = np.clip(np.nan_to_num(values), 0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255.0
        rgb = rgba[..., :3] * alpha + NEUTRAL_BACKGROUND * (1.0 - alpha)
        return rgb.round().astype(np.uint8)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _upright(image, orientation: int):
    """The stored image transformed for display, per the EXIF orientation tag (as PIL.ImageOps.exif_transpose)."""
    from PIL import Image

    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return image if method is None else image.transpose(method)


def load_photo(path, max_side: int = MAX_WORKING_SIDE) -> Photo:
    """A photo file -> Photo: upright (EXIF orientation applied), 8-bit RGB, downscaled so that its longest side is at
    most max_side (with a note saying so). Raises ASMInputError naming the file for a missing, empty, unreadable,
    truncated or too large file."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    name = path.name
    if not path.exists():
        raise ASMInputError(f"photo {path} not found: check the path, or remove the photo from the list")
    if not path.is_file():
        raise ASMInputError(f"photo {path} is not a file: choose an image file (JPEG or PNG)")
    if path.stat().st_size == 0:
        raise ASMInputError(f"photo {path} is an empty file (0 bytes): copy it again from its source")
    notes: list[str] = []
    with _pillow_settings(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pillow warns about odd but readable metadata; errors still raise
        try:
            image = Image.open(path)
        except PermissionError as error:
            raise ASMInputError(f"photo {path} cannot be read (permission denied): check the file's permissions") \
                from error
        except UnidentifiedImageError as error:
            if _looks_like_heif(path):
                raise ASMInputError(f"photo {path} is a HEIC/HEIF image, which the solver cannot read: export it "
                                    "as JPEG (on a phone: share it as JPEG or set the camera to 'Most Compatible')") \
                    from error
            raise ASMInputError(f"photo {path} is not an image the solver can read (JPEG, PNG, TIFF, WebP, BMP): "
                                f"{_ACTION}") from error
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
            raise ASMInputError(f"photo {path} cannot be read ({error}): {_ACTION}") from error
        with image:
            width, height = image.size
            if width < 1 or height < 1:
                raise ASMInputError(f"photo {path} has no pixels ({width}×{height}): {_ACTION}")
            if width * height > MAX_PIXELS:
                raise ASMInputError(f"photo {path} is {width}×{height} ({width * height / 1e6:.0f} megapixels), more "
                                    f"than the {MAX_PIXELS / 1e6:.0f} the solver reads: save a smaller copy")
            scale = min(1.0, max_side / max(width, height))
            target = (max(1, round(width * scale)), max(1, round(height * scale)))  # as stored
            box = None
            if scale < 1.0 and image.format == "JPEG":
                drafted = image.draft(None, target)  # libjpeg decodes at 1/2, 1/4 or 1/8 scale, not below target
                if drafted is not None:
                    box = drafted[1]  # the part of the reduced image that is exactly the original frame
            try:
                image.load()  # before reading EXIF: a PNG may keep it after the pixels
                shrunk = scale < 1.0 and image.mode in ("RGB", "L", "RGBA")  # shrink first: less memory
                if shrunk:
                    rgb = _rgb8(image.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0))
                else:
                    rgb = _rgb8(image)
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
                raise ASMInputError(f"photo {path} is truncated or damaged ({error}): copy it again from its source "
                                    "or re-export it") from error
            focal_35mm, camera = None, None
            try:
                exif = image.getexif()
                orientation = int(exif.get(_ORIENTATION_TAG, 1))
                focal_35mm = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM_TAG)
                camera = _camera_name(exif)
            except Exception as error:  # noqa: BLE001 - damaged metadata: the pixels are fine, use them as stored
                orientation = 1
                notes.append(f"photo {name}: its EXIF data could not be read ({error}); used as stored")
            if orientation not in range(1, 9):
                orientation = 1
            original = (height, width) if orientation in _SIDEWAYS else (width, height)
    working = Image.fromarray(rgb)
    if scale < 1.0 and not shrunk:
        working = working.resize(target, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    working = _upright(working, orientation)
    rgb = np.ascontiguousarray(np.asarray(working, dtype=np.uint8))
    if scale < 1.0:
        notes.append(f"photo {name} is {original[0]}×{original[1]}; working at {rgb.shape[1]}×{rgb.shape[0]}")
        scale = rgb.shape[1] / original[0]
    focal_px = None
    if focal_35mm is not None and 5 <= float(focal_35mm) <= 2000:  # 0 means unknown; beyond: a broken tag
        focal_px = float(focal_35mm) / FULL_FRAME_DIAGONAL_MM * float(np.hypot(*original))
    return Photo(path=path, rgb=rgb, original_size=original, scale=float(scale), notes=notes, focal_px=focal_px,
                 orientation=orientation, camera=camera)


def _camera_name(exif) -> str | None:
    """The camera, lens and focal length an EXIF block names, as one string; None without a camera or a focal
    length (a zoom lens is one lens per focal length)."""
    details = exif.get_ifd(_EXIF_IFD)
    body = " ".join(str(exif.get(tag, "")).strip(" \x00") for tag in (_MAKE_TAG, _MODEL_TAG)).strip()
    focal = details.get(_FOCAL_TAG)
    try:
        focal_mm = float(focal) if focal is not None else 0.0
    except (TypeError, ValueError, ZeroDivisionError):
        focal_mm = 0.0
    if not body or not 0.5 <= focal_mm <= 5000:
        return None
    lens = str(details.get(_LENS_MODEL_TAG, "")).strip(" \x00")
    return ", ".join(part for part in (body, lens, f"{focal_mm:g} mm") if part)


def detect_photo(photo: Photo, min_confidence: float = 0.3, small_faces: bool = True) -> PhotoDetection:
    """MediaPipe's 478 landmarks of the largest face on the photo, in its original (upright) pixels; small_faces:
    look for faces too small for the whole image's detection (detector.detect_face_landmarks)."""
    detection = detect_face_landmarks(photo.rgb, min_confidence, small_faces)
    landmarks = np.full((LANDMARK_COUNT, 2), np.nan)
    notes = []
    if detection.found:
        working_width, working_height = photo.working_size
        # per axis: the working size is rounded, and both frames span the same image edge to edge
        landmarks = detection.points * [photo.original_size[0] / working_width,
                                        photo.original_size[1] / working_height]
        if detection.faces_found > 1:
            notes.append(f"photo {photo.name}: {detection.faces_found} faces found, using the largest")
    else:
        notes.append(f"photo {photo.name}: no face found (use a photo where the face is clearly visible)")
    return PhotoDetection(landmarks=landmarks, faces_found=detection.faces_found, notes=notes)


def detect_face_landmarks_in_file(path: Path, max_side: int | None = None) -> Detection:
    """Detection on an image file, loaded by `load_photo` (upright, downscaled to `max_side` pixels, by default only
    when huge): points in the file's own upright pixels. Raises ASMInputError (a ValueError) naming an unreadable
    file."""
    detection = detect_photo(load_photo(path, max_side or MAX_WORKING_SIDE))
    return Detection(detection.landmarks if detection.found else np.zeros((0, 2)), detection.faces_found)


def face_size(landmarks: np.ndarray) -> float:
    """A face's size in pixels for relative errors: the diagonal of the box around its surface landmarks (it changes
    less with the head's turn than the face's width does). NaN without landmarks."""
    points = np.asarray(landmarks, dtype=float)[:SURFACE_LANDMARKS]
    points = points[np.isfinite(points).all(1)]
    if len(points) < 2:
        return float("nan")
    return float(np.hypot(*np.ptp(points, axis=0)))


# A face's sharpness: its grey image with the outer eye corners SHARPNESS_EYE_PIXELS apart, the spread of its finest
# detail (less a 1-pixel blur) over that of the next octave (a 1-pixel less a 4-pixel blur). Measured on the four
# sample photos: 0.32-0.38 as taken; blurred by 2 % of the eye distance (1.3 pixels at that scale) 0.15-0.22, by 5 %
# 0.12-0.16; the same photos shrunk until the eye corners lie 12-25 pixels apart 0.16-0.22.
SHARPNESS_EYE_PIXELS = 64
MIN_SHARPNESS = 0.2  # below: a blurred face
MIN_EYE_PIXELS = 30.0  # outer eye corners closer than this in the original photo: a tiny face (about 75 pixels wide)
LOW_QUALITY_WEIGHT = 0.3  # the landmarks of a blurred or tiny face count this much


@dataclass(frozen=True)
class FaceQuality:
    """How well a photo shows its face, for weighting its landmarks."""

    eye_pixels: float  # distance of the outer eye corners (landmarks 33 and 263) in the photo's original pixels
    sharpness: float  # see SHARPNESS_EYE_PIXELS (NaN where the face could not be measured)

    def problem(self) -> str | None:
        """What is wrong with the face, in words; None for a sharp face of a useful size."""
        if self.eye_pixels < MIN_EYE_PIXELS:
            return (f"the face is tiny (its eye corners lie {self.eye_pixels:.0f} pixels apart; "
                    f"{MIN_EYE_PIXELS:.0f} or more is best)")
        if self.sharpness < MIN_SHARPNESS:
            return (f"the face is blurred (sharpness {self.sharpness:.2f}; sharp photos measure "
                    f"{MIN_SHARPNESS:.1f} or more)")
        return None


def face_quality(rgb: np.ndarray, landmarks: np.ndarray, scale: float = 1.0) -> FaceQuality:
    """The quality of the face whose (478, 2) landmarks, in original pixels, lie on the (H, W, 3) uint8 working
    image `rgb` (scale: working pixels per original pixel)."""
    import cv2

    points = np.asarray(landmarks, dtype=float)
    eye = float(np.linalg.norm(points[33] - points[263]))
    face = points[:SURFACE_LANDMARKS][np.isfinite(points[:SURFACE_LANDMARKS]).all(1)] * scale
    if not np.isfinite(eye) or eye <= 0 or len(face) < 2:
        return FaceQuality(eye, float("nan"))
    height, width = rgb.shape[:2]
    left, top = np.clip(np.floor(face.min(0)).astype(int), 0, [width - 1, height - 1])
    right, bottom = np.clip(np.ceil(face.max(0)).astype(int) + 1, 1, [width, height])
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[top:bottom, left:right, :3]), cv2.COLOR_RGB2GRAY)
    factor = SHARPNESS_EYE_PIXELS / (eye * scale)
    if min(grey.shape) < 2 or not np.isfinite(factor):
        return FaceQuality(eye, float("nan"))
    grey = cv2.resize(grey.astype(np.float32) / 255.0, None, fx=factor, fy=factor,
                      interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    once = cv2.GaussianBlur(grey, (0, 0), 1.0)
    medium = float((once - cv2.GaussianBlur(grey, (0, 0), 4.0)).std())
    return FaceQuality(eye, float((grey - once).std()) / medium if medium > 0 else float("nan"))


def quality_weights(qualities: list[FaceQuality], names) -> tuple[np.ndarray, list[str]]:
    """(V,) weights of each photo's landmarks (LOW_QUALITY_WEIGHT for a blurred or tiny face, else 1) and a note
    naming each such photo."""
    weights, notes = np.ones(len(qualities)), []
    for index, quality in enumerate(qualities):
        problem = quality.problem()
        if problem is not None:
            weights[index] = LOW_QUALITY_WEIGHT
            notes.append(f"photo {names[index]}: {problem}; its landmarks count {LOW_QUALITY_WEIGHT:g} as much as "
                         "a sharp photo's (a sharper or closer photo of the face fits better)")
    return weights, notes


def identity_warnings(pixel_errors, face_sizes, names, ratio: float = 3.0, floor: float = 0.03,
                      limit: float = 0.08) -> list[str]:
    """Warnings, naming the photos, for photos the fitted rig does not match: pixel_errors (V,) RMS landmark error in
    pixels after the fit, face_sizes (V,) the faces' sizes in the same pixels (see `face_size`), names (V,).

    A photo whose relative error (error / face size) is above `ratio` times the median of the other photos' and
    above `floor` probably shows someone else (or its landmarks are wrong). With one photo, or where every photo fits
    badly, only an absolute `limit` applies. Photos with a NaN error or size are left out."""
    errors = np.asarray(pixel_errors, dtype=float)
    sizes = np.asarray(face_sizes, dtype=float)
    if errors.shape != sizes.shape or errors.ndim != 1 or len(names) != len(errors):
        raise ValueError(f"identity_warnings: {len(errors)} errors, {len(sizes)} face sizes and {len(names)} names")
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = errors / sizes
    usable = np.flatnonzero(np.isfinite(relative) & (sizes > 0))
    messages = []
    for index in usable:
        others = relative[usable[usable != index]]
        if len(others) and relative[index] > floor and relative[index] > ratio * np.median(others):
            messages.append(f"photo {names[index]} does not fit as well as the others (landmark error "
                            f"{100 * relative[index]:.1f} % of the face size vs {100 * np.median(others):.1f} %): "
                            "is it the same person? Remove it or check its landmarks, then fit again")
        elif relative[index] > limit:
            messages.append(f"photo {names[index]} fits poorly (landmark error {100 * relative[index]:.1f} % of the "
                            "face size): check that it shows the same face as the rig and that its landmarks are "
                            "right, then fit again")
    return messages
