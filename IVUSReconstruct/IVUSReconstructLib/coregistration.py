"""Co-registration: where each IVUS frame sits on the centerline.

The centerline is fitted with a smoothing cubic spline, resampled evenly by arc length
(uneven spacing makes parallel-transport frames unstable), and carries rotation-minimising
frames computed by the double-reflection method (Wang, Juettler, Zheng, Liu: "Computation of
rotation minimizing frames", ACM TOG 27(1), 2008).

Conventions (DESIGN.md, "Coordinates"):

- the centerline is ordered in the pullback direction (first point distal); arc length ``s``
  grows from distal to proximal and the plane normal is the tangent ``dC/ds``;
- frame plane (x, y) maps to world as ``origin + (p - offset) @ axes.T``; with
  ``mirror=False`` the triple (x axis, y axis, normal) is right-handed in world, i.e.
  frames are seen looking along the pullback direction (distal to proximal) with x to the
  right and y down, as on the image; ``mirror=True`` flips the y axis (left-handed);
- ``rotation_deg`` turns the in-plane axes counter-clockwise (seen from the tip of the
  normal) away from the rotation-minimising reference, which starts as the anterior
  direction (RAS +y; +x if the vessel starts along y) projected into the first plane:
  deterministic, not anatomical; landmarks with an angle fix the anatomical rotation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import interpolate

from .errors import FIX_FRAME_RATE, FIX_PULLBACK_SPEED, input_error
from .geometry import polygon_centroids
from .types import Centerline, ContourSet, FramePoses, Landmark, Pullback

__all__ = [
    "SampledCurve",
    "LandmarkFit",
    "resample_centerline",
    "rotation_minimizing_frames",
    "frame_arc_lengths_mm",
    "fit_landmarks",
    "place_frames",
    "three_point_alignment",
    "closest_arc_length_mm",
    "frame_ijk_to_ras",
    "frame_spacing_mm",
]


@dataclass(frozen=True, eq=False)
class SampledCurve:
    """A smoothed centerline sampled evenly by arc length, with rotation-minimising frames.

    Attributes
    ----------
    arc_length_mm : ndarray of shape (K,)
        0 at the first (distal) point, ``length_mm`` at the last.
    points_ras_mm : ndarray of shape (K, 3)
    tangents : ndarray of shape (K, 3)
        Unit tangents in the direction of increasing arc length.
    reference : ndarray of shape (K, 3)
        Unit rotation-minimising vectors, perpendicular to the tangents.
    length_mm : float
    source : str
    """

    arc_length_mm: np.ndarray
    points_ras_mm: np.ndarray
    tangents: np.ndarray
    reference: np.ndarray
    length_mm: float
    source: str = ""
    _splines: list | None = field(default=None, repr=False)
    _dense_s: np.ndarray | None = field(default=None, repr=False)
    _dense_u: np.ndarray | None = field(default=None, repr=False)

    def evaluate(self, arc_length_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, unit tangent and unit reference vector at arbitrary arc lengths.

        Parameters
        ----------
        arc_length_mm : ndarray of shape (N,)
            Clipped to ``[0, length_mm]``.

        Returns
        -------
        points : ndarray of shape (N, 3), RAS mm
        tangents : ndarray of shape (N, 3)
        reference : ndarray of shape (N, 3)
            Perpendicular to the tangents.
        """
        s = np.clip(np.asarray(arc_length_mm, dtype=float).ravel(), 0.0, self.length_mm)
        if self._splines is not None:
            u = np.interp(s, self._dense_s, self._dense_u)
            points = _eval_spline(self._splines, u)
            tangents = _eval_spline(self._splines, u, der=1)
        else:
            points = np.column_stack([np.interp(s, self.arc_length_mm, c) for c in self.points_ras_mm.T])
            tangents = np.column_stack([np.interp(s, self.arc_length_mm, c) for c in self.tangents.T])
        tangents = _normalise(tangents)
        reference = np.column_stack([np.interp(s, self.arc_length_mm, c) for c in self.reference.T])
        reference = _normalise(reference - np.sum(reference * tangents, axis=1, keepdims=True) * tangents)
        return points, tangents, reference

    def closest_arc_length(self, point_ras_mm: np.ndarray) -> tuple[float, float, np.ndarray]:
        """Arc length of the centerline point closest to ``point_ras_mm``.

        Returns
        -------
        arc_length_mm : float
        distance_mm : float
        foot_ras_mm : ndarray of shape (3,)
        """
        p = np.asarray(point_ras_mm, dtype=float).reshape(3)
        a, b = self.points_ras_mm[:-1], self.points_ras_mm[1:]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-30), 0, 1)
        feet = a + t[:, None] * ab
        d = np.linalg.norm(feet - p, axis=1)
        k = int(np.argmin(d))
        s = self.arc_length_mm[k] + t[k] * (self.arc_length_mm[k + 1] - self.arc_length_mm[k])
        return float(s), float(d[k]), feet[k]


