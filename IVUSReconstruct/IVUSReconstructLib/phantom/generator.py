"""The phantom generator: :func:`make_phantom` and the ground truth of a phantom."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import IVUSCancelled, IVUSInputError
from ..metrics import MetricParams, compute_metrics
from ..types import Centerline, ContourSet, FrameContours, Pullback, Valued
from ._imaging import (
    _blood_speckle,
    _check_appearance,
    _console_overlay,
    _draw_guide_catheter,
    _fresh_field,
    _log_compress,
    _luminance,
    _psf_sigma,
    _render_polar,
    _scan_convert,
    _Scanner,
    _scanner,
    _shifted,
    _TissueSpeckle,
)
from ._shapes import (
    _TWO_PI,
    _calcium_arc_deg,
    _calcium_polygons,
    _cardiac_phase,
    _centerline,
    _cycle_shape,
    _dense_curves,
    _echolucent_pool,
    _frame_geometry,
    _frame_rays,
    _open_branch,
    _pool_polygon,
    _smooth_random,
    _subsample,
)
from .presets import PRESETS, TRUTH_POINTS, Appearance, Phantom, PhantomPreset

# --------------------------------------------------------------------------- entry point


def make_phantom(
    preset: str | PhantomPreset,
    *,
    seed: int = 0,
    length_mm: float | None = None,
    size_px: int | None = None,
    speckle: str | None = None,
    heart_rate_bpm: float | None = None,
    side_branch: bool = False,
    stationary_start_s: float = 0.0,
    guide_catheter_mm: float = 0.0,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
    appearance: Appearance | None = None,
) -> Phantom:
    """Simulate an IVUS pullback with its ground truth.

    Parameters
    ----------
    preset : str or PhantomPreset
        ``"coronary"``, ``"femoropopliteal"``, ``"iliac-vein"`` (see ``PRESETS``) or a preset.
    seed : int
        Everything random derives from it: the same seed gives identical bytes.
    length_mm : float, optional
        Pullback length; features keep their relative positions (lengths scale with it).
    size_px : int, optional
        Frame size (square), default 256 (real systems use 512).
    speckle : {"rotational", "phased"}, optional
        Mechanical 40-60 MHz look (bright fine blood speckle) or 20 MHz solid-state look
        (darker blood, coarser speckle, longer ring-down).
    heart_rate_bpm : float, optional
        Overrides the preset's mean heart rate (ignored for presets without a rhythm).
    side_branch : bool, optional
        Open a side branch a quarter of the way along: over about 2 mm of pullback the wall of a
        60-degree sector gives way to blood reaching 3 mm further out. The truth keeps the main
        lumen closed across the ostium, as expert contours do.
    stationary_start_s : float, optional
        The motor starts this long after the recording: the transducer stays at the distal
        end (the heart still beats, blood speckle still changes) before the pullback proper.
    guide_catheter_mm : float, optional
        The last millimetres of the pullback lie inside the guiding catheter: a bright ring
        hugging the imaging catheter that shadows the vessel beyond it.
    progress : callable(fraction, message), optional
    cancel : threading.Event, optional
        Raises ``IVUSCancelled`` when set.
    appearance : Appearance, optional
        Realism options (echolucent plaque, wedged catheter, console overlays, tuned levels and
        speckle; see ``realistic_appearance``). None draws the historical images.

    Returns
    -------
    Phantom
    """
    preset, speckle, length, size, look = _checked_inputs(
        preset, speckle, heart_rate_bpm, length_mm, size_px, appearance
    )
    rng = np.random.default_rng(seed)
    timeline = _Timeline.of(preset, length, stationary_start_s, rng)
    n, s = timeline.n, timeline.s
    geometry = _frame_geometry(
        preset, s, timeline.cycle, length, rng, wedged=look is not None and look.wedged_catheter
    )
    scanner, offset, console = _scanner_and_console(preset, size, speckle, look, rng)
    centerline_pts = _centerline(float(s.max()) + 10.0, rng)
    # its own generator: the same seed gives the same pullback with or without the branch
    branch = (0.25 * length, _TWO_PI * np.random.default_rng([seed, 23]).uniform()) if side_branch else None
    make_frame = _FrameMaker(
        preset=preset,
        speckle=speckle,
        look=look,
        seed=seed,
        scanner=scanner,
        geometry=geometry,
        s=s,
        ed_frames=timeline.ed_frames,
        branch=branch,
        texture_fn=_smooth_random(rng, period_mm=(3.0, 12.0)),
        texture_phase=rng.uniform(0, _TWO_PI, size=3),
        offset=offset,
        console=console,
    )
    frames = np.empty((n, size, size), dtype=np.uint8)
    contours = []
    for k in range(n):
        if cancel is not None and cancel.is_set():
            raise IVUSCancelled("phantom generation cancelled")
        truth, frames[k] = make_frame(k)
        contours.append(truth)
        if progress is not None and (k % 50 == 0 or k == n - 1):
            progress((k + 1) / n, f"phantom frame {k + 1}/{n}")

    guide_start = None
    if guide_catheter_mm > 0:
        inside_guide = np.flatnonzero(timeline.nominal >= length - guide_catheter_mm)
        if inside_guide.size:
            guide_start = int(inside_guide[0])
            _draw_guide_catheter(
                frames[guide_start:],
                scanner,
                np.random.default_rng([seed, 29]),
                offset=offset,
                console=None if console is None else (make_frame.console_grey, console[1]),
            )

    centre = ((size - 1) / 2.0 + offset[0], (size - 1) / 2.0 + offset[1])
    spacing = (scanner.spacing_mm, scanner.spacing_mm)
    cl_s = np.linspace(0.0, float(s.max()) + 10.0, len(centerline_pts))
    eq_r = np.interp(cl_s, s[np.argsort(s)], geometry.lumen_r[np.argsort(s)])
    return Phantom(
        preset=preset.name,
        pullback=_pullback_record(frames, timeline.t, preset, seed, centre, spacing),
        centerline=Centerline(points_ras_mm=centerline_pts, radius_mm=eq_r, source=f"phantom:{preset.name}"),
        truth=ContourSet(frames=tuple(contours), pixel_spacing_mm=spacing, catheter_center_px=centre),
        true_arc_length_mm=s,
        ed_frames=timeline.ed_frames,
        heart_rate_bpm=timeline.rate,
        speckle=speckle,
        cardiac_phase=timeline.phase,
        seed=int(seed),
        side_branch_mm=None if branch is None else float(branch[0]),
        appearance=appearance,
        echolucent=None if make_frame.pools is None else tuple(make_frame.pools),
        console_overlay=console,
        motion_start_frame=timeline.n_still,
        guide_start_frame=guide_start,
    )


def _checked_inputs(
    preset: str | PhantomPreset,
    speckle: str | None,
    heart_rate_bpm: float | None,
    length_mm: float | None,
    size_px: int | None,
    appearance: Appearance | None,
) -> tuple[PhantomPreset, str, float, int, Appearance | None]:
    """The preset (with the overrides applied), speckle model, length, frame size and appearance.

    Raises
    ------
    IVUSInputError
        An unknown preset or speckle model, a length that is not positive, frames under 32 px,
        an appearance field out of range.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise IVUSInputError(
                f"preset: unknown phantom preset {preset!r}; use one of {', '.join(sorted(PRESETS))}"
            )
        preset = PRESETS[preset]
    speckle = speckle or preset.speckle
    if speckle not in ("rotational", "phased"):
        raise IVUSInputError(f"speckle: {speckle!r} is not a speckle model; use 'rotational' or 'phased'")
    if heart_rate_bpm is not None and preset.heart_rate_bpm is not None:
        preset = replace(preset, heart_rate_bpm=float(heart_rate_bpm))
    length = float(length_mm if length_mm is not None else preset.length_mm)
    if length <= 0:
        raise IVUSInputError(f"length_mm: {length} must be positive; pass a pullback length in mm")
    size = int(size_px or 256)
    if size < 32:
        raise IVUSInputError(f"size_px: {size} is too small; use at least 32")
    look = _check_appearance(appearance)
    if look is not None and look.media_mm is not None:
        preset = replace(preset, media_mm=float(look.media_mm))
    return preset, speckle, length, size, look


