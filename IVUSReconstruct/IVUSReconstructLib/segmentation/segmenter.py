"""The per-pullback segmenter: shared state, batches over frames, and the sequence filters."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import IVUSCancelled, IVUSInputError
from ..geometry import polar_polygon, ray_radii
from ..types import ContourSet, FrameContours, Pullback
from .confidence import _confidence, calibrated_confidence, confidence_features, radii_at
from .eem import bright_beyond, fill_unseen_wall, trace_vessel
from .keyframes import (
    fill_from_prior,
    keep_keyframes,
    keyframe_priors,
    learn_looks,
    learn_wall_looks,
    look_codes,
    nearest_looks,
    prior_cost,
    region_cost,
    shadowed,
    to_pullback_plane,
)
from .lumen import (
    _measure_ring_down,
    _ring_extent,
    choose_traces,
    trace_lumen,
)
from .options import SegmentationOptions
from .polar import PolarSampler, _max_ncc, _neighbours
from .refine import _normal_refine, _region_refine
from .shadows import (
    _branch_sectors,
    _fill_hidden,
    _penumbra,
    find_shadows,
    narrow_shadows,
)
from .shapes import _aspect_ratio, _leak_flanks

ProgressFn = Callable[[float, str], None]


@dataclass
class _Borders:
    lumen: np.ndarray  # (F, A) mm
    vessel: np.ndarray  # (F, A) mm
    calcium: list[list[np.ndarray]]
    calcium_arc_deg: np.ndarray  # (F,)
    confidence: np.ndarray  # (F,)
    # the two lumen traces (lumen.trace_lumen): score gain, allowed, both areas, kept; (F, 5) or None
    traces: np.ndarray | None = None


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
    """The state shared by the stages segmenting one pullback.

    The stages (:func:`.lumen.trace_lumen`, :func:`.eem.trace_vessel`, :mod:`.refine`,
    :func:`.shadows.find_shadows`) are functions taking this object as ``seg``; :meth:`run`
    chains them over a batch of frames.

    Attributes
    ----------
    pb : Pullback
    o : SegmentationOptions
    sampler : PolarSampler
        Map of the frames to the polar grid (``n_angles`` x ``n_r`` samples of ``dr`` mm).
    radii : ndarray of shape (n_r,), mm
    max_step, step_scale
        Largest radial move between neighbouring directions (samples), and its growth with radius.
    ring : int or None
        First radial sample outside the catheter's ring-down, once measured.
    profile : ndarray of shape (n_r,) or None
        Median radial profile removed before correlating (the ring-down), once measured.
    trust : float
        Trust in the correlation cue, 0-1, measured once per pullback.
    overlay : (dst, src) flat pixel indices or None
        Burned-in overlay pixels and the pixels that replace them.
    """

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
        self.near_correlation: float | None = None  # of blood next to the catheter, per pullback
        self.near_grey: tuple[float, float, float] | None = None  # its log grey quartiles (lumen.py)
        self.priors: dict[str, np.ndarray] | None = None  # from keyframes (keyframes.py)
        self.prior_row: dict[int, int] = {}
        self.looks: dict[str, np.ndarray] = {}  # learned from keyframes (keyframes.learn_looks)
        self.wall_looks: dict[str, np.ndarray] = {}  # (keyframes.learn_wall_looks)
        self.key_ranks = np.zeros(0, int)  # the keyframes' ranks among the analysed frames
        self.overlay = _overlay_fill(pullback, options.overlay_exclude_mm)

    def frames(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames (F, H, W) with burned-in overlay marks replaced by their nearest image pixel."""
        # fancy indexing copies already, into a writable array (a read-only memmap's frames
        # too): the overlay fill below never reaches the pullback, and no second copy is made
        out = np.asarray(self.pb.frames[np.asarray(indices, dtype=int)])
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
        if self.profile is None:
            # the catheter's ring-down is the same in every direction of every frame: its radial
            # profile, removed before correlating, no longer makes the near lumen look stationary
            self.profile = np.median(np.stack([polar[int(i)] for i in frames]), axis=(0, 1))
        # at least ~25 samples per window, or blood's chance correlations look like tissue
        size_r = max(2 * self.samples(self.o.correlation_half_mm, 0) + 1, 5)
        size_a = max(self.o.correlation_angles, 5)
        used = {int(j) for p in pairs for j in p} | {int(i) for i in frames}
        centred = {i: polar[i] - self.profile for i in used}
        # tissue correlates with whichever neighbour was acquired in a quiet phase (end-diastole
        # is followed by systolic motion); blood correlates with neither
        triples = [(int(i), p[0], p[1]) for i, p in zip(frames, pairs, strict=True)]
        return _max_ncc(centred, triples, size_a, size_r)

    def look_reach(self) -> int:
        """Samples a look (:func:`.keyframes.look_codes`) reaches either side: the correlation
        window's radial half-size plus its 3-sample box."""
        return max(2 * self.samples(self.o.correlation_half_mm, 0) + 1, 5) // 2 + 1

    def to_mm(self, path: np.ndarray) -> np.ndarray:
        # the step at index r lies between samples r - 1 and r
        return (path + 0.5) * self.dr - 0.5 * self.dr

    def learn(self, keyframes: ContourSet, frames: np.ndarray) -> None:
        """Take the keyframes' borders (priors of every analysed frame) and their looks (after the
        ring-down is measured)."""
        o = self.o
        self.priors = keyframe_priors(
            keyframes,
            frames,
            o.n_angles,
            band_mm=o.keyframe_band_mm,
            band_per_frame=o.keyframe_band_per_frame,
        )
        self.prior_row = {int(f): k for k, f in enumerate(frames)}
        if o.keyframe_look_weight <= 0:
            return
        keys = [f.index for f in keyframes.frames]
        needed = set(keys)
        for i in keys:
            needed.update(_neighbours(int(i), self.pb.n_frames) or ())
        polar = self.polar(sorted(needed))
        codes = look_codes(
            np.log1p(np.stack([polar[i] for i in keys])), self.stability(np.array(keys), polar)
        )

        def samples(border: str) -> np.ndarray:
            rows = [getattr(f, border) for f in keyframes.frames]
            nan = np.full(o.n_angles, np.nan)
            radii = [nan if p is None else ray_radii(np.asarray(p), np.zeros(2), o.n_angles) for p in rows]
            return np.stack(radii) / self.dr

        self.key_ranks = np.array([self.prior_row[int(k)] for k in keys])
        lumen_s, vessel_s = samples("lumen"), samples("vessel")
        if self.ring is not None:
            # a guidewire's shadow (dark along the whole ray) shows no tissue on a keyframe and
            # teaches no looks: its dark was learnt as what lies beyond the vessel, and an
            # echolucent pool elsewhere then looked beyond the EEM. (Leaving out every direction
            # dark beyond the vessel, calcium's and perivascular fat's too, cost the
            # femoropopliteal vessel 0.011 of Jaccard.)
            image = np.stack([polar[i] for i in keys])
            wire = narrow_shadows(self, image, self.ring, 2, np.log1p(image))[0]
            lumen_s, vessel_s = np.where(wire, np.nan, lumen_s), np.where(wire, np.nan, vessel_s)
        self.looks = learn_looks(
            codes,
            lumen_s,
            vessel_s,
            self.ring or 0,
            self.samples(0.05),
            self.samples(0.5),
            self.look_reach(),
        )
        if o.keyframe_wall_look_weight > 0:
            self.wall_looks = learn_wall_looks(
                codes, lumen_s, vessel_s, self.samples(0.05), self.samples(0.5)
            )

    def _lumen_prior(
        self,
        frames: np.ndarray,
        codes: np.ndarray | None,
        image: np.ndarray | None = None,
        wire: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Costs (F, A, R) of a lumen splitting the looks learned from the keyframes otherwise
        than they do, for tracing it and for placing it on its grey step, or None without them.
        ``wire`` (F, A), optional: the guidewire's shadows (:func:`.shadows.narrow_shadows`),
        where the looks say nothing (default: every direction dark beyond the keyframes' vessel).

        The lumen is not held near the keyframes' shape: a stenosis or a flattened vein changes
        it within a few frames, and its own blood tells it apart once the looks are known."""
        if self.priors is None:
            return None, None
        rows = [self.prior_row[int(i)] for i in frames]
        pulled = None
        lumen = self.priors["lumen"][rows]
        if self.o.keyframe_lumen_pull > 0 and np.isfinite(lumen).any():
            # a keyframe's own lumen, gently, on its nearest neighbours: a border the reader
            # redrew where the images say little still reaches the frames beside it
            pull = self.o.keyframe_lumen_pull * np.exp(
                -self.priors["lumen_distance"][rows] / self.o.keyframe_pull_frames
            )
            pulled = prior_cost(
                lumen, np.full_like(lumen, np.inf), np.arange(self.n_r) * self.dr, 0.0, pull=pull
            )
        if "lumen" not in self.looks or codes is None:
            return pulled, None
        llr = nearest_looks(self.looks, self.key_ranks, np.array(rows))
        # no further than the keyframes' vessel: a side branch's blood beyond it is not this lumen
        vessel = self.priors["vessel"][rows]
        stop = np.ceil(vessel / self.dr).astype(int) if np.isfinite(vessel).all() else None
        cost = region_cost(
            llr,
            codes,
            self.ring or 0,
            self.dr,
            self.o.keyframe_look_weight,
            self.samples(0.5),
            stop,
        )
        if stop is not None and image is not None:
            # a guidewire in the blood looks like wall to the looks: a border pulled in front of
            # it then finds the wire at the lumen, takes it for calcium and keeps the dent. Its
            # shadow is traced as without keyframes: the wire's own where it is known (without
            # it, every direction dark behind the keyframes' vessel). Not every dark direction
            # where the wire is known: a long arc dark beyond the vessel
            # (perivascular fat, a wedged catheter's far side) shows its blood and wall to the
            # looks, and traced as without keyframes there (no second, blood-judged trace with
            # them) the lumen collapsed onto the catheter (femoropopliteal echolucent seed 61
            # frame 235 at 256 px: lumen J 0.61 -> 0.97)
            dark = wire if wire is not None else shadowed(image, vessel, self.radii, self.o.shadow_ratio)
            cost[dark] = 0.0
        # the looks are local averages (a correlation window and a box): within their reach of
        # a border they mix blood and wall, and the correlated wall dominates the mix, so their
        # split sits a sample or two inside the reader's border (measured on the keyframes
        # themselves: 1-2 samples at 128-256 px). They choose which step is the lumen's; where
        # on it the border lies, within their reach, the grey step says (a lumen-only drawing
        # held every frame between ~0.35 mm2 inside an automatic lumen that was right)
        placed = ndimage.minimum_filter1d(cost, 2 * self.look_reach() + 1, axis=-1, mode="nearest")
        if pulled is not None:
            cost, placed = cost + pulled, placed + pulled
        return cost, placed

    def _vessel_prior(
        self, frames: np.ndarray, lumen_mm: np.ndarray, codes: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Cost (F, A, R) of a vessel border far from both the keyframes' vessel interpolated and
        the traced ``lumen_mm`` plus their wall, or None without vessel keyframes.

        Free within either zone: a vein flattened on one keyframe and round on the next is
        neither between them, but its wall stays as thick; plaque thickening along a lesion is
        between them, whatever the lumen does."""
        if self.priors is None:
            return None
        rows = [self.prior_row[int(i)] for i in frames]
        prior, width = self.priors["vessel"][rows], self.priors["vessel_width"][rows]
        if not np.isfinite(prior).any():
            return None
        radii = np.arange(self.n_r) * self.dr
        # next to a keyframe its border is a good guess; a few frames off, a rough one
        pull = self.o.keyframe_pull * np.exp(
            -self.priors["vessel_distance"][rows] / self.o.keyframe_pull_frames
        )
        cost = prior_cost(prior, width, radii, self.o.keyframe_weight, pull=pull)
        wall = self.priors["wall"][rows]
        if np.isfinite(wall).all():
            on_wall = prior_cost(
                lumen_mm + wall, self.priors["wall_width"][rows], radii, self.o.keyframe_weight, pull=pull
            )
            cost = np.minimum(cost, on_wall)
        if self.wall_looks and codes is not None:
            llr = nearest_looks(self.wall_looks, self.key_ranks, np.array(rows))
            start = np.ceil(lumen_mm / self.dr).astype(int) + self.samples(0.05)
            cost = cost + region_cost(
                llr, codes, start, self.dr, self.o.keyframe_wall_look_weight, self.samples(0.5)
            )
        return cost

    def run(
        self, frames: np.ndarray, polar: dict[int, np.ndarray], choice: np.ndarray | None = None
    ) -> _Borders:
        """Borders of ``frames`` (F,); ``choice`` (F,) bool, optional: which keep the lumen's second
        trace (:func:`.lumen.choose_traces`), by default each frame by its own score."""
        image = np.stack([polar[int(i)] for i in frames])
        log_image = np.log1p(image)
        stability = self.stability(frames, polar)
        if stability is not None and self.ring is None:
            self.ring = _ring_extent(stability, self.o.ring_correlation, self.samples(self.o.max_ring_mm))
        codes = look_codes(log_image, stability) if self.looks or self.wall_looks else None
        # guidewire shadows and echoes (shadows.narrow_shadows): left to the border either side
        # by the lumen trace, and filled below
        narrow = None
        if stability is not None and self.ring is not None:
            narrow = narrow_shadows(self, image, self.ring, 2, log_image)
        evidence: list[np.ndarray] = []
        looks, placed = self._lumen_prior(frames, codes, image, None if narrow is None else narrow[0])
        lumen_path, lumen_strength = trace_lumen(
            self,
            stability,
            log_image,
            image,
            looks,
            choice,
            evidence,
            narrow,
            placed,
        )
        traces = None
        if evidence:
            gain, allowed, first_mm2, second_mm2 = evidence
            kept = (gain > 0) & allowed if choice is None else np.asarray(choice, bool) & allowed
            traces = np.column_stack([gain, allowed, first_mm2, second_mm2, kept]).astype(float)
        lumen_mm = self.to_mm(lumen_path)
        lumen_mm = _normal_refine(self, frames, lumen_mm, passes=self.o.normal_refine_passes)
        # the wall is searched outside the traced lumen (to_mm is path * dr): the region step
        # below only reaches into the narrow ends of a flattened lumen, where the wall is not
        vessel_path, vessel_strength = trace_vessel(
            self, log_image, lumen_mm / self.dr, self._vessel_prior(frames, lumen_mm, codes)
        )
        lumen_mm = _region_refine(self, frames, lumen_mm)
        vessel_mm = self.to_mm(vessel_path)
        memo: dict = {}  # penumbrae asked twice (shadows.py)
        shadow, calcium, polygons, reflector = find_shadows(self, image, lumen_mm, vessel_mm, memo)
        wire = shadow & ~calcium
        # (before the lumen is cut at calcium: a reflector in the leak cuts its walls' climb)
        lumen_leak, vessel_leak = _leaks(
            lumen_mm,
            vessel_mm,
            (self.n_r - 1) * self.dr - self.o.field_edge_margin_mm,
            self.o.leak_flank_deg,
        )
        # the lumen trace left a guidewire's shadow and echo to the border either side
        # (lumen.trace_lumen): the borders there are filled from those seen beyond them (the EEM
        # was searched outside that lumen). Beside the shadow the image is seen: the confidence
        # does not count the echo's directions as unseen
        echo_only = np.zeros_like(shadow)
        if narrow is not None:
            echo_only = narrow[0] & ~shadow
            wire |= narrow[0]
            shadow = shadow | narrow[0]
        unseen_fill = self.o.unseen_wall_min_seen <= 1.0 and self.priors is None
        if unseen_fill:
            # where no adventitia shows beyond the EEM (a shadow, dark perivascular tissue) the
            # trace followed the darkness (judged on the trace, before the fills below; with
            # keyframes, their vessel gives the shape there instead)
            bright = bright_beyond(self, image, vessel_mm, shadow | vessel_leak)
            traced = vessel_mm.copy()
            closed = np.zeros_like(shadow)
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
        filled = shadow & ~echo_only
        shape = near = None
        if self.priors is not None:
            rows = [self.prior_row[int(i)] for i in frames]
            shape, near = self.priors["vessel"][rows], self.priors["vessel_distance"][rows]
        for f in range(len(frames)):
            lumen_hidden, vessel_hidden = wire[f] | lumen_leak[f], shadow[f] | vessel_leak[f]
            if self.o.penumbra:
                lumen_hidden = _penumbra(lumen_mm[f], lumen_hidden, **dent, memo=memo)
                vessel_hidden = _penumbra(vessel_mm[f], vessel_hidden, **dent, memo=memo)
            behind = vessel_hidden
            if self.o.branch_max_deg > 0 and not flat[f]:
                # the reader closes the main vessel across an ostium: its sector is filled with
                # the shadows, from the borders seen elsewhere
                lumen_branch, vessel_branch = _branch_sectors(
                    lumen_mm[f], vessel_mm[f], ~lumen_hidden, ~vessel_hidden, **branch
                )
                lumen_hidden, vessel_hidden = lumen_hidden | lumen_branch, vessel_hidden | vessel_branch
            lumen_mm[f] = _fill_hidden(lumen_mm[f], lumen_hidden, long_run=long_run, **fill)
            vessel_mm[f] = _fill_hidden(vessel_mm[f], vessel_hidden, long_run=long_run, **fill)
            if shape is not None and np.isfinite(shape[f]).all():
                # behind a calcium arc the image shows no EEM: the keyframes' vessel,
                # interpolated, gives its shape there, met at the sector's edges (not across an
                # ostium, where a side branch leaves the keyframes' shape)
                w = np.exp(-near[f] / self.o.keyframe_fill_frames)
                vessel_mm[f] = (
                    w * fill_from_prior(vessel_mm[f], behind, shape[f], long_run) + (1 - w) * vessel_mm[f]
                )
            filled[f] |= (lumen_hidden | vessel_hidden) & ~echo_only[f]
            if unseen_fill:
                closed[f] = vessel_hidden
        if unseen_fill:
            # there the EEM takes the shape of the arc that shows it
            vessel_mm = fill_unseen_wall(
                vessel_mm,
                traced,
                lumen_mm,
                bright,
                closed,
                min_seen=self.o.unseen_wall_min_seen,
                excess_mm=self.o.branch_excess_mm,
                max_run=int(round(self.angles(self.o.unseen_wall_max_deg))),
                smooth=self.angles(self.o.unseen_wall_smooth_deg),
                by_wall=flat,
            )
        if self.ring is not None:
            # an ellipse filled over a hidden sector of a lumen off the catheter (wedged) may not
            # contain the catheter: its rays then cross it behind the centre (LAD 1215: -0.4 mm)
            lumen_mm = np.maximum(lumen_mm, self.to_mm(np.float64(self.ring)))
        vessel_mm = np.maximum(vessel_mm, lumen_mm + self.o.min_wall_mm)
        confidence = _confidence(lumen_strength, vessel_strength, filled, stability is not None)
        arc = calcium.sum(axis=1) * 360.0 / self.o.n_angles
        return _Borders(lumen_mm, vessel_mm, polygons, arc, confidence, traces)


def _leaks(
    lumen_mm: np.ndarray, vessel_mm: np.ndarray, edge_mm: float, flank_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Directions (F, A) where the lumen and the vessel border leaked out of the vessel.

    A border that runs out to the field's edge (``edge_mm``) met no wall there (a leak through a
    gap into dark perivascular tissue or a side branch): those directions are unseen, and are
    closed from the border seen elsewhere, as behind a shadow; unless most of the circle is out,
    which is a vessel larger than the field, not a leak. Each border climbs out to the edge
    along the branch's walls, which a fill from the rest would carry on as the main vessel's
    (RCA 525: lumen 20.8 mm2 against 7.9 mm2 on its neighbours): beside a leak, the stretches
    descending from it tilted by ``flank_deg`` or more from the circle about the catheter
    (:func:`.shapes._leak_flanks`) are unseen too, as long as half the circle is left. Called
    before the lumen is cut at calcium: a reflector inside the leak would break that descent.

    Parameters
    ----------
    lumen_mm, vessel_mm : ndarray of shape (F, A)
    edge_mm : float
    flank_deg : float
        0 disables the flanks.

    Returns
    -------
    (lumen_leak, vessel_leak) : ndarrays of shape (F, A), bool
    """
    at_edge = lumen_mm >= edge_mm
    leak = at_edge & (at_edge.mean(axis=1) <= 0.5)[:, None]
    if flank_deg <= 0 or not leak.any():
        return leak, leak
    tilt = float(np.sin(np.deg2rad(flank_deg)))
    out = []
    for radii in (lumen_mm, vessel_mm):
        grown = _leak_flanks(radii, leak, tilt)
        out.append(np.where((grown.mean(axis=1) <= 0.5)[:, None], grown, leak))
    return out[0], out[1]


def _sources(priors: dict[str, np.ndarray] | None, n: int) -> list[str]:
    """Each analysed frame's provenance: edited (a keyframe), propagated or automatic."""
    if priors is None:
        return ["automatic"] * n
    guided = np.isfinite(priors["lumen"]).all(axis=1) | np.isfinite(priors["vessel"]).all(axis=1)
    return [
        "edited" if e else "propagated" if g else "automatic"
        for e, g in zip(priors["edited"], guided, strict=True)
    ]


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


def _segment_batches(
    seg: _Segmenter,
    frames: np.ndarray,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    choice: np.ndarray | None = None,
) -> _Borders:
    """Borders of ``frames`` (F,), traced by batches on all cores, in frame order; ``choice``
    (F,) bool, optional: which frames keep the lumen's second trace (:meth:`_Segmenter.run`)."""
    n = seg.pb.n_frames
    threads = max(1, min(seg.o.threads or (os.cpu_count() or 1), 8))
    # the ring-down and its profile are measured once before, so batches are independent and
    # run on all cores (numpy and scipy release the GIL in their array loops)
    if seg.profile is None:
        threads = 1
    # batches of a size fixed by the frame count alone (never by the core count): a frame's
    # borders may depend on its batch's float32 summation order, so results stay identical on any
    # machine; at least two batches keep two cores busy
    size = max(1, min(seg.o.batch_frames, -(-len(frames) // 2)))
    batches = [frames[k : k + size] for k in range(0, len(frames), size)]
    choices = [None if choice is None else choice[k : k + size] for k in range(0, len(frames), size)]
    lumen, vessel, arcs, conf, traces = [], [], [], [], []
    calcium: list[list[np.ndarray]] = []
    stop = threading.Event()

    def work(batch: np.ndarray, chosen: np.ndarray | None) -> _Borders:
        if stop.is_set() or (cancel is not None and cancel.is_set()):
            raise IVUSCancelled("segmentation cancelled")
        needed = set(batch.tolist())
        for i in batch:
            needed.update(_neighbours(int(i), n) or ())
        return seg.run(batch, seg.polar(sorted(needed)), chosen)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        done = 0
        try:
            for batch, borders in zip(batches, pool.map(work, batches, choices), strict=True):
                traces.append(borders.traces)
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
    if not batches:
        empty = np.zeros((0, seg.o.n_angles))
        return _Borders(empty, empty, [], np.zeros(0), np.zeros(0))
    return _Borders(
        np.concatenate(lumen),
        np.concatenate(vessel),
        calcium,
        np.concatenate(arcs),
        np.concatenate(conf),
        None if any(t is None for t in traces) else np.concatenate(traces),
    )


def _continuous_lumen(
    seg: _Segmenter, frames: np.ndarray, borders: _Borders, cancel: threading.Event | None
) -> _Borders:
    """``borders`` with the lumen's second trace kept by a choice over the analysed frames in time
    order (:func:`.lumen.choose_traces`), not by each frame alone.

    The choice needs every frame's two traces, so it follows the batches: frames whose choice
    changes are segmented again with it (the vessel is traced outside the lumen kept). Both
    passes depend on the analysed frames alone, never on how they were batched."""
    t = borders.traces
    if t is None or seg.o.region_blood_continuity <= 0 or len(frames) < 2:
        return borders
    want = choose_traces(t[:, 0], t[:, 1] > 0, t[:, 2:4], seg.o.region_blood_continuity)
    redo = np.flatnonzero(want != (t[:, 4] > 0))
    if not redo.size:
        return borders
    again = _segment_batches(seg, frames[redo], None, cancel, want[redo])
    calcium = list(borders.calcium)
    for k, r in enumerate(redo):
        calcium[r] = again.calcium[k]
    lumen, vessel, arcs, conf, traces = (
        x.copy() for x in (borders.lumen, borders.vessel, borders.calcium_arc_deg, borders.confidence, t)
    )
    lumen[redo], vessel[redo], arcs[redo], conf[redo] = (
        again.lumen,
        again.vessel,
        again.calcium_arc_deg,
        again.confidence,
    )
    traces[redo, 4] = want[redo]
    return _Borders(lumen, vessel, calcium, arcs, conf, traces)


def _sequence_filters(
    seg: _Segmenter, frames: np.ndarray, lumen_mm: np.ndarray, vessel_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lumen and vessel radii (F, A) after the filters along the pullback and around each frame,
    with the keyframes' own borders put back and the wall kept outside the lumen."""
    o = seg.o
    if seg.priors is not None:
        # the neighbours' median sees the reader's borders, not the trace under them
        lumen_mm = keep_keyframes(lumen_mm, seg.priors, "lumen")
        vessel_mm = keep_keyframes(vessel_mm, seg.priors, "vessel")
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
    if seg.priors is not None:
        # the reader's borders are not smoothed, and the wall is kept outside them
        lumen_mm = keep_keyframes(lumen_mm, seg.priors, "lumen")
        vessel_mm = keep_keyframes(vessel_mm, seg.priors, "vessel")
    return lumen_mm, np.maximum(vessel_mm, lumen_mm + o.min_wall_mm)


def segment_pullback(
    pullback: Pullback,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    *,
    options: SegmentationOptions | None = None,
    n_angles: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    keyframes: ContourSet | None = None,
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
    keyframes : ContourSet or None
        Borders a reader corrected on some frames (lumen, vessel or both; their own frame plane
        is mapped into this pullback's). They are kept exactly and guide every other frame
        (:mod:`.keyframes`); their frames are added to the analysed ones.

    Returns
    -------
    ContourSet
        Frame-plane mm contours with ``calcium``, ``calcium_arc_deg``, ``confidence`` and
        ``source`` (``edited``, ``propagated`` or ``automatic``).
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
    kf = None if keyframes is None or not keyframes.frames else to_pullback_plane(keyframes, pullback)
    if kf is not None:
        frames = np.union1d(frames, [f.index for f in kf.frames]).astype(int)
    seg = _Segmenter(pullback, o)
    # the ring-down is measured once, before any batch: batches are then independent
    if frames.size:
        _measure_ring_down(seg)
    if kf is not None:
        seg.learn(kf, frames)
    borders = _continuous_lumen(seg, frames, _segment_batches(seg, frames, progress, cancel), cancel)
    if not frames.size:
        return ContourSet(
            frames=(),
            pixel_spacing_mm=pullback.pixel_spacing_mm,
            catheter_center_px=pullback.catheter_center_px,
        )
    lumen_mm, vessel_mm = _sequence_filters(seg, frames, borders.lumen, borders.vessel)
    calcium, arcs_all, conf_all = borders.calcium, borders.calcium_arc_deg, borders.confidence
    if o.calibrated_confidence:
        # the edge strength alone flagged half of the good frames at 0.5: judged together with the
        # borders' shape and their agreement with the neighbouring frames, and calibrated against
        # border error, the flag lands on the wrong frames
        conf_all = calibrated_confidence(
            confidence_features(radii_at(lumen_mm, 180), radii_at(vessel_mm, 180), conf_all)
        )
    polygons = [(polar_polygon(lumen_mm[k]), polar_polygon(vessel_mm[k])) for k in range(len(frames))]
    sources = _sources(seg.priors, len(frames))
    exact = {} if kf is None else {f.index: f for f in kf.frames}
    out = []
    for k, index in enumerate(frames):
        given = exact.get(int(index))
        out.append(
            FrameContours(
                index=int(index),
                lumen=polygons[k][0] if given is None or given.lumen is None else given.lumen,
                vessel=polygons[k][1] if given is None or given.vessel is None else given.vessel,
                calcium=tuple(calcium[k]),
                calcium_arc_deg=float(arcs_all[k]),
                confidence=1.0 if given is not None else float(conf_all[k]),
                source=sources[k],
            )
        )
    return ContourSet(
        frames=tuple(out),
        pixel_spacing_mm=pullback.pixel_spacing_mm,
        catheter_center_px=pullback.catheter_center_px,
    )
