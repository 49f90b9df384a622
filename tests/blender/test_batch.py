"""`asm batch MANIFEST` (issue 20): the manifest checked as a whole before anything runs, and real batches (each job
`python -m asm_blender generate|fit|export` in its own process, on the game preset and the small sample head):
their outputs and summaries, failures that stay in their job (a corrupt mesh, a mesh without a face, a missing
photo, an unwritable output folder, a job whose process is killed, a job past its time limit), and a batch stopped
half-way and run again. The batches run as real commands in their own process group, with a private TMPDIR."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from asm_blender import cli
from tests.blender.conftest import bpy
from tests.conftest import PROJECT_ROOT, SAMPLE_DIR

HEAD = SAMPLE_DIR / "base_head.obj"
PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"
LAUNCHER = PROJECT_ROOT / "scripts" / "blender"
STEP_SECONDS = 0.1

needs_detector = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                    reason="finding a face needs LiteRT (not in the Blender 5.0 test environment)")
needs_proc = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(),
                                reason="the jobs' processes are found through /proc")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def check(manifest: Path, *options: str, capfd) -> tuple[int, list[str]]:
    """`batch MANIFEST --check ...` in this process: its exit code and its stderr lines."""
    code = cli.main(["batch", str(manifest), "--check", *options])
    return code, capfd.readouterr().err.splitlines()


@pytest.fixture(scope="module")
def marked_head(tmp_path_factory) -> Path:
    """The sample head in a .blend with its landmark markers (from samples/.../landmarks.json): Generate takes the
    markers instead of rendering and detecting the face, which makes a job a few seconds shorter."""
    from asm_blender.scene_io import markers
    from asm_blender.scene_io.sample import import_obj
    from tests.blender.conftest import sample_landmarks

    path = tmp_path_factory.mktemp("marked") / "marked.blend"
    bpy.ops.wm.read_homefile(use_empty=True)
    head = import_obj(HEAD)
    head.name = "Head"
    markers.write_markers(head, *sample_landmarks())
    bpy.context.view_layer.objects.active = head
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    return path


@pytest.fixture()
def folder(tmp_path, marked_head) -> Path:
    """A manifest's folder with the sample head (head.obj, and marked.blend with its landmark markers) and a
    photo."""
    shutil.copy(HEAD, tmp_path / "head.obj")
    shutil.copy(marked_head, tmp_path / "marked.blend")
    (tmp_path / "photos").mkdir()
    shutil.copy(PHOTO, tmp_path / "photos" / "front.jpg")
    return tmp_path


# --- the manifest -----------------------------------------------------------------------------------------------

BAD_TOML = """\
[defaults]
preset = "game"

[[head]]
name = "good"
mesh = "head.obj"
output = "out/good.blend"

[[head]]
name = "missing_mesh"
mesh = "nowhere.obj"

[[head]]
name = "typo"
mesh = "head.obj"
presett = "game"

[[head]]
name = "bad_value"
mesh = "head.obj"
cap = 5
quality = "perfect"

[[head]]
name = "same_output"
mesh = "head.obj"
output = "out/good.blend"

[[head]]
name = "good"
mesh = "head.obj"
output = "out/other.blend"

[[head]]
name = "missing_photo"
mesh = "head.obj"
photos = ["photos", "photos/side.jpg"]

[[head]]
name = "unwritable"
mesh = "head.obj"
output = "a_file/out.blend"

[[head]]
name = "no_photos_for_overlays"
mesh = "head.obj"
overlays = "out/overlays"

[[head]]
name = "overwrites_an_input"
mesh = "head.obj"
output = "rigged.blend"

[[head]]
name = "rigged"
mesh = "rigged.blend"
output = "out/rigged.blend"

