"""3D centerline from two X-ray angiography projections (and 2D co-registration from one).

Projection model
----------------
A C-arm is a cone-beam camera rotating about a fixed isocentre, which is the origin here.
Patient coordinates are DICOM LPS (x to the patient's left, y posterior, z to the head) for a
head-first supine (``HFS``) patient; results are returned in RAS (``x -> -x``, ``y -> -y``), as
Slicer holds them. The positioner angles give the direction from the isocentre to the detector
(DICOM PS3.3 C.8.7.5): primary ``a`` is LAO (+) / RAO (-) about the head-feet axis, secondary
``b`` is CRA (+) / CAU (-) towards the head::

    d = (sin a cos b, -cos a cos b, sin b)       isocentre -> detector (LPS)
    u = (cos a, sin a, 0)                        detector column direction
    v = u x d                                    detector row direction

so that the frontal view (AP, 0/0) is displayed as one faces the patient: patient left on the
image right, head up. The source sits at ``-SOD d``, the detector centre at ``(SID - SOD) d``;
pixel (row, col) = (b / row_spacing + (rows - 1) / 2, a / col_spacing + (cols - 1) / 2) with
(a, b) the detector-plane position along (u, v). Table moves and a misaligned second isocentre
enter as ``isocenter_offset_mm``: the position of view 2's isocentre in view 1's RAS frame.

Reconstruction
--------------
Both traced curves are resampled and lightly smoothed; each point of curve 1 defines an epipolar
line in view 2 (the projection of its X-ray). Dynamic programming picks, for every point of
curve 1, a point of curve 2 close to that line with the order along both curves kept monotone;
the crossing is refined to sub-pixel, and where the epipolar line runs along curve 2 (an
ill-conditioned crossing) the correspondence is interpolated from its well-conditioned
neighbours. Each pair is triangulated by the midpoint of the closest approach of the two rays.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from .errors import IVUSCancelled, input_error
from .io.xa import XAGeometry, read_curve_px, read_xa_frame, read_xa_geometry
from .types import Centerline

__all__ = [
    "AngioReconstruction",
    "view_axes_lps",
    "view_separation_deg",
    "project",
    "back_project",
    "epipolar_lines",
    "reconstruct_centerline",
    "reconstruct_from_files",
    "estimate_isocenter_offset",
    "trace_vessel",
    "vesselness",
    "coregister_2d",
    "single_view_centerline",
    "render_angiogram",
]

MIN_SEPARATION_DEG = 5.0
WARN_SEPARATION_DEG = 30.0
# Share of the vessel allowed without an epipolar match: the larger of the share of curve 1's
# points whose epipolar line misses curve 2 and the share of curve 2's length no point of curve 1
# matches. Both curves are traced between the same two vessel ends, so with the right geometry
# every point matches (0% on the phantoms of Testing/core/test_angio.py) but for the few points
# that click noise at the ends leaves over. A wrong geometry (view angles off by 10-30 degrees,
# an image flipped, curves in different vessels) still back-projects with a small residual
# (0.06-0.2 px) on the points it keeps, and the curve comes out shorter by about the unmatched
# share: beyond this limit the reconstruction is refused instead (Testing/benchmarks/
# sweep_angio_geometry.py measures which wrong geometries are caught).
MAX_UNMATCHED_SHARE = 0.05
_WRONG_GEOMETRY_FIX = (
    "the geometry is likely wrong: check the view angles (PositionerPrimaryAngle/PositionerSecondaryAngle), "
    "the isocentre offset (table moved between runs), the image orientation (rows/columns flipped), that "
    "both curves trace the same vessel and that both run between the same two vessel ends"
)
_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


class AngioReconstruction(NamedTuple):
    """Result of :func:`reconstruct_centerline`.

    Attributes
    ----------
    centerline : Centerline
        RAS mm, ordered like curve 1 (its first point first).
    residual_px : ndarray of shape (K,)
        Per centerline point: root mean square over the two views of the distance between the
        point's projection and the traced curve, in pixels.
    warnings : list of str
    """

    centerline: Centerline
    residual_px: np.ndarray
    warnings: list[str]


# ----------------------------------------------------------------------------- projection model


def view_axes_lps(geometry: XAGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors of a view in LPS: ``d`` (isocentre to detector), ``u`` (columns), ``v`` (rows).

    Returns
    -------
    d, u, v : ndarray of shape (3,)
    """
    a = np.deg2rad(geometry.primary_angle_deg)
    b = np.deg2rad(geometry.secondary_angle_deg)
    d = np.array([np.sin(a) * np.cos(b), -np.cos(a) * np.cos(b), np.sin(b)])
    u = np.array([np.cos(a), np.sin(a), 0.0])
    v = np.cross(u, d)
    return d, u, v


def view_separation_deg(geometry1: XAGeometry, geometry2: XAGeometry) -> float:
    """Angle between the two beam axes in degrees, in [0, 90] (opposite views count as 0)."""
    d1 = view_axes_lps(geometry1)[0]
    d2 = view_axes_lps(geometry2)[0]
    return float(np.degrees(np.arccos(np.clip(abs(d1 @ d2), 0.0, 1.0))))


def _shift_lps(isocenter_offset_mm: np.ndarray | None) -> np.ndarray:
    if isocenter_offset_mm is None:
        return np.zeros(3)
    return np.asarray(isocenter_offset_mm, dtype=float).reshape(3) * _LPS_TO_RAS


