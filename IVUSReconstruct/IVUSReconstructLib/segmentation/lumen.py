"""Lumen border: catheter ring-down, correlation trust, candidate traces and their refinement."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from .paths import dp_closed_path
from .polar import _box, _boxes, _neighbours, _step, _subsample
from .shadows import narrow_shadows
from .shapes import _aspect_ratio

if TYPE_CHECKING:
    from .segmenter import _Segmenter


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


def trace_lumen(
    seg: _Segmenter,
    stability: np.ndarray | None,
    log_image: np.ndarray,
    image: np.ndarray,
    prior: np.ndarray | None = None,
    choice: np.ndarray | None = None,
    evidence: list[np.ndarray] | None = None,
    shadows: tuple[np.ndarray, np.ndarray] | None = None,
    placed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lumen path (F, A) in samples (sub-sample) and its edge strength (F, A).

    ``choice`` (F,) bool, optional: which frames keep the trace with blood judged at each depth
    (:func:`_region_blood`; where allowed), decided over the sequence (:func:`choose_traces`);
    by default each frame keeps the one that scores higher. ``evidence``, optional: a list that
    receives, per frame (F,), that trace's score gain, whether it is allowed, and both traces'
    areas (mm2).

    Two candidate borders are traced, one from the local step of the correlation and one
    from the blood/tissue regions it separates (robust when a large lumen's blood
    correlates by chance); where the pullback's blood does not decorrelate (``seg.trust`` < 1)
    a third from the regions of grey level (dark blood, bright wall). Each frame keeps the
    candidate that separates blood inside from tissue outside best. ``prior`` (F, A, R),
    optional, is a cost of each radius from keyframes' borders (:mod:`.keyframes`);
    ``shadows``, optional, :func:`.shadows.narrow_shadows` of these frames (computed if not given);
    ``placed`` (F, A, R), optional: the keyframes' cost paid where the border is placed on its
    grey step (default ``prior``).
    """
    w = seg.samples(seg.o.lumen_edge_mm, 2)
    if stability is None or seg.ring is None:
        # without neighbouring frames: the grey-level rise next to the catheter
        start = _bright_near_field(seg, log_image)
        edge = _step(log_image, w)
        edge = edge / np.maximum(np.percentile(edge[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None]
        path = _trace(seg, edge, start, w, prior)
        strength = np.take_along_axis(edge, path[..., None], axis=-1)[..., 0]
        return _subsample(edge, path), np.clip(strength, 0.0, 1.0)
    start = seg.ring
    weight = seg.trust * _stability_weight(stability, log_image, start)[:, None, None]
    smooth = _box(stability, 5, 3)
    # (the grey levels boxed over 3 samples and over 1 along the rays share their angular pass)
    grey_level, grey_box = _boxes(log_image, 5, (3, 1))
    dark_depth: list[np.ndarray] = []
    # a guidewire's shadow shows no border, and the wire's echo is a bright, stable step just
    # past the catheter: a trace stopped on the wire and dragged its neighbours in with it
    # (a quarter turn beside an echolucent pool), and the wire then lay "at the border" and
    # was taken for calcium. Its shadow is left to the border seen on either side (the
    # features are averaged over 5 directions: 2 more on either side), and its echo, wider
    # than the shadow, is not charged as tissue
    unseen, wire = shadows if shadows is not None else narrow_shadows(seg, image, start, 2, log_image)
    # the candidate traces below ask for the same per-frame percentiles of the same images, each a
    # partition of the whole field: answered once (_field_percentile)
    memo: dict = {}
    enclosed = _enclosed_tissue(
        seg, smooth, grey_level, start, weight, dark_out=dark_depth, not_tissue=wire, memo=memo
    )
    # the grey-level rise from blood to wall backs the correlation up where blood echoes
    # little (20 MHz) and its few echoes happen to correlate
    grey = _step(grey_box, w)
    grey = np.clip(
        grey / np.maximum(np.percentile(grey[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None], -1, 1
    )
    # a rise out of an echolucent pool is not the lumen's border (_blood_behind)
    grey = _rises_from_blood(grey, _blood_behind(grey_box, w, *dark_depth[1:]))
    local = _step(_box(stability, 3, 1), w)
    local = np.clip(
        local / np.maximum(np.percentile(local[..., start:], 99, axis=(1, 2)), 1e-3)[:, None, None], -1, 1
    )
    # a rise of the correlation with no rise of the grey level is slow or stagnant blood, not
    # the wall: such steps count half
    local = local * np.clip(0.5 + grey, 0.0, 1.0)
    region = _region_score(seg, smooth, start, memo)
    enclosed_image = enclosed
    if prior is not None:
        # keyframes' borders, interpolated: a cost of straying from them (keyframes.py)
        enclosed = enclosed + prior
    edges = [(weight * feature + grey) / (1.0 + weight) for feature in (local, region)]
    if seg.trust < 1.0:
        # blood that does not move is still dark: the regions of grey level separate it from
        # the wall, where the steps of its speckle would stop an edge trace (20 MHz)
        edges.append(_region_score(seg, _box(image, 5, 3), start))
    best_path, best_edge = _best_trace(
        seg, edges, smooth, start, w, enclosed, grey_level, unseen, prior, memo=memo
    )
    traced = (edges, smooth, start, w, enclosed, grey_level, unseen, prior)
    kept_path, kept_edge, charge = _retrace_flattened(seg, traced, best_path, best_edge)
    if seg.o.region_blood and seg.trust > 0 and prior is None:
        # blood judged at each depth, not by its first 0.3 mm: bright 40-60 MHz speckle
        # brightens with depth and was charged as tissue, which held the border in the middle of
        # a large lumen (LAD: 7 mm2 traced in a 21 mm2 lumen). Each frame keeps the trace that
        # separates blood from wall better, or the one chosen over the sequence (``choice``).
        # With keyframes, the looks learned from the reader's borders judge blood instead (an
        # added keyframe lowered a frame's Jaccard by 0.065)
        q1, q3, usable = _region_blood(seg, smooth, grey_level, start)
        relaxed = _enclosed_tissue(
            seg, smooth, grey_level, start, weight, (q1, q3), not_tissue=wire, memo=memo
        )
        second_path, second_edge = _best_trace(
            seg, edges, smooth, start, w, relaxed, grey_level, unseen, memo=memo
        )
        gain = _trace_score(seg, smooth, grey_level, second_path, start, memo) - _trace_score(
            seg, smooth, grey_level, best_path, start, memo
        )
        # an echolucent pool inside raises the grey separation too: a trace that encloses more
        # tissue darker than blood than the first did is not taken for the lumen (phantom pools)
        dark_before, dark_after = (
            np.take_along_axis(dark_depth[0], p[..., None], axis=-1)[..., 0].mean(axis=1)
            for p in (best_path, second_path)
        )
        allowed = (dark_after <= dark_before + 0.003) & usable
        # each trace as it would be kept, flattened lumens traced again: a flattened first trace
        # traced again may leak (RCA 525: 4.1 -> 23 mm2), which the sequence's choice must see
        # (only where the second may be kept at all: a compressed vein is flattened in both)
        differs = np.any(second_path != best_path, axis=1) & allowed
        again_path, again_edge, again_charge = kept_path, kept_edge, charge
        if differs.any():
            again_path, again_edge, again_charge = kept_path.copy(), kept_edge.copy(), charge.copy()
            sub = tuple(x[differs] if isinstance(x, np.ndarray) else x for x in traced[1:])
            again_path[differs], again_edge[differs], again_charge[differs] = _retrace_flattened(
                seg, ([e[differs] for e in edges], *sub), second_path[differs], second_edge[differs]
            )
        if evidence is not None:
            evidence.extend([gain, allowed, _path_area_mm2(seg, kept_path), _path_area_mm2(seg, again_path)])
        better = (gain > 0 if choice is None else choice) & allowed
        kept_path = np.where(better[:, None], again_path, kept_path)
        kept_edge = np.where(better[:, None, None], again_edge, kept_edge)
        charge = np.where(better[:, None, None], again_charge, charge)
    strength = np.take_along_axis(kept_edge, kept_path[..., None], axis=-1)[..., 0]
    if placed is not None:
        # the keyframes' cost that chose the trace is not the one its grey step is placed with
        # (charged as _retrace_flattened charges)
        flat = _aspect_ratio(seg.to_mm(best_path)) >= seg.o.flattened_aspect
        factor = np.where(flat[:, None, None], np.float32(seg.o.flattened_charge), np.float32(1.0))
        charge = factor * (enclosed_image + placed)
    # the grey levels as displayed (already log-compressed by the console): compressing
    # them again would pull the half-way point of a blurred step towards the darker side
    behind = _blood_behind(grey_box, seg.samples(0.06, 2), *dark_depth[1:])
    return _refine_lumen(seg, image, kept_path, start, charge, unseen, behind, prior), np.clip(strength, 0.0, 1.0)


def _retrace_flattened(
    seg: _Segmenter, traced: tuple, path: np.ndarray, edge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``path`` (F, A) and ``edge`` (F, A, R) with flattened lumens traced again, and the charge
    (F, A, R) each frame pays; ``traced``: (edges, smooth, start, w, enclosed, grey_level,
    unseen, held) as given to :func:`_best_trace`.

    A flattened lumen (a compressed vein) has no media behind its wall to leak into, but its
    narrow ends mix with the wall in the correlation windows and look enclosed: those frames are
    traced again with a fraction of the charge, enough still to keep the border from crossing a
    whole wall into the dark lumen of the artery compressing the vein.
    """
    edges, smooth, start, w, enclosed, grey_level, unseen, held = traced
    flat = _aspect_ratio(seg.to_mm(path)) >= seg.o.flattened_aspect
    charge = np.where(flat[:, None, None], np.float32(seg.o.flattened_charge), np.float32(1.0)) * enclosed
    if flat.any():
        path, edge = path.copy(), edge.copy()
        path[flat], edge[flat] = _best_trace(
            seg,
            [e[flat] for e in edges],
            smooth[flat],
            start,
            w,
            charge[flat],
            grey_level[flat],
            unseen[flat],
            None if held is None else held[flat],
        )
    return path, edge, charge


def _enclosed_tissue(
    seg: _Segmenter,
    smooth: np.ndarray,
    grey: np.ndarray,
    start: int,
    weight: np.ndarray,
    blood_model: tuple[np.ndarray, np.ndarray] | None = None,
    dark_out: list[np.ndarray] | None = None,
    not_tissue: np.ndarray | None = None,
    memo: dict | None = None,
) -> np.ndarray:
    """Cost of enclosing correlated tissue in the lumen, (F, A, R): the tissue-like depth (mm)
    between the ring-down and each radius, times ``enclosed_tissue_per_mm``.

    The step from a dark, decorrelated layer (the media) to bright, stable adventitia looks
    like blood meeting wall; what tells them apart is the stable plaque a border there would
    enclose. Correlation up to half-way between blood and tissue costs nothing, so blood's
    chance correlations do not pull the border inwards.

    Blood is judged by its near field, just outside the ring-down; ``blood_model`` (F, 1, R),
    optional, is blood's grey level at each depth (:func:`_region_blood`), which raises the level
    from which grey counts as tissue where blood is brighter further out. ``memo``: see
    :func:`_field_percentile`.
    """
    n_f = len(smooth)
    near = slice(start, min(start + seg.samples(0.3, 3), seg.n_r))
    likeness = []
    for k, (x, floor) in enumerate(((smooth, 0.1), (grey, 0.2))):
        blood = np.median(x[..., near].reshape(n_f, -1), axis=1)
        tissue = _field_percentile(x, start, 75, memo)
        contrast = np.maximum(tissue - blood, floor)[:, None, None]
        level = (0.5 * (blood + tissue))[:, None, None]
        half = 0.5 * contrast
        if blood_model is not None and k == 1:
            # tissue is brighter than blood at its depth: above its upper quartile by half an
            # interquartile range (blood's own speckle, which a small contrast to the field's
            # upper quartile charged), fully by one more range
            q1, q3 = blood_model
            spread = np.maximum(q3 - q1, 1e-3)
            level = np.maximum(level, q3 + 0.5 * spread)
            half = np.maximum(half, spread)
        likeness.append(np.clip((x - level) / half, 0.0, 1.0))
    # bright and stable; brightness alone where the correlation is unreliable
    t = likeness[1] * (weight * likeness[0] + 1.0 - weight)
    t[..., : start + 1] = 0.0
    if not_tissue is not None:
        # ``not_tissue`` (F, A, R), optional: a guidewire's echo (:func:`.shadows.narrow_shadows`)
        t[not_tissue] = 0.0
    # a border's own window straddles it: the last samples inside are not counted
    depth = _lagged_depth(t, seg.samples(seg.o.correlation_half_mm, 1) + 1, seg.dr)
    if seg.o.dark_tissue_ahead_mm > 0:
        blood_grey = _blood_grey(seg, grey, near)
        dark = _dark_tissue(seg, grey, likeness[1], blood_grey, memo) * (weight * likeness[0] + 1.0 - weight)
        # only blood that echoes nearly as much as the wall (40-60 MHz) has tissue darker than it
        # in front of the wall; dark blood (20 MHz, the phantoms' phased regime) fades with depth
        # into darker-than-near-field blood (femoropopliteal lumen J 0.989 -> 0.979 without this)
        raw_contrast = tissue - blood_grey[1]  # the loop's last ``tissue``: grey's upper quartile
        bright_blood = np.clip(
            (seg.o.dark_tissue_max_contrast - raw_contrast) / (0.5 * seg.o.dark_tissue_max_contrast), 0.0, 1.0
        )
        dark = dark * bright_blood[:, None, None]
        dark[..., : start + 1] = 0.0
        # judged on grey levels smoothed over three samples, not on a correlation window: a
        # thin pool behind its cap is charged from its second sample on
        dark_depth = _lagged_depth(dark, 2, seg.dr)
        depth = depth + dark_depth
    else:
        dark_depth = np.zeros_like(depth)
        bright_blood, blood_grey = np.zeros(n_f), None
    # the charge tells the media's step from the lumen's by what is stable between them: where
    # the correlation says nothing, brightness alone would charge the brighter speckle of still
    # blood and the guidewire (20 MHz set B: box IoU 0.79 with it, 0.885 without)
    charge = (seg.trust * seg.o.enclosed_tissue_per_mm * depth).astype(np.float32)
    if dark_out is not None:
        dark_out += [dark_depth, bright_blood, blood_grey]
    return charge


def _blood_behind(
    grey: np.ndarray,
    w: int,
    bright_blood: np.ndarray,
    blood_grey: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> np.ndarray | None:
    """How far a rise of the grey level at each sample (F, A, R) can be blood meeting the
    wall, 0-1, from the ``w`` samples inside it (``grey``, log); None where it always can.

    Where blood echoes nearly as much as the wall (``bright_blood`` (F,), 0-1, of
    :func:`_enclosed_tissue`), a rise from below blood's grey levels (``blood_grey``, its
    quartiles (F,)) is the back of an echolucent pool, the strongest step around, which drew
    the lumen border across the pool. A rise counts in full where its inner side is at or
    above blood's lower quartile, not at all one interquartile range below it.
    """
    if blood_grey is None or not np.any(bright_blood > 0):
        return None
    q1, _, q3 = (np.asarray(q)[:, None, None] for q in blood_grey)
    cs = np.concatenate([np.zeros(grey.shape[:-1] + (1,), np.float32), np.cumsum(grey, axis=-1)], axis=-1)
    r = np.arange(grey.shape[-1])
    lo = np.maximum(r - w, 0)
    inner = (cs[..., r] - cs[..., lo]) / np.maximum(r - lo, 1)
    blood_like = np.clip(1.0 - (q1 - inner) / np.maximum(q3 - q1, 1e-3), 0.0, 1.0)
    b = bright_blood[:, None, None]
    return (1.0 - b + b * blood_like).astype(np.float32)


def _rises_from_blood(step: np.ndarray, behind: np.ndarray | None) -> np.ndarray:
    """``step`` (F, A, R) with its rises weighted by ``behind`` (:func:`_blood_behind`)."""
    return step if behind is None else np.where(step > 0, step * behind, step).astype(np.float32)


def _lagged_depth(t: np.ndarray, lag: int, dr: float) -> np.ndarray:
    """Depth (mm) of ``t`` (F, A, R) summed from the centre out to ``lag`` samples inside each radius."""
    depth = np.cumsum(t, axis=-1) * dr
    return np.concatenate([np.zeros(depth.shape[:-1] + (lag,), np.float32), depth[..., :-lag]], axis=-1)


def _blood_grey(seg: _Segmenter, grey: np.ndarray, near: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blood's grey-level quartiles (q1, median, q3), each (F,), from the near field just outside
    the ring-down (``grey`` (F, A, R), smoothed log grey levels; ``near``, its radial slice).

    A catheter wedged in a tight lesion has plaque, or an echolucent pool, in much of its near
    field, whose darkness then passed for blood's own spread: such a frame takes the pullback's
    blood (``seg.near_grey``, the median over frames spread along it), as far as its own near
    field is darker than that (a brighter frame gain is the frame's own)."""
    n_f = len(grey)
    q = np.percentile(grey[..., near].reshape(n_f, -1), [25, 50, 75], axis=1)
    if seg.near_grey is not None:
        q = np.maximum(q, np.asarray(seg.near_grey, dtype=float)[:, None])
    return q[0], q[1], q[2]


def _darker_than_blood(seg: _Segmenter, grey: np.ndarray, q1: np.ndarray, q3: np.ndarray) -> np.ndarray:
    """How surely (F, A, R) each sample is darker than blood and fell there suddenly
    (:func:`_dark_tissue`); ``q1``, ``q3`` (F,): blood's quartiles."""
    iqr = np.maximum(q3 - q1, 1e-3)[:, None, None]
    dark = np.clip((q1[:, None, None] - 1.5 * iqr - grey) / (1.5 * iqr), 0.0, 1.0)
    # blood itself may darken with depth (a large vein at 20 MHz): a dark run counts as far as
    # it fell suddenly somewhere, below the grey level ``dark_tissue_drop_mm`` further in on
    # the same ray (across a thin cap), not by a slow fade
    back = seg.samples(seg.o.dark_tissue_drop_mm, 2)
    inner = np.concatenate([np.repeat(grey[..., :1], back, axis=-1), grey[..., :-back]], axis=-1)
    drop = np.clip((np.minimum(q1[:, None, None], inner) - 1.5 * iqr - grey) / (1.5 * iqr), 0.0, 1.0)
    fell = np.zeros(grey.shape[:-1], np.float32)
    for r in range(grey.shape[-1]):
        fell = np.where(dark[..., r] > 0, np.maximum(fell, drop[..., r]), 0.0)
        drop[..., r] = fell
    return np.minimum(dark, drop)


def _dark_tissue(
    seg: _Segmenter,
    grey: np.ndarray,
    bright: np.ndarray,
    blood_grey: tuple[np.ndarray, np.ndarray, np.ndarray],
    memo: dict | None = None,
) -> np.ndarray:
    """Likeness (F, A, R) of echolucent tissue: darker than the frame's blood, in front of a
    bright wall layer.

    Where blood echoes (40-60 MHz), an echolucent plaque (a lipid pool) is darker than blood;
    as it is not brighter, the charge for enclosed tissue missed it and the lumen ran through
    the pool onto the media. Darkness is judged on blood's own spread (its near field, just
    outside the ring-down): below the lower Tukey fence of blood's grey levels (first quartile
    minus 1.5 interquartile ranges) is not blood, below the far fence (3 ranges) surely not. A
    shadow is dark too, but all the way out, while plaque lies inside the bright
    media-adventitia ring: darkness only counts with a bright wall layer (``bright``, 0-1,
    averaged over 0.25 mm) within ``dark_tissue_ahead_mm`` beyond it. ``grey`` (F, A, R):
    smoothed log grey levels; ``blood_grey``: blood's quartiles (:func:`_blood_grey`).
    """
    q1, _, q3 = blood_grey
    # darkness depends on the grey levels and blood's alone, not on the bright layer: both
    # enclosed-tissue charges of a batch ask for it (``memo``, :func:`_field_percentile`)
    key = (id(grey), "darker than blood", np.asarray(q1).tobytes(), np.asarray(q3).tobytes())
    if memo is not None and key in memo:
        dark = memo[key][1]
    else:
        dark = _darker_than_blood(seg, grey, q1, q3)
        if memo is not None:
            memo[key] = (grey, dark)
    # a layer, not a speck: bright over a radial stretch
    layer = ndimage.uniform_filter1d(bright, seg.samples(0.25, 3), axis=-1, mode="nearest")
    ahead = seg.samples(seg.o.dark_tissue_ahead_mm, 2)
    # the brightest layer within ``ahead`` samples further out along the ray
    wall = ndimage.maximum_filter1d(layer, size=ahead, axis=-1, origin=-(ahead // 2), mode="nearest")
    # a shadow's edges let specks of wall through, but most of its ray stays dark: the ray's
    # next 2 x ``ahead`` must be bright over at least a quarter of its length
    far = 2 * ahead
    rest = ndimage.uniform_filter1d(bright, size=far, axis=-1, origin=-(far // 2), mode="nearest")
    likeness = dark * wall * np.clip(4.0 * rest, 0.0, 1.0)
    # a plaque spans tens of degrees; the penumbra beside a shadow, dark in front of the wall
    # it half hides, a few directions: narrower darkness is opened away
    width = max(3, int(round(seg.angles(seg.o.dark_tissue_min_deg))))
    return ndimage.grey_opening(likeness, size=(1, width, 1), mode="wrap").astype(np.float32)


def _region_blood(
    seg: _Segmenter, smooth: np.ndarray, grey: np.ndarray, start: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blood's grey-level quartiles (F, 1, R) each at each depth, judged on the blood found
    there, not only next to the catheter, and whether the frame's near field is blood (F,).

    The console's gain and the beam's focus brighten 40-60 MHz blood with depth (LAD screen
    exports: +0.3-0.4 log grey level from 1 to 2.5 mm), so blood judged by its near field alone
    is charged as tissue further out. Blood is what decorrelates between frames: at each depth,
    the samples of ``smooth`` (F, A, R, the correlation) no more correlated than the median near
    field of the pullback (``seg.near_correlation``; of the frame without it) are blood-like,
    and their quartiles are blood's there. Outward from the near field this holds while such
    samples keep ``blood_share`` of the near field's share of them (one half, by that median),
    over 0.3 mm of depth. Around a lumen the wall's samples correlate (phantoms: 5-30 % blood-like
    at the plaque, 50-70 % in the lumen); where the correlation tells nothing (LAD: 45-75 % at
    every depth) blood is taken at every depth, and only the wall brighter than it is charged.
    Past the first depth where the share is lost, blood's levels stay the last ones found; they
    rise above the near field's by ``blood_brightening_per_mm`` at most. A frame whose near
    field itself lacks that share (a catheter wedged in plaque) is not usable.
    """
    n_f = len(grey)
    near = slice(start, min(start + seg.samples(0.3, 3), seg.n_r))
    corr = np.median(smooth[..., near].reshape(n_f, -1), axis=1)
    if seg.near_correlation is not None:
        # blood's correlation over the whole pullback: a catheter wedged in a tight lesion has
        # plaque, not blood, in its near field
        corr = np.full(n_f, seg.near_correlation)
    low = smooth <= corr[:, None, None]
    width = seg.samples(0.3, 3)
    share = ndimage.uniform_filter1d(low.mean(axis=1), width, axis=-1, mode="nearest")  # (F, R)
    near_share = low[..., near].mean(axis=(1, 2))
    usable = near_share >= 0.5 * seg.o.blood_share
    # the quartiles of the blood-like samples at each depth (masked ones sorted to the end)
    count = low.sum(axis=1)  # (F, R)
    ranked = np.sort(np.where(low, grey, np.inf), axis=1)
    r = np.arange(seg.n_r)
    depth_mm = np.maximum(r - near.stop, 0) * seg.dr
    quartiles = []
    for q in (0.25, 0.75):
        at = np.clip(np.round(q * (count - 1)).astype(int), 0, None)[:, None, :]
        level = np.take_along_axis(ranked, at, axis=1)[:, 0, :]
        in_near = np.percentile(grey[..., near].reshape(n_f, -1), 100 * q, axis=1)
        level = np.where(count > 0, level, in_near[:, None])
        level = ndimage.uniform_filter1d(level, width, axis=-1, mode="nearest")
        out = np.broadcast_to(in_near[:, None], (n_f, seg.n_r)).copy()
        for f in range(n_f):
            lost = np.flatnonzero((share[f] < 0.5 * seg.o.blood_share) & (r >= near.stop))
            stop = int(lost[0]) if lost.size else seg.n_r
            if stop > near.stop:
                out[f, near.stop : stop] = level[f, near.stop : stop]
                out[f, stop:] = level[f, stop - 1]
        out = np.minimum(out, in_near[:, None] + seg.o.blood_brightening_per_mm * depth_mm[None, :])
        quartiles.append(out[:, None, :].astype(np.float32))
    return quartiles[0], quartiles[1], usable


def _path_area_mm2(seg: _Segmenter, path: np.ndarray) -> np.ndarray:
    """Area (F,) enclosed by a traced path (F, A) in samples, mm2."""
    r = seg.to_mm(np.asarray(path, dtype=float))
    return np.pi * np.mean(r**2, axis=1)


def choose_traces(gain: np.ndarray, allowed: np.ndarray, areas_mm2: np.ndarray, weight: float) -> np.ndarray:
    """Which analysed frames keep the lumen traced with blood judged at each depth, (F,) bool.

    Each frame alone keeps the trace that separates blood from wall better; on real pullbacks
    that choice flips between neighbouring frames (RCA: lumen areas 4-11 mm2 alternating along a
    stretch), and a single frame whose deeper blood model leaks through a gap into dark tissue
    (LAD 1200: 25 mm2 between 8 mm2 neighbours) wins its own score. The lumen changes little
    between neighbouring analysed frames: the choice is the sequence that maximises the summed
    score gain minus ``weight`` times the summed absolute log-area change between neighbours
    (exact, by dynamic programming over two states per frame). A frame's own evidence still
    leads where its neighbours agree with either trace. Continuity corrects leaks, it never
    widens a frame: a frame moves from the trace its own score chose only to a smaller one. A
    real narrowing between wider neighbours keeps its own trace (phantom femoropopliteal,
    512 px: a 9.9 mm2 frame between 17.7 and 19.4 mm2 ones, widened to its other trace, was
    traced 18.3 mm2 and the pullback's lumen Jaccard fell from 0.973 to 0.958), while a first
    trace that leaked (RCA 525: 23 mm2 between 4-7 mm2 neighbours) gives way to the second.

    Parameters
    ----------
    gain : ndarray of shape (F,)
        Score of the second trace minus the first's, per frame (:func:`_trace_score`).
    allowed : ndarray of shape (F,), bool
        Frames on which the second trace may be kept at all.
    areas_mm2 : ndarray of shape (F, 2)
        Area of the first and the second trace.
    weight : float
        Score per unit of log-area change; 0 chooses each frame by its own gain.

    Returns
    -------
    ndarray of shape (F,), bool
    """
    gain = np.asarray(gain, dtype=float)
    allowed = np.asarray(allowed, dtype=bool)
    own = (gain > 0) & allowed
    n = len(gain)
    if weight <= 0 or n < 2:
        return own
    areas = np.asarray(areas_mm2, dtype=float)
    log_area = np.log(np.maximum(areas, 1e-6))
    # a frame keeps its own trace or moves to the other one where that one is smaller
    mine = areas[np.arange(n), own.astype(int)]
    feasible = np.column_stack([~own | (areas[:, 0] <= mine), allowed & (own | (areas[:, 1] <= mine))])
    unary = np.where(feasible, np.stack([np.zeros(n), -gain], axis=1), np.inf)
    cost = unary[0].copy()
    back = np.zeros((n, 2), int)
    for k in range(1, n):
        step = cost[:, None] + weight * np.abs(log_area[k - 1][:, None] - log_area[k][None, :])
        back[k] = np.argmin(step, axis=0)
        cost = step[back[k], [0, 1]] + unary[k]
    state = np.zeros(n, int)
    state[-1] = int(np.argmin(cost))
    for k in range(n - 1, 0, -1):
        state[k - 1] = back[k, state[k]]
    return state.astype(bool)


def _field_percentile(
    x: np.ndarray, start: int, q: float | list[float], memo: dict | None = None
) -> np.ndarray:
    """Per-frame percentile(s) ``q`` of ``x`` (F, A, R) from radial sample ``start`` out: (F,), or
    (len(q), F) for a list, as :func:`numpy.percentile` gives them.

    ``memo``, optional: answers by array and question. The candidate traces of one batch ask the
    same of the same images several times, and each answer partitions the whole field (the
    dearest step of a candidate after its path). Only the same question of the same array is
    answered from it: percentiles asked together are computed in float64, alone in ``x``'s dtype.
    """
    key = (id(x), start, q if np.isscalar(q) else tuple(q))
    if memo is not None and key in memo:
        return memo[key][1].copy()
    out = np.percentile(x[..., start:].reshape(len(x), -1), q, axis=1)
    if memo is not None:
        # ``x`` is kept with its answer: while the memo lives, no other array takes its id
        memo[key] = (x, out.copy())
    return out


def _trace_score(
    seg: _Segmenter,
    smooth: np.ndarray,
    grey_level: np.ndarray,
    path: np.ndarray,
    start: int,
    memo: dict | None = None,
) -> np.ndarray:
    """How well ``path`` (F, A) separates blood inside from wall outside, per frame (F,): the
    correlation's separation (times the trust in it) plus the grey levels' (in interquartile
    ranges, times ``grey_separation_weight``). ``memo``: see :func:`_field_percentile`."""
    score = seg.trust * _separation(seg, smooth, path, start)
    if seg.o.grey_separation_weight > 0:
        q1, q3 = _field_percentile(grey_level, start, [25, 75], memo)
        spread = np.maximum(q3 - q1, 1e-3)
        score = score + seg.o.grey_separation_weight * _separation(seg, grey_level, path, start) / spread
    return score


def _best_trace(
    seg: _Segmenter,
    edges: list[np.ndarray],
    smooth: np.ndarray,
    start: int,
    w: int,
    extra: np.ndarray | None,
    grey_level: np.ndarray | None = None,
    unseen: np.ndarray | None = None,
    held: np.ndarray | None = None,
    *,
    memo: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Trace each candidate edge image (F, A, R) and keep, per frame, the path that separates
    decorrelated blood inside from correlated tissue outside best: (path, its edge image).
    ``unseen`` (F, A) and ``held`` (F, A, R), optional: directions that show no border and the
    keyframes' cost there (:func:`_trace`). ``memo``: see :func:`_field_percentile`."""
    best_path = best_edge = None
    best_score = np.full(len(smooth), -np.inf)
    if grey_level is not None and seg.o.grey_separation_weight > 0:
        q1, q3 = _field_percentile(grey_level, start, [25, 75], memo)
        spread = np.maximum(q3 - q1, 1e-3)
    for edge, path in zip(edges, _trace_all(seg, edges, start, w, extra, unseen, held), strict=True):
        score = seg.trust * _separation(seg, smooth, path, start)
        if grey_level is not None and seg.o.grey_separation_weight > 0:
            # blood is also darker than the wall: a border cutting through a wide lumen has
            # blood on both sides, which the grey levels tell where chance correlations do not
            grey_separation = _separation(seg, grey_level, path, start) / spread
            score = score + seg.o.grey_separation_weight * grey_separation
        if best_path is None:
            best_path, best_edge, best_score = path, edge, score
            continue
        better = score > best_score
        best_path = np.where(better[:, None], path, best_path)
        best_edge = np.where(better[:, None, None], edge, best_edge)
        best_score = np.maximum(score, best_score)
    return best_path, best_edge


def _trace(
    seg: _Segmenter,
    edge: np.ndarray,
    start: int,
    w: int,
    extra: np.ndarray | None = None,
    unseen: np.ndarray | None = None,
    held: np.ndarray | None = None,
) -> np.ndarray:
    """Lumen path (F, A) through the edge image (F, A, R) plus ``extra`` costs. Directions
    ``unseen`` (F, A), optional, cost the same at every radius: the path crosses them as the
    smoothness sets it, from the border on either side; or as ``held`` (F, A, R), optional, the
    keyframes' cost, sets it there (the reader's border is seen where the image shows none)."""
    return _trace_all(seg, [edge], start, w, extra, unseen, held)[0]


def _trace_all(
    seg: _Segmenter,
    edges: list[np.ndarray],
    start: int,
    w: int,
    extra: np.ndarray | None = None,
    unseen: np.ndarray | None = None,
    held: np.ndarray | None = None,
) -> list[np.ndarray]:
    """:func:`_trace` of each edge image (F, A, R) of ``edges``, by one dynamic programme over all
    of their frames: a frame's path does not depend on the frames traced with it, and the
    programme's loop over the angles costs the same numpy calls whatever their number."""
    # the lumen ends at the first wall layer: of two similar steps, the inner one
    ramp = np.clip((np.arange(seg.n_r) - start) / max(seg.n_r - start, 1), 0.0, 1.0)
    costs = []
    for edge in edges:
        cost = 1.0 - edge + seg.o.inward_preference * ramp[None, None, :]
        if extra is not None:
            cost = cost + extra
        if unseen is not None and unseen.any():
            cost[unseen] = 1.0 if held is None else 1.0 + held[unseen]
        cost[..., : start + 1] = np.inf
        cost[..., seg.n_r - w :] = np.inf
        costs.append(cost.astype(np.float32))
    paths = dp_closed_path(
        np.concatenate(costs),
        max_step=seg.max_step,
        step_scale=seg.step_scale,
        smooth_weight=seg.o.smooth_weight,
    )
    return np.split(paths, len(edges))


def _separation(seg: _Segmenter, smooth: np.ndarray, path: np.ndarray, start: int) -> np.ndarray:
    """Mean correlation just outside the border minus inside it, per frame (F,)."""
    n_r = smooth.shape[-1]
    span = seg.samples(0.3, 3)
    # both masks as rows of a table by the border's radius (one gather each, not four
    # comparisons over the batch), and their sizes from the same rows
    r = np.arange(n_r)
    p = np.arange(n_r + 1)[:, None]
    inside_rows = (r >= start) & (r < p)
    outside_rows = (r >= p) & (r < p + span)
    at = np.clip(path, 0, n_r)
    inside, outside = inside_rows[at], outside_rows[at]
    n_in = inside_rows.sum(axis=1)[at].sum(axis=1)
    n_out = outside_rows.sum(axis=1)[at].sum(axis=1)
    mean_in = (smooth * inside).sum(axis=(1, 2)) / np.maximum(n_in, 1)
    mean_out = (smooth * outside).sum(axis=(1, 2)) / np.maximum(n_out, 1)
    return mean_out - mean_in


def _region_score(seg: _Segmenter, smooth: np.ndarray, start: int, memo: dict | None = None) -> np.ndarray:
    """Score of each radius as the lumen border from the regions it separates, (F, A, R).

    ``smooth`` (F, A, R) is a feature that is low in blood and high in the wall: the
    correlation with the neighbouring frames, or the grey level where blood barely echoes.
    Blood is rewarded inside the border and tissue just outside it. Sums over many samples
    make this robust to speckle, which defeats a local edge detector when the lumen is large
    (chance correlations) or dark (steps of the few echoes in near-black blood). ``memo``: see
    :func:`_field_percentile`.
    """
    n_f = len(smooth)
    near = slice(start, min(start + seg.samples(0.3, 3), seg.n_r))
    blood = np.median(smooth[..., near].reshape(n_f, -1), axis=1)
    # most of the field is wall and beyond: its typical correlation is the tissue level
    tissue = _field_percentile(smooth, start, 75, memo)
    contrast = np.maximum(tissue - blood, 0.1)[:, None, None]
    level = (0.5 * (blood + tissue))[:, None, None]
    g = np.clip((level - smooth) / contrast, -1.0, 1.0)
    g[..., :start] = 0.0
    span = seg.samples(0.3, 3)
    cs = np.concatenate([np.zeros(g.shape[:-1] + (1,), np.float32), np.cumsum(g, axis=-1)], axis=-1)
    inside = cs[..., : seg.n_r]  # the sum of g before each radius
    r = np.arange(seg.n_r)
    outside = -(cs[..., np.minimum(r + span, seg.n_r)] - inside)
    score = inside + outside
    top = np.max(score[..., start:], axis=(1, 2), keepdims=True)
    low = np.percentile(score[..., start:], 5, axis=(1, 2), keepdims=True)
    return ((score - low) / np.maximum(top - low, 1e-3) * 2.0 - 1.0).astype(np.float32)


def _stability_weight(stability: np.ndarray, log_image: np.ndarray, start: int) -> np.ndarray:
    """How much to trust the correlation cue, per frame (F,): the correlation of the
    brightest tissue. Slow frame rates or fast pullbacks decorrelate tissue too, and then
    the grey-level step must lead."""
    region = log_image[..., start:]
    bright = region >= np.percentile(region, 80, axis=(1, 2), keepdims=True)
    tissue = np.array([np.median(st[..., start:][b]) for st, b in zip(stability, bright, strict=True)])
    return np.clip((tissue - 0.3) / 0.4, 0.0, 1.0)


def _refine_lumen(
    seg: _Segmenter,
    log_image: np.ndarray,
    path: np.ndarray,
    start: int,
    charge: np.ndarray | None = None,
    unseen: np.ndarray | None = None,
    behind: np.ndarray | None = None,
    held: np.ndarray | None = None,
) -> np.ndarray:
    """Place the lumen border on the grey-level step near the correlation border.

    A correlation window that straddles the border is dominated by the brighter, more
    variable tissue, so the correlation step sits slightly inside the true border; the
    grey-level step of blood to wall (darker to brighter at any frequency) is sharp but
    ambiguous on its own. Searching it in a narrow band just outside the correlation
    border keeps the robustness of the one and the precision of the other.
    """
    w = seg.samples(0.06, 2)
    # ``behind`` (F, A, R), optional: how far each rise can be blood meeting the wall
    # (:func:`_blood_behind`); the back of an echolucent pool is the strongest rise in the band
    edge = _rises_from_blood(_step(_box(log_image, 5, 1), w), behind)
    r = np.arange(seg.n_r)[None, None, :]
    lo = path[..., None] - seg.samples(seg.o.refine_inner_mm, 1)
    # the correlation border lies up to a window inside the true one
    hi = path[..., None] + seg.samples(seg.o.correlation_half_mm, 1) + seg.samples(seg.o.refine_outer_mm, 2)
    allowed = (r >= np.maximum(lo, start + 1)) & (r <= np.minimum(hi, seg.n_r - w - 1))
    band = np.where(allowed, edge, np.nan)
    scale = np.maximum(
        np.nan_to_num(np.nanpercentile(band.reshape(len(edge), -1), 99, axis=1), nan=1.0), 1e-3
    )
    cost = 1.0 - edge / scale[:, None, None]
    if charge is not None:
        # the band reaches past thin plaque onto the media's step: moving out there pays for
        # the stable tissue it would enclose, as the trace did
        cost = cost + charge
    if unseen is not None and unseen.any():
        cost[unseen] = 1.0 if held is None else 1.0 + held[unseen]
    cost = np.where(allowed, cost, np.inf).astype(np.float32)
    refined = dp_closed_path(
        cost, max_step=seg.max_step, step_scale=seg.step_scale, smooth_weight=seg.o.smooth_weight
    )
    return _subsample(edge, refined)


def _bright_near_field(seg: _Segmenter, log_image: np.ndarray) -> int:
    profile = np.median(log_image.reshape(-1, seg.n_r), axis=0)
    peak = int(np.argmax(profile[: seg.n_r // 3]))
    return min(peak + seg.samples(0.1), seg.n_r // 2)


def _measure_ring_down(seg: _Segmenter) -> None:
    """Set ``seg.ring`` (first radial sample outside the catheter's ring-down) and ``seg.trust``
    (in the correlation cue, 0-1) from frames spread over the whole pullback.

    Frames spread over the pullback, not the frames to segment: a frame's borders must not depend
    on which others were asked for (a profile taken from a few frames at a side branch moved a
    border by 0.5 mm). Pullbacks of fewer than three frames are left as they are.
    """
    n = seg.pb.n_frames
    if n < 3:
        return
    o = seg.o
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
        near = _box(st, 5, 3)[..., seg.ring : seg.ring + seg.samples(0.3, 3)]
        seg.near_correlation = float(np.median(near)) if near.size else None
        if seg.trust < 1.0:
            # still blood is as correlated as the catheter: where its ring-down ends, the grey
            # levels tell, as far as the correlation cannot (bright 40-60 MHz blood right after
            # a masked catheter hides the ring-down's end in grey: LAD lumens fell to 0.7 mm2)
            grey = np.median(np.stack([polar[int(i)] for i in probe]).reshape(-1, seg.n_r), axis=0)
            dark = min(seg.ring, _grey_ring(grey, seg.samples(o.max_ring_mm), seg.samples(0.05)))
            seg.ring = int(round(seg.trust * seg.ring + (1.0 - seg.trust) * dark))
        # blood's grey levels next to the catheter, per frame, then their median along the
        # pullback: a frame wedged in a lesion does not decide (_blood_grey)
        grey = _box(np.log1p(np.stack([polar[int(i)] for i in probe])), 5, 3)
        band = grey[..., seg.ring : seg.ring + seg.samples(0.3, 3)].reshape(len(probe), -1)
        if band.size:
            seg.near_grey = tuple(
                float(v) for v in np.median(np.percentile(band, [25, 50, 75], axis=1), axis=1)
            )
