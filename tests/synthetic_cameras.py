"""Known cameras around a test head, shared by the solver's and Blender's camera tests (no OpenCV needed)."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def camera_set(centre, distance, yaws=(0.0, 35.0, -30.0), pitches=(5.0, -8.0, 10.0), focals=(900.0, 1500.0, 2400.0),
               sizes=((1000, 800), (1200, 1600), (2000, 1500))):
    """Photos of a head looking along +Z with +Y up (the sample's OBJ axes), from different sides and lenses."""
    rotvecs, translations = [], []
    for yaw, pitch in zip(yaws, pitches):
        turn = Rotation.from_euler("x", np.radians(pitch)) * Rotation.from_euler("y", np.radians(yaw)) \
            * Rotation.from_euler("x", np.pi)
        rotvecs.append(turn.as_rotvec())
        translations.append(-turn.apply(centre) + [0.0, 0.0, distance])
    return np.array(rotvecs), np.array(translations), np.array(focals), np.array(sizes, dtype=float)


def textured_photos(vertices, triangles, cameras, scale=0.5, per_triangle=12, seed=0, detail=30.0):
    """Photos of a mesh painted with a smooth colour pattern, seen by `cameras` (solver.vision.cameras.Cameras): the
    colour of each surface point is a fixed function of its position, so that every photo agrees where the
    surface is right. Rendered by interpolating densely sampled, camera-facing surface points over the pixel
    grid (scipy), at `scale` of each camera's image size, nearest point first where two overlap.

    Returns V (h, w, 3) uint8 images, V (h, w) bool masks of the pixels the mesh covers, and the colour function
    (points (P, 3) -> (P, 3) in [0, 1])."""
    import torch
    from scipy.interpolate import griddata

    from solver.core.geometry import face_normals

    vertices = np.asarray(vertices, dtype=float)
    triangles = np.asarray(triangles)
    size = np.ptp(vertices, axis=0).max()
    frequencies = np.random.default_rng(seed).normal(size=(3, 3)) * (detail / size)  # waves per head size

    def colour(points):
        return 0.5 + 0.35 * np.sin(np.asarray(points) @ frequencies.T + np.arange(3))

    bary = np.random.default_rng(seed + 1).dirichlet(np.ones(3), size=per_triangle)
    points = np.einsum("sk,tkd->tsd", bary, vertices[triangles]).reshape(-1, 3)
    normals = np.repeat(face_normals(vertices, triangles, unit=False), per_triangle, axis=0)
    images, masks = [], []
    with torch.no_grad():
        pixels, depth = cameras.project(torch.as_tensor(points))
    for v, (width, height) in enumerate(cameras.image_size.numpy()):
        rotation = Rotation.from_rotvec(cameras.rotvec[v].numpy()).as_matrix()
        centre = -rotation.T @ cameras.translation[v].numpy()
        facing = np.einsum("pd,pd->p", normals, centre - points) > 0
        where = pixels[v].numpy()[facing] * scale
        order = np.argsort(depth[v].numpy()[facing])  # nearest first: hidden points are dropped below
        cells = np.floor(where[order]).astype(int)
        _, first = np.unique(cells[:, 0] * 100000 + cells[:, 1], return_index=True)
        keep = order[first]
        w, h = int(round(width * scale)), int(round(height * scale))
        grid_x, grid_y = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        image = griddata(where[keep], colour(points[facing][keep]), (grid_x, grid_y), method="linear")
        covered = np.isfinite(image).all(-1)
        images.append(np.clip(np.where(covered[..., None], image, 0.2) * 255.0 + 0.5, 0, 255).astype(np.uint8))
        masks.append(covered)
    return images, masks, colour
