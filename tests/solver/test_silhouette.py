"""The rig's own outline in a photo (solver.vision.silhouette.outline_distance): only its outer boundary counts."""
import numpy as np

from solver.vision.silhouette import outline_distance


def ring(inner: float, outer: float, centre=(50.0, 50.0), segments: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A flat ring of triangles in pixels (a face with its mouth open, seen from the front)."""
    angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], -1)
    pixels = np.concatenate([centre + inner * circle, centre + outer * circle])
    i = np.arange(segments)
    j = (i + 1) % segments
    triangles = np.concatenate([np.stack([i, j, segments + i], -1), np.stack([j, segments + j, segments + i], -1)])
    return pixels, triangles


def test_the_opening_inside_a_ring_is_inside_its_outline():
    pixels, triangles = ring(inner=15.0, outer=35.0)
    distance = outline_distance(pixels, triangles, (100, 100))
    assert distance[50, 50] < -30  # the opening's middle: inside, about 35 px from the outer boundary
    assert distance[50, 68] < -15  # on the ring, near the opening's edge: no outline there
    assert abs(distance[50, 85]) <= 1.5  # the outer boundary
    assert distance[95, 95] > 20  # outside


def test_two_separate_parts_each_have_their_outline():
    left, triangles = ring(inner=5.0, outer=15.0, centre=(25.0, 50.0))
    right, _ = ring(inner=5.0, outer=15.0, centre=(75.0, 50.0))
    distance = outline_distance(np.concatenate([left, right]),
                                np.concatenate([triangles, triangles + len(left)]), (100, 100))
    assert distance[50, 25] < 0 and distance[50, 75] < 0
    assert distance[50, 50] > 5  # between them: outside both
