"""Contour and landmark files: read, validate, write.

Formats read by :func:`read_contours` (detected from the content, not the name):

- native JSON (``"format": "ivus-contours"``, DESIGN.md), frame-plane mm;
- plain CSV written by :func:`write_contours_csv` (header ``frame,contour,x_mm,y_mm,z_mm``),
  frame-plane mm;
- multimodars / AIVUS-CAA CSV: tab-separated ``frame x_mm y_mm z_mm`` without header, one
  closed contour (first point repeated) per frame. ``x_mm, y_mm`` are image coordinates in mm
  with ``y`` pointing up (AIVUS-CAA writes ``(col, H - row) * spacing``; checked against the
  pixel knots of the same pullback), so the frame plane is ``x = x_mm - cx``, ``y = cy - y_mm``
  with the image centre ``(cx, cy)`` (default 4.5, 4.5 mm: a ~9 mm field of view). Frame
  numbers are 1-based (the AIVUS-CAA report's) and become 0-based indices. Sibling files with
  the same phase prefix are read too: ``eem_<name>`` (vessel), ``calcium_<name>`` and
  ``branch_<name>`` (side-branch landmarks);
- AIVUS-CAA JSON (``anonymized_contours_*.json``: ``lumen`` = ``[x_lists, y_lists]`` of spline
  knots in pixels, ``phases``): AIVUS-CAA treats the last knot as the period end
  (``splprep(per=1)``), so it is dropped here as well;
- HolOrama JSON (keyed by frame: ``lumen/eem/calcium/branch`` → ``contours`` of knots in pixels);
- EchoPlaque XML (``Ctr`` polygons of type L / V in pixels).

Spline knots are joined by a closed periodic cubic interpolating spline parametrised by chord
length (as ``scipy.interpolate.splprep(s=0, per=1)`` in the source tools), sampled at 500 points.
Pixel inputs need the pixel spacing (``--pixel-spacing``); the catheter centre defaults to the
centre of a 512 x 512 image, (255.5, 255.5) px, when not given.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.interpolate import CubicSpline

from .. import limits
from ..errors import FIX_PIXEL_SPACING, input_error, read_json_input
from ..geometry import open_polygon, polygon_centroid, px_to_mm
from ..types import ContourSet, FrameContours, Landmark

__all__ = [
    "DEFAULT_CATHETER_CENTER_PX",
    "DEFAULT_CSV_IMAGE_CENTER_MM",
    "read_contours",
    "write_contours_json",
    "write_contours_csv",
    "read_landmarks",
    "write_landmarks_json",
    "check_contours_fit",
    "validate_polygon",
    "spline_contour",
]

DEFAULT_CATHETER_CENTER_PX: tuple[float, float] = (255.5, 255.5)
"""(row, col) centre of a 512 x 512 frame, used when pixel contours come without one."""

DEFAULT_CSV_IMAGE_CENTER_MM: tuple[float, float] = (4.5, 4.5)
"""(x, y) image centre of the multimodars / AIVUS-CAA CSV coordinates, mm."""

_SPLINE_POINTS = 500
_PHASES = {"D": "ED", "S": "ES", "ED": "ED", "ES": "ES", "diastolic": "ED", "systolic": "ES"}


# --------------------------------------------------------------------------- number fields


def _show(value: object) -> str:
    """Short one-line repr of a bad value for an error message."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_float(value: Any, *, path: object, field: str, fix: str, finite: bool = True) -> float:
    """``float(value)``, raising IVUSInputError (naming ``path`` and ``field``) when it is not a number.

    Booleans are refused: JSON ``true`` is a typo, not 1.0. With ``finite``, NaN and infinities
    are refused as well.
    """
    if isinstance(value, (bool, np.bool_)):
        raise input_error(path, field, f"is {_show(value)}, not a number", fix)
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise input_error(path, field, f"is {_show(value)}, not a number", fix) from None
    if finite and not np.isfinite(out):
        raise input_error(path, field, f"is {_show(value)}, not a finite number", fix)
    return out


