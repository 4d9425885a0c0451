"""Scene adapter with real MRML (slicer-core wheel): phantom -> nodes -> core types, saved scenes."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from vtkmodules.util import numpy_support  # noqa: E402
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkPoints  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkPolyLine  # noqa: E402

from IVUSReconstructLib import labelmap, metrics, mrml, pipeline  # noqa: E402
from IVUSReconstructLib.errors import IVUSInputError  # noqa: E402
from IVUSReconstructLib.geometry import mm_to_px, polygon_area  # noqa: E402
from IVUSReconstructLib.types import ContourSet, FrameContours, Pullback  # noqa: E402

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def phantom():
    from IVUSReconstructLib.phantom import make_phantom

    return make_phantom("coronary", length_mm=3)


@pytest.fixture(scope="module")
def result(phantom):
    from IVUSReconstructLib.pipeline import RunOptions, run_pipeline

    return run_pipeline(
        pullback=phantom.pullback,
        contours=phantom.truth,
        centerline=phantom.centerline,
        options=RunOptions(render_size_px=(320, 200)),  # the render is not under test here
    )


@pytest.fixture()
def scene():
    return mrml.prepare_scene(slicer.vtkMRMLScene())


@pytest.fixture(scope="module")
def written(result, tmp_path_factory):
    """Output folder written by the pipeline with write_scene as extra writer, and the reloaded scene."""
    from IVUSReconstructLib.pipeline import write_outputs

    out = tmp_path_factory.mktemp("run") / "out"
    write_outputs(result, out, extra_writers=(mrml.write_scene,))
    return out, mrml.load_scene(out / "scene.mrml")


def _point_to_polygon_mm(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Distance of each point to a closed polygon's edges, ndarray of shape (M,)."""
    a = polygon
    d = np.roll(polygon, -1, axis=0) - a
    rel = points[:, None, :] - a[None]
    t = np.clip((rel * d[None]).sum(-1) / (d * d).sum(-1)[None], 0.0, 1.0)
    return np.min(np.linalg.norm(rel - t[..., None] * d[None], axis=-1), axis=1)


def _hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    return float(max(_point_to_polygon_mm(a, b).max(), _point_to_polygon_mm(b, a).max()))


def _points(polydata) -> np.ndarray:
    return numpy_support.vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)


def _column(table_node, name: str) -> np.ndarray:
    array = table_node.GetTable().GetColumnByName(name)
    assert array is not None, name
    return np.array([float(array.GetVariantValue(i).ToDouble()) for i in range(array.GetNumberOfTuples())])


# ----------------------------------------------------------------------------- pullback volume


def test_pullback_volume_geometry_and_round_trip(scene, phantom):
    pullback = phantom.pullback
    node = mrml.pullback_to_volume_node(scene, pullback)
    dz = pullback.pullback_speed_mm_s * float(np.mean(np.diff(pullback.frame_times_s)))
    m = mrml._ijk_to_ras(node)
    center_row, center_col = pullback.catheter_center_px
    # the catheter centre of frame k is on the S axis at k * dz
    assert m @ np.array([center_col, center_row, 7, 1.0]) == pytest.approx([0.0, 0.0, 7 * dz, 1.0], abs=1e-9)
    # one column to the right is frame-plane +x -> RAS -x (axial view shows the frame as the image)
    assert (m @ np.array([center_col + 1, center_row, 0, 1.0]))[0] == pytest.approx(
        -pullback.pixel_spacing_mm[1]
    )
    back = mrml.volume_node_to_pullback(node)
    assert np.array_equal(back.frames, pullback.frames)
    assert back.pixel_spacing_mm == pytest.approx(pullback.pixel_spacing_mm)
    assert back.catheter_center_px == pytest.approx(pullback.catheter_center_px)
    assert back.frame_times_s == pytest.approx(pullback.frame_times_s)
    assert back.pullback_speed_mm_s == pytest.approx(pullback.pullback_speed_mm_s)


