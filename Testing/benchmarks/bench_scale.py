"""A long peripheral pullback end to end: the whole ``run`` against segmentation alone, and peak memory.

Usage: python Testing/benchmarks/bench_scale.py [--frames 4500] [--size 512] [--cache DIR] [--keep]
                                                 [--labelmap-agreement]

Builds (once, cached in ``--cache``) the femoropopliteal phantom at 30 frames/s and 1 mm/s as a
multi-frame DICOM of ``--frames`` x ``--size`` x ``--size`` pixels (4500 x 512 x 512: 150 mm,
1.18 GB of pixels) with its centerline, then runs, each in a fresh subprocess measured the same
way (wall time, CPU time and peak resident memory from ``wait4``):

- ``ivus-reconstruct segment PULLBACK --frames all``  (the baseline: reading + segmentation)
- ``ivus-reconstruct run PULLBACK --centerline CL --gating none``  (every frame analysed)

and prints run/segment (target <= 1.3), the labelmap's share of the run (target <= 5 %, from
``timings_s`` in summary.json), peak RSS / pixel bytes for each (target <= 1.5) and the
segmentation speed in frames/s. ``--labelmap-agreement`` then voxelises the run's meshes by the
former two-pass scan conversion as well and prints both CPU times and the voxel agreement. Not
collected by pytest: it takes minutes on 2 cores (``--frames 300`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "IVUSReconstruct"


def build(folder: Path, n_frames: int, size_px: int, seed: int) -> tuple[Path, Path]:
    """The cached pullback and centerline of ``n_frames`` at 30 frames/s, 1 mm/s (femoropopliteal)."""
    pullback, centerline = folder / "pullback.dcm", folder / "centerline.mrk.json"
    if pullback.exists() and centerline.exists():
        return pullback, centerline
    # in a subprocess: the phantom's frames (1.2 GB at 4500 frames) must not count in this process
    code = f"""
