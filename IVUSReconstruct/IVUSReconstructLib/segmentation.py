"""Automatic lumen and vessel (EEM) segmentation of IVUS frames.

Every border is a closed path r(theta) in the polar image about the catheter centre, found by
dynamic programming over the angles with a smoothness penalty and refined to sub-sample
precision. The cues are those a reader uses on real pullbacks:

1. **Blood moves, tissue stays.** Blood speckle decorrelates completely between consecutive
   raw frames (at 20-60 MHz and 15-30 frames/s), while wall speckle is stable. The local
   normalised cross-correlation of each analysed frame with its raw neighbours is ~0 in the
   lumen and ~1 in tissue; the lumen border is the first step from one to the other outside
   the catheter. The stationary catheter and ring-down look like tissue; their extent is the
   near field that stays correlated in every direction of every frame and is excluded.
   Without neighbours (a single frame) the step of the local contrast is used instead.
2. **The EEM is where dark media meets bright adventitia**: the strongest dark-to-bright
   step of the log intensity outside the lumen (beyond a minimum wall), nearest first.
3. **Shadows**: a sector whose far field is much darker than the other directions of the same
   frame hides what lies behind its reflector. A reflector beyond the lumen border is calcium
   (its arc is measured at the lumen centroid), one inside the lumen is the guidewire. Borders
   in hidden sectors are filled from a low-order Fourier fit of the visible part, and the frame
   is marked less confident. A border that dives beside a shadow is hidden with it.
4. **Sequence**: on runs of consecutive frames each direction's radius is median-filtered over
   neighbouring frames. Sparse (gated) frames are left alone: a beat apart, a real narrowing
   or respiratory motion changes the border more than any consistency test could allow.
5. **What a lumen may enclose**: a border is charged for the bright, stable tissue it would
   enclose, so the step from dark media to bright adventitia (which looks like blood meeting
   wall) does not win over the thin plaque in front of it.
6. **Side branches**: where the lumen opens into a branch, lumen and EEM leave the ellipses
   of the rest of the vessel outwards together over one sector (plaque moves the lumen alone).
   The reader closes the main vessel across the ostium; so does the fill of that sector.

Nothing here depends on absolute grey levels: features are correlations, contrasts
normalised per frame, and comparisons between directions of the same frame.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import IVUSCancelled, IVUSInputError
from .geometry import polar_polygon, ray_radii
from .types import ContourSet, FrameContours, Pullback

__all__ = [
    "PolarSampler",
    "SegmentationOptions",
    "dp_closed_path",
    "segment_pullback",
]

ProgressFn = Callable[[float, str], None]


def _block_mean(frames: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` pixel blocks, (F, H, W) -> (F, h, w) float32.

    Sums strided views in an integer accumulator for 8-bit frames: several times faster than a
    floating-point reshape-mean on a 512 x 512 pullback.
    """
    h, w = shape
    if factor == 1:
        return np.asarray(frames[:, :h, :w], dtype=np.float32)
    wide = np.uint16 if frames.dtype == np.uint8 and factor <= 4 else np.float32
    acc = np.zeros((frames.shape[0], h, w), dtype=wide)
    for i in range(factor):
        for j in range(factor):
            acc += frames[:, i : h * factor : factor, j : w * factor : factor]
    return acc.astype(np.float32) * np.float32(1.0 / factor**2)


# --------------------------------------------------------------------------- polar map
@dataclass(frozen=True)
class PolarSampler:
    """Precomputed bilinear map from frames to a polar grid about the catheter centre.

    Attributes
    ----------
    n_angles : int
        Angles of the output polar image (counter-clockwise from +x, x along columns).
    radii_mm : ndarray of shape (R,)
        Radius of each polar sample.
    factor : int
        Block-mean downsampling applied to the frames before sampling.
    """

    n_angles: int
    radii_mm: np.ndarray
    factor: int
    supersample: int
    index: np.ndarray  # (4, A*s*R) flat indices into the downsampled frame
    weight: np.ndarray  # (4, A*s*R)
    ds_shape: tuple[int, int]

    @property
    def dr_mm(self) -> float:
        return float(self.radii_mm[1] - self.radii_mm[0])

    @classmethod
    def build(
        cls,
        shape_px: tuple[int, int],
        pixel_spacing_mm: tuple[float, float],
        catheter_center_px: tuple[float, float],
        *,
        n_angles: int = 128,
        n_radii: int = 128,
        supersample: int = 2,
    ) -> PolarSampler:
        """Build the map for frames of ``shape_px``.

        The radial range runs to the nearest image border; its step is chosen so that
        ``n_radii`` samples cover it (never finer than the downsampled pixel).
        """
        h, w = shape_px
        sr, sc = pixel_spacing_mm
        cr, cc = catheter_center_px
        factor = 2 if min(h, w) >= 384 else 1
        reach_mm = min(cr * sr, (h - 1 - cr) * sr, cc * sc, (w - 1 - cc) * sc) - factor * max(sr, sc)
        if reach_mm <= 0:
            raise IVUSInputError(
                "pullback: catheter_center_px lies on the image border; pass the catheter centre inside the frame"
            )
        dr = max(reach_mm / n_radii, factor * min(sr, sc))
        radii = (np.arange(int(reach_mm / dr)) + 0.5) * dr
        theta = (
            2 * np.pi * (np.arange(n_angles * supersample) + 0.5 - supersample / 2) / (n_angles * supersample)
        )
        rr, tt = np.meshgrid(radii, theta)
        row = (cr + rr * np.sin(tt) / sr - (factor - 1) / 2) / factor
        col = (cc + rr * np.cos(tt) / sc - (factor - 1) / 2) / factor
        hd, wd = h // factor, w // factor
        r0 = np.clip(np.floor(row).astype(int), 0, hd - 2)
        c0 = np.clip(np.floor(col).astype(int), 0, wd - 2)
        fr = np.clip(row - r0, 0, 1).ravel()
        fc = np.clip(col - c0, 0, 1).ravel()
        r0, c0 = r0.ravel(), c0.ravel()
        index = np.stack([r0 * wd + c0, r0 * wd + c0 + 1, (r0 + 1) * wd + c0, (r0 + 1) * wd + c0 + 1])
        weight = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc]).astype(np.float32)
        return cls(n_angles, radii, factor, supersample, index, weight, (hd, wd))

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Polar images of frames (F, H, W) -> (F, A, R), float32."""
        f = self.factor
        frames = np.asarray(frames)
        n = frames.shape[0]
        hd, wd = self.ds_shape
        ds = _block_mean(frames, f, (hd, wd))
        flat = ds.reshape(n, -1)
        out = np.zeros((n, self.index.shape[1]), dtype=np.float32)
        for k in range(4):
            out += flat[:, self.index[k]] * self.weight[k]
        r = len(self.radii_mm)
        out = out.reshape(n, self.n_angles, self.supersample, r).mean(axis=2)
        return out


# --------------------------------------------------------------------------- dynamic programming
def dp_closed_path(
    cost: np.ndarray,
    *,
    max_step: int = 3,
    smooth_weight: float = 0.05,
    pad_fraction: float = 0.25,
    step_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Minimal-cost closed path r(theta) through polar cost images, for a batch of frames.

    The path takes one radius per angle, moves at most ``max_step`` radial samples between
    neighbouring angles and pays ``smooth_weight * step**2`` per move. Closure
    (r(0) = r(2 pi)) is obtained by running over the angles with half a turn of wrap-around
    on each side and keeping the middle turn, where the path no longer depends on where
    the run started.

    Parameters
    ----------
    cost : ndarray of shape (F, A, R)
        Cost of each radius at each angle; ``inf`` forbids a sample.
    max_step : int
    smooth_weight : float
    pad_fraction : float
        Wrap-around on each side, as a fraction of a turn.
    step_scale : ndarray of shape (R,) or None
        Divides the step before squaring, per arrival radius: a border far from the catheter
        moves more samples per angle for the same shape, so its steps cost less.

    Returns
    -------
    ndarray of shape (F, A), int
        Radial index of the path at each angle.
    """
    n_f, n_a, n_r = cost.shape
    pad = int(round(pad_fraction * n_a))
    big = np.float32(1e9)
    c = np.where(np.isfinite(cost), cost, big).astype(np.float32)
    steps = np.arange(-max_step, max_step + 1)
    scale = np.ones(n_r, np.float32) if step_scale is None else np.asarray(step_scale, np.float32)
    # penalty[j, r]: arriving at radius r by a step of steps[j]
    penalty = (smooth_weight * (steps.astype(np.float32)[:, None] / scale[None, :]) ** 2).astype(np.float32)
    # a long run over the angles, with wrap-around before and after the turn that is kept
    order = np.arange(-pad, n_a + pad) % n_a
    long = _dp_run(c[:, order, :], steps, penalty, None)
    out = np.empty((n_f, n_a), dtype=np.int64)
    # the run closes where it passes the same radius at the same angle one turn apart: the turn
    # between is a closed path. Of such turns, the one nearest the middle of the run
    ks = np.arange(max(len(order) - n_a, 0))
    same = long[:, ks] == long[:, ks + n_a]
    preference = np.abs(ks - pad)
    for f in range(n_f):
        hits = ks[same[f]]
        if hits.size:
            k = int(hits[np.argmin(preference[same[f]])])
            out[f, (k - pad + np.arange(n_a)) % n_a] = long[f, k : k + n_a]
            continue
        # no turn closes by itself: run one turn plus one angle from the middle turn's first
        # radius and arrive back at it
        r0 = int(long[f, pad])
        ring = c[f : f + 1, np.r_[np.arange(n_a), 0], :].copy()
        ring[:, 0, :] = big
        ring[:, 0, r0] = c[f, 0, r0]
        ring[:, -1, :] = big
        ring[:, -1, r0] = 0.0
        closed = _dp_run(ring, steps, penalty, r0)
        out[f] = closed[0, :n_a]
    return out


