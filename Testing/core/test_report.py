"""Tests of the self-contained HTML report."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest

from IVUSReconstructLib import render, report

SUMMARY = {
    "version": "0.1.0",
    "volumes_mm3": {"lumen": 412.345, "vessel": 902.1149, "plaque": 489.7699},
    "pav_percent": 54.2911,
    "tav_norm_mm3": 81.6275,
    "mla": {"area_mm2": 1.7681, "frame": 84, "arc_length_mm": 33.9876},
    "references": {
        "proximal": {
            "frame": 114,
            "arc_length_mm": 45.61,
            "lumen_area_mm2": 9.0349,
            "vessel_area_mm2": 16.5,
        },
        "distal": {
            "frame": 54,
            "arc_length_mm": 22.78,
            "lumen_area_mm2": 9.0131,
            "vessel_area_mm2": 12.0049,
        },
    },
    "area_stenosis_percent": {"proximal": 80.43, "distal": 80.38, "largest": 80.43, "mean": -0.04},
    "diameter_stenosis_percent": {"proximal": 55.76, "distal": 55.71},
    "heart_rate_bpm": 71.44,
}
LESIONS = [
    {
        "start_frame": 60,
        "end_frame": 110,
        "start_arc_length_mm": 26.0,
        "end_arc_length_mm": 42.5,
        "length_mm": 16.5,
        "mla_mm2": 1.7681,
        "max_plaque_burden_percent": 80.06,
        "remodeling_index": 1.0234,
    }
]
FLAGS = [
    {"rule": "mla_below_threshold", "message": "MLA 1.77 mm² < 4.0 mm²"},
    {"rule": "area_stenosis", "message": "Area stenosis > 70% <script>alert(1)</script>"},
]
INPUTS = {
    "pullback_speed_mm_s": {"value": 0.5, "source": "IVUSPullbackRate (0018,3101)"},
    "pixel_spacing_mm": {"value": [0.0195, 0.0195], "source": "--pixel-spacing"},
    "acquisition": {"value": "motor", "source": "default"},
}
PARAMETERS = {
    "lesion_burden_threshold_percent": 40.0,
    "reference_window_mm": 10.0,
    "align": "catheter",
    "mirror": False,
    "tav_norm": {"length_mm": 10.0},
}


def _per_frame():
    arc = np.linspace(0.0, 60.0, 121)
    vessel = 15.0 + 2.0 * np.cos(arc / 9.0)
    lumen = 9.0 - 7.2 * np.exp(-(((arc - 34.0) / 5.0) ** 2))
    return {
        "frame": np.arange(121),
        "arc_length_mm": arc,
        "lumen_area_mm2": lumen,
        "vessel_area_mm2": vessel,
        "plaque_burden_percent": (vessel - lumen) / vessel * 100.0,
    }


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.keyed: list[tuple[str, str]] = []
        self._open_key: list[str | None] = []
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag in ("td", "th", "span"):
            self._open_key.append(attrs.get("data-key"))
            self._text = []

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th", "span") and self._open_key:
            key = self._open_key.pop()
            if key:
                self.keyed.append((key, "".join(self._text).strip()))


def _lookup(key):
    root = {"lesions": LESIONS, "inputs": INPUTS, "parameters": PARAMETERS, **SUMMARY}
    node = root
    for part in key.split("."):
        if isinstance(node, list):
            node = node[int(part)]
        elif part in node:
            node = node[part]
        else:  # flattened parameter names keep their dots
            return None
    return node


@pytest.fixture(scope="module")
def page():
    png = render.png_bytes(np.full((8, 12, 3), 200, dtype=np.uint8))
    return report.build_report(
        summary=SUMMARY,
        per_frame=_per_frame(),
        lesions=LESIONS,
        flags=FLAGS,
        images={"3D view & colour bar": png},
        inputs=INPUTS,
        parameters=PARAMETERS,
        version="0.1.0",
    )


@pytest.fixture(scope="module")
def parsed(page):
    collector = _Collector()
    collector.feed(page)
    return collector


def test_page_is_self_contained(page, parsed):
    links = [
        (tag, name, value)
        for tag, attrs in parsed.tags
        for name, value in attrs.items()
        if name in ("src", "href", "xlink:href", "data", "action") and value
    ]
    assert all(not re.match(r"\s*(https?:)?//", value) for _, _, value in links)
    images = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert len(images) == 1
    assert images[0].startswith("data:image/png;base64,")
    assert not any(tag in ("script", "link", "iframe", "object") for tag, _ in parsed.tags)
    assert "@import" not in page
    # Only in-page references (SVG clip paths) or data URIs.
    assert all(target in ("#", "d") for target in re.findall(r"url\(\s*['\"]?(.)", page))
    assert sum(1 for tag, _ in parsed.tags if tag == "svg") == 1


def test_every_number_equals_the_summary_at_its_precision(parsed):
    checked = 0
    for key, text in parsed.keyed:
        value = _lookup(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - value) <= 0.5 * 10.0**-decimals + 1e-9, (key, text, value)
        checked += 1
    shown = {key for key, _ in parsed.keyed}
    required = {
        "volumes_mm3.lumen",
        "volumes_mm3.vessel",
        "volumes_mm3.plaque",
        "pav_percent",
        "tav_norm_mm3",
        "mla.area_mm2",
        "mla.frame",
        "mla.arc_length_mm",
        "references.proximal.frame",
        "references.proximal.lumen_area_mm2",
        "references.distal.vessel_area_mm2",
        "area_stenosis_percent.largest",
        "area_stenosis_percent.mean",
        "diameter_stenosis_percent.distal",
        "lesions.0.mla_mm2",
        "lesions.0.remodeling_index",
        "heart_rate_bpm",
        "inputs.pullback_speed_mm_s.value",
        "parameters.lesion_burden_threshold_percent",
    }
    assert required <= shown
    assert checked >= 30


def test_precision_and_values_shown(parsed):
    shown = dict(parsed.keyed)
    assert shown["mla.area_mm2"] == "1.77"
    assert shown["volumes_mm3.lumen"] == "412.3"
    assert shown["pav_percent"] == "54.3"
    assert shown["mla.frame"] == "84"
    assert shown["area_stenosis_percent.mean"] == "0.0"  # not "-0.0"
    assert shown["lesions.0.remodeling_index"] == "1.023"
    assert shown["inputs.pixel_spacing_mm.value"] == "0.0195, 0.0195"


def test_strings_are_escaped_and_provenance_shown(page):
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "3D view &amp; colour bar" in page
    assert "IVUSPullbackRate (0018,3101)" in page
    assert report.DISCLAIMER in page
    assert "IVUSReconstruct 0.1.0" in page
    assert "@page" in page and "@media print" in page


def test_report_is_deterministic(page):
    png = render.png_bytes(np.full((8, 12, 3), 200, dtype=np.uint8))
    again = report.build_report(
        summary=SUMMARY,
        per_frame=_per_frame(),
        lesions=LESIONS,
        flags=FLAGS,
        images={"3D view & colour bar": png},
        inputs=INPUTS,
        parameters=PARAMETERS,
        version="0.1.0",
    )
    assert again == page


def test_empty_inputs_still_build():
    page = report.build_report(
        summary={},
        per_frame={},
        lesions=[],
        flags=[],
        images={},
        inputs={},
        parameters={},
        version="0.0",
    )
    assert "No per-frame data." in page
    assert "No flags raised." in page
    assert "<img" not in page


@pytest.mark.parametrize(
    ("value", "key", "text"),
    [
        (2.346, "mla.area_mm2", "2.35"),
        (412.36, "volumes_mm3.lumen", "412.4"),
        (-0.01, "pav_percent", "0.0"),
        (12.0, "references.distal.frame", "12"),
        (None, "mla.area_mm2", "—"),
        (float("nan"), "pav_percent", "—"),
        (True, "parameters.mirror", "yes"),
        (0.000123456, "parameters.tolerance", "0.0001235"),
        (33.9876, "mla.arc_length_mm", "33.99"),
    ],
)
def test_format_value(value, key, text):
    assert report.format_value(value, key) == text


def test_cut_offsets_of_an_offset_circle():
    a = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    circle = np.column_stack([0.5 + 2.0 * np.cos(a), 2.0 * np.sin(a)])
    plus, minus = report._cut_offsets_mm(circle, 0.0)
    assert plus == pytest.approx(2.5, abs=1e-3) and minus == pytest.approx(-1.5, abs=1e-3)
    # Along y the circle is crossed at +-sqrt(4 - 0.25).
    plus, minus = report._cut_offsets_mm(circle, 90.0)
    assert plus == pytest.approx(np.sqrt(3.75), abs=1e-3) and minus == pytest.approx(-np.sqrt(3.75), abs=1e-3)
    # An ellipse is narrowest along its short axis (y here).
    ellipse = np.column_stack([3.0 * np.cos(a), 1.0 * np.sin(a)])
    assert report._narrowest_angle_deg(ellipse) == 90.0


def _lmode_inputs():
    from IVUSReconstructLib.types import ContourSet, FrameContours

    n, size = 12, 81
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - 40, xx - 40) * 0.1
    radii = 2.0 - 0.8 * np.exp(-(((np.arange(n) - 6) / 2.0) ** 2))
    frames = np.stack([((r > rl) & (r < 3.5)).astype(np.uint8) * 200 for rl in radii])
    a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    contours = ContourSet(
        frames=tuple(
            FrameContours(
                index=i,
                lumen=np.column_stack([rl * np.cos(a), rl * np.sin(a)]),
                vessel=3.5 * np.column_stack([np.cos(a), np.sin(a)]),
            )
            for i, rl in enumerate(radii)
        )
    )
    per_frame = {"frame": np.arange(n), "arc_length_mm": np.arange(n) * 0.5}
    summary = {
        "mla": {"frame": 6, "area_mm2": float(np.pi * radii[6] ** 2), "arc_length_mm": 3.0},
        "references": {"distal": {"frame": 1, "arc_length_mm": 0.5, "lumen_area_mm2": 12.0}},
    }
    return frames, contours, per_frame, summary


def test_pullback_figures_in_the_report():
    frames, contours, per_frame, summary = _lmode_inputs()
    figures = report.pullback_figures(
        frames,
        contours=contours,
        per_frame=per_frame,
        pixel_spacing_mm=(0.1, 0.1),
        catheter_center_px=(40.0, 40.0),
        summary=summary,
        lesions=[{"start_mm": 1.5, "end_mm": 4.5}],
    )
    assert len(figures) == 2
    lmode, gallery = figures.values()
    assert lmode.startswith("<svg") and "Arc length from the distal end (mm)" in lmode
    # The gallery shows the distal reference and the MLA frame (no proximal reference here).
    assert "Distal reference" in gallery and "MLA" in gallery and "Proximal reference" not in gallery
    assert f"{summary['mla']['area_mm2']:.2f} mm²" in gallery
    again = report.pullback_figures(
        frames, contours=contours, per_frame=per_frame, pixel_spacing_mm=(0.1, 0.1),
        catheter_center_px=(40.0, 40.0), summary=summary, lesions=[{"start_mm": 1.5, "end_mm": 4.5}],
    )  # fmt: skip
    assert again == figures  # deterministic SVG
    page = report.build_report(
        summary=SUMMARY, per_frame=_per_frame(), lesions=LESIONS, flags=FLAGS, images={}, inputs=INPUTS,
        parameters=PARAMETERS, version="0.1.0", figures=figures,
    )  # fmt: skip
    assert page.count("<svg") == 3  # profile plot + L-mode + gallery
    # Images are inline data URIs; the only URLs are XML namespace names (never fetched).
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert page.count("data:image/png;base64,") >= 3
    # Contour-only runs: no frames, no figures.
    assert report.pullback_figures(None, contours=contours, per_frame=per_frame, pixel_spacing_mm=None,
                                   catheter_center_px=None, summary=summary) == {}  # fmt: skip


def test_least_confident_frames_come_first_in_the_report():
    from IVUSReconstructLib.types import ContourSet, FrameContours

    frames, contours, per_frame, summary = _lmode_inputs()
    confidence = {3: 0.21, 7: 0.44, 9: 0.62, 10: 0.05}
    contours = ContourSet(
        frames=tuple(
            FrameContours(index=f.index, lumen=f.lumen, vessel=f.vessel, confidence=confidence.get(f.index, 0.9))
            for f in contours.frames
        )
    )
    # below 0.5, least confident first: 10, 3, 7 (frame 9 at 0.62 is not flagged)
    assert report.review_frames(contours) == [(10, 0.05), (3, 0.21), (7, 0.44)]
    assert report.review_frames(contours, most=2) == [(10, 0.05), (3, 0.21)]
    figures = report.pullback_figures(
        frames, contours=contours, per_frame=per_frame, pixel_spacing_mm=(0.1, 0.1),
        catheter_center_px=(40.0, 40.0), summary=summary,
    )  # fmt: skip
    captions = list(figures)
    assert len(captions) == 3 and captions[0].startswith("Frames to review first")
    review = figures[captions[0]]
    assert review.index("frame 10") < review.index("frame 3") < review.index("frame 7")
    assert "confidence 0.05" in review and "frame 9" not in review