@dataclass(frozen=True)
class _Timeline:
    """Frame times and the true position of every frame: pullback plus cyclic motion.

    With a heart rhythm the cycle is cardiac (RR intervals of whole frames, frame 0
    end-diastolic); without one it is respiratory. The transducer stays at the distal end
    for the first ``n_still`` frames.
    """

    n: int
    n_still: int
    t: np.ndarray  # (N,) s
    phase: np.ndarray  # (N,) cycle phase in [0, 1)
    cycle: np.ndarray  # (N,) motion shape, 0 at end-diastole
    ed_frames: np.ndarray  # (B,) int, empty without a rhythm
    rate: float | None  # mean simulated heart rate, bpm
    nominal: np.ndarray  # (N,) mm, motor position
    s: np.ndarray  # (N,) mm, true arc length (motor + cyclic motion), 0 at frame 0

    @classmethod
    def of(
        cls, preset: PhantomPreset, length_mm: float, stationary_start_s: float, rng: np.random.Generator
    ) -> _Timeline:
        fps = preset.frame_rate_hz
        speed = preset.pullback_speed_mm_s
        n_still = int(round(max(stationary_start_s, 0.0) * fps))
        n = max(2, int(round(length_mm / speed * fps))) + n_still
        t = np.arange(n) / fps
        if preset.heart_rate_bpm is not None:
            phase, ed_frames, rate = _cardiac_phase(n, fps, preset.heart_rate_bpm, preset.rr_jitter, rng)
            cycle = _cycle_shape(phase)
        else:
            resp = preset.respiratory_rate_hz or 0.25
            phase = np.mod(t * resp, 1.0)
            cycle = 0.5 * (1.0 - np.cos(_TWO_PI * phase))
            ed_frames = np.zeros(0, dtype=int)
            rate = None
        nominal = speed * np.maximum(t - n_still / fps, 0.0)
        s = nominal + preset.dz_peak_mm * cycle
        return cls(n, n_still, t, phase, cycle, ed_frames, rate, nominal, s - s[0])


