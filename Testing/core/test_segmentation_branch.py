"""Side branches and leaks: the main vessel is closed across an ostium, as a reader closes it."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.segmentation import SegmentationOptions
from IVUSReconstructLib.segmentation.segmenter import _leaks
from IVUSReconstructLib.segmentation.shadows import _fill_hidden

FIELD_MM = 5.3
N_ANGLES = 180


def _radii(inside, step_mm: float = 0.005) -> np.ndarray:
    """Ray radii (A,) of the region ``inside(x, y)`` (mm) seen from the catheter at the origin,
    out to the field's edge."""
    theta = 2 * np.pi * np.arange(N_ANGLES) / N_ANGLES
    r = np.arange(step_mm, FIELD_MM, step_mm)
    held = inside(r[None] * np.cos(theta)[:, None], r[None] * np.sin(theta)[:, None])
    first_out = np.where(held.all(axis=1), len(r), np.argmin(held, axis=1))
    return r[np.maximum(first_out - 1, 0)]


def _area_mm2(radii: np.ndarray) -> float:
    return float(0.5 * np.sum(radii**2) * 2 * np.pi / len(radii))


def _main_lumen(x, y):
    # the catheter 0.7 mm off the centre of a 1.6 mm lumen, as in RCA 525
    return np.hypot(x - 0.7, y) <= 1.6


def _with_branch(x, y):
    # a branch as wide as the main lumen widening out to the field's edge
    return _main_lumen(x, y) | ((x > 0.7) & (np.abs(y) <= 1.3 + 0.3 * (x - 0.7)))


@pytest.mark.parametrize("flank_deg, lumen_mm2", [(SegmentationOptions().leak_flank_deg, 8.04), (0.0, 15.19)])
def test_a_lumen_leaking_through_an_ostium_is_closed_along_the_main_vessel(flank_deg, lumen_mm2):
    """The lumen runs out through a wide ostium to the field's edge (RCA 525: 20.8 mm2 where its
    consecutive neighbours measure 7.9). With the branch's walls, which climb along the rays
    out to the edge, hidden with the leak, the fill from the rest closes the main lumen
    (8.04 mm2; true 8.02); filled from those walls as well (``leak_flank_deg`` 0, the fill
    before) it carried them on as the main vessel's (15.19 mm2). The vessel, 0.4 mm outside
    the main lumen, is closed with it (12.55 mm2, true 12.53)."""
    lumen = _radii(_with_branch)
    main_vessel = _radii(lambda x, y: np.hypot(x - 0.7, y) <= 2.0)
    vessel = np.maximum(main_vessel, lumen + 0.1)
    true_mm2 = _area_mm2(_radii(_main_lumen))
    assert true_mm2 == pytest.approx(8.02, abs=0.01)
    assert _area_mm2(lumen) > 21.0
    edge = FIELD_MM - SegmentationOptions().field_edge_margin_mm
    lumen_leak, vessel_leak = _leaks(lumen[None], vessel[None], edge, flank_deg)
    closed = _fill_hidden(lumen, lumen_leak[0], long_run=15)
    assert _area_mm2(closed) == pytest.approx(lumen_mm2, abs=0.05)
    if flank_deg > 0:
        assert _area_mm2(closed) == pytest.approx(true_mm2, rel=0.01)
    if flank_deg > 0:
        closed_vessel = _fill_hidden(vessel, vessel_leak[0], long_run=15)
        assert _area_mm2(closed_vessel) == pytest.approx(_area_mm2(main_vessel), rel=0.01)


def test_a_round_lumen_beside_the_edge_is_no_leak():
    """A lumen wider than the field in most directions (a vein larger than the field) is left as
    it is: no flank is hidden when the edge holds half the circle."""
    lumen = _radii(lambda x, y: np.hypot(x - 0.5, y) <= 5.6)
    leak, _ = _leaks(lumen[None], lumen[None] + 0.1, FIELD_MM - 0.25, 45.0)
    assert not leak.any()