def _as_int(value: Any, *, path: object, field: str, fix: str) -> int:
    """Whole number ``value`` (an int, an integral float, or such a string) as int, else IVUSInputError."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)  # exact, even beyond float precision
    out = _as_float(value, path=path, field=field, fix=fix)
    if out != round(out):
        raise input_error(path, field, f"is {_show(value)}, not a whole number", fix)
    return int(out)


def _as_point(value: Any, n: int, *, path: object, field: str, fix: str) -> np.ndarray:
    """``n`` finite numbers as float (n,), else IVUSInputError."""
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise input_error(path, field, f"is {_show(value)}, not {n} numbers", fix)
    return np.array([_as_float(v, path=path, field=field, fix=fix) for v in value])


# --------------------------------------------------------------------------- validation


def _segments_intersect(p: np.ndarray) -> bool:
    """Whether any two non-adjacent edges of the closed polygon ``p`` (M, 2) cross."""
    a = p
    b = np.roll(p, -1, axis=0)
    m = len(p)
    d = b - a
    # orientation of the end points of edge j with respect to edge i, all pairs at once
    rel_a = a[None, :, :] - a[:, None, :]
    rel_b = b[None, :, :] - a[:, None, :]
    o1 = d[:, None, 0] * rel_a[..., 1] - d[:, None, 1] * rel_a[..., 0]
    o2 = d[:, None, 0] * rel_b[..., 1] - d[:, None, 1] * rel_b[..., 0]
    cross_i = (o1 * o2) < 0
    cross = cross_i & cross_i.T
    idx = np.arange(m)
    adjacent = (np.abs(idx[:, None] - idx[None, :]) <= 1) | (np.abs(idx[:, None] - idx[None, :]) == m - 1)
    return bool((cross & ~adjacent).any())


def _star_shaped(p: np.ndarray) -> bool:
    """Cheap sufficient test of simplicity: the angle about the centroid turns monotonically once."""
    c = polygon_centroid(p)
    ang = np.unwrap(np.arctan2(p[:, 1] - c[1], p[:, 0] - c[0]))
    step = np.diff(np.concatenate([ang, ang[:1] + np.sign(ang[-1] - ang[0]) * 2 * np.pi]))
    total = ang[-1] - ang[0] + step[-1]
    return bool((np.all(step > 0) or np.all(step < 0)) and abs(abs(total) - 2 * np.pi) < 1e-6)


def validate_polygon(points: np.ndarray, *, path: object, field: str) -> np.ndarray:
    """Check one contour and return it as float (M, 2), first point not repeated.

    Parameters
    ----------
    points : array-like of shape (M, 2), mm
    path : path-like
        File named in the error message.
    field : str
        Where in the file, e.g. ``"frame 12 lumen"``.

    Raises
    ------
    IVUSInputError
        NaN coordinates, fewer than 3 points, or a self-intersecting polygon.
    """
    try:
        p = np.asarray(points, dtype=float)
    except (TypeError, ValueError):
        raise input_error(
            path, field, "is not a list of [x, y] numbers", "write each point as [x, y]"
        ) from None
    if p.ndim != 2 or p.shape[1] != 2:
        raise input_error(path, field, f"has shape {p.shape}", "write each point as [x, y]")
    if not np.all(np.isfinite(p)):
        raise input_error(path, field, "has NaN or infinite coordinates", "remove or fix those points")
    p = open_polygon(p)
    # repeated consecutive points carry no shape and would upset the tests below
    keep = np.concatenate([[True], np.any(np.diff(p, axis=0) != 0, axis=1)])
    p = p[keep]
    if len(p) < 3:
        raise input_error(
            path, field, f"has {len(p)} distinct points", "give a closed contour of at least 3 points"
        )
    if not _star_shaped(p) and len(p) <= 4000 and _segments_intersect(p):
        raise input_error(path, field, "is a self-intersecting polygon", "redraw that contour")
    return p


def _check_order(indices: list[int], path: object) -> None:
    for a, b in zip(indices, indices[1:], strict=False):
        if b == a:
            raise input_error(path, "frame", f"{a} appears twice", "keep one contour set per frame")
        if b < a:
            raise input_error(path, "frame", f"{b} comes after {a}", "sort the frames by index")


def check_contours_fit(contours: ContourSet, n_frames: int, path: object) -> None:
    """Raise when a contour frame index lies outside a pullback of ``n_frames`` frames.

    Raises
    ------
    IVUSInputError
    """
    idx = contours.indices
    if len(idx) and (idx.min() < 0 or idx.max() >= n_frames):
        bad = int(idx.max()) if idx.max() >= n_frames else int(idx.min())
        raise input_error(
            path, "frame", f"index {bad} is outside the pullback's {n_frames} frames (0..{n_frames - 1})",
            "use contours of this pullback (frame indices are 0-based)",
        )  # fmt: skip


# --------------------------------------------------------------------------- splines


def spline_contour(knots: np.ndarray, *, n_points: int = _SPLINE_POINTS) -> np.ndarray:
    """Closed periodic cubic spline through ``knots``, parametrised by chord length.

    Parameters
    ----------
    knots : ndarray of shape (K, 2)
        Knots in order, first not repeated (K >= 3).
    n_points : int

    Returns
    -------
    ndarray of shape (n_points, 2)
    """
    k = np.asarray(knots, dtype=float)
    closed = np.vstack([k, k[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(seg)])
    keep = np.concatenate([[True], seg > 1e-9])  # repeated knots: CubicSpline needs increasing t
    t, closed = t[keep], closed[keep]
    closed[-1] = closed[0]
    spline = CubicSpline(t, closed, bc_type="periodic")
    return spline(np.linspace(0.0, t[-1], n_points, endpoint=False))


def _knots_mm(
    xs: list[float], ys: list[float], *, drop_last: bool, spacing: tuple[float, float], center_px: tuple[float, float],
    path: object, field: str,
) -> np.ndarray:  # fmt: skip
    """Pixel knots (x = col, y = row) to a validated frame-plane polygon in mm."""
    try:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        ok = x.ndim == 1 and y.shape == x.shape
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise input_error(
            path, field, "is not two equally long lists of numbers (x, y)", "export the contours again"
        )
    k = np.column_stack([x, y])
    if drop_last:
        k = k[:-1]
    if len(k) == 0:
        raise input_error(path, field, "has 0 distinct knots", "give at least 3 knots")
    if not np.all(np.isfinite(k)):
        raise input_error(path, field, "has NaN knots", "remove or fix those knots")
    k = k[np.concatenate([[True], np.any(np.diff(k, axis=0) != 0, axis=1)])]
    if len(k) > 1 and np.allclose(k[0], k[-1]):
        k = k[:-1]
    if len(k) < 3:
        raise input_error(path, field, f"has {len(k)} distinct knots", "give at least 3 knots")
    dense = spline_contour(k)
    mm = px_to_mm(dense[:, ::-1], spacing, center_px)
    return validate_polygon(mm, path=path, field=field)


def _pixel_params(
    path: object,
    pixel_spacing_mm: float | tuple[float, float] | None,
    catheter_center_px: tuple[float, float] | None,
) -> tuple[tuple[float, float], tuple[float, float]]:
    if pixel_spacing_mm is None:
        raise input_error(path, "pixel_spacing_mm", "is not stored in this pixel-coordinate contour file",
                          FIX_PIXEL_SPACING)  # fmt: skip
    sp = np.broadcast_to(np.asarray(pixel_spacing_mm, dtype=float), (2,))
    if not np.all(sp > 0):
        raise input_error(
            path, "pixel_spacing_mm", f"{pixel_spacing_mm} is not positive", FIX_PIXEL_SPACING
        )
    center = DEFAULT_CATHETER_CENTER_PX if catheter_center_px is None else catheter_center_px
    return (float(sp[0]), float(sp[1])), (float(center[0]), float(center[1]))


# --------------------------------------------------------------------------- readers


def _checked(reader):
    """Every contour format goes through the same range and lumen-in-vessel checks."""

    @functools.wraps(reader)
    def read(path: str | Path, **kwargs: Any) -> ContourSet:
        contours = reader(path, **kwargs)
        limits.check_contours(contours, path)
        return contours

    return read


@_checked
def read_contours(
    path: str | Path,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    catheter_center_px: tuple[float, float] | None = None,
    csv_image_center_mm: tuple[float, float] = DEFAULT_CSV_IMAGE_CENTER_MM,
    csv_y_up: bool = True,
    require_lumen: bool = True,
) -> ContourSet:
    """Read a contour file of any supported format (see the module docstring).

    Parameters
    ----------
    path : path-like
    pixel_spacing_mm : float or (row, col), optional
        Needed for pixel-coordinate formats (AIVUS / HolOrama JSON, EchoPlaque XML).
    catheter_center_px : (row, col), optional
        Catheter centre of pixel formats; default (255.5, 255.5), the centre of 512 x 512.
    csv_image_center_mm : (x, y)
        Image centre of multimodars / AIVUS-CAA CSV coordinates, subtracted to get the frame plane.
    csv_y_up : bool
        Those CSV coordinates have ``y`` pointing up (image rows reversed); flip to rows.
    require_lumen : bool
        False accepts frames with a vessel border only (``lumen`` None) in the native JSON,
        plain CSV and EchoPlaque XML: keyframes may correct either border alone.

    Returns
    -------
    ContourSet
        Frames sorted by index, polygons in frame-plane mm.

    Raises
    ------
    IVUSInputError
        Unknown format, missing pixel spacing, invalid polygons, duplicate or unsorted frames.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "file", "does not exist", "check the contour file's path")
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    head = text.lstrip()[:1]
    if not head:
        raise input_error(path, "file", "is empty", "give a contour file (JSON, CSV or XML)")
    if head in "{[":
        data = read_json_input(path, text=text)
        return _read_json(path, data, pixel_spacing_mm, catheter_center_px, require_lumen)
    if head == "<":
        return _read_echoplaque_xml(path, text, pixel_spacing_mm, catheter_center_px, require_lumen)
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if re.match(r"^\s*frame\s*,", first, re.IGNORECASE):
        return _read_plain_csv(path, text, require_lumen)
    if _is_number_row(first, 4):
        return _read_multimodars(path, csv_image_center_mm, csv_y_up)
    raise input_error(
        path, "format", "is not a known contour format",
        "use the native contours JSON, a multimodars/AIVUS CSV, AIVUS or HolOrama JSON, or EchoPlaque XML",
    )  # fmt: skip


