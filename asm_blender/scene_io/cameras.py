"""Solved photo cameras as Blender cameras: looking through one shows the mesh where it lies in the photo.

The solver's cameras use OpenCV's axes (x right, y down, z forward) in the rig mesh's object space; a Blender
camera looks down its local -Z with +Y up, so its rotation is the solver's turned half a turn about x. The
focal length in pixels becomes millimetres on a sensor fitted to the photo's larger side.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

SENSOR_MM = 36.0
OPENCV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])  # camera axes: OpenCV (x, y down, z forward) -> Blender


def rotation_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """(3,) rotation vector -> (3, 3) matrix, through mathutils."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    return np.array(Quaternion(Vector(np.asarray(rotvec, dtype=float) / angle), angle).to_matrix())


def camera_to_object(rotvec: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(4, 4) matrix of a Blender camera in the mesh's object space, from the solver's object -> camera pose."""
    rotation = rotation_from_rotvec(rotvec)
    placed = np.eye(4)
    placed[:3, :3] = rotation.T @ OPENCV_TO_BLENDER
    placed[:3, 3] = -rotation.T @ np.asarray(translation, dtype=float)
    return placed


def add_photo_camera(mesh_obj: bpy.types.Object, name: str, rotvec, translation, focal_pixels: float,
                     image_size, photo: Path | None = None, upright_copy: Path | None = None) -> bpy.types.Object:
    """A camera object for one photo, placed relative to `mesh_obj` (its world transform included), with the
    photo's resolution set on the camera's own render size via sensor fit, and the photo as its background."""
    width, height = (int(round(s)) for s in image_size)
    data = bpy.data.cameras.new(name)
    data.sensor_fit = 'HORIZONTAL' if width >= height else 'VERTICAL'
    data.sensor_width = data.sensor_height = SENSOR_MM
    data.lens = float(focal_pixels) * SENSOR_MM / max(width, height)
    data.shift_x = data.shift_y = 0.0  # the principal point is the image centre
    data.clip_start, data.clip_end = 0.01, 1000.0
    camera = bpy.data.objects.new(name, data)
    for collection in mesh_obj.users_collection:
        collection.objects.link(camera)
    camera.matrix_world = mesh_obj.matrix_world @ Matrix(camera_to_object(rotvec, translation).tolist())
    camera["asm_image_size"] = [width, height]
    image = None
    if upright_copy is not None:  # a photo stored sideways (EXIF): its upright copy, packed (the copy is temporary)
        image = bpy.data.images.load(str(upright_copy))
        image.name = Path(photo).name if photo is not None else image.name
        image.pack()
    elif photo is not None:
        image = bpy.data.images.load(str(photo), check_existing=True)
    if image is not None:
        data.show_background_images = True
        background = data.background_images.new()
        background.image = image
        background.alpha = 0.6
    return camera


def look_through(scene: bpy.types.Scene, camera: bpy.types.Object) -> None:
    """Make `camera` the scene's camera with the photo's resolution (what Numpad 0 then shows)."""
    width, height = camera["asm_image_size"]
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = int(width), int(height)
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
