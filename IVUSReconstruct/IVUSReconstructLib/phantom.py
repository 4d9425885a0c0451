"""Synthetic IVUS pullbacks with known ground truth.

A phantom is a vessel defined by smooth functions of the true arc length ``s`` (lumen and
EEM ellipses with small harmonics, an eccentric plaque, narrowings, calcium arcs), imaged by
a catheter that wanders slowly inside the lumen and moves with the heart beat (or with
respiration, for veins). Frames are built in the polar domain of the catheter (rays x depth)
and scan-converted, so they carry the look of real IVUS: catheter ring-down, blood and
tissue speckle, a dark media band, bright adventitia, depth attenuation, a guidewire with its
shadow, calcium with an acoustic shadow, a circular field of view and burned-in marks.

The ground truth (lumen, vessel and calcium polygons of every frame in frame-plane mm, the
true longitudinal position of every frame, the end-diastolic frames) comes from the same
geometry the images are drawn from. Presets are parameters of the generator only: no
analysis stage may read them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter

from .errors import IVUSCancelled, IVUSInputError
from .geometry import polygon_centroid
from .types import Centerline, ContourSet, FrameContours, Pullback, Valued

__all__ = [
    "Narrowing",
    "CalciumSegment",
    "PhantomPreset",
    "PRESETS",
    "compressed_segment_mm",
    "Phantom",
    "Appearance",
    "realistic_appearance",
    "make_phantom",
    "metric_params_for",
    "truth_metrics",
]

TRUTH_POINTS = 128
"""Vertices of every truth polygon (equally spaced catheter rays)."""

_TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class Narrowing:
    """A lumen narrowing (plaque or extrinsic compression).

    Attributes
    ----------
    position : float
        Centre as a fraction of the pullback length (0 distal, 1 proximal).
    half_length_mm : float
        Half its length (raised-cosine profile) at the preset length; scaled with ``length_mm``.
    area_fraction : float
        Lumen area at its centre over the reference lumen area there.
    aspect : float
        Lumen major/minor axis ratio at its centre (1 keeps the baseline shape).
    remodeling : float
        EEM radius factor at its centre (> 1: positive remodeling).
    eccentricity : float
        Extra lumen shift towards the thin side of the plaque at its centre, in [0, 1].
    """

    position: float
    half_length_mm: float
    area_fraction: float
    aspect: float = 1.0
    remodeling: float = 1.0
    eccentricity: float = 0.0


@dataclass(frozen=True)
class CalciumSegment:
    """A calcified plaque segment.

    Attributes
    ----------
    start, stop : float
        Extent as fractions of the pullback length.
    arc_deg : float
        Largest arc, seen from the lumen centre; the arc tapers to zero at both ends.
    gap_mm : float
        Depth of its leading edge behind the lumen border.
    thickness_mm : float
    angle_deg : float
        Position of the arc centre relative to the thick side of the plaque.
    """

    start: float
    stop: float
    arc_deg: float
    gap_mm: float = 0.1
    thickness_mm: float = 0.4
    angle_deg: float = 0.0


@dataclass(frozen=True)
class PhantomPreset:
    """Parameters of one synthetic vessel and acquisition (see ``PRESETS``).

    Radii are equivalent radii (sqrt(area / pi)) in mm; ``*_proximal_mm`` values are reached
    linearly at the proximal end. ``heart_rate_bpm`` None means no cardiac rhythm; motion then
    follows ``respiratory_rate_hz``.
    """

    name: str
    length_mm: float
    pullback_speed_mm_s: float
    frame_rate_hz: float
    fov_mm: float
    catheter_radius_mm: float
    lumen_radius_mm: float
    lumen_radius_proximal_mm: float
    vessel_radius_mm: float
    vessel_radius_proximal_mm: float
    lumen_aspect: float = 1.1
    eccentricity: float = 0.3
    wall_follows_lumen: bool = False
    min_wall_mm: float = 0.25
    media_mm: float = 0.2
    adventitia_mm: float = 0.3
    diffuse_narrowing: float = 0.0
    narrowings: tuple[Narrowing, ...] = ()
    calcium: tuple[CalciumSegment, ...] = ()
    heart_rate_bpm: float | None = 70.0
    rr_jitter: float = 0.03
    respiratory_rate_hz: float | None = None
    pulsation: float = 0.04
    dz_peak_mm: float = 0.75
    inplane_motion_mm: float = 0.15
    rotation_deg: float = 3.0
    speckle: str = "rotational"
    attenuation_per_mm: float = 0.35
    penetration_mm: float = 2.0
    compressing_artery_radius_mm: float = 0.0


PRESETS: dict[str, PhantomPreset] = {
    "coronary": PhantomPreset(
        name="coronary",
        length_mm=40.0,
        pullback_speed_mm_s=0.5,
        frame_rate_hz=30.0,
        fov_mm=10.0,
        catheter_radius_mm=0.45,
        lumen_radius_mm=1.4,
        lumen_radius_proximal_mm=1.6,
        vessel_radius_mm=1.75,
        vessel_radius_proximal_mm=1.97,
        lumen_aspect=1.12,
        eccentricity=0.3,
        narrowings=(
            Narrowing(
                position=0.45,
                half_length_mm=5.0,
                area_fraction=0.48,
                aspect=1.3,
                remodeling=1.08,
                eccentricity=0.5,
            ),
        ),
        calcium=(
            CalciumSegment(
                start=0.47, stop=0.58, arc_deg=110.0, gap_mm=0.08, thickness_mm=0.45, angle_deg=30.0
            ),
        ),
        heart_rate_bpm=70.0,
        dz_peak_mm=0.75,
        inplane_motion_mm=0.15,
        speckle="rotational",
        attenuation_per_mm=0.6,
        penetration_mm=1.2,
    ),
    # 15 frames/s (real systems acquire 30) keeps the 150 mm demo at ~2250 frames.
    "femoropopliteal": PhantomPreset(
        name="femoropopliteal",
        length_mm=150.0,
        pullback_speed_mm_s=1.0,
        frame_rate_hz=15.0,
        fov_mm=16.0,
        catheter_radius_mm=0.6,
        lumen_radius_mm=2.45,
        lumen_radius_proximal_mm=2.75,
        vessel_radius_mm=3.0,
        vessel_radius_proximal_mm=3.35,
        lumen_aspect=1.12,
        eccentricity=0.35,
        min_wall_mm=0.3,
        media_mm=0.25,
        adventitia_mm=0.4,
        diffuse_narrowing=0.2,
        narrowings=(
            Narrowing(
                position=0.35,
                half_length_mm=14.0,
                area_fraction=0.6,
                aspect=1.25,
                remodeling=1.05,
                eccentricity=0.4,
            ),
            Narrowing(
                position=0.72,
                half_length_mm=9.0,
                area_fraction=0.4,
                aspect=1.3,
                remodeling=1.0,
                eccentricity=0.5,
            ),
        ),
        calcium=(
            CalciumSegment(start=0.12, stop=0.26, arc_deg=120.0, gap_mm=0.1, thickness_mm=0.6, angle_deg=0.0),
            CalciumSegment(
                start=0.3, stop=0.46, arc_deg=180.0, gap_mm=0.08, thickness_mm=0.7, angle_deg=20.0
            ),
            CalciumSegment(
                start=0.62, stop=0.8, arc_deg=150.0, gap_mm=0.3, thickness_mm=0.6, angle_deg=-40.0
            ),
        ),
        heart_rate_bpm=65.0,
        pulsation=0.03,
        dz_peak_mm=0.3,
        inplane_motion_mm=0.1,
        rotation_deg=2.0,
        speckle="rotational",
        attenuation_per_mm=0.35,
        penetration_mm=2.0,
    ),
    "iliac-vein": PhantomPreset(
        name="iliac-vein",
        length_mm=100.0,
        pullback_speed_mm_s=1.0,
        frame_rate_hz=15.0,
        fov_mm=28.0,
        catheter_radius_mm=0.8,
        lumen_radius_mm=5.8,
        lumen_radius_proximal_mm=6.1,
        vessel_radius_mm=6.2,
        vessel_radius_proximal_mm=6.5,
        lumen_aspect=1.25,
        eccentricity=0.0,
        wall_follows_lumen=True,
        min_wall_mm=0.3,
        media_mm=0.0,
        adventitia_mm=0.5,
        narrowings=(Narrowing(position=0.72, half_length_mm=12.0, area_fraction=0.33, aspect=4.0),),
        compressing_artery_radius_mm=4.5,
        heart_rate_bpm=None,
        respiratory_rate_hz=0.25,
        pulsation=0.05,
        dz_peak_mm=0.5,
        inplane_motion_mm=0.3,
        rotation_deg=2.0,
        speckle="rotational",
        attenuation_per_mm=0.15,
        penetration_mm=4.0,
    ),
}


@dataclass(frozen=True)
class Appearance:
    """Optional realism of the phantom's images; the defaults draw the historical images.

    Values tuned against real frames are given by :func:`realistic_appearance` (measured by
    ``Testing/benchmarks/compare_phantom_real.py``). None of them moves a truth contour except
    ``wedged_catheter``, which changes the geometry and keeps the truth exact.

    Attributes
    ----------
    blood_gain, plaque_gain, adventitia_gain : float
        Echo amplitude factors of blood, plaque (intima) and adventitia (1: unchanged).
    media_level : float, optional
        Echo amplitude of the media (default 0.05: dark; a 20 MHz array barely resolves it).
    media_mm : float, optional
        Media thickness, overriding the preset's (a thin dark media at 40-60 MHz: ~0.1 mm).
    lateral_speckle_deg : float
        Lateral full width at half maximum of the beam, degrees of catheter rotation: blood and
        tissue speckle are smoothed around the catheter by it (0: no smoothing).
    axial_speckle_mm : float
        Axial width (FWHM, mm) the speckle is smoothed over in depth (0: none).
    blood_correlation : float
        Correlation of the blood echo field between consecutive frames, in [0, 1) (0: new
        blood speckle in every frame, as moving blood at 30 frames/s nearly gives).
    tissue_renewal : float
        Share of the tissue speckle power drawn anew in every frame, in [0, 1] (0: speckle
        fixed to the anatomy; real exports decorrelate between frames by motion and jitter).
    ringdown_gain : float
        Amplitude factor of the catheter ring-down and sheath echo.
    echolucent_arc_deg : float
        Arc (degrees, on the thickest plaque) of an echolucent lipid pool inside the plaque
        behind a thin fibrous cap (0: none). See ``Phantom.echolucent``.
    echolucent_level : float
        Echo amplitude of the pool relative to the blood echo (< 1: darker than blood).
    wedged_catheter : bool
        In the narrowings the lumen's minor semi-axis closes to 0.25 mm beyond the catheter
        radius and the catheter lies against the wall (0.02-0.04 mm off it), as in a tight
        lesion the catheter wedges into (coronary: MLA ~1.9 mm2 instead of ~3.2).
    console : bool
        Screen-export look: a dark-red field-of-view ring and catheter disc, a text banner,
        yellow 1 mm calibration dots and a measurement box with markers, burned into every
        frame instead of the default marks. ``Phantom.screen_frame`` gives the colour export.
    console_offset_px : tuple of int
        (row, column) shift of the catheter centre from the image centre: the ultrasound image
        and the console marks drawn around the catheter move, the banner and the measurement
        box stay (without ``console`` the default marks move with the image). The pullback's
        and the truth's ``catheter_center_px`` follow; contours in mm do not change. At most an
        eighth of the frame size.
    """

    blood_gain: float = 1.0
    plaque_gain: float = 1.0
    adventitia_gain: float = 1.0
    media_level: float | None = None
    media_mm: float | None = None
    lateral_speckle_deg: float = 0.0
    axial_speckle_mm: float = 0.0
    blood_correlation: float = 0.0
    tissue_renewal: float = 0.0
    ringdown_gain: float = 1.0
    echolucent_arc_deg: float = 0.0
    echolucent_level: float = 0.35
    wedged_catheter: bool = False
    console: bool = False
    console_offset_px: tuple[int, int] = (0, 0)


def realistic_appearance(speckle: str = "rotational", **changes) -> Appearance:
    """The appearance tuned to the real frames of ``compare_phantom_real.py`` for one speckle
    regime (``"rotational"`` 40-60 MHz, ``"phased"`` 20 MHz), with optional field changes."""
    if speckle == "phased":
        base = Appearance(
            blood_gain=0.35,
            plaque_gain=0.55,
            adventitia_gain=0.48,
            media_level=0.12,
            lateral_speckle_deg=6.0,
            axial_speckle_mm=0.09,
            blood_correlation=0.9,
            tissue_renewal=0.5,
            ringdown_gain=0.15,
        )
    else:
        base = Appearance(
            blood_gain=1.5,
            plaque_gain=0.7,
            media_level=0.14,
            media_mm=0.12,
            lateral_speckle_deg=2.8,
            tissue_renewal=0.8,
            ringdown_gain=0.25,
        )
    return replace(base, **changes)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic pullback and its ground truth.

    Attributes
    ----------
    preset : str
    pullback : Pullback
        Frames in memory, uint8 of shape (N, H, W).
    centerline : Centerline
        RAS mm, distal to proximal; its first point is the true position of frame 0 and it
        is at least 5 mm longer than the pullback.
    truth : ContourSet
        Every frame's true lumen, vessel and calcium polygons in frame-plane mm, phase "ED" on
        end-diastolic frames, ``z_mm`` the true longitudinal position from frame 0.
    true_arc_length_mm : ndarray of shape (N,)
        True position of every frame along the centerline.
    ed_frames : ndarray of shape (B,), int
        End-diastolic frames (empty without a cardiac rhythm).
    heart_rate_bpm : float or None
        Mean heart rate of the simulated RR intervals.
    speckle : str
        ``"rotational"`` (40-60 MHz mechanical) or ``"phased"`` (20 MHz solid state).
    cardiac_phase : ndarray of shape (N,)
        Phase in [0, 1) of the cardiac (or respiratory) cycle, 0 at end-diastole.
    seed : int
        The seed it was generated from.
    motion_start_frame : int
        First frame of the motor pullback (0 unless the phantom has a motionless start).
    guide_start_frame : int or None
        First frame inside the guiding catheter (None without one).
    side_branch_mm : float or None
        Position of the side branch's ostium centre (``true_arc_length_mm`` units), None without
        a branch; the ostium spans 1 mm either side of it.
    appearance : Appearance or None
        The realism options it was drawn with (None: the defaults).
    echolucent : tuple of ndarray or None
        With an echolucent plaque: every frame's lipid pool polygon (frame-plane mm, shape
        (P, 2), inner arc then outer arc back; shape (0, 2) where the plaque has no room).
    console_overlay : tuple of ndarray or None
        With console overlays: their colours, uint8 (H, W, 3), and where they are, bool (H, W).
    """

    preset: str
    pullback: Pullback
    centerline: Centerline
    truth: ContourSet
    true_arc_length_mm: np.ndarray
    ed_frames: np.ndarray
    heart_rate_bpm: float | None
    speckle: str
    cardiac_phase: np.ndarray | None = None
    seed: int = 0
    side_branch_mm: float | None = None
    appearance: Appearance | None = None
    echolucent: tuple[np.ndarray, ...] | None = None
    console_overlay: tuple[np.ndarray, np.ndarray] | None = None
    motion_start_frame: int = 0
    guide_start_frame: int | None = None

    def screen_frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as a colour screen export, uint8 (H, W, 3): the console overlays in
        colour over the grey frame (the grey frame alone without console overlays)."""
        grey = np.asarray(self.pullback.frames[k])
        rgb = np.repeat(grey[..., None], 3, axis=2)
        if self.console_overlay is not None:
            colours, where = self.console_overlay
            rgb[where] = colours[where]
        return rgb


# --------------------------------------------------------------------------- motion


def _cycle_shape(phase: np.ndarray) -> np.ndarray:
    """Motion over one cycle: 0 at end-diastole (phase 0 and 1), 1 in early systole."""
    phase = np.clip(np.asarray(phase, dtype=float), 0.0, 1.0)
    return np.sin(np.pi * phase**0.7) ** 2


def _cardiac_phase(
    n_frames: int, frame_rate_hz: float, heart_rate_bpm: float, jitter: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Phase of every frame for RR intervals of whole frames (frame 0 is end-diastolic).

    Whole-frame RR intervals put every end-diastole exactly on a frame, so that ED frames
    carry no longitudinal motion (dz = 0).

    Returns
    -------
    phase : ndarray of shape (N,)
    ed_frames : ndarray of shape (B,), int
    heart_rate_bpm : float
        Mean rate of the simulated intervals.
    """
    mean_rr = frame_rate_hz * 60.0 / heart_rate_bpm
    phase = np.zeros(n_frames)
    starts, lengths = [], []
    k = 0
    while k < n_frames:
        rr = max(3, int(round(mean_rr * (1.0 + jitter * rng.standard_normal()))))
        stop = min(k + rr, n_frames)
        phase[k:stop] = np.arange(stop - k) / rr
        starts.append(k)
        lengths.append(rr)
        k += rr
    rate = 60.0 * frame_rate_hz / float(np.mean(lengths))
    return phase, np.array(starts, dtype=int), rate


