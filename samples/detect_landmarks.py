"""Find MediaPipe's 478 landmarks on a bundled sample head and store them beside it.

    .venv/bin/python samples/detect_landmarks.py samples/makehuman_head/base_head.obj
    .venv/bin/python samples/detect_landmarks.py samples/lee_perry_smith/LeePerrySmith.glb

Renders the head headless with Workbench from the front and four turned views, runs the face detector
(MediaPipe's models on LiteRT, solver/vision/face_models.py) on each render, casts every landmark back onto the
surface and keeps the median of the agreeing views. Writes `landmarks.json` (positions in the mesh file's own coordinates) and `landmarks_front.png`.
An .obj is imported with `import_obj` (its `v` records are the object space); a .glb/.gltf with Blender's glTF
importer, whose (x, -z, y) axis change is undone, so the points are in the glTF file's coordinates (+Y up).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asm_blender.scene_io.importers import open_head  # noqa: E402
from asm_blender.scene_io.sample import import_obj  # noqa: E402
from asm_blender.scene_io.mesh import SceneInputError, mesh_arrays  # noqa: E402
from asm_blender.scene_io.views import landmarks_from_renders  # noqa: E402
from asm_protocol.landmarks import LANDMARK_COUNT  # noqa: E402
from solver.vision.photos import detect_face_landmarks_in_file  # noqa: E402

GLTF_FROM_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # undoes the glTF importer's axes
COORDINATES = {
    ".obj": "the OBJ file's own (its v records, = object space after Blender's OBJ import): +Y up, +Z forward",
    ".glb": "the glTF file's own (its POSITION accessor; Blender's glTF importer puts (x, y, z) at object space "
            "(x, -z, y), undone here): +Y up, +Z forward",
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("obj", type=Path, metavar="MESH", help="an .obj, .glb or .gltf file")
    parser.add_argument("--face-direction", type=float, nargs=3, default=(0.0, -1.0, 0.0), metavar=("X", "Y", "Z"),
                        help="where the face looks in Blender's world after import (default: -Y, Blender's front)")
    args = parser.parse_args(argv)
    import bpy
    import cv2
    from mathutils import Vector

    bpy.ops.wm.read_homefile(use_empty=True)
    suffix = args.obj.suffix.lower()
    if suffix in (".glb", ".gltf"):
        head, _ = open_head(args.obj)
        if head.matrix_world != head.matrix_world.Identity(4):
            print(f"error: {args.obj}: the glTF node has a transform; expected the identity", file=sys.stderr)
            return 1
        file_from_object = GLTF_FROM_BLENDER
    else:
        head, file_from_object = import_obj(args.obj), None
    arrays = mesh_arrays(head)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            found = landmarks_from_renders(head, arrays, detect_face_landmarks_in_file, Path(tmp),
                                           Vector(args.face_direction))
        except SceneInputError as error:
            print(f"error: {args.obj}: {error}", file=sys.stderr)
            return 1
        for view, points in zip(found.views, found.detections):
            print(f"{view.image_path.name}: {'face found' if points is not None else 'no face'}", file=sys.stderr)
        positions, valid, agreeing = found.positions, found.valid, found.agreeing
        if file_from_object is not None:
            positions = positions @ file_from_object.T
        front = cv2.imread(str(found.views[0].image_path))
        for x, y in found.detections[0]:
            cv2.circle(front, (int(round(x)), int(round(y))), 1, (0, 0, 255), -1)
        cv2.imwrite(str(args.obj.parent / "landmarks_front.png"), front)
    record = {
        "about": "MediaPipe face-mesh landmarks (478: 468 surface + 10 iris) found on renders of the mesh and cast "
                 "onto its surface; null where no view agreed. Made by samples/detect_landmarks.py.",
        "mesh": args.obj.name,
        "coordinates": COORDINATES[".glb" if suffix in (".glb", ".gltf") else ".obj"],
        "detector": "mediapipe 0.10.21's face detection, face landmark and iris models on LiteRT "
                    "(solver/vision/face_models.py), Workbench renders 512 px, yaw 0/-15/+15/-30/+30",
        "face_direction": list(args.face_direction),
        "points": [[round(float(c), 6) for c in p] if ok else None for p, ok in zip(positions, valid)],
        "views_agreeing": [int(a) for a in agreeing],
    }
    assert len(record["points"]) == LANDMARK_COUNT
    out = args.obj.parent / "landmarks.json"
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}: {int(valid.sum())} of {LANDMARK_COUNT} landmarks", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
