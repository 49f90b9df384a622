"""Make the bundled ARKit expression library, solver/template/arkit_expressions.npz, from the ICT-FaceKit.

    .venv/bin/python -m scripts.build_arkit_expressions [--output PATH]

Reads ../shared/data/ict_facekit (MIT; not shipped with the extension) and the MediaPipe landmarks of the kit's whole
head cached by the benchmarks (benchmarks/results/ict_whole_head_landmarks.json; found on renders with bpy when
absent), places the full rig on the head as Generate does, and stores for each vertex of the kit's face area
(0-9408) on the outer skin (not inside the lips and lids): its canonical UV (solver.rig.arkit.canonical_chart_uv),
its side of the mouth and of each eye, its neutral position and the 52 ARKit expressions' offsets
(solver.rig.arkit.kit_sources), both in the canonical face's frame (cm). float16 offsets and sides (0.01 mm at the
largest offset), float32 positions; 1.3 MB.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity import FACE_VERTICES, RESULTS, SHARED, ict_landmarks, ict_missing  # noqa: E402
from solver.rig.arkit import ARKIT_NAMES, LIBRARY_FILE, canonical_chart_uv, kit_sources  # noqa: E402
from solver.rig.generate import GenerateSettings, place_rig  # noqa: E402
from solver.template.canonical import parse_obj, triangulate_faces  # noqa: E402

ABOUT = ("ARKit-52 expressions on the ICT-FaceKit's face area (vertices 0-9408), in the MediaPipe canonical face's "
         "frame (cm), made by scripts/build_arkit_expressions.py from ICT Face Model Light (ICT-FaceKit, Copyright (c) "
         "2020 USC Institute for Creative Technologies, MIT License). tongueOut is not in the kit: zero offsets.")


def kit_head():
    """The kit's whole neutral head: vertices (N, 3) cm, triangles (T, 3), corner UVs (T, 3, 2)."""
    vertices, uvs, faces = parse_obj(SHARED / "ict_facekit" / "generic_neutral_mesh.obj")
    triangles, uv_ids = triangulate_faces(faces)
    return vertices, triangles, uvs[uv_ids]


def arkit_offsets(shapes) -> np.ndarray:
    """(52, N, 3) the kit's offsets summed per ARKit name (zero for tongueOut)."""
    kit = {str(n): i for i, n in enumerate(shapes["expression_names"])}
    offsets = shapes["expression_offsets"]
    result = np.zeros((len(ARKIT_NAMES), offsets.shape[1], 3))
    for row, name in enumerate(ARKIT_NAMES):
        for source in kit_sources(name):
            result[row] += offsets[kit[source]]
    return result


def build(output: Path) -> dict:
    vertices, triangles, corner_uv = kit_head()
    landmarks, valid = ict_landmarks(vertices, triangles, RESULTS / "ict_whole_head_landmarks.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig, chart = place_rig(vertices, triangles, corner_uv, landmarks, valid, GenerateSettings("full", 4))
    uv = canonical_chart_uv(vertices, triangles, rig, landmarks, valid, outer_only=True)
    kept = np.flatnonzero(np.isfinite(uv[:FACE_VERTICES]).all(1))  # the outer skin: not inside the lips or lids
    shapes = np.load(SHARED / "ict_facekit" / "ict_shapes.npz")
    if not np.allclose(shapes["neutral_vertices"], vertices, atol=1e-4):
        raise SystemExit("the kit's neutral shape and its OBJ differ")
    alignment = rig.alignment
    to_frame = lambda offsets: (offsets @ alignment.rotation) / alignment.scale  # noqa: E731  mesh -> canonical
    neutral = to_frame(vertices[kept] - alignment.translation)
    offsets = to_frame(arkit_offsets(shapes)[:, kept])
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(output, names=np.array(ARKIT_NAMES), canonical_uv=uv[kept].astype(np.float32),
                        sides=rig.openings.vertex[kept].astype(np.float16), kit_vertices=kept.astype(np.int32),
                        neutral=neutral.astype(np.float32), offsets=offsets.astype(np.float16),
                        about=np.array(ABOUT))
    return {"vertices": len(kept), "chart": chart, "bytes": output.stat().st_size,
            "largest_offset_cm": float(np.abs(offsets).max()),
            "float16_error_cm": float(np.abs(offsets.astype(np.float16) - offsets).max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="make solver/template/arkit_expressions.npz from the ICT-FaceKit")
    parser.add_argument("--output", type=Path, default=LIBRARY_FILE)
    args = parser.parse_args(argv)
    if ict_missing("the ARKit library"):
        return 2
    print(build(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
