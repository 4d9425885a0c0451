"""Automatic lumen and vessel (EEM) segmentation of IVUS frames.

The method works on the polar image about the catheter centre, where both borders are
closed paths r(theta):

1. Polar resampling (block-mean downsampling, precomputed bilinear map) of each analysed
   frame and of its raw neighbours in the pullback.
2. Catheter and ring-down: the near field that stays identical from frame to frame (or,
   with too few frames, the bright near-field ring) is excluded from the search.
3. Features: smoothed intensity, and temporal stability (local correlation with the
   neighbouring raw frames): blood speckle decorrelates from frame to frame, tissue does
   not. Each feature is weighted by how well it separates blood from tissue in this
   pullback (Fisher ratio measured on a first segmentation).
4. Lumen: a region + edge cost (blood inside, tissue just outside) minimised by dynamic
   programming over angles with a smoothness penalty, closed over the full turn.
5. Vessel (EEM): the dark-media to bright-adventitia step outside the lumen, by another
   smooth DP path at least a minimum wall thickness outside the lumen.
6. Sequence: radii are median-filtered along neighbouring analysed frames and the paths
   recomputed within a band around them, so borders are coherent along the pullback.
7. Acoustic shadows (bright reflector, dark sector behind it): borders are interpolated
   across them; a reflector inside the lumen is a guidewire, one in the wall is calcium,
   whose arc is measured at the lumen centroid.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import IVUSCancelled, IVUSInputError
from .geometry import polygon_centroid
from .types import ContourSet, FrameContours, Pullback

__all__ = [
    "PolarSampler",
    "dp_closed_path",
    "segment_pullback",
]

ProgressFn = Callable[[float, str], None]


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
        ds = np.asarray(frames[:, : hd * f, : wd * f], dtype=np.float32)
        if f > 1:
            ds = ds.reshape(n, hd, f, wd, f).mean(axis=(2, 4))
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
    pad_fraction: float = 0.5,
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

    Returns
    -------
    ndarray of shape (F, A), int
        Radial index of the path at each angle.
    """
    n_f, n_a, n_r = cost.shape
    pad = int(round(pad_fraction * n_a))
    order = np.arange(-pad, n_a + pad) % n_a
    big = np.float32(1e9)
    c = np.where(np.isfinite(cost), cost, big).astype(np.float32)
    steps = np.arange(-max_step, max_step + 1)
    penalty = (smooth_weight * steps.astype(np.float32) ** 2).astype(np.float32)
    acc = c[:, order[0], :].copy()
    back = np.zeros((len(order), n_f, n_r), dtype=np.int8)
    padded = np.full((n_f, n_r + 2 * max_step), big, dtype=np.float32)
    cand = np.empty((len(steps), n_f, n_r), dtype=np.float32)
    for i in range(1, len(order)):
        padded[:, max_step : max_step + n_r] = acc
        for j, s in enumerate(steps):
            # cand[j][r] = acc[r + s] + penalty: arriving at r from r + s
            cand[j] = padded[:, max_step + s : max_step + s + n_r] + penalty[j]
        arg = np.argmin(cand, axis=0)
        back[i] = arg
        acc = np.take_along_axis(cand, arg[None], axis=0)[0] + c[:, order[i], :]
    path = np.zeros((len(order), n_f), dtype=np.int64)
    path[-1] = np.argmin(acc, axis=1)
    rows = np.arange(n_f)
    for i in range(len(order) - 1, 0, -1):
        path[i - 1] = np.clip(path[i] + steps[back[i][rows, path[i]]], 0, n_r - 1)
    middle = path[pad : pad + n_a]
    return middle.T.copy()


# --------------------------------------------------------------------------- helpers
def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("segmentation cancelled")


