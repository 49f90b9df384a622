"""Bad input to the headless commands (issue 22), as a user meets it: the real command (`python -m asm_blender`) in
its own process with a private TMPDIR. Each case exits with code 1 and one `error:` line first on stderr that names
the file, without a traceback and before any work; the inputs stay as they were and nothing is left behind (no
output, no partial file, nothing in TMPDIR)."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blender.conftest import bpy, generate, sample_landmarks
from tests.conftest import PROJECT_ROOT, SAMPLE_DIR

PHOTO = PROJECT_ROOT / "samples" / "lps_photos" / "photo_1.jpg"


def _write_obj_with(path: Path, vertex: int, line: str) -> None:
    """The sample head's OBJ with the `vertex`-th vertex line (from 0) replaced by `line`."""
    lines = (SAMPLE_DIR / "base_head.obj").read_text().splitlines()
    where = [i for i, text in enumerate(lines) if text.startswith("v ")][vertex]
    lines[where] = line
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of good and bad inputs: the sample head, a rigged .blend, cut and fake .blend files, OBJs with a
    NaN or infinite coordinate, the sample photo (twice, as two files) and a text file named .jpg."""
    from asm_blender.scene_io.rig import apply_rig
    from asm_blender.scene_io.sample import import_obj

    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(SAMPLE_DIR / "base_head.obj", folder / "head.obj")
    bpy.ops.wm.read_homefile(use_empty=True)
    head = import_obj(SAMPLE_DIR / "base_head.obj")
    head.name = "Head"
    _arrays, result = generate(head, *sample_landmarks(), preset="game")
    apply_rig(head, result, name="Head_ASM")
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "rigged.blend"), copy=True)
    whole = (folder / "rigged.blend").read_bytes()
    (folder / "truncated.blend").write_bytes(whole[:len(whole) // 2])
    (folder / "text.blend").write_text("this is not a blend file\n" * 10)
    _write_obj_with(folder / "nan.obj", 100, "v nan 6.5 0.3")
    _write_obj_with(folder / "inf.obj", 7, "v 0.1 -inf 0.3")
    shutil.copy(PHOTO, folder / "photo.jpg")
    shutil.copy(PHOTO, folder / "photo_again.jpg")
    (folder / "not_a_photo.jpg").write_text("not an image")
    (folder / "out.blend").mkdir()  # a folder with a .blend's name
    return folder


def _fingerprints(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            for path in sorted(folder.rglob("*"))}


def run_command(folder: Path, *argv: str) -> tuple[int, list[str], Path, Path]:
    """Run `python -m asm_blender ARGV` in a new empty folder with its own TMPDIR; (exit code, stderr lines, the
    folder, the TMPDIR)."""
    work, tmpdir = folder / "work", folder / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    env = dict(os.environ, TMPDIR=str(tmpdir),
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "asm_blender", *argv], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, done.stderr.splitlines(), work, tmpdir


CASES = {  # name: (arguments, with {in} for the inputs' folder; what the error line says)
    "output in /proc": (["generate", "{in}/head.obj", "-o", "/proc/x.blend"], "cannot write into /proc"),
    "output under a file": (["generate", "{in}/head.obj", "-o", "{in}/head.obj/x.blend"],
                            "head.obj is a file, not a folder"),
    "output is the input": (["generate", "{in}/rigged.blend", "-o", "{in}/rigged.blend"], "is the input file"),
    "output is a folder": (["generate", "{in}/head.obj", "-o", "{in}/out.blend"], "out.blend is a folder"),
    "output of another type": (["generate", "{in}/head.obj", "-o", "head.obj"], "name it .blend"),
    "info of a cut .blend": (["info", "{in}/truncated.blend"], "truncated.blend is cut short"),
    "info of a text file named .blend": (["info", "{in}/text.blend"], "text.blend is not a .blend file"),
    "export of a cut .blend": (["export", "{in}/truncated.blend", "-o", "x.glb"], "truncated.blend is cut short"),
    "export of a text file named .blend": (["export", "{in}/text.blend", "-o", "x.glb"],
                                           "text.blend is not a .blend file"),
    "export into /proc": (["export", "{in}/rigged.blend", "-o", "/proc/x.glb"], "cannot write into /proc"),
    "glTF beside the input": (["fit", "{in}/head.obj", "{in}/photo.jpg", "--glb", "{in}/head.obj/x.glb"],
                              "head.obj is a file, not a folder"),
    "NaN coordinate": (["generate", "{in}/nan.obj"], "nan.obj, line 106: vertex 101 has the coordinate 'nan'"),
    "infinite coordinate": (["generate", "{in}/inf.obj"], "inf.obj, line 13: vertex 8 has the coordinate '-inf'"),
    "missing mesh": (["generate", "{in}/missing.obj"], "mesh file not found"),
    "missing photo": (["fit", "{in}/head.obj", "{in}/missing.jpg"], "photo not found"),
    "same photo twice": (["fit", "{in}/head.obj", "{in}/photo.jpg", "{in}/photo_again.jpg"],
                         "photo_again.jpg is the same image as photo.jpg"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_is_one_error_line_before_any_work(case, inputs, tmp_path):
    arguments, message = CASES[case]
    before = _fingerprints(inputs)
    code, lines, work, tmpdir = run_command(tmp_path, *(a.replace("{in}", str(inputs)) for a in arguments))
    assert code == 1, lines
    assert lines and lines[0].startswith("error: ") and message in lines[0], lines
    assert len(lines) == 1, lines  # nothing else: the check came before any work
    assert _fingerprints(inputs) == before
    assert os.listdir(work) == [] and os.listdir(tmpdir) == []


@pytest.mark.skipif(importlib.util.find_spec("PIL") is None,
                    reason="reading a photo needs the solver's Pillow (not in the Blender 5.0 test environment)")
def test_an_unreadable_photo_is_refused_before_the_rig_is_generated(inputs, tmp_path):
    code, lines, work, tmpdir = run_command(tmp_path, "fit", str(inputs / "head.obj"),
                                            str(inputs / "not_a_photo.jpg"))
    assert code == 1, lines
    assert lines[0].startswith("error: photo ") and "not_a_photo.jpg is not an image" in lines[0], lines
    assert len(lines) == 1, lines  # no rendering, no rig: the photos are checked first
    assert os.listdir(work) == [] and os.listdir(tmpdir) == []


def test_info_prints_its_listing_on_stdout(inputs, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-m", "asm_blender", "info", str(inputs / "rigged.blend")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Head: armature 'Head_ASM', 24 bones"), done.stdout