[[head]]
name = "onto_itself"
mesh = "rigged.blend"
output = "rigged.blend"
"""


def test_every_bad_row_is_named_with_its_line_and_reason_and_nothing_starts(folder, capfd):
    (folder / "a_file").write_text("a file where a folder should be\n")
    (folder / "rigged.blend").write_text("only its name matters here\n")
    manifest = folder / "heads.toml"
    manifest.write_text(BAD_TOML)
    before = sorted(p.name for p in folder.iterdir())
    code, lines = check(manifest, capfd=capfd)
    assert code == 1
    problems = [line for line in lines if line.startswith("heads.toml line")]
    expected = [  # (line, words in the reason), in the manifest's order
        (11, ["missing file", "nowhere.obj"]),
        (16, ["unknown setting 'presett'"]),
        (21, ["cap = 5", "use one of 4, 8"]),
        (22, ["quality = 'perfect'", "use one of fast, balanced, best"]),
        (24, ["duplicate output path", "good.blend", "heads.toml line 4"]),
        (29, ["duplicate name 'good'", "heads.toml line 4"]),
        (37, ["missing file", "side.jpg"]),
        (42, ["a_file", "is a file, not a folder"]),
        (47, ["overlays need photos"]),
        (49, ["rigged.blend", "is an input of heads.toml line 54"]),
        (62, ["rigged.blend", "is the input file"]),
    ]
    assert len(problems) == len(expected), "\n".join(lines)
    by_line = sorted(problems, key=lambda p: int(p.split()[2][:-1]))
    for (line, words), problem in zip(sorted(expected), by_line, strict=True):
        assert problem.startswith(f"heads.toml line {line}:"), (line, problem)
        assert all(word in problem for word in words), (words, problem)
    assert lines[-1].startswith("error: heads.toml: 11 problem(s) in 10 row(s)") and "--skip-invalid" in lines[-1]
    assert "2 valid row" in lines[-1]
    assert sorted(p.name for p in folder.iterdir()) == before  # no batch folder, no output


def test_skip_invalid_keeps_the_valid_rows(folder, capfd):
    (folder / "a_file").write_text("a file\n")
    (folder / "rigged.blend").write_text("only its name matters here\n")
    manifest = folder / "heads.toml"
    manifest.write_text(BAD_TOML)
    code = cli.main(["batch", str(manifest), "--check", "--skip-invalid", "--json"])
    captured = capfd.readouterr()
    assert code == 0
    listing = json.loads(captured.out)
    assert [job["name"] for job in listing["jobs"]] == ["good", "rigged"] and listing["jobs"][0]["run"]
    steps = listing["jobs"][0]["steps"]
    assert [step[3:5] for step in steps] == [["generate", str(folder / "head.obj")]]
    assert "--preset" in steps[0] and steps[0][steps[0].index("--preset") + 1] == "game"  # the [defaults]
    assert len(listing["invalid"]) == 10
    assert all(line.startswith("skipped: heads.toml line") for line in captured.err.splitlines()[:11])


def test_the_manifests_own_problems_are_never_skipped(folder, capfd):
    manifest = folder / "heads.toml"
    manifest.write_text('[defaults]\npreset = "huge"\n\n[extra]\nx = 1\n\n[[head]]\nmesh = "head.obj"\n')
    code, lines = check(manifest, "--skip-invalid", capfd=capfd)
    assert code == 1
    assert lines[:2] == ["heads.toml: unknown section 'extra'; use [defaults] and [[head]] tables",
                         "heads.toml defaults: preset = 'huge': use one of full, standard, game"]
    assert lines[-1].startswith("error: heads.toml: 2 problem(s)") and "bad rows only" in lines[-1]
    manifest.write_text('[[head]]\nmesh = "head.obj"\npreset = game\n')
    code, lines = check(manifest, capfd=capfd)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("error: heads.toml: not valid TOML") and "line 3" in lines[0]
    manifest.write_text("")
    code, lines = check(manifest, capfd=capfd)
    assert code == 1 and lines[0] == "heads.toml: no heads in this manifest; add a row per head (see the README's " \
                                     "Batches section)"


def test_json_and_csv_manifests_name_their_lines_and_resolve_paths_against_their_folder(folder, capfd):
    sub = folder / "lists"
    sub.mkdir()
    (sub / "heads.json").write_text(json.dumps({"defaults": {"preset": "game"}, "heads": [
        {"name": "fine", "mesh": "../head.obj", "photos": "../photos", "quality": "fast"},
        {"name": "lost", "mesh": "head.obj"},
    ]}, indent=1))
    code, lines = check(sub / "heads.json", capfd=capfd)
    assert code == 1
    assert [line for line in lines if not line.startswith("error")] == [
        f"heads.json line 12: missing file: mesh {sub / 'head.obj'} not found"]
    (sub / "heads.csv").write_text("name,mesh,photos,preset,same_lens,output\n"
                                   "fine,../head.obj,../photos/front.jpg;../photos,game,yes,out/fine.blend\n"
                                   "# a comment\n"
                                   "bad,../head.obj,,huge,maybe,\n")
    code, lines = check(sub / "heads.csv", capfd=capfd)
    assert code == 1
    assert lines[:2] == ["heads.csv line 4: preset = 'huge': use one of full, standard, game",
                         "heads.csv line 4: same_lens = 'maybe': give true or false"]
    (sub / "heads.csv").write_text("name,mesh,photos,preset,same_lens,output\n"
                                   "fine,../head.obj,../photos/front.jpg,game,yes,out/fine.blend\n")
    assert cli.main(["batch", str(sub / "heads.csv"), "--check", "--json"]) == 0
    job = json.loads(capfd.readouterr().out)["jobs"][0]
    argv = job["steps"][0]
    assert argv[3:6] == ["fit", str(folder / "head.obj"), str(folder / "photos" / "front.jpg")]
    assert "--same-lens" in argv and argv[argv.index("-o") + 1] == str(sub / "out" / ".fine.batch-partial.blend")


def test_a_folder_of_heads_is_a_manifest(folder, capfd):
    heads = folder / "heads"
    heads.mkdir()
    shutil.copy(HEAD, heads / "anna.obj")
    shutil.copy(HEAD, heads / "ben.obj")
    shutil.copytree(folder / "photos", heads / "ben")  # ben's photos
    code = cli.main(["batch", str(heads), "--check", "--json", "--preset", "game", "--fbx"])
    assert code == 0
    jobs = {job["name"]: job for job in json.loads(capfd.readouterr().out)["jobs"]}
    assert sorted(jobs) == ["anna", "ben"]
    assert [step[3] for step in jobs["anna"]["steps"]] == ["generate", "export"]
    assert [step[3] for step in jobs["ben"]["steps"]] == ["fit", "export"]
    assert jobs["ben"]["steps"][0][5] == str(heads / "ben")
    assert jobs["anna"]["steps"][1][-2] == str(heads / "asm_out" / ".anna.batch-partial.fbx")


def test_ray_without_ray_says_how_to_install_it(folder, capfd):
    if importlib.util.find_spec("ray") is not None:
        pytest.skip("Ray is installed here")
    (folder / "heads.toml").write_text('[[head]]\nmesh = "head.obj"\n')
    assert cli.main(["batch", str(folder / "heads.toml"), "--ray"]) == 1
    error = capfd.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: --ray needs Ray") and "pip install ray" in error[0]
    assert not (folder / "heads.batch").exists()


# --- one job's processes (process.run_job with small Python programs as the steps) -------------------------------


def python_step(what: str, code: str) -> dict:
    return {"what": what, "argv": [sys.executable, "-c", code]}


def job_payload(tmp_path: Path, *steps: dict, timeout: float | None = None, outputs=()) -> dict:
    from asm_blender.cli.batch.plan import staged

    return {"name": "job", "steps": list(steps), "env": {}, "cwd": str(tmp_path), "log": str(tmp_path / "job.log"),
            "timeout": timeout, "retries": 1, "grace": 5.0,
            "staged": [[str(staged(tmp_path / name)), str(tmp_path / name)] for name in outputs]}


def test_a_job_moves_its_outputs_into_place_only_when_every_step_succeeded(tmp_path):
    from asm_blender.cli.batch.process import run_job

    write = "import sys; open(sys.argv[1], 'w').write(sys.argv[2]); print('{\"warnings\": [\"w\"]}')"
    first = {"what": "first", "argv": [sys.executable, "-c", write, str(tmp_path / ".a.batch-partial.txt"), "A"]}
    second = {"what": "second", "argv": [sys.executable, "-c", write, str(tmp_path / ".b.batch-partial.txt"), "B"]}
    result = run_job(job_payload(tmp_path, first, second, outputs=("a.txt", "b.txt")))
    assert result["status"] == "done" and result["attempts"] == 1 and result["reason"] is None
    assert result["summaries"] == [{"warnings": ["w"]}, {"warnings": ["w"]}]
    assert result["outputs"] == {str(tmp_path / "a.txt"): hashlib.sha256(b"A").hexdigest(),
                                 str(tmp_path / "b.txt"): hashlib.sha256(b"B").hexdigest()}
    failing = python_step("third", "import sys; print('error: the third step could not', file=sys.stderr); "
                                   "sys.exit(1)")
    (tmp_path / "a.txt").unlink()
    result = run_job(job_payload(tmp_path, first, failing, outputs=("a.txt",)))
    assert result["status"] == "failed" and result["reason"] == "third: the third step could not"
    assert result["attempts"] == 1 and result["outputs"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.txt", "job.log"]  # a.txt was staged, never moved


def test_a_crashed_job_runs_once_more_and_a_hung_one_is_stopped_at_its_time_limit(tmp_path):
    from asm_blender.cli.batch.process import run_job

    crash_once = ("import os, signal, sys, pathlib; marker = pathlib.Path('crashed'); "
                  "crashed = marker.exists(); marker.touch(); crashed or os.kill(os.getpid(), signal.SIGSEGV)")
    result = run_job(job_payload(tmp_path, python_step("crashy", crash_once)))
    assert result["status"] == "done" and result["attempts"] == 2
    assert result["crashes"] == ["crashy: the job's process was killed by SIGSEGV"]
    always = python_step("crashy", "import sys; sys.exit(70)")
    result = run_job(job_payload(tmp_path, always))
    assert result["status"] == "failed" and result["attempts"] == 2
    assert result["reason"] == "crashy: the job's process ended with exit code 70, on its one retry too"
    from asm_blender.jobs.job import WORKER_STOPPED

    worker_died = python_step("fit", f"import sys; print('error: {WORKER_STOPPED} the fit job (killed by signal 9)', "
                                     "file=sys.stderr); sys.exit(1)")
    result = run_job({**job_payload(tmp_path, worker_died), "crash_errors": [WORKER_STOPPED]})
    assert result["status"] == "failed" and result["attempts"] == 2  # the solver process died: run once more
    assert result["reason"] == f"fit: {WORKER_STOPPED} the fit job (killed by signal 9), on its one retry too"
    hung = python_step("hung", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)")
    pids = []
    result = run_job(job_payload(tmp_path, hung, timeout=1.0), on_step=lambda attempt, what, pid: pids.append(pid))
    assert result["status"] == "failed" and result["attempts"] == 1  # a time limit is no crash: no second try
    assert result["reason"].startswith("timed out after 1 s in hung")
    with pytest.raises(ProcessLookupError):  # it ignored SIGTERM: SIGKILL ended it after the grace time
        os.kill(pids[0], 0)
    assert "== failed: timed out after 1 s" in (tmp_path / "job.log").read_text()


# --- real batches -------------------------------------------------------------------------------------------------


class Batch:
    """`python -m asm_blender batch ARGV` (or another command line) in a new process group with a private TMPDIR;
    stderr to a file, stdout kept."""

    def __init__(self, folder: Path, *argv: str, command: list[str] | None = None, **env: str):
        self.folder, self.tmpdir = folder, folder / f"tmp{len(list(folder.glob('tmp*')))}"
        self.tmpdir.mkdir()
        self.stderr_path, self.stdout_path = self.tmpdir.with_suffix(".err"), self.tmpdir.with_suffix(".out")
        environment = dict(os.environ, TMPDIR=str(self.tmpdir),
                           PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        environment.update(env)
        command = command or [sys.executable, "-m", "asm_blender"]
        with self.stderr_path.open("w") as stderr, self.stdout_path.open("w") as stdout:
            self.process = subprocess.Popen([*command, "batch", *argv], cwd=folder, env=environment,
                                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                            start_new_session=True)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def finish(self, limit_seconds: float = 600.0) -> int:
        return self.process.wait(limit_seconds)

    def summary(self) -> dict:
        return json.loads(self.stdout_path.read_text())

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture()
def batch(tmp_path):
    started = []

    def start(*argv: str, **options) -> Batch:
        started.append(Batch(tmp_path, *argv, **options))
        return started[-1]

    yield start
    for running in started:
        running.close()
    leftover = _job_processes(tmp_path)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, "a job's process outlived its batch"


def _job_processes(folder: Path) -> list[int]:
    """Processes whose command line names `folder` (the jobs, their solver workers), other than this one."""
    found = []
    if not Path("/proc").is_dir():
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in arguments:
            found.append(int(entry.name))
    return found


def running_process(pid: int) -> bool:
    """Whether `pid` is a live process (not ended, nor a zombie left for a parent that is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running_attempt(state: Path, log: Path, name: str, attempt: int, shown: str = "opening") -> int | None:
    """The process id of job `name`'s `attempt` once its log shows `shown` in that attempt, else None."""
    record = latest(state).get(name, {})
    text = log.read_text(errors="replace") if log.exists() else ""
    marker = f"== attempt {attempt}: "
    if record.get("attempt") == attempt and record.get("pid") and marker in text and \
            shown in text.split(marker)[-1]:
        return record["pid"]
    return None


def solver_worker_of(pid: int) -> int | None:
    """The solver process (python -m solver.worker) that the job's command `pid` started, if any yet."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and b"solver.worker" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def records(state: Path) -> list[dict]:
    return [json.loads(line) for line in state.read_text().splitlines()] if state.exists() else []


def latest(state: Path) -> dict[str, dict]:
    return {r["job"]: r for r in records(state)}


def wait_until(condition, what: str, run: Batch, limit_seconds: float = 300.0):
    deadline = time.monotonic() + limit_seconds
    while not (value := condition()):
        assert run.process.poll() is None, f"the batch ended before {what}:\n{run.stderr()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what}:\n{run.stderr()[-3000:]}"
        time.sleep(STEP_SECONDS)
    return value


def head_rows(names, extra: str = "", mesh: str = "marked.blend") -> str:
    return "".join(f'[[head]]\nname = "{n}"\nmesh = "{mesh}"\noutput = "out/{n}.blend"\n{extra}\n' for n in names)


def no_staged_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".batch-partial" in p.name or ".partial" in p.name]


@needs_detector
@needs_proc
def test_a_small_batch_in_blender_writes_the_outputs_state_logs_and_summaries(folder, batch, capfd):
    """Started as `blender -b -c asm batch` (the launcher: the bpy module with Blender's command line), each job
    run by that Blender too; run again, it runs nothing and leaves every output as it was."""
    (folder / "heads.toml").write_text('[defaults]\npreset = "game"\n\n' + head_rows(["anna"], mesh="head.obj") +
                                       head_rows(["ben"]) + '[[head]]\nname = "cleo"\nmesh = "marked.blend"\n'
                                       'output = "out/cleo.blend"\nglb = "out/cleo.glb"\nfbx = "out/cleo.fbx"\n')
    blender = [str(LAUNCHER), "-b", "--addons", "asm_blender", "-c", "asm"]
    run = batch("heads.toml", "--jobs", "2", "--json", command=blender,
                ASM_BATCH_BLENDER=f"{LAUNCHER} --addons asm_blender", ASM_BPY_PYTHON=sys.executable)
    assert run.finish() == 0, run.stderr()[-3000:]
    summary = run.summary()
    out = folder / "out"
    assert sorted(p.name for p in out.iterdir()) == ["anna.blend", "ben.blend", "cleo.blend", "cleo.fbx", "cleo.glb"]
    assert no_staged_files(folder) and os.listdir(run.tmpdir) == []
    assert summary["totals"] | {"wall_seconds": 0, "jobs_per_minute": 0, "mean_job_seconds": 0} == {
        "jobs": 3, "done": 3, "failed": 0, "queued": 0, "invalid": 0, "ran_now": 3, "done_earlier": 0,
        "wall_seconds": 0, "jobs_per_minute": 0, "mean_job_seconds": 0}
    assert summary["executor"] == "local" and summary["workers"] == 2 and summary["failed"] == []
    state = folder / "heads.batch" / "state.jsonl"
    final = latest(state)
    for name in ("anna", "ben", "cleo"):
        record = final[name]
        assert record["status"] == "done" and record["attempts"] == 1 and record["reason"] is None
        assert record["outputs"] and all(sha256(Path(p)) == digest for p, digest in record["outputs"].items())
        assert [r["status"] for r in records(state) if r["job"] == name][:2] == ["queued", "running"]
        log = (folder / "heads.batch" / record["log"]).read_text()
        assert "== attempt 1: generate:" in log and "== done ==" in log
        assert record["summaries"][0]["bones"] == 24  # the game preset
    assert [s.get("output") for s in final["cleo"]["summaries"][1:]] == [str(out / ".cleo.batch-partial.glb"),
                                                                        str(out / ".cleo.batch-partial.fbx")]
    assert {job["name"]: job["bones"] for job in summary["jobs"]} == {"anna": 24, "ben": 24, "cleo": 24}
    assert [final[n]["summaries"][0]["landmarks_from"] for n in ("anna", "ben")] == ["detected", "markers"]
    markdown = (folder / "heads.batch" / "summary.md").read_text()
    assert "3 jobs: 3 done" in markdown and "| cleo | done |" in markdown
    assert json.loads((folder / "heads.batch" / "summary.json").read_text())["totals"]["done"] == 3
    bpy.ops.wm.open_mainfile(filepath=str(out / "anna.blend"))
    assert [o.type for o in bpy.data.objects if o.type == 'ARMATURE'] == ['ARMATURE']

    before = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in out.iterdir()}
    again = batch("heads.toml", "--json")
    assert again.finish() == 0, again.stderr()[-3000:]
    assert again.summary()["totals"]["ran_now"] == 0 and again.summary()["totals"]["done_earlier"] == 3
    assert {p.name: (sha256(p), p.stat().st_mtime_ns) for p in out.iterdir()} == before
    assert "skipped: anna (done earlier, outputs intact)" in again.stderr()

    def planned() -> dict[str, str]:
        assert cli.main(["batch", str(folder / "heads.toml"), "--check", "--json"]) == 0
        return {job["name"]: job["why"] for job in json.loads(capfd.readouterr().out)["jobs"] if job["run"]}

    capfd.readouterr()
    with (out / "cleo.fbx").open("ab") as changed:
        changed.write(b"\0")
    assert planned() == {"cleo": f"done earlier, but {out / 'cleo.fbx'} changed since it was written"}
    (out / "ben.blend").unlink()
    assert planned()["ben"] == f"done earlier, but {out / 'ben.blend'} is missing"
    os.utime(folder / "marked.blend")  # an input touched: the jobs that read it run again
    assert planned() == {name: "its row or its inputs changed since it was done" for name in ("ben", "cleo")}


@needs_detector
@needs_proc
def test_failures_stay_in_their_job_and_are_named_with_their_reason(folder, batch):
    """A truncated .blend, a cube (no face), a missing photo, an output under a file, a job past its time limit and
    a job whose process is killed twice fail, each with its reason; a job killed once, and a fit whose solver
    process is killed mid-fit, run once more and are done; the good job is done."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.obj_import(filepath=str(HEAD))
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "whole.blend"), copy=True)
    whole = (folder / "whole.blend").read_bytes()
    (folder / "corrupt.blend").write_bytes(whole[:len(whole) // 3])
    (folder / "cube.obj").write_text("".join(f"v {x} {y} {z}\n" for x in (-1, 1) for y in (-1, 1) for z in (-1, 1))
                                     + "f 1 2 4 3\nf 5 7 8 6\nf 1 5 6 2\nf 3 4 8 7\nf 1 3 7 5\nf 2 6 8 4\n")
    (folder / "a_file").write_text("a file where a folder should be\n")
    (folder / "heads.toml").write_text(
        '[defaults]\npreset = "game"\n\n'
        '[[head]]\nname = "worker_killed"\nmesh = "marked.blend"\nphotos = ["photos"]\nquality = "fast"\n'
        'output = "out/worker_killed.blend"\n\n' + head_rows(["killed_once", "killed_twice"], mesh="head.obj") +
        head_rows(["good"]) +
        '[[head]]\nname = "corrupt"\nmesh = "corrupt.blend"\n\n'
        '[[head]]\nname = "no_face"\nmesh = "cube.obj"\n\n'
        '[[head]]\nname = "no_photo"\nmesh = "head.obj"\nphotos = ["photos/gone.jpg"]\nquality = "fast"\n\n'
        '[[head]]\nname = "unwritable"\nmesh = "head.obj"\noutput = "a_file/unwritable.blend"\n\n'
        '[[head]]\nname = "slow"\nmesh = "head.obj"\noutput = "out/slow.blend"\ntimeout = 1.5\n')
    run = batch("heads.toml", "--jobs", "2", "--skip-invalid", "--json")
    state = folder / "heads.batch" / "state.jsonl"
    logs = folder / "heads.batch" / "logs"
    # (job, attempt, what its log shows when it is killed, whose process): all watched at once, as they run at once
    targets = [("worker_killed", 1, "solver: fit", "worker"), ("killed_once", 1, "opening", "command"),
               ("killed_twice", 1, "opening", "command"), ("killed_twice", 2, "opening", "command")]
    deadline = time.monotonic() + 600
    while targets:
        assert run.process.poll() is None and time.monotonic() < deadline, \
            f"{targets[0]} was not seen running:\n{run.stderr()[-3000:]}"
        for target in list(targets):  # a second attempt's record shows only once the first is killed
            name, attempt, shown, whose = target
            pid = running_attempt(state, logs / f"{name}.log", name, attempt, shown)
            if pid is not None and whose == "worker":
                pid = solver_worker_of(pid)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                targets.remove(target)
        time.sleep(STEP_SECONDS)
    assert run.finish() == 1, run.stderr()[-3000:]
    summary = run.summary()
    status = {job["name"]: job["status"] for job in summary["jobs"]}
    assert status == {"good": "done", "killed_once": "done", "killed_twice": "failed", "corrupt": "failed",
                      "no_face": "failed", "slow": "failed", "worker_killed": "done"}
    reasons = {f["name"]: f["reason"] for f in summary["failed"]}
    assert sorted(reasons) == ["corrupt", "killed_twice", "no_face", "no_photo", "slow", "unwritable"]
    assert "corrupt.blend" in reasons["corrupt"] and reasons["corrupt"].startswith("generate: ")
    assert "face" in reasons["no_face"] and reasons["no_face"].startswith("generate: ")
    assert "missing file" in reasons["no_photo"] and "gone.jpg" in reasons["no_photo"]
    assert "a_file" in reasons["unwritable"] and "not a folder" in reasons["unwritable"]
    assert reasons["slow"].startswith("timed out after 1.5 s in generate")
    assert reasons["killed_twice"] == ("generate: the job's process was killed by SIGKILL (out of memory?), on "
                                       "its one retry too")
    jobs = {job["name"]: job for job in summary["jobs"]}
    assert jobs["killed_once"]["attempts"] == 2
    assert any("killed by SIGKILL" in w for w in jobs["killed_once"]["warnings"])
    assert jobs["worker_killed"]["attempts"] == 2 and jobs["worker_killed"]["landmark_error_px"] > 0
    assert any("the solver process stopped before finishing the 'fit_photos' job (killed by signal 9)" in w
               for w in jobs["worker_killed"]["warnings"])
    assert sorted(p.name for p in (folder / "out").iterdir()) == ["good.blend", "killed_once.blend",
                                                                  "worker_killed.blend"]
    assert no_staged_files(folder)
    error = run.stderr().strip().splitlines()[-1]
    assert error.startswith("error: 6 of 9 job(s) failed or were invalid") and "--retry-failed" in error
    for name in ("corrupt", "no_face", "slow", "killed_twice"):
        assert (logs / f"{name}.log").read_text().rstrip().endswith(f"failed: {reasons[name]} ==")
    markdown = (folder / "heads.batch" / "summary.md").read_text()
    assert "## Failed" in markdown and "| slow | heads.toml line" in markdown


@needs_detector
@needs_proc
def test_a_batch_stopped_half_way_runs_only_its_unfinished_jobs_again(folder, batch):
    names = ["j1", "j2", "j3", "j4", "j5"]
    (folder / "heads.toml").write_text('[defaults]\npreset = "game"\n\n' + head_rows(names))
    state = folder / "heads.batch" / "state.jsonl"
    run = batch("heads.toml", "--jobs", "2")
    wait_until(lambda: sum(r["status"] == "done" for r in latest(state).values()) >= 2, "two jobs done", run)
    os.kill(run.process.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr()[-3000:]
    error = run.stderr().strip().splitlines()[-1]
    assert error.startswith("error: stopped by SIGTERM") and "run the same command again" in error
    first = latest(state)
    done = sorted(name for name, r in first.items() if r["status"] == "done")
    assert 2 <= len(done) < len(names)
    assert all(first[n]["status"] == "queued" for n in names if n not in done)
    assert no_staged_files(folder)
    outputs = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in (folder / "out").iterdir()}
    assert sorted(outputs) == [f"{n}.blend" for n in done]

    again = batch("heads.toml", "--json")
    assert again.finish() == 0, again.stderr()[-3000:]
    summary = again.summary()
    assert sorted(job["name"] for job in summary["jobs"] if job["ran"]) == [n for n in names if n not in done]
    assert summary["totals"]["done"] == len(names) and summary["totals"]["done_earlier"] == len(done)
    assert {n: v for n, v in ((p.name, (sha256(p), p.stat().st_mtime_ns)) for p in (folder / "out").iterdir())
            if n in outputs} == outputs  # byte-identical, not even rewritten
    assert sorted(p.name for p in (folder / "out").iterdir()) == [f"{n}.blend" for n in names]


@needs_detector
@needs_proc
def test_a_batch_killed_outright_takes_its_jobs_with_it(folder, batch, capfd):
    """SIGKILL cannot be caught: each job's command sees that its batch is gone and stops itself cleanly (its solver
    worker with it); the job stays `running` in the state file and runs again next time."""
    (folder / "heads.toml").write_text(head_rows(["lone"], 'preset = "game"\n', mesh="head.obj"))  # renders first
    state, log = folder / "heads.batch" / "state.jsonl", folder / "heads.batch" / "logs" / "lone.log"
    run = batch("heads.toml")
    pid = wait_until(lambda: latest(state).get("lone", {}).get("pid") if log.exists() and "opening" in
                     log.read_text(errors="replace") else None, "the job running", run)
    run.process.kill()
    run.process.wait()
    deadline = time.monotonic() + 120
    while (_job_processes(folder) or running_process(pid)) and time.monotonic() < deadline:
        time.sleep(STEP_SECONDS)
    assert _job_processes(folder) == [] and not running_process(pid)
    assert "error: stopped by SIGTERM" in log.read_text()  # the command's own clean stop
    assert latest(state)["lone"]["status"] == "running" and no_staged_files(folder)
    assert cli.main(["batch", str(folder / "heads.toml"), "--check", "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["jobs"][0] | {"steps": None} == {
        "name": "lone", "where": "heads.toml line 1", "run": True, "why": "interrupted", "steps": None}


def armature_heads(blend: Path) -> dict[str, tuple]:
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    arm = next(o for o in bpy.data.objects if o.type == 'ARMATURE')
    return {bone.name: tuple(bone.head_local) for bone in arm.data.bones}


@needs_detector
@needs_proc
def test_the_same_batch_on_a_local_ray_instance_gives_the_local_results(folder, batch):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed in this environment (pip install ray, or the project's `ray` extra)")
    rows = '[defaults]\npreset = "game"\n\n' + "".join(
        f'[[head]]\nname = "{n}"\nmesh = "../marked.blend"\noutput = "out/{n}.blend"\n\n' for n in ("r1", "r2", "r3"))
    rows += '[[head]]\nname = "broken"\nmesh = "../cube.obj"\n'
    (folder / "cube.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    summaries = {}
    # Ray's sockets live in TMPDIR (a path of at most 107 bytes) and its token in HOME: both short and private
    short = Path(tempfile.mkdtemp(prefix="asm_ray_", dir="/tmp"))
    for executor, options, env in (("local", [], {}), ("ray", ["--ray"], {"TMPDIR": str(short), "HOME": str(short)})):
        (folder / executor).mkdir()
        (folder / executor / "heads.toml").write_text(rows)
        try:
            run = batch(f"{executor}/heads.toml", "--jobs", "2", "--json", *options, **env)
            run.finish()
        finally:
            if executor == "ray":
                shutil.rmtree(short, ignore_errors=True)
        assert run.process.returncode == 1, run.stderr()[-3000:]  # the cube has no face
        summaries[executor] = run.summary()
    local, ray = summaries["local"], summaries["ray"]
    assert ray["executor"] == "ray" and ray["workers"] == 2

    def comparable(summary):
        return [(job["name"], job["status"], job["bones"], job["reason"] and job["reason"].split(":")[0])
                for job in summary["jobs"]]

    assert comparable(ray) == comparable(local)
    assert [job["status"] for job in local["jobs"]] == ["done", "done", "done", "failed"]
    for name in ("r1", "r2", "r3"):
        heads_local = armature_heads(folder / "local" / "out" / f"{name}.blend")
        heads_ray = armature_heads(folder / "ray" / "out" / f"{name}.blend")
        assert heads_local.keys() == heads_ray.keys()
        assert all(np.allclose(heads_local[b], heads_ray[b], atol=1e-5) for b in heads_local)
    assert no_staged_files(folder)


@pytest.mark.slow
@needs_detector
@needs_proc
def test_a_hundred_jobs(folder, batch):
    """100 generate jobs on the game preset and three fits at fast quality, on the local pool."""
    names = [f"h{i:03d}" for i in range(100)]
    fits = "".join(f'[[head]]\nname = "fit{i}"\nmesh = "head.obj"\nphotos = ["photos"]\nquality = "fast"\n\n'
                   for i in range(3))
    (folder / "heads.toml").write_text('[defaults]\npreset = "game"\n\n' + head_rows(names) + fits)
    run = batch("heads.toml", "--json")
    assert run.finish(limit_seconds=7200) == 0, run.stderr()[-3000:]
    summary = run.summary()
    assert summary["totals"]["done"] == 103 and summary["failed"] == []
    errors = [job["landmark_error_px"] for job in summary["jobs"] if job["name"].startswith("fit")]
    assert all(error is not None and error > 0 for error in errors)
    assert len(list((folder / "out").iterdir())) == 100 and no_staged_files(folder)


def test_a_commands_summary_is_read_after_what_blender_prints_before_it():
    """Blender prints its own lines on standard output before a command's --json summary (a .blend saved by another
    version warns about its regions): the summary is the JSON object that ends the output."""
    from asm_blender.cli.batch.process import _json_summary

    summary = {"bones": 24, "warnings": ["a note"], "nested": {"a": [1, 2]}}
    noise = b'Warning: region type 11 missing in space type "Action" (id: 12) - removing region\nregiondata free error\n'
    assert _json_summary(noise + json.dumps(summary, indent=1).encode() + b"\n") == summary
    assert _json_summary(json.dumps(summary).encode()) == summary
    assert _json_summary(noise) == {} and _json_summary(b"") == {}