def test_volume_without_speed_uses_1_mm_slices(scene):
    frames = np.zeros((3, 8, 10), dtype=np.uint8)
    pullback = Pullback(frames, (0.1, 0.1), np.arange(3) / 30.0, None, "manual", (3.5, 4.5))
    node = mrml.pullback_to_volume_node(scene, pullback)
    assert node.GetSpacing() == pytest.approx((0.1, 0.1, 1.0))


def test_foreign_volume_needs_frame_rate(scene):
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    node.SetAndObserveImageData(labelmap.image_data(np.zeros((4, 6, 8), dtype=np.uint8)))
    node.SetSpacing(0.05, 0.04, 1.0)
    with pytest.raises(IVUSInputError) as error:
        mrml.volume_node_to_pullback(node)
    assert (
        str(error.value)
        == "loaded: frame rate is unknown; enter the frame rate (Hz) in the acquisition fields"
    )
    pullback = mrml.volume_node_to_pullback(node, frame_rate_hz=25.0)
    assert pullback.frame_times_s == pytest.approx([0.0, 0.04, 0.08, 0.12])
    assert pullback.pixel_spacing_mm == pytest.approx((0.04, 0.05))  # (row, col) = (J, I) spacing
    assert pullback.catheter_center_px == pytest.approx((2.5, 3.5))  # image centre by default


def test_acquisition_values_from_attributes_and_dicom(scene, phantom, tmp_path):
    """What the module shows before a run: the node's attributes, then the DICOM header read by
    io.dicom.read_acquisition (the command line's reading) over them."""
    from IVUSReconstructLib.io.dicom import write_pullback

    node = mrml.pullback_to_volume_node(scene, phantom.pullback)
    values = mrml.acquisition_values(node)
    assert values["frame_rate_hz"].value == pytest.approx(30.0)
    assert values["pullback_speed_mm_s"].value == pytest.approx(0.5)
    assert values["pixel_spacing_mm"].value == pytest.approx(phantom.pullback.pixel_spacing_mm[1])
    path = write_pullback(phantom.pullback, tmp_path / "p.dcm")
    import pydicom

    ds = pydicom.dcmread(path)
    ds.FrameTime, ds.CineRate, ds.IVUSPullbackRate = 40.0, 10, 1.0  # FrameTime wins over CineRate
    ds.save_as(path)
    values = mrml.acquisition_values(node, path)
    assert (values["frame_rate_hz"].value, values["frame_rate_hz"].source) == (
        pytest.approx(25.0), "FrameTime (0018,1063)"
    )
    assert (values["pullback_speed_mm_s"].value, values["pullback_speed_mm_s"].source) == (
        1.0, "IVUSPullbackRate (0018,3101)"
    )


def test_frame_attribute_names_the_frame_shown(scene, phantom, result):
    node = mrml.current_frame_volume_node(scene, phantom.pullback, result.poses, 5)
    nearest = int(result.poses.frame_index[np.argmin(np.abs(result.poses.frame_index - 5))])
    assert int(node.GetAttribute(mrml.FRAME_ATTRIBUTE)) == nearest


# ----------------------------------------------------------------------------- contours <-> segmentation


def test_rasterize_polygon_counts_pixel_centres():
    square = np.array([[1.5, 1.5], [1.5, 5.5], [4.5, 5.5], [4.5, 1.5]])  # rows 2-4, cols 2-5
    mask = mrml.rasterize_polygon(square, (8, 8))
    assert mask.sum() == 12
    assert mask[2:5, 2:6].all()
    # an irregular polygon against matplotlib's point-in-polygon test on every pixel centre
    from matplotlib.path import Path as PolygonPath

    rng = np.random.default_rng(0)
    theta = np.sort(rng.uniform(0, 2 * np.pi, 60))
    radius = rng.uniform(10, 30, 60)
    polygon = np.column_stack([50.3 + radius * np.sin(theta), 49.7 + radius * np.cos(theta)])
    rows, cols = np.mgrid[0:100, 0:100]
    centres = np.column_stack([rows.ravel(), cols.ravel()])
    expected = PolygonPath(polygon).contains_points(centres).reshape(100, 100)
    assert np.array_equal(mrml.rasterize_polygon(polygon, (100, 100)), expected)


