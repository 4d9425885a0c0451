"""Shape measures of closed borders r(theta): elongation, major-axis ends, normals."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .polar import _runs


def _aspect_ratio(radii_mm: np.ndarray) -> np.ndarray:
    """Elongation of closed borders r(theta), (F, A) -> (F,): the ratio of the principal axes of
    the enclosed area's second moments (1 for a circle, 4 for a 4:1 ellipse)."""
    n_a = radii_mm.shape[1]
    theta = 2 * np.pi * np.arange(n_a) / n_a
    x, y = radii_mm * np.cos(theta), radii_mm * np.sin(theta)
    xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
    cross = x * yn - xn * y
    area = cross.sum(axis=1) / 2
    cx = ((x + xn) * cross).sum(axis=1) / (6 * area)
    cy = ((y + yn) * cross).sum(axis=1) / (6 * area)
    sxx = ((x * x + x * xn + xn * xn) * cross).sum(axis=1) / 12 - area * cx * cx
    syy = ((y * y + y * yn + yn * yn) * cross).sum(axis=1) / 12 - area * cy * cy
    sxy = ((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * cross).sum(axis=1) / 24 - area * cx * cy
    half_trace = 0.5 * (sxx + syy)
    root = np.sqrt(np.maximum(0.25 * (sxx - syy) ** 2 + sxy**2, 0.0))
    return np.sqrt((half_trace + root) / np.maximum(half_trace - root, 1e-12))


def _axis_ends(radii_mm: np.ndarray, half_angle_deg: float) -> np.ndarray:
    """Directions (F, A) within ``half_angle_deg`` of either end of the border's major axis,
    as 0/1 weights.

    The narrow ends of a flattened lumen are where its trace stops short; once cut, an end is
    blunt and no longer looks like a sharp convex tip, so it is found from the shape's axis.
    """
    n_f, n_a = radii_mm.shape
    theta = 2 * np.pi * np.arange(n_a) / n_a
    x, y = radii_mm * np.cos(theta), radii_mm * np.sin(theta)
    xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    sxx, syy, sxy = (xc * xc).mean(axis=1), (yc * yc).mean(axis=1), (xc * yc).mean(axis=1)
    axis = 0.5 * np.arctan2(2 * sxy, sxx - syy)  # (F,), direction of the major axis
    off = np.abs(np.angle(np.exp(2j * (theta[None, :] - axis[:, None])))) / 2  # 0..pi/2
    return (off <= np.deg2rad(half_angle_deg)).astype(float)


def _border_normals(radii_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Outward normals of closed borders r(theta) and where ray tracing is least precise.

    Parameters
    ----------
    radii_mm : ndarray of shape (F, A)

    Returns
    -------
    nx, ny : ndarray of shape (F, A)
        Unit outward normal of the counter-clockwise border, from its smoothed shape: the
        normals of a jagged trace would cross and fold a moved border.
    tilt : ndarray of shape (F, A)
        Sine of the angle between the normal and the ray: 1 where the border runs along it.
    movable : ndarray of shape (F, A)
        0-1: stretches running along the rays, or sharp convex ends (peaks of r(theta), which
        averaging over angles cuts off).
    """
    n_a = radii_mm.shape[1]
    theta = 2 * np.pi * np.arange(n_a) / n_a
    x, y = radii_mm * np.cos(theta), radii_mm * np.sin(theta)
    xs = ndimage.uniform_filter1d(x, size=7, axis=1, mode="wrap")
    ys = ndimage.uniform_filter1d(y, size=7, axis=1, mode="wrap")
    tx = np.roll(xs, -2, axis=1) - np.roll(xs, 2, axis=1)
    ty = np.roll(ys, -2, axis=1) - np.roll(ys, 2, axis=1)
    norm = np.maximum(np.hypot(tx, ty), 1e-6)
    nx, ny = ty / norm, -tx / norm
    tilt = np.sqrt(np.clip(1.0 - (nx * np.cos(theta) + ny * np.sin(theta)) ** 2, 0.0, 1.0))
    rs = ndimage.uniform_filter1d(radii_mm, size=3, axis=1, mode="wrap")
    peak = rs - 0.5 * (np.roll(rs, 3, axis=1) + np.roll(rs, -3, axis=1))
    sharp = np.clip(peak / 0.25, 0.0, 1.0)
    return nx, ny, tilt, np.maximum(np.clip(2.0 * tilt - 1.0, 0.0, 1.0), sharp)


def _leak_flanks(radii_mm: np.ndarray, leak: np.ndarray, min_tilt: float) -> np.ndarray:
    """Extend each run of ``leak`` directions over the border beside it that climbs out to it.

    A lumen that leaks out of the field (through a side branch's ostium, or a gap into dark
    perivascular tissue) climbs to it along the branch's walls: stretches that run out along
    the rays, as the main vessel's wall (a closed curve about the catheter inside it) does
    nowhere for long. From each end of a leak, the directions whose border keeps descending
    away from it and is tilted from the circle about the catheter by at least ``min_tilt``
    (the sine of that angle, :func:`_border_normals`) belong to it, up to the first that is not.

    Parameters
    ----------
    radii_mm : ndarray of shape (F, A)
    leak : ndarray of shape (F, A), bool
    min_tilt : float
        0-1.

    Returns
    -------
    ndarray of shape (F, A), bool: ``leak`` and its flanks
    """
    out = leak.copy()
    if not leak.any():
        return out
    steep = _border_normals(radii_mm)[2] >= min_tilt
    n_a = radii_mm.shape[1]
    for f in np.flatnonzero(leak.any(axis=1) & ~leak.all(axis=1)):
        for start, length in _runs(leak[f]):
            for step, k in ((-1, start - 1), (1, start + length)):
                k %= n_a
                # a radius that climbs again away from the leak is the main vessel's (or another bulge)
                while not out[f, k] and steep[f, k] and radii_mm[f, k] <= radii_mm[f, (k - step) % n_a]:
                    out[f, k] = True
                    k = (k + step) % n_a
    return out
