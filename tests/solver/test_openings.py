"""The sides of the mouth and the eyes (solver/rig/openings.py) and the weights' gate across them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver.core.config import WeightConfig
from solver.model import ASMModel
from solver.model.rigid_parts import subtree
from solver.rig.openings import opening_sides
from solver.template.skeleton import Opening


def sheet(slit: bool, size: int = 21):
    """A flat square grid of size x size vertices (spacing 1) with, when `slit`, the middle third of the row
    between y = 10 and y = 11 cut open (the two rows share no triangle there): a mouth seen from the front."""
    ids = np.arange(size * size).reshape(size, size)  # [y, x]
    vertices = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2).astype(float)
    vertices = np.column_stack([vertices, np.zeros(len(vertices))])
    triangles = []
    for y in range(size - 1):
        for x in range(size - 1):
            if slit and y == size // 2 and size // 3 <= x < 2 * size // 3:
                continue
            a, b, c, d = ids[y, x], ids[y, x + 1], ids[y + 1, x], ids[y + 1, x + 1]
            triangles += [[a, b, d], [a, d, c]]
    return vertices, np.array(triangles), ids


def sheet_sides(slit: bool):
    vertices, triangles, ids = sheet(slit)
    middle = len(ids) // 2
    # Seeds: three points one row above the slit's edge ("upper") and three one row below ("lower").
    upper, lower = ids[middle + 2, 8:13:2], ids[middle - 1, 8:13:2]
    landmarks = vertices[np.concatenate([upper, lower])]
    opening = Opening("mouth", {"upper": ((0,), (1,), (2,)), "lower": ((3,), (4,), (5,))}, np.array([1.0, -1.0, 0.0]))
    sides, notes = opening_sides(vertices, triangles, landmarks, np.ones(6, bool), (opening,), head_unit=20.0)
    return sides, notes, ids, middle


def test_sides_jump_across_an_open_slit_and_change_smoothly_across_a_sewn_one():
    open_sides, notes, ids, middle = sheet_sides(slit=True)
    assert notes == []
    above, below = open_sides.vertex[ids[middle + 1, 9:12], 0], open_sides.vertex[ids[middle, 9:12], 0]
    assert (above > 0.5).all() and (below < -0.5).all()  # neighbours across the slit: opposite sides
    assert (above - below > 1.0).all()
    # Sewn shut: a ramp over the three edges from one side's seeds to the other's, no jump at the lip line.
    sewn = sheet_sides(slit=False)[0].vertex[:, 0]
    assert (sewn[ids[middle + 1, 9:12]] - sewn[ids[middle, 9:12]] < 0.7).all()
    # Far from the opening (a corner of the sheet), a vertex is on neither side.
    assert abs(open_sides.vertex[ids[0, 0], 0]) < 0.25
    np.testing.assert_array_equal(open_sides.bone[:, 0], [1.0, -1.0, 0.0])


def test_an_opening_without_landmarks_is_left_out_with_a_note():
    vertices, triangles, ids = sheet(slit=True)
    opening = Opening("mouth", {"upper": ((0,), (1,)), "lower": ((2,), (3,))}, np.zeros(1))
    valid = np.array([True, False, True, True])
    sides, notes = opening_sides(vertices, triangles, vertices[ids[[15, 15, 5, 5], [8, 9, 8, 9]]], valid,
                                 (opening,), head_unit=20.0)
    assert (sides.vertex == 0).all() and len(notes) == 1 and "mouth" in notes[0]


def jaw_chain_weight(model: ASMModel, vertex_ids: np.ndarray) -> np.ndarray:
    names = list(model.rig.names)
    chain = torch.as_tensor(subtree(model.parents, names.index("jaw")))
    with torch.no_grad():
        dense = model.weights().to_dense(model.bone_count)
    return (dense[vertex_ids] * chain).sum(1).numpy()


@pytest.fixture(scope="module")
def projected_rig(sample_mesh):
    """The sample head's rig on the projected chart, which is continuous across the lips (a mesh without a UV
    map gets it too)."""
    from solver.rig.generate import GenerateSettings, place_rig

    rig, kind = place_rig(sample_mesh["vertices"], sample_mesh["triangles"], sample_mesh["corner_uv"],
                          sample_mesh["landmarks"], sample_mesh["landmark_valid"], GenerateSettings(chart="projected"))
    assert kind == "projected"
    return rig


def test_on_the_sample_head_the_lips_part_between_the_jaw_and_the_head(sample_mesh, projected_rig):
    """At the inner lip contour, where the lips touch, the lower lip follows the jaw and the upper lip does not;
    without the gate (sharpness 0) the lower lip follows the jaw far less."""
    vertices, landmarks = sample_mesh["vertices"], sample_mesh["landmarks"]
    upper_ids, lower_ids = [13, 82, 312], [14, 87, 317]  # MediaPipe inner lip, upper and lower
    upper = np.linalg.norm(vertices[:, None] - landmarks[upper_ids][None], axis=2).argmin(0)
    lower = np.linalg.norm(vertices[:, None] - landmarks[lower_ids][None], axis=2).argmin(0)
    sides = projected_rig.openings.vertex[:, 0]
    assert (sides[upper] > 0.3).all() and (sides[lower] < -0.3).all()
    gated = ASMModel(projected_rig, vertices, sample_mesh["triangles"], WeightConfig())
    assert jaw_chain_weight(gated, lower).min() > 0.8
    assert jaw_chain_weight(gated, upper).max() < 0.05
    ungated = ASMModel(projected_rig, vertices, sample_mesh["triangles"], WeightConfig(opening_sharpness=0.0))
    assert (jaw_chain_weight(gated, lower) - jaw_chain_weight(ungated, lower)).min() > 0.2


@pytest.mark.parametrize("cap", [4, 8])
def test_the_gated_fast_path_equals_the_dense_reference(sample_mesh, projected_rig, cap):
    model = ASMModel(projected_rig, sample_mesh["vertices"], sample_mesh["triangles"], WeightConfig(influence_cap=cap),
                     dtype=torch.float64)
    with torch.no_grad():
        fast = model.weights().to_dense(model.bone_count)
        assert (fast - model.dense_weights()).abs().max().item() < 20 * model.config.cull_tolerance
        subset = np.arange(0, len(sample_mesh["vertices"]), 7)
        view = model.restricted(subset)
        assert (view.weights().to_dense(model.bone_count) - fast[subset]).abs().max().item() < 1e-9


def test_a_mouth_sewn_shut_is_said_and_the_jaw_still_opens_it_without_a_tear(sample_mesh):
    """The Fran scan's mouth has no slit (a real scan); the sample head's has one."""
    from solver.template.poses import load_named_poses
    from tests.solver.conftest import fran_scan_rig

    vertices, triangles, rig, landmarks = fran_scan_rig("full")
    notes = [w for w in rig.warnings if "no slit" in w]
    assert len(notes) == 1 and notes[0].startswith("the mouth has no slit") and "follow the jaw" in notes[0]
    model = ASMModel(rig, vertices, triangles, dtype=torch.float64)
    pose = load_named_poses(rig.names, rig.head_unit)["jaw open"]
    with torch.no_grad():
        model.pose.rotvec.copy_(torch.as_tensor(pose["rotvec"]))
        posed = model.forward().numpy()
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    stretch = (np.linalg.norm(posed[edges[:, 0]] - posed[edges[:, 1]], axis=1)
               / np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1))
    chin = np.linalg.norm(posed - vertices, axis=1)[landmarks_near(vertices, landmarks[152])]
    assert chin.mean() > 0.05 * rig.head_unit  # the jaw opens the sewn mouth ...
    # ... and stretches it without a tear: the mouth corners stretch most (4.4x with the former chin-offset hinge,
    # 6.0x with the hinge in front of the ears, which swings the chin further for the same angle)
    assert stretch.max() < 8.0
    assert not [w for w in sample_mesh_notes(sample_mesh) if "no slit" in w]


def landmarks_near(vertices: np.ndarray, point: np.ndarray, count: int = 20) -> np.ndarray:
    return np.argsort(np.linalg.norm(vertices - point, axis=1))[:count]


def sample_mesh_notes(sample_mesh) -> list[str]:
    from solver.rig.openings import opening_sides
    from solver.template.skeleton import load_skeleton

    landmarks = sample_mesh["landmarks"][:468]
    unit = np.linalg.norm(landmarks[33] - landmarks[263])
    return opening_sides(sample_mesh["vertices"], sample_mesh["triangles"], landmarks,
                         sample_mesh["landmark_valid"][:468], load_skeleton("game").openings, unit)[1]
