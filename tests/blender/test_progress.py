"""Progress of the flows (issue 22): it only goes forward, a job fills the share its Status gives it, and the headless
log prints each stage at once and then at most once a second; a real headless Generate and (slow) a real photo fit
show it, the fit also its note for a photo with two faces and a TMPDIR left empty."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asm_blender import cli, jobs
from asm_blender.flows.steps import Fractions, ProgressLog, Status
from tests.blender.conftest import bpy, sample_landmarks
from tests.conftest import PROJECT_ROOT, SAMPLE_DIR

PROGRESS_LINE = re.compile(r"^\s+(\d+)% (.+)$")


def test_a_jobs_progress_fills_the_share_its_status_gives_and_never_goes_back():
    fractions = Fractions()
    assert fractions.of_status(Status("finding the face", 0.1)).fraction == 0.1
    assert fractions.of_job(jobs.Progress("landmarks", 1.0)).fraction == 0.1  # no share given: it stays
    assert fractions.of_status(Status("fitting", 0.2, solver_until=0.9)).fraction == 0.2
    assert fractions.of_job(jobs.Progress("fit cameras", 0.5)).fraction == pytest.approx(0.55)
    restarted = fractions.of_job(jobs.Progress("fit all", 0.1, loss=0.25))
    assert restarted.fraction == pytest.approx(0.55) and restarted.text == "solver: fit all"
    assert restarted.detail == "(loss 0.25)"
    assert fractions.of_status(Status("an earlier share", 0.3)).fraction == pytest.approx(0.55)


def test_the_log_prints_a_stage_at_once_then_at_most_once_a_second():
    lines, now = [], [0.0]
    log = ProgressLog(lines.append, clock=lambda: now[0])
    for step in range(30):  # a stage reporting every 0.1 s for 3 s
        now[0] = 0.1 * step
        log(Status("solver: fit", step / 30, detail=f"(loss {step})"))
    log(Status("writing", 0.97))  # a new stage: at once
    assert len(lines) == 4 and lines[0] == "    0% solver: fit (loss 0)" and lines[-1] == "   97% writing"


def test_a_log_for_part_of_a_command_prints_within_its_span():
    lines = []
    log = ProgressLog(lines.append, span=(0.1, 1.0))
    log(Status("fitting", 0.0))
    log(Status("writing", 1.0))
    assert lines == ["   10% fitting", "  100% writing"]


def progress_fractions(text: str) -> list[int]:
    return [int(match.group(1)) for match in map(PROGRESS_LINE.match, text.splitlines()) if match]


def test_a_headless_generate_reports_progress_that_only_goes_forward(tmp_path, capfd):
    """From renders and detections (its detection jobs went 50 % -> 25 % before), or where LiteRT is missing
    (Blender 5.0's test environment) from the head's landmark markers."""
    from asm_blender.scene_io import markers as markers_io
    from asm_blender.scene_io.sample import import_obj

    source = SAMPLE_DIR / "base_head.obj"
    if importlib.util.find_spec("ai_edge_litert") is None:
        head = import_obj(source)
        markers_io.write_markers(head, *sample_landmarks())
        bpy.context.view_layer.objects.active = head
        source = tmp_path / "head.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(source))
    capfd.readouterr()
    assert cli.main(["generate", str(source), "-o", str(tmp_path / "rigged.blend")]) == 0
    fractions = progress_fractions(capfd.readouterr().err)
    assert len(fractions) >= 4 and fractions == sorted(fractions), fractions


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="finding a face needs LiteRT (not in the Blender 5.0 test environment)")
def test_a_headless_photo_fit_on_a_photo_with_two_faces(tmp_path):
    """The sample photo beside a smaller copy of itself: the larger face is fitted and a note says so; the progress
    goes forward through the stages; torch's cache and the job folders are gone from TMPDIR afterwards."""
    from PIL import Image

    portrait = Image.open(PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg").convert("RGB")
    pair = Image.new("RGB", (2 * portrait.width, portrait.height), (200, 200, 200))
    pair.paste(portrait.resize((3 * portrait.width // 4, 3 * portrait.height // 4)), (0, portrait.height // 8))
    pair.paste(portrait, (portrait.width, 0))
    pair.save(tmp_path / "two_faces.jpg", quality=92)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir), PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-m", "asm_blender", "fit", str(SAMPLE_DIR / "base_head.obj"),
                           str(tmp_path / "two_faces.jpg"), "-o", "fitted.blend", "--quality", "fast", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert "photo two_faces.jpg: 2 faces found, using the largest" in summary["warnings"]
    assert summary["pixel_error_after"][0] < 0.05 * portrait.height
    fractions = progress_fractions(done.stderr)
    assert fractions == sorted(fractions) and fractions[-1] >= 95, fractions
    assert "EGL" not in done.stderr and "Traceback" not in done.stderr
    assert os.listdir(tmpdir) == []  # no torchinductor_* nor asm_* folder
    assert Path(tmp_path / "fitted.blend").is_file()
