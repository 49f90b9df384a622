"""Photo input for the photo fit (solver/vision/photos.py): loading any photo a user may pick (EXIF-rotated, grey, 16-bit,
huge, damaged), finding the face with real MediaPipe on real images, and the same-person check after a fit.

Every image is written by the test into tmp_path, from the bundled render of the sample head (its red landmark dots
painted out: MediaPipe finds no face with them) or the real portrait in ../shared/data (skipped when absent).
"""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from solver.core.errors import ASMInputError
from solver.vision.photos import (MAX_WORKING_SIDE, detect_photo, face_size, identity_warnings, load_photo)
from tests.conftest import SAMPLE_DIR


def _render_face() -> np.ndarray:
    """The sample head's front render, red dots inpainted, cropped to the head: (420, 292, 3) uint8 RGB."""
    import cv2

    bgr = cv2.imread(str(SAMPLE_DIR / "landmarks_front.png"))
    blue, green, red = (bgr[..., i].astype(int) for i in range(3))
    dots = cv2.dilate(((red - np.maximum(green, blue)) > 40).astype(np.uint8), np.ones((3, 3), np.uint8))
    clean = cv2.inpaint(bgr, dots, 3, cv2.INPAINT_TELEA)
    return np.ascontiguousarray(cv2.cvtColor(clean, cv2.COLOR_BGR2RGB)[60:480, 110:402])


@pytest.fixture(scope="module")
def render_face() -> np.ndarray:
    return _render_face()


@pytest.fixture(scope="module", params=["render", "portrait"])
def face(request) -> np.ndarray:
    """A face image (H, W, 3) uint8 RGB whose height and width differ (so a wrong rotation shows)."""
    if request.param == "render":
        return _render_face()
    from PIL import Image

    shared_data = request.getfixturevalue("shared_data")
    return np.asarray(Image.open(shared_data / "photos" / "astronaut.png").convert("RGB"))[20:340, 110:350].copy()


def _save(rgb: np.ndarray, path, **options):
    from PIL import Image

    Image.fromarray(rgb).save(path, **options)
    return path


