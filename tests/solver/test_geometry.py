"""Similarity alignment and closest points on triangles."""
from __future__ import annotations

import numpy as np

from solver.core.geometry import closest_point_on_triangles, similarity_transform
from solver.core.rotations import rotvec_to_matrix

import torch


def test_similarity_recovers_a_known_transform():
    generator = np.random.default_rng(0)
    source = generator.normal(size=(30, 3))
    rotation = rotvec_to_matrix(torch.tensor([0.3, -1.1, 0.4], dtype=torch.float64)).numpy()
    target = 2.5 * source @ rotation.T + np.array([1.0, -2.0, 3.0])
    found = similarity_transform(source, target)
    assert abs(found.scale - 2.5) < 1e-12
    np.testing.assert_allclose(found.rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(found.apply(source), target, atol=1e-10)


def test_similarity_with_reflection_when_allowed():
    source = np.random.default_rng(1).normal(size=(10, 2))
    target = source * np.array([1.0, -1.0])
    assert np.linalg.det(similarity_transform(source, target, allow_reflection=True).rotation) < 0
    assert np.linalg.det(similarity_transform(source, target).rotation) > 0


def test_closest_point_matches_dense_sampling():
    generator = np.random.default_rng(2)
    a, b, c = generator.normal(size=(3, 3))
    points = generator.normal(size=(200, 3)) * 2
    closest, bary = closest_point_on_triangles(points, a, b, c)
    s, t = np.meshgrid(np.linspace(0, 1, 401), np.linspace(0, 1, 401))
    keep = s + t <= 1
    samples = a + s[keep, None] * (b - a) + t[keep, None] * (c - a)
    for point, found in zip(points[:50], closest[:50]):
        brute = np.linalg.norm(samples - point, axis=1).min()
        assert np.linalg.norm(found - point) <= brute + 1e-9
        assert np.linalg.norm(found - point) >= brute - 0.02
    np.testing.assert_allclose(bary.sum(1), 1.0)
    assert (bary >= -1e-12).all()
