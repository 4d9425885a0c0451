"""The parts of ``render_vessel`` one at a time: style, camera, colour bar, labels and legend.

The geometry is a straight tube along x (right = +x, up = +z, toward the camera = -y), so each
expected camera direction and label position is a rotation or a comparison away.
"""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.vtkRenderingCore import vtkCamera, vtkRenderer

from IVUSReconstructLib import render

RIGHT, UP = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
TOWARD = np.cross(RIGHT, UP)


def tube_scene(length_mm: float = 40.0, radius_mm: float = 2.0) -> render._Scene:
    x = np.linspace(-length_mm / 2, length_mm / 2, 81)
    a = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    pts = np.stack(
        [np.repeat(x, len(a)), np.tile(radius_mm * np.cos(a), len(x)), np.tile(radius_mm * np.sin(a), len(x))], 1
    )
    return render._Scene(
        lumen=None, vessel=None, outer=None, outer_pts=pts, centre=np.zeros(3),
        right=RIGHT, up=UP, toward=TOWARD, typical_radius=radius_mm,
    )  # fmt: skip


def view_direction(camera: vtkCamera) -> np.ndarray:
    d = np.array(camera.GetPosition()) - np.array(camera.GetFocalPoint())
    return d / np.linalg.norm(d)


def test_style_defaults_and_view_check():
    style = render.RenderStyle()
    assert (style.size_px, style.view, style.vessel_opacity, style.far_opacity) == ((1600, 1000), "overview", 0.15, 0.85)
    with pytest.raises(ValueError, match=r"view must be one of \('overview', 'mla', 'along'\), got 'top'"):
        render.RenderStyle(view="top")


@pytest.mark.parametrize("elevation_deg", [0.0, 20.0, 50.0])
def test_side_view_is_perpendicular_and_tilted(elevation_deg):
    camera = vtkCamera()
    scene = tube_scene()
    pts, target = render._place_camera(
        camera, scene, view="overview", elevation_deg=elevation_deg, focus=np.array([5.0, 0, 0]), right_edge=0.62
    )
    d = view_direction(camera)
    assert d @ RIGHT == pytest.approx(0.0, abs=1e-12)
    assert np.degrees(np.arccos(d @ TOWARD)) == pytest.approx(elevation_deg, abs=1e-9)
    assert camera.GetParallelProjection() == 1
    assert np.allclose(camera.GetFocalPoint(), 0.0)  # the overview centres on the vessel, not the MLA
    assert pts is scene.outer_pts and target == (-0.94, 0.62, -0.60, 0.56)
    # parallel scale: half the diagonal (40 x 4 x 4 mm box) plus 5 radii
    assert camera.GetParallelScale() == pytest.approx(0.5 * np.sqrt(40**2 + 4**2 + 4**2) + 5 * 2.0)


def test_mla_view_frames_the_vessel_near_the_mla():
    camera = vtkCamera()
    pts, _ = render._place_camera(
        camera, tube_scene(), view="mla", elevation_deg=20.0, focus=np.array([10.0, 0, 0]), right_edge=0.94
    )
    assert np.allclose(camera.GetFocalPoint(), [10.0, 0.0, 0.0])
    # within 6 radii (12 mm) of the MLA along the axis
    assert (pts[:, 0].min(), pts[:, 0].max()) == (-2.0, 20.0)


def test_along_view_looks_from_the_proximal_end():
    camera = vtkCamera()
    render._place_camera(camera, tube_scene(), view="along", elevation_deg=None, focus=np.zeros(3), right_edge=0.62)
    d = view_direction(camera)
    # 30 degrees off the axis toward the side, then 12 degrees up: cos = cos 30 cos 12
    assert d @ RIGHT == pytest.approx(np.cos(np.radians(30)) * np.cos(np.radians(12)))
    assert abs(d @ UP) == pytest.approx(np.sin(np.radians(12)))
    assert camera.GetParallelProjection() == 0 and camera.GetViewAngle() == 35.0
    distance = np.linalg.norm(np.array(camera.GetPosition()))
    assert distance == pytest.approx(0.9 * 40.0 + 8.0 * 2.0)


def test_colour_bar_sits_right_on_a_background_panel():
    renderer = vtkRenderer()
    table = render.burden_lookup_table(value_range=(10.0, 60.0))
    render._add_colour_bar(renderer, table, background=(1.0, 1.0, 1.0), size_px=(1000, 500), font=12)
    props = renderer.GetViewProps()
    assert props.GetNumberOfItems() == 2
    panel, bar = props.GetItemAsObject(0), props.GetItemAsObject(1)
    assert bar.GetTitle() == "Plaque burden (%)" and bar.GetLookupTable().GetRange() == (10.0, 60.0)
    assert bar.GetPositionCoordinate().GetValue()[:2] == (0.855, 0.16)
    assert panel.GetProperty().GetColor() == (1.0, 1.0, 1.0)
    xy = np.array([panel.GetMapper().GetInput().GetPoint(i)[:2] for i in range(4)])
    assert (xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].max()) == (830.0, 1000.0, 500.0)


def texts(renderer: vtkRenderer) -> dict[str, tuple[float, float]]:
    props = renderer.GetViewProps()
    out = {}
    for i in range(props.GetNumberOfItems()):
        prop = props.GetItemAsObject(i)
        if prop.IsA("vtkTextActor"):
            out[prop.GetInput()] = prop.GetPosition()
    return out


def test_reference_labels_above_the_vessel_and_the_mla_below():
    vessel_px = np.array([[100.0, 200.0], [900.0, 200.0], [100.0, 300.0], [900.0, 300.0]])
    ring = np.array([[0.0, 0.0, 0.0]])
    labels = [
        ("mla", None, ring + [500, 250, 0], "MLA 2.0 mm2"),
        ("reference", None, ring + [300, 300, 0], "Distal ref."),
        ("reference", None, ring + [700, 300, 0], "Proximal ref."),
    ]
    renderer = vtkRenderer()
    render._add_marker_labels(renderer, labels, lambda p: p[:, :2], vessel_px, font=10, width_px=1000)
    placed = texts(renderer)
    assert placed["MLA 2.0 mm2"] == (500.0, 200.0 - 2.2 * 10)
    assert placed["Distal ref."] == (300.0, 300.0 + 1.2 * 10)
    assert placed["Proximal ref."] == (700.0, 300.0 + 1.2 * 10)
    # three texts and three leader lines
    assert renderer.GetViewProps().GetNumberOfItems() == 6


def test_legend_entries_then_a_scale_bar_of_a_round_length():
    renderer = vtkRenderer()
    entries = [("Lumen", render.LUMEN_RGB), ("Calcium", render._CALCIUM_RGB)]
    # 15 % of 1000 px at 0.1 mm/px is 15 mm: the bar shows 10 mm (100 px)
    render._add_legend(renderer, entries, mm_per_px=0.1, font=10, size_px=(1000, 500))
    placed = texts(renderer)
    assert list(placed) == ["Lumen", "Calcium", "10 mm"]
    assert placed["Lumen"][1] == placed["10 mm"][1] == 0.03 * 500
    assert placed["Lumen"][0] < placed["Calcium"][0] < placed["10 mm"][0]
    assert renderer.GetViewProps().GetNumberOfItems() == 3 * 2 + 2

    renderer = vtkRenderer()
    render._add_legend(renderer, entries[:1], mm_per_px=None, font=10, size_px=(1000, 500))
    assert list(texts(renderer)) == ["Lumen"]  # no scale bar in perspective