def _exif(orientation: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _stored(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for an upright image when it writes EXIF orientation `orientation`
    (the tag says how to transform the stored pixels for display)."""
    stored = {1: upright, 2: upright[:, ::-1], 3: upright[::-1, ::-1], 4: upright[::-1],
              5: upright.transpose(1, 0, 2),  # display = transpose(stored)
              6: np.rot90(upright, 1),  # display = stored turned 90 degrees clockwise
              7: upright[::-1, ::-1].transpose(1, 0, 2),  # transverse: its own inverse
              8: np.rot90(upright, -1)}[orientation]  # display = stored turned 90 degrees anticlockwise
    return np.ascontiguousarray(stored)


def _median_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(a - b, axis=1)))


def test_a_face_photo_loads_as_is_and_its_landmarks_are_found(face, tmp_path):
    photo = load_photo(_save(face, tmp_path / "face.png"))
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == face.shape
    np.testing.assert_array_equal(photo.rgb, face)
    assert photo.original_size == (face.shape[1], face.shape[0]) and photo.scale == 1.0 and photo.notes == []
    detection = detect_photo(photo)
    assert detection.found and detection.faces_found == 1 and detection.notes == []
    assert detection.landmarks.shape == (478, 2) and np.isfinite(detection.landmarks).all()
    assert (detection.landmarks >= 0).all() and (detection.landmarks <= [face.shape[1], face.shape[0]]).all()


@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_a_photo_without_a_face_is_not_found(kind, tmp_path):
    shape = (400, 300, 3)
    pixels = (np.full(shape, 128, np.uint8) if kind == "flat"
              else np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    detection = detect_photo(load_photo(_save(pixels, tmp_path / f"{kind}.png")))
    assert not detection.found and detection.faces_found == 0
    assert detection.landmarks.shape == (478, 2) and np.isnan(detection.landmarks).all()
    assert detection.notes and f"{kind}.png" in detection.notes[0] and "no face" in detection.notes[0]


def _larger_of_two_faces(smaller: np.ndarray, larger: np.ndarray, tmp_path):
    """The detection on the two images side by side, the smaller face first (so that it is not picked by order):
    both found, a note, and the landmarks on the larger."""
    pair = np.concatenate([smaller, larger], axis=1)
    detection = detect_photo(load_photo(_save(pair, tmp_path / "pair.png")))
    assert detection.found and detection.faces_found == 2
    assert detection.notes == ["photo pair.png: 2 faces found, using the largest"]
    assert detection.landmarks[:, 0].min() > smaller.shape[1]  # on the right-hand (larger) face
    return detection


def test_of_two_faces_the_largest_is_used_and_a_note_says_so(face, tmp_path):
    import cv2

    small = cv2.resize(face, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    left = np.empty((face.shape[0], small.shape[1], 3), np.uint8)
    left[:] = face[0, 0]
    top = (face.shape[0] - small.shape[0]) // 2
    left[top:top + small.shape[0]] = small
    detection = _larger_of_two_faces(left, face, tmp_path)
    alone = detect_photo(load_photo(_save(face, tmp_path / "alone.png")))
    # the same face as found alone, but for MediaPipe's wobble with the frame around it (2.3 pixels on the render)
    assert _median_distance(detection.landmarks - [small.shape[1], 0], alone.landmarks) < 5.0


def test_two_small_faces_side_by_side_are_found_and_the_larger_is_used(tmp_path):
    """A portrait whose face is small in its frame, tiled twice: on the whole image each face is too small for
    MediaPipe's face detector (it found none before issue 22); in windows of the image both are found."""
    from PIL import Image

    portrait = np.asarray(Image.open(SAMPLE_DIR.parent / "lps_photos" / "photo_1.jpg").convert("RGB"))
    height, width = portrait.shape[:2]
    frame = np.full((3 * height, 3 * width, 3), 200, np.uint8)  # the face a third as large in its frame
    frame[height:2 * height, width:2 * width] = portrait
    smaller = np.asarray(Image.fromarray(frame).resize((int(0.8 * frame.shape[1]), int(0.8 * frame.shape[0]))))
    beside = np.full_like(frame, 200)
    beside[:smaller.shape[0], :smaller.shape[1]] = smaller
    detection = _larger_of_two_faces(beside, frame, tmp_path)
    alone = detect_photo(load_photo(_save(portrait, tmp_path / "alone.png")))
    shift = [frame.shape[1] + width, height]
    assert _median_distance(detection.landmarks - shift, alone.landmarks) < 0.03 * face_size(alone.landmarks)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height: its header, then a few bytes of pixel data and its end."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case, expected", [
    ("missing", "not found"),
    ("empty", "empty file"),
    ("text", "not an image"),
    ("half_jpeg", "truncated or damaged"),
    ("half_png", "truncated or damaged"),
    ("heic", "HEIC"),
    ("folder", "not a file"),
    ("too_large", "megapixels"),
])
def test_an_unusable_file_raises_a_message_naming_it(case, expected, render_face, tmp_path):
    path = tmp_path / {"half_png": "portrait.png", "folder": "photos"}.get(case, "portrait.jpg")
    if case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("these are my notes about the shoot, not a photo\n" * 20)
    elif case in ("half_jpeg", "half_png"):
        # cv2.imread would return half a JPEG filled with grey (it only prints "Premature end of JPEG file")
        whole = _save(render_face, tmp_path / f"whole{path.suffix}", **({"quality": 90} if case == "half_jpeg" else {}))
        data = whole.read_bytes()
        path.write_bytes(data[:len(data) // 2])
    elif case == "heic":
        path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200))
    elif case == "folder":
        path.mkdir()
    elif case == "too_large":
        path.write_bytes(_png_header_only(40000, 30000))
    with pytest.raises(ASMInputError, match=expected) as caught:
        load_photo(path)
    message = str(caught.value)
    assert path.name in message
    assert any(word in message for word in ("check", "copy", "export", "choose", "save")), message


def _disc_centres(rgb: np.ndarray, centres, radius: float) -> np.ndarray:
    """Intensity-weighted centres (continuous pixel coordinates, 0 at the image's left/top edge) of dark discs."""
    dark = 255.0 - rgb.mean(axis=2)
    found = []
    for x, y in centres:
        x0, x1, y0, y1 = int(x - 2 * radius), int(x + 2 * radius), int(y - 2 * radius), int(y + 2 * radius)
        patch = dark[y0:y1, x0:x1] - np.median(dark[y0:y1, x0:x1])
        patch = np.clip(patch, 0, None)
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        found.append([(patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()])
    return np.array(found)


def test_a_huge_photo_is_downscaled_with_a_note_and_landmarks_in_its_own_pixels(render_face, tmp_path):
    import cv2

    # a 900x675 canvas (the face plus dark discs at known places) blown up to 12000x9000, written cheaply
    # (MediaPipe's face detector misses this face on a 1200x900 canvas: too small in the frame)
    pad_y, pad_x = (675 - render_face.shape[0]) // 2, (900 - render_face.shape[1]) // 2
    canvas = cv2.copyMakeBorder(render_face, pad_y, 675 - render_face.shape[0] - pad_y, pad_x,
                                900 - render_face.shape[1] - pad_x, cv2.BORDER_CONSTANT,
                                value=[int(v) for v in render_face[0, 0]])
    discs = [(80.5, 80.5), (820.5, 110.5), (110.5, 600.5), (790.5, 590.5)]  # continuous coordinates
    for x, y in discs:
        cv2.circle(canvas, (int(x), int(y)), 10, (20, 20, 20), -1)
    factor = 12000 / 900
    huge = cv2.resize(canvas, (12000, 9000), interpolation=cv2.INTER_LINEAR)
    path = _save(huge, tmp_path / "huge.jpg", quality=70)
    del huge

    photo = load_photo(path)
    assert photo.original_size == (12000, 9000)
    assert photo.rgb.shape == (1536, 2048, 3) and max(photo.rgb.shape) == MAX_WORKING_SIDE
    assert photo.scale == pytest.approx(2048 / 12000)
    assert photo.notes == ["photo huge.jpg is 12000×9000; working at 2048×1536"]
    # the working image is the original frame, exactly: the discs sit where they were put (to a working pixel's 1/4)
    expected = np.array(discs) * factor
    seen = _disc_centres(photo.rgb, expected * photo.scale, 10 * factor * photo.scale) / photo.scale
    np.testing.assert_allclose(seen, expected, atol=0.25 / photo.scale)

    detection = detect_photo(photo)
    assert detection.found
    on_small_copy = detect_photo(load_photo(_save(canvas, tmp_path / "small.png")))
    # MediaPipe moves its points by 1-2 pixels between resolutions of the same picture: a few canvas pixels, scaled
    assert _median_distance(detection.landmarks, on_small_copy.landmarks * factor) < 3.0 * factor


@pytest.mark.parametrize("suffix", [".jpg", ".png", "_16bit.png"])
def test_a_downscaled_photo_keeps_its_frame_exactly(suffix, tmp_path):
    """1601x1201 to at most 200 pixels: libjpeg's 1/8 draft is 201x151 pixels, the last ones partly outside the
    photo, and the working image must still span the photo edge to edge."""
    import cv2

    canvas = np.full((1201, 1601, 3), 200, np.uint8)
    discs = np.array([(100.5, 100.5), (1500.5, 150.5), (120.5, 1100.5), (1480.5, 1080.5), (800.5, 600.5)])
    for x, y in discs:
        cv2.circle(canvas, (int(x), int(y)), 40, (10, 10, 10), -1)
    if suffix == "_16bit.png":  # shrunk after its conversion to 8 bits, not before
        canvas = canvas[..., 0].astype(np.uint16) * 257
    photo = load_photo(_save(canvas, tmp_path / f"photo{suffix}", **({"quality": 95} if suffix == ".jpg" else {})),
                       max_side=200)
    assert photo.rgb.shape == (150, 200, 3) and photo.original_size == (1601, 1201)
    assert photo.notes == [f"photo photo{suffix} is 1601×1201; working at 200×150"]
    seen = _disc_centres(photo.rgb, discs * photo.scale, 40 * photo.scale) / photo.scale
    np.testing.assert_allclose(seen, discs, atol=0.25 / photo.scale)


def test_a_grey_photo_works(face, tmp_path):
    from PIL import Image

    grey = np.asarray(Image.fromarray(face).convert("L"))
    photo = load_photo(_save(grey, tmp_path / "grey.png"))
    assert photo.rgb.shape == face.shape and photo.rgb.dtype == np.uint8
    assert (photo.rgb == grey[..., None]).all()
    detection = detect_photo(photo)
    assert detection.found
    in_colour = detect_photo(load_photo(_save(face, tmp_path / "colour.png")))
    assert _median_distance(detection.landmarks, in_colour.landmarks) < 4.0


def test_image_modes_become_8_bit_rgb(tmp_path):
    import cv2
    from PIL import Image

    ramp = np.linspace(0, 255, 48 * 64).reshape(48, 64).round().astype(np.uint8)
    colour = np.stack([ramp, ramp[::-1], np.full_like(ramp, 200)], axis=-1)
    grey16 = ramp.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "grey16.png"), grey16)
    cv2.imwrite(str(tmp_path / "colour16.png"), colour[..., ::-1].astype(np.uint16) * 257)  # cv2 writes BGR
    Image.fromarray(colour).quantize(256).save(tmp_path / "palette.png")
    rgba = np.dstack([colour, np.where(np.arange(64) < 32, 255, 0).astype(np.uint8)[None].repeat(48, 0)])
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(colour).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)

    def loaded(name):
        rgb = load_photo(tmp_path / name).rgb
        assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3), name
        return rgb.astype(int)

    assert np.abs(loaded("grey16.png") - ramp[..., None]).max() <= 1  # scaled, not clipped to white
    assert np.abs(loaded("colour16.png") - colour).max() <= 1
    assert np.abs(loaded("palette.png") - colour).mean() < 4
    with_alpha = loaded("rgba.png")
    np.testing.assert_array_equal(with_alpha[:, :32], colour[:, :32])  # opaque half as it is
    assert (with_alpha[:, 32:] == 128).all()  # transparent half: neutral grey
    assert np.abs(loaded("cmyk.jpg") - colour).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation, tmp_path):
    upright = np.zeros((48, 64, 3), np.uint8)  # four flat quadrants, distinct under every flip and turn
    upright[:24, :32], upright[:24, 32:] = (230, 30, 30), (30, 230, 30)
    upright[24:, :32], upright[24:, 32:] = (30, 30, 230), (230, 230, 30)
    path = _save(_stored(upright, orientation), tmp_path / "phone.jpg", quality=95, exif=_exif(orientation))
    photo = load_photo(path)
    assert photo.original_size == (64, 48)
    assert photo.rgb.shape == upright.shape
    assert np.abs(photo.rgb.astype(int) - upright).mean() < 4


