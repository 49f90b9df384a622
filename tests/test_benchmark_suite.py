"""The evaluation suite's own logic (benchmarks/multiview/render.py, benchmarks/report.py): seeded view sets that
grow by adding views, cameras that frame the face as specified, and the report's re-run comparison."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from benchmarks.multiview.render import MAX_VIEWS, camera_pose, face_frame, project, view_sequence
from benchmarks.report import rerun_check, table


def test_view_sets_are_seeded_nested_and_within_the_stated_ranges():
    views = view_sequence("Some scan")
    assert views == view_sequence("Some scan")  # seeded: the same every run
    assert view_sequence("Some scan", 3) == views[:3]  # the n-view set is the first n views
    assert views != view_sequence("Another scan")
    assert len(views) == MAX_VIEWS
    assert abs(views[0].yaw) < 10  # view 1 is near-frontal
    assert {math.copysign(1, v.yaw) for v in views[1:3]} == {-1.0, 1.0}  # views 2 and 3 look from both sides
    for view in views:
        assert -60 <= view.yaw <= 60 and -20 <= view.pitch <= 20 and 35 <= view.focal_mm <= 85
    assert len({(v.width, v.height) for v in views}) > 2  # varied image sizes


def test_cameras_aim_at_the_face_with_the_asked_yaw_and_pitch():
    landmarks = np.zeros((478, 3))
    landmarks[33], landmarks[263] = (-0.045, -0.1, 1.6), (0.045, -0.1, 1.6)  # eye corners, a face looking -Y
    landmarks[168] = (0.0, -0.11, 1.6)
    scan = SimpleNamespace(face_direction=np.array([0.0, -1.0, 0.0]), landmarks=landmarks,
                           valid=np.ones(478, bool), eye_distance=0.09)
    aim, forward, left, up, height = face_frame(scan)
    assert np.allclose(left, [1.0, 0.0, 0.0])  # facing -Y with +Z up, the subject's left is +X
    for view in view_sequence("Some scan"):
        centre, world_from_camera = camera_pose(scan, view)
        assert np.allclose(world_from_camera.T @ world_from_camera, np.eye(3), atol=1e-9)
        assert np.linalg.det(world_from_camera) > 0
        pixel = project(aim[None], centre, world_from_camera, view)[0]
        assert np.allclose(pixel, [view.width / 2, view.height / 2], atol=1e-6)  # the aim point at the centre
        towards = (centre - aim) / np.linalg.norm(centre - aim)
        assert math.isclose(math.degrees(math.asin(towards @ up)), view.pitch, abs_tol=1e-6)
        assert math.isclose(math.degrees(math.atan2(towards @ left, towards @ forward)), view.yaw, abs_tol=1e-6)
        # The framed height (three eye distances at the aim point) fills the asked share of the image.
        top = project((aim + height / 2 * up)[None], centre, world_from_camera, view)[0]
        bottom = project((aim - height / 2 * up)[None], centre, world_from_camera, view)[0]
        assert 0.9 * view.fill < np.linalg.norm(top - bottom) / view.height < 1.1 * view.fill
        assert top[1] < bottom[1]  # upright: the top of the head is higher in the image (rows grow downwards)


def test_the_rerun_check_reports_the_largest_differences():
    previous = {"commit": "abc", "date": "then", "mode": "fast", "numbers": {"a": 2.0, "b": 1.0, "gone": 5.0}}
    text = rerun_check(previous, {"a": 2.1, "b": 1.0, "new": 3.0})
    assert "2 accuracy numbers in common" in text and "| a | 2.000 | 2.100 | 0.100 |" in text
    assert "No earlier report" in rerun_check(None, {"a": 1.0})
    assert table(["x", "y"], [[1, 2]]).splitlines() == ["| x | y |", "|---|---|", "| 1 | 2 |"]


def test_a_dropped_in_scan_folder_joins_the_set(tmp_path, monkeypatch):
    from benchmarks.multiview import scans

    drop_in = tmp_path / "scans"
    complete = drop_in / "my_scan"
    complete.mkdir(parents=True)
    for name in ("head.obj", "skin.png", "SOURCE.md"):
        (complete / name).write_text("x")
    described = drop_in / "described"
    described.mkdir()
    (described / "multiview.json").write_text('{"mesh": "a.glb", "colour": "b.jpg", "flip_v": true, '
                                              '"face_direction": [0, -1, 0]}')
    lacking = drop_in / "no_source"
    lacking.mkdir()
    (lacking / "head.obj").write_text("x")
    monkeypatch.setattr(scans, "DROP_IN", drop_in)
    specs, notes = scans.available_scans()
    by_name = {spec.name: spec for spec in specs}
    assert by_name["my_scan"].mesh == "head.obj" and by_name["my_scan"].colour == "skin.png"
    assert by_name["my_scan"].face_direction is None  # found on renders, as Generate Rig finds it
    assert by_name["described"].flip_v and by_name["described"].face_direction == (0.0, -1.0, 0.0)
    assert "no_source" not in by_name and any(note.startswith("no_source: needs") for note in notes)
    assert "Lee Perry-Smith" in by_name  # the bundled scan is always there
