"""The summary as key/value rows, column units, and the MLA / reference markers (what the scene shows)."""

from __future__ import annotations

import numpy as np

from IVUSReconstructLib.metrics import flatten_rows, marker_points, marker_positions, unit_label


def test_flatten_rows_nests_dicts_and_lists_of_dicts():
    summary = {
        "mla": {"area_mm2": 2.5, "frame": 12},
        "lesions": [{"id": 1, "length_mm": 4.0}, {"id": 2, "length_mm": None}],
        "flags": [],
        "mode": "motor",
        "sizes": [1, 2],
    }
    assert flatten_rows(summary) == [
        ("mla.area_mm2", "2.5"),
        ("mla.frame", "12"),
        ("lesions[0].id", "1"),
        ("lesions[0].length_mm", "4.0"),
        ("lesions[1].id", "2"),
        ("lesions[1].length_mm", "null"),
        ("flags", "[]"),
        ("mode", "motor"),
        ("sizes", "[1, 2]"),
    ]
    assert flatten_rows({"x": np.float32(0.5)}) == [("x", "0.5")]  # numpy scalars as numbers


def test_unit_labels_from_column_names():
    units = [unit_label(c) for c in ("lumen_area_mm2", "volume_mm3", "arc_length_mm", "time_s",
                                     "plaque_burden_percent", "calcium_arc_deg", "frame", "lumen_eccentricity")]  # fmt: skip
    assert units == ["mm²", "mm³", "mm", "s", "%", "°", "", ""]


def test_markers_at_the_frames_plane_origins():
    summary = {
        "mla": {"area_mm2": 1.234, "frame": 7},
        "references": {"proximal": {"frame": 9}, "distal": {"frame": 2}},
    }
    assert marker_points(summary) == [
        ("MLA 1.23 mm2", 7, "minimal lumen area"),
        ("Proximal reference", 9, "proximal reference frame"),
        ("Distal reference", 2, "distal reference frame"),
    ]
    assert marker_points({"mla": {"frame": 3, "area_mm2": None}}) == [("MLA", 3, "minimal lumen area")]
    rows = {
        7: {"x_mm": "1.0", "y_mm": "2.0", "z_mm": "3.5"},
        9: {"x_mm": "", "y_mm": "2.0", "z_mm": "3.0"},  # no plane origin written
        2: {"x_mm": "nan", "y_mm": "0", "z_mm": "0"},
    }
    ((label, position, description),) = marker_positions(summary, rows)
    assert label == "MLA 1.23 mm2" and description == "minimal lumen area"
    assert position.tolist() == [1.0, 2.0, 3.5]
    assert marker_positions({}, rows) == []