def _normalise(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _fit_spline(u: np.ndarray, points: np.ndarray, smoothing_length_mm: float) -> list:
    """One cubic spline per coordinate over the chord-length parameter ``u``."""
    if len(points) < 5 or smoothing_length_mm <= 0:
        k = min(3, len(points) - 1)
        spline = interpolate.make_interp_spline(u, points, k=k)
        return [spline]
    # a smoothing spline straightens its ends (natural end conditions); continuing the curve
    # past both ends by a local quadratic moves that bias outside the kept range
    reach = 2.0 * smoothing_length_mm
    u_ext, p_ext = [u], [points]
    for end in (0, -1):
        near = np.abs(u - u[end]) <= min(reach, (u[-1] - u[0]) / 2)
        if near.sum() < 3:
            near = np.zeros(len(u), dtype=bool)
            near[[0, 1, 2] if end == 0 else [-3, -2, -1]] = True
        spacing = float(np.median(np.diff(u)))
        n_ext = int(min(max(np.ceil(reach / max(spacing, 1e-6)), 1), 2000))
        steps = spacing * np.arange(1, n_ext + 1)
        new_u = u[0] - steps[::-1] if end == 0 else u[-1] + steps
        coeffs = np.polyfit(u[near] - u[end], points[near], 2)
        new_p = np.stack([np.polyval(coeffs[:, i], new_u - u[end]) for i in range(3)], axis=1)
        if end == 0:
            u_ext.insert(0, new_u)
            p_ext.insert(0, new_p)
        else:
            u_ext.append(new_u)
            p_ext.append(new_p)
    u_all, p_all = np.concatenate(u_ext), np.vstack(p_ext)
    # penalised spline: sum w (y - f)^2 + lam int f''^2 damps wavelengths below the given
    # length (transfer 1 / (1 + lam w^4)); weights = local spacing make it sampling-independent
    lam = (smoothing_length_mm / (2.0 * np.pi)) ** 4
    weights = np.gradient(u_all)
    return [interpolate.make_smoothing_spline(u_all, p_all[:, i], w=weights, lam=lam) for i in range(3)]


def _eval_spline(splines: list, u: np.ndarray, der: int = 0) -> np.ndarray:
    if len(splines) == 1:
        spline = splines[0] if der == 0 else splines[0].derivative(der)
        return np.asarray(spline(u), dtype=float).reshape(len(u), 3)
    return np.column_stack([(s if der == 0 else s.derivative(der))(u) for s in splines])


def resample_centerline(
    centerline: Centerline, *, step_mm: float = 0.1, smoothing_length_mm: float = 2.0
) -> SampledCurve:
    """Fit a smoothing spline to the centerline and sample it evenly by arc length.

    Parameters
    ----------
    centerline : Centerline
        At least 2 distinct points, RAS mm, distal first.
    step_mm : float
        Sampling step of the result.
    smoothing_length_mm : float
        Wiggles shorter than about this wavelength are smoothed away (a penalised cubic
        spline); bends of a vessel (radius of curvature of a few mm and more) are kept: on a
        circle of radius 20 mm the default moves points by < 0.005 mm. 0 interpolates.
        Smoothing removes the staircase of voxel-based centerlines that would otherwise twist
        the frames.

    Returns
    -------
    SampledCurve
        With rotation-minimising frames along it.
    """
    points = np.asarray(centerline.points_ras_mm, dtype=float)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-9])
    points = points[keep]
    if len(points) < 2:
        raise input_error(
            centerline.source or "centerline",
            "points",
            "has fewer than 2 distinct points",
            "give a longer centerline",
        )
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    splines = _fit_spline(chord, points, float(smoothing_length_mm))
    # dense table u -> arc length, fine enough that chord sums equal the arc length to ~1e-6
    n_dense = int(min(max(2000, math.ceil(chord[-1] / 0.01)), 400_000))
    dense_u = np.linspace(chord[0], chord[-1], n_dense)
    dense = _eval_spline(splines, dense_u)
    dense_s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    length = float(dense_s[-1])
    n = max(2, int(math.ceil(length / step_mm)) + 1)
    s = np.linspace(0.0, length, n)
    u = np.interp(s, dense_s, dense_u)
    sampled = _eval_spline(splines, u)
    tangents = _normalise(_eval_spline(splines, u, der=1))
    reference = rotation_minimizing_frames(sampled, tangents)
    return SampledCurve(
        arc_length_mm=s,
        points_ras_mm=sampled,
        tangents=tangents,
        reference=reference,
        length_mm=length,
        source=centerline.source,
        _splines=splines,
        _dense_s=dense_s,
        _dense_u=dense_u,
    )


