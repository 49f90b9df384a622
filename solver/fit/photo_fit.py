"""Fit a rig and the cameras to uncalibrated photos of a person from their 2D landmarks (ASM.md §8).

    photos = PhotoObservations(detections, found, image_sizes, names=..., images=..., image_scale=...)
    fitted = fit_to_photos(model, rig_landmarks, rig_valid, photos, PhotoFitSettings())

Each photo's camera starts from PnP of its detected landmarks against the rig's landmark points, with a search
over focal lengths; then stages move the cameras alone, the big bones with them, every group of the rig
(identity shared by all photos, each photo's own expression on the expression bones), and last the same with
the photometric multi-view term (solver/vision/photometric.py) when the photos' pixels are given. Why each weight
is what it is: docs/architecture.md, "Measured settings".
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from asm_protocol.choices import DEFAULT_EXPRESSIONS, EXPRESSION_MODES
from asm_protocol.landmarks import FACE_OVAL

from ..core.errors import ASMInputError
from ..core.geometry import barycentric_points
from ..model import ASMModel
from ..template.skeleton import load_skeleton
from ..vision.cameras import FOCAL_SEARCH, Cameras, solve_camera
from ..vision.photometric import face_samples, prepared_image
from ..vision.photos import face_size as photo_face_size
from ..vision.photos import face_quality, identity_warnings, quality_weights
from ..vision.silhouette import person_mask, signed_distance
from ..vision.stereo import match_surface, stereo_image
from .engine import ALL_GROUPS, ExpressionOffsets, FitResult, Stage, fit
from .landmark_surface import face_vertices, landmark_surface
from .losses import uniform_laplacian

QUALITY_STEPS = {"fast": (100, 200, 50, 300), "balanced": (150, 300, 50, 300), "best": (200, 500, 50, 400)}
# steps of the stages: cameras, coarse, refine, photos (keys: asm_protocol.choices.QUALITIES). Without the
# photos' pixels the landmark stage gets the photos stage's steps too. With them the landmark stage stays short
# (MediaPipe's landmarks are biased by 5-12 px) and the photos stage does not grow with the quality: longer ones
# turned the cameras away and measured worse (docs/architecture.md, "Measured settings")
MIN_PHOTO_LANDMARKS = 50
EXPRESSION_BONE_PREFIXES = ("jaw", "chin", "lip", "mouth", "lid", "brow", "cheek", "nasolabial", "eye")
OUTLIER_FACTOR, OUTLIER_FLOOR = 4.0, 0.03  # after the camera start, a landmark further from its detection than
# this many times the photo's median error and this fraction of the face's size is left out in that photo (a rig
# landmark placed wrongly on the mesh, a detection on hair)
PHOTOMETRIC_FACE_PIXELS = 256.0  # the photometric term works on photos scaled so the face is about this wide
TYPICAL_FOCAL = 1.4  # of the photo's larger side: a 50 mm lens on a full-frame (36 mm) camera
SAME_LENS_WEIGHT = 10.0  # the focal lengths' log spread against the landmarks: one lens, within a percent
EXIF_FOCAL_TRUST = 100.0  # the focal prior is this much stronger where the photo's EXIF gives the lens
MIN_PATCH_PHOTOS = 3  # the patch term with two photos only made the Fran scan's fit worse than the unfitted
# rig (3.2-3.5 mm against 2.93; without it 2.46), and Lee Perry-Smith's no better than the dense term alone
SINGLE_PHOTO_PRIOR = 3.0  # one photo shows the face from one side only: priors this much stronger


@dataclass(frozen=True)
class PhotoFitSettings:
    quality: str = "balanced"
    smoothness: float = 3e-4  # the scan fit's weight kept the landmarks twice as far off on synthetic photos
    pose_prior: float = 1e-4
    expressions: str = DEFAULT_EXPRESSIONS
    expression_prior: float = 0.1  # a weak prior lets each photo's expression take up the identity's shape
    focal_prior: float = 1e-5
    same_lens: bool = False  # every photo from one camera and lens (its focal length over the photo's size shared)
    photometric: float = 3e-3  # weight of the multi-view patch term (0: off); with MIN_PATCH_PHOTOS or more
    photometric_points: int = 4000  # points on the face compared between photos
    stereo_points: int = 8000  # points on the face matched between photos when the patch term is off (else its own)
    stereo: float = 1.0  # weight of the dense multi-view geometry term (0: off); needs pixels and two photos
    stereo_landmarks: float = 0.3  # the landmarks' weight once the dense term carries the shape
    silhouette: float = 0.0  # weight of the outline term (0: off: 0.06-0.21 mm worse with 8 views); needs pixels
    blur: float = 0.01  # of the face's width: the photos' blur for the colour term
    seed: int = 0

    def __post_init__(self):
        if self.quality not in QUALITY_STEPS:
            raise ASMInputError(f"unknown quality {self.quality!r}; use one of {list(QUALITY_STEPS)}")
        if self.expressions not in EXPRESSION_MODES:
            raise ASMInputError(f"unknown expression handling {self.expressions!r}; use one of {list(EXPRESSION_MODES)}")

    def stages(self, bone_names, photos: int = 2, with_images: bool = False) -> list[Stage]:
        """The stages for `photos` photos; the photos stage only with the photos' pixels and an image term that
        `photos` photos can use (image_terms)."""
        cameras_steps, coarse_steps, refine_steps, photometric_steps = QUALITY_STEPS[self.quality]
        image_terms = self.image_terms(photos)
        if not (with_images and image_terms):
            refine_steps += photometric_steps
        big = tuple(name for name in load_skeleton("game").names if name in bone_names)
        strength = SINGLE_PHOTO_PRIOR if photos == 1 else 1.0
        priors = {name: weight * strength for name, weight in (("pose_prior", self.pose_prior),
                                                                ("smoothness", self.smoothness)) if weight > 0}
        lens = {"focal_prior": self.focal_prior} if self.focal_prior > 0 else {}
        if self.same_lens and photos >= 2:
            lens["focal_agreement"] = SAME_LENS_WEIGHT
        per_photo = self.per_photo_expressions(photos)
        moving = ALL_GROUPS + ("cameras",) + (("expressions",) if per_photo else ())
        refine_losses = {"landmarks_2d": 1.0, **priors, **lens, "gaussian_size": 1e-3, "bind_offset_prior": 1e-5,
                         **({"expression_prior": self.expression_prior} if per_photo else {})}
        stages = [
            Stage(name="cameras", groups=("cameras",), losses={"landmarks_2d": 1.0, **lens},
                  iterations=cameras_steps, learning_rate=0.01, patience=40),
            Stage(name="coarse", groups=("pose", "cameras"), losses={"landmarks_2d": 1.0, **priors, **lens},
                  iterations=coarse_steps, learning_rate=0.005, patience=60, bones=big),
            Stage(name="refine", groups=moving, losses=refine_losses, iterations=refine_steps, learning_rate=0.003,
                  patience=100, final_learning_rate=0.0003),
        ]
        if with_images and image_terms:
            losses = {**refine_losses, **image_terms}
            if "stereo" in image_terms:
                losses["landmarks_2d"] = self.stereo_landmarks
            stages.append(Stage(name="photos", groups=moving, losses=losses,
                                iterations=photometric_steps, learning_rate=0.001, patience=60, refresh_every=10,
                                final_learning_rate=0.0002))
        return stages

    def per_photo_expressions(self, photos: int) -> bool:
        """Each photo's own expression: asked for, and two photos or more (one photo has nothing to share)."""
        return self.expressions == "per_photo" and photos >= 2

    def image_terms(self, photos: int) -> dict[str, float]:
        """The terms on the photos' pixels that `photos` photos take, with their weights: the outline term, the
        dense term with two photos or more, the patch term with MIN_PATCH_PHOTOS or more."""
        return {name: weight for name, weight, least in (("photometric", self.photometric, MIN_PATCH_PHOTOS),
                                                         ("silhouette", self.silhouette, 1),
                                                         ("stereo", self.stereo, 2)) if weight > 0 and photos >= least}

    def uses_images(self, photos: int) -> bool:
        """Whether the photos' pixels take part."""
        return bool(self.image_terms(photos))


