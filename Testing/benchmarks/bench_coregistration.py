"""Speed of placement + meshes + volumes: 6000 frames x 360 contour points, one core.

A plain script (not collected by pytest)::

    OMP_NUM_THREADS=1 taskset -c 0 python Testing/benchmarks/bench_coregistration.py \
        [--frames 6000] [--points 360] [--mesh-points 360] [--repeat 3] [--no-multimodars]

Times (CPU seconds of this process, best of ``--repeat``; the machine is shared):

- ``ours``: ``place_frames`` (lumen-centroid alignment) + ``build_meshes`` (lumen, vessel,
  wall; ``n_points`` = ``--mesh-points``) + the three volumes (divergence theorem, field
  data ``volume_mm3``) and checks them against the trapezoid (area x length) volumes;
- ``baseline``: in the same process, a numpy copy of the input contours plus the
  trapezoid area x length volumes (the least work any method needs to read the input);
- ``multimodars`` (PyPI, Rust core), when installed: ``numpy_to_geometry`` +
  ``numpy_to_centerline`` + ``align_manual`` (watertight, no interpolation) +
  ``geometry_to_trimesh`` + volume, on the same contours and centerline.

Prints each time, ours / baseline and multimodars / ours.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from IVUSReconstructLib.coregistration import frame_arc_lengths_mm, place_frames
from IVUSReconstructLib.geometry import polygon_areas
from IVUSReconstructLib.mesh import build_meshes
from IVUSReconstructLib.types import Centerline, ContourSet, FrameContours


def make_case(n_frames: int, n_points: int) -> tuple[ContourSet, Centerline, np.ndarray]:
    """Wavy lumen and vessel contours (mm) and a helical centerline long enough for them."""
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)
    frames = []
    for i in range(n_frames):
        r_l = 1.8 + 0.3 * np.sin(3 * t + 0.01 * i) + 0.05 * rng.standard_normal()
        r_v = r_l + 1.0 + 0.2 * np.cos(2 * t)
        frames.append(
            FrameContours(
                i,
                np.column_stack([r_l * np.cos(t) + 0.2, r_l * np.sin(t)]),
                np.column_stack([r_v * np.cos(t), r_v * np.sin(t)]),
            )
        )
    arc = frame_arc_lengths_mm(np.arange(n_frames) / 30.0, 0.5, start_mm=1.0)
    th = np.linspace(0.0, 3.0 * np.pi, 3000)
    scale = max(1.0, (arc[-1] + 5.0) / (3.0 * np.pi * np.hypot(20.0, 5.0)))
    centerline = Centerline(scale * np.column_stack([20 * np.cos(th), 20 * np.sin(th), 5 * th]))
    return ContourSet(tuple(frames)), centerline, arc


def run_ours(contours, centerline, arc, mesh_points):
    poses = place_frames(centerline, contours.indices, arc, contours=contours, align="lumen-centroid")
    mesh = build_meshes(contours, poses, n_points=mesh_points)
    return {
        name: float(getattr(mesh, name).GetFieldData().GetArray("volume_mm3").GetValue(0))
        for name in ("lumen", "vessel", "wall")
    }


def run_baseline(contours, arc):
    lumen = np.stack([f.lumen for f in contours.frames])
    vessel = np.stack([f.vessel for f in contours.frames])
    a_l, a_v = polygon_areas(lumen), polygon_areas(vessel)
    v_l, v_v = np.trapezoid(a_l, arc), np.trapezoid(a_v, arc)
    return {"lumen": v_l, "vessel": v_v, "wall": v_v - v_l}


def run_multimodars(contours, centerline, arc):
    import multimodars as mm
    from multimodars._converters import geometry_to_trimesh

    n = len(contours.frames)
    m = len(contours.frames[0].lumen)
    idx = np.repeat(np.arange(n), m)
    z = np.repeat(arc - arc[0], m)
    lumen = np.column_stack([idx, np.vstack([f.lumen for f in contours.frames]) + 4.5, z])
    vessel = np.column_stack([idx, np.vstack([f.vessel for f in contours.frames]) + 4.5, z])
    points = np.asarray(centerline.points_ras_mm)
    geometry = mm.numpy_to_geometry(lumen, vessel, reference_arr=np.array([0.0, 6.5, 4.5, 0.0]))
    line = mm.numpy_to_centerline(points)
    aligned = mm.align_manual(
        line, geometry, 0.0, tuple(points[-1]), write=False, watertight=True, interpolation_steps=0
    )[0]
    return {"lumen": float(geometry_to_trimesh(aligned).volume)}


def best_cpu_s(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--points", type=int, default=360)
    parser.add_argument("--mesh-points", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-multimodars", action="store_true")
    args = parser.parse_args()

    contours, centerline, arc = make_case(args.frames, args.points)
    # warm-up on a small case: imports, VTK class loading
    small, small_cl, small_arc = make_case(20, 36)
    run_ours(small, small_cl, small_arc, 36)

    t_base, vol_base = best_cpu_s(lambda: run_baseline(contours, arc), args.repeat)
    t_ours, vol_ours = best_cpu_s(lambda: run_ours(contours, centerline, arc, args.mesh_points), args.repeat)
    print(f"case: {args.frames} frames x {args.points} points, meshes at {args.mesh_points} points per ring")
    print(f"baseline (numpy copy + trapezoid volumes): {t_base:.3f} s CPU")
    print(
        f"ours (placement + 3 meshes + 3 volumes):   {t_ours:.3f} s CPU  ({t_ours / t_base:.1f} x baseline)"
    )
    for name in ("lumen", "vessel", "wall"):
        rel = vol_ours[name] / vol_base[name] - 1.0
        print(
            f"  {name:6s} volume {vol_ours[name]:10.1f} mm3, trapezoid {vol_base[name]:10.1f} mm3 ({100 * rel:+.2f} %)"
        )
    if args.no_multimodars:
        return
    try:
        import multimodars  # noqa: F401
    except ImportError:
        print("multimodars not installed (pip install multimodars): skipped")
        return
    t_mm, vol_mm = best_cpu_s(lambda: run_multimodars(contours, centerline, arc), 1)
    print(
        f"multimodars (convert + align_manual + trimesh + volume, lumen only): {t_mm:.3f} s CPU "
        f"-> multimodars / ours = {t_mm / t_ours:.1f}"
    )


if __name__ == "__main__":
    main()