# --------------------------------------------------------------------------- geometry


def _smooth_random(rng: np.random.Generator, *, period_mm: tuple[float, float], n_terms: int = 4):
    """A smooth random function of arc length with values in [-1, 1]."""
    periods = rng.uniform(*period_mm, size=n_terms)
    phases = rng.uniform(0.0, _TWO_PI, size=n_terms)
    weights = rng.uniform(0.5, 1.0, size=n_terms)
    weights = weights / weights.sum()

    def f(s_mm: np.ndarray) -> np.ndarray:
        s_mm = np.asarray(s_mm, dtype=float)
        return np.sum(weights * np.sin(_TWO_PI * s_mm[..., None] / periods + phases), axis=-1)

    return f


def _raised_cosine(s_mm: np.ndarray, centre_mm: float, half_length_mm: float) -> np.ndarray:
    x = np.clip((s_mm - centre_mm) / max(half_length_mm, 1e-6), -1.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _ellipse_radius(psi: np.ndarray, r_mm: np.ndarray, aspect: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Radius of an ellipse of area pi r^2 and axis ratio ``aspect`` at polar angle ``psi``."""
    k = np.sqrt(aspect)
    c = np.cos(psi - alpha)
    s = np.sin(psi - alpha)
    return r_mm / np.sqrt((c / k) ** 2 + (k * s) ** 2)


@dataclass(frozen=True)
class _FrameGeometry:
    """Per-frame shape parameters (arrays of shape (N,) unless noted), catheter at origin."""

    lumen_centre: np.ndarray  # (N, 2)
    lumen_r: np.ndarray
    lumen_aspect: np.ndarray
    lumen_alpha: np.ndarray
    lumen_h3: np.ndarray  # (N, 2): amplitude, angle of a 3-lobe harmonic
    vessel_centre: np.ndarray  # (N, 2)
    vessel_r: np.ndarray
    vessel_aspect: np.ndarray
    vessel_alpha: np.ndarray
    calcium: tuple[
        tuple[np.ndarray, np.ndarray, float, float], ...
    ]  # (arc_rad (N,), centre (N,), gap, thick)
    wire_angle: np.ndarray
    wire_distance: np.ndarray
    artery_centre: np.ndarray  # (N, 2) extrinsic artery pressing on the vessel
    artery_r: np.ndarray  # (N,), 0 where there is none


def _frame_geometry(
    preset: PhantomPreset,
    s_mm: np.ndarray,
    cycle: np.ndarray,
    length_mm: float,
    rng: np.random.Generator,
    wedged: bool = False,
) -> _FrameGeometry:
    """Shape parameters of every frame from its true arc length and its motion cycle value.

    ``wedged``: in the narrowings the lumen closes onto the catheter (see ``Appearance``)."""
    u = np.clip(s_mm / length_mm, 0.0, 1.0)
    scale = length_mm / preset.length_mm
    pulse = 1.0 - preset.pulsation * cycle

    r_ref = preset.lumen_radius_mm + (preset.lumen_radius_proximal_mm - preset.lumen_radius_mm) * u
    r_vessel = preset.vessel_radius_mm + (preset.vessel_radius_proximal_mm - preset.vessel_radius_mm) * u
    area_factor = np.ones_like(s_mm)
    aspect = np.full_like(s_mm, preset.lumen_aspect)
    ecc = np.full_like(s_mm, preset.eccentricity)
    diffuse = _smooth_random(rng, period_mm=(25.0 * scale, 70.0 * scale))
    if preset.diffuse_narrowing > 0:
        area_factor *= 1.0 - preset.diffuse_narrowing * (0.5 + 0.5 * diffuse(s_mm))
    for n in preset.narrowings:
        bump = _raised_cosine(s_mm, n.position * length_mm, n.half_length_mm * scale)
        area_factor *= 1.0 - (1.0 - n.area_fraction) * bump
        aspect *= 1.0 + (n.aspect / preset.lumen_aspect - 1.0) * bump
        r_vessel = r_vessel * (1.0 + (n.remodeling - 1.0) * bump)
        ecc = ecc + n.eccentricity * bump
    compression = np.zeros_like(s_mm)
    for n in preset.narrowings:
        compression = np.maximum(
            compression, _raised_cosine(s_mm, n.position * length_mm, n.half_length_mm * scale)
        )
    lumen_r = r_ref * np.sqrt(area_factor) * pulse
    vessel_r = r_vessel * pulse

    wander = (40.0 * scale, 120.0 * scale)
    lumen_alpha = np.pi * _smooth_random(rng, period_mm=wander)(s_mm)
    h3 = np.column_stack(
        [
            0.03 * (0.5 + 0.5 * _smooth_random(rng, period_mm=wander)(s_mm)),
            np.pi * _smooth_random(rng, period_mm=wander)(s_mm),
        ]
    )
    # Thin-plaque direction (the lumen shifts towards it inside the EEM).
    thin_dir = np.pi * _smooth_random(rng, period_mm=wander)(s_mm)
    tight = compression if wedged else np.zeros_like(s_mm)
    if wedged:
        # The lumen's minor semi-axis closes to 0.25 mm beyond the catheter radius.
        tight_r = (preset.catheter_radius_mm + 0.25) * np.sqrt(aspect) / (1.0 - h3[:, 0]) * pulse
        lumen_r = lumen_r * (1.0 - tight) + np.minimum(lumen_r, tight_r) * tight

    if preset.wall_follows_lumen:
        k = np.sqrt(aspect)
        a, b = lumen_r * k, lumen_r / k
        wall = preset.min_wall_mm + 0.1
        vessel_r = np.sqrt((a + wall) * (b + wall))
        vessel_aspect = (a + wall) / (b + wall)
        vessel_alpha = lumen_alpha
        shift = np.zeros((len(s_mm), 2))
    else:
        vessel_aspect = 1.04 + 0.03 * (0.5 + 0.5 * _smooth_random(rng, period_mm=wander)(s_mm))
        vessel_alpha = np.pi * _smooth_random(rng, period_mm=wander)(s_mm)
        room = vessel_r / np.sqrt(vessel_aspect) - lumen_r * np.sqrt(aspect) - preset.min_wall_mm
        shift_mm = np.clip(ecc, 0.0, 1.0) * np.maximum(room, 0.0)
        shift = shift_mm[:, None] * np.column_stack([np.cos(thin_dir), np.sin(thin_dir)])

    # Catheter inside the lumen (vessel frame: EEM centre at 0), wandering slowly.
    lumen_min_r = lumen_r / np.sqrt(aspect) * (1.0 - h3[:, 0])
    cath_room = np.maximum(lumen_min_r - preset.catheter_radius_mm - (0.15 - 0.13 * tight), 0.0)
    cath_frac = 0.4 + 0.25 * _smooth_random(rng, period_mm=(15.0 * scale, 50.0 * scale))(s_mm)
    if wedged:  # against the wall, 0.02 mm off it, where the lumen is tight
        cath_frac = cath_frac + (1.0 - cath_frac) * tight
    cath_dir = np.pi * _smooth_random(rng, period_mm=(30.0 * scale, 90.0 * scale))(s_mm)
    cath_unit = np.column_stack([np.cos(cath_dir), np.sin(cath_dir)])
    if wedged:  # towards the near wall: along the lumen's minor axis
        minor = np.column_stack([np.cos(lumen_alpha + 0.5 * np.pi), np.sin(lumen_alpha + 0.5 * np.pi)])
        minor *= np.where(np.sum(minor * cath_unit, axis=1) < 0, -1.0, 1.0)[:, None]
        cath_unit = cath_unit * (1.0 - tight)[:, None] + minor * tight[:, None]
        cath_unit /= np.maximum(np.linalg.norm(cath_unit, axis=1, keepdims=True), 1e-9)
    cath_off = (cath_frac * cath_room)[:, None] * cath_unit
    catheter = shift + cath_off

    # Motion with the cycle: in-plane translation and rotation of the anatomy about the catheter.
    motion_dir = rng.uniform(0.0, _TWO_PI)
    translation = (
        preset.inplane_motion_mm * cycle[:, None] * np.array([np.cos(motion_dir), np.sin(motion_dir)])
    )
    if wedged:  # a wedged catheter moves with the wall
        translation = translation * (1.0 - tight)[:, None]
    rot = np.deg2rad(preset.rotation_deg) * cycle
    cos_r, sin_r = np.cos(rot), np.sin(rot)

    def to_catheter(p: np.ndarray) -> np.ndarray:
        q = p - catheter
        return (
            np.column_stack([cos_r * q[:, 0] - sin_r * q[:, 1], sin_r * q[:, 0] + cos_r * q[:, 1]])
            + translation
        )

    calcium = []
    for seg in preset.calcium:
        centre_s = 0.5 * (seg.start + seg.stop) * length_mm
        half = 0.5 * (seg.stop - seg.start) * length_mm
        taper = np.clip(1.0 - np.abs(s_mm - centre_s) / max(half, 1e-6), 0.0, 1.0)
        arc = np.deg2rad(seg.arc_deg) * np.sqrt(np.clip(taper * 2.0, 0.0, 1.0)) * (taper > 0)
        centre_angle = thin_dir + np.pi + np.deg2rad(seg.angle_deg) + rot
        calcium.append((arc, centre_angle, seg.gap_mm, seg.thickness_mm))

    wire_angle = _TWO_PI * rng.uniform() + 1.5 * _smooth_random(rng, period_mm=(20.0 * scale, 60.0 * scale))(
        s_mm
    )
    wire_distance = (
        preset.catheter_radius_mm
        + 0.2
        + 0.1 * (0.5 + 0.5 * _smooth_random(rng, period_mm=(10.0 * scale, 30.0 * scale))(s_mm))
    )
    # An artery crossing the vessel obliquely where it is compressed (May-Thurner), against
    # the flat side of the lumen.
    artery_r = np.where(compression > 0.25, preset.compressing_artery_radius_mm, 0.0)
    side = lumen_alpha + 0.5 * np.pi
    minor = vessel_r / np.sqrt(vessel_aspect)
    artery_dist = minor + artery_r + 0.25
    artery = artery_dist[:, None] * np.column_stack([np.cos(side), np.sin(side)])
    return _FrameGeometry(
        lumen_centre=to_catheter(shift),
        lumen_r=lumen_r,
        lumen_aspect=aspect,
        lumen_alpha=lumen_alpha + rot,
        lumen_h3=h3 + np.column_stack([np.zeros_like(rot), rot]),
        vessel_centre=to_catheter(np.zeros_like(shift)),
        vessel_r=vessel_r,
        vessel_aspect=vessel_aspect,
        vessel_alpha=vessel_alpha + rot,
        calcium=tuple(calcium),
        wire_angle=wire_angle,
        wire_distance=wire_distance,
        artery_centre=to_catheter(artery),
        artery_r=artery_r,
    )


_DENSE_PSI = np.linspace(0.0, _TWO_PI, 360, endpoint=False)


def _dense_curves(g: _FrameGeometry, frames: slice) -> tuple[np.ndarray, ...]:
    """Polar angle and distance from the catheter of dense lumen and vessel curve points.

    Vectorised over a chunk of frames: returns (lumen_angle, lumen_dist, vessel_angle,
    vessel_dist), each ndarray of shape (n, 360).
    """
    psi = _DENSE_PSI[None, :]
    out = []
    for centre, r, aspect, alpha, h3 in (
        (g.lumen_centre, g.lumen_r, g.lumen_aspect, g.lumen_alpha, g.lumen_h3),
        (g.vessel_centre, g.vessel_r, g.vessel_aspect, g.vessel_alpha, None),
    ):
        rho = _ellipse_radius(psi, r[frames, None], aspect[frames, None], alpha[frames, None])
        if h3 is not None:
            rho = rho * (1.0 + h3[frames, 0:1] * np.cos(3.0 * (psi - h3[frames, 1:2])))
        x = centre[frames, 0:1] + rho * np.cos(psi)
        y = centre[frames, 1:2] + rho * np.sin(psi)
        out += [np.arctan2(y, x), np.hypot(x, y)]
    return tuple(out)


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % _TWO_PI - np.pi


@dataclass(frozen=True)
class _Rays:
    """Per-ray boundaries of one frame, distances from the catheter in mm."""

    lumen: np.ndarray
    vessel: np.ndarray
    calcium_in: np.ndarray  # inf where no calcium
    calcium_out: np.ndarray


def _frame_rays(
    g: _FrameGeometry, k: int, dense: tuple[np.ndarray, ...], theta: np.ndarray, preset: PhantomPreset
) -> _Rays:
    """Boundaries of frame ``k`` along rays ``theta`` from its dense curves (one row of
    :func:`_dense_curves`). Curves are star-shaped about the catheter, so the polar
    angle of their points is monotonic and interpolation over one turn is exact enough."""
    l_ang, l_dist, v_ang, v_dist = dense
    t_v = np.interp(theta, v_ang, v_dist, period=_TWO_PI)
    t_l = np.interp(theta, l_ang, l_dist, period=_TWO_PI)
    t_l = np.minimum(t_l, t_v - preset.min_wall_mm)
    c_in = np.full_like(theta, np.inf)
    c_out = np.full_like(theta, np.inf)
    if any(arc[k] > 0 for arc, *_ in g.calcium):
        centre = g.lumen_centre[k]
        psi = np.arctan2(t_l * np.sin(theta) - centre[1], t_l * np.cos(theta) - centre[0])
        for arc, mid, gap, thick in g.calcium:
            if arc[k] <= 0:
                continue
            on = np.abs(_wrap(psi - mid[k])) < 0.5 * arc[k]
            inner = t_l + gap
            outer = np.minimum(t_l + gap + thick, t_v - preset.media_mm - 0.03)
            on &= outer - inner > 0.08
            c_in = np.where(on, np.minimum(c_in, inner), c_in)
            c_out = np.where(on, np.where(np.isinf(c_out), outer, np.maximum(c_out, outer)), c_out)
    return _Rays(t_l, t_v, c_in, c_out)


def _subsample(rays: _Rays, step: int) -> _Rays:
    return _Rays(rays.lumen[::step], rays.vessel[::step], rays.calcium_in[::step], rays.calcium_out[::step])


def _open_branch(rays: _Rays, theta: np.ndarray, s_mm: float, branch: tuple[float, float]) -> _Rays:
    """The rays as imaged where a side branch leaves the vessel: in its sector the wall layers
    move out by up to 3 mm, leaving blood between (raised-cosine ostium over 2 mm of pullback
    and a 60-degree sector)."""
    centre_mm, angle = branch
    along = np.clip(1.0 - abs(s_mm - centre_mm), 0.0, 1.0)  # 1 mm either side of the centre
    if along <= 0:
        return rays
    off = np.abs(_wrap(theta - angle))
    around = np.where(off < np.pi / 6, np.cos(off * 3.0) ** 2, 0.0)
    depth = (3.0 * np.sin(0.5 * np.pi * along) ** 2 * around).astype(rays.lumen.dtype)
    return _Rays(
        lumen=rays.lumen + depth,
        vessel=rays.vessel + depth,
        calcium_in=rays.calcium_in + depth,
        calcium_out=rays.calcium_out + depth,
    )


def _calcium_polygons(rays: _Rays, theta: np.ndarray) -> tuple[np.ndarray, ...]:
    """Closed polygons (inner arc, then outer arc back) of each run of calcified rays."""
    on = np.isfinite(rays.calcium_in)
    if not on.any():
        return ()
    n = len(on)
    if on.all():
        runs = [np.arange(n)]
    else:
        start = int(np.argmin(on))  # a ray without calcium: runs never wrap past it
        order = (np.arange(n) + start) % n
        runs, current = [], []
        for i in order:
            if on[i]:
                current.append(i)
            elif current:
                runs.append(np.array(current))
                current = []
        if current:
            runs.append(np.array(current))
    polys = []
    for idx in runs:
        if len(idx) < 2:
            continue
        c, s = np.cos(theta[idx]), np.sin(theta[idx])
        inner = np.column_stack([rays.calcium_in[idx] * c, rays.calcium_in[idx] * s])
        outer = np.column_stack([rays.calcium_out[idx] * c, rays.calcium_out[idx] * s])
        polys.append(np.vstack([inner, outer[::-1]]))
    return tuple(polys)


def _calcium_arc_deg(lumen: np.ndarray, polys: tuple[np.ndarray, ...]) -> float:
    """Arc subtended by the calcium polygons at the lumen centroid, degrees."""
    if not polys:
        return 0.0
    c = polygon_centroid(lumen)
    bins = np.zeros(720, dtype=bool)
    for p in polys:
        inner = p[: len(p) // 2]
        ang = np.unwrap(np.arctan2(inner[:, 1] - c[1], inner[:, 0] - c[0]))
        lo, hi = min(ang[0], ang[-1]), max(ang[0], ang[-1])
        grid = np.arange(lo, hi, _TWO_PI / 720)
        bins[(np.floor(np.mod(grid, _TWO_PI) / _TWO_PI * 720).astype(int)) % 720] = True
    return float(bins.sum() * 0.5)


def _echolucent_pool(
    rays: _Rays, theta: np.ndarray, arc_deg: float, media_mm: float, cap_mm: float = 0.06
) -> tuple[np.ndarray, np.ndarray]:
    """Inner and outer depth (mm) of a lipid pool on every ray, NaN where there is none.

    The pool is centred on the ray of thickest plaque, spans ``arc_deg`` around the catheter,
    keeps a fibrous cap of ``cap_mm`` towards the lumen and the same towards the media, and
    exists only where that leaves at least 0.08 mm of pool.
    """
    inner = rays.lumen + cap_mm
    outer = rays.vessel - media_mm - cap_mm
    room = outer - inner
    centre = theta[int(np.argmax(room))]
    on = (np.abs(_wrap(theta - centre)) < 0.5 * np.deg2rad(arc_deg)) & (room > 0.08)
    return np.where(on, inner, np.nan), np.where(on, outer, np.nan)


def _pool_polygon(pool: tuple[np.ndarray, np.ndarray], theta: np.ndarray) -> np.ndarray:
    """The pool's polygon in frame-plane mm (its longest run of rays), shape (P, 2) or (0, 2)."""
    rays = _Rays(pool[0], pool[1], np.where(np.isfinite(pool[0]), pool[0], np.inf), pool[1])
    polys = _calcium_polygons(rays, theta)
    if not polys:
        return np.zeros((0, 2))
    return max(polys, key=len)


# --------------------------------------------------------------------------- centerline


def _centerline(length_mm: float, rng: np.random.Generator, *, step_mm: float = 0.25) -> np.ndarray:
    """A smooth 3D curve of the given arc length, RAS mm, starting at a random point.

    Its tangent turns slowly (radius of curvature of tens of mm), as coronary and
    peripheral vessels do.
    """
    n = int(np.ceil(length_mm / step_mm)) + 1
    s = np.linspace(0.0, length_mm, n)
    yaw = rng.uniform(0, _TWO_PI) + 0.6 * _smooth_random(rng, period_mm=(40.0, 120.0))(s)
    pitch = 0.5 * _smooth_random(rng, period_mm=(50.0, 150.0))(s)
    tangent = np.column_stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])
    mid = 0.5 * (tangent[1:] + tangent[:-1])
    mid /= np.linalg.norm(mid, axis=1, keepdims=True)
    steps = mid * np.diff(s)[:, None]
    start = rng.uniform(-20.0, 20.0, size=3)
    return start + np.vstack([np.zeros(3), np.cumsum(steps, axis=0)])