def _dp_run(c: np.ndarray, steps: np.ndarray, penalty: np.ndarray, end: int | None) -> np.ndarray:
    """Minimal-cost path through the columns of ``c`` (F, L, R), one radius per column, moving
    by ``steps`` with ``penalty`` (S, R) per move; it ends at radius ``end`` or at the cheapest
    one. Returns (F, L) int radii."""
    n_f, n_l, n_r = c.shape
    max_step = int(steps.max())
    big = np.float32(1e9)
    acc = c[:, 0, :].copy()
    back = np.zeros((n_l, n_f, n_r), dtype=np.int8)
    padded = np.full((n_f, n_r + 2 * max_step), big, dtype=np.float32)
    cand = np.empty((len(steps), n_f, n_r), dtype=np.float32)
    for i in range(1, n_l):
        padded[:, max_step : max_step + n_r] = acc
        for j, s in enumerate(steps):
            # cand[j][r] = acc[r + s] + penalty: arriving at r from r + s
            cand[j] = padded[:, max_step + s : max_step + s + n_r] + penalty[j][None, :]
        arg = np.argmin(cand, axis=0)
        back[i] = arg
        acc = np.take_along_axis(cand, arg[None], axis=0)[0] + c[:, i, :]
    path = np.zeros((n_l, n_f), dtype=np.int64)
    path[-1] = np.argmin(acc, axis=1) if end is None else end
    rows = np.arange(n_f)
    for i in range(n_l - 1, 0, -1):
        path[i - 1] = np.clip(path[i] + steps[back[i][rows, path[i]]], 0, n_r - 1)
    return path.T.copy()


