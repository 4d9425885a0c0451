"""Keyframes: borders corrected by a reader on a few frames, carried to the frames between.

A keyframe's borders are kept exactly. Every other analysed frame is traced again with what its
nearest keyframes teach (the two on either side, weighted by its position between them; beyond
the last keyframe, the last alone), so that a keyframe teaches only its own stretch of pullback
and adding one changes no frame outside the stretch between its neighbours:

- the lumen, with the looks of this pullback's blood and of the wall behind its border (grey
  level and correlation with the neighbouring frames, learned per keyframe): a cost of splitting
  them otherwise than the keyframes do, off in a guidewire's shadow (a guidewire in the blood
  looks like wall; a long arc dark beyond the vessel keeps them: traced without them there, the
  lumen collapsed onto the catheter). Bright 40-60 MHz blood that correlates by chance, or an
  echolucent pool behind a thin cap, is told from the wall by this pullback's own statistics. The lumen's
  shape is pulled only gently, and only next to a keyframe: a stenosis or a flattened vein
  changes it within a few frames.
- the vessel, with the looks of the keyframes' wall against what lies beyond it (a lipid pool
  is wall, its far edge no EEM), within a zone around the radii interpolated between the
  keyframes or around the traced lumen plus the keyframes' wall (whichever is nearer), pulled
  gently towards them next to a keyframe; behind a calcium arc, where the image shows no EEM,
  it takes the keyframes' shape, more so the nearer the keyframe.

The looks are local averages (grey level over 3 samples, correlation over a window of 5 or
more): they choose which step is a border, not where on it the border lies. They are learnt
away from the borders (blood no nearer the lumen than a look reaches; a look shown mostly that
near says nothing) and not in a keyframe's guidewire shadow; a look a keyframe never showed is judged by its grey level and its
correlation apart; and a ray pays them no more than the inner region it shows them.

Pulls and fills fall as exp(-distance / 2 analysed frames). With no keyframe nothing changes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import IVUSInputError
from ..geometry import ray_radii
from ..types import ContourSet, FrameContours, Pullback
from .polar import _box, _runs


def to_pullback_plane(keyframes: ContourSet, pullback: Pullback, *, name: str = "keyframes") -> ContourSet:
    """The keyframes in this pullback's frame plane (mm about its catheter centre).

    A contour file records its own catheter centre and pixel spacing when it came from images:
    its points are mapped through those pixels into this pullback's plane, not assumed to share
    it. Files without them (frame-plane mm of another tool) are taken as they are.

    Raises
    ------
    IVUSInputError
        A keyframe outside the pullback's frames, or whose lumen lies outside its vessel.
    """
    n = pullback.n_frames
    src_sp, src_c = keyframes.pixel_spacing_mm, keyframes.catheter_center_px
    dst_sp, dst_c = pullback.pixel_spacing_mm, pullback.catheter_center_px
    same = src_sp is None or src_c is None or (np.allclose(src_sp, dst_sp) and np.allclose(src_c, dst_c))

    def move(points: np.ndarray | None) -> np.ndarray | None:
        if points is None or same:
            return points
        p = np.asarray(points, float)
        col = src_c[1] + p[:, 0] / src_sp[1]
        row = src_c[0] + p[:, 1] / src_sp[0]
        return np.column_stack([(col - dst_c[1]) * dst_sp[1], (row - dst_c[0]) * dst_sp[0]])

    out = []
    for f in keyframes.frames:
        if not 0 <= f.index < n:
            raise IVUSInputError(
                f"{name}: frame {f.index} is outside the pullback's frames 0-{n - 1}; "
                "give keyframes of this pullback (0-based frame numbers)"
            )
        lumen, vessel = move(f.lumen), move(f.vessel)
        if lumen is not None and vessel is not None:
            r_l, r_v = (ray_radii(p, np.zeros(2), 90) for p in (lumen, vessel))
            if np.any(r_l > r_v + 1e-6):
                raise IVUSInputError(
                    f"{name}: frame {f.index}: the lumen lies outside the vessel in "
                    f"{int(np.sum(r_l > r_v + 1e-6))} of 90 directions; correct the borders of that frame"
                )
        out.append(FrameContours(index=f.index, lumen=lumen, vessel=vessel, phase=f.phase, source="edited"))
    return ContourSet(frames=tuple(out), pixel_spacing_mm=dst_sp, catheter_center_px=dst_c)


def interpolate_prior(known: dict[int, np.ndarray], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prior radii (F, A) and the distance (F,) to the nearest keyframe, for each frame.

    Parameters
    ----------
    known : dict of int to ndarray of shape (A,)
        Keyframe index to its border's radii (mm).
    frames : ndarray of shape (F,), int

    Returns
    -------
    prior : ndarray of shape (F, A), NaN rows where there is no keyframe
    distance : ndarray of shape (F,), in frames (inf where there is no keyframe)
    """
    keys = np.array(sorted(known))
    n_a = len(next(iter(known.values()))) if known else 1
    prior = np.full((len(frames), n_a), np.nan)
    distance = np.full(len(frames), np.inf)
    if not keys.size:
        return prior, distance
    stack = np.stack([known[k] for k in keys])
    for i, f in enumerate(np.asarray(frames, int)):
        after = int(np.searchsorted(keys, f))
        if after < len(keys) and keys[after] == f:
            prior[i], distance[i] = stack[after], 0.0
            continue
        before = after - 1
        if before >= 0 and after < len(keys):
            t = (f - keys[before]) / (keys[after] - keys[before])
            prior[i] = (1 - t) * stack[before] + t * stack[after]
            distance[i] = min(f - keys[before], keys[after] - f)
        else:
            nearest = after if before < 0 else before
            prior[i] = stack[nearest]
            distance[i] = abs(f - keys[nearest])
    return prior, distance