def _box(x: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Box mean over (angle, radius), circular in angle; x of shape (F, A, R)."""
    y = ndimage.uniform_filter1d(x, size=max(1, size_a), axis=1, mode="wrap")
    return ndimage.uniform_filter1d(y, size=max(1, size_r), axis=2, mode="nearest")


def _local_ncc(a: np.ndarray, b: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Local normalised cross-correlation of two polar stacks (F, A, R)."""
    ma, mb = _box(a, size_a, size_r), _box(b, size_a, size_r)
    cov = _box(a * b, size_a, size_r) - ma * mb
    va = _box(a * a, size_a, size_r) - ma * ma
    vb = _box(b * b, size_a, size_r) - mb * mb
    return cov / np.sqrt(np.maximum(va * vb, 1e-6))


def _window_means(x: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of x over (r - w, r] ... precisely [r - w, r) and [r, r + w) along the last axis."""
    n_r = x.shape[-1]
    cs = np.concatenate([np.zeros(x.shape[:-1] + (1,), x.dtype), np.cumsum(x, axis=-1)], axis=-1)
    r = np.arange(n_r)
    lo = np.clip(r - w, 0, n_r)
    hi = np.clip(r + w, 0, n_r)
    inner = (cs[..., r] - cs[..., lo]) / np.maximum(r - lo, 1)
    outer = (cs[..., hi] - cs[..., r]) / np.maximum(hi - r, 1)
    return inner, outer


def _median_along_sequence(
    radii: np.ndarray, indices: np.ndarray, *, half_window: int, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median of each angle's radius over neighbouring analysed frames close in index.

    Returns the median (F, A) and the spread (F, A) of the *other* frames about it (their
    median absolute deviation; inf where there are too few neighbours).
    """
    n = len(radii)
    out = radii.astype(float).copy()
    spread = np.full(radii.shape, np.inf)
    for i in range(n):
        lo, hi = max(0, i - half_window), min(n, i + half_window + 1)
        near = [j for j in range(lo, hi) if abs(int(indices[j]) - int(indices[i])) <= max_gap]
        if len(near) >= 3:
            out[i] = np.median(radii[near], axis=0)
            others = [j for j in near if j != i]
            spread[i] = np.median(np.abs(radii[others] - out[i]), axis=0)
    return out, spread


def _sequence_reference(
    radii: np.ndarray, indices: np.ndarray, tol: float, *, half_window: int = 2, max_gap: int = 30
) -> np.ndarray:
    """Each frame's border, replaced by its neighbours' median where it is an outlier.

    A frame's radius is an outlier at an angle when it lies more than ``tol`` samples from
    the median of the neighbouring analysed frames while those agree among themselves
    (spread below ``tol / 2``). Where the neighbours disagree (fast anatomical change,
    sparse gated frames) the frame keeps its own border.
    """
    med, spread = _median_along_sequence(radii, indices, half_window=half_window, max_gap=max_gap)
    outlier = (np.abs(radii - med) > tol) & (spread < tol / 2)
    return np.where(outlier, med, radii.astype(float))


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


def _interpolate_runs(values: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
    """Linear interpolation across circular runs from the samples bounding each run."""
    out = values.astype(float).copy()
    n = len(values)
    for start, length in runs:
        if length >= n:
            continue
        a = (start - 1) % n
        b = (start + length) % n
        t = (np.arange(1, length + 1)) / (length + 1)
        idx = (start + np.arange(length)) % n
        out[idx] = (1 - t) * values[a] + t * values[b]
    return out


def _circular_smooth(r: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter1d(r, sigma, axis=-1, mode="wrap") if sigma > 0 else r


# --------------------------------------------------------------------------- main
@dataclass
class _Features:
    intensity: np.ndarray  # (F, A, R) normalised smoothed intensity, ~[0, 1]
    stability: np.ndarray | None  # (F, A, R) local temporal correlation, [-1, 1]
    raw: np.ndarray  # (F, A, R) lightly smoothed intensity (reflector detection)


def _near_field_model(polar_sample: np.ndarray, radii_mm: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Catheter radius and the static near-field pattern (ring-down) to subtract.

    The catheter, its sheath and the ring-down are fixed to the transducer: in polar
    coordinates they are the same in every frame of the pullback, while blood and tissue
    change. Frames far apart in the pullback are compared: where they stay correlated
    from the catheter outwards, the pattern is an artefact.

    Parameters
    ----------
    polar_sample : ndarray of shape (M, A, R)
        Polar frames spread over the pullback.
    radii_mm : ndarray of shape (R,)

    Returns
    -------
    k_cath : int
        First radial index outside the catheter sheath.
    correction : ndarray of shape (A, R)
        Static pattern to subtract from every polar frame (zero outside the near field).
    median : ndarray of shape (A, R)
        Median polar frame of the pullback: subtracted before measuring frame-to-frame
        correlation, it removes every static pattern (ring-down included) while tissue,
        which moves and changes along the pullback, keeps its correlation.
    """
    m, n_a, n_r = polar_sample.shape
    dr = radii_mm[1] - radii_mm[0]
    limit = max(3, n_r // 2)
    median = np.median(polar_sample, axis=0)
    profile = np.median(median, axis=0)
    # the sheath is the brightest near-field ring
    peak = int(np.argmax(profile[: max(3, n_r // 3)]))
    k_cath = int(min(limit, peak + max(1, int(round(0.08 / dr)))))
    # Ring-down profile: at the darkest angles of a low temporal percentile, the near
    # field shows the artefact over blood; it decays with depth to the blood level.
    low = np.percentile(polar_sample, 20, axis=0) if m >= 4 else median
    profile_low = np.percentile(low, 10, axis=0)
    span = profile_low[k_cath:limit]
    floor = float(span.min()) if span.size else 0.0
    ring = np.maximum(profile_low - floor, 0.0)
    ring[:k_cath] = 0.0
    ring[limit:] = 0.0
    correction = np.broadcast_to(ring[None, :], (n_a, n_r)).astype(np.float32)
    return k_cath, correction, median.astype(np.float32)


def _features(
    polar: np.ndarray,
    neighbours: list[np.ndarray],
    correction: np.ndarray,
    static: np.ndarray | None,
    *,
    size_a: int,
    size_r: int,
    k_cath: int,
) -> _Features:
    corrected = polar - correction
    raw = _box(corrected, 3, max(1, size_r // 2))
    smooth = _box(corrected, size_a, size_r)
    annulus = smooth[:, :, k_cath:]
    lo = np.percentile(annulus, 2, axis=(1, 2), keepdims=True)
    hi = np.percentile(annulus, 98, axis=(1, 2), keepdims=True)
    intensity = (smooth - lo) / np.maximum(hi - lo, 1e-3)
    stability = None
    if neighbours:
        base = static if static is not None else 0.0
        rho = [_local_ncc(polar - base, nb - base, size_a + 2, 2 * size_r) for nb in neighbours]
        stability = np.mean(rho, axis=0).astype(np.float32)
        stability = _box(stability, 3, size_r)
    return _Features(intensity.astype(np.float32), stability, raw)


def _fisher(values: np.ndarray, blood: np.ndarray, tissue: np.ndarray) -> tuple[float, float, float]:
    """(blood mean, tissue mean, Fisher ratio) of a feature over two masks."""
    b = values[blood]
    t = values[tissue]
    if b.size < 10 or t.size < 10:
        return 0.0, 1.0, 0.0
    mb, mt = float(np.median(b)), float(np.median(t))
    vb, vt = float(np.var(b)), float(np.var(t))
    return mb, mt, (mt - mb) ** 2 / max(vb + vt, 1e-6)


def _lumen_cost(
    tissue: np.ndarray, edge_w: int, region_w: int, k_cath: int, edge_weight: float
) -> np.ndarray:
    """Cost of placing the lumen border at each radius (F, A, R).

    Edge term: the blood-to-tissue step of the tissue score across r (normalised per
    frame). Region terms: clearly tissue-like samples between the catheter and r (the
    lumen holds only blood), and blood-like samples in a window just outside r.
    """
    t = np.clip(tissue, -0.5, 1.5)
    n_r = t.shape[-1]
    inner_e, outer_e = _window_means(t, edge_w)
    step = outer_e - inner_e
    scale = np.percentile(np.abs(step[..., k_cath:]), 95, axis=(1, 2), keepdims=True)
    edge = step / np.maximum(scale, 1e-3)
    solid = np.clip(t - 0.6, 0, None)
    inside = np.cumsum(solid, axis=-1)
    inside = np.concatenate([np.zeros(t.shape[:-1] + (1,), t.dtype), inside[..., :-1]], axis=-1)
    inside = inside - inside[..., k_cath : k_cath + 1]
    _, outer = _window_means(np.clip(0.4 - t, 0, None), region_w)
    cost = -edge_weight * edge + inside / max(region_w, 1) + outer
    cost[..., :k_cath] = np.inf
    cost[..., n_r - region_w // 2 :] = np.inf
    return cost.astype(np.float32)


def _eem_cost(intensity: np.ndarray, edge_w: int) -> np.ndarray:
    """Cost of the EEM at each radius: minus the dark-to-bright step of intensity.

    The step is normalised by its robust spread over the frame so that the
    smoothness weight means the same in every frame.
    """
    inner, outer = _window_means(intensity, edge_w)
    step = outer - inner
    # A dark band just inside (the media) strengthens the evidence.
    valley = np.clip(outer - inner, 0, None) * np.clip(1.0 - inner, 0, 1)
    score = step + 0.5 * valley
    scale = np.percentile(np.abs(score), 95, axis=(1, 2), keepdims=True)
    return (-score / np.maximum(scale, 1e-6)).astype(np.float32)


def _shadow_analysis(
    raw: np.ndarray,
    reference: np.ndarray,
    k_cath: int,
    dr_mm: float,
    radii_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Acoustic shadows: a bright reflector followed by a dark sector.

    A ray is shadowed when its brightest sample is among the brightest of the frame and the
    echo behind it, over a window of depths, falls well below what the same depths show in
    the pullback as a whole (``reference``, the median level at each depth). Using the
    pullback rather than the frame as reference keeps large calcium arcs (half the frame in
    shadow) detectable.

    Parameters
    ----------
    raw : ndarray of shape (F, A, R)
        Lightly smoothed polar intensity (grey levels, ring-down removed).
    reference : ndarray of shape (R,)
        Typical intensity at each depth over the pullback.

    Returns
    -------
    shadow : ndarray of shape (F, A), bool
    reflector_k : ndarray of shape (F, A), int
        Radial index of the reflector's leading edge (half-maximum from inside).
    wire : ndarray of shape (F, A), bool
        Shadowed angles whose sector is narrow (a guidewire rather than calcium).
    """
    n_f, n_a, n_r = raw.shape
    far = raw[:, :, k_cath:]
    peak_k = np.argmax(far, axis=-1) + k_cath
    peak_v = np.take_along_axis(raw, peak_k[..., None], axis=-1)[..., 0]
    k_behind = max(2, int(round(0.15 / dr_mm)))
    k_len = max(3, int(round(1.5 / dr_mm)))
    r = np.arange(n_r)
    lo = peak_k[..., None] + k_behind
    hi = np.minimum(lo + k_len, n_r)
    window = (r >= lo) & (r < hi)
    count = window.sum(axis=-1)
    behind = (raw * window).sum(axis=-1) / np.maximum(count, 1)
    ref = (reference[None, None, :] * window).sum(axis=-1) / np.maximum(count, 1)
    top = np.percentile(far, 99.5, axis=(1, 2))[:, None]
    bright = peak_v >= 0.8 * top
    dark = behind < 0.45 * np.maximum(ref, 1e-3)
    shadow = bright & dark & (count >= 3)
    # a single angle is noise; close one-angle gaps inside a sector
    shadow = ndimage.binary_closing(shadow, structure=np.ones((1, 3), bool))
    shadow = ndimage.binary_opening(shadow, structure=np.ones((1, 2), bool))
    # leading edge: last sample below half the peak before the peak
    below = (raw < 0.5 * peak_v[..., None]) & (r < peak_k[..., None]) & (r >= k_cath)
    last_below = np.where(below, r, -1).max(axis=-1)
    lead = np.where(last_below >= 0, last_below + 1, peak_k)
    # shadow runs: fill the leading edge where the closing added angles, classify by width
    wire = np.zeros_like(shadow)
    for f in range(n_f):
        for start, length in _runs(shadow[f]):
            ks = (start + np.arange(length)) % n_a
            r_mm = float(np.median(radii_mm[lead[f, ks]]))
            width_mm = length * 2 * np.pi / n_a * r_mm
            if width_mm <= 0.8 and length < n_a // 8:
                wire[f, ks] = True
    return shadow, lead, wire


def segment_pullback(
    pullback: Pullback,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    *,
    n_angles: int = 128,
    n_points: int = 128,
    batch_size: int = 48,
    min_wall_mm: float = 0.12,
    use_temporal: bool = True,
    seq_tol_mm: float = 0.12,
    refine_temporal: bool = False,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> ContourSet:
    """Segment the lumen and vessel (EEM) borders of frames of a pullback.

    Parameters
    ----------
    pullback : Pullback
    frame_indices : sequence of int, optional
        Frames to segment (default: all), e.g. the gated end-diastolic frames.
    n_angles : int
        Angular resolution of the polar search.
    n_points : int
        Points of each returned polygon.
    batch_size : int
        Frames processed together (vectorised), with sequence smoothing inside a batch
        and a two-frame overlap between batches.
    min_wall_mm : float
        Minimum lumen-to-EEM distance.
    use_temporal : bool
        Use the neighbouring raw frames' decorrelation as a blood cue.
    seq_tol_mm : float
        A frame's border farther than this from its neighbours' median, where those
        agree, is pulled back to the median (sequence coherence).
    refine_temporal : bool
        Experimental, off by default (not yet better than the default path): lumen from
        the temporal correlation of speckle alone (``_temporal_tissue``), then a
        sub-sample step fit (``_refine_step``).

    Returns
    -------
    ContourSet
        Lumen and vessel polygons in frame-plane mm (x along columns, y along rows, origin
        at the catheter centre), with ``calcium_arc_deg`` and ``confidence`` per frame.
    """
    n_frames = pullback.n_frames
    if frame_indices is None:
        frame_indices = np.arange(n_frames)
    idx = np.unique(np.asarray(frame_indices, dtype=int))
    if idx.size == 0:
        return ContourSet(
            frames=(),
            pixel_spacing_mm=pullback.pixel_spacing_mm,
            catheter_center_px=pullback.catheter_center_px,
        )
    if idx.min() < 0 or idx.max() >= n_frames:
        raise IVUSInputError(
            f"--frames: frame indices must lie in 0..{n_frames - 1}; pass frame numbers inside the pullback"
        )
    sampler = PolarSampler.build(
        pullback.shape_px, pullback.pixel_spacing_mm, pullback.catheter_center_px, n_angles=n_angles
    )
    dr = sampler.dr_mm
    radii = sampler.radii_mm
    n_r = len(radii)

    # catheter / ring-down from frames spread over the pullback
    sample_idx = np.unique(np.linspace(0, n_frames - 1, min(n_frames, 16)).round().astype(int))
    sample_polar = sampler(pullback.frames[sample_idx])
    k_cath, correction, static = _near_field_model(sample_polar, radii)
    # typical level at each depth over the pullback: the reference for shadows
    ring_k = _ring_extent(correction[0], k_cath, dr)
    ref_profile = np.median(_box(sample_polar - correction, 3, 1), axis=(0, 1)).astype(np.float32)

    # scales in samples
    size_r = max(1, int(round(0.10 / dr)))
    size_a = max(1, int(round(n_angles / 64)))
    edge_w = max(2, int(round(0.15 / dr)))
    region_w = max(3, int(round(0.4 / dr)))
    min_wall_k = max(2, int(round(min_wall_mm / dr)))
    max_step = max(2, int(np.ceil(0.06 / dr * n_angles / 128)))

    out_frames: list[FrameContours] = []
    cache: dict[int, np.ndarray] = {}
    weights: tuple[float, float] | None = None
    calib: tuple[tuple[float, float], ...] | None = None
    overlap = 2
    starts = list(range(0, len(idx), batch_size))
    for bi, start in enumerate(starts):
        _check_cancel(cancel)
        lo = max(0, start - overlap)
        hi = min(len(idx), start + batch_size + overlap)
        b_idx = idx[lo:hi]
        need = set(b_idx.tolist())
        neigh_of: dict[int, list[int]] = {}
        if use_temporal and n_frames > 1:
            for k in b_idx:
                nb = [j for j in (k - 1, k + 1) if 0 <= j < n_frames]
                neigh_of[int(k)] = nb
                need.update(nb)
        missing = sorted(need - set(cache))
        if missing:
            polars = sampler(pullback.frames[np.array(missing)])
            cache.update({k: p for k, p in zip(missing, polars, strict=False)})
        for k in list(cache):
            if k < b_idx[0] - 1:
                del cache[k]
        polar = np.stack([cache[int(k)] for k in b_idx])
        neighbours: list[np.ndarray] = []
        if neigh_of:
            prev = np.stack([cache[neigh_of[int(k)][0]] for k in b_idx])
            nxt = np.stack([cache[neigh_of[int(k)][-1]] for k in b_idx])
            neighbours = [prev, nxt]
        feats = _features(
            polar,
            neighbours,
            correction,
            static if n_frames >= 6 else None,
            size_a=size_a,
            size_r=size_r,
            k_cath=k_cath,
        )
        shadow, lead_k, wire = _shadow_analysis(feats.raw, ref_profile, k_cath, dr, radii)

        temporal = bool(neighbours) and refine_temporal
        if temporal:
            tissue = _temporal_tissue(
                polar,
                neighbours,
                static if n_frames >= 6 else None,
                k_cath=k_cath,
                size_a=size_a + 2,
                ring_k=ring_k,
            )
            cost = _step_cost(tissue, k_cath, region_w)
            cost = _neutralise_shadow(cost, shadow, lead_k, margin=edge_w)
            path = dp_closed_path(cost, max_step=max_step, smooth_weight=0.02)
        else:
            # --- pass 1: equal-weight tissue score, then Fisher weights from its result
            if weights is None:
                w_stab = 0.0
                if feats.stability is not None:
                    spread = np.percentile(feats.stability, 90) - np.percentile(feats.stability, 10)
                    w_stab = float(np.clip(spread / 0.4, 0.0, 1.0))
                weights = (1.0, w_stab)
            tissue, _ = _tissue_score(feats, weights, calib)
            cost = _lumen_cost(tissue, edge_w, region_w, k_cath, 1.0)
            cost = _neutralise_shadow(cost, shadow, lead_k, margin=edge_w)
            path = dp_closed_path(cost, max_step=max_step, smooth_weight=0.02)
            # re-estimate blood / tissue statistics of each feature around this border
            weights, calib = _calibrate(feats, path, k_cath, region_w)
            tissue, _ = _tissue_score(feats, weights, calib)
            cost = _lumen_cost(tissue, edge_w, region_w, k_cath, 1.0)
            cost = _neutralise_shadow(cost, shadow, lead_k, margin=edge_w)
            path = dp_closed_path(cost, max_step=max_step, smooth_weight=0.02)

        # --- sequence coherence: band around the median over neighbouring frames
        # a frame keeps its own border where it agrees with its neighbours' median and
        # falls back on the median where it jumps away (wire, speckle, side branch)
        smooth_path = _sequence_reference(path.astype(float), b_idx, seq_tol_mm / dr)
        band = max(2, int(round(0.3 / dr)))
        lumen_k = _banded_dp(cost, smooth_path, band, max_step, 0.02)
        if temporal:
            frozen = ndimage.binary_dilation(shadow, structure=np.ones((1, 5), bool))
            lumen_k = _refine_step(tissue, lumen_k, dr_mm=dr, k_cath=k_cath, frozen=frozen)
        lumen_k = _fix_shadows_lumen(lumen_k.astype(float), shadow, lead_k, wire, dr)

        # --- EEM
        e_cost = _eem_cost(feats.intensity, edge_w)
        r_idx = np.arange(n_r)
        lum_int = np.round(lumen_k).astype(int)
        forbid = r_idx[None, None, :] < (lum_int[..., None] + min_wall_k)
        # a vessel border never lies beyond twice the lumen radius plus 2 mm
        far_k = np.minimum(n_r - edge_w, (2 * lum_int + int(round(2.0 / dr))))
        forbid |= r_idx[None, None, :] > far_k[..., None]
        # mild preference for the first strong step outside the lumen
        e_cost = e_cost + 0.1 * np.clip(r_idx[None, None, :] - lum_int[..., None], 0, None) * dr
        e_cost = np.where(shadow[..., None] & (r_idx[None, None, :] > lead_k[..., None]), 0.0, e_cost)
        e_cost = np.where(forbid, np.inf, e_cost).astype(np.float32)
        # The EEM is searched as a wall thickness above the lumen: the smoothness
        # penalty then acts on thickness changes, so a thin wall (veins) follows the
        # lumen's shape instead of cutting across it.
        w_cost = _lumen_relative(e_cost, lum_int)
        t_path = dp_closed_path(w_cost, max_step=max_step, smooth_weight=0.08)
        smooth_t = _sequence_reference(t_path.astype(float), b_idx, seq_tol_mm / dr)
        eem_k = (lum_int + _banded_dp(w_cost, smooth_t, band, max_step, 0.08)).astype(float)
        # behind a reflector the EEM is unseen: carry the wall thickness across the sector
        thick = eem_k - lumen_k
        thick = np.array([_interpolate_runs(thick[i], _runs(shadow[i])) for i in range(len(b_idx))])
        eem_k = np.where(shadow, lumen_k + thick, eem_k)
        eem_k = _fill_long_shadows(eem_k, shadow, n_angles // 12)
        eem_k = np.maximum(eem_k, lumen_k + min_wall_k)

        keep = slice(start - lo, start - lo + min(batch_size, len(idx) - start))
        for i in range(len(b_idx))[keep]:
            out_frames.append(
                _frame_result(
                    int(b_idx[i]),
                    lumen_k[i],
                    eem_k[i],
                    shadow[i] & ~wire[i],
                    lead_k[i],
                    lumen_k,
                    eem_k,
                    smooth_path[i],
                    tissue[i],
                    feats.intensity[i],
                    radii,
                    n_points,
                    edge_w,
                )
            )
        if progress is not None:
            progress((bi + 1) / len(starts), "segmentation")
    return ContourSet(
        frames=tuple(out_frames),
        pixel_spacing_mm=pullback.pixel_spacing_mm,
        catheter_center_px=pullback.catheter_center_px,
    )


def _shift_sample(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of x (F, A, R) at fractional radial positions pos (F, A, M)."""
    n_r = x.shape[-1]
    p = np.clip(pos, 0, n_r - 1.000001)
    k0 = np.floor(p).astype(np.intp)
    f = (p - k0).astype(np.float32)
    a = np.take_along_axis(x, k0, axis=-1)
    b = np.take_along_axis(x, k0 + 1, axis=-1)
    return a + f * (b - a)


def _circular_median(x: np.ndarray, size: int) -> np.ndarray:
    """Median over ``size`` neighbouring angles (axis 1, circular), NaN-aware."""
    half = max(0, size // 2)
    stack = np.stack([np.roll(x, s, axis=1) for s in range(-half, half + 1)])
    with np.errstate(all="ignore"):
        return np.nanmedian(stack, axis=0)


def _otsu_levels(x: np.ndarray, mask: np.ndarray, bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame two-class (Otsu) split of x (F, A, R) over mask: class means (low, high), (F,)."""
    n_f = x.shape[0]
    lo_m = np.zeros(n_f, np.float32)
    hi_m = np.ones(n_f, np.float32)
    for f in range(n_f):
        v = x[f][mask[f]]
        if v.size < 20:
            continue
        hist, edges = np.histogram(v, bins=bins)
        c = 0.5 * (edges[1:] + edges[:-1])
        w0 = np.cumsum(hist)
        w1 = w0[-1] - w0
        s0 = np.cumsum(hist * c)
        m0 = s0 / np.maximum(w0, 1)
        m1 = (s0[-1] - s0) / np.maximum(w1, 1)
        between = w0 * w1 * (m0 - m1) ** 2
        j = int(np.argmax(between[:-1]))
        lo_m[f], hi_m[f] = m0[j], m1[j]
    return lo_m, hi_m


def _ring_extent(ring: np.ndarray, k_cath: int, dr_mm: float) -> int:
    """Radial index where the ring-down profile (R,) has decayed to 5 % of its peak."""
    if ring.max() <= 0:
        return 0
    peak = int(np.argmax(ring))
    below = np.flatnonzero(ring[peak:] < 0.05 * ring[peak])
    end = peak + (int(below[0]) if below.size else 0)
    return int(max(end, k_cath) + round(0.05 / dr_mm))


def _temporal_tissue(
    polar: np.ndarray,
    neighbours: list[np.ndarray],
    static: np.ndarray | None,
    *,
    k_cath: int,
    size_a: int,
    ring_k: int = 0,
    subtract_ring: bool = True,
) -> np.ndarray:
    """Tissue probability (blood 0, tissue 1) from the temporal correlation of speckle.

    Blood speckle decorrelates completely between consecutive raw frames, tissue (bright
    plaque and dark media alike) does not. The local normalised cross-correlation with the
    previous and next frames is measured on a small window (3 radial samples) after
    removing the pullback's static pattern (catheter, ring-down), so a static intensity
    step at the border biases it little. Blood and tissue levels are the two Otsu classes
    of the frame's own correlation values: no absolute threshold, which keeps it valid
    across scanners, gains and frequencies.

    Returns
    -------
    ndarray of shape (F, A, R), float32, clipped to [-0.5, 1.5]
    """
    base = 0.0
    if static is not None and ring_k > 0 and subtract_ring:
        # Only the ring-down is removed: elsewhere the pullback median holds tissue
        # texture of other frames, which would correlate independent blood samples.
        r_idx = np.arange(polar.shape[-1])
        taper_w = 4.0
        taper = np.clip((ring_k + taper_w - r_idx) / taper_w, 0.0, 1.0).astype(np.float32)
        # smoothed across angles: the ring-down barely depends on angle, speckle does
        smooth_static = ndimage.uniform_filter1d(static, size=9, axis=0, mode="wrap")
        base = smooth_static * taper[None, :]
    a = polar - base
    rho = np.mean([_local_ncc(a, nb - base, size_a, 3) for nb in neighbours], axis=0)
    r = np.arange(polar.shape[-1])[None, None, :]
    mask = np.broadcast_to(r > k_cath + 2, rho.shape)
    lo, _ = _otsu_levels(rho, mask)
    # tissue level: the well-correlated tail; far-field tissue may decorrelate partly
    # (motion), which must not pull the split between blood and tissue
    hi = np.array([np.percentile(rho[f][mask[f]], 90) for f in range(len(rho))], dtype=np.float32)
    t = (rho - lo[:, None, None]) / np.maximum(hi - lo, 1e-3)[:, None, None]
    return np.clip(t, -0.5, 1.5).astype(np.float32)


def _step_cost(tissue: np.ndarray, k_cath: int, outside_w: int) -> np.ndarray:
    """Cost of a blood-to-tissue border at each radius (F, A, R), in samples.

    Tissue-like samples between the catheter and r, plus blood-like samples in the
    ``outside_w`` samples beyond r: the least-squares position of a step.
    """
    t = tissue
    n_r = t.shape[-1]
    inside = np.cumsum(t, axis=-1) - t
    inside = inside - inside[..., k_cath : k_cath + 1]
    _, outer = _window_means(1.0 - t, outside_w)
    cost = inside + outer * outside_w
    cost[..., : k_cath + 1] = np.inf
    cost[..., n_r - 2 :] = np.inf
    return (cost / outside_w).astype(np.float32)


def _refine_step(
    tissue: np.ndarray,
    border_k: np.ndarray,
    *,
    dr_mm: float,
    k_cath: int,
    n_sub: int = 4,
    band_mm: float = 0.25,
    frozen: np.ndarray | None = None,
) -> np.ndarray:
    """Sub-sample border: least-cost step of ``tissue`` (F, A, R) near ``border_k`` (F, A).

    The tissue score is interpolated linearly on a radial grid ``n_sub`` times finer in a
    band about the current border; the border is the closed smooth DP path minimising the
    tissue inside plus the blood outside within the band.
    """
    n_f, n_a, n_r = tissue.shape
    band = max(3, int(round(band_mm / dr_mm)))
    offsets = np.arange(-band * n_sub, band * n_sub + 1, dtype=np.float32) / n_sub
    pos = border_k.astype(np.float32)[..., None] + offsets[None, None, :]
    t = _shift_sample(tissue, pos)
    t = np.where(pos <= k_cath, 1.5, t)
    inside = np.cumsum(t, axis=-1) - t
    outside = np.cumsum((1.0 - t)[..., ::-1], axis=-1)[..., ::-1]
    cost = (inside + outside) / n_sub
    max_step = max(2, int(np.ceil(0.08 / dr_mm * n_sub * 128 / n_a)))
    if frozen is not None:
        # behind a reflector the score says nothing: keep the current border there
        cost = np.where(frozen[..., None], 0.5 * np.abs(offsets)[None, None, :], cost)
    path = dp_closed_path(cost.astype(np.float32), max_step=max_step, smooth_weight=0.3 / n_sub**2)
    return border_k + offsets[path]


def _tissue_score(
    feats: _Features, weights: tuple[float, float], calib: tuple[tuple[float, float], ...] | None
) -> tuple[np.ndarray, tuple[tuple[float, float], ...] | None]:
    """Weighted blood (0) to tissue (1) score from the features."""
    w_int, w_stab = weights
    if calib is None:
        parts = [(feats.intensity, w_int)]
        if feats.stability is not None and w_stab > 0:
            parts.append((np.clip(feats.stability, 0, 1) / 0.6, w_stab))
    else:
        (ib, it), (sb, st) = calib
        # each calibrated feature is bounded so that a noisy one cannot dominate the sum
        parts = [(np.clip((feats.intensity - ib) / max(it - ib, 1e-3), -0.5, 1.5), w_int)]
        if feats.stability is not None and w_stab > 0:
            parts.append((np.clip((feats.stability - sb) / max(st - sb, 1e-3), -0.5, 1.5), w_stab))
    total = sum(w for _, w in parts)
    score = sum(p * w for p, w in parts) / max(total, 1e-6)
    return score.astype(np.float32), calib


def _calibrate(
    feats: _Features, path: np.ndarray, k_cath: int, region_w: int
) -> tuple[tuple[float, float], tuple[tuple[float, float], ...]]:
    """Blood/tissue statistics of each feature around a first lumen border.

    Blood: from the catheter to just inside the border; tissue: a band just outside.
    Returns Fisher-ratio weights and the (blood, tissue) medians of each feature.
    """
    n_r = feats.intensity.shape[-1]
    r = np.arange(n_r)[None, None, :]
    p = path[..., None]
    blood = (r >= k_cath + 1) & (r < p - 2)
    tissue = (r > p + 1) & (r <= p + region_w)
    ib, it, fi = _fisher(feats.intensity, blood, tissue)
    calib: list[tuple[float, float]] = [(ib, it)]
    w_stab = 0.0
    if feats.stability is not None:
        sb, st, fs = _fisher(feats.stability, blood, tissue)
        calib.append((sb, st))
        w_stab = fs if st > sb else 0.0
    else:
        calib.append((0.0, 1.0))
    w_int = fi if it > ib else 0.0
    if w_int + w_stab <= 0:
        w_int = 1.0
    # a feature much weaker than the other only adds noise
    if w_stab < 0.25 * w_int:
        w_stab = 0.0
    elif w_int < 0.25 * w_stab:
        w_int = 0.0
    return (w_int, w_stab), tuple(calib)


def _neutralise_shadow(
    cost: np.ndarray, shadow: np.ndarray, lead_k: np.ndarray, *, margin: int
) -> np.ndarray:
    """Behind a reflector nothing is seen: the lumen cost there carries no information."""
    r = np.arange(cost.shape[-1])[None, None, :]
    behind = shadow[..., None] & (r >= (lead_k[..., None] - margin))
    finite = np.isfinite(cost)
    neutral = np.where(finite & ~behind, cost, np.nan)
    with np.errstate(invalid="ignore"):
        level = np.nanmedian(neutral, axis=(1, 2), keepdims=True)
    level = np.where(np.isfinite(level), level, 0.0)
    return np.where(behind & finite, level, cost).astype(np.float32)


def _banded_dp(
    cost: np.ndarray, centre: np.ndarray, band: int, max_step: int, smooth_weight: float
) -> np.ndarray:
    """DP restricted to +-band samples around a reference path, with a soft pull to it."""
    r = np.arange(cost.shape[-1])[None, None, :]
    d = (r - centre[..., None]) / band
    # a soft pull (no hard band): a reference that jumps faster than the path may move
    # between angles must not leave the DP without a feasible path
    c = cost + 0.15 * np.minimum(d**2, 25.0)
    return dp_closed_path(c.astype(np.float32), max_step=max_step, smooth_weight=smooth_weight)


def _lumen_relative(cost: np.ndarray, base_k: np.ndarray) -> np.ndarray:
    """Resample cost (F, A, R) to depths above ``base_k`` (F, A): out[..., j] = cost[..., base + j]."""
    n_r = cost.shape[-1]
    k = base_k[..., None] + np.arange(n_r)[None, None, :]
    out = np.take_along_axis(cost, np.clip(k, 0, n_r - 1), axis=-1)
    return np.where(k < n_r, out, np.inf).astype(np.float32)


def _fill_long_shadows(radii: np.ndarray, shadow: np.ndarray, min_run: int) -> np.ndarray:
    """Fill long shadowed sectors of a border (F, A) from a smooth fit to the visible part.

    Across a wide calcium shadow, linear interpolation flattens the vessel; a vessel border
    seen from the catheter is close to an off-centre ellipse, whose radius is well
    described by the first two harmonics in angle. They are fitted (ridge-regularised,
    the second harmonic more) to the visible angles; the fit fills the sector, shifted so
    that it meets the visible border at both ends.
    """
    n_f, n_a = radii.shape
    theta = 2 * np.pi * np.arange(n_a) / n_a
    basis = np.column_stack(
        [np.ones(n_a), np.cos(theta), np.sin(theta), np.cos(2 * theta), np.sin(2 * theta)]
    )
    ridge = np.diag([0.0, 0.02, 0.02, 0.5, 0.5])
    out = radii.copy()
    for f in range(n_f):
        runs = [(s0, n) for s0, n in _runs(shadow[f]) if n >= min_run]
        if not runs:
            continue
        vis = ~shadow[f]
        if vis.sum() < n_a // 4:
            continue
        b = basis[vis]
        coef = np.linalg.solve(b.T @ b + ridge * vis.sum() / n_a, b.T @ radii[f, vis])
        fit = basis @ coef
        resid = radii[f] - fit
        corr = _interpolate_runs(resid, runs)
        for s0, n in runs:
            ks = (s0 + np.arange(n)) % n_a
            out[f, ks] = fit[ks] + corr[ks]
    return out


def _fix_shadows_lumen(
    lumen_k: np.ndarray, shadow: np.ndarray, lead_k: np.ndarray, wire: np.ndarray, dr_mm: float
) -> np.ndarray:
    """Interpolate the lumen across shadows; a reflector in the wall (calcium) bounds it."""
    out = lumen_k.copy()
    gap = 0.05 / dr_mm
    for i in range(len(out)):
        runs = _runs(shadow[i])
        if not runs:
            continue
        interp = _interpolate_runs(out[i], runs)
        out[i] = np.where(
            shadow[i] & ~wire[i],
            np.minimum(interp, lead_k[i] - gap),
            np.where(shadow[i], interp, out[i]),
        )
    return out


def _frame_result(
    index: int,
    lumen_k: np.ndarray,
    eem_k: np.ndarray,
    shadow: np.ndarray,
    lead_k: np.ndarray,
    all_lumen: np.ndarray,
    all_eem: np.ndarray,
    reference: np.ndarray,
    tissue: np.ndarray,
    intensity: np.ndarray,
    radii_mm: np.ndarray,
    n_points: int,
    edge_w: int,
) -> FrameContours:
    n_a = len(lumen_k)
    dr = radii_mm[1] - radii_mm[0]
    r_l = radii_mm[0] + _circular_smooth(lumen_k, 1.0) * dr
    r_e = radii_mm[0] + _circular_smooth(eem_k, 1.5) * dr
    r_e = np.maximum(r_e, r_l + dr)
    theta = 2 * np.pi * np.arange(n_a) / n_a
    theta_out = 2 * np.pi * np.arange(n_points) / n_points
    rl = np.interp(theta_out, theta, r_l, period=2 * np.pi)
    re = np.interp(theta_out, theta, r_e, period=2 * np.pi)
    lumen = np.column_stack([rl * np.cos(theta_out), rl * np.sin(theta_out)])
    vessel = np.column_stack([re * np.cos(theta_out), re * np.sin(theta_out)])

    # calcium: shadow sectors whose reflector is not inside the lumen
    calcium_angles = shadow
    arc = 0.0
    polys: list[np.ndarray] = []
    if calcium_angles.any():
        c = polygon_centroid(lumen)
        for start, length in _runs(calcium_angles):
            a0 = theta[start] - np.pi / n_a
            a1 = theta[(start + length - 1) % n_a] + np.pi / n_a
            if length >= n_a:
                a1 = a0 + 2 * np.pi
            ks = (start + np.arange(length)) % n_a
            r_lead = radii_mm[0] + lead_k[ks] * dr
            ends = np.array(
                [
                    [r_lead[0] * np.cos(a0), r_lead[0] * np.sin(a0)],
                    [r_lead[-1] * np.cos(a1), r_lead[-1] * np.sin(a1)],
                ]
            )
            ang = np.arctan2(ends[:, 1] - c[1], ends[:, 0] - c[0])
            span = np.mod(ang[1] - ang[0], 2 * np.pi) if length < n_a else 2 * np.pi
            arc += float(np.degrees(span))
            tt = np.linspace(a0, a1, max(2, length + 1))
            rr = np.interp(tt, theta[ks] if length > 1 else [theta[ks[0]]], r_lead, period=2 * np.pi)
            outer = rr + 0.3
            polys.append(
                np.vstack(
                    [
                        np.column_stack([rr * np.cos(tt), rr * np.sin(tt)]),
                        np.column_stack([outer[::-1] * np.cos(tt[::-1]), outer[::-1] * np.sin(tt[::-1])]),
                    ]
                )
            )
        arc = min(arc, 360.0)

    # confidence: tissue-score contrast across the lumen border, and agreement with the
    # neighbouring frames' median path
    k = np.clip(np.round(lumen_k).astype(int), 0, tissue.shape[-1] - 1)
    a_idx = np.arange(n_a)
    inner = np.array(
        [
            tissue[a, max(0, kk - edge_w) : kk].mean() if kk > 0 else 0.0
            for a, kk in zip(a_idx, k, strict=False)
        ]
    )
    outer = np.array([tissue[a, kk : kk + edge_w].mean() for a, kk in zip(a_idx, k, strict=False)])
    contrast = float(np.clip(np.mean(outer - inner), 0.0, 1.0))
    agree = float(np.exp(-np.mean(np.abs(lumen_k - reference)) * dr / 0.15))
    visible = 1.0 - float(shadow.mean())
    confidence = float(np.clip(contrast * agree * (0.5 + 0.5 * visible) * 1.5, 0.0, 1.0))
    return FrameContours(
        index=index,
        lumen=lumen,
        vessel=vessel,
        calcium=tuple(polys),
        calcium_arc_deg=arc,
        confidence=confidence,
    )
