"""Segmentation accuracy: compare predicted contours with reference contours.

The measures of the 2011 MICCAI IVUS segmentation challenge (Balocco et al., Comput Med
Imaging Graph 2014): Jaccard index, Dice coefficient, Hausdorff distance, mean surface
distance and percentage of area difference, per frame and summarised, for the lumen and
the vessel (EEM) borders, on the frames present in both contour sets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from .geometry import close_polygon, open_polygon, polygon_area, rasterize_polygon_px
from .types import ContourSet

__all__ = [
    "MEASURES",
    "rasterize_polygon",
    "overlap_indices",
    "surface_distances_mm",
    "compare_polygons",
    "evaluate_contours",
]

MEASURES = (
    "jaccard",
    "dice",
    "hausdorff_mm",
    "mean_surface_distance_mm",
    "area_difference_percent",
)


def rasterize_polygon(
    points_mm: np.ndarray, origin_mm: tuple[float, float], shape: tuple[int, int], pixel_size_mm: float
) -> np.ndarray:
    """Inside mask of a closed polygon on a regular grid (even-odd rule at pixel centres).

    Parameters
    ----------
    points_mm : ndarray of shape (M, 2), mm
        Polygon (x, y), closed implicitly.
    origin_mm : (x, y)
        Position of the lower corner of pixel (0, 0).
    shape : (rows, cols)
        Grid size; rows run along y, columns along x.
    pixel_size_mm : float

    Returns
    -------
    ndarray of shape (rows, cols), bool
    """
    p = np.asarray(points_mm, dtype=float)
    # pixel (r, c) has its centre at origin + (c + 0.5, r + 0.5) pixels
    rows = (p[:, 1] - origin_mm[1]) / pixel_size_mm - 0.5
    cols = (p[:, 0] - origin_mm[0]) / pixel_size_mm - 0.5
    return rasterize_polygon_px(np.column_stack([rows, cols]), shape)


def _grid_for(
    polygons: list[np.ndarray], pixel_size_mm: float
) -> tuple[tuple[float, float], tuple[int, int]]:
    allp = np.vstack(polygons)
    lo = allp.min(axis=0) - 2 * pixel_size_mm
    hi = allp.max(axis=0) + 2 * pixel_size_mm
    cols, rows = np.ceil((hi - lo) / pixel_size_mm).astype(int)
    return (float(lo[0]), float(lo[1])), (int(rows), int(cols))


def overlap_indices(
    pred_mm: np.ndarray, truth_mm: np.ndarray, *, pixel_size_mm: float = 0.01
) -> tuple[float, float]:
    """Jaccard index and Dice coefficient of two closed polygons.

    Parameters
    ----------
    pred_mm, truth_mm : ndarray of shape (M, 2), mm
    pixel_size_mm : float
        Raster step used to measure the areas.

    Returns
    -------
    (jaccard, dice) : floats in [0, 1]
    """
    origin, shape = _grid_for([pred_mm, truth_mm], pixel_size_mm)
    a = rasterize_polygon(pred_mm, origin, shape, pixel_size_mm)
    b = rasterize_polygon(truth_mm, origin, shape, pixel_size_mm)
    inter = float(np.count_nonzero(a & b))
    union = float(np.count_nonzero(a | b))
    total = float(np.count_nonzero(a) + np.count_nonzero(b))
    jaccard = inter / union if union > 0 else 1.0
    dice = 2.0 * inter / total if total > 0 else 1.0
    return jaccard, dice


def _densify(points_mm: np.ndarray, step_mm: float) -> np.ndarray:
    p = close_polygon(points_mm)
    seg = np.diff(p, axis=0)
    n = np.maximum(1, np.ceil(np.linalg.norm(seg, axis=1) / step_mm).astype(int))
    t = np.concatenate([np.arange(k) / k for k in n])
    start = np.repeat(p[:-1], n, axis=0)
    return start + np.repeat(seg, n, axis=0) * t[:, None]


def surface_distances_mm(
    a_mm: np.ndarray, b_mm: np.ndarray, *, step_mm: float = 0.005
) -> tuple[float, float]:
    """Hausdorff and mean symmetric surface distance between two closed polygon borders.

    Parameters
    ----------
    a_mm, b_mm : ndarray of shape (M, 2), mm
    step_mm : float
        Borders are sampled at least this finely.

    Returns
    -------
    (hausdorff_mm, mean_surface_distance_mm) : floats
    """
    pa = _densify(a_mm, step_mm)
    pb = _densify(b_mm, step_mm)
    # Distance to the other border's dense samples; the residual error is <= step / 2.
    d_ab = cKDTree(pb).query(pa)[0]
    d_ba = cKDTree(pa).query(pb)[0]
    hausdorff = float(max(d_ab.max(), d_ba.max()))
    mean_surface = float((d_ab.mean() + d_ba.mean()) / 2.0)
    return hausdorff, mean_surface


def compare_polygons(
    pred_mm: np.ndarray, truth_mm: np.ndarray, *, pixel_size_mm: float = 0.01
) -> dict[str, float]:
    """All measures of :data:`MEASURES` for one pair of borders.

    Parameters
    ----------
    pred_mm, truth_mm : ndarray of shape (M, 2), mm
    pixel_size_mm : float

    Returns
    -------
    dict of str to float
    """
    pred_mm = open_polygon(pred_mm)
    truth_mm = open_polygon(truth_mm)
    jaccard, dice = overlap_indices(pred_mm, truth_mm, pixel_size_mm=pixel_size_mm)
    hausdorff, msd = surface_distances_mm(pred_mm, truth_mm, step_mm=pixel_size_mm / 2.0)
    area_true = polygon_area(truth_mm)
    area_diff = abs(polygon_area(pred_mm) - area_true) / area_true * 100.0 if area_true > 0 else float("nan")
    return {
        "jaccard": jaccard,
        "dice": dice,
        "hausdorff_mm": hausdorff,
        "mean_surface_distance_mm": msd,
        "area_difference_percent": area_diff,
    }


def evaluate_contours(pred: ContourSet, truth: ContourSet, *, pixel_size_mm: float = 0.01) -> dict[str, Any]:
    """Compare two contour sets frame by frame, on the frames present in both.

    Parameters
    ----------
    pred, truth : ContourSet
        Contours in frame-plane mm.
    pixel_size_mm : float
        Raster step of the overlap measures.

    Returns
    -------
    dict
        ``{"frames": [...], "per_frame": {"lumen": {"frame": [...], "jaccard": [...], ...},
        "vessel": {...}}, "summary": {"lumen": {"jaccard": {"mean", "std", "min", "max"}, ...,
        "n_frames": n}, "vessel": {...}}}``. The vessel entries cover the common frames where
        both sets have a vessel border. All values are plain Python numbers (JSON-ready).
    """
    truth_by_index = {f.index: f for f in truth.frames}
    common = [f for f in pred.frames if f.index in truth_by_index]
    per_frame: dict[str, dict[str, list]] = {}
    for structure in ("lumen", "vessel"):
        rows: dict[str, list] = {"frame": [], **{m: [] for m in MEASURES}}
        for f in common:
            a = getattr(f, structure)
            b = getattr(truth_by_index[f.index], structure)
            if a is None or b is None or len(a) < 3 or len(b) < 3:
                continue
            values = compare_polygons(a, b, pixel_size_mm=pixel_size_mm)
            rows["frame"].append(int(f.index))
            for m in MEASURES:
                rows[m].append(float(values[m]))
        per_frame[structure] = rows
    summary: dict[str, dict[str, Any]] = {}
    for structure, rows in per_frame.items():
        s: dict[str, Any] = {"n_frames": len(rows["frame"])}
        for m in MEASURES:
            v = np.asarray(rows[m], dtype=float)
            if v.size:
                s[m] = {
                    "mean": float(np.mean(v)),
                    "std": float(np.std(v)),
                    "min": float(np.min(v)),
                    "max": float(np.max(v)),
                }
            else:
                s[m] = {"mean": None, "std": None, "min": None, "max": None}
        summary[structure] = s
    return {"frames": [int(f.index) for f in common], "per_frame": per_frame, "summary": summary}
