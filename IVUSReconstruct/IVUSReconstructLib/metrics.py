"""Clinical IVUS measurements: per-frame table, volumes, lesions, references, flags.

Definitions follow ``METRICS.md`` (Mintz 2001 ACC consensus, EAPCI 2018, SCAI 2024 peripheral
roundtable, Jayaraj 2021 venous normals). Every threshold is a field of :class:`MetricParams`
with the cited value as its default; thresholds only raise flags, never change a measurement.

Frames run distal to proximal: a larger arc length is more proximal.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .errors import input_error
from .geometry import angular_span, equivalent_diameter, signed_areas_centroids, stack_polygons
from .types import ContourSet, FrameContours, Landmark, Metrics

__all__ = [
    "MetricParams",
    "PER_FRAME_COLUMNS",
    "compute_metrics",
    "frame_geometry",
    "flatten_rows",
    "marker_points",
    "marker_positions",
    "unit_label",
]

PER_FRAME_COLUMNS: tuple[str, ...] = (
    "frame",
    "time_s",
    "arc_length_mm",
    "lumen_area_mm2",
    "vessel_area_mm2",
    "plaque_burden_percent",
    "plaque_area_mm2",
    "lumen_min_diameter_mm",
    "lumen_max_diameter_mm",
    "lumen_equivalent_diameter_mm",
    "vessel_min_diameter_mm",
    "vessel_max_diameter_mm",
    "vessel_equivalent_diameter_mm",
    "lumen_eccentricity",
    "plaque_thickness_min_mm",
    "plaque_thickness_max_mm",
    "plaque_thickness_mean_mm",
    "calcium_arc_deg",
    "stent_area_mm2",
    "stent_symmetry",
)
"""Columns of ``Metrics.per_frame`` (and of ``frames.csv`` before the pose columns)."""

_DEVICE_DIAMETERS_MM: tuple[float, ...] = (
    1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0, 8.0,
    9.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 24.0,
)  # fmt: skip


@dataclass(frozen=True)
class MetricParams:
    """Thresholds and conventions of the measurements (defaults cite ``METRICS.md``).

    Attributes
    ----------
    n_rays : int
        Rays per contour for diameters and thickness (even; 360 = 1 degree).
    lesion_burden_percent : float
        Plaque burden at or above which a frame belongs to a lesion (Mintz 2001: 40 %).
    lesion_min_length_mm : float
        Shortest lesion kept (3 mm).
    lesion_merge_mm : float
        Lesions separated by less than this merge (1.5 mm).
    reference_search_mm : float
        Reference frames are searched this far proximal / distal of a lesion (10 mm).
    reference_smoothing_frames : int
        The reference frame is the largest lumen of the area profile median-filtered over this
        many analysed frames (3), so that a single mis-segmented frame cannot be chosen; it
        reports its own areas. 1 takes the raw largest lumen.
    stenosis_reference : str
        Reference used for the area-stenosis flag and the venous reference rule:
        ``"proximal"``, ``"distal"``, ``"largest"`` or ``"mean"`` (all four are reported).
    coronary_flags : bool
        Raise the coronary MLA / area-stenosis flags.
    mla_flag_mm2 : float
        Coronary MLA flag, non-left-main (4.0 mm^2).
    area_stenosis_flag_percent : float
        Area stenosis flag (70 %).
    remodeling_positive / remodeling_negative : float
        Remodeling index above / below which remodeling is positive / negative (1.05 / 0.95).
    stent_underexpansion_percent : float
        Stent expansion below this is flagged (80 %).
    edge_burden_percent : float
        Plaque burden within ``edge_distance_mm`` outside a stent edge flagged at or above this (50 %).
    edge_distance_mm : float
        Edge segment length (5 mm).
    tav_norm_length_mm : float
        Single-pullback TAVnorm: plaque volume per mm times this length (10 mm).
    tav_cohort_median_frames : int or None
        When set, TAVnorm = sum(EEM - lumen) / n_frames * this (cohort convention).
    venous_normal_area_mm2 : dict of str to float
        Normal vein areas (Jayaraj 2021).
    venous_stenosis_flag_percent : float
        Venous area stenosis flagged at or above this (50 %).
    venous_lesion_percent : float
        Veins: a frame is compressed (part of a lesion) when its lumen area is this much below
        the adjacent reference (50 %: Gagne 2017, VIDIO); the segment keeps the lesion length
        and merge rules.
    vein_segment : str or None
        ``"common_iliac"``, ``"external_iliac"``, ``"common_femoral"`` or None (not a vein).
    balloon_diameters_mm, stent_diameters_mm : tuple of float
        Available device sizes for the sizing suggestion.
    roi_start_mm, roi_end_mm : float or None
        Region of interest in arc length; None = the whole pullback.
    lumen_outside_tolerance_mm : float
        Radial tolerance of the lumen-inside-EEM check (traced borders may touch).
    """

    n_rays: int = 360
    lesion_burden_percent: float = 40.0
    lesion_min_length_mm: float = 3.0
    lesion_merge_mm: float = 1.5
    reference_search_mm: float = 10.0
    reference_smoothing_frames: int = 3
    stenosis_reference: str = "mean"
    coronary_flags: bool = True
    mla_flag_mm2: float = 4.0
    area_stenosis_flag_percent: float = 70.0
    remodeling_positive: float = 1.05
    remodeling_negative: float = 0.95
    stent_underexpansion_percent: float = 80.0
    edge_burden_percent: float = 50.0
    edge_distance_mm: float = 5.0
    tav_norm_length_mm: float = 10.0
    tav_cohort_median_frames: int | None = None
    venous_normal_area_mm2: dict[str, float] = field(
        default_factory=lambda: {"common_iliac": 200.0, "external_iliac": 150.0, "common_femoral": 125.0}
    )
    venous_stenosis_flag_percent: float = 50.0
    venous_lesion_percent: float = 50.0
    vein_segment: str | None = None
    balloon_diameters_mm: tuple[float, ...] = _DEVICE_DIAMETERS_MM
    stent_diameters_mm: tuple[float, ...] = _DEVICE_DIAMETERS_MM
    roi_start_mm: float | None = None
    roi_end_mm: float | None = None
    lumen_outside_tolerance_mm: float = 0.01

    def to_json(self) -> dict[str, Any]:
        """Parameters as a JSON-serialisable dict (for ``summary.json``)."""
        return _clean(asdict(self))


# --------------------------------------------------------------------------- geometry


def _batch_ray_radii(p: np.ndarray, signed: np.ndarray, center: np.ndarray, n_rays: int) -> np.ndarray:
    """Radius along ``n_rays`` equally spaced rays from each centre (batched ``geometry.ray_radii``).

    Parameters
    ----------
    p : ndarray of shape (F, M, 2)
        Polygons, star-shaped about ``center``.
    signed : ndarray of shape (F,)
        Signed areas (negative = clockwise, reversed here).
    center : ndarray of shape (F, 2)
    n_rays : int

    Returns
    -------
    ndarray of shape (F, n_rays), radius at angles ``2 pi k / n_rays``.
    """
    f = len(p)
    if f == 0:
        return np.empty((0, n_rays))
    clockwise = signed < 0
    if clockwise.any():
        p = p.copy()
        p[clockwise] = p[clockwise, ::-1]
    two_pi = 2.0 * np.pi
    dx = p[..., 0] - center[:, 0:1]
    dy = p[..., 1] - center[:, 1:2]
    ang = np.arctan2(dy, dx)
    r = np.hypot(dx, dy)
    # counter-clockwise about the centre the angle from the first vertex only grows; a polygon
    # that is not star-shaped about the centre turns back, and the running maximum keeps the
    # abscissa monotone for the batched interpolation (the radius is approximate there)
    rel = np.mod(ang - ang[:, :1], two_pi)
    np.maximum.accumulate(rel, axis=1, out=rel)
    rel = np.concatenate([rel, np.full((f, 1), two_pi)], axis=1)
    r = np.concatenate([r, r[:, :1]], axis=1)
    theta = np.linspace(0.0, two_pi, n_rays, endpoint=False)
    q = np.mod(theta[None, :] - ang[:, :1], two_pi)
    # interpolate all rows at once: shift row k by 4 pi k so the flattened abscissa increases
    shift = (2.0 * two_pi) * np.arange(f)[:, None]
    return np.interp((q + shift).ravel(), (rel + shift).ravel(), r.ravel()).reshape(f, n_rays)


@dataclass(frozen=True)
class _Shape:
    """Batched measurements of one kind of contour (rows = frames that have it)."""

    rows: np.ndarray  # (F,) rows of the frame table
    area: np.ndarray  # (F,)
    centroid: np.ndarray  # (F, 2)
    radii: np.ndarray  # (F, R) about the own centroid
    min_diameter: np.ndarray
    max_diameter: np.ndarray


def _measure(polygons: list[np.ndarray], rows: np.ndarray, n_rays: int) -> _Shape:
    if not polygons:
        empty = np.empty(0)
        return _Shape(rows, empty, np.empty((0, 2)), np.empty((0, n_rays)), empty, empty)
    p, _ = stack_polygons(polygons)
    signed, centroid = signed_areas_centroids(p)
    area = np.abs(signed)
    radii = _batch_ray_radii(p, signed, centroid, n_rays)
    half = n_rays // 2
    chords = radii[:, :half] + radii[:, half : 2 * half]
    return _Shape(rows, area, centroid, radii, chords.min(axis=1), chords.max(axis=1))


def _polar_points(radii: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(F, R) radii about (F, 2) centres to (F, R, 2) points."""
    theta = np.linspace(0.0, 2.0 * np.pi, radii.shape[1], endpoint=False)
    return center[:, None, :] + radii[..., None] * np.stack([np.cos(theta), np.sin(theta)], axis=-1)


