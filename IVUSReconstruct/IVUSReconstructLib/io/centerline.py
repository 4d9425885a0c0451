"""Read and write vessel centerlines.

Readers accept

- Slicer markups JSON (``.mrk.json`` / ``.json``): a curve or a point list; the file's
  ``coordinateSystem`` (LPS by the schema's default, or RAS) is converted to RAS;
- VMTK centerlines (``.vtp`` XML or ``.vtk`` legacy polylines): with several cells (one per
  outlet) the longest path is kept; the point array ``MaximumInscribedSphereRadius`` becomes
  ``radius_mm``; a Slicer ``SPACE`` tag (field data or header) is honoured;
- point lists (``.csv``, ``.txt``, ``.fcsv``): ``x, y, z`` per line, comma, tab or space
  separated, header optional (columns named ``x``, ``y``, ``z`` are used when present).

The result is always ordered distal-first (the pullback direction): pass
``order="proximal-first"`` for an ostium-first file (VMTK centerlines run from the inlet,
i.e. they are proximal-first).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..errors import input_error, read_json_input
from ..types import Centerline

__all__ = ["read_centerline", "write_markups_curve", "centerline_from_polydata", "MARKUPS_SCHEMA"]

MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)

_LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])


def read_centerline(
    path: str | Path,
    *,
    order: str = "distal-first",
    coordinate_system: str | None = None,
    cell: int | str = "longest",
) -> Centerline:
    """Read a centerline file into RAS mm, distal point first.

    Parameters
    ----------
    path : path-like
        ``.mrk.json``/``.json`` (Slicer markups), ``.vtp``/``.vtk`` (VMTK polylines),
        ``.csv``/``.txt``/``.fcsv`` (point list).
    order : {"distal-first", "proximal-first"}
        How the file is ordered; ``"proximal-first"`` reverses the points so the result
        always starts distally (where the pullback starts).
    coordinate_system : {"RAS", "LPS"} or None
        Coordinates of the file. None: the file's own tag (markups ``coordinateSystem``,
        default LPS; Slicer's ``SPACE`` tag in VTK files); untagged VTK and text files are
        taken as RAS.
    cell : int or "longest"
        Which polyline of a multi-cell VTK file to use.

    Returns
    -------
    Centerline
        ``points_ras_mm`` of shape (K, 3), ``radius_mm`` of shape (K,) or None.

    Raises
    ------
    IVUSInputError
        Missing or empty file, fewer than 2 distinct points, non-finite coordinates.
    """
    path = Path(path)
    if order not in ("distal-first", "proximal-first"):
        raise input_error(path, "centerline order", f"is {order!r}", "use distal-first or proximal-first")
    if coordinate_system is not None and coordinate_system.upper() not in ("RAS", "LPS"):
        raise input_error(path, "coordinate system", f"is {coordinate_system!r}", "use RAS or LPS")
    if not path.is_file():
        raise input_error(path, "file", "does not exist", "check the centerline's path")
    if path.stat().st_size == 0:
        raise input_error(path, "file", "is empty", "export the centerline again")
    name = path.name.lower()
    if name.endswith(".json"):
        points, radius, tagged = _read_markups(path)
        field = "controlPoints"
    elif name.endswith((".vtp", ".vtk")):
        points, radius, tagged = _read_vtk(path, cell=cell)
        field = "points"
    elif name.endswith((".csv", ".txt", ".fcsv", ".tsv")):
        points, radius, tagged = _read_text(path)
        field = "x,y,z columns"
    else:
        raise input_error(
            path, "suffix", "is not a centerline format", "give a .mrk.json, .vtp, .vtk, .csv or .txt file"
        )
    # an empty coordinateSystem in a markups file is no system (not the CSV default, RAS)
    system = (coordinate_system or (tagged if tagged is not None else "RAS")).upper()
    if system not in ("RAS", "LPS"):
        raise input_error(
            path,
            "coordinateSystem",
            f"is {tagged!r}, neither LPS nor RAS",
            "save the curve again from Slicer (LPS)",
        )
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise input_error(path, field, "holds no points", "export the centerline with x, y, z coordinates")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise input_error(
            path, field, f"has a non-finite coordinate at point {k}", "remove or fix that point"
        )
    # consecutive duplicates carry no direction and break arc-length parametrisation
    keep = np.concatenate([[True], np.linalg.norm(np.diff(points, axis=0), axis=1) > 1e-9])
    points = points[keep]
    if radius is not None:
        radius = np.asarray(radius, dtype=float)[keep]
    if len(points) < 2:
        problem = "has only one distinct point" if keep.size > 1 else "has fewer than 2 points"
        raise input_error(path, field, problem, "give a centerline of at least 2 distinct points")
    if system == "LPS":
        points = points * _LPS_TO_RAS
    if order == "proximal-first":
        points = points[::-1]
        radius = None if radius is None else radius[::-1]
    centerline = Centerline(points_ras_mm=np.ascontiguousarray(points), radius_mm=radius, source=str(path))
    limits.check_centerline(centerline, path)
    return centerline


def _read_markups(path: Path) -> tuple[np.ndarray, None, str]:
    doc = read_json_input(path, fix="save the markups again from Slicer")
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list) or not markups:
        raise input_error(
            path, "markups", "is missing or empty", "save a curve or point list from Slicer Markups"
        )
    control = [m.get("controlPoints") if isinstance(m, dict) else None for m in markups]
    if not all(isinstance(m, dict) for m in markups) or not all(
        c is None or (isinstance(c, list) and all(isinstance(cp, dict) for cp in c)) for c in control
    ):
        raise input_error(
            path, "markups", "are not objects with a controlPoints list", "save the markups again from Slicer"
        )
    # prefer a curve; fall back to the first markup that holds points
    ranked = sorted(markups, key=lambda m: 0 if str(m.get("type", "")).endswith("Curve") else 1)
    for markup in ranked:
        points = [
            cp.get("position")
            for cp in markup.get("controlPoints", []) or []
            if cp.get("positionStatus", "defined") != "missing" and cp.get("position") is not None
        ]
        if points:
            try:
                arr = np.array(points, dtype=float)
            except ValueError:
                raise input_error(
                    path, "controlPoints.position", "is not a list of 3 numbers", "fix the markups file"
                ) from None
            if arr.ndim != 2 or arr.shape[1] != 3:
                raise input_error(
                    path, "controlPoints.position", "is not a list of 3 numbers", "fix the markups file"
                )
            return arr, None, str(markup.get("coordinateSystem", "LPS")).upper()
    raise input_error(path, "controlPoints", "is empty", "place at least 2 control points along the vessel")


def _read_vtk(path: Path, *, cell: int | str) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOLegacy import vtkPolyDataReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    header = None
    if path.name.lower().endswith(".vtp"):
        reader = vtkXMLPolyDataReader()
        reader.SetFileName(str(path))
        reader.Update()
    else:
        reader = vtkPolyDataReader()
        reader.SetFileName(str(path))
        reader.Update()
        header = reader.GetHeader()
    poly = reader.GetOutput()
    if poly is None or poly.GetNumberOfPoints() == 0:
        raise input_error(
            path, "points", "cannot be read or are empty", "save the centerline as VTK polydata"
        )
    tagged = None
    space = poly.GetFieldData().GetAbstractArray("SPACE")
    if space is not None and space.GetNumberOfValues() > 0:
        tagged = (
            "LPS" if "LPS" in str(space.GetValue(0)) else "RAS" if "RAS" in str(space.GetValue(0)) else None
        )
    if header:
        tagged = "LPS" if "SPACE=LPS" in header else "RAS" if "SPACE=RAS" in header else tagged
    all_points = vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
    radius_array = poly.GetPointData().GetArray("MaximumInscribedSphereRadius")
    all_radius = None if radius_array is None else vtk_to_numpy(radius_array).astype(float).ravel()
    lines = poly.GetLines()
    paths: list[np.ndarray] = []
    if lines is not None and lines.GetNumberOfCells() > 0:
        ids = vtk_to_numpy(lines.GetConnectivityArray()).astype(int)
        offsets = vtk_to_numpy(lines.GetOffsetsArray()).astype(int)
        paths = [ids[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    if not paths:
        # a bare point set: take the points in storage order
        paths = [np.arange(len(all_points))]
    if cell == "longest":
        lengths = [np.linalg.norm(np.diff(all_points[p], axis=0), axis=1).sum() for p in paths]
        chosen = paths[int(np.argmax(lengths))]
    else:
        if not isinstance(cell, int) or not 0 <= cell < len(paths):
            raise input_error(
                path, "cell", f"{cell!r} does not exist ({len(paths)} polylines)", "pick 0..n-1"
            )
        chosen = paths[cell]
    radius = None if all_radius is None else all_radius[chosen]
    return all_points[chosen], radius, tagged


def centerline_from_polydata(polydata: Any, *, order: str = "distal-first", name: str = "") -> Centerline:
    """Centerline from VMTK-style polydata in memory (a Slicer model): the polyline with the most
    points, with its ``Radius`` or ``MaximumInscribedSphereRadius`` array when present.

    Parameters
    ----------
    polydata : vtkPolyData
        RAS mm; without line cells its points are taken in storage order.
    order : {"distal-first", "proximal-first"}
    name : str
        The model's name, for the source and messages.

    Raises
    ------
    IVUSInputError
        Fewer than 2 points.
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy

    if polydata is None or polydata.GetNumberOfPoints() < 2:
        raise input_error(name, "polydata", "has fewer than 2 points", "select a centerline model")
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    lines = polydata.GetLines()
    ids = None
    if lines is not None and lines.GetNumberOfCells() > 0:
        for cell in range(polydata.GetNumberOfCells()):
            if polydata.GetCellType(cell) in (3, 4):  # VTK_LINE, VTK_POLY_LINE
                cell_ids = polydata.GetCell(cell).GetPointIds()
                candidate = [cell_ids.GetId(i) for i in range(cell_ids.GetNumberOfIds())]
                if ids is None or len(candidate) > len(ids):
                    ids = candidate
    if ids is None:
        ids = list(range(len(points)))
    radius = None
    for array_name in ("Radius", "MaximumInscribedSphereRadius"):
        array = polydata.GetPointData().GetArray(array_name)
        if array is not None:
            radius = vtk_to_numpy(array).astype(float)[ids]
            break
    points = points[ids]
    if order == "proximal-first":
        points = points[::-1]
        radius = radius[::-1] if radius is not None else None
    return Centerline(points_ras_mm=points, radius_mm=radius, source=f"slicer model {name}")


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(nan|inf)$", re.IGNORECASE)