@pytest.mark.parametrize("orientation", [6, 8])
def test_an_exif_rotated_photo_gives_the_landmarks_of_the_upright_one(orientation, face, tmp_path):
    upright_path = _save(face, tmp_path / "upright.jpg", quality=95)
    rotated_path = _save(_stored(face, orientation), tmp_path / "sideways.jpg", quality=95,
                         exif=_exif(orientation))
    upright, rotated = load_photo(upright_path), load_photo(rotated_path)
    assert rotated.original_size == upright.original_size == (face.shape[1], face.shape[0])
    assert np.abs(rotated.rgb.astype(int) - upright.rgb).mean() < 3  # same pixels but for JPEG's losses
    a, b = detect_photo(upright), detect_photo(rotated)
    assert a.found and b.found
    assert _median_distance(a.landmarks, b.landmarks) < 3.0


def test_the_worker_reports_landmarks_sizes_and_notes_per_photo(render_face, tmp_path):
    from solver.worker.tasks import detect

    def detect_in_images(paths, progress):
        return detect({}, {"images": paths}, progress, tmp_path)

    sideways = _save(_stored(render_face, 6), tmp_path / "sideways.jpg", quality=95, exif=_exif(6))
    blank = _save(np.full((300, 200, 3), 90, np.uint8), tmp_path / "blank.png")
    result = detect_in_images([str(sideways), str(blank)], lambda *args, **kwargs: None)
    assert result["points"].shape == (2, 478, 2)
    assert result["found"].tolist() == [True, False] and result["faces_found"].tolist() == [1, 0]
    np.testing.assert_array_equal(result["image_size"], [[render_face.shape[1], render_face.shape[0]], [200, 300]])
    assert np.isfinite(result["points"][0]).all() and np.isnan(result["points"][1]).all()
    assert (result["points"][0] <= [render_face.shape[1], render_face.shape[0]]).all()  # the upright frame
    assert any("blank.png" in note and "no face" in note for note in result["warnings"])
    with pytest.raises(ASMInputError, match="missing.jpg"):
        detect_in_images([str(tmp_path / "missing.jpg")], lambda *args, **kwargs: None)


