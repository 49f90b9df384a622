"""Fit a rig and the cameras to uncalibrated photos of a person from their 2D landmarks (ASM.md §8).

    fitted = fit_to_photos(model, rig_landmarks, rig_valid, detections, found, image_sizes, PhotoFitSettings())

Each photo's camera starts from PnP of its detected landmarks against the rig's landmark points, with a search
over focal lengths; then stages move the cameras alone, the big bones with them, every group of the rig
(identity shared by all photos, each photo's own expression on the expression bones), and last the same with
the photometric multi-view term (solver/photometric.py) when the photos' pixels are given.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .cameras import FOCAL_SEARCH, Cameras, solve_camera
from .errors import ASMInputError
from .fitting import ALL_GROUPS, ExpressionOffsets, FitResult, Stage, fit
from .geometry import closest_points_on_mesh
from .landmarks import FACE_OVAL, SURFACE_LANDMARKS
from .model import ASMModel, Pose
from .photometric import barycentric_points
from .skeleton import load_skeleton

QUALITY_STEPS = {"fast": (100, 200, 200, 100), "balanced": (150, 300, 500, 200), "best": (200, 500, 1000, 400)}
# steps of the stages: cameras, coarse, refine, photometric
EXPRESSION_MODES = ("shared", "per_photo")  # one pose for all photos, or each photo's own expression on top
MIN_PHOTO_LANDMARKS = 50
EXPRESSION_BONE_PREFIXES = ("jaw", "chin", "lip", "mouth", "lid", "brow", "cheek", "nasolabial", "eye")
OUTLIER_FACTOR, OUTLIER_FLOOR = 4.0, 0.03  # after the camera start, a landmark further from its detection than
# this many times the photo's median error and this fraction of the face's size is left out in that photo (a rig
# landmark placed wrongly on the mesh, a detection on hair)
PHOTOMETRIC_FACE_PIXELS = 256.0  # the photometric term works on photos scaled so the face is about this wide
TYPICAL_FOCAL = 1.4  # of the photo's larger side: a 50 mm lens on a full-frame (36 mm) camera
SAME_LENS_WEIGHT = 10.0  # the focal lengths' log spread against the landmarks: one lens, within a percent
EXIF_FOCAL_TRUST = 100.0  # the focal prior is this much stronger where the photo's EXIF gives the lens
SINGLE_PHOTO_PRIOR = 3.0  # one photo shows the face from one side only: priors this much stronger


@dataclass(frozen=True)
class PhotoFitSettings:
    quality: str = "balanced"
    # Measured on synthetic photos of the posed sample rig (tests/solver/test_photo_fit.py): with the scan fit's
    # weights (0.003, 1e-3) the landmarks stayed 3.7 px off (fast), with none 1.0-1.5 px, with these 1.9-2.1 px
    # (fast) or 1.7-2.0 px (balanced).
    smoothness: float = 3e-4
    pose_prior: float = 1e-4
    expressions: str = "per_photo"
    # Measured on the four sample photos of Lee Perry-Smith (one neutral face; benchmarks/photo_fit_scan.py and
    # variants, RMS to the scan within 95 mm, unfitted 2.88 mm, landmarks only 3.04): per-photo expressions with
    # a prior of 1e-3 2.70-2.84 mm (fast), 0.1 2.63 (fast) / 2.54 (balanced); one shared pose 2.60 / 2.45.
    expression_prior: float = 0.1
    focal_prior: float = 1e-5
    same_lens: bool = False  # every photo from one camera and lens (its focal length over the photo's size shared)
    photometric: float = 1e-2  # weight of the multi-view patch term (0: landmarks only; 3e-2 measured 2.72 fast,
    # 2.49 balanced; 0.1 2.77 fast with a weaker expression prior)
    photometric_points: int = 4000  # points on the face compared between photos
    silhouette: float = 0.0  # weight of the outline term (0: off: on the sample photos 1.0 measured 2.79 mm vs
    # 2.74 without, the outlines of hair-less renders adding little over the landmarks); needs the pixels
    blur: float = 0.01  # of the face's width: the photos' blur for the colour term
    seed: int = 0

    def __post_init__(self):
        if self.quality not in QUALITY_STEPS:
            raise ASMInputError(f"unknown quality {self.quality!r}; use one of {list(QUALITY_STEPS)}")
        if self.expressions not in EXPRESSION_MODES:
            raise ASMInputError(f"unknown expression handling {self.expressions!r}; use one of {list(EXPRESSION_MODES)}")

    def stages(self, bone_names, photos: int = 2, with_images: bool = False) -> list[Stage]:
        """The stages for `photos` photos; the photometric stage only with the photos' pixels and two or more."""
        cameras_steps, coarse_steps, refine_steps, photometric_steps = QUALITY_STEPS[self.quality]
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
            Stage("cameras", ("cameras",), {"landmarks_2d": 1.0, **lens}, cameras_steps, 0.01, patience=40),
            Stage("coarse", ("pose", "cameras"), {"landmarks_2d": 1.0, **priors, **lens}, coarse_steps, 0.005,
                  patience=60, bones=big),
            Stage("refine", moving, refine_losses, refine_steps, 0.003, patience=100, final_learning_rate=0.0003),
        ]
        image_terms = {name: weight for name, weight in (("photometric", self.photometric if photos >= 2 else 0.0),
                                                         ("silhouette", self.silhouette)) if weight > 0}
        if with_images and image_terms:
            stages.append(Stage("photos", moving, {**refine_losses, **image_terms}, photometric_steps, 0.001,
                                patience=60, refresh_every=10, final_learning_rate=0.0002))
        return stages

    def per_photo_expressions(self, photos: int) -> bool:
        """Each photo's own expression: asked for, and two photos or more (one photo has nothing to share)."""
        return self.expressions == "per_photo" and photos >= 2


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