def _read_text(path: Path) -> tuple[np.ndarray, None, str | None]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise input_error(path, "text", "is not UTF-8 text", "save the point list as plain CSV") from None
    tagged = None
    header: list[str] | None = None
    rows: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            # Slicer .fcsv: "# CoordinateSystem = LPS" (or 0 = RAS, 1 = LPS) and "# columns = id,x,y,z,..."
            key, _, value = line[1:].partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                tagged = {"0": "RAS", "1": "LPS"}.get(value, value.upper())
            elif key == "columns":
                header = [c.strip().lower() for c in value.split(",")]
            continue
        cells = [
            c.strip()
            for c in re.split(r"[,\t; ]+" if "," not in line else r"\s*,\s*", line)
            if c.strip() != ""
        ]
        if not rows and header is None and not all(_NUMBER.match(c) for c in cells[:3]):
            header = [c.lower() for c in cells]
            continue
        rows.append(cells)
    if not rows:
        raise input_error(path, "x,y,z columns", "hold no points", "write one x, y, z point per line")
    columns = [0, 1, 2]
    if header is not None:
        names = [h.strip().strip('"') for h in header]
        found = []
        for axis in ("x", "y", "z"):
            match = [i for i, n in enumerate(names) if n in (axis, f"{axis}_mm", f"{axis} (mm)", f"{axis}mm")]
            found.append(match[0] if match else None)
        if all(i is not None for i in found):
            columns = found  # type: ignore[assignment]
    points = np.empty((len(rows), 3))
    for r, cells in enumerate(rows):
        try:
            points[r] = [float(cells[c]) for c in columns]
        except (IndexError, ValueError):
            raise input_error(
                path,
                "x,y,z columns",
                f"data row {r + 1} is not 3 numbers ({', '.join(cells[:4])})",
                "fix that line",
            ) from None
    if any(math.isnan(v) for v in points.ravel()):
        k = int(np.flatnonzero(np.isnan(points).any(axis=1))[0])
        raise input_error(
            path, "x,y,z columns", f"has a non-finite coordinate at point {k}", "remove or fix that point"
        )
    return points, None, tagged


