"""A fitted head drawn over the photo it was fitted to: Workbench render through the photo's solved camera,
blended onto the photo, with the detected (green) and the fitted (red) landmarks marked. What looking through
the photo camera in the viewport shows, as a picture for reports and the headless job.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
import numpy as np

MESH_OPACITY = 0.55
DETECTED_COLOUR = (0.1, 0.95, 0.2)
FITTED_COLOUR = (1.0, 0.15, 0.1)


def _read_pixels(image: bpy.types.Image) -> np.ndarray:
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(height, width, 4)[::-1]  # top row first, as the photo's pixel coordinates


def _mark(picture: np.ndarray, points: np.ndarray, colour, radius: int) -> None:
    """Small squares at (P, 2) pixel positions (x right, y down) of `picture` (H, W, 4), in place."""
    height, width = picture.shape[:2]
    for x, y in np.asarray(points, dtype=float):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        column, row = int(x), int(y)
        picture[max(row - radius, 0):min(row + radius + 1, height),
                max(column - radius, 0):min(column + radius + 1, width), :3] = colour


def render_photo_overlay(camera: bpy.types.Object, photo: Path, output: Path, objects, label: str = "",
                         detected_px: np.ndarray | None = None, fitted_px: np.ndarray | None = None,
                         max_side: int = 640) -> Path:
    """Render `objects` (the mesh and its armature) through `camera` (made by scene_io.cameras.add_photo_camera,
    so its "asm_image_size" is the photo's) onto `photo`, at most `max_side` pixels wide or high; landmark pixels
    are in the photo's own pixels. A temporary scene: the user's render settings stay as they are."""
    width, height = (int(s) for s in camera["asm_image_size"])
    shrink = min(1.0, max_side / max(width, height))
    size = (max(int(round(width * shrink)), 1), max(int(round(height * shrink)), 1))
    scene = bpy.data.scenes.new("ASM photo overlay")
    images = []
    try:
        scene.collection.objects.link(camera)
        for member in objects:
            scene.collection.objects.link(member)
        scene.camera = camera
        render = scene.render
        render.engine = 'BLENDER_WORKBENCH'
        render.resolution_x, render.resolution_y = size
        render.resolution_percentage = 100
        render.film_transparent = True
        render.image_settings.file_format = 'PNG'
        render.image_settings.color_mode = 'RGBA'
        if label:
            render.use_stamp = True
            for flag in ("date", "time", "render_time", "frame", "camera", "lens", "scene", "filename", "memory"):
                setattr(render, f"use_stamp_{flag}", False)
            render.use_stamp_note = True
            render.stamp_note_text = label
            render.stamp_font_size = max(12, size[1] // 36)
        shading = scene.display.shading
        shading.light = 'STUDIO'
        shading.color_type = 'SINGLE'
        shading.single_color = (0.35, 0.6, 0.95)
        with tempfile.TemporaryDirectory(prefix="asm_overlay_") as folder:
            rendered_path = Path(folder) / "mesh.png"
            render.filepath = str(rendered_path)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            rendered = bpy.data.images.load(str(rendered_path))
            images.append(rendered)
            mesh = _read_pixels(rendered).copy()
        background = bpy.data.images.load(str(photo))
        images.append(background)
        background.scale(*size)
        picture = _read_pixels(background).copy()
        alpha = mesh[..., 3:4] * MESH_OPACITY
        picture[..., :3] = picture[..., :3] * (1 - alpha) + mesh[..., :3] * alpha
        picture[..., 3] = 1.0
        radius = max(1, size[0] // 400)
        if detected_px is not None:
            _mark(picture, np.asarray(detected_px) * shrink, DETECTED_COLOUR, radius)
        if fitted_px is not None:
            _mark(picture, np.asarray(fitted_px) * shrink, FITTED_COLOUR, radius)
        out = bpy.data.images.new("ASM overlay", size[0], size[1], alpha=True)
        images.append(out)
        out.pixels.foreach_set(np.ascontiguousarray(picture[::-1]).reshape(-1))
        out.filepath_raw = str(output)
        out.file_format = 'PNG'
        out.save()
        return Path(output)
    finally:
        for image in images:
            bpy.data.images.remove(image)
        bpy.data.scenes.remove(scene)
