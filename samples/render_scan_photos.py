"""Render the bundled Lee Perry-Smith head scan as four "photos" with Cycles, with their true cameras.

    .venv/bin/python samples/render_scan_photos.py [--samples 32] [--only photo_2 ...] [--debug-dir DIR]

Imports `samples/lee_perry_smith/LeePerrySmith.glb` with Blender's glTF importer, puts its colour map (sRGB)
and tangent-space normal map (Non-Color, Normal Map node on `UVMap`) on the material with some roughness, a
soft specular and a little subsurface scattering, and renders four views on the CPU as a photographer might
take them: different yaw/pitch/roll, focal lengths (full frame: 36 mm along the image's longer side), image
sizes, key/fill/rim area lights and a plain neutral backdrop (the world colour). Seeded and deterministic
(Cycles' seed, OpenImageDenoise). Writes `samples/lps_photos/photo_N.jpg` (JPEG quality 92, written by
OpenCV so no render metadata lands in the file) and `samples/lps_photos/views.json` with the ground truth.
`--only` renders just the named views (`--only none`: none), but views.json is always written in full.
About 30-60 s per view on 2 busy CPU cores.

Ground truth frame (views.json "camera_from_scan"): a 4x4 matrix M that maps a point p of the glb file's
own coordinates (glTF: +Y up, the face looks towards +Z, +X is the subject's left; the scan's units,
about 5-6 cm each) to OpenCV camera coordinates (x right, y down, z forward): [x, y, z, 1] = M [p, 1], and
the pixel (from the image's top-left corner, so the top-left pixel's centre is (0.5, 0.5)) is
f * (x / z, y / z) + (w / 2, h / 2) with f = "focal_px". This is the convention of `solver/vision/cameras.py`.

Blender's glTF importer turns the file's (x, y, z) into Blender's (x, -z, y) (+Z up, face towards -Y) and
keeps the vertex order; the script checks both against the file's own POSITION accessor, and checks every
camera against Blender's own projection (`world_to_camera_view`) before writing anything.

--debug-dir DIR also writes each photo with a few projected scan vertices drawn on it (not shipped).
"""
from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCAN = ROOT / "samples" / "lee_perry_smith" / "LeePerrySmith.glb"
COLOUR_MAP = SCAN.parent / "Map-COL.jpg"
NORMAL_MAP = SCAN.parent / "Infinite-Level_02_Tangent_SmoothUV.jpg"
OUT_DIR = ROOT / "samples" / "lps_photos"

BLENDER_FROM_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # the importer's axis change
BLENDER_CAMERA_FROM_CV = np.diag([1.0, -1.0, -1.0])  # Blender cameras look along -Z with +Y up
SENSOR_MM = 36.0  # full frame, along the image's longer side
AIM = np.array([0.0, 1.05, 1.2])  # glTF coordinates: a point behind the nose bridge the cameras look at
HEAD_HEIGHT = 5.0  # framing height in scan units: chin (y -0.4) to crown (y 3.97) and a margin
JPEG_QUALITY = 92

