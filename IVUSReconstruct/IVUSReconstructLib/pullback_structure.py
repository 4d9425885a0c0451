"""Pullback structure: which frames are a pullback of the vessel, and which are not.

A recorded pullback is more than the vessel: it often starts before the motor moves (the
transducer parked at the distal end while the heart beats), and it ends inside the guiding
catheter (the transducer pulled back into the guide, a bright ring hugging the imaging
catheter that hides the vessel beyond it). Those frames measure nothing about the vessel;
a guide frame taken as the proximal reference turns a mild lesion into a 90 % stenosis.

- **Guiding catheter:** along rays from the catheter, a bright band close to the catheter
  (the guide's wall, within ``near_band_mm`` of the catheter surface) stands well above the
  echoes beyond it (shadowed by the wall) on most of the circumference. A guide is round
  and closes all around; a calcium arc also shadows, but over an arc. The guide segment is
  the run of such frames at the proximal end (the end of the recording).
- **Motionless start or end:** while the transducer does not move, a frame finds a nearly
  identical partner among the first (last) 2 s of frames at the same cardiac phase; once
  the pullback runs, the partners fall away with the distance travelled. The run is accepted
  when the start's mismatch is less than half the pullback's typical beat-to-beat mismatch,
  and its end is found by fitting a plateau followed by a linear rise of the mismatch.

Everything works on frames subsampled to about 160 px and on rays sampled in mm, so it
holds for any image size and pixel spacing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, sparse

from .errors import IVUSCancelled, IVUSInputError
from .gating import frame_rate_hz
from .types import Pullback

__all__ = ["PullbackStructure", "find_pullback_structure", "guide_catheter_score", "parse_frame_range"]

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class PullbackStructure:
    """The usable part of a pullback and what was cut.

    Attributes
    ----------
    n_frames : int
    first_frame, last_frame : int
        Usable frames ``first_frame..last_frame`` (inclusive, 0-based).
    cuts : tuple of dict
        ``{"kind", "first_frame", "last_frame", "n_frames", "reason"}``; ``kind`` is
        ``"motionless_start"``, ``"guide_catheter"``, ``"motionless_end"`` or ``"frame_range"``.
    source : str
        ``"detected"`` or ``"--frame-range"``.
    guide_score : ndarray of shape (N,)
        Share of the circumference that looks like a guide's wall, per frame (NaN when not computed).
    stillness : ndarray of shape (N,)
        Mismatch with the first 2 s of frames (1 - best NCC; NaN when not computed).
    """

    n_frames: int
    first_frame: int
    last_frame: int
    cuts: tuple[dict[str, Any], ...] = ()
    source: str = "detected"
    guide_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stillness: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def usable(self) -> np.ndarray:
        """Indices of the usable frames, shape (M,)."""
        return np.arange(self.first_frame, self.last_frame + 1)

    def as_json(self) -> dict[str, Any]:
        """The ``pullback_structure`` block of summary.json."""
        return {
            "usable_frames": [int(self.first_frame), int(self.last_frame)],
            "n_usable": int(self.last_frame - self.first_frame + 1),
            "n_frames": int(self.n_frames),
            "source": self.source,
            "cuts": [dict(c) for c in self.cuts],
        }

    def message(self) -> str:
        """One line for the flags: what was left out and why ('' when nothing was)."""
        if not self.cuts:
            return ""
        parts = [f"frames {c['first_frame']}-{c['last_frame']} ({c['reason']})" for c in self.cuts]
        return (
            f"analysed frames {self.first_frame}-{self.last_frame} of 0-{self.n_frames - 1}; left out: "
            + "; ".join(parts)
            + " (the frame range can be set by hand)"
        )


def parse_frame_range(spec: str, n_frames: int) -> tuple[int, int]:
    """``"START:END"`` (inclusive, 0-based; either side may be empty) to (start, end).

    Raises
    ------
    IVUSInputError
        Not two integers, or outside the pullback.
    """
    text = str(spec).strip()
    if ":" not in text:
        raise IVUSInputError(f"frame range {spec!r}: use START:END (0-based, inclusive), e.g. 30:1600")
    a, b = text.split(":", 1)
    try:
        start = int(a) if a.strip() else 0
        end = int(b) if b.strip() else n_frames - 1
    except ValueError:
        raise IVUSInputError(
            f"frame range {spec!r}: use START:END (0-based, inclusive), e.g. 30:1600"
        ) from None
    if not 0 <= start <= end < n_frames:
        raise IVUSInputError(
            f"frame range {spec!r}: must satisfy 0 <= START <= END <= {n_frames - 1} (the pullback has {n_frames} frames)"
        )
    return start, end


# --------------------------------------------------------------------------- features


def _reduce(frames: np.ndarray, target_px: int = 160) -> tuple[np.ndarray, int]:
    """Every ``factor``-th pixel of every frame, about ``target_px`` across, in the frames' own
    type (a float32 copy of a 4500-frame pullback took 526 MB and put a run at 1.62x its pixel
    bytes; the measures below convert what they read).

    Subsampling rather than block averaging: the measures below compare frames pixel by
    pixel and sample rays, neither needs the speckle averaged, and a strided read of a
    large stack costs a fraction of a full pass.
    """
    n, h, w = frames.shape
    factor = max(1, int(round(min(h, w) / target_px)))
    sub = frames[:, ::factor, ::factor]
    out = np.empty(sub.shape, sub.dtype)
    for k in range(0, n, 256):
        out[k : k + 256] = sub[k : k + 256]
    return out, factor


def _radial_profiles(
    small: np.ndarray, centre_px: tuple[float, float], step_px: float, n_rays: int = 90
) -> tuple[np.ndarray, np.ndarray]:
    """Polar samples (N, n_rays, R) of every frame around ``centre_px`` and the radii (R,) in px.

    Bilinear, 0 outside the frame (as ``ndimage.map_coordinates(order=1, mode="constant")``,
    to the last bit), as one sparse map of four weights per sample built once for the whole
    stack instead of an interpolation call per frame.
    """
    n, h, w = small.shape
    radius = np.arange(0.0, 0.5 * min(h, w), step_px)
    theta = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    rows = (centre_px[0] + np.outer(np.sin(theta), radius)).ravel()
    cols = (centre_px[1] + np.outer(np.cos(theta), radius)).ravel()
    inside = (rows >= 0) & (rows <= h - 1) & (cols >= 0) & (cols <= w - 1)
    r0 = np.clip(np.floor(rows), 0, max(h - 2, 0)).astype(int)
    c0 = np.clip(np.floor(cols), 0, max(w - 2, 0)).astype(int)
    fr, fc = rows - r0, cols - c0
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    n_samples = len(rows)
    index = np.concatenate([r0 * w + c0, r0 * w + c1, r1 * w + c0, r1 * w + c1])
    weight = np.concatenate([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc]) * np.tile(inside, 4)
    sampler = sparse.csr_matrix(
        (weight, (np.tile(np.arange(n_samples), 4), index)), shape=(n_samples, h * w)
    )
    out = np.empty((n, n_samples), np.float32)
    flat = small.reshape(n, -1)
    for k in range(0, n, 256):
        out[k : k + 256] = (sampler @ flat[k : k + 256].T.astype(np.float64)).T
    return out.reshape(n, n_rays, len(radius)), radius


def guide_catheter_score(
    polar: np.ndarray,
    radius_mm: np.ndarray,
    *,
    near_band_mm: tuple[float, float] = (0.05, 0.8),
    far_band_mm: tuple[float, float] = (1.2, 3.0),
    contrast: float = 2.5,
) -> np.ndarray:
    """Share of the circumference where a bright band near the catheter shadows what lies beyond.

    Parameters
    ----------
    polar : ndarray of shape (N, A, R)
        Frames sampled along A rays from the catheter centre at radii ``radius_mm``.
    radius_mm : ndarray of shape (R,)
    near_band_mm, far_band_mm : (low, high)
        Bands measured from the catheter surface (found as where the pullback's median
        profile leaves the dark catheter), in mm.
    contrast : float
        A ray counts when the brightest echo of the near band is at least this many times the
        mean echo of the far band (and at least half the pullback's median echo).

    Returns
    -------
    ndarray of shape (N,)
        In [0, 1]; about 1 inside a guiding catheter.
    """
    idx = np.linspace(0, len(polar) - 1, min(len(polar), 25)).round().astype(int)
    profile = np.median(polar[idx], axis=(0, 1))
    if profile.max() <= 0:
        return np.zeros(len(polar))
    surface = float(radius_mm[int(np.argmax(profile > 0.2 * profile.max()))])
    inside_fov = radius_mm[profile > 0]
    edge = float(inside_fov[-1]) if inside_fov.size else float(radius_mm[-1])
    near = (radius_mm >= surface + near_band_mm[0]) & (radius_mm <= surface + near_band_mm[1])
    far = (radius_mm >= surface + far_band_mm[0]) & (radius_mm <= min(surface + far_band_mm[1], 0.9 * edge))
    if not near.any() or not far.any():
        return np.zeros(len(polar))
    level = float(np.median(polar[idx][:, :, near | far]))
    smooth = ndimage.uniform_filter1d(polar[:, :, near], 3, axis=2)
    near_max = smooth.max(axis=2)
    far_mean = polar[:, :, far].mean(axis=2)
    ring = (near_max >= contrast * far_mean) & (near_max >= 0.5 * level)
    return ring.mean(axis=1)


def _normalised(
    small: np.ndarray, centre_px: tuple[float, float], inner_px: float, outer_px: float
) -> np.ndarray:
    """Frames as unit vectors over an annulus (catheter and FOV edge excluded), (N, P)."""
    n, h, w = small.shape
    rr, cc = np.mgrid[0:h, 0:w]
    r = np.hypot(rr - centre_px[0], cc - centre_px[1])
    mask = (r > inner_px) & (r < outer_px)
    v = small[:, mask].astype(np.float32)
    v = v - v.mean(axis=1, keepdims=True)
    v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-9
    return v


def _mismatch_to_reference(v: np.ndarray, ref: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """1 - NCC of every frame with its partners among ``ref`` (at least ``gap`` frames apart):
    (with the best partner, with the mean of the three best), each (N,).

    The mean of three decides whether the start is motionless: one lucky match (a cardiac
    swing that brings a moving frame back near the start) does not hide the drift. The best
    partner places the knee: while the transducer is parked each frame has one partner at its
    own cardiac phase and none other as close, so the mean of three blurred the knee by the
    cardiac cycle (the motor's start 3-4 frames early on 3 of 11 phantom seeds; with the best
    partner within 2 frames on all 15).
    """
    sims = v @ v[ref].T  # (N, len(ref))
    far = np.abs(np.arange(len(v))[:, None] - ref[None, :]) >= gap
    sims = np.where(far, sims, -1.0)
    top = -np.sort(-sims, axis=1)[:, : min(3, sims.shape[1])]
    return 1.0 - top[:, 0], 1.0 - top.mean(axis=1)


def _beat_mismatch(v: np.ndarray, lags: tuple[int, int]) -> np.ndarray:
    """1 - best NCC of every frame with the frames ``lags`` before it (the pullback's own beat-to-beat change)."""
    n = len(v)
    best = np.full(n, -1.0)
    for lag in range(lags[0], lags[1] + 1):
        if lag >= n:
            break
        s = np.einsum("ij,ij->i", v[lag:], v[:-lag])
        best[lag:] = np.maximum(best[lag:], s)
    out = 1.0 - best
    out[: lags[0]] = np.nan
    return out


def _hinge_end(u: np.ndarray, lo: int, hi: int) -> int:
    """Frame where ``u`` leaves a plateau: the best plateau-then-parabola fit with its knee in ``lo..hi``.

    A displacement d decorrelates speckle as about ``d**2`` at first, so the mismatch rises
    with the square of the frames travelled; a straight-line knee would come late.
    """
    best, best_k = np.inf, lo
    k_all = np.arange(len(u), dtype=float)
    for k in range(lo, hi + 1):
        ramp = np.maximum(k_all - k, 0.0) ** 1.5
        a = np.column_stack([np.ones(len(u)), ramp])
        coef, *_ = np.linalg.lstsq(a, u, rcond=None)
        if coef[1] <= 0:
            continue
        sse = float(np.sum((a @ coef - u) ** 2))
        if sse < best:
            best, best_k = sse, k
    return best_k


def _motionless_run(
    v: np.ndarray, frame_rate_hz: float, beat: np.ndarray, *, min_s: float = 1.0, rise_s: float = 1.0
) -> tuple[int, np.ndarray] | None:
    """Frames at the start of ``v`` during which the transducer did not move: (count, mismatch)."""
    n = len(v)
    ref_n = max(4, int(round(2.0 * frame_rate_hz)))  # a gap and more than a beat
    gap = max(2, int(round(0.3 * frame_rate_hz)))
    if n < 4 * ref_n:
        return None
    best, u = _mismatch_to_reference(v, np.arange(ref_n), gap)
    typical = float(np.nanmedian(beat))
    start = float(np.median(u[gap : ref_n + gap]))
    if not np.isfinite(typical) or typical <= 0 or start >= 0.5 * typical:
        return None
    # The run lasts while the mismatch stays near its start level; the hinge fit places its end.
    # Fit up to where it has risen a twentieth of the way to the pullback's level (before the
    # cardiac swing brings back frames near the start and the curve saturates).
    level = start + 0.05 * (float(np.median(u)) - start)
    above = np.flatnonzero(ndimage.median_filter(u, 5) > level)
    above = above[above > gap]
    if not above.size:
        return None
    cross = int(above[0])
    # (isolated spikes, a cardiac phase without a close partner, are filtered out first)
    # The knee lies within ``rise_s`` of the crossing: by then the transducer has travelled
    # 0.5 mm, well beyond the speckle's length, and the mismatch has risen for sure.
    lo = max(gap, cross - int(round(rise_s * frame_rate_hz)))
    end = _hinge_end(ndimage.median_filter(best[:cross], 3, mode="nearest"), lo, cross - 1)
    if end < min_s * frame_rate_hz:
        return None
    return end, u


def _guide_segments(
    score: np.ndarray, guide_share: float, min_guide_frames: int, frame_rate_hz: float
) -> tuple[int, int, list[dict[str, Any]]]:
    """The longest stretch of vessel between guiding-catheter runs, and the cuts around it.

    A run of guide frames lasts at least a second (a tight lesion or a calcified ring
    mimics the guide's ring over a few frames only), or it ends the recording (the transducer
    pulled back into the guide). Vessel frames after a guide run belong to another pass
    (the catheter re-advanced, or a second recording in the same folder): the longest
    stretch is analysed.
    """
    n = len(score)
    inside = ndimage.median_filter((score >= guide_share).astype(np.int8), 5, mode="nearest").astype(bool)
    # Gaps of up to half a second inside a run are closed (padded so the ends stay put).
    width = max(3, int(0.5 * frame_rate_hz)) | 1
    padded = np.pad(inside, width, mode="edge")
    inside = ndimage.binary_closing(padded, structure=np.ones(width, bool))[width:-width]
    labels, n_runs = ndimage.label(inside)
    guide = np.zeros(n, bool)
    for k, sl in enumerate(ndimage.find_objects(labels)):
        run = sl[0]
        length = run.stop - run.start
        if length >= frame_rate_hz or (run.stop == n and length >= min_guide_frames):
            guide[run] = labels[run] == k + 1
    if not guide.any():
        return 0, n - 1, []
    vessel_labels, n_seg = ndimage.label(~guide)
    segments = [sl[0] for sl in ndimage.find_objects(vessel_labels)]
    if not segments:
        raise IVUSInputError(
            "pullback: every frame lies inside the guiding catheter; set the frame range to analyse by hand",
            setting="frame_range",
        )
    keep = max(segments, key=lambda sl: sl.stop - sl.start)
    cuts: list[dict[str, Any]] = []
    guide_labels, _ = ndimage.label(guide)
    for sl in ndimage.find_objects(guide_labels):
        run = sl[0]
        cuts.append(
            _cut("guide_catheter", int(run.start), int(run.stop - 1), "inside the guiding catheter: a bright ring round the catheter on "
                f"{100 * float(np.median(score[run])):.0f}% of the circumference")
        )
    for seg in segments:
        if seg == keep:
            continue
        cuts.append(
            _cut("other_pass", int(seg.start), int(seg.stop - 1), "vessel frames on the other side of guiding-catheter frames: another pass "
                f"(the longest stretch, frames {keep.start}-{keep.stop - 1}, is analysed)")
        )
    return int(keep.start), int(keep.stop - 1), cuts


def find_pullback_structure(
    pullback: Pullback,
    *,
    guide_share: float = 0.7,
    min_guide_frames: int = 5,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
) -> PullbackStructure:
    """Find the motionless start, the guiding-catheter frames and a motionless end.

    Parameters
    ----------
    pullback : Pullback
        Frames (N, H, W), pixel spacing, frame times and catheter centre are used.
    guide_share : float
        A frame is inside the guide when at least this share of its circumference shows the
        guide's ring (``guide_catheter_score``). Circumferential calcium looks like one too: on
        the 150 mm femoropopliteal phantom it reached 0.62 and, at 0.6, 38% of the pullback was
        cut as "another pass"; real guides: 0.75 or more on 90% of the RCA's guide frames, 0.98
        (median) on the LAD's.
    min_guide_frames : int
        Fewer guide frames at the end than this are not cut.

    Returns
    -------
    PullbackStructure
    """
    n = pullback.n_frames
    if n < 8:
        return PullbackStructure(n, 0, n - 1, (), "detected", np.full(n, np.nan), np.full(n, np.nan))
    small, factor = _reduce(pullback.frames)
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("pullback structure cancelled")
    if progress is not None:
        progress(0.3, "pullback structure: guiding catheter")
    spacing_mm = float(np.mean(pullback.pixel_spacing_mm)) * factor
    centre = (pullback.catheter_center_px[0] / factor, pullback.catheter_center_px[1] / factor)
    polar, radius_px = _radial_profiles(small, centre, step_px=1.0)
    score = guide_catheter_score(polar, radius_px * spacing_mm)
    rate = _frame_rate(pullback)
    per_s = rate if rate is not None else 30.0
    first, last, cuts = _guide_segments(score, guide_share, min_guide_frames, per_s)

    if progress is not None:
        progress(0.6, "pullback structure: motion")
    stillness = np.full(n, np.nan)
    if rate is not None and last - first > 4 * rate:
        rows = small.shape[1]
        # the masked catheter disc is the same on every frame: a few hundred spread along the
        # pullback find its edge as the whole stack does
        spread = np.unique(np.linspace(0, n - 1, min(n, 256)).round().astype(int))
        cath_px = float(radius_px[int(np.argmax(np.median(polar[spread], axis=(0, 1)) > 0))])
        v = _normalised(small[first : last + 1], centre, cath_px + 0.3 / spacing_mm, 0.42 * rows)
        lags = (max(2, int(round(0.3 * rate))), max(3, int(round(1.5 * rate))))
        beat = _beat_mismatch(v, lags)
        rise_s = 0.5 / pullback.pullback_speed_mm_s if pullback.pullback_speed_mm_s else 1.0
        found = _motionless_run(v, rate, beat, rise_s=rise_s)
        start0 = first
        if found is not None:
            n_still, stillness_start = found
            stillness[first : last + 1] = stillness_start
            first += n_still
            cuts.append(
                _cut("motionless_start", start0, first - 1, "transducer not yet moving: frames repeat the first 2 s")
            )
        back = _motionless_run(v[::-1][: max(0, last + 1 - first)], rate, beat[::-1], rise_s=rise_s)
        if back is not None:
            n_end = back[0]
            cuts.append(
                _cut("motionless_end", last - n_end + 1, last, "transducer stopped: frames repeat the last 2 s")
            )
            last -= n_end
    cuts.sort(key=lambda c: c["first_frame"])
    if last < first:
        raise IVUSInputError(
            f"{pullback.source.get('path', 'pullback')}: no frame is left once the motionless and "
            "guiding-catheter frames are cut; set the frame range to analyse by hand",
            setting="frame_range",
        )
    if progress is not None:
        progress(1.0, "pullback structure")
    return PullbackStructure(n, first, last, tuple(cuts), "detected", score, stillness)


def _cut(kind: str, first_frame: int, last_frame: int, reason: str) -> dict[str, Any]:
    """One cut of ``cuts``: frames first_frame-last_frame (inclusive) left out, and why."""
    return {
        "kind": kind,
        "first_frame": int(first_frame),
        "last_frame": int(last_frame),
        "n_frames": int(last_frame - first_frame + 1),
        "reason": reason,
    }


def manual_structure(pullback: Pullback, spec: str) -> PullbackStructure:
    """The structure a user gave with ``--frame-range START:END``."""
    n = pullback.n_frames
    start, end = parse_frame_range(spec, n)
    cuts = []
    if start > 0:
        cuts.append(
            _cut("frame_range", 0, start - 1, "before the given frame range")
        )
    if end < n - 1:
        cuts.append(
            _cut("frame_range", end + 1, n - 1, "after the given frame range")
        )
    return PullbackStructure(
        n, start, end, tuple(cuts), "--frame-range", np.full(n, np.nan), np.full(n, np.nan)
    )


def _frame_rate(pullback: Pullback) -> float | None:
    """Frames per second from the frame times, or None when they are frame indices."""
    prov = pullback.provenance.get("frame_times_s") if pullback.provenance else None
    if prov is not None and str(getattr(prov, "source", "")).startswith("missing"):
        return None
    return frame_rate_hz(pullback.frame_times_s)