def project(
    points_ras_mm: np.ndarray, geometry: XAGeometry, *, isocenter_offset_mm: np.ndarray | None = None
) -> np.ndarray:
    """Project 3D points onto the detector of a view.

    Parameters
    ----------
    points_ras_mm : ndarray of shape (K, 3), RAS mm
        Relative to the isocentre (of view 1 when an offset is given).
    geometry : XAGeometry
    isocenter_offset_mm : ndarray of shape (3,), RAS mm, optional
        Position of this view's isocentre in the points' frame.

    Returns
    -------
    ndarray of shape (K, 2)
        Pixel (row, col), fractional.
    """
    x = np.atleast_2d(np.asarray(points_ras_mm, dtype=float)) * _LPS_TO_RAS - _shift_lps(isocenter_offset_mm)
    d, u, v = view_axes_lps(geometry)
    w = x + geometry.sod_mm * d  # from the source
    depth = w @ d
    a = geometry.sid_mm * (w @ u) / depth
    b = geometry.sid_mm * (w @ v) / depth
    row = b / geometry.pixel_spacing_mm[0] + (geometry.rows - 1) / 2.0
    col = a / geometry.pixel_spacing_mm[1] + (geometry.cols - 1) / 2.0
    return np.column_stack([row, col])


def back_project(
    points_px: np.ndarray, geometry: XAGeometry, *, isocenter_offset_mm: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """X-rays through detector pixels.

    Parameters
    ----------
    points_px : ndarray of shape (K, 2)
        Pixel (row, col).
    geometry : XAGeometry
    isocenter_offset_mm : ndarray of shape (3,), RAS mm, optional

    Returns
    -------
    source_ras_mm : ndarray of shape (3,)
        The X-ray source.
    directions_ras : ndarray of shape (K, 3)
        Unit directions from the source through each pixel.
    """
    p = np.atleast_2d(np.asarray(points_px, dtype=float))
    d, u, v = view_axes_lps(geometry)
    a = (p[:, 1] - (geometry.cols - 1) / 2.0) * geometry.pixel_spacing_mm[1]
    b = (p[:, 0] - (geometry.rows - 1) / 2.0) * geometry.pixel_spacing_mm[0]
    rays = geometry.sid_mm * d + a[:, None] * u + b[:, None] * v
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    source = -geometry.sod_mm * d + _shift_lps(isocenter_offset_mm)
    return source * _LPS_TO_RAS, rays * _LPS_TO_RAS


def epipolar_lines(
    points1_px: np.ndarray,
    geometry1: XAGeometry,
    geometry2: XAGeometry,
    *,
    isocenter_offset_mm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Epipolar lines in view 2 of pixels of view 1.

    A line is the projection of the pixel's X-ray; it is returned as a point and a unit
    direction in view-2 pixels.

    Returns
    -------
    anchor_px, direction_px : ndarray of shape (K, 2)
        (row, col) point on each line and unit (row, col) direction.
    """
    source, rays = back_project(points1_px, geometry1)
    # Two points of each ray around the isocentre depth; a projection maps lines to lines.
    near = source + rays * (geometry1.sod_mm - 100.0)
    far = source + rays * (geometry1.sod_mm + 100.0)
    a = project(near, geometry2, isocenter_offset_mm=isocenter_offset_mm)
    b = project(far, geometry2, isocenter_offset_mm=isocenter_offset_mm)
    direction = b - a
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    return a, direction


# ----------------------------------------------------------------------------- curves


def _resample_polyline(points: np.ndarray, step: float) -> np.ndarray:
    """Points at equal arc-length steps (ends kept), ndarray of shape (M, 2)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    points = points[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    n = max(int(np.ceil(s[-1] / step)) + 1, 2)
    t = np.linspace(0.0, s[-1], n)
    return np.column_stack([np.interp(t, s, points[:, k]) for k in range(points.shape[1])])


def _smooth_open(points: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of an open curve that keeps its ends (odd reflection at the ends)."""
    if sigma <= 0 or len(points) < 5:
        return points
    pad = min(int(np.ceil(3 * sigma)), len(points) - 1)
    head = 2 * points[0] - points[pad:0:-1]
    tail = 2 * points[-1] - points[-2 : -pad - 2 : -1]
    extended = np.vstack([head, points, tail])
    smoothed = ndimage.gaussian_filter1d(extended, sigma, axis=0, mode="nearest")
    return smoothed[pad : pad + len(points)]


def _prepare_curve(curve_px: np.ndarray, name: str, *, smooth_px: float) -> np.ndarray:
    curve = np.asarray(curve_px, dtype=float)
    if curve.ndim != 2 or curve.shape[1] != 2:
        raise input_error(
            name,
            "points",
            f"have shape {curve.shape}, not (K, 2)",
            "give the curve as (row, col) pixel pairs",
        )
    curve = curve[np.all(np.isfinite(curve), axis=1)]
    if len(curve) < 3:
        raise input_error(
            name,
            "points",
            f"are too few ({len(curve)})",
            "trace at least 3 points along the vessel (more on bends)",
        )
    length = float(np.linalg.norm(np.diff(curve, axis=0), axis=1).sum())
    if length < 10.0:
        raise input_error(
            name, "points", f"span only {length:.1f} px", "trace the vessel segment from end to end"
        )
    return _smooth_open(_resample_polyline(curve, 1.0), smooth_px)


def _signed_distances(curve2: np.ndarray, anchor: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Signed distance (px) of every point of curve 2 to every epipolar line, shape (N1, N2)."""
    rel = curve2[None, :, :] - anchor[:, None, :]
    return direction[:, None, 0] * rel[:, :, 1] - direction[:, None, 1] * rel[:, :, 0]


def _monotone_match(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """For each row i a column j(i), non-decreasing in i, minimising the summed cost.

    Returns
    -------
    j : ndarray of shape (N1,), int
    total : float
    """
    n1, n2 = cost.shape
    acc = np.empty_like(cost)
    arg = np.empty((n1, n2), dtype=int)
    acc[0] = cost[0]
    cols = np.arange(n2)
    for i in range(1, n1):
        prev = acc[i - 1]
        # running minimum of the previous row and where it was reached
        best = np.minimum.accumulate(prev)
        is_new = prev <= best
        where = np.maximum.accumulate(np.where(is_new, cols, 0))
        acc[i] = cost[i] + best
        arg[i] = where
    j = np.empty(n1, dtype=int)
    j[-1] = int(np.argmin(acc[-1]))
    for i in range(n1 - 1, 0, -1):
        j[i - 1] = arg[i, j[i]]
    return j, float(acc[-1, j[-1]])


def _subpixel(signed_row: np.ndarray, j: int) -> float:
    """Fractional index near ``j`` where the signed distance crosses zero."""
    n = len(signed_row)
    for k in (j - 1, j):
        if 0 <= k < n - 1:
            f0, f1 = signed_row[k], signed_row[k + 1]
            if f0 == 0.0:
                return float(k)
            if f0 * f1 < 0:
                return k + f0 / (f0 - f1)
    return float(j)


def _interp_curve(curve: np.ndarray, t: np.ndarray) -> np.ndarray:
    idx = np.arange(len(curve))
    return np.column_stack([np.interp(t, idx, curve[:, k]) for k in range(curve.shape[1])])


def _triangulate(s1: np.ndarray, r1: np.ndarray, s2: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Midpoints of the closest approach of ray pairs, ndarray of shape (K, 3)."""
    w0 = s1 - s2
    a = np.einsum("ij,ij->i", r1, r1)
    b = np.einsum("ij,ij->i", r1, r2)
    c = np.einsum("ij,ij->i", r2, r2)
    d = np.einsum("ij,ij->i", r1, w0)
    e = np.einsum("ij,ij->i", r2, w0)
    den = a * c - b * b
    lam = (b * e - c * d) / den
    mu = (a * e - b * d) / den
    return 0.5 * ((s1 + lam[:, None] * r1) + (s2 + mu[:, None] * r2))


def _curve_distance(points: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """Distance (px) from points to a polyline, ndarray of shape (K,)."""
    dense = _resample_polyline(curve, 0.1)
    return cKDTree(dense).query(points)[0]


def _match(
    c1: np.ndarray,
    c2: np.ndarray,
    geometry1: XAGeometry,
    geometry2: XAGeometry,
    offset: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Correspondence of curve 1 points to fractional indices on curve 2.

    Returns
    -------
    t : ndarray of shape (N1,)
        Fractional index on curve 2 for every point of curve 1.
    distance_px : ndarray of shape (N1,)
        Distance of the matched curve-2 point to the epipolar line.
    conditioning : ndarray of shape (N1,)
        |sin| of the angle between the epipolar line and curve 2 at the match.
    mean_cost : float
    """
    anchor, direction = epipolar_lines(c1, geometry1, geometry2, isocenter_offset_mm=offset)
    signed = _signed_distances(c2, anchor, direction)
    j, total = _monotone_match(np.abs(signed))
    t = np.array([_subpixel(signed[i], j[i]) for i in range(len(j))])
    t = np.maximum.accumulate(t)
    distance = np.abs(signed[np.arange(len(j)), j])
    tangent = np.gradient(c2, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    tj = _interp_curve(tangent, t)
    tj /= np.maximum(np.linalg.norm(tj, axis=1, keepdims=True), 1e-12)
    conditioning = np.abs(direction[:, 0] * tj[:, 1] - direction[:, 1] * tj[:, 0])
    return t, distance, conditioning, total / len(j)


def reconstruct_centerline(
    curve1_px: np.ndarray,
    geometry1: XAGeometry,
    curve2_px: np.ndarray,
    geometry2: XAGeometry,
    *,
    isocenter_offset_mm: np.ndarray | str | None = None,
    reverse_mismatched: bool = False,
    step_mm: float = 0.5,
    smooth_px: float = 2.0,
    match_tolerance_px: float = 3.0,
    min_conditioning: float = 0.2,
    names: tuple[str, str] = ("curve 1", "curve 2"),
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> AngioReconstruction:
    """Reconstruct a 3D centerline from one vessel traced on two projections.

    Parameters
    ----------
    curve1_px, curve2_px : ndarray of shape (K, 2)
        The vessel traced on each view, pixel (row, col), from the same end to the same end
        (for IVUS co-registration: from where the transducer starts, distal, to proximal).
    geometry1, geometry2 : XAGeometry
    isocenter_offset_mm : ndarray of shape (3,), RAS mm, ``"auto"`` or None
        Position of view 2's isocentre in view 1's frame (table moved between two single-plane
        runs, biplane isocentres apart); ``"auto"`` estimates it from the curve ends with
        :func:`estimate_isocenter_offset` (which corrects the shape, not the absolute position).
    reverse_mismatched : bool
        When the curves are traced in opposite directions: reverse curve 2 with a warning
        (True) or raise IVUSInputError (False).
    step_mm : float
        Point spacing of the returned centerline.
    smooth_px : float
        Gaussian smoothing of the traced curves (sigma, pixels).
    match_tolerance_px : float
        Points of curve 1 whose epipolar line passes farther than this from curve 2 (beyond
        its ends) are left out.
    min_conditioning : float
        |sin| of the epipolar-line / curve angle below which a match is interpolated from its
        neighbours instead of taken.
    names : tuple of str
        How to name the two curves in messages (file names or options).
    progress, cancel : optional
        Progress callback and cancel flag.

    Returns
    -------
    AngioReconstruction
        ``(centerline, residual_px, warnings)``.

    Raises
    ------
    IVUSInputError
        Identical (or opposite) views, too few points, curves in opposite directions (unless
        ``reverse_mismatched``), curves that do not correspond.
    """
    warnings = _view_pair_warnings(geometry1, geometry2, isocenter_offset_mm)
    c1 = _prepare_curve(curve1_px, names[0], smooth_px=smooth_px)
    c2 = _prepare_curve(curve2_px, names[1], smooth_px=smooth_px)
    _check(cancel)
    if progress:
        progress(0.1, "matching the curves along epipolar lines")

    known_offset = None if isinstance(isocenter_offset_mm, str) else isocenter_offset_mm
    c2, reversed_note = _orient_second_curve(
        c1, c2, geometry1, geometry2, known_offset, match_tolerance_px, reverse_mismatched, names
    )
    warnings += reversed_note
    if isinstance(isocenter_offset_mm, str):
        if isocenter_offset_mm != "auto":
            raise input_error(
                "isocenter_offset_mm",
                "value",
                f"is {isocenter_offset_mm!r}",
                'give three numbers (mm) or "auto"',
            )
        isocenter_offset_mm = estimate_isocenter_offset(
            c1, geometry1, c2, geometry2, smooth_px=0.0, names=names
        )
        warnings.append(
            "isocentre offset estimated from the curve ends: ("
            + ", ".join(f"{v:.1f}" for v in isocenter_offset_mm)
            + ") mm RAS; the shape is corrected, the absolute position stays uncertain"
        )
    t, distance, conditioning, _ = _match(c1, c2, geometry1, geometry2, isocenter_offset_mm)
    _check(cancel)
    if progress:
        progress(0.5, "triangulating")

    keep, unmatched_note = _matched_points(distance, t, len(c2), match_tolerance_px, names)
    warnings += unmatched_note
    tk, good = t[keep], conditioning[keep] >= min_conditioning
    # Both curves traced between the same two vessel ends: when an end of curve 2 lies on the
    # epipolar line of the same end of curve 1, the ends correspond. This anchors ends whose
    # epipolar lines run along the vessel (ill-conditioned), instead of extrapolating.
    start_gap, end_gap = _end_gaps(c1, c2, geometry1, geometry2, isocenter_offset_mm)
    if keep[0] == 0 and start_gap <= match_tolerance_px:
        tk[0], good[0] = 0.0, True
    if keep[-1] == len(c1) - 1 and end_gap <= match_tolerance_px:
        tk[-1], good[-1] = float(len(c2) - 1), True
    tk, bridged_note = _bridge_ill_conditioned(tk, good, names)
    warnings += bridged_note
    p2 = _interp_curve(c2, tk)
    s1, r1 = back_project(c1[keep], geometry1)
    s2, r2 = back_project(p2, geometry2, isocenter_offset_mm=isocenter_offset_mm)
    points = _triangulate(np.broadcast_to(s1, r1.shape), r1, np.broadcast_to(s2, r2.shape), r2)
    points = _smooth_open(_resample_polyline(points, step_mm), sigma=1.0)
    _check(cancel)

    residual = np.sqrt(
        0.5
        * (
            _curve_distance(project(points, geometry1), c1) ** 2
            + _curve_distance(project(points, geometry2, isocenter_offset_mm=isocenter_offset_mm), c2) ** 2
        )
    )
    if progress:
        progress(1.0, "centerline reconstructed")
    label1, label2 = geometry1.source or "view 1", geometry2.source or "view 2"
    centerline = Centerline(points_ras_mm=points, source=f"angio: {label1} + {label2}")
    return AngioReconstruction(centerline, residual, warnings)


def _view_pair_warnings(
    geometry1: XAGeometry, geometry2: XAGeometry, isocenter_offset_mm: np.ndarray | str | None
) -> list[str]:
    """Warnings about a view pair (close views, not head-first supine, table moved).

    Raises
    ------
    IVUSInputError
        Views less than :data:`MIN_SEPARATION_DEG` apart.
    """
    warnings: list[str] = []
    separation = view_separation_deg(geometry1, geometry2)
    label1 = geometry1.source or "view 1"
    label2 = geometry2.source or "view 2"
    if separation < MIN_SEPARATION_DEG:
        raise input_error(
            label2,
            "PositionerPrimaryAngle/PositionerSecondaryAngle",
            f"give the same view as {label1} ({geometry1.label} vs {geometry2.label}, "
            f"{separation:.1f} degrees apart)",
            "use two projections of the vessel at least 30 degrees apart (ideally 60-90)",
        )
    if separation < WARN_SEPARATION_DEG:
        warnings.append(
            f"views {geometry1.label} and {geometry2.label} are only {separation:.1f} degrees apart "
            f"(< {WARN_SEPARATION_DEG:.0f}): depth is poorly determined; use views 60-90 degrees apart"
        )
    for geometry, label in ((geometry1, label1), (geometry2, label2)):
        if geometry.patient_position not in ("HFS", ""):
            warnings.append(
                f"{label}: PatientPosition is {geometry.patient_position}; the projection model assumes "
                "head-first supine (HFS), so the 3D orientation may be mirrored"
            )
    if (
        geometry1.table_height_mm is not None
        and geometry2.table_height_mm is not None
        and isocenter_offset_mm is None
        and abs(geometry1.table_height_mm - geometry2.table_height_mm) > 1.0
    ):
        warnings.append(
            f"table height differs between the views ({geometry1.table_height_mm:g} vs "
            f"{geometry2.table_height_mm:g} mm): give the isocentre offset"
        )
    return warnings


def _orient_second_curve(
    c1: np.ndarray,
    c2: np.ndarray,
    geometry1: XAGeometry,
    geometry2: XAGeometry,
    known_offset: np.ndarray | None,
    match_tolerance_px: float,
    reverse_mismatched: bool,
    names: tuple[str, str],
) -> tuple[np.ndarray, list[str]]:
    """Curve 2 running the same way as curve 1, and a warning when it had to be reversed.

    The direction is the one whose ends lie on the epipolar lines of the other curve's ends.

    Raises
    ------
    IVUSInputError
        The curves run opposite ways and ``reverse_mismatched`` is False.
    """
    end_same = _end_mismatch(c1, c2, geometry1, geometry2, known_offset)
    end_rev = _end_mismatch(c1, c2[::-1], geometry1, geometry2, known_offset)
    if not (end_rev < 0.5 * end_same and end_same > 2 * match_tolerance_px):
        return c2, []
    if not reverse_mismatched:
        raise input_error(
            names[1],
            "point order",
            f"runs opposite to {names[0]} (its first point matches the other curve's last point: "
            f"end mismatch {end_same:.1f} px as traced vs {end_rev:.1f} px reversed)",
            "trace both curves from the same vessel end (distal first) or reverse one of them",
        )
    return c2[::-1], [f"{names[1]} was traced in the opposite direction to {names[0]}: reversed it"]


def _matched_points(
    distance_px: np.ndarray, t: np.ndarray, n2: int, match_tolerance_px: float, names: tuple[str, str]
) -> tuple[np.ndarray, list[str]]:
    """Positions of the curve-1 points whose epipolar line meets curve 2, and a warning when
    some have no counterpart.

    ``distance_px`` (N,) is each curve-1 point's distance to curve 2 along its epipolar line,
    ``t`` (N,) the matched curve-2 parameter (point index), ``n2`` curve 2's point count; the
    unmatched share is the larger of curve 1's unmatched points and curve 2's unmatched length.

    Raises
    ------
    IVUSInputError
        Fewer than 5 matched points, or more than :data:`MAX_UNMATCHED_SHARE` unmatched (a
        wrong geometry rather than curves of different lengths).
    """
    n = len(distance_px)
    inside = distance_px <= match_tolerance_px
    if inside.sum() < 5:
        raise input_error(
            names[1],
            "points",
            f"do not correspond to {names[0]} (only {int(inside.sum())} points lie on each other's epipolar lines)",
            _WRONG_GEOMETRY_FIX,
        )
    warnings: list[str] = []
    dropped = n - int(inside.sum())
    matched_t = t[inside]
    uncovered2 = 1.0 - float(matched_t.max() - matched_t.min()) / max(1, n2 - 1)
    share = max(dropped / n, uncovered2)
    if share > MAX_UNMATCHED_SHARE:
        raise input_error(
            names[1],
            "points",
            f"leave {100 * share:.0f}% of the vessel without an epipolar match ({int(inside.sum())} of {n} "
            f"points of {names[0]} match, {100 * (1.0 - uncovered2):.0f}% of {names[1]}'s length is matched; "
            f"at most {100 * MAX_UNMATCHED_SHARE:.0f}% allowed)",
            _WRONG_GEOMETRY_FIX,
        )
    if dropped > 0:
        warnings.append(
            f"{dropped} of {n} points of {names[0]} have no counterpart on {names[1]} "
            "(the curves' ends differ slightly): left out"
        )
    return np.flatnonzero(inside), warnings


def _bridge_ill_conditioned(
    t: np.ndarray, good: np.ndarray, names: tuple[str, str]
) -> tuple[np.ndarray, list[str]]:
    """Curve-2 parameters with the ill-conditioned matches (``good`` False) interpolated from
    the well-conditioned ones along the curve, and a warning when over a quarter were.

    Raises
    ------
    IVUSInputError
        Fewer than 2 well-conditioned matches: depth cannot be recovered.
    """
    if good.sum() < 2:
        raise input_error(
            names[1],
            "points",
            "run along the epipolar lines everywhere, so depth cannot be recovered",
            "choose a second projection in which the vessel crosses the first view's X-ray directions",
        )
    if good.all():
        return t, []
    # Along the curve the correspondence is smooth: bridge ill-conditioned stretches.
    idx = np.arange(len(t))
    bridged = np.interp(idx, idx[good], t[good])
    bad_share = 1.0 - good.mean()
    if bad_share <= 0.25:
        return bridged, []
    return bridged, [
        f"{100 * bad_share:.0f}% of the vessel runs along the epipolar lines; its depth there is "
        "interpolated: a view pair farther apart or more perpendicular to the vessel helps"
    ]


def estimate_isocenter_offset(
    curve1_px: np.ndarray,
    geometry1: XAGeometry,
    curve2_px: np.ndarray,
    geometry2: XAGeometry,
    *,
    smooth_px: float = 2.0,
    names: tuple[str, str] = ("curve 1", "curve 2"),
) -> np.ndarray:
    """Smallest shift of view 2's isocentre that makes the curves' ends correspond.

    When both curves are traced between the same two vessel ends, each end of curve 2 must
    lie on the epipolar line of the same end of curve 1. That gives two equations for the
    three unknowns: the minimum-norm solution (Gauss-Newton with a pseudo-inverse) removes the
    shape distortion a misaligned isocentre causes, while one component of the shift (and so
    the absolute position of the centerline) stays unknown.

    Parameters
    ----------
    curve1_px, curve2_px : ndarray of shape (K, 2)
        Pixel (row, col), traced from the same vessel end.
    geometry1, geometry2 : XAGeometry

    Returns
    -------
    ndarray of shape (3,), RAS mm
        Position of view 2's isocentre in view 1's frame.
    """
    c1 = _prepare_curve(curve1_px, names[0], smooth_px=smooth_px)
    c2 = _prepare_curve(curve2_px, names[1], smooth_px=smooth_px)

    def gaps(offset: np.ndarray) -> np.ndarray:
        anchor, direction = epipolar_lines(c1[[0, -1]], geometry1, geometry2, isocenter_offset_mm=offset)
        signed = _signed_distances(c2[[0, -1]], anchor, direction)
        return np.array([signed[0, 0], signed[1, 1]])

    offset = np.zeros(3)
    for _ in range(6):
        residual = gaps(offset)
        jacobian = np.column_stack([(gaps(offset + 1e-3 * e) - residual) / 1e-3 for e in np.eye(3)])
        step = np.linalg.pinv(jacobian) @ residual
        offset = offset - step
        if np.linalg.norm(step) < 1e-6:
            break
    return offset


def _end_gaps(
    c1: np.ndarray, c2: np.ndarray, geometry1: XAGeometry, geometry2: XAGeometry, offset: np.ndarray | None
) -> tuple[float, float]:
    """Distances (px) of curve 2's first and last points from the epipolar lines of curve 1's."""
    anchor, direction = epipolar_lines(c1[[0, -1]], geometry1, geometry2, isocenter_offset_mm=offset)
    signed = _signed_distances(c2[[0, -1]], anchor, direction)
    return float(abs(signed[0, 0])), float(abs(signed[1, 1]))


def _end_mismatch(
    c1: np.ndarray, c2: np.ndarray, geometry1: XAGeometry, geometry2: XAGeometry, offset: np.ndarray | None
) -> float:
    """How far curve 2's first and last points lie from the epipolar lines of curve 1's ends (px)."""
    return float(sum(_end_gaps(c1, c2, geometry1, geometry2, offset)))


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("centerline reconstruction cancelled")


def reconstruct_from_files(
    xa1_path: str | Path,
    xa2_path: str | Path,
    curve1_path: str | Path,
    curve2_path: str | Path,
    *,
    frame1: int | None = None,
    frame2: int | None = None,
    isocenter_offset_mm: np.ndarray | str | None = None,
    reverse_mismatched: bool = False,
    step_mm: float = 0.5,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> AngioReconstruction:
    """Read two XA DICOMs and the curves traced on them, reconstruct the 3D centerline.

    A curve file with exactly two points is taken as the two clicked vessel ends: the vessel
    between them is traced on the selected frame (ECG end-diastole, the given frame, or the
    middle one) with :func:`trace_vessel`.

    Parameters
    ----------
    xa1_path, xa2_path : path-like
        XA / XRF DICOM runs.
    curve1_path, curve2_path : path-like
        Curve files read by :func:`IVUSReconstructLib.io.xa.read_curve_px`, distal end first.
    frame1, frame2 : int, optional
        Frames to trace on (0-based), when the curves are two clicked points.
    isocenter_offset_mm, reverse_mismatched, step_mm, progress, cancel
        See :func:`reconstruct_centerline`.

    Returns
    -------
    AngioReconstruction
    """
    views = [_read_view(xa1_path, curve1_path, frame1), _read_view(xa2_path, curve2_path, frame2)]
    (curves, geometries) = zip(*views, strict=True)
    return reconstruct_centerline(
        curves[0],
        geometries[0],
        curves[1],
        geometries[1],
        isocenter_offset_mm=isocenter_offset_mm,
        reverse_mismatched=reverse_mismatched,
        step_mm=step_mm,
        names=(str(curve1_path), str(curve2_path)),
        progress=progress,
        cancel=cancel,
    )


def _read_view(
    xa_path: str | Path, curve_path: str | Path, frame: int | None
) -> tuple[np.ndarray, XAGeometry]:
    """One projection's geometry and its traced curve (two points: the ends, traced here)."""
    geometry = read_xa_geometry(xa_path)
    curve = read_curve_px(curve_path, pixel_spacing_mm=geometry.pixel_spacing_mm)
    if len(curve) == 2:
        image = read_xa_frame(xa_path, frame).image
        curve = trace_vessel(image, curve[0], curve[1], pixel_spacing_mm=geometry.pixel_spacing_mm)
    return curve, geometry


def single_view_from_files(
    xa_path: str | Path, curve_path: str | Path, *, frame: int | None = None, step_mm: float = 0.5
) -> AngioReconstruction:
    """The centerline from one projection when no second view exists (foreshortened, planar).

    Returns
    -------
    AngioReconstruction
        ``residual_px`` is empty (nothing to back-project against); ``warnings`` state the
        foreshortening.
    """
    curve, geometry = _read_view(xa_path, curve_path, frame)
    centerline, warnings = single_view_centerline(curve, geometry, step_mm=step_mm, name=str(curve_path))
    return AngioReconstruction(centerline, np.zeros(0), warnings)


# ----------------------------------------------------------------------------- single view


def _isocentre_plane_mm(curve_px: np.ndarray, geometry: XAGeometry) -> np.ndarray:
    """Curve points in the isocentre plane, (u, v) mm (magnification removed)."""
    scale = geometry.sod_mm / geometry.sid_mm
    u = (curve_px[:, 1] - (geometry.cols - 1) / 2.0) * geometry.pixel_spacing_mm[1] * scale
    v = (curve_px[:, 0] - (geometry.rows - 1) / 2.0) * geometry.pixel_spacing_mm[0] * scale
    return np.column_stack([u, v])


def single_view_centerline(
    curve_px: np.ndarray, geometry: XAGeometry, *, step_mm: float = 0.5, name: str = "curve"
) -> tuple[Centerline, list[str]]:
    """A planar centerline from one projection: the curve laid in the isocentre plane.

    Parameters
    ----------
    curve_px : ndarray of shape (K, 2)
        Pixel (row, col), distal first.
    geometry : XAGeometry

    Returns
    -------
    centerline : Centerline
        RAS mm, in the plane through the isocentre perpendicular to the beam.
    warnings : list of str
        States that lengths are foreshortened.
    """
    c = _prepare_curve(curve_px, name, smooth_px=2.0)
    plane = _isocentre_plane_mm(c, geometry)
    _, u, v = view_axes_lps(geometry)
    points = (plane[:, :1] * u + plane[:, 1:] * v) * _LPS_TO_RAS
    points = _resample_polyline(points, step_mm)
    centerline = Centerline(points_ras_mm=points, source=f"angio (single view): {geometry.source}")
    warnings = [
        f"single projection ({geometry.label}): the centerline lies in the image plane; its length "
        f"{centerline.length_mm:.1f} mm is foreshortened (a lower bound) and the 3D shape is unknown"
    ]
    return centerline, warnings


def coregister_2d(
    curve_px: np.ndarray,
    geometry: XAGeometry,
    arc_length_mm: np.ndarray,
    *,
    name: str = "curve",
) -> tuple[np.ndarray, list[str]]:
    """Mark IVUS frame positions on one angiogram (no second view).

    Parameters
    ----------
    curve_px : ndarray of shape (K, 2)
        The pullback path traced on the angiogram, pixel (row, col), distal (start) first.
    geometry : XAGeometry
    arc_length_mm : ndarray of shape (N,)
        Each frame's distance from the start of the pullback along the vessel.
    name : str
        How to name the curve in messages.

    Returns
    -------
    positions_px : ndarray of shape (N, 2)
        Pixel (row, col) of each frame on the angiogram; NaN beyond the curve's end.
    warnings : list of str
        The foreshortening statement, and frames beyond the traced curve.
    """
    c = _prepare_curve(curve_px, name, smooth_px=2.0)
    plane = _isocentre_plane_mm(c, geometry)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(plane, axis=0), axis=1))])
    arc = np.asarray(arc_length_mm, dtype=float)
    positions = np.column_stack([np.interp(arc, s, c[:, 0]), np.interp(arc, s, c[:, 1])])
    beyond = (arc > s[-1]) | (arc < 0)
    positions[beyond] = np.nan
    warnings = [
        f"single projection ({geometry.label}): frame positions follow the projected length, which "
        "foreshortens the vessel where it runs towards the X-ray source; frames sit too far along "
        "the curve by up to the foreshortening"
    ]
    if beyond.any():
        warnings.append(
            f"{int(beyond.sum())} frames lie beyond the traced curve ({s[-1]:.1f} mm projected vs "
            f"{arc.max():.1f} mm pulled back): the vessel is foreshortened by at least "
            f"{100 * (1 - s[-1] / arc.max()):.0f}% in this view, or the curve is too short"
        )
    return positions, warnings


# ----------------------------------------------------------------------------- tracing


def vesselness(
    image: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float] | float,
    radii_mm: tuple[float, ...] = (0.6, 1.0, 1.6, 2.4),
    beta: float = 0.5,
) -> np.ndarray:
    """Frangi vesselness of dark (contrast-filled) vessels on a brighter background.

    Parameters
    ----------
    image : ndarray of shape (H, W)
    pixel_spacing_mm : float or (row, col)
        Detector pixel spacing.
    radii_mm : tuple of float
        Vessel radii to look for, in detector-plane mm.
    beta : float
        Blob suppression (Frangi's beta).

    Returns
    -------
    ndarray of shape (H, W), in [0, 1]
    """
    spacing = float(np.mean(pixel_spacing_mm))
    img = np.asarray(image, dtype=float)
    best = np.zeros_like(img)
    for radius in radii_mm:
        sigma = max(radius / spacing / np.sqrt(3.0), 0.7)
        hrr = ndimage.gaussian_filter(img, sigma, order=(2, 0))
        hcc = ndimage.gaussian_filter(img, sigma, order=(0, 2))
        hrc = ndimage.gaussian_filter(img, sigma, order=(1, 1))
        hrr, hcc, hrc = (sigma**2 * h for h in (hrr, hcc, hrc))  # scale normalisation
        root = np.sqrt(((hrr - hcc) / 2.0) ** 2 + hrc**2)
        mean = (hrr + hcc) / 2.0
        l_a, l_b = mean + root, mean - root
        swap = np.abs(l_a) > np.abs(l_b)
        l1 = np.where(swap, l_b, l_a)  # smaller magnitude
        l2 = np.where(swap, l_a, l_b)
        rb2 = (l1 / np.where(l2 == 0, 1e-12, l2)) ** 2
        s2 = l1**2 + l2**2
        c = 0.5 * np.sqrt(s2.max()) if s2.max() > 0 else 1.0
        v = np.exp(-rb2 / (2 * beta**2)) * (1.0 - np.exp(-s2 / (2 * c**2)))
        v[l2 <= 0] = 0.0  # dark tubes only: intensity rises across the vessel
        best = np.maximum(best, v)
    peak = best.max()
    return best / peak if peak > 0 else best


def trace_vessel(
    image: np.ndarray,
    start_px: tuple[float, float],
    end_px: tuple[float, float],
    *,
    pixel_spacing_mm: tuple[float, float] | float,
    radii_mm: tuple[float, ...] = (0.6, 1.0, 1.6, 2.4),
    margin_px: int = 40,
    step_px: float = 2.0,
    cost_power: float = 2.0,
    smooth_px: float = 1.5,
    refine: bool = True,
) -> np.ndarray:
    """Semi-automatic vessel trace between two clicked points.

    Minimal path (Dijkstra on the 8-connected pixel graph) through the cost
    ``1 / (vesselness + 0.01)``, smoothed and resampled.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Angiogram, vessels dark.
    start_px, end_px : (row, col)
        The two clicked points (start first: distal for a pullback).
    pixel_spacing_mm : float or (row, col)
    radii_mm : tuple of float
        Vessel radii in detector-plane mm.
    margin_px : int
        The search is limited to the points' bounding box grown by this margin (and by half
        their distance).
    step_px : float
        Spacing of the returned points.

    Returns
    -------
    ndarray of shape (K, 2)
        Pixel (row, col), from ``start_px`` to ``end_px``.
    """
    img = np.asarray(image, dtype=float)
    h, w = img.shape
    start = np.asarray(start_px, dtype=float)
    end = np.asarray(end_px, dtype=float)
    for label, p in (("start point", start), ("end point", end)):
        if not (0 <= p[0] < h and 0 <= p[1] < w):
            raise input_error(
                "trace", label, f"{tuple(p)} is outside the {h}x{w} image", "click inside the angiogram"
            )
    grow = int(margin_px + 0.5 * np.linalg.norm(end - start))
    r0, r1 = max(int(min(start[0], end[0])) - grow, 0), min(int(max(start[0], end[0])) + grow + 1, h)
    c0, c1 = max(int(min(start[1], end[1])) - grow, 0), min(int(max(start[1], end[1])) + grow + 1, w)
    crop = img[r0:r1, c0:c1]
    # A steep cost keeps the path on the ridge instead of cutting the inside of bends.
    cost = 1.0 / (vesselness(crop, pixel_spacing_mm=pixel_spacing_mm, radii_mm=radii_mm) + 0.02) ** cost_power
    ch, cw = crop.shape
    index = np.arange(ch * cw).reshape(ch, cw)
    rows, cols, weights = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = index[max(0, -dr) : ch - max(0, dr), max(0, -dc) : cw - max(0, dc)]
        b = index[max(0, dr) : ch + min(0, dr) or None, max(0, dc) : cw + min(0, dc) or None]
        a, b = a.ravel(), b.ravel()
        step = np.hypot(dr, dc)
        wgt = 0.5 * (cost.ravel()[a] + cost.ravel()[b]) * step
        rows += [a, b]
        cols += [b, a]
        weights += [wgt, wgt]
    graph = sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(ch * cw, ch * cw)
    )
    s_idx = int(index[int(round(start[0])) - r0, int(round(start[1])) - c0])
    e_idx = int(index[int(round(end[0])) - r0, int(round(end[1])) - c0])
    _, pred = dijkstra(graph, directed=False, indices=s_idx, return_predecessors=True)
    if pred[e_idx] < 0 and e_idx != s_idx:
        raise input_error(
            "trace",
            "end point",
            "cannot be reached from the start point",
            "click two points on the same vessel",
        )
    path = [e_idx]
    while path[-1] != s_idx:
        path.append(int(pred[path[-1]]))
    path = np.array(path[::-1])
    points = np.column_stack([path // cw + r0, path % cw + c0]).astype(float)
    points[0], points[-1] = start, end
    points = _smooth_open(_resample_polyline(points, 1.0), smooth_px)
    if refine:
        spacing = float(np.mean(pixel_spacing_mm))
        for _ in range(3):
            points = _refine_to_darkest(
                img, points, half_width_px=max(radii_mm) / spacing, smooth_px=smooth_px
            )
    return _resample_polyline(points, step_px)


def _refine_to_darkest(
    image: np.ndarray, points: np.ndarray, *, half_width_px: float, smooth_px: float
) -> np.ndarray:
    """Move each point of a trace across the vessel to the darkest point of the smoothed image.

    The minimal path hugs the inside of bends; the intensity minimum across the vessel is its
    centre for a contrast-filled tube. Ends stay where they were clicked.
    """
    smooth = ndimage.gaussian_filter(image, max(half_width_px / 3.0, 1.0))
    tangent = np.gradient(_smooth_open(points, 4.0), axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    offsets = np.arange(-half_width_px, half_width_px + 0.25, 0.25)
    samples = points[:, None, :] + offsets[None, :, None] * normal[:, None, :]
    values = ndimage.map_coordinates(smooth, [samples[..., 0], samples[..., 1]], order=1, mode="nearest")
    # Weight towards the current position so that a neighbouring vessel does not capture the point.
    values = values + (values.max() - values.min() + 1e-9) * 0.2 * (offsets / half_width_px) ** 2
    shift = offsets[np.argmin(values, axis=1)]
    shift[[0, -1]] = 0.0
    shift = ndimage.gaussian_filter1d(shift, 2.0, mode="nearest")
    moved = points + shift[:, None] * normal
    moved[[0, -1]] = points[[0, -1]]
    return _smooth_open(moved, smooth_px)


# ----------------------------------------------------------------------------- synthetic images


def render_angiogram(
    points_ras_mm: np.ndarray,
    geometry: XAGeometry,
    *,
    radius_mm: float = 1.5,
    seed: int = 0,
    noise_std: float = 40.0,
    background: float = 2400.0,
    contrast: float = 0.35,
    isocenter_offset_mm: np.ndarray | None = None,
) -> np.ndarray:
    """A synthetic angiogram: the vessel as a dark contrast-filled tube on a textured background.

    Parameters
    ----------
    points_ras_mm : ndarray of shape (K, 3), RAS mm
        Vessel centerline.
    geometry : XAGeometry
    radius_mm : float
        Lumen radius (at the vessel).
    seed : int
    noise_std : float
        Gaussian noise, grey levels.
    background : float
        Mean background grey level.
    contrast : float
        Fractional darkening of a full-diameter chord, Beer-Lambert style.

    Returns
    -------
    ndarray of shape (rows, cols), float, grey levels in 0..4095
    """
    rng = np.random.default_rng(seed)
    dense = _resample_polyline(np.asarray(points_ras_mm, dtype=float), 0.1)
    centre_px = project(dense, geometry, isocenter_offset_mm=isocenter_offset_mm)
    radius_px = radius_mm * geometry.magnification / float(np.mean(geometry.pixel_spacing_mm))
    rr, cc = np.mgrid[0 : geometry.rows, 0 : geometry.cols]
    dist, _ = cKDTree(centre_px).query(
        np.column_stack([rr.ravel(), cc.ravel()]), distance_upper_bound=3 * radius_px
    )
    dist = dist.reshape(rr.shape)
    chord = np.where(
        np.isfinite(dist), np.sqrt(np.clip(radius_px**2 - np.minimum(dist, 1e6) ** 2, 0, None)), 0.0
    )
    attenuation = np.exp(-contrast * chord / max(radius_px, 1e-9))
    texture = ndimage.gaussian_filter(rng.normal(size=rr.shape), 12.0)
    texture /= max(np.abs(texture).max(), 1e-12)
    gradient = 0.15 * (cc / geometry.cols - 0.5) + 0.1 * (rr / geometry.rows - 0.5)
    image = background * (1.0 + 0.15 * texture + gradient) * attenuation
    image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0.0, noise_std, rr.shape)
    return np.clip(image, 0, 4095)