def _scanner_and_console(
    preset: PhantomPreset, size: int, speckle: str, look: Appearance | None, rng: np.random.Generator
) -> tuple[_Scanner, tuple[int, int], tuple[np.ndarray, np.ndarray] | None]:
    """The scanner, the image offset of the catheter and the console overlay (RGB, mask) if any.

    With a console overlay the scanner's own burned-in marks are left out.

    Raises
    ------
    IVUSInputError
        A console offset beyond ``size / 8`` pixels.
    """
    scanner = _scanner(preset, size, speckle, rng)
    offset = (0, 0) if look is None else (int(look.console_offset_px[0]), int(look.console_offset_px[1]))
    if max(abs(offset[0]), abs(offset[1])) > size // 8:
        raise IVUSInputError(
            f"appearance.console_offset_px: {offset} is out of range; use at most {size // 8} px (size_px / 8)"
        )
    console = None
    if look is not None and look.console:
        console = _console_overlay(
            size, scanner.spacing_mm, preset.catheter_radius_mm, look.console_offset_px
        )
        scanner = replace(scanner, overlay=np.zeros_like(scanner.overlay))
    return scanner, offset, console


class _FrameMaker:
    """Draws frame k of a phantom: its truth contours and its image.

    Frames are drawn in order: the blood speckle of a frame keeps a correlation with the
    previous one, and the dense boundary curves are computed 256 frames at a time.
    """

    CHUNK = 256

    def __init__(
        self,
        *,
        preset: PhantomPreset,
        speckle: str,
        look: Appearance | None,
        seed: int,
        scanner: _Scanner,
        geometry: Any,
        s: np.ndarray,
        ed_frames: np.ndarray,
        branch: tuple[float, float] | None,
        texture_fn: Callable[[float], float],
        texture_phase: np.ndarray,
        offset: tuple[int, int],
        console: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        self.preset, self.speckle, self.look, self.seed = preset, speckle, look, seed
        self.scanner, self.geometry, self.s, self.branch = scanner, geometry, s, branch
        self.texture_fn, self.texture_phase = texture_fn, texture_phase
        self.offset, self.console = offset, console
        self.console_grey = None if console is None else _luminance(console[0])
        self.ed_set = set(ed_frames.tolist())
        depth_step_mm = float(scanner.depth_mm[1] - scanner.depth_mm[0])
        self.tissue = _TissueSpeckle(
            seed,
            (len(scanner.theta), len(scanner.depth_mm)),
            # the elevational beam width sets how far along the vessel tissue speckle stays alike:
            # ~0.25 mm at 40-60 MHz, ~0.4 mm for 20 MHz phased arrays
            step_mm=0.4 if speckle == "phased" else 0.25,
            coarse=speckle == "phased",
            depth_step_mm=depth_step_mm,
            blob_mm=0.02 * preset.fov_mm,
            psf_sigma=_psf_sigma(look, len(scanner.theta), depth_step_mm),
        )
        self.blood_psf = _psf_sigma(look, len(scanner.theta), depth_step_mm)
        self.blood_rho = 0.0 if look is None else float(look.blood_correlation)
        self.blood_field = None
        self.pools = [] if look is not None and look.echolucent_arc_deg > 0 else None
        # Truth rays are every ``step``-th imaging ray: the same boundaries, whatever size_px.
        self.step = len(scanner.theta) // TRUTH_POINTS
        self.truth_theta = scanner.theta[:: self.step]
        self.dense = None

    def __call__(self, k: int) -> tuple[FrameContours, np.ndarray]:
        if k % self.CHUNK == 0:
            self.dense = _dense_curves(self.geometry, slice(k, min(len(self.s), k + self.CHUNK)))
        theta = self.scanner.theta
        rays = _frame_rays(self.geometry, k, tuple(d[k % self.CHUNK] for d in self.dense), theta, self.preset)
        seen = rays if self.branch is None else _open_branch(rays, theta, float(self.s[k]), self.branch)
        return self.truth(k, _subsample(rays, self.step)), self.image(k, seen)

    def truth(self, k: int, truth_rays: Any) -> FrameContours:
        """True lumen, vessel and calcium of frame k (the branch is closed, as experts draw it)."""
        theta = self.truth_theta
        lumen = np.column_stack([truth_rays.lumen * np.cos(theta), truth_rays.lumen * np.sin(theta)])
        vessel = np.column_stack([truth_rays.vessel * np.cos(theta), truth_rays.vessel * np.sin(theta)])
        calcium = _calcium_polygons(truth_rays, theta)
        return FrameContours(
            index=k,
            lumen=lumen,
            vessel=vessel,
            calcium=calcium,
            phase="ED" if k in self.ed_set else None,
            z_mm=float(self.s[k]),
            calcium_arc_deg=_calcium_arc_deg(lumen, calcium),
        )

    def image(self, k: int, seen: Any) -> np.ndarray:
        """The grey image (H, W) uint8 of frame k from the rays the catheter sees."""
        scanner, look, s_k = self.scanner, self.look, float(self.s[k])
        frame_rng = np.random.default_rng([self.seed, 11, k])
        if self.blood_psf is None and self.blood_rho == 0.0:
            blood = frame_rng.rayleigh(
                np.float32(0.8), size=(len(scanner.theta), len(scanner.depth_mm))
            ).astype(np.float32)
        else:
            blood, self.blood_field = _blood_speckle(
                frame_rng, scanner, self.blood_psf, self.blood_rho, self.blood_field
            )
        if look is not None and look.tissue_renewal > 0:
            fresh = _fresh_field(frame_rng, blood.shape, self.blood_psf)
            speckle_now = self.tissue(s_k, fresh, look.tissue_renewal)
        else:
            speckle_now = self.tissue(s_k)
        pool = None
        if self.pools is not None:
            pool = _echolucent_pool(seen, scanner.theta, look.echolucent_arc_deg, self.preset.media_mm)
            self.pools.append(_pool_polygon((pool[0][:: self.step], pool[1][:: self.step]), self.truth_theta))
        # Plaque echogenicity varies slowly around and along the vessel (fibrous vs. lipid).
        phase = self.texture_phase
        texture = 1.0 + 0.3 * np.sin(scanner.theta * 2 + phase[0] + 2 * self.texture_fn(self.s[k])) * np.cos(
            scanner.theta * 3 + phase[1]
        )
        g = self.geometry
        amp = _render_polar(
            seen,
            scanner,
            speckle_now,
            blood,
            (float(g.wire_angle[k]), float(g.wire_distance[k])),
            self.preset,
            self.speckle,
            texture.astype(np.float32),
            (g.artery_centre[k], float(g.artery_r[k])) if g.artery_r[k] > 0 else None,
            look,
            pool,
        )
        frame = _scan_convert(_log_compress(amp), scanner)
        if self.offset != (0, 0):
            frame = _shifted(frame, self.offset)
        if self.console is not None:
            frame[self.console[1]] = self.console_grey[self.console[1]]
        return frame


def _pullback_record(
    frames: np.ndarray,
    t: np.ndarray,
    preset: PhantomPreset,
    seed: int,
    centre_px: tuple[float, float],
    spacing_mm: tuple[float, float],
) -> Pullback:
    """The phantom's frames as a motor pullback whose values name the preset and seed as source."""
    src = f"phantom preset {preset.name} (seed {seed})"
    speed = preset.pullback_speed_mm_s
    return Pullback(
        frames=frames,
        pixel_spacing_mm=spacing_mm,
        frame_times_s=t,
        pullback_speed_mm_s=speed,
        acquisition="motor",
        catheter_center_px=centre_px,
        source={"path": f"phantom:{preset.name}", "sop_class_uid": "", "vendor": "IVUSReconstruct phantom"},
        provenance={
            "n_frames": Valued(len(frames), src),
            "frame_times_s": Valued(t, src),
            "pixel_spacing_mm": Valued(spacing_mm, src),
            "pullback_speed_mm_s": Valued(speed, src),
            "acquisition": Valued("motor", src),
        },
    )


def compressed_segment_mm(
    preset: str | PhantomPreset, *, length_mm: float | None = None, area_share: float = 0.5
) -> tuple[float, float] | None:
    """True extent of the preset's tightest narrowing: where its lumen area is below ``area_share``
    of the un-narrowed lumen at the same place (analytic, from the raised-cosine profile).

    The iliac-vein compression with the venous lesion rule (lumen 50 % below the adjacent
    reference): ``area_share = 0.5``.

    Parameters
    ----------
    preset : str or PhantomPreset
    length_mm : float, optional
        Pullback length the phantom was made with (default: the preset's).
    area_share : float

    Returns
    -------
    (start_mm, end_mm) in true arc length, or None when the narrowing never gets that tight.
    """
    preset = PRESETS[preset] if isinstance(preset, str) else preset
    if not preset.narrowings:
        return None
    length = float(length_mm if length_mm is not None else preset.length_mm)
    n = min(preset.narrowings, key=lambda item: item.area_fraction)
    # area factor 1 - (1 - f) * bump below the share: bump above (1 - share) / (1 - f)
    bump = (1.0 - area_share) / (1.0 - n.area_fraction)
    if bump >= 1.0:
        return None
    half = n.half_length_mm * length / preset.length_mm * float(np.arccos(2.0 * max(bump, 0.0) - 1.0)) / np.pi
    centre = n.position * length
    return centre - half, centre + half


def metric_params_for(preset: str):
    """Metric parameters a preset is analysed with (the vein preset names its venous segment)."""
    return MetricParams(vein_segment="common_iliac") if preset == "iliac-vein" else MetricParams()


def truth_metrics(phantom: Phantom, params=None):
    """Ground-truth metrics: the true contours of the end-diastolic frames (every frame when the
    phantom has no cardiac rhythm) at their true arc lengths, in arc-length order (breathing
    moves ungated frames back and forth).

    Returns
    -------
    Metrics
    """
    truth = phantom.truth
    keep = set(int(i) for i in (phantom.ed_frames if len(phantom.ed_frames) else truth.indices))
    frames = [f for f in truth.frames if f.index in keep]
    arc = np.asarray(phantom.true_arc_length_mm, dtype=float)[[f.index for f in frames]]
    order = np.argsort(arc, kind="stable")
    contours = replace(truth, frames=tuple(frames[i] for i in order))
    return compute_metrics(contours, arc[order], params=params or metric_params_for(phantom.preset))