def _nearest_by_centroid(polygon: np.ndarray, candidates) -> np.ndarray:
    return min(candidates, key=lambda c: float(np.linalg.norm(c.mean(axis=0) - polygon.mean(axis=0))))


@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_segmentation_round_trip_within_half_a_pixel(scene, phantom):
    pullback, truth = phantom.pullback, phantom.truth
    volume = mrml.pullback_to_volume_node(scene, pullback)
    segmentation = mrml.contours_to_segmentation(scene, truth, volume)
    names = [segmentation.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)]
    assert names == ["Lumen", "Vessel", "Calcium"]
    # stored on the volume's frames subdivided 2x in-plane (the Segment Editor edits that grid)
    labelmap = slicer.vtkOrientedImageData()
    segmentation.GetBinaryLabelmapRepresentation("Lumen", labelmap)
    assert labelmap.GetSpacing() == pytest.approx(
        (volume.GetSpacing()[0] / 2, volume.GetSpacing()[1] / 2, volume.GetSpacing()[2])
    )
    back = mrml.segmentation_to_contours(segmentation, volume, template=truth)
    assert np.array_equal(back.indices, truth.indices)
    spacing, center = pullback.pixel_spacing_mm, pullback.catheter_center_px
    # in volume pixels; measured 0.255 px both ways for lumen/vessel (half a fine pixel plus the
    # truth polygon's vertices bulging between fine pixel centres), calcium crescent tips 0.49 px
    outline_to_truth, truth_to_outline, calcium_to_truth, tips_to_outline = [], [], [], []
    for original, recovered in zip(truth.frames, back.frames, strict=True):
        assert recovered.phase == original.phase
        assert len(recovered.calcium) == len(original.calcium)
        # every third frame's borders (test time), every calcium region
        if original.index % 3 == 0:
            for a, b in ((original.lumen, recovered.lumen), (original.vessel, recovered.vessel)):
                a_px, b_px = mm_to_px(a, spacing, center), mm_to_px(b, spacing, center)
                outline_to_truth.append(_point_to_polygon_mm(b_px, a_px).max())
                truth_to_outline.append(_point_to_polygon_mm(a_px, b_px).max())
                assert polygon_area(b) == pytest.approx(polygon_area(a), rel=0.01)
        recovered_px = [mm_to_px(c, spacing, center) for c in recovered.calcium]
        for a in original.calcium:
            a_px = mm_to_px(a, spacing, center)
            b_px = _nearest_by_centroid(a_px, recovered_px)  # regions come back largest first
            calcium_to_truth.append(_point_to_polygon_mm(b_px, a_px).max())
            tips_to_outline.append(_point_to_polygon_mm(a_px, b_px).max())
            assert polygon_area(b_px) == pytest.approx(polygon_area(a_px), rel=0.05)
    n_calcium = sum(len(f.calcium) for f in truth.frames)
    assert n_calcium > 0  # the phantom's calcified frames are in this stretch
    assert sum(len(f.calcium) for f in back.frames) == n_calcium
    assert max(outline_to_truth) <= 0.3
    assert max(truth_to_outline) <= 0.3
    assert max(calcium_to_truth) <= 0.3
    assert max(tips_to_outline) <= 0.6


def test_volume_grid_segmentation_round_trip(scene):
    """A segmentation on the volume grid itself (oversampling 1, as a user may make one)."""
    theta = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    frames = np.zeros((2, 80, 80), dtype=np.uint8)
    pullback = Pullback(frames, (0.1, 0.1), np.arange(2) / 30.0, 0.5, "motor", (39.5, 39.5))
    volume = mrml.pullback_to_volume_node(scene, pullback)
    lumen = np.column_stack([2.0 * np.cos(theta) + 0.13, 1.5 * np.sin(theta) - 0.07])
    contours = ContourSet((FrameContours(1, lumen=lumen),))
    segmentation = mrml.contours_to_segmentation(scene, contours, volume, oversampling=1)
    labelmap = slicer.vtkOrientedImageData()
    segmentation.GetBinaryLabelmapRepresentation("Lumen", labelmap)
    assert labelmap.GetSpacing() == pytest.approx(volume.GetSpacing())
    back = mrml.segmentation_to_contours(segmentation, volume)
    a_px = mm_to_px(lumen, (0.1, 0.1), (39.5, 39.5))
    b_px = mm_to_px(back.frames[0].lumen, (0.1, 0.1), (39.5, 39.5))
    # one volume pixel: marching squares on the raw mask is within half a pixel of the
    # pixel centres it separates, so within 0.5 px of the outline, about 0.5 px of the truth
    assert _point_to_polygon_mm(b_px, a_px).max() <= 0.5
    assert _point_to_polygon_mm(a_px, b_px).max() <= 0.55
    assert polygon_area(back.frames[0].lumen) == pytest.approx(polygon_area(lumen), rel=0.02)


