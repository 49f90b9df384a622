"""Loose parts inside a head (eyeballs, teeth) follow one bone rigidly; thin parts along the lids and the skin
keep their Gaussian weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from solver.model.rigid_parts import mesh_parts, subtree


def sphere(centre, radius, rings=6, segments=8):
    """A closed UV sphere: (V, 3) vertices and (T, 3) triangles."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring_points = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.outer(np.cos(theta), np.ones_like(phi)),
                            np.outer(np.sin(theta), np.sin(phi))], -1).reshape(-1, 3)
    vertices = np.vstack([[0, 1, 0], ring_points, [0, -1, 0]]) * radius + centre
    triangles = []
    last = len(vertices) - 1
    for s in range(segments):
        n = (s + 1) % segments
        triangles.append((0, 1 + n, 1 + s))
        triangles.append((last, 1 + (rings - 2) * segments + s, 1 + (rings - 2) * segments + n))
        for r in range(rings - 2):
            a, b = 1 + r * segments + s, 1 + r * segments + n
            triangles += [(a, b, b + segments), (a, b + segments, a + segments)]
    return vertices, np.array(triangles)


EYEBALL_SHIFT = np.array([0.0, 0.02, -0.04])  # iod


@pytest.fixture(scope="module")
def head_with_parts(sample_mesh):
    """The sample head with an eyeball in each eye, a lower and an upper tooth, a thin lash strip and a card on the
    chin (a large loose part near the mouth that touches no tooth, as a beard would)."""
    from solver.rig.generate import GenerateSettings, place_rig

    rig, _ = place_rig(sample_mesh["vertices"], sample_mesh["triangles"], None, sample_mesh["landmarks"],
                       sample_mesh["landmark_valid"], GenerateSettings(preset="full", chart="projected"))
    from solver.model import ASMModel

    plain = ASMModel(rig, sample_mesh["vertices"], sample_mesh["triangles"])
    heads = plain.bind_positions().detach().numpy()
    names = list(rig.names)
    unit = rig.head_unit
    landmarks = sample_mesh["landmarks"]
    vertices, triangles = [sample_mesh["vertices"]], [sample_mesh["triangles"]]
    parts = {}

    def add(name, part_vertices, part_triangles):
        start = sum(len(v) for v in vertices)
        vertices.append(part_vertices)
        triangles.append(part_triangles + start)
        parts[name] = np.arange(start, start + len(part_vertices))

    for side in ("L", "R"):  # a little off where the landmarks put the eye, as a real eyeball is
        add(f"eyeball.{side}", *sphere(heads[names.index(f"eye.{side}")] + EYEBALL_SHIFT * unit, 0.11 * unit))
    inside = np.array([0.0, 0.0, -0.12]) * unit  # behind the lips, towards the back of the head
    add("lower tooth", *sphere(landmarks[17] + inside, 0.03 * unit))  # 17: lower lip, middle
    add("upper tooth", *sphere(landmarks[0] + inside, 0.03 * unit))  # 0: upper lip, middle
    strip, strip_triangles = sphere(landmarks[386] + [0, 0.005 * unit, 0], 1.0, rings=3, segments=12)
    strip = (strip - strip.mean(0)) * [0.25 * unit, 0.01 * unit, 0.03 * unit] + strip.mean(0)  # thin, along the lid
    add("lash strip", strip, strip_triangles)
    add("chin card", *sphere(landmarks[152] + np.array([0.0, 0.0, 0.03]) * unit, 0.1 * unit, rings=16, segments=24))
    return np.vstack(vertices), np.vstack(triangles), parts, names


def test_parts_are_found_and_given_to_their_bones(head_with_parts, sample_mesh):
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.model import ASMModel

    vertices, triangles, parts, names = head_with_parts
    assert len(np.unique(mesh_parts(len(vertices), triangles))) == 7
    rig, _ = place_rig(vertices, triangles, None, np.vstack([sample_mesh["landmarks"]]),
                       sample_mesh["landmark_valid"], GenerateSettings(preset="full", chart="projected"))
    model = ASMModel(rig, vertices, triangles)
    weights = model.weights().to_dense(len(names)).detach().numpy()
    for side in ("L", "R"):
        eye = names.index(f"eye.{side}")
        np.testing.assert_allclose(weights[parts[f"eyeball.{side}"], eye], 1.0)
        assert not model.rig.has_gaussians[eye]  # the lids keep their margins
        assert weights[:len(sample_mesh["vertices"]), eye].max() == 0.0
    np.testing.assert_allclose(weights[parts["lower tooth"], names.index("jaw")], 1.0)
    np.testing.assert_allclose(weights[parts["upper tooth"], rig.remainder_bone], 1.0)
    lash = weights[parts["lash strip"]]
    assert (lash.max(1) < 1.0).any() and model.rigid[parts["lash strip"]].max() == -1  # follows the lid's Gaussians
    assert len(parts["chin card"]) > 0.05 * len(vertices)  # not a small part
    assert model.rigid[parts["chin card"]].max() == -1  # no teeth to split it by: its Gaussians weigh it
    # the dense reference and the fast path agree, rigid rows included
    np.testing.assert_allclose(model.dense_weights().detach().numpy(), weights, atol=1e-6)


