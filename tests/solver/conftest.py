from __future__ import annotations

import pytest

from tests.conftest import SAMPLE_DIR


@pytest.fixture(scope="session")
def sample_mesh():
    """The bundled sample head as solver arrays, with its stored landmarks."""
    from asm_protocol.landmarks import load_landmarks
    from solver.template.canonical import parse_obj, triangulate_faces

    vertices, uvs, faces = parse_obj(SAMPLE_DIR / "base_head.obj")
    triangles, uv_ids = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SAMPLE_DIR / "landmarks.json")
    return {"vertices": vertices, "triangles": triangles, "corner_uv": uvs[uv_ids], "landmarks": landmarks,
            "landmark_valid": valid}


@pytest.fixture(scope="session")
def sample_rig(sample_mesh):
    """The product's full rig on the sample head (the template's learned Gaussians)."""
    return _sample_rig(sample_mesh, learned=True)


@pytest.fixture(scope="session")
def drawn_sample_rig(sample_mesh):
    """The full rig on the sample head from the hand-drawn template alone (no learned Gaussians): the synthetic
    people of the photo tests are posed with it, so that they stay the people those tests were written for
    whatever the product's Gaussians become."""
    return _sample_rig(sample_mesh, learned=False)


def _sample_rig(sample_mesh, learned: bool):
    import warnings

    from solver.template.skeleton import LEARNED_MIXTURES, load_skeleton
    from solver.rig.transfer import SPREAD_FLOOR_IN_EDGES, transfer_template
    from solver.model.uv_chart import chart_from_uv_map

    chart = chart_from_uv_map(len(sample_mesh["vertices"]), sample_mesh["triangles"], sample_mesh["corner_uv"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the drawn rig is the hand-drawn template as it stands, without Generate's floor on the Gaussians' spread
        return transfer_template(load_skeleton("full", mixtures=LEARNED_MIXTURES if learned else None),
                                 sample_mesh["vertices"], sample_mesh["triangles"], chart,
                                 sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                                 spread_floor=SPREAD_FLOOR_IN_EDGES if learned else 0.0)


def fran_scan_rig(preset: str):
    """The bundled Fran scan (a face mask with its mouth sewn shut) rigged through its own UV map: vertices (N, 3),
    triangles (T, 3), the rig definition for `preset` and the scan's landmarks (L, 3)."""
    import warnings

    from asm_protocol.landmarks import load_landmarks
    from solver.model.uv_chart import chart_from_uv_map
    from solver.rig.transfer import transfer_template
    from solver.template.canonical import parse_obj, triangulate_faces
    from solver.template.skeleton import load_skeleton
    from tests.conftest import SCAN_DIR

    vertices, uvs, faces = parse_obj(SCAN_DIR / "fran_cut.obj")
    triangles, uv_ids = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SCAN_DIR / "landmarks.json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rig = transfer_template(load_skeleton(preset), vertices, triangles,
                                chart_from_uv_map(len(vertices), triangles, uvs[uv_ids]), landmarks, valid)
    return vertices, triangles, rig, landmarks