# yaw: where the camera stands around the head's up axis, degrees from straight in front (+Z), positive towards
# the subject's left (+X), so the photo shows more of the subject's left cheek. pitch: positive = camera above
# the aim point, looking down. roll: positive = the camera turned clockwise about its axis as its user sees it
# (image content turns anticlockwise). fill: the head's height as a share of the image height. offset_x,
# offset_y: where the aim point lands, right of and below the image centre, as shares of the width and height.
# Lights: azimuth from the camera's direction (positive towards the subject's left, like yaw), elevation,
# distance (scan units), size, power (W) and colour. background: the world colour (linear RGB), also a soft
# ambient light.
VIEWS = (
    dict(name="photo_1", width=720, height=900, focal_mm=50.0, yaw=0.0, pitch=6.0, roll=0.0, fill=0.62,
         offset_x=-0.02, offset_y=0.05, background=(0.40, 0.40, 0.38), world_strength=0.7, seed=11,
         lights=[dict(azimuth=-40, elevation=30, distance=14, size=6, power=3800, colour=(1.0, 0.96, 0.90)),
                 dict(azimuth=50, elevation=10, distance=16, size=8, power=1200, colour=(0.92, 0.96, 1.0)),
                 dict(azimuth=160, elevation=45, distance=12, size=3, power=1500, colour=(1.0, 1.0, 1.0))]),
    dict(name="photo_2", width=800, height=800, focal_mm=35.0, yaw=-35.0, pitch=2.0, roll=2.5, fill=0.58,
         offset_x=0.03, offset_y=0.02, background=(0.28, 0.31, 0.34), world_strength=0.7, seed=22,
         lights=[dict(azimuth=-70, elevation=25, distance=13, size=5, power=3600, colour=(1.0, 0.93, 0.84)),
                 dict(azimuth=30, elevation=5, distance=15, size=9, power=1100, colour=(0.95, 0.97, 1.0))]),
    dict(name="photo_3", width=900, height=675, focal_mm=85.0, yaw=30.0, pitch=10.0, roll=-1.5, fill=0.70,
         offset_x=-0.08, offset_y=0.03, background=(0.48, 0.45, 0.41), world_strength=0.5, seed=33,
         lights=[dict(azimuth=55, elevation=35, distance=15, size=6, power=4400, colour=(1.0, 0.98, 0.94)),
                 dict(azimuth=-45, elevation=0, distance=15, size=10, power=700, colour=(0.90, 0.94, 1.0)),
                 dict(azimuth=-150, elevation=30, distance=12, size=3, power=1600, colour=(1.0, 0.95, 0.85))]),
    dict(name="photo_4", width=640, height=800, focal_mm=105.0, yaw=56.0, pitch=4.0, roll=0.0, fill=0.60,
         offset_x=0.0, offset_y=0.04, background=(0.34, 0.36, 0.32), world_strength=0.8, seed=44,
         lights=[dict(azimuth=-20, elevation=20, distance=15, size=8, power=3800, colour=(1.0, 0.97, 0.92)),
                 dict(azimuth=60, elevation=35, distance=13, size=4, power=1100, colour=(1.0, 1.0, 1.0))]),
)


def direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Unit vector in glTF coordinates from the aim point towards a camera at (yaw, pitch)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])


def focal_px(view: dict) -> float:
    return view["focal_mm"] / SENSOR_MM * max(view["width"], view["height"])


def camera_from_scan(view: dict) -> np.ndarray:
    """4x4: glTF file coordinates -> OpenCV camera coordinates, for the view's framing."""
    distance = focal_px(view) * HEAD_HEIGHT / (view["fill"] * view["height"])
    centre = AIM + distance * direction(view["yaw"], view["pitch"])
    forward = AIM - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    roll = math.radians(view["roll"])
    right, down = (math.cos(roll) * right + math.sin(roll) * down, -math.sin(roll) * right + math.cos(roll) * down)
    rotation = np.stack([right, down, forward])
    # Move the camera in its own plane so that the aim point lands offset_x of the width right of the image centre
    # and offset_y of the height below it: the head is not always dead centre.
    offset = np.array([view["offset_x"] * view["width"], view["offset_y"] * view["height"], 0.0])
    centre = centre - rotation.T @ offset * distance / focal_px(view)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = -rotation @ centre
    return matrix


def project(matrix: np.ndarray, view: dict, points: np.ndarray) -> np.ndarray:
    """(N, 3) glTF points -> (N, 2) pixels from the top-left corner."""
    camera = points @ matrix[:3, :3].T + matrix[:3, 3]
    return focal_px(view) * camera[:, :2] / camera[:, 2:] + np.array([view["width"], view["height"]]) / 2


