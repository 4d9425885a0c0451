"""Offscreen 3D render of the reconstructed vessel (the L-mode view is in :mod:`longitudinal`).

The render shows the vessel (EEM) surface translucent and coloured by plaque burden, the lumen
opaque inside it, the centerline as a thin tube, and rings with labels at the minimal lumen area
(MLA) and the proximal / distal reference frames. It is made without a display (VTK renders
through EGL or OSMesa) and is deterministic: the same input gives the same pixels.

Only ``vtkmodules.*`` and numpy are imported, so this runs with Slicer's VTK, pip's VTK and on
headless CI alike.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Registers the OpenGL and FreeType back ends for the render window and text actors.
import vtkmodules.vtkRenderingFreeType  # noqa: F401
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
from scipy.spatial import cKDTree
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints, vtkUnsignedCharArray
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkTriangleFilter, vtkTubeFilter
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkLightKit,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkRenderer,
    vtkRenderWindow,
    vtkTextActor,
    vtkWindowToImageFilter,
)

from .geometry import angular_span, polygon_centroid
from .types import VesselMesh

__all__ = [
    "VIEWS",
    "RenderStyle",
    "device_polydata",
    "burden_lookup_table",
    "calcium_surface",
    "colormap_rgb",
    "display_surface",
    "render_empty",
    "render_vessel",
    "write_png",
    "png_bytes",
]

VIEWS = ("overview", "mla", "along")

# Matplotlib's viridis sampled at 17 evenly spaced points (perceptually uniform, colour-blind
# safe, and free of red so the red lumen stays distinct from any burden colour).
_VIRIDIS = np.array(
    [
        (0.2670, 0.0049, 0.3294),
        (0.2823, 0.0950, 0.4173),
        (0.2788, 0.1755, 0.4834),
        (0.2590, 0.2515, 0.5247),
        (0.2297, 0.3224, 0.5457),
        (0.1994, 0.3876, 0.5546),
        (0.1727, 0.4488, 0.5579),
        (0.1490, 0.5081, 0.5573),
        (0.1276, 0.5669, 0.5506),
        (0.1206, 0.6258, 0.5335),
        (0.1579, 0.6838, 0.5017),
        (0.2461, 0.7389, 0.4520),
        (0.3692, 0.7889, 0.3829),
        (0.5160, 0.8312, 0.2943),
        (0.6785, 0.8637, 0.1895),
        (0.8456, 0.8873, 0.0997),
        (0.9932, 0.9062, 0.1439),
    ]
)

LUMEN_RGB = (0.80, 0.16, 0.16)
_CENTERLINE_RGB = (0.20, 0.20, 0.22)
_MLA_RGB = (0.85, 0.10, 0.45)
_REFERENCE_RGB = (0.10, 0.35, 0.85)
_TEXT_RGB = (0.12, 0.12, 0.14)
_CALCIUM_RGB = (0.97, 0.95, 0.86)
_LESION_RGB = (0.93, 0.55, 0.05)
DEVICE_RGB = (0.0, 0.78, 0.90)
DEVICE_OPACITY = 0.35
_DEVICE_SIDES = 32


def colormap_rgb(values: np.ndarray, *, value_range: tuple[float, float] = (0.0, 100.0)) -> np.ndarray:
    """Map values through the burden colormap.

    Parameters
    ----------
    values : ndarray of shape (M,)
    value_range : (float, float)
        Values mapped to the first and last colour; values outside are clipped.

    Returns
    -------
    ndarray of shape (M, 3), float in [0, 1]
    """
    lo, hi = value_range
    t = np.clip((np.asarray(values, dtype=float) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    grid = np.linspace(0.0, 1.0, len(_VIRIDIS))
    return np.stack([np.interp(t, grid, _VIRIDIS[:, c]) for c in range(3)], axis=1)


def burden_lookup_table(
    *, n_colors: int = 256, value_range: tuple[float, float] = (0.0, 100.0)
) -> vtkLookupTable:
    """A VTK lookup table of the burden colormap (viridis) over ``value_range``.

    Parameters
    ----------
    n_colors : int
        Number of table entries.
    value_range : (float, float)
        Plaque burden in percent mapped to the first and last entry.
    """
    rgb = colormap_rgb(np.linspace(*value_range, n_colors), value_range=value_range)
    table = vtkLookupTable()
    table.SetNumberOfTableValues(n_colors)
    table.SetRange(*value_range)
    for i, (r, g, b) in enumerate(rgb):
        table.SetTableValue(i, float(r), float(g), float(b), 1.0)
    table.SetBelowRangeColor(*rgb[0], 1.0)
    table.SetAboveRangeColor(*rgb[-1], 1.0)
    table.Build()
    return table


def _points(polydata: Any) -> np.ndarray:
    if polydata is None or polydata.GetNumberOfPoints() == 0:
        return np.zeros((0, 3))
    return vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)


def _point_array(polydata: Any, name: str) -> np.ndarray | None:
    if polydata is None:
        return None
    array = polydata.GetPointData().GetArray(name)
    return None if array is None else vtk_to_numpy(array).astype(float)


def _principal_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (3,) and orthonormal axes (3, 3), rows by decreasing variance, right-handed."""
    centre = points.mean(axis=0)
    # A fixed subsample keeps this fast on meshes of millions of points and deterministic.
    step = max(1, len(points) // 200_000)
    _, _, vt = np.linalg.svd(points[::step] - centre, full_matrices=False)
    axes = vt.copy()
    if len(axes) < 3:
        axes = np.eye(3)
    axes[2] = np.cross(axes[0], axes[1])
    return centre, axes


def _summary_of(metrics: Any) -> dict[str, Any]:
    """The summary of a Metrics, of a ``{"summary": ..., "lesions": ...}`` dict or of a summary."""
    if metrics is None:
        return {}
    if isinstance(metrics, Mapping):
        inner = metrics.get("summary")
        return dict(inner) if isinstance(inner, Mapping) else dict(metrics)
    return dict(getattr(metrics, "summary", {}) or {})


def _lesions_of(metrics: Any) -> list[Mapping[str, Any]]:
    """Lesion records of a Metrics or dict (``lesions`` beside or inside the summary)."""
    if metrics is None:
        return []
    if isinstance(metrics, Mapping):
        lesions = metrics.get("lesions")
        if lesions is None and isinstance(metrics.get("summary"), Mapping):
            lesions = metrics["summary"].get("lesions")
    else:
        lesions = getattr(metrics, "lesions", None)
    return [les for les in (lesions or []) if isinstance(les, Mapping)]


def _lesion_span_mm(lesion: Mapping[str, Any]) -> tuple[float, float] | None:
    """(start, end) arc length of a lesion, whichever key names it uses."""
    for a, b in (("start_mm", "end_mm"), ("start_arc_length_mm", "end_arc_length_mm")):
        if lesion.get(a) is not None and lesion.get(b) is not None:
            s0, s1 = float(lesion[a]), float(lesion[b])
            return min(s0, s1), max(s0, s1)
    return None


def _marker_frames(summary: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """(kind, frame, label) for the MLA and the reference frames found in a summary."""
    markers: list[tuple[str, int, str]] = []
    refs = summary.get("references") or {}
    for key, name in (("distal", "Dist ref"), ("proximal", "Prox ref")):
        ref = refs.get(key) if isinstance(refs, Mapping) else None
        if isinstance(ref, Mapping) and ref.get("frame") is not None:
            label = name
            if ref.get("lumen_area_mm2") is not None:
                label = f"{name} {float(ref['lumen_area_mm2']):.2f} mm\u00b2"
            markers.append(("reference", int(ref["frame"]), label))
    mla = summary.get("mla")
    if isinstance(mla, Mapping) and mla.get("frame") is not None:
        label = "MLA"
        if mla.get("area_mm2") is not None:
            label = f"MLA {float(mla['area_mm2']):.2f} mm\u00b2"
        markers.append(("mla", int(mla["frame"]), label))
    return markers


def _ring_geometry(
    frame: int, surface: Any, poses: Any, default_radius_mm: float
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Centre (3,), unit normal (3,) and radius (mm) of a marker ring around ``frame``."""
    pts = _points(surface)
    frame_of_point = _point_array(surface, "frame_index")
    ring_pts = None
    if frame_of_point is not None and len(pts):
        nearest = np.min(np.abs(frame_of_point - frame))
        if nearest <= 0.5 or poses is None:
            ring_pts = pts[np.abs(frame_of_point - frame) <= nearest + 0.5]
    if poses is not None and len(poses.frame_index):
        row = int(np.argmin(np.abs(np.asarray(poses.frame_index) - frame)))
        centre = np.asarray(poses.origin_ras_mm[row], dtype=float)
        normal = np.asarray(poses.normal_ras[row], dtype=float)
        if ring_pts is not None and len(ring_pts) >= 3:
            centre = ring_pts.mean(axis=0)
    elif ring_pts is not None and len(ring_pts) >= 3:
        centre = ring_pts.mean(axis=0)
        _, _, vt = np.linalg.svd(ring_pts - centre, full_matrices=False)
        normal = vt[-1]
    else:
        return None
    normal = normal / max(np.linalg.norm(normal), 1e-12)
    if ring_pts is not None and len(ring_pts) >= 3:
        offsets = ring_pts - centre
        in_plane = offsets - np.outer(offsets @ normal, normal)
        radius = float(np.max(np.linalg.norm(in_plane, axis=1)))
    else:
        radius = default_radius_mm
    return centre, normal, radius * 1.12


def _polyline(points: np.ndarray, *, closed: bool = False) -> vtkPolyData:
    poly = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=float), deep=True))
    poly.SetPoints(vpts)
    lines = vtkCellArray()
    ids = list(range(len(points))) + ([0] if closed else [])
    lines.InsertNextCell(len(ids))
    for i in ids:
        lines.InsertCellPoint(i)
    poly.SetLines(lines)
    return poly


def _inside_part(curve: np.ndarray, surface_pts: np.ndarray, *, reach_mm: float) -> np.ndarray:
    """The longest run of ``curve`` points (K, 3) within ``reach_mm`` of the surface points.

    The centerline usually runs past the imaged segment; only the part inside the vessel is
    drawn, so it neither leaves the frame nor crosses the colour bar.
    """
    step = max(1, len(surface_pts) // 20_000)
    distance, _ = cKDTree(surface_pts[::step]).query(curve, k=1)
    inside = distance <= reach_mm
    if not inside.any():
        return curve[:0]
    edges = np.diff(np.concatenate([[0], inside.astype(int), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    return curve[starts[longest] : ends[longest]]


def _tube_actor(points: np.ndarray, radius_mm: float, rgb: Sequence[float], *, closed: bool) -> vtkActor:
    tube = vtkTubeFilter()
    tube.SetInputData(_polyline(points, closed=closed))
    tube.SetRadius(radius_mm)
    tube.SetNumberOfSides(16)
    tube.CappingOn()
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(tube.GetOutputPort())
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*rgb)
    prop.SetSpecular(0.3)
    prop.SetSpecularPower(30)
    return actor


def device_polydata(summary: Mapping[str, Any], centerline_ras_mm: np.ndarray) -> list[vtkPolyData]:
    """The planned devices of a summary (``plans``, else ``plan``) as closed tubes in RAS mm.

    Parameters
    ----------
    summary : dict
        ``plans`` / ``plan`` of ``summary.json`` (``device.start_mm``, ``end_mm``, ``diameter_mm``).
    centerline_ras_mm : ndarray of shape (K, 3)
        Distal first; the device positions are arc lengths from its first point.

    Returns
    -------
    list of vtkPolyData
        One per device with a diameter, with the point array ``plan_id``.
    """
    from .plan import device_path, device_tube

    plans = summary.get("plans") or ([summary["plan"]] if summary.get("plan") else [])
    cl = np.asarray(centerline_ras_mm, dtype=float)
    out = []
    if cl.ndim != 2 or len(cl) < 2:
        return out
    for k, plan in enumerate(plans, start=1):
        device = (plan or {}).get("device") or {}
        if device.get("diameter_mm") is None or device.get("start_mm") is None:
            continue
        path = device_path(cl, float(device["start_mm"]), float(device["end_mm"]))
        vertices, triangles = device_tube(path, 0.5 * float(device["diameter_mm"]), sides=_DEVICE_SIDES)
        ids = np.full(len(vertices), int(plan.get("id", k)), dtype=np.int32)
        out.append(_polydata_from(vertices, triangles, {"plan_id": ids}))
    return out


def _with_normals(polydata: Any) -> Any:
    if polydata.GetPointData().GetNormals() is not None:
        return polydata
    normals = vtkPolyDataNormals()
    normals.SetInputData(polydata)
    normals.SplittingOff()
    normals.ConsistencyOff()
    normals.AutoOrientNormalsOff()
    normals.Update()
    return normals.GetOutput()


def _surface_actor(
    polydata: Any,
    *,
    rgb: Sequence[float],
    opacity: float,
    scalars: str | None,
    table: vtkLookupTable | None,
    cull: str | None = None,
) -> vtkActor:
    mapper = vtkPolyDataMapper()
    mapper.SetInputData(polydata)
    if scalars is not None and table is not None:
        mapper.SetLookupTable(table)
        mapper.SetScalarModeToUsePointFieldData()
        mapper.SelectColorArray(scalars)
        mapper.SetUseLookupTableScalarRange(True)
        mapper.ScalarVisibilityOn()
        # Interpolating the scalar before the lookup keeps colours exact across large cells.
        mapper.InterpolateScalarsBeforeMappingOn()
    else:
        mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    prop = actor.GetProperty()
    prop.SetColor(*rgb)
    prop.SetOpacity(opacity)
    prop.SetBackfaceCulling(cull == "back")
    prop.SetFrontfaceCulling(cull == "front")
    # More ambient light on the coloured shell keeps its colours close to the colour bar's.
    prop.SetAmbient(0.15 if scalars is None else 0.35)
    prop.SetDiffuse(0.85 if scalars is None else 0.65)
    prop.SetSpecular(0.25 if opacity >= 1.0 else 0.1)
    prop.SetSpecularPower(25)
    return actor


def _faces_outward(polydata: Any) -> bool:
    """Whether the polygons of a (possibly open) tube are wound with normals pointing out.

    The flux of ``p - centroid`` through the surface is positive for outward winding; the open
    ends of a tube remove only about a third of it, so the sign stays reliable.
    """
    triangles = vtkTriangleFilter()
    triangles.SetInputData(polydata)
    triangles.PassLinesOff()
    triangles.PassVertsOff()
    triangles.Update()
    tri = triangles.GetOutput()
    if tri.GetNumberOfCells() == 0:
        return True
    pts = _points(tri)
    pts = pts - pts.mean(axis=0)
    ids = vtk_to_numpy(tri.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    a, b, c = pts[ids[:, 0]], pts[ids[:, 1]], pts[ids[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c))) >= 0.0


def _text_actor(
    text: str, *, font_px: int, rgb: Sequence[float], bold: bool = False, justify: str = "left"
) -> vtkTextActor:
    actor = vtkTextActor()
    actor.SetInput(text)
    prop = actor.GetTextProperty()
    prop.SetFontFamilyToArial()
    prop.SetFontSize(int(font_px))
    prop.SetColor(*rgb)
    prop.SetBold(bold)
    {
        "left": prop.SetJustificationToLeft,
        "center": prop.SetJustificationToCentered,
        "right": prop.SetJustificationToRight,
    }[justify]()
    return actor


def _camera_basis(
    points: np.ndarray, arc_length_mm: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre and (right, up, toward-camera) unit vectors with distal on the left."""
    centre, axes = _principal_axes(points)
    right = axes[0]
    if arc_length_mm is not None and len(arc_length_mm) == len(points) and np.ptp(arc_length_mm) > 0:
        # A short wide segment has its largest spread across the vessel: take the principal
        # axis closest to the distal-to-proximal direction as the long axis.
        lo, hi = np.quantile(arc_length_mm, [0.1, 0.9])
        along = points[arc_length_mm >= hi].mean(axis=0) - points[arc_length_mm <= lo].mean(axis=0)
        if abs(axes[0] @ along) < 0.98 * np.linalg.norm(along):
            right = along / np.linalg.norm(along)
            rest = points[:: max(1, len(points) // 200_000)] - centre
            rest = rest - np.outer(rest @ right, right)
            second = np.linalg.svd(rest, full_matrices=False)[2][0]
            axes = np.array([right, second, np.cross(right, second)])
        right = axes[0]
    if arc_length_mm is not None and len(arc_length_mm) == len(points):
        # Orient the long axis from distal (small arc length) to proximal (large arc length).
        t = (points - centre) @ right
        if np.corrcoef(t, arc_length_mm)[0, 1] < 0:
            right = -right
    elif right @ np.array([1.0, 1.0, 1.0]) < 0:
        right = -right
    up = axes[1]
    # Prefer "superior" (then "anterior") up, so the same anatomy lands the same way up.
    hint = up @ np.array([0.0, 0.3, 1.0])
    if hint < 0 or (hint == 0 and up[0] < 0):
        up = -up
    toward = np.cross(right, up)
    return centre, right, up, toward


def _rotate(vector: np.ndarray, axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rodrigues rotation of ``vector`` about the unit ``axis``."""
    a = np.radians(angle_deg)
    return (
        vector * np.cos(a) + np.cross(axis, vector) * np.sin(a) + axis * (axis @ vector) * (1.0 - np.cos(a))
    )


def _offscreen_window() -> vtkRenderWindow:
    """A render window that needs no X server when there is none.

    VTK's default factory tries X first and logs a warning before falling back to EGL; asking
    for EGL (or OSMesa) directly keeps headless runs quiet. Slicer's own VTK, which may lack
    them, gets the default window.
    """
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        from vtkmodules import vtkRenderingOpenGL2

        for name in ("vtkEGLRenderWindow", "vtkOSOpenGLRenderWindow"):
            cls = getattr(vtkRenderingOpenGL2, name, None)
            if cls is not None:
                return cls()
    return vtkRenderWindow()


def _ring_layout(polydata: Any) -> tuple[int, int] | None:
    """(rings, points per ring) when the surface starts with rings of equal size in frame order.

    The mesh stage lofts each frame's contour into one ring of ``n`` points (then adds the two
    cap centres); other surfaces give None.
    """
    frame_of_point = _point_array(polydata, "frame_index")
    if frame_of_point is None or len(frame_of_point) < 6:
        return None
    n = int(np.argmax(frame_of_point != frame_of_point[0])) or len(frame_of_point)
    rings = len(frame_of_point) // n
    if n < 3 or rings < 2 or len(frame_of_point) - rings * n > 2:
        return None
    block = frame_of_point[: rings * n].reshape(rings, n)
    if not np.all(block == block[:, :1]) or np.any(np.diff(block[:, 0]) == 0):
        return None
    return rings, n


def _tube_cells(n_rings: int, n: int) -> np.ndarray:
    j = np.arange(n_rings - 1)[:, None]
    k = np.arange(n)[None, :]
    a, b = j * n + k, j * n + (k + 1) % n
    c, d = b + n, a + n
    return np.stack([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], axis=2).reshape(-1, 3)


def _polydata_from(
    points: np.ndarray, triangles: np.ndarray, arrays: Mapping[str, np.ndarray]
) -> vtkPolyData:
    poly = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(np.ascontiguousarray(points, dtype=float), deep=True))
    poly.SetPoints(vpts)
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(triangles) + 1, 3, dtype=np.int64)
    cells.SetData(
        numpy_to_vtkIdTypeArray(offsets, deep=True),
        numpy_to_vtkIdTypeArray(np.ascontiguousarray(triangles, dtype=np.int64).ravel(), deep=True),
    )
    poly.SetPolys(cells)
    for name, values in arrays.items():
        array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        array.SetName(name)
        poly.GetPointData().AddArray(array)
    return poly


def display_surface(polydata: Any, *, max_rings: int, max_ring_points: int = 96) -> Any:
    """A lighter copy of a lofted surface for display: every k-th ring, every m-th ring point.

    A 6000-frame pullback of 360-point rings has ~4 M triangles, far more than the pixels they
    cover; keeping about one ring per pixel column leaves the picture unchanged and renders
    an order of magnitude faster. Surfaces that are not ring-structured, or already small, are
    returned as they are.

    Parameters
    ----------
    polydata : vtkPolyData
        A surface of :func:`mesh.build_meshes` (rings in frame order, then the cap centres).
    max_rings : int
        Rings kept at most (the first and last are always kept).
    max_ring_points : int
        Points kept per ring at most.

    Returns
    -------
    vtkPolyData
        Same point arrays, the tube closed by fan caps when the input had cap centres.
    """
    layout = _ring_layout(polydata)
    if layout is None:
        return polydata
    rings, n = layout
    ring_step = int(np.ceil(rings / max(2, max_rings)))
    point_step = int(np.ceil(n / max(3, max_ring_points)))
    if ring_step <= 1 and point_step <= 1:
        return polydata
    keep_rings = np.unique(np.r_[np.arange(0, rings, ring_step), rings - 1])
    keep_points = np.arange(0, n, point_step)
    m = len(keep_points)
    index = (keep_rings[:, None] * n + keep_points[None, :]).ravel()
    pts = _points(polydata)[index]
    triangles = _tube_cells(len(keep_rings), m)
    # Same winding as the input: compare one triangle's normal with the input's first one.
    orig = vtk_to_numpy(polydata.GetPolys().GetConnectivityArray())[:3]
    all_pts = _points(polydata)
    n_orig = np.cross(all_pts[orig[1]] - all_pts[orig[0]], all_pts[orig[2]] - all_pts[orig[0]])
    centre0 = all_pts[:n].mean(axis=0)
    a, b, c = pts[triangles[0]]
    n_new = np.cross(b - a, c - a)
    side_orig = np.sign(n_orig @ (all_pts[orig[0]] - centre0))
    side_new = np.sign(n_new @ (a - pts[:m].mean(axis=0)))
    flipped = bool(side_orig != 0 and side_new != 0 and side_orig != side_new)
    if flipped:
        triangles = triangles[:, ::-1]
    data = polydata.GetPointData()
    arrays = {
        data.GetArrayName(i): vtk_to_numpy(data.GetArray(i))[index]
        for i in range(data.GetNumberOfArrays())
        if data.GetArrayName(i) and data.GetArray(i).GetNumberOfTuples() == polydata.GetNumberOfPoints()
    }
    if polydata.GetNumberOfPoints() > rings * n:
        # Fan caps around each end ring's centroid, wound like the side triangles.
        last = (len(keep_rings) - 1) * m
        k = np.arange(m)
        centres = np.array([pts[:m].mean(axis=0), pts[last:].mean(axis=0)])
        start = np.column_stack([np.full(m, len(pts)), (k + 1) % m, k])
        end = np.column_stack([np.full(m, len(pts) + 1), last + k, last + (k + 1) % m])
        if flipped:
            start, end = start[:, ::-1], end[:, ::-1]
        triangles = np.vstack([triangles, start, end])
        pts = np.vstack([pts, centres])
        arrays = {name: np.concatenate([v, v[[0, last]]]) for name, v in arrays.items()}
    return _polydata_from(pts, triangles, arrays)


def _angular_spans(polygons: Sequence[np.ndarray], centre: np.ndarray) -> list[tuple[float, float]]:
    """(start, width) in radians of each polygon as seen from ``centre`` (frame-plane mm)."""
    spans = (angular_span(polygon, centre) for polygon in polygons)
    return [span for span in spans if span is not None]


def calcium_surface(lumen: Any, contours: Any, poses: Any, *, lift: float = 0.05) -> vtkPolyData | None:
    """The part of the lumen surface that faces calcium, lifted slightly outward.

    Each ring point of a frame with calcium polygons is mapped back to its frame plane; it is
    calcified when its direction from the lumen centroid falls inside the angular span of a
    calcium polygon. Triangles with three calcified corners are kept, and their points are
    pushed out by ``lift`` times their distance from the centroid so they show on top of the
    lumen, where the calcium sits (just outside it, in the plaque).

    Parameters
    ----------
    lumen : vtkPolyData
        Lumen surface with the point array ``frame_index``.
    contours : ContourSet
        Frame-plane calcium polygons (``FrameContours.calcium``) and lumens.
    poses : FramePoses
        Where each frame sits in the world.
    lift : float
        Outward push as a fraction of the radius.

    Returns
    -------
    vtkPolyData or None
        None when no frame has calcium or no triangle is calcified.
    """
    if lumen is None or contours is None or poses is None:
        return None
    frame_of_point = _point_array(lumen, "frame_index")
    if frame_of_point is None:
        return None
    row_of = {int(f): r for r, f in enumerate(np.asarray(poses.frame_index))}
    pts = _points(lumen)
    mask = np.zeros(len(pts), dtype=bool)
    lifted = pts.copy()
    axes_ras = np.asarray(poses.axes_ras, dtype=float)
    for fc in getattr(contours, "frames", ()):
        if not fc.calcium or int(fc.index) not in row_of:
            continue
        row = row_of[int(fc.index)]
        axes = axes_ras[row]  # (3, 2)
        if not np.all(np.isfinite(axes)) or np.linalg.norm(axes) < 1e-9:
            continue
        # the lumen centroid, from which the calcium arc of the metrics is measured
        centre = polygon_centroid(fc.lumen)
        spans = _angular_spans(fc.calcium, centre)
        if not spans:
            continue
        on = np.flatnonzero(frame_of_point == fc.index)
        local = (pts[on] - poses.origin_ras_mm[row]) @ axes + poses.offset_mm[row]
        angle = np.arctan2(local[:, 1] - centre[1], local[:, 0] - centre[0])
        inside = np.zeros(len(on), dtype=bool)
        for start, width in spans:
            inside |= np.mod(angle - start, 2 * np.pi) <= width
        mask[on] = inside
        pushed = centre + (local - centre) * (1.0 + lift)
        lifted[on] = poses.origin_ras_mm[row] + (pushed - poses.offset_mm[row]) @ axes.T
    if not mask.any():
        return None
    triangles = vtk_to_numpy(lumen.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    keep = triangles[mask[triangles].all(axis=1)]
    if not len(keep):
        return None
    used = np.unique(keep)
    remap = np.full(len(pts), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return _polydata_from(lifted[used], remap[keep], {})


def render_empty(
    size_px: tuple[int, int], *, background: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """An empty offscreen scene of ``size_px`` (width, height): the cost floor of a render.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    width, height = int(size_px[0]), int(size_px[1])
    renderer = vtkRenderer()
    renderer.SetBackground(*background)
    window = _offscreen_window()
    window.SetOffScreenRendering(True)
    window.SetMultiSamples(0)
    window.SetSize(width, height)
    window.AddRenderer(renderer)
    window.Render()
    pixels = _grab(window, width, height)
    window.Finalize()
    return pixels


def _grab(window: Any, width: int, height: int) -> np.ndarray:
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)[::-1]


@dataclass(frozen=True)
class RenderStyle:
    """How :func:`render_vessel` draws: image size, view, colours and anti-aliasing.

    Attributes
    ----------
    size_px : (int, int)
        Output (width, height) in pixels.
    view : {"overview", "mla", "along"}
        The whole vessel seen from the side; the MLA region close up; or looking along the vessel
        from its proximal end.
    background : (float, float, float)
        RGB in [0, 1].
    color_by : str
        Vessel point array coloured through the burden colormap over ``value_range``; when the
        array is missing the vessel is drawn grey and no colour bar is shown.
    value_range : (float, float)
        Colour bar range, percent.
    vessel_opacity : float
        Opacity of the near half of the vessel surface, in [0, 1].
    far_opacity : float
        Opacity of the far half of the vessel surface (the coloured backdrop of the lumen).
    elevation_deg : float, optional
        Tilt of the side views about the vessel axis (0 = exactly perpendicular). By default
        20, or, when calcium is drawn, the tilt in 30-degree steps that shows most of it.
    supersample : int, optional
        Anti-aliasing factor: the scene is rendered this many times larger and averaged down.
        By default 2 up to about 1.3 megapixels and 1 (with FXAA) above, where the larger
        render would cost more than it shows.
    title : str, optional
        Heading at the top left.
    max_display_rings : int, optional
        Rings drawn at most per surface (see :func:`display_surface`); by default about one
        per output pixel column.

    Raises
    ------
    ValueError
        When ``view`` is not one of :data:`VIEWS`.
    """

    size_px: tuple[int, int] = (1600, 1000)
    view: str = "overview"
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color_by: str = "plaque_burden_percent"
    value_range: tuple[float, float] = (0.0, 100.0)
    vessel_opacity: float = 0.15
    far_opacity: float = 0.85
    elevation_deg: float | None = None
    supersample: int | None = None
    title: str | None = None
    max_display_rings: int | None = None

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {self.view!r}")


@dataclass(frozen=True)
class _Scene:
    """The displayed surfaces and the frame of reference the camera is set in."""

    lumen: Any
    vessel: Any  # None without a vessel surface
    outer: Any  # the vessel, else the lumen
    outer_pts: np.ndarray
    centre: np.ndarray
    right: np.ndarray  # distal to proximal
    up: np.ndarray
    toward: np.ndarray  # toward the side-view camera
    typical_radius: float


def _display_scene(mesh: VesselMesh, max_rings: int) -> _Scene:
    """Decimated display surfaces of ``mesh`` and their camera basis (see :func:`_camera_basis`)."""
    lumen = display_surface(mesh.lumen, max_rings=max_rings)
    vessel = mesh.vessel if mesh.vessel is not None and mesh.vessel.GetNumberOfPoints() else None
    if vessel is not None:
        vessel = display_surface(vessel, max_rings=max_rings)
    outer = vessel if vessel is not None else lumen
    outer_pts = _points(outer)
    centre, right, up, toward = _camera_basis(outer_pts, _point_array(outer, "arc_length_mm"))
    radii = np.linalg.norm((outer_pts - centre) - np.outer((outer_pts - centre) @ right, right), axis=1)
    typical_radius = float(np.median(radii)) if len(radii) else 1.0
    return _Scene(lumen, vessel, outer, outer_pts, centre, right, up, toward, typical_radius)


def _add_surfaces(renderer: vtkRenderer, scene: _Scene, calcium: Any, style: RenderStyle) -> Any:
    """Lumen (opaque), calcium patches and the two-layer vessel shell; the colour table or None."""
    # Lumen first (opaque), then the translucent vessel around it.
    renderer.AddActor(
        _surface_actor(_with_normals(scene.lumen), rgb=LUMEN_RGB, opacity=1.0, scalars=None, table=None)
    )
    if calcium is not None:
        actor = _surface_actor(
            _with_normals(calcium), rgb=_CALCIUM_RGB, opacity=1.0, scalars=None, table=None
        )
        actor.GetProperty().SetAmbient(0.45)
        actor.GetProperty().SetDiffuse(0.6)
        renderer.AddActor(actor)
    if scene.vessel is None:
        return None
    has_scalars = scene.vessel.GetPointData().GetArray(style.color_by) is not None
    table = burden_lookup_table(value_range=style.value_range) if has_scalars else None
    surface = _with_normals(scene.vessel)
    outward = _faces_outward(surface)
    # The far half of the vessel shell is drawn nearly opaque, so plaque burden reads in its
    # true colours around the lumen; the near half is a faint veil, so the lumen in front of
    # it keeps its colour instead of turning brown under a coloured layer.
    for near, opacity in ((False, style.far_opacity), (True, style.vessel_opacity)):
        cull = "back" if near == outward else "front"
        renderer.AddActor(
            _surface_actor(
                surface,
                rgb=(0.75, 0.75, 0.78),
                opacity=float(np.clip(opacity, 0.0, 1.0)),
                scalars=style.color_by if has_scalars else None,
                table=table,
                cull=cull,
            )
        )
    return table


def _device_actors(devices: Sequence[vtkPolyData]) -> list[vtkActor]:
    """Translucent device tubes with hoops at both ends and about every 4 mm.

    The hoops read as a device whatever lies behind it; the actors go in a layer over the
    scene since a device sits inside the lumen, which would hide it.
    """
    actors: list[vtkActor] = []
    for polydata in devices:
        actor = _surface_actor(
            _with_normals(polydata), rgb=DEVICE_RGB, opacity=DEVICE_OPACITY, scalars=None, table=None,
            cull="back",
        )  # fmt: skip
        actor.GetProperty().SetAmbient(0.4)
        actors.append(actor)
        points = vtk_to_numpy(polydata.GetPoints().GetData())[:-2].reshape(-1, _DEVICE_SIDES, 3)
        centres = points.mean(axis=1)
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centres, axis=0), axis=1))])
        diameter = 2.0 * float(np.linalg.norm(points[0, 0] - centres[0]))
        count = max(2, int(round(along[-1] / 4.0)) + 1)
        rings = np.unique(np.searchsorted(along, np.linspace(0.0, along[-1], count)).clip(0, len(points) - 1))
        for ring in rings:
            actors.append(_tube_actor(points[ring], max(0.03, 0.015 * diameter), DEVICE_RGB, closed=True))
    return actors


