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
