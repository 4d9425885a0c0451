"""Outputs of long runs: every stage timed in summary.json, frames.csv cells as before."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.pipeline import _csv_value, frames_table, run_pipeline, write_outputs

STAGES = ("gating", "segmentation", "placement", "metrics", "mesh")
OUTPUTS = ("write_meshes", "labelmap", "write_labelmap", "write_contours", "write_tables", "render", "report")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    ph = make_phantom("femoropopliteal", seed=5, length_mm=6.0, size_px=32)
    result = run_pipeline(contours=ph.truth, centerline=ph.centerline)
    out = tmp_path_factory.mktemp("run") / "out"
    write_outputs(result, out)
    return result, out


def test_summary_times_every_stage_and_output(written):
    _, out = written
    timings = json.loads((out / "summary.json").read_text())["timings_s"]
    assert list(timings) == [*STAGES, *OUTPUTS]
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())


def test_frames_csv_cells_are_the_per_cell_formatting(written):
    """The column-at-a-time formatting gives the cells _csv_value gives one by one."""
    result, out = written
    header, rows = frames_table(result)
    per_frame = result.metrics.per_frame
    poses = result.poses
    pose = {"x_mm": poses.origin_ras_mm[:, 0], "y_mm": poses.origin_ras_mm[:, 1], "z_mm": poses.origin_ras_mm[:, 2],
            "nx": poses.normal_ras[:, 0], "ny": poses.normal_ras[:, 1], "nz": poses.normal_ras[:, 2],
            "placement_uncertainty_mm": poses.uncertainty_mm,
            # each frame's provenance; contours from a file that does not say leave it empty
            "source": np.array([f.source or "" for f in result.contours.frames], dtype=object)}  # fmt: skip
    expected = [
        [_csv_value((pose[h] if h in pose else np.asarray(per_frame[h]))[i]) for h in header]
        for i in range(len(rows))
    ]
    assert rows == expected
    assert len(rows) == len(result.contours.frames) and "" in {
        c for r in rows for c in r if isinstance(c, str)
    }
    with (out / "frames.csv").open(newline="") as f:
        on_disk = list(csv.reader(f))
    assert on_disk[0] == header and on_disk[1:] == [[str(c) for c in r] for r in rows]
