"""Benchmark of the DICOM pullback reader (plain script; not collected by pytest).

1. Writes a 6000-frame 512 x 512 uint8 uncompressed pullback (~1.5 GB) to /tmp with the
   streaming writer (frames made lazily from 30 phantom frames: never all in memory).
2. Times, in this process, (a) ``read_pullback`` + the sum of every frame and (b) pydicom's
   ``dcmread(...).pixel_array`` + the same sums; the ratio b / a is the speed-up.
3. Peak memory of (a) and (b), each in a fresh subprocess: ``VmHWM`` (peak resident set, includes
   the memory-mapped pages of the file) and tracemalloc's peak (Python allocations), as a
   multiple of the pixel data size (target <= 1.2 x for (a)).
4. Decodes a JPEG baseline pullback (600 frames of 512 x 512) with 1 and 2 threads:
   frames per second (target >= 300 on 2 cores).

Run: ``python Testing/benchmarks/bench_dicom.py [--frames 6000] [--jpeg-frames 600]``.
The big file is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np


class LazyFrames:
    """(n, H, W) uint8 frames made on demand from a few base frames (bounded memory)."""

    def __init__(self, base: np.ndarray, n: int):
        self.base = base
        self.shape = (n, *base.shape[1:])
        self.dtype = base.dtype

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(self.shape[0])
        return np.stack([self.base[k % len(self.base)] for k in range(start, stop)])


def _touch(frames) -> int:
    total = 0
    for k in range(frames.shape[0]):
        total += int(np.asarray(frames[k]).sum(dtype=np.uint64))
    return total


def _ours(path: str) -> tuple[float, int]:
    from IVUSReconstructLib.io.dicom import read_pullback

    t = time.perf_counter()
    pullback = read_pullback(path)
    total = _touch(pullback.frames)
    return time.perf_counter() - t, total


def _pydicom(path: str) -> tuple[float, int]:
    import pydicom

    t = time.perf_counter()
    array = pydicom.dcmread(path).pixel_array
    total = _touch(array)
    return time.perf_counter() - t, total


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM, bytes); unlike ru_maxrss it is reset by exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(kind: str, path: str) -> None:
    if kind == "ours":
        import IVUSReconstructLib.io.dicom  # noqa: F401 - imports before the baseline
    import pydicom  # noqa: F401
    import pydicom.pixels  # noqa: F401

    rss0 = _peak_rss()
    tracemalloc.start()
    seconds, total = (_ours if kind == "ours" else _pydicom)(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss = _peak_rss()
    print(
        json.dumps(
            {"seconds": seconds, "total": total, "tracemalloc_peak": peak, "maxrss": maxrss, "rss0": rss0}
        )
    )


def _in_child(kind: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=6000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--jpeg-frames", type=int, default=600)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
    from IVUSReconstructLib.phantom import make_phantom

    n, size = args.frames, args.size
    pixel_bytes = n * size * size
    free = shutil.disk_usage(args.dir).free
    if free < 2 * pixel_bytes:
        sys.exit(f"need {2 * pixel_bytes / 1e9:.1f} GB free in {args.dir}, have {free / 1e9:.1f} GB")
    phantom = make_phantom("coronary", length_mm=0.5, size_px=size).pullback
    base = np.asarray(phantom.frames)
    rows = []

    big = Path(args.dir) / "ivus_bench_pullback.dcm"
    jpeg = Path(args.dir) / "ivus_bench_jpeg.dcm"
    try:
        lazy = replace(phantom, frames=LazyFrames(base, n), frame_times_s=np.arange(n) / 30.0)
        t = time.perf_counter()
        write_pullback(lazy, big)
        rows.append(("write 6000-frame uncompressed (streamed)", f"{time.perf_counter() - t:.2f} s",
                     f"{big.stat().st_size / 1e9:.2f} GB file"))  # fmt: skip

        # Same process, warm page cache for both (the file was just written).
        ours_s, ours_total = _ours(str(big))
        ref_s, ref_total = _pydicom(str(big))
        assert ours_total == ref_total, (ours_total, ref_total)
        rows.append(
            ("(a) read_pullback + sum of every frame", f"{ours_s:.2f} s", f"{n / ours_s:.0f} frames/s")
        )
        rows.append(("(b) pydicom pixel_array + same sums", f"{ref_s:.2f} s", f"{n / ref_s:.0f} frames/s"))
        rows.append(("speed-up (b) / (a)", f"{ref_s / ours_s:.2f} x", "target >= 1"))

        for kind, label in (("ours", "(a)"), ("pydicom", "(b)")):
            m = _in_child(kind, big)
            rows.append((f"{label} peak RSS (subprocess) / pixel data", f"{m['maxrss'] / pixel_bytes:.2f} x",
                         f"{m['maxrss'] / 1e9:.2f} GB; {(m['maxrss'] - m['rss0']) / pixel_bytes:.2f} x above the imports"))  # fmt: skip
            rows.append((f"{label} tracemalloc peak / pixel data", f"{m['tracemalloc_peak'] / pixel_bytes:.3f} x",
                         f"{m['tracemalloc_peak'] / 1e6:.1f} MB"))  # fmt: skip
        big.unlink()

        nj = args.jpeg_frames
        lazy = replace(phantom, frames=LazyFrames(base, nj), frame_times_s=np.arange(nj) / 30.0)
        write_pullback(lazy, jpeg, transfer_syntax="jpeg-baseline")
        rows.append(("JPEG pullback", f"{nj} frames", f"{jpeg.stat().st_size / nj / 1e3:.1f} kB/frame"))
        for workers in (1, 2):
            t = time.perf_counter()
            decoded = read_pullback(jpeg, decode_workers=workers)
            seconds = time.perf_counter() - t
            error = float(np.abs(decoded.frames[:30].astype(float) - base).mean())
            rows.append((f"JPEG decode, {workers} thread(s)", f"{nj / seconds:.0f} frames/s",
                         f"mean abs error {error:.2f} grey levels; target >= 300"))  # fmt: skip
    finally:
        for p in (big, jpeg):
            if p.exists():
                p.unlink()

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")
    print(f"(cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
