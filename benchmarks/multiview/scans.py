"""The benchmark's ground-truth scans: which ones exist, and each one loaded into Blender with its texture and its
MediaPipe landmarks (found on renders by the same code as Generate Rig, so every scan is treated alike).

Built-in scans are listed in scans.json; a folder dropped into benchmarks/multiview/scans/ with a mesh, a colour
image and SOURCE.md joins them (optionally with a multiview.json holding the same keys as a scans.json entry).
Everything is kept in the scan's Blender world coordinates: the import's object transform is applied to the
mesh, so the mesh's coordinates, the landmarks and the cameras share one frame.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
SCAN_LIST = Path(__file__).with_name("scans.json")
DROP_IN = Path(__file__).with_name("scans")
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".fbx")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ScanSpec:
    name: str
    folder: Path
    mesh: str
    colour: str
    normal: str | None = None
    flip_v: bool = False
    face_direction: tuple[float, float, float] | None = None

    @property
    def key(self) -> str:
        """A file-name-safe name."""
        return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_")


@dataclass
class LoadedScan:
    spec: ScanSpec
    obj: object  # the bpy mesh object, world = object space
    vertices: np.ndarray  # (V, 3)
    triangles: np.ndarray  # (T, 3)
    landmarks: np.ndarray  # (478, 3), NaN where not found
    valid: np.ndarray  # (478,)
    face_direction: np.ndarray  # (3,) unit, horizontal
    notes: list[str] = field(default_factory=list)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[33] - self.landmarks[263]))


def _spec(entry: dict, folder: Path) -> ScanSpec:
    direction = entry.get("face_direction")
    return ScanSpec(entry.get("name", folder.name), folder, entry["mesh"], entry["colour"], entry.get("normal"),
                    bool(entry.get("flip_v", False)), None if direction is None else tuple(float(c) for c in direction))


def _drop_in_spec(folder: Path) -> ScanSpec | None:
    """A dropped-in folder's spec, or None when it lacks a mesh, a colour image or SOURCE.md."""
    extra = folder / "multiview.json"
    if extra.is_file():
        return _spec({"name": folder.name, **json.loads(extra.read_text())}, folder)
    meshes = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
    images = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not (folder / "SOURCE.md").is_file() or len(meshes) != 1 or not images:
        return None
    return ScanSpec(folder.name, folder, meshes[0], images[0])


def available_scans(extra_folders=()) -> tuple[list[ScanSpec], list[str]]:
    """The scans whose files are here, and a note for each listed one that is not (e.g. without the shared data)."""
    specs, missing = [], []
    for entry in json.loads(SCAN_LIST.read_text())["scans"]:
        folder = entry["folder"]
        folder = SHARED_DATA / folder[5:] if folder.startswith("data:") else ROOT / folder
        spec = _spec(entry, folder)
        if (folder / spec.mesh).is_file() and (folder / spec.colour).is_file():
            specs.append(spec)
        else:
            missing.append(f"{spec.name}: {folder / spec.mesh} not found (the shared data is not here); left out")
    candidates = sorted(p for p in DROP_IN.iterdir() if p.is_dir()) if DROP_IN.is_dir() else []
    for folder in [*candidates, *map(Path, extra_folders)]:
        spec = _drop_in_spec(folder)
        if spec is None:
            missing.append(f"{folder.name}: needs one mesh ({', '.join(MESH_SUFFIXES)}), a colour image and "
                           "SOURCE.md; left out")
        else:
            specs.append(spec)
    return specs, missing