def landmark_surface(vertices: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray,
                     valid: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The rig's surface landmarks as (L,) MediaPipe indices, (L, 3) vertex ids and (L, 3) barycentrics."""
    which = np.flatnonzero(np.asarray(valid[:SURFACE_LANDMARKS], dtype=bool)
                           & np.isfinite(landmarks[:SURFACE_LANDMARKS]).all(1))
    _, triangle, bary, _ = closest_points_on_mesh(landmarks[which], vertices, triangles)
    return which, torch.as_tensor(triangles[triangle]), torch.as_tensor(bary)


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

    from .photometric import prepared_image

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


def fit_to_photos(model: ASMModel, rig_landmarks: np.ndarray, rig_valid: np.ndarray, detections: np.ndarray,
                  found: np.ndarray, image_sizes: np.ndarray, settings: PhotoFitSettings = PhotoFitSettings(),
                  progress=None, photo_names: list[str] | None = None, images: list[np.ndarray] | None = None,
                  image_scale=None, exif_focal=None) -> PhotoFit:
    """Fit `model` (in place) and one camera per photo to the photos' landmarks (and colours, with `images`).

    rig_landmarks (478, 3) on the rig's mesh, detections (V, 478, 2) pixels (NaN where missing), found (V,) bool
    (photos without a face are refused: the caller names them), image_sizes (V, 2) width, height. images: V
    (h, w, 3) uint8 photos at `image_scale` (V,) of their original size (default 1), for the colour term."""
    started = time.perf_counter()
    detections = np.asarray(detections, dtype=float)
    found = np.asarray(found, dtype=bool)
    if len(detections) == 0:
        raise ASMInputError("no photos to fit")
    if not found.all():
        missing = [photo_names[i] if photo_names else int(i) for i in np.flatnonzero(~found)]
        raise ASMInputError(f"no face was found in photo(s) {missing}; remove or replace them")
    vertices = model.vertices.detach().double().cpu().numpy()
    triangles = model.triangles.cpu().numpy()
    which, ids, bary = landmark_surface(vertices, triangles, np.asarray(rig_landmarks, float), rig_valid)
    if len(which) < MIN_PHOTO_LANDMARKS:
        raise ASMInputError(f"only {len(which)} of the rig's landmarks lie on its mesh; regenerate the rig")
    detected = torch.as_tensor(detections[:, which])
    # The outline's points sit where the face turns away from the camera, a different place on the surface in
    # every photo: no fixed point of the rig matches them.
    confidence = (torch.isfinite(detected).all(-1) & ~torch.as_tensor(np.isin(which, FACE_OVAL))).double()
    detected = torch.nan_to_num(detected)
    with torch.no_grad():
        rest_points = barycentric_points(model.forward(), ids, bary).double().numpy()
    usable = confidence.numpy() > 0
    larger_side = np.asarray(image_sizes, float).max(-1)
    known = np.full(len(detections), np.nan) if exif_focal is None else np.asarray(exif_focal, float).copy()
    lens_note = []
    if len(detections) == 1 and not np.isfinite(known[0]):
        # One photo cannot tell a long lens from a flatter face: take the usual one.
        known[0] = TYPICAL_FOCAL * larger_side[0]
        lens_note.append(f"one photo without a lens in its EXIF: assumed a 50 mm equivalent ({known[0]:.0f} px)")
    starts = [solve_camera(rest_points[usable[v]], detections[v, which][usable[v]], image_sizes[v],
                           (known[v] / larger_side[v],) if np.isfinite(known[v]) else FOCAL_SEARCH)
              for v in range(len(detections))]
    if settings.same_lens and len(detections) >= 2:  # start every photo at the lens the photos agree on most
        shared = float(np.median([s["focal"] / side for s, side in zip(starts, larger_side)]))
        starts = [solve_camera(rest_points[usable[v]], detections[v, which][usable[v]], image_sizes[v], (shared,))
                  for v in range(len(detections))]
    cameras = Cameras.from_arrays([s["rotvec"] for s in starts], [s["translation"] for s in starts],
                                  [s["focal"] for s in starts], image_sizes)
    face_size = torch.as_tensor([float(np.nanmax(np.ptp(d[:, 0][np.isfinite(d[:, 0])]))) for d in detections[:, which]])
    confidence = _without_outliers(cameras, torch.as_tensor(rest_points), detected, confidence, face_size)
    targets = {"landmark_vertices": ids, "landmark_bary": bary.to(model.vertices.dtype), "landmarks_2d": detected,
               "landmark_confidence": confidence, "face_size_2d": face_size,
               "typical_focal": torch.as_tensor(np.where(np.isfinite(known), known, TYPICAL_FOCAL * larger_side)),
               "focal_trust": torch.as_tensor(np.where(np.isfinite(known), EXIF_FOCAL_TRUST, 1.0)),
               "image_side": torch.as_tensor(larger_side)}
    before = _pixel_rms(model, cameras, ids, bary, detected, confidence)
    if settings.smoothness > 0:
        from .losses import uniform_laplacian

        targets["laplacian"] = uniform_laplacian(model.triangles, len(model.vertices), model.vertices.dtype)
    views = len(detections)
    notes = lens_note
    if views == 1:
        notes.append("one photo: the face's depth comes mostly from the rig's priors (held "
                     f"{SINGLE_PHOTO_PRIOR:g} times stronger); more photos from other sides fit it better")
    with_images = images is not None and (settings.silhouette > 0 or (views >= 2 and settings.photometric > 0))
    if with_images:
        from .photometric import face_samples
        from .scan_fit import face_vertices

        scale = np.ones(views) if image_scale is None else np.asarray(image_scale, float)
        face = face_vertices(vertices, np.asarray(rig_landmarks, float), np.asarray(rig_valid, bool))
        if settings.photometric > 0 and views >= 2:
            targets["photo_images"], targets["photo_image_scale"] = prepared_photos(
                images, scale, face_size.numpy(), settings.blur, model.vertices.dtype)
            targets["photo_sample_ids"], targets["photo_sample_bary"] = face_samples(
                vertices, triangles, face, settings.photometric_points)
        if settings.silhouette > 0:
            from .silhouette import person_mask, signed_distance

            targets["silhouette_distance"] = [torch.as_tensor(signed_distance(person_mask(image)),
                                                              dtype=model.vertices.dtype) for image in images]
            targets["silhouette_scale"] = torch.as_tensor(scale, dtype=model.vertices.dtype)
            targets["silhouette_candidates"] = torch.as_tensor(face)
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
    result = fit(model, targets, settings.stages(model.rig.names, views, with_images), progress=timed,
                 seed=settings.seed, cameras=cameras, expressions=expressions)
    stage_seconds = {k: round(v, 2) for k, v in stage_seconds.items()}
    stage_seconds["total"] = round(time.perf_counter() - fit_started, 2)
    after = _pixel_rms(model, cameras, ids, bary, detected, confidence, expressions)
    from .photos import face_size as photo_face_size, identity_warnings

    names = photo_names or [f"#{v + 1}" for v in range(views)]
    notes += identity_warnings(after, [photo_face_size(d) for d in detections], names)
    with torch.no_grad():
        posed = _photo_posed(model, expressions)
        fitted_px, _ = cameras.project(barycentric_points(posed, ids, bary))
    return PhotoFit(result, cameras, before, after, time.perf_counter() - started, notes + list(result.notes),
                    expressions, stage_seconds, which, detections[:, which], fitted_px.double().cpu().numpy(),
                    confidence.numpy() > 0)


def fit_photos_job(inputs: dict[str, np.ndarray], generate: dict, names: list[str], fit_settings: dict,
                   progress, photo_names: list[str] | None = None, photos: list | None = None) -> dict:
    """The worker's "fit_photos" task: the rig as it stands in the scene (solver.generate.restore_model, with the
    edited parameters in `inputs`, or as generated when there are none), fitted to the photos' landmarks
    ("detections" (V, 478, 2), "found" (V,), "image_size" (V, 2)). Returns the fitted rig as scene arrays plus
    the fitted pose ("fit_*"), each photo's own pose with its expression ("photo_*", (V, J, 3)), the cameras
    ("camera_*") and each photo's landmark error in pixels. With `photos` (solver.photos.Photo, as loaded for their landmarks) their colours are fitted too."""
    from .generate import EDITABLE, GenerateSettings, place_rig, restore_model, rig_arrays

    settings = PhotoFitSettings(**fit_settings)
    rig_settings = GenerateSettings(**generate)
    valid = inputs["landmark_valid"].astype(bool)
    edited = {key: inputs[key] for key in EDITABLE if key in inputs}
    if edited:
        model, chart_kind = restore_model(inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"),
                                          inputs["landmarks"], valid, rig_settings, names, edited)
    else:
        rig, chart_kind = place_rig(inputs["vertices"], inputs["triangles"], inputs.get("corner_uv"),
                                    inputs["landmarks"], valid, rig_settings)
        model = ASMModel(rig, inputs["vertices"], inputs["triangles"], rig_settings.weight_config())
    views = len(inputs["detections"])
    images = scale = None
    if photos and views >= 2 and settings.photometric > 0:
        images, scale = [photo.rgb for photo in photos], [photo.scale for photo in photos]
    total_steps = sum(stage.iterations for stage in settings.stages(model.rig.names, views, images is not None))
    done = {"steps": 0}

    def report(stage: str, step: int, loss: float) -> bool:
        done["steps"] += 1
        progress(f"fit {stage}", min(done["steps"] / total_steps, 1.0), loss)
        return False

    fitted = fit_to_photos(model, inputs["landmarks"], valid, inputs["detections"], inputs["found"].astype(bool),
                           inputs["image_size"], settings, report, photo_names, images, scale, inputs.get("exif_focal"))
    arrays = rig_arrays(model, chart_kind)
    pose = model.pose.masked(model.free)
    per_photo = (fitted.expressions.poses(model.pose, model.free) if fitted.expressions is not None else
                 Pose(*(t.expand(views, *t.shape) for t in (pose.log_scale, pose.rotvec, pose.translation))))
    per_photo = per_photo.masked(model.free)
    with torch.no_grad():
        arrays.update({"fit_log_scale": pose.log_scale.double().numpy(), "fit_rotvec": pose.rotvec.double().numpy(),
                       "fit_translation": pose.translation.double().numpy(),
                       "fit_vertices": model.forward().double().numpy(),
                       "photo_log_scale": per_photo.log_scale.double().numpy(),
                       "photo_rotvec": per_photo.rotvec.double().numpy(),
                       "photo_translation": per_photo.translation.double().numpy()})
    arrays.update(fitted.cameras.as_arrays())
    arrays.update({"pixel_error_before": fitted.pixel_error_before, "pixel_error_after": fitted.pixel_error_after,
                   "history_total": np.array([h["total"] for h in fitted.result.history]),
                   "history_stage": np.array([h["stage"] for h in fitted.result.history]),
                   "landmark_ids": fitted.landmark_ids, "landmarks_detected_px": fitted.detected_px,
                   "landmarks_fitted_px": fitted.fitted_px, "landmarks_used": fitted.used,
                   "seconds": np.array(fitted.seconds),
                   "stage_seconds": np.array(json.dumps(fitted.stage_seconds))})
    arrays["warnings"] = list(arrays["warnings"]) + fitted.notes
    return arrays
