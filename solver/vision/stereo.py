"""Dense multi-view correspondences guided by the fitted surface (issue 19): which pixel of one photo shows the
same piece of skin as a pixel of another, for thousands of points of the face, not only the 478 landmarks.

    images = [stereo_image(rgb) for rgb in photos]                                  # (1, H, W) grey tensors
    matches = match_views(posed, normals, sample_ids, sample_bary, seen, cameras, images, image_scale, head_unit)
    points = triangulate(cameras, matches)                                           # (M, 3), differentiable

How a pair of photos (a, b) is matched, as multi-view stereo does it with a surface to start from: each point of
the face seen squarely by both is moved along photo a's ray through it (so it stays on the same pixel of a) in
small depth steps; at each depth a small square of the surface's tangent plane is projected into both photos and
their pixels compared by normalised cross-correlation (exposure, white balance and smooth shading drop out). The
best depth (refined to a fraction of a step) gives the pixel of b that matches. The same is done the other way,
along b's ray, and a match is kept only where both agree on the surface's depth (the left-right check) and the
correlation is high, its peak inside the searched range and clearly better than the other depths.

The search is a plane sweep along one ray per point (hand-written: OpenCV's stereo matchers need rectified
pairs, which the wide angles between face photos make strongly distorted). The triangulation is the midpoint of
the two rays, in torch so that the fit can move the cameras and the surface through it (bundle adjustment).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.geometry import barycentric_points, vertex_normals
from ..core.rotations import rotvec_to_matrix
from .photometric import patch_points, visibility

SEARCH_RANGE = 0.16  # head units (iod) in front of and behind the surface searched: the mean face lies within
# about 10 mm of a person's face
SEARCH_STEPS = 49  # depths tried along the ray (a step of 0.0067 iod, about 0.4 mm)
PATCH_PIXELS = 7  # the compared square is this many of photo a's pixels per side
MIN_FACING = 0.35  # cosine between the surface and the direction to each camera: more oblique squares smear
MIN_CORRELATION = 0.7  # the best depth's normalised cross-correlation, in both directions
MIN_PEAK_MARGIN = 0.05  # how much better the best depth must be than any depth 4 steps or more away
MAX_DISAGREEMENT = 0.02  # iod (about 1.2 mm): the two directions' surface depths along the normal
MIN_CONTRAST = 0.002  # grey detail's spread (0..1) in the square: flat skin carries no position
DETAIL_BLUR = 0.8  # pixels: the photos' own noise and JPEG blocks are smoothed before comparing
SHADING_BLUR = 4.0  # pixels: what varies more slowly is shading, removed (a square on a shading gradient
# correlates with itself moved along the gradient, which hides where its texture lies)
CHUNK = 512  # points matched at once (memory: CHUNK x SEARCH_STEPS x PATCH_PIXELS^2 samples)


@dataclass
class DenseMatches:
    """M correspondences between pairs of photos."""

    sample: torch.Tensor  # (M,) long: the face sample point each started from
    view_a: torch.Tensor  # (M,) long: the photo whose ray was searched
    view_b: torch.Tensor  # (M,) long
    pixel_a: torch.Tensor  # (M, 2) in photo a's original pixels
    pixel_b: torch.Tensor  # (M, 2) in photo b's original pixels
    confidence: torch.Tensor  # (M,) in (0, 1]: the lower of the two directions' correlations, rescaled
    normal: torch.Tensor  # (M, 3) the surface's normal at the sample point when matched (no gradient)

    def __len__(self) -> int:
        return len(self.sample)

    @classmethod
    def empty(cls, dtype, device="cpu") -> "DenseMatches":
        long = torch.zeros(0, dtype=torch.long, device=device)
        return cls(long, long, long, *(torch.zeros(0, 2, dtype=dtype, device=device) for _ in range(2)),
                   torch.zeros(0, dtype=dtype, device=device), torch.zeros(0, 3, dtype=dtype, device=device))

    @classmethod
    def concatenate(cls, parts: list["DenseMatches"]) -> "DenseMatches":
        return cls(*(torch.cat([getattr(p, name) for p in parts]) for name in
                     ("sample", "view_a", "view_b", "pixel_a", "pixel_b", "confidence", "normal")))

    def pairs(self) -> dict[tuple[int, int], int]:
        """How many matches each pair of photos has."""
        counts: dict[tuple[int, int], int] = {}
        for a, b in zip(self.view_a.tolist(), self.view_b.tolist()):
            counts[(a, b)] = counts.get((a, b), 0) + 1
        return counts


def stereo_image(rgb: np.ndarray, blur_pixels: float = DETAIL_BLUR, shading_pixels: float = SHADING_BLUR,
                 dtype=torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 photo -> (1, H, W) its grey detail: lightly blurred, less the shading (a band-pass)."""
    import cv2

    grey = cv2.cvtColor(np.asarray(rgb[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    detail = cv2.GaussianBlur(grey, (0, 0), blur_pixels) if blur_pixels > 0 else grey
    if shading_pixels > 0:
        detail = detail - cv2.GaussianBlur(grey, (0, 0), shading_pixels)
    return torch.as_tensor(detail, dtype=dtype)[None]


def _sample_grey(image: torch.Tensor, pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear grey values of (..., 2) original pixels in a (1, h, w) working image -> (...); NaN outside it."""
    height, width = image.shape[-2:]
    working = pixels * scale
    grid = torch.stack([2 * working[..., 0] / width - 1, 2 * working[..., 1] / height - 1], -1)
    flat = grid.reshape(1, 1, -1, 2).to(image.dtype)
    values = F.grid_sample(image[None], flat, mode="bilinear", padding_mode="zeros", align_corners=False)
    values = values.reshape(pixels.shape[:-1]).to(pixels.dtype)
    outside = (grid.abs() > 1).any(-1)
    return torch.where(outside, torch.full_like(values, float("nan")), values)


def _normalised(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., K) patch values -> zero-mean unit-norm patches and their contrast (standard deviation)."""
    centred = patches - patches.mean(-1, keepdim=True)
    contrast = centred.pow(2).mean(-1).sqrt()
    return centred / (contrast[..., None] * patches.shape[-1] ** 0.5).clamp_min(1e-9), contrast


def _projection_with_jacobian(camera, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3) object-space points -> (..., 2) pixels of one camera and (..., 2, 3) the derivative of the pixel
    in the point: the squares compared are a few pixels wide, where the projection is affine to a hundredth of a
    pixel, so their corners are placed with it instead of projecting every one of them."""
    rotation = rotvec_to_matrix(camera.rotvec[0].to(points.dtype))
    focal = torch.exp(camera.log_focal[0]).to(points.dtype)
    in_camera = points @ rotation.T + camera.translation[0].to(points.dtype)
    depth = in_camera[..., 2:].clamp_min(1e-9)
    pixels = focal * in_camera[..., :2] / depth + camera.image_size[0].to(points.dtype) / 2
    zeros = torch.zeros_like(depth)
    local = torch.stack([torch.cat([1 / depth, zeros, -in_camera[..., :1] / depth ** 2], -1),
                         torch.cat([zeros, 1 / depth, -in_camera[..., 1:2] / depth ** 2], -1)], -2) * focal
    return pixels, local @ rotation


def _sweep(points: torch.Tensor, normals: torch.Tensor, camera_a, camera_b, image_a: torch.Tensor,
           image_b: torch.Tensor, scale_a: float, scale_b: float, head_unit: float):
    """Search along camera a's rays through (P, 3) surface points with (P, 3) normals for the depth at which the
    surface's square looks the same in photos a and b.

    Returns (P,) depth offsets along the ray in object units, (P,) best correlation, (P,) peak margin and (P,)
    the square's contrast in photo a; NaN offsets where the square leaves a photo or no depth stands out."""
    dtype = points.dtype
    centre = camera_a.centres()[0].to(dtype)
    rays = F.normalize(points - centre, dim=-1)
    _, depth = camera_a.project(points)
    focal = torch.exp(camera_a.log_focal[0]).to(dtype)
    spacing = depth[0] / focal  # object units per original pixel of photo a at each point
    squares = patch_points(torch.zeros_like(points), normals, 1.0, PATCH_PIXELS)  # (P, K, 3) unit spacing
    squares = squares * (spacing / scale_a)[:, None, None]  # one working pixel of photo a apart
    offsets = torch.linspace(-SEARCH_RANGE, SEARCH_RANGE, SEARCH_STEPS, dtype=dtype) * head_unit
    centre_a, jacobian_a = _projection_with_jacobian(camera_a, points)
    reference = centre_a[:, None] + squares @ jacobian_a.transpose(-1, -2)  # (P, K, 2)
    grey_a = _sample_grey(image_a, reference, scale_a)  # (P, K)
    normalised_a, contrast = _normalised(grey_a)
    moved = points[:, None] + offsets[None, :, None] * rays[:, None]  # (P, D, 3)
    centre_b, jacobian_b = _projection_with_jacobian(camera_b, moved)  # (P, D, 2), (P, D, 2, 3)
    pixels = centre_b[:, :, None] + torch.einsum("pkc,pdxc->pdkx", squares, jacobian_b)  # (P, D, K, 2)
    grey_b = _sample_grey(image_b, pixels, scale_b)  # (P, D, K)
    normalised_b, _ = _normalised(grey_b)
    correlation = (normalised_a[:, None] * normalised_b).sum(-1)  # (P, D)
    correlation = torch.nan_to_num(correlation, nan=-1.0)
    best = correlation.argmax(-1)
    peak = correlation.gather(1, best[:, None])[:, 0]
    steps = torch.arange(SEARCH_STEPS)
    far = (steps[None] - best[:, None]).abs() >= 4
    margin = peak - torch.where(far, correlation, torch.full_like(correlation, -1.0)).max(-1).values
    inside = (best > 0) & (best < SEARCH_STEPS - 1)
    # a parabola through the best step and its neighbours: the peak to a fraction of a step
    left = correlation.gather(1, (best - 1).clamp_min(0)[:, None])[:, 0]
    right = correlation.gather(1, (best + 1).clamp_max(SEARCH_STEPS - 1)[:, None])[:, 0]
    curvature = left - 2 * peak + right
    fraction = torch.where(curvature < 0, 0.5 * (left - right) / curvature.clamp_max(-1e-9), torch.zeros_like(peak))
    step = offsets[1] - offsets[0]
    offset = offsets[best] + fraction.clamp(-0.5, 0.5) * step
    offset = torch.where(inside & torch.isfinite(grey_a).all(-1), offset, torch.full_like(offset, float("nan")))
    return offset, peak, margin, contrast


@torch.no_grad()
def match_pair(points: torch.Tensor, normals: torch.Tensor, cameras, a: int, b: int, images: list[torch.Tensor],
               image_scale, head_unit: float) -> dict[str, torch.Tensor]:
    """Match (P, 3) surface points seen by photos a and b, searching along both photos' rays (the left-right
    check). Returns per point: "kept" (P,) bool, "pixel_a", "pixel_b" (P, 2), "confidence" (P,)."""
    camera_a, camera_b = cameras.one(a), cameras.one(b)
    results = {"offset_a": [], "offset_b": [], "peak": [], "margin": [], "contrast": []}
    for start in range(0, len(points), CHUNK):
        chunk, chunk_normals = points[start:start + CHUNK], normals[start:start + CHUNK]
        offset_a, peak_a, margin_a, contrast_a = _sweep(chunk, chunk_normals, camera_a, camera_b, images[a],
                                                        images[b], float(image_scale[a]), float(image_scale[b]),
                                                        head_unit)
        offset_b, peak_b, margin_b, contrast_b = _sweep(chunk, chunk_normals, camera_b, camera_a, images[b],
                                                        images[a], float(image_scale[b]), float(image_scale[a]),
                                                        head_unit)
        results["offset_a"].append(offset_a)
        results["offset_b"].append(offset_b)
        results["peak"].append(torch.minimum(peak_a, peak_b))
        results["margin"].append(torch.minimum(margin_a, margin_b))
        results["contrast"].append(torch.minimum(contrast_a, contrast_b))
    offset_a, offset_b, peak, margin, contrast = (torch.cat(results[k]) for k in
                                                  ("offset_a", "offset_b", "peak", "margin", "contrast"))
    rays_a = F.normalize(points - camera_a.centres()[0].to(points.dtype), dim=-1)
    rays_b = F.normalize(points - camera_b.centres()[0].to(points.dtype), dim=-1)
    # The two searches moved the point along different rays; they agree when they put the surface at the same
    # height along its normal.
    height_a = offset_a * (rays_a * normals).sum(-1)
    height_b = offset_b * (rays_b * normals).sum(-1)
    agree = (height_a - height_b).abs() <= MAX_DISAGREEMENT * head_unit
    kept = torch.isfinite(offset_a) & torch.isfinite(offset_b) & agree & (peak >= MIN_CORRELATION) \
        & (margin >= MIN_PEAK_MARGIN) & (contrast >= MIN_CONTRAST)
    found = points + torch.nan_to_num(offset_a)[:, None] * rays_a
    pixel_a, _ = camera_a.project(points)
    pixel_b, _ = camera_b.project(found)
    confidence = ((peak - MIN_CORRELATION) / (1 - MIN_CORRELATION)).clamp(0.05, 1.0)
    return {"kept": kept, "pixel_a": pixel_a[0], "pixel_b": pixel_b[0], "confidence": confidence}


@torch.no_grad()
def match_views(posed: torch.Tensor, normals: torch.Tensor, sample_ids: torch.Tensor, sample_bary: torch.Tensor,
                seen: torch.Tensor, cameras, images: list[torch.Tensor], image_scale, head_unit: float,
                min_facing: float = MIN_FACING) -> DenseMatches:
    """Dense correspondences between every two photos that see the same part of the face.

    posed (N, 3) the current surface, normals (N, 3) its vertex normals, sample_ids / sample_bary (S, 3) points on
    the face, seen (V, S) their visibility weights (solver.vision.photometric.visibility: the cosine towards each
    camera, 0 where hidden), images V (1, h, w) from stereo_image, image_scale (V,) working per original pixel."""
    points = barycentric_points(posed, sample_ids, sample_bary).float()  # single precision: a hundredth of a pixel
    point_normals = F.normalize(barycentric_points(normals, sample_ids, sample_bary), dim=-1).float()
    views = len(images)
    parts = []
    for a in range(views):
        for b in range(a + 1, views):
            common = torch.nonzero((seen[a] > min_facing) & (seen[b] > min_facing))[:, 0]
            if len(common) == 0:
                continue
            found = match_pair(points[common], point_normals[common], cameras, a, b, images, image_scale, head_unit)
            kept = found["kept"]
            if not kept.any():
                continue
            count = int(kept.sum())
            parts.append(DenseMatches(common[kept], torch.full((count,), a), torch.full((count,), b),
                                      found["pixel_a"][kept], found["pixel_b"][kept], found["confidence"][kept],
                                      point_normals[common][kept]))
    if not parts:
        return DenseMatches.empty(posed.dtype, posed.device)
    matches = DenseMatches.concatenate(parts)
    for name in ("pixel_a", "pixel_b", "confidence", "normal"):
        setattr(matches, name, getattr(matches, name).to(posed.dtype))
    return matches


def match_surface(posed: torch.Tensor, triangles: torch.Tensor, sample_ids: torch.Tensor, sample_bary: torch.Tensor,
                  cameras, images: list[torch.Tensor], image_scale, head_unit: float) -> DenseMatches:
    """match_views on a surface as it stands: (N, 3) posed vertices and their (T, 3) triangles, which give the
    normals and, by a z-buffer (solver.vision.photometric.visibility), which photos see each sample point."""
    seen = visibility(posed, triangles, sample_ids, sample_bary, cameras, head_unit)
    return match_views(posed, vertex_normals(posed, triangles), sample_ids, sample_bary, seen, cameras, images,
                       image_scale, head_unit)


def camera_rays(cameras, views: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,) photo ids and (M, 2) original pixels -> (M, 3) each camera's centre and (M, 3) unit ray directions in
    object space, differentiable in the cameras."""
    dtype = pixels.dtype
    rotation = rotvec_to_matrix(cameras.rotvec.to(dtype))[views]  # (M, 3, 3) object -> camera
    focal = torch.exp(cameras.log_focal.to(dtype))[views]
    size = cameras.image_size.to(dtype)[views]
    in_camera = torch.cat([(pixels - size / 2) / focal[:, None], torch.ones_like(focal)[:, None]], -1)
    directions = F.normalize((rotation.transpose(-1, -2) @ in_camera[..., None])[..., 0], dim=-1)
    return cameras.centres().to(dtype)[views], directions


def triangulate(cameras, matches: DenseMatches) -> torch.Tensor:
    """(M, 3) the midpoint of the closest approach of each match's two rays (differentiable in the cameras)."""
    origin_a, direction_a = camera_rays(cameras, matches.view_a, matches.pixel_a)
    origin_b, direction_b = camera_rays(cameras, matches.view_b, matches.pixel_b)
    between = origin_b - origin_a
    cosine = (direction_a * direction_b).sum(-1)
    along_a, along_b = (between * direction_a).sum(-1), (between * direction_b).sum(-1)
    denominator = (1 - cosine ** 2).clamp_min(1e-9)
    t_a = (along_a - cosine * along_b) / denominator
    t_b = (cosine * along_a - along_b) / denominator
    return 0.5 * (origin_a + t_a[:, None] * direction_a + origin_b + t_b[:, None] * direction_b)
