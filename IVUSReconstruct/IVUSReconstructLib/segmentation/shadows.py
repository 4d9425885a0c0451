"""Shadows (guidewire, calcium), side-branch ostia and the fill of the borders they hide."""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from .polar import _runs
from .shapes import _aspect_ratio

if TYPE_CHECKING:
    from .segmenter import _Segmenter


def _fourier_fill(radii: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Replace hidden angles of a closed border r(theta) by a low-order Fourier fit of the rest.

    Parameters
    ----------
    radii : ndarray of shape (A,)
    hidden : ndarray of shape (A,), bool

    Returns
    -------
    ndarray of shape (A,)
    """
    n = len(radii)
    visible = ~hidden
    if hidden.sum() == 0 or visible.sum() < 6:
        return radii
    fraction = visible.mean()
    order = 3 if fraction >= 0.6 else 2 if fraction >= 0.4 else 1
    theta = 2 * np.pi * np.arange(n) / n
    cols = [np.ones(n)]
    for k in range(1, order + 1):
        cols += [np.cos(k * theta), np.sin(k * theta)]
    design = np.column_stack(cols)
    coef, *_ = np.linalg.lstsq(design[visible], radii[visible], rcond=None)
    out = radii.copy()
    out[hidden] = design[hidden] @ coef
    return out


def _fill_hidden(
    radii: np.ndarray,
    hidden: np.ndarray,
    *,
    long_run: int,
    ellipse_aspect: float = np.inf,
    fit_margin: int = 0,
) -> np.ndarray:
    """Fill hidden angles: narrow sectors (a guidewire) by straight interpolation between their
    edges, which follows any border shape; wide ones (calcium) by the Fourier fit of the rest.

    A border more elongated than ``ellipse_aspect`` (a compressed vein) is filled from the
    ellipse fitted to its visible part instead: a guidewire lying at the narrow end of a
    slit hides its tip, which a chord between the sector's edges would cut off. The fit leaves
    out ``fit_margin`` directions on either side of each hidden sector.
    """
    out = radii.astype(float).copy()
    if not hidden.any():
        return out
    n = len(radii)
    # the directions next to a shadow are traced with the shadow in their windows (and at a
    # slit's end, with the wall on both sides): the ellipse is fitted without them
    m = min(fit_margin, n)
    near = sliding_window_view(np.concatenate([hidden[n - m :], hidden, hidden[:m]]), 2 * m + 1).any(axis=1)
    if hidden.any() and (~near).sum() >= 12 and np.isfinite(ellipse_aspect):
        # the shape is judged on the ellipse of the visible part: a hidden end, cut by the trace,
        # makes the traced border itself look rounder than it is
        fitted = _ellipse_radii(out, ~near)
        if fitted is not None and _aspect_ratio(fitted[None])[0] >= ellipse_aspect:
            out[hidden] = fitted[hidden]
            return out
    wide = np.zeros(n, bool)
    for start, length in _runs(hidden):
        idx = (start + np.arange(length)) % n
        if length >= long_run or length >= n - 2:
            wide[idx] = True
            continue
        a, b = out[(start - 1) % n], out[(start + length) % n]
        t = np.arange(1, length + 1) / (length + 1)
        out[idx] = (1 - t) * a + t * b
    return _fourier_fill(out, wide) if wide.any() else out


def _ellipse_radii(radii: np.ndarray, use: np.ndarray) -> np.ndarray | None:
    """Radius of each direction (A,) on the ellipse fitted to the border points ``use``.

    Direct least-squares fit (Fitzgibbon, Pilu & Fisher 1999, in the numerically stable form
    of Halir & Flusser 1998); None when the fit is not an ellipse around the catheter.
    """
    theta, cs, sn = _turn(len(radii))
    # (called some 16 times per frame: numpy's per-call costs, not the arithmetic, set its time)
    seen = radii[use]
    scale = float(seen.mean())
    x = seen * np.cos(theta[use]) / scale
    y = seen * np.sin(theta[use]) / scale
    d1 = np.empty((len(x), 3))
    d1[:, 0], d1[:, 1], d1[:, 2] = x * x, x * y, y * y
    d2 = np.ones((len(x), 3))
    d2[:, 0], d2[:, 1] = x, y
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError:
        return None
    m = s1 + s2 @ t
    m = np.array([m[2] / 2, -m[1], m[0] / 2])
    _, vectors = np.linalg.eig(m)
    vectors = np.real(vectors)
    ok = np.flatnonzero(4 * vectors[0] * vectors[2] - vectors[1] ** 2 > 0)
    if ok.size == 0:
        return None
    a, b, c = vectors[:, ok[0]]
    d, e, f = t @ vectors[:, ok[0]]
    # the ray r (cos, sin) meets the conic where qa r^2 + qb r + f = 0
    qa = a * cs * cs + b * cs * sn + c * sn * sn
    qb = d * cs + e * sn
    disc = qb * qb - 4 * qa * f
    if (disc < 0).any() or (np.abs(qa) < 1e-12).any():
        return None
    root = np.sqrt(disc)
    one, other = (-qb + root) / (2 * qa), (-qb - root) / (2 * qa)
    outer = np.maximum(one, other)
    if not ((outer > 0).all() and (np.minimum(one, other) < 0).all()):
        return None  # the catheter must lie inside the ellipse: one root on either side
    return outer * scale


@functools.lru_cache(maxsize=8)
def _turn(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles (A,) of ``n`` directions and their cosines and sines, read-only (the ellipse fits
    of every frame share them)."""
    theta = 2 * np.pi * np.arange(n) / n
    out = (theta, np.cos(theta), np.sin(theta))
    for a in out:
        a.flags.writeable = False
    return out


def _robust_ellipse(
    radii: np.ndarray, use: np.ndarray, trim_fraction: float, side: int, *, unless_within_mm: float = 0.0
) -> np.ndarray | None:
    """:func:`_ellipse_radii` refitted without the ``trim_fraction`` of the directions ``use``
    that lie farthest outside it (``side`` +1), inside it (-1) or either (0): an algebraic fit
    bends towards a bulge or a dent. When the first fit already holds every direction within
    ``unless_within_mm`` on that side, there is nothing to trim and it is returned as it is."""
    fit = _ellipse_radii(radii, use)
    for k in range(3):
        if fit is None:
            return None
        residual = side * (radii - fit) if side else np.abs(radii - fit)
        if k == 0 and residual[use].max() < unless_within_mm:
            return fit
        keep = use & (residual <= np.percentile(residual[use], 100.0 * (1.0 - trim_fraction)))
        fit = _ellipse_radii(radii, keep)
    return fit


def _runs_holding(mask: np.ndarray, core: np.ndarray, max_width: int | None = None) -> np.ndarray:
    """The circular runs of ``mask`` (A,) that contain a ``core`` direction and are at most
    ``max_width`` long, as a mask (A,)."""
    n = len(mask)
    out = np.zeros(n, bool)
    for start, length in _runs(mask):
        idx = (start + np.arange(length)) % n
        if (max_width is None or length <= max_width) and core[idx].any():
            out[idx] = True
    return out


def _penumbra(
    radii: np.ndarray,
    hidden: np.ndarray,
    *,
    min_dent_mm: float,
    min_dent_fraction: float,
    grow_mm: float,
    memo: dict | None = None,
) -> np.ndarray:
    """Directions (A,) beside a hidden sector whose border dives inside the ellipse of the rest.

    A trace that enters a shadow has nothing to follow there and, through the path's
    smoothness, drags its visible neighbours with it; beside a side branch it has nothing to
    climb back to either. A dent of ``min_dent_mm`` and ``min_dent_fraction`` of the radius
    that runs into a shadow is that drag, not plaque: it is hidden with the shadow, out to
    where the border comes back within ``grow_mm`` of the ellipse.

    Parameters
    ----------
    radii : ndarray of shape (A,), mm
    hidden : ndarray of shape (A,), bool

    memo : dict or None
        Results by border and mask: a frame whose only shadow is a guidewire asks the same
        question of its lumen twice (:func:`find_shadows`, then the fill), and the robust
        ellipse fits are the dearest part of the shadow step.

    Returns
    -------
    ndarray of shape (A,), bool: ``hidden`` and its penumbra
    """
    if memo is not None:
        key = (radii.dtype.str, radii.tobytes(), hidden.tobytes(), min_dent_mm, min_dent_fraction, grow_mm)
        if key not in memo:
            memo[key] = _penumbra(
                radii, hidden, min_dent_mm=min_dent_mm, min_dent_fraction=min_dent_fraction, grow_mm=grow_mm
            ).copy()
        return memo[key].copy()
    n = len(radii)
    # beyond a third of the turn too little border is left to fit an ellipse to
    if not hidden.any() or hidden.sum() > n // 3:
        return hidden
    # a bend towards a dent keeps at least a quarter of it on the first fit
    fit = _robust_ellipse(radii, ~hidden, 0.25, 0, unless_within_mm=0.25 * min_dent_mm)
    if fit is None:
        return hidden
    dent = fit - radii
    deep = dent > np.maximum(min_dent_mm, min_dent_fraction * fit)
    dragged = (dent > grow_mm) | hidden
    return hidden | (_runs_holding(dragged, hidden) & _runs_holding(dragged, deep & ~hidden))


def _branch_sectors(
    lumen_mm: np.ndarray,
    vessel_mm: np.ndarray,
    lumen_seen: np.ndarray,
    vessel_seen: np.ndarray,
    *,
    min_excess_mm: float,
    min_excess_fraction: float,
    wall_fraction: float,
    grow_mm: float,
    max_width: int,
    trim_fraction: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Directions where a side branch opens the lumen, and where it takes the EEM with it.

    The borders of one frame are compared with ellipses fitted to the rest of them. Plaque makes
    the lumen eccentric but leaves the EEM where it is, and positive remodelling widens the
    whole circumference: only an ostium moves (or removes) lumen and EEM over one sector by
    the same amount. Real lumens and EEMs away from branches stay within ~0.13 mm of their
    ellipse (NARCO contours, ``../shared/data``), so a sector's core must leave it by
    ``min_excess_mm`` and ``min_excess_fraction`` of the radius, the EEM by at least
    ``wall_fraction`` of the lumen's excess. The EEM is smooth anatomy: where it alone leaves its
    ellipse so (the branch's wall traced behind a closed lumen), it is closed alone. A sector
    spans the directions around its core whose border still lies ``grow_mm`` outside, at most
    ``max_width`` directions.

    Parameters
    ----------
    lumen_mm, vessel_mm : ndarray of shape (A,)
    lumen_seen, vessel_seen : ndarray of shape (A,), bool
        Directions not hidden by a shadow: the ellipses are fitted to these, and sectors are
        sought among them.

    Returns
    -------
    (lumen_sector, vessel_sector) : ndarrays of shape (A,), bool
    """
    n = len(lumen_mm)
    none = np.zeros(n, bool)
    if min(lumen_seen.sum(), vessel_seen.sum()) < n // 2:
        return none, none
    # a bend towards a bulge keeps at least a quarter of it on the first fit
    fits = [
        _robust_ellipse(x, seen, trim_fraction, +1, unless_within_mm=0.25 * min_excess_mm)
        for x, seen in ((lumen_mm, lumen_seen), (vessel_mm, vessel_seen))
    ]
    if fits[0] is None or fits[1] is None:
        return none, none
    # hidden directions are filled anyway: they neither start nor extend a sector
    lumen_excess = np.where(lumen_seen, lumen_mm - fits[0], -np.inf)
    vessel_excess = np.where(vessel_seen, vessel_mm - fits[1], -np.inf)
    vessel_core = vessel_excess > np.maximum(min_excess_mm, min_excess_fraction * fits[1])
    lumen_core = (lumen_excess > np.maximum(min_excess_mm, min_excess_fraction * fits[0])) & (
        vessel_excess > wall_fraction * lumen_excess
    )
    lumen_sector = _runs_holding(lumen_excess > grow_mm, lumen_core, max_width)
    vessel_sector = _runs_holding(vessel_excess > grow_mm, vessel_core, max_width)
    return lumen_sector, vessel_sector | lumen_sector


def narrow_shadows(
    seg: _Segmenter, image: np.ndarray, start: int, margin: int, log_image: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Narrow shadows (a guidewire's) and their reflectors, found before any border is traced.

    A direction is shadowed where its whole ray beyond 0.5 mm past the ring-down (sample
    ``start``) echoes less than ``shadow_ratio`` times the frame's median direction; only
    sectors narrower than 30 degrees count (a wide shadow is calcium, whose leading edge is the
    lumen border). The reflector's echo is wider than the shadow it casts (the beam sees the
    wire before the wire blocks it): it spreads on either side while the reflector's depth
    stays brighter than the frame's median direction there by half the reflector's own excess
    (log grey; at most the shadow's width).

    Parameters
    ----------
    image : ndarray of shape (F, A, R)
        Linear grey levels.
    log_image : ndarray of shape (F, A, R)
        ``log1p(image)``.
    margin : int
        Directions added on either side of each shadow.

    Returns
    -------
    (unseen, echo) : ndarrays of shape (F, A) and (F, A, R), bool
        The directions of the shadow and of its reflector's echo (plus ``margin``), and the
        echo itself: the samples out to 0.5 mm past its peak, in those directions, that are that
        much brighter.
    """
    n_f, n_a, n_r = image.shape
    far = image[..., min(start + seg.samples(0.5), n_r - 1) :].mean(axis=-1)
    dark = far < seg.o.shadow_ratio * np.maximum(np.median(far, axis=1, keepdims=True), 1e-3)
    long_run = max(3, n_a // 12)
    unseen = np.zeros((n_f, n_a), bool)
    echo = np.zeros((n_f, n_a, n_r), bool)
    if not dark.any():
        return unseen, echo
    half = seg.samples(0.05, 1)
    for f in range(n_f):
        runs = [(first, length) for first, length in _runs(dark[f]) if 2 <= length < long_run]
        if not runs:
            continue
        # brightness over the frame's typical direction at the same depth: the ring-down, the
        # same in every direction, is not the reflector
        level = ndimage.uniform_filter1d(log_image[f], 3, axis=-1, mode="nearest")
        level = level - np.median(level, axis=0, keepdims=True)
        for first, length in runs:
            idx = (first + np.arange(length)) % n_a
            column = level[idx, start:].mean(axis=0)
            depth = start + int(np.argmax(column))
            excess = 0.5 * column.max()
            lit = level[:, max(depth - half, 0) : depth + half + 1].max(axis=-1) > excess
            # at most the shadow's own width on either side (the beam is about as wide as the
            # wire's shadow; a bright vein wall beside a wire is not its echo)
            lo, hi = 0, 0
            while lo < length and lit[(first - lo - 1) % n_a]:
                lo += 1
            while hi < length and lit[(first + length + hi) % n_a]:
                hi += 1
            wide = (first - lo - margin + np.arange(length + lo + hi + 2 * margin)) % n_a
            unseen[f, wide] = True
            stop = min(depth + seg.samples(0.5), n_r)
            echo[f, wide, start:stop] = level[wide, start:stop] > excess
    return unseen, echo


def find_shadows(
    seg: _Segmenter, image: np.ndarray, lumen_mm: np.ndarray, vessel_mm: np.ndarray, memo: dict | None = None
) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]], np.ndarray]:
    """Shadowed sectors, which of them are calcium, calcium polygons (frame-plane mm) and the
    reflector radius of each direction (F, A), mm. ``memo``: see :func:`_penumbra`."""
    n_f, n_a, n_r = image.shape
    r_mm = seg.radii[None, None, :]
    depth = seg.samples(1.0)
    behind_lo = vessel_mm[..., None] + 0.15
    behind_hi = vessel_mm[..., None] + 0.15 + depth * seg.dr
    band = (r_mm >= behind_lo) & (r_mm <= behind_hi)
    far = np.where(band, image, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        # an EEM at the field's edge leaves no far field: NaN, filled below
        warnings.simplefilter("ignore", RuntimeWarning)
        far_mean = np.nanmean(far, axis=-1)
    # directions with no far field take their frame's typical value (per frame, so that a
    # frame's borders do not depend on which frames share its batch)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        typical = np.nan_to_num(np.nanmedian(far_mean, axis=1, keepdims=True), nan=0.0)
    far_mean = np.where(np.isfinite(far_mean), far_mean, typical)
    reference = np.median(far_mean, axis=1, keepdims=True)
    shadow = far_mean < seg.o.shadow_ratio * np.maximum(reference, 1e-3)
    # a sector needs at least two directions; widen by one for the penumbra
    shadow = ndimage.binary_opening(shadow, structure=np.ones((1, 2), bool)) | (
        shadow & np.roll(shadow, 1, axis=1)
    )
    shadow = shadow | np.roll(shadow, 1, axis=1) | np.roll(shadow, -1, axis=1)
    calcium = np.zeros_like(shadow)
    polygons: list[list[np.ndarray]] = []
    reflector = np.full((n_f, n_a), np.inf)
    inner_mm = seg.radii[seg.ring] if seg.ring is not None else 0.0
    depth = seg.o.calcium_depth_fraction
    theta = 2 * np.pi * np.arange(n_a) / n_a
    for f in range(n_f):
        polys: list[np.ndarray] = []
        if shadow[f].any():
            peak = np.argmax(np.where(r_mm[0] < vessel_mm[f][:, None] + 0.1, image[f], -np.inf), axis=-1)
            peak_mm = seg.radii[peak]
            reflector[f] = np.where(shadow[f], peak_mm, np.inf)
            # the trace dragged into a guidewire's shadow dents the lumen beside it too: the
            # lumen is filled over that penumbra as well, or the dent pulls the fit down to the
            # wire, which then lies "at the border" and is taken for calcium (and cuts the lumen)
            # (each shadow on its own: a wire beside a wide calcium arc would hide too much of
            # the turn together for the ellipse the dent is measured from)
            hidden = shadow[f].copy()
            for start, length in _runs(shadow[f]):
                one = np.zeros(n_a, bool)
                one[(start + np.arange(length)) % n_a] = True
                hidden |= _penumbra(
                    lumen_mm[f],
                    one,
                    min_dent_mm=seg.o.branch_excess_mm,
                    min_dent_fraction=seg.o.branch_excess_fraction,
                    grow_mm=seg.o.branch_grow_mm,
                    memo=memo,
                )
            lumen_fit = _fourier_fill(lumen_mm[f], hidden)
            # a guidewire lies beside the catheter, calcium at the lumen's border (the lumen
            # estimate over a wide shadow may overshoot it): a reflector nearer the border
            # than the catheter is calcium
            is_calcium = shadow[f] & (peak_mm > inner_mm + depth * (lumen_fit - inner_mm))
            calcium[f] = is_calcium
            for start, length in _runs(is_calcium):
                idx = (start + np.arange(length)) % n_a
                if length < 2:
                    continue
                inner = peak_mm[idx] - 0.05
                outer = peak_mm[idx] + 0.25
                t = theta[idx]
                ring_in = np.column_stack([inner * np.cos(t), inner * np.sin(t)])
                ring_out = np.column_stack([outer * np.cos(t), outer * np.sin(t)])[::-1]
                polys.append(np.vstack([ring_in, ring_out]))
        polygons.append(polys)
    return shadow, calcium, polygons, reflector
