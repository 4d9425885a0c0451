"""The steps of ``make_phantom`` one at a time: inputs, timeline, truth of one frame, record."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.phantom import PRESETS, Appearance
from IVUSReconstructLib.phantom.generator import _checked_inputs, _pullback_record, _Timeline


def test_checked_inputs_apply_overrides_and_refuse_bad_values():
    preset, speckle, length, size, look = _checked_inputs("coronary", None, 90.0, None, None, None)
    assert (preset.heart_rate_bpm, speckle, length, size, look) == (90.0, "rotational", PRESETS["coronary"].length_mm, 256, None)
    # a vein has no rhythm: the heart rate is ignored; the appearance sets the media thickness
    preset, *_ = _checked_inputs("iliac-vein", "phased", 90.0, 5.0, 64, Appearance(media_mm=0.5))
    assert preset.heart_rate_bpm is None and preset.media_mm == 0.5
    with pytest.raises(IVUSInputError, match=r"preset: unknown phantom preset 'aorta'; use one of coronary, "):
        _checked_inputs("aorta", None, None, None, None, None)
    with pytest.raises(IVUSInputError, match=r"speckle: 'laser' is not a speckle model"):
        _checked_inputs("coronary", "laser", None, None, None, None)
    with pytest.raises(IVUSInputError, match=r"length_mm: -1.0 must be positive"):
        _checked_inputs("coronary", None, None, -1.0, None, None)
    with pytest.raises(IVUSInputError, match=r"size_px: 16 is too small; use at least 32"):
        _checked_inputs("coronary", None, None, None, 16, None)


def test_timeline_of_a_beating_pullback():
    preset = PRESETS["coronary"]
    fps, speed = preset.frame_rate_hz, preset.pullback_speed_mm_s
    timeline = _Timeline.of(preset, 4.0, 0.5, np.random.default_rng(0))
    n_still = int(round(0.5 * fps))
    assert timeline.n_still == n_still
    assert timeline.n == int(round(4.0 / speed * fps)) + n_still
    assert np.allclose(np.diff(timeline.t), 1.0 / fps)
    assert np.all(timeline.nominal[: n_still + 1] == 0.0)
    assert timeline.nominal[-1] == pytest.approx(speed * (timeline.n - 1 - n_still) / fps)
    # end-diastolic frames carry no cyclic motion: there the true position is the motor's
    assert timeline.ed_frames[0] == 0 and timeline.s[0] == 0.0
    assert np.allclose(timeline.s[timeline.ed_frames], timeline.nominal[timeline.ed_frames])
    assert timeline.rate == pytest.approx(preset.heart_rate_bpm, rel=0.1)


def test_timeline_of_a_breathing_vein():
    preset = PRESETS["iliac-vein"]
    timeline = _Timeline.of(preset, 10.0, 0.0, np.random.default_rng(0))
    resp = preset.respiratory_rate_hz or 0.25
    assert timeline.rate is None and len(timeline.ed_frames) == 0
    assert np.allclose(timeline.phase, np.mod(timeline.t * resp, 1.0))
    # phase 0 at the first frame: no offset to remove, the true position is motor + breathing
    assert timeline.cycle[0] == 0.0
    assert np.allclose(timeline.s, timeline.nominal + preset.dz_peak_mm * timeline.cycle)


def test_pullback_record_names_preset_and_seed():
    frames = np.zeros((3, 8, 8), dtype=np.uint8)
    t = np.arange(3) / 30.0
    pullback = _pullback_record(frames, t, PRESETS["coronary"], 7, (3.5, 3.5), (0.05, 0.05))
    assert pullback.provenance["n_frames"].value == 3
    assert pullback.provenance["pullback_speed_mm_s"].source == "phantom preset coronary (seed 7)"
    assert (pullback.acquisition, pullback.catheter_center_px) == ("motor", (3.5, 3.5))
    assert pullback.pullback_speed_mm_s == PRESETS["coronary"].pullback_speed_mm_s
