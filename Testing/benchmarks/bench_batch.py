"""Throughput of ``ivus-reconstruct batch``: 2 local workers vs 1 on a cohort of phantom cases.

A plain script (not collected by pytest)::

    python Testing/benchmarks/bench_batch.py [--cases 20] [--length-mm 4] [--size-px 128] [--workdir DIR]

Prints cases per minute for 1 and 2 workers and their ratio (target >= 1.7 on 2 idle cores).
The phantoms are made once; each batch runs into a fresh output folder (no reuse), through the
same command line users run, so the figures include cluster start-up.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRESETS = ("coronary", "femoropopliteal", "coronary", "iliac-vein")


def make_cohort(root: Path, n_cases: int, length_mm: float, size_px: int, gating: str) -> Path:
    rows = []
    for i in range(n_cases):
        cid = f"case{i:03d}"
        folder = root / "cases" / cid
        if not (folder / "pullback.dcm").exists():
            preset = PRESETS[i % len(PRESETS)]
            cmd = [sys.executable, "-m", "IVUSReconstructLib.cli", "phantom", "--preset", preset, "--seed", str(i),
                   "--length-mm", str(length_mm), "--size-px", str(size_px), "--out", str(folder)]  # fmt: skip
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows.append({"id": cid, "pullback": f"cases/{cid}/pullback.dcm",
                     "centerline": f"cases/{cid}/centerline.mrk.json", "gating": gating})  # fmt: skip
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


def time_batch(manifest: Path, out: Path, workers: int) -> tuple[float, int, float]:
    """Wall time of the whole command, cases done, and the batch's own rate (cases/min from the
    first submission to the last result: cluster start-up excluded)."""
    t0 = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "IVUSReconstructLib.cli",
        "batch",
        str(manifest),
        "--out",
        str(out),
        "--workers",
        str(workers),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"batch with {workers} worker(s) failed: exit {proc.returncode}")
    doc = json.loads((out / "cohort.json").read_text())
    n = int(doc["n_ok"])
    rates = re.findall(r"; ([0-9.]+) cases/min; cohort", proc.stderr)
    case_s = sum(float(x) for x in re.findall(r" done \(([0-9.]+) s\)", proc.stderr))
    # cases in flight on average: ~= workers when the batch keeps every worker busy, whatever
    # else the machine runs (other load shows up as longer cases instead)
    print(
        f"  {workers} worker(s): {case_s / elapsed:.2f} cases in flight on average, {case_s / max(n, 1):.2f} s per case"
    )
    return elapsed, int(doc["n_ok"]), float(rates[-1]) if rates else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--length-mm", type=float, default=4.0)
    ap.add_argument("--size-px", type=int, default=128)
    ap.add_argument("--gating", default="image", choices=("none", "image"))
    ap.add_argument("--workdir", type=Path, help="keep phantoms here (default: a temporary folder)")
    args = ap.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-batch-"))
    root.mkdir(parents=True, exist_ok=True)
    manifest = make_cohort(root, args.cases, args.length_mm, args.size_px, args.gating)
    stamp = time.strftime("%H%M%S")
    print(
        f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work skews the ratio)"
    )
    results = {}
    for workers in (1, 2):
        elapsed, n_ok, rate = time_batch(manifest, root / f"out-{workers}w-{stamp}", workers)
        results[workers] = (elapsed, rate)
        print(
            f"{workers} worker(s): {n_ok}/{args.cases} cases in {elapsed:.1f} s "
            f"= {60.0 * n_ok / elapsed:.1f} cases/min with start-up, {rate:.1f} cases/min batch rate"
        )
    print(
        f"throughput ratio 2 workers / 1 worker: {results[1][0] / results[2][0]:.2f} with start-up, "
        f"{results[2][1] / results[1][1]:.2f} batch rate (target >= 1.7)"
    )
    print(f"(cases: {args.length_mm} mm, {args.size_px} px, gating {args.gating}; data in {root})")


if __name__ == "__main__":
    main()