def rotation_minimizing_frames(
    points: np.ndarray, tangents: np.ndarray, *, initial_reference: np.ndarray | None = None
) -> np.ndarray:
    """Rotation-minimising reference vectors by the double-reflection method.

    Parameters
    ----------
    points : ndarray of shape (K, 3)
    tangents : ndarray of shape (K, 3)
        Unit tangents at ``points``.
    initial_reference : ndarray of shape (3,), optional
        Reference at the first point (projected perpendicular to the first tangent). Default:
        anterior (RAS +y), or right (+x) when the first tangent is within 26 deg of +-y.

    Returns
    -------
    ndarray of shape (K, 3)
        Unit vectors perpendicular to the tangents; the third frame axis is
        ``cross(tangent, reference)``.
    """
    x = np.asarray(points, dtype=float)
    t = _normalise(np.asarray(tangents, dtype=float))
    if initial_reference is None:
        # anterior (RAS +y) unless nearly along the vessel, then right (+x): a fixed rule
        # rather than "most perpendicular axis", which flips on rounding noise
        initial_reference = np.array([0.0, 1.0, 0.0]) if abs(t[0, 1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    r0 = np.asarray(initial_reference, dtype=float)
    r0 = r0 - np.dot(r0, t[0]) * t[0]
    r0 /= np.linalg.norm(r0)
    out = np.empty_like(x)
    out[0] = r0
    v1s = np.diff(x, axis=0)
    # plain floats: the recursion is sequential and numpy call overhead dominates on 3-vectors
    rx, ry, rz = (float(c) for c in r0)
    tl = t.tolist()
    for i, (v1x, v1y, v1z) in enumerate(v1s.tolist()):
        c1 = v1x * v1x + v1y * v1y + v1z * v1z
        tix, tiy, tiz = tl[i]
        if c1 > 0.0:
            f = 2.0 / c1 * (v1x * rx + v1y * ry + v1z * rz)
            rlx, rly, rlz = rx - f * v1x, ry - f * v1y, rz - f * v1z
            g = 2.0 / c1 * (v1x * tix + v1y * tiy + v1z * tiz)
            tlx, tly, tlz = tix - g * v1x, tiy - g * v1y, tiz - g * v1z
        else:
            rlx, rly, rlz, tlx, tly, tlz = rx, ry, rz, tix, tiy, tiz
        tnx, tny, tnz = tl[i + 1]
        v2x, v2y, v2z = tnx - tlx, tny - tly, tnz - tlz
        c2 = v2x * v2x + v2y * v2y + v2z * v2z
        if c2 > 0.0:
            h = 2.0 / c2 * (v2x * rlx + v2y * rly + v2z * rlz)
            rx, ry, rz = rlx - h * v2x, rly - h * v2y, rlz - h * v2z
        else:
            rx, ry, rz = rlx, rly, rlz
        # re-orthonormalise against the tangent so rounding never accumulates
        d = rx * tnx + ry * tny + rz * tnz
        rx, ry, rz = rx - d * tnx, ry - d * tny, rz - d * tnz
        norm = math.sqrt(rx * rx + ry * ry + rz * rz)
        rx, ry, rz = rx / norm, ry / norm, rz / norm
        out[i + 1] = (rx, ry, rz)
    return out


def frame_arc_lengths_mm(
    frame_times_s: np.ndarray, pullback_speed_mm_s: float, *, start_mm: float = 0.0
) -> np.ndarray:
    """Arc length of each frame for a motorised pullback at constant speed.

    Parameters
    ----------
    frame_times_s : ndarray of shape (N,)
        Acquisition times; frame 0 sits at ``start_mm``.
    pullback_speed_mm_s : float
        Positive.
    start_mm : float
        Arc length of frame 0 from the first (distal) centerline point.

    Returns
    -------
    ndarray of shape (N,), mm
        ``start_mm + speed * (t - t[0])``.
    """
    if pullback_speed_mm_s is None or not np.isfinite(pullback_speed_mm_s) or pullback_speed_mm_s <= 0:
        raise input_error("pullback speed", "value", f"is {pullback_speed_mm_s!r}", FIX_PULLBACK_SPEED)
    t = np.asarray(frame_times_s, dtype=float).ravel()
    if t.size == 0:
        return t.copy()
    if not np.isfinite(t).all() or np.any(np.diff(t) < 0):
        raise input_error(
            "frame times", "frame_times_s", "are not finite and non-decreasing", FIX_FRAME_RATE
        )
    return float(start_mm) + float(pullback_speed_mm_s) * (t - t[0])


@dataclass(frozen=True)
class LandmarkFit:
    """Frame positions and rotations corrected by landmarks.

    Attributes
    ----------
    arc_length_mm : ndarray of shape (N,)
        Corrected arc length per frame (monotone piecewise-linear map of the nominal one).
    rotation_deg : ndarray of shape (N,) or None
        Rotation per frame fixed by landmarks with an angle; None when none fixes it.
    residuals : list of dict
        Per landmark: ``frame``, ``kind``, ``arc_length_mm`` (on the centerline),
        ``nominal_arc_length_mm``, ``shift_mm``, ``distance_to_centerline_mm``,
        ``rotation_deg`` (or None), ``leave_one_out_error_mm`` (or None).
    uncertainty_mm : ndarray of shape (N,)
        Placement uncertainty: grows with distance from the nearest landmark.
    """

    arc_length_mm: np.ndarray
    rotation_deg: np.ndarray | None
    residuals: list[dict]
    uncertainty_mm: np.ndarray


def _interp_extrap(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Monotone map through (xp, fp); beyond the ends, slope 1 (constant shift).

    Between the points a monotone piecewise cubic (PCHIP, Fritsch-Carlson): it follows a
    smoothly varying pullback speed (a +-30 % speed wave between 4 landmarks: < 0.3 mm)
    where straight segments would be off by millimetres, and never runs backwards.
    """
    x = np.asarray(x, dtype=float)
    xp, fp = np.asarray(xp, dtype=float), np.asarray(fp, dtype=float)
    if len(xp) >= 3:
        y = interpolate.PchipInterpolator(xp, fp, extrapolate=False)(np.clip(x, xp[0], xp[-1]))
    else:
        y = np.interp(x, xp, fp)
    y = np.where(x < xp[0], fp[0] + (x - xp[0]), y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]), y)


def _nominal_at_frames(frames: np.ndarray, frame_index: np.ndarray, nominal: np.ndarray) -> np.ndarray:
    """Nominal arc length at (possibly unanalysed) frames, extrapolated linearly."""
    frames = np.asarray(frames, dtype=float)
    if len(frame_index) == 1:
        return np.full(frames.shape, float(nominal[0]))
    order = np.argsort(frame_index)
    fi, nom = frame_index[order].astype(float), nominal[order]
    y = np.interp(frames, fi, nom)
    slope_lo = (nom[1] - nom[0]) / max(fi[1] - fi[0], 1e-12)
    slope_hi = (nom[-1] - nom[-2]) / max(fi[-1] - fi[-2], 1e-12)
    y = np.where(frames < fi[0], nom[0] + slope_lo * (frames - fi[0]), y)
    return np.where(frames > fi[-1], nom[-1] + slope_hi * (frames - fi[-1]), y)


def fit_landmarks(
    curve: SampledCurve,
    frame_index: np.ndarray,
    nominal_arc_length_mm: np.ndarray,
    landmarks: Sequence[Landmark],
    *,
    mirror: bool = False,
    source_name: str = "landmarks",
    speed_uncertainty: float = 0.05,
    landmark_uncertainty_mm: float = 0.5,
    start_uncertainty_mm: float = 1.0,
    min_offset_mm: float = 0.3,
) -> LandmarkFit:
    """Correct the frames' arc lengths and rotation with landmarks.

    Each landmark with ``point_ras_mm`` pins its frame to the closest centerline point; the
    frame -> arc length map is monotone piecewise cubic (PCHIP) through the pins and shifts beyond
    them. A landmark with ``angle_deg`` whose point lies off the centerline (farther than
    ``min_offset_mm``, e.g. on a side-branch ostium) fixes the rotation: the frame-plane
    direction ``angle_deg`` is turned onto the in-plane direction from the centerline to the
    point. Rotation is interpolated linearly in arc length between such landmarks and held
    constant beyond them.

    Parameters
    ----------
    curve : SampledCurve
    frame_index : ndarray of shape (N,), int
    nominal_arc_length_mm : ndarray of shape (N,)
        From pullback speed and frame times.
    landmarks : sequence of Landmark
    mirror : bool
        Handedness used for the rotation angle (see :func:`place_frames`).
    source_name : str
        File named in error messages.
    speed_uncertainty : float
        Relative pullback speed error (0.05 = 5 %) for the uncertainty estimate.
    landmark_uncertainty_mm, start_uncertainty_mm : float
        Placement error at a landmark, and at the start point when there is no landmark.
    min_offset_mm : float

    Returns
    -------
    LandmarkFit
    """
    frame_index = np.asarray(frame_index, dtype=int)
    nominal = np.asarray(nominal_arc_length_mm, dtype=float)
    pins = [lm for lm in landmarks if lm.point_ras_mm is not None]
    residuals: list[dict] = []
    if not pins:
        start = float(nominal[np.argmin(frame_index)]) if len(nominal) else 0.0
        # without landmarks the start itself is a guess, and speed error accumulates from it
        unc = np.hypot(start_uncertainty_mm, speed_uncertainty * np.abs(nominal - start))
        for lm in landmarks:
            residuals.append({"frame": int(lm.frame), "kind": lm.kind, "note": "no point: not used"})
        return LandmarkFit(nominal.copy(), None, residuals, unc)
    pins = sorted(pins, key=lambda lm: lm.frame)
    frames = np.array([lm.frame for lm in pins], dtype=float)
    if len(np.unique(frames)) != len(frames):
        raise input_error(
            source_name, "landmarks.frame", "repeats a frame", "give each landmark its own frame"
        )
    nominal_l = _nominal_at_frames(frames, frame_index, nominal)
    if np.any(np.diff(nominal_l) <= 0):
        k = int(np.flatnonzero(np.diff(nominal_l) <= 0)[0])
        raise input_error(
            source_name,
            "landmarks.frame",
            f"frames {pins[k].frame} and {pins[k + 1].frame} have the same nominal position",
            "give landmarks at frames acquired at different positions",
        )
    fits = [curve.closest_arc_length(lm.point_ras_mm) for lm in pins]
    s_l = np.array([f[0] for f in fits])
    for a in range(len(pins) - 1):
        if not s_l[a + 1] > s_l[a]:
            raise input_error(
                source_name,
                "landmarks",
                f"frame {pins[a].frame} lies at {s_l[a]:.1f} mm but later frame {pins[a + 1].frame} at "
                f"{s_l[a + 1]:.1f} mm along the centerline (not increasing)",
                "check the landmark points or the centerline order (distal-first or proximal-first)",
                setting="centerline_order",
            )
    arc = _interp_extrap(nominal, nominal_l, s_l)

    # rotation from landmarks with an angle and an off-centerline point
    rot_s, rot_deg = [], []
    for lm, (s, dist, foot) in zip(pins, fits, strict=True):
        if lm.angle_deg is None or dist < min_offset_mm:
            continue
        _, t, r = curve.evaluate(np.array([s]))
        t, r = t[0], r[0]
        b = np.cross(t, r)
        d = np.asarray(lm.point_ras_mm, dtype=float) - foot
        psi = math.degrees(math.atan2(float(d @ b), float(d @ r)))
        theta = psi + lm.angle_deg if mirror else psi - lm.angle_deg
        rot_s.append(s)
        rot_deg.append(theta)
    rotation = None
    if rot_deg:
        rot_unwrapped = np.rad2deg(np.unwrap(np.deg2rad(rot_deg)))
        # smooth between landmarks (PCHIP: no overshoot), constant beyond them
        rotation = (
            interpolate.PchipInterpolator(rot_s, rot_unwrapped)(np.clip(arc, rot_s[0], rot_s[-1]))
            if len(rot_s) >= 3
            else np.interp(arc, rot_s, rot_unwrapped)
        )

    for i, (lm, (s, dist, _)) in enumerate(zip(pins, fits, strict=True)):
        loo = None
        if len(pins) >= 2:
            others = [j for j in range(len(pins)) if j != i]
            loo = float(_interp_extrap(np.array([nominal_l[i]]), nominal_l[others], s_l[others])[0] - s)
        rot_here = None
        if lm.angle_deg is not None and dist >= min_offset_mm:
            rot_here = float(rot_deg[rot_s.index(s)]) if s in rot_s else None
        residuals.append(
            {
                "frame": int(lm.frame),
                "kind": lm.kind,
                "arc_length_mm": float(s),
                "nominal_arc_length_mm": float(nominal_l[i]),
                "shift_mm": float(s - nominal_l[i]),
                "distance_to_centerline_mm": float(dist),
                "rotation_deg": rot_here,
                "leave_one_out_error_mm": loo,
            }
        )
    nearest = np.min(np.abs(nominal[:, None] - nominal_l[None, :]), axis=1)
    unc = np.hypot(landmark_uncertainty_mm, speed_uncertainty * nearest)
    return LandmarkFit(arc, rotation, residuals, unc)


def place_frames(
    centerline: Centerline | SampledCurve,
    frame_index: np.ndarray,
    arc_length_mm: np.ndarray,
    *,
    contours: ContourSet | None = None,
    align: str = "catheter",
    mirror: bool = False,
    rotation_deg: float | np.ndarray = 0.0,
    landmarks: Sequence[Landmark] = (),
    source_name: str = "",
    start_mm: float | None = None,
    step_mm: float = 0.1,
    smoothing_length_mm: float = 2.0,
    speed_uncertainty: float = 0.05,
) -> FramePoses:
    """Put each frame plane on the centerline.

    Parameters
    ----------
    centerline : Centerline or SampledCurve
        Distal-first; a Centerline is resampled with :func:`resample_centerline`.
    frame_index : ndarray of shape (N,), int
    arc_length_mm : ndarray of shape (N,)
        Nominal arc length of each frame from the first centerline point (e.g.
        :func:`frame_arc_lengths_mm`); corrected by ``landmarks`` when they have points.
    contours : ContourSet, optional
        Needed for ``align="lumen-centroid"``.
    align : {"catheter", "lumen-centroid"}
        Which frame-plane point is put on the centerline: the catheter centre (origin) or the
        lumen centroid of each frame.
    mirror : bool
        False: (x, y, normal) right-handed in world (frames seen looking from distal to
        proximal). True: y flipped, i.e. frames seen from the other side.
    rotation_deg : float or ndarray of shape (N,)
        Counter-clockwise turn of the in-plane axes about the normal; replaced by the
        landmark rotation when landmarks fix it.
    landmarks : sequence of Landmark
        See :func:`fit_landmarks`.
    source_name : str
        Centerline file named in messages (default: ``centerline.source``).
    start_mm : float, optional
        The ``--start-mm`` used, for messages (default: the smallest nominal arc length).
    step_mm, smoothing_length_mm : float
        See :func:`resample_centerline`.
    speed_uncertainty : float
        Relative pullback speed error used for ``uncertainty_mm``.

    Returns
    -------
    FramePoses
        ``normal_ras`` is the tangent (increasing arc length); ``uncertainty_mm`` set.

    Raises
    ------
    IVUSInputError
        The pullback runs past either end of the centerline; unknown ``align``; missing
        contours for lumen-centroid alignment.
    """
    curve = (
        centerline
        if isinstance(centerline, SampledCurve)
        else resample_centerline(centerline, step_mm=step_mm, smoothing_length_mm=smoothing_length_mm)
    )
    name = source_name or curve.source or "centerline"
    frame_index = np.asarray(frame_index, dtype=int).ravel()
    nominal = np.asarray(arc_length_mm, dtype=float).ravel()
    if frame_index.shape != nominal.shape:
        raise ValueError(f"frame_index {frame_index.shape} and arc_length_mm {nominal.shape} differ in shape")
    if align not in ("catheter", "lumen-centroid"):
        raise input_error("alignment", "value", f"is {align!r}", "use catheter or lumen-centroid")
    n = len(frame_index)
    if n == 0:
        raise input_error(name, "frames", "none to place", "check the frame selection (gating, contours)")
    fit = fit_landmarks(
        curve,
        frame_index,
        nominal,
        landmarks,
        mirror=mirror,
        source_name=name,
        speed_uncertainty=speed_uncertainty,
    )
    s = fit.arc_length_mm
    start = float(np.min(nominal)) if start_mm is None else float(start_mm)
    # smoothing shortens a curve by a hair: tolerate that much overrun, then clamp
    tolerance = 0.05
    if s.max() > curve.length_mm + tolerance:
        raise input_error(
            name,
            "centerline length",
            f"{curve.length_mm:.1f} mm is shorter than the pullback (needs {s.max():.1f} mm from "
            f"the start position {start:g} mm)",
            "give a longer centerline or a smaller start position",
            setting="start_mm_smaller",
        )
    if s.min() < -tolerance:
        k = int(np.argmin(s))
        raise input_error(
            name,
            "start",
            f"frame {frame_index[k]} falls {-s[k]:.1f} mm before the first (distal) centerline point "
            f"(start position {start:g} mm)",
            "give a larger start position or a centerline that reaches further distally",
            setting="start_mm_larger",
        )
    s = np.clip(s, 0.0, curve.length_mm)
    origin, tangent, reference = curve.evaluate(s)
    if fit.rotation_deg is not None:
        theta = np.deg2rad(fit.rotation_deg)
    else:
        theta = np.deg2rad(np.broadcast_to(np.asarray(rotation_deg, dtype=float), (n,)))
    binormal = np.cross(tangent, reference)
    x_axis = np.cos(theta)[:, None] * reference + np.sin(theta)[:, None] * binormal
    y_axis = np.cross(tangent, x_axis)
    if mirror:
        y_axis = -y_axis
    axes = np.stack([x_axis, y_axis], axis=2)
    offset = np.zeros((n, 2))
    if align == "lumen-centroid":
        if contours is None:
            raise input_error(
                "alignment",
                "lumen-centroid",
                "needs contours",
                "give contours or align on the catheter",
                setting="align_catheter",
            )
        by_index = {f.index: f for f in contours.frames}
        missing = [int(i) for i in frame_index if int(i) not in by_index]
        if missing:
            raise input_error(
                "alignment",
                "lumen-centroid",
                f"has no lumen contour for frame {missing[0]}",
                "segment or trace every frame",
            )
        offset = polygon_centroids([by_index[int(i)].lumen for i in frame_index])
    return FramePoses(
        frame_index=frame_index,
        arc_length_mm=s,
        origin_ras_mm=origin,
        axes_ras=axes,
        normal_ras=tangent,
        offset_mm=offset,
        uncertainty_mm=fit.uncertainty_mm,
        landmark_residuals=tuple(fit.residuals),
    )


def three_point_alignment(
    centerline: Centerline | SampledCurve,
    frame: int,
    reference_angle_deg: float,
    main_ras_mm: np.ndarray,
    ccw_ras_mm: np.ndarray,
    cw_ras_mm: np.ndarray,
    *,
    step_mm: float = 0.1,
    smoothing_length_mm: float = 2.0,
) -> tuple[Landmark, bool]:
    """Landmark and handedness from three world points (multimodars-style shortcut).

    ``main`` is the world position of the reference structure seen in ``frame`` at
    ``reference_angle_deg`` (e.g. an ostium on the vessel wall); ``ccw`` and ``cw`` are two
    points on the wall counter-clockwise and clockwise of it in the frame plane (the sense
    of ``angle_deg``, from +x towards +y).
    The frame is pinned where ``main`` projects on the centerline, its rotation turns
    ``reference_angle_deg`` onto ``main``, and the side on which ``ccw`` lies decides
    whether the frames are mirrored.

    Parameters
    ----------
    centerline : Centerline or SampledCurve
        Distal-first.
    frame : int
    reference_angle_deg : float
        Frame-plane direction of the reference structure, counter-clockwise from +x, seen
        from the point that is put on the centerline (catheter or lumen centroid).
    main_ras_mm, ccw_ras_mm, cw_ras_mm : ndarray of shape (3,)
    step_mm, smoothing_length_mm : float
        See :func:`resample_centerline`.

    Returns
    -------
    landmark : Landmark
        ``kind="reference"``, ``point_ras_mm=main``, ``angle_deg=reference_angle_deg``.
    mirror : bool
        Pass to :func:`place_frames`.
    """
    curve = (
        centerline
        if isinstance(centerline, SampledCurve)
        else resample_centerline(centerline, step_mm=step_mm, smoothing_length_mm=smoothing_length_mm)
    )
    main = np.asarray(main_ras_mm, dtype=float).reshape(3)
    s, _, foot = curve.closest_arc_length(main)
    _, t, r = curve.evaluate(np.array([s]))
    r, b = r[0], np.cross(t[0], r[0])

    def angle(p: np.ndarray) -> float:
        d = np.asarray(p, dtype=float).reshape(3) - foot
        return math.atan2(float(d @ b), float(d @ r))

    a_main = angle(main)
    turn_ccw = math.remainder(angle(ccw_ras_mm) - a_main, 2 * math.pi)
    turn_cw = math.remainder(angle(cw_ras_mm) - a_main, 2 * math.pi)
    # unmirrored frames turn counter-clockwise about the pullback direction (the tangent)
    mirror = bool(turn_ccw - turn_cw < 0)
    landmark = Landmark(int(frame), kind="reference", angle_deg=float(reference_angle_deg), point_ras_mm=main)
    return landmark, mirror


def closest_arc_length_mm(points_ras_mm: np.ndarray, point_ras_mm: np.ndarray) -> float:
    """Arc length (from the first point) of the polyline point nearest to ``point_ras_mm``.

    Unlike :meth:`SampledCurve.closest_arc_length`, on the polyline as given (no smoothing).

    Parameters
    ----------
    points_ras_mm : ndarray of shape (K, 3)
    point_ras_mm : ndarray of shape (3,)
    """
    pts = np.asarray(points_ras_mm, dtype=float)
    a, d = pts[:-1], np.diff(pts, axis=0)
    length2 = np.maximum((d * d).sum(axis=1), 1e-18)
    t = np.clip(((np.asarray(point_ras_mm, dtype=float) - a) * d).sum(axis=1) / length2, 0.0, 1.0)
    dist = np.linalg.norm(a + t[:, None] * d - point_ras_mm, axis=1)
    k = int(np.argmin(dist))
    arc = np.concatenate([[0.0], np.cumsum(np.sqrt(length2))])
    return float(arc[k] + t[k] * np.sqrt(length2[k]))


def frame_spacing_mm(pullback: Pullback) -> float:
    """Mean distance between frames along the pullback, mm (1 mm when the speed is unknown)."""
    times = np.asarray(pullback.frame_times_s, dtype=float)
    if pullback.pullback_speed_mm_s is None or len(times) < 2:
        return 1.0
    spacing = float(pullback.pullback_speed_mm_s) * float(np.mean(np.diff(times)))
    return spacing if spacing > 0 else 1.0


def frame_ijk_to_ras(pullback: Pullback, poses: FramePoses, row: int) -> np.ndarray:
    """IJK-to-RAS of one frame placed at its pose (row ``row`` of ``poses``), ndarray of shape (4, 4).

    Pixel (col=i, row=j) maps to the frame-plane point ((i - c_col) s_col, (j - c_row) s_row)
    and then through ``poses.matrices()[row]``.
    """
    row_mm, col_mm = pullback.pixel_spacing_mm
    center_row, center_col = pullback.catheter_center_px
    pixel_to_plane = np.array(
        [
            [col_mm, 0.0, 0.0, -center_col * col_mm],
            [0.0, row_mm, 0.0, -center_row * row_mm],
            [0.0, 0.0, 1.0, 0.0],
            [0, 0, 0, 1.0],
        ]
    )
    return poses.matrices()[row] @ pixel_to_plane
