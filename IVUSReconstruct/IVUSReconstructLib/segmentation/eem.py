"""Vessel border (EEM): the dark-to-bright step of media to adventitia outside the lumen."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .paths import dp_closed_path
from .polar import _box, _runs, _step, _subsample
from .shapes import _border_normals

if TYPE_CHECKING:
    from .segmenter import _Segmenter


def _wall_step(x: np.ndarray, w: int, wall_start: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Outward step whose inner window stays inside the wall, (F, A, R).

    Across a wall thinner than two windows the plain step's inner window reaches into the
    dark lumen, so the lumen's own (much larger) step leaks outwards and pulls the EEM onto
    the lumen border; the inner mean is therefore taken from ``wall_start`` (F, A) on.
    """
    n_r = x.shape[-1]
    cs = np.empty(x.shape[:-1] + (n_r + 1,), np.float32)
    cs[..., 0] = 0.0
    np.cumsum(x, axis=-1, dtype=np.float32, out=cs[..., 1:])
    r = np.arange(n_r)[None, None, :]
    lo = np.clip(np.maximum(r - w, wall_start[..., None]), 0, np.maximum(r - 1, 0))
    hi = np.minimum(r + w, n_r)
    # the sums up to r and r + w are the same for every ray: slices, not gathers; those from
    # each ray's own ``lo``, one gather from the flat sums
    at_r = cs[..., :n_r]
    rays = np.arange(cs.size // (n_r + 1)).reshape(x.shape[:-1] + (1,)) * (n_r + 1)
    inner = (at_r - cs.reshape(-1).take(lo + rays)) / np.maximum(r - lo, 1).astype(np.float64)
    outer = (cs[..., hi[0, 0]] - at_r) / np.maximum(hi - r, 1).astype(np.float64)
    return np.where(r > wall_start[..., None], outer - inner, edge).astype(np.float32)


def _rise_end(smooth: np.ndarray, base: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """First radial sample (F, A) beyond the lumen where its grey-level rise stops.

    From the lumen border (``base``, F x A samples) the log grey level climbs to the intima's
    leading edge over the beam's axial blur; the first sample after which it no longer
    climbs ends that rise (at most ``reach``, F x A samples, beyond ``base``).
    """
    n_r = smooth.shape[-1]
    top = int(np.max(reach)) + 1
    k = np.arange(top)
    rows = np.clip(base[..., None] + k, 0, n_r - 1)
    prof = np.take_along_axis(smooth, rows, axis=-1)
    nxt = np.take_along_axis(smooth, np.minimum(rows + 1, n_r - 1), axis=-1)
    stop = (nxt <= prof) | (k >= reach[..., None])
    return base + np.argmax(stop, axis=-1)


def _skipped_layers(strength: np.ndarray, gap: int) -> np.ndarray:
    """Strongest rise (F, A, K) a border at each depth K would leave inside the vessel.

    ``strength`` (F, A, K): the 0-1 dark-to-bright step at each depth across the wall. The
    adventitia is the first bright layer out of the media: a border beyond a rise nearly as
    strong as its own has gone past the adventitia (onto bright perivascular tissue beyond a
    dark gap), so each depth is charged the strongest rise more than ``gap`` samples inside
    it (the border's own step spans those).
    """
    pos = np.clip(strength, 0.0, 1.0)
    best = np.maximum.accumulate(pos, axis=-1)
    out = np.zeros_like(best)
    if gap < best.shape[-1]:
        out[..., gap:] = best[..., :-gap] if gap > 0 else best
    return out


def _fill_echolucent(seg: _Segmenter, smooth: np.ndarray, lumen_path: np.ndarray) -> np.ndarray:
    """Log grey levels (F, A, R) with echolucent plaque raised to the wall's typical level.

    Outside the lumen, what is darker than the frame's blood (below the lower Tukey fence of
    the grey levels inside the lumen) is echolucent plaque where blood echoes (40-60 MHz): its
    rise onto the media is not the EEM, which the trace took once the lumen stopped in front
    of the pool. Raised to the frame's wall level (the median beyond the lumen), the layers left
    are plaque, media and adventitia. Weighted by ``seg.trust`` and by how nearly blood is as
    bright as the wall (``dark_tissue_max_contrast``): where blood is dark (20 MHz) what is darker
    is a shadow or the far field.
    """
    r = np.arange(seg.n_r)[None, None, :]
    inside = (r > seg.ring) & (r < lumen_path[..., None] - 1)
    beyond = r > lumen_path[..., None] + 1
    n_f = len(smooth)
    fence = np.full(n_f, -np.inf, np.float32)
    level = np.zeros(n_f, np.float32)
    weight = np.zeros(n_f, np.float32)
    top = seg.o.dark_tissue_max_contrast
    for f in range(n_f):
        blood = smooth[f][inside[f]]
        wall = smooth[f][beyond[f]]
        if blood.size < 20 or wall.size < 20:
            continue
        q1, q3 = np.percentile(blood, [25, 75])
        fence[f] = q1 - 1.5 * max(q3 - q1, 1e-3)
        level[f] = np.median(wall)
        # as for the lumen's cue: only where blood echoes nearly as much as the wall
        contrast = np.percentile(wall, 75) - np.median(blood)
        weight[f] = seg.trust * np.clip((top - contrast) / (0.5 * top), 0.0, 1.0)
    dark = beyond & (smooth < fence[:, None, None])
    # only a dark run that begins right behind the lumen (behind its cap) is plaque: a dark
    # lumen further out (an artery beside a vein) is beyond the EEM. The run ends at the first
    # sample past ``gap`` that is not dark.
    past = r > lumen_path[..., None] + seg.samples(0.4, 2)
    stop = ~dark & past
    end = np.where(stop.any(axis=-1), np.argmax(stop, axis=-1), seg.n_r)
    dark &= r < end[..., None]
    w = weight[:, None, None]
    raised = w * level[:, None, None] + (1.0 - w) * smooth
    out = np.where(dark, raised, smooth).astype(smooth.dtype)
    return out


def trace_vessel(
    seg: _Segmenter, log_image: np.ndarray, lumen_path: np.ndarray, prior: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """EEM path (F, A) in samples: the media-adventitia step, the first clear dark-to-bright
    rise of the wall beyond the lumen.

    Each depth costs its missing step strength, a little for its distance from the lumen and
    the strongest clear rise it would leave inside the vessel (:func:`_skipped_layers`): a
    border beyond the adventitia (onto bright tissue past dark perivascular fat) pays for the
    adventitia it skipped. Where blood is dark (``seg.trust`` 0) the search starts beyond the
    lumen's own blurred rise (:func:`_rise_end`) with a step window at that resolution.

    ``prior`` (F, A, R), optional: a cost of each radius from keyframes' borders."""
    # blood that does not decorrelate (seg.trust 0) is the 20 MHz phased array's: its axial
    # resolution is about half that of a 40-60 MHz catheter, and a step filter at the finer
    # scale answers to every speckle across the wall
    still = 1.0 - seg.trust
    w = seg.samples(seg.o.vessel_edge_mm * (1.0 + still * seg.o.still_blood_edge_gain), 2)
    smooth = _box(log_image, 3, 3)
    if seg.o.dark_tissue_ahead_mm > 0 and seg.trust > 0 and seg.ring is not None:
        smooth = _fill_echolucent(seg, smooth, lumen_path)
    edge = _step(smooth, w)
    base = np.floor(lumen_path).astype(int)
    # a wall crossed obliquely (the flanks of an oval or flattened lumen) is longer along the
    # ray than across it: lengths along the ray are the wall's own times this stretch
    # (from the lumen's overall shape, its first harmonics: a trace cut by calcium or jagged
    # by speckle would tilt at every notch)
    shape = lumen_path * seg.dr
    if seg.o.wall_tilt_harmonics > 0:
        spec = np.fft.rfft(shape, axis=1)
        spec[:, seg.o.wall_tilt_harmonics + 1 :] = 0
        shape = np.fft.irfft(spec, n=shape.shape[1], axis=1)
    tilt = _border_normals(shape)[2]
    stretch = 1.0 / np.clip(np.sqrt(1.0 - tilt**2), 1.0 / seg.o.max_wall_stretch, 1.0)
    wall_start = base
    if seg.o.wall_only_inner:
        blur = np.round(seg.samples(seg.o.wall_blur_mm, 2) * stretch).astype(int)
        wall_start = base + blur
        if seg.o.eem_beyond_lumen_rise:
            wall_start = _rise_end(smooth, base, blur)
        edge = _wall_step(smooth, w, wall_start, edge)
    # where blood does not decorrelate (20 MHz phased array, seg.trust 0) the intima and media
    # show as one bright band right outside the dark lumen, whose outward step the EEM took
    # (set B: vessel/lumen area ratio 1.19 median): the EEM lies at least that band further out
    thin = seg.o.min_wall_mm + (1.0 - seg.trust) * seg.o.min_wall_still_blood_mm
    first = max(seg.samples(thin), w) + 1  # across the wall
    lo = base[..., None] + np.round(first * stretch[..., None]).astype(int)
    r = np.arange(seg.n_r)[None, None, :]
    allowed = (r >= lo) & (r <= seg.n_r - w - 1)
    if seg.o.wall_only_inner and seg.o.eem_beyond_lumen_rise:
        # the lumen's own rise (blood to the intima's leading edge, blurred over a few samples
        # by the beam and the smoothing) is no EEM: the media lies beyond where it ends
        # (where blood is dark: where blood echoes, a bright adventitia right behind a thin
        # intima rises with the lumen's own edge)
        allowed &= r > (base + np.round(still * (wall_start - base)).astype(int))[..., None]
    band = np.where(allowed, edge, np.nan)
    scale = np.nanpercentile(band.reshape(len(edge), -1), 99, axis=1)
    scale = np.maximum(np.nan_to_num(scale, nan=1.0), 1e-3)[:, None, None]
    cost = np.where(allowed, 1.0 - edge / scale, np.inf).astype(np.float32)
    # a direction whose lumen reaches the field's edge (a side branch, the far field) leaves no
    # depth to search: there the EEM follows the lumen out to the edge at no cost, instead of
    # every closed path being forbidden (a cost of 1e9 that swamps, in float32, the trace of
    # every other direction)
    open_end = (r >= np.minimum(lo, seg.n_r - 1)) & ~allowed.any(axis=-1, keepdims=True)
    cost = np.where(open_end, np.float32(1.0), cost)
    # traced as a wall thickness on top of the lumen, measured across the wall: it thickens
    # and thins gradually around the vessel, whatever the lumen's shape, so a jump of the
    # thickness (onto a bright patch of perivascular tissue) costs what a jump of the radius
    # would not
    n_wall = seg.samples(seg.o.max_wall_mm)
    offsets = np.arange(n_wall + 1)
    rows = np.minimum(base[..., None] + np.round(offsets * stretch[..., None]).astype(int), seg.n_r - 1)
    # nearer edges are preferred a little, and the first clear rise more: the adventitia is the
    # first bright layer out (a border beyond a rise as strong as its own has crossed the
    # adventitia and a dark gap onto perivascular tissue)
    inward = seg.o.vessel_inward_preference * np.maximum(offsets - first, 0) / max(n_wall, 1)
    wall_cost = np.take_along_axis(cost, rows, axis=-1) + inward.astype(np.float32)
    if seg.o.eem_skip_weight > 0 and prior is None:
        # only rises of the wall itself: the lumen's own rise (the step's inner window still
        # reaching into blood) is no layer the EEM leaves behind
        within = r > wall_start[..., None]
        # only rises that stand out of the frame's own speckle (above its
        # ``eem_skip_floor_percentile`` of rises across the wall) count: inside a thick
        # plaque the speckle rises everywhere, and the EEM would stop on the first of them
        q = np.nanpercentile(band.reshape(len(edge), -1), seg.o.eem_skip_floor_percentile, axis=1)
        q = (np.nan_to_num(q, nan=0.0)[:, None, None] / scale).clip(0.0, 0.95)
        clear = np.clip((edge / scale - q) / (1.0 - q), 0.0, 1.0)
        wall_cost = wall_cost + seg.o.eem_skip_weight * _skipped_layers(
            np.take_along_axis(np.where(allowed & within, clear, 0.0), rows, axis=-1), 2 * w
        )
    if prior is not None:
        wall_cost = wall_cost + np.take_along_axis(prior, rows, axis=-1)
    thickness = dp_closed_path(wall_cost, max_step=seg.max_step, smooth_weight=seg.o.wall_smooth_weight)
    path = np.minimum(np.take_along_axis(rows, thickness[..., None], axis=-1)[..., 0], seg.n_r - 1)
    step = np.take_along_axis(edge, path[..., None], axis=-1)[..., 0]
    fine = _subsample(edge, path)
    if seg.o.faint_wall_smooth_deg > 0:
        fine = _steady_faint_wall(seg, fine, lumen_path, stretch, step)
    return fine, np.clip(step / scale[..., 0], 0.0, 1.0)


def _steady_faint_wall(
    seg: _Segmenter, path: np.ndarray, lumen_path: np.ndarray, stretch: np.ndarray, step: np.ndarray
) -> np.ndarray:
    """Smooth the EEM around the vessel where its step is faint, (F, A) samples.

    A vein's thin wall before echogenic tissue shows hardly any step at the EEM, which each
    ray then places within a few samples; the wall's thickness varies slowly around the
    vessel, so there it is taken from its neighbours (on a smoothed lumen). A clear step
    (dark media to bright adventitia, ``step`` of ``clear_eem_step`` or more in log grey
    levels) is kept as found: plaque thickness may change quickly.
    """
    clear = np.clip(step / seg.o.clear_eem_step, 0.0, 1.0)
    across = (path - lumen_path) / stretch
    across = ndimage.gaussian_filter1d(across, seg.angles(seg.o.faint_wall_smooth_deg), axis=1, mode="wrap")
    inner = ndimage.gaussian_filter1d(
        lumen_path, seg.angles(seg.o.faint_wall_lumen_smooth_deg), axis=1, mode="wrap"
    )
    return clear * path + (1.0 - clear) * (inner + across * stretch)


def _weighted_harmonics(radii: np.ndarray, weight: np.ndarray, order: int) -> np.ndarray:
    """Closed border r(theta) (A,) fitted by ``order`` Fourier harmonics, each direction
    weighted by ``weight`` (A,) (weighted least squares), evaluated in every direction."""
    n = len(radii)
    theta = 2 * np.pi * np.arange(n) / n
    cols = [np.ones(n)]
    for k in range(1, order + 1):
        cols += [np.cos(k * theta), np.sin(k * theta)]
    design = np.column_stack(cols)
    root = np.sqrt(weight)
    coef, *_ = np.linalg.lstsq(design * root[:, None], radii * root, rcond=None)
    return design @ coef


def bright_beyond(
    seg: _Segmenter, image: np.ndarray, vessel_mm: np.ndarray, hidden: np.ndarray
) -> np.ndarray:
    """How bright the tissue just outside the traced EEM is, 0-1 (F, A).

    The EEM is the step from the dark media onto the bright adventitia: where the tissue just
    outside the border (``unseen_wall_look_mm``, linear grey levels) is dark (a shadow behind
    calcium or the guidewire, dark perivascular tissue) the trace found no adventitia and
    followed the darkness. It is judged against the frame's own typical value there (over the
    directions not ``hidden``, F x A), so no absolute grey level enters: 0 at and below
    ``unseen_wall_dark`` of it, 1 at and above ``unseen_wall_bright``, and 1 (not judged) at the
    field's edge.

    Parameters
    ----------
    image : ndarray of shape (F, A, R)
        Linear grey levels.
    vessel_mm : ndarray of shape (F, A)
        The traced EEM (:func:`trace_vessel`).
    hidden : ndarray of shape (F, A), bool
    """
    o = seg.o
    n_a, n_r = image.shape[1:]
    look = seg.samples(o.unseen_wall_look_mm)
    first = np.clip(np.round(vessel_mm / seg.dr).astype(int) + 1, 0, n_r - 1)
    rows = np.minimum(first[..., None] + np.arange(look), n_r - 1)
    beyond = np.take_along_axis(image, rows, axis=-1).mean(axis=-1)
    # a border at the field's edge shows nothing beyond it: not dark, unknown (a leak, filled
    # with the shadows)
    edge = first + look // 2 >= n_r
    hidden = hidden | edge
    typical = np.array(
        [
            np.median(b[~h]) if (~h).sum() >= n_a // 4 else np.median(b)
            for b, h in zip(beyond, hidden, strict=True)
        ]
    )
    ratio = beyond / np.maximum(typical[:, None], 1e-6)
    lo, hi = o.unseen_wall_dark, o.unseen_wall_bright
    return np.where(edge, 1.0, np.clip((ratio - lo) / max(hi - lo, 1e-6), 0.0, 1.0))


def fill_unseen_wall(
    vessel_mm: np.ndarray,
    traced_mm: np.ndarray,
    lumen_mm: np.ndarray,
    bright: np.ndarray,
    hidden: np.ndarray,
    *,
    min_seen: float,
    excess_mm: float,
    max_run: int,
    smooth: float,
    by_wall: np.ndarray | None = None,
) -> np.ndarray:
    """EEM radii (F, A) whose unseen directions follow the arc that shows the adventitia.

    Unseen are the sectors with no bright tissue beyond the trace (``bright`` below 0.5) that
    the shadow fills did not already close, together with the ``hidden`` sectors touching them
    (a shadow's fill reaches only as far as the shadow was found, and takes the trace beside
    it for seen), when those dark directions are at least a third of the sector; a hidden
    sector alone, or one a few dark directions merely widen, keeps its fill unless that fill
    leaves the seen arc's shape outwards by more than ``excess_mm`` (real EEMs away from
    branches stay within ~0.13 mm of their ellipse: it was extrapolated from a trace that had
    followed the dark). A sector wider than ``max_run`` directions is left (the arcs either side
    fix the shape across it only loosely). There the EEM keeps the vessel's smooth,
    near-elliptic shape: each frame's EEM is fitted by two Fourier harmonics (an ellipse's)
    weighted by ``bright`` over the seen directions, and each direction is blended between its
    own border and that fit, by how far (Gaussian ``smooth``, directions) it lies inside an
    unseen sector. On frames ``by_wall`` (F,) (a flattened vein, which two harmonics do not
    follow) the wall thickness (EEM minus lumen), which varies slowly around the vessel whatever
    the lumen's shape, is fitted instead. Darkness draws a trace outwards, never inwards: the
    border moves no further out than the trace went (nor than the shadow fill). A frame that
    shows less than ``min_seen`` of its turn is left as it is (too little to fit).

    Parameters
    ----------
    vessel_mm : ndarray of shape (F, A)
        The EEM after the shadow and branch fills.
    traced_mm : ndarray of shape (F, A)
        The EEM as traced, before those fills.
    lumen_mm : ndarray of shape (F, A)
    bright : ndarray of shape (F, A)
        0-1 (:func:`bright_beyond`).
    hidden : ndarray of shape (F, A), bool
        The directions the shadow and branch fills closed.
    min_seen : float
        0-1.
    excess_mm : float
    max_run : int
        Directions.
    smooth : float
        Directions.
    by_wall : ndarray of shape (F,), bool, or None
    """
    out = vessel_mm.copy()
    n_a = vessel_mm.shape[1]
    for f in range(len(out)):
        dark = (bright[f] < 0.5) & ~hidden[f]
        if not dark.any() and not hidden[f].any():
            continue
        weight = np.where(dark | hidden[f], 0.0, bright[f])
        if weight.mean() < min_seen:
            continue
        base = lumen_mm[f] if by_wall is not None and by_wall[f] else 0.0
        fit = base + _weighted_harmonics(vessel_mm[f] - base, weight + 1e-3, 2)
        unseen = np.zeros(n_a, bool)
        for start, length in _runs(dark | hidden[f]):
            idx = (start + np.arange(length)) % n_a
            if length <= max_run and (
                3 * dark[idx].sum() >= length or np.max(vessel_mm[f, idx] - fit[idx]) > excess_mm
            ):
                unseen[idx] = True
        if not unseen.any():
            continue
        keep = ndimage.gaussian_filter1d((~unseen).astype(float), smooth, mode="wrap")
        keep = np.where(unseen, 0.5 * keep, keep)
        blend = keep * vessel_mm[f] + (1.0 - keep) * fit
        out[f] = np.minimum(blend, np.maximum(traced_mm[f], vessel_mm[f]))
    return out