def test_identity_warnings_name_the_photo_that_does_not_fit():
    sizes = np.array([400.0, 380.0, 900.0, 410.0])  # pixels: the third photo is a close-up
    similar = np.array([4.0, 3.6, 9.5, 4.3])  # about 1 % of each face
    assert identity_warnings(similar, sizes, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]) == []

    outlier = similar.copy()
    outlier[1] = 0.06 * sizes[1]  # 6 % of its face: someone else
    messages = identity_warnings(outlier, sizes, ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    assert len(messages) == 1 and "photo b.jpg does not fit as well as the others" in messages[0]
    assert "6.0 %" in messages[0] and "same person" in messages[0]

    small = similar * 0.1  # 10x the others' error, but all tiny: below the floor, no warning
    small[1] = 0.02 * sizes[1]
    assert identity_warnings(small, sizes, ["a", "b", "c", "d"]) == []

    two = identity_warnings([4.0, 40.0], [400.0, 400.0], ["left.png", "right.png"])
    assert len(two) == 1 and "right.png" in two[0]

    with_unfitted = identity_warnings([4.0, np.nan, 4.4], [400.0, 400.0, 400.0], ["a", "b", "c"])
    assert with_unfitted == []


def test_identity_warnings_with_one_photo_only_warn_above_an_absolute_limit():
    assert identity_warnings([8.0], [400.0], ["only.jpg"]) == []  # 2 %
    messages = identity_warnings([60.0], [400.0], ["only.jpg"])  # 15 %
    assert len(messages) == 1 and "only.jpg" in messages[0] and "15.0 %" in messages[0]


def test_face_size_is_the_landmarks_box_diagonal():
    points = np.full((478, 2), np.nan)
    points[:468] = np.random.default_rng(1).uniform([100, 50], [400, 450], (468, 2))
    points[0], points[1] = [100, 50], [400, 450]
    points[470] = [10_000, 10_000]  # iris points are left out
    assert face_size(points) == pytest.approx(500.0)
    assert np.isnan(face_size(np.full((478, 2), np.nan)))


def test_the_lens_is_read_from_exif_when_present(tmp_path):
    """FocalLengthIn35mmFilm (the phone's "equivalent" focal length) becomes pixels over the photo's diagonal; a
    missing or zero tag gives None."""
    from PIL import Image

    pixels = np.full((300, 400, 3), 128, dtype=np.uint8)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 50  # 50 mm equivalent
    tagged = _save(pixels, tmp_path / "tagged.jpg", quality=90, exif=exif)
    assert load_photo(tagged).focal_px == pytest.approx(50 / 43.27 * 500.0)
    exif.get_ifd(0x8769)[0xA405] = 0  # "unknown" in the EXIF standard
    assert load_photo(_save(pixels, tmp_path / "zero.jpg", quality=90, exif=exif)).focal_px is None
    assert load_photo(_save(pixels, tmp_path / "plain.jpg", quality=90)).focal_px is None


def test_photos_stored_sideways_get_an_upright_copy_for_blender(tmp_path):
    """Blender shows an image as stored: the worker writes an upright PNG of each photo an EXIF tag turns (for the
    photo camera's background) and nothing for a photo stored upright."""
    import cv2

    from solver.worker.tasks import upright_copies

    upright = np.zeros((60, 90, 3), dtype=np.uint8)
    upright[:20, :30] = (255, 0, 0)  # a red corner at the top left, as displayed
    plain = _save(upright, tmp_path / "plain.jpg", quality=95)
    sideways = _save(_stored(upright, 6), tmp_path / "sideways.jpg", quality=95, exif=_exif(6))
    copies = upright_copies([load_photo(plain), load_photo(sideways)], tmp_path)
    assert copies[0] == ""
    copy = cv2.imread(copies[1])[..., ::-1]
    assert copy.shape == (60, 90, 3) and copy[5, 5, 0] > 200 and copy[5, 5, 2] < 60 and copy[50, 80].max() < 60


def test_a_detect_job_reads_renders_at_max_side_and_answers_in_their_own_pixels(render_face, tmp_path):
    """Generate's renders are made at twice the size the detector reads them (solver worker's `max_side`)."""
    from asm_blender.jobs import run_blocking
    from PIL import Image

    height, width = render_face.shape[:2]
    large = np.asarray(Image.fromarray(render_face).resize((2 * width, 2 * height), Image.Resampling.BICUBIC))
    path = _save(large, tmp_path / "render.png")
    found = run_blocking("detect", {"images": [str(path)], "max_side": max(height, width)}, {},
                         report=lambda progress: None)
    assert found["found"].tolist() == [True]
    np.testing.assert_array_equal(found["image_size"], [[2 * width, 2 * height]])
    direct = detect_photo(load_photo(_save(render_face, tmp_path / "small.png")))
    # the same picture as the detector saw it, its points scaled into the large file's pixels
    assert _median_distance(found["points"][0], direct.landmarks * 2) < 2.0 * 2


def _sample_photo(name: str = "photo_1.jpg"):
    from tests.conftest import PROJECT_ROOT

    return load_photo(PROJECT_ROOT / "samples" / "lps_photos" / name)


def test_face_quality_tells_a_sharp_face_from_a_blurred_and_a_tiny_one(tmp_path):
    """The first sample photo as taken, blurred by 5 % of its eye distance, and saved 8 times smaller (its eye corners
    about 24 pixels apart): only the last two are named, each for what is wrong with it."""
    import dataclasses

    import cv2

    from solver.vision.photos import MIN_SHARPNESS, face_quality

    photo = _sample_photo()
    detection = detect_photo(photo)
    sharp = face_quality(photo.rgb, detection.landmarks, photo.scale)
    assert sharp.problem() is None and sharp.sharpness > 1.3 * MIN_SHARPNESS, sharp
    blurred = dataclasses.replace(photo, rgb=cv2.GaussianBlur(photo.rgb, (0, 0), 0.05 * sharp.eye_pixels))
    quality = face_quality(blurred.rgb, detect_photo(blurred).landmarks, blurred.scale)
    assert "blurred" in quality.problem() and quality.sharpness < MIN_SHARPNESS, quality
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), cv2.resize(photo.rgb[..., ::-1], None, fx=1 / 8, fy=1 / 8, interpolation=cv2.INTER_AREA))
    small = load_photo(path)
    found = detect_photo(small)
    assert found.found
    quality = face_quality(small.rgb, found.landmarks, small.scale)
    assert "tiny" in quality.problem() and 20 < quality.eye_pixels < 30, quality


