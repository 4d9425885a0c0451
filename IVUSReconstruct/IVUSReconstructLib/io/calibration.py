"""Calibration and display geometry of screen-exported frames, from a few sampled frames.

Consoles burn a scale into exported frames: dots or tick marks every millimetre along the
image axes (often coloured, e.g. yellow dots every 44 px), or a ruler beside the image. They
are static: they sit on the same pixels in every frame while the tissue speckle under them
changes. So a handful of frames spread over the pullback is enough to find them, and a
folder without them is refused before its thousands of frames are decoded.

Marks are candidate pixels that are, in nearly every sampled frame, either coloured (R, G, B
far apart) or bright and unchanged; they are grouped into small blobs; blobs on one row or
one column whose positions fit an even grid (gaps allowed where the catheter or a label hides
a mark) are a scale. Scales on several lines must agree on their pitch.

The field of view and the catheter are found from the same samples by texture: speckle is
textured in every frame, the display's mask (black or coloured, whose colour may change from
frame to frame) and the catheter disc are flat.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..geometry import robust_circle_fit

__all__ = ["detect_scale_marks", "even_grid", "detect_display_geometry"]

# Chroma (max - min of R, G, B) above which a pixel is coloured (as in images.py).
_CHROMA = 40
# Share of the sampled frames in which a pixel must look like a mark.
_PRESENT = 0.75
# A mark is small: at most this many pixels (after merging its JPEG fragments) and this wide.
_MAX_MARK_PX = 60
_MAX_MARK_WIDTH_PX = 9
# Two lines measure the same scale when their pitches agree within this fraction.
_PITCH_AGREEMENT = 0.03


def even_grid(positions: np.ndarray, *, min_marks: int = 5, min_pitch_px: float = 4.0) -> dict | None:
    """The largest set of positions on an even grid ``a + k * pitch`` (k integer).

    Marks may be missing (a catheter disc or a label hides them), so the grid needs only to
    hold at least half of the positions it spans.

    Parameters
    ----------
    positions : ndarray of shape (M,)
        Mark centres along one line, px.
    min_marks : int
    min_pitch_px : float

    Returns
    -------
    dict or None
        ``{"n_marks", "pitch_px", "first_px", "residual_px"}`` (pitch from a least-squares fit
        of the positions against their grid numbers), or None.
    """
    pos = np.sort(np.asarray(positions, dtype=float))
    if len(pos) < min_marks:
        return None
    gaps = np.diff(pos)
    candidates = np.unique(np.round(gaps[gaps >= min_pitch_px], 1))
    best: dict | None = None
    for pitch in candidates:
        tol = max(1.0, 0.03 * pitch)
        for anchor in pos:
            k = np.rint((pos - anchor) / pitch)
            inl = np.abs(pos - anchor - k * pitch) <= tol
            ks, first = np.unique(k[inl], return_index=True)
            if len(ks) < min_marks:
                continue
            sel = pos[inl][first]
            slope, icpt = np.polyfit(ks, sel, 1)
            k2 = np.rint((pos - icpt) / slope)
            inl2 = np.abs(pos - icpt - k2 * slope) <= tol
            ks2, first2 = np.unique(k2[inl2], return_index=True)
            if len(ks2) < min_marks or len(ks2) < 0.5 * (ks2[-1] - ks2[0] + 1):
                continue
            sel2 = pos[inl2][first2]
            slope, icpt = np.polyfit(ks2, sel2, 1)
            resid = float(np.sqrt(np.mean((sel2 - icpt - ks2 * slope) ** 2)))
            n = len(ks2)
            if (
                best is None
                or n > best["n_marks"]
                or (n == best["n_marks"] and slope > best["pitch_px"] * (1 + _PITCH_AGREEMENT))
            ):
                best = {
                    "n_marks": int(n),
                    "pitch_px": float(slope),
                    "first_px": float(icpt + ks2[0] * slope),
                    "residual_px": resid,
                }
    if best is not None and best["pitch_px"] < min_pitch_px:
        return None
    return best


def _mark_pixels(samples_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels that look like a mark in nearly every sample, and what kind of mark."""
    k = len(samples_rgb)
    rgb = samples_rgb.astype(np.int16)
    chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
    grey = rgb.mean(axis=-1)
    coloured = (chroma > _CHROMA).sum(axis=0) >= _PRESENT * k
    # Bright and unchanged: speckle is never the same from one sampled frame to the next.
    lo, hi = grey.min(axis=0), grey.max(axis=0)
    static = (hi - lo) <= 12
    peak = float(lo[static].max()) if static.any() else 0.0
    bright = static & (lo >= max(64.0, 0.5 * peak)) & (chroma.max(axis=0) <= _CHROMA)
    return coloured, bright


