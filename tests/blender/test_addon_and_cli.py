"""The add-on registers its sidebar; the headless sample command writes its .blend and pictures, with the rig
fitted to the bundled scan."""
from __future__ import annotations

import json

import bpy
import numpy as np

from asm_blender import cli


def test_sidebar_panels_operators_and_settings_are_registered():
    for panel in ("VIEW3D_PT_asm_info", "VIEW3D_PT_asm_bone"):
        assert getattr(bpy.types, panel).bl_category == "ASM"
    for operator in ("generate_rig", "remove_rig", "cancel_job", "edit_landmarks", "rebake_rig"):
        assert hasattr(bpy.ops.asm, operator)
    head = bpy.data.objects.new("Head", bpy.data.meshes.new("Head"))
    settings = head.asm
    assert settings.preset == "full" and settings.influence_cap == "4" and settings.face_direction == "AUTO"


def test_the_sidebars_choices_are_the_protocols():
    from asm_blender.protocol import choices

    properties = bpy.types.Object.bl_rna.properties["asm"].fixed_type.bl_rna.properties

    def values(name):
        return [item.identifier for item in properties[name].enum_items]

    assert values("preset") == list(choices.PRESETS)
    assert values("influence_cap") == [str(cap) for cap in choices.INFLUENCE_CAPS]
    assert values("fit_quality") == list(choices.QUALITIES)
    assert values("expressions") == list(choices.EXPRESSION_MODES)
    assert values("face_direction") == [choices.AUTO_DIRECTION, *choices.FACE_DIRECTIONS]


def _has_photo_libraries() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("cv2", "ai_edge_litert"))


def test_sample_command_writes_a_rigged_blend_and_a_picture(tmp_path, capfd):
    photos = _has_photo_libraries()  # the Blender 5.0 test environment has no OpenCV / LiteRT
    assert cli.main(["sample", "--output", str(tmp_path), "--json", *([] if photos else ["--skip-photos"])]) == 0
    summary = json.loads(capfd.readouterr().out)
    assert summary["bones"] >= 80 and summary["vertex_groups"] == summary["bones"] - 1
    picture = bpy.data.images.load(str(tmp_path / "sample_rig_poses.png"))
    assert picture.size[0] > picture.size[1] > 0
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "sample_rig.blend"))
    head, arm = bpy.data.objects["Head"], bpy.data.objects["Head_ASM"]
    assert arm.type == 'ARMATURE' and len(arm.data.bones) == summary["bones"]
    modifier = head.modifiers["ASM Rig"]
    assert modifier.type == 'ARMATURE' and modifier.object == arm
    assert "asm_rig" in arm and json.loads(arm["asm_rig"])["format"] == "asm-rig/1"
    # the file opens posed at rest
    assert np.allclose([tuple(b.location) for b in arm.pose.bones], 0.0)
    # ... and holds the rig fitted to the bundled scan, beside it, with the scan aligned onto it
    fit = summary["fit"]
    assert fit["rms_after_mm"] < 0.55 * fit["rms_before_mm"] and fit["face_triangles_turned_over_60_degrees"] < 0.02
    head_size = float(np.ptp(np.array([v.co for v in head.data.vertices]), axis=0).max())
    assert fit["blender_vs_solver_max_difference"] < 1e-5 * head_size
    fitted, scan = bpy.data.objects["Head fitted to scan"], bpy.data.objects["Fran scan"]
    fitted_arm = fitted.modifiers["ASM Rig"].object
    assert fitted_arm.name == "Head fitted to scan_ASM" and fitted_arm is not arm
    assert any(np.linalg.norm(b.location) > 0 for b in fitted_arm.pose.bones)  # saved in the fitted pose
    assert "ASM_fit_error" in scan.data.color_attributes
    assert bpy.data.images.load(str(tmp_path / "sample_fit.png")).size[0] > 0
    if not photos:
        return
    # ... and the rig fitted to the four photos of Lee Perry-Smith, with a camera per photo and the scan compared
    photo_fit = summary["photo_fit"]
    assert [view["photo"] for view in photo_fit["views"]] == [f"photo_{i}.jpg" for i in range(1, 5)]
    assert all(view["landmark_error_of_face_width"] < 0.05 for view in photo_fit["views"]), photo_fit["views"]
    assert photo_fit["blender_vs_solver_max_difference"] < 1e-5 * head_size
    before, after = photo_fit["scan_rms_95_mm"]
    assert after < 1.03 * before, photo_fit["scan_rms_95_mm"]  # no worse: the gain is small (README, photo fit)
    photo_head = bpy.data.objects["Head fitted to photos"]
    cameras = [o for o in bpy.data.objects if o.type == 'CAMERA' and o.name.startswith("Photo ")]
    assert len(cameras) == 4 and all(c.data.background_images[0].image is not None for c in cameras)
    assert photo_head.modifiers["ASM Rig"].object.name == "Head fitted to photos_ASM"
    overlay = bpy.data.images.load(str(tmp_path / "sample_photo_fit.png"))
    assert overlay.size[0] > 2 * overlay.size[1] > 0


def test_unknown_command_is_a_usage_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "usage" in capsys.readouterr().err
