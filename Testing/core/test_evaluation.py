"""Segmentation measures against closed-form values for circles."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.evaluation import compare_polygons, evaluate_contours, rasterize_polygon
from IVUSReconstructLib.geometry import polar_polygon
from IVUSReconstructLib.types import ContourSet, FrameContours


def _circle(r_mm: float, center=(0.0, 0.0), n: int = 2000) -> np.ndarray:
    return polar_polygon(np.full(n, r_mm), center_mm=center)


def _lens_jaccard(r: float, d: float) -> float:
    lens = 2 * r * r * np.arccos(d / (2 * r)) - d / 2 * np.sqrt(4 * r * r - d * d)
    return lens / (2 * np.pi * r * r - lens)


@pytest.mark.parametrize("offset_mm", [0.1, 0.4, 1.0])
def test_offset_circles_match_closed_form(offset_mm):
    r = 1.5
    m = compare_polygons(_circle(r, (offset_mm, 0.0)), _circle(r), pixel_size_mm=0.005)
    j = _lens_jaccard(r, offset_mm)
    assert m["jaccard"] == pytest.approx(j, abs=2e-3)
    assert m["dice"] == pytest.approx(2 * j / (1 + j), abs=2e-3)
    # The farthest point of one circle from the other lies on the line of centres.
    assert m["hausdorff_mm"] == pytest.approx(offset_mm, abs=3e-3)
    assert m["area_difference_percent"] == pytest.approx(0.0, abs=1e-6)


def test_concentric_circles_distances_and_area():
    m = compare_polygons(_circle(2.0), _circle(2.5))
    assert m["jaccard"] == pytest.approx(0.64, abs=2e-3)
    assert m["hausdorff_mm"] == pytest.approx(0.5, abs=2e-3)
    assert m["mean_surface_distance_mm"] == pytest.approx(0.5, abs=2e-3)
    assert m["area_difference_percent"] == pytest.approx(36.0, abs=0.05)


def test_rasterized_square_area_is_exact():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    mask = rasterize_polygon(square, (-0.1, -0.1), (120, 120), 0.01)
    assert mask.sum() == 100 * 100


def test_evaluate_contours_uses_common_frames_only():
    truth = ContourSet(
        frames=tuple(
            FrameContours(index=i, lumen=_circle(1.5, n=400), vessel=_circle(2.5, n=400)) for i in range(4)
        )
    )
    pred = ContourSet(
        frames=(
            FrameContours(index=1, lumen=_circle(1.5, (0.2, 0.0), n=400), vessel=_circle(2.5, n=400)),
            FrameContours(index=3, lumen=_circle(1.5, n=400), vessel=None),
            FrameContours(index=7, lumen=_circle(1.0, n=400)),
        )
    )
    out = evaluate_contours(pred, truth)
    assert out["frames"] == [1, 3]
    assert out["per_frame"]["vessel"]["frame"] == [1]
    lumen = out["summary"]["lumen"]
    assert lumen["n_frames"] == 2
    expected = (_lens_jaccard(1.5, 0.2) + 1.0) / 2
    assert lumen["jaccard"]["mean"] == pytest.approx(expected, abs=3e-3)
    assert lumen["hausdorff_mm"]["max"] == pytest.approx(0.2, abs=3e-3)
    assert out["summary"]["vessel"]["jaccard"]["mean"] == pytest.approx(1.0, abs=1e-6)
