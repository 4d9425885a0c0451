"""Phantom anatomy and motion: cardiac / respiratory cycles, the vessel's lumen, EEM, plaque,
calcium and side-branch geometry along the true arc length, the rays of every frame, and the
centerline (internal to :mod:`IVUSReconstructLib.phantom`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import polygon_centroid
from .presets import PhantomPreset

_TWO_PI = 2.0 * np.pi


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