@dataclass
class PhotoObservations:
    """What the photos show, one entry per photo (V of them)."""

    detections: np.ndarray  # (V, 478, 2) landmark pixels in the photo's original upright pixels, NaN where missing
    found: np.ndarray  # (V,) bool: a face was found (photos without one are refused, named)
    image_sizes: np.ndarray  # (V, 2) width, height of the original upright photo
    names: list[str] | None = None  # for messages
    images: list[np.ndarray] | None = None  # V (h, w, 3) uint8 at `image_scale`, for the colour and outline terms
    image_scale: np.ndarray | None = None  # (V,) working pixels per original pixel (default 1)
    exif_focal: np.ndarray | None = None  # (V,) the lens from EXIF in original pixels, NaN where absent
    landmark_weight: np.ndarray | None = None  # (V,) how much each photo's landmarks count (default 1: blurred and
    # tiny faces count less, solver.vision.photos.quality_weights)
    cameras: list[str | None] | None = None  # (V,) the camera, lens and focal length each photo's EXIF names
    notes: list[str] = field(default_factory=list)  # about the photos themselves, for the fit's notes

    def __post_init__(self):
        self.detections = np.asarray(self.detections, dtype=float)
        self.found = np.asarray(self.found, dtype=bool)

    @classmethod
    def from_photos(cls, photos: list, detections: list, pixels: bool = True) -> "PhotoObservations":
        """From loaded photos (solver.vision.photos.Photo) and their detections (PhotoDetection); `pixels`: with
        the images for the colour terms. Each found face's quality sets its landmarks' weight (blurred and tiny
        faces count less, with a note)."""
        names = [p.name for p in photos]
        # a photo without a face has NaN landmarks: face_quality measures nothing there, so it keeps weight 1
        weights, notes = quality_weights([face_quality(p.rgb, d.landmarks, p.scale)
                                          for p, d in zip(photos, detections)], names)
        return cls(np.stack([d.landmarks for d in detections]), np.array([d.found for d in detections]),
                   np.array([p.original_size for p in photos], dtype=float), names=names,
                   images=[p.rgb for p in photos] if pixels else None,
                   image_scale=[p.scale for p in photos] if pixels else None,
                   exif_focal=np.array([np.nan if p.focal_px is None else p.focal_px for p in photos]),
                   landmark_weight=weights, notes=notes, cameras=[p.camera for p in photos])

    def one_lens(self) -> str | None:
        """The camera, lens and focal length that every photo's EXIF names, when it is one for all (two photos or
        more); None otherwise."""
        named = set(self.cameras or [None])
        return named.pop() if len(self) >= 2 and len(named) == 1 and None not in named else None

    def __len__(self) -> int:
        return len(self.detections)

    def label(self, index: int):
        return self.names[index] if self.names else int(index)