import sys
from dataclasses import replace
sys.path.insert(0, {str(LIB)!r})
from IVUSReconstructLib.phantom import PRESETS, make_phantom
from IVUSReconstructLib.io.dicom import write_pullback
from IVUSReconstructLib.io.centerline import write_markups_curve
preset = replace(PRESETS["femoropopliteal"], frame_rate_hz=30.0, pullback_speed_mm_s=1.0)
ph = make_phantom(preset, seed={seed}, length_mm={n_frames} / 30.0, size_px={size_px})
write_pullback(ph.pullback, {str(folder / "tmp.dcm")!r})
write_markups_curve(ph.centerline, {str(centerline)!r}, coordinate_system="LPS")
"""
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    (folder / "tmp.dcm").rename(pullback)
    print(f"built {pullback} in {time.perf_counter() - t0:.0f} s", flush=True)
    return pullback, centerline


def measured(args: list[str]) -> tuple[float, float, int]:
    """Wall time (s), CPU time (user + system, s) and peak resident memory (bytes) of one CLI
    subprocess. On a machine shared with other work the CPU time is the steadier measure."""
    env = dict(os.environ, PYTHONPATH=str(LIB) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "IVUSReconstructLib.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss) * 1024  # ru_maxrss: KiB on Linux


def labelmap_agreement(out: Path) -> None:
    """The ring labelmap against two-pass scan conversion of the same meshes (CPU time, voxels)."""
    sys.path.insert(0, str(LIB))
    import numpy as np
    from scipy import ndimage
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    from IVUSReconstructLib.labelmap import stencil_labelmap, vessel_labelmap
    from IVUSReconstructLib.types import VesselMesh

    def read(name: str):
        reader = vtkXMLPolyDataReader()
        reader.SetFileName(str(out / name))
        reader.Update()
        return reader.GetOutput()

    mesh = VesselMesh(lumen=read("lumen.vtp"), vessel=read("vessel.vtp"), wall=None)
    t0 = time.process_time()
    new, origin_new, _ = vessel_labelmap(mesh, 0.2)
    t1 = time.process_time()
    old, origin_old, _ = stencil_labelmap(mesh, 0.2)
    t2 = time.process_time()
    same_grid = old.shape == new.shape and np.array_equal(origin_old, origin_new)
    labelled = int((old > 0).sum())
    differ = int((old != new).sum())
    print(
        f"labelmap CPU          rings {t1 - t0:.2f} s, scan conversion {t2 - t1:.2f} s; same grid {same_grid}"
    )
    print(f"labelmap voxels       {differ} of {labelled} labelled differ ({100 * differ / labelled:.3f} %)")
    cube = np.ones((3, 3, 3), dtype=bool)
    for label, name in ((1, "lumen"), (2, "wall")):
        a, b = old == label, new == label
        far = int(
            (b & ~ndimage.binary_dilation(a, cube)).sum() + (a & ~ndimage.binary_dilation(b, cube)).sum()
        )
        dice = 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
        print(
            f"labelmap {name:5s}        Dice {dice:.4f}; voxels more than one voxel from the same label: {far}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=4500, help="pullback frames (default 4500: 150 mm)")
    ap.add_argument("--size", type=int, default=512, help="frame size in pixels (default 512)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ivus-bench-scale")
    ap.add_argument("--keep", action="store_true", help="keep the run's output folder")
    ap.add_argument(
        "--labelmap-agreement",
        action="store_true",
        help="also voxelise the run's meshes by scan conversion (the former labelmap) and compare",
    )
    args = ap.parse_args()

    folder = args.cache / f"{args.frames}x{args.size}-seed{args.seed}"
    pullback, centerline = build(folder, args.frames, args.size, args.seed)
    pixel_bytes = args.frames * args.size * args.size
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        seg_s, seg_cpu, seg_rss = measured(
            ["segment", str(pullback), "--frames", "all", "--out", str(work / "seg.json")]
        )
        out = work / "run"
        run_s, run_cpu, run_rss = measured(
            ["run", str(pullback), "--centerline", str(centerline), "--gating", "none", "--out", str(out)]
        )
        timings = json.loads((out / "summary.json").read_text())["timings_s"]
        if args.labelmap_agreement:
            labelmap_agreement(out)
    finally:
        if args.keep:
            print(f"outputs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    seg_core = timings.get("segmentation", float("nan"))
    labelmap = timings.get("labelmap", float("nan"))
    print(
        f"pullback          {args.frames} x {args.size} x {args.size} ({pixel_bytes / 1e9:.2f} GB of pixels)"
    )
    print(
        f"segment --frames all  {seg_s:7.1f} s   peak RSS {seg_rss / 1e9:.2f} GB ({seg_rss / pixel_bytes:.2f}x pixels)"
    )
    print(
        f"run --gating none     {run_s:7.1f} s   peak RSS {run_rss / 1e9:.2f} GB ({run_rss / pixel_bytes:.2f}x pixels)"
    )
    print(f"run / segment         {run_s / seg_s:7.2f}      (target <= 1.3; wall time)")
    print(f"run / segment CPU     {run_cpu / seg_cpu:7.2f}      ({run_cpu:.1f} s / {seg_cpu:.1f} s of CPU)")
    print(f"labelmap share        {100 * labelmap / run_s:7.1f} %    ({labelmap:.2f} s; target <= 5 %)")
    after = sum(v for k, v in timings.items() if k not in ("reading", "gating", "segmentation"))
    print(
        f"after segmentation    {after:7.1f} s   ({100 * after / run_s:.1f} % of the run: placement to scene)"
    )
    print(f"peak RSS / pixels     {run_rss / pixel_bytes:7.2f}      (target <= 1.5)")
    print(f"segmentation          {args.frames / seg_core:7.1f} frames/s inside run ({seg_core:.1f} s)")
    print("run timings_s         " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


if __name__ == "__main__":
    main()
