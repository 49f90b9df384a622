"""Photometric multi-view consistency (ASM.md §8): a small patch of the face seen in several photos should show
the same texture in each. Compared by normalised cross-correlation, as multi-view stereo does: the photos'
exposure, white balance and the different lights' smooth shading drop out.

    samples = face_samples(rest_vertices, triangles, face_vertex_ids)               # points on the face
    images = [prepared_image(rgb, blur_pixels) for rgb in photos]                   # (3, H, W) float tensors
    seen = visibility(posed, triangles, samples, cameras, head_unit)                # (V, S) weights, no gradient
    patches = patch_points(points, normals, PATCH_SPACING * head_unit)              # (S, K, 3)
    loss = patch_consistency(grey_values_of_patches_in_each_photo, seen)

Visibility is a z-buffer of densely sampled surface points per photo (hand-written: no rasteriser is in the
stack; a coarse buffer is enough because the term only needs to know which side of the nose a point is on),
times how squarely the surface faces the camera. It is refreshed every few steps, like the scan terms'
correspondences, and carries no gradient.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..core.geometry import barycentric_points, vertex_normals

SAMPLE_BARYCENTRICS = np.array([[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6],
                                [1 / 6, 1 / 6, 2 / 3]])  # per face triangle: its centre and three inner points
OCCLUDER_BARYCENTRICS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0], [0, 0.5, 0.5], [0.5, 0, 0.5],
                                  [1 / 3, 1 / 3, 1 / 3]])  # corners, edge middles and centre of every triangle
FACING_LIMIT = 0.3  # cosine between the surface normal and the direction to the camera below which a point
# is too oblique to trust (its colour smears across many pixels)
DEPTH_TOLERANCE = 0.08  # head units: a point this far behind the nearest surface in its buffer cell is hidden
CELL_EDGES = 1.5  # z-buffer cell size in projected mesh edges: every cell of the front surface gets a sample
PATCH_SIZE = 5  # points per side of the square patch compared between photos
PATCH_SPACING = 0.012  # head units between patch points: about a pixel and a half at PHOTOMETRIC_FACE_PIXELS
FLAT_PATCH = 0.01  # intensity spread (0..1) below which a patch counts as flat
SHADING_BLUR = 4.0  # times the detail blur: what varies more slowly than this counts as shading


def face_samples(vertices: np.ndarray, triangles: np.ndarray, face_vertex_ids: np.ndarray,
                 limit: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on the face's triangles (those with all corners in `face_vertex_ids`), as (S, 3) vertex ids and
    (S, 3) barycentrics; at most `limit` points (an even subset of the triangles when there are more)."""
    inside = np.zeros(len(vertices), dtype=bool)
    inside[np.asarray(face_vertex_ids)] = True
    face = np.flatnonzero(inside[triangles].all(1))
    per = len(SAMPLE_BARYCENTRICS)
    if len(face) * per > limit:
        face = face[np.linspace(0, len(face) - 1, limit // per).round().astype(int)]
    ids = np.repeat(triangles[face], per, axis=0)
    bary = np.tile(SAMPLE_BARYCENTRICS, (len(face), 1))
    return torch.as_tensor(ids), torch.as_tensor(bary)


def prepared_image(rgb: np.ndarray, blur_pixels: float, dtype=torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 photo -> (3, H, W) float: its detail, the photo blurred by `blur_pixels` (wider basins for
    the gradients; the landmark fit leaves the face a few pixels off) minus the photo blurred SHADING_BLUR times
    wider. What is left is texture and sharp features (pores, stubble, lid and lip edges); the smooth shading,
    which changes with the light and the view and would pull the surface wrongly, is gone."""
    import cv2

    image = np.asarray(rgb, dtype=np.float32) / 255.0
    if blur_pixels > 0:
        detail = cv2.GaussianBlur(image, (0, 0), blur_pixels)
        image = detail - cv2.GaussianBlur(image, (0, 0), SHADING_BLUR * blur_pixels)
    return torch.as_tensor(image, dtype=dtype).permute(2, 0, 1).contiguous()


@torch.no_grad()
def visibility(posed: torch.Tensor, triangles: torch.Tensor, sample_ids: torch.Tensor, sample_bary: torch.Tensor,
               cameras, head_unit: float) -> torch.Tensor:
    """(V, S) weight of each sample point in each photo: 0 where hidden behind the surface, outside the photo or
    facing away; otherwise the cosine between the surface and the direction to the camera.

    posed (N, 3) or (V, N, 3) (each photo's own expression)."""
    views = len(cameras.image_size)
    posed = posed.expand(views, *posed.shape[-2:]) if posed.ndim == 2 else posed
    occluder_bary = torch.as_tensor(OCCLUDER_BARYCENTRICS, dtype=posed.dtype, device=posed.device)
    weights = []
    for v in range(views):
        camera = cameras.one(v)
        surface = posed[v]
        occluders = (occluder_bary[None, :, :, None] * surface[triangles][:, None]).sum(-2).reshape(-1, 3)
        pixels, depth = camera.project(occluders)
        pixels, depth = pixels[0], depth[0]
        edge_pixels, _ = camera.project(surface[triangles[:, :2]].reshape(-1, 3))
        edge = (edge_pixels[0].reshape(-1, 2, 2)[:, 0] - edge_pixels[0].reshape(-1, 2, 2)[:, 1]).norm(dim=-1)
        cell = max(float(edge.median()) * CELL_EDGES, 1.0)
        width, height = (float(s) for s in cameras.image_size[v])
        columns, rows = int(np.ceil(width / cell)) + 1, int(np.ceil(height / cell)) + 1
        buffer = torch.full((rows * columns,), float("inf"), dtype=posed.dtype, device=posed.device)
        index = _cell_index(pixels, cell, columns, rows)
        keep = (index >= 0) & (depth > 0)
        buffer = buffer.scatter_reduce(0, index[keep], depth[keep], reduce="amin")
        points = barycentric_points(surface, sample_ids, sample_bary)
        point_pixels, point_depth = camera.project(points)
        point_pixels, point_depth = point_pixels[0], point_depth[0]
        point_index = _cell_index(point_pixels, cell, columns, rows)
        inside = (point_index >= 0) & (point_depth > 0)
        nearest = buffer[point_index.clamp_min(0)]
        unhidden = point_depth <= nearest + DEPTH_TOLERANCE * head_unit
        normals = barycentric_points(vertex_normals(surface, triangles), sample_ids, sample_bary)
        centre = camera.centres()[0].to(posed.dtype)
        facing = (F.normalize(normals, dim=-1) * F.normalize(centre - points, dim=-1)).sum(-1)
        weights.append(torch.where(inside & unhidden & (facing > FACING_LIMIT), facing, torch.zeros_like(facing)))
    return torch.stack(weights)


def _cell_index(pixels: torch.Tensor, cell: float, columns: int, rows: int) -> torch.Tensor:
    """(P, 2) pixels -> (P,) z-buffer cell, -1 outside the photo."""
    column, row = (pixels[:, 0] / cell).floor().long(), (pixels[:, 1] / cell).floor().long()
    outside = (column < 0) | (row < 0) | (column >= columns) | (row >= rows)
    return torch.where(outside, torch.full_like(column, -1), row * columns + column)


def sample_colours(images: list[torch.Tensor], pixels: torch.Tensor, image_scale: torch.Tensor) -> torch.Tensor:
    """Bilinear colours of (V, S, 2) photo pixels (in the photos' original pixels) from the working images (each
    (3, h, w), `image_scale` (V,) working pixels per original pixel) -> (V, S, 3)."""
    colours = []
    for image, where, scale in zip(images, pixels, image_scale):
        height, width = image.shape[-2:]
        working = where * scale.to(where.dtype)
        grid = torch.stack([2 * working[:, 0] / width - 1, 2 * working[:, 1] / height - 1], -1)
        sampled = F.grid_sample(image[None].to(where.dtype), grid[None, None], mode="bilinear",
                                padding_mode="border", align_corners=False)
        colours.append(sampled[0, :, 0].T)
    return torch.stack(colours)


def patch_points(points: torch.Tensor, normals: torch.Tensor, spacing: float, size: int = PATCH_SIZE) -> torch.Tensor:
    """(S, 3) surface points and their (S, 3) normals -> (S, size*size, 3) a small square grid around each point in
    its tangent plane, `spacing` apart. The frame carries no gradient: the patch moves with its centre."""
    normals = F.normalize(normals.detach(), dim=-1)
    helper = torch.zeros_like(normals)
    helper[:, 1] = 1.0  # any direction not along the normal; the face's up (y) rarely is
    along_up = normals[:, 1].abs() > 0.9
    helper[along_up] = torch.tensor([1.0, 0.0, 0.0], dtype=normals.dtype, device=normals.device)
    first = F.normalize(torch.cross(normals, helper, dim=-1), dim=-1)
    second = torch.cross(normals, first, dim=-1)
    steps = (torch.arange(size, dtype=points.dtype, device=points.device) - (size - 1) / 2) * spacing
    a, b = torch.meshgrid(steps, steps, indexing="ij")
    return points[:, None] + a.reshape(1, -1, 1) * first[:, None] + b.reshape(1, -1, 1) * second[:, None]


def patch_consistency(grey: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """1 - normalised cross-correlation of each point's patch between every two photos that see it (the
    multi-view stereo measure: a patch's own mean and contrast drop out, so exposure, white balance and the
    smooth shading of different lights do not count, only where the texture lies).

    grey (V, S, K) patch intensities, seen (V, S) visibility weights -> scalar in [0, 2]."""
    centred = grey - grey.mean(-1, keepdim=True)
    contrast = torch.sqrt((centred ** 2).mean(-1, keepdim=True) + FLAT_PATCH ** 2)  # flat patches say little
    normalised = centred / contrast
    total, weight_sum = grey.new_zeros(()), grey.new_zeros(())
    views = grey.shape[0]
    for v in range(views):
        for w in range(v + 1, views):
            weight = torch.minimum(seen[v], seen[w])
            correlation = (normalised[v] * normalised[w]).mean(-1)
            total = total + (weight * (1 - correlation)).sum()
            weight_sum = weight_sum + weight.sum()
    return total / weight_sum.clamp_min(1e-9)