def _blobs(mask: np.ndarray) -> np.ndarray:
    """Centres (K, 2) of small compact blobs of ``mask`` (JPEG fragments merged)."""
    merged = ndimage.binary_closing(mask, structure=np.ones((3, 3), bool)) | mask
    labels, n = ndimage.label(merged)
    if n == 0:
        return np.zeros((0, 2))
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(merged, labels, index=index)
    boxes = ndimage.find_objects(labels)
    keep = []
    for i, (box, area) in enumerate(zip(boxes, areas, strict=True)):
        h, w = box[0].stop - box[0].start, box[1].stop - box[1].start
        if area <= _MAX_MARK_PX and max(h, w) <= _MAX_MARK_WIDTH_PX:
            keep.append(i + 1)
    if not keep:
        return np.zeros((0, 2))
    return np.array(ndimage.center_of_mass(merged, labels, index=keep)).reshape(-1, 2)


def _lines(centres: np.ndarray, min_marks: int) -> list[dict]:
    """Even grids of blob centres along rows and columns."""
    found = []
    for axis, across, along in (("row", 0, 1), ("col", 1, 0)):
        if len(centres) == 0:
            continue
        order = np.argsort(centres[:, across])
        c = centres[order]
        used = np.zeros(len(c), bool)
        for i in range(len(c)):
            if used[i]:
                continue
            on = np.abs(c[:, across] - c[i, across]) <= 2.0
            if on.sum() < min_marks:
                continue
            grid = even_grid(c[on, along], min_marks=min_marks)
            used |= on
            if grid is None:
                continue
            grid.update(axis=axis, line_px=int(round(float(np.median(c[on, across])))))
            found.append(grid)
    return found


def detect_scale_marks(samples_rgb: np.ndarray, *, min_marks: int = 5) -> dict | None:
    """Calibration marks (dots or ticks, any colour and pitch) common to sampled frames.

    Parameters
    ----------
    samples_rgb : ndarray of shape (K, H, W, 3), uint8
        A few frames spread over the pullback (grey frames repeated on 3 channels).
    min_marks : int
        Fewest marks a scale line needs.

    Returns
    -------
    dict or None
        ``{"pitch_px", "n_ticks", "lines": [{"axis", "line_px", "n_marks", "pitch_px",
        "first_px", "residual_px"}, ...], "kind": "coloured"|"bright", "axis", "line_px",
        "first_tick_px"}`` (the first line is the one with most marks); None when no even
        scale is found, or when the lines found disagree on the pitch (more than 3 %).
    """
    coloured, bright = _mark_pixels(samples_rgb)
    best: dict | None = None
    for kind, mask in (("coloured", coloured), ("bright", bright)):
        lines = _lines(_blobs(mask), min_marks)
        if not lines:
            continue
        # Group the lines by pitch; the scale is the group holding the most marks.
        lines.sort(key=lambda g: -g["n_marks"])
        groups: list[list[dict]] = []
        for g in lines:
            for group in groups:
                if abs(g["pitch_px"] / group[0]["pitch_px"] - 1) <= _PITCH_AGREEMENT:
                    group.append(g)
                    break
            else:
                groups.append([g])
        groups.sort(key=lambda gr: -sum(g["n_marks"] for g in gr))
        top = groups[0]
        total = sum(g["n_marks"] for g in top)
        # A second group almost as large is a contradiction, not a scale.
        if len(groups) > 1 and sum(g["n_marks"] for g in groups[1]) >= 0.8 * total:
            continue
        pitch = float(sum(g["pitch_px"] * g["n_marks"] for g in top) / total)
        candidate = {
            "pitch_px": pitch,
            "n_ticks": int(total),
            "lines": top,
            "kind": kind,
            "axis": top[0]["axis"],
            "line_px": top[0]["line_px"],
            "first_tick_px": top[0]["first_px"],
        }
        if best is None or total > best["n_ticks"]:
            best = candidate
    return best


