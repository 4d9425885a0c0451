"""The parts of ``labelmap.rings_labelmap`` one at a time, on straight tubes.

Rings are circles in planes z = const, so every segment, fraction and inside test has a
closed-form answer.
"""

from __future__ import annotations

import numpy as np

from IVUSReconstructLib.labelmap import _chunk_bounds, _inside_code, _Loft, _voxel_segments


def circle_rings(z_mm: np.ndarray, radius_mm: float, n: int = 64) -> np.ndarray:
    """Counter-clockwise circles (F, n, 3) about the z axis at heights ``z_mm``."""
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ring = np.column_stack([radius_mm * np.cos(a), radius_mm * np.sin(a), np.zeros(n)])
    return np.stack([ring + [0.0, 0.0, z] for z in z_mm])


def test_chunk_bounds_share_end_rings():
    centre = np.column_stack([np.zeros(11), np.zeros(11), 0.5 * np.arange(11)])
    assert _chunk_bounds(centre, 2.0) == [0, 4, 8, 10]
    # rings further apart than a chunk still advance one segment at a time
    assert _chunk_bounds(centre * 10, 2.0) == list(range(11))


def test_voxel_segment_and_fraction_between_planes():
    loft = _Loft.of(circle_rings(np.arange(5.0), 2.0), None, 90)
    px, py = np.zeros(4), np.zeros(4)
    pz = np.array([0.0, 1.25, 2.5, 4.0])
    g, t = _voxel_segments(loft, px, py, pz, 0, 4)
    assert g.tolist() == [0, 1, 2, 3]
    assert np.allclose(t, [0.0, 0.25, 0.5, 1.0])  # the last plane belongs to the last segment


def test_inside_code_of_outer_and_inner_tubes():
    z = np.arange(4.0)
    loft = _Loft.of(circle_rings(z, 2.0), circle_rings(z, 1.0), 360)
    r = np.array([0.5, 0.95, 1.05, 1.9, 2.1])
    g, t = np.ones(5, dtype=int), np.full(5, 0.5)
    angle = np.radians(37.0)
    code = _inside_code(loft, r * np.cos(angle), r * np.sin(angle), np.full(5, 1.5), g, t)
    # bit 2 inside the outer tube, bit 1 inside the inner one
    assert code.tolist() == [3, 3, 2, 2, 0]