# --------------------------------------------------------------------------- imaging


@dataclass(frozen=True)
class _Scanner:
    """Polar grid, scan-conversion maps and stationary image parts of one acquisition."""

    theta: np.ndarray  # (A,)
    depth_mm: np.ndarray  # (R,)
    index: np.ndarray  # (4, P) flat polar indices of the pixels inside the field of view
    weight: np.ndarray  # (4, P) float32
    inside: np.ndarray  # (P,) flat pixel indices
    ringdown: np.ndarray  # (A, R) float32, additive amplitude
    catheter: np.ndarray  # (R,) bool, depth inside the catheter
    overlay: np.ndarray  # (H, W) uint8, burned-in marks (0 = none)
    size_px: int
    spacing_mm: float


def _scanner(preset: PhantomPreset, size_px: int, speckle: str, rng: np.random.Generator) -> _Scanner:
    n_rays = max(128, int(np.ceil(size_px / 128.0)) * 128)
    n_depth = size_px // 2
    fov_r = 0.5 * preset.fov_mm
    dr = fov_r / n_depth
    theta = np.arange(n_rays) * (_TWO_PI / n_rays)
    depth = (np.arange(n_depth) + 0.5) * dr
    spacing = preset.fov_mm / size_px

    c = (size_px - 1) / 2.0
    rows, cols = np.mgrid[0:size_px, 0:size_px]
    x = (cols - c) * spacing
    y = (rows - c) * spacing
    r = np.hypot(x, y).ravel()
    ang = np.mod(np.arctan2(y, x).ravel(), _TWO_PI)
    inside = np.flatnonzero(r < fov_r)
    a_f = ang[inside] / _TWO_PI * n_rays
    j_f = np.clip(r[inside] / dr - 0.5, 0.0, n_depth - 1.0)
    a0 = np.floor(a_f).astype(np.int64)
    wa = (a_f - a0).astype(np.float32)
    a0 %= n_rays
    a1 = (a0 + 1) % n_rays
    j0 = np.minimum(np.floor(j_f).astype(np.int64), n_depth - 1)
    wj = (j_f - j0).astype(np.float32)
    j1 = np.minimum(j0 + 1, n_depth - 1)
    index = np.stack([a0 * n_depth + j0, a0 * n_depth + j1, a1 * n_depth + j0, a1 * n_depth + j1])
    weight = np.stack([(1 - wa) * (1 - wj), (1 - wa) * wj, wa * (1 - wj), wa * wj]).astype(np.float32)

    # Ring-down: bright decaying rings just outside the transducer, fixed from frame to frame;
    # solid-state (phased) catheters ring longer.
    cath = preset.catheter_radius_mm
    rotational = speckle == "rotational"
    ring_len = 0.08 if rotational else 0.18
    d = depth - cath
    ripple = 0.25 if rotational else 0.1
    rings = np.where(
        d >= 0, np.exp(-d / ring_len) * (1.0 - ripple + ripple * np.cos(_TWO_PI * d / 0.06)), 0.0
    )
    per_ray = 1.0 + (0.2 if rotational else 0.1) * rng.standard_normal(n_rays)
    ringdown = ((2.5 if rotational else 0.45) * per_ray[:, None] * rings[None, :]).astype(np.float32)
    if speckle == "rotational":
        sheath = np.exp(-(((depth - cath - 0.03 - 0.1) / 0.02) ** 2))  # catheter sheath echo
        ringdown += (1.2 * sheath[None, :]).astype(np.float32)

    return _Scanner(
        theta=theta,
        depth_mm=depth.astype(np.float32),
        index=index,
        weight=weight,
        inside=inside,
        ringdown=ringdown,
        catheter=depth < cath,
        overlay=_overlay(size_px, spacing, rng),
        size_px=size_px,
        spacing_mm=spacing,
    )


