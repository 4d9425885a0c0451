"""Compare two ``summary.json`` files, ignoring ``timings_s`` and path-like values.

Used to show that a restructuring leaves the results unchanged: the default demo's summary.json
before and after must be equal apart from the run's timings and where its files were.

    python Testing/benchmarks/compare_summary.py BASELINE/summary.json NEW/summary.json

Exit 0 when equal, 1 with one line per difference otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

IGNORED_KEYS = ("timings_s",)


def _is_path(value: Any) -> bool:
    return isinstance(value, str) and ("/" in value or "\\" in value) and not value.startswith("http")


def differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Every place where ``a`` and ``b`` differ, as ``key.path: a != b`` lines.

    Parameters
    ----------
    a, b : JSON values
        Two summary documents (or parts of them).
    where : str
        Key path of ``a`` and ``b`` in the whole document, for the messages.

    Returns
    -------
    list of str
        Empty when equal; keys of :data:`IGNORED_KEYS` and pairs of path strings are skipped.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED_KEYS:
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'new' if key in b else 'baseline'}")
                continue
            out += differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{where}[{i}]")]
    if _is_path(a) and _is_path(b):
        return []
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__)
        return 2
    docs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args]
    diffs = differences(*docs)
    for line in diffs:
        print(line)
    print("equal (timings_s and paths aside)" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