def glb_positions(path: Path) -> np.ndarray:
    """The POSITION accessor of the glb's first mesh primitive, (N, 3) float in the file's coordinates."""
    data = path.read_bytes()
    json_length = struct.unpack_from("<I", data, 12)[0]
    gltf = json.loads(data[20:20 + json_length])
    binary = data[20 + json_length + 8:]
    accessor = gltf["accessors"][gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = gltf["bufferViews"][accessor["bufferView"]]
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    stride = view.get("byteStride", 12)
    raw = np.frombuffer(binary, dtype=np.uint8, count=stride * accessor["count"], offset=start)
    return raw.reshape(-1, stride)[:, :12].copy().view("<f4").reshape(-1, 3).astype(float)


def set_up_scene(head, samples: int):
    import bpy

    scene = bpy.context.scene
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = samples
    scene.cycles.use_adaptive_sampling = True
    scene.cycles.adaptive_threshold = 0.02
    scene.cycles.use_denoising = True
    scene.cycles.denoiser = 'OPENIMAGEDENOISE'
    scene.cycles.use_animated_seed = False
    scene.cycles.max_bounces = 4
    scene.cycles.diffuse_bounces = 2
    scene.cycles.glossy_bounces = 2
    scene.cycles.transmission_bounces = 0
    scene.cycles.volume_bounces = 0
    scene.cycles.transparent_max_bounces = 0
    scene.cycles.sample_clamp_indirect = 5.0
    scene.render.film_transparent = False
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = 'PNG'
    scene.render.image_settings.color_mode = 'RGB'
    scene.render.image_settings.color_depth = '8'
    scene.view_settings.view_transform = 'AgX'
    scene.view_settings.look = 'None'
    scene.view_settings.exposure = 0.0

    # The glb's TEXCOORD_0 follows the three.js example's convention (textures loaded with flipY): its v runs
    # up the image. Blender's importer flips v the glTF way, which would put the maps upside down, so undo it.
    uv = head.data.uv_layers["UVMap"]
    coords = np.empty(len(uv.data) * 2, dtype=np.float32)
    uv.data.foreach_get("uv", coords)
    coords[1::2] = 1.0 - coords[1::2]
    uv.data.foreach_set("uv", coords)
    head.data.update()

    material = head.data.materials[0]
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.bl_idname == 'ShaderNodeBsdfPrincipled')
    colour = nodes.new('ShaderNodeTexImage')
    colour.image = bpy.data.images.load(str(COLOUR_MAP))
    colour.image.colorspace_settings.name = 'sRGB'
    normal_image = nodes.new('ShaderNodeTexImage')
    normal_image.image = bpy.data.images.load(str(NORMAL_MAP))
    normal_image.image.colorspace_settings.name = 'Non-Color'
    normal_map = nodes.new('ShaderNodeNormalMap')
    normal_map.space = 'TANGENT'
    normal_map.uv_map = "UVMap"
    normal_map.inputs["Strength"].default_value = 0.8
    links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(normal_image.outputs["Color"], normal_map.inputs["Color"])
    links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Roughness"].default_value = 0.55
    bsdf.inputs["Specular IOR Level"].default_value = 0.35
    bsdf.inputs["Metallic"].default_value = 0.0
    bsdf.inputs["Subsurface Weight"].default_value = 0.12
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.03  # scan units (about 1.5 mm)

    world = bpy.data.worlds.new("Backdrop")
    world.use_nodes = True
    scene.world = world
    return scene, world.node_tree.nodes["Background"]


def look_at_rotation(position_blender: np.ndarray, target_blender: np.ndarray):
    from mathutils import Vector

    return (Vector(target_blender) - Vector(position_blender)).to_track_quat('-Z', 'Y')


def place_view(scene, background, view: dict, matrix: np.ndarray, camera_object, lights: list):
    import bpy
    from mathutils import Matrix

    scene.render.resolution_x, scene.render.resolution_y = view["width"], view["height"]
    scene.cycles.seed = view["seed"]
    camera = camera_object.data
    camera.type = 'PERSP'
    camera.lens_unit = 'MILLIMETERS'
    camera.lens = view["focal_mm"]
    camera.sensor_fit = 'AUTO'  # the sensor width spans the longer image side
    camera.sensor_width = SENSOR_MM
    camera.shift_x = camera.shift_y = 0.0
    camera.clip_start, camera.clip_end = 0.1, 1000.0
    rotation, translation = matrix[:3, :3], matrix[:3, 3]
    centre = -rotation.T @ translation
    world_from_camera = np.eye(4)
    world_from_camera[:3, :3] = BLENDER_FROM_GLTF @ rotation.T @ BLENDER_CAMERA_FROM_CV
    world_from_camera[:3, 3] = BLENDER_FROM_GLTF @ centre
    camera_object.matrix_world = Matrix(world_from_camera.tolist())

    background.inputs["Color"].default_value = (*view["background"], 1.0)
    background.inputs["Strength"].default_value = view["world_strength"]

    for light in lights:
        bpy.data.objects.remove(light, do_unlink=True)
    lights.clear()
    for index, spec in enumerate(view["lights"]):
        data = bpy.data.lights.new(f"{view['name']} light {index}", 'AREA')
        data.shape = 'DISK'
        data.size = spec["size"]
        data.energy = spec["power"]
        data.color = spec["colour"]
        light = bpy.data.objects.new(data.name, data)
        scene.collection.objects.link(light)
        where = AIM + spec["distance"] * direction(view["yaw"] + spec["azimuth"], view["pitch"] + spec["elevation"])
        light.location = BLENDER_FROM_GLTF @ where
        light.rotation_mode = 'QUATERNION'
        light.rotation_quaternion = look_at_rotation(BLENDER_FROM_GLTF @ where, BLENDER_FROM_GLTF @ AIM)
        lights.append(light)


