"""Segmentation on the appearance of real consoles: still 20 MHz blood, the catheter at the field
of view's centre, and (with fetched public frames) set-B lumen boxes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.evaluation import evaluate_contours
from IVUSReconstructLib.geometry import rasterize_polygon_px
from IVUSReconstructLib.io.images import _geometry
from IVUSReconstructLib.phantom import PRESETS, make_phantom
from IVUSReconstructLib.segmentation import SegmentationOptions, segment_pullback
from IVUSReconstructLib.segmentation.lumen import _correlation_trust, _grey_ring, _ring_extent
from IVUSReconstructLib.types import Pullback


def still_blood(ph, level: float = 0.12, seed: int = 0) -> Pullback:
    """The phantom with 20 MHz blood: dark speckle identical in every frame inside the true lumen
    (the catheter and its ring-down kept), as in set B where blood correlates more between
    neighbouring frames than the wall (0.85 against 0.7)."""
    pb = ph.pullback
    frames = np.array(pb.frames)
    sr, sc = pb.pixel_spacing_mm
    cr, cc = pb.catheter_center_px
    rows, cols = np.mgrid[: frames.shape[1], : frames.shape[2]]
    catheter = np.hypot((rows - cr) * sr, (cols - cc) * sc) <= PRESETS[ph.preset].catheter_radius_mm + 0.15
    static = np.random.default_rng(seed).rayleigh(1.0, frames.shape[1:])
    for f in ph.truth.frames:
        pts = np.asarray(f.lumen)
        lumen = rasterize_polygon_px(np.column_stack([cr + pts[:, 1] / sr, cc + pts[:, 0] / sc]), frames.shape[1:])
        lumen &= ~catheter
        frame = frames[f.index]
        wall = np.median(frame[~lumen & (frame > 0)])
        frame[lumen] = np.clip(level * wall * static[lumen], 0, 255).astype(np.uint8)
    return Pullback(**{**pb.__dict__, "frames": frames})


def test_correlation_trust_follows_the_near_field_correlation():
    stability = np.zeros((4, 36, 40), np.float32)
    stability[..., 10:16] = 0.3  # moving blood just outside a ring ending at sample 10
    assert _correlation_trust(stability, 10, 6, 0.7, 0.25) == 1.0
    stability[..., 10:16] = 0.6
    assert _correlation_trust(stability, 10, 6, 0.7, 0.25) == pytest.approx(0.4, abs=1e-6)
    stability[..., 10:16] = 0.9  # still blood: as correlated as the catheter
    assert _correlation_trust(stability, 10, 6, 0.7, 0.25) == 0.0


def test_ring_extent_is_capped_where_still_blood_stays_correlated():
    stability = np.ones((2, 8, 60), np.float32)
    assert _ring_extent(stability, 0.5, 24) == 24
    stability[..., 15:] = 0.1
    assert _ring_extent(stability, 0.5, 24) == 15


def test_grey_ring_ends_after_a_ring_down_or_at_the_first_echo():
    # black catheter, bright ring-down at 12-14, dark blood from 16 (the still-blood phantom)
    profile = np.r_[np.zeros(11), 38, 194, 228, 237, 69, np.full(20, 10.0), np.linspace(12, 70, 10)]
    assert _grey_ring(profile, 31, 1) == 17
    # masked catheter then dark blood rising to the wall, no ring-down (set B)
    rising = np.r_[np.zeros(12), 2, 2, 3, 4, 4, 6, 9, 12, 20, 34, 41, 43, 63, 128]
    assert _grey_ring(rising, 23, 1) == 13


@pytest.mark.parametrize(("preset", "j_lumen", "j_vessel"), [("coronary", 0.90, 0.94), ("femoropopliteal", 0.97, 0.96)])
def test_lumen_of_still_dark_blood_is_found(preset, j_lumen, j_vessel):
    ph = make_phantom(preset, seed=17, length_mm=4.0)
    frames = np.arange(0, ph.pullback.n_frames, 8)
    cs = segment_pullback(still_blood(ph), frames)
    summary = evaluate_contours(cs, ph.truth)["summary"]
    assert summary["lumen"]["jaccard"]["mean"] >= j_lumen
    assert summary["vessel"]["jaccard"]["mean"] >= j_vessel


def test_plain_phantom_keeps_full_trust_in_the_correlation():
    # the still-blood cues switch on only below full trust: plain phantoms segment as before
    ph = make_phantom("iliac-vein", seed=17, length_mm=2.0)
    base = segment_pullback(ph.pullback, [4, 20])
    again = segment_pullback(ph.pullback, [4, 20], options=SegmentationOptions(still_blood_correlation=5.0))
    assert np.array_equal(np.asarray(base.frames[0].lumen), np.asarray(again.frames[0].lumen))
    assert np.array_equal(np.asarray(base.frames[1].vessel), np.asarray(again.frames[1].vessel))


def test_catheter_centre_stays_at_the_field_of_view_beside_a_dark_still_lumen():
    # a 20 MHz frame: disc of speckle and a dark lumen 19 px off-centre that barely changes
    # between frames, covering the catheter, which shows no disc of its own (set B's centre was
    # taken from such a lumen, 22 px off)
    h = w = 200
    rows, cols = np.mgrid[:h, :w]
    rng = np.random.default_rng(3)
    fov = np.hypot(rows - 99.5, cols - 99.5) < 96
    lumen = np.hypot(rows - 85.0, cols - 112.0) < 25
    frames = np.where(fov, rng.uniform(80, 160, (5, h, w)), 0.0)
    frames[:, lumen] = 3.0 + rng.uniform(0, 1, (5, int(lumen.sum())))
    _, centre, source = _geometry(frames.mean(axis=0), frames.std(axis=0))
    assert np.hypot(centre[0] - 99.5, centre[1] - 99.5) < 1.5
    assert "field-of-view centre" in source.source or "catheter" in source.source


def _real_frames() -> Path | None:
    root = os.environ.get("IVUS_REAL_FRAMES")
    return Path(root) if root and (Path(root) / "IVUS-100.v1i.tensorflow").is_dir() else None


@pytest.mark.skipif(_real_frames() is None, reason="set IVUS_REAL_FRAMES to fetched public frames (see bench_realframes.py)")
def test_set_b_lumen_boxes_agree_with_the_annotations():
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import bench_realframes

    result = bench_realframes.run_setb(_real_frames(), None)
    assert result["frames"] == 100
    assert result["box_iou_mean"] >= 0.84
    assert result["box_iou_ge_0.8"] >= 0.7


def test_confidence_features_of_known_borders():
    from IVUSReconstructLib.segmentation.confidence import FEATURES, confidence_features

    theta = 2 * np.pi * np.arange(180) / 180
    lumen = np.full((3, 180), 1.5)
    lumen[1] = 1.5 + 0.3 * np.cos(theta)  # an off-centre lumen's radii, 3 harmonics at most
    lumen[2, 40:50] = 2.5  # a 20-degree bulge of 1 mm
    vessel = np.full((3, 180), 2.5)
    x = dict(zip(FEATURES, confidence_features(lumen, vessel, np.array([0.9, 0.8, 0.7])).T, strict=True))
    assert np.allclose(x["confidence"], [0.9, 0.8, 0.7])
    assert "burden" not in x  # the vessel's disease is no sign of a wrong border
    assert x["lumen_min_ratio"][0] == pytest.approx(1.0)
    assert x["lumen_ellipse_excess"][1] < 1e-9 < 0.2 < x["lumen_ellipse_excess"][2]
    # frame 0 against the mean of its neighbours' areas (frame 1 on both sides at the end)
    area = np.pi * np.mean(lumen**2, axis=1)
    assert x["lumen_change"][0] == pytest.approx(abs(np.log(area[0] / area[1])))


def test_calibrated_confidence_flags_a_spike_or_a_jumping_eem_and_not_a_round_frame():
    from IVUSReconstructLib.segmentation.confidence import calibrated_confidence, confidence_features

    vessel = np.full((5, 180), 2.5)
    raw = np.array([0.6, 0.6, 0.31, 0.6, 0.6])  # 0.31: the median raw confidence of wrong frames
    # the same weak edges on a round lumen among round neighbours: not flagged (0.92)
    round_conf = calibrated_confidence(confidence_features(np.full((5, 180), 1.5), vessel, raw))
    assert np.all(round_conf > 0.85)
    # the lumen spikes 1 mm out over 20 degrees (a trace leaking into a pool or branch): 0.497
    lumen = np.full((5, 180), 1.5)
    lumen[2, 40:50] = 2.45
    spiked = calibrated_confidence(confidence_features(lumen, vessel, raw))
    assert spiked[2] < 0.5 < spiked[0]
    # the EEM radius jumps 50% out of line with its neighbours (the outer edge of the adventitia
    # taken on one frame): 0.33; its neighbours, which the jump makes look uneven, stay above (0.76)
    jumped_vessel = vessel.copy()
    jumped_vessel[2] *= 1.5
    jumped = calibrated_confidence(confidence_features(np.full((5, 180), 1.5), jumped_vessel, raw))
    assert jumped[2] < 0.5 < jumped[0]
    assert np.all((spiked > 0) & (spiked < 1))
