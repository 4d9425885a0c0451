"""Gating: heart rate and end-diastolic frames on phantoms; contour gating on real labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from IVUSReconstructLib.gating import (
    _downsample,
    dominant_rhythm,
    gate_contours,
    gate_pullback,
    pick_beat_minima,
    systolic_onset_signal,
)
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import ContourSet, FrameContours


def test_dominant_rhythm_of_a_pure_tone():
    fs = 30.0
    t = np.arange(900) / fs
    x = np.sin(2 * np.pi * 1.2 * t) + 0.01 * t
    f0, confidence, _ = dominant_rhythm(x, fs)
    assert f0 == pytest.approx(1.2, abs=0.01)
    assert confidence > 0.8


def test_dominant_rhythm_is_not_fooled_by_a_strong_second_harmonic():
    fs = 30.0
    t = np.arange(1800) / fs
    # 55 bpm whose second harmonic (110 bpm, inside the band) carries more power
    x = 0.8 * np.sin(2 * np.pi * (55 / 60) * t) + 1.0 * np.sin(2 * np.pi * (110 / 60) * t + 0.4)
    f0, _, _ = dominant_rhythm(x, fs, band_hz=(40 / 60, 160 / 60))
    assert 60 * f0 == pytest.approx(55.0, abs=0.5)


def test_pick_beat_minima_finds_every_trough():
    p = 25.0
    t = np.arange(500)
    x = np.cos(2 * np.pi * (t - 7) / p)  # maxima at 7 + k p, minima at 19.5 + k p
    for refine in (True, False):
        beats = pick_beat_minima(x, p, refine=refine)
        expected = 19.5 + p * np.arange(20)
        expected = expected[expected < 499 if refine else expected < 500]
        assert len(beats) == len(expected)
        assert np.max(np.abs(beats - expected)) <= 0.5


def test_systolic_onset_signal_peaks_on_the_last_quiet_frame():
    d = np.full(40, 0.01)
    d[20:26] = 0.2  # pair 20 joins frames 20 and 21: frame 20 is the last quiet frame
    step = systolic_onset_signal(d, half_width_frames=2)
    assert int(np.argmax(step)) == 20
    assert step[20] == pytest.approx(np.sqrt(0.2) - np.sqrt(0.01))


def test_downsample_is_a_block_mean_times_the_block_area():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, size=(3, 64, 48), dtype=np.uint8)
    expected = f.reshape(3, 8, 8, 6, 8).astype(float).sum(axis=(2, 4))
    assert np.array_equal(_downsample(f, 8), expected)


def _ed_offsets(detected: np.ndarray, truth: np.ndarray, n: int) -> np.ndarray:
    inner = truth[(truth > 3) & (truth < n - 4)]
    return np.array([detected[np.argmin(np.abs(detected - k))] - k for k in inner])


# Seeds never used while developing the rule (tuned on seeds 1-2, validated on 7-34).
@pytest.mark.parametrize(
    ("preset", "seed", "length_mm", "speckle", "rate_bpm"),
    [
        ("coronary", 41, 15, "rotational", None),
        ("coronary", 43, 12, "phased", 88.0),
        ("femoropopliteal", 47, 30, "rotational", None),
        ("femoropopliteal", 53, 30, "phased", 78.0),
    ],
)
def test_image_gating_finds_heart_rate_and_end_diastole(preset, seed, length_mm, speckle, rate_bpm):
    ph = make_phantom(preset, seed=seed, length_mm=length_mm, speckle=speckle, heart_rate_bpm=rate_bpm)
    g = gate_pullback(ph.pullback)
    assert g.method == "image"
    assert g.heart_rate_bpm == pytest.approx(ph.heart_rate_bpm, abs=3.0)
    truth = np.asarray(ph.ed_frames)
    offsets = _ed_offsets(g.ed_frames, truth, ph.pullback.n_frames)
    assert np.median(offsets) == 0
    # 23 development pullbacks: 98.5 % of beats within +-1 frame on average, worst 84 %
    # (femoropopliteal seed 47, here: its onset is ambiguous in a few beats)
    assert np.mean(np.abs(offsets) <= 1) >= 0.8
    assert abs(len(g.ed_frames) - len(truth)) <= 2
    assert np.array_equal(g.selected_frames, g.ed_frames)


def test_vein_reports_no_rhythm():
    ph = make_phantom("iliac-vein", seed=59, length_mm=15, speckle="phased")
    g = gate_pullback(ph.pullback)
    assert g.method == "none"
    assert g.heart_rate_bpm is None
    assert len(g.ed_frames) == 0
    assert np.array_equal(g.selected_frames, np.arange(ph.pullback.n_frames))
    assert "no clear cardiac rhythm" in g.message


def test_gating_off_selects_all_frames():
    ph = make_phantom("coronary", seed=61, length_mm=2, size_px=64)
    g = gate_pullback(ph.pullback, method="none")
    assert np.array_equal(g.selected_frames, np.arange(ph.pullback.n_frames))
    assert g.heart_rate_bpm is None


def test_contour_gating_matches_real_diastolic_labels(real_data):
    path = real_data / "aivus_pullback_contours" / "aivus_caa" / "anonymized_contours_0_7_4.json"
    d = json.loads(path.read_text())
    spacing = 0.0175553  # mm / pixel, reproduces the stored areas (see SOURCE.md)
    frames = []
    for i, (xs, ys) in enumerate(zip(*d["lumen"], strict=False)):
        knots = np.array([xs + xs[:1], ys + ys[:1]], dtype=float).T
        s = np.arange(len(knots))
        ss = np.linspace(0, len(knots) - 1, 100, endpoint=False)
        pts = CubicSpline(s, knots, bc_type="periodic")(ss) * spacing
        frames.append(FrameContours(index=i, lumen=pts))
    cs = ContourSet(frames=tuple(frames))
    labels = np.flatnonzero(np.array(d["phases"]) == "D")
    g = gate_contours(cs, np.arange(len(frames)) / 30.0)
    # 36 labelled beats, about 11.6 frames apart at 30 frames/s: a fast heart (~154 bpm)
    assert g.heart_rate_bpm == pytest.approx(30.0 * 60.0 / np.mean(np.diff(labels)), abs=3.0)
    offsets = np.array([g.ed_frames[np.argmin(np.abs(g.ed_frames - k))] - k for k in labels])
    # measured 32 of 36 (89 %) within +-1 frame; the misses are the last beats, where the
    # contour signal loses the rhythm
    assert np.mean(np.abs(offsets) <= 1) >= 0.85
