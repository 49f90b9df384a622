"""The pieces of the ASM chart (solver/model/uv_chart.py) on meshes small enough to know the answer by hand."""
from __future__ import annotations

import numpy as np

from solver.model.uv_chart import LAYER_DEPTH, outermost, uv_islands


def _grid_triangles(low: float, high: float, cells: int) -> np.ndarray:
    """(2 cells^2, 3, 2) chart corners of a square [low, high]^2 cut into cells x cells squares of two triangles."""
    edges = np.linspace(low, high, cells + 1)
    corners = []
    for i in range(cells):
        for j in range(cells):
            a, b = (edges[i], edges[j]), (edges[i + 1], edges[j])
            c, d = (edges[i], edges[j + 1]), (edges[i + 1], edges[j + 1])
            corners += [[a, b, d], [a, d, c]]
    return np.array(corners)


def test_triangles_connect_across_edges_whose_uvs_agree_and_not_across_seams():
    # a strip of four triangles: 0-1 share edge (1, 2) with equal UVs; 1-2 share edge (2, 3), but vertex 3 has
    # another UV in triangle 2 (a seam); 2-3 share edge (3, 4) with equal UVs
    triangles = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
    uv = {0: (0.0, 0.0), 1: (1.0, 0.0), 2: (0.0, 1.0), 3: (1.0, 1.0), 4: (0.0, 2.0), 5: (1.0, 2.0)}
    corner_uv = np.array([[uv[v] for v in triangle] for triangle in triangles], dtype=float)
    corner_uv[2, 1] = (5.0, 5.0)  # vertex 3 as triangle 2 sees it
    corner_uv[3, 0] = (5.0, 5.0)  # and as triangle 3 sees it: 2 and 3 agree again
    islands = uv_islands(triangles, corner_uv)
    assert islands[0] == islands[1] and islands[2] == islands[3] and islands[1] != islands[2]
    # differences below the quantisation (1e-6) are not seams
    corner_uv[1, 0] += 1e-9
    np.testing.assert_array_equal(uv_islands(triangles, corner_uv), islands)


def test_of_two_layers_only_the_outer_one_is_kept_and_a_thin_fold_stays():
    outer = _grid_triangles(0.0, 10.0, 20)  # 800 triangles, 10 cm from the axis
    inner = _grid_triangles(3.25, 6.75, 7)  # 98 triangles under its middle, 1 cm deeper
    fold = _grid_triangles(-6.0, -2.0, 4)  # a patch beside it...
    close = _grid_triangles(-5.75, -2.25, 3)  # ...with a second layer less than LAYER_DEPTH below
    corners = np.concatenate([outer, inner, fold, close])
    distance = np.concatenate([np.full((len(outer), 3), 10.0), np.full((len(inner), 3), 9.0),
                               np.full((len(fold), 3), 10.0), np.full((len(close), 3), 10.0 - LAYER_DEPTH / 2)])
    keep = outermost(corners, distance, np.ones(len(corners), dtype=bool))
    parts = np.cumsum([0, len(outer), len(inner), len(fold), len(close)])
    assert keep[parts[0]:parts[1]].all() and not keep[parts[1]:parts[2]].any()
    assert keep[parts[2]:parts[4]].all()
    # only candidates are tested and kept
    candidates = np.zeros(len(corners), dtype=bool)
    candidates[parts[1]:parts[2]] = True
    assert outermost(corners, distance, candidates)[parts[1]:parts[2]].all()
