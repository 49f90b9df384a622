"""Fitting a rig to photos from the command line: renders of the sample head from three sides stand in for
photos (their cameras are known), the rig is generated, fitted, and the cameras land in the saved file."""
from __future__ import annotations

import json
from pathlib import Path

import bpy
import pytest

from asm_blender import cli
from asm_blender.scene_io.views import render_views

from ..conftest import SAMPLE_DIR

pytest.importorskip("ai_edge_litert", reason="photo landmarks need LiteRT (main environment)")


def test_fit_command_finds_the_cameras_of_rendered_photos(sample_head, tmp_path, capfd):
    views = render_views(sample_head, tmp_path / "photos", yaw_degrees=(0.0, 25.0, -20.0), size=640)
    focal = views[0].focal_pixels
    capfd.readouterr()  # the renders' own messages
    output = tmp_path / "fitted.blend"
    # Renders of the rig's own mesh under Workbench's camera-fixed light: the shading moves with the view, the
    # patch term would follow it (measured: 0.92 mm from the truth with landmarks only, 1.23 mm with patches).
    assert cli.main(["fit", str(SAMPLE_DIR / "base_head.obj"), str(tmp_path / "photos"), "-o", str(output),
                     "--preset", "game", "--quality", "fast", "--no-texture", "--overlays", str(tmp_path / "over"),
                     "--json"]) == 0
    captured = capfd.readouterr()
    summary = json.loads(captured.out)
    assert len(summary["cameras"]) == 3 and "fit " in captured.err
    assert set(summary["stage_seconds"]) == {"cameras", "coarse", "refine", "total"}  # --no-texture: no patches
    # The renders show the rig's own mesh, so what is left is the detector's disagreement between views (its
    # outline points move with the view): measured 5.5-7.3 px RMS on 640 px renders (2-3 % of the face's width).
    assert all(after <= before + 0.05 for after, before in zip(summary["pixel_error_after"],
                                                               summary["pixel_error_before"])), \
        (summary["pixel_error_before"], summary["pixel_error_after"])
    assert all(after < 0.015 * 640 for after in summary["pixel_error_after"]), summary["pixel_error_after"]
    assert all(abs(f / focal - 1) < 0.25 for f in summary["focal_pixels"][:2]), (summary["focal_pixels"], focal)
    head_size = 2.6  # the sample head is about 2.6 dm tall
    assert summary["max_blender_vs_solver"] < 1e-5 * head_size
    assert [Path(p).name for p in summary["overlays"]] == [f"{v.image_path.stem}_overlay.png" for v in views]
    overlay = bpy.data.images.load(summary["overlays"][0])
    assert tuple(overlay.size) == (640, 640)  # the photo's size (at most 640 px)
    bpy.ops.wm.open_mainfile(filepath=str(output))
    cameras = [o for o in bpy.data.objects if o.type == 'CAMERA']
    assert len(cameras) == 3 and all(c.data.background_images[0].image is not None for c in cameras)


def test_fit_command_names_a_missing_photo(tmp_path, capfd):
    assert cli.main(["fit", str(SAMPLE_DIR / "base_head.obj"), str(tmp_path / "nope.jpg")]) == 1
    assert "photo not found" in capfd.readouterr().err
