"""Fitting a rig to a scan of another topology: the bundled Fran scan, and scans that must be refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from asm_blender.jobs import Job, JobError
from solver.template.canonical import parse_obj, triangulate_faces
from solver.core.errors import ASMInputError
from asm_protocol.landmarks import load_landmarks
from solver.model import ASMModel
from solver.fit.scan_fit import ScanFitSettings, fit_to_scan, prepare_scan
from tests.conftest import SCAN_DIR


@pytest.fixture(scope="module")
def fran():
    vertices, _, faces = parse_obj(SCAN_DIR / "fran_cut.obj")
    triangles, _ = triangulate_faces(faces)
    landmarks, valid = load_landmarks(SCAN_DIR / "landmarks.json")
    return {"vertices": vertices, "triangles": triangles, "landmarks": landmarks, "landmark_valid": valid}


@pytest.fixture(scope="module")
def placed_rig(sample_mesh):
    """The rig as Generate makes it (the chart chosen automatically: projected on the sample)."""
    from solver.rig.generate import place_rig

    rig, _ = place_rig(sample_mesh["vertices"], sample_mesh["triangles"], sample_mesh["corner_uv"],
                       sample_mesh["landmarks"], sample_mesh["landmark_valid"])
    return rig


def test_the_sample_rig_fits_the_bundled_scan(sample_mesh, placed_rig, fran):
    """The MakeHuman rig (decimetres) fitted to the Fran scan (metres, another topology, face only)."""
    torch.set_num_threads(2)
    scan = prepare_scan(fran["vertices"], fran["triangles"], fran["landmarks"], fran["landmark_valid"], "Fran")
    model = ASMModel(placed_rig, sample_mesh["vertices"], sample_mesh["triangles"])
    fitted = fit_to_scan(model, sample_mesh["landmarks"], sample_mesh["landmark_valid"], scan, ScanFitSettings("fast"))
    before, after = fitted.rms("before"), fitted.rms("after")
    # Metres: the landmark-aligned mean face is several mm off; the fit comes within about 1.5 mm, as a clean
    # face (the scan's noise is not copied into folds).
    assert 0.003 < before and after < 0.55 * before and after < 0.002, (before, after)
    assert fitted.turned < 0.02
    # The alignment may not shrink the scan to make every residual smaller (it stays near the landmarks' scale).
    assert abs(np.log(fitted.alignment.scale / fitted.start.scale)) < 0.1
    assert 0.7 < fitted.start.scale / 10 < 1.4  # ten decimetres per metre, up to the two faces' sizes
    totals = [h["total"] for h in fitted.fit.history]
    # (scan points with no counterpart on the rig count as the trim: a floor the total cannot go below)
    assert min(totals) < 0.6 * totals[0]


def test_without_smoothness_the_fit_folds_the_face(sample_mesh, placed_rig, fran):
    """Why scan fits are regularised: the same fit without the smoothness term copies the scan's noise."""
    scan = prepare_scan(fran["vertices"], fran["triangles"], fran["landmarks"], fran["landmark_valid"], "Fran")
    model = ASMModel(placed_rig, sample_mesh["vertices"], sample_mesh["triangles"])
    fitted = fit_to_scan(model, sample_mesh["landmarks"], sample_mesh["landmark_valid"], scan,
                         ScanFitSettings("fast", groups=("pose",), smoothness=0.0, pose_prior=1e-5))
    assert fitted.turned > 0.05


def test_bad_scans_are_refused_or_cleaned_with_a_note(fran):
    vertices, triangles = fran["vertices"], fran["triangles"]
    landmarks, valid = fran["landmarks"], fran["landmark_valid"]
    degenerate = np.concatenate([triangles, [[0, 0, 1], [5, 6, 5]]])
    scan = prepare_scan(vertices, degenerate, landmarks, valid, "Fran", samples=100)
    assert scan.notes == ["Fran: ignored 2 zero-area triangle(s) of 4226"] and len(scan.triangles) == len(triangles)
    with pytest.raises(ASMInputError, match="Fran has no triangles with area"):
        prepare_scan(vertices, triangles[:, [0, 0, 1]], landmarks, valid, "Fran")
    broken = vertices.copy()
    broken[7, 2] = np.inf
    with pytest.raises(ASMInputError, match="Fran has NaN or infinite vertex coordinates \\(first at vertex 7\\)"):
        prepare_scan(broken, triangles, landmarks, valid, "Fran")
    with pytest.raises(ASMInputError, match="Fran has no vertices"):
        prepare_scan(np.zeros((0, 3)), np.zeros((0, 3)), landmarks, valid, "Fran")
    no_eye = valid.copy()
    no_eye[263] = False
    with pytest.raises(ASMInputError, match="nose tip and both outer eye corners"):
        prepare_scan(vertices, triangles, landmarks, no_eye, "Fran")
    with pytest.raises(ASMInputError, match="unknown quality 'ultra'"):
        ScanFitSettings("ultra")


def test_a_scan_fit_job_can_be_cancelled(sample_mesh, fran):
    inputs = {**sample_mesh, "scan_vertices": fran["vertices"], "scan_triangles": fran["triangles"],
              "scan_landmarks": fran["landmarks"], "scan_landmark_valid": fran["landmark_valid"]}
    job = Job("fit_scan", {"generate": {"preset": "game"}, "fit": {"quality": "fast"}}, inputs)
    job.cancel()
    job.start()
    with pytest.raises(JobError, match="cancelled") as caught:
        job.result()
    assert caught.value.kind == "cancelled" and not (job.folder / "result.npz").exists()
    with pytest.raises(JobError, match="unknown quality 'ultra'"):
        Job("fit_scan", {"fit": {"quality": "ultra"}}, inputs).start().result()


def test_scan_fit_stages_are_data():
    from solver.template.skeleton import load_skeleton

    full, game = load_skeleton("full").names, load_skeleton("game").names
    stages = ScanFitSettings("fast", coarse=True, symmetry=0.5).stages(full)
    assert [s.name for s in stages] == ["coarse", "pose", "refine"]
    assert set(stages[0].bones) == set(game) and "symmetry" in stages[1].losses
    assert [s.name for s in ScanFitSettings("fast", coarse=True).stages(game)] == ["pose", "refine"]
    assert [s.name for s in ScanFitSettings("fast", groups=("pose",)).stages(full)] == ["pose"]
    assert all(s.to_dict() == type(s).from_dict(s.to_dict()).to_dict() for s in stages)
