"""Teaching exports: a vertex-coloured glTF binary (.glb) of the meshes and a turntable GIF.

The .glb is written with numpy alone (positions, normals, ``COLOR_0`` and indices in one
binary chunk), so it needs no render window and opens in any glTF viewer, PowerPoint or a
web page. Colours come from the same plaque-burden colormap as the render and its colour bar.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkTriangleFilter

from .errors import IVUSCancelled
from .render import (
    DEVICE_OPACITY,
    DEVICE_RGB,
    LUMEN_RGB,
    RenderStyle,
    colormap_rgb,
    display_surface,
    render_vessel,
)
from .types import VesselMesh

__all__ = ["surface_arrays", "write_colored_glb", "write_turntable_gif"]

_FLOAT, _UINT32 = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def surface_arrays(polydata: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    """Triangulated points (P, 3), unit point normals (P, 3), triangles (T, 3) and the
    triangulated vtkPolyData (whose point arrays match the rows) of a surface."""
    tri = vtkTriangleFilter()
    tri.SetInputData(polydata)
    tri.PassLinesOff()
    tri.PassVertsOff()
    normals = vtkPolyDataNormals()
    normals.SetInputConnection(tri.GetOutputPort())
    normals.SplittingOff()
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOff()
    normals.ComputePointNormalsOn()
    normals.Update()
    out = normals.GetOutput()
    points = vtk_to_numpy(out.GetPoints().GetData()).astype(np.float32)
    point_normals = vtk_to_numpy(out.GetPointData().GetNormals()).astype(np.float32)
    triangles = vtk_to_numpy(out.GetPolys().GetConnectivityArray()).reshape(-1, 3).astype(np.uint32)
    return points, point_normals, triangles, out


def _colours(polydata: Any, color_by: str, value_range: tuple[float, float], default_rgb) -> np.ndarray:
    array = polydata.GetPointData().GetArray(color_by)
    n = polydata.GetNumberOfPoints()
    if array is None:
        return np.tile(np.asarray(default_rgb, dtype=np.float32), (n, 1))
    values = vtk_to_numpy(array).astype(float)
    rgb = colormap_rgb(np.nan_to_num(values, nan=value_range[0]), value_range=value_range)
    # Frames without a value (NaN burden) are shown grey rather than as 0 %.
    rgb[~np.isfinite(values)] = 0.7
    return rgb.astype(np.float32)


def write_colored_glb(
    mesh: VesselMesh,
    path: str | Path,
    *,
    color_by: str = "plaque_burden_percent",
    value_range: tuple[float, float] = (0.0, 100.0),
    vessel_opacity: float = 0.55,
    max_rings: int | None = 2000,
    devices: Sequence[Any] = (),
) -> Path:
    """Write the lumen (red) and the vessel (coloured by plaque burden) as one .glb file.

    Parameters
    ----------
    mesh : VesselMesh
        World RAS mm surfaces; the vessel's point array ``color_by`` gives its colours.
    path : path-like
        Output ``.glb`` file.
    color_by : str
        Vessel point array mapped through the burden colormap (as in the render).
    value_range : (float, float)
        Values mapped to the first and last colour, percent.
    vessel_opacity : float
        Alpha of the vessel material (glTF ``BLEND`` mode), so the lumen shows through.
    max_rings : int, optional
        Long pullbacks are thinned to this many rings (see :func:`render.display_surface`)
        to keep the file small; None keeps every ring.
    devices : sequence of vtkPolyData
        Planned devices (``render.device_polydata``), added as translucent cyan meshes named
        ``device`` (``device 2``, ... for further plans).

    Returns
    -------
    Path

    Notes
    -----
    Coordinates stay RAS millimetres (glTF nominally uses +y up and metres; viewers frame
    the model anyway).
    """
    path = Path(path)
    parts = [("lumen", mesh.lumen, (*LUMEN_RGB,), 1.0)]
    if mesh.vessel is not None and mesh.vessel.GetNumberOfPoints():
        parts.append(("vessel", mesh.vessel, (0.75, 0.75, 0.78), float(vessel_opacity)))
    for k, device in enumerate(devices, start=1):
        parts.append(("device" if k == 1 else f"device {k}", device, DEVICE_RGB, DEVICE_OPACITY))
    binary = bytearray()
    views, accessors, meshes, nodes, materials = [], [], [], [], []

    def add_view(data: np.ndarray, target: int) -> int:
        binary.extend(b"\0" * (-len(binary) % 4))
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": data.nbytes, "target": target})
        binary.extend(data.tobytes())
        return len(views) - 1

    def add_accessor(
        data: np.ndarray, kind: str, component: int, target: int, *, bounds: bool = False
    ) -> int:
        entry = {
            "bufferView": add_view(np.ascontiguousarray(data), target),
            "componentType": component,
            "count": int(len(data) if data.ndim > 1 else data.size),
            "type": kind,
        }
        if bounds:
            entry["min"] = [float(v) for v in data.min(axis=0)]
            entry["max"] = [float(v) for v in data.max(axis=0)]
        accessors.append(entry)
        return len(accessors) - 1

    for name, surface, rgb, alpha in parts:
        if surface is None or surface.GetNumberOfPoints() == 0:
            continue
        if max_rings and not name.startswith("device"):
            surface = display_surface(surface, max_rings=int(max_rings))
        points, normals, triangles, triangulated = surface_arrays(surface)
        colours = _colours(triangulated, color_by, value_range, rgb) if name == "vessel" else None
        if colours is None:
            colours = np.tile(np.asarray(rgb, dtype=np.float32), (len(points), 1))
        rgba = np.column_stack([colours, np.full(len(points), alpha, dtype=np.float32)]).astype(np.float32)
        attributes = {
            "POSITION": add_accessor(points, "VEC3", _FLOAT, _ARRAY_BUFFER, bounds=True),
            "NORMAL": add_accessor(normals, "VEC3", _FLOAT, _ARRAY_BUFFER),
            "COLOR_0": add_accessor(rgba, "VEC4", _FLOAT, _ARRAY_BUFFER),
        }
        indices = add_accessor(triangles.reshape(-1), "SCALAR", _UINT32, _ELEMENT_ARRAY_BUFFER)
        materials.append(
            {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1.0, 1.0, 1.0, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
                "alphaMode": "OPAQUE" if alpha >= 1.0 else "BLEND",
                "doubleSided": True,
            }
        )
        meshes.append(
            {
                "name": name,
                "primitives": [
                    {"attributes": attributes, "indices": indices, "material": len(materials) - 1, "mode": 4}
                ],
            }
        )
        nodes.append({"name": name, "mesh": len(meshes) - 1})
    binary.extend(b"\0" * (-len(binary) % 4))
    doc = {
        "asset": {"version": "2.0", "generator": "IVUSReconstruct"},
        "scene": 0,
        "scenes": [{"nodes": list(range(len(nodes)))}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(binary)}],
        "extras": {"units": "mm", "space": "RAS", "color_by": color_by, "value_range": list(value_range)},
    }
    chunk = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    chunk += b" " * (-len(chunk) % 4)
    total = 12 + 8 + len(chunk) + 8 + len(binary)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<4sII", b"glTF", 2, total))
        out.write(struct.pack("<I4s", len(chunk), b"JSON"))
        out.write(chunk)
        out.write(struct.pack("<I4s", len(binary), b"BIN\0"))
        out.write(bytes(binary))
    return path


def write_turntable_gif(
    mesh: VesselMesh,
    path: str | Path,
    *,
    n_frames: int = 36,
    size_px: tuple[int, int] = (640, 400),
    frame_duration_ms: int = 80,
    progress: Callable[[float, str], None] | None = None,
    cancel: threading.Event | None = None,
    style: RenderStyle | None = None,
    **scene: Any,
) -> Path:
    """An animated GIF of the vessel spinning once about its long axis.

    Each frame is :func:`render.render_vessel` (side view) with the tilt stepped by
    ``360 / n_frames`` degrees; the palette is shared by all frames so colours do not flicker.

    Parameters
    ----------
    mesh : VesselMesh
    path : path-like
        Output ``.gif``.
    n_frames : int
        Frames of one turn.
    size_px : (int, int)
        (width, height) of each frame.
    frame_duration_ms : int
        Display time of each frame; the GIF loops forever.
    progress : callable(fraction, message), optional
    cancel : threading.Event, optional
    style : RenderStyle, optional
        Colours and opacities of each frame; ``size_px`` and ``view`` are set here, the tilt
        starts at ``style.elevation_deg`` (20 degrees by default) and ``supersample`` is 1
        unless given.
    **scene
        Passed to :func:`render.render_vessel` (``centerline``, ``poses``, ``metrics``,
        ``contours``, ``lesions``).

    Returns
    -------
    Path
    """
    from PIL import Image

    path = Path(path)
    style = RenderStyle(supersample=1) if style is None else style
    start = float(style.elevation_deg or 20.0)
    frames = []
    for k in range(int(n_frames)):
        if cancel is not None and cancel.is_set():
            raise IVUSCancelled("cancelled by the user")
        if progress is not None:
            progress(k / n_frames, f"turntable frame {k + 1} of {n_frames}")
        tilted = replace(
            style, size_px=tuple(size_px), view="overview", elevation_deg=start + 360.0 * k / n_frames
        )
        image = render_vessel(mesh, style=tilted, **scene)
        frames.append(Image.fromarray(image))
    # One palette for all frames: quantise a strip of every frame together.
    strip = Image.new("RGB", (size_px[0], size_px[1] * len(frames)))
    for k, frame in enumerate(frames):
        strip.paste(frame, (0, k * size_px[1]))
    palette = strip.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    indexed[0].save(
        path,
        save_all=True,
        append_images=indexed[1:],
        duration=int(frame_duration_ms),
        loop=0,
        optimize=False,
        disposal=1,
    )
    if progress is not None:
        progress(1.0, "turntable written")
    return path
