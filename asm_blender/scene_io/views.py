"""Headless renders of a mesh for landmark detection, and lifting 2D landmarks back onto its surface."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Vector
from mathutils.bvhtree import BVHTree

from ..protocol import landmarks as landmark_ids
from .mesh import MeshArrays, SceneInputError
from .objects import remove_object

SENSOR_WIDTH_MM = 36.0
FOCAL_MM = 50.0
# Renders for the detector: drawn once without anti-aliasing at twice the size the detector reads, which the
# worker shrinks (Lanczos): as good landmarks, four times faster (docs/architecture.md, "Measured settings").
DETECTION_RENDER_SIZE = 896
DETECTION_ANTI_ALIASING = "OFF"
DETECTOR_SIZE = 448  # the longest side the detector reads the renders at (solver worker's `max_side`)
DETECTION_PNG_COMPRESSION = 0  # the files live a few seconds: compressing them costs more than writing them
VIEW_YAWS = (0.0, -15.0, 15.0, -30.0, 30.0)  # degrees from the face's direction: the views combined on the surface


@dataclass(frozen=True)
class View:
    image_path: Path
    camera_to_world: np.ndarray  # (4, 4) Blender camera (looks down its -Z, +Y up)
    size: int  # square image, pixels
    focal_pixels: float


def _look_at(position: Vector, target: Vector) -> Matrix:
    return (target - position).to_track_quat('-Z', 'Y').to_matrix().to_4x4()


def render_views(obj: bpy.types.Object, output_dir: Path, yaw_degrees=(0.0, -15.0, 15.0, -30.0, 30.0), size: int = 512,
                 face_direction: Vector = Vector((0.0, -1.0, 0.0)), extra_objects=(), label: str = "",
                 colour_attribute: bool = False, name_prefix: str = "view", anti_aliasing: str = "8",
                 png_compression: int = 15, focus=None) -> list[View]:
    """Workbench renders of `obj` from the front (along face_direction, in world space) and turned by yaw.

    Renders in a temporary scene so that the user's scene settings (engine, resolution, camera) are
    never changed. `extra_objects` join the scene (e.g. the armature that deforms `obj`); a `label` is
    stamped into the images; `colour_attribute` shades with the mesh's active colour attribute. `anti_aliasing` is
    Workbench's render sample count ("OFF", "FXAA", "5", "8", ...): each sample draws the scene once more, so
    renders for the detector take DETECTION_ANTI_ALIASING (see `detection_views`). `focus` = (centre, extent) in
    world space frames a close-up instead of the whole object: the camera aims at `centre` and the frame is `extent`
    wide there (see `close_ups`).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bpy.context.view_layer.update()  # the bounding box of a mesh whose armature was just posed
    corners = np.array([obj.matrix_world @ Vector(c) for c in obj.bound_box])
    low, high = corners.min(0), corners.max(0)
    extent = float(np.max(high - low))
    # The face sits in the upper part of a head-and-neck mesh: aim a little above the box centre, and
    # let the head fill most of the frame (the detector wants faces well above 100 px).
    target = Vector(((low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2] + 0.6 * (high[2] - low[2])))
    half_fov = math.atan(SENSOR_WIDTH_MM / 2 / FOCAL_MM)
    distance = 0.5 * extent / 0.9 / math.tan(half_fov) + 0.5 * extent
    if focus is not None:
        centre, width = focus
        target, distance = Vector(tuple(float(c) for c in centre)), 0.5 * float(width) / math.tan(half_fov)

    scene = bpy.data.scenes.new("ASM landmark views")
    camera_data = bpy.data.cameras.new("ASM landmark camera")
    camera = bpy.data.objects.new("ASM landmark camera", camera_data)
    world = bpy.data.worlds.new("ASM landmark background")
    try:
        world.color = (0.3, 0.3, 0.3)  # a grey backdrop: the detector finds faces more reliably than on black
        scene.world = world
        scene.collection.objects.link(camera)
        for member in (obj, *extra_objects):
            scene.collection.objects.link(member)
        if label:
            render = scene.render
            render.use_stamp = True
            for flag in ("date", "time", "render_time", "frame", "camera", "lens", "scene", "filename", "memory"):
                setattr(render, f"use_stamp_{flag}", False)
            render.use_stamp_note = True
            render.stamp_note_text = label
            render.stamp_font_size = max(12, size // 24)
        camera_data.lens, camera_data.sensor_width, camera_data.sensor_fit = FOCAL_MM, SENSOR_WIDTH_MM, 'HORIZONTAL'
        camera_data.clip_start, camera_data.clip_end = distance * 0.01, distance * 10
        scene.camera = camera
        scene.render.engine = 'BLENDER_WORKBENCH'
        scene.display.render_aa = anti_aliasing
        scene.render.resolution_x = scene.render.resolution_y = size
        scene.render.resolution_percentage = 100
        scene.render.image_settings.file_format = 'PNG'
        scene.render.image_settings.compression = png_compression
        scene.display.shading.light = 'STUDIO'
        scene.display.shading.color_type = 'VERTEX' if colour_attribute else 'SINGLE'
        scene.display.shading.single_color = (0.8, 0.8, 0.8)
        scene.display.shading.show_cavity = True
        views = []
        front = face_direction.normalized()
        for n, yaw in enumerate(yaw_degrees):
            direction = Matrix.Rotation(math.radians(yaw), 3, 'Z') @ front
            position = target + direction * distance
            camera.matrix_world = Matrix.Translation(position) @ _look_at(position, target)
            path = output_dir / f"{name_prefix}_{n:02d}_yaw{yaw:+.0f}{'_' + label.replace(' ', '_') if label else ''}.png"
            scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            focal_pixels = FOCAL_MM / SENSOR_WIDTH_MM * size
            views.append(View(path, np.array(camera.matrix_world), size, focal_pixels))
        return views
    finally:
        remove_object(camera)
        bpy.data.scenes.remove(scene)
        bpy.data.worlds.remove(world)


CLOSE_UPS = {  # name: (bones whose rest heads' mean is the centre, frame width in eye-to-eye distances)
    "mouth": (("mouth_corner.L", "mouth_corner.R"), 1.05),
    "eyes": (("eye.L", "eye.R"), 1.65),
}
EYES = ("eye.L", "eye.R")  # every preset has them: the close-ups' yardstick, in world space whatever the units


def close_ups(arm: bpy.types.Object) -> dict[str, tuple[np.ndarray, float]]:
    """{"mouth" / "eyes": (centre, extent)} in world space for `render_views(focus=...)`, from the armature's rest
    bone heads (CLOSE_UPS); none without the eye bones; close-ups whose bones the rig lacks are left out."""
    def head(bone):
        return np.array(tuple(arm.matrix_world @ arm.data.bones[bone].head_local))

    if not all(b in arm.data.bones for b in EYES):
        return {}
    unit = float(np.linalg.norm(head(EYES[0]) - head(EYES[1])))
    return {name: (np.mean([head(b) for b in bones], axis=0), width * unit)
            for name, (bones, width) in CLOSE_UPS.items() if all(b in arm.data.bones for b in bones)}


def pose_views(obj: bpy.types.Object, arm: bpy.types.Object, output_dir: Path, label: str = "",
               yaw_degrees=(0.0, 35.0), size: int = 384, close_up_size: int | None = None,
               face_direction: Vector = Vector((0.0, -1.0, 0.0)), colour_attribute: bool = False) -> list[Path]:
    """One column of a pose sheet: `obj` as posed by `arm`, whole from `yaw_degrees` (labelled), then the close-ups
    (`close_ups`: mouth, eyes) from the front at `close_up_size` (default `size`). Image paths, top first."""
    output_dir = Path(output_dir)
    paths = [v.image_path for v in render_views(obj, output_dir, yaw_degrees, size, face_direction=face_direction,
                                                 extra_objects=(arm,), label=label,
                                                 colour_attribute=colour_attribute)]
    for name, focus in close_ups(arm).items():
        paths += [v.image_path for v in render_views(obj, output_dir, (0.0,), close_up_size or size,
                                                      face_direction=face_direction, extra_objects=(arm,),
                                                      colour_attribute=colour_attribute, name_prefix=name,
                                                      focus=focus)]
    return paths


def surface_tree(obj: bpy.types.Object) -> BVHTree:
    """A ray-casting tree of the mesh's rest surface (no modifiers), built in C: fast on a million vertices."""
    bm = bmesh.new()
    try:
        bm.from_mesh(obj.data)
        return BVHTree.FromBMesh(bm)
    finally:
        bm.free()


def lift_to_surface(obj: bpy.types.Object, arrays: MeshArrays, views: list[View], points_per_view: list[np.ndarray | None],
                    agreement: float = 0.03, tree: BVHTree | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast each view's 2D landmarks onto the mesh and combine the views robustly.

    points_per_view: per view (L, 2) pixels or None when the view found no face. Returns object-space
    positions (L, 3), valid (L,) bool, and the number of agreeing views (L,).

    Points on the face's outline (temples, jaw, ears) graze the surface in some views, and their rays
    slide along the side of the head or pass it and hit an ear. So the reference hit is the one most
    other views agree with (ties: the one whose surface faces its camera best), and the hits within
    `agreement` x the mesh size of it are averaged, weighted by how squarely they face their cameras.
    `tree`: `surface_tree(obj)`, for callers that lift several times.
    """
    tree = tree if tree is not None else surface_tree(obj)
    world_to_object = obj.matrix_world.inverted()
    size = float(np.ptp(arrays.vertices, axis=0).max())
    count = max(len(p) for p in points_per_view if p is not None)
    hits = np.full((len(views), count, 3), np.nan)
    facing = np.zeros((len(views), count))
    for v, (view, points) in enumerate(zip(views, points_per_view)):
        if points is None:
            continue
        camera = Matrix(view.camera_to_world.tolist())
        origin = world_to_object @ camera.translation
        for i, (x, y) in enumerate(points):
            local = Vector(((x - view.size / 2) / view.focal_pixels, (view.size / 2 - y) / view.focal_pixels, -1.0))
            direction = (world_to_object.to_3x3() @ (camera.to_3x3() @ local)).normalized()
            location, normal, _, _ = tree.ray_cast(origin, direction)
            if location is not None:
                hits[v, i] = location
                facing[v, i] = abs(normal.normalized().dot(direction))
    pairwise = np.linalg.norm(hits[:, None] - hits[None, :], axis=-1) <= agreement * size  # (V, V, L)
    support = pairwise.sum(1) + facing  # most agreeing views first, then the most head-on
    best = np.argmax(np.where(np.isfinite(hits[..., 0]), support, -1.0), axis=0)  # (L,)
    reference = hits[best, np.arange(count)]
    close = np.linalg.norm(hits - reference[None], axis=-1) <= agreement * size  # NaN compares False
    weight = np.where(close, facing**2, 0.0)
    agreeing = close.sum(0)
    total = weight.sum(0)
    positions = np.full((count, 3), np.nan)
    found = total > 0
    positions[found] = (weight[..., None] * np.nan_to_num(hits)).sum(0)[found] / total[found, None]
    return positions, found, agreeing


def detection_views(obj: bpy.types.Object, output_dir: Path, yaw_degrees,
                    face_direction: Vector = Vector((0.0, -1.0, 0.0)), name_prefix: str = "view") -> list[View]:
    """`render_views` as the detector wants them: see DETECTION_RENDER_SIZE; read them at DETECTOR_SIZE."""
    return render_views(obj, output_dir, tuple(float(y) for y in yaw_degrees), DETECTION_RENDER_SIZE,
                        face_direction=face_direction, name_prefix=name_prefix,
                        anti_aliasing=DETECTION_ANTI_ALIASING, png_compression=DETECTION_PNG_COMPRESSION)


@dataclass(frozen=True)
class RenderedLandmarks:
    views: list[View]
    detections: list[np.ndarray | None]  # per view: (L, 2) pixels, None where no face was found
    positions: np.ndarray  # (L, 3) object space
    valid: np.ndarray  # (L,) bool
    agreeing: np.ndarray  # (L,) number of views that agreed


def landmarks_from_renders(obj: bpy.types.Object, arrays: MeshArrays, detect, output_dir: Path,
                           face_direction: Vector = Vector((0.0, -1.0, 0.0))) -> RenderedLandmarks:
    """Render `obj`, run `detect(image_path, max_side=DETECTOR_SIZE)` (returns an object with .found and .points in
    the file's pixels; solver.vision.photos.detect_face_landmarks_in_file) on every view and cast the landmarks onto the
    surface. The detector is passed in, so that this module needs nothing beyond Blender."""
    views = detection_views(obj, output_dir, VIEW_YAWS, face_direction=face_direction)
    detections = []
    for view in views:
        detection = detect(view.image_path, max_side=DETECTOR_SIZE)
        detections.append(detection.points if detection.found else None)
    if detections[0] is None:
        raise SceneInputError(f"no face was found on the front render of {obj.name!r}; check which way it faces")
    positions, valid, agreeing = lift_to_surface(obj, arrays, views, detections)
    return RenderedLandmarks(views, detections, positions, valid, agreeing)


CANDIDATE_YAWS = tuple(range(0, 360, 45))  # the detector finds faces turned up to about 30 degrees


def render_direction_candidates(obj: bpy.types.Object, output_dir: Path, yaws=CANDIDATE_YAWS) -> list[View]:
    """Detection renders from horizontal directions `yaws` (degrees around world +Z from -Y; default every 45
    degrees), to find where the face looks. Full size: at 256 px the detector misses the low-polygon MediaPipe
    canonical face."""
    return detection_views(obj, Path(output_dir), yaws, name_prefix="direction")


def facing_direction(points: np.ndarray) -> np.ndarray | None:
    """The horizontal world direction a face looks along, from (478, 3) world landmarks (NaN where missing):
    perpendicular to the mean left-to-right vector of mirrored landmark pairs (eyes, brows, nose wings, mouth
    corners), pointing out of the face towards the nose tip. None when too few pairs were found."""
    across = np.array([points[right] - points[left] for left, right in landmark_ids.MIRRORED_PAIRS])
    across = across[np.isfinite(across).all(1)]
    if len(across) < 3 or not np.isfinite(points[landmark_ids.NOSE_TIP]).all():
        return None
    sideways = across.mean(0)
    forward = np.array([-sideways[1], sideways[0], 0.0])
    centre = np.nanmean(np.array([points[i] for pair in landmark_ids.MIRRORED_PAIRS for i in pair]), axis=0)
    if np.dot(forward, points[landmark_ids.NOSE_TIP] - centre) < 0:
        forward = -forward
    length = np.linalg.norm(forward)
    return forward / length if length > 0 else None


def frontalness(points: np.ndarray) -> float:
    """1 for a face seen straight from the front, towards 0 for a profile: how evenly the nose tip sits between
    the outer eye corners in the image. points: (478, 2) pixels."""
    left, right = (np.linalg.norm(points[landmark_ids.NOSE_TIP] - points[i]) for i in landmark_ids.OUTER_EYE_CORNERS)
    return float(min(left, right) / max(left, right, 1e-9))


def tile_images(paths: list[list[Path]], output: Path) -> Path:
    """Write a grid (rows of image paths) as one PNG, through Blender's image I/O. Images of different sizes sit
    at the top left of their cell, the rest of it white."""
    rows = []
    for row in paths:
        tiles = []
        for path in row:
            image = bpy.data.images.load(str(path))
            width, height = image.size
            pixels = np.empty(width * height * 4, dtype=np.float32)
            image.pixels.foreach_get(pixels)
            tiles.append(pixels.reshape(height, width, 4)[::-1])  # top row first
            bpy.data.images.remove(image)
        rows.append(tiles)
    heights = [max(t.shape[0] for t in row) for row in rows]
    widths = [max(row[c].shape[1] for row in rows if c < len(row)) for c in range(max(map(len, rows)))]
    grid = np.ones((sum(heights), sum(widths), 4), dtype=np.float32)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            top, left = sum(heights[:r]), sum(widths[:c])
            grid[top:top + tile.shape[0], left:left + tile.shape[1]] = tile
    out = bpy.data.images.new("ASM tiles", grid.shape[1], grid.shape[0], alpha=True)
    try:
        out.pixels.foreach_set(np.ascontiguousarray(grid[::-1]).reshape(-1))  # Blender's rows start at the bottom
        out.filepath_raw = str(output)
        out.file_format = 'PNG'
        out.save()
    finally:
        bpy.data.images.remove(out)
    return Path(output)
