"""A run's options back from its recorded parameters, and frames.csv read back by frame."""

from __future__ import annotations

import csv

from IVUSReconstructLib.pipeline import RunOptions, read_frames_csv


def test_run_options_round_trip_through_summary_parameters():
    options = RunOptions(
        pixel_spacing_mm=0.026, frame_rate_hz=30.0, start_mm=2.5, centerline_order="proximal-first",
        mirror=True, render_size_px=(800, 500), seed=3, territory="coronary",
    )  # fmt: skip
    parameters = options.as_json() | {"metric_params": {"mla_min": 1}, "software": "x"}
    back = RunOptions.from_parameters(parameters)
    assert back == options
    assert back.render_size_px == (800, 500) and back.metric_params is None
    assert RunOptions.from_parameters({}) == RunOptions()


def test_read_frames_csv_by_frame_index(tmp_path):
    path = tmp_path / "frames.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "x_mm", "lumen_area_mm2"])
        writer.writerow(["3", "1.5", "4.25"])
        writer.writerow(["10.0", "", "nan"])
    rows = read_frames_csv(path)
    assert sorted(rows) == [3, 10]
    assert rows[3]["lumen_area_mm2"] == "4.25" and rows[10]["x_mm"] == ""
