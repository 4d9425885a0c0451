"""The planned device on screen: render pixels, GLB mesh, report numbers equal to summary.json."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pytest

from IVUSReconstructLib.pipeline import RunOptions, run_pipeline, write_outputs
from IVUSReconstructLib.render import RenderStyle, render_vessel
from IVUSReconstructLib.types import ContourSet, FrameContours

STEP_MM = 0.25
LENGTH_MM = 120.0


def circle(r: float, n: int = 180) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


@pytest.fixture(scope="module")
def result():
    """A femoropopliteal artery, EEM 6.6 mm, one raised-cosine lesion (70 % burden) at 60 mm."""
    s = np.arange(0.0, LENGTH_MM + 1e-9, STEP_MM)
    x = np.clip((s - 60.0) / 9.0, -1.0, 1.0)
    burden = 15.0 + 55.0 * 0.5 * (1.0 + np.cos(np.pi * x))
    frames = tuple(
        FrameContours(index=i, lumen=circle(3.3 * math.sqrt(1 - b / 100)), vessel=circle(3.3), z_mm=float(z))
        for i, (b, z) in enumerate(zip(burden, s, strict=True))
    )
    return run_pipeline(
        contours=ContourSet(frames=frames),
        options=RunOptions(territory="femoropopliteal", render_size_px=(640, 400)),
    )


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "out"
    write_outputs(result, out)
    return out


def test_plan_in_summary(written):
    summary = json.loads((written / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["territory"] == "femoropopliteal" and summary["parameters"]["territory"] == "femoropopliteal"
    assert plan["device"]["type"] == "drug-coated balloon" and plan["device"]["diameter_mm"] == 6.0
    assert summary["plans"][0]["device"] == plan["device"]


def test_render_shows_the_device(result):
    """Cyan pixels appear where the device lies along the vessel, and nowhere else."""
    no_plan = replace(result.metrics, summary={**result.metrics.summary, "plan": None, "plans": []})
    kwargs = dict(centerline=result.centerline, poses=result.poses, style=RenderStyle(size_px=(640, 400)))
    with_device = render_vessel(result.mesh, metrics=result.metrics, **kwargs).astype(float)
    without = render_vessel(result.mesh, metrics=no_plan, **kwargs).astype(float)
    body = (slice(0, int(0.88 * 400)), slice(0, int(0.83 * 640)))  # above the legend, left of the bar
    a, b = with_device[body], without[body]
    changed = np.abs(a - b).max(axis=2) > 25
    assert changed.sum() > 2000
    # the device is cyan: where it shows, blue minus red rises by at least 30 grey levels
    shift = ((a[..., 2] - a[..., 0]) - (b[..., 2] - b[..., 0]))[changed].mean()
    assert shift > 30.0
    # along the vessel (image x), the changed columns span the device's share of the vessel
    vessel_cols = np.flatnonzero((b.min(axis=2) < 235).sum(axis=0) > 5)
    x0, x1 = vessel_cols.min(), vessel_cols.max()
    cols = np.flatnonzero(changed.sum(axis=0) > 3)
    device = result.metrics.summary["plan"]["device"]
    lo, hi = device["start_mm"] / LENGTH_MM, device["end_mm"] / LENGTH_MM
    seen = ((cols.min() - x0) / (x1 - x0), (cols.max() - x0) / (x1 - x0))
    flipped = (1.0 - seen[1], 1.0 - seen[0])
    assert any(abs(v[0] - lo) < 0.03 and abs(v[1] - hi) < 0.03 for v in (seen, flipped)), (seen, lo, hi)


def test_glb_holds_the_translucent_device(written):
    data = (written / "vessel.glb").read_bytes()
    length = struct.unpack("<I", data[12:16])[0]
    doc = json.loads(data[20 : 20 + length])
    names = [m["name"] for m in doc["meshes"]]
    assert names == ["lumen", "vessel", "device"]
    material = doc["materials"][2]
    assert material["alphaMode"] == "BLEND"
    # its bounds: the device diameter (6 mm) across, the device length along S
    device = json.loads((written / "summary.json").read_text())["plan"]["device"]
    position = doc["accessors"][doc["meshes"][2]["primitives"][0]["attributes"]["POSITION"]]
    extent = np.subtract(position["max"], position["min"])
    assert extent[0] == pytest.approx(6.0, abs=0.02) and extent[1] == pytest.approx(6.0, abs=0.02)
    assert extent[2] == pytest.approx(device["length_mm"], abs=1e-3)
    assert (written / "device.vtp").is_file()


class _Keyed(HTMLParser):
    def __init__(self):
        super().__init__()
        self.keyed: list[tuple[str, str]] = []
        self._open: list[str | None] = []
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th", "span"):
            self._open.append(dict(attrs).get("data-key"))
            self._text = []

    def handle_data(self, data):
        self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th", "span") and self._open:
            key = self._open.pop()
            if key:
                self.keyed.append((key, "".join(self._text).strip()))


def _lookup(doc, key):
    node = doc
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def test_report_plan_numbers_equal_summary(written):
    html = (written / "report.html").read_text()
    summary = json.loads((written / "summary.json").read_text())
    parser = _Keyed()
    parser.feed(html)
    plan_keys = [(k, t) for k, t in parser.keyed if k.startswith("plan")]
    checked = 0
    for key, text in plan_keys:
        value = _lookup(summary, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - value) <= 0.5 * 10.0**-decimals + 1e-9, (key, text, value)
        checked += 1
    shown = {k for k, _ in plan_keys}
    for key in (
        "plan.device.diameter_mm",
        "plan.device.length_mm",
        "plan.device.start_mm",
        "plan.device.end_mm",
        "plan.landing_zones.proximal.start_mm",
        "plan.landing_zones.distal.plaque_burden_percent",
        "plan.policy.landing_zone_mm.value",
    ):
        assert key in shown, key
    assert checked >= 20
    assert "<h2>Plan</h2>" in html
    assert "a suggestion for research and teaching, not a treatment decision" in html
    # the device is drawn on the area curves (legend entry of the SVG plot)
    assert "Planned device" in html and "Landing zone" in html


def test_cli_run_territory_option(tmp_path, capsys):
    """`run --territory femoral-vein` analyses a vein: compressed segment, 12 mm venous stent."""
    from IVUSReconstructLib.cli import main
    from IVUSReconstructLib.io.contours import write_contours_json

    s = np.arange(0.0, 80.0 + 1e-9, 0.5)
    x = np.clip((s - 40.0) / 10.0, -1.0, 1.0)
    area = 100.0 * (1.0 - 0.7 * 0.5 * (1.0 + np.cos(np.pi * x)))
    frames = tuple(
        FrameContours(index=i, lumen=circle(math.sqrt(a / math.pi)), z_mm=float(z))
        for i, (a, z) in enumerate(zip(area, s, strict=True))
    )
    path = tmp_path / "vein.json"
    write_contours_json(ContourSet(frames=frames), path)
    out = tmp_path / "out"
    assert main(["run", "--contours", str(path), "--territory", "femoral-vein", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["territory"] == "femoral-vein"
    assert summary["parameters"]["metrics"]["vein_segment"] == "common_femoral"
    plan = summary["plan"]
    assert plan["territory"] == "femoral-vein" and plan["device"]["diameter_mm"] == 12.0
    # compressed where the lumen is below half the reference: |x| < 10 acos(2 x 0.5 / 0.7 - 1) / pi
    half = 10.0 * math.acos(2 * 0.5 / 0.7 - 1.0) / math.pi
    assert summary["lesions"][0]["length_mm"] == pytest.approx(2 * half, abs=1.0)
    # healthy from |x| >= 6.41 mm (lumen >= 80 % of 100 mm2): zones 23.6-33.6 and 46.4-56.4, span 32.8
    assert plan["device"]["length_mm"] == 40.0
    printed = capsys.readouterr().out
    assert "plan           12.00 x 40 mm venous stent at " in printed
    assert "(femoral-vein; a suggestion for research and teaching)" in printed
