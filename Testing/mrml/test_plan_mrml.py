"""The plan in real MRML (slicer-core): saved scene with plan nodes, and the landing-zone round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from vtkmodules.util import numpy_support  # noqa: E402

from IVUSReconstructLib import mrml  # noqa: E402
from IVUSReconstructLib import plan as planning  # noqa: E402
from IVUSReconstructLib.types import ContourSet, FrameContours  # noqa: E402

STEP_MM = 0.25


def circle(r: float, n: int = 180) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


@pytest.fixture(scope="module")
def result():
    """Femoropopliteal artery (EEM 6.6 mm) with one 70 % lesion at 60 mm, on a bent centerline."""
    from IVUSReconstructLib.pipeline import RunOptions, run_pipeline
    from IVUSReconstructLib.types import Centerline

    s = np.arange(0.0, 120.0 + 1e-9, STEP_MM)
    x = np.clip((s - 60.0) / 9.0, -1.0, 1.0)
    burden = 15.0 + 55.0 * 0.5 * (1.0 + np.cos(np.pi * x))
    frames = tuple(
        FrameContours(index=i, lumen=circle(3.3 * math.sqrt(1 - b / 100)), vessel=circle(3.3), z_mm=float(z))
        for i, (b, z) in enumerate(zip(burden, s, strict=True))
    )
    # a quarter circle of radius 100 mm: arc length = 100 x angle
    angle = np.linspace(0.0, 1.4, 400)
    points = np.column_stack([100.0 * (1 - np.cos(angle)), np.zeros_like(angle), 100.0 * np.sin(angle)])
    return run_pipeline(
        contours=ContourSet(frames=frames),
        centerline=Centerline(points_ras_mm=points),
        options=RunOptions(territory="femoropopliteal", render_size_px=(320, 200)),
    )


def _points(polydata) -> np.ndarray:
    return numpy_support.vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)


def _table(node) -> dict[str, str]:
    table = node.GetTable()
    keys, values = table.GetColumnByName("key"), table.GetColumnByName("value")
    return {keys.GetValue(i): values.GetValue(i) for i in range(table.GetNumberOfRows())}


def test_saved_scene_reloads_with_plan_nodes(result, tmp_path):
    from IVUSReconstructLib.pipeline import write_outputs

    out = tmp_path / "out"
    write_outputs(result, out, extra_writers=(mrml.write_scene,))
    scene = mrml.load_scene(out / "scene.mrml")
    plan = json.loads((out / "summary.json").read_text())["plan"]
    cl = result.centerline.points_ras_mm
    device = scene.GetFirstNodeByName("IVUS device")
    assert device is not None and device.GetPolyData().GetNumberOfPoints() > 0
    # the device model sits on the centerline from start_mm to end_mm with the device radius
    pts = _points(device.GetPolyData())
    ends = [mrml.arc_length_of_point(cl, p) for p in pts]
    assert min(ends) == pytest.approx(plan["device"]["start_mm"], abs=0.05)
    assert max(ends) == pytest.approx(plan["device"]["end_mm"], abs=0.05)
    radial = [
        np.linalg.norm(p - mrml.centerline_point_at(cl, s)) for p, s in zip(pts[:-2], ends[:-2], strict=True)
    ]
    assert np.median(radial) == pytest.approx(plan["device"]["diameter_mm"] / 2, abs=0.01)
    assert json.loads(device.GetAttribute(mrml.PLAN_ATTRIBUTE))["device"] == plan["device"]
    for side in ("proximal", "distal"):
        line = scene.GetFirstNodeByName(f"IVUS {side} landing zone")
        assert line is not None and line.IsA("vtkMRMLMarkupsLineNode")
        at = [mrml.arc_length_of_point(cl, p) for p in mrml._control_points(line)]
        zone = plan["landing_zones"][side]
        assert at == pytest.approx([zone["start_mm"], zone["end_mm"]], abs=0.01)
    table = scene.GetFirstNodeByName("IVUS plan")
    assert table is not None and table.GetTable().GetNumberOfRows() > 10


def test_moving_a_landing_zone_replans_device_model_and_table(result):
    scene = mrml.prepare_scene(slicer.vtkMRMLScene())
    cl = result.centerline.points_ras_mm
    per_frame = result.metrics.per_frame
    plan = result.metrics.summary["plan"]
    nodes = mrml.plan_to_nodes(scene, plan, cl)
    tags = mrml.observe_plan(nodes, per_frame, cl)
    assert len(tags) == 2  # one observer per landing-zone line
    # drag the proximal zone's far end 20 mm further along the vessel (as a user in Slicer)
    zone = plan["landing_zones"]["proximal"]
    new_end = zone["end_mm"] + 20.0
    nodes["proximal"].SetNthControlPointPositionWorld(1, *mrml.centerline_point_at(cl, new_end))
    moved = json.loads(nodes["device"].GetAttribute(mrml.PLAN_ATTRIBUTE))
    expected, flags = planning.replan(per_frame, plan, proximal_zone_mm=(zone["start_mm"], new_end))
    assert flags == []
    span = new_end - plan["landing_zones"]["distal"]["start_mm"]
    assert moved["device"]["span_mm"] == pytest.approx(span, abs=0.01)
    assert moved["device"]["length_mm"] == expected["device"]["length_mm"] == 60.0
    assert moved["device"]["diameter_mm"] == expected["device"]["diameter_mm"]
    assert moved["landing_zones"]["proximal"]["end_mm"] == pytest.approx(new_end, abs=0.01)
    # the model follows: its far end is now at the new device end
    ends = [mrml.arc_length_of_point(cl, p) for p in _points(nodes["device"].GetPolyData())]
    assert max(ends) == pytest.approx(moved["device"]["end_mm"], abs=0.05)
    # and so does the table
    assert float(_table(nodes["plan_table"])["device.length_mm"]) == 60.0
    assert float(_table(nodes["plan_table"])["device.span_mm"]) == pytest.approx(span, abs=0.01)
    for node, tag in tags:
        node.RemoveObserver(tag)


def test_show_result_adds_the_plan(result):
    scene = mrml.prepare_scene(slicer.vtkMRMLScene())
    nodes = mrml.show_result(scene, result)
    assert {"device", "proximal", "distal", "plan_table"} <= set(nodes)
    assert nodes["device"].GetDisplayNode().GetOpacity() == pytest.approx(0.35)