@dataclass
class PhotoFit:
    result: FitResult
    cameras: Cameras
    pixel_error_before: np.ndarray  # (V,) RMS landmark error per photo in pixels, after the camera start
    pixel_error_after: np.ndarray  # (V,)
    seconds: float
    notes: list[str] = field(default_factory=list)
    expressions: ExpressionOffsets | None = None  # each photo's own expression offsets, when fitted
    stage_seconds: dict[str, float] = field(default_factory=dict)
    landmark_ids: np.ndarray | None = None  # (L,) the MediaPipe landmarks the rig has on its surface
    detected_px: np.ndarray | None = None  # (V, L, 2) their detections (NaN where missing)
    fitted_px: np.ndarray | None = None  # (V, L, 2) the fitted rig's landmark points in each photo
    used: np.ndarray | None = None  # (V, L) bool: fitted (not an outline point, not an outlier)
    dense_matches: dict[tuple[int, int], int] = field(default_factory=dict)  # dense matches per pair of photos
    # after the landmark stages (the photos stage starts from them)


def expression_bones(names) -> torch.Tensor:
    """(J,) bool: the bones a photo's own expression may move."""
    return torch.as_tensor([name.startswith(EXPRESSION_BONE_PREFIXES) for name in names])


def _photo_posed(model: ASMModel, expressions: ExpressionOffsets | None) -> torch.Tensor:
    """(N, 3) shared pose, or (V, N, 3) with each photo's expression."""
    return model.forward() if expressions is None else model.forward(expressions.poses(model.pose, model.free))


