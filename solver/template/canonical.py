"""The MediaPipe canonical face (the skeleton template's frame): 478 landmarks, 468 on the surface, with UVs."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from . import TEMPLATE_DIR



@dataclass(frozen=True)
class CanonicalFace:
    vertices: np.ndarray  # (478, 3) cm, +Y up, +Z forward, +X the subject's left
    uv: np.ndarray  # (478, 2) per-vertex UV (only the first 468 are meaningful; iris UVs are placeholders)
    triangles: np.ndarray  # (T, 3) surface triangles over the first 468 vertices
    mirror: np.ndarray  # (478,) index of each landmark's left/right twin

    @property
    def surface_count(self) -> int:
        return 468


def parse_obj(path: Path) -> tuple[np.ndarray, np.ndarray, list[list[tuple[int, int]]]]:
    """Minimal OBJ reader for `v`, `vt` and `f v/vt` records.

    Hand-written on purpose: mesh libraries split vertices at UV seams and renumber them, but the
    canonical face's vertex index *is* the landmark id, so the `v` order must be kept exactly.
    """
    vertices, uvs, faces = [], [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[0] == "vt":
            uvs.append([float(x) for x in parts[1:3]])
        elif parts[0] == "f":
            corners = []
            for corner in parts[1:]:
                fields = corner.split("/")
                uv_index = int(fields[1]) - 1 if len(fields) > 1 and fields[1] else -1
                corners.append((int(fields[0]) - 1, uv_index))
            faces.append(corners)
    return np.asarray(vertices, float), np.asarray(uvs, float), faces


def triangulate_faces(faces: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate parse_obj faces: (T, 3) vertex indices and (T, 3) UV indices."""
    vertex_ids, uv_ids = [], []
    for face in faces:
        for k in range(1, len(face) - 1):
            corners = (face[0], face[k], face[k + 1])
            vertex_ids.append([c[0] for c in corners])
            uv_ids.append([c[1] for c in corners])
    return np.asarray(vertex_ids, dtype=np.int64), np.asarray(uv_ids, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def canonical_face() -> CanonicalFace:
    vertices, uvs, faces = parse_obj(TEMPLATE_DIR / "face_model_with_iris.obj")
    per_vertex_uv = np.zeros((len(vertices), 2))
    for face in faces:
        for vertex, uv_index in face:
            per_vertex_uv[vertex] = uvs[uv_index]
    surface = [[c[0] for c in face] for face in faces if all(c[0] < 468 for c in face)]
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    _, mirror = cKDTree(vertices).query(mirrored)
    return CanonicalFace(vertices, per_vertex_uv, np.asarray(surface, dtype=np.int64), mirror.astype(np.int64))