def _box(x: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Box mean over (angle, radius), circular in angle; x of shape (F, A, R)."""
    y = ndimage.uniform_filter1d(x, size=max(1, size_a), axis=1, mode="wrap")
    return ndimage.uniform_filter1d(y, size=max(1, size_r), axis=2, mode="nearest")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Circular runs of True as (start, length)."""
    n = len(mask)
    if mask.all():
        return [(0, n)]
    if not mask.any():
        return []
    shift = int(np.argmin(mask))  # start scanning at a False so runs do not wrap
    m = np.roll(mask, -shift)
    d = np.diff(np.concatenate([[0], m.astype(int), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [((s + shift) % n, e - s) for s, e in zip(starts, ends, strict=False)]


def _local_ncc(a: np.ndarray, b: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Local normalised cross-correlation of two polar stacks (F, A, R).

    Where both windows are flat (the inside of the catheter) the correlation is 1: nothing
    there changes between frames.
    """
    ma, mb = _box(a, size_a, size_r), _box(b, size_a, size_r)
    cov = _box(a * b, size_a, size_r) - ma * mb
    va = np.maximum(_box(a * a, size_a, size_r) - ma * ma, 0.0)
    vb = np.maximum(_box(b * b, size_a, size_r) - mb * mb, 0.0)
    denom = np.sqrt(va * vb)
    flat = denom < 1e-3
    return np.where(flat, 1.0, cov / np.where(flat, 1.0, denom)).astype(np.float32)


def _step(x: np.ndarray, w: int) -> np.ndarray:
    """Outward step of ``x`` along the last axis: mean over [r, r + w) minus mean over [r - w, r).

    A step of height h between samples r - 1 and r gives h at index r: the border lies half a
    sample inside ``radii_mm[r]``.
    """
    n_r = x.shape[-1]
    cs = np.concatenate(
        [np.zeros(x.shape[:-1] + (1,), np.float32), np.cumsum(x, axis=-1, dtype=np.float32)], axis=-1
    )
    r = np.arange(n_r)
    lo = np.clip(r - w, 0, n_r)
    hi = np.clip(r + w, 0, n_r)
    inner = (cs[..., r] - cs[..., lo]) / np.maximum(r - lo, 1)
    outer = (cs[..., hi] - cs[..., r]) / np.maximum(hi - r, 1)
    return (outer - inner).astype(np.float32)


def _subsample(edge: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Parabolic refinement of the edge maximum at each path sample, in samples (F, A)."""
    n_r = edge.shape[-1]
    i = np.clip(path, 1, n_r - 2)
    take = lambda k: np.take_along_axis(edge, (i + k)[..., None], axis=-1)[..., 0]  # noqa: E731
    left, mid, right = take(-1), take(0), take(1)
    denom = left - 2 * mid + right
    offset = np.where(denom < -1e-6, 0.5 * (left - right) / np.where(denom < -1e-6, denom, -1.0), 0.0)
    return path + np.clip(offset, -0.5, 0.5)


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
    n = len(radii)
    # the directions next to a shadow are traced with the shadow in their windows (and at a
    # slit's end, with the wall on both sides): the ellipse is fitted without them
    near = np.logical_or.reduce([np.roll(hidden, k) for k in range(-fit_margin, fit_margin + 1)])
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
    n = len(radii)
    theta = 2 * np.pi * np.arange(n) / n
    scale = float(np.mean(radii[use]))
    x = radii[use] * np.cos(theta[use]) / scale
    y = radii[use] * np.sin(theta[use]) / scale
    d1 = np.column_stack([x * x, x * y, y * y])
    d2 = np.column_stack([x, y, np.ones_like(x)])
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
    cs, sn = np.cos(theta), np.sin(theta)
    # the ray r (cos, sin) meets the conic where qa r^2 + qb r + f = 0
    qa = a * cs * cs + b * cs * sn + c * sn * sn
    qb = d * cs + e * sn
    disc = qb * qb - 4 * qa * f
    if np.any(disc < 0) or np.any(np.abs(qa) < 1e-12):
        return None
    roots = np.stack([(-qb + np.sqrt(disc)) / (2 * qa), (-qb - np.sqrt(disc)) / (2 * qa)])
    if not (np.all(roots.max(axis=0) > 0) and np.all(roots.min(axis=0) < 0)):
        return None  # the catheter must lie inside the ellipse: one root on either side
    return roots.max(axis=0) * scale


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
    radii: np.ndarray, hidden: np.ndarray, *, min_dent_mm: float, min_dent_fraction: float, grow_mm: float
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

    Returns
    -------
    ndarray of shape (A,), bool: ``hidden`` and its penumbra
    """
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


@dataclass(frozen=True)
class SegmentationOptions:
    """Parameters of :func:`segment_pullback` (lengths in mm, so they hold at any image size)."""

    n_angles: int = 180
    correlation_half_mm: float = 0.06
    correlation_angles: int = 3
    refine_inner_mm: float = 0.08
    refine_outer_mm: float = 0.2
    lumen_edge_mm: float = 0.08
    vessel_edge_mm: float = 0.10
    min_wall_mm: float = 0.08
    max_wall_mm: float = 3.0
    max_slope_mm: float = 0.12
    max_slope_fraction: float = 0.03
    inward_preference: float = 0.6
    vessel_inward_preference: float = 0.5
    enclosed_tissue_per_mm: float = 4.0
    smooth_weight: float = 0.02
    wall_smooth_weight: float = 0.15
    shadow_ratio: float = 0.4
    calcium_depth_fraction: float = 0.5
    ring_correlation: float = 0.5
    # catheters are 0.4-0.6 mm in radius and their ring-down a few tenths of a mm: a near field
    # that stays correlated further out is dark, barely moving blood (20 MHz), not the catheter
    max_ring_mm: float = 1.2
    # median correlation of the near field (just outside the ring-down, over frames spread along
    # the pullback) at which blood counts as not moving between frames: the correlation cue then
    # says nothing and the grey level leads (20 MHz phased array, where blood barely echoes).
    # Phantoms 0.27-0.35 (at most 0.45), a 40-60 MHz rotational console 0.48, 20 MHz set B 0.68-0.70
    still_blood_correlation: float = 0.7
    still_blood_range: float = 0.25
    normal_refine_mm: float = 0.5
    normal_refine_passes: int = 2
    region_refine_mm: float = 0.8
    region_window_mm: float = 0.12
    region_refine_passes: int = 3
    region_refine_min_aspect: float = 2.0
    temporal_median_frames: int = 9
    despike_angles: int = 13
    despike_mm: float = 0.1
    wall_only_inner: bool = True
    wall_blur_mm: float = 0.2
    max_wall_stretch: float = 3.0
    faint_wall_smooth_deg: float = 12.0
    clear_eem_step: float = 0.8
    faint_wall_lumen_smooth_deg: float = 4.0
    border_smooth_deg: float = 4.0
    wall_tilt_harmonics: int = 6
    batch_frames: int = 24
    grey_separation_weight: float = 0.5
    tip_half_angle_deg: float = 15.0
    flattened_aspect: float = 2.0
    flattened_charge: float = 0.25
    ellipse_fill_aspect: float = 2.0
    ellipse_fit_margin_deg: float = 8.0
    # an ostium's sector, and a dent dragged in beside a shadow, leave the border's ellipse by
    # at least branch_excess_mm and branch_excess_fraction of its radius
    branch_excess_mm: float = 0.4
    branch_excess_fraction: float = 0.2
    branch_wall_fraction: float = 0.6
    branch_grow_mm: float = 0.05
    branch_max_deg: float = 120.0
    penumbra: bool = True
    overlay_exclude_mm: float = 1.2
    threads: int = 0  # 0: one per core


@dataclass
class _Borders:
    lumen: np.ndarray  # (F, A) mm
    vessel: np.ndarray  # (F, A) mm
    calcium: list[list[np.ndarray]]
    calcium_arc_deg: np.ndarray  # (F,)
    confidence: np.ndarray  # (F,)


def _neighbours(index: int, n_frames: int) -> tuple[int, int] | None:
    """The raw frames compared with ``index``: its neighbours, or the next two at an end."""
    if n_frames < 2:
        return None
    prev = index - 1 if index > 0 else min(index + 2, n_frames - 1)
    nxt = index + 1 if index < n_frames - 1 else max(index - 2, 0)
    return prev, nxt


def _ring_extent(stability: np.ndarray, threshold: float, max_samples: int) -> int:
    """First radial sample where the median (over frames and angles) correlation falls below
    ``threshold``: the catheter and its ring-down end there; at most ``max_samples``."""
    profile = np.median(stability.reshape(-1, stability.shape[-1]), axis=0)
    below = np.flatnonzero(profile[:max_samples] < threshold)
    return int(below[0]) if below.size else max_samples


def _grey_ring(profile: np.ndarray, max_samples: int, margin: int) -> int:
    """End of the catheter and its ring-down from the median grey-level profile (R,).

    For pullbacks whose blood stays as correlated as the catheter, where the correlation
    cannot tell them apart. Past the black inside of the catheter, a bright ring-down that falls
    to at most half its peak ends where it is back within a fifth of that fall; without one
    (masked by the console) the catheter ends where echoes begin. ``margin`` samples are added.
    """
    p = np.asarray(profile[: max_samples + 1], dtype=float)
    lit = np.flatnonzero(p > 0.02 * max(float(p.max()), 1e-6))
    first = int(lit[0]) if lit.size else 0
    peak = first + int(np.argmax(p[first:]))
    after = p[peak:]
    low = float(after.min())
    if p[peak] > 0 and low <= 0.5 * p[peak]:
        end = peak + int(np.flatnonzero(after <= low + 0.2 * (p[peak] - low))[0])
        return min(end + margin, max_samples)
    return min(first + margin, max_samples)


def _correlation_trust(
    stability: np.ndarray, ring: int, near_samples: int, still: float, span: float
) -> float:
    """How far the correlation cue can be trusted in this pullback, 0..1.

    Blood near the catheter decorrelates between neighbouring frames when it moves and echoes
    (rotational 40-60 MHz, and our phantoms); dark 20 MHz blood and high frame rates leave it as
    stable as the wall, and then a correlation step marks nothing. Judged once per pullback, on
    the median correlation just outside the ring-down of frames spread along it: a single frame
    wedged in a tight lesion, whose near field is plaque, does not decide.

    Parameters
    ----------
    stability : ndarray of shape (F, A, R)
        Correlation with the neighbouring frames.
    ring : int
        First radial sample outside the ring-down.
    near_samples : int
        Radial depth of the near field.
    still, span : float
        Near-field correlation at which the trust is 0, and the range over which it reaches 1.
    """
    near = _box(stability, 5, 3)[..., ring : ring + near_samples]
    level = float(np.median(near)) if near.size else 0.0
    return float(np.clip((still - level) / span, 0.0, 1.0))


def _overlay_fill(pullback: Pullback, exclude_radius_mm: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Burned-in overlay pixels (depth dots, rulers, text) and the image pixels that replace them.

    A mark drawn by the console has the same value in every frame, which no echo has: in the
    lumen such a dot looks like a bright, perfectly stable speck of tissue and stops the border
    there. Pixels equal (and not black) in frames spread over the pullback, plus a one-pixel
    margin for anti-aliased edges, take the value of their nearest other pixel in every frame.
    The catheter's near field (saturated ring-down) is left alone.

    Returns
    -------
    (dst, src) : ndarrays of flat pixel indices, or None when there is nothing to replace
    """
    n = pullback.n_frames
    if n < 4:
        return None
    idx = np.unique(np.linspace(0, n - 1, min(n, 16)).astype(int))
    sample = np.asarray(pullback.frames[idx])
    constant = (sample.max(axis=0) == sample.min(axis=0)) & (sample[0] > 0)
    h, w = constant.shape
    sr, sc = pullback.pixel_spacing_mm
    cr, cc = pullback.catheter_center_px
    rows = (np.arange(h)[:, None] - cr) * sr
    cols = (np.arange(w)[None, :] - cc) * sc
    constant &= np.hypot(rows, cols) > exclude_radius_mm
    if not constant.any():
        return None
    mask = ndimage.binary_dilation(constant)
    _, (ri, ci) = ndimage.distance_transform_edt(mask, return_indices=True)
    dst = np.flatnonzero(mask)
    src = ri.ravel()[dst] * w + ci.ravel()[dst]
    return dst, src


class _Segmenter:
    def __init__(self, pullback: Pullback, options: SegmentationOptions):
        self.pb = pullback
        self.o = options
        h, w = pullback.shape_px
        self.sampler = PolarSampler.build(
            (h, w),
            pullback.pixel_spacing_mm,
            pullback.catheter_center_px,
            n_angles=options.n_angles,
            n_radii=100000,
        )
        self.dr = self.sampler.dr_mm
        self.radii = self.sampler.radii_mm
        self.n_r = len(self.radii)
        # a border may turn steeply where a flattened lumen ends far from the catheter: allow radial
        # moves that grow with the field of view between neighbouring angles
        self.max_step = self.samples(
            max(options.max_slope_mm, options.max_slope_fraction * self.radii[-1]), 2
        )
        self.step_scale = np.maximum(self.radii, 1.5) / 1.5
        self.ring: int | None = None
        self.profile: np.ndarray | None = None
        self.trust = 1.0  # of the correlation cue, measured once per pullback
        self.overlay = _overlay_fill(pullback, options.overlay_exclude_mm)

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames (F, H, W) with burned-in overlay marks replaced by their nearest image pixel."""
        out = np.array(self.pb.frames[np.asarray(indices, dtype=int)])
        if self.overlay is not None:
            dst, src = self.overlay
            flat = out.reshape(len(out), -1)
            flat[:, dst] = flat[:, src]
        return out

    def samples(self, mm: float, minimum: int = 1) -> int:
        return max(minimum, int(round(mm / self.dr)))

    def angles(self, deg: float) -> float:
        """Polar directions spanned by ``deg`` degrees."""
        return deg * self.o.n_angles / 360.0

    def polar(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        idx = sorted(set(int(i) for i in indices))
        stack = self.sampler(self.frames(idx))
        return {i: stack[k] for k, i in enumerate(idx)}

    def stability(self, frames: np.ndarray, polar: dict[int, np.ndarray]) -> np.ndarray | None:
        n = self.pb.n_frames
        pairs = [_neighbours(int(i), n) for i in frames]
        if any(p is None for p in pairs):
            return None
        cur = np.stack([polar[int(i)] for i in frames])
        if self.profile is None:
            # the catheter's ring-down is the same in every direction of every frame: its radial
            # profile, removed before correlating, no longer makes the near lumen look stationary
            self.profile = np.median(cur, axis=(0, 1))
        cur = cur - self.profile
        # at least ~25 samples per window, or blood's chance correlations look like tissue
        size_r = max(2 * self.samples(self.o.correlation_half_mm, 0) + 1, 5)
        size_a = max(self.o.correlation_angles, 5)
        prev = np.stack([polar[p[0]] for p in pairs]) - self.profile
        nxt = np.stack([polar[p[1]] for p in pairs]) - self.profile
        # tissue correlates with whichever neighbour was acquired in a quiet phase (end-diastole
        # is followed by systolic motion); blood correlates with neither
        return np.maximum(_local_ncc(cur, prev, size_a, size_r), _local_ncc(cur, nxt, size_a, size_r))

    def lumen(
        self, stability: np.ndarray | None, log_image: np.ndarray, image: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lumen path (F, A) in samples (sub-sample) and its edge strength (F, A).

        Two candidate borders are traced, one from the local step of the correlation and one
        from the blood/tissue regions it separates (robust when a large lumen's blood
        correlates by chance); each frame keeps the candidate that separates decorrelated
        blood inside from correlated tissue outside best.
        """
        w = self.samples(self.o.lumen_edge_mm, 2)
        if stability is None or self.ring is None:
            # without neighbouring frames: the grey-level rise next to the catheter
            start = self._bright_near_field(log_image)
            edge = _step(log_image, w)
            edge = edge / np.maximum(np.percentile(edge[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None]
            path = self._trace(edge, start, w)
            strength = np.take_along_axis(edge, path[..., None], axis=-1)[..., 0]
            return _subsample(edge, path), np.clip(strength, 0.0, 1.0)
        start = self.ring
        # the grey-level rise from blood to wall backs the correlation up where blood echoes
        # little (20 MHz) and its few echoes happen to correlate
        grey = _step(_box(log_image, 5, 1), w)
        grey = np.clip(
            grey / np.maximum(np.percentile(grey[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None], -1, 1
        )
        weight = self.trust * self._stability_weight(stability, log_image, start)[:, None, None]
        local = _step(_box(stability, 3, 1), w)
        local = np.clip(
            local / np.maximum(np.percentile(local[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None], -1, 1
        )
        # a rise of the correlation with no rise of the grey level is slow or stagnant blood, not
        # the wall: such steps count half
        local = local * np.clip(0.5 + grey, 0.0, 1.0)
        region = self._region_score(_box(stability, 5, 3), start)
        smooth = _box(stability, 5, 3)
        enclosed = self._enclosed_tissue(smooth, _box(log_image, 5, 3), start, weight)
        edges = [(weight * feature + grey) / (1.0 + weight) for feature in (local, region)]
        if self.trust < 1.0:
            # blood that does not move is still dark: the regions of grey level separate it from
            # the wall, where the steps of its speckle would stop an edge trace (20 MHz)
            edges.append(self._region_score(_box(image, 5, 3), start))
        grey_level = _box(log_image, 5, 3)
        best_path, best_edge = self._best_trace(edges, smooth, start, w, enclosed, grey_level)
        # a flattened lumen (a compressed vein) has no media behind its wall to leak into, but
        # its narrow ends mix with the wall in the correlation windows and look enclosed: those
        # frames are traced again with a fraction of the charge, enough still to keep the border
        # from crossing a whole wall into the dark lumen of the artery compressing the vein
        flat = _aspect_ratio(self.to_mm(best_path)) >= self.o.flattened_aspect
        charge = (
            np.where(flat[:, None, None], np.float32(self.o.flattened_charge), np.float32(1.0)) * enclosed
        )
        if flat.any():
            again_path, again_edge = self._best_trace(
                [e[flat] for e in edges], smooth[flat], start, w, charge[flat], grey_level[flat]
            )
            best_path[flat], best_edge[flat] = again_path, again_edge
        strength = np.take_along_axis(best_edge, best_path[..., None], axis=-1)[..., 0]
        # the grey levels as displayed (already log-compressed by the console): compressing
        # them again would pull the half-way point of a blurred step towards the darker side
        return self._refine_lumen(image, best_path, start, charge), np.clip(strength, 0.0, 1.0)

    def _enclosed_tissue(
        self, smooth: np.ndarray, grey: np.ndarray, start: int, weight: np.ndarray
    ) -> np.ndarray:
        """Cost of enclosing correlated tissue in the lumen, (F, A, R): the tissue-like depth (mm)
        between the ring-down and each radius, times ``enclosed_tissue_per_mm``.

        The step from a dark, decorrelated layer (the media) to bright, stable adventitia looks
        like blood meeting wall; what tells them apart is the stable plaque a border there would
        enclose. Correlation up to half-way between blood and tissue costs nothing, so blood's
        chance correlations do not pull the border inwards.
        """
        n_f = len(smooth)
        near = slice(start, min(start + self.samples(0.3, 3), self.n_r))
        likeness = []
        for x, floor in ((smooth, 0.1), (grey, 0.2)):
            blood = np.median(x[..., near].reshape(n_f, -1), axis=1)
            tissue = np.percentile(x[..., start:].reshape(n_f, -1), 75, axis=1)
            contrast = np.maximum(tissue - blood, floor)[:, None, None]
            level = (0.5 * (blood + tissue))[:, None, None]
            likeness.append(np.clip((x - level) / (0.5 * contrast), 0.0, 1.0))
        # bright and stable; brightness alone where the correlation is unreliable
        t = likeness[1] * (weight * likeness[0] + 1.0 - weight)
        t[..., : start + 1] = 0.0
        # a border's own window straddles it: the last samples inside are not counted
        lag = self.samples(self.o.correlation_half_mm, 1) + 1
        depth = np.cumsum(t, axis=-1) * self.dr
        depth = np.concatenate([np.zeros(depth.shape[:-1] + (lag,), np.float32), depth[..., :-lag]], axis=-1)
        # the charge tells the media's step from the lumen's by what is stable between them: where
        # the correlation says nothing, brightness alone would charge the brighter speckle of still
        # blood and the guidewire (20 MHz set B: box IoU 0.79 with it, 0.885 without)
        return (self.trust * self.o.enclosed_tissue_per_mm * depth).astype(np.float32)

    def _best_trace(
        self,
        edges: list[np.ndarray],
        smooth: np.ndarray,
        start: int,
        w: int,
        extra: np.ndarray | None,
        grey_level: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Trace each candidate edge image (F, A, R) and keep, per frame, the path that separates
        decorrelated blood inside from correlated tissue outside best: (path, its edge image)."""
        best_path = best_edge = None
        best_score = np.full(len(smooth), -np.inf)
        for edge in edges:
            path = self._trace(edge, start, w, extra)
            score = self.trust * self._separation(smooth, path, start)
            if grey_level is not None and self.o.grey_separation_weight > 0:
                # blood is also darker than the wall: a border cutting through a wide lumen has
                # blood on both sides, which the grey levels tell where chance correlations do not
                region = grey_level[..., start:].reshape(len(grey_level), -1)
                spread = np.maximum(
                    np.percentile(region, 75, axis=1) - np.percentile(region, 25, axis=1), 1e-3
                )
                grey_separation = self._separation(grey_level, path, start) / spread
                score = score + self.o.grey_separation_weight * grey_separation
            if best_path is None:
                best_path, best_edge, best_score = path, edge, score
                continue
            better = score > best_score
            best_path = np.where(better[:, None], path, best_path)
            best_edge = np.where(better[:, None, None], edge, best_edge)
            best_score = np.maximum(score, best_score)
        return best_path, best_edge

    def _trace(self, edge: np.ndarray, start: int, w: int, extra: np.ndarray | None = None) -> np.ndarray:
        # the lumen ends at the first wall layer: of two similar steps, the inner one
        ramp = np.clip((np.arange(self.n_r) - start) / max(self.n_r - start, 1), 0.0, 1.0)
        cost = 1.0 - edge + self.o.inward_preference * ramp[None, None, :]
        if extra is not None:
            cost = cost + extra
        cost[..., : start + 1] = np.inf
        cost[..., self.n_r - w :] = np.inf
        return dp_closed_path(
            cost.astype(np.float32),
            max_step=self.max_step,
            step_scale=self.step_scale,
            smooth_weight=self.o.smooth_weight,
        )

    def _separation(self, smooth: np.ndarray, path: np.ndarray, start: int) -> np.ndarray:
        """Mean correlation just outside the border minus inside it, per frame (F,)."""
        r = np.arange(self.n_r)[None, None, :]
        span = self.samples(0.3, 3)
        inside = (r >= start) & (r < path[..., None])
        outside = (r >= path[..., None]) & (r < path[..., None] + span)
        mean_in = (smooth * inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1)
        mean_out = (smooth * outside).sum(axis=(1, 2)) / np.maximum(outside.sum(axis=(1, 2)), 1)
        return mean_out - mean_in

    def _region_score(self, smooth: np.ndarray, start: int) -> np.ndarray:
        """Score of each radius as the lumen border from the regions it separates, (F, A, R).

        ``smooth`` (F, A, R) is a feature that is low in blood and high in the wall: the
        correlation with the neighbouring frames, or the grey level where blood barely echoes.
        Blood is rewarded inside the border and tissue just outside it. Sums over many samples
        make this robust to speckle, which defeats a local edge detector when the lumen is large
        (chance correlations) or dark (steps of the few echoes in near-black blood).
        """
        n_f = len(smooth)
        near = slice(start, min(start + self.samples(0.3, 3), self.n_r))
        blood = np.median(smooth[..., near].reshape(n_f, -1), axis=1)
        # most of the field is wall and beyond: its typical correlation is the tissue level
        tissue = np.percentile(smooth[..., start:].reshape(n_f, -1), 75, axis=1)
        contrast = np.maximum(tissue - blood, 0.1)[:, None, None]
        level = (0.5 * (blood + tissue))[:, None, None]
        g = np.clip((level - smooth) / contrast, -1.0, 1.0)
        g[..., :start] = 0.0
        inside = np.concatenate(
            [np.zeros(g.shape[:-1] + (1,), np.float32), np.cumsum(g, axis=-1)[..., :-1]], axis=-1
        )
        span = self.samples(0.3, 3)
        cs = np.concatenate([np.zeros(g.shape[:-1] + (1,), np.float32), np.cumsum(g, axis=-1)], axis=-1)
        r = np.arange(self.n_r)
        outside = -(cs[..., np.minimum(r + span, self.n_r)] - cs[..., r])
        score = inside + outside
        top = np.max(score[..., start:], axis=(1, 2), keepdims=True)
        low = np.percentile(score[..., start:], 5, axis=(1, 2), keepdims=True)
        return ((score - low) / np.maximum(top - low, 1e-3) * 2.0 - 1.0).astype(np.float32)

    @staticmethod
    def _stability_weight(stability: np.ndarray, log_image: np.ndarray, start: int) -> np.ndarray:
        """How much to trust the correlation cue, per frame (F,): the correlation of the
        brightest tissue. Slow frame rates or fast pullbacks decorrelate tissue too, and then
        the grey-level step must lead."""
        region = log_image[..., start:]
        bright = region >= np.percentile(region, 80, axis=(1, 2), keepdims=True)
        tissue = np.array([np.median(st[..., start:][b]) for st, b in zip(stability, bright, strict=True)])
        return np.clip((tissue - 0.3) / 0.4, 0.0, 1.0)

    def _refine_lumen(
        self, log_image: np.ndarray, path: np.ndarray, start: int, charge: np.ndarray | None = None
    ) -> np.ndarray:
        """Place the lumen border on the grey-level step near the correlation border.

        A correlation window that straddles the border is dominated by the brighter, more
        variable tissue, so the correlation step sits slightly inside the true border; the
        grey-level step of blood to wall (darker to brighter at any frequency) is sharp but
        ambiguous on its own. Searching it in a narrow band just outside the correlation
        border keeps the robustness of the one and the precision of the other.
        """
        w = self.samples(0.06, 2)
        edge = _step(_box(log_image, 5, 1), w)
        r = np.arange(self.n_r)[None, None, :]
        lo = path[..., None] - self.samples(self.o.refine_inner_mm, 1)
        # the correlation border lies up to a window inside the true one
        hi = (
            path[..., None]
            + self.samples(self.o.correlation_half_mm, 1)
            + self.samples(self.o.refine_outer_mm, 2)
        )
        allowed = (r >= np.maximum(lo, start + 1)) & (r <= np.minimum(hi, self.n_r - w - 1))
        band = np.where(allowed, edge, np.nan)
        scale = np.maximum(
            np.nan_to_num(np.nanpercentile(band.reshape(len(edge), -1), 99, axis=1), nan=1.0), 1e-3
        )
        cost = 1.0 - edge / scale[:, None, None]
        if charge is not None:
            # the band reaches past thin plaque onto the media's step: moving out there pays for
            # the stable tissue it would enclose, as the trace did
            cost = cost + charge
        cost = np.where(allowed, cost, np.inf).astype(np.float32)
        refined = dp_closed_path(
            cost, max_step=self.max_step, step_scale=self.step_scale, smooth_weight=self.o.smooth_weight
        )
        return _subsample(edge, refined)

    def _bright_near_field(self, log_image: np.ndarray) -> int:
        profile = np.median(log_image.reshape(-1, self.n_r), axis=0)
        peak = int(np.argmax(profile[: self.n_r // 3]))
        return min(peak + self.samples(0.1), self.n_r // 2)

    @staticmethod
    def _wall_step(x: np.ndarray, w: int, wall_start: np.ndarray, edge: np.ndarray) -> np.ndarray:
        """Outward step whose inner window stays inside the wall, (F, A, R).

        Across a wall thinner than two windows the plain step's inner window reaches into the
        dark lumen, so the lumen's own (much larger) step leaks outwards and pulls the EEM onto
        the lumen border; the inner mean is therefore taken from ``wall_start`` (F, A) on.
        """
        n_r = x.shape[-1]
        cs = np.concatenate(
            [np.zeros(x.shape[:-1] + (1,), np.float32), np.cumsum(x, axis=-1, dtype=np.float32)], axis=-1
        )
        r = np.arange(n_r)[None, None, :]
        lo = np.clip(np.maximum(r - w, wall_start[..., None]), 0, np.maximum(r - 1, 0))
        hi = np.minimum(r + w, n_r)
        inner = (
            np.take_along_axis(cs, np.broadcast_to(r, x.shape), -1) - np.take_along_axis(cs, lo, -1)
        ) / np.maximum(r - lo, 1)
        outer = (
            np.take_along_axis(cs, np.broadcast_to(hi, x.shape), -1)
            - np.take_along_axis(cs, np.broadcast_to(r, x.shape), -1)
        ) / np.maximum(hi - r, 1)
        return np.where(r > wall_start[..., None], outer - inner, edge).astype(np.float32)

    def vessel(self, log_image: np.ndarray, lumen_path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """EEM path (F, A) in samples: the strongest dark-to-bright step beyond the lumen."""
        w = self.samples(self.o.vessel_edge_mm, 2)
        smooth = _box(log_image, 3, 3)
        edge = _step(smooth, w)
        base = np.floor(lumen_path).astype(int)
        # a wall crossed obliquely (the flanks of an oval or flattened lumen) is longer along the
        # ray than across it: lengths along the ray are the wall's own times this stretch
        # (from the lumen's overall shape, its first harmonics: a trace cut by calcium or jagged
        # by speckle would tilt at every notch)
        shape = lumen_path * self.dr
        if self.o.wall_tilt_harmonics > 0:
            spec = np.fft.rfft(shape, axis=1)
            spec[:, self.o.wall_tilt_harmonics + 1 :] = 0
            shape = np.fft.irfft(spec, n=shape.shape[1], axis=1)
        tilt = _border_normals(shape)[2]
        stretch = 1.0 / np.clip(np.sqrt(1.0 - tilt**2), 1.0 / self.o.max_wall_stretch, 1.0)
        if self.o.wall_only_inner:
            blur = np.round(self.samples(self.o.wall_blur_mm, 2) * stretch).astype(int)
            edge = self._wall_step(smooth, w, base + blur, edge)
        first = max(self.samples(self.o.min_wall_mm), w) + 1  # across the wall
        lo = base[..., None] + np.round(first * stretch[..., None]).astype(int)
        r = np.arange(self.n_r)[None, None, :]
        allowed = (r >= lo) & (r <= self.n_r - w - 1)
        band = np.where(allowed, edge, np.nan)
        scale = np.nanpercentile(band.reshape(len(edge), -1), 99, axis=1)
        scale = np.maximum(np.nan_to_num(scale, nan=1.0), 1e-3)[:, None, None]
        cost = np.where(allowed, 1.0 - edge / scale, np.inf).astype(np.float32)
        # traced as a wall thickness on top of the lumen, measured across the wall: it thickens
        # and thins gradually around the vessel, whatever the lumen's shape, so a jump of the
        # thickness (onto a bright patch of perivascular tissue) costs what a jump of the radius
        # would not
        n_wall = self.samples(self.o.max_wall_mm)
        offsets = np.arange(n_wall + 1)
        rows = np.minimum(base[..., None] + np.round(offsets * stretch[..., None]).astype(int), self.n_r - 1)
        # nearer edges are preferred a little: the adventitia is the first bright layer out
        inward = self.o.vessel_inward_preference * np.maximum(offsets - first, 0) / max(n_wall, 1)
        wall_cost = np.take_along_axis(cost, rows, axis=-1) + inward.astype(np.float32)
        thickness = dp_closed_path(wall_cost, max_step=self.max_step, smooth_weight=self.o.wall_smooth_weight)
        path = np.minimum(np.take_along_axis(rows, thickness[..., None], axis=-1)[..., 0], self.n_r - 1)
        step = np.take_along_axis(edge, path[..., None], axis=-1)[..., 0]
        fine = _subsample(edge, path)
        if self.o.faint_wall_smooth_deg > 0:
            fine = self._steady_faint_wall(fine, lumen_path, stretch, step)
        return fine, np.clip(step / scale[..., 0], 0.0, 1.0)

    def _steady_faint_wall(
        self, path: np.ndarray, lumen_path: np.ndarray, stretch: np.ndarray, step: np.ndarray
    ) -> np.ndarray:
        """Smooth the EEM around the vessel where its step is faint, (F, A) samples.

        A vein's thin wall before echogenic tissue shows hardly any step at the EEM, which each
        ray then places within a few samples; the wall's thickness varies slowly around the
        vessel, so there it is taken from its neighbours (on a smoothed lumen). A clear step
        (dark media to bright adventitia, ``step`` of ``clear_eem_step`` or more in log grey
        levels) is kept as found: plaque thickness may change quickly.
        """
        clear = np.clip(step / self.o.clear_eem_step, 0.0, 1.0)
        across = (path - lumen_path) / stretch
        across = ndimage.gaussian_filter1d(
            across, self.angles(self.o.faint_wall_smooth_deg), axis=1, mode="wrap"
        )
        inner = ndimage.gaussian_filter1d(
            lumen_path, self.angles(self.o.faint_wall_lumen_smooth_deg), axis=1, mode="wrap"
        )
        return clear * path + (1.0 - clear) * (inner + across * stretch)

    def _normal_refine(self, frames: np.ndarray, radii_mm: np.ndarray, *, passes: int) -> np.ndarray:
        """Move each border point along the border's normal to the blood-to-wall grey step.

        Along a ray the step of a border nearly parallel to the ray (the ends of a slit-shaped
        lumen far from the catheter) is smeared over many samples, and averaging over angles
        pulls a convex tip inwards; across the border, in the frame itself, the step stays sharp
        at any orientation. Only such points move (up to ``normal_refine_mm``): borders facing
        the catheter keep their ray-traced position.

        Parameters
        ----------
        frames : ndarray of shape (F,), int
        radii_mm : ndarray of shape (F, A)
        passes : int
            Repetitions; each starts from the normals of the moved border.

        Returns
        -------
        ndarray of shape (F, A), mm
        """
        half = self.o.normal_refine_mm
        if half <= 0 or passes < 1:
            return radii_mm
        n_f, n_a = radii_mm.shape
        sr, sc = self.pb.pixel_spacing_mm
        cr, cc = self.pb.catheter_center_px
        pix = min(sr, sc)
        step = 0.5 * pix
        k = int(np.ceil((half + 0.2) / step))
        t = np.arange(-k, k + 1) * step
        w = max(2, int(round(0.12 / step)))
        theta = 2 * np.pi * np.arange(n_a) / n_a
        image = None
        for _ in range(passes):
            x, y = radii_mm * np.cos(theta), radii_mm * np.sin(theta)
            nx, ny, tilt, movable = _border_normals(radii_mm)
            reach = half * movable
            if not (reach >= pix).any():
                break
            if image is None:
                image = self.frames(frames).astype(np.float32)
                image = ndimage.gaussian_filter(image, sigma=(0, 1.0, 1.0))
            rows = cr + (y[..., None] + t * ny[..., None]) / sr
            cols = cc + (x[..., None] + t * nx[..., None]) / sc
            frame_idx = np.broadcast_to(np.arange(n_f)[:, None, None], rows.shape)
            prof = ndimage.map_coordinates(
                image, [frame_idx.ravel(), rows.ravel(), cols.ravel()], order=1, mode="nearest"
            ).reshape(rows.shape)
            prof = ndimage.uniform_filter1d(prof, size=3, axis=1, mode="wrap")
            edge = _step(prof, w)
            allowed = np.abs(t)[None, None, :] <= np.maximum(reach, step)[..., None]
            # of two steps, the one nearer the traced border
            top = np.abs(edge).max(axis=-1, keepdims=True)
            score = np.where(
                allowed, edge - 0.2 * np.abs(t) / np.maximum(reach, step)[..., None] * top, -np.inf
            )
            best = np.argmax(score, axis=-1)
            fine = _subsample(np.where(allowed, edge, edge.min()), best)
            offset = (fine - k) * step - 0.5 * step
            strong = np.take_along_axis(edge, best[..., None], axis=-1)[..., 0] > 0
            offset = np.where(strong & (reach >= pix), offset, 0.0)
            offset = ndimage.median_filter(offset, size=(1, 5), mode="wrap")
            out = np.empty_like(radii_mm)
            for f in range(n_f):
                pts = np.column_stack([x[f] + offset[f] * nx[f], y[f] + offset[f] * ny[f]])
                out[f] = ray_radii(pts, np.zeros(2), n_a)
            # a fold of the moved border shows as a radial spike: keep the ray-traced radius there
            limit = half / np.maximum(np.sqrt(1.0 - tilt**2), 0.2)
            radii_mm = np.where(np.abs(out - radii_mm) <= limit, out, radii_mm)
        return radii_mm

    def _region_refine(self, frames: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
        """Region competition of blood and wall in the frame plane, near ray-parallel borders.

        The polar correlation window spans a fixed number of angles, so far from the catheter it
        is wider than the narrow end of a flattened lumen and mixes in the wall on both sides:
        the trace stops short there. In the frame itself a small isotropic window separates
        them. Each pixel within ``region_refine_mm`` of the border is assigned to blood or wall
        by which of the two (measured inside and just outside the border) its decorrelation
        and grey level resemble; only borders running along the rays or at convex ends may
        move, and a frame keeps the result only if it separates the two better.

        Parameters
        ----------
        frames : ndarray of shape (F,), int
        radii_mm : ndarray of shape (F, A)

        Returns
        -------
        ndarray of shape (F, A), mm
        """
        band_mm = self.o.region_refine_mm
        n = self.pb.n_frames
        pairs = [_neighbours(int(i), n) for i in frames]
        if band_mm <= 0 or self.ring is None or any(q is None for q in pairs):
            return radii_mm
        weight_move = self._move_weight(radii_mm)
        # the step exists for flattened lumens (compressed veins, slit-like stenoses), whose
        # narrow ends run along the rays; round and oval lumens are left to the ray tracing
        flattened = _aspect_ratio(radii_mm) >= self.o.region_refine_min_aspect
        todo = np.flatnonzero((weight_move > 0.5).any(axis=1) & flattened)
        if todo.size == 0:
            return radii_mm
        out = radii_mm.copy()
        # only the frames with a border to move are loaded and filtered, once for all passes
        features = self._region_features(frames[todo], [pairs[k] for k in todo])
        for _ in range(self.o.region_refine_passes):
            # each pass grows the band from the moved border: a long cut end is recovered in steps
            movable = np.maximum(
                self._move_weight(out[todo]), _axis_ends(out[todo], self.o.tip_half_angle_deg)
            )
            out[todo] = self._region_refine_frames(out[todo], movable, *features)
        return out

    def _region_features(
        self, frames: np.ndarray, pairs: list
    ) -> tuple[np.ndarray, np.ndarray, tuple[float, float], tuple[float, float]]:
        """Frame-plane decorrelation and local mean of ``frames`` for region competition.

        Frames finer than ~0.08 mm per pixel are block-averaged by two first: the windows are
        several pixels wide either way, and the filters cost four times less.

        Returns
        -------
        stab, mean : ndarray of shape (F, H', W'), float32
        spacing_mm : (row, col) spacing of the returned grid
        center_px : catheter centre on the returned grid
        """
        sr, sc = self.pb.pixel_spacing_mm
        cr, cc = self.pb.catheter_center_px
        f = 2 if max(sr, sc) < 0.08 else 1
        h, w = self.pb.shape_px
        hd, wd = h // f, w // f

        def load(idx) -> np.ndarray:
            return _block_mean(self.frames(idx), f, (hd, wd))

        sr, sc = sr * f, sc * f
        cr, cc = (cr - (f - 1) / 2) / f, (cc - (f - 1) / 2) / f
        sigma = (0.0, max(1.2, self.o.region_window_mm / sr), max(1.2, self.o.region_window_mm / sc))
        cur = load(frames)

        def g(x: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(x, sigma)

        mc = g(cur)
        vc = np.maximum(g(cur * cur) - mc * mc, 0.0)
        stab = None
        for k in range(2):
            other = load([q[k] for q in pairs])
            mo = g(other)
            vo = np.maximum(g(other * other) - mo * mo, 0.0)
            den = np.sqrt(vc * vo)
            ncc = np.where(den > 1e-3, (g(cur * other) - mc * mo) / np.maximum(den, 1e-3), 1.0)
            stab = ncc if stab is None else np.maximum(stab, ncc)
        return stab, mc, (sr, sc), (cr, cc)

    def _region_refine_frames(
        self,
        radii_mm: np.ndarray,
        weight_move: np.ndarray,
        stab: np.ndarray,
        mc: np.ndarray,
        spacing_mm: tuple[float, float],
        center_px: tuple[float, float],
    ) -> np.ndarray:
        band_mm = self.o.region_refine_mm
        n_f, n_a = radii_mm.shape
        sr, sc = spacing_mm
        cr, cc = center_px
        pix = min(sr, sc)
        sigma = (max(1.2, self.o.region_window_mm / sr), max(1.2, self.o.region_window_mm / sc))
        h, w = stab.shape[1:]
        yy = (np.arange(h)[:, None] - cr) * sr
        xx = (np.arange(w)[None, :] - cc) * sc
        rho = np.hypot(xx, yy)
        phi = np.mod(np.arctan2(yy, xx), 2 * np.pi) * n_a / (2 * np.pi)
        i0 = np.floor(phi).astype(int) % n_a
        i1 = (i0 + 1) % n_a
        fphi = phi - np.floor(phi)
        ring_mm = self.radii[self.ring] + 0.1
        theta = 2 * np.pi * np.arange(n_a) / n_a
        step = 0.5 * pix
        rs = np.arange(0.0, self.radii[-1], step)
        ray_rows = cr + rs[None, :] * np.sin(theta)[:, None] / sr
        ray_cols = cc + rs[None, :] * np.cos(theta)[:, None] / sc
        disk = ndimage.generate_binary_structure(2, 1)
        out = radii_mm.copy()
        for f in range(n_f):
            border = (1 - fphi) * radii_mm[f][i0] + fphi * radii_mm[f][i1]
            mask = rho < border
            d_in = ndimage.distance_transform_edt(mask) * pix
            d_out = ndimage.distance_transform_edt(~mask) * pix
            valid = rho > ring_mm
            core = mask & valid & (d_in > 0.3)
            outer = ~mask & (d_out > 0.15) & (d_out <= 0.5)
            band = valid & ((mask & (d_in <= band_mm)) | (~mask & (d_out <= band_mm)))
            if core.sum() < 20 or outer.sum() < 20:
                continue
            score = np.full((h, w), -np.inf, np.float32)
            for feat in (stab[f], mc[f]):
                blood, tissue = np.median(feat[core]), np.median(feat[outer])
                spread = np.std(feat[core]) + 1e-6
                # a cue counts only where it tells the two apart clearly; slow blood may
                # correlate like tissue while still echoing less, so either cue may claim blood
                if (tissue - blood) / spread < 1.0:
                    continue
                cue = np.clip((tissue - feat) / (tissue - blood), -0.5, 1.5)
                score = np.maximum(score, ndimage.gaussian_filter(cue, sigma))
            if not np.isfinite(score).all():
                continue
            grown = np.where(band, score > 0.5, mask) | ~valid
            grown = ndimage.binary_opening(grown, disk) | core
            labels, _ = ndimage.label(grown)
            keep = np.unique(labels[core | ~valid])
            grown = np.isin(labels, keep[keep > 0])
            grown = ndimage.binary_fill_holes(grown)
            energy_old = float(((score - 0.5) * np.where(mask, -1, 1))[band].mean())
            energy_new = float(((score - 0.5) * np.where(grown, -1, 1))[band].mean())
            if not energy_new < energy_old:
                continue
            along = ndimage.map_coordinates(
                grown.astype(np.float32), [ray_rows, ray_cols], order=1, mode="constant"
            )
            along[:, rs <= ring_mm] = 1.0
            first = np.argmax(along < 0.5, axis=1)
            first = np.where((along < 0.5).any(axis=1), first, len(rs) - 1)
            a = along[np.arange(n_a), np.maximum(first - 1, 0)]
            b = along[np.arange(n_a), first]
            frac = np.clip((a - 0.5) / np.maximum(a - b, 1e-6), 0.0, 1.0)
            cand = rs[np.maximum(first - 1, 0)] + frac * step
            cand = np.clip(cand, radii_mm[f] - band_mm, radii_mm[f] + band_mm)
            out[f] = np.where(weight_move[f] > 0.5, cand, radii_mm[f])
        return out

    @staticmethod
    def _move_weight(radii_mm: np.ndarray) -> np.ndarray:
        """How far (0-1) each border point lies on a stretch running along the rays or at a sharp
        convex end, (F, A): where ray tracing and angular windows are least precise."""
        return _border_normals(radii_mm)[3]

    def to_mm(self, path: np.ndarray) -> np.ndarray:
        # the step at index r lies between samples r - 1 and r
        return (path + 0.5) * self.dr - 0.5 * self.dr

    def shadows(
        self, image: np.ndarray, lumen_mm: np.ndarray, vessel_mm: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]], np.ndarray]:
        """Shadowed sectors, which of them are calcium, calcium polygons (frame-plane mm) and the
        reflector radius of each direction (F, A), mm."""
        n_f, n_a, n_r = image.shape
        r_mm = self.radii[None, None, :]
        depth = self.samples(1.0)
        behind_lo = vessel_mm[..., None] + 0.15
        behind_hi = vessel_mm[..., None] + 0.15 + depth * self.dr
        band = (r_mm >= behind_lo) & (r_mm <= behind_hi)
        far = np.where(band, image, np.nan)
        with np.errstate(invalid="ignore"):
            far_mean = np.nanmean(far, axis=-1)
        # directions with no far field take their frame's typical value (per frame, so that a
        # frame's borders do not depend on which frames share its batch)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            typical = np.nan_to_num(np.nanmedian(far_mean, axis=1, keepdims=True), nan=0.0)
        far_mean = np.where(np.isfinite(far_mean), far_mean, typical)
        reference = np.median(far_mean, axis=1, keepdims=True)
        shadow = far_mean < self.o.shadow_ratio * np.maximum(reference, 1e-3)
        # a sector needs at least two directions; widen by one for the penumbra
        shadow = ndimage.binary_opening(shadow, structure=np.ones((1, 2), bool)) | (
            shadow & np.roll(shadow, 1, axis=1)
        )
        shadow = shadow | np.roll(shadow, 1, axis=1) | np.roll(shadow, -1, axis=1)
        calcium = np.zeros_like(shadow)
        polygons: list[list[np.ndarray]] = []
        reflector = np.full((n_f, n_a), np.inf)
        inner_mm = self.radii[self.ring] if self.ring is not None else 0.0
        depth = self.o.calcium_depth_fraction
        theta = 2 * np.pi * np.arange(n_a) / n_a
        for f in range(n_f):
            polys: list[np.ndarray] = []
            if shadow[f].any():
                peak = np.argmax(np.where(r_mm[0] < vessel_mm[f][:, None] + 0.1, image[f], -np.inf), axis=-1)
                peak_mm = self.radii[peak]
                reflector[f] = np.where(shadow[f], peak_mm, np.inf)
                lumen_fit = _fourier_fill(lumen_mm[f], shadow[f])
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

    def run(self, frames: np.ndarray, polar: dict[int, np.ndarray]) -> _Borders:
        image = np.stack([polar[int(i)] for i in frames])
        log_image = np.log1p(image)
        stability = self.stability(frames, polar)
        if stability is not None and self.ring is None:
            self.ring = _ring_extent(stability, self.o.ring_correlation, self.samples(self.o.max_ring_mm))
        lumen_path, lumen_strength = self.lumen(stability, log_image, image)
        lumen_mm = self.to_mm(lumen_path)
        lumen_mm = self._normal_refine(frames, lumen_mm, passes=self.o.normal_refine_passes)
        # the wall is searched outside the traced lumen (to_mm is path * dr): the region step
        # below only reaches into the narrow ends of a flattened lumen, where the wall is not
        vessel_path, vessel_strength = self.vessel(log_image, lumen_mm / self.dr)
        lumen_mm = self._region_refine(frames, lumen_mm)
        vessel_mm = self.to_mm(vessel_path)
        shadow, calcium, polygons, reflector = self.shadows(image, lumen_mm, vessel_mm)
        wire = shadow & ~calcium
        # nothing behind calcium is seen: the lumen ends in front of its leading edge
        lumen_mm = np.where(calcium, np.minimum(lumen_mm, reflector - 0.5 * self.dr), lumen_mm)
        long_run = max(3, self.o.n_angles // 12)  # 30 degrees
        fill = {
            "ellipse_aspect": self.o.ellipse_fill_aspect,
            "fit_margin": int(round(self.angles(self.o.ellipse_fit_margin_deg))),
        }
        dent = {
            "min_dent_mm": self.o.branch_excess_mm,
            "min_dent_fraction": self.o.branch_excess_fraction,
            "grow_mm": self.o.branch_grow_mm,
        }
        branch = {
            "min_excess_mm": self.o.branch_excess_mm,
            "min_excess_fraction": self.o.branch_excess_fraction,
            "wall_fraction": self.o.branch_wall_fraction,
            "grow_mm": self.o.branch_grow_mm,
            "max_width": int(round(self.angles(self.o.branch_max_deg))),
        }
        # a flattened lumen (a compressed vein) is far from any ellipse at its ends
        flat = _aspect_ratio(lumen_mm) >= self.o.flattened_aspect
        filled = shadow.copy()
        for f in range(len(frames)):
            lumen_hidden, vessel_hidden = wire[f], shadow[f]
            if self.o.penumbra:
                lumen_hidden = _penumbra(lumen_mm[f], lumen_hidden, **dent)
                vessel_hidden = _penumbra(vessel_mm[f], vessel_hidden, **dent)
            if self.o.branch_max_deg > 0 and not flat[f]:
                # the reader closes the main vessel across an ostium: its sector is filled with
                # the shadows, from the borders seen elsewhere
                lumen_branch, vessel_branch = _branch_sectors(
                    lumen_mm[f], vessel_mm[f], ~lumen_hidden, ~vessel_hidden, **branch
                )
                lumen_hidden, vessel_hidden = lumen_hidden | lumen_branch, vessel_hidden | vessel_branch
            lumen_mm[f] = _fill_hidden(lumen_mm[f], lumen_hidden, long_run=long_run, **fill)
            vessel_mm[f] = _fill_hidden(vessel_mm[f], vessel_hidden, long_run=long_run, **fill)
            filled[f] |= lumen_hidden | vessel_hidden
        vessel_mm = np.maximum(vessel_mm, lumen_mm + self.o.min_wall_mm)
        # interpolated directions (shadows, their penumbra, an ostium) lower the confidence
        visible = ~filled
        strength = np.where(visible, 0.5 * (lumen_strength + vessel_strength), np.nan)
        confidence = np.nan_to_num(np.nanmean(strength, axis=1), nan=0.0) * (0.5 + 0.5 * visible.mean(axis=1))
        if stability is None:
            confidence = confidence * 0.7
        arc = calcium.sum(axis=1) * 360.0 / self.o.n_angles
        return _Borders(lumen_mm, vessel_mm, polygons, arc, np.clip(confidence, 0.0, 1.0))


def _temporal_median(radii: np.ndarray, indices: np.ndarray, size: int) -> np.ndarray:
    """Median of each direction's radius over ``size`` consecutive frames, on runs of
    consecutive frame indices only (an ungated pullback analysed frame by frame).

    At 15-30 frames/s the wall moves little over a few frames, while a border that cuts into
    the lumen in one frame (chance correlation of slow blood, a border along the rays) rarely
    does so at the same angle in most of its neighbours. Sparse (gated) frames are left alone.

    Parameters
    ----------
    radii : ndarray of shape (F, A), mm
    indices : ndarray of shape (F,), int, increasing
    size : int
        Odd window length in frames; < 3 disables.

    Returns
    -------
    ndarray of shape (F, A)
    """
    size = size | 1  # centred window
    if size < 3 or len(radii) < size:
        return radii
    out = radii.copy()
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    for run in np.split(np.arange(len(indices)), breaks):
        if len(run) >= size:
            out[run] = ndimage.median_filter(radii[run], size=(size, 1), mode="nearest")
    return out


def _despike(radii_mm: np.ndarray, size: int, tolerance_mm: float) -> np.ndarray:
    """Replace narrow excursions of closed borders by the median of their neighbourhood.

    A few directions that leave the border together (a speckle blob, an overlay marker, the edge
    of a guidewire sector) are not anatomy: the wall does not change by a few tenths of a mm
    over a few degrees and come back. Excursions wider than ``size`` directions are kept.

    Parameters
    ----------
    radii_mm : ndarray of shape (F, A)
    size : int
        Angular window in directions; < 3 disables.
    tolerance_mm : float

    Returns
    -------
    ndarray of shape (F, A)
    """
    if size < 3:
        return radii_mm
    med = ndimage.median_filter(radii_mm, size=(1, size | 1), mode="wrap")
    return np.where(np.abs(radii_mm - med) > tolerance_mm, med, radii_mm)


def segment_pullback(
    pullback: Pullback,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    *,
    options: SegmentationOptions | None = None,
    n_angles: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ContourSet:
    """Lumen and vessel (EEM) borders of the chosen frames.

    Parameters
    ----------
    pullback : Pullback
        Frames (N, H, W); the raw neighbours of each analysed frame are read too.
    frame_indices : sequence of int or None
        Frames to segment (default: all).
    options : SegmentationOptions or None
    n_angles : int or None
        Shortcut for ``options.n_angles``: points per contour.
    progress : callable(fraction, message) or None
    cancel : threading.Event or None

    Returns
    -------
    ContourSet
        Frame-plane mm contours with ``calcium``, ``calcium_arc_deg`` and ``confidence``.
    """
    o = options or SegmentationOptions()
    if n_angles is not None:
        o = SegmentationOptions(**{**o.__dict__, "n_angles": int(n_angles)})
    n = pullback.n_frames
    frames = np.arange(n) if frame_indices is None else np.unique(np.asarray(frame_indices, dtype=int))
    if frames.size and (frames[0] < 0 or frames[-1] >= n):
        raise IVUSInputError(
            f"frames {frames[0]}-{frames[-1]}: outside the pullback's 0-{n - 1}; choose frames inside it"
        )
    seg = _Segmenter(pullback, o)
    lumen, vessel, arcs, conf = [], [], [], []
    calcium: list[list[np.ndarray]] = []
    # measure the ring-down on frames spread over the whole pullback before segmenting any batch,
    # not over the chosen frames: a frame's borders must not depend on which others were asked
    # for (a profile taken from a few frames at a side branch moved a border by 0.5 mm)
    if n >= 3 and frames.size:
        probe = np.unique(np.linspace(0, n - 1, min(n, 12)).astype(int))
        needed = set(probe.tolist())
        for i in probe:
            needed.update(_neighbours(int(i), n) or ())
        polar = seg.polar(sorted(needed))
        st = seg.stability(probe, polar)
        if st is not None:
            seg.ring = _ring_extent(st, o.ring_correlation, seg.samples(o.max_ring_mm))
            seg.trust = _correlation_trust(
                st, seg.ring, seg.samples(0.3, 3), o.still_blood_correlation, o.still_blood_range
            )
            if seg.trust < 1.0:
                # still blood is as correlated as the catheter: where its ring-down ends, the grey
                # levels tell, as far as the correlation cannot (bright 40-60 MHz blood right after
                # a masked catheter hides the ring-down's end in grey: LAD lumens fell to 0.7 mm2)
                grey = np.median(np.stack([polar[int(i)] for i in probe]).reshape(-1, seg.n_r), axis=0)
                dark = min(seg.ring, _grey_ring(grey, seg.samples(o.max_ring_mm), seg.samples(0.05)))
                seg.ring = int(round(seg.trust * seg.ring + (1.0 - seg.trust) * dark))
    threads = max(1, min(o.threads or (os.cpu_count() or 1), 8))
    # the ring-down and its profile are measured once above, so batches are independent and
    # run on all cores (numpy and scipy release the GIL in their array loops)
    if seg.profile is None:
        threads = 1
    # batches of a size fixed by the frame count alone (never by the core count): a frame's
    # borders may depend on its batch's float32 summation order, so results stay identical on any
    # machine; at least two batches keep two cores busy
    size = max(1, min(o.batch_frames, -(-len(frames) // 2)))
    batches = [frames[k : k + size] for k in range(0, len(frames), size)]

    stop = threading.Event()

    def work(batch: np.ndarray) -> _Borders:
        if stop.is_set() or (cancel is not None and cancel.is_set()):
            raise IVUSCancelled("segmentation cancelled")
        needed = set(batch.tolist())
        for i in batch:
            needed.update(_neighbours(int(i), n) or ())
        return seg.run(batch, seg.polar(sorted(needed)))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = 0
        try:
            for batch, borders in zip(batches, pool.map(work, batches), strict=True):
                lumen.append(borders.lumen)
                vessel.append(borders.vessel)
                calcium += borders.calcium
                arcs.append(borders.calcium_arc_deg)
                conf.append(borders.confidence)
                done += len(batch)
                if progress is not None:
                    progress(min(1.0, done / max(len(frames), 1)), f"segmenting frame {int(batch[-1])}")
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if not frames.size:
        return ContourSet(
            frames=(),
            pixel_spacing_mm=pullback.pixel_spacing_mm,
            catheter_center_px=pullback.catheter_center_px,
        )
    lumen_mm = np.concatenate(lumen)
    vessel_mm = np.concatenate(vessel)
    lumen_mm = _temporal_median(lumen_mm, frames, o.temporal_median_frames)
    vessel_mm = _temporal_median(vessel_mm, frames, o.temporal_median_frames)
    lumen_mm = _despike(lumen_mm, o.despike_angles, o.despike_mm)
    vessel_mm = _despike(vessel_mm, o.despike_angles, o.despike_mm)
    if o.border_smooth_deg > 0:
        # each direction's border is placed on its own grey-level step, which speckle moves by a
        # sample or so from one direction to the next: a border that wanders so within a few
        # degrees is noise, not anatomy
        lumen_mm, vessel_mm = (
            ndimage.gaussian_filter1d(x, seg.angles(o.border_smooth_deg), axis=1, mode="wrap")
            for x in (lumen_mm, vessel_mm)
        )
    vessel_mm = np.maximum(vessel_mm, lumen_mm + o.min_wall_mm)
    arcs_all = np.concatenate(arcs)
    conf_all = np.concatenate(conf)
    out = []
    for k, index in enumerate(frames):
        out.append(
            FrameContours(
                index=int(index),
                lumen=polar_polygon(lumen_mm[k]),
                vessel=polar_polygon(vessel_mm[k]),
                calcium=tuple(calcium[k]),
                calcium_arc_deg=float(arcs_all[k]),
                confidence=float(conf_all[k]),
            )
        )
    return ContourSet(
        frames=tuple(out),
        pixel_spacing_mm=pullback.pixel_spacing_mm,
        catheter_center_px=pullback.catheter_center_px,
    )