def prior_cost(
    prior_mm: np.ndarray,
    width_mm: np.ndarray,
    radii_mm: np.ndarray,
    weight: float,
    *,
    scale_mm: float = 0.1,
    pull: np.ndarray | None = None,
) -> np.ndarray:
    """Cost (F, A, R) of each radius against the prior (``width_mm`` (F, A)), 0 where there is
    no prior.

    Free within ``width_mm`` of the prior (the borders change between keyframes, and the image
    places them there); beyond, ``weight * (excess / scale_mm)**2``, capped at 9 ``weight`` so
    that a strong edge far off can still win. ``pull`` (F,), optional: a gentler cost of any
    distance from the prior, ``pull * (distance / scale_mm)**2`` (capped at 9 ``pull``), so that
    where the image is ambiguous a frame next to a keyframe follows it.
    """
    distance = np.abs(radii_mm[None, None, :] - prior_mm[..., None])
    excess = np.maximum(distance - width_mm[..., None], 0.0)
    cost = weight * np.minimum((excess / scale_mm) ** 2, 9.0)
    if pull is not None:
        cost = cost + pull[:, None, None] * np.minimum((distance / scale_mm) ** 2, 9.0)
    return np.nan_to_num(cost, nan=0.0).astype(np.float32)


def keyframe_priors(
    keyframes: ContourSet, frames: np.ndarray, n_angles: int, *, band_mm: float, band_per_frame: float
) -> dict[str, np.ndarray]:
    """Priors of every analysed frame from the keyframes (already in the pullback's plane).

    The free zone's half-width is ``band_mm`` plus ``band_per_frame`` of the prior radius per
    analysed frame of distance to the nearest keyframe: borders change in proportion to the
    vessel's size (a vein's compression moves them by millimetres), and distances are counted in
    analysed frames (ranks in ``frames``), so gated frames a beat apart count as neighbours.

    Returns
    -------
    dict with ``lumen``, ``vessel`` (F, A) prior radii and ``wall`` (F, A) prior thickness
    (vessel minus lumen, from keyframes giving both) in mm (NaN rows: no keyframe of it), their
    ``*_width`` (F, A) mm, and ``edited`` (F,) bool.
    """
    rank = {int(f): k for k, f in enumerate(frames)}
    out: dict[str, np.ndarray] = {"edited": np.isin(frames, [f.index for f in keyframes.frames])}
    radii = {
        border: {
            rank[f.index]: ray_radii(np.asarray(getattr(f, border)), np.zeros(2), n_angles)
            for f in keyframes.frames
            if getattr(f, border) is not None
        }
        for border in ("lumen", "vessel")
    }
    # the wall's thickness, where a keyframe gives both borders: a vein flattened on one keyframe
    # and round on the next is neither between them, but its wall stays as thick
    radii["wall"] = {k: v - radii["lumen"][k] for k, v in radii["vessel"].items() if k in radii["lumen"]}
    for border, known in radii.items():
        prior, distance = interpolate_prior(known, np.arange(len(frames)))
        out[border] = prior
        out[f"{border}_distance"] = distance
        # no keyframe of this border: no prior, and its width is never used
        near = np.where(np.isfinite(distance), distance, 0.0)[:, None]
        out[f"{border}_width"] = np.where(np.isfinite(prior), band_mm + band_per_frame * near * prior, np.inf)
    return out


