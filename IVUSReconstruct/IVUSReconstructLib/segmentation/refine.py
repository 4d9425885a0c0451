"""Frame-plane refinements of the lumen border where ray tracing is least precise."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ..geometry import ray_radii
from .polar import _block_mean, _neighbours, _step, _subsample
from .shapes import _aspect_ratio, _axis_ends, _border_normals

if TYPE_CHECKING:
    from .segmenter import _Segmenter


def _normal_refine(seg: _Segmenter, frames: np.ndarray, radii_mm: np.ndarray, *, passes: int) -> np.ndarray:
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
    half = seg.o.normal_refine_mm
    if half <= 0 or passes < 1:
        return radii_mm
    n_f, n_a = radii_mm.shape
    sr, sc = seg.pb.pixel_spacing_mm
    cr, cc = seg.pb.catheter_center_px
    pix = min(sr, sc)
    step = 0.5 * pix
    k = int(np.ceil((half + 0.2) / step))
    t = np.arange(-k, k + 1) * step
    w = max(2, int(round(0.12 / step)))
    theta = 2 * np.pi * np.arange(n_a) / n_a
    raw = None
    smoothed: list[_Smoothed | None] = [None] * n_f
    for _ in range(passes):
        x, y = radii_mm * np.cos(theta), radii_mm * np.sin(theta)
        nx, ny, tilt, movable = _border_normals(radii_mm)
        reach = half * movable
        if not (reach >= pix).any():
            break
        if raw is None:
            raw = seg.frames(frames)
        rows = cr + (y[..., None] + t * ny[..., None]) / sr
        cols = cc + (x[..., None] + t * nx[..., None]) / sc
        prof = np.empty(rows.shape, np.float32)
        for f in range(n_f):
            smoothed[f] = _Smoothed.covering(raw[f], rows[f], cols[f], smoothed[f])
            prof[f] = smoothed[f].sample(rows[f], cols[f])
        prof = ndimage.uniform_filter1d(prof, size=3, axis=1, mode="wrap")
        edge = _step(prof, w)
        allowed = np.abs(t)[None, None, :] <= np.maximum(reach, step)[..., None]
        # of two steps, the one nearer the traced border
        top = np.abs(edge).max(axis=-1, keepdims=True)
        score = np.where(allowed, edge - 0.2 * np.abs(t) / np.maximum(reach, step)[..., None] * top, -np.inf)
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


class _Smoothed:
    """A frame smoothed by a unit Gaussian (sigma 1 px) over the box its samples need.

    Filtering only that box, plus the kernel's reach (4 px) on the sides that are not the
    image's own border, gives bit for bit the values a filter of the whole frame gives there
    (each output is the same weighted sum of the same pixels): a border's neighbourhood is a
    small part of a 512 x 512 frame.
    """

    REACH = 4  # scipy's Gaussian kernel radius at sigma 1: int(4.0 * sigma + 0.5)

    def __init__(self, frame: np.ndarray, r0: int, r1: int, c0: int, c1: int):
        h, w = frame.shape
        self.r0, self.c0 = max(r0 - self.REACH, 0), max(c0 - self.REACH, 0)
        r_end, c_end = min(r1 + self.REACH, h), min(c1 + self.REACH, w)
        # rows / columns whose values are exact: away from a cut, or at the image's border
        self.ok = (
            0 if self.r0 == 0 else self.r0 + self.REACH,
            h if r_end == h else r_end - self.REACH,
            0 if self.c0 == 0 else self.c0 + self.REACH,
            w if c_end == w else c_end - self.REACH,
        )
        crop = frame[self.r0 : r_end, self.c0 : c_end].astype(np.float32)
        self.image = ndimage.gaussian_filter(crop, sigma=1.0)

    @staticmethod
    def _box(frame: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[int, int, int, int]:
        # bilinear taps at floor and floor + 1, one pixel spare either side; clipped to the image
        # (mode "nearest" clamps there, as the whole frame would)
        h, w = frame.shape
        if not (np.isfinite(rows).all() and np.isfinite(cols).all()):
            return 0, h, 0, w
        r0 = int(np.clip(np.floor(rows.min()) - 1, 0, h - 1))
        r1 = int(np.clip(np.floor(rows.max()) + 3, r0 + 1, h))
        c0 = int(np.clip(np.floor(cols.min()) - 1, 0, w - 1))
        c1 = int(np.clip(np.floor(cols.max()) + 3, c0 + 1, w))
        return r0, r1, c0, c1

    @classmethod
    def covering(
        cls, frame: np.ndarray, rows: np.ndarray, cols: np.ndarray, previous: _Smoothed | None
    ) -> _Smoothed:
        """``previous`` if its exact part holds the samples (rows, cols) px, else a new box."""
        r0, r1, c0, c1 = cls._box(frame, rows, cols)
        if previous is not None:
            a, b, c, d = previous.ok
            if a <= r0 and r1 <= b and c <= c0 and c1 <= d:
                return previous
        return cls(frame, r0, r1, c0, c1)

    def sample(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bilinear values at (rows, cols) px of the whole frame (shifts by whole pixels are exact)."""
        return ndimage.map_coordinates(
            self.image, [rows - self.r0, cols - self.c0], order=1, mode="nearest"
        ).astype(np.float32)