def _arc_deg(polygons: tuple[np.ndarray, ...], center: np.ndarray, *, bins: int = 3600) -> float:
    """Angle (degrees) subtended at ``center`` by the union of ``polygons``."""
    covered = np.zeros(bins, dtype=bool)
    for poly in polygons:
        if len(np.asarray(poly)) < 3:
            continue
        start, length = angular_span(poly, center)
        width = 2 * np.pi / bins
        first = int(np.round(start / width))
        last = int(np.round((start + length) / width))
        idx = np.arange(first, max(last, first + 1)) % bins
        covered[idx] = True
    return float(covered.sum() * 360.0 / bins) if covered.any() else 0.0


def frame_geometry(
    frames: tuple[FrameContours, ...] | list[FrameContours], *, n_rays: int = 360, chunk: int = 256
) -> dict[str, np.ndarray]:
    """Per-frame cross-section measurements (no along-pullback information).

    Parameters
    ----------
    frames : sequence of FrameContours, length N
        Contours in frame-plane mm.
    n_rays : int
        Rays per contour (even).

    Returns
    -------
    dict of str to ndarray of shape (N,)
        The geometric columns of :data:`PER_FRAME_COLUMNS` (areas mm^2, diameters mm,
        thickness mm, calcium arc degrees, ratios), NaN where a contour is missing, plus
        ``lumen_outside_vessel_mm`` (largest radial excursion of the lumen beyond the EEM
        along rays from the lumen centroid; <= 0 when inside) and ``lumen_centroid_x_mm`` /
        ``lumen_centroid_y_mm``.
    """
    frames = tuple(frames)
    if len(frames) > chunk:
        # chunks keep the (frames x points) temporaries in cache: about twice as fast
        parts = [_frame_geometry(frames[i : i + chunk], n_rays) for i in range(0, len(frames), chunk)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return _frame_geometry(frames, n_rays)


def _frame_geometry(frames: tuple[FrameContours, ...], n_rays: int) -> dict[str, np.ndarray]:
    n = len(frames)
    nan = np.full(n, np.nan)
    out: dict[str, np.ndarray] = {}
    rows = np.arange(n)
    lumen = _measure([f.lumen for f in frames], rows, n_rays)
    out["lumen_area_mm2"] = lumen.area.copy() if n else nan.copy()
    out["lumen_min_diameter_mm"] = lumen.min_diameter.copy() if n else nan.copy()
    out["lumen_max_diameter_mm"] = lumen.max_diameter.copy() if n else nan.copy()
    out["lumen_equivalent_diameter_mm"] = equivalent_diameter(out["lumen_area_mm2"])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["lumen_eccentricity"] = (out["lumen_max_diameter_mm"] - out["lumen_min_diameter_mm"]) / out[
            "lumen_max_diameter_mm"
        ]

    vrows = np.array([i for i, f in enumerate(frames) if f.vessel is not None], dtype=int)
    vessel = _measure([frames[i].vessel for i in vrows], vrows, n_rays)
    for key in ("vessel_area_mm2", "vessel_min_diameter_mm", "vessel_max_diameter_mm",
                "plaque_thickness_min_mm", "plaque_thickness_max_mm", "plaque_thickness_mean_mm"):  # fmt: skip
        out[key] = nan.copy()
    outside = np.full(n, np.nan)
    if len(vrows):
        out["vessel_area_mm2"][vrows] = vessel.area
        out["vessel_min_diameter_mm"][vrows] = vessel.min_diameter
        out["vessel_max_diameter_mm"][vrows] = vessel.max_diameter
        # plaque thickness along rays from the lumen centroid: re-sample the EEM about it
        vpts = _polar_points(vessel.radii, vessel.centroid)
        vsigned, _ = signed_areas_centroids(vpts)
        lc = lumen.centroid[vrows]
        rv = _batch_ray_radii(vpts, vsigned, lc, n_rays)
        rl = lumen.radii[vrows]
        thick = rv - rl
        out["plaque_thickness_min_mm"][vrows] = thick.min(axis=1)
        out["plaque_thickness_max_mm"][vrows] = thick.max(axis=1)
        out["plaque_thickness_mean_mm"][vrows] = thick.mean(axis=1)
        # how far the lumen leaves the EEM along the worst ray (<= 0 when inside)
        outside[vrows] = (rl - rv).max(axis=1)
    out["vessel_equivalent_diameter_mm"] = equivalent_diameter(out["vessel_area_mm2"])
    out["plaque_area_mm2"] = out["vessel_area_mm2"] - out["lumen_area_mm2"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["plaque_burden_percent"] = 100.0 * out["plaque_area_mm2"] / out["vessel_area_mm2"]

    calcium = nan.copy()
    for i, f in enumerate(frames):
        if f.calcium:
            calcium[i] = _arc_deg(f.calcium, lumen.centroid[i])
        elif f.calcium_arc_deg is not None:
            calcium[i] = float(f.calcium_arc_deg)
    out["calcium_arc_deg"] = calcium

    srows = np.array([i for i, f in enumerate(frames) if f.stent is not None], dtype=int)
    stent = _measure([frames[i].stent for i in srows], srows, n_rays)
    out["stent_area_mm2"] = nan.copy()
    out["stent_symmetry"] = nan.copy()
    if len(srows):
        out["stent_area_mm2"][srows] = stent.area
        out["stent_symmetry"][srows] = (stent.max_diameter - stent.min_diameter) / stent.max_diameter
    out["lumen_outside_vessel_mm"] = outside
    out["lumen_centroid_x_mm"] = lumen.centroid[:, 0] if n else nan.copy()
    out["lumen_centroid_y_mm"] = lumen.centroid[:, 1] if n else nan.copy()
    return out


# --------------------------------------------------------------------------- helpers


def _clean(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays into plain Python, NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_clean(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _fmt(value: float) -> str:
    return f"{value:g}"


def _stenosis(reference: float | None, minimum: float | None) -> float | None:
    if reference is None or minimum is None or reference <= 0:
        return None
    return 100.0 * (reference - minimum) / reference


def _stenosis_set(prox: float | None, dist: float | None, minimum: float | None) -> dict[str, float | None]:
    refs = [v for v in (prox, dist) if v is not None]
    return {
        "proximal": _stenosis(prox, minimum),
        "distal": _stenosis(dist, minimum),
        "largest": _stenosis(max(refs), minimum) if refs else None,
        "mean": _stenosis(float(np.mean(refs)), minimum) if refs else None,
    }


def _nearest_size(diameter_mm: float | None, sizes: tuple[float, ...]) -> float | None:
    if diameter_mm is None or not sizes:
        return None
    sizes_arr = np.asarray(sizes, dtype=float)
    return float(sizes_arr[int(np.argmin(np.abs(sizes_arr - diameter_mm)))])


def trapz(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoid rule of ``y`` over ``x`` (np.trapezoid of numpy >= 2, np.trapz before)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0) if len(y) > 1 else 0.0


def _cell_lengths(s: np.ndarray) -> np.ndarray:
    """Length of pullback each (sorted) frame represents: half the gap to each neighbour."""
    if len(s) < 2:
        return np.zeros(len(s))
    gaps = np.diff(s)
    cell = np.zeros(len(s))
    cell[:-1] += gaps / 2.0
    cell[1:] += gaps / 2.0
    return cell


@dataclass(frozen=True)
class _Along:
    """Frames of the region of interest in pullback order (arc length increasing)."""

    rows: np.ndarray  # rows of the per-frame table, sorted by arc length
    s: np.ndarray
    frame: np.ndarray
    table: dict[str, np.ndarray]
    branch_s: np.ndarray  # arc lengths of side-branch landmarks

    def col(self, key: str) -> np.ndarray:
        return self.table[key][self.rows]

    def point(self, i: int | None) -> dict[str, Any] | None:
        """Frame summary of position ``i`` in this order."""
        if i is None:
            return None
        row = self.rows[i]
        return {
            "frame": int(self.frame[i]),
            "arc_length_mm": float(self.s[i]),
            "lumen_area_mm2": _num(self.table["lumen_area_mm2"][row]),
            "vessel_area_mm2": _num(self.table["vessel_area_mm2"][row]),
        }


def _reference_window(
    along: _Along, start_mm: float, end_mm: float, search_mm: float, smoothing_frames: int = 1
) -> tuple[int | None, int | None]:
    """Positions of the proximal / distal reference frames of a segment [start_mm, end_mm].

    The reference is the frame with the largest lumen within ``search_mm`` outside the
    segment, not beyond a side-branch landmark (the branch frame itself excluded).
    """
    s = along.s
    lumen = along.col("lumen_area_mm2")
    prox_limit = end_mm + search_mm
    branches = along.branch_s[(along.branch_s > end_mm) & (along.branch_s <= prox_limit)]
    prox_mask = (s > end_mm) & (s <= prox_limit)
    if len(branches):
        prox_mask &= s < branches.min()
    dist_limit = start_mm - search_mm
    branches = along.branch_s[(along.branch_s < start_mm) & (along.branch_s >= dist_limit)]
    dist_mask = (s < start_mm) & (s >= dist_limit)
    if len(branches):
        dist_mask &= s > branches.max()

    # the frame is chosen on the lumen-area profile median-filtered over neighbouring frames, so
    # that one frame whose border went astray cannot become the reference; the reference
    # reports that frame's own areas
    robust = lumen
    if smoothing_frames > 1 and np.isfinite(lumen).sum() >= smoothing_frames:
        robust = ndimage.median_filter(
            np.where(np.isfinite(lumen), lumen, 0.0), size=smoothing_frames, mode="nearest"
        )

    def best(mask: np.ndarray) -> int | None:
        idx = np.flatnonzero(mask & np.isfinite(lumen))
        return int(idx[np.argmax(robust[idx])]) if len(idx) else None

    return best(prox_mask), best(dist_mask)


def _references_from_stenosis(
    along: _Along, mla_i: int, prox_i: int | None, dist_i: int | None, params: MetricParams
) -> tuple[int | None, int | None]:
    """The reference on a side where the segment leaves no frame outside it, from the stenosis.

    Mintz 2001 takes each reference as the largest lumen proximal / distal to the stenosis
    within the same segment (usually within 10 mm, no major branch between), noting that it may
    not be the site with the least plaque. A lesion that runs to the end of the analysed range
    (the pullback ends at the guiding catheter in a diffusely diseased proximal vessel) leaves
    no frame beyond it on that side; the reference is then the largest lumen between the
    minimum lumen and that end, within ``reference_search_mm`` of the minimum lumen. A side
    that has a reference outside the segment keeps it.
    """
    if prox_i is not None and dist_i is not None:
        return prox_i, dist_i
    s_mla = float(along.s[mla_i])
    near_prox, near_dist = _reference_window(
        along, s_mla, s_mla, params.reference_search_mm, params.reference_smoothing_frames
    )
    return (near_prox if prox_i is None else prox_i), (near_dist if dist_i is None else dist_i)


def _reference_inside_lesion_flags(lesion: dict[str, Any]) -> list[dict[str, Any]]:
    """A flag for each reference of ``lesion`` taken inside it (:func:`_references_from_stenosis`)."""
    flags = []
    for side, ref in lesion["references"].items():
        if ref is not None and lesion["start_mm"] <= ref["arc_length_mm"] <= lesion["end_mm"]:
            flags.append({
                "rule": f"{side}_reference_inside_lesion",
                "message": f"lesion {lesion['id']} runs to the {side} end of the analysed range: its {side} "
                           f"reference (frame {ref['frame']}, lumen {ref['lumen_area_mm2']:.1f} mm2) lies inside "
                           f"the lesion, the largest lumen {side} of the minimum lumen; check it on the images",
                "frames": [ref["frame"]],
            })  # fmt: skip
    return flags


def _segment_metrics(
    along: _Along, start_mm: float, end_mm: float, mla_i: int, params: MetricParams
) -> dict[str, Any]:
    """References, stenosis and remodeling of a segment whose minimum lumen is at ``mla_i``."""
    prox_i, dist_i = _reference_window(
        along, start_mm, end_mm, params.reference_search_mm, params.reference_smoothing_frames
    )
    prox_i, dist_i = _references_from_stenosis(along, mla_i, prox_i, dist_i, params)
    prox, dist = along.point(prox_i), along.point(dist_i)
    mla = float(along.col("lumen_area_mm2")[mla_i])

    def eq_d(area: float | None) -> float | None:
        return None if area is None else float(equivalent_diameter(area))

    prox_lumen = prox["lumen_area_mm2"] if prox else None
    dist_lumen = dist["lumen_area_mm2"] if dist else None
    result: dict[str, Any] = {
        "references": {"proximal": prox, "distal": dist},
        "area_stenosis_percent": _stenosis_set(prox_lumen, dist_lumen, mla),
        "diameter_stenosis_percent": _stenosis_set(eq_d(prox_lumen), eq_d(dist_lumen), eq_d(mla)),
    }
    ref_eem = [p["vessel_area_mm2"] for p in (prox, dist) if p and p["vessel_area_mm2"] is not None]
    lesion_eem = _num(along.col("vessel_area_mm2")[mla_i])
    index = lesion_eem / float(np.mean(ref_eem)) if ref_eem and lesion_eem is not None else None
    result["remodeling_index"] = index
    if index is None:
        result["remodeling"] = None
    elif index > params.remodeling_positive:
        result["remodeling"] = "positive"
    elif index < params.remodeling_negative:
        result["remodeling"] = "negative"
    else:
        result["remodeling"] = "intermediate"
    return result


def _find_lesions(along: _Along, params: MetricParams) -> list[tuple[int, int]]:
    """Lesions as (first, last) positions in ``along`` (inclusive)."""
    burden = along.col("plaque_burden_percent")
    valid = np.flatnonzero(np.isfinite(burden))
    if not len(valid):
        return []
    return _merged_runs(along.s, valid, burden[valid] >= params.lesion_burden_percent, params)


def _merged_runs(
    s_all: np.ndarray, valid: np.ndarray, hit: np.ndarray, params: MetricParams
) -> list[tuple[int, int]]:
    """Runs of ``hit`` over the ``valid`` positions, merged and length-filtered (inclusive)."""
    runs: list[list[int]] = []
    for k, is_hit in enumerate(hit):
        if not is_hit:
            continue
        if runs and runs[-1][1] == k - 1:
            runs[-1][1] = k
        else:
            runs.append([k, k])
    s = s_all[valid]
    merged: list[list[int]] = []
    for run in runs:
        if merged and s[run[0]] - s[merged[-1][1]] < params.lesion_merge_mm:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    return [
        (int(valid[a]), int(valid[b])) for a, b in merged if s[b] - s[a] >= params.lesion_min_length_mm - 1e-9
    ]


def _find_venous_lesions(along: _Along, params: MetricParams) -> list[tuple[int, int]]:
    """Compressed vein segments: frames whose lumen is ``venous_lesion_percent`` below the reference.

    The reference is the mean of the proximal and distal reference lumen areas of the segment
    around the smallest lumen; segment and references are refined together until they agree
    (the references move out of the compression's tapering ends).
    """
    lumen = along.col("lumen_area_mm2")
    valid = np.flatnonzero(np.isfinite(lumen))
    if not len(valid):
        return []
    robust = lumen
    if params.reference_smoothing_frames > 1 and len(valid) >= params.reference_smoothing_frames:
        robust = ndimage.median_filter(np.where(np.isfinite(lumen), lumen, np.inf),
                                       size=params.reference_smoothing_frames, mode="nearest")  # fmt: skip
    centre = int(valid[np.argmin(robust[valid])])
    s = along.s
    a = b = centre
    low = np.zeros(len(lumen), dtype=bool)
    for _ in range(12):
        prox, dist = _reference_window(along, float(s[a]), float(s[b]), params.reference_search_mm,
                                       params.reference_smoothing_frames)  # fmt: skip
        refs = [float(lumen[k]) for k in (prox, dist) if k is not None]
        if not refs:
            return []
        with np.errstate(invalid="ignore"):
            low = np.isfinite(lumen) & (lumen < (1.0 - params.venous_lesion_percent / 100.0) * float(np.mean(refs)))
        if not low[centre]:
            return []
        na, nb = centre, centre
        while na > 0 and low[na - 1]:
            na -= 1
        while nb < len(low) - 1 and low[nb + 1]:
            nb += 1
        if (na, nb) == (a, b):
            break
        a, b = na, nb
    return _merged_runs(s, valid, low[valid], params)


# --------------------------------------------------------------------------- sections


def _check_inputs(
    n: int, arc_length_mm: np.ndarray, frame_times_s: np.ndarray | None, params: MetricParams
) -> tuple[np.ndarray, np.ndarray]:
    """Arc lengths and frame times of ``n`` frames as float arrays, or an input error."""
    s_all = np.asarray(arc_length_mm, dtype=float).reshape(-1)
    if len(s_all) != n:
        raise input_error(
            "arc_length_mm", "length", f"is {len(s_all)} for {n} frames", "give one position per frame"
        )
    if n == 0:
        raise input_error("contours", "frames", "are empty", "give at least one frame with a lumen contour")
    if not np.all(np.isfinite(s_all)):
        raise input_error("arc_length_mm", "values", "contain NaN", "give a finite position for every frame")
    if params.vein_segment is not None and params.vein_segment not in params.venous_normal_area_mm2:
        raise input_error(
            "parameters", "vein_segment", f"{params.vein_segment!r} is unknown",
            f"use one of {sorted(params.venous_normal_area_mm2)}",
        )  # fmt: skip
    if params.stenosis_reference not in ("proximal", "distal", "largest", "mean"):
        raise input_error("parameters", "stenosis_reference", f"{params.stenosis_reference!r} is unknown",
                          "use proximal, distal, largest or mean")  # fmt: skip

    if params.n_rays < 4 or params.n_rays % 2:
        # diameters pair each ray with the opposite one
        raise input_error("parameters", "n_rays", f"is {params.n_rays}", "use an even number of at least 4")
    times = (
        np.full(n, np.nan) if frame_times_s is None else np.asarray(frame_times_s, dtype=float).reshape(-1)
    )
    if len(times) != n:
        raise input_error(
            "frame_times_s", "length", f"is {len(times)} for {n} frames", "give one time per frame"
        )
    return s_all, times


def _region_of_interest(
    per_frame: dict[str, np.ndarray], landmarks: tuple[Landmark, ...], params: MetricParams
) -> _Along:
    """Frames within the region of interest in pullback order, with the side-branch positions.

    Parameters
    ----------
    per_frame : dict of str to ndarray of shape (N,)
        The per-frame table (``frame`` and ``arc_length_mm`` are used here).
    landmarks : tuple of Landmark
        All landmarks; those of kind ``side_branch`` are placed on the arc length by frame number.
    params : MetricParams
        ``roi_start_mm`` / ``roi_end_mm`` bound the region.
    """
    s_all = per_frame["arc_length_mm"]
    order = np.argsort(s_all, kind="stable")
    lo = -np.inf if params.roi_start_mm is None else params.roi_start_mm
    hi = np.inf if params.roi_end_mm is None else params.roi_end_mm
    rows = order[(s_all[order] >= lo) & (s_all[order] <= hi)]
    if not len(rows):
        raise input_error("parameters", "roi_start_mm/roi_end_mm", f"[{lo}, {hi}] mm holds no frame",
                          f"choose a range within {s_all.min():.1f}..{s_all.max():.1f} mm")  # fmt: skip
    index = per_frame["frame"]
    branch_frames = np.array([lm.frame for lm in landmarks if lm.kind == "side_branch"], dtype=float)
    idx_sorted = np.argsort(index)
    branch_s = (
        np.interp(branch_frames, index[idx_sorted].astype(float), s_all[idx_sorted])
        if len(branch_frames)
        else np.empty(0)
    )
    return _Along(rows=rows, s=s_all[rows], frame=index[rows], table=per_frame, branch_s=branch_s)


def _volumes(along: _Along, params: MetricParams) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Volumes, PAV and TAVnorm of the region, and the flag of frames without a vessel contour."""
    s = along.s
    lumen = along.col("lumen_area_mm2")
    vessel = along.col("vessel_area_mm2")
    has_vessel = np.isfinite(vessel)
    all_vessel = bool(has_vessel.all())
    any_vessel = bool(has_vessel.any())
    summary: dict[str, Any] = {}
    flags: list[dict[str, Any]] = []
    length = float(s[-1] - s[0])
    vol_lumen = float(trapz(lumen, s)) if len(s) > 1 else 0.0
    vol_vessel = float(trapz(vessel, s)) if all_vessel and len(s) > 1 else None
    vol_plaque = vol_vessel - vol_lumen if vol_vessel is not None else None
    summary["volumes_mm3"] = {"lumen": vol_lumen, "vessel": vol_vessel, "plaque": vol_plaque}
    summary["volumes_definition"] = "trapezoid rule of the areas over arc length"
    if any_vessel:
        pa = (vessel - lumen)[has_vessel]
        summary["pav_percent"] = _num(100.0 * pa.sum() / vessel[has_vessel].sum())
    else:
        summary["pav_percent"] = None
    if params.tav_cohort_median_frames is not None and any_vessel:
        summary["tav_norm_mm3"] = float(pa.sum() / len(pa) * params.tav_cohort_median_frames)
        summary["tav_norm_definition"] = (
            f"sum(EEM - lumen) / n_frames x cohort median n_frames ({params.tav_cohort_median_frames})"
        )
    else:
        summary["tav_norm_mm3"] = (
            vol_plaque / length * params.tav_norm_length_mm if vol_plaque is not None and length > 0 else None
        )
        summary["tav_norm_definition"] = (
            f"plaque volume / analysed length x {_fmt(params.tav_norm_length_mm)} mm (single-pullback convention)"
        )
    if any_vessel and not all_vessel:
        missing = along.frame[~has_vessel]
        flags.append({
            "rule": "vessel_missing",
            "message": f"{len(missing)} of {len(s)} frames have no vessel (EEM) contour: vessel and plaque "
                       "volumes are not reported; burden-based results use the frames that have one",
            "frames": missing.tolist(),
        })  # fmt: skip
    return summary, flags


def _lesions(along: _Along, params: MetricParams) -> list[dict[str, Any]]:
    """Lesions of the region, each with its extent, MLA, burden, plaque volume and references.

    Arteries: runs of plaque burden >= ``lesion_burden_percent``; veins: compressed segments
    (:func:`_find_venous_lesions`). Both merged and length-filtered.
    """
    s = along.s
    lumen = along.col("lumen_area_mm2")
    vessel = along.col("vessel_area_mm2")
    has_vessel = np.isfinite(vessel)
    burden = along.col("plaque_burden_percent")
    lesions: list[dict[str, Any]] = []
    found = _find_venous_lesions(along, params) if params.vein_segment is not None else _find_lesions(along, params)
    for k, (a, b) in enumerate(found, start=1):
        seg = np.arange(a, b + 1)
        li = int(seg[np.nanargmin(lumen[seg])])
        lesion = {
            "id": k,
            "start_frame": int(along.frame[a]),
            "end_frame": int(along.frame[b]),
            "start_mm": float(s[a]),
            "end_mm": float(s[b]),
            "length_mm": float(s[b] - s[a]),
            "mla_mm2": float(lumen[li]),
            "mla_frame": int(along.frame[li]),
            "mla_arc_length_mm": float(s[li]),
            "max_burden_percent": _num(np.nanmax(burden[seg])) if np.isfinite(burden[seg]).any() else None,
            "plaque_volume_mm3": _num(trapz((vessel - lumen)[seg], s[seg])) if has_vessel[seg].all() and b > a
            else None,
        }  # fmt: skip
        lesion.update(_segment_metrics(along, float(s[a]), float(s[b]), li, params))
        lesions.append(lesion)
    return lesions


def _main_segment(
    along: _Along, lesions: list[dict[str, Any]], mla_i: int, params: MetricParams
) -> tuple[dict[str, Any], float]:
    """References, stenosis and remodeling of the main segment, and the MLA they are measured at.

    The main segment is the lesion holding the smallest lumen, else the MLA frame itself
    (position ``mla_i`` in ``along``).

    Returns
    -------
    summary : dict
        ``main_lesion_id``, ``references``, ``area_stenosis_percent``,
        ``diameter_stenosis_percent``, ``remodeling_index``, ``remodeling``, ``reference_definition``.
    stenosis_mla : float
        Lumen area, mm^2, the stenosis is measured at.
    """
    summary: dict[str, Any] = {}
    if lesions:
        main = min(lesions, key=lambda les: les["mla_mm2"])
        summary["main_lesion_id"] = main["id"]
        seg_metrics = {k: main[k] for k in ("references", "area_stenosis_percent", "diameter_stenosis_percent",
                                             "remodeling_index", "remodeling")}  # fmt: skip
        stenosis_mla = main["mla_mm2"]
    else:
        summary["main_lesion_id"] = None
        s_mla = float(along.s[mla_i])
        seg_metrics = _segment_metrics(along, s_mla, s_mla, mla_i, params)
        stenosis_mla = float(along.col("lumen_area_mm2")[mla_i])
    summary.update(seg_metrics)
    summary["reference_definition"] = (
        f"largest lumen within {_fmt(params.reference_search_mm)} mm proximal / distal of "
        + ("the lesion with the smallest lumen" if lesions else "the minimum lumen area (no lesion found)")
        + ", not beyond a side-branch landmark"
        + (
            f", chosen on the lumen-area profile median-filtered over {params.reference_smoothing_frames} frames"
            if params.reference_smoothing_frames > 1
            else ""
        )
        + "; a lesion that runs to the end of the analysed range takes that side's reference between its "
        "minimum lumen and that end (Mintz 2001: the largest lumen proximal / distal to the stenosis)"
    )
    return summary, stenosis_mla


def _calcium(along: _Along) -> dict[str, Any]:
    """Calcified length (frames with an arc > 0, each its cell of pullback), largest arc, frame count."""
    arc = along.col("calcium_arc_deg")
    calcified = np.isfinite(arc) & (arc > 0)
    return {
        "length_mm": float(_cell_lengths(along.s)[calcified].sum()) if calcified.any() else 0.0,
        "max_arc_deg": _num(np.nanmax(arc)) if np.isfinite(arc).any() else None,
        "frames": int(calcified.sum()),
    }


def _stent(along: _Along, params: MetricParams) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Stent extent, minimum area, expansion against the references, edge burden, and their flags.

    None (and no flag) when no frame of the region has a stent contour.
    """
    s = along.s
    lumen = along.col("lumen_area_mm2")
    burden = along.col("plaque_burden_percent")
    stent_area = along.col("stent_area_mm2")
    stented = np.isfinite(stent_area)
    flags: list[dict[str, Any]] = []
    if not stented.any():
        return None, flags
    pos = np.flatnonzero(stented)
    smin = int(pos[np.argmin(stent_area[pos])])
    s0, s1 = float(s[pos[0]]), float(s[pos[-1]])
    prox_i, dist_i = _reference_window(
        along, s0, s1, params.reference_search_mm, params.reference_smoothing_frames
    )
    ref_lumen = [lumen[i] for i in (prox_i, dist_i) if i is not None]
    expansion = float(100.0 * stent_area[smin] / np.mean(ref_lumen)) if ref_lumen else None
    prox_edge = np.flatnonzero((s > s1) & (s <= s1 + params.edge_distance_mm) & np.isfinite(burden))
    dist_edge = np.flatnonzero((s < s0) & (s >= s0 - params.edge_distance_mm) & np.isfinite(burden))
    edge = {
        "proximal": _num(burden[prox_edge].max()) if len(prox_edge) else None,
        "distal": _num(burden[dist_edge].max()) if len(dist_edge) else None,
    }
    stent = {
        "start_mm": s0,
        "end_mm": s1,
        "length_mm": s1 - s0,
        "min_area_mm2": float(stent_area[smin]),
        "min_area_frame": int(along.frame[smin]),
        "min_area_arc_length_mm": float(s[smin]),
        "references": {"proximal": along.point(prox_i), "distal": along.point(dist_i)},
        "expansion_percent": expansion,
        "expansion_definition": "minimum stent area / mean reference lumen area x 100",
        "edge_burden_percent": edge,
        "edge_burden_definition": f"largest plaque burden within {_fmt(params.edge_distance_mm)} mm "
                                  "outside each stent edge",
    }  # fmt: skip
    if expansion is not None and expansion < params.stent_underexpansion_percent:
        flags.append({
            "rule": f"stent_expansion_below_{_fmt(params.stent_underexpansion_percent)}",
            "message": f"stent expansion {expansion:.1f}% < {_fmt(params.stent_underexpansion_percent)}% "
                       f"(minimum stent area {stent_area[smin]:.2f} mm2 at frame {int(along.frame[smin])})",
        })  # fmt: skip
    for side, value in edge.items():
        if value is not None and value >= params.edge_burden_percent:
            flags.append({
                "rule": f"edge_burden_above_{_fmt(params.edge_burden_percent)}",
                "message": f"{side} stent edge: plaque burden {value:.1f}% >= "
                           f"{_fmt(params.edge_burden_percent)}% within {_fmt(params.edge_distance_mm)} mm",
            })  # fmt: skip
    return stent, flags


def _device_sizing(
    references: dict[str, dict[str, Any] | None], per_frame: dict[str, np.ndarray], params: MetricParams
) -> dict[str, Any]:
    """Balloon (1:1 to the EEM) and stent (to the lumen) sizes at the proximal and distal references."""
    index = per_frame["frame"]
    sizing: dict[str, Any] = {}
    for side in ("proximal", "distal"):
        ref = references[side]
        if ref is None:
            sizing[side] = None
            continue
        row = int(np.flatnonzero(index == ref["frame"])[0])
        eem_d = _num(
            (per_frame["vessel_min_diameter_mm"][row] + per_frame["vessel_max_diameter_mm"][row]) / 2.0
        )
        lum_d = _num(
            (per_frame["lumen_min_diameter_mm"][row] + per_frame["lumen_max_diameter_mm"][row]) / 2.0
        )
        sizing[side] = {
            "frame": ref["frame"],
            "vessel_mean_diameter_mm": eem_d,
            "lumen_mean_diameter_mm": lum_d,
            "balloon_diameter_mm": _nearest_size(eem_d, params.balloon_diameters_mm),
            "stent_diameter_mm": _nearest_size(lum_d, params.stent_diameters_mm),
        }
    sizing["definition"] = (
        "mean diameter = (min + max) / 2 at each reference; balloon 1:1 to the EEM, stent (graft) to the "
        "lumen, rounded to the nearest available size"
    )
    return sizing


def _venous(
    stenosis_mla: float, chosen: float | None, params: MetricParams
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Venous stenosis against the segment's normal area and the chosen reference, and its flags.

    None (and no flag) unless ``params.vein_segment`` is set. ``chosen`` is the area stenosis,
    percent, against ``params.stenosis_reference``.
    """
    flags: list[dict[str, Any]] = []
    if params.vein_segment is None:
        return None, flags
    normal = float(params.venous_normal_area_mm2[params.vein_segment])
    vs_normal = 100.0 * (1.0 - stenosis_mla / normal)
    venous = {
        "segment": params.vein_segment,
        "normal_area_mm2": normal,
        "mla_mm2": stenosis_mla,
        "stenosis_vs_normal_percent": vs_normal,
        "stenosis_vs_reference_percent": chosen,
        "reference": params.stenosis_reference,
    }
    thr = params.venous_stenosis_flag_percent
    if vs_normal >= thr:
        flags.append({
            "rule": f"venous_stenosis_vs_normal_{_fmt(thr)}",
            "message": f"MLA {stenosis_mla:.1f} mm2 is a {vs_normal:.0f}% area stenosis against the "
                       f"{params.vein_segment.replace('_', ' ')} vein normal {normal:g} mm2 (>= {_fmt(thr)}%)",
        })  # fmt: skip
    if chosen is not None and chosen >= thr:
        flags.append({
            "rule": f"venous_stenosis_vs_reference_{_fmt(thr)}",
            "message": f"{chosen:.0f}% area stenosis against the {params.stenosis_reference} reference "
                       f"(>= {_fmt(thr)}%)",
        })  # fmt: skip
    return venous, flags


def _coronary_flags(mla: dict[str, Any], chosen: float | None, params: MetricParams) -> list[dict[str, Any]]:
    """MLA and area-stenosis flags of an artery (none for a vein or with ``coronary_flags`` off)."""
    flags: list[dict[str, Any]] = []
    if not params.coronary_flags or params.vein_segment is not None:
        return flags
    if mla["area_mm2"] < params.mla_flag_mm2:
        flags.append({
            "rule": f"mla_below_{_fmt(params.mla_flag_mm2)}mm2",
            "message": f"MLA {mla['area_mm2']:.2f} mm2 at frame {mla['frame']} "
                       f"({mla['arc_length_mm']:.1f} mm) < {_fmt(params.mla_flag_mm2)} mm2 "
                       "(non-left-main threshold)",
        })  # fmt: skip
    if chosen is not None and chosen > params.area_stenosis_flag_percent:
        flags.append({
            "rule": f"area_stenosis_above_{_fmt(params.area_stenosis_flag_percent)}",
            "message": f"area stenosis {chosen:.0f}% ({params.stenosis_reference} reference) > "
                       f"{_fmt(params.area_stenosis_flag_percent)}%",
        })  # fmt: skip
    return flags


def _lumen_outside_flags(
    excess_mm: np.ndarray, frame: np.ndarray, params: MetricParams
) -> list[dict[str, Any]]:
    """A flag listing the frames whose lumen border leaves the vessel border beyond the tolerance."""
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(excess_mm > params.lumen_outside_tolerance_mm)
    if not len(bad):
        return []
    listed = ", ".join(str(int(frame[i])) for i in bad[:20]) + (" ..." if len(bad) > 20 else "")
    return [{
        "rule": "lumen_outside_vessel",
        "message": f"lumen border outside the vessel (EEM) border by up to {excess_mm[bad].max():.2f} mm on "
                   f"{len(bad)} frame(s): {listed}; check the contours",
        "frames": [int(frame[i]) for i in bad],
    }]  # fmt: skip


# --------------------------------------------------------------------------- main


def compute_metrics(
    contours: ContourSet,
    arc_length_mm: np.ndarray,
    *,
    frame_times_s: np.ndarray | None = None,
    params: MetricParams = MetricParams(),  # noqa: B008 - frozen, immutable default
    landmarks: tuple[Landmark, ...] = (),
) -> Metrics:
    """Measure every frame and summarise along the pullback.

    Parameters
    ----------
    contours : ContourSet
        N analysed frames, frame-plane mm. Frames may lack a vessel (EEM) contour: their
        vessel columns are NaN and vessel-based summaries use the frames that have one
        (volumes of vessel and plaque are null unless every frame of the region has one).
    arc_length_mm : ndarray of shape (N,)
        Position of each frame along the pullback, mm (larger = more proximal).
    frame_times_s : ndarray of shape (N,), optional
        Acquisition time of each frame (``time_s`` column; NaN when not given).
    params : MetricParams
    landmarks : tuple of Landmark
        Extra landmarks (``kind == "side_branch"`` bounds the reference search), added to
        ``contours.landmarks``.

    Returns
    -------
    Metrics
        ``per_frame`` with :data:`PER_FRAME_COLUMNS`; ``summary`` (JSON-serialisable, no NaN)
        with ``volumes_mm3``, ``pav_percent``, ``tav_norm_mm3``, ``mla``, ``references``,
        ``area_stenosis_percent``, ``diameter_stenosis_percent``, ``remodeling_index``,
        ``calcium``, ``stent``, ``device_sizing``, ``venous``, ``lesions``, ``flags``.

    Raises
    ------
    IVUSInputError
        When the arrays do not match the frames or a parameter is invalid.
    """
    frames = contours.frames
    s_all, times = _check_inputs(len(frames), arc_length_mm, frame_times_s, params)
    geo = frame_geometry(frames, n_rays=params.n_rays)
    per_frame: dict[str, np.ndarray] = {}
    for key in PER_FRAME_COLUMNS:
        if key == "frame":
            per_frame[key] = np.array([f.index for f in frames], dtype=int)
        elif key == "time_s":
            per_frame[key] = times
        elif key == "arc_length_mm":
            per_frame[key] = s_all
        else:
            per_frame[key] = geo[key]

    along = _region_of_interest(per_frame, tuple(contours.landmarks) + tuple(landmarks), params)
    s = along.s
    summary: dict[str, Any] = {
        "n_frames": int(len(along.rows)),
        "roi": {"start_mm": float(s[0]), "end_mm": float(s[-1]), "length_mm": float(s[-1] - s[0])},
    }
    volumes, flags = _volumes(along, params)
    summary.update(volumes)
    lumen = along.col("lumen_area_mm2")
    mla_i = int(np.nanargmin(lumen))
    summary["mla"] = {"area_mm2": float(lumen[mla_i]), "frame": int(along.frame[mla_i]),
                      "arc_length_mm": float(s[mla_i])}  # fmt: skip
    lesions = _lesions(along, params)
    main, stenosis_mla = _main_segment(along, lesions, mla_i, params)
    summary.update(main)
    if lesions:
        flags += _reference_inside_lesion_flags(next(les for les in lesions if les["id"] == main["main_lesion_id"]))
    summary["calcium"] = _calcium(along)
    summary["stent"], stent_flags = _stent(along, params)
    summary["device_sizing"] = _device_sizing(summary["references"], per_frame, params)
    chosen = summary["area_stenosis_percent"][params.stenosis_reference]
    summary["venous"], venous_flags = _venous(stenosis_mla, chosen, params)
    flags += stent_flags + venous_flags + _coronary_flags(summary["mla"], chosen, params)
    flags += _lumen_outside_flags(geo["lumen_outside_vessel_mm"], per_frame["frame"], params)

    summary["lesions"] = lesions
    summary["flags"] = flags
    summary["metric_parameters"] = params.to_json()
    summary = _clean(summary)
    return Metrics(per_frame=per_frame, summary=summary, lesions=summary["lesions"], flags=summary["flags"])


# ----------------------------------------------------------------------------- summary as rows and markers


def flatten_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A (nested) summary as ``(key, value)`` text rows: ``mla.area_mm2``, ``lesions[0].length_mm``.

    Dicts nest with ``.``, lists of dicts with ``[i]``; other values are JSON text (strings as they are).
    """
    rows: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            rows += flatten_rows(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        for i, item in enumerate(value):
            rows += flatten_rows(item, f"{prefix}[{i}]")
    else:
        rows.append((prefix, json.dumps(value, default=float) if not isinstance(value, str) else value))
    return rows


def unit_label(column: str) -> str:
    """The display unit of a per-frame column from its name's unit suffix (``mm²`` for ``_mm2``), or ""."""
    if not column.endswith(("_mm", "_mm2", "_mm3", "_s", "_percent", "_deg")):
        return ""
    unit = column.rsplit("_", 1)[-1]
    return {"mm2": "mm²", "mm3": "mm³", "percent": "%", "deg": "°"}.get(unit, unit)


def marker_points(summary: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(label, frame, description) of the MLA and the references found in a summary."""
    points = []
    mla = summary.get("mla") or {}
    if mla.get("frame") is not None:
        area = mla.get("area_mm2")
        label = f"MLA {area:.2f} mm2" if isinstance(area, (int, float)) else "MLA"
        points.append((label, int(mla["frame"]), "minimal lumen area"))
    for side in ("proximal", "distal"):
        ref = (summary.get("references") or {}).get(side) or {}
        if ref.get("frame") is not None:
            points.append((f"{side.capitalize()} reference", int(ref["frame"]), f"{side} reference frame"))
    return points


def marker_positions(
    summary: dict[str, Any], rows: dict[int, dict[str, str]]
) -> list[tuple[str, np.ndarray, str]]:
    """:func:`marker_points` placed at their frames' plane origins (``x_mm``, ``y_mm``, ``z_mm`` of
    frames.csv ``rows`` by frame): (label, position (3,) RAS mm, description); frames without a
    finite origin are left out."""
    points = []
    for label, frame, description in marker_points(summary):
        row = rows.get(frame)
        if row is not None and all(row.get(k) not in (None, "") for k in ("x_mm", "y_mm", "z_mm")):
            position = np.array([float(row["x_mm"]), float(row["y_mm"]), float(row["z_mm"])])
            if np.all(np.isfinite(position)):
                points.append((label, position, description))
    return points
