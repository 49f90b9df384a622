"""Dynamic binding: exact barycentric coordinates in the *containing* triangle."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from solver.model.binding import barycentric_2d, locate, needs_relocation, surface_points
from solver.core.errors import ASMInputError


def test_barycentric_coordinates_are_exact_and_in_corner_order():
    corners = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 2.0]])
    known = np.array([0.2, 0.5, 0.3])  # weights of a, b, c
    point = known @ corners
    bary = barycentric_2d(torch.tensor(point), torch.tensor(corners)).numpy()
    np.testing.assert_allclose(bary, known, atol=1e-14)


def test_locate_uses_containing_triangle_not_nearest_centroid():
    # A long thin triangle whose centroid is far from the point that it contains, next to a small
    # triangle whose centroid is nearer: the nearest-centroid shortcut picks the wrong one.
    uv = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 1.0], [1.2, 0.6], [1.2, 1.6], [2.2, 1.0]])
    triangles = np.array([[0, 1, 2], [3, 4, 5]])
    point = np.array([[0.9, 0.3]])
    centroids = uv[triangles].mean(1)
    assert np.argmin(np.linalg.norm(centroids - point, axis=1)) == 1  # the trap is real
    location = locate(point, uv, triangles)
    assert location.triangle[0] == 0
    reconstructed = location.barycentric[0] @ uv[triangles[0]]
    np.testing.assert_allclose(reconstructed, point[0], atol=1e-12)
    assert not location.clamped[0]


def test_surface_point_from_known_coordinates():
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    vertices = np.array([[1.0, 2.0, 3.0], [5.0, 2.0, 3.0], [1.0, 2.0, 9.0]])
    zeta = np.array([[0.25, 0.5]])  # barycentric (0.25, 0.25, 0.5)
    point = surface_points(torch.tensor(zeta), torch.tensor([0]), torch.tensor(uv), torch.tensor([[0, 1, 2]]),
                           torch.tensor(vertices))
    np.testing.assert_allclose(point.numpy()[0], 0.25 * vertices[0] + 0.25 * vertices[1] + 0.5 * vertices[2])


def test_outside_the_chart_raises_or_clamps_with_a_warning():
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ASMInputError, match="bone 'jaw'.*outside the chart"):
        locate(np.array([[2.0, 2.0]]), uv, np.array([[0, 1, 2]]), names=["bone 'jaw'"])
    with pytest.warns(UserWarning, match="clamped"):
        location = locate(np.array([[2.0, 2.0]]), uv, np.array([[0, 1, 2]]), clamp=True)
    np.testing.assert_allclose(location.point[0], [0.5, 0.5], atol=1e-3)  # the nearest point, a hair inside
    assert location.clamped[0] and location.barycentric[0].min() > 0
    # stored in float32 (the model's tensors), a clamped point still reads as inside its triangle (on the edge, a
    # float32 (0.35, 0.65) lies 3e-8 outside)
    with pytest.warns(UserWarning, match="clamped"):
        location = locate(np.array([[2.0, 2.3]]), uv, np.array([[0, 1, 2]]), clamp=True)
    assert not needs_relocation(location.point.astype(np.float32).astype(float), location.triangle, uv,
                                np.array([[0, 1, 2]])).any()


def test_relocation_is_detected():
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    triangles = np.array([[0, 1, 2], [1, 3, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(needs_relocation(np.array([[0.2, 0.2], [0.9, 0.9]]), np.array([0, 0]), uv, triangles)) == [False, True]
        assert locate(np.array([[0.9, 0.9]]), uv, triangles).triangle[0] == 1


def test_nan_points_are_rejected():
    with pytest.raises(ASMInputError, match="NaN"):
        locate(np.array([[np.nan, 0.0]]), np.eye(3)[:, :2], np.array([[0, 1, 2]]))


def test_a_large_triangle_far_from_the_nearest_centroids_is_still_found():
    # 40 small triangles around the origin come before the large one in centroid distance, so the point is found by
    # the search over the triangles whose boxes hold it, on the large triangle's inside and on its edge
    rng = np.random.default_rng(3)
    small = rng.uniform(-1.0, 1.0, size=(40, 1, 2)) + np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    large = np.array([[[5.0, 5.0], [105.0, 5.0], [5.0, 105.0]]])
    uv = np.concatenate([small, large]).reshape(-1, 2)
    triangles = np.arange(len(uv)).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found, not clamped
        location = locate(np.array([[6.0, 6.0], [50.0, 5.0], [5.0, 105.0]]), uv, triangles)
    assert location.triangle.tolist() == [40, 40, 40]
    np.testing.assert_allclose(location.barycentric[1], [0.55, 0.45, 0.0], atol=1e-12)
    assert not location.clamped.any()