def _imaged_centerline(centerline: np.ndarray, poses: Any, scene: _Scene) -> np.ndarray:
    """The part of the centerline (K, 3) to draw: from the first to the last placed frame,
    or without poses the part inside the vessel."""
    cl = centerline
    if cl.ndim == 2 and len(cl) >= 2:
        if poses is not None and len(poses.frame_index) >= 2:
            ends = np.asarray(poses.origin_ras_mm)[[0, -1]]
            k = sorted(int(np.argmin(np.linalg.norm(cl - e, axis=1))) for e in ends)
            cl = cl[k[0] : k[1] + 1]
        else:
            cl = _inside_part(cl, scene.outer_pts, reach_mm=scene.typical_radius)
    return cl


def _add_marker_rings(
    renderer: vtkRenderer, summary: Mapping[str, Any], scene: _Scene, poses: Any
) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """Rings at the MLA and reference frames; their (kind, centre, circle points, label text)."""
    labels: list[tuple[str, np.ndarray, np.ndarray, str]] = []
    for kind, frame, text in _marker_frames(summary):
        ring = _ring_geometry(frame, scene.outer, poses, scene.typical_radius)
        if ring is None:
            continue
        ring_centre, normal, radius = ring
        helper = scene.right if abs(normal @ scene.up) > 0.9 else scene.up
        u = np.cross(normal, helper)
        u /= np.linalg.norm(u)
        v = np.cross(normal, u)
        angles = np.linspace(0.0, 2.0 * np.pi, 96, endpoint=False)
        circle = ring_centre + radius * (np.outer(np.cos(angles), u) + np.outer(np.sin(angles), v))
        rgb = _MLA_RGB if kind == "mla" else _REFERENCE_RGB
        renderer.AddActor(_tube_actor(circle, max(0.05, 0.07 * radius), rgb, closed=True))
        labels.append((kind, ring_centre, circle, text))
    return labels