def test_oversampling_default_follows_volume_size(scene):
    from vtkmodules.vtkCommonDataModel import vtkImageData

    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "sizes")
    image = vtkImageData()  # dimensions only: nothing is allocated
    node.SetAndObserveImageData(image)
    image.SetDimensions(256, 256, 512)  # 4 x 2^25 voxels at 2x: still 2x
    assert mrml._default_oversampling(node) == 2
    image.SetDimensions(512, 512, 200)  # a clinical pullback: 4 x 52 M voxels would be too many
    assert mrml._default_oversampling(node) == 1


def test_segmentation_keeps_overlapping_segments(scene):
    """Vessel contains Lumen: both labelmaps must survive (separate layers)."""
    theta = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = lambda r: np.column_stack([r * np.cos(theta), r * np.sin(theta)])  # noqa: E731
    frames = np.zeros((3, 60, 60), dtype=np.uint8)
    pullback = Pullback(frames, (0.1, 0.1), np.arange(3) / 30.0, 0.5, "motor", (29.5, 29.5))
    volume = mrml.pullback_to_volume_node(scene, pullback)
    contours = ContourSet((FrameContours(1, lumen=circle(1.0), vessel=circle(2.0)),))
    segmentation = mrml.contours_to_segmentation(scene, contours, volume)
    lumen = mrml._segment_mask(slicer, segmentation, "Lumen", volume, 2)
    vessel = mrml._segment_mask(slicer, segmentation, "Vessel", volume, 2)
    assert lumen.shape == (3, 120, 120)
    # the fine grid: volume pixel p is fine pixel 2 p + 0.5
    fine = mm_to_px(circle(1.0), (0.1, 0.1), (29.5, 29.5)) * 2 + 0.5
    assert np.array_equal(lumen[1], mrml.rasterize_polygon(fine, (120, 120)))
    assert vessel.sum() == pytest.approx(np.pi * 40**2, rel=0.01)
    assert (lumen & vessel).sum() == lumen.sum()
    assert not lumen[0].any() and not lumen[2].any()


def test_segmentation_without_lumen_segment_is_an_input_error(scene, phantom):
    volume = mrml.pullback_to_volume_node(scene, phantom.pullback)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "edits")
    segmentation.GetSegmentation().AddEmptySegment("Vessel", "Vessel")
    with pytest.raises(IVUSInputError) as error:
        mrml.segmentation_to_contours(segmentation, volume)
    assert str(error.value) == "edits: segment Lumen is missing; name the lumen segment 'Lumen'"


# ----------------------------------------------------------------------------- outputs as nodes


def test_model_nodes_equal_core_mesh(scene, result):
    nodes = mrml.show_result(scene, result)
    for part in ("lumen", "vessel", "wall"):
        core = getattr(result.mesh, part)
        polydata = nodes[part].GetPolyData()
        assert np.array_equal(_points(polydata), _points(core))
        assert polydata.GetNumberOfCells() == core.GetNumberOfCells()
        for name in ("frame_index", "arc_length_mm", "plaque_burden_percent"):
            if core.GetPointData().GetArray(name) is not None:
                assert np.array_equal(
                    numpy_support.vtk_to_numpy(polydata.GetPointData().GetArray(name)),
                    numpy_support.vtk_to_numpy(core.GetPointData().GetArray(name)),
                )
    display = nodes["wall"].GetDisplayNode()
    assert display.GetActiveScalarName() == "plaque_burden_percent"
    assert display.GetScalarRange() == pytest.approx((0.0, 100.0))
    assert display.GetColorNode().GetNumberOfColors() == 256
    assert nodes["vessel"].GetDisplayNode().GetOpacity() == pytest.approx(0.35)


