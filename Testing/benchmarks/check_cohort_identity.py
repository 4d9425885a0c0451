"""Issue 10 must-show: a cohort through ``ivus-reconstruct batch`` equals single ``run`` s.

A plain script (not collected by pytest)::

    python Testing/benchmarks/check_cohort_identity.py [--cases 20] [--workers 2] [--length-mm 3]
        [--size-px 128] [--gating {none,image,ecg}] [--workdir DIR] [--keep]

Makes ``--cases`` phantoms (the three presets in turn, a different seed each), writes a manifest,
runs ``ivus-reconstruct batch MANIFEST --out DIR --workers N``, then one ``ivus-reconstruct run``
per case with the same inputs and options, and compares each case's ``summary.json`` byte for byte
after removing the top-level ``timings_s`` key only. Anything else that differs (a path, a float's
last digit) is reported, never ignored. Prints a table and the totals; exits 1 if any case differs
or is missing, 2 if a command fails.

By default the run options are the command's defaults (no ``--gating`` column/flag: image gating,
as a user running ``run`` without options gets); ``--gating`` sets the same value in both.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLI = "/tmp/venv/bin/ivus-reconstruct"
PRESETS = ("coronary", "femoropopliteal", "iliac-vein")
IGNORED_KEY = "timings_s"


ENV: dict[str, str] | None = None  # set by --freeze: every command runs a frozen copy of the package


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        print(f"FAILED: {what}: exit {proc.returncode}: {' '.join(cmd)}")
        raise SystemExit(2)
    return proc


def make_cohort(root: Path, n_cases: int, length_mm: float, size_px: int) -> list[dict[str, Any]]:
    """Phantoms under ``root/phantoms/<id>/``; presets cycle, seeds are 101, 102, ... (all distinct)."""
    cases = []
    for i in range(n_cases):
        preset, seed = PRESETS[i % len(PRESETS)], 101 + i
        cid = f"c{i:02d}-{preset}-s{seed}"
        folder = (root / "phantoms" / cid).resolve()
        cmd = [CLI, "phantom", "--preset", preset, "--seed", str(seed), "--length-mm", str(length_mm),
               "--size-px", str(size_px), "--out", str(folder)]  # fmt: skip
        _run(cmd, f"phantom {cid}")
        # absolute paths in the manifest and on the `run` command line: the same strings reach
        # the pipeline both ways, so a path that leaks into summary.json would still show up
        # only if batch and run treat it differently
        cases.append(
            {
                "id": cid,
                "preset": preset,
                "seed": seed,
                "pullback": str(folder / "pullback.dcm"),
                "centerline": str(folder / "centerline.mrk.json"),
            }
        )
    return cases


def write_manifest(path: Path, cases: list[dict[str, Any]], gating: str | None) -> Path:
    cols = ["id", "pullback", "centerline"] + (["gating"] if gating else [])
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for c in cases:
            w.writerow(
                {
                    **{k: c[k] for k in ("id", "pullback", "centerline")},
                    **({"gating": gating} if gating else {}),
                }
            )
    return path


def package_dir() -> Path:
    """The IVUSReconstructLib folder that the command runs (editable install: the working tree)."""
    python = Path(CLI).with_name("python")
    code = "import IVUSReconstructLib, pathlib; print(pathlib.Path(IVUSReconstructLib.__file__).parent)"
    return Path(_run([str(python), "-c", code], "locate IVUSReconstructLib").stdout.strip())


def source_snapshot(package: Path) -> dict[str, str]:
    """sha256 of each Python source of the package: other people edit the shared tree while this
    runs, and a stage edited between the batch and the single runs makes them differ for a reason
    that has nothing to do with ``batch``."""
    return {
        str(p.relative_to(package)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(package.rglob("*.py"))
    }


def changed_sources(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def _serialise(doc: Any) -> bytes:
    """As pipeline.write_outputs writes summary.json."""
    return (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8")


def strip_timings(raw: bytes, where: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes without the top-level ``timings_s`` key, and the parsed document without it.

    The key is removed by parsing and re-serialising with the writer's own settings; the script
    first checks that re-serialising the untouched document gives back the file byte for byte, so
    the removal changes nothing but that key.
    """
    doc = json.loads(raw)
    if _serialise(doc) != raw:
        print(f"NOTE: {where} does not round-trip through json.dumps(indent=2); comparing parsed values")
    doc.pop(IGNORED_KEY, None)
    return _serialise(doc), doc


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two JSON values differ (list items as ``[i]``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(p + (" (batch only)" if k in a else " (run only)"))
            else:
                out.extend(differing_keys(a[k], b[k], p))
        if not out and list(a) != list(b):
            out.append((prefix or "<root>") + " (key order)")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{prefix} (length {len(a)} vs {len(b)})"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differing_keys(x, y, f"{prefix}[{i}]")
        ]
    if type(a) is not type(b) or a != b:
        return [prefix or "<root>"]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--length-mm", type=float, default=3.0)
    ap.add_argument("--size-px", type=int, default=128)
    ap.add_argument("--gating", choices=("none", "image", "ecg"), default=None)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="default: a temporary folder, removed at the end"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument(
        "--no-freeze",
        dest="freeze",
        action="store_false",
        help="run the live (editable) package instead of a copy frozen at start: on a tree that others "
        "edit, the batch and the single runs may then run different code",
    )
    args = ap.parse_args(argv)

    root = Path(args.workdir or tempfile.mkdtemp(prefix="ivus-cohort-identity-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        global ENV
        if args.freeze:
            # PYTHONPATH comes before the editable-install finder, in this process's children and in
            # the Dask worker processes they spawn
            live = package_dir()
            frozen = root / "frozen"
            shutil.copytree(live, frozen / live.name, ignore=shutil.ignore_patterns("__pycache__"))
            ENV = dict(
                os.environ,
                PYTHONPATH=os.pathsep.join(filter(None, [str(frozen), os.environ.get("PYTHONPATH")])),
            )
        t0 = time.perf_counter()
        cases = make_cohort(root, args.cases, args.length_mm, args.size_px)
        manifest = write_manifest(root / "manifest.csv", cases, args.gating)
        t1 = time.perf_counter()
        print(f"{len(cases)} phantoms ({', '.join(PRESETS)}; seeds {cases[0]['seed']}-{cases[-1]['seed']}; "
              f"{args.length_mm:g} mm, {args.size_px} px) in {t1 - t0:.0f} s")  # fmt: skip

        package = package_dir()
        print(f"package: {package}" + (" (frozen copy of the working tree)" if args.freeze else " (live)"))
        if args.freeze and not str(package).startswith(str(root)):
            print("FAILED: the frozen copy is not the package the command imports")
            return 2
        snap0 = source_snapshot(package)
        batch_out = root / "batch"
        cmd = [CLI, "batch", str(manifest), "--out", str(batch_out), "--workers", str(args.workers)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        t2 = time.perf_counter()
        print(f"batch --workers {args.workers}: exit {proc.returncode} in {t2 - t1:.0f} s")
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])

        snap1 = source_snapshot(package)
        code = "from IVUSReconstructLib.batch import software_digest; print(software_digest())"
        digest = _run([str(Path(CLI).with_name("python")), "-c", code], "software digest").stdout.strip()
        workers_ran = {json.loads(p.read_text()).get("software") for p in batch_out.glob("cases/*/case.json")}
        if workers_ran != {digest}:
            print(f"WARNING: batch cases ran software {sorted(workers_ran)}, the single runs {digest}")
        gating = ["--gating", args.gating] if args.gating else []
        for c in cases:
            cmd = [CLI, "run", c["pullback"], "--centerline", c["centerline"], *gating,
                   "--out", str(root / "single" / c["id"])]  # fmt: skip
            _run(cmd, f"run {c['id']}")
        t3 = time.perf_counter()
        print(f"{len(cases)} single runs in {t3 - t2:.0f} s")
        snap2 = source_snapshot(package)
        edits = {
            "during the batch": changed_sources(snap0, snap1),
            "between the batch and the end of the single runs": changed_sources(snap1, snap2),
        }
        for when, names in edits.items():
            if names:
                print(f"WARNING: {package} sources changed {when}: {', '.join(names)}")
        if any(edits.values()):
            print(
                "WARNING: differences below may come from those edits, not from batch; rerun on a quiet tree"
            )

        rows = []
        for c in cases:
            b_path = batch_out / "cases" / c["id"] / "summary.json"
            s_path = root / "single" / c["id"] / "summary.json"
            if not b_path.is_file():
                err = batch_out / "cases" / f"{c['id']}.error.json"
                why = json.loads(err.read_text()).get("message", "") if err.is_file() else "no output"
                rows.append((c, False, f"batch summary.json missing: {why}"))
                continue
            b_bytes, b_doc = strip_timings(b_path.read_bytes(), b_path)
            s_bytes, s_doc = strip_timings(s_path.read_bytes(), s_path)
            same = b_bytes == s_bytes
            diff = "" if same else (", ".join(differing_keys(b_doc, s_doc)) or "formatting only")
            rows.append((c, same, diff))

        w = max(len(c["id"]) for c in cases)
        print()
        print(f"{'case':<{w}}  {'preset':<15} {'seed':>4}  identical  differing keys")
        for c, same, diff in rows:
            print(
                f"{c['id']:<{w}}  {c['preset']:<15} {c['seed']:>4}  {'yes' if same else 'no':<9}  {diff or '-'}"
            )
        n_same = sum(same for _, same, _ in rows)
        print()
        print(f"identical {n_same}/{len(rows)}, differing {len(rows) - n_same} "
              f"(summary.json byte for byte, '{IGNORED_KEY}' removed)")  # fmt: skip
        return 0 if n_same == len(rows) and proc.returncode == 0 else 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
