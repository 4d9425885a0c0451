"""Vessel meshes: loft the posed contours into closed triangle surfaces.

- ``lumen`` and ``vessel``: closed tubes with flat end caps, outward-facing triangles;
- ``wall``: the closed solid between them (vessel surface facing out, lumen surface facing
  in, annular end caps), whose volume is the plaque + media volume.

Every surface carries the point arrays ``frame_index``, ``arc_length_mm``,
``plaque_thickness_mm`` (in-plane distance from a lumen point to the vessel border, or from a
vessel point to the lumen border; NaN without vessel contours) and ``plaque_burden_percent``,
plus any per-frame column given in ``per_frame``. The field data ``folded_frame_index`` lists
the frames whose plane crossed the previous one inside the vessel (tight bends; see
:func:`unfold_rings`).

VTK is imported as ``vtkmodules.*`` only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from .errors import IVUSCancelled, input_error
from .geometry import polygon_area, resample_polygon
from .types import ContourSet, FramePoses, VesselMesh

__all__ = [
    "build_meshes",
    "loft_rings",
    "unfold_rings",
    "mesh_report",
    "write_mesh",
    "MESH_SUFFIXES",
]

MESH_SUFFIXES = (".vtp", ".vtk", ".stl", ".obj", ".ply", ".glb", ".gltf")


# ---------------------------------------------------------------------------------------
# rings and folds


def _rings_world(rings_mm: np.ndarray, poses: FramePoses, rows: np.ndarray) -> np.ndarray:
    """Frame-plane rings (F, n, 2) to world (F, n, 3) with the poses' rows ``rows``."""
    local = rings_mm - poses.offset_mm[rows][:, None, :]
    return poses.origin_ras_mm[rows][:, None, :] + np.einsum("fnk,fik->fni", local, poses.axes_ras[rows])


