"""The solver's posed mesh equals Blender's depsgraph-evaluated mesh (ASM.md §4), on real scenes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asm_blender.scene_io import armature as armature_io
from asm_blender.scene_io.mesh import mesh_from_arrays
from asm_blender.scene_io.rig import apply_rig
from solver.template.canonical import canonical_face
from solver.model.weights import CappedWeights, blend_vertices

from ..conftest import SCAN_DIR
from .conftest import generate, random_pose, sample_landmarks


def solver_posed(arrays, result, pose):
    """Pose the rig with the solver (float64) from the same arrays Blender received."""
    from solver.model.kinematics import forward_kinematics, local_pose_matrices, skinning_matrices

    bind = torch.as_tensor(result["bind"])
    local = local_pose_matrices(*(torch.as_tensor(pose[k]) for k in ("log_scale", "rotvec", "translation")))
    skin = skinning_matrices(bind, forward_kinematics(bind, local, result["parents"]))
    weights = CappedWeights(torch.as_tensor(result["weight_bones"]), torch.as_tensor(result["weight_values"]))
    return blend_vertices(torch.as_tensor(arrays.vertices), skin, weights).numpy()


def canonical_face_object():
    face = canonical_face()
    triangles = face.triangles
    return mesh_from_arrays("CanonicalFace", face.vertices[:468], triangles, face.uv[triangles]), face.vertices


@pytest.mark.parametrize("topology, preset, cap", [("sample", "full", 4), ("sample", "game", 8),
                                                   ("canonical", "full", 8), ("fran scan", "full", 4)])
def test_blender_evaluates_exactly_what_the_solver_computes(request, topology, preset, cap):
    if topology == "sample":
        mesh_obj = request.getfixturevalue("sample_head")
        landmarks, valid = sample_landmarks()
    elif topology == "fran scan":  # a face mask from a range scan: no back of the head, no ears
        from asm_blender.scene_io.sample import import_obj
        from asm_protocol.landmarks import load_landmarks

        mesh_obj = import_obj(SCAN_DIR / "fran_cut.obj")
        landmarks, valid = load_landmarks(SCAN_DIR / "landmarks.json")
    else:
        mesh_obj, landmarks = canonical_face_object()
        valid = np.ones(len(landmarks), dtype=bool)
    arrays, result = generate(mesh_obj, landmarks, valid, preset, cap)
    arm = apply_rig(mesh_obj, result)
    names = [str(n) for n in result["names"]]
    head_size = float(np.ptp(arrays.vertices, axis=0).max())

    rest = armature_io.rest_matrices(arm, names)
    # Blender rebuilds bone matrices from head, tail and roll in float32: rotation entries agree to a few 1e-6
    # (a point one head size away moves by that fraction of it), positions relative to the head's size
    assert np.abs(rest[:, :3, :3] - result["bind"][:, :3, :3]).max() <= 1e-5
    assert np.abs(rest[:, :3, 3] - result["bind"][:, :3, 3]).max() <= 1e-6 * head_size

    for seed in range(3):
        pose = random_pose(len(names), seed, result["free"])
        armature_io.set_pose(arm, names, pose["log_scale"], pose["rotvec"], pose["translation"])
        blender = armature_io.evaluated_vertices(mesh_obj)
        solver = solver_posed(arrays, result, pose)
        moved = np.abs(solver - arrays.vertices).max()
        assert moved > 0.05 * head_size, "the pose must really move the mesh"
        assert np.abs(blender - solver).max() <= 1e-5 * head_size


def test_weights_written_to_blender_are_the_fast_paths(sample_head):
    landmarks, valid = sample_landmarks()
    arrays, result = generate(sample_head, landmarks, valid)
    apply_rig(sample_head, result)
    names = [str(n) for n in result["names"]]
    written = armature_io.read_weights(sample_head, names)
    expected = np.zeros_like(written)
    np.add.at(expected, (np.arange(len(expected))[:, None], result["weight_bones"]), result["weight_values"])
    assert np.abs(written - expected).max() < 1e-6  # Blender stores weights as float32
    assert ((written > 0).sum(1) <= 4).all()