def keep_keyframes(radii_mm: np.ndarray, priors: dict[str, np.ndarray], border: str) -> np.ndarray:
    """Radii (F, A) with every keyframe's own border put back (the rows the reader drew)."""
    rows = priors["edited"] & np.isfinite(priors[border]).all(axis=1)
    return np.where(rows[:, None], priors[border], radii_mm)


GREY_BINS = 24
STABILITY_BINS = 8


def look_codes(log_image: np.ndarray, stability: np.ndarray | None) -> np.ndarray:
    """Each polar sample's look (F, A, R) as one int: its local grey level (log, 24 bins) and,
    when the frame's neighbours are read, its local correlation with them (8 bins).

    Bright blood speckle at 40-60 MHz can be as bright as plaque; what tells them apart in one
    pullback is learned from its keyframes, on both cues together.
    """
    grey = np.clip(_box(log_image, 5, 3) / np.log1p(255.0), 0.0, 1.0 - 1e-6)
    code = (grey * GREY_BINS).astype(np.int32) * STABILITY_BINS
    if stability is not None:
        st = np.clip((_box(stability, 5, 3) + 0.2) / 1.2, 0.0, 1.0 - 1e-6)
        code += (st * STABILITY_BINS).astype(np.int32)
    return code


def learn_looks(
    codes: np.ndarray,
    lumen_s: np.ndarray,
    vessel_s: np.ndarray | None,
    start: int,
    margin: int,
    depth: int,
    reach: int | None = None,
) -> dict[str, np.ndarray]:
    """The looks of each keyframe's blood and wall: the appearance of this pullback's lumen and
    of what lies behind its border, kept per keyframe so that each frame learns from its
    nearest keyframes only (:func:`nearest_looks`).

    Parameters
    ----------
    codes : ndarray of shape (K, A, R), int
        The keyframes' looks (:func:`look_codes`).
    lumen_s, vessel_s : ndarray of shape (K, A), samples (NaN rows: that border not given)
    start : int
        First sample outside the catheter's ring-down.
    margin : int
        Samples either side of a border left out (its blurred step belongs to neither side).
    depth : int
        Twice the samples of wall counted beyond a lumen-only keyframe's lumen.
    reach : int or None
        Samples inside the lumen border left out of its blood (default ``margin``): how far a
        look's window reaches. A correlation window that straddles the border is dominated by
        the wall's correlated echoes, so blood that close looks partly like wall; counted as
        blood, it taught that such looks (stable, darker than the wall: an echolucent pool's)
        are blood. Its looks are kept apart (``border``): a look shown there more than in
        either region says nothing (:func:`nearest_looks`).

    Returns
    -------
    dict with ``inner`` (blood) and ``outer`` (wall): each keyframe's frequency of each look, shape
    (K, GREY_BINS * STABILITY_BINS) (NaN rows for a keyframe showing fewer than 200 samples of
    either; see :func:`_frequencies` for looks not seen), ``lumen``: the log-ratio (blood
    against wall) of each look over all keyframes, clipped to +-3, and with ``reach`` beyond
    ``margin``, ``border``: the frequencies of the looks left out within it (K, n_codes); empty
    when no keyframe shows enough.
    """
    r = np.arange(codes.shape[-1])[None, None, :]
    lum = lumen_s[..., None]
    ves = vessel_s[..., None] if vessel_s is not None else np.full_like(lum, np.nan)
    has_l, has_v = np.isfinite(lum), np.isfinite(ves)
    inside = margin if reach is None else max(margin, reach)
    # a lumen-only keyframe: the wall is the first stretch beyond its lumen
    wall_end = np.where(has_v, ves - margin, lum + margin + depth // 2)
    regions = (has_l & (r >= start) & (r < lum - inside), has_l & (r > lum + margin) & (r < wall_end))
    counts, enough = _region_counts(codes, regions)
    if not enough.any():
        return {}
    pooled = [c[enough].sum(axis=0)[None] for c in counts]
    freq = _frequencies(pooled, np.ones(1, bool))
    out = {
        **_frequencies(counts, enough),
        "lumen": np.clip(np.log(freq["inner"][0] / freq["outer"][0]), -3.0, 3.0).astype(np.float32),
    }
    if inside > margin:
        band = has_l & (r >= np.maximum(lum - inside, start)) & (r < lum - margin)
        counts = _region_counts(codes, (band, band))[0]
        out["border"] = np.where(enough[:, None], _frequencies(counts, enough)["inner"], np.nan)
    return out


def learn_wall_looks(
    codes: np.ndarray, lumen_s: np.ndarray, vessel_s: np.ndarray, margin: int, depth: int
) -> dict[str, np.ndarray]:
    """The looks of each keyframe's wall (``inner``, between its lumen and vessel) and of what
    lies ``depth`` samples beyond its vessel (``outer``), as frequencies (K, GREY_BINS *
    STABILITY_BINS) like :func:`learn_looks` (NaN rows: a keyframe without both borders or
    fewer than 200 samples of either); empty when no keyframe shows enough.

    A lipid pool is wall and bright perivascular fat is not: where the EEM's step is faint or
    doubled, this pullback's own keyframes tell which side a layer belongs to.
    """
    r = np.arange(codes.shape[-1])[None, None, :]
    lum, ves = lumen_s[..., None], vessel_s[..., None]
    both = np.isfinite(lum) & np.isfinite(ves)
    regions = (
        both & (r > lum + margin) & (r < ves - margin),
        both & (r > ves + margin) & (r < ves + margin + depth),
    )
    counts, enough = _region_counts(codes, regions)
    return _frequencies(counts, enough) if enough.any() else {}


def _region_counts(
    codes: np.ndarray, regions: tuple[np.ndarray, np.ndarray]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each keyframe's count of each look inside each of the two regions (2 x (K, n_codes)) and
    whether both regions show at least 200 samples (K,): fewer teach noise, not looks."""
    n_codes = GREY_BINS * STABILITY_BINS
    counts = [
        np.stack([np.bincount(c[m], minlength=n_codes) for c, m in zip(codes, mask, strict=True)]).astype(
            float
        )
        for mask in np.broadcast_arrays(*regions)
    ]
    return counts, np.minimum(counts[0].sum(axis=1), counts[1].sum(axis=1)) >= 200


def _frequencies(counts: list[np.ndarray], enough: np.ndarray) -> dict[str, np.ndarray]:
    """``inner`` and ``outer`` look frequencies (K, n_codes), NaN rows where a keyframe shows
    too little.

    Each region's counts are smoothed with as many pseudo-counts as there are looks, spread as
    the product of its grey-level and correlation frequencies: a look the keyframe never showed
    in a region is judged by its grey level and its correlation apart. One pseudo-count per look
    made every unseen look belong to the smaller region (the wall: 0.25 mm behind a lumen-only
    keyframe's lumen), and a frame's looks the keyframes never showed pulled its lumen inward.
    """
    out = []
    for c in counts:
        grid = c.reshape(len(c), GREY_BINS, STABILITY_BINS)
        grey = grid.sum(axis=2) + 1.0
        stability = grid.sum(axis=1) + 1.0
        apart = (grey[:, :, None] * stability[:, None, :]).reshape(c.shape)
        apart /= apart.sum(axis=1, keepdims=True)
        out.append((c + c.shape[1] * apart) / (c.sum(axis=1, keepdims=True) + c.shape[1]))
    inner, outer = out
    return {
        "inner": np.where(enough[:, None], inner, np.nan),
        "outer": np.where(enough[:, None], outer, np.nan),
    }


def nearest_looks(looks: dict[str, np.ndarray], key_ranks: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Log-likelihood ratio (F, GREY_BINS * STABILITY_BINS) of each look, inner against outer
    region (blood against wall, or wall against what lies beyond it),
    for frames of analysed ranks ``ranks`` (F,), from the keyframes of ranks ``key_ranks`` (K,)
    (rows of :func:`learn_looks`): the two keyframes on either side, their frequencies mixed by
    the frame's position between them, beyond the last (or first) the nearest alone, clipped to
    +-3 (0 for a look likelier within reach of the border than in either region, given a
    ``border``). A keyframe teaches only its own stretch of pullback: adding one changes the
    looks of the frames between its neighbours and no others. Keyframes without enough samples
    are skipped.
    """
    ok = np.isfinite(looks["inner"]).all(axis=1)
    keys = np.asarray(key_ranks)[ok]
    order = np.argsort(keys)
    keys, blood, wall = keys[order], looks["inner"][ok][order], looks["outer"][ok][order]
    ranks = np.asarray(ranks, float)
    after = np.clip(np.searchsorted(keys, ranks), 0, len(keys) - 1)
    before = np.clip(np.searchsorted(keys, ranks, side="right") - 1, 0, len(keys) - 1)
    span = np.maximum(keys[after] - keys[before], 1)
    t = np.where(after == before, 0.0, np.clip((ranks - keys[before]) / span, 0.0, 1.0))[:, None]
    p_blood = (1 - t) * blood[before] + t * blood[after]
    p_wall = (1 - t) * wall[before] + t * wall[after]
    llr = np.clip(np.log(p_blood / p_wall), -3.0, 3.0).astype(np.float32)
    if "border" in looks:
        # a look the keyframes show mostly within reach of their border (blood mixed with
        # wall in its window) says nothing of which side it is on
        border = looks["border"][ok][order]
        p_border = (1 - t) * border[before] + t * border[after]
        llr[p_border > np.maximum(p_blood, p_wall)] = 0.0
    return llr


def region_cost(
    llr: np.ndarray,
    codes: np.ndarray,
    start: int | np.ndarray,
    dr_mm: float,
    weight: float,
    reach: int,
    stop: np.ndarray | None = None,
) -> np.ndarray:
    """Cost (F, A, R) of a border at each radius from the looks on either side of it.

    A border at ``r`` calls what lies inside it the inner region (blood for the lumen, wall for
    the vessel) and what lies beyond the outer one; the cost is how
    much likelier (in log-ratio mm) a radius within ``reach`` samples makes that split, times
    ``weight``: 0 where no nearby radius does better, and never more than the inner region the
    ray shows up to ``reach`` beyond the radius (its best log-ratio sum from ``start``). Only
    nearby: the dark shadow behind calcium looks like the guidewire's shadow in the keyframes'
    blood, and the wall in front of it would not hold a whole ray's sum back. Nothing counts
    before ``start`` or beyond ``stop`` (samples, (F, A)): the blood of a side branch beyond the
    vessel is not this lumen's.
    """
    # one ratio for all frames (A,), or each frame's own (F, n_codes)
    x = (
        llr[codes]
        if llr.ndim == 1
        else np.take_along_axis(llr[:, None, :], codes.reshape(len(codes), 1, -1), -1).reshape(codes.shape)
    )
    r = np.arange(x.shape[-1])
    x[np.broadcast_to(r < np.asarray(start)[..., None], x.shape)] = 0.0
    if stop is not None:
        x[r > stop[..., None]] = 0.0
    # a border at sample r has samples 0 .. r - 1 inside (the step lies between r - 1 and r)
    cum = np.cumsum(x, axis=-1) * np.float32(dr_mm)
    cum = np.concatenate([np.zeros_like(cum[..., :1]), cum[..., :-1]], axis=-1)
    best = ndimage.maximum_filter1d(cum, size=2 * reach + 1, axis=-1, mode="nearest")
    # what the looks can say on a ray is bounded by the inner region they find on it: a ray
    # whose looks show none (a plaque the keyframes' wall never showed, all "beyond" to them)
    # cannot tell where that region ends, and dragged its border onto ``start`` (an EEM 0.3 mm
    # inside the true one, 8 frames past the last keyframe)
    shown = np.maximum.accumulate(cum, axis=-1)
    shown = shown[..., np.minimum(np.arange(cum.shape[-1]) + reach, cum.shape[-1] - 1)]
    return (np.float32(weight) * np.minimum(best - cum, shown)).astype(np.float32)


def shadowed(image: np.ndarray, vessel_mm: np.ndarray, radii_mm: np.ndarray, ratio: float) -> np.ndarray:
    """Directions (F, A) whose far field (1 mm beyond ``vessel_mm`` (F, A), the keyframes'
    vessel) is darker than ``ratio`` times the frame's median far field: a guidewire's or a
    calcium's shadow. ``image`` (F, A, R), ``radii_mm`` (R,)."""
    r = radii_mm[None, None, :]
    band = (r >= vessel_mm[..., None] + 0.15) & (r <= vessel_mm[..., None] + 1.15)
    count = band.sum(axis=-1)
    far = np.where(band, image, 0.0).sum(axis=-1) / np.maximum(count, 1)
    typical = np.median(far, axis=1, keepdims=True)
    far = np.where(count > 0, far, typical)
    return far < ratio * np.maximum(np.median(far, axis=1, keepdims=True), 1e-3)


def fill_from_prior(
    radii_mm: np.ndarray, hidden: np.ndarray, prior_mm: np.ndarray, min_run: int = 1
) -> np.ndarray:
    """A border (A,) whose ``hidden`` sectors of ``min_run`` directions or more take the shape
    of ``prior_mm`` (A,), shifted to meet the border at either edge of the sector (the shift
    changing linearly across it). Nothing changes where everything or nothing is hidden."""
    n = len(radii_mm)
    if not hidden.any() or hidden.all():
        return radii_mm
    out = np.asarray(radii_mm, float).copy()
    for start, length in _runs(hidden):
        if length < min_run:
            continue
        idx = (start + np.arange(length)) % n
        before, after = (start - 1) % n, (start + length) % n
        a, b = out[before] - prior_mm[before], out[after] - prior_mm[after]
        t = np.arange(1, length + 1) / (length + 1)
        out[idx] = prior_mm[idx] + (1 - t) * a + t * b
    return out