def test_the_eyes_and_lids_turn_about_the_eyeballs_centres(head_with_parts, sample_mesh):
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.model import ASMModel

    vertices, triangles, parts, names = head_with_parts
    for preset in ("full", "game"):
        rig, _ = place_rig(vertices, triangles, None, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                           GenerateSettings(preset=preset, chart="projected"))
        heads = ASMModel(rig, vertices, triangles, dtype=torch.float64).bind_positions().detach().numpy()
        rig_names = list(rig.names)
        for side in ("L", "R"):
            eyeball = vertices[parts[f"eyeball.{side}"]]
            centre = (eyeball.max(0) + eyeball.min(0)) / 2
            turning = [n for n in rig_names if n.startswith("lid_") and n.endswith(side)]
            assert len(turning) == (4 if preset == "full" else 2)
            for bone in [f"eye.{side}"] + turning:
                np.testing.assert_allclose(heads[rig_names.index(bone)], centre, atol=1e-6 * rig.head_unit,
                                           err_msg=f"{preset} {bone}")


def test_without_eyeballs_the_lids_turn_about_the_eye_bone(sample_mesh):
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.model import ASMModel

    vertices, triangles = sample_mesh["vertices"], sample_mesh["triangles"]
    rig, _ = place_rig(vertices, triangles, None, sample_mesh["landmarks"], sample_mesh["landmark_valid"],
                       GenerateSettings(preset="full", chart="projected"))
    heads = ASMModel(rig, vertices, triangles, dtype=torch.float64).bind_positions().detach().numpy()
    names = list(rig.names)
    for side in ("L", "R"):
        eye = heads[names.index(f"eye.{side}")]
        for bone in ("lid_upper", "lid_upper_out", "lid_lower", "lid_lower_out"):
            np.testing.assert_allclose(heads[names.index(f"{bone}.{side}")], eye, atol=1e-9)


def test_a_mesh_of_one_part_has_nothing_rigid(sample_mesh):
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.model import ASMModel

    rig, _ = place_rig(sample_mesh["vertices"], sample_mesh["triangles"], None, sample_mesh["landmarks"],
                       sample_mesh["landmark_valid"], GenerateSettings(preset="game", chart="projected"))
    assert ASMModel(rig, sample_mesh["vertices"], sample_mesh["triangles"]).rigid is None


def test_the_ict_mouth_opens_with_the_jaw_as_the_kit_opens_it(shared_data):
    """On the ICT-FaceKit's whole head: every tooth its jawOpen moves goes with the jaw and every other one with the
    remainder bone, and the gums and tongue (one part, larger than a tooth) go with the jaw where that shape moves them
    with the lower teeth and stay where it leaves them (upper gums)."""
    import json

    from solver.model import ASMModel
    from solver.model.rigid_parts import loose_parts
    from solver.rig.generate import GenerateSettings, place_rig
    from solver.template.canonical import parse_obj, triangulate_faces

    vertices, uvs, faces = parse_obj(shared_data / "ict_facekit" / "generic_neutral_mesh.obj")
    triangles, uv_ids = triangulate_faces(faces)
    shapes = np.load(shared_data / "ict_facekit" / "ict_shapes.npz")
    names = [str(n) for n in shapes["expression_names"]]
    jaw_open = shapes["expression_offsets"][names.index("jawOpen")].astype(np.float64)
    ids = json.loads((Path(__file__).with_name("ict_landmark_vertices.json")).read_text())["vertices"]
    landmarks = np.array([vertices[i] if i is not None else [np.nan] * 3 for i in ids])
    rig, _ = place_rig(vertices, triangles, uvs[uv_ids], landmarks, np.array([i is not None for i in ids]),
                       GenerateSettings(preset="full"))
    model = ASMModel(rig, vertices, triangles)
    bones = list(rig.names)
    jaw, rest = bones.index("jaw"), rig.remainder_bone
    weights = model.weights().to_dense(len(bones)).detach().numpy()
    labels, small = loose_parts(vertices, triangles)
    regions = {part["name"]: part["vertices"] for part in
               json.loads((shared_data / "ict_facekit" / "ict_regions.json").read_text())["geometry_parts"]}
    teeth = np.unique(labels[regions["teeth"][0]:regions["teeth"][1] + 1])
    assert len(teeth) == 32 and set(teeth) <= set(small)
    for part in teeth:
        members = labels == part
        moved = np.linalg.norm(jaw_open[members], axis=1).mean() > 0.05
        np.testing.assert_allclose(weights[members, jaw if moved else rest], 1.0)
    gums = np.arange(regions["gums_and_tongue"][0], regions["gums_and_tongue"][1] + 1)
    assert len(np.unique(labels[gums])) == 1 and labels[gums[0]] not in small  # one part, not a small one
    lower_teeth = np.flatnonzero(np.isin(labels, teeth) & (np.linalg.norm(jaw_open, axis=1) > 0.05))
    rotation, translation = _rigid_motion(vertices[lower_teeth], vertices[lower_teeth] + jaw_open[lower_teeth])
    with_jaw = vertices[gums] @ rotation.T + translation - vertices[gums]
    follows_jaw = np.linalg.norm(jaw_open[gums] - with_jaw, axis=1) < np.linalg.norm(jaw_open[gums], axis=1)
    assert 0.3 < follows_jaw.mean() < 0.7  # both kinds are there
    assert np.mean((weights[gums, jaw] > 0.5) == follows_jaw) > 0.9
    np.testing.assert_allclose(weights[gums, jaw] + weights[gums, rest], 1.0)
    np.testing.assert_allclose(model.dense_weights().detach().numpy()[gums], weights[gums], atol=1e-6)


def _rigid_motion(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (3, 3) and translation (3,) that best carry `source` (P, 3) onto `target` (P, 3)."""
    from scipy.spatial.transform import Rotation

    rotation = Rotation.align_vectors(target - target.mean(0), source - source.mean(0))[0].as_matrix()
    return rotation, target.mean(0) - source.mean(0) @ rotation.T


def test_subtree_follows_the_parents():
    parents = np.array([-1, 0, 1, 0, 3, 2])
    assert subtree(parents, 1).tolist() == [False, True, True, False, False, True]
