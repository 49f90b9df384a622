"""Seeded view sets of a scan and their Cycles renders ("photos" with known cameras).

A view set of n views is the first n views of one seeded sequence of 8, so adding views never changes the
ones before: view 1 is near-frontal, later ones alternate between the sides and spread out to +-60 degrees of
yaw. Each view draws its pitch (+-20 degrees), roll, focal length (35-85 mm full-frame equivalent), image size,
framing, backdrop and key/fill/rim lights from a generator seeded by the scan's name and the view's index.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SENSOR_MM = 36.0  # full frame, along the image's longer side
MAX_VIEWS = 8
# Where view k stands (degrees of yaw, positive towards the subject's left), before a seeded jitter of +-6.
YAW_ORDER = (0.0, -32.0, 30.0, -55.0, 52.0, -14.0, 16.0, 40.0)
IMAGE_SIZES = ((600, 750), (640, 640), (720, 540), (540, 720), (600, 800), (800, 600), (560, 560), (576, 768))


@dataclass(frozen=True)
class ViewSpec:
    index: int
    width: int
    height: int
    focal_mm: float
    yaw: float
    pitch: float
    roll: float
    fill: float  # the framed head height as a share of the image height
    background: tuple[float, float, float]
    world_strength: float
    lights: tuple[dict, ...]
    seed: int

    @property
    def focal_px(self) -> float:
        return self.focal_mm / SENSOR_MM * max(self.width, self.height)


def view_sequence(scan_name: str, count: int = MAX_VIEWS) -> list[ViewSpec]:
    """The first `count` views of the scan's seeded sequence."""
    base_seed = int.from_bytes(hashlib.sha256(scan_name.encode()).digest()[:4], "little")
    views = []
    for index in range(count):
        rng = np.random.default_rng([base_seed, index])
        yaw = float(np.clip(YAW_ORDER[index] + rng.uniform(-6, 6), -60, 60))
        pitch = float(rng.uniform(-5, 8) if index == 0 else rng.uniform(-20, 20))
        width, height = IMAGE_SIZES[int(rng.integers(len(IMAGE_SIZES)))]
        key_side = -1.0 if rng.random() < 0.5 else 1.0
        warm = rng.uniform(0.0, 0.12)
        lights = (
            dict(azimuth=key_side * rng.uniform(25, 70), elevation=rng.uniform(10, 45), distance=7.0,
                 size=rng.uniform(2.5, 4.5), power=rng.uniform(0.8, 1.3), colour=(1.0, 1.0 - warm / 2, 1.0 - warm)),
            dict(azimuth=-key_side * rng.uniform(20, 60), elevation=rng.uniform(-5, 20), distance=8.0,
                 size=rng.uniform(4, 6), power=rng.uniform(0.2, 0.45), colour=(0.93, 0.96, 1.0)),
            dict(azimuth=rng.uniform(140, 220), elevation=rng.uniform(20, 50), distance=6.0,
                 size=rng.uniform(1.5, 3), power=rng.uniform(0.3, 0.7), colour=(1.0, 1.0, 1.0)),
        )
        grey = rng.uniform(0.2, 0.5)
        tint = rng.uniform(-0.04, 0.04, 3)
        views.append(ViewSpec(
            index=index, width=width, height=height, focal_mm=float(rng.uniform(35, 85)), yaw=yaw, pitch=pitch,
            roll=float(rng.uniform(-3, 3)), fill=float(rng.uniform(0.55, 0.75)),
            background=tuple(float(c) for c in np.clip(grey + tint, 0.05, 1.0)),
            world_strength=float(rng.uniform(0.5, 0.9)), lights=lights, seed=int(rng.integers(1, 10_000))))
    return views


def face_frame(scan) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """(aim point, forward, left, up, head height) of a loaded scan in its world (+Z up): the cameras aim a
    little behind the nose bridge and frame about three outer-eye-corner distances."""
    up = np.array([0.0, 0.0, 1.0])
    forward = scan.face_direction
    left = np.cross(up, forward)
    eye = scan.eye_distance
    bridge = scan.landmarks[168] if scan.valid[168] else (scan.landmarks[33] + scan.landmarks[263]) / 2
    return bridge - 0.45 * eye * forward, forward, left, up, 3.0 * eye


def camera_pose(scan, view: ViewSpec) -> tuple[np.ndarray, np.ndarray]:
    """The camera's world position and its 3x3 rotation world <- OpenCV camera (x right, y down, z forward)."""
    aim, forward, left, up, height = face_frame(scan)
    yaw, pitch, roll = (math.radians(a) for a in (view.yaw, view.pitch, view.roll))
    towards_camera = math.cos(pitch) * (math.cos(yaw) * forward + math.sin(yaw) * left) + math.sin(pitch) * up
    distance = view.focal_px * height / (view.fill * view.height)
    centre = aim + distance * towards_camera
    z_axis = -towards_camera
    x_axis = np.cross(z_axis, up)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    x_axis, y_axis = (math.cos(roll) * x_axis + math.sin(roll) * y_axis, -math.sin(roll) * x_axis
                      + math.cos(roll) * y_axis)
    return centre, np.stack([x_axis, y_axis, z_axis], axis=1)


def project(scan_points: np.ndarray, centre: np.ndarray, world_from_camera: np.ndarray, view: ViewSpec) -> np.ndarray:
    """(N, 3) world points -> (N, 2) pixels from the image's top-left corner (OpenCV convention)."""
    camera = (scan_points - centre) @ world_from_camera
    return view.focal_px * camera[:, :2] / camera[:, 2:] + np.array([view.width, view.height]) / 2