def _first_run(flags: np.ndarray, length: int) -> np.ndarray:
    """Per row of ``flags`` (R, L) bool, the first index starting ``length`` True in a row (L if none)."""
    run = ndimage.uniform_filter1d(flags.astype(np.float32), length, axis=1, origin=-(length // 2))
    hit = run > 1 - 0.5 / length
    return np.where(hit.any(axis=1), np.argmax(hit, axis=1), flags.shape[1])


def detect_display_geometry(samples_rgb: np.ndarray, *, n_rays: int = 180) -> dict | None:
    """Field of view and catheter disc from the texture of sampled frames.

    Speckle is textured in (nearly) every frame; the display mask around the field of view
    and the catheter disc are flat fills, whatever their colour (it may change from frame to
    frame); calibration dots are coloured and not counted as texture. Along rays from the
    centre, the catheter edge is where texture starts and the field-of-view edge where it
    stops for good; robust circle fits drop the rays crossed by a label or a dot.

    Parameters
    ----------
    samples_rgb : ndarray of shape (K, H, W, 3), uint8
    n_rays : int

    Returns
    -------
    dict or None
        ``{"fov_center_px": (row, col), "fov_radius_px", "catheter_center_px": (row, col),
        "catheter_radius_px", "shape_px": (H, W)}``; None when no flat disc inside a textured
        field is found.
    """
    k, h, w, _ = samples_rgb.shape
    textured = np.zeros((h, w), np.float32)
    coloured = np.zeros((h, w), np.int16)
    for frame in samples_rgb:
        f = frame.astype(np.float32)
        grey = f.mean(axis=-1)
        mean = ndimage.uniform_filter(grey, 3)
        var = ndimage.uniform_filter(grey * grey, 3) - mean * mean
        textured += var > 9.0  # local std above 3 grey levels
        coloured += (f.max(axis=-1) - f.min(axis=-1)) > _CHROMA
    textured /= k
    textured[coloured >= _PRESENT * k] = 0.0
    centre = ((h - 1) / 2.0, (w - 1) / 2.0)
    step = 0.5
    r = np.arange(0.0, 0.5 * np.hypot(h, w), step)
    theta = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    result = None
    for _ in range(3):
        rows = centre[0] + np.outer(np.sin(theta), r)
        cols = centre[1] + np.outer(np.cos(theta), r)
        prof = ndimage.map_coordinates(textured, [rows, cols], order=1, mode="constant", cval=0.0)
        inner = _first_run(prof >= 0.5, 6)
        ok = inner < len(r)
        if ok.sum() < n_rays // 2:
            return None
        cat = robust_circle_fit(rows[ok, inner[ok]], cols[ok, inner[ok]])
        # The field of view ends where texture stops for 8 px (mask or background).
        outer = np.full(n_rays, len(r))
        for j in np.flatnonzero(ok):
            rest = _first_run(prof[j : j + 1, inner[j] :] < 0.3, int(8 / step))[0]
            outer[j] = inner[j] + rest
        good = ok & (outer < len(r))
        if good.sum() < n_rays // 2:
            return None
        fov = robust_circle_fit(rows[good, outer[good]], cols[good, outer[good]])
        result = (cat, fov)
        moved = np.hypot(cat[0] - centre[0], cat[1] - centre[1])
        centre = (cat[0], cat[1])
        if moved < 0.5:
            break
    assert result is not None
    (cr, cc, crad), (fr, fc, frad) = result
    # Sanity: a small disc near the middle of a field that fills a good part of the image.
    if not (2.0 < crad < 0.3 * frad and np.hypot(cr - fr, cc - fc) < 0.4 * frad and frad > 0.15 * min(h, w)):
        return None
    # The 3 x 3 texture window reaches 1 px past a textured pixel: edges sit 1 px outside.
    return {
        "fov_center_px": (fr, fc),
        "fov_radius_px": frad - 1.0,
        "catheter_center_px": (cr, cc),
        "catheter_radius_px": crad + 1.0,
        "shape_px": (h, w),
    }