def test_table_values_equal_metrics(scene, result):
    table = mrml.metrics_to_table_node(scene, result.metrics)
    assert table.GetNumberOfRows() == len(result.metrics.per_frame["frame"])
    assert table.GetNumberOfColumns() == len(result.metrics.per_frame)
    for name, values in result.metrics.per_frame.items():
        assert np.array_equal(_column(table, name), np.asarray(values, dtype=float), equal_nan=True), name
    assert table.GetColumnUnitLabel("lumen_area_mm2") == "mm²"
    summary = mrml.summary_to_table_node(scene, result.metrics)
    rows = {summary.GetCellText(i, 0): summary.GetCellText(i, 1) for i in range(summary.GetNumberOfRows())}
    assert float(rows["mla.area_mm2"]) == pytest.approx(result.metrics.summary["mla"]["area_mm2"], rel=1e-12)
    assert int(rows["mla.frame"]) == result.metrics.summary["mla"]["frame"]


def test_plot_chart_series(scene, result):
    table = mrml.metrics_to_table_node(scene, result.metrics)
    chart = mrml.areas_plot_chart(scene, table)
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    series = [chart.GetNthPlotSeriesNode(i) for i in range(3)]
    assert [s.GetYColumnName() for s in series] == [
        "lumen_area_mm2",
        "vessel_area_mm2",
        "plaque_burden_percent",
    ]
    assert {s.GetXColumnName() for s in series} == {"arc_length_mm"}
    assert {s.GetTableNodeID() for s in series} == {table.GetID()}


def test_mla_and_reference_markers_at_frame_poses(scene, result):
    node = mrml.metrics_to_markups(scene, result.metrics, result.poses)
    summary = result.metrics.summary
    expected = [summary["mla"]["frame"]] + [
        summary["references"][side]["frame"]
        for side in ("proximal", "distal")
        if (summary.get("references") or {}).get(side)
    ]
    assert node.GetNumberOfControlPoints() == len(expected)
    rows = list(result.poses.frame_index)
    for i, frame in enumerate(expected):
        position = np.zeros(3)
        node.GetNthControlPointPosition(i, position)
        assert position == pytest.approx(result.poses.origin_ras_mm[rows.index(frame)], abs=1e-9)
    assert node.GetNthControlPointLabel(0) == f"MLA {summary['mla']['area_mm2']:.2f} mm2"


# ----------------------------------------------------------------------------- centerline, landmarks, frame


def test_centerline_curve_round_trip(scene, phantom):
    curve = mrml.centerline_to_curve_node(scene, phantom.centerline)
    back = mrml.curve_node_to_centerline(curve)
    # control points are float32 in VTK
    assert back.points_ras_mm == pytest.approx(phantom.centerline.points_ras_mm, abs=1e-5)
    assert back.length_mm == pytest.approx(phantom.centerline.length_mm, rel=1e-6)
    reversed_ = mrml.curve_node_to_centerline(curve, order="proximal-first")
    assert reversed_.points_ras_mm[0] == pytest.approx(phantom.centerline.points_ras_mm[-1])


def test_vmtk_centerline_model(scene):
    points = np.column_stack([np.zeros(5), np.zeros(5), np.arange(5.0) * 2])
    vtk_points = vtkPoints()
    for p in points:
        vtk_points.InsertNextPoint(*p)
    line = vtkPolyLine()
    line.GetPointIds().SetNumberOfIds(5)
    for i, point_id in enumerate([4, 3, 2, 1, 0]):
        line.GetPointIds().SetId(i, point_id)
    cells = vtkCellArray()
    cells.InsertNextCell(line)
    radius = vtkDoubleArray()
    radius.SetName("Radius")
    for r in (1.0, 1.1, 1.2, 1.3, 1.4):
        radius.InsertNextValue(r)
    polydata = vtkPolyData()
    polydata.SetPoints(vtk_points)
    polydata.SetLines(cells)
    polydata.GetPointData().AddArray(radius)
    model = scene.AddNewNodeByClass("vtkMRMLModelNode", "Centerline model")
    model.SetAndObservePolyData(polydata)
    centerline = mrml.model_node_to_centerline(model)
    assert centerline.points_ras_mm[:, 2] == pytest.approx(
        [8, 6, 4, 2, 0]
    )  # the line's order, not the points'
    assert centerline.radius_mm == pytest.approx([1.4, 1.3, 1.2, 1.1, 1.0])