def write_markups_curve(
    centerline: Centerline,
    path: str | Path,
    *,
    coordinate_system: str = "LPS",
    name: str = "Centerline",
    frame_points: np.ndarray | None = None,
    frame_labels: list[str] | None = None,
    max_points: int | None = None,
) -> Path:
    """Write a centerline as a Slicer markups curve (``markups-schema-v1.0.3``).

    Parameters
    ----------
    centerline : Centerline
        Points in RAS mm.
    path : path-like
        Output file, conventionally ``*.mrk.json``.
    coordinate_system : {"LPS", "RAS"}
        Coordinates written to the file (Slicer converts LPS on load).
    name : str
        Node name shown in Slicer.
    frame_points : ndarray of shape (N, 3), RAS mm, optional
        Frame positions, written as a second markups (point list ``"<name> frames"``).
    frame_labels : list of str, optional
        Labels of the frame points (default: ``"F<k>"``).
    max_points : int, optional
        Thin longer curves evenly to this many control points, first and last kept (Slicer
        curves interpolate between control points; thousands of them make editing slow).
        Default: write every point.

    Returns
    -------
    Path
        The written file.
    """
    system = coordinate_system.upper()
    if system not in ("LPS", "RAS"):
        raise input_error(path, "coordinate_system", f"is {coordinate_system!r}", "use LPS or RAS")
    points = np.asarray(centerline.points_ras_mm, dtype=float)
    if max_points is not None and len(points) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(points) - 1, max_points)).astype(int))
        points = points[keep]
    sign = _LPS_TO_RAS if system == "LPS" else np.ones(3)
    markups = [_markup("Curve", name, points * sign, system, [f"{name}-{i + 1}" for i in range(len(points))])]
    if frame_points is not None:
        fp = np.asarray(frame_points, dtype=float).reshape(-1, 3)
        labels = frame_labels or [f"F{i}" for i in range(len(fp))]
        markups.append(_markup("Fiducial", f"{name} frames", fp * sign, system, list(labels)))
    doc = {"@schema": MARKUPS_SCHEMA, "markups": markups}
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def _markup(kind: str, name: str, points: np.ndarray, system: str, labels: list[str]) -> dict[str, Any]:
    color = [1.0, 0.85, 0.1] if kind == "Curve" else [0.2, 0.8, 1.0]
    markup: dict[str, Any] = {
        "type": kind,
        "name": name,
        "coordinateSystem": system,
        "coordinateUnits": "mm",
        "locked": True,
        "fixedNumberOfControlPoints": False,
        "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": len(points),
        "controlPoints": [
            {
                "id": str(i + 1),
                "label": labels[i],
                "description": "",
                "associatedNodeID": "",
                "position": [round(float(v), 6) for v in p],
                "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                "selected": True,
                "locked": True,
                "visibility": True,
                "positionStatus": "defined",
            }
            for i, p in enumerate(points)
        ],
        "measurements": [],
        "display": {
            "visibility": True,
            "opacity": 1.0,
            "color": color,
            "selectedColor": color,
            "propertiesLabelVisibility": False,
            "pointLabelsVisibility": kind != "Curve",
            "textScale": 2.0,
            "glyphType": "Sphere3D",
            "glyphScale": 1.0,
            "glyphSize": 2.0,
            "useGlyphScale": True,
            "lineThickness": 0.3,
        },
    }
    return markup
