"""Speed of image gating, and of end-diastolic analysis, on a 6000-frame 512 x 512 pullback.

A plain script (not collected by pytest)::

    python Testing/benchmarks/bench_gating.py [--frames 6000] [--size-px 512] [--segment]

A coronary phantom of ``--frames`` frames is made (about a minute for 6000 frames); the
gating time and its heart-rate and end-diastole agreement with the phantom are printed. ``--segment`` also segments the
end-diastolic frames, which with the gating makes the end-to-end ED analysis (target < 20 s).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from IVUSReconstructLib.gating import gate_pullback
from IVUSReconstructLib.phantom import make_phantom


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6000)
    ap.add_argument("--size-px", type=int, default=512)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--segment", action="store_true", help="also segment the end-diastolic frames")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    # 30 frames/s at 0.5 mm/s: 60 frames per mm
    ph = make_phantom("coronary", seed=args.seed, length_mm=args.frames / 60.0, size_px=args.size_px)
    pb = ph.pullback
    truth = np.asarray(ph.ed_frames)
    n = pb.n_frames
    print(f"pullback {n} frames of {args.size_px} px made in {time.perf_counter() - t0:.1f} s")

    # baseline in the same process: touch every pixel of every frame once (the least any
    # image-based gating must do)
    t0 = time.perf_counter()
    for k in range(0, n, 256):
        np.asarray(pb.frames[k : k + 256], dtype=np.float32).mean()
    t_base = time.perf_counter() - t0
    print(f"baseline (mean of every frame): {t_base:.2f} s")
    t0 = time.perf_counter()
    g = gate_pullback(pb)
    t_gate = time.perf_counter() - t0
    print(f"gating / baseline: {t_gate / t_base:.1f}x")
    inner = truth[(truth > 3) & (truth < n - 4)]
    offsets = np.array([g.ed_frames[np.argmin(np.abs(g.ed_frames - k))] - k for k in inner])
    print(
        f"gating: {t_gate:.2f} s ({n / t_gate:.0f} frames/s); {g.heart_rate_bpm:.1f} bpm "
        f"(phantom {ph.heart_rate_bpm:.1f}); {len(g.ed_frames)} ED frames (truth {len(truth)}); "
        f"median offset {np.median(offsets):+.0f}, {100 * np.mean(np.abs(offsets) <= 1):.0f} % within 1 frame"
    )
    if args.segment:
        from IVUSReconstructLib.segmentation import segment_pullback

        t0 = time.perf_counter()
        segment_pullback(pb, np.asarray(g.ed_frames))
        t_seg = time.perf_counter() - t0
        print(
            f"segmentation of {len(g.ed_frames)} ED frames: {t_seg:.2f} s; ED analysis {t_gate + t_seg:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
