"""What the project ships is what the shared data folder holds, with its licence beside it."""
from __future__ import annotations

import hashlib
from pathlib import Path

from tests.conftest import PROJECT_ROOT, SAMPLE_DIR


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundled_copies_are_unchanged(shared_data):
    assert digest(SAMPLE_DIR / "base_head.obj") == digest(shared_data / "makehuman_base" / "base_head.obj")
    assert digest(SAMPLE_DIR / "LICENSE.md") == digest(shared_data / "makehuman_base" / "LICENSE.ASSETS.md")
    fran = PROJECT_ROOT / "samples" / "fran_scan"
    shared_fran = (shared_data / "vtk_fran_face" / "fran_cut.obj").read_text().splitlines()
    # The same file less its two material lines (the texture is not bundled).
    assert (fran / "fran_cut.obj").read_text().splitlines() == [
        line for line in shared_fran if not line.startswith(("mtllib", "usemtl"))]
    assert digest(fran / "Copyright.txt") == digest(shared_data / "vtk_fran_face" / "Copyright.txt")
    template = PROJECT_ROOT / "solver" / "template"
    canonical = shared_data / "mediapipe_canonical_face"
    assert digest(template / "face_model_with_iris.obj") == digest(canonical / "face_model_with_iris.obj")
    assert digest(template / "LICENSE.mediapipe") == digest(canonical / "LICENSE")


def test_every_bundled_asset_names_its_source_and_licence():
    for folder in (SAMPLE_DIR, PROJECT_ROOT / "solver" / "template", PROJECT_ROOT / "samples" / "fran_scan",
                   PROJECT_ROOT / "solver" / "vision" / "models"):
        source = (folder / "SOURCE.md").read_text()
        assert "Licence" in source and ("CC0" in source or "Apache-2.0" in source or "BSD-3-Clause" in source)
