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

import numpy as np
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
    _write_turned_obj(folder / "upside_down.obj")
    _write_two_heads_obj(folder / "two_heads.obj")
    _save_with_upside_down_markers(folder / "upside_down_markers.blend")
    return folder


def _write_turned_obj(path: Path) -> None:
    """The sample head upside down: x and y negated in the file (+Y up there), i.e. turned 180 degrees about the
    axis its face looks along."""
    def turned(line: str) -> str:
        if not line.startswith("v "):
            return line
        x, y, z = map(float, line.split()[1:4])
        return f"v {-x} {-y} {z}"

    lines = (SAMPLE_DIR / "base_head.obj").read_text().splitlines()
    path.write_text("\n".join(map(turned, lines)) + "\n")


def _write_two_heads_obj(path: Path) -> None:
    """Two copies of the sample head side by side in one object."""
    lines = (SAMPLE_DIR / "base_head.obj").read_text().splitlines()
    vertices = [line for line in lines if line.startswith("v ")]
    uvs = [line for line in lines if line.startswith("vt ")]
    faces = [line for line in lines if line.startswith("f ")]
    shifted = [f"v {float(line.split()[1]) + 3.0} {' '.join(line.split()[2:])}" for line in vertices]  # 3 dm aside

    def renumbered(face: str) -> str:
        corners = (corner.split("/") for corner in face.split()[1:])
        return "f " + " ".join(f"{int(v) + len(vertices)}/{int(t) + len(uvs)}" for v, t, *_ in corners)

    path.write_text("\n".join(vertices + shifted + uvs + uvs + faces + [renumbered(f) for f in faces]) + "\n")


def _save_with_upside_down_markers(path: Path) -> None:
    """The sample head (upright) with landmark markers turned upside down about the face's centre: Generate uses
    the markers as they are, and the rig placed on them stands upside down."""
    from asm_blender.scene_io import markers as markers_io
    from asm_blender.scene_io.sample import import_obj

    bpy.ops.wm.read_homefile(use_empty=True)
    head = import_obj(SAMPLE_DIR / "base_head.obj")
    head.name = "Head"
    landmarks, valid = sample_landmarks()
    to_world = np.array(head.matrix_world)
    world = landmarks @ to_world[:3, :3].T + to_world[:3, 3]
    centre = np.nanmean(world[valid], axis=0)
    turned = (world - centre) * [-1.0, 1.0, -1.0] + centre  # 180 degrees about world Y, which the face looks along
    to_object = np.linalg.inv(to_world)
    markers_io.write_markers(head, turned @ to_object[:3, :3].T + to_object[:3, 3], valid)
    bpy.context.view_layer.objects.active = head
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)


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


needs_detector = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                    reason="finding a face needs LiteRT (not in the Blender 5.0 test environment)")
REFUSED_RIGS = {  # name: (arguments, what the error line says); refused after the landmarks are found
    "head upside down": (["generate", "{in}/upside_down.obj"], "is upside down on its renders"),
    "two heads in one object": (["generate", "{in}/two_heads.obj"], "holds 2 separate head-sized parts"),
    "rig upside down on wrong markers": (["generate", "{in}/upside_down_markers.blend"],
                                         "does not have a face's layout (chin is above nose"),
}


@pytest.mark.parametrize("case", [pytest.param(name, marks=needs_detector) if "markers" not in name else name
                                  for name in REFUSED_RIGS])
def test_a_head_that_would_get_a_wrong_rig_is_refused(case, inputs, tmp_path):
    """Before issue 22 each of these wrote a wrong rig with exit code 0 and no warning."""
    arguments, message = REFUSED_RIGS[case]
    before = _fingerprints(inputs)
    code, lines, work, tmpdir = run_command(tmp_path, *(a.replace("{in}", str(inputs)) for a in arguments))
    assert code == 1, lines
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == [lines[-1]] and message in errors[0], lines
    assert not any("Traceback" in line or "EGL" in line for line in lines), lines
    assert _fingerprints(inputs) == before
    assert os.listdir(work) == [] and os.listdir(tmpdir) == []


def test_info_prints_its_listing_on_stdout(inputs, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-m", "asm_blender", "info", str(inputs / "rigged.blend")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Head: armature 'Head_ASM', 24 bones"), done.stdout