def _texture(obj, spec: ScanSpec) -> None:
    """A Principled material with the scan's colour map (and normal map); UVs flipped where the file needs it."""
    import bpy

    mesh = obj.data
    if spec.flip_v and mesh.uv_layers.active is not None:
        uv = mesh.uv_layers.active
        coords = np.empty(len(uv.data) * 2, dtype=np.float32)
        uv.data.foreach_get("uv", coords)
        coords[1::2] = 1.0 - coords[1::2]
        uv.data.foreach_set("uv", coords)
    material = bpy.data.materials.new(f"{spec.name} skin")
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    bsdf = next(n for n in nodes if n.bl_idname == 'ShaderNodeBsdfPrincipled')
    colour = nodes.new('ShaderNodeTexImage')
    colour.image = bpy.data.images.load(str(spec.folder / spec.colour))
    links.new(colour.outputs["Color"], bsdf.inputs["Base Color"])
    if spec.normal and mesh.uv_layers.active is not None:
        normal_image = nodes.new('ShaderNodeTexImage')
        normal_image.image = bpy.data.images.load(str(spec.folder / spec.normal))
        normal_image.image.colorspace_settings.name = 'Non-Color'
        normal_map = nodes.new('ShaderNodeNormalMap')
        normal_map.uv_map = mesh.uv_layers.active.name
        normal_map.inputs["Strength"].default_value = 0.8
        links.new(normal_image.outputs["Color"], normal_map.inputs["Color"])
        links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    bsdf.inputs["Roughness"].default_value = 0.55
    bsdf.inputs["Specular IOR Level"].default_value = 0.35
    mesh.materials.clear()
    mesh.materials.append(material)


def _find_face_direction(obj, arrays, workdir: Path, detect) -> np.ndarray:
    """Where the face looks, found as Generate Rig finds it: renders from eight directions, the most frontal
    detection lifted onto the surface."""
    from asm_blender.scene_io.views import (CANDIDATE_YAWS, DETECTOR_SIZE, facing_direction, frontalness,
                                            lift_to_surface, render_direction_candidates)

    candidates = render_direction_candidates(obj, workdir / "directions", yaws=CANDIDATE_YAWS)
    detections = [detect(view.image_path, max_side=DETECTOR_SIZE) for view in candidates]
    scores = [frontalness(d.points) if d.found else -1.0 for d in detections]
    best = int(np.argmax(scores))
    if scores[best] < 0:
        raise RuntimeError(f"{obj.name}: no face found on renders from eight directions; set face_direction")
    points, ok, _ = lift_to_surface(obj, arrays, [candidates[best]], [detections[best].points])
    forward = facing_direction(np.where(ok[:, None], points, np.nan))
    return forward if forward is not None else np.asarray(candidates[best].camera_to_world)[:3, 2]


def load_scan(spec: ScanSpec, workdir: Path) -> LoadedScan:
    """Import the scan into a new empty file, bake its object transform, texture it and find its landmarks."""
    import bpy
    from mathutils import Matrix, Vector

    from asm_blender.scene_io.importers import open_head
    from asm_blender.scene_io.mesh import mesh_arrays
    from asm_blender.scene_io.views import landmarks_from_renders
    from solver.vision.photos import detect_face_landmarks_in_file

    bpy.ops.wm.read_homefile(use_empty=True)
    obj, notes = open_head(spec.folder / spec.mesh)
    obj.data.transform(obj.matrix_world)
    obj.matrix_world = Matrix.Identity(4)
    for other in [o for o in bpy.data.objects if o is not obj]:  # the glb's camera and lamp empties
        bpy.data.objects.remove(other, do_unlink=True)
    _texture(obj, spec)
    arrays = mesh_arrays(obj)
    if spec.face_direction is None:
        direction = _find_face_direction(obj, arrays, workdir, detect_face_landmarks_in_file)
    else:
        direction = np.asarray(spec.face_direction, dtype=float)
    direction = np.array([direction[0], direction[1], 0.0])
    direction /= np.linalg.norm(direction)
    found = landmarks_from_renders(obj, arrays, detect_face_landmarks_in_file, workdir / "landmarks",
                                   Vector(direction.tolist()))
    landmarks = np.where(found.valid[:, None], found.positions, np.nan)
    return LoadedScan(spec, obj, arrays.vertices, arrays.triangles, landmarks, found.valid.astype(bool), direction,
                      notes)
