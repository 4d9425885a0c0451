"""Gating that says how sure it is: a rhythm outside the resting range or a weak one is named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from IVUSReconstructLib.gating import gate_pullback, rhythm_plausibility
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import GatingResult, Valued


@pytest.fixture(scope="module")
def phantom():
    # 70 bpm, recorded at 30 frames/s
    return make_phantom("coronary", seed=5, length_mm=8, size_px=96, heart_rate_bpm=70)


def _declared(pullback, rate_hz: float, source: str = "--frame-rate"):
    """The same frames with a (possibly wrong) frame rate typed by the user."""
    times = np.arange(pullback.n_frames) / rate_hz
    prov = dict(pullback.provenance, frame_times_s=Valued(times, source))
    return replace(pullback, frame_times_s=times, provenance=prov)


def test_right_frame_rate_gives_no_doubt(phantom) -> None:
    pb = _declared(phantom.pullback, 30.0)
    gating = gate_pullback(pb)
    assert gating.heart_rate_bpm == pytest.approx(70, abs=4)
    assert rhythm_plausibility(gating, 30.0, frame_rate_source="--frame-rate") == ""


def test_wrong_frame_rate_is_named(phantom) -> None:
    # Typed 50 frames/s for a 30 frames/s recording: the 70 bpm beats read as about 117 bpm.
    pb = _declared(phantom.pullback, 50.0)
    gating = gate_pullback(pb)
    assert gating.heart_rate_bpm == pytest.approx(70 * 50 / 30, abs=6)
    line = rhythm_plausibility(gating, 50.0, frame_rate_source="--frame-rate")
    bpm = round(gating.heart_rate_bpm)
    implied = round(50.0 * 70.0 / gating.heart_rate_bpm)
    assert line == (
        f"image gating found {bpm} bpm (spectral peak share {gating.confidence:.2f}) at 50 frames/s as given: "
        f"outside 45-110 bpm expected at rest, likely a wrong frame rate (the same beats are "
        f"70 bpm at {implied} frames/s); give the console's frame rate, or choose gating 'none' to analyse every frame"
    )
    assert abs(implied - 30) <= 2  # the true frame rate is recovered


def test_implausible_rate_from_the_file_blames_motion() -> None:
    gating = GatingResult("image", np.arange(3), np.arange(3), 150.0, 0.6, np.zeros(3))
    line = rhythm_plausibility(gating, 30.0, frame_rate_source="DICOM FrameTime")
    assert "likely motion other than the heart beat (or an arrhythmia)" in line
    assert line.startswith(
        "image gating found 150 bpm (spectral peak share 0.60) at 30 frames/s from DICOM FrameTime"
    )


def test_weak_rhythm_is_named() -> None:
    gating = GatingResult("image", np.arange(3), np.arange(3), 72.0, 0.26, np.zeros(3))
    line = rhythm_plausibility(gating, 30.0, frame_rate_source="--frame-rate")
    assert line == (
        "image gating found 72 bpm (spectral peak share 0.26) at 30 frames/s as given: a weak "
        "rhythm (share below 0.28), likely catheter or patient motion (or frames already gated); check the "
        "end-diastolic frames, or choose gating 'none' to analyse every frame"
    )


def test_gating_off_says_nothing_more() -> None:
    off = GatingResult(
        "none", np.arange(3), np.zeros(0, int), None, 0.0, np.zeros(3), "gating off: all frames analysed"
    )
    assert rhythm_plausibility(off, 30.0) == ""


def test_rhythm_hidden_by_a_wrong_frame_rate_is_named(phantom) -> None:
    # Typed 100 frames/s for a 30 frames/s recording: the 70 bpm beats would be 233 bpm,
    # beyond the searched band, so gating finds no clear rhythm.
    pb = _declared(phantom.pullback, 100.0)
    gating = gate_pullback(pb)
    assert gating.method == "none" and gating.message.startswith("no clear cardiac rhythm")
    line = rhythm_plausibility(gating, 100.0, frame_rate_source="--frame-rate")
    assert line.startswith("image gating found no clear rhythm (strongest ")
    assert "at 100 frames/s as given; every frame was analysed ungated" in line


def test_frame_rate_from_frame_times():
    from IVUSReconstructLib.gating import frame_rate_hz

    assert frame_rate_hz([0.0, 0.04, 0.08, 0.125]) == pytest.approx(25.0)  # median of 40, 40, 45 ms
    assert frame_rate_hz([0.0, 0.04, 0.04]) is None  # a repeated time
    assert frame_rate_hz([0.0]) is None
