"""Every broken input of the test corpus, run as a user would: one process per case.

A plain script (not collected by pytest)::

    PYTHONPATH=IVUSReconstruct:Testing python Testing/benchmarks/bench_bad_inputs.py [--only ID ...]

For each case of Testing/core/test_input_corruptions.py (damaged DICOMs, contours, centerlines,
options, DICOM folders, 3D images, frame folders) it builds the input in a fresh folder and runs
``ivus-reconstruct run ... --out OUT`` in a child process, then checks what the issue asks of a
refused input: exit code 2, one line on stderr, no traceback, nothing left in the output place,
and reports the child's peak resident memory (``wait4`` rusage). Prints one line per case and
a summary: how many passed every check, and the largest peak memory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from core import test_input_corruptions as corpus

from IVUSReconstructLib.io.dicom import write_pullback
from IVUSReconstructLib.phantom import make_phantom

RUN = "import sys; from IVUSReconstructLib.cli import main; sys.exit(main(sys.argv[1:]))"


def _cases(phantom, valid: dict[str, bytes]):
    """(id, build) where build(folder) makes the inputs and returns the command-line arguments."""
    for case_id, syntax, damage, _ in corpus.DICOM_CASES:

        def build(folder: Path, syntax=syntax, damage=damage) -> list[str]:
            path = folder / "pullback.dcm"
            path.write_bytes(valid[syntax])
            damage(path)
            return [str(path)]

        yield case_id, build
    for case_id, option, make, expected in corpus.OTHER_CASES:

        def build(folder: Path, option=option, make=make, expected=expected) -> list[str]:
            pullback = folder / "pullback.dcm"
            pullback.write_bytes(valid["explicit-little"])
            bad = folder / ("contours.json" if option == "contours" else "centerline.csv")
            if option == "centerline" and ("controlPoints" in expected or "coordinateSystem" in expected):
                bad = folder / "centerline.mrk.json"
            make(bad)
            return [str(pullback), f"--{option}", str(bad)]

        yield case_id, build
    for case_id, args, _ in corpus.OPTION_CASES:

        def build(folder: Path, args=args) -> list[str]:
            pullback = folder / "pullback.dcm"
            pullback.write_bytes(valid["explicit-little"])
            return [str(pullback), *args]

        yield case_id, build
    for case_id, make in corpus.FORM_CASES:

        def build(folder: Path, make=make) -> list[str]:
            pullback, extra, _, _ = make(folder, phantom)
            return [str(pullback), *extra]

        yield case_id, build


def _run(args: list[str], out: Path) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MB) of one child process."""
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-c", RUN, "run", *args, "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return child.returncode, err.read().decode("utf-8", "replace"), usage.ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case ids to run (default: all)")
    options = parser.parse_args()
    phantom = make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        valid = {
            syntax: write_pullback(phantom, root / f"{syntax}.dcm", transfer_syntax=syntax).read_bytes()
            for syntax in ("explicit-little", "rle", "jpeg-ls", "jpeg-baseline")
        }
        results = []
        for case_id, build in _cases(phantom, valid):
            if options.only and case_id not in options.only:
                continue
            folder = root / case_id
            folder.mkdir()
            inputs = folder / "in"
            inputs.mkdir()
            args = build(inputs)
            before = sorted(p.name for p in folder.iterdir())
            code, err, peak_mb = _run(args, folder / "out")
            left = sorted(set(p.name for p in folder.iterdir()) - set(before))
            ok = code == 2 and err.count("\n") == 1 and "Traceback" not in err and not left
            results.append((case_id, ok, peak_mb))
            line = err.strip().replace(str(inputs) + "/", "")[:110]
            print(f"{case_id:34s} exit {code} {'ok  ' if ok else 'FAIL'} {peak_mb:6.0f} MB  {line}")
    n_ok = sum(ok for _, ok, _ in results)
    print()
    print(f"{n_ok} of {len(results)} cases: exit 2, one line, no traceback, nothing left in the output place")
    print(f"largest peak resident memory: {max(p for _, _, p in results):.0f} MB")


if __name__ == "__main__":
    main()
