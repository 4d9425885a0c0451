"""End-diastolic frame selection (gating) from the images or from contours.

Image-based gating follows Maso Talou et al., IEEE TBME 2015: a per-frame motion signal
(1 - normalised cross-correlation with the next frame, and minus the total gradient
magnitude, which drops when motion blurs the frame), its dominant frequency in the cardiac
band by FFT, a zero-phase band-pass filter around it and one minimum per beat. When the
cardiac rhythm is absent or weak (peripheral veins show respiratory motion, a gated or
static acquisition shows none), no rhythm is invented: every frame is kept and the
message says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from scipy import ndimage, signal

from .errors import FIX_FRAME_RATE, IVUSCancelled, IVUSInputError
from .geometry import polygon_area, polygon_centroid
from .types import ContourSet, GatingResult, Pullback

__all__ = [
    "frame_motion",
    "systolic_onset_signal",
    "dominant_rhythm",
    "pick_beat_minima",
    "gating_from_signal",
    "gate_pullback",
    "gate_contours",
    "frame_rate_hz",
    "rhythm_plausibility",
]

ProgressFn = Callable[[float, str], None]


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("gating cancelled")


def _zscore(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _downsample(frames: np.ndarray, factor: int) -> np.ndarray:
    """Block-sum ``factor`` x ``factor`` pixels (integer sums: ~5x faster than a float mean)."""
    n, h, w = frames.shape
    h2, w2 = h // factor, w // factor
    f = np.asarray(frames[:, : h2 * factor, : w2 * factor])
    if f.dtype == np.uint8 and factor <= 16:
        acc = np.uint16
    elif np.issubdtype(f.dtype, np.integer):
        acc = np.int64
    else:
        acc = np.float64
    rows = f.reshape(n, h2, factor, w2 * factor).sum(axis=2, dtype=acc)
    return rows.reshape(n, h2, w2, factor).sum(axis=3, dtype=acc).astype(np.float32)


def frame_motion(
    frames: np.ndarray,
    *,
    target_size_px: int = 64,
    chunk: int = 256,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-to-frame dissimilarity and per-frame sharpness of a pullback.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
        Grey-level frames (any dtype; may be a memmap, read in chunks).
    target_size_px : int
        Frames are block-averaged down to about this size: speckle is averaged out and
        6000 frames of 512 x 512 take about a second.
    chunk : int
        Frames read at a time.

    Returns
    -------
    dissimilarity : ndarray of shape (N,)
        ``1 - NCC(frame k, frame k+1)`` in [0, 2]; the last frame repeats the one before.
    sharpness : ndarray of shape (N,)
        Total absolute gradient of the reduced frame (drops when motion blurs it).
    """
    n, h, w = frames.shape
    factor = max(1, int(min(h, w) // target_size_px))
    ncc = np.zeros(n)
    grad = np.zeros(n)
    prev_last: np.ndarray | None = None
    for start in range(0, n, chunk):
        _check_cancel(cancel)
        small = _downsample(frames[start : start + chunk], factor)
        flat = small.reshape(len(small), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(flat, axis=1)
        norm[norm == 0] = 1.0
        flat = flat / norm[:, None]
        if prev_last is not None:
            ncc[start - 1] = float(prev_last @ flat[0])
        ncc[start : start + len(flat) - 1] = np.einsum("ij,ij->i", flat[:-1], flat[1:])
        prev_last = flat[-1]
        gy = np.abs(np.diff(small, axis=1)).sum(axis=(1, 2))
        gx = np.abs(np.diff(small, axis=2)).sum(axis=(1, 2))
        grad[start : start + len(small)] = gy + gx
        if progress is not None:
            progress(min(1.0, (start + len(small)) / n), "gating: motion signal")
    if n > 1:
        ncc[-1] = ncc[-2]
    return np.clip(1.0 - ncc, 0.0, 2.0), grad


def _combine(dissimilarity: np.ndarray, sharpness: np.ndarray, gradient_weight: float) -> np.ndarray:
    return (1.0 - gradient_weight) * _zscore(dissimilarity) + gradient_weight * _zscore(-sharpness)


def systolic_onset_signal(dissimilarity: np.ndarray, *, half_width_frames: int = 2) -> np.ndarray:
    """Step detector that peaks on the last quiet frame before a burst of motion.

    End-diastole is the end of the diastolic rest, just before systole (the R wave): the
    frame-to-frame change is small up to it and jumps as the heart contracts. The step is
    the mean of ``sqrt(dissimilarity)`` over the ``w`` frame pairs after frame k minus its
    mean over the ``w`` pairs before (pair k joins frames k and k+1). The square root
    makes the measure grow about linearly with displacement (1 - NCC grows with its
    square), so the onset, not the steepest later acceleration, gives the largest step.

    Parameters
    ----------
    dissimilarity : ndarray of shape (N,)
        ``1 - NCC`` between frame k and k+1.
    half_width_frames : int
        ``w``, frames on each side.

    Returns
    -------
    ndarray of shape (N,)
    """
    d = np.sqrt(np.clip(np.asarray(dissimilarity, dtype=float), 0.0, None))
    n = len(d)
    c = np.concatenate([[0.0], np.cumsum(d)])
    k = np.arange(n)
    after = np.minimum(k + half_width_frames, n)
    before = np.maximum(k - half_width_frames, 0)
    fwd = (c[after] - c[k]) / np.maximum(after - k, 1)
    bwd = (c[k] - c[before]) / np.maximum(k - before, 1)
    step = fwd - bwd
    # No step can be measured where one side is missing.
    step[(after - k) < half_width_frames] = 0.0
    step[(k - before) < half_width_frames] = 0.0
    return step


def dominant_rhythm(
    x: np.ndarray, frame_rate_hz: float, *, band_hz: tuple[float, float] = (0.75, 1.66)
) -> tuple[float, float, np.ndarray]:
    """Dominant frequency of a signal inside a band, and how dominant it is.

    Parameters
    ----------
    x : ndarray of shape (N,)
    frame_rate_hz : float
    band_hz : (low, high)
        Search band (default 45-100 beats per minute).

    Returns
    -------
    frequency_hz : float
        Peak frequency (parabolic interpolation between FFT bins).
    confidence : float in [0, 1]
        Share of the spectral power above 0.2 Hz that lies within +-0.1 Hz of the peak
        and of its second harmonic.
    detrended : ndarray of shape (N,)
        The signal after removal of its slow trend (pullback anatomy).
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    # A 2.5 s moving median takes the slow anatomical changes out, keeping the beats.
    win = max(3, int(round(2.5 * frame_rate_hz)) | 1)
    trend = ndimage.median_filter(x, size=win, mode="nearest")
    trend = ndimage.uniform_filter1d(trend, size=win, mode="nearest")
    d = x - trend
    n_fft = max(4096, 1 << int(np.ceil(np.log2(4 * n))))
    spec = np.abs(np.fft.rfft(d * np.hanning(n), n_fft)) ** 2
    freq = np.fft.rfftfreq(n_fft, 1.0 / frame_rate_hz)
    in_band = (freq >= band_hz[0]) & (freq <= band_hz[1])
    if not in_band.any() or spec[freq > 0.2].sum() <= 0:
        return float("nan"), 0.0, d
    # Harmonic sum: a beat's motion is not sinusoidal, and its second harmonic can outweigh
    # the fundamental; summing the power at f and 2f keeps a slow heart from being read at
    # twice its rate when the band reaches that high.
    score = spec + np.interp(2.0 * freq, freq, spec, right=0.0)
    k = int(np.flatnonzero(in_band)[np.argmax(score[in_band])])
    f0 = float(freq[k])
    if 0 < k < len(spec) - 1:
        a, b, c = spec[k - 1], spec[k], spec[k + 1]
        den = a - 2 * b + c
        if den != 0:
            f0 = float(freq[k] + 0.5 * (a - c) / den * (freq[1] - freq[0]))
    half = 0.1
    peak = (np.abs(freq - f0) <= half) | (np.abs(freq - 2 * f0) <= half)
    total = spec[freq > 0.2].sum()
    confidence = float(spec[peak & (freq > 0.2)].sum() / total)
    return f0, min(1.0, confidence), d


def pick_beat_minima(
    x: np.ndarray,
    period_frames: float,
    *,
    tolerance: float = 0.15,
    end_of_quiescence: float = 0.0,
    refine: bool = True,
    phase_smoothing: float = 0.75,
) -> np.ndarray:
    """One minimum per beat, searched within a window around each expected beat.

    Expected beats are where the signal's fundamental (found by complex demodulation at
    the beat frequency, so that it may drift slowly) is lowest: the windows then stay on
    the same phase of the cycle for the whole pullback instead of hopping between the
    two quiescent phases of a beat.

    Parameters
    ----------
    x : ndarray of shape (N,)
        Filtered signal.
    period_frames : float
        Beat period in frames.
    tolerance : float
        Window half-width as a fraction of the period.
    end_of_quiescence : float
        When > 0, each pick moves forward to the last frame whose signal stays within
        this fraction of the beat's range above the minimum (end of the quiet phase).
    refine : bool
        False returns the phase-locked beat positions themselves (the frame where the
        demodulated cycle crosses the phase of the template's minimum), without a
        per-beat search: steadier when the per-frame signal is noisy.
    phase_smoothing : float
        Gaussian width, in periods, of the demodulation: larger follows heart-rate
        changes more slowly but is steadier where the rhythm is faint.

    Returns
    -------
    ndarray of shape (B,), int
    """
    n = len(x)
    p = float(period_frames)
    if n < 2 or not np.isfinite(p) or p < 2:
        return np.zeros(0, dtype=int)
    t = np.arange(n)
    carrier = np.exp(-2j * np.pi * t / p)
    z = x * carrier
    sigma = phase_smoothing * p
    # Normalised convolution (zeros outside, divided by the window's weight inside) keeps
    # the local mean unbiased up to the record's ends, where "nearest" padding would pull
    # the phase of the last beats.
    weight = ndimage.gaussian_filter1d(np.ones(n), sigma, mode="constant")
    zf = (
        ndimage.gaussian_filter1d(z.real, sigma, mode="constant")
        + 1j * ndimage.gaussian_filter1d(z.imag, sigma, mode="constant")
    ) / weight
    # Local cycle phase from the fundamental; the phase of the deepest minimum of the
    # cycle-averaged waveform is then searched in every beat, so that all picks stay on
    # the same phase instead of hopping between the two quiescent phases of a beat.
    phase = np.unwrap(2 * np.pi * t / p + np.angle(zf))
    n_bins = 24
    bins = (np.mod(phase, 2 * np.pi) / (2 * np.pi) * n_bins).astype(int) % n_bins
    counts = np.bincount(bins, minlength=n_bins)
    sums = np.bincount(bins, weights=x, minlength=n_bins)
    template = np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)
    template = ndimage.uniform_filter1d(
        np.where(
            np.isfinite(template), template, np.nanmax(np.where(np.isfinite(template), template, np.nan))
        ),
        3,
        mode="wrap",
    )
    target = (np.argmin(template) + 0.5) / n_bins * 2 * np.pi
    cycles = (phase - target) / (2 * np.pi)
    centres = []
    for m in range(int(np.floor(cycles.min())), int(np.ceil(cycles.max())) + 1):
        k = int(np.searchsorted(cycles, m))
        if 0 < k < n:
            # fractional crossing of the target phase, rounded to the nearest frame
            step = cycles[k] - cycles[k - 1]
            frac = (m - cycles[k - 1]) / step if step > 0 else 1.0
            centres.append(int(np.clip(np.rint(k - 1 + frac), 0, n - 1)))
    if not refine:
        return np.array(sorted(set(centres)), dtype=int)
    beats = []
    half = tolerance * p
    for c in centres:
        lo, hi = int(np.floor(c - half)), int(np.ceil(c + half))
        lo_c, hi_c = max(lo, 0), min(hi, n - 1)
        if hi_c - lo_c < half:  # window mostly outside the record: partial beat
            continue
        k_min = lo_c + int(np.argmin(x[lo_c : hi_c + 1]))
        if (k_min == lo_c and lo_c > lo) or (k_min == hi_c and hi_c < hi):
            continue  # minimum cut by the record's end
        if end_of_quiescence > 0:
            # End-diastole is the last quiescent frame before systolic motion starts:
            # walk forward from the quietest frame while the signal stays near it.
            lo_q, hi_q = max(0, int(k_min - p / 2)), min(n, int(k_min + p / 2))
            level = x[k_min] + end_of_quiescence * (x[lo_q:hi_q].max() - x[k_min])
            k = k_min
            while k + 1 < min(n, k_min + 0.3 * p) and x[k + 1] <= level:
                k += 1
            k_min = k
        beats.append(k_min)
    return np.array(sorted(set(beats)), dtype=int)


def gating_from_signal(
    x: np.ndarray,
    frame_rate_hz: float,
    *,
    method: str,
    band_hz: tuple[float, float] = (0.75, 1.66),
    min_confidence: float = 0.25,
    pick: str = "min",
    end_of_quiescence: float = 0.0,
    onset: np.ndarray | None = None,
    refine: bool = True,
    onset_tolerance: float = 0.15,
) -> GatingResult:
    """Gate on a per-frame signal: rhythm by FFT, band-pass, one extremum per beat.

    Parameters
    ----------
    x : ndarray of shape (N,)
        Per-frame signal.
    frame_rate_hz : float
    method : str
        Recorded in the result (``"image"``, ``"contours"``).
    band_hz : (low, high)
        Heart-rate search band in Hz.
    min_confidence : float
        Below this spectral-peak share no rhythm is reported and every frame is kept.
    pick : ``"min"`` or ``"max"``
        Which extremum of the filtered signal marks end-diastole (when ``onset`` is None).
    end_of_quiescence : float
        See ``pick_beat_minima``.
    onset : ndarray of shape (N,), optional
        Systolic-onset step signal (``systolic_onset_signal``): end-diastole is then its
        maximum in every beat, the rhythm still coming from ``x``.
    refine : bool
        False places end-diastole at the same phase of every demodulated cycle instead of
        searching each beat (see ``pick_beat_minima``).
    onset_tolerance : float
        Half-width, as a fraction of the period, of the window searched for each onset.

    Returns
    -------
    GatingResult
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    all_frames = np.arange(n)
    if n < 8 or not np.isfinite(x).all() or np.ptp(x) == 0:
        return GatingResult(
            "none", all_frames, np.zeros(0, int), None, 0.0, x, "no motion signal: all frames analysed"
        )
    duration_s = n / frame_rate_hz
    if duration_s < 2.5 / band_hz[0]:
        return GatingResult(
            "none",
            all_frames,
            np.zeros(0, int),
            None,
            0.0,
            x,
            f"pullback too short ({duration_s:.1f} s) to find a heart rate: all frames analysed",
        )
    f0, confidence, d = dominant_rhythm(x, frame_rate_hz, band_hz=band_hz)
    if not np.isfinite(f0) or confidence < min_confidence:
        return GatingResult(
            "none",
            all_frames,
            np.zeros(0, int),
            None,
            confidence,
            x,
            f"no clear cardiac rhythm (spectral peak share {confidence:.2f} < {min_confidence:.2f},"
            f" strongest rate {60 * f0:.0f} bpm): all frames analysed",
        )
    nyq = frame_rate_hz / 2.0
    lo = 0.5 * f0 / nyq
    hi = min(0.95, 3.0 * f0 / nyq)
    b, a = signal.butter(2, [lo, hi], btype="band")
    filtered = signal.filtfilt(b, a, d, padlen=min(3 * max(len(a), len(b)), n - 1))
    if onset is not None:
        ed = pick_beat_minima(-np.asarray(onset, dtype=float), frame_rate_hz / f0, tolerance=onset_tolerance)
    else:
        sign = 1.0 if pick == "min" else -1.0
        ed = pick_beat_minima(
            sign * filtered, frame_rate_hz / f0, end_of_quiescence=end_of_quiescence, refine=refine
        )
    bpm = 60.0 * f0
    return GatingResult(
        method,
        ed,
        ed,
        bpm,
        confidence,
        filtered,
        f"{method} gating: {bpm:.0f} bpm (spectral peak share {confidence:.2f}), {len(ed)} end-diastolic frames",
    )


def frame_rate_hz(frame_times_s: np.ndarray) -> float | None:
    """Frames per second from frame times (N,): the inverse median interval, or None when the
    times do not strictly increase (fewer than two, repeated or out of order)."""
    dt = np.diff(np.asarray(frame_times_s, dtype=float))
    if not dt.size or not np.all(dt > 0):
        return None
    return 1.0 / float(np.median(dt))


def _frame_rate(frame_times_s: np.ndarray, where: str) -> float:
    rate = frame_rate_hz(frame_times_s)
    if rate is None:
        raise IVUSInputError(
            f"{where}: frame_times_s is not strictly increasing; {FIX_FRAME_RATE} or fix the frame times",
            setting="frame_rate_hz",
        )
    return rate


def gate_pullback(
    pullback: Pullback,
    *,
    method: str = "image",
    band_bpm: tuple[float, float] = (40.0, 160.0),
    min_confidence: float = 0.25,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> GatingResult:
    """Select end-diastolic frames of a pullback.

    Parameters
    ----------
    pullback : Pullback
    method : ``"image"`` or ``"none"``
        ``"none"`` keeps every frame.
    band_bpm : (low, high)
        Heart rates searched, beats per minute (Maso Talou et al. searched 45-100; the
        harmonic sum of ``dominant_rhythm`` lets the band reach tachycardia safely).
    min_confidence : float
        Minimum share of spectral power in the peak to accept a rhythm.

    Returns
    -------
    GatingResult
        ``method`` is ``"none"`` when gating is off or no rhythm was found; then every frame
        is selected and ``heart_rate_bpm`` is None.
    """
    n = pullback.n_frames
    where = pullback.source.get("path", "pullback") if pullback.source else "pullback"
    if method == "none":
        return GatingResult(
            "none", np.arange(n), np.zeros(0, int), None, 0.0, np.zeros(n), "gating off: all frames analysed"
        )
    if method != "image":
        raise IVUSInputError(f"gating: method {method!r} is not supported here; use 'image' or 'none'")
    rate = _frame_rate(pullback.frame_times_s, where)
    dissimilarity, sharpness = frame_motion(pullback.frames, progress=progress, cancel=cancel)
    return gating_from_signal(
        _combine(dissimilarity, sharpness, 0.5),
        rate,
        method="image",
        band_hz=(band_bpm[0] / 60.0, band_bpm[1] / 60.0),
        min_confidence=min_confidence,
        onset=systolic_onset_signal(dissimilarity),
    )


def contour_signal(contours: ContourSet, frame_rate_hz: float, *, area_weight: float = 0.3) -> np.ndarray:
    """Per-frame cardiac signal from lumen contours (low = end-diastole).

    End-diastole is when the lumen is largest and the catheter sits at the diastolic end
    of its in-plane swing. The centroid swing is taken along its principal direction
    (after removing the slow drift), signed to move in phase with the lumen area.

    Parameters
    ----------
    contours : ContourSet
        Lumen on every frame, sorted by index.
    frame_rate_hz : float
    area_weight : float
        Weight of (- lumen area) against the signed centroid swing.

    Returns
    -------
    ndarray of shape (N,)
    """
    areas = np.array([polygon_area(f.lumen) for f in contours.frames])
    cent = np.array([polygon_centroid(f.lumen) for f in contours.frames])
    win = max(3, int(round(2.5 * frame_rate_hz)))
    drift = ndimage.uniform_filter1d(cent, size=win, axis=0, mode="nearest")
    swing = cent - drift
    if len(cent) > 2 and np.ptp(swing) > 0:
        direction = np.linalg.svd(swing - swing.mean(axis=0), full_matrices=False)[2][0]
        along = swing @ direction
        c = np.corrcoef(along, areas)[0, 1] if np.std(areas) > 0 else 1.0
        along = along * (1.0 if not np.isfinite(c) or c >= 0 else -1.0)
    else:
        along = np.zeros(len(cent))
    return -(area_weight * _zscore(areas) + (1.0 - area_weight) * _zscore(along))


def gate_contours(
    contours: ContourSet,
    frame_times_s: np.ndarray,
    *,
    band_bpm: tuple[float, float] = (40.0, 180.0),
    min_confidence: float = 0.2,
) -> GatingResult:
    """Gate a pullback that has a lumen contour on every frame (contour-only inputs).

    Parameters
    ----------
    contours : ContourSet
        Lumen contours on consecutive frames.
    frame_times_s : ndarray of shape (N,)
        Time of each contour's frame.
    band_bpm : (low, high)
        Heart rates searched. Wider than the image method's band: contour signals are
        clean enough to follow tachycardia (e.g. under pharmacological stress).
    min_confidence : float

    Returns
    -------
    GatingResult
        ``ed_frames`` and ``selected_frames`` hold frame indices (``contours.frames[i].index``).
    """
    frames = contours.frames
    if len(frames) != len(frame_times_s):
        raise IVUSInputError(
            f"contours: {len(frames)} frames but {len(frame_times_s)} frame times; give one time per contour frame"
        )
    rate = _frame_rate(frame_times_s, "contours")
    x = contour_signal(contours, rate, area_weight=0.5)
    # Contours jitter from frame to frame (manual knots, automatic borders) more than the
    # heart rate varies, so beats are placed at one phase of the demodulated cycle rather
    # than at each beat's own noisy minimum.
    res = gating_from_signal(
        x,
        rate,
        method="contours",
        band_hz=(band_bpm[0] / 60.0, band_bpm[1] / 60.0),
        min_confidence=min_confidence,
        refine=False,
    )
    idx = contours.indices
    return GatingResult(
        res.method,
        idx[res.selected_frames],
        idx[res.ed_frames],
        res.heart_rate_bpm,
        res.confidence,
        res.signal,
        res.message,
    )


# Heart rates expected during a catheterisation at rest (sedated patients run slow, anxious
# ones fast); image gating searches a wider band so that a wrong frame rate shows up here.
PLAUSIBLE_BPM = (45.0, 110.0)
# Below this spectral-peak share the rhythm is accepted but weak. Phantoms with a known
# 60-100 bpm rhythm give 0.29-0.41 (the beat's energy spreads over harmonics and jitter),
# so only the band just above the acceptance threshold (0.25) is called weak.
CLEAR_RHYTHM_SHARE = 0.28


def rhythm_plausibility(
    gating: GatingResult,
    frame_rate_hz: float,
    *,
    frame_rate_source: str = "",
    plausible_bpm: tuple[float, float] = PLAUSIBLE_BPM,
    clear_share: float = CLEAR_RHYTHM_SHARE,
) -> str:
    """One line saying why a rhythm found by image gating is doubtful, and what to do ('' if it is not).

    The heart rate is counted in frames: a frame rate typed wrong scales it by the same
    factor, so a rate outside the resting range most often means a wrong ``--frame-rate``.
    A weak rhythm (a small share of the motion spectrum) means the frame-to-frame change is
    dominated by something else: catheter or patient motion, breathing, or frames that are
    already gated.

    Parameters
    ----------
    gating : GatingResult
        From :func:`gate_pullback` (``method`` ``"image"``; other methods give '').
    frame_rate_hz : float
        The frame rate the rhythm was measured with.
    frame_rate_source : str
        Where it came from (``"--frame-rate"``, a DICOM tag, ...): a typed or assumed rate is
        the first suspect.
    plausible_bpm : (low, high)
    clear_share : float

    Returns
    -------
    str
    """
    low, high = plausible_bpm
    typed = frame_rate_source.startswith("--frame-rate") or not frame_rate_source
    where = (
        "as given"
        if frame_rate_source.startswith("--frame-rate")
        else (f"from {frame_rate_source}" if frame_rate_source else "assumed")
    )
    if gating.method == "none" and gating.message.startswith("no clear cardiac rhythm"):
        # Image gating gave up: say whether a wrong frame rate could have hidden the beats.
        f0, share, _ = dominant_rhythm(gating.signal, frame_rate_hz, band_hz=(40.0 / 60.0, 160.0 / 60.0))
        if not np.isfinite(f0):
            return ""
        bpm = 60.0 * f0
        head = (
            f"image gating found no clear rhythm (strongest {bpm:.0f} bpm, spectral peak share {share:.2f}) "
            f"at {frame_rate_hz:g} frames/s {where}; every frame was analysed ungated"
        )
        if typed and not low <= bpm <= high:
            return (
                f"{head}: if the frame rate is wrong the beats are hidden ({bpm:.0f} bpm here is 70 bpm at "
                f"{frame_rate_hz * 70.0 / bpm:.0f} frames/s), give the console's frame rate; otherwise the motion "
                "is not cardiac (catheter or patient motion) and gating 'none' says so"
            )
        return f"{head}: likely catheter or patient motion (or frames already gated); gating 'none' says so"
    if gating.method != "image" or gating.heart_rate_bpm is None:
        return ""
    bpm = float(gating.heart_rate_bpm)
    share = float(gating.confidence)
    found = f"image gating found {bpm:.0f} bpm (spectral peak share {share:.2f}) at {frame_rate_hz:g} frames/s {where}"
    if not low <= bpm <= high:
        # The frame rate that would put this rhythm at 70 bpm.
        implied = frame_rate_hz * 70.0 / bpm
        cause = (
            f"likely a wrong frame rate (the same beats are {70:.0f} bpm at {implied:.0f} frames/s)"
            if typed
            else "likely motion other than the heart beat (or an arrhythmia)"
        )
        return (
            f"{found}: outside {low:.0f}-{high:.0f} bpm expected at rest, {cause}; "
            "give the console's frame rate, or choose gating 'none' to analyse every frame"
        )
    if share < clear_share:
        return (
            f"{found}: a weak rhythm (share below {clear_share:.2f}), likely catheter or patient motion "
            "(or frames already gated); check the end-diastolic frames, or choose gating 'none' to analyse every frame"
        )
    return ""
