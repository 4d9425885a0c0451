"""Small pure functions on closed planar polygons and frame-plane coordinates.

Polygons are ndarrays of shape (M, 2), closed implicitly (first point not repeated).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "polygon_area",
    "polygon_centroid",
    "polygon_perimeter",
    "close_polygon",
    "open_polygon",
    "resample_polygon",
    "polar_polygon",
    "ray_radii",
    "mm_to_px",
    "px_to_mm",
    "equivalent_diameter",
]


def open_polygon(points: np.ndarray) -> np.ndarray:
    """Drop a repeated closing point.

    Parameters
    ----------
    points : ndarray of shape (M, 2)

    Returns
    -------
    ndarray of shape (M, 2) or (M - 1, 2)
    """
    points = np.asarray(points, dtype=float)
    if len(points) > 1 and np.allclose(points[0], points[-1]):
        return points[:-1]
    return points


def close_polygon(points: np.ndarray) -> np.ndarray:
    """Append the first point, ndarray of shape (M + 1, 2)."""
    points = open_polygon(points)
    return np.vstack([points, points[:1]])


def polygon_area(points: np.ndarray) -> float:
    """Unsigned shoelace area, in the squared unit of ``points``.

    Parameters
    ----------
    points : ndarray of shape (M, 2)
    """
    p = open_polygon(points)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def signed_area(points: np.ndarray) -> float:
    """Signed shoelace area: positive when counter-clockwise in (x, y)."""
    p = open_polygon(points)
    x, y = p[:, 0], p[:, 1]
    return float((np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def polygon_centroid(points: np.ndarray) -> np.ndarray:
    """Area centroid, ndarray of shape (2,).

    Falls back to the vertex mean for degenerate (zero-area) polygons.
    """
    p = open_polygon(points)
    x, y = p[:, 0], p[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-12:
        return p.mean(axis=0)
    return np.array([((x + xn) * cross).sum(), ((y + yn) * cross).sum()]) / (6.0 * a)


def polygon_perimeter(points: np.ndarray) -> float:
    """Perimeter of the closed polygon."""
    p = close_polygon(points)
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def resample_polygon(points: np.ndarray, n_points: int, *, start_angle_deg: float | None = 0.0) -> np.ndarray:
    """Resample a closed polygon to ``n_points`` equally spaced by arc length.

    The result runs counter-clockwise in (x, y). With ``start_angle_deg`` set, it starts
    where the ray from the centroid at that angle (counter-clockwise from +x) leaves the
    polygon, so that consecutive contours correspond point by point without twist.

    Parameters
    ----------
    points : ndarray of shape (M, 2)
    n_points : int
    start_angle_deg : float or None

    Returns
    -------
    ndarray of shape (n_points, 2)
    """
    p = open_polygon(points)
    if signed_area(p) < 0:
        p = p[::-1]
    if start_angle_deg is not None:
        c = polygon_centroid(p)
        ang = np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0])
        target = np.deg2rad(start_angle_deg)
        k = int(np.argmin(np.abs(np.angle(np.exp(1j * (ang - target))))))
        p = np.roll(p, -k, axis=0)
    closed = np.vstack([p, p[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.linspace(0.0, s[-1], n_points, endpoint=False)
    return np.column_stack([np.interp(t, s, closed[:, 0]), np.interp(t, s, closed[:, 1])])


def polar_polygon(radii_mm: np.ndarray, *, center_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Polygon from radii at equally spaced angles (counter-clockwise from +x).

    Parameters
    ----------
    radii_mm : ndarray of shape (A,)
    center_mm : (x, y)

    Returns
    -------
    ndarray of shape (A, 2), mm
    """
    radii_mm = np.asarray(radii_mm, dtype=float)
    theta = np.linspace(0.0, 2.0 * np.pi, len(radii_mm), endpoint=False)
    return np.column_stack([center_mm[0] + radii_mm * np.cos(theta), center_mm[1] + radii_mm * np.sin(theta)])


def ray_radii(points: np.ndarray, center: np.ndarray, n_angles: int) -> np.ndarray:
    """Distance from ``center`` to a star-shaped polygon along equally spaced rays.

    Parameters
    ----------
    points : ndarray of shape (M, 2)
        A polygon that is star-shaped about ``center``.
    center : ndarray of shape (2,)
    n_angles : int

    Returns
    -------
    ndarray of shape (n_angles,)
        Radius at angles ``2 pi k / n_angles`` counter-clockwise from +x.
    """
    p = open_polygon(points) - np.asarray(center, dtype=float)
    ang = np.unwrap(np.arctan2(p[:, 1], p[:, 0]))
    if ang[-1] < ang[0]:
        p, ang = p[::-1], ang[::-1]
    r = np.hypot(p[:, 0], p[:, 1])
    # close the loop over one full turn so interpolation wraps
    ang = np.concatenate([ang, ang[:1] + 2 * np.pi])
    r = np.concatenate([r, r[:1]])
    theta = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
    theta = ang[0] + np.mod(theta - ang[0], 2 * np.pi)
    return np.interp(theta, ang, r)


def mm_to_px(
    points_mm: np.ndarray, pixel_spacing_mm: tuple[float, float], catheter_center_px: tuple[float, float]
) -> np.ndarray:
    """Frame-plane mm (x, y) to pixel (row, col), ndarray of shape (M, 2)."""
    points_mm = np.asarray(points_mm, dtype=float)
    row = catheter_center_px[0] + points_mm[:, 1] / pixel_spacing_mm[0]
    col = catheter_center_px[1] + points_mm[:, 0] / pixel_spacing_mm[1]
    return np.column_stack([row, col])


def px_to_mm(
    points_px: np.ndarray, pixel_spacing_mm: tuple[float, float], catheter_center_px: tuple[float, float]
) -> np.ndarray:
    """Pixel (row, col) to frame-plane mm (x, y), ndarray of shape (M, 2)."""
    points_px = np.asarray(points_px, dtype=float)
    x = (points_px[:, 1] - catheter_center_px[1]) * pixel_spacing_mm[1]
    y = (points_px[:, 0] - catheter_center_px[0]) * pixel_spacing_mm[0]
    return np.column_stack([x, y])


def equivalent_diameter(area_mm2: float | np.ndarray) -> float | np.ndarray:
    """Diameter of the circle of the same area, 2 sqrt(A / pi)."""
    return 2.0 * np.sqrt(np.asarray(area_mm2) / np.pi)