def test_a_blurred_photo_counts_less_and_the_fit_names_it(sample_mesh, sample_rig):
    """Two sample photos, the second blurred: its landmarks get the low weight, and the fit says why, naming it."""
    import dataclasses

    import cv2

    from solver.fit.photo_fit import PhotoFitSettings, PhotoObservations, fit_to_photos
    from solver.model import ASMModel
    from solver.vision.photos import LOW_QUALITY_WEIGHT

    first, second = _sample_photo("photo_1.jpg"), _sample_photo("photo_3.jpg")
    eye = np.linalg.norm(np.subtract(*detect_photo(second).landmarks[[33, 263]]))
    second = dataclasses.replace(second, rgb=cv2.GaussianBlur(second.rgb, (0, 0), 0.05 * eye * second.scale))
    photos = [first, second]
    observations = PhotoObservations.from_photos(photos, [detect_photo(p) for p in photos], pixels=False)
    assert observations.landmark_weight.tolist() == [1.0, LOW_QUALITY_WEIGHT]
    assert len(observations.notes) == 1 and "photo_3.jpg" in observations.notes[0], observations.notes
    model = ASMModel(sample_rig, sample_mesh["vertices"], sample_mesh["triangles"])
    fitted = fit_to_photos(model, sample_mesh["landmarks"], sample_mesh["landmark_valid"], observations,
                           PhotoFitSettings("fast"))
    assert any("photo_3.jpg" in note and "blurred" in note for note in fitted.notes), fitted.notes
    assert not any("photo_1.jpg" in note and "blurred" in note for note in fitted.notes)


def test_the_camera_and_lens_are_read_from_exif(tmp_path):
    """Make, Model, LensModel and FocalLength name the camera and lens; without a camera or a focal length, none."""
    from PIL import Image

    pixels = np.full((300, 400, 3), 128, dtype=np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R6"
    exif.get_ifd(0x8769)[0xA434] = "RF50mm F1.8 STM"
    exif.get_ifd(0x8769)[0x920A] = 50.0
    assert load_photo(_save(pixels, tmp_path / "full.jpg", quality=90, exif=exif)).camera == \
        "Canon EOS R6, RF50mm F1.8 STM, 50 mm"
    del exif.get_ifd(0x8769)[0xA434]
    assert load_photo(_save(pixels, tmp_path / "no_lens.jpg", quality=90, exif=exif)).camera == "Canon EOS R6, 50 mm"
    del exif.get_ifd(0x8769)[0x920A]
    assert load_photo(_save(pixels, tmp_path / "no_focal.jpg", quality=90, exif=exif)).camera is None
    assert load_photo(_save(pixels, tmp_path / "plain.jpg", quality=90)).camera is None
