"""EEM where no adventitia shows beyond it (a shadow, dark perivascular tissue): taken from the
shape of the arc that shows it, not from the darkness the trace followed (LAD 1200, 855)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.segmentation import SegmentationOptions
from IVUSReconstructLib.segmentation.eem import bright_beyond, fill_unseen_wall
from IVUSReconstructLib.segmentation.segmenter import _Segmenter
from IVUSReconstructLib.types import Pullback

N_A = 180
THETA = 2 * np.pi * np.arange(N_A) / N_A
# an ellipse about the catheter, 2.2 x 2.8 mm semi-axes, centred 0.2 mm off it
CX, CY, A_MM, B_MM = 0.2, -0.1, 2.8, 2.2


def _ellipse() -> np.ndarray:
    """Radius (A,) of the ellipse along each ray from the catheter (mm)."""
    c, s = np.cos(THETA), np.sin(THETA)
    qa = (c / A_MM) ** 2 + (s / B_MM) ** 2
    qb = -2 * (CX * c / A_MM**2 + CY * s / B_MM**2)
    qc = (CX / A_MM) ** 2 + (CY / B_MM) ** 2 - 1
    return (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)


def _sector(start_deg: float, width_deg: float) -> np.ndarray:
    d = (np.rad2deg(THETA) - start_deg) % 360
    return d < width_deg


def _bump(start_deg: float, width_deg: float) -> np.ndarray:
    """0-1 half-sine over the sector, 0 outside: a border that leaves its shape and comes back."""
    d = (np.rad2deg(THETA) - start_deg) % 360
    return np.where(d < width_deg, np.sin(np.pi * d / width_deg), 0.0)


def _fill(vessel, traced, bright, hidden, **kw):
    args = dict(min_seen=0.5, excess_mm=0.4, max_run=45, smooth=2.5)
    args.update(kw)
    lumen = np.full((1, N_A), 1.2)
    return fill_unseen_wall(vessel[None], traced[None], lumen, bright[None], hidden[None], **args)[0]


def test_a_trace_that_followed_dark_tissue_outwards_takes_the_seen_arcs_shape():
    """A 40-degree sector with nothing bright beyond the trace, which bulged 0.8 mm out into it
    (LAD 1200 at 4-5 o'clock: 3.3 mm against 2.5 mm beside it): the EEM there comes back within
    0.12 mm of the ellipse the rest lies on (two harmonics fit an ellipse off the catheter to
    ~0.1 mm); 20 degrees or more from the sector nothing moves."""
    truth = _ellipse()
    sector = _sector(30, 40)
    traced = truth + 0.8 * _bump(30, 40)
    bright = np.where(sector, 0.0, 1.0)
    out = _fill(traced, traced, bright, np.zeros(N_A, bool))
    assert np.abs(out - truth)[sector].max() < 0.12
    far = ~(_sector(10, 80))
    assert np.abs(out - truth)[far].max() < 1e-3


def test_a_shadow_fill_extrapolated_outwards_is_refitted_and_one_on_the_shape_kept():
    """A 50-degree shadow (hidden) filled up to 0.6 mm outside the seen arc's ellipse
    (extrapolated from a trace that had followed the dark) comes back within 0.12 mm of it; one
    filled up to 0.2 mm outside (below ``excess_mm``, 0.4) is kept as filled."""
    truth = _ellipse()
    shadow = _sector(250, 50)
    bright = np.where(shadow, 0.0, 1.0)
    for excess, moved in ((0.6, True), (0.2, False)):
        filled = truth + excess * _bump(250, 50)
        out = _fill(filled, filled, bright, shadow)
        if moved:
            assert np.abs(out - truth)[shadow].max() < 0.12
        else:
            assert np.array_equal(out, filled)


def test_darkness_never_draws_the_eem_outwards_and_wide_or_mostly_seen_frames_are_left():
    """Inside the ellipse in a dark sector (0.4 mm in), the border stays where it was traced
    (the fill moves it inwards only); a dark sector wider than ``max_run`` (a quarter turn) is
    left as traced, and so is a frame with less than half its turn seen."""
    truth = _ellipse()
    sector = _sector(100, 40)
    dented = truth - 0.4 * _bump(100, 40)
    bright = np.where(sector, 0.0, 1.0)
    out = _fill(dented, dented, bright, np.zeros(N_A, bool))
    assert np.all(out <= dented + 1e-9)
    wide = _sector(60, 120)
    bulged = truth + 0.5 * _bump(60, 120)
    assert np.array_equal(_fill(bulged, bulged, np.where(wide, 0.0, 1.0), np.zeros(N_A, bool)), bulged)
    hidden = _sector(0, 200)
    assert np.array_equal(_fill(bulged, bulged, np.where(wide, 0.0, 1.0), hidden), bulged)


def _segmenter() -> _Segmenter:
    pb = Pullback(
        frames=np.zeros((4, 256, 256), np.uint8),
        pixel_spacing_mm=(0.026, 0.026),
        frame_times_s=np.arange(4) / 30.0,
        pullback_speed_mm_s=0.5,
        acquisition="motor",
        catheter_center_px=(127.5, 127.5),
    )
    return _Segmenter(pb, SegmentationOptions(n_angles=N_A))


@pytest.mark.parametrize("gain", [1.0, 7.0])
def test_brightness_beyond_the_eem_is_judged_against_the_frames_own(gain):
    """A polar frame with a bright adventitia (grey 90) just outside the EEM at 2.3 mm, and a
    60-degree sector where only dark tissue (grey 12) lies beyond it: ``bright_beyond`` is 1 in
    the lit directions and 0 in the dark sector, whatever the overall gain (no absolute grey
    level); directions reaching the field's edge are not judged dark (1)."""
    seg = _segmenter()
    rng = np.random.default_rng(5)
    r = seg.radii
    image = np.full((1, N_A, len(r)), 30.0)
    image[0][:, (r >= 2.3) & (r < 2.7)] = 90.0
    dark = _sector(200, 60)
    image[0][np.ix_(dark, (r >= 2.3))] = 12.0
    image = gain * image * rng.uniform(0.8, 1.2, image.shape)
    vessel = np.full((1, N_A), 2.3 - seg.dr)
    edge = _sector(10, 4)
    vessel[0, edge] = r[-1]
    bright = bright_beyond(seg, image, vessel, np.zeros((1, N_A), bool))[0]
    lit = ~dark & ~edge
    assert bright[lit].min() == pytest.approx(1.0)
    assert bright[dark].max() == pytest.approx(0.0)
    assert np.all(bright[edge] == 1.0)


def _lad_frames() -> Path | None:
    root = os.environ.get("IVUS_REAL_FRAMES")
    ok = root and (Path(root) / "ivus_collector/patient1/preLAD").is_dir()
    return Path(root) if ok else None


@pytest.mark.skipif(
    _lad_frames() is None, reason="set IVUS_REAL_FRAMES to fetched public frames (see bench_realframes.py)"
)
def test_lad_export_1200_eem_no_longer_bulges_into_the_shadow():
    """LAD screen export, frame 1200 (analysed with 855 and 1224, as in
    ``bench_realframes.py --frames LAD:855,1200,1224``): the EEM ran 0.5-0.8 mm out into a
    calcium shadow and into dark tissue at 4-5 o'clock (18.4 mm2); taken from the seen arc it
    encloses at most 17 mm2, the lumen (5.7 mm2) unchanged, and frames 855 and 1224 keep their
    EEM (10.6 and 14.2 mm2)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import bench_realframes

    areas = bench_realframes.run_frames(_lad_frames(), "LAD", [855, 1200, 1224], None)
    lumen, vessel = areas[1200]
    assert vessel <= 17.0
    assert lumen == pytest.approx(5.7, abs=0.2)
    assert areas[855][1] == pytest.approx(10.6, abs=0.2)
    assert areas[1224][1] == pytest.approx(14.2, abs=0.2)