def test_landmarks_from_point_list(scene):
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "branches")
    node.AddControlPoint(1.0, 2.0, 3.0, "40")
    node.AddControlPoint(4.0, 5.0, 6.0, "12")
    landmarks = mrml.markups_to_landmarks(node)
    assert [lm.frame for lm in landmarks] == [12, 40]
    assert landmarks[1].point_ras_mm == pytest.approx([1.0, 2.0, 3.0])
    node.AddControlPoint(0.0, 0.0, 0.0, "ostium")
    with pytest.raises(IVUSInputError) as error:
        mrml.markups_to_landmarks(node)
    assert (
        str(error.value)
        == "branches: point 3 label 'ostium' is not a frame number; rename it to the frame index"
    )


def test_current_frame_sits_at_its_pose(scene, result):
    pullback, poses = result.pullback, result.poses
    row = len(poses.frame_index) // 2
    frame = int(poses.frame_index[row])
    node = mrml.current_frame_volume_node(scene, pullback, poses, frame)
    assert node.GetAttribute("IVUSReconstruct.frame") == str(frame)
    assert np.array_equal(labelmap.image_array(node.GetImageData())[0], pullback.frames[frame])
    m = mrml._ijk_to_ras(node)
    center_row, center_col = pullback.catheter_center_px
    plane_point = np.array([10 * pullback.pixel_spacing_mm[1], -5 * pullback.pixel_spacing_mm[0]])
    expected = poses.to_world(row, plane_point[None])[0]
    got = m @ np.array([center_col + 10, center_row - 5, 0.0, 1.0])
    assert got[:3] == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- pipeline on nodes


@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_pipeline_on_nodes_matches_core_run(scene, phantom, result):
    from IVUSReconstructLib.pipeline import RunOptions, run_pipeline

    volume = mrml.pullback_to_volume_node(scene, phantom.pullback)
    segmentation = mrml.contours_to_segmentation(scene, phantom.truth, volume)
    curve = mrml.centerline_to_curve_node(scene, phantom.centerline)
    from_nodes = run_pipeline(
        pullback=mrml.volume_node_to_pullback(volume),
        contours=mrml.segmentation_to_contours(segmentation, volume, template=phantom.truth),
        centerline=mrml.curve_node_to_centerline(curve),
        options=RunOptions(),
    )
    core, nodes = result.metrics.per_frame, from_nodes.metrics.per_frame
    assert np.array_equal(nodes["frame"], core["frame"])
    assert nodes["arc_length_mm"] == pytest.approx(core["arc_length_mm"], abs=1e-9)
    # half a pixel of outline error: areas within 1 %
    assert nodes["lumen_area_mm2"] == pytest.approx(core["lumen_area_mm2"], rel=0.01)
    assert nodes["vessel_area_mm2"] == pytest.approx(core["vessel_area_mm2"], rel=0.01)
    assert from_nodes.metrics.summary["volumes_mm3"]["lumen"] == pytest.approx(
        result.metrics.summary["volumes_mm3"]["lumen"], rel=0.01
    )


# ----------------------------------------------------------------------------- saved scene