def _overlay(size_px: int, spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Burned-in vendor marks: text-like blocks, a scale bar and 1 mm depth dots."""
    img = np.zeros((size_px, size_px), dtype=np.uint8)
    u = max(1, size_px // 128)  # one "character pixel"
    # Three lines of text-like blocks in the top-left corner.
    for line in range(3):
        col = 2 * u
        row = 2 * u + line * 5 * u
        for _ in range(int(rng.integers(4, 8))):
            w = int(rng.integers(2, 5)) * u
            img[row : row + 3 * u, col : col + w] = 200
            img[row + u : row + 2 * u, col + u : col + w - u : 2 * u] = 0
            col += w + u
            if col > size_px // 4:
                break
    # Scale bar with ticks in the bottom-right corner (1 mm).
    mm_px = max(2, int(round(1.0 / spacing_mm)))
    r0 = size_px - 4 * u
    c1 = size_px - 3 * u
    c0 = max(c1 - mm_px, size_px - size_px // 4)
    img[r0 : r0 + u, c0:c1] = 220
    img[r0 - 2 * u : r0 + u, c0 : c0 + u] = 220
    img[r0 - 2 * u : r0 + u, c1 - u : c1] = 220
    # Depth dots every mm along the upward axis, as on vendor screens.
    c = size_px // 2
    for k in range(1, int(0.5 * size_px * spacing_mm)):
        r = int(round((size_px - 1) / 2.0 - k / spacing_mm))
        if r < 0:
            break
        img[r : r + u, c : c + u] = 170
    return img


def _smooth_field(z: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """A complex field (..., A, R) smoothed by a Gaussian beam of ``sigma`` (rays, depth cells)."""
    sig = (0.0,) * (z.ndim - 2) + tuple(sigma)
    mode = ("nearest",) * (z.ndim - 2) + ("wrap", "nearest")
    re = gaussian_filter(z.real, sig, mode=mode)
    im = gaussian_filter(z.imag, sig, mode=mode)
    return (re + 1j * im).astype(np.complex64)


def _psf_sigma(look: Appearance | None, n_rays: int, depth_step_mm: float) -> tuple[float, float] | None:
    """Gaussian sigma (rays, depth cells) of the beam an appearance asks for, None for none."""
    if look is None or (look.lateral_speckle_deg <= 0 and look.axial_speckle_mm <= 0):
        return None
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0))
    return (
        look.lateral_speckle_deg / fwhm * n_rays / 360.0,
        look.axial_speckle_mm / fwhm / depth_step_mm,
    )


CONSOLE_RED = (146, 19, 10)
"""Colour of the console's field-of-view ring and catheter disc (as on the public
ivus_collector screen exports)."""


def _console_overlay(
    size_px: int, spacing_mm: float, catheter_radius_mm: float, offset_px: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """A console screen export's burned-in overlay: colours (H, W, 3) uint8 and mask (H, W).

    A dark-red ring over the edge of the field of view and a dark-red disc over the catheter
    and its ring-down, a red banner with white text at the bottom, yellow dots every 1 mm
    along both axes through the catheter, a dashed green measurement box with a text line,
    and a yellow caliper (two cyan "+" markers joined by a dotted line). Ring, disc and dots
    are centred on the catheter, ``offset_px`` (row, column) from the image centre.
    """
    rgb = np.zeros((size_px, size_px, 3), dtype=np.uint8)
    mask = np.zeros((size_px, size_px), dtype=bool)
    u = max(1, int(round(size_px / 240.0)))  # one overlay "pixel" (2 at 480 px)
    c = (size_px - 1) / 2.0
    cr, cc = c + offset_px[0], c + offset_px[1]
    rows, cols = np.mgrid[0:size_px, 0:size_px]
    r = np.hypot(rows - cr, cols - cc)

    def paint(where: np.ndarray, colour: tuple[int, int, int]) -> None:
        rgb[where] = colour
        mask[where] = True

    paint((r >= size_px / 2.0 - 8 * u) & (r < size_px / 2.0 + 2 * u), CONSOLE_RED)
    paint(r <= (catheter_radius_mm + 0.2) / spacing_mm, CONSOLE_RED)
    # Banner with text-like white strokes.
    b0, b1 = size_px - 14 * u, size_px - 5 * u
    h0, h1 = int(c - 42 * u), int(c + 42 * u)
    paint((rows >= b0) & (rows < b1) & (cols >= h0) & (cols < h1), (190, 40, 40))
    text = (rows >= b0 + 2 * u) & (rows < b1 - 2 * u) & (cols >= h0 + 3 * u) & (cols < h1 - 3 * u)
    text &= ((cols - h0) // u) % 4 != 3
    paint(text, (235, 225, 225))
    # Calibration dots every mm along both axes through the catheter.
    mm_px = 1.0 / spacing_mm
    for k in range(-int(size_px / mm_px), int(size_px / mm_px) + 1):
        if k == 0:
            continue
        near = [int(np.floor(v + 0.5)) for v in (cr + k * mm_px, cc, cr, cc + k * mm_px)]
        for rr, cl in ((near[0], near[1]), (near[2], near[3])):
            if 0 <= rr < size_px and 0 <= cl < size_px and abs(k) * mm_px < c:
                paint((np.abs(rows - rr) <= u // 2) & (np.abs(cols - cl) <= u // 2), (250, 240, 30))
    # Measurement box (dashed) and its text line, upper left.
    y0, y1, x0, x1 = int(0.18 * size_px), int(0.32 * size_px), int(0.16 * size_px), int(0.36 * size_px)
    dash = ((rows + cols) // (3 * u)) % 2 == 0
    edge = ((np.abs(rows - y0) < u) | (np.abs(rows - y1) < u)) & (cols >= x0) & (cols <= x1)
    edge |= ((np.abs(cols - x0) < u) | (np.abs(cols - x1) < u)) & (rows >= y0) & (rows <= y1)
    paint(edge & dash, (40, 220, 60))
    label = (rows >= y0 - 7 * u) & (rows < y0 - 3 * u) & (cols >= x0) & (cols < x0 + 40 * u)
    paint(label & (((cols - x0) // u) % 3 != 2), (40, 220, 60))
    # Caliper: two "+" markers joined by a dotted line, lower right.
    m0 = (int(0.66 * size_px), int(0.62 * size_px))
    m1 = (int(0.78 * size_px), int(0.80 * size_px))
    for mr, mc in (m0, m1):
        plus = ((np.abs(rows - mr) < u) & (np.abs(cols - mc) <= 4 * u)) | (
            (np.abs(cols - mc) < u) & (np.abs(rows - mr) <= 4 * u)
        )
        paint(plus, (40, 220, 230))
    n = int(np.hypot(m1[0] - m0[0], m1[1] - m0[1]) / (3 * u))
    for t in np.linspace(0.15, 0.85, max(n, 2)):
        pr, pc = int(round(m0[0] + t * (m1[0] - m0[0]))), int(round(m0[1] + t * (m1[1] - m0[1])))
        paint((np.abs(rows - pr) <= u // 2) & (np.abs(cols - pc) <= u // 2), (250, 240, 30))
    return rgb, mask


def _shifted(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The image moved by (rows, columns), zero where nothing moved in."""
    out = np.zeros_like(image)
    dy, dx = offset
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luminance of uint8 RGB, uint8 (what a grey reader of the export sees)."""
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


class _TissueSpeckle:
    """Tissue speckle fixed to the anatomy: complex slices every ``step_mm`` of arc length.

    Slice ``i`` is drawn from a generator seeded by (seed, i), so the pattern at a given
    arc length is the same whatever the frame order; between slices the complex fields are
    interpolated, which keeps Rayleigh statistics. A smooth "mottle" field (fat lobules,
    fibrous strands) that modulates the tissue echogenicity has its own, sparser slices
    (every ``mottle_step_mm``): its structures are larger along the vessel too.
    """

    POOL_SIZE = 48

    def __init__(
        self,
        seed: int,
        shape: tuple[int, int],
        *,
        step_mm: float,
        coarse: bool,
        depth_step_mm: float,
        blob_mm: float,
        mottle_step_mm: float = 0.5,
        psf_sigma: tuple[float, float] | None = None,
    ) -> None:
        self.seed = seed
        self.shape = shape
        self.step_mm = step_mm
        self.coarse = coarse
        self.depth_step_mm = depth_step_mm
        self.blob_mm = blob_mm
        self.mottle_step_mm = mottle_step_mm
        self.psf_sigma = psf_sigma
        self.speckle_cache: dict[int, np.ndarray] = {}
        self.pool: np.ndarray | None = None
        self.mottle_cache: dict[int, np.ndarray] = {}

    @staticmethod
    def _remember(cache: dict[int, np.ndarray], i: int, value: np.ndarray) -> np.ndarray:
        if len(cache) > 16:  # frames move back and forth by a few slices only
            for key in sorted(cache, key=lambda j: abs(j - i))[8:]:
                del cache[key]
        cache[i] = value
        return value

    def _pool(self) -> np.ndarray:
        """A few independent complex fields that slices are cut from (cheaper than one each)."""
        if self.pool is None:
            rng = np.random.default_rng([self.seed, 7])
            shape = (self.POOL_SIZE, *self.shape)
            z = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
                shape, dtype=np.float32
            )
            # Axial correlation of a finite pulse; coarser for 20 MHz.
            z = z + 0.6 * np.roll(z, 1, axis=2)
            if self.coarse:
                z = z + np.roll(z, 1, axis=2) + 0.8 * np.roll(z, 1, axis=1)
            if self.psf_sigma is not None:
                z = _smooth_field(z, self.psf_sigma)
            self.pool = (z / np.sqrt(np.mean(np.abs(z) ** 2))).astype(np.complex64)
        return self.pool

    def _speckle(self, i: int) -> np.ndarray:
        z = self.speckle_cache.get(i)
        if z is None:
            # Slice i: a pool field chosen and turned by a generator seeded by (seed, i).
            rng = np.random.default_rng([self.seed, 8, i + 1_000_000])
            k, turn = int(rng.integers(self.POOL_SIZE)), int(rng.integers(self.shape[0]))
            z = self._remember(self.speckle_cache, i, np.roll(self._pool()[k], turn, axis=0))
        return z

    def _mottle(self, i: int) -> np.ndarray:
        m = self.mottle_cache.get(i)
        if m is None:
            rng = np.random.default_rng([self.seed, 9, i + 1_000_000])
            # Blobs of ~blob_mm in depth and ~1/30 turn around.
            m = gaussian_filter(
                rng.standard_normal(self.shape, dtype=np.float32),
                sigma=(self.shape[0] / 60.0, self.blob_mm / self.depth_step_mm),
                mode=("wrap", "nearest"),
            )
            m = self._remember(self.mottle_cache, i, (m / (m.std() + 1e-6)).astype(np.float32))
        return m

    def __call__(
        self, s_mm: float, fresh: np.ndarray | None = None, share: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speckle amplitude (mean square 1) and mottle (zero mean, unit s.d.), each (A, R).

        ``fresh``: a complex field of mean square 1 that takes ``share`` of the speckle power
        (speckle renewed from frame to frame)."""
        x = s_mm / self.step_mm
        i = int(np.floor(x))
        f = np.float32(x - i)
        norm = np.float32(1.0 / np.sqrt((1 - f) ** 2 + f**2))
        if fresh is None:
            speckle = np.abs((1 - f) * self._speckle(i) + f * self._speckle(i + 1)) * norm
        else:
            z = ((1 - f) * self._speckle(i) + f * self._speckle(i + 1)) * norm
            speckle = np.abs(np.float32(np.sqrt(1.0 - share)) * z + np.float32(np.sqrt(share)) * fresh)
        x = s_mm / self.mottle_step_mm
        i = int(np.floor(x))
        f = np.float32(x - i)
        norm = np.float32(1.0 / np.sqrt((1 - f) ** 2 + f**2))
        mottle = ((1 - f) * self._mottle(i) + f * self._mottle(i + 1)) * norm
        return speckle, mottle


