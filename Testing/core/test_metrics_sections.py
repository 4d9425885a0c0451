"""The sections of ``compute_metrics`` one at a time, on area profiles with a known answer.

The profiles are written as per-frame tables (areas, burden, arcs) rather than contours, so each
expected value is plain arithmetic on the table.
"""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.metrics import (
    MetricParams,
    _calcium,
    _coronary_flags,
    _device_sizing,
    _lesions,
    _lumen_outside_flags,
    _main_segment,
    _region_of_interest,
    _stent,
    _venous,
    _volumes,
)

NAN = np.nan


def table(s: np.ndarray, **columns: np.ndarray) -> dict[str, np.ndarray]:
    """A per-frame table of frames 0..N-1 at arc lengths ``s``; missing columns are NaN."""
    n = len(s)
    out = {"frame": np.arange(n), "arc_length_mm": np.asarray(s, float)}
    for key in ("lumen_area_mm2", "vessel_area_mm2", "calcium_arc_deg", "stent_area_mm2"):
        out[key] = np.asarray(columns.get(key, np.full(n, NAN)), float)
    with np.errstate(invalid="ignore"):
        out["plaque_burden_percent"] = 100.0 * (1.0 - out["lumen_area_mm2"] / out["vessel_area_mm2"])
    for key, value in columns.items():
        out.setdefault(key, np.asarray(value, float))
    return out


def lesion_vessel() -> dict[str, np.ndarray]:
    """0..40 mm every 0.5 mm; vessel 20 mm^2 (22 at the MLA); lumen 8 mm^2 (burden 60 %) over
    15..25 mm with its minimum 5 mm^2 at 20 mm; outside the lesion the lumen rises away from it,
    to 15 mm^2 at 5 mm (distal) and 14.5 mm^2 at 35 mm (proximal), the largest lumens within the
    10 mm reference search; burden there is below 40 %."""
    s = np.arange(81) * 0.5
    lumen = np.where(s < 15, 14.0 + 0.1 * (15 - s), 14.0 + 0.05 * (s - 25))
    lumen = np.where((s >= 15) & (s <= 25), 8.0, lumen)
    lumen[s == 20] = 5.0
    vessel = np.full(len(s), 20.0)
    vessel[s == 20] = 22.0
    return table(s, lumen_area_mm2=lumen, vessel_area_mm2=vessel)


def test_lesion_extent_mla_and_references():
    params = MetricParams()
    along = _region_of_interest(lesion_vessel(), (), params)
    [lesion] = _lesions(along, params)
    assert (lesion["start_mm"], lesion["end_mm"], lesion["length_mm"]) == (15.0, 25.0, 10.0)
    assert (lesion["mla_mm2"], lesion["mla_frame"], lesion["max_burden_percent"]) == (5.0, 40, 100 * (1 - 5 / 22))
    refs = lesion["references"]
    assert (refs["distal"]["arc_length_mm"], refs["distal"]["lumen_area_mm2"]) == (5.0, 15.0)
    assert (refs["proximal"]["arc_length_mm"], refs["proximal"]["lumen_area_mm2"]) == (35.0, 14.5)
    stenosis = lesion["area_stenosis_percent"]
    assert stenosis["proximal"] == pytest.approx(100 * (1 - 5 / 14.5))
    assert stenosis["distal"] == pytest.approx(100 * (1 - 5 / 15))
    assert stenosis["largest"] == stenosis["distal"]
    assert stenosis["mean"] == pytest.approx(100 * (1 - 5 / 14.75))
    assert lesion["diameter_stenosis_percent"]["distal"] == pytest.approx(100 * (1 - np.sqrt(5 / 15)))
    # the EEM at the MLA (22) over the mean reference EEM (20): expansive remodeling
    assert lesion["remodeling_index"] == pytest.approx(1.1)
    assert lesion["remodeling"] == "positive"
    # plaque volume: trapezoid of (vessel - lumen) over 15..25 mm (12 mm^2, 17 at 20 mm +-0.5)
    assert lesion["plaque_volume_mm3"] == pytest.approx(12.0 * 10 + (17 - 12) * 0.5)


def test_main_segment_is_the_lesion_else_the_mla_frame():
    params = MetricParams()
    along = _region_of_interest(lesion_vessel(), (), params)
    lesions = _lesions(along, params)
    main, stenosis_mla = _main_segment(along, lesions, 40, params)
    assert main["main_lesion_id"] == 1 and stenosis_mla == 5.0
    assert main["references"] == lesions[0]["references"]
    assert "of the lesion with the smallest lumen" in main["reference_definition"]

    main, stenosis_mla = _main_segment(along, [], 40, params)
    assert main["main_lesion_id"] is None and stenosis_mla == 5.0
    # references around the single MLA frame: the largest lumens within 10 mm on each side
    assert main["references"]["distal"]["arc_length_mm"] == 10.0  # 14.5 mm^2 at 10 mm
    assert main["references"]["proximal"]["arc_length_mm"] == 30.0  # 14.25 mm^2 at 30 mm
    assert "the minimum lumen area (no lesion found)" in main["reference_definition"]