def test_saved_scene_reloads_models_in_ras(written, result):
    out, reloaded = written
    for part, (color, opacity, scalars) in mrml.MODEL_STYLE.items():
        node = reloaded.GetFirstNodeByName(f"IVUS {part}")
        assert node is not None, part
        storage = node.GetStorageNode()
        assert storage.GetFileName() == str(out / f"{part}.vtp")
        assert storage.GetCoordinateSystem() == slicer.vtkMRMLStorageNode.CoordinateSystemRAS
        # same coordinates as the core mesh: no LPS flip on the way
        assert _points(node.GetPolyData()) == pytest.approx(_points(getattr(result.mesh, part)), abs=1e-5)
        display = node.GetDisplayNode()
        assert display.GetColor() == pytest.approx(color)
        assert display.GetOpacity() == pytest.approx(opacity)
        assert bool(display.GetScalarVisibility()) == (scalars is not None)
    wall_display = reloaded.GetFirstNodeByName("IVUS wall").GetDisplayNode()
    assert wall_display.GetActiveScalarName() == "plaque_burden_percent"
    assert wall_display.GetScalarRange() == pytest.approx((0.0, 100.0))
    colors = wall_display.GetColorNode()
    assert colors is not None and colors.GetNumberOfColors() == 256
    assert colors.GetStorageNode().GetFileName() == str(out / "plaque_burden_colors.csv")
    # relative paths: the folder can be moved
    text = (out / "scene.mrml").read_text()
    assert 'fileName="lumen.vtp"' in text and str(out) not in text


def test_saved_scene_reloads_table_chart_and_markups(written, result):
    out, reloaded = written
    table = reloaded.GetFirstNodeByName("IVUS frames")
    assert table.GetNumberOfRows() == len(result.metrics.per_frame["frame"])
    assert _column(table, "lumen_area_mm2") == pytest.approx(
        result.metrics.per_frame["lumen_area_mm2"], rel=1e-5
    )
    assert _column(table, "frame") == pytest.approx(result.metrics.per_frame["frame"])
    chart = reloaded.GetFirstNodeByClass("vtkMRMLPlotChartNode")
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    assert chart.GetNthPlotSeriesNode(0).GetTableNode() is table
    curve = reloaded.GetFirstNodeByClass("vtkMRMLMarkupsCurveNode")
    curve_points = mrml._control_points(curve)
    assert curve_points.shape[0] >= 2
    # the curve lies on the centerline used by the run (markups JSON is LPS on disk)
    distances = _point_to_polygon_mm(curve_points, result.centerline.points_ras_mm)
    assert distances.max() < 0.05
    markers = reloaded.GetFirstNodeByName("IVUS MLA and references")
    summary = json.loads((out / "summary.json").read_text())
    mla_row = list(result.poses.frame_index).index(summary["mla"]["frame"])
    position = np.zeros(3)
    markers.GetNthControlPointPosition(0, position)
    assert position == pytest.approx(result.poses.origin_ras_mm[mla_row], abs=1e-3)
    assert markers.GetNthControlPointLabel(0).startswith("MLA ")


def test_write_scene_skips_missing_files(tmp_path):
    (tmp_path / "frames.csv").write_text("frame,arc_length_mm,lumen_area_mm2\n0,0.0,3.5\n1,0.1,3.25\n")
    path = mrml.write_scene(tmp_path)
    reloaded = mrml.load_scene(path)
    assert reloaded.GetFirstNodeByClass("vtkMRMLModelNode") is None
    table = reloaded.GetFirstNodeByName("IVUS frames")
    assert _column(table, "lumen_area_mm2") == pytest.approx([3.5, 3.25])
    chart = reloaded.GetFirstNodeByClass("vtkMRMLPlotChartNode")
    assert chart.GetNumberOfPlotSeriesNodes() == 1  # only the lumen column exists


