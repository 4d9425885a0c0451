"""Per-frame confidence of the traced borders."""

from __future__ import annotations

import numpy as np


def _confidence(
    lumen_strength: np.ndarray, vessel_strength: np.ndarray, filled: np.ndarray, correlated: bool
) -> np.ndarray:
    """Confidence of each frame's borders in [0, 1], (F,).

    The mean edge strength of lumen and EEM over the directions that were traced, scaled down
    by the share of directions filled instead (shadows, their penumbra, an ostium).

    Parameters
    ----------
    lumen_strength, vessel_strength : ndarray of shape (F, A)
        Normalised edge strength (0-1) under each border.
    filled : ndarray of shape (F, A), bool
        Directions interpolated rather than traced.
    correlated : bool
        Whether the correlation with neighbouring frames was available; a single frame traced on
        grey levels alone is trusted less.
    """
    # interpolated directions (shadows, their penumbra, an ostium) lower the confidence
    visible = ~filled
    strength = np.where(visible, 0.5 * (lumen_strength + vessel_strength), np.nan)
    confidence = np.nan_to_num(np.nanmean(strength, axis=1), nan=0.0) * (0.5 + 0.5 * visible.mean(axis=1))
    if not correlated:
        confidence = confidence * 0.7
    return np.clip(confidence, 0.0, 1.0)


# Features of the finished borders that predict a wrong frame, in the order of CALIBRATION.
FEATURES = (
    "confidence",  # the edge-strength confidence above
    "lumen_change",  # |log(area / mean of the neighbouring analysed frames' areas)|
    "vessel_change",
    "lumen_jagged",  # mean |r - its 15-direction running mean| / mean r
    "lumen_min_ratio",  # smallest lumen radius / median lumen radius
    "lumen_ellipse_excess",  # largest excursion beyond the lumen's 3-harmonic shape / mean r
)
# The wall's thinnest point is no feature: the phantom never draws a wall under 0.25 mm while a
# real plaque-free wall is 0.1-0.2 mm, so the model learned "thin wall = wrong" and flagged 82% of
# a real LAD pullback's frames (43% without it, with the same result on phantoms). Nor is the
# plaque burden: it describes the vessel, not the borders, and the phantoms' harder frames happen
# to carry more plaque, so the model read "diseased = wrong" and flagged 34% of the diffusely
# diseased real LAD's analysed frames (28% without it, with the area changes as log ratios; on
# phantoms 85% / 90% before, 87% / 90% after).

# Logistic weights (bias first) of P(the frame's worse Jaccard >= 0.85), fitted with both classes
# weighted equally on phantoms of every preset and speckle regime, default and realistic looks,
# echolucent plaque, wedged catheter, still blood and side branches (seeds 3, 5, 7, 11: 2320
# frames; Testing/benchmarks/calibrate_confidence.py). On seeds 31, 41 and 43 (1740 frames) a
# confidence below 0.5 flags 86.6% of the frames with Jaccard < 0.8 and spares 90.1% of those > 0.9.
CALIBRATION = np.array([-1.803, 1.992, -1.767, -3.895, -0.722, 3.647, -5.899])


def radii_at(radii_mm: np.ndarray, n_angles: int) -> np.ndarray:
    """Radii (F, A) at ``2 pi k / A`` resampled to ``n_angles`` directions (periodic, linear)."""
    radii_mm = np.asarray(radii_mm, float)
    if radii_mm.shape[1] == n_angles:
        return radii_mm
    src = np.arange(radii_mm.shape[1] + 1) / radii_mm.shape[1]
    dst = np.arange(n_angles) / n_angles
    return np.stack([np.interp(dst, src, np.r_[r, r[:1]]) for r in radii_mm])


def confidence_features(lumen_mm: np.ndarray, vessel_mm: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Features of each analysed frame's borders, (F, len(FEATURES)).

    Parameters
    ----------
    lumen_mm, vessel_mm : ndarray of shape (F, 180)
        Radii about the catheter (mm) of the analysed frames, in frame order, at 2-degree steps.
    confidence : ndarray of shape (F,)
        The edge-strength confidence of :func:`_confidence`.
    """
    lum, ves = np.asarray(lumen_mm, float), np.asarray(vessel_mm, float)

    def change(r: np.ndarray) -> np.ndarray:
        a = np.pi * np.mean(r**2, axis=1)
        if len(a) < 2:
            return np.zeros_like(a)
        prev, nxt = np.r_[a[1:2], a[:-1]], np.r_[a[1:], a[-2:-1]]
        # a log ratio: a border that jumps out and one that jumps in count alike, and a large
        # jump counts in full (|a - mean| / a saturates at 1 for an outward jump)
        return np.abs(np.log(np.maximum(a, 1e-6) / np.maximum(0.5 * (prev + nxt), 1e-6)))

    pad = np.concatenate([lum[:, -7:], lum, lum[:, :7]], axis=1)
    running = np.stack([np.convolve(row, np.ones(15) / 15, "same")[7:-7] for row in pad])
    mean_r = np.maximum(lum.mean(axis=1), 1e-6)
    spec = np.fft.rfft(lum, axis=1)
    spec[:, 4:] = 0
    shape = np.fft.irfft(spec, n=lum.shape[1], axis=1)
    return np.column_stack(
        [
            confidence,
            change(lum),
            change(ves),
            np.mean(np.abs(lum - running), axis=1) / mean_r,
            lum.min(axis=1) / np.maximum(np.median(lum, axis=1), 1e-6),
            np.max(lum - shape, axis=1) / mean_r,
        ]
    )


def calibrated_confidence(features: np.ndarray, weights: np.ndarray = CALIBRATION) -> np.ndarray:
    """The probability (F,) that each frame's borders are right (worse Jaccard >= 0.85), from
    :func:`confidence_features`; below 0.5 the frame is flagged for review."""
    x = np.asarray(features, float) @ weights[1:] + weights[0]
    return 1.0 / (1.0 + np.exp(-x))