def test_volumes_pav_tav_and_missing_vessel_flag():
    s = np.arange(11.0)
    params = MetricParams()
    along = _region_of_interest(table(s, lumen_area_mm2=np.full(11, 10.0), vessel_area_mm2=np.full(11, 20.0)),
                                (), params)  # fmt: skip
    summary, flags = _volumes(along, params)
    assert summary["volumes_mm3"] == {"lumen": 100.0, "vessel": 200.0, "plaque": 100.0}
    assert summary["pav_percent"] == 50.0
    assert summary["tav_norm_mm3"] == 100.0  # 100 mm^3 over 10 mm, per 10 mm
    assert flags == []

    summary, _ = _volumes(along, MetricParams(tav_cohort_median_frames=30))
    assert summary["tav_norm_mm3"] == 300.0  # 10 mm^2 of plaque per frame x 30 frames

    vessel = np.full(11, 20.0)
    vessel[[3, 7]] = NAN
    along = _region_of_interest(table(s, lumen_area_mm2=np.full(11, 10.0), vessel_area_mm2=vessel), (), params)
    summary, [flag] = _volumes(along, params)
    assert summary["volumes_mm3"] == {"lumen": 100.0, "vessel": None, "plaque": None}
    assert summary["pav_percent"] == 50.0
    assert (flag["rule"], flag["frames"]) == ("vessel_missing", [3, 7])


def test_calcium_length_counts_each_frame_cell():
    s = np.array([0.0, 1.0, 2.0, 4.0])
    along = _region_of_interest(table(s, calcium_arc_deg=[0.0, 90.0, 180.0, 0.0]), (), MetricParams())
    # frame 1 covers 0.5..1.5 mm, frame 2 1.5..3.0 mm
    assert _calcium(along) == {"length_mm": 2.5, "max_arc_deg": 180.0, "frames": 2}


def test_stent_expansion_edge_burden_and_flags():
    columns = lesion_vessel()
    s = columns["arc_length_mm"]
    stent = np.where((s >= 15) & (s <= 25), 8.0, NAN)
    stent[s == 20] = 7.0
    columns["stent_area_mm2"] = stent
    params = MetricParams()
    along = _region_of_interest(columns, (), params)
    result, flags = _stent(along, params)
    assert (result["start_mm"], result["end_mm"], result["min_area_mm2"], result["min_area_frame"]) == (
        15.0, 25.0, 7.0, 40,
    )  # fmt: skip
    assert result["expansion_percent"] == pytest.approx(100 * 7 / 14.75)
    # largest burden within 5 mm outside each edge: next to the lesion (lumen 14 and 14.05)
    assert result["edge_burden_percent"]["proximal"] == pytest.approx(100 * (1 - 14.025 / 20))
    assert result["edge_burden_percent"]["distal"] == pytest.approx(100 * (1 - 14.05 / 20))
    assert [f["rule"] for f in flags] == ["stent_expansion_below_80"]
    assert _stent(_region_of_interest(lesion_vessel(), (), params), params) == (None, [])


def test_device_sizing_rounds_to_the_nearest_size():
    per_frame = table(np.arange(3.0))
    per_frame.update(
        vessel_min_diameter_mm=np.array([3.0, 4.1, 5.0]), vessel_max_diameter_mm=np.array([3.2, 4.3, 5.0]),
        lumen_min_diameter_mm=np.array([2.0, 3.3, 4.0]), lumen_max_diameter_mm=np.array([2.2, 3.5, 4.0]),
    )  # fmt: skip
    sizing = _device_sizing({"proximal": {"frame": 1}, "distal": None}, per_frame, MetricParams())
    assert sizing["distal"] is None
    prox = sizing["proximal"]
    assert prox["vessel_mean_diameter_mm"] == pytest.approx(4.2)
    assert prox["lumen_mean_diameter_mm"] == pytest.approx(3.4)
    assert (prox["balloon_diameter_mm"], prox["stent_diameter_mm"]) == (4.0, 3.5)


def test_venous_stenosis_against_normal_and_reference():
    assert _venous(50.0, 80.0, MetricParams()) == (None, [])
    params = MetricParams(vein_segment="common_iliac")  # normal 200 mm^2
    venous, flags = _venous(50.0, 60.0, params)
    assert venous["stenosis_vs_normal_percent"] == 75.0
    assert venous["stenosis_vs_reference_percent"] == 60.0
    assert [f["rule"] for f in flags] == ["venous_stenosis_vs_normal_50", "venous_stenosis_vs_reference_50"]
    _, flags = _venous(150.0, 40.0, params)  # 25 % against the normal, 40 % against the reference
    assert flags == []


def test_coronary_flags_thresholds():
    mla = {"area_mm2": 3.9, "frame": 7, "arc_length_mm": 12.0}
    flags = _coronary_flags(mla, 71.0, MetricParams())
    assert [f["rule"] for f in flags] == ["mla_below_4mm2", "area_stenosis_above_70"]
    assert _coronary_flags({**mla, "area_mm2": 4.0}, 70.0, MetricParams()) == []
    assert _coronary_flags(mla, 71.0, MetricParams(vein_segment="common_iliac")) == []
    assert _coronary_flags(mla, 71.0, MetricParams(coronary_flags=False)) == []


def test_lumen_outside_flag_lists_frames_beyond_tolerance():
    excess = np.array([0.0, 0.005, 0.3, NAN, 0.02])
    [flag] = _lumen_outside_flags(excess, np.array([10, 11, 12, 13, 14]), MetricParams())
    assert flag["frames"] == [12, 14]
    assert "by up to 0.30 mm on 2 frame(s): 12, 14" in flag["message"]
    assert _lumen_outside_flags(np.zeros(3), np.arange(3), MetricParams()) == []
