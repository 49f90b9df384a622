"""The job protocol between the Blender side (asm_blender/jobs) and the solver worker process."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from asm_blender.jobs import Job, JobError, run_blocking
from solver.vision import model_files


def test_generate_job_runs_in_a_worker_process(sample_mesh):
    seen = []
    result = run_blocking("generate", {"preset": "game", "influence_cap": 4}, sample_mesh, report=seen.append)
    assert len(result["names"]) == 24
    assert result["weight_bones"].shape == (len(sample_mesh["vertices"]), 4)
    np.testing.assert_allclose(result["weight_values"].sum(1), 1.0, atol=1e-9)
    assert result["bind"].shape == (24, 4, 4)
    assert isinstance(result["warnings"], list)


def test_bad_input_comes_back_as_a_clear_error(sample_mesh):
    inputs = dict(sample_mesh, landmark_valid=np.zeros(478, dtype=bool))
    with pytest.raises(JobError, match="only 0 of 468 landmarks were found") as caught:
        run_blocking("generate", {"preset": "full"}, inputs, report=lambda p: None)
    assert caught.value.kind == "input"
    with pytest.raises(JobError, match="unknown preset 'mobile'"):
        run_blocking("generate", {"preset": "mobile"}, sample_mesh, report=lambda p: None)


def test_cancel_stops_the_worker_and_says_so(sample_mesh):
    job = Job("generate", {"preset": "game"}, sample_mesh)
    job.cancel()  # asked before the first progress report: the worker stops at its first check
    job.start()
    with pytest.raises(JobError, match="cancelled") as caught:
        job.result()
    assert caught.value.kind == "cancelled"
    assert not (job.folder / "result.npz").exists()


def test_a_job_whose_folder_went_away_before_its_turn_is_skipped(sample_mesh, tmp_path):
    first = Job("generate", {"preset": "game"}, sample_mesh, folder=tmp_path / "gone")
    server = first.start().server
    first.wait(lambda progress: None)  # the server is up and idle
    gone = Job("generate", {"preset": "game"}, sample_mesh, folder=tmp_path / "removed")
    import shutil

    shutil.rmtree(gone.folder)  # a cancelled Generate removes its work folder with the jobs still queued
    gone.start()
    after = Job("generate", {"preset": "game"}, sample_mesh, folder=tmp_path / "after").start()
    assert len(after.result()["names"]) == 24
    assert after.server is server and server.alive()  # the same process: it skipped the ticket and went on


def test_warming_up_starts_one_solver_process_that_loads_the_solver_and_detector():
    from asm_blender import jobs

    jobs.stop_worker()
    warm = jobs.warm_worker()
    assert warm is not None
    loaded = warm.result()["loaded"].tolist()
    assert "solver" in loaded
    assert ("detector" in loaded) == (importlib.util.find_spec("ai_edge_litert") is not None and model_files.complete())
    assert jobs.warm_worker() is None  # running already: nothing to do
    assert warm.server is jobs.WorkerServer.get()