def _region_refine(seg: _Segmenter, frames: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
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
    band_mm = seg.o.region_refine_mm
    n = seg.pb.n_frames
    pairs = [_neighbours(int(i), n) for i in frames]
    if band_mm <= 0 or seg.ring is None or any(q is None for q in pairs):
        return radii_mm
    weight_move = _move_weight(radii_mm)
    # the step exists for flattened lumens (compressed veins, slit-like stenoses), whose
    # narrow ends run along the rays; round and oval lumens are left to the ray tracing
    flattened = _aspect_ratio(radii_mm) >= seg.o.region_refine_min_aspect
    todo = np.flatnonzero((weight_move > 0.5).any(axis=1) & flattened)
    if todo.size == 0:
        return radii_mm
    out = radii_mm.copy()
    # only the frames with a border to move are loaded and filtered, once for all passes
    features = _region_features(seg, frames[todo], [pairs[k] for k in todo])
    for _ in range(seg.o.region_refine_passes):
        # each pass grows the band from the moved border: a long cut end is recovered in steps
        movable = np.maximum(_move_weight(out[todo]), _axis_ends(out[todo], seg.o.tip_half_angle_deg))
        out[todo] = _region_refine_frames(seg, out[todo], movable, *features)
    return out


def _region_features(
    seg: _Segmenter, frames: np.ndarray, pairs: list
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
    sr, sc = seg.pb.pixel_spacing_mm
    cr, cc = seg.pb.catheter_center_px
    f = 2 if max(sr, sc) < 0.08 else 1
    h, w = seg.pb.shape_px
    hd, wd = h // f, w // f

    def load(idx) -> np.ndarray:
        return _block_mean(seg.frames(idx), f, (hd, wd))

    sr, sc = sr * f, sc * f
    cr, cc = (cr - (f - 1) / 2) / f, (cc - (f - 1) / 2) / f
    sigma = (0.0, max(1.2, seg.o.region_window_mm / sr), max(1.2, seg.o.region_window_mm / sc))
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
    seg: _Segmenter,
    radii_mm: np.ndarray,
    weight_move: np.ndarray,
    stab: np.ndarray,
    mc: np.ndarray,
    spacing_mm: tuple[float, float],
    center_px: tuple[float, float],
) -> np.ndarray:
    band_mm = seg.o.region_refine_mm
    n_f, n_a = radii_mm.shape
    sr, sc = spacing_mm
    cr, cc = center_px
    pix = min(sr, sc)
    sigma = (max(1.2, seg.o.region_window_mm / sr), max(1.2, seg.o.region_window_mm / sc))
    h, w = stab.shape[1:]
    rho, i0, i1, fphi = _pixel_polar(h, w, cr, cc, sr, sc, n_a)
    rest = 1 - fphi
    ring_mm = seg.radii[seg.ring] + 0.1
    theta = 2 * np.pi * np.arange(n_a) / n_a
    step = 0.5 * pix
    rs = np.arange(0.0, seg.radii[-1], step)
    ray_rows = cr + rs[None, :] * np.sin(theta)[:, None] / sr
    ray_cols = cc + rs[None, :] * np.cos(theta)[:, None] / sc
    disk = ndimage.generate_binary_structure(2, 1)
    valid_all = rho > ring_mm
    # everything below happens within the band about the border (or in the lumen, or at the
    # catheter), and the Gaussian reaches a few pixels further: the frame is cropped to the
    # lumen's box plus that margin, which changes no value (distances to a blob inside the box,
    # filters away from the cut, components and holes of a mask empty at the cut) and spares the
    # filters and distance transforms most of a frame
    reach = [int(4.0 * sd + 0.5) for sd in sigma]  # scipy's Gaussian radius
    margin = int(np.ceil(max(band_mm, 0.5) / pix)) + 2
    out = radii_mm.copy()
    for f in range(n_f):
        border = rest * radii_mm[f][i0] + fphi * radii_mm[f][i1]
        mask = rho < border
        kept = mask | ~valid_all
        rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
        if rows.size == 0:
            continue  # no lumen in the frame: nothing to compete for
        r0, r1 = max(rows[0] - margin - reach[0], 0), min(rows[-1] + 1 + margin + reach[0], h)
        c0, c1 = max(cols[0] - margin - reach[1], 0), min(cols[-1] + 1 + margin + reach[1], w)
        crop = (slice(r0, r1), slice(c0, c1))
        mask = mask[crop]
        d_in = ndimage.distance_transform_edt(mask) * pix
        d_out = ndimage.distance_transform_edt(~mask) * pix
        valid = valid_all[crop]
        core = mask & valid & (d_in > 0.3)
        outer = ~mask & (d_out > 0.15) & (d_out <= 0.5)
        band = valid & ((mask & (d_in <= band_mm)) | (~mask & (d_out <= band_mm)))
        if core.sum() < 20 or outer.sum() < 20:
            continue
        score = np.full(mask.shape, -np.inf, np.float32)
        for feat in (stab[f][crop], mc[f][crop]):
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
            grown.astype(np.float32), [ray_rows - r0, ray_cols - c0], order=1, mode="constant"
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


@functools.lru_cache(maxsize=4)
def _pixel_polar(
    h: int, w: int, cr: float, cc: float, sr: float, sc: float, n_a: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each pixel's radius (mm) about the catheter and its place between two directions: the
    lower direction, the next one and the fraction of the way, (H, W) each, read-only (every
    pass over every batch of a pullback asks the same)."""
    yy = (np.arange(h)[:, None] - cr) * sr
    xx = (np.arange(w)[None, :] - cc) * sc
    rho = np.hypot(xx, yy)
    phi = np.mod(np.arctan2(yy, xx), 2 * np.pi) * n_a / (2 * np.pi)
    i0 = np.floor(phi).astype(int) % n_a
    i1 = (i0 + 1) % n_a
    fphi = phi - np.floor(phi)
    out = (rho, i0, i1, fphi)
    for a in out:
        a.flags.writeable = False
    return out


def _move_weight(radii_mm: np.ndarray) -> np.ndarray:
    """How far (0-1) each border point lies on a stretch running along the rays or at a sharp
    convex end, (F, A): where ray tracing and angular windows are least precise."""
    return _border_normals(radii_mm)[3]