def _is_number_row(line: str, n: int) -> bool:
    fields = line.split()
    if len(fields) != n:
        return False
    try:
        [float(v) for v in fields]
    except ValueError:
        return False
    return True


def _read_json(path: Path, data: Any, spacing: Any, center: Any, require_lumen: bool = True) -> ContourSet:
    if isinstance(data, dict) and data.get("format") == "ivus-contours":
        return _read_native(path, data, require_lumen)
    if isinstance(data, dict) and isinstance(data.get("lumen"), list) and len(data["lumen"]) == 2:
        return _read_aivus_json(path, data, spacing, center)
    if isinstance(data, dict) and any(
        _is_ascii_int(k) and isinstance(v, dict) and "lumen" in v for k, v in data.items()
    ):
        return _read_holorama(path, data, spacing, center)
    raise input_error(path, "format", "is a JSON file of no known contour layout",
                      'write {"format": "ivus-contours", ...} (see README) or an AIVUS/HolOrama export')  # fmt: skip


def _landmarks_json(path: Path, items: Any) -> tuple[Landmark, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise input_error(path, "landmarks", f"is {_show(items)}, not a list",
                          'write "landmarks": [{"frame": 40, "kind": "side_branch"}, ...]')  # fmt: skip
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "frame" not in item:
            raise input_error(
                path, f"landmarks[{k}].frame", "is missing", "give the frame index of each landmark"
            )
        point, angle = item.get("point"), item.get("angle_deg")
        out.append(Landmark(
            frame=_as_int(item["frame"], path=path, field=f"landmarks[{k}].frame",
                          fix="give the landmark's 0-based frame index as a whole number"),
            kind=str(item.get("kind", "side_branch")),
            angle_deg=None if angle is None else _as_float(
                angle, path=path, field=f"landmarks[{k}].angle_deg", fix="give the angle in degrees as a number"),
            point_ras_mm=None if point is None else _as_point(
                point, 3, path=path, field=f"landmarks[{k}].point", fix="give the point as [x, y, z] in mm"),
        ))  # fmt: skip
    return tuple(out)


def _optional_float(item: dict[str, Any], key: str, *, path: object, field: str, fix: str) -> float | None:
    value = item.get(key)
    return None if value is None else _as_float(value, path=path, field=f"{field}.{key}", fix=fix)


# versions of the native formats this reader understands
NATIVE_VERSIONS = (1,)


def _check_version(path: Path, data: dict[str, Any]) -> None:
    version = data.get("version", 1)
    if isinstance(version, bool) or version not in NATIVE_VERSIONS:
        raise input_error(
            path, "version", f"is {_show(version)}, not a version this release reads ({', '.join(map(str, NATIVE_VERSIONS))})",
            "write it with this release (or a newer IVUSReconstruct for a newer file)",
        )  # fmt: skip


def _read_native(path: Path, data: dict[str, Any], require_lumen: bool = True) -> ContourSet:
    _check_version(path, data)
    if data.get("coordinates", "frame-plane") != "frame-plane" or data.get("units", "mm") != "mm":
        raise input_error(
            path,
            "coordinates/units",
            "are not frame-plane mm",
            'write "coordinates": "frame-plane", "units": "mm"',
        )
    items = data.get("frames")
    if not isinstance(items, list):
        raise input_error(path, "frames", "is missing", "give a list of frames")
    frames = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or "index" not in item:
            raise input_error(path, f"frames[{k}].index", "is missing", "give each frame's 0-based index")
        idx = _as_int(item["index"], path=path, field=f"frames[{k}].index",
                      fix="give each frame's 0-based index as a whole number")  # fmt: skip
        vessel = item.get("vessel")
        if item.get("lumen") is None and (require_lumen or vessel is None):
            raise input_error(
                path, f"frame {idx} lumen", "is missing", "give a lumen contour for every frame"
            )
        lumen = (
            None
            if item.get("lumen") is None
            else validate_polygon(item["lumen"], path=path, field=f"frame {idx} lumen")
        )
        stent = item.get("stent")
        calcium_items = item.get("calcium") or []
        if not isinstance(calcium_items, list):
            raise input_error(path, f"frame {idx} calcium", f"is {_show(calcium_items)}, not a list of contours",
                              "write calcium as a list of [[x, y], ...] contours")  # fmt: skip
        calcium = tuple(
            validate_polygon(c, path=path, field=f"frame {idx} calcium[{j}]") for j, c in enumerate(calcium_items)
        )  # fmt: skip
        phase = item.get("phase")
        frames.append(FrameContours(
            index=idx, lumen=lumen,
            vessel=None if vessel is None else validate_polygon(vessel, path=path, field=f"frame {idx} vessel"),
            calcium=calcium,
            stent=None if stent is None else validate_polygon(stent, path=path, field=f"frame {idx} stent"),
            phase=None if phase is None else str(phase),
            z_mm=_optional_float(item, "z_mm", path=path, field=f"frames[{k}]", fix="give z_mm as a number"),
            calcium_arc_deg=_optional_float(item, "calcium_arc_deg", path=path, field=f"frames[{k}]",
                                            fix="give the arc in degrees as a number"),
            confidence=_optional_float(item, "confidence", path=path, field=f"frames[{k}]",
                                       fix="give the confidence as a number in [0, 1]"),
            source=_source(item, path, idx),
        ))  # fmt: skip
    _check_order([f.index for f in frames], path)
    spacing = data.get("pixel_spacing_mm")
    center = data.get("catheter_center_px")
    return ContourSet(
        frames=tuple(frames),
        landmarks=_landmarks_json(path, data.get("landmarks")),
        pixel_spacing_mm=None if spacing is None else tuple(_as_point(
            spacing, 2, path=path, field="pixel_spacing_mm", fix="give [row, col] mm per pixel").tolist()),
        catheter_center_px=None if center is None else tuple(_as_point(
            center, 2, path=path, field="catheter_center_px", fix="give [row, col] in pixels").tolist()),
    )  # fmt: skip


def _read_aivus_json(path: Path, data: dict[str, Any], spacing: Any, center: Any) -> ContourSet:
    sp, c = _pixel_params(path, spacing, center)
    xs_all, ys_all = data["lumen"]
    if not isinstance(xs_all, list) or not isinstance(ys_all, list):
        raise input_error(
            path, "lumen", "is not [x_lists, y_lists]", "export the contours again from AIVUS-CAA"
        )
    phases = data.get("phases")
    phases = phases if isinstance(phases, list) else []
    vessel_knots = data.get("eem") or data.get("vessel")
    frames = []
    for i, (xs, ys) in enumerate(zip(xs_all, ys_all, strict=False)):
        if not xs:
            continue
        lumen = _knots_mm(
            xs, ys, drop_last=True, spacing=sp, center_px=c, path=path, field=f"lumen frame {i}"
        )
        vessel = None
        if (
            isinstance(vessel_knots, list)
            and len(vessel_knots) == 2
            and all(isinstance(v, list) for v in vessel_knots)
            and i < min(len(vessel_knots[0]), len(vessel_knots[1]))
            and vessel_knots[0][i]
        ):
            vessel = _knots_mm(vessel_knots[0][i], vessel_knots[1][i], drop_last=True, spacing=sp, center_px=c,
                               path=path, field=f"eem frame {i}")  # fmt: skip
        phase = _PHASES.get(str(phases[i])) if i < len(phases) else None
        frames.append(FrameContours(index=i, lumen=lumen, vessel=vessel, phase=phase))
    if not frames:
        raise input_error(path, "lumen", "holds no contour", "export the contours again from AIVUS-CAA")
    return ContourSet(frames=tuple(frames), pixel_spacing_mm=sp, catheter_center_px=c)


def _holorama_polys(entry: Any, *, sp: Any, c: Any, path: Path, field: str) -> list[np.ndarray]:
    if not isinstance(entry, dict):
        return []
    contours = entry.get("contours") or []
    if not isinstance(contours, list):
        raise input_error(path, f"{field} contours", f"is {_show(contours)}, not a list",
                          "export the contours again from HolOrama")  # fmt: skip
    return [
        _knots_mm(xy[0], xy[1], drop_last=False, spacing=sp, center_px=c, path=path, field=f"{field}[{j}]")
        for j, xy in enumerate(contours)
        if isinstance(xy, list) and len(xy) == 2 and isinstance(xy[0], list) and len(xy[0])
    ]


def _is_ascii_int(key: str) -> bool:
    return key.isascii() and key.isdigit()


def _read_holorama(path: Path, data: dict[str, Any], spacing: Any, center: Any) -> ContourSet:
    sp, c = _pixel_params(path, spacing, center)
    frames, landmarks = [], []
    for key in sorted((k for k in data if _is_ascii_int(k)), key=int):
        entry = data[key]
        i = int(key)
        if not isinstance(entry, dict):
            raise input_error(path, f"frame {i}", f"is {_show(entry)}, not an object",
                              "export the contours again from HolOrama")  # fmt: skip
        lumen = _holorama_polys(entry.get("lumen"), sp=sp, c=c, path=path, field=f"frame {i} lumen")
        if not lumen:
            continue
        vessel = _holorama_polys(entry.get("eem"), sp=sp, c=c, path=path, field=f"frame {i} eem")
        calcium = _holorama_polys(entry.get("calcium"), sp=sp, c=c, path=path, field=f"frame {i} calcium")
        for branch in _holorama_polys(entry.get("branch"), sp=sp, c=c, path=path, field=f"frame {i} branch"):
            landmarks.append(_branch_landmark(i, branch, polygon_centroid(lumen[0])))
        frames.append(FrameContours(
            index=i, lumen=lumen[0], vessel=vessel[0] if vessel else None, calcium=tuple(calcium),
            phase=_PHASES.get(str(entry.get("phase"))),
        ))  # fmt: skip
    if not frames:
        raise input_error(path, "lumen", "holds no contour", "export the contours again from HolOrama")
    return ContourSet(
        frames=tuple(frames), landmarks=tuple(landmarks), pixel_spacing_mm=sp, catheter_center_px=c
    )


def _branch_landmark(frame: int, branch: np.ndarray, origin_mm: np.ndarray) -> Landmark:
    """Side-branch landmark: direction of the branch centroid seen from ``origin_mm`` (2,)."""
    d = polygon_centroid(branch) - origin_mm
    return Landmark(
        frame=frame, kind="side_branch", angle_deg=float(np.degrees(np.arctan2(d[1], d[0])) % 360.0)
    )


def _load_table(path: Path) -> np.ndarray:
    try:
        table = np.loadtxt(path, dtype=float, ndmin=2)
    except ValueError as exc:
        raise input_error(
            path, "rows", f"are not 4 numbers each ({exc})", "write frame x_mm y_mm z_mm per line"
        ) from None
    if table.shape[1] != 4:
        raise input_error(path, "columns", f"are {table.shape[1]}", "write frame x_mm y_mm z_mm per line")
    return table


def _split_frames(path: Path, table: np.ndarray) -> list[tuple[int, np.ndarray, float]]:
    """Consecutive blocks of equal frame number: (frame, xy points, z)."""
    # a NaN frame differs from its neighbours and an infinite one starts its block, so checking
    # the first row of each block checks them all; rows are numbered as in a file without blank lines
    change = np.flatnonzero(np.diff(table[:, 0]) != 0) + 1
    blocks = np.split(np.arange(len(table)), change)
    seen: set[int] = set()
    out = []
    for b in blocks:
        frame = _as_int(table[b[0], 0], path=path, field=f"row {b[0] + 1} frame",
                        fix="write the 1-based frame number as a whole number")  # fmt: skip
        if frame in seen:
            raise input_error(
                path, "frame", f"{frame} appears in two separate blocks", "keep each frame's rows together"
            )
        seen.add(frame)
        z = _as_float(table[b[0], 3], path=path, field=f"row {b[0] + 1} z_mm", fix="write z_mm as a number")
        out.append((frame, table[b, 1:3], z))
    return out


def _loops(points: np.ndarray) -> list[np.ndarray]:
    """Split one frame's points into closed loops (a loop ends where its first point repeats)."""
    loops, start = [], 0
    while start < len(points):
        rest = points[start + 3 :]
        hit = np.flatnonzero(np.all(np.abs(rest - points[start]) <= 1e-9, axis=1))
        end = start + 3 + int(hit[0]) + 1 if len(hit) else len(points)
        loops.append(points[start:end])
        start = end
    return loops


def _read_multimodars(path: Path, center_mm: tuple[float, float], y_up: bool) -> ContourSet:
    name = path.name
    for prefix in ("eem_", "calcium_", "branch_"):
        if name.startswith(prefix) and path.with_name(name[len(prefix) :]).is_file():
            raise input_error(path, "file", f"holds {prefix[:-1]} contours, not the lumen",
                              f"pass {path.with_name(name[len(prefix):])}: its {prefix}* sibling is read with it")  # fmt: skip
    phase = "ED" if "diastolic" in name else "ES" if "systolic" in name else None
    sign_y = -1.0 if y_up else 1.0

    def to_plane(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([xy[:, 0] - center_mm[0], sign_y * (xy[:, 1] - center_mm[1])])

    def read_kind(p: Path, kind: str) -> dict[int, tuple[list[np.ndarray], float]]:
        out: dict[int, tuple[list[np.ndarray], float]] = {}
        blocks = _split_frames(p, _load_table(p))
        _check_order([f for f, _, _ in blocks], p)
        for frame, xy, z in blocks:
            polys = [
                validate_polygon(to_plane(lp), path=p, field=f"frame {frame} {kind}") for lp in _loops(xy)
            ]  # fmt: skip
            out[frame] = (polys, z)
        return out

    lumen = read_kind(path, "lumen")
    siblings = {}
    for prefix in ("eem", "calcium", "branch"):
        sib = path.with_name(f"{prefix}_{name}")
        siblings[prefix] = (
            read_kind(sib, prefix) if sib.is_file() and not name.startswith(f"{prefix}_") else {}
        )
    frames, landmarks = [], []
    for frame, (polys, z) in lumen.items():
        if len(polys) != 1:
            raise input_error(
                path, f"frame {frame} lumen", f"has {len(polys)} contours", "give one lumen per frame"
            )
        vessel = siblings["eem"].get(frame, ([], 0.0))[0]
        calcium = siblings["calcium"].get(frame, ([], 0.0))[0]
        for branch in siblings["branch"].get(frame, ([], 0.0))[0]:
            landmarks.append(_branch_landmark(frame - 1, branch, polygon_centroid(polys[0])))
        frames.append(FrameContours(
            index=frame - 1, lumen=polys[0], vessel=vessel[0] if vessel else None, calcium=tuple(calcium),
            phase=phase, z_mm=z,
        ))  # fmt: skip
    extra = set(siblings["eem"]) - set(lumen)
    if extra:
        raise input_error(path.with_name(f"eem_{name}"), "frame", f"{min(extra)} has an EEM but no lumen contour",
                          "give the lumen of every frame that has an EEM")  # fmt: skip
    # branch frames without a lumen contour still mark the anatomy
    for frame, (polys, _) in siblings["branch"].items():
        if frame not in lumen:
            for branch in polys:
                landmarks.append(_branch_landmark(frame - 1, branch, np.zeros(2)))
    landmarks.sort(key=lambda lm: lm.frame)
    return ContourSet(frames=tuple(frames), landmarks=tuple(landmarks))


def _read_plain_csv(path: Path, text: str, require_lumen: bool = True) -> ContourSet:
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    for need in ("frame", "x_mm", "y_mm"):
        if need not in fields:
            raise input_error(
                path, need, "column is missing", "write the header frame,contour,x_mm,y_mm,z_mm"
            )
    pts: dict[int, dict[str, list[list[float]]]] = {}
    zs: dict[int, float | None] = {}
    order: list[int] = []
    for line, row in enumerate(reader, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        frame = _as_int(
            row["frame"],
            path=path,
            field=f"line {line} column frame",
            fix="write the 0-based frame index as a whole number",
        )
        # NaN / infinite coordinates are left to validate_polygon, which names the frame and contour
        xy = [
            _as_float(row[c], path=path, field=f"line {line} column {c}", fix="write a number", finite=False)
            for c in ("x_mm", "y_mm")
        ]
        kind = row.get("contour") or "lumen"
        if frame not in pts:
            pts[frame] = {}
            order.append(frame)
        pts[frame].setdefault(kind, []).append(xy)
        z = row.get("z_mm")
        zs[frame] = (
            _as_float(z, path=path, field=f"line {line} column z_mm", fix="write a number or leave it empty")
            if z
            else zs.get(frame)
        )  # fmt: skip
    _check_order(order, path)
    frames = []
    for frame in order:
        kinds = pts[frame]
        if "lumen" not in kinds and (require_lumen or "vessel" not in kinds):
            raise input_error(
                path, f"frame {frame} lumen", "is missing", "give a lumen contour for every frame"
            )

        def poly(kind: str, frame: int = frame, kinds: dict = kinds) -> np.ndarray | None:
            return (
                validate_polygon(kinds[kind], path=path, field=f"frame {frame} {kind}")
                if kind in kinds
                else None
            )

        calcium = tuple(poly(k) for k in sorted(kinds) if k.startswith("calcium"))
        frames.append(FrameContours(index=frame, lumen=poly("lumen"), vessel=poly("vessel"), calcium=calcium,
                                    stent=poly("stent"), z_mm=zs.get(frame)))  # fmt: skip
    return ContourSet(frames=tuple(frames))


def _read_echoplaque_xml(
    path: Path, text: str, spacing: Any, center: Any, require_lumen: bool = True
) -> ContourSet:
    """EchoPlaque XML: ``<Fm><Num>k</Num><Phase>D</Phase><Ctr><Type>L|V</Type><p>x,y</p>...``.

    Pixel spacing comes from the option, else ``ImageCalibration/XCalibration, YCalibration``
    (mm / pixel); the default catheter centre is the image centre from ``ImageState/Xdim, Ydim``.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise input_error(path, "XML", f"is invalid ({exc})", "fix the file") from None
    if spacing is None:
        xcal, ycal = root.findtext(".//XCalibration"), root.findtext(".//YCalibration")
        try:
            spacing = (float(ycal), float(xcal)) if xcal and ycal else None
        except ValueError:
            spacing = None
    if center is None:
        xdim, ydim = root.findtext(".//Xdim"), root.findtext(".//Ydim")
        if xdim and ydim and _is_ascii_int(xdim.strip()) and _is_ascii_int(ydim.strip()):
            center = ((int(ydim) - 1) / 2.0, (int(xdim) - 1) / 2.0)
    sp, c = _pixel_params(path, spacing, center)
    frames = []
    for fm in root.iter("Fm"):
        num = fm.findtext("Num")
        if num is None:
            continue
        idx = _as_int(num.strip(), path=path, field="Fm/Num", fix="give each frame number as a whole number")
        found: dict[str, np.ndarray] = {}
        for ctr in fm.iter("Ctr"):
            kind = (ctr.findtext("Type") or "").strip().upper()
            pts = [
                _as_point(re.split(r"[,\s]+", pt.text.strip())[:2], 2, path=path,
                          field=f"frame {idx} Ctr/{pt.tag}", fix="write each point as x,y pixels")
                for pt in ctr
                if pt.tag in ("p", "Pt") and pt.text
            ]  # fmt: skip
            if kind in ("L", "V") and pts:
                xy = np.asarray(pts)  # (x = col, y = row) pixels
                mm = px_to_mm(xy[:, ::-1], sp, c)
                found[kind] = validate_polygon(mm, path=path, field=f"frame {idx} {kind}")
        if "L" in found or ("V" in found and not require_lumen):
            phase = _PHASES.get((fm.findtext("Phase") or "").strip())
            frames.append(FrameContours(index=idx, lumen=found.get("L"), vessel=found.get("V"), phase=phase))
    if not frames:
        raise input_error(path, "Ctr", "no frame has a lumen (type L) contour", "export the lumen contours")
    _check_order([f.index for f in frames], path)
    return ContourSet(frames=tuple(frames), pixel_spacing_mm=sp, catheter_center_px=c)


def _source(item: dict[str, Any], path: Path, index: int) -> str | None:
    """A frame's ``source`` (edited / propagated / automatic), or None when absent."""
    source = item.get("source")
    if source is None:
        return None
    if source not in ("edited", "propagated", "automatic"):
        raise input_error(path, f"frame {index} source", f"is {_show(source)}",
                          "write edited, propagated or automatic")  # fmt: skip
    return str(source)


# --------------------------------------------------------------------------- writers


def _round(points: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(points, dtype=float), 5).tolist()


def _frame_json(f: FrameContours, polygon: Callable[[np.ndarray], Any]) -> dict[str, Any]:
    """A frame's entry of the native document; ``polygon`` encodes each border (rounded points,
    or the streaming writer's marker), so both writers share the key order and the optional keys."""
    item: dict[str, Any] = {"index": int(f.index)}
    if f.phase is not None:
        item["phase"] = f.phase
    if f.z_mm is not None:
        item["z_mm"] = float(f.z_mm)
    item["lumen"] = polygon(f.lumen)
    if f.vessel is not None:
        item["vessel"] = polygon(f.vessel)
    if f.calcium:
        item["calcium"] = [polygon(c) for c in f.calcium]
    if f.stent is not None:
        item["stent"] = polygon(f.stent)
    if f.calcium_arc_deg is not None:
        item["calcium_arc_deg"] = float(f.calcium_arc_deg)
    if f.confidence is not None:
        item["confidence"] = float(f.confidence)
    if f.source is not None:
        item["source"] = str(f.source)
    return item


def contours_to_json(contours: ContourSet) -> dict[str, Any]:
    """The native ``ivus-contours`` document of ``contours`` (a JSON-serialisable dict)."""
    frames = [_frame_json(f, _round) for f in contours.frames]
    doc: dict[str, Any] = {
        "format": "ivus-contours",
        "version": 1,
        "units": "mm",
        "coordinates": "frame-plane",
    }
    if contours.pixel_spacing_mm is not None:
        doc["pixel_spacing_mm"] = [float(v) for v in contours.pixel_spacing_mm]
    if contours.catheter_center_px is not None:
        doc["catheter_center_px"] = [float(v) for v in contours.catheter_center_px]
    doc["frames"] = frames
    doc["landmarks"] = [_landmark_json(lm) for lm in contours.landmarks]
    return doc


def _landmark_json(lm: Landmark, *, lps: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"frame": int(lm.frame), "kind": lm.kind}
    if lm.angle_deg is not None:
        item["angle_deg"] = float(lm.angle_deg)
    if lm.point_ras_mm is not None:
        p = np.asarray(lm.point_ras_mm, dtype=float) * (np.array([-1.0, -1.0, 1.0]) if lps else 1.0)
        item["point"] = p.tolist()
    return item


def write_contours_json(
    contours: ContourSet, path: str | Path, *, cancel: Any = None, chunk_frames: int = 512
) -> Path:
    """Write the native ``contours.json`` (DESIGN.md); returns the path.

    The bytes are those of ``json.dumps(contours_to_json(contours), indent=1)`` plus a newline,
    but the polygons (nearly all of the file) are printed by numpy in runs of ``chunk_frames``
    frames and streamed to the file, never held as Python floats; ``cancel`` (a
    ``threading.Event``) is checked between runs.
    """
    path = Path(path)
    polygons = [_frame_polygons(f) for f in contours.frames]
    if not all(p.ndim == 2 and p.shape[1] == 2 for frame in polygons for _, p in frame):
        path.write_text(json.dumps(contours_to_json(contours), indent=1) + "\n", encoding="utf-8")
        return path
    # the document with a marker in place of every polygon, cut at the markers
    skeleton = contours_to_json(replace(contours, frames=()))
    skeleton["frames"] = [_frame_json(f, lambda _: _MARK) for f in contours.frames]
    pieces = [p.encode("ascii") for p in json.dumps(skeleton, indent=1).split(f'"{_MARK}"')]
    with path.open("wb") as out:
        out.write(pieces[0])
        at = 1
        for start in range(0, len(polygons), chunk_frames):
            if cancel is not None and cancel.is_set():
                from ..errors import IVUSCancelled

                raise IVUSCancelled("cancelled by the user")
            run = [item for frame in polygons[start : start + chunk_frames] for item in frame]
            texts: list[bytes] = [b""] * len(run)
            for indent in {d for d, _ in run}:
                where = [i for i, (d, _) in enumerate(run) if d == indent]
                for i, text in zip(where, _polygons_json([run[i][1] for i in where], indent), strict=True):
                    texts[i] = text
            for text in texts:
                out.write(text)
                out.write(pieces[at])
                at += 1
        out.write(b"\n")
    return path


_MARK = "@@ivus-polygon@@"


def _frame_polygons(f: FrameContours) -> list[tuple[int, np.ndarray]]:
    """The polygons of a frame in the order ``contours_to_json`` writes them, with the indent of
    the line that opens each (3 for lumen, vessel and stent; 4 inside the calcium list)."""
    out = [(3, np.asarray(f.lumen, dtype=float))]
    if f.vessel is not None:
        out.append((3, np.asarray(f.vessel, dtype=float)))
    out += [(4, np.asarray(c, dtype=float)) for c in (f.calcium or ())]
    if f.stent is not None:
        out.append((3, np.asarray(f.stent, dtype=float)))
    return out


def _polygons_json(polygons: list[np.ndarray], indent: int) -> list[bytes]:
    """``json.dumps(np.round(p, 5).tolist(), indent=1)`` of every polygon, as nested where the
    line it opens on is indented by ``indent``, printed by numpy (ASCII bytes).

    The 5-decimal value k / 1e5 prints as its shortest round-trip form, which is the decimal
    k / 1e5 without trailing zeros (``1.5``, ``-0.0``, ``12.0``) or, below 1e-4, ``Ne-05``.
    """
    counts = np.array([len(p) for p in polygons], dtype=np.intp)
    if counts.sum() == 0:
        return [b"[]" for _ in polygons]
    values = np.round(np.concatenate([p for p in polygons if len(p)]), 5)
    if not np.all(np.isfinite(values)) or np.abs(values).max() >= 1e9:
        return [json.dumps(np.round(p, 5).tolist(), indent=1).replace("\n", "\n" + " " * indent).encode()
                for p in polygons]  # fmt: skip
    chars, keep = _decimal_chars(values.ravel())
    width = chars.shape[1]
    # each point: "\n" (d+1)" " "[" "\n" (d+2)" " x ",\n" (d+2)" " y "\n" (d+1)" " "]" ","
    head = b"\n" + b" " * (indent + 1) + b"[\n" + b" " * (indent + 2)
    mid = b",\n" + b" " * (indent + 2)
    tail = b"\n" + b" " * (indent + 1) + b"],"
    template = np.frombuffer(head + b" " * width + mid + b" " * width + tail, dtype=np.uint8)
    x_at, y_at = len(head), len(head) + width + len(mid)
    n = len(values)
    rows = np.empty((n, len(template)), dtype=np.uint8)
    rows[:] = template
    mask = np.ones((n, len(template)), dtype=bool)
    rows[:, x_at : x_at + width], mask[:, x_at : x_at + width] = chars[0::2], keep[0::2]
    rows[:, y_at : y_at + width], mask[:, y_at : y_at + width] = chars[1::2], keep[1::2]
    # no comma after the last point of a polygon
    mask[np.cumsum(counts)[counts > 0] - 1, -1] = False
    text = rows[mask].tobytes()
    ends = np.cumsum(mask.sum(axis=1))
    bounds = np.concatenate([[0], ends[np.cumsum(counts)[counts > 0] - 1]])
    close = b"\n" + b" " * indent + b"]"
    out, j = [], 0
    for c in counts:
        if c == 0:
            out.append(b"[]")
            continue
        out.append(b"[" + text[bounds[j] : bounds[j + 1]] + close)
        j += 1
    return out


def _decimal_chars(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characters (N, W) uint8 and which of them to keep (N, W) of ``repr`` of each value, for
    finite values that are multiples of 1e-5 below 1e9 in magnitude."""
    k = np.rint(values * 1e5).astype(np.int64)
    a = np.abs(k)
    whole, frac = np.divmod(a, 100000)
    whole, frac = whole.astype(np.int32), frac.astype(np.int32)
    n_int = len(str(int(whole.max())))
    width = 1 + n_int + 1 + 5
    n = len(values)
    digits = np.empty((n, n_int + 5), dtype=np.uint8)
    rest = frac
    for j in range(n_int + 4, -1, -1):
        if j == n_int - 1:
            rest = whole
        rest, digits[:, j] = np.divmod(rest, 10)
    keep = np.empty((n, width), dtype=bool)
    keep[:, 0] = np.signbit(values)
    # leading zeros of the whole part go (its last digit stays), trailing zeros of the decimals
    # go (the first decimal stays)
    for j in range(n_int - 1):
        np.greater_equal(whole, 10 ** (n_int - 1 - j), out=keep[:, 1 + j])
    keep[:, n_int] = True
    keep[:, 1 + n_int] = True
    np.not_equal(digits[:, -1], 0, out=keep[:, -1])
    for j in range(width - 2, 2 + n_int, -1):
        np.logical_or(keep[:, j + 1], digits[:, j - 2] != 0, out=keep[:, j])
    keep[:, 2 + n_int] = True
    chars = np.empty((n, width), dtype=np.uint8)
    chars[:, 0] = ord("-")
    np.add(digits[:, :n_int], ord("0"), out=chars[:, 1 : 1 + n_int])
    chars[:, 1 + n_int] = ord(".")
    np.add(digits[:, n_int:], ord("0"), out=chars[:, 2 + n_int :])
    # 1e-05 .. 9e-05 print in exponent form: "[-]De-05"
    tiny = np.flatnonzero((a > 0) & (a < 10))
    if tiny.size:
        chars[tiny, 1:6] = np.frombuffer(b"0e-05", dtype=np.uint8)
        chars[tiny, 1] = ord("0") + a[tiny]
        keep[tiny, 1:] = False
        keep[tiny, 1:6] = True
    return chars, keep


def write_contours_csv(contours: ContourSet, path: str | Path) -> Path:
    """Write a plain CSV ``frame,contour,x_mm,y_mm,z_mm`` in frame-plane mm (read back by
    :func:`read_contours`); ``contour`` is lumen, vessel, stent or calcium_<k>."""
    path = Path(path)
    buf = io.StringIO()
    buf.write("frame,contour,x_mm,y_mm,z_mm\n")
    for f in contours.frames:
        z = "" if f.z_mm is None else f"{f.z_mm:.6g}"
        parts = [("lumen", f.lumen), ("vessel", f.vessel), ("stent", f.stent)]
        parts += [(f"calcium_{k}", c) for k, c in enumerate(f.calcium)]
        for kind, poly in parts:
            if poly is None:
                continue
            for x, y in np.asarray(poly, dtype=float):
                buf.write(f"{f.index},{kind},{x:.6f},{y:.6f},{z}\n")
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- landmarks


def read_landmarks(path: str | Path) -> tuple[Landmark, ...]:
    """Read landmarks: the native ``ivus-landmarks`` JSON (RAS or LPS) or a Slicer markups
    point list whose control-point labels are frame numbers (``"40"`` or ``"F40 ..."``).

    Returns
    -------
    tuple of Landmark
        Sorted by frame; ``point_ras_mm`` in RAS.

    Raises
    ------
    IVUSInputError
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "file", "does not exist", "check the landmark file's path")
    data = read_json_input(path)
    if isinstance(data, dict) and data.get("format") == "ivus-landmarks":
        _check_version(path, data)
        system = str(data.get("coordinate_system", "RAS")).upper()
        if system not in ("RAS", "LPS"):
            raise input_error(path, "coordinate_system", f"{system!r} is unknown", "use RAS or LPS")
        out = list(_landmarks_json(path, data.get("landmarks")))
        if system == "LPS":
            out = [
                Landmark(lm.frame, lm.kind, lm.angle_deg,
                         None if lm.point_ras_mm is None else lm.point_ras_mm * np.array([-1.0, -1.0, 1.0]))
                for lm in out
            ]  # fmt: skip
        return tuple(sorted(out, key=lambda lm: lm.frame))
    if isinstance(data, dict) and isinstance(data.get("markups"), list):
        out = []
        for markup in data["markups"]:
            points = (markup.get("controlPoints") or []) if isinstance(markup, dict) else None
            if not isinstance(points, list) or not all(isinstance(cp, dict) for cp in points):
                raise input_error(path, "markups[].controlPoints", "is not a list of points",
                                  "save the point list again from Slicer")  # fmt: skip
            system = str(markup.get("coordinateSystem", "LPS")).upper()
            flip = np.array([-1.0, -1.0, 1.0]) if system == "LPS" else np.ones(3)
            for k, cp in enumerate(points):
                label = str(cp.get("label", ""))
                m = re.search(r"\d+", label)
                if m is None:
                    raise input_error(path, f"controlPoints[{k}].label", f"{label!r} holds no frame number",
                                      "label each point with its frame number, e.g. 40")  # fmt: skip
                desc = str(cp.get("description", "")).strip().lower().replace(" ", "_")
                pos = cp.get("position")
                out.append(Landmark(
                    frame=int(m.group()), kind=desc or "side_branch",
                    point_ras_mm=None if pos is None else _as_point(
                        pos, 3, path=path, field=f"controlPoints[{k}].position", fix="give [x, y, z] in mm") * flip,
                ))  # fmt: skip
        return tuple(sorted(out, key=lambda lm: lm.frame))
    raise input_error(path, "format", "is not a landmarks file",
                      'write {"format": "ivus-landmarks", ...} or a Slicer markups point list')  # fmt: skip


def write_landmarks_json(
    landmarks: tuple[Landmark, ...], path: str | Path, *, coordinate_system: str = "RAS"
) -> Path:
    """Write the native ``ivus-landmarks`` JSON in RAS or LPS; returns the path."""
    path = Path(path)
    lps = coordinate_system.upper() == "LPS"
    doc = {"format": "ivus-landmarks", "version": 1, "coordinate_system": "LPS" if lps else "RAS",
           "landmarks": [_landmark_json(lm, lps=lps) for lm in landmarks]}  # fmt: skip
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


__all__ += ["contours_to_json"]
