"""A solved photo camera becomes a Blender camera that sees the mesh exactly where the solver projects it."""
from __future__ import annotations

import bpy
import numpy as np
import torch
from bpy_extras.object_utils import world_to_camera_view

from asm_blender.scene_io.cameras import add_photo_camera, look_through
from solver.vision.cameras import Cameras

from tests.synthetic_cameras import camera_set


def test_blender_cameras_see_what_the_solver_projects(sample_head, tmp_path):
    vertices = np.array([v.co[:] for v in sample_head.data.vertices])
    unit = float(np.ptp(vertices, axis=0).max())
    rotvec, translation, focal, size = camera_set(vertices.mean(0), 3.0 * unit)
    sample_head.location = (0.3, -0.2, 0.1)  # the mesh's world transform must not matter
    bpy.context.view_layer.update()
    photo = tmp_path / "photo.png"
    image = bpy.data.images.new("photo", 64, 48)
    image.filepath_raw = str(photo)
    image.file_format = 'PNG'
    image.save()
    points = vertices[::40]
    solver_pixels, _ = Cameras.from_arrays(rotvec, translation, focal, size).project(torch.as_tensor(points))
    world = np.array(sample_head.matrix_world)
    scene = bpy.context.scene
    for v in range(len(focal)):
        camera = add_photo_camera(sample_head, f"Photo {v}", rotvec[v], translation[v], focal[v], size[v], photo)
        look_through(scene, camera)
        bpy.context.view_layer.update()
        width, height = size[v]
        seen = []
        for point in points @ world[:3, :3].T + world[:3, 3]:
            normalised = world_to_camera_view(scene, camera, type(camera.location)(point))
            seen.append((normalised.x * width, (1.0 - normalised.y) * height))
        assert np.abs(np.array(seen) - solver_pixels[v].numpy()).max() < 0.01 * max(width, height) / 1000
        assert camera.data.background_images[0].image.filepath_raw.endswith("photo.png")


def test_a_sideways_photo_shows_upright_behind_its_camera(sample_head, tmp_path):
    """The worker's upright copy of an EXIF-turned photo becomes the camera's background, packed into the file
    (the copy lives in a temporary job folder), named after the photo."""
    upright_copy = tmp_path / "upright_0_phone.png"
    image = bpy.data.images.new("copy", 90, 60)
    image.filepath_raw = str(upright_copy)
    image.file_format = 'PNG'
    image.save()
    bpy.data.images.remove(image)
    rotvec, translation, focal, size = camera_set(np.zeros(3), 5.0)
    camera = add_photo_camera(sample_head, "Photo", rotvec[0], translation[0], focal[0], (90, 60),
                              tmp_path / "phone.jpg", upright_copy)
    background = camera.data.background_images[0].image
    assert background.packed_file is not None and background.name == "phone.jpg"
    assert tuple(background.size) == (90, 60)
