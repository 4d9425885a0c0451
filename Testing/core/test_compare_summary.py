"""Testing/benchmarks/compare_summary.py: what 'summary.json unchanged' means for a restructuring."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_summary.py"
spec = importlib.util.spec_from_file_location("compare_summary", SCRIPT)
compare_summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_summary)


def test_timings_and_paths_are_ignored_values_are_not():
    a = {"timings_s": {"render": 1.0}, "inputs": {"files": "/tmp/a/p.dcm"}, "mla": {"area_mm2": 3.1}}
    b = {"timings_s": {"render": 2.0}, "inputs": {"files": "/tmp/b/p.dcm"}, "mla": {"area_mm2": 3.1}}
    assert compare_summary.differences(a, b) == []
    b["mla"]["area_mm2"] = 3.2
    assert compare_summary.differences(a, b) == [".mla.area_mm2: 3.1 != 3.2"]
    assert compare_summary.differences({"x": [1, 2]}, {"x": [1]}) == [".x: 2 items != 1 items"]
    assert compare_summary.differences({"x": 1}, {}) == [".x: only in baseline"]