def _render_polar(
    rays: _Rays,
    scanner: _Scanner,
    tissue: tuple[np.ndarray, np.ndarray],
    blood: np.ndarray,
    wire: tuple[float, float],
    preset: PhantomPreset,
    speckle: str,
    texture: np.ndarray,
    artery: tuple[np.ndarray, float] | None = None,
    look: Appearance | None = None,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Echo amplitude on the polar grid, ndarray of shape (A, R), float32.

    Layers along each ray: catheter, blood, intima/plaque, media (dark), adventitia
    (bright), periadventitial tissue fading with depth; then calcium with its shadow, the
    guidewire with its shadow wedge, attenuation and the catheter ring-down. ``look`` scales
    the layers (see ``Appearance``); ``pool`` is the lipid pool's inner and outer depth on
    every ray (NaN where none).
    """
    speck, mottle = tissue
    r = scanner.depth_mm[None, :]
    tl = rays.lumen[:, None].astype(np.float32)
    tv = rays.vessel[:, None].astype(np.float32)
    edge = np.float32(0.05)

    def ramp(x, w):
        return np.clip(x / w + 0.5, 0.0, 1.0)

    plaque = np.float32(0.4) * texture[:, None] * np.exp(np.float32(0.2) * mottle)
    media = np.float32(0.05)
    adv = np.float32(0.9) * np.exp(np.float32(0.25) * mottle)
    if look is not None:
        plaque = plaque * np.float32(look.plaque_gain)
        adv = adv * np.float32(look.adventitia_gain)
        if look.media_level is not None:
            media = np.float32(look.media_level)
    if preset.media_mm <= 0:  # vein wall: one thin echogenic layer
        media = adv
    depth_out = np.maximum(r - tv - preset.adventitia_mm, 0.0)
    peri = (
        np.float32(0.4) * np.exp(-depth_out / np.float32(preset.penetration_mm)) + np.float32(0.04)
    ) * np.exp(np.float32(0.55) * mottle)
    echo = (
        plaque
        + (media - plaque) * ramp(r - (tv - preset.media_mm), edge)
        + (adv - media) * ramp(r - tv, edge)
        + (peri - adv) * ramp(r - tv - preset.adventitia_mm, 3 * edge)
    )
    blood_level = np.float32(0.05 if speckle == "rotational" else 0.015)
    if look is not None:
        blood_level = blood_level * np.float32(look.blood_gain)
    if pool is not None and np.isfinite(pool[0]).any():
        # Lipid pool: echolucent, darker than blood, behind its fibrous cap.
        p_in = np.nan_to_num(pool[0], nan=np.inf)[:, None].astype(np.float32)
        p_out = np.nan_to_num(pool[1], nan=-np.inf)[:, None].astype(np.float32)
        inside = ramp(r - p_in, edge / 2) * ramp(p_out - r, edge / 2)
        lipid = blood_level * np.float32(look.echolucent_level if look is not None else 0.35)
        echo = echo * (1 - inside) + lipid * inside
    w = ramp(r - tl, edge)
    amp = blood_level * blood * (1 - w) + echo * speck * w

    if np.isfinite(rays.calcium_in).any():
        on = np.isfinite(rays.calcium_in)
        d = r[0][None, :] - rays.calcium_in[on][:, None].astype(np.float32)
        lead = np.float32(0.05)
        shadow = 1.0 - 0.97 * ramp(d - 1.5 * lead, lead)
        bright = np.float32(3.0) * np.exp(-((d / lead) ** 2)) * (0.7 + 0.3 * speck[on])
        amp[on] = amp[on] * shadow + bright

    if artery is not None:
        # Extrinsic artery: dark blood inside a bright wall, along the rays that cross it.
        centre, radius = artery
        uc = np.cos(scanner.theta) * centre[0] + np.sin(scanner.theta) * centre[1]
        disc = uc**2 - float(centre @ centre) + radius**2
        hit = (disc > 0) & (uc > 0)
        if hit.any():
            root = np.sqrt(disc[hit])
            t0 = (uc[hit] - root)[:, None].astype(np.float32)
            t1 = (uc[hit] + root)[:, None].astype(np.float32)
            rr = r[0][None, :]
            inside = ramp(rr - t0, edge) * ramp(t1 - rr, edge)
            rim = np.float32(0.9) * np.exp(-(((rr - t0) / 0.25) ** 2)) + np.float32(0.5) * np.exp(
                -(((rr - t1) / 0.25) ** 2)
            )
            lumen_echo = blood_level * np.float32(0.6) * blood[hit]
            amp[hit] = amp[hit] * (1 - inside) + lumen_echo * inside + rim * speck[hit]

    # Guidewire: a bright spot in the lumen with a shadow wedge behind it.
    angle, dist = wire
    # A wire lies in the lumen: keep it off the border where the lumen is tight.
    ray = int(np.round(np.mod(angle, _TWO_PI) / _TWO_PI * len(scanner.theta))) % len(scanner.theta)
    dist = min(dist, float(rays.lumen[ray]) - 0.12)
    lateral = np.abs(_wrap(scanner.theta - angle)) * dist
    near = lateral < 0.35
    if near.any():
        lat = lateral[near][:, None].astype(np.float32)
        d = r - np.float32(dist)
        spot = np.float32(4.0) * np.exp(-((d / 0.05) ** 2) - (lat / 0.12) ** 2)
        reverb = np.float32(0.4) * np.exp(-(((d - 0.3) / 0.04) ** 2) - (lat / 0.1) ** 2)
        wedge = 1.0 - 0.95 * ramp(d - 0.08, 0.04) * np.exp(-((lat / 0.16) ** 4))
        amp[near] = amp[near] * wedge + spot + reverb

    # Attenuation in tissue (blood barely attenuates), then the catheter and its ring-down.
    amp *= np.exp(-np.float32(preset.attenuation_per_mm) * np.maximum(r - tl, 0.0))
    amp += scanner.ringdown if look is None else scanner.ringdown * np.float32(look.ringdown_gain)
    amp[:, scanner.catheter] = 0.002
    return amp


def _log_compress(amp: np.ndarray) -> np.ndarray:
    """Log compression to 0..255 over a 45 dB dynamic range (white at amplitude 1.4)."""
    db = 20.0 * np.log10(amp + np.float32(1e-4))
    return np.clip((db + np.float32(42.0)) * np.float32(255.0 / 45.0), 0.0, 255.0)


def _scan_convert(polar: np.ndarray, scanner: _Scanner) -> np.ndarray:
    flat = polar.ravel()
    idx, w = scanner.index, scanner.weight
    values = flat[idx[0]] * w[0] + flat[idx[1]] * w[1] + flat[idx[2]] * w[2] + flat[idx[3]] * w[3]
    out = np.zeros(scanner.size_px * scanner.size_px, dtype=np.uint8)
    out[scanner.inside] = (values + 0.5).astype(np.uint8)
    out = out.reshape(scanner.size_px, scanner.size_px)
    np.maximum(out, scanner.overlay, out=out)
    return out


def _draw_guide_catheter(
    frames: np.ndarray,
    scanner: _Scanner,
    rng: np.random.Generator,
    *,
    offset: tuple[int, int] = (0, 0),
    console: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Frames inside a 6 F guiding catheter (inner radius 0.95 mm), in place.

    The guide's wall is a bright, thin, speckled ring around the imaging catheter (which lies
    off the guide's axis); it reflects most of the beam, so the vessel beyond is faint.
    ``offset`` is where the catheter sits from the image centre (row, col) and ``console``
    the grey console overlay and its pixels, drawn again on top.
    """
    size = scanner.size_px
    cr, cc = (size - 1) / 2.0 + offset[0], (size - 1) / 2.0 + offset[1]
    rows, cols = np.mgrid[0:size, 0:size]
    angle = rng.uniform(0.0, _TWO_PI)
    off = 0.2 / scanner.spacing_mm  # imaging catheter 0.2 mm off the guide's axis
    r_mm = np.hypot(rows - cr - off * np.sin(angle), cols - cc - off * np.cos(angle)) * scanner.spacing_mm
    wall = np.exp(-(((r_mm - 1.0) / 0.05) ** 2)).astype(np.float32)
    beyond = np.clip((r_mm - 1.0) / 0.1, 0.0, 1.0).astype(np.float32)
    fov = np.zeros(size * size, np.uint8)
    fov[scanner.inside] = 1
    fov = fov.reshape(size, size)
    if offset != (0, 0):
        fov = _shifted(fov, offset)
    for k in range(len(frames)):
        f = frames[k].astype(np.float32)
        speck = rng.rayleigh(1.0, size=(size, size)).astype(np.float32)
        f = f * (1.0 - 0.75 * beyond) + 210.0 * wall * np.clip(speck, 0.3, 1.6)
        out = np.where(fov > 0, np.clip(f + 0.5, 0, 255), 0).astype(np.uint8)
        np.maximum(out, scanner.overlay, out=out)
        if console is not None:
            out[console[1]] = console[0][console[1]]
        frames[k] = out


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

    rng = np.random.default_rng(seed)
    fps = preset.frame_rate_hz
    speed = preset.pullback_speed_mm_s
    n_still = int(round(max(stationary_start_s, 0.0) * fps))
    n = max(2, int(round(length / speed * fps))) + n_still
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
    s = s - s[0]

    geometry = _frame_geometry(
        preset, s, cycle, length, rng, wedged=look is not None and look.wedged_catheter
    )
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
        console_grey = _luminance(console[0])
    centerline_pts = _centerline(float(s.max()) + 10.0, rng)
    texture_fn = _smooth_random(rng, period_mm=(3.0, 12.0))
    texture_phase = rng.uniform(0, _TWO_PI, size=3)

    tissue = _TissueSpeckle(
        seed,
        (len(scanner.theta), len(scanner.depth_mm)),
        # the elevational beam width sets how far along the vessel tissue speckle stays alike:
        # ~0.25 mm at 40-60 MHz, ~0.4 mm for 20 MHz phased arrays
        step_mm=0.4 if speckle == "phased" else 0.25,
        coarse=speckle == "phased",
        depth_step_mm=float(scanner.depth_mm[1] - scanner.depth_mm[0]),
        blob_mm=0.02 * preset.fov_mm,
        psf_sigma=_psf_sigma(look, len(scanner.theta), float(scanner.depth_mm[1] - scanner.depth_mm[0])),
    )
    blood_psf = _psf_sigma(look, len(scanner.theta), float(scanner.depth_mm[1] - scanner.depth_mm[0]))
    blood_rho = 0.0 if look is None else float(look.blood_correlation)
    blood_field = None
    pools = [] if look is not None and look.echolucent_arc_deg > 0 else None
    # Truth rays are every ``step``-th imaging ray: the same boundaries, whatever size_px.
    step = len(scanner.theta) // TRUTH_POINTS
    truth_theta = scanner.theta[::step]
    ed_set = set(ed_frames.tolist())
    # its own generator: the same seed gives the same pullback with or without the branch
    branch = (0.25 * length, _TWO_PI * np.random.default_rng([seed, 23]).uniform()) if side_branch else None
    frames = np.empty((n, size, size), dtype=np.uint8)
    contours = []
    chunk = 256
    for k in range(n):
        if cancel is not None and cancel.is_set():
            raise IVUSCancelled("phantom generation cancelled")
        if k % chunk == 0:
            dense = _dense_curves(geometry, slice(k, min(n, k + chunk)))
        rays = _frame_rays(geometry, k, tuple(d[k % chunk] for d in dense), scanner.theta, preset)
        truth_rays = _subsample(rays, step)
        seen = rays if branch is None else _open_branch(rays, scanner.theta, float(s[k]), branch)
        lumen = np.column_stack(
            [truth_rays.lumen * np.cos(truth_theta), truth_rays.lumen * np.sin(truth_theta)]
        )
        vessel = np.column_stack(
            [truth_rays.vessel * np.cos(truth_theta), truth_rays.vessel * np.sin(truth_theta)]
        )
        calcium = _calcium_polygons(truth_rays, truth_theta)
        contours.append(
            FrameContours(
                index=k,
                lumen=lumen,
                vessel=vessel,
                calcium=calcium,
                phase="ED" if k in ed_set else None,
                z_mm=float(s[k]),
                calcium_arc_deg=_calcium_arc_deg(lumen, calcium),
            )
        )

        frame_rng = np.random.default_rng([seed, 11, k])
        if blood_psf is None and blood_rho == 0.0:
            blood = frame_rng.rayleigh(
                np.float32(0.8), size=(len(scanner.theta), len(scanner.depth_mm))
            ).astype(np.float32)
        else:
            blood, blood_field = _blood_speckle(frame_rng, scanner, blood_psf, blood_rho, blood_field)
        if look is not None and look.tissue_renewal > 0:
            fresh = _fresh_field(frame_rng, blood.shape, blood_psf)
            speckle_now = tissue(float(s[k]), fresh, look.tissue_renewal)
        else:
            speckle_now = tissue(float(s[k]))
        pool = None
        if pools is not None:
            pool = _echolucent_pool(seen, scanner.theta, look.echolucent_arc_deg, preset.media_mm)
            pools.append(_pool_polygon((pool[0][::step], pool[1][::step]), truth_theta))
        # Plaque echogenicity varies slowly around and along the vessel (fibrous vs. lipid).
        texture = 1.0 + 0.3 * np.sin(scanner.theta * 2 + texture_phase[0] + 2 * texture_fn(s[k])) * np.cos(
            scanner.theta * 3 + texture_phase[1]
        )
        amp = _render_polar(
            seen,
            scanner,
            speckle_now,
            blood,
            (float(geometry.wire_angle[k]), float(geometry.wire_distance[k])),
            preset,
            speckle,
            texture.astype(np.float32),
            (geometry.artery_centre[k], float(geometry.artery_r[k])) if geometry.artery_r[k] > 0 else None,
            look,
            pool,
        )
        frames[k] = _scan_convert(_log_compress(amp), scanner)
        if offset != (0, 0):
            frames[k] = _shifted(frames[k], offset)
        if console is not None:
            frames[k][console[1]] = console_grey[console[1]]
        if progress is not None and (k % 50 == 0 or k == n - 1):
            progress((k + 1) / n, f"phantom frame {k + 1}/{n}")

    guide_start = None
    if guide_catheter_mm > 0:
        inside_guide = np.flatnonzero(nominal >= length - guide_catheter_mm)
        if inside_guide.size:
            guide_start = int(inside_guide[0])
            _draw_guide_catheter(
                frames[guide_start:],
                scanner,
                np.random.default_rng([seed, 29]),
                offset=offset,
                console=None if console is None else (console_grey, console[1]),
            )

    centre = ((size - 1) / 2.0 + offset[0], (size - 1) / 2.0 + offset[1])
    spacing = (scanner.spacing_mm, scanner.spacing_mm)
    src = f"phantom preset {preset.name} (seed {seed})"
    pullback = Pullback(
        frames=frames,
        pixel_spacing_mm=spacing,
        frame_times_s=t,
        pullback_speed_mm_s=speed,
        acquisition="motor",
        catheter_center_px=centre,
        source={"path": f"phantom:{preset.name}", "sop_class_uid": "", "vendor": "IVUSReconstruct phantom"},
        provenance={
            "n_frames": Valued(n, src),
            "frame_times_s": Valued(t, src),
            "pixel_spacing_mm": Valued(spacing, src),
            "pullback_speed_mm_s": Valued(speed, src),
            "acquisition": Valued("motor", src),
        },
    )
    cl_s = np.linspace(0.0, float(s.max()) + 10.0, len(centerline_pts))
    eq_r = np.interp(cl_s, s[np.argsort(s)], geometry.lumen_r[np.argsort(s)])
    centerline = Centerline(points_ras_mm=centerline_pts, radius_mm=eq_r, source=f"phantom:{preset.name}")
    truth = ContourSet(frames=tuple(contours), pixel_spacing_mm=spacing, catheter_center_px=centre)
    return Phantom(
        preset=preset.name,
        pullback=pullback,
        centerline=centerline,
        truth=truth,
        true_arc_length_mm=s,
        ed_frames=ed_frames,
        heart_rate_bpm=rate,
        speckle=speckle,
        cardiac_phase=phase,
        seed=int(seed),
        side_branch_mm=None if branch is None else float(branch[0]),
        appearance=appearance,
        echolucent=None if pools is None else tuple(pools),
        console_overlay=console,
        motion_start_frame=n_still,
        guide_start_frame=guide_start,
    )


def _check_appearance(look: Appearance | None) -> Appearance | None:
    """The appearance, or IVUSInputError naming the first field out of range."""
    if look is None:
        return None
    if not isinstance(look, Appearance):
        raise IVUSInputError(f"appearance: {type(look).__name__} is not an Appearance; pass Appearance(...)")
    checks = (
        ("blood_gain", look.blood_gain > 0, "a positive factor"),
        ("plaque_gain", look.plaque_gain > 0, "a positive factor"),
        ("adventitia_gain", look.adventitia_gain > 0, "a positive factor"),
        ("media_level", look.media_level is None or look.media_level > 0, "a positive amplitude"),
        ("media_mm", look.media_mm is None or 0 <= look.media_mm <= 1.0, "a thickness in [0, 1] mm"),
        ("lateral_speckle_deg", 0 <= look.lateral_speckle_deg <= 30, "degrees in [0, 30]"),
        ("axial_speckle_mm", 0 <= look.axial_speckle_mm <= 0.5, "mm in [0, 0.5]"),
        ("blood_correlation", 0 <= look.blood_correlation < 1, "a value in [0, 1)"),
        ("tissue_renewal", 0 <= look.tissue_renewal <= 1, "a share in [0, 1]"),
        ("ringdown_gain", look.ringdown_gain >= 0, "a factor >= 0"),
        ("echolucent_arc_deg", 0 <= look.echolucent_arc_deg <= 360, "degrees in [0, 360]"),
        ("echolucent_level", look.echolucent_level > 0, "a positive fraction of the blood echo"),
    )
    for name, ok, what in checks:
        if not ok:
            raise IVUSInputError(f"appearance.{name}: {getattr(look, name)!r} is out of range; use {what}")
    return look


def _fresh_field(
    rng: np.random.Generator, shape: tuple[int, int], psf: tuple[float, float] | None
) -> np.ndarray:
    """A complex Gaussian field of mean square 1, smoothed by the beam ``psf``."""
    z = (
        rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32)
    ).astype(np.complex64)
    if psf is not None:
        z = _smooth_field(z, psf)
    return z * np.float32(1.0 / np.sqrt(np.mean(np.abs(z) ** 2)))


