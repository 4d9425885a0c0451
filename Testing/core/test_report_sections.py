"""The sections of ``build_report`` one at a time, on small summaries with known content."""

from __future__ import annotations

import re

from IVUSReconstructLib import report


def cells(html_text: str) -> dict[str, str]:
    """Shown value of every element that carries a ``data-key``."""
    return dict(re.findall(r"data-key=[\"']([^\"']+)[\"'][^>]*>([^<]*)<", html_text))


def test_key_results_cards_and_lesion_count():
    summary = {"mla": {"area_mm2": 2.345}, "area_stenosis_percent": {"largest": 61.2}, "pav_percent": 40.0,
               "volumes_mm3": {"plaque": 123.4}}  # fmt: skip
    page = report._key_results(summary, [{"id": 1}, {"id": 2}])
    shown = cells(page)
    assert shown["mla.area_mm2"] == report.format_value(2.345, "mla.area_mm2")
    assert shown["area_stenosis_percent.largest"] == report.format_value(61.2, "area_stenosis_percent.largest")
    assert shown["volumes_mm3.plaque"] == report.format_value(123.4, "volumes_mm3.plaque")
    assert "<div class='label'>Lesions</div><div class='value'>2</div>" in page


def test_flags_are_listed_and_escaped():
    page = report._flags_section([{"rule": "mla_below_4mm2", "message": "MLA 3.1 < 4 <b>"}])
    assert "<span class='flag'>mla_below_4mm2</span>: MLA 3.1 &lt; 4 &lt;b&gt;</li>" in page


def test_references_table_has_the_union_of_both_sides():
    summary = {
        "references": {
            "proximal": {"frame": 80, "lumen_area_mm2": 7.5},
            "distal": {"frame": 10, "lumen_area_mm2": 6.0, "vessel_area_mm2": 11.0},
        },
        "area_stenosis_percent": {"proximal": 60.0, "mean": 55.0},
        "diameter_stenosis_percent": {"proximal": 36.8},
    }
    page = report._references_and_stenosis(summary)
    references, stenosis = page.split("<h2>Stenosis</h2>")
    assert references.count("<th scope='row'>") == 2
    assert references.count("<th scope='col'>") == 4  # Reference, frame, lumen area, vessel area
    assert stenosis.count("<th scope='row'>") == 3
    shown = cells(page)
    assert shown["references.distal.vessel_area_mm2"] == report.format_value(11.0, "references.distal.vessel_area_mm2")
    assert "Area stenosis vs mean reference (%)" in page and "Diameter stenosis vs proximal reference (%)" in page
    assert "No reference frames." in report._references_and_stenosis({"references": {"proximal": None}})


def test_other_measurements_show_only_what_no_section_shows():
    assert report._other_measurements({"mla": {"area_mm2": 1.0}, "pav_percent": 30.0}) == ""
    page = report._other_measurements({"pav_percent": 30.0, "calcium": {"max_arc_deg": 120.0, "frames": [1, 2]}})
    assert "calcium.max_arc_deg" in cells(page) and "calcium.frames" not in page  # lists are left out


def test_volumes_and_mla_rows():
    summary = {"volumes_mm3": {"lumen": 100.0, "vessel": 250.0}, "tav_norm_mm3": 90.0,
               "mla": {"area_mm2": 2.0, "frame": 41, "extra": {"nested": 1}}}  # fmt: skip
    shown = cells(report._volumes_and_mla(summary))
    assert set(shown) == {"volumes_mm3.lumen", "volumes_mm3.vessel", "pav_percent", "tav_norm_mm3",
                          "mla.area_mm2", "mla.frame"}  # fmt: skip
