"""The lumen's second trace (blood judged at each depth) kept by a choice over the analysed frames,
not by each frame alone (real pullbacks: RCA lumen areas flipping 4 <-> 11 mm2 between neighbouring
analysed frames, LAD 1200 leaking to 25.5 mm2 between 8 mm2 neighbours)."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.geometry import polygon_area
from IVUSReconstructLib.segmentation import SegmentationOptions
from IVUSReconstructLib.segmentation.lumen import _measure_ring_down, choose_traces
from IVUSReconstructLib.segmentation.segmenter import _continuous_lumen, _segment_batches, _Segmenter

from .test_segmentation_lumen_cues import _bright_speckle_lumen


def _changes(areas: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(areas)) / areas[:-1]


def test_a_flipping_choice_becomes_consistent():
    """Both traces found on every frame, 4 and 10 mm2; each frame's own score prefers the second by
    +0.05 or the first by 0.01, alternately: the per-frame choice flips the area by 150 % between
    neighbours. Kept by the sequence, the second trace on one frame between two with the first
    gains 0.05 and costs two jumps of ln 2.5 (0.1 x 0.92 each): every frame keeps the first. With
    a strong score (0.5) each frame keeps its own."""
    gain = np.array([0.05, -0.01, 0.05, -0.01, 0.05])
    areas = np.tile([4.0, 10.0], (5, 1))
    allowed = np.ones(5, bool)
    alone = choose_traces(gain, allowed, areas, 0.0)
    assert alone.tolist() == [True, False, True, False, True]
    assert _changes(areas[np.arange(5), alone.astype(int)]) == pytest.approx([0.6, 1.5, 0.6, 1.5])
    together = choose_traces(gain, allowed, areas, 0.1)
    assert not together.any()
    assert _changes(areas[np.arange(5), together.astype(int)]) == pytest.approx(np.zeros(4))
    gain[::2] = 0.5
    assert choose_traces(gain, allowed, areas, 0.1).tolist() == [True, False, True, False, True]


def test_a_real_narrowing_keeps_its_own_trace():
    """Phantom femoropopliteal, 512 px (measured): a frame of 9.9 mm2 between neighbours of 17.7 and
    19.4 mm2; its first trace is 9.6 mm2, its second 15.6 mm2 and scores 0.032 lower. Continuity
    never widens a frame beyond the trace its own score chose (widened, the frame was traced
    18.3 mm2 and the pullback's lumen Jaccard fell from 0.973 to 0.958); a first trace that leaked
    beyond its neighbours gives way to a smaller second one that scores 0.035 lower (RCA 525)."""
    areas = np.array([[16.8, 16.8], [9.6, 15.6], [19.0, 19.0]])
    gain = np.array([0.0, -0.032, 0.0])
    assert not choose_traces(gain, np.ones(3, bool), areas, 0.1).any()
    leak = np.array([[4.4, 7.1], [23.2, 8.1], [3.9, 7.1]])
    gain = np.array([-0.018, -0.035, -0.008])
    assert choose_traces(gain, np.ones(3, bool), leak, 0.0).tolist() == [False, False, False]
    assert choose_traces(gain, np.ones(3, bool), leak, 0.1).tolist() == [False, True, False]


def test_a_leak_between_agreeing_neighbours_is_not_kept():
    """LAD 1185-1230 (measured): the second trace leaks through a gap to 25.5 mm2 on one frame while
    its neighbours keep 8.5 mm2, and wins that frame's score by 0.026; the first trace there is
    7.0 mm2. Two jumps of ln(25.5/8.5) cost 0.22, two of ln(8.5/7.0) 0.04: the first is kept there.
    A frame whose own evidence is strong (a gain of 0.5) keeps its trace against the neighbours: a
    real change of the lumen is not smoothed away."""
    areas = np.array([[8.3, 8.6], [7.0, 25.5], [3.8, 8.5], [7.2, 8.5]])
    allowed = np.ones(4, bool)
    gain = np.array([-0.07, 0.026, 0.076, 0.116])
    assert choose_traces(gain, allowed, areas, 0.0).tolist() == [False, True, True, True]
    assert choose_traces(gain, allowed, areas, 0.1).tolist() == [False, False, True, True]
    gain[1] = 0.5
    assert choose_traces(gain, allowed, areas, 0.1).tolist() == [False, True, True, True]


def test_a_frame_not_allowed_the_second_trace_never_takes_it():
    """A catheter wedged in plaque (near field not blood) or a trace that encloses an echolucent
    pool: the second trace is not allowed there, whatever the neighbours keep. With continuity
    weighted above all evidence, that frame's first trace then sets its neighbours' too."""
    gain = np.full(5, 0.05)
    allowed = np.array([True, True, False, True, True])
    areas = np.tile([4.0, 10.0], (5, 1))
    assert choose_traces(gain, allowed, areas, 0.1).tolist() == [True, True, False, True, True]
    assert not choose_traces(gain, allowed, areas, 1e3).any()


@pytest.fixture(scope="module")
def bright_speckle():
    return _bright_speckle_lumen(n_frames=7)


def test_a_frame_whose_choice_changes_is_segmented_again(bright_speckle):
    """Bright 40-60 MHz speckle lumen of 21.3 mm2: the second trace finds it (20.5-21.2 mm2), the
    first holds near the catheter (2.5-3 mm2). When the sequence's choice of a frame differs from
    the one its batch made, that frame alone is segmented again with it: the others are untouched,
    and it comes out as if traced with that choice from the start."""
    pb, true_mm2 = bright_speckle
    seg = _Segmenter(pb, SegmentationOptions())
    _measure_ring_down(seg)
    frames = np.arange(1, 6)
    borders = _segment_batches(seg, frames, None, None)
    assert borders.traces is not None
    assert (borders.traces[:, 4] == 1).all()  # each frame keeps the second trace
    # the sequence asks frame 3 for the first trace (its gain made lower than a leak would cost)
    traces = borders.traces.copy()
    traces[2, 0] = -1.0
    borders.traces = traces
    again = _continuous_lumen(seg, frames, borders, None)
    area = np.array([polygon_area(np.column_stack(_xy(r))) for r in again.lumen])
    assert area[[0, 1, 3, 4]] == pytest.approx(np.full(4, true_mm2), rel=0.04)
    assert 1.5 < area[2] < 4.0
    np.testing.assert_array_equal(again.lumen[[0, 1, 3, 4]], borders.lumen[[0, 1, 3, 4]])
    assert again.traces[2, 4] == 0
    alone = _segment_batches(seg, frames[2:3], None, None, np.array([False]))
    np.testing.assert_allclose(again.lumen[2], alone.lumen[0])


def _xy(radii_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arange(len(radii_mm)) * 2 * np.pi / len(radii_mm)
    return radii_mm * np.cos(theta), radii_mm * np.sin(theta)