@pytest.mark.slow  # over 9 s (pytest --durations, 2 shared cores)
def test_cli_demo_scene_reloads_with_every_node(tmp_path):
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    from IVUSReconstructLib.cli import main

    out = tmp_path / "demo"
    args = ["demo", "--preset", "coronary", "--length-mm", "4", "--size-px", "128", "--out", str(out)]
    assert main(args) == 0
    reloaded = mrml.load_scene(out / "scene.mrml")
    assert reloaded.GetNumberOfNodesByClass("vtkMRMLModelNode") == 3
    labelmap = reloaded.GetFirstNodeByName("IVUS vessel labelmap")
    assert labelmap is not None and labelmap.IsA("vtkMRMLLabelMapVolumeNode")
    # the labelmap's lumen voxels lie within the lumen model's RAS bounds
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    ijk_to_ras = vtkMatrix4x4()
    labelmap.GetIJKToRASMatrix(ijk_to_ras)
    image = labelmap.GetImageData()
    dims = image.GetDimensions()
    values = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[2], dims[1], dims[0])
    k, j, i = np.nonzero(values == 1)
    m = np.array([[ijk_to_ras.GetElement(r, c) for c in range(4)] for r in range(4)])
    ras = (m @ np.vstack([i, j, k, np.ones_like(i)]))[:3].T
    lumen_bounds = np.array(reloaded.GetFirstNodeByName("IVUS lumen").GetPolyData().GetBounds()).reshape(3, 2)
    assert np.all(ras.min(axis=0) >= lumen_bounds[:, 0] - 0.3) and np.all(
        ras.max(axis=0) <= lumen_bounds[:, 1] + 0.3
    )
    for part, (color, opacity, scalars) in mrml.MODEL_STYLE.items():
        node = reloaded.GetFirstNodeByName(f"IVUS {part}")
        assert node is not None, part
        reader = vtkXMLPolyDataReader()
        reader.SetFileName(str(out / f"{part}.vtp"))
        reader.Update()
        direct, loaded = reader.GetOutput(), node.GetPolyData()
        assert direct.GetNumberOfPoints() > 100
        assert loaded.GetNumberOfPoints() == direct.GetNumberOfPoints()
        assert loaded.GetNumberOfCells() == direct.GetNumberOfCells()
        # RAS on disk and in the scene: an LPS flip would negate the R and A bounds
        assert loaded.GetBounds() == pytest.approx(direct.GetBounds(), abs=1e-6)
        display = node.GetDisplayNode()
        assert display.GetColor() == pytest.approx(color)
        assert display.GetOpacity() == pytest.approx(opacity)
        assert bool(display.GetScalarVisibility()) == (scalars is not None)
        if scalars is not None:
            assert display.GetActiveScalarName() == scalars
            assert display.GetScalarRange() == pytest.approx(mrml.BURDEN_RANGE_PERCENT)
            assert display.GetScalarRangeFlag() == 0  # manual: the same colours in every run
    colors = reloaded.GetFirstNodeByName("IVUS plaque burden colors")
    assert colors is not None and colors.GetNumberOfColors() == 256
    assert reloaded.GetFirstNodeByName("IVUS wall").GetDisplayNode().GetColorNode() is colors
    frames_csv = (out / "frames.csv").read_text().splitlines()
    table = reloaded.GetFirstNodeByName("IVUS frames")
    assert table.GetNumberOfRows() == len(frames_csv) - 1
    assert table.GetNumberOfColumns() == len(frames_csv[0].split(","))
    chart = reloaded.GetFirstNodeByClass("vtkMRMLPlotChartNode")
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    assert {chart.GetNthPlotSeriesNode(i).GetTableNode() for i in range(3)} == {table}
    curve = reloaded.GetFirstNodeByClass("vtkMRMLMarkupsCurveNode")
    stored = json.loads((out / "centerline.mrk.json").read_text())["markups"][0]["controlPoints"]
    assert curve.GetNumberOfControlPoints() == len(stored) >= 2
    lps = np.array([point["position"] for point in stored], dtype=float)
    assert mrml._control_points(curve) == pytest.approx(lps * [-1.0, -1.0, 1.0], abs=1e-4)
    markers = reloaded.GetFirstNodeByName("IVUS MLA and references")
    summary = json.loads((out / "summary.json").read_text())
    assert markers.GetNumberOfControlPoints() == len(metrics.marker_points(summary))
    assert markers.GetNthControlPointLabel(0) == f"MLA {summary['mla']['area_mm2']:.2f} mm2"
    rows = pipeline.read_frames_csv(out / "frames.csv")
    mla = rows[summary["mla"]["frame"]]
    position = np.zeros(3)
    markers.GetNthControlPointPosition(0, position)
    assert position == pytest.approx([float(mla[k]) for k in ("x_mm", "y_mm", "z_mm")], abs=1e-3)