def _scene(samples: int):
    import bpy

    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    cycles = scene.cycles
    cycles.device = 'CPU'
    cycles.samples = samples
    cycles.use_adaptive_sampling = True
    cycles.adaptive_threshold = 0.03
    cycles.use_denoising = True
    cycles.denoiser = 'OPENIMAGEDENOISE'
    cycles.use_animated_seed = False
    cycles.max_bounces = 3
    cycles.diffuse_bounces = 2
    cycles.glossy_bounces = 1
    cycles.transmission_bounces = cycles.volume_bounces = cycles.transparent_max_bounces = 0
    cycles.sample_clamp_indirect = 5.0
    scene.render.film_transparent = False
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'
    scene.view_settings.view_transform = 'AgX'
    world = bpy.data.worlds.new("Benchmark backdrop")
    world.use_nodes = True
    scene.world = world
    camera = bpy.data.objects.new("Benchmark camera", bpy.data.cameras.new("Benchmark camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    return scene, world.node_tree.nodes["Background"], camera


def _place(scene, background, camera, scan, view: ViewSpec, lights: list) -> tuple[np.ndarray, np.ndarray]:
    import bpy
    from mathutils import Matrix, Vector

    centre, world_from_cv = camera_pose(scan, view)
    scene.render.resolution_x, scene.render.resolution_y = view.width, view.height
    scene.cycles.seed = view.seed
    data = camera.data
    data.lens, data.sensor_width, data.sensor_fit = view.focal_mm, SENSOR_MM, 'AUTO'
    data.clip_start, data.clip_end = 0.01 * scan.eye_distance, 1000 * scan.eye_distance
    blender_from_cv = np.diag([1.0, -1.0, -1.0])  # Blender cameras look down their -Z with +Y up
    matrix = np.eye(4)
    matrix[:3, :3] = world_from_cv @ blender_from_cv
    matrix[:3, 3] = centre
    camera.matrix_world = Matrix(matrix.tolist())
    background.inputs["Color"].default_value = (*view.background, 1.0)
    background.inputs["Strength"].default_value = view.world_strength
    for light in lights:
        bpy.data.objects.remove(light, do_unlink=True)
    lights.clear()
    aim, forward, left, up, _ = face_frame(scan)
    eye = scan.eye_distance
    for number, spec in enumerate(view.lights):
        data = bpy.data.lights.new(f"light {number}", 'AREA')
        data.shape = 'DISK'
        data.size = spec["size"] * eye
        # Watts grow with the squared distance (in scene units, whatever they are) for the same light on the face.
        data.energy = spec["power"] * 20.0 * (spec["distance"] * eye) ** 2
        data.color = spec["colour"]
        light = bpy.data.objects.new(data.name, data)
        scene.collection.objects.link(light)
        yaw, pitch = math.radians(view.yaw + spec["azimuth"]), math.radians(view.pitch + spec["elevation"])
        where = aim + spec["distance"] * eye * (math.cos(pitch) * (math.cos(yaw) * forward + math.sin(yaw) * left)
                                                + math.sin(pitch) * up)
        light.location = Vector(where.tolist())
        light.rotation_mode = 'QUATERNION'
        light.rotation_quaternion = (Vector(aim.tolist()) - Vector(where.tolist())).to_track_quat('-Z', 'Y')
        lights.append(light)
    return centre, world_from_cv


def render_views(scan, views: list[ViewSpec], folder: Path, samples: int = 16, log=print) -> list[dict]:
    """Render `views` of a loaded scan into `folder` (view_N.jpg) and write views.json with the true cameras.
    Renders already in the folder from the same spec, scan file and sample count are reused."""
    import bpy
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / "views.json"
    previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
    mesh_file = scan.spec.folder / scan.spec.mesh
    fingerprint = {"mesh_sha256": hashlib.sha256(mesh_file.read_bytes()).hexdigest(), "samples": samples,
                   "blender": bpy.app.version_string}
    old_views = {v["index"]: v for v in previous.get("views", [])} if previous.get("fingerprint") == fingerprint else {}
    scene, background, camera = _scene(samples)
    scene.collection.objects.link(scan.obj) if scan.obj.name not in scene.collection.objects else None
    lights: list = []
    records = []
    for view in views:
        image = folder / f"view_{view.index + 1}.jpg"
        centre, world_from_cv = _place(scene, background, camera, scan, view, lights)
        record = {"index": view.index, "image": image.name, "spec": asdict(view), "focal_px": view.focal_px,
                  "camera_centre": centre.tolist(), "world_from_camera_cv": world_from_cv.tolist()}
        old = old_views.get(view.index)
        if old is not None and old["spec"] == json.loads(json.dumps(asdict(view))) and image.is_file():
            records.append({**record, "render_seconds": old["render_seconds"], "reused": True})
            continue
        png = folder / f"view_{view.index + 1}.png"
        scene.render.filepath = str(png)
        started = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        seconds = time.perf_counter() - started
        cv2.imwrite(str(image), cv2.imread(str(png)), [cv2.IMWRITE_JPEG_QUALITY, 92])
        png.unlink()
        log(f"  rendered {scan.spec.name} view {view.index + 1}: {view.width}x{view.height}, "
            f"{view.focal_mm:.0f} mm, yaw {view.yaw:+.0f}, pitch {view.pitch:+.0f} in {seconds:.1f} s")
        records.append({**record, "render_seconds": seconds, "reused": False})
    for light in lights:
        bpy.data.objects.remove(light, do_unlink=True)
    kept = {r["index"]: r for r in [*old_views.values(), *records]}
    record_path.write_text(json.dumps({"fingerprint": fingerprint, "scan": scan.spec.name,
                                       "views": [kept[k] for k in sorted(kept)]}, indent=1))
    return records