def _place_camera(
    camera: Any,
    scene: _Scene,
    *,
    view: str,
    elevation_deg: float,
    focus: np.ndarray,
    right_edge: float,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Point ``camera`` for ``view``; the points to frame and the NDC box (x0, x1, y0, y1) they fill.

    Side views look perpendicular to the vessel's main direction, tilted by ``elevation_deg``,
    in parallel projection; ``"mla"`` centres on ``focus`` and frames only the vessel near it.
    ``right_edge`` is the right side of the free part of the frame (left of a colour bar).
    """
    centre, right, up, outer_pts = scene.centre, scene.right, scene.up, scene.outer_pts
    if view == "along":
        # From beyond the proximal end, 30 degrees off the vessel axis and a little above it, in
        # perspective: the vessel recedes toward its distal end, so the narrowing and the rings
        # read in depth without the near end hiding the rest.
        length = float(np.ptp((outer_pts - centre) @ right))
        direction = _rotate(right, up, -30.0)
        direction = _rotate(
            direction, np.cross(direction, up) / max(np.linalg.norm(np.cross(direction, up)), 1e-9), 12.0
        )
        distance = 0.9 * length + 8.0 * scene.typical_radius
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + direction * distance))
        camera.SetViewUp(*up)
        camera.SetViewAngle(35.0)
        return outer_pts, (-0.94, right_edge, -0.66, 0.62)
    toward_cam = _rotate(scene.toward, right, elevation_deg)
    view_up = np.cross(toward_cam, right)
    scene_pts = outer_pts
    if view == "mla":
        half_window = max(6.0 * scene.typical_radius, 6.0)
        near = np.abs((outer_pts - focus) @ right) <= half_window
        if np.any(near):
            scene_pts = outer_pts[near]
    else:
        focus = centre
    extent = float(np.linalg.norm(np.ptp(outer_pts, axis=0))) + 10.0 * scene.typical_radius
    camera.ParallelProjectionOn()
    camera.SetFocalPoint(*focus)
    camera.SetPosition(*(focus + toward_cam * 2.0 * extent))
    camera.SetViewUp(*view_up)
    camera.SetParallelScale(0.5 * extent)
    return scene_pts, (-0.94, right_edge, -0.60, 0.56)


def _window_with_layers(
    renderer: vtkRenderer, kit: vtkLightKit, overlay_actors: Sequence[vtkActor], size_px: tuple[int, int]
) -> vtkRenderWindow:
    """An offscreen window of ``renderer``, plus an overlay layer sharing its camera and lights
    when there are ``overlay_actors``."""
    window = _offscreen_window()
    window.SetOffScreenRendering(True)
    window.SetMultiSamples(0)
    window.SetSize(*size_px)
    window.AddRenderer(renderer)
    if overlay_actors:
        overlay = vtkRenderer()
        overlay.SetLayer(1)
        overlay.SetActiveCamera(renderer.GetActiveCamera())
        overlay.AutomaticLightCreationOff()
        kit.AddLightsToRenderer(overlay)
        for actor in overlay_actors:
            overlay.AddActor(actor)
        window.SetNumberOfLayers(2)
        window.AddRenderer(overlay)
    return window


def _add_colour_bar(
    renderer: vtkRenderer,
    table: vtkLookupTable,
    *,
    background: Sequence[float],
    size_px: tuple[int, int],
    font: int,
) -> None:
    """The plaque-burden colour bar at the right edge, on a background-coloured panel."""
    big_w, big_h = size_px
    # The panel hides geometry that a close-up pushes into that part of the frame.
    panel = np.array([[0.83, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.83, 1.0, 0.0]])
    renderer.AddViewProp(_polygon_actor_2d(panel * [big_w, big_h, 0.0], background))
    bar = vtkScalarBarActor()
    bar.SetLookupTable(table)
    bar.SetTitle("Plaque burden (%)")
    bar.SetNumberOfLabels(6)
    bar.SetLabelFormat("%.0f")
    bar.SetMaximumNumberOfColors(256)
    bar.SetOrientationToVertical()
    bar.SetTextPositionToPrecedeScalarBar()
    bar.UnconstrainedFontSizeOn()
    bar.SetBarRatio(0.3)
    bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    bar.GetPositionCoordinate().SetValue(0.855, 0.16)
    bar.SetWidth(0.11)
    bar.SetHeight(0.68)
    for prop in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
        prop.SetColor(*_TEXT_RGB)
        prop.SetFontFamilyToArial()
        prop.SetFontSize(int(font * 0.9))
        prop.SetBold(False)
        prop.SetItalic(False)
        prop.ShadowOff()
    bar.GetTitleTextProperty().SetBold(True)
    renderer.AddViewProp(bar)


def _add_marker_labels(
    renderer: vtkRenderer,
    labels: Sequence[tuple[str, np.ndarray, np.ndarray, str]],
    project: Any,
    vessel_px: np.ndarray,
    *,
    font: int,
    width_px: int,
) -> None:
    """Reference labels in the band above the vessel, the MLA label below, with leader lines.

    The labels never cover the surface: each clears the vessel's screen extent ``vessel_px``
    (M, 2) only where it is, so leaders stay short; labels of a band are spread apart.
    """
    if not labels:
        return
    top_px, bottom_px = float(vessel_px[:, 1].max()), float(vessel_px[:, 1].min())
    for band in ("above", "below"):
        placed = []  # kind, ring x, ring y, text y, text
        for kind, _, circle, text in labels:
            if (kind == "mla") != (band == "below"):
                continue
            ring_px = project(circle)
            top = int(np.argmax(ring_px[:, 1])) if band == "above" else int(np.argmin(ring_px[:, 1]))
            ring_x, ring_y = (float(v) for v in ring_px[top])
            half = 0.35 * font * len(text) + font
            local = vessel_px[np.abs(vessel_px[:, 0] - ring_x) <= half, 1]
            if band == "above":
                text_y = max(ring_y, local.max() if len(local) else top_px) + 1.2 * font
            else:
                text_y = min(ring_y, local.min() if len(local) else bottom_px) - 2.2 * font
            placed.append((kind, ring_x, ring_y, text_y, text))
        xs = _spread_labels(
            [p[1] for p in placed], [0.6 * font * len(p[4]) for p in placed], width_px=width_px
        )
        for (kind, ring_x, ring_y, text_y, text), x in zip(placed, xs, strict=True):
            rgb = _MLA_RGB if kind == "mla" else _REFERENCE_RGB
            actor = _text_actor(text, font_px=font, rgb=rgb, bold=True, justify="center")
            actor.SetPosition(x, text_y)
            renderer.AddViewProp(actor)
            gap = 0.3 * font
            end_y = text_y - gap if band == "above" else text_y + 1.1 * font + gap
            start_y = ring_y + gap if band == "above" else ring_y - gap
            leader = np.array([[ring_x, start_y, 0.0], [x, end_y, 0.0]])
            renderer.AddViewProp(_line_actor_2d(leader, rgb, width=max(1.0, font / 12.0)))


def _add_legend(
    renderer: vtkRenderer,
    entries: Sequence[tuple[str, Sequence[float]]],
    *,
    mm_per_px: float | None,
    font: int,
    size_px: tuple[int, int],
) -> None:
    """Colour swatches with names along the bottom left, then a scale bar when ``mm_per_px``
    is given (exact in the parallel side views only)."""
    big_w, big_h = size_px
    legend_y = 0.03 * big_h
    swatch = 0.7 * font
    square = np.array([[0.0, 0.0, 0.0], [swatch, 0.0, 0.0], [swatch, swatch, 0.0], [0.0, swatch, 0.0]]) + [
        0.02 * big_w,
        legend_y + 0.1 * font,
        0.0,
    ]
    legend_x = 0.02 * big_w
    for name, rgb in entries:
        renderer.AddViewProp(_polygon_actor_2d(square + [legend_x - 0.02 * big_w, 0.0, 0.0], rgb))
        renderer.AddViewProp(
            _line_actor_2d(
                np.vstack([square, square[:1]]) + [legend_x - 0.02 * big_w, 0.0, 0.0], _TEXT_RGB, width=1.0
            )
        )
        legend = _text_actor(name, font_px=int(font * 0.85), rgb=_TEXT_RGB)
        legend.SetPosition(legend_x + 1.3 * swatch, legend_y)
        renderer.AddViewProp(legend)
        legend_x += 1.3 * swatch + 0.5 * font * len(name) + 1.5 * font
    if mm_per_px is not None:
        bar_mm = _nice_length_mm(0.15 * big_w * mm_per_px)
        bar_px = bar_mm / mm_per_px
        x0, y0 = legend_x + 0.5 * font, legend_y + 0.3 * font
        renderer.AddViewProp(_scale_bar_actor(x0, y0, bar_px, font))
        label = _text_actor(f"{bar_mm:g} mm", font_px=int(font * 0.85), rgb=_TEXT_RGB)
        label.SetPosition(x0 + bar_px + 0.5 * font, legend_y)
        renderer.AddViewProp(label)


def render_vessel(
    mesh: VesselMesh,
    *,
    centerline: Any = None,
    poses: Any = None,
    metrics: Any = None,
    contours: Any = None,
    lesions: Sequence[Mapping[str, Any]] | None = None,
    style: RenderStyle = RenderStyle(),  # noqa: B008 - frozen, immutable default
) -> np.ndarray:
    """Render the vessel offscreen.

    Parameters
    ----------
    mesh : VesselMesh
        ``lumen`` (required) and ``vessel`` surfaces, vtkPolyData in RAS mm, with the point
        arrays ``frame_index`` and ``style.color_by`` on the vessel.
    centerline : Centerline or ndarray of shape (K, 3), optional
        Drawn as a thin tube, with the planned device(s) of ``metrics`` along it.
    poses : FramePoses, optional
        Centres and normals of the marker rings; without it they come from the mesh points of
        the marked frames.
    metrics : Metrics or dict, optional
        ``summary["mla"]["frame"]`` and ``summary["references"][side]["frame"]`` are marked.
    contours : ContourSet, optional
        With ``poses``: calcium polygons are shown as bone-white patches on the lumen.
    lesions : list of dict, optional
        Lesion records (``start_mm`` / ``end_mm``); by default ``metrics.lesions``. Each is
        marked by an amber bracket under the vessel (side views).
    style : RenderStyle
        Size, view, colours, opacities, tilt, anti-aliasing and title.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    if mesh is None or mesh.lumen is None or mesh.lumen.GetNumberOfPoints() == 0:
        raise ValueError("render_vessel needs a mesh with a non-empty lumen surface")
    width, height = int(style.size_px[0]), int(style.size_px[1])
    supersample = style.supersample
    if supersample is None:
        supersample = 2 if width * height <= 1_300_000 else 1
    ss = max(1, int(supersample))
    big_w, big_h = width * ss, height * ss
    font = max(8, int(round(big_h / 42)))
    view = style.view

    rings_cap = int(style.max_display_rings) if style.max_display_rings else max(width, height)
    scene = _display_scene(mesh, rings_cap)
    summary = _summary_of(metrics)

    renderer = vtkRenderer()
    renderer.SetBackground(*style.background)
    renderer.SetUseDepthPeeling(False)  # weighted-blended OIT: one pass, order independent
    renderer.AutomaticLightCreationOff()
    kit = vtkLightKit()
    kit.SetKeyLightIntensity(0.85)
    kit.AddLightsToRenderer(renderer)
    calcium = calcium_surface(scene.lumen, contours, poses)
    table = _add_surfaces(renderer, scene, calcium, style)
    devices: list[vtkPolyData] = []
    if centerline is not None:
        cl = np.asarray(getattr(centerline, "points_ras_mm", centerline), dtype=float)
        devices = device_polydata(summary, cl)
        cl = _imaged_centerline(cl, poses, scene)
        if cl.ndim == 2 and len(cl) >= 2:
            renderer.AddActor(
                _tube_actor(cl, max(0.04, 0.06 * scene.typical_radius), _CENTERLINE_RGB, closed=False)
            )
    labels = _add_marker_rings(renderer, summary, scene, poses)

    # Camera: look perpendicular to the vessel's main direction (or along it), then zoom and
    # shift so the vessel fills the free part of the frame.
    camera = renderer.GetActiveCamera()
    aspect = big_w / big_h
    elevation_deg = style.elevation_deg
    if view != "along" and elevation_deg is None:
        elevation_deg = _best_elevation(calcium, poses, toward=scene.toward, right=scene.right)
    mla_label = next((lab for lab in labels if lab[0] == "mla"), None)
    scene_pts, target = _place_camera(
        camera, scene, view=view, elevation_deg=elevation_deg,
        focus=mla_label[1] if mla_label is not None else scene.centre,
        right_edge=0.62 if table is not None else 0.94,
    )  # fmt: skip
    renderer.ResetCameraClippingRange()
    step = max(1, len(scene_pts) // 50_000)
    _fit_camera(camera, scene_pts[::step], aspect=aspect, target=target)
    renderer.ResetCameraClippingRange()

    window = _window_with_layers(renderer, kit, _device_actors(devices), (big_w, big_h))
    if ss == 1:
        renderer.UseFXAAOn()  # cheap edge smoothing where supersampling would cost too much
    if table is not None:
        _add_colour_bar(renderer, table, background=style.background, size_px=(big_w, big_h), font=font)
    project = _projector(camera, aspect=aspect, size_px=(big_w, big_h))
    vessel_px = project(scene_pts[:: max(1, len(scene_pts) // 50_000)])
    if view != "along":
        spans = [_lesion_span_mm(les) for les in (_lesions_of(metrics) if lesions is None else lesions)]
        _add_lesion_brackets(
            renderer,
            [s for s in spans if s is not None],
            scene.outer,
            project,
            font=font,
            size_px=(big_w, big_h),
            right_limit_px=(0.83 if table is not None else 0.98) * big_w,
        )
    _add_marker_labels(renderer, labels, project, vessel_px, font=font, width_px=big_w)
    entries = [("Lumen", LUMEN_RGB)] + ([("Calcium", _CALCIUM_RGB)] if calcium is not None else [])
    entries += [("Planned device", DEVICE_RGB)] if devices else []
    mm_per_px = None if view == "along" else 2.0 * camera.GetParallelScale() / big_h
    _add_legend(renderer, entries, mm_per_px=mm_per_px, font=font, size_px=(big_w, big_h))
    if style.title:
        heading = _text_actor(style.title, font_px=int(font * 1.1), rgb=_TEXT_RGB, bold=True)
        heading.SetPosition(0.02 * big_w, big_h - 0.03 * big_h - font * 1.1)
        renderer.AddViewProp(heading)

    window.Render()
    pixels = _grab(window, big_w, big_h)
    window.Finalize()
    if ss > 1:
        pixels = pixels.reshape(height, ss, width, ss, 3).astype(np.float32).mean(axis=(1, 3))
        pixels = np.round(pixels)
    return np.ascontiguousarray(pixels, dtype=np.uint8)


def _best_elevation(calcium: Any, poses: Any, *, toward: np.ndarray, right: np.ndarray) -> float:
    """The side-view tilt (20 + k * 30 degrees) that faces the most calcium surface."""
    if calcium is None or poses is None:
        return 20.0
    pts = _points(calcium)
    tri = vtk_to_numpy(calcium.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    normal = np.cross(b - a, c - a)  # length = twice the area
    centre = (a + b + c) / 3.0
    _, nearest = cKDTree(np.asarray(poses.origin_ras_mm, dtype=float)).query(centre)
    outward = centre - np.asarray(poses.origin_ras_mm)[nearest]
    normal *= np.sign(np.einsum("ij,ij->i", normal, outward))[:, None]
    candidates = 20.0 + 30.0 * np.arange(12)
    scores = [np.clip(normal @ _rotate(toward, right, e), 0.0, None).sum() for e in candidates]
    return float(candidates[int(np.argmax(scores))])


def _add_lesion_brackets(
    renderer: vtkRenderer,
    spans_mm: Sequence[tuple[float, float]],
    surface: Any,
    project: Any,
    *,
    font: int,
    size_px: tuple[int, int],
    right_limit_px: float,
) -> None:
    """Amber brackets in a band under the vessel, one per lesion, with its length.

    The bracket spans the screen extent of the surface points whose ``arc_length_mm`` is
    inside the lesion; thin dashes join its ends to the bottom of the vessel there.
    """
    arc = _point_array(surface, "arc_length_mm")
    if arc is None or not len(spans_mm):
        return
    pts = _points(surface)
    step = max(1, len(pts) // 100_000)
    pts, arc = pts[::step], arc[::step]
    px = project(pts)
    width_px, height_px = size_px
    line_w = max(1.5, font / 9.0)
    for number, (s0, s1) in enumerate(spans_mm, start=1):
        inside = (arc >= s0) & (arc <= s1)
        if not inside.any():
            continue
        x0 = float(np.clip(px[inside, 0].min(), 0.01 * width_px, right_limit_px))
        x1 = float(np.clip(px[inside, 0].max(), 0.01 * width_px, right_limit_px))
        if x1 - x0 < 2:
            continue
        # Under the vessel with room for the MLA label between, never into the legend band.
        below = px[(px[:, 0] >= x0) & (px[:, 0] <= x1), 1]
        y_bracket = max(0.115 * height_px, (float(below.min()) if len(below) else 0.0) - 3.6 * font)
        tick = 0.45 * font
        bracket = np.array(
            [[x0, y_bracket + tick, 0], [x0, y_bracket, 0], [x1, y_bracket, 0], [x1, y_bracket + tick, 0]]
        )
        renderer.AddViewProp(_line_actor_2d(bracket, _LESION_RGB, width=line_w))
        for x in (x0, x1):
            column = px[np.abs(px[:, 0] - x) <= max(2.0, 0.004 * width_px), 1]
            if len(column):
                top = float(column.min()) - 0.3 * font
                if top > y_bracket + tick:
                    dash = np.array([[x, y_bracket + tick, 0], [x, top, 0]])
                    renderer.AddViewProp(_line_actor_2d(dash, _LESION_RGB, width=max(1.0, line_w / 2)))
        text = f"Lesion {number} \u00b7 {s1 - s0:.1f} mm"
        label = _text_actor(text, font_px=int(font * 0.85), rgb=_LESION_RGB, bold=True, justify="center")
        half = 0.27 * font * len(text)
        label.SetPosition(
            float(np.clip(0.5 * (x0 + x1), half, right_limit_px - half)), y_bracket - 1.15 * font
        )
        renderer.AddViewProp(label)


def _fit_camera(
    camera: Any, points: np.ndarray, *, aspect: float, target: tuple[float, float, float, float]
) -> None:
    """Zoom and shift ``camera`` so ``points`` fill the NDC box ``target`` (x0, x1, y0, y1)."""
    camera.SetWindowCenter(0.0, 0.0)
    ndc = _ndc(camera, points, aspect=aspect)
    (x0, y0), (x1, y1) = ndc.min(axis=0), ndc.max(axis=0)
    tx0, tx1, ty0, ty1 = target
    factor = min((tx1 - tx0) / max(x1 - x0, 1e-9), (ty1 - ty0) / max(y1 - y0, 1e-9))
    camera.Zoom(factor)
    # The window centre shifts the image in NDC: the box middle lands on the target middle.
    camera.SetWindowCenter(
        factor * 0.5 * (x0 + x1) - 0.5 * (tx0 + tx1), factor * 0.5 * (y0 + y1) - 0.5 * (ty0 + ty1)
    )


def _ndc(camera: Any, points: np.ndarray, *, aspect: float) -> np.ndarray:
    """Normalised device coordinates (M, 2) of world points (M, 3) seen by ``camera``."""
    matrix = camera.GetCompositeProjectionTransformMatrix(aspect, -1.0, 1.0)
    m = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
    h = np.c_[points, np.ones(len(points))] @ m.T
    return h[:, :2] / h[:, 3:4]


def _projector(camera: Any, *, aspect: float, size_px: tuple[int, int]):
    """A function mapping world points (M, 3) to display pixels (M, 2), origin bottom-left."""
    size = np.asarray(size_px, dtype=float)

    def project(points: np.ndarray) -> np.ndarray:
        return (_ndc(camera, points, aspect=aspect) + 1.0) * 0.5 * size

    return project


def _spread_labels(xs: list[float], widths: list[float], *, width_px: float) -> list[float]:
    """Label centres near ``xs`` that do not overlap (labels of ``widths``) and stay inside."""
    if not xs:
        return []
    order = np.argsort(xs, kind="stable")
    out = np.asarray(xs, dtype=float).copy()
    half = 0.5 * np.asarray(widths, dtype=float)
    gap = 0.02 * width_px
    for k in range(1, len(order)):
        a, b = order[k - 1], order[k]
        out[b] = max(out[b], out[a] + half[a] + half[b] + gap)
    out = np.clip(out, half + 0.01 * width_px, width_px - half - 0.01 * width_px)
    return [float(x) for x in out]


def _line_actor_2d(points_px: np.ndarray, rgb: Sequence[float], *, width: float) -> vtkActor2D:
    mapper = vtkPolyDataMapper2D()
    mapper.SetInputData(_polyline(points_px))
    actor = vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*rgb)
    actor.GetProperty().SetLineWidth(width)
    return actor


def _polygon_actor_2d(points_px: np.ndarray, rgb: Sequence[float]) -> vtkActor2D:
    poly = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(np.ascontiguousarray(points_px, dtype=float), deep=True))
    poly.SetPoints(vpts)
    cells = vtkCellArray()
    cells.InsertNextCell(len(points_px))
    for i in range(len(points_px)):
        cells.InsertCellPoint(i)
    poly.SetPolys(cells)
    mapper = vtkPolyDataMapper2D()
    mapper.SetInputData(poly)
    actor = vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*rgb)
    return actor


def _nice_length_mm(target_mm: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``target_mm``."""
    if target_mm <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(target_mm))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target_mm:
            return float(step * power)
    return float(power)


def _scale_bar_actor(x0: float, y0: float, length_px: float, font: int) -> vtkActor2D:
    tick = 0.35 * font
    pts = np.array(
        [
            [x0, y0 + tick, 0.0],
            [x0, y0, 0.0],
            [x0 + length_px, y0, 0.0],
            [x0 + length_px, y0 + tick, 0.0],
        ]
    )
    return _line_actor_2d(pts, _TEXT_RGB, width=max(1.0, font / 10.0))


def _image_data(image: np.ndarray) -> vtkImageData:
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {pixels.dtype}")
    height, width, channels = pixels.shape
    data = vtkImageData()
    data.SetDimensions(width, height, 1)
    flat = np.ascontiguousarray(pixels[::-1]).reshape(-1, channels)
    array = vtkUnsignedCharArray()
    array.DeepCopy(numpy_to_vtk(flat, deep=True))
    array.SetNumberOfComponents(channels)
    data.GetPointData().SetScalars(array)
    return data


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 image to a PNG file.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    writer = vtkPNGWriter()
    writer.SetInputData(_image_data(image))
    writer.SetFileName(str(path))
    writer.Write()
    if writer.GetErrorCode():
        raise OSError(f"could not write PNG {path}")
    return path


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) or (H, W) uint8 image as PNG bytes (for the HTML report)."""
    writer = vtkPNGWriter()
    writer.SetInputData(_image_data(image))
    writer.WriteToMemoryOn()
    writer.Write()
    return bytes(vtk_to_numpy(writer.GetResult()).tobytes())
