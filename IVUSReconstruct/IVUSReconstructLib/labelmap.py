"""Labelmaps of the reconstruction: 1 lumen, 2 plaque + media, in world (RAS) space.

Surfaces made by :func:`mesh.build_meshes` are voxelised straight from their rings
(:func:`rings_labelmap`, linear in the number of frames); any other closed surface by scan
conversion (:func:`mesh_to_labelmap`). :func:`write_labelmap_nrrd` stores the result for Slicer.

Frame labelmaps (the segments the scene adapter shows and the Segment Editor edits): contours
rasterised frame by frame (:func:`frame_polygons_px`, :func:`rasterize_frames`) and outlined back
(:func:`mask_outlines_px`, :func:`contours_from_masks`), with no MRML involved.

VTK is imported as ``vtkmodules.*`` only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from vtkmodules.util.numpy_support import get_vtk_array_type, numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonCore import VTK_UNSIGNED_CHAR
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkFiltersCore import vtkContourFilter, vtkStripper
from vtkmodules.vtkImagingStencil import vtkImageStencil, vtkPolyDataToImageStencil

from .errors import IVUSCancelled, input_error
from .geometry import fine_px_to_mm, rasterize_polygon_px, signed_area
from .types import ContourSet, FrameContours, VesselMesh

__all__ = [
    "BORDER_KINDS",
    "contours_from_masks",
    "frame_polygons_px",
    "image_array",
    "image_data",
    "mask_outlines_px",
    "rasterize_frames",
    "mesh_to_labelmap",
    "rings_labelmap",
    "stencil_labelmap",
    "vessel_labelmap",
    "write_labelmap_nrrd",
]


def mesh_to_labelmap(
    polydata, spacing_mm: float | tuple[float, float, float], *, margin_mm: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxelise a closed surface into an axis-aligned RAS labelmap (for Slicer segmentations).

    A voxel is 1 when its centre lies inside the surface (``vtkPolyDataToImageStencil``
    scan conversion, applied with ``vtkImageStencil``).

    Parameters
    ----------
    polydata : vtkPolyData
        Closed triangle surface, RAS mm.
    spacing_mm : float or (sx, sy, sz)
        Voxel size along R, A, S.
    margin_mm : float
        Empty border added around the surface's bounds.

    Returns
    -------
    labels : ndarray of shape (K, J, I), uint8
        0 outside, 1 inside; index ``[k, j, i]`` is the voxel at
        ``origin_ras + (i, j, k) * spacing``.
    origin_ras : ndarray of shape (3,)
        Centre of voxel (0, 0, 0), RAS mm.
    spacing : ndarray of shape (3,), mm
    """
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,)).copy()
    if not np.all(spacing > 0):
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm!r}")
    bounds = np.array(polydata.GetBounds(), dtype=float).reshape(3, 2)
    # origin snapped to the spacing grid so labelmaps of several surfaces line up
    origin = np.floor((bounds[:, 0] - margin_mm) / spacing) * spacing
    dims = np.ceil((bounds[:, 1] + margin_mm - origin) / spacing).astype(int) + 1
    image = vtkImageData()
    image.SetDimensions(*(int(d) for d in dims))
    image.SetSpacing(*spacing)
    image.SetOrigin(*origin)
    image.AllocateScalars(VTK_UNSIGNED_CHAR, 1)
    vtk_to_numpy(image.GetPointData().GetScalars())[:] = 1
    to_stencil = vtkPolyDataToImageStencil()
    to_stencil.SetInputData(polydata)
    to_stencil.SetOutputOrigin(*origin)
    to_stencil.SetOutputSpacing(*spacing)
    to_stencil.SetOutputWholeExtent(image.GetExtent())
    to_stencil.Update()
    stencil = vtkImageStencil()
    stencil.SetInputData(image)
    stencil.SetStencilConnection(to_stencil.GetOutputPort())
    stencil.ReverseStencilOff()
    stencil.SetBackgroundValue(0)
    stencil.Update()
    out = stencil.GetOutput()
    labels = vtk_to_numpy(out.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    return np.ascontiguousarray(labels, dtype=np.uint8), origin, spacing


def _mesh_rings(polydata) -> np.ndarray | None:
    """The rings (F, n, 3) of a surface made by :func:`mesh.build_meshes`, or None for other surfaces.

    Such a surface stores its F rings of n points first, then two cap centres, with the point
    array ``frame_index`` constant along each ring.
    """
    if polydata is None or polydata.GetPoints() is None:
        return None
    frame_array = polydata.GetPointData().GetArray("frame_index")
    if frame_array is None:
        return None
    frames = vtk_to_numpy(frame_array)
    points = vtk_to_numpy(polydata.GetPoints().GetData())
    changes = np.flatnonzero(frames[1:-2] != frames[:-3])
    if changes.size == 0:
        return None
    n = int(changes[0]) + 1
    if n < 3 or (len(points) - 2) % n:
        return None
    f = (len(points) - 2) // n
    per_ring = frames[: f * n].reshape(f, n)
    if f < 2 or np.any(per_ring != per_ring[:, :1]) or np.any(per_ring[1:, 0] == per_ring[:-1, 0]):
        return None
    return np.asarray(points[: f * n], dtype=float).reshape(f, n, 3)


def _ring_frames(rings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plane and in-plane basis of every ring: centroid (F, 3), normal (F, 3), u (F, 3), v (F, 3).

    The normal is the ring's area vector (Newell), so a counter-clockwise ring runs
    counter-clockwise in (u, v); u is carried from ring to ring by parallel transport so that
    an angle means the same direction on consecutive rings.
    """
    centre = rings.mean(axis=1)
    nxt = np.roll(rings, -1, axis=1)
    normal = 0.5 * np.cross(rings - centre[:, None], nxt - centre[:, None]).sum(axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)
    # rings may turn either way about the pullback direction (mirrored placement)
    if len(rings) > 1 and np.sum(normal[:-1] * np.diff(centre, axis=0)) < 0:
        normal = -normal
    u = np.empty_like(centre)
    first = rings[0, 0] - centre[0]
    first -= (first @ normal[0]) * normal[0]
    u[0] = first / max(float(np.linalg.norm(first)), 1e-300)
    for k in range(1, len(rings)):
        w = u[k - 1] - (u[k - 1] @ normal[k]) * normal[k]
        u[k] = w / max(float(np.linalg.norm(w)), 1e-300)
    v = np.cross(normal, u)
    return centre, normal, u, v


def _polar_tables(
    rings: np.ndarray, centre: np.ndarray, u: np.ndarray, v: np.ndarray, n_angles: int
) -> np.ndarray:
    """Radius (F, n_angles + 1) of each ring about ``centre`` in its (u, v) basis at angles
    ``2 pi m / n_angles`` (the last column repeats the first so lookups wrap)."""
    f, n, _ = rings.shape
    q = rings - centre[:, None]
    x = np.einsum("fnk,fk->fn", q, u)
    y = np.einsum("fnk,fk->fn", q, v)
    # counter-clockwise in (u, v) for the monotone angle table
    cw = (x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1) < 0
    x[cw], y[cw] = x[cw, ::-1], y[cw, ::-1]
    ang = np.unwrap(np.arctan2(y, x), axis=1)
    # star-shaped rings turn monotonically; clamp the rare back-turn of a concave border
    np.maximum.accumulate(ang, axis=1, out=ang)
    r = np.hypot(x, y)
    ang = np.concatenate([ang[:, -1:] - 2 * np.pi, ang, ang[:, :1] + 2 * np.pi], axis=1)
    r = np.concatenate([r[:, -1:], r, r[:, :1]], axis=1)
    theta = np.linspace(0.0, 2 * np.pi, n_angles + 1)
    query = ang[:, 1:2] + np.mod(theta[None, :] - ang[:, 1:2], 2 * np.pi)
    query[:, -1] = query[:, 0] + 2 * np.pi
    # one interpolation over all rings: rows shifted apart so the table stays sorted
    shift = (8 * np.pi) * np.arange(f)[:, None]
    out = np.interp((query + shift).ravel(), (ang + shift).ravel(), r.ravel())
    return out.reshape(f, n_angles + 1)


@dataclass(frozen=True)
class _Loft:
    """The ring planes of a loft and the radius tables of its ring sets, for voxel tests.

    Plane k holds the points p with ``p . normal[k] = plane_h[k]``; ``u``, ``v`` are its
    in-plane basis (parallel-transported, so an angle means the same on consecutive rings).
    ``tables`` holds, per ring set, the flattened radius table (F * (n_angles + 1)), the ring
    centroids in (u, v) and the label bit of the set.
    """

    centre: np.ndarray  # (F, 3) outer ring centroids
    normal: np.ndarray  # (F, 3)
    u: np.ndarray  # (F, 3)
    v: np.ndarray  # (F, 3)
    plane_h: np.ndarray  # (F,)
    tables: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.uint8]]
    n_angles: int

    @classmethod
    def of(cls, outer_rings: np.ndarray, inner_rings: np.ndarray | None, n_angles: int) -> _Loft:
        """Planes from the outer rings; tables of the outer (bit 2) and inner (bit 1) rings."""
        centre, normal, u, v = _ring_frames(outer_rings)
        sets = [(outer_rings, centre, np.uint8(2))]
        if inner_rings is not None:
            sets.append((inner_rings, inner_rings.mean(axis=1), np.uint8(1)))
        tables = [
            (
                _polar_tables(r, c, u, v, n_angles).ravel(),
                np.einsum("fk,fk->f", c, u),
                np.einsum("fk,fk->f", c, v),
                bit,
            )
            for r, c, bit in sets
        ]
        plane_h = np.einsum("fk,fk->f", centre, normal)
        return cls(centre, normal, u, v, plane_h, tables, n_angles)

    def signed(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, g: np.ndarray | int) -> np.ndarray:
        """Signed distance of points to the planes of rings g (positive ahead)."""
        n = self.normal
        return px * n[g, 0] + py * n[g, 1] + pz * n[g, 2] - self.plane_h[g]

    def box_distance(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray, k: int) -> np.ndarray:
        """Signed distance (K, J, I) of the voxel centres of a box to the plane of ring k."""
        n = self.normal[k]
        return (
            (xs * n[0])[None, None, :]
            + (ys * n[1])[None, :, None]
            + (zs * n[2] - self.plane_h[k])[:, None, None]
        )


def _chunk_bounds(centre: np.ndarray, chunk_mm: float) -> list[int]:
    """Ring positions cutting the loft into runs about ``chunk_mm`` long that share their end
    rings (each run at least one segment)."""
    f = len(centre)
    step = np.linalg.norm(np.diff(centre, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)])
    bounds = [0]
    while bounds[-1] < f - 1:
        a = bounds[-1]
        b = int(np.searchsorted(arc, arc[a] + chunk_mm, side="right")) - 1
        bounds.append(min(max(b, a + 1), f - 1))
    return bounds


def _voxel_segments(
    loft: _Loft, px: np.ndarray, py: np.ndarray, pz: np.ndarray, a: int, b: int
) -> tuple[np.ndarray, np.ndarray]:
    """The segment g (between rings g and g + 1, a <= g < b) of each point and its fraction t.

    First guess from the run's mean direction, checked against the true planes; bisection
    where the guess fails (bends). Points on plane g + 1 belong to the next segment except
    at the last ring of the loft.
    """
    last = len(loft.centre) - 1
    mean_n = loft.normal[a] + loft.normal[b]
    mean_n /= max(float(np.linalg.norm(mean_n)), 1e-300)
    along = loft.centre[a : b + 1] @ mean_n
    g = np.searchsorted(along, px * mean_n[0] + py * mean_n[1] + pz * mean_n[2], side="right") - 1
    g = np.clip(g, 0, b - a - 1) + a
    d_lo = loft.signed(px, py, pz, g)
    d_hi = loft.signed(px, py, pz, g + 1)
    wrong = np.flatnonzero((d_lo < 0) | ((d_hi > 0) if b == last else (d_hi >= 0)))
    if wrong.size:
        w_lo, w_hi = np.full(wrong.size, a), np.full(wrong.size, b)
        wx, wy, wz = px[wrong], py[wrong], pz[wrong]
        while np.any(w_hi - w_lo > 1):
            mid = (w_lo + w_hi) // 2
            ahead = loft.signed(wx, wy, wz, mid) >= 0
            w_lo = np.where(ahead, mid, w_lo)
            w_hi = np.where(ahead, w_hi, mid)
        g[wrong] = w_lo
        d_lo[wrong] = loft.signed(wx, wy, wz, w_lo)
        d_hi[wrong] = loft.signed(wx, wy, wz, w_lo + 1)
    t = np.clip(d_lo / np.maximum(d_lo - d_hi, 1e-12), 0.0, 1.0)
    return g, t


def _inside_code(
    loft: _Loft, px: np.ndarray, py: np.ndarray, pz: np.ndarray, g: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Label bits (uint8) of points in segment g at fraction t: a set's bit when the point is
    within the radius of its two rings, interpolated in angle and along the segment."""
    n_angles = loft.n_angles
    s = 1.0 - t
    g1 = g + 1
    u, v = loft.u, loft.v
    pu0 = px * u[g, 0] + py * u[g, 1] + pz * u[g, 2]
    pu1 = px * u[g1, 0] + py * u[g1, 1] + pz * u[g1, 2]
    pv0 = px * v[g, 0] + py * v[g, 1] + pz * v[g, 2]
    pv1 = px * v[g1, 0] + py * v[g1, 1] + pz * v[g1, 2]
    code = np.zeros(len(px), dtype=np.uint8)
    row0, row1 = g * (n_angles + 1), g1 * (n_angles + 1)
    for table, cu, cv, bit in loft.tables:
        x = s * (pu0 - cu[g]) + t * (pu1 - cu[g1])
        y = s * (pv0 - cv[g]) + t * (pv1 - cv[g1])
        pos = np.arctan2(y, x)
        pos %= 2 * np.pi
        pos *= n_angles / (2 * np.pi)
        m0 = np.minimum(pos.astype(np.intp), n_angles - 1)
        w = pos - m0
        r = s * (table[row0 + m0] * (1 - w) + table[row0 + m0 + 1] * w)
        r += t * (table[row1 + m0] * (1 - w) + table[row1 + m0 + 1] * w)
        code[x * x + y * y <= r * r] |= bit
    return code


def _label_run(
    labels: np.ndarray,
    loft: _Loft,
    a: int,
    b: int,
    ring_box_mm: tuple[np.ndarray, np.ndarray],
    origin: np.ndarray,
    spacing: np.ndarray,
) -> None:
    """OR the label bits of the voxels between the planes of rings a and b into ``labels``.

    Only the voxels of the run's bounding box (``ring_box_mm``: (F, 3) low and high corners
    of every ring) are tested.
    """
    dims = np.array(labels.shape[::-1])
    ring_lo, ring_hi = ring_box_mm
    lo = np.maximum(np.ceil((ring_lo[a : b + 1].min(axis=0) - origin) / spacing).astype(int), 0)
    hi = np.minimum(np.floor((ring_hi[a : b + 1].max(axis=0) - origin) / spacing).astype(int), dims - 1)
    if np.any(hi < lo):
        return
    xs, ys, zs = (origin[d] + np.arange(lo[d], hi[d] + 1) * spacing[d] for d in range(3))
    box = (len(zs), len(ys), len(xs))
    d_b = loft.box_distance(xs, ys, zs, b)
    inside = loft.box_distance(xs, ys, zs, a) >= 0
    inside &= (d_b <= 0) if b == len(loft.centre) - 1 else (d_b < 0)
    keep = np.flatnonzero(inside)
    if keep.size == 0:
        return
    kk, jj, ii = np.unravel_index(keep, box)
    px, py, pz = xs[ii], ys[jj], zs[kk]
    g, t = _voxel_segments(loft, px, py, pz, a, b)
    flat = np.ravel_multi_index((kk + lo[2], jj + lo[1], ii + lo[0]), labels.shape)
    # runs share their end planes: a voxel claimed twice keeps both bits
    labels.reshape(-1)[flat] |= _inside_code(loft, px, py, pz, g, t)


def rings_labelmap(
    outer_rings: np.ndarray,
    inner_rings: np.ndarray | None,
    spacing_mm: float,
    *,
    margin_mm: float = 1.0,
    chunk_mm: float = 2.0,
    n_angles: int = 360,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelmap of lofted rings, straight from the placed frame polygons: 1 inner, 2 outer only.

    A voxel belongs to the segment between the planes of rings k and k + 1 that it lies between,
    at fraction t of the way; it is inside when its distance from the interpolated centroid is
    at most the interpolated radius of the two rings in its direction, which is the loft of
    :func:`mesh.build_meshes` up to the chords between ring points. Work is done over short runs of
    frames (``chunk_mm`` of vessel) on the voxels of their bounding box only, so time grows with
    the number of frames and voxels near the vessel, not with the vessel's extent in world space.

    Parameters
    ----------
    outer_rings : ndarray of shape (F, n, 3)
        Vessel rings (lumen rings when there is no vessel border), RAS mm, in pullback order,
        counter-clockwise about the pullback direction.
    inner_rings : ndarray of shape (F, m, 3) or None
        Lumen rings on the same planes.
    spacing_mm : float
        Isotropic voxel size.
    margin_mm : float
        Empty border around the outer rings' bounds.
    chunk_mm : float
        Length of vessel handled at once.
    n_angles : int
        Angular resolution of the radius tables.
    progress, cancel : optional

    Returns
    -------
    labels : ndarray of shape (K, J, I), uint8
        0 outside, 1 inside the inner rings, 2 between inner and outer (1 for the outer rings
        when ``inner_rings`` is None); index ``[k, j, i]`` is ``origin_ras + (i, j, k) * spacing``.
    origin_ras : ndarray of shape (3,)
        Centre of voxel (0, 0, 0), snapped to the spacing grid as :func:`mesh_to_labelmap` does.
    spacing : ndarray of shape (3,)
    """
    outer_rings = np.asarray(outer_rings, dtype=float)
    f = len(outer_rings)
    spacing = np.full(3, float(spacing_mm))
    if not spacing_mm > 0:
        raise ValueError(f"spacing_mm must be positive, got {spacing_mm!r}")
    lo_w, hi_w = outer_rings.reshape(-1, 3).min(axis=0), outer_rings.reshape(-1, 3).max(axis=0)
    origin = np.floor((lo_w - margin_mm) / spacing) * spacing
    dims = np.ceil((hi_w + margin_mm - origin) / spacing).astype(int) + 1
    labels = np.zeros((dims[2], dims[1], dims[0]), dtype=np.uint8)

    if inner_rings is not None:
        inner_rings = np.asarray(inner_rings, dtype=float)
    loft = _Loft.of(outer_rings, inner_rings, n_angles)
    ring_box_mm = (outer_rings.min(axis=1), outer_rings.max(axis=1))
    bounds = _chunk_bounds(loft.centre, chunk_mm)
    for c_i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if cancel is not None and cancel.is_set():
            raise IVUSCancelled("cancelled by the user")
        if progress is not None and c_i % 16 == 0:
            progress(c_i / len(bounds), f"labelmap: frames {a}-{b} of {f}")
        _label_run(labels, loft, a, b, ring_box_mm, origin, spacing)
    # bits: 2 inside the outer rings, 1 inside the inner rings; the inner label wins
    if inner_rings is not None:
        # slab by slab: no temporary of the whole grid's size
        for k in range(0, len(labels), 64):
            slab = labels[k : k + 64]
            slab[slab == 3] = 1
    else:
        labels >>= 1
    if progress is not None:
        progress(1.0, "labelmap: done")
    return labels, origin, spacing


def vessel_labelmap(
    mesh: VesselMesh,
    spacing_mm: float,
    *,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One labelmap of the reconstruction in world space: 1 lumen, 2 plaque + media (the wall).

    Surfaces made by :func:`mesh.build_meshes` are voxelised straight from their rings
    (:func:`rings_labelmap`, linear in the frames); other surfaces by scan conversion
    (:func:`mesh_to_labelmap`, two passes over the whole vessel).

    Parameters
    ----------
    mesh : VesselMesh
        Closed lumen and (optionally) vessel surfaces, RAS mm.
    spacing_mm : float
        Isotropic voxel size.
    progress, cancel : optional
        Used on the ring path.

    Returns
    -------
    labels : ndarray of shape (K, J, I), uint8
    origin_ras : ndarray of shape (3,)
        Centre of voxel (0, 0, 0).
    spacing : ndarray of shape (3,)
    """
    lumen_rings = _mesh_rings(mesh.lumen)
    vessel_rings = _mesh_rings(mesh.vessel) if mesh.vessel is not None else None
    if lumen_rings is not None and (mesh.vessel is None or vessel_rings is not None):
        if vessel_rings is None:
            return rings_labelmap(lumen_rings, None, spacing_mm, progress=progress, cancel=cancel)
        if len(vessel_rings) == len(lumen_rings):
            return rings_labelmap(vessel_rings, lumen_rings, spacing_mm, progress=progress, cancel=cancel)
    return stencil_labelmap(mesh, spacing_mm)


def stencil_labelmap(mesh: VesselMesh, spacing_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`vessel_labelmap` by scan conversion of the closed surfaces (any surface; slow on
    long vessels: two ``vtkPolyDataToImageStencil`` passes over the whole vessel)."""
    outer = mesh.vessel if mesh.vessel is not None else mesh.lumen
    labels, origin, spacing = mesh_to_labelmap(outer, spacing_mm)
    labels = labels * np.uint8(2 if mesh.vessel is not None else 1)
    if mesh.vessel is not None:
        lumen, lumen_origin, _ = mesh_to_labelmap(mesh.lumen, spacing_mm)
        # both grids are snapped to multiples of the spacing: the lumen's is an integer shift
        k, j, i = np.round((lumen_origin - origin) / spacing).astype(int)[::-1]
        region = labels[k : k + lumen.shape[0], j : j + lumen.shape[1], i : i + lumen.shape[2]]
        region[lumen[: region.shape[0], : region.shape[1], : region.shape[2]] > 0] = 1
    return labels, origin, spacing


def write_labelmap_nrrd(labels: np.ndarray, origin_ras: np.ndarray, spacing: np.ndarray, path) -> None:
    """Write a RAS-axis-aligned labelmap as NRRD (stored in LPS, as NRRD readers expect)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels))
    image.SetSpacing(tuple(float(s) for s in spacing))
    # voxel (i, j, k) sits at RAS origin + (i, j, k) * spacing; in LPS x and y flip sign
    image.SetOrigin((-float(origin_ras[0]), -float(origin_ras[1]), float(origin_ras[2])))
    image.SetDirection((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(image, str(path), useCompression=True)


# ----------------------------------------------------------------------------- frame labelmaps

BORDER_KINDS = ("lumen", "vessel", "calcium")
"""The FrameContours fields that become frame labelmaps (segments Lumen, Vessel, Calcium)."""


def image_data(array: np.ndarray) -> vtkImageData:
    """(K, J, I) array -> vtkImageData with dimensions (I, J, K), deep copy."""
    array = np.ascontiguousarray(array)
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtk_type = get_vtk_array_type(array.dtype)
    image.GetPointData().SetScalars(numpy_to_vtk(array.ravel(), deep=True, array_type=vtk_type))
    return image


def image_array(image) -> np.ndarray:
    """vtkImageData -> (K, J, I) array (a copy)."""
    dims = image.GetDimensions()
    scalars = vtk_to_numpy(image.GetPointData().GetScalars())
    return np.array(scalars).reshape(dims[2], dims[1], dims[0])


def mask_outlines_px(
    mask: np.ndarray, *, largest_only: bool = True, min_pixels: int = 1, smoothing_px: float = 0.0
) -> list[np.ndarray]:
    """Outer outlines of the connected regions of a binary frame (marching squares at 0.5).

    Parameters
    ----------
    mask : ndarray of shape (H, W)
    largest_only : bool
        Keep only the largest 4-connected region (lumen, vessel); otherwise every region
        (calcium) is outlined.
    min_pixels : int
        Regions smaller than this are dropped.
    smoothing_px : float
        Standard deviation (pixels) of a Gaussian applied to each region before the 0.5 level
        is traced: it replaces the 45-degree staircase of the raw mask by a smooth border. A
        region too thin to reach 0.5 after smoothing is traced unsmoothed.

    Returns
    -------
    list of ndarray of shape (M, 2)
        (row, col) outlines, holes filled, counter-clockwise in frame-plane (x, y); largest first.
    """
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask) > 0)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = ndimage.find_objects(labels)
    order = np.argsort(sizes, kind="stable")[::-1]
    if largest_only:
        order = order[:1]
    outlines = []
    for label_index in order:
        if sizes[label_index] < min_pixels:
            continue
        # fill holes on the region's bounding box only: whole frames made this the hot spot
        box = boxes[label_index]
        region = ndimage.binary_fill_holes(labels[box] == label_index + 1)
        rows, cols = np.nonzero(region)
        rows, cols = rows + box[0].start, cols + box[1].start
        # the margin keeps the smoothed region's tail inside the crop
        margin = 1 + int(np.ceil(4.0 * smoothing_px))
        r0, c0 = rows.min() - margin, cols.min() - margin
        crop = np.zeros((rows.max() - r0 + margin + 1, cols.max() - c0 + margin + 1), dtype=np.float32)
        crop[rows - r0, cols - c0] = 1.0
        if smoothing_px > 0:
            smoothed = ndimage.gaussian_filter(crop, smoothing_px, mode="constant", truncate=4.0)
            crop = smoothed if smoothed.max() > 0.5 else crop
        outlines.append(_longest_outline(crop, r0, c0))
    return outlines


def _longest_outline(crop: np.ndarray, r0: int, c0: int) -> np.ndarray:
    """The longest 0.5-level loop of ``crop`` as (row, col) + (r0, c0), counter-clockwise in (x, y)."""
    contour = vtkContourFilter()
    contour.SetInputData(image_data(crop[None]))
    contour.SetValue(0, 0.5)
    stripper = vtkStripper()
    stripper.SetInputConnection(contour.GetOutputPort())
    stripper.JoinContiguousSegmentsOn()
    stripper.Update()
    lines = stripper.GetOutput()
    points = vtk_to_numpy(lines.GetPoints().GetData())
    best = None
    for cell in range(lines.GetNumberOfCells()):
        ids = lines.GetCell(cell).GetPointIds()
        loop = points[[ids.GetId(i) for i in range(ids.GetNumberOfIds())]]
        if best is None or len(loop) > len(best):
            best = loop
    outline = np.column_stack([best[:, 1] + r0, best[:, 0] + c0])
    # drop repeated points (the closing one, and contour points that land on a pixel centre)
    keep = np.any(np.abs(np.diff(outline, axis=0, append=outline[:1])) > 1e-9, axis=1)
    outline = outline[keep]
    # (row, col) -> (x=col, y=row): counter-clockwise in the frame plane
    if signed_area(outline[:, ::-1]) < 0:
        outline = outline[::-1]
    return outline


def frame_polygons_px(
    contours: ContourSet, n_frames: int, to_px: Callable[[np.ndarray], np.ndarray], *, where: str
) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The polygons of each border kind (:data:`BORDER_KINDS`) as (frame, (M, 2) pixel (row, col)).

    Polygons of fewer than 3 points are left out; ``to_px`` maps frame-plane mm to pixels.

    Raises
    ------
    IVUSInputError
        A frame index outside ``0 .. n_frames - 1`` (``where`` names the target).
    """
    polygons: dict[str, list[tuple[int, np.ndarray]]] = {kind: [] for kind in BORDER_KINDS}
    for frame in contours.frames:
        if not 0 <= frame.index < n_frames:
            raise input_error(
                where, f"frame {frame.index}", f"is outside the pullback's {n_frames} frames", "load the matching pullback"
            )  # fmt: skip
        items = {"lumen": [frame.lumen], "vessel": [frame.vessel], "calcium": list(frame.calcium)}
        for kind, polygon_list in items.items():
            for polygon in polygon_list:
                if polygon is not None and len(polygon) >= 3:
                    polygons[kind].append((frame.index, to_px(polygon)))
    return polygons


def rasterize_frames(
    items: list[tuple[int, np.ndarray]], shape_px: tuple[int, int]
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Rasterise (frame, polygon px) pairs into one mask cropped to their bounding box.

    Parameters
    ----------
    items : list of (int, ndarray of shape (M, 2))
        Non-empty; (row, col) pixel polygons, several per frame allowed (their union is taken).
    shape_px : (H, W)
        The frames' size; the crop stays inside it.

    Returns
    -------
    mask : ndarray of shape (K, h, w), bool
        Pixel centres inside the polygons, frames ``k0 .. k0 + K - 1``.
    offset_kji : (k0, row0, col0)
        Where ``mask[0, 0, 0]`` sits on the frames.
    """
    every = np.concatenate([px for _, px in items])
    lo = np.clip(np.ceil(every.min(axis=0)).astype(int), 0, np.array(shape_px) - 1)
    hi = np.clip(np.floor(every.max(axis=0)).astype(int), lo, np.array(shape_px) - 1)
    k0 = min(index for index, _ in items)
    k1 = max(index for index, _ in items)
    mask = np.zeros((k1 - k0 + 1, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1), dtype=bool)
    for index, px in items:
        mask[index - k0] |= rasterize_polygon_px(px - lo, mask.shape[1:])
    return mask, (k0, int(lo[0]), int(lo[1]))


def contours_from_masks(
    masks: dict[str, np.ndarray | None],
    spacing_rc: tuple[float, float],
    center_rc: tuple[float, float],
    oversampling: int,
    *,
    template: ContourSet | None = None,
    min_calcium_pixels: int = 4,
    smoothing_px: float = 0.0,
) -> ContourSet:
    """Outline frame labelmaps back to contours in frame-plane mm.

    Parameters
    ----------
    masks : dict
        ``lumen`` (required), ``vessel``, ``calcium``: ndarray of shape (K, H f, W f), bool, on
        the frames subdivided ``oversampling`` (f) times in-plane, or None.
    spacing_rc, center_rc
        Pixel spacing (mm) and catheter centre (px) of the frames, (row, col).
    template : ContourSet, optional
        Stent, phases and ``z_mm`` carried over for frames of the same index; its landmarks too.
    min_calcium_pixels : int
        Smaller calcium regions, in frame (not fine) pixels, are dropped.
    smoothing_px : float
        See :func:`mask_outlines_px`.

    Returns
    -------
    ContourSet
        A frame for each frame with lumen pixels: the largest lumen and vessel regions' outlines
        (vessel None when empty) and every calcium region.
    """
    f = oversampling

    def outlines(mask: np.ndarray, **options) -> list[np.ndarray]:
        return [
            fine_px_to_mm(o, spacing_rc, center_rc, f)
            for o in mask_outlines_px(mask, smoothing_px=smoothing_px, **options)
        ]

    previous = {c.index: c for c in template.frames} if template is not None else {}
    frames = []
    for index in np.nonzero(masks["lumen"].any(axis=(1, 2)))[0]:
        lumen = outlines(masks["lumen"][index])[0]
        vessel = None
        if masks.get("vessel") is not None and masks["vessel"][index].any():
            vessel = outlines(masks["vessel"][index])[0]
        calcium: tuple[np.ndarray, ...] = ()
        if masks.get("calcium") is not None and masks["calcium"][index].any():
            calcium = tuple(
                outlines(masks["calcium"][index], largest_only=False, min_pixels=min_calcium_pixels * f * f)
            )
        old = previous.get(int(index))
        frames.append(
            FrameContours(
                index=int(index),
                lumen=lumen,
                vessel=vessel,
                calcium=calcium,
                stent=old.stent if old is not None else None,
                phase=old.phase if old is not None else None,
                z_mm=old.z_mm if old is not None else None,
            )
        )
    return ContourSet(
        frames=tuple(frames),
        landmarks=template.landmarks if template is not None else (),
        pixel_spacing_mm=spacing_rc,
        catheter_center_px=center_rc,
    )