def check_camera(scene, camera_object, view: dict, matrix: np.ndarray, points: np.ndarray) -> float:
    """Largest difference in pixels between views.json's projection and Blender's own, over `points` (glTF)."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene.view_layers.update()
    ours = project(matrix, view, points)
    blender = []
    for point in points:
        ndc = world_to_camera_view(scene, camera_object, Vector(BLENDER_FROM_GLTF @ point))
        blender.append([ndc.x * view["width"], (1.0 - ndc.y) * view["height"]])
    return float(np.abs(ours - np.array(blender)).max())


def view_record(view: dict, matrix: np.ndarray, points: np.ndarray) -> dict:
    rotation, translation = matrix[:3, :3], matrix[:3, 3]
    centre = -rotation.T @ translation
    pixels = project(matrix, view, points)
    return {
        "image": f"{view['name']}.jpg",
        "width": view["width"], "height": view["height"],
        "focal_mm": view["focal_mm"], "sensor_mm_along_longer_side": SENSOR_MM,
        "focal_px": round(focal_px(view), 6),
        "principal_point_px": [view["width"] / 2, view["height"] / 2],
        "yaw_deg": view["yaw"], "pitch_deg": view["pitch"], "roll_deg": view["roll"],
        "camera_from_scan": [[round(float(c), 9) + 0.0 for c in row] for row in matrix],  # no -0.0
        "camera_position_scan": [round(float(c), 6) + 0.0 for c in centre],
        "camera_distance_to_aim": round(float(np.linalg.norm(centre - AIM)), 6),
        "nose_tip_vertex_px": [round(float(c), 3) for c in pixels[0]],
        "background_linear_rgb": list(view["background"]),
        "lights": [dict(spec) for spec in view["lights"]],
        "seed": view["seed"],
    }


def draw_debug(jpeg: Path, out: Path, pixels: np.ndarray):
    import cv2

    image = cv2.imread(str(jpeg))
    colours = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255)]
    for (x, y), colour in zip(pixels, colours):
        cv2.circle(image, (int(round(x - 0.5)), int(round(y - 0.5))), 4, colour, -1)
    cv2.imwrite(str(out), image)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=32, help="Cycles samples per pixel (denoised)")
    parser.add_argument("--only", nargs="*", help="render only these views (views.json still lists all)")
    parser.add_argument("--debug-dir", type=Path, help="also write photos with projected scan vertices drawn")
    args = parser.parse_args(argv)

    import bpy
    import cv2
    from asm_blender.scene_io.importers import open_head

    bpy.ops.wm.read_homefile(use_empty=True)
    head, _ = open_head(SCAN)
    if head.matrix_world != head.matrix_world.Identity(4):
        raise RuntimeError("the glTF importer gave the head an object transform; expected the identity")
    file_points = glb_positions(SCAN)
    mesh_points = np.empty(len(head.data.vertices) * 3)
    head.data.vertices.foreach_get("co", mesh_points)
    mesh_points = mesh_points.reshape(-1, 3)
    if mesh_points.shape != file_points.shape or np.abs(mesh_points - file_points @ BLENDER_FROM_GLTF.T).max() > 1e-5:
        raise RuntimeError("Blender's glTF import did not map the file's vertices as (x, -z, y) in order")
    nose_tip = int(np.argmax(file_points[:, 2]))  # the vertex furthest forward
    # Check points: the nose tip, the most +X / -X vertices (shoulders) and the top of the head.
    probe = np.array([nose_tip, int(np.argmax(file_points[:, 0])), int(np.argmin(file_points[:, 0])),
                      int(np.argmax(file_points[:, 1]))])
    probe_points = file_points[probe]

    scene, background = set_up_scene(head, args.samples)
    camera_object = bpy.data.objects.new("Photo camera", bpy.data.cameras.new("Photo camera"))
    scene.collection.objects.link(camera_object)
    scene.camera = camera_object
    lights: list = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for view in VIEWS:
            matrix = camera_from_scan(view)
            records.append(view_record(view, matrix, probe_points))
            place_view(scene, background, view, matrix, camera_object, lights)
            error = check_camera(scene, camera_object, view, matrix, file_points[::97])
            if error > 0.01:
                raise RuntimeError(f"{view['name']}: views.json's projection is {error:.3f} px off Blender's")
            inside = project(matrix, view, file_points[file_points[:, 1] > -0.5])  # the head above the neck
            if args.only and view["name"] not in args.only:
                continue
            png = Path(tmp) / f"{view['name']}.png"
            scene.render.filepath = str(png)
            start, start_cpu = time.perf_counter(), time.process_time()
            bpy.ops.render.render(write_still=True)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
            jpeg = OUT_DIR / f"{view['name']}.jpg"
            cv2.imwrite(str(jpeg), cv2.imread(str(png)), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            box = np.concatenate([inside.min(0), inside.max(0)]).round(0)
            print(f"{jpeg.name}: {view['width']}x{view['height']}, {view['focal_mm']:.0f} mm "
                  f"(f = {focal_px(view):.1f} px), yaw {view['yaw']:+.0f}, pitch {view['pitch']:+.0f}: "
                  f"{seconds:.1f} s ({cpu_seconds:.0f} s CPU), {jpeg.stat().st_size // 1024} KiB, head above the "
                  f"neck spans x {box[0]:.0f}..{box[2]:.0f}, y {box[1]:.0f}..{box[3]:.0f}; camera check {error:.1e} px",
                  file=sys.stderr)
            if args.debug_dir is not None:
                args.debug_dir.mkdir(parents=True, exist_ok=True)
                draw_debug(jpeg, args.debug_dir / f"{view['name']}_debug.png", project(matrix, view, probe_points))
    record = {
        "about": "Cycles renders of the Lee Perry-Smith head scan (samples/lee_perry_smith, CC BY 3.0) made by "
                 "samples/render_scan_photos.py, with the true camera of each.",
        "scan": "../lee_perry_smith/LeePerrySmith.glb",
        "scan_coordinates": "the glb file's own (glTF): +Y up, the face looks towards +Z, +X is the subject's "
                            "left; units of the scan (about 5-6 cm). Blender's importer maps them to (x, -z, y).",
        "camera_from_scan": "4x4 M: [x, y, z, 1] = M [p, 1] maps a scan point p to OpenCV camera coordinates "
                            "(x right, y down, z forward, scan units)",
        "pixels": "pixel = focal_px * (x / z, y / z) + (width / 2, height / 2), measured from the image's top-left "
                  "corner (the top-left pixel's centre is (0.5, 0.5)); no lens distortion",
        "angles": "yaw: camera position around the head's up axis from straight in front, positive towards the "
                  "subject's left (+X); pitch: positive = camera above, looking down; roll: positive = camera "
                  "turned clockwise about its axis. Informative only: camera_from_scan is the ground truth.",
        "nose_tip_vertex": f"glb vertex {nose_tip} (the most forward one), "
                           f"glTF {np.round(file_points[nose_tip], 6).tolist()}",
        "nose_tip_vertex_px": "that vertex projected into each photo",
        "renderer": f"Blender {bpy.app.version_string} Cycles CPU, {args.samples} samples (adaptive), "
                    "OpenImageDenoise, AgX view transform; JPEG quality 92 via OpenCV",
        "views": records,
    }
    (OUT_DIR / "views.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT_DIR / 'views.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    import os

    os._exit(code)  # the bpy module can hang at interpreter exit
