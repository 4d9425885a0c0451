"""Benchmark: metrics for 6000 frames (target < 0.5 s).

Run: ``python Testing/benchmarks/bench_metrics.py``. The baseline, timed in the same process,
is the least any implementation must do: one vectorised shoelace area of every lumen and vessel
contour. The ratio says how much the full metric set costs on top of reading the contours once.
"""

from __future__ import annotations

import time

import numpy as np

from IVUSReconstructLib.metrics import compute_metrics
from IVUSReconstructLib.types import ContourSet, FrameContours

N_FRAMES = 6000
N_POINTS = 500


def make_contours(seed: int = 0) -> tuple[ContourSet, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = np.linspace(0, 2 * np.pi, N_POINTS, endpoint=False)
    frames = []
    for i in range(N_FRAMES):
        r_l = 1.5 + 0.3 * np.sin(i / 200) + 0.05 * np.sin(3 * theta + rng.uniform(0, 6))
        r_v = r_l + 0.6 + 0.2 * np.cos(theta - i / 300) ** 2
        lumen = np.column_stack([r_l * np.cos(theta) + 0.2, r_l * np.sin(theta)])
        vessel = np.column_stack([r_v * np.cos(theta), r_v * np.sin(theta)])
        frames.append(FrameContours(index=i, lumen=lumen, vessel=vessel))
    return ContourSet(frames=tuple(frames)), np.arange(N_FRAMES) * 0.5 / 30.0


def baseline(contours: ContourSet) -> np.ndarray:
    rings = np.stack([f.lumen for f in contours.frames] + [f.vessel for f in contours.frames])
    x, y = rings[..., 0], rings[..., 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - y * np.roll(x, -1, axis=1), axis=1))


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    contours, arc = make_contours()
    t_base = best_of(lambda: baseline(contours))
    t_metrics = best_of(lambda: compute_metrics(contours, arc))
    print(f"frames: {N_FRAMES} x {N_POINTS} points (lumen + vessel)")
    print(f"baseline (shoelace areas only): {t_base:.3f} s")
    print(f"compute_metrics:                {t_metrics:.3f} s  (target < 0.5 s)")
    print(f"ratio metrics / baseline:       {t_metrics / t_base:.1f}x")


if __name__ == "__main__":
    main()
