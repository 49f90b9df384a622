from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SAMPLE_DIR


def triangulate(faces):
    """Fan-triangulate OBJ faces: (T, 3) vertex ids and (T, 3) UV ids."""
    vertex_ids, uv_ids = [], []
    for face in faces:
        for k in range(1, len(face) - 1):
            corners = (face[0], face[k], face[k + 1])
            vertex_ids.append([c[0] for c in corners])
            uv_ids.append([c[1] for c in corners])
    return np.asarray(vertex_ids), np.asarray(uv_ids)


@pytest.fixture(scope="session")
def sample_mesh():
    """The bundled sample head as solver arrays, with its stored landmarks."""
    from solver.landmarks import load_landmarks
    from solver.canonical import parse_obj

    vertices, uvs, faces = parse_obj(SAMPLE_DIR / "base_head.obj")
    triangles, uv_ids = triangulate(faces)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    return {"vertices": vertices, "triangles": triangles, "corner_uv": uvs[uv_ids], "landmarks": landmarks,
            "landmark_valid": valid}


@pytest.fixture(scope="session")
def sample_rig(sample_mesh):
    import warnings

    from solver.skeleton import load_skeleton
    from solver.transfer import transfer_template
    from solver.uv_chart import chart_from_uv_map

    chart = chart_from_uv_map(len(sample_mesh["vertices"]), sample_mesh["triangles"], sample_mesh["corner_uv"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig = transfer_template(load_skeleton("full"), sample_mesh["vertices"], sample_mesh["triangles"], chart,
                                sample_mesh["landmarks"], sample_mesh["landmark_valid"])
    return rig
