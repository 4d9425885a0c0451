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
    "Phantom",
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
    motion_start_frame: int = 0
    guide_start_frame: int | None = None


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
) -> _FrameGeometry:
    """Shape parameters of every frame from its true arc length and its motion cycle value."""
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
    cath_room = np.maximum(lumen_min_r - preset.catheter_radius_mm - 0.15, 0.0)
    cath_frac = 0.4 + 0.25 * _smooth_random(rng, period_mm=(15.0 * scale, 50.0 * scale))(s_mm)
    cath_dir = np.pi * _smooth_random(rng, period_mm=(30.0 * scale, 90.0 * scale))(s_mm)
    cath_off = (cath_frac * cath_room)[:, None] * np.column_stack([np.cos(cath_dir), np.sin(cath_dir)])
    catheter = shift + cath_off

    # Motion with the cycle: in-plane translation and rotation of the anatomy about the catheter.
    motion_dir = rng.uniform(0.0, _TWO_PI)
    translation = (
        preset.inplane_motion_mm * cycle[:, None] * np.array([np.cos(motion_dir), np.sin(motion_dir)])
    )
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
    ) -> None:
        self.seed = seed
        self.shape = shape
        self.step_mm = step_mm
        self.coarse = coarse
        self.depth_step_mm = depth_step_mm
        self.blob_mm = blob_mm
        self.mottle_step_mm = mottle_step_mm
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

    def __call__(self, s_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Speckle amplitude (mean square 1) and mottle (zero mean, unit s.d.), each (A, R)."""
        x = s_mm / self.step_mm
        i = int(np.floor(x))
        f = np.float32(x - i)
        norm = np.float32(1.0 / np.sqrt((1 - f) ** 2 + f**2))
        speckle = np.abs((1 - f) * self._speckle(i) + f * self._speckle(i + 1)) * norm
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
) -> np.ndarray:
    """Echo amplitude on the polar grid, ndarray of shape (A, R), float32.

    Layers along each ray: catheter, blood, intima/plaque, media (dark), adventitia
    (bright), periadventitial tissue fading with depth; then calcium with its shadow, the
    guidewire with its shadow wedge, attenuation and the catheter ring-down.
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
    amp += scanner.ringdown
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


def _draw_guide_catheter(frames: np.ndarray, scanner: _Scanner, rng: np.random.Generator) -> None:
    """Frames inside a 6 F guiding catheter (inner radius 0.95 mm), in place.

    The guide's wall is a bright, thin, speckled ring around the imaging catheter (which lies
    off the guide's axis); it reflects most of the beam, so the vessel beyond is faint.
    """
    size = scanner.size_px
    c = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size]
    angle = rng.uniform(0.0, _TWO_PI)
    off = 0.2 / scanner.spacing_mm  # imaging catheter 0.2 mm off the guide's axis
    r_mm = np.hypot(rows - c - off * np.sin(angle), cols - c - off * np.cos(angle)) * scanner.spacing_mm
    wall = np.exp(-(((r_mm - 1.0) / 0.05) ** 2)).astype(np.float32)
    beyond = np.clip((r_mm - 1.0) / 0.1, 0.0, 1.0).astype(np.float32)
    fov = np.zeros(size * size, bool)
    fov[scanner.inside] = True
    fov = fov.reshape(size, size)
    for k in range(len(frames)):
        f = frames[k].astype(np.float32)
        speck = rng.rayleigh(1.0, size=(size, size)).astype(np.float32)
        f = f * (1.0 - 0.75 * beyond) + 210.0 * wall * np.clip(speck, 0.3, 1.6)
        out = np.where(fov, np.clip(f + 0.5, 0, 255), 0).astype(np.uint8)
        frames[k] = np.maximum(out, scanner.overlay)


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

    Returns
    -------
    Phantom
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise IVUSInputError(
                f"--preset: unknown phantom preset {preset!r}; use one of {', '.join(sorted(PRESETS))}"
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

    geometry = _frame_geometry(preset, s, cycle, length, rng)
    scanner = _scanner(preset, size, speckle, rng)
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
    )
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
        blood = frame_rng.rayleigh(np.float32(0.8), size=(len(scanner.theta), len(scanner.depth_mm))).astype(
            np.float32
        )
        # Plaque echogenicity varies slowly around and along the vessel (fibrous vs. lipid).
        texture = 1.0 + 0.3 * np.sin(scanner.theta * 2 + texture_phase[0] + 2 * texture_fn(s[k])) * np.cos(
            scanner.theta * 3 + texture_phase[1]
        )
        amp = _render_polar(
            seen,
            scanner,
            tissue(float(s[k])),
            blood,
            (float(geometry.wire_angle[k]), float(geometry.wire_distance[k])),
            preset,
            speckle,
            texture.astype(np.float32),
            (geometry.artery_centre[k], float(geometry.artery_r[k])) if geometry.artery_r[k] > 0 else None,
        )
        frames[k] = _scan_convert(_log_compress(amp), scanner)
        if progress is not None and (k % 50 == 0 or k == n - 1):
            progress((k + 1) / n, f"phantom frame {k + 1}/{n}")

    guide_start = None
    if guide_catheter_mm > 0:
        inside_guide = np.flatnonzero(nominal >= length - guide_catheter_mm)
        if inside_guide.size:
            guide_start = int(inside_guide[0])
            _draw_guide_catheter(frames[guide_start:], scanner, np.random.default_rng([seed, 29]))

    centre = ((size - 1) / 2.0, (size - 1) / 2.0)
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
        motion_start_frame=n_still,
        guide_start_frame=guide_start,
    )


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