def _blood_speckle(
    rng: np.random.Generator,
    scanner: _Scanner,
    psf: tuple[float, float] | None,
    rho: float,
    previous: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blood speckle amplitude (A, R) of Rayleigh scale 0.8 (mean 1), and its complex field.

    The field is smoothed by the beam ``psf`` and keeps a correlation ``rho`` with the
    previous frame's field (blood moves a fraction of a speckle between frames)."""
    z = _fresh_field(rng, (len(scanner.theta), len(scanner.depth_mm)), psf) * np.float32(0.8 * np.sqrt(2.0))
    if rho > 0 and previous is not None:
        z = (np.float32(rho) * previous + np.float32(np.sqrt(1.0 - rho**2)) * z).astype(np.complex64)
    return np.abs(z).astype(np.float32), z


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
    from .metrics import MetricParams

    return MetricParams(vein_segment="common_iliac") if preset == "iliac-vein" else MetricParams()


def truth_metrics(phantom: Phantom, params=None):
    """Ground-truth metrics: the true contours of the end-diastolic frames (every frame when the
    phantom has no cardiac rhythm) at their true arc lengths, in arc-length order (breathing
    moves ungated frames back and forth).

    Returns
    -------
    Metrics
    """
    from .metrics import compute_metrics

    truth = phantom.truth
    keep = set(int(i) for i in (phantom.ed_frames if len(phantom.ed_frames) else truth.indices))
    frames = [f for f in truth.frames if f.index in keep]
    arc = np.asarray(phantom.true_arc_length_mm, dtype=float)[[f.index for f in frames]]
    order = np.argsort(arc, kind="stable")
    contours = replace(truth, frames=tuple(frames[i] for i in order))
    return compute_metrics(contours, arc[order], params=params or metric_params_for(phantom.preset))
