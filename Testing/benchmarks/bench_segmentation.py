"""Segmentation speed and accuracy on phantoms (plain script, not collected by pytest).

Usage: python Testing/benchmarks/bench_segmentation.py [--size 256 512] [--seeds 7 11 13] [--side-branch]
    [--repeat 3]
Prints frames/s and mean Jaccard / Hausdorff per preset, speckle regime and frame size, and
the ratio of the segmentation time to a baseline timed in the same process: resampling the same
frames and their two raw neighbours to the polar grid (work any polar method must do), by a plain
bilinear gather kept here (not the library's sampler, whose own speed-ups would move the yardstick).
Both times are the best of ``--repeat`` runs: on a shared machine the best run is the one least
slowed by the other processes, and the ratio of the two tells contention from a slower method. The
CPU time per frame (all threads, best run) is the work itself, which contention barely moves.
With ``--side-branch`` the phantoms open a side branch a quarter of the way along and every 3rd
frame within 0.8 mm of its ostium is analysed: the truth closes the main vessel across it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from IVUSReconstructLib.evaluation import evaluate_contours
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.segmentation import PolarSampler, segment_pullback


def _plain_resample(sampler: PolarSampler, frames: np.ndarray) -> np.ndarray:
    """The frames (F, H, W) on the sampler's polar grid (F, A, R) by a plain bilinear gather: the
    fixed yardstick of the ratio (2 x 2 block mean, four taps per supersample, frame-major)."""
    f = sampler.factor
    hd, wd = sampler.ds_shape
    ds = frames[:, : hd * f, : wd * f].reshape(len(frames), hd, f, wd, f).astype(np.float32).mean(axis=(2, 4))
    flat = ds.reshape(len(frames), -1)
    out = np.zeros((len(frames), sampler.index.shape[1]), dtype=np.float32)
    for k in range(4):
        out += flat[:, sampler.index[k]] * sampler.weight[k]
    r = len(sampler.radii_mm)
    return out.reshape(len(frames), sampler.n_angles, sampler.supersample, r).mean(axis=2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7])
    ap.add_argument("--length-mm", type=float, default=8.0)
    ap.add_argument("--presets", nargs="+", default=["coronary", "femoropopliteal", "iliac-vein"])
    ap.add_argument("--side-branch", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    args = ap.parse_args()
    for size in args.size:
        for seed in args.seeds:
            for preset in args.presets:
                for speckle in ("rotational", "phased"):
                    ph = make_phantom(
                        preset,
                        seed=seed,
                        length_mm=args.length_mm,
                        speckle=speckle,
                        size_px=size,
                        side_branch=args.side_branch,
                    )
                    if args.side_branch:
                        near = np.abs(ph.true_arc_length_mm - ph.side_branch_mm) < 0.8
                        frames = np.flatnonzero(near)[::3]
                    else:
                        frames = np.arange(1, ph.pullback.n_frames - 1, 4)
                    pb = ph.pullback
                    raw = np.unique(np.concatenate([frames - 1, frames, frames + 1]))
                    base = dt = cpu = np.inf
                    for _ in range(max(1, args.repeat)):
                        t0 = time.perf_counter()
                        sampler = PolarSampler.build(
                            pb.shape_px,
                            pb.pixel_spacing_mm,
                            pb.catheter_center_px,
                            n_angles=180,
                            n_radii=100000,
                        )
                        _plain_resample(sampler, np.asarray(pb.frames[raw]))
                        base = min(base, time.perf_counter() - t0)
                        t0, c0 = time.perf_counter(), time.process_time()
                        cs = segment_pullback(pb, frames)
                        dt = min(dt, time.perf_counter() - t0)
                        cpu = min(cpu, time.process_time() - c0)
                    s = evaluate_contours(cs, ph.truth, pixel_size_mm=0.02)["summary"]
                    print(
                        f"{size}px seed {seed} {preset:16s} {speckle:10s} {len(frames) / dt:6.0f} frames/s "
                        f"({dt / base:4.1f}x polar resampling, CPU {1000 * cpu / len(frames):4.1f} ms/frame)  "
                        f"J {s['lumen']['jaccard']['mean']:.3f}/{s['vessel']['jaccard']['mean']:.3f}  "
                        f"HD {s['lumen']['hausdorff_mm']['mean']:.2f}/{s['vessel']['hausdorff_mm']['mean']:.2f} mm",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
