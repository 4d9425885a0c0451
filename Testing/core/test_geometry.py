"""Batch polygon helpers equal their one-polygon versions; open_polygon's closing test."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.geometry import (
    open_polygon,
    polygon_area,
    polygon_areas,
    polygon_centroid,
    polygon_centroids,
    resample_polygon,
    resample_polygons,
)


def _random_polygons(count=60, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        m = int(rng.integers(12, 200))
        t = np.sort(rng.uniform(0, 2 * np.pi, m))
        r = 2 + 0.5 * rng.random(m)
        p = np.column_stack([r * np.cos(t) + rng.normal(), r * np.sin(t) + 100.0])
        if i % 2:
            p = p[::-1]  # clockwise
        if i % 3 == 0:
            p = np.vstack([p, p[:1]])  # explicitly closed
        out.append(p)
    return out


@pytest.mark.parametrize("start", [0.0, 135.0, None])
def test_batch_resample_equals_single(start):
    polys = _random_polygons()
    single = np.stack([resample_polygon(p, 48, start_angle_deg=start) for p in polys])
    batch, centroids = resample_polygons(polys, 48, start_angle_deg=start, return_centroids=True)
    np.testing.assert_allclose(batch, single, atol=1e-9)
    np.testing.assert_allclose(centroids, [polygon_centroid(p) for p in polys], atol=1e-9)
    np.testing.assert_allclose(polygon_areas(polys), [polygon_area(p) for p in polys], rtol=1e-12)
    np.testing.assert_allclose(polygon_centroids(np.stack([p[:12] for p in polys])),
                               [polygon_centroid(p[:12]) for p in polys], atol=1e-9)  # fmt: skip


def test_resampled_circle_is_even_and_counter_clockwise():
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)[::-1]
    rings = resample_polygons([np.column_stack([3 * np.cos(t), 3 * np.sin(t)])], 8)
    angles = np.degrees(np.arctan2(rings[0, :, 1], rings[0, :, 0])) % 360
    np.testing.assert_allclose(angles, np.arange(0, 360, 45), atol=0.01)


def test_open_polygon_tolerance():
    p = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1e-9, 0.0]])
    assert len(open_polygon(p)) == 3
    assert len(open_polygon(p + [[0, 0], [0, 0], [0, 0], [1e-6, 0]])) == 4