def unfold_rings(
    rings_ras_mm: np.ndarray, normals: np.ndarray, *, min_step_mm: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Make every ring point advance along the vessel, fixing planes that cross at bends.

    Where the radius of curvature of the centerline is smaller than the vessel radius, the
    planes of consecutive frames intersect inside the vessel and a plain loft folds back on
    itself on the inner side of the bend. Each longitudinal strand of ring points is swept
    from distal to proximal and a point that does not advance at least ``min_step_mm`` along
    the mean normal of its two frames is pushed forward along that normal; the inner side
    of the bend is compressed instead of turned inside out.

    Parameters
    ----------
    rings_ras_mm : ndarray of shape (F, n, 3)
    normals : ndarray of shape (F, 3)
        Unit plane normals (pullback direction).
    min_step_mm : float

    Returns
    -------
    rings : ndarray of shape (F, n, 3)
        Adjusted copy.
    folded : ndarray of shape (F,), bool
        Rings with at least one moved point.
    """
    rings = np.array(rings_ras_mm, dtype=float, copy=True)
    f = len(rings)
    folded = np.zeros(f, dtype=bool)
    if f < 2:
        return rings, folded
    mean_n = normals[:-1] + normals[1:]
    mean_n /= np.maximum(np.linalg.norm(mean_n, axis=1, keepdims=True), 1e-12)
    # quick vectorised test first: most pullbacks never fold
    steps = np.einsum("fni,fi->fn", np.diff(rings, axis=0), mean_n)
    if steps.min() >= min_step_mm:
        return rings, folded
    for j in range(f - 1):
        step = np.einsum("ni,i->n", rings[j + 1] - rings[j], mean_n[j])
        short = step < min_step_mm
        if short.any():
            rings[j + 1, short] += (min_step_mm - step[short])[:, None] * mean_n[j]
            folded[j + 1] = True
    return rings, folded


# ---------------------------------------------------------------------------------------
# lofting


def _tube_triangles(n_rings: int, n: int) -> np.ndarray:
    j = np.arange(n_rings - 1)[:, None]
    k = np.arange(n)[None, :]
    a = j * n + k
    b = j * n + (k + 1) % n
    c = (j + 1) * n + (k + 1) % n
    d = (j + 1) * n + k
    tri = np.stack([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], axis=2)
    return tri.reshape(-1, 3)


def _cap_triangles(ring_start: int, n: int, center: int, *, at_start: bool) -> np.ndarray:
    k = np.arange(n)
    a, b = ring_start + k, ring_start + (k + 1) % n
    c = np.full(n, center)
    return np.column_stack([c, b, a] if at_start else [c, a, b])


def _signed_volume(points: np.ndarray, triangles: np.ndarray, *, chunk: int = 1_000_000) -> float:
    """Divergence-theorem volume, positive for outward-facing triangles (chunked: big meshes)."""
    total = 0.0
    for start in range(0, len(triangles), chunk):
        t = triangles[start : start + chunk]
        a, b, c = points[t[:, 0]], points[t[:, 1]], points[t[:, 2]]
        total += float(
            np.sum(
                a[:, 0] * (b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1])
                + a[:, 1] * (b[:, 2] * c[:, 0] - b[:, 0] * c[:, 2])
                + a[:, 2] * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
            )
        )
    return total / 6.0


def _runs_forward(rings: np.ndarray) -> bool:
    """True when the rings advance along the direction about which they turn counter-clockwise.

    Then the canonical triangle order of :func:`loft_rings` faces outward; mirrored frames
    give clockwise rings.
    """
    first = rings[0] - rings[0].mean(axis=0)
    turn = np.cross(first, np.roll(first, -1, axis=0)).sum(axis=0)
    # local advance (the far end may lie in any direction on a tortuous vessel)
    centres = rings.mean(axis=1)
    moved = np.linalg.norm(centres[1:] - centres[0], axis=1) > 1e-9 * (1.0 + np.abs(first).max())
    if not moved.any():
        return True
    advance = centres[1 + int(np.argmax(moved))] - centres[0]
    return float(turn @ advance) >= 0.0


def loft_rings(rings_ras_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed, outward-oriented triangle surface through rings, with flat end caps.

    Parameters
    ----------
    rings_ras_mm : ndarray of shape (F, n, 3)
        F >= 2 rings of n points, corresponding point by point.

    Returns
    -------
    points : ndarray of shape (F * n + 2, 3)
        Ring points, then the centroid of the first and of the last ring (cap centres).
    triangles : ndarray of shape (2 n (F - 1) + 2 n, 3), int
    """
    f, n, _ = rings_ras_mm.shape
    points = np.vstack(
        [rings_ras_mm.reshape(-1, 3), rings_ras_mm[0].mean(axis=0), rings_ras_mm[-1].mean(axis=0)]
    )
    triangles = np.vstack(
        [
            _tube_triangles(f, n),
            _cap_triangles(0, n, f * n, at_start=True),
            _cap_triangles((f - 1) * n, n, f * n + 1, at_start=False),
        ]
    )
    if not _runs_forward(rings_ras_mm):
        # rings running clockwise about the normal (mirrored frames): turn every triangle
        triangles = triangles[:, ::-1]
    return points, np.ascontiguousarray(triangles)


def _loft_wall(vessel: np.ndarray, lumen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Closed solid between two ring stacks (F, n, 3): vessel out, lumen in, annular caps."""
    f, n, _ = vessel.shape
    points = np.vstack([vessel.reshape(-1, 3), lumen.reshape(-1, 3)])
    off = f * n
    tube = _tube_triangles(f, n)
    k = np.arange(n)
    k1 = (k + 1) % n
    v0, l0 = k, off + k
    v0n, l0n = k1, off + k1
    vl, ll = (f - 1) * n + k, off + (f - 1) * n + k
    vln, lln = (f - 1) * n + k1, off + (f - 1) * n + k1
    triangles = np.vstack(
        [
            tube,
            (tube + off)[:, ::-1],
            np.column_stack([v0n, v0, l0]),
            np.column_stack([v0n, l0, l0n]),
            np.column_stack([vl, vln, lln]),
            np.column_stack([vl, lln, ll]),
        ]
    )
    if not _runs_forward(vessel):
        triangles = triangles[:, ::-1]
    return points, np.ascontiguousarray(triangles)


# ---------------------------------------------------------------------------------------
# per-point values


def _ray_thickness(
    queries: np.ndarray, targets: np.ndarray, centre: np.ndarray, *, inside: bool
) -> np.ndarray:
    """Distance along rays from ``centre`` between each query ring point and the target ring.

    METRICS.md: plaque thickness is measured along rays from the lumen centroid. The ray
    through each query point is intersected exactly with the target polygon edge that spans
    its angle (one searchsorted over all frames, rows shifted apart by 4 pi).

    Parameters
    ----------
    queries : ndarray of shape (F, n, 2)
    targets : ndarray of shape (F, m, 2)
        Closed counter-clockwise polygons, star-shaped about ``centre`` (edges whose angle
        runs backwards are skipped).
    centre : ndarray of shape (F, 2)
    inside : bool
        True when the queries lie inside the targets (lumen points to the vessel border).

    Returns
    -------
    ndarray of shape (F, n), mm, >= 0
    """
    f, n, _ = queries.shape
    m = targets.shape[1]
    cx, cy = centre[:, :1], centre[:, 1:]
    qx, qy = queries[..., 0] - cx, queries[..., 1] - cy
    tx = np.empty((f, m + 1))
    ty = np.empty((f, m + 1))
    tx[:, :m] = targets[..., 0] - cx
    ty[:, :m] = targets[..., 1] - cy
    tx[:, m], ty[:, m] = tx[:, 0], ty[:, 0]
    phi = np.arctan2(ty, tx)
    step = np.diff(phi, axis=1)
    step = np.mod(step + np.pi, 2.0 * np.pi) - np.pi
    phi[:, 1:] = phi[:, :1] + np.cumsum(np.maximum(step, 0.0), axis=1)
    theta = phi[:, :1] + np.mod(np.arctan2(qy, qx) - phi[:, :1], 2.0 * np.pi)
    row_shift = (4.0 * np.pi) * np.arange(f)[:, None]
    table = (phi + row_shift).ravel()
    k = np.searchsorted(table, (theta + row_shift).ravel(), side="right") - 1
    # stay inside the row: the last vertex (closing point) starts no edge
    row0 = np.repeat(np.arange(f) * (m + 1), n)
    k = np.clip(k, row0, row0 + m - 1)
    ax, ay = tx.ravel()[k], ty.ravel()[k]
    ex, ey = tx.ravel()[k + 1] - ax, ty.ravel()[k + 1] - ay
    dx, dy = qx.ravel(), qy.ravel()
    denom = dx * ey - dy * ex
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = (ax * ey - ay * ex) / denom
    r = np.sqrt(dx * dx + dy * dy)
    out = (lam - 1.0) * r if inside else (1.0 - lam) * r
    out = np.where(np.isfinite(out), out, 0.0)
    return np.maximum(out, 0.0).reshape(f, n)


def _tube_volume6(rings: np.ndarray, centre: np.ndarray) -> float:
    """Six times the signed volume of the tube triangles of :func:`loft_rings` (no caps).

    Divergence theorem over the triangles (a, b, c), (a, c, d) of each quad, written on the
    ring array (no index gather): a . ((b - d) x c), relative to ``centre`` for precision.
    """
    r = rings - centre
    nxt = np.roll(r, -1, axis=1)
    a, d = r[:-1], r[1:]
    b, c = nxt[:-1], nxt[1:]
    u = b - d
    cross_x = u[..., 1] * c[..., 2] - u[..., 2] * c[..., 1]
    cross_y = u[..., 2] * c[..., 0] - u[..., 0] * c[..., 2]
    cross_z = u[..., 0] * c[..., 1] - u[..., 1] * c[..., 0]
    return float(np.sum(a[..., 0] * cross_x) + np.sum(a[..., 1] * cross_y) + np.sum(a[..., 2] * cross_z))


def _triangles_volume6(points: np.ndarray, triangles: np.ndarray, centre: np.ndarray) -> float:
    a, b, c = (points[triangles[:, i]] - centre for i in range(3))
    return float(np.sum(np.einsum("ij,ij->i", a, np.cross(b, c))))


def _point_arrays(values: dict[str, np.ndarray]) -> list:
    from vtkmodules.util.numpy_support import numpy_to_vtk

    arrays = []
    for name, v in values.items():
        v = np.ascontiguousarray(v)
        array = numpy_to_vtk(v, deep=True)
        array.SetName(name)
        arrays.append(array)
    return arrays


def _cell_array(triangles: np.ndarray, offsets: np.ndarray | None = None):
    """vtkCellArray of triangles sharing the numpy buffers (32-bit ids when they fit)."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    dtype = np.int32 if triangles.size and int(triangles.max()) < 2**31 - 1 and 3 * len(triangles) < 2**31 - 1 else np.int64
    conn = np.ascontiguousarray(triangles, dtype=dtype).reshape(-1)
    if offsets is None or offsets.dtype != dtype or len(offsets) != len(triangles) + 1:
        offsets = np.arange(0, 3 * len(triangles) + 1, 3, dtype=dtype)
    cells = vtkCellArray()
    # deep=False: VTK keeps a reference to the numpy buffers (no copy of 100 MB arrays)
    if not cells.SetData(numpy_to_vtk(offsets, deep=False), numpy_to_vtk(conn, deep=False)):
        from vtkmodules.util.numpy_support import numpy_to_vtkIdTypeArray

        cells.SetData(
            numpy_to_vtkIdTypeArray(offsets.astype(np.int64), deep=True),
            numpy_to_vtkIdTypeArray(conn.astype(np.int64), deep=True),
        )
    return cells


def _polydata(
    points: np.ndarray,
    triangles: np.ndarray,
    point_values: dict[str, np.ndarray],
    folded: np.ndarray,
    *,
    cells=None,
    field_values: dict[str, float] | None = None,
):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    poly = vtkPolyData()
    vtk_points = vtkPoints()
    vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=float), deep=False))
    poly.SetPoints(vtk_points)
    poly.SetPolys(cells if cells is not None else _cell_array(triangles))
    for name, v in point_values.items():
        array = numpy_to_vtk(np.ascontiguousarray(v), deep=False)
        array.SetName(name)
        poly.GetPointData().AddArray(array)
    folded_array = numpy_to_vtk(np.ascontiguousarray(folded, dtype=np.int32), deep=True)
    folded_array.SetName("folded_frame_index")
    poly.GetFieldData().AddArray(folded_array)
    for name, value in (field_values or {}).items():
        array = numpy_to_vtk(np.array([value], dtype=float), deep=True)
        array.SetName(name)
        poly.GetFieldData().AddArray(array)
    return poly


