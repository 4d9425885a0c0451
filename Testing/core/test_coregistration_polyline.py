"""Positions on the centerline as given (no smoothing), the frame spacing and one frame's placement."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.coregistration import closest_arc_length_mm, frame_ijk_to_ras, frame_spacing_mm
from IVUSReconstructLib.types import FramePoses, Pullback


def test_closest_arc_length_on_an_l_shaped_polyline():
    l_shape = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [10.0, 10.0, 0.0]])
    assert closest_arc_length_mm(l_shape, np.array([12.0, 4.0, 0.0])) == pytest.approx(14.0)
    assert closest_arc_length_mm(l_shape, np.array([3.0, -2.0, 5.0])) == pytest.approx(3.0)
    # beyond the ends: clamped to 0 and to the length
    assert closest_arc_length_mm(l_shape, np.array([-3.0, 1.0, 0.0])) == 0.0
    assert closest_arc_length_mm(l_shape, np.array([10.0, 25.0, 0.0])) == pytest.approx(20.0)
    # a repeated point (zero-length segment) does not divide by zero
    repeated = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 8.0]])
    assert closest_arc_length_mm(repeated, np.array([1.0, 0.0, 5.0])) == pytest.approx(5.0)


def pullback(speed_mm_s, n=4, rate_hz=30.0) -> Pullback:
    return Pullback(
        frames=np.zeros((n, 8, 10), np.uint8),
        pixel_spacing_mm=(0.02, 0.03),
        frame_times_s=np.arange(n) / rate_hz,
        pullback_speed_mm_s=speed_mm_s,
        acquisition="motor",
        catheter_center_px=(4.0, 5.0),
        source={},
    )


def test_frame_spacing_is_speed_over_rate_or_1_mm():
    assert frame_spacing_mm(pullback(0.5)) == pytest.approx(0.5 / 30.0)
    assert frame_spacing_mm(pullback(None)) == 1.0
    assert frame_spacing_mm(pullback(0.5, n=1)) == 1.0


def test_frame_ijk_to_ras_maps_the_catheter_centre_to_the_pose_origin():
    poses = FramePoses(
        frame_index=np.array([0, 2]),
        arc_length_mm=np.array([0.0, 1.0]),
        origin_ras_mm=np.array([[0.0, 0.0, 0.0], [5.0, 6.0, 7.0]]),
        axes_ras=np.array([np.eye(3)[:, :2], [[0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]]]),  # x -> -A, y -> +R
        normal_ras=np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]),
        offset_mm=np.zeros((2, 2)),
    )
    m = frame_ijk_to_ras(pullback(0.5), poses, 1)
    assert (m @ [5.0, 4.0, 0.0, 1.0])[:3] == pytest.approx([5.0, 6.0, 7.0])  # (col, row) = centre
    # one column right = +0.03 mm along frame x, which is -A here; one row down = +0.02 mm along +R
    assert (m @ [6.0, 5.0, 0.0, 1.0])[:3] == pytest.approx([5.02, 5.97, 7.0])
