"""A head whose mouth is open in the rest mesh: the jaw's rest frame starts from its real angle (solver/rig/transfer.py
`rest_jaw_opening`), tried on the ICT-FaceKit's face opened by half of its own jawOpen shape."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from solver.rig.transfer import transfer_template
from solver.model.uv_chart import cylindrical_chart
from solver.rig.transfer import robust_alignment
from solver.template.canonical import canonical_face, parse_obj, triangulate_faces
from solver.template.skeleton import load_skeleton

LANDMARK_VERTICES = Path(__file__).with_name("ict_landmark_vertices.json")
FACE_AND_HEAD = 11248  # the kit's face and head-and-neck vertices come first (ict_regions.json)


@pytest.fixture(scope="module")
def ict_face(shared_data):
    """The kit's face and head (no mouth socket, teeth or eyes), its jawOpen offsets and its landmarks' vertices."""
    vertices, _, faces = parse_obj(shared_data / "ict_facekit" / "generic_neutral_mesh.obj")
    triangles, _ = triangulate_faces(faces)
    triangles = triangles[(triangles < FACE_AND_HEAD).all(1)]
    shapes = np.load(shared_data / "ict_facekit" / "ict_shapes.npz")
    names = [str(n) for n in shapes["expression_names"]]
    jaw_open = shapes["expression_offsets"][names.index("jawOpen")][:FACE_AND_HEAD].astype(np.float64)
    ids = json.loads(LANDMARK_VERTICES.read_text())["vertices"]
    return vertices[:FACE_AND_HEAD], triangles, jaw_open, ids


def rig_on(vertices, triangles, ids):
    landmarks = np.array([vertices[i] if i is not None else [np.nan] * 3 for i in ids])
    valid = np.array([i is not None for i in ids])
    skeleton = load_skeleton("game")
    face = canonical_face()
    alignment, _ = robust_alignment(face.vertices[:468], landmarks[:468], valid[:468], skeleton.iod_canonical)
    chart = cylindrical_chart(vertices, triangles, alignment.invert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transfer_template(skeleton, vertices, triangles, chart, landmarks, valid)


def jaw_frame_angle(open_rig, closed_rig) -> float:
    """Degrees the open rig's jaw frame is turned from the closed one's, about the face's left-right axis (+: open),
    both in their own canonical frames."""
    j = open_rig.names.index("jaw")
    a = open_rig.alignment.rotation.T @ open_rig.rest_rotation[j]
    b = closed_rig.alignment.rotation.T @ closed_rig.rest_rotation[j]
    turn = a @ b.T
    return float(np.degrees(np.arctan2(turn[2, 1] - turn[1, 2], turn[1, 1] + turn[2, 2])))


def test_an_open_rest_mouth_starts_the_jaw_at_its_angle(ict_face):
    vertices, triangles, jaw_open, ids = ict_face
    closed = rig_on(vertices, triangles, ids)
    assert not [w for w in closed.warnings if "mouth is open" in w]  # the kit's lips part a little at rest
    opened = rig_on(vertices + 0.5 * jaw_open, triangles, ids)
    notes = [w for w in opened.warnings if "mouth is open" in w]
    assert len(notes) == 1 and "rotation 0 is the mesh as it is" in notes[0]
    # half of the kit's jawOpen turns its lower teeth by 12.7 degrees (benchmarks/expressions.py)
    assert 9.0 < jaw_frame_angle(opened, closed) < 16.0
    assert str(round(jaw_frame_angle(opened, closed))) in notes[0]