# ---------------------------------------------------------------------------------------
# public entry


def build_meshes(
    contours: ContourSet,
    poses: FramePoses,
    *,
    n_points: int = 72,
    per_frame: Mapping[str, np.ndarray] | None = None,
    fix_folds: bool = True,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> VesselMesh:
    """Loft lumen and vessel contours placed by ``poses`` into closed surfaces.

    Parameters
    ----------
    contours : ContourSet
        Frame-plane mm. Frames without a pose are skipped; at least 2 must remain.
    poses : FramePoses
        From :func:`coregistration.place_frames`; rings are lofted in arc-length order.
    n_points : int
        Points per ring. Every contour is resampled counter-clockwise starting at angle 0
        (frame-plane +x seen from its centroid) so consecutive rings do not twist.
    per_frame : dict of str to ndarray of shape (len(contours.frames),), optional
        Per-frame values (e.g. ``Metrics.per_frame``) aligned with ``contours.frames``; numeric
        columns become point arrays. ``plaque_burden_percent`` is computed from the areas
        when not given.
    fix_folds : bool
        Adjust ring points where frame planes cross inside the vessel (see
        :func:`unfold_rings`); crossings are listed in field data ``folded_frame_index``
        either way.
    progress : callable(fraction, message), optional
    cancel : threading.Event, optional

    Returns
    -------
    VesselMesh
        ``lumen`` always; ``vessel`` and ``wall`` when every frame has a vessel contour.

    Raises
    ------
    IVUSInputError
        Fewer than 2 posed frames.
    """
    if progress:
        progress(0.0, "meshes: resampling contours")
    row_of = {int(i): r for r, i in enumerate(poses.frame_index)}
    used = [(c, row_of[c.index]) for c in contours.frames if c.index in row_of]
    if len(used) < 2:
        raise input_error(
            "contours",
            "frames",
            f"only {len(used)} frame(s) have a position on the centerline",
            "give at least 2 frames",
        )
    used.sort(key=lambda cr: (poses.arc_length_mm[cr[1]], cr[0].index))
    position_in_contours = {id(c): i for i, c in enumerate(contours.frames)}
    frames = [c for c, _ in used]
    rows = np.array([r for _, r in used])
    columns = np.array([position_in_contours[id(c)] for c in frames])
    has_vessel = all(c.vessel is not None for c in frames)
    n = int(n_points)

    lumen_mm = np.stack([resample_polygon(c.lumen, n, start_angle_deg=0.0) for c in frames])
    vessel_mm = (
        np.stack([resample_polygon(c.vessel, n, start_angle_deg=0.0) for c in frames]) if has_vessel else None
    )
    _check_cancel(cancel)
    if progress:
        progress(0.3, "meshes: placing rings")

    normals = poses.normal_ras[rows]
    lumen_w = _rings_world(lumen_mm, poses, rows)
    folded_l = np.zeros(len(frames), dtype=bool)
    folded_v = np.zeros(len(frames), dtype=bool)
    if fix_folds:
        lumen_w, folded_l = unfold_rings(lumen_w, normals)
    vessel_w = None
    if vessel_mm is not None:
        vessel_w = _rings_world(vessel_mm, poses, rows)
        if fix_folds:
            vessel_w, folded_v = unfold_rings(vessel_w, normals)
    if not fix_folds:
        folded_l = _folds(lumen_w, normals)
        folded_v = _folds(vessel_w, normals) if vessel_w is not None else folded_v
    frame_idx = np.array([c.index for c in frames])
    folded = frame_idx[folded_l | folded_v]
    _check_cancel(cancel)
    if progress:
        progress(0.5, "meshes: per-point values")

    # per-frame values (aligned with `frames`)
    per_frame_values: dict[str, np.ndarray] = {}
    for key, column in (per_frame or {}).items():
        column = np.asarray(column)
        if (
            column.ndim == 1
            and len(column) == len(contours.frames)
            and np.issubdtype(column.dtype, np.number)
        ):
            per_frame_values[key] = column[columns].astype(float)
    per_frame_values.pop("frame", None)
    per_frame_values.pop("frame_index", None)
    per_frame_values.pop("arc_length_mm", None)
    if "plaque_burden_percent" not in per_frame_values:
        if has_vessel:
            a_l = np.array([polygon_area(c.lumen) for c in frames])
            a_v = np.array([polygon_area(c.vessel) for c in frames])
            per_frame_values["plaque_burden_percent"] = 100.0 * (1.0 - a_l / np.where(a_v > 0, a_v, np.nan))
        else:
            per_frame_values["plaque_burden_percent"] = np.full(len(frames), np.nan)
    if has_vessel:
        thick_l = _distance_to_polylines(lumen_mm, vessel_mm)
        thick_v = _distance_to_polylines(vessel_mm, lumen_mm)
    else:
        thick_l = np.full((len(frames), n), np.nan)
        thick_v = thick_l
    arc = poses.arc_length_mm[rows]

    def ring_values(thickness: np.ndarray, *, caps: bool) -> dict[str, np.ndarray]:
        values = {
            "frame_index": np.repeat(frame_idx, n).astype(np.int32),
            "arc_length_mm": np.repeat(arc, n),
            "plaque_thickness_mm": thickness.reshape(-1),
        }
        for key, column in per_frame_values.items():
            values[key] = np.repeat(column, n)
        if caps:
            ends = [0, len(frames) - 1]
            values["frame_index"] = np.concatenate([values["frame_index"], frame_idx[ends].astype(np.int32)])
            values["arc_length_mm"] = np.concatenate([values["arc_length_mm"], arc[ends]])
            with np.errstate(all="ignore"):
                centre_thickness = np.array(
                    [np.nanmean(thickness[e]) if np.isfinite(thickness[e]).any() else np.nan for e in ends]
                )
            values["plaque_thickness_mm"] = np.concatenate([values["plaque_thickness_mm"], centre_thickness])
            for key, column in per_frame_values.items():
                values[key] = np.concatenate([values[key], column[ends]])
        return values

    pts, tri = loft_rings(lumen_w)
    lumen_poly = _polydata(pts, tri, ring_values(thick_l, caps=True), folded)
    vessel_poly = wall_poly = None
    if vessel_w is not None:
        _check_cancel(cancel)
        if progress:
            progress(0.7, "meshes: vessel and wall")
        pts, tri = loft_rings(vessel_w)
        vessel_poly = _polydata(pts, tri, ring_values(thick_v, caps=True), folded)
        pts, tri = _loft_wall(vessel_w, lumen_w)
        v_values = ring_values(thick_v, caps=False)
        l_values = ring_values(thick_l, caps=False)
        wall_values = {key: np.concatenate([v_values[key], l_values[key]]) for key in v_values}
        wall_poly = _polydata(pts, tri, wall_values, folded)
    if progress:
        progress(1.0, "meshes: done")
    return VesselMesh(lumen=lumen_poly, vessel=vessel_poly, wall=wall_poly)


def _folds(rings: np.ndarray | None, normals: np.ndarray) -> np.ndarray:
    if rings is None:
        return np.zeros(len(normals), dtype=bool)
    mean_n = normals[:-1] + normals[1:]
    mean_n /= np.maximum(np.linalg.norm(mean_n, axis=1, keepdims=True), 1e-12)
    steps = np.einsum("fni,fi->fn", np.diff(rings, axis=0), mean_n)
    return np.concatenate([[False], (steps <= 0).any(axis=1)])


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("mesh building cancelled")


# ---------------------------------------------------------------------------------------
# checks and files


def _triangles_of(polydata) -> np.ndarray:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    polys = polydata.GetPolys()
    offsets = vtk_to_numpy(polys.GetOffsetsArray()).astype(np.int64)
    conn = vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
    if len(offsets) > 1 and not np.all(np.diff(offsets) == 3):
        raise ValueError("mesh_report expects a triangle mesh")
    return conn.reshape(-1, 3)


def mesh_report(polydata) -> dict:
    """Topology and volume of a triangle surface.

    Parameters
    ----------
    polydata : vtkPolyData
        Triangles.

    Returns
    -------
    dict
        ``n_points``, ``n_triangles``, ``n_boundary_edges``, ``n_nonmanifold_edges``,
        ``closed`` (no boundary, no non-manifold edge), ``manifold``,
        ``consistently_oriented`` (every interior edge used once in each direction), ``volume_mm3``
        (``vtkMassProperties``), ``signed_volume_mm3`` (divergence theorem; positive when the
        triangles face outward), ``outward`` / ``outward_normals`` (closed, consistent and
        positive), ``area_mm2``, ``n_folded_frames`` (from field data ``folded_frame_index``).
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkFiltersCore import vtkMassProperties

    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    tri = _triangles_of(polydata)
    # every edge use once, as (undirected key, direction bit); one sort finds boundary edges
    # (used once), non-manifold edges (used > 2 times) and orientation (used once each way)
    # without vtkFeatureEdges' per-edge cost on multi-million-triangle meshes
    u = tri.ravel()
    v = tri[:, [1, 2, 0]].ravel()
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    keys = np.sort((lo * np.int64(len(points) + 1) + hi) * 2 + (u < v))
    undirected = keys >> 1
    starts = np.flatnonzero(np.concatenate([[True], undirected[1:] != undirected[:-1]]))
    counts = np.diff(np.concatenate([starts, [len(keys)]]))
    n_boundary = int(np.sum(counts == 1))
    n_nonmanifold = int(np.sum(counts > 2))
    pairs = starts[counts == 2]
    consistent = bool(
        n_nonmanifold == 0 and np.all((keys[pairs] & 1) == 0) and np.all((keys[pairs + 1] & 1) == 1)
    )
    signed = _signed_volume(points, tri)
    mass = vtkMassProperties()
    mass.SetInputData(polydata)
    mass.Update()
    closed = n_boundary == 0 and n_nonmanifold == 0
    folded = polydata.GetFieldData().GetArray("folded_frame_index")
    return {
        "n_points": int(polydata.GetNumberOfPoints()),
        "n_triangles": int(len(tri)),
        "n_boundary_edges": int(n_boundary),
        "n_nonmanifold_edges": int(n_nonmanifold),
        "closed": bool(closed),
        "manifold": bool(n_nonmanifold == 0),
        "consistently_oriented": consistent,
        "volume_mm3": float(mass.GetVolume()),
        "signed_volume_mm3": float(signed),
        "outward": bool(closed and consistent and signed > 0),
        "outward_normals": bool(closed and consistent and signed > 0),
        "area_mm2": float(mass.GetSurfaceArea()),
        "n_folded_frames": 0 if folded is None else int(folded.GetNumberOfTuples()),
    }


def write_mesh(polydata, path: str | Path) -> Path:
    """Write a surface in world RAS mm, format by suffix.

    ``.vtp`` (field data ``SPACE`` = ``RAS``), ``.vtk`` (header ``SPACE=RAS``), ``.stl``
    (binary, header ``SPACE=RAS``), ``.ply`` (comment ``SPACE=RAS``), ``.obj`` (first-line
    comment ``SPACE=RAS``) are tagged the way 3D Slicer reads model coordinate systems, so
    Slicer does not take them as LPS. ``.gltf`` (buffers inlined) and ``.glb`` (binary container), glTF 2.0 for web
    viewers, hold RAS coordinates untagged (glTF itself assumes +y up).

    Parameters
    ----------
    polydata : vtkPolyData
    path : path-like

    Returns
    -------
    Path
    """
    from vtkmodules.vtkCommonCore import vtkStringArray
    from vtkmodules.vtkCommonDataModel import vtkPolyData

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise input_error(
            path, "suffix", f"{suffix!r} is not a mesh format", f"use one of {', '.join(MESH_SUFFIXES)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".vtp":
        from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

        tagged = vtkPolyData()
        tagged.ShallowCopy(polydata)
        # a shallow copy shares field data: give the copy its own before adding the tag
        from vtkmodules.vtkCommonDataModel import vtkFieldData

        field = vtkFieldData()
        field.DeepCopy(polydata.GetFieldData())
        tagged.SetFieldData(field)
        space = vtkStringArray()
        space.SetName("SPACE")
        space.InsertNextValue("RAS")
        field.AddArray(space)
        writer = vtkXMLPolyDataWriter()
        writer.SetInputData(tagged)
        writer.SetDataModeToBinary()
        writer.SetCompressorTypeToZLib()
    elif suffix == ".vtk":
        from vtkmodules.vtkIOLegacy import vtkPolyDataWriter

        writer = vtkPolyDataWriter()
        writer.SetInputData(polydata)
        writer.SetHeader("IVUSReconstruct mesh. SPACE=RAS")
        writer.SetFileTypeToBinary()
    elif suffix == ".stl":
        from vtkmodules.vtkIOGeometry import vtkSTLWriter

        writer = vtkSTLWriter()
        writer.SetInputData(polydata)
        writer.SetHeader("IVUSReconstruct mesh. SPACE=RAS")
        writer.SetFileTypeToBinary()
    elif suffix == ".ply":
        from vtkmodules.vtkIOPLY import vtkPLYWriter

        writer = vtkPLYWriter()
        writer.SetInputData(polydata)
        writer.AddComment("IVUSReconstruct mesh. SPACE=RAS")
        writer.SetFileTypeToBinary()
    elif suffix == ".obj":
        from vtkmodules.vtkIOGeometry import vtkOBJWriter

        writer = vtkOBJWriter()
        writer.SetInputData(polydata)
    else:
        from vtkmodules.vtkCommonDataModel import vtkMultiBlockDataSet
        from vtkmodules.vtkIOGeometry import vtkGLTFWriter

        # the writer reads two levels (renderers, then actors) and crashes on a flat one
        actor = vtkMultiBlockDataSet()
        actor.SetNumberOfBlocks(1)
        actor.SetBlock(0, polydata)
        blocks = vtkMultiBlockDataSet()
        blocks.SetNumberOfBlocks(1)
        blocks.SetBlock(0, actor)
        writer = vtkGLTFWriter()
        writer.SetInputData(blocks)
        # one self-contained file: buffers inlined as base64 (.gltf) or packed into .glb below
        writer.SetInlineData(True)
        writer.SetSaveNormal(True)
    target = path.with_suffix(".gltf") if suffix == ".glb" else path
    writer.SetFileName(str(target))
    ok = writer.Write()
    if suffix == ".glb":
        _gltf_to_glb(target, path)
        target.unlink()
    if not ok or not path.exists():
        raise OSError(f"{path}: the VTK writer failed")
    if suffix == ".obj":
        text = path.read_text(encoding="utf-8", errors="replace")
        path.write_text("# IVUSReconstruct mesh. SPACE=RAS\n" + text, encoding="utf-8")
    return path


def _gltf_to_glb(gltf_path: Path, glb_path: Path) -> None:
    """Pack a glTF file with one inlined (base64) buffer into a binary .glb container."""
    import base64
    import json
    import struct

    doc = json.loads(gltf_path.read_text(encoding="utf-8"))
    buffers = doc.get("buffers", [])
    binary = b""
    if buffers:
        uri = buffers[0].pop("uri", "")
        binary = base64.b64decode(uri.split(",", 1)[1]) if uri.startswith("data:") else b""
        buffers[0]["byteLength"] = len(binary)
    json_chunk = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    json_chunk += b" " * (-len(json_chunk) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(json_chunk) + (8 + len(binary) if binary else 0)
    with open(glb_path, "wb") as out:
        out.write(struct.pack("<4sII", b"glTF", 2, total))
        out.write(struct.pack("<I4s", len(json_chunk), b"JSON"))
        out.write(json_chunk)
        if binary:
            out.write(struct.pack("<I4s", len(binary), b"BIN\0"))
            out.write(binary)