def _pixel_rms(model: ASMModel, cameras: Cameras, ids, bary, detected, confidence,
               expressions: ExpressionOffsets | None = None) -> np.ndarray:
    with torch.no_grad():
        points = barycentric_points(_photo_posed(model, expressions), ids, bary)
        pixels, _ = cameras.project(points)
        squared = ((pixels - detected.to(pixels.dtype)) ** 2).sum(-1) * confidence
        return torch.sqrt(squared.sum(-1) / confidence.sum(-1).clamp_min(1)).cpu().numpy()


def prepared_photos(images: list[np.ndarray], image_scale, face_size: np.ndarray, blur: float,
                    dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The photos for the colour term: each scaled so the face is about PHOTOMETRIC_FACE_PIXELS wide and blurred
    by `blur` of that width. images: V (h, w, 3) uint8 at `image_scale` (V,) working pixels per original pixel;
    face_size (V,) the face's width in original pixels. Returns V (3, h', w') tensors and their (V,) scales."""
    import cv2

    prepared, scales = [], []
    for image, scale, face in zip(images, np.asarray(image_scale, float), face_size):
        shrink = min(1.0, PHOTOMETRIC_FACE_PIXELS / max(float(face) * scale, 1.0))
        if shrink < 1.0:
            width = max(int(round(image.shape[1] * shrink)), 1)
            height = max(int(round(image.shape[0] * shrink)), 1)
            shrink = width / image.shape[1]  # what the rounding made of it
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        prepared.append(prepared_image(image, blur * PHOTOMETRIC_FACE_PIXELS, dtype))
        scales.append(scale * shrink)
    return prepared, torch.as_tensor(scales, dtype=dtype)


def _without_outliers(cameras: Cameras, points: torch.Tensor, detected: torch.Tensor, confidence: torch.Tensor,
                      face_size: torch.Tensor) -> torch.Tensor:
    """(V, L) confidence with each photo's outlying landmarks (see OUTLIER_FACTOR) set to 0."""
    with torch.no_grad():
        pixels, _ = cameras.project(points.to(cameras.rotvec.dtype))
        error = (pixels - detected.to(pixels.dtype)).norm(dim=-1)
    kept = confidence.clone()
    for v in range(len(kept)):
        median = error[v][kept[v] > 0].median()
        limit = torch.maximum(OUTLIER_FACTOR * median, OUTLIER_FLOOR * face_size[v].to(median.dtype))
        kept[v][error[v] > limit] = 0.0
    return kept


@dataclass
class _Lenses:
    known: np.ndarray  # (V,) focal lengths in pixels taken as known (EXIF, or the usual one for a lone photo), NaN
    larger_side: np.ndarray  # (V,) each photo's larger side in pixels
    notes: list[str]


def _lenses(photos: PhotoObservations) -> _Lenses:
    larger_side = np.asarray(photos.image_sizes, float).max(-1)
    known = np.full(len(photos), np.nan) if photos.exif_focal is None else np.asarray(photos.exif_focal, float).copy()
    notes = []
    if len(photos) == 1 and not np.isfinite(known[0]):
        # One photo cannot tell a long lens from a flatter face: take the usual one.
        known[0] = TYPICAL_FOCAL * larger_side[0]
        notes.append(f"one photo without a lens in its EXIF: assumed a 50 mm equivalent ({known[0]:.0f} px)")
    return _Lenses(known, larger_side, notes)


def _camera_starts(rest_points: np.ndarray, pixels: np.ndarray, usable: np.ndarray, photos: PhotoObservations,
                   lenses: _Lenses, same_lens: bool) -> Cameras:
    """Each photo's camera by PnP of its usable landmarks (pixels (V, L, 2)) against the rig's (L, 3) at rest: at
    the known lens, else the best of the focal search; with `same_lens`, all again at the lens they agree on most."""
    def solve(v: int, factors) -> dict:
        return solve_camera(rest_points[usable[v]], pixels[v][usable[v]], photos.image_sizes[v], factors)

    known, side = lenses.known, lenses.larger_side
    starts = [solve(v, (known[v] / side[v],) if np.isfinite(known[v]) else FOCAL_SEARCH) for v in range(len(photos))]
    if same_lens and len(photos) >= 2:
        shared = float(np.median([s["focal"] / larger for s, larger in zip(starts, side)]))
        starts = [solve(v, (shared,)) for v in range(len(photos))]
    return Cameras.from_arrays([s["rotvec"] for s in starts], [s["translation"] for s in starts],
                               [s["focal"] for s in starts], photos.image_sizes)


def _image_targets(settings: PhotoFitSettings, photos: PhotoObservations, model: ASMModel, face: np.ndarray,
                   face_size: torch.Tensor) -> dict:
    """The colour and outline terms' targets from the photos' pixels."""
    dtype = model.vertices.dtype
    vertices = model.vertices.detach().double().cpu().numpy()
    triangles = model.triangles.cpu().numpy()
    scale = np.ones(len(photos)) if photos.image_scale is None else np.asarray(photos.image_scale, float)
    targets = {}
    terms = settings.image_terms(len(photos))
    if "photometric" in terms:
        targets["photo_images"], targets["photo_image_scale"] = prepared_photos(
            photos.images, scale, face_size.numpy(), settings.blur, dtype)
        targets["photo_sample_ids"], targets["photo_sample_bary"] = face_samples(
            vertices, triangles, face, settings.photometric_points)
    if "stereo" in terms:
        targets["stereo_images"] = [stereo_image(image, dtype=dtype) for image in photos.images]
        targets["stereo_image_scale"] = torch.as_tensor(scale, dtype=dtype)
        if "photo_sample_ids" not in targets:
            targets["photo_sample_ids"], targets["photo_sample_bary"] = face_samples(
                vertices, triangles, face, settings.stereo_points)
    if "silhouette" in terms:
        targets["silhouette_distance"] = [torch.as_tensor(signed_distance(person_mask(image)), dtype=dtype)
                                          for image in photos.images]
        targets["silhouette_scale"] = torch.as_tensor(scale, dtype=dtype)
        targets["silhouette_candidates"] = torch.as_tensor(face)
    return targets


def fit_to_photos(model: ASMModel, rig_landmarks: np.ndarray, rig_valid: np.ndarray, photos: PhotoObservations,
                  settings: PhotoFitSettings = PhotoFitSettings(), progress=None,
                  known_cameras: Cameras | None = None) -> PhotoFit:
    """Fit `model` (in place) and one camera per photo to the photos' landmarks (and colours, with their images).

    rig_landmarks (478, 3) on the rig's mesh, rig_valid (478,). progress(stage, step, loss) -> True cancels.
    known_cameras: calibrated cameras in the rig's frame (a photo booth, or the benchmark's true cameras), used as
    they are: only the rig moves."""
    started = time.perf_counter()
    if len(photos) == 0:
        raise ASMInputError("no photos to fit")
    if not photos.found.all():
        missing = [photos.label(i) for i in np.flatnonzero(~photos.found)]
        raise ASMInputError(f"no face was found in photo(s) {missing}; remove or replace them")
    vertices = model.vertices.detach().double().cpu().numpy()
    triangles = model.triangles.cpu().numpy()
    which, ids, bary = landmark_surface(vertices, triangles, np.asarray(rig_landmarks, float), rig_valid)
    if len(which) < MIN_PHOTO_LANDMARKS:
        raise ASMInputError(f"only {len(which)} of the rig's landmarks lie on its mesh; regenerate the rig")
    pixels = photos.detections[:, which]
    detected = torch.as_tensor(pixels)
    # The outline's points sit where the face turns away from the camera, a different place on the surface in
    # every photo: no fixed point of the rig matches them.
    confidence = (torch.isfinite(detected).all(-1) & ~torch.as_tensor(np.isin(which, FACE_OVAL))).double()
    detected = torch.nan_to_num(detected)
    with torch.no_grad():
        rest_points = barycentric_points(model.forward(), ids, bary).double().numpy()
    lenses = _lenses(photos)
    exif_lens = None if settings.same_lens else photos.one_lens()
    if exif_lens is not None:
        settings = dataclasses.replace(settings, same_lens=True)
    if known_cameras is None:
        cameras = _camera_starts(rest_points, pixels, confidence.numpy() > 0, photos, lenses, settings.same_lens)
    else:
        if len(known_cameras.image_size) != len(photos):
            raise ASMInputError(f"{len(known_cameras.image_size)} known cameras for {len(photos)} photos")
        cameras = Cameras(*(t.detach().clone() for t in (known_cameras.rotvec, known_cameras.translation,
                                                          known_cameras.log_focal, known_cameras.image_size)))
    face_size = torch.as_tensor([float(np.nanmax(np.ptp(d[:, 0][np.isfinite(d[:, 0])]))) for d in pixels])
    confidence = _without_outliers(cameras, torch.as_tensor(rest_points), detected, confidence, face_size)
    if photos.landmark_weight is not None:
        confidence = confidence * torch.as_tensor(photos.landmark_weight, dtype=confidence.dtype)[:, None]
    known = lenses.known
    targets = {"landmark_vertices": ids, "landmark_bary": bary.to(model.vertices.dtype), "landmarks_2d": detected,
               "landmark_confidence": confidence, "face_size_2d": face_size,
               "typical_focal": torch.as_tensor(np.where(np.isfinite(known), known,
                                                         TYPICAL_FOCAL * lenses.larger_side)),
               "focal_trust": torch.as_tensor(np.where(np.isfinite(known), EXIF_FOCAL_TRUST, 1.0)),
               "image_side": torch.as_tensor(lenses.larger_side)}
    before = _pixel_rms(model, cameras, ids, bary, detected, confidence)
    if settings.smoothness > 0:
        targets["laplacian"] = uniform_laplacian(model.triangles, len(model.vertices), model.vertices.dtype)
    views = len(photos)
    notes = photos.notes + lenses.notes
    if exif_lens is not None:
        notes.append(f"the photos' EXIF names one camera and lens ({exif_lens}): they share its focal length")
    if views == 1:
        notes.append("one photo: the face's depth comes mostly from the rig's priors (held "
                     f"{SINGLE_PHOTO_PRIOR:g} times stronger); more photos from other sides fit it better")
    with_images = photos.images is not None and settings.uses_images(views)
    if with_images:
        face = face_vertices(vertices, np.asarray(rig_landmarks, float), np.asarray(rig_valid, bool))
        targets.update(_image_targets(settings, photos, model, face, face_size))
    expressions = None
    if settings.per_photo_expressions(views):
        expressions = ExpressionOffsets.zeros(views, expression_bones(model.rig.names), model.vertices.dtype,
                                              model.vertices.device)
    stage_seconds: dict[str, float] = {}
    clock = {"since": time.perf_counter()}

    def timed(stage: str, step: int, loss: float) -> bool:  # each step's time goes to its stage
        now = time.perf_counter()
        stage_seconds[stage] = stage_seconds.get(stage, 0.0) + now - clock["since"]
        clock["since"] = now
        return bool(progress(stage, step, loss)) if progress is not None else False

    fit_started = clock["since"] = time.perf_counter()
    stages = settings.stages(model.rig.names, views, with_images)
    if known_cameras is not None:
        stages = [dataclasses.replace(stage, groups=tuple(g for g in stage.groups if g != "cameras"))
                  for stage in stages if stage.groups != ("cameras",)]
    names = photos.names or [f"#{v + 1}" for v in range(views)]
    dense: dict[tuple[int, int], int] = {}
    landmark_stages = [stage for stage in stages if stage.name != "photos"]
    result = fit(model, targets, landmark_stages, progress=timed, seed=settings.seed, cameras=cameras,
                 expressions=expressions)
    photos_stage = [stage for stage in stages if stage.name == "photos"]
    if photos_stage and not result.cancelled:
        stage = photos_stage[0]
        if "stereo" in stage.losses:
            # Photos that share too little skin (front and back, or lit beyond recognition) would leave the
            # patch term alone with landmarks held weakly: keep to the landmarks instead, and say so.
            dense = _final_matches(model, cameras, expressions, targets)
            if sum(dense.values()) < MIN_DENSE_MATCHES:
                notes.append(_overlap_note(dense, names))
                stage = dataclasses.replace(stage, name="refine more", losses={
                    **{name: weight for name, weight in stage.losses.items() if name not in IMAGE_LOSSES},
                    "landmarks_2d": 1.0})
        later = fit(model, targets, [stage], progress=timed, seed=settings.seed, cameras=cameras,
                    expressions=expressions)
        result = dataclasses.replace(later, history=result.history + later.history,
                                     notes=result.notes + later.notes)
    stage_seconds = {k: round(v, 2) for k, v in stage_seconds.items()}
    stage_seconds["total"] = round(time.perf_counter() - fit_started, 2)
    after = _pixel_rms(model, cameras, ids, bary, detected, confidence, expressions)
    notes += identity_warnings(after, [photo_face_size(d) for d in photos.detections], names)
    with torch.no_grad():
        fitted_px, _ = cameras.project(barycentric_points(_photo_posed(model, expressions), ids, bary))
    return PhotoFit(result=result, cameras=cameras, pixel_error_before=before, pixel_error_after=after,
                    seconds=time.perf_counter() - started, notes=notes + list(result.notes), expressions=expressions,
                    stage_seconds=stage_seconds, landmark_ids=which, detected_px=pixels,
                    fitted_px=fitted_px.double().cpu().numpy(), used=confidence.numpy() > 0, dense_matches=dense)


MIN_DENSE_MATCHES = 100  # fewer between all photos together, after the landmark stages: too little overlap
IMAGE_LOSSES = ("photometric", "stereo", "silhouette")


def _final_matches(model: ASMModel, cameras: Cameras, expressions: ExpressionOffsets | None,
                   targets: dict) -> dict[tuple[int, int], int]:
    """How many dense matches each pair of photos has at the current surface and cameras."""
    with torch.no_grad():
        posed = _photo_posed(model, expressions)
        matches = match_surface(posed if posed.ndim == 2 else posed.mean(0), model.triangles,
                                targets["photo_sample_ids"], targets["photo_sample_bary"], cameras,
                                targets["stereo_images"], targets["stereo_image_scale"], float(model.rig.head_unit))
    return matches.pairs()


def _overlap_note(dense: dict[tuple[int, int], int], names: list) -> str:
    """The note for photos that share too little of the face for dense matching (front and back, or one lit so
    differently that nothing matches): the shape then came from the landmarks."""
    return (f"the photos {', '.join(str(n) for n in names)} show too little of the same skin for dense matching "
            f"({sum(dense.values())} points matched): the face's shape came from the landmarks alone; add photos "
            "from between these directions (30-45 degrees apart)")
