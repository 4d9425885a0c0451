"""A real gated coronary pullback (contours, no pixels) on its real CCTA centerline, end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from IVUSReconstructLib.cli import main


def _run_real(root, stack: str, out, *extra: str) -> int:
    """``run`` on a contour stack of the AAOCA dataset and its CCTA centerline."""
    return main(
        [
            "run",
            "--contours",
            str(root / stack / "diastolic_contours.csv"),
            "--centerline",
            str(root / "centerline_raw.csv"),
            "--centerline-order",
            "proximal-first",
            "--align",
            "lumen-centroid",
            *extra,
            "--out",
            str(out),
        ]
    )


@pytest.fixture(scope="module")
def ivus_full_run(real_data, tmp_path_factory):
    root = real_data / "aaoca_ivus_ccta"
    out = tmp_path_factory.mktemp("real") / "run"
    code = _run_real(root, "ivus_full", out)
    assert code == 0
    return out


def test_exactly_the_contoured_frames_are_analysed(ivus_full_run):
    with open(ivus_full_run / "frames.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 32  # 32 diastolic frames with lumen and EEM (SOURCE.md)
    summary = json.loads((ivus_full_run / "summary.json").read_text())
    assert summary["inputs"]["analysed_frames"] == {"value": 32, "source": "frames in --contours"}
    assert summary["inputs"]["arc_length"]["source"] == "contour z_mm"


def test_plaque_area_non_negative_and_lumen_inside_vessel(ivus_full_run):
    with open(ivus_full_run / "frames.csv") as fh:
        rows = list(csv.DictReader(fh))
    plaque = [float(r["plaque_area_mm2"]) for r in rows]
    assert min(plaque) >= 0.9  # measured 1.13 mm2 at the thinnest frame
    summary = json.loads((ivus_full_run / "summary.json").read_text())
    assert "lumen_outside_vessel" not in {f["rule"] for f in summary["flags"]}


def test_lesion_table_and_references(ivus_full_run):
    summary = json.loads((ivus_full_run / "summary.json").read_text())
    assert len(summary["lesions"]) == 1
    lesion = summary["lesions"][0]
    assert lesion["mla_mm2"] == pytest.approx(1.88, abs=0.01)
    assert lesion["length_mm"] == pytest.approx(12.0, abs=0.7)  # one frame spacing ~0.65 mm
    ref = summary["references"]["proximal"]
    assert ref["lumen_area_mm2"] == pytest.approx(6.77, abs=0.01)
    assert summary["area_stenosis_percent"]["proximal"] == pytest.approx((1 - 1.8775 / 6.7705) * 100, abs=0.1)
    rules = {f["rule"] for f in summary["flags"]}
    assert {"mla_below_4mm2", "area_stenosis_above_70"} <= rules
    with open(ivus_full_run / "lesions.csv") as fh:
        lesions = list(csv.DictReader(fh))
    assert len(lesions) == 1 and float(lesions[0]["mla_mm2"]) == pytest.approx(1.8775, abs=1e-3)


def test_landmark_pins_the_stack_and_reports_its_residual(real_data, tmp_path):
    """ivus_rest with its ostium landmark (SOURCE.md 'main' point, gated frame 384 at z 24.54 mm):
    the landmark frame lands at the centerline point nearest 'main', and summary.json says so."""
    root = real_data / "aaoca_ivus_ccta"
    main_point = [12.2605, -201.3643, 1751.0554]
    landmarks = tmp_path / "landmarks.json"
    landmarks.write_text(
        json.dumps(
            {
                "format": "ivus-landmarks",
                "version": 1,
                "coordinate_system": "RAS",
                "landmarks": [{"frame": 384, "point": main_point, "kind": "ostium"}],
            }
        )
    )
    out = tmp_path / "run"
    code = _run_real(root, "ivus_rest", out, "--landmarks", str(landmarks))
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    residual = summary["inputs"]["landmarks"]["residuals"][0]
    assert summary["inputs"]["landmarks"]["n"] == 1
    with open(out / "frames.csv") as fh:
        rows = {int(r["frame"]): r for r in csv.DictReader(fh)}
    landed = np.array([float(rows[384][k]) for k in ("x_mm", "y_mm", "z_mm")])
    # the plane origin of the landmark frame is the centerline point nearest 'main'
    assert np.linalg.norm(landed - main_point) == pytest.approx(
        residual["distance_to_centerline_mm"], abs=0.05
    )
    assert float(rows[384]["arc_length_mm"]) == pytest.approx(residual["arc_length_mm"], abs=1e-3)
