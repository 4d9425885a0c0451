"""Speed of the vessel render on a long pullback: a 6000-frame mesh to a 1920 x 1080 PNG.

A plain script (not collected by pytest)::

    python Testing/benchmarks/bench_render.py [--frames 6000] [--points 360] [--size 1920x1080]

Builds lumen and vessel tubes of ``--frames`` rings of ``--points`` points each along a curved
150 mm centerline (with the point arrays the mesh stage writes), then times
``render_vessel`` + ``write_png`` (target < 5 s) next to an empty-scene render of the same size
in the same process (the baseline: window creation, read-back and PNG encoding alone), and
prints both and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

from IVUSReconstructLib import render
from IVUSReconstructLib.types import Centerline, FramePoses, VesselMesh


def tube(
    centre: np.ndarray, tangent: np.ndarray, radius: np.ndarray, n_around: int, arrays: dict
) -> vtkPolyData:
    """Rings of ``n_around`` points (radius per ring) around ``centre`` (N, 3), outward triangles."""
    u = np.cross(tangent, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(tangent, u)
    a = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    wobble = 1.0 + 0.08 * np.cos(2 * a)[None, :]  # elliptic, so shading is not uniform
    ring = np.cos(a)[None, :, None] * u[:, None] + np.sin(a)[None, :, None] * v[:, None]
    pts = (centre[:, None, :] + (radius[:, None] * wobble)[:, :, None] * ring).reshape(-1, 3)
    n = len(centre)
    i, j = np.arange(n - 1)[:, None], np.arange(n_around)[None, :]
    p00, p01 = i * n_around + j, i * n_around + (j + 1) % n_around
    p10, p11 = p00 + n_around, p01 + n_around
    tris = np.concatenate(
        [np.stack([p00, p11, p10], -1).reshape(-1, 3), np.stack([p00, p01, p11], -1).reshape(-1, 3)]
    )
    poly = vtkPolyData()
    vpts = vtkPoints()
    vpts.SetData(numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vpts)
    cells = np.hstack([np.full((len(tris), 1), 3), tris]).astype(np.int64).ravel()
    polys = vtkCellArray()
    polys.ImportLegacyFormat(numpy_to_vtkIdTypeArray(cells, deep=True))
    poly.SetPolys(polys)
    for name, values in arrays.items():
        array = numpy_to_vtk(np.repeat(np.asarray(values, float), n_around), deep=True)
        array.SetName(name)
        poly.GetPointData().AddArray(array)
    return poly


def long_vessel(n_frames: int, n_around: int):
    s = np.linspace(0.0, 150.0, n_frames)
    t = s / 150.0
    centre = np.stack([0.95 * s, 18 * np.sin(2 * np.pi * t), 10 * t**2], axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centre, axis=0), axis=1))])
    tangent = np.gradient(centre, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1)[:, None]
    r_vessel = 3.0 + 0.3 * t
    r_lumen = 2.5 - 1.2 * np.exp(-(((arc - 60.0) / 8.0) ** 2)) - 0.8 * np.exp(-(((arc - 110.0) / 6.0) ** 2))
    burden = (1 - r_lumen**2 / r_vessel**2) * 100
    arrays = {
        "frame_index": np.arange(n_frames),
        "arc_length_mm": arc,
        "plaque_thickness_mm": r_vessel - r_lumen,
        "plaque_burden_percent": burden,
    }
    mesh = VesselMesh(
        lumen=tube(centre, tangent, r_lumen, n_around, arrays),
        vessel=tube(centre, tangent, r_vessel, n_around, arrays),
    )
    poses = FramePoses(
        frame_index=np.arange(n_frames),
        arc_length_mm=arc,
        origin_ras_mm=centre,
        axes_ras=np.zeros((n_frames, 3, 2)),
        normal_ras=tangent,
        offset_mm=np.zeros((n_frames, 2)),
    )
    area = np.pi * r_lumen**2
    mla = int(np.argmin(area))
    summary = {
        "mla": {"area_mm2": float(area[mla]), "frame": mla, "arc_length_mm": float(arc[mla])},
        "references": {
            side: {"frame": f, "arc_length_mm": float(arc[f]), "lumen_area_mm2": float(area[f])}
            for side, f in (("proximal", min(mla + 800, n_frames - 1)), ("distal", max(mla - 800, 0)))
        },
    }
    lesions = [{"start_mm": float(arc[mla]) - 12.0, "end_mm": float(arc[mla]) + 12.0, "length_mm": 24.0}]
    return mesh, Centerline(points_ras_mm=centre), poses, summary, lesions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--points", type=int, default=360)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--view", default="overview", choices=render.VIEWS)
    parser.add_argument("--out", type=Path, default=None, help="keep the PNG here")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    t0 = time.perf_counter()
    mesh, centerline, poses, summary, lesions = long_vessel(args.frames, args.points)
    build_s = time.perf_counter() - t0
    n_tri = mesh.lumen.GetNumberOfCells() + mesh.vessel.GetNumberOfCells()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "render.png"
        t0 = time.perf_counter()
        baseline = render.render_empty((width, height))
        render.write_png(baseline, Path(tmp) / "empty.png")
        empty_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        image = render.render_vessel(
            mesh,
            centerline=centerline,
            poses=poses,
            metrics={"summary": summary, "lesions": lesions},
            style=render.RenderStyle(size_px=(width, height), view=args.view),
        )
        render.write_png(image, out)
        render_s = time.perf_counter() - t0

    print(
        f"mesh: {args.frames} frames x {args.points} points, {n_tri / 1e6:.2f} M triangles (built in {build_s:.1f} s)"
    )
    print(f"empty scene {width}x{height} + PNG: {empty_s:.2f} s")
    print(f"vessel render {width}x{height} + PNG: {render_s:.2f} s  (target < 5 s)")
    print(f"ratio to empty scene: {render_s / max(empty_s, 1e-9):.1f}x")
    return 0 if render_s < 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
