"""Scene adapter: MRML nodes <-> core types.

The only Lib module that knows MRML. Every function takes the scene (or a node) as an
argument, so it runs unchanged in desktop 3D Slicer, in a web app and in plain pytest with
the ``slicer-core`` wheel (``from slicer import vtkMRMLScene``). ``slicer`` is imported
lazily so that importing this module never requires it. What needs no MRML (outlines, frame
masks, edited frames, markers, plan rows) lives in the core (labelmap, edits, geometry, metrics).

Volume geometry (``pullback_to_volume_node``): I = image column, J = image row, K = frame.
IJK-to-RAS has the directions diag(-1, -1, 1), the pixel spacing in-plane, the mean frame
spacing along K and the catheter centre at R = A = 0, so a frame-plane point (x, y) mm of
frame k sits at RAS (-x, -y, k * dz): the axial slice view shows the frame as the image
looks, and the sagittal and coronal views are the two longitudinal cuts.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkIntArray, vtkPoints, vtkStringArray
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from . import edits
from .coregistration import closest_arc_length_mm as arc_length_of_point
from .coregistration import frame_ijk_to_ras, frame_spacing_mm
from .errors import input_error
from .geometry import mm_to_fine_px, oversampled_ijk_to_ras, volume_ijk_to_ras
from .geometry import rasterize_polygon_px as rasterize_polygon
from .io.centerline import centerline_from_polydata
from .io.images import pullback_from_volume
from .labelmap import (
    contours_from_masks,
    frame_polygons_px,
    image_array,
    image_data,
    mask_outlines_px,
    rasterize_frames,
)
from .metrics import flatten_rows, marker_points, marker_positions, unit_label
from .plan import centerline_point_at, plan_rows
from .types import Centerline, ContourSet, FramePoses, Landmark, Metrics, Pullback, Valued

__all__ = [
    "SEGMENT_NAMES",
    "prepare_scene",
    "frame_spacing_mm",
    "pullback_to_volume_node",
    "volume_node_to_pullback",
    "rasterize_polygon",
    "mask_outlines_px",
    "contours_to_segmentation",
    "segmentation_to_contours",
    "mesh_to_model_node",
    "metrics_to_table_node",
    "summary_to_table_node",
    "areas_plot_chart",
    "metrics_to_markups",
    "centerline_to_curve_node",
    "curve_node_to_centerline",
    "model_node_to_centerline",
    "markups_to_landmarks",
    "frame_ijk_to_ras",
    "current_frame_volume_node",
    "show_result",
    "plan_to_nodes",
    "update_plan_from_zones",
    "observe_plan",
    "centerline_point_at",
    "arc_length_of_point",
    "write_scene",
    "scene_writers",
    "load_scene",
    "acquisition_values",
    "ATTRIBUTE_PREFIX",
    "FRAME_ATTRIBUTE",
    "PLAN_ATTRIBUTE",
    "edited_frames",
    "propagate_edits",
    "update_result_nodes",
    "add_source_column",
    "KEYFRAMES_ATTRIBUTE",
]

SEGMENT_NAMES = ("Lumen", "Vessel", "Calcium")
SEGMENT_COLORS = {"Lumen": (0.95, 0.35, 0.30), "Vessel": (0.35, 0.75, 0.40), "Calcium": (1.0, 1.0, 0.85)}
MODEL_STYLE = {
    # name: (colour, opacity, scalars shown)
    "lumen": ((0.90, 0.25, 0.20), 1.0, None),
    "vessel": ((0.85, 0.85, 0.85), 0.35, None),
    "wall": ((1.0, 1.0, 1.0), 1.0, "plaque_burden_percent"),
}
BURDEN_RANGE_PERCENT = (0.0, 100.0)
ATTRIBUTE_PREFIX = "IVUSReconstruct."
FRAME_ATTRIBUTE = ATTRIBUTE_PREFIX + "frame"  # the frame current_frame_volume_node shows
# Gaussian sigma (labelmap pixels) that smooths the staircase before outlines are traced
SMOOTHING_PX = 0.0


def _slicer() -> Any:
    import slicer

    return slicer


# ----------------------------------------------------------------------------- scene set-up


def prepare_scene(scene: Any) -> Any:
    """Register what a bare ``vtkMRMLScene`` lacks outside the Slicer application.

    Desktop Slicer's module logics do this at start-up; with ``slicer-core`` alone, markups
    JSON storage nodes are not registered and no segmentation converter rule exists. Safe to
    call more than once and inside Slicer.

    Returns
    -------
    The same scene, for chaining.
    """
    slicer = _slicer()
    for cls in (
        "vtkMRMLMarkupsJsonStorageNode",
        "vtkMRMLMarkupsPlaneJsonStorageNode",
        "vtkMRMLMarkupsROIJsonStorageNode",
    ):
        if scene.GetClassNameByTag(getattr(slicer, cls)().GetNodeTagName()) != cls:
            scene.RegisterNodeClass(getattr(slicer, cls)())
    if scene.GetNodeByID("vtkMRMLSelectionNodeSingleton") is None:
        # markups ask the selection node for the length unit (Slicer's Units logic adds it)
        selection = slicer.vtkMRMLSelectionNode()
        selection.SetSingletonTag("Singleton")
        selection.SetSaveWithScene(False)
        scene.AddNode(selection)
        unit = slicer.vtkMRMLUnitNode()
        unit.SetName("Millimetre")
        unit.SetQuantity("length")
        unit.SetSuffix("mm")
        unit.SetSaveWithScene(False)
        scene.AddNode(unit)
        selection.SetUnitNodeID("length", unit.GetID())
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if not factory.GetConverterRules():
        # the converter factory is a process-wide singleton: register once, as the
        # Segmentations module logic does in Slicer
        factory.RegisterConverterRule(slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule())
        factory.RegisterConverterRule(slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule())
    return scene


def _new_node(scene: Any, class_name: str, name: str, node: Any | None = None) -> Any:
    if node is not None:
        return node
    return scene.AddNewNodeByClass(class_name, scene.GenerateUniqueName(name))


def _display_node(node: Any) -> Any:
    """The node's display node, made with the defaults when it has none yet."""
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node.GetDisplayNode()


def _matrix(array: np.ndarray) -> Any:
    m = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def _array(matrix: Any) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _ijk_to_ras(node: Any) -> np.ndarray:
    m = vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return _array(m)


# ----------------------------------------------------------------------------- pullback volume


def pullback_to_volume_node(
    scene: Any, pullback: Pullback, name: str = "IVUS pullback", *, node: Any | None = None
) -> Any:
    """Put a pullback in the scene as a scalar volume whose slices are the frames.

    Parameters
    ----------
    scene : vtkMRMLScene
    pullback : Pullback
        Frames (N, H, W) become a volume of dimensions (W, H, N).
    name : str
    node : vtkMRMLScalarVolumeNode, optional
        Node to update instead of creating one.

    Returns
    -------
    vtkMRMLScalarVolumeNode
        With attributes ``IVUSReconstruct.*`` holding frame times, speed, catheter centre and
        acquisition, so that :func:`volume_node_to_pullback` gets the pullback back.
    """
    node = _new_node(scene, "vtkMRMLScalarVolumeNode", name, node)
    node.SetAndObserveImageData(image_data(np.asarray(pullback.frames)))
    node.SetIJKToRASMatrix(
        _matrix(
            volume_ijk_to_ras(pullback.pixel_spacing_mm, pullback.catheter_center_px, frame_spacing_mm(pullback))
        )
    )
    attributes = {
        "frame_times_s": json.dumps(np.asarray(pullback.frame_times_s, dtype=float).tolist()),
        "pullback_speed_mm_s": json.dumps(pullback.pullback_speed_mm_s),
        "catheter_center_px": json.dumps([float(v) for v in pullback.catheter_center_px]),
        "acquisition": pullback.acquisition,
        "source": json.dumps(pullback.source),
    }
    for key, value in attributes.items():
        node.SetAttribute(ATTRIBUTE_PREFIX + key, value)
    display = _display_node(node)
    if display is not None:
        display.SetAutoWindowLevel(False)
        high = 255.0 if np.asarray(pullback.frames).dtype == np.uint8 else float(np.max(pullback.frames))
        display.SetWindowLevelMinMax(0.0, high)
        grey = scene.GetNodeByID("vtkMRMLColorTableNodeGrey")
        if grey is not None:
            display.SetAndObserveColorNodeID(grey.GetID())
    return node


def volume_node_to_pullback(
    node: Any,
    *,
    pixel_spacing_mm: float | None = None,
    pullback_speed_mm_s: float | None = None,
    frame_rate_hz: float | None = None,
    catheter_center_px: tuple[float, float] | None = None,
) -> Pullback:
    """Read a pullback back from a scalar volume (K slices = frames).

    Explicit arguments win over the ``IVUSReconstruct.*`` attributes written by
    :func:`pullback_to_volume_node`; a volume loaded another way (DICOM module, NRRD) takes
    its in-plane spacing from the volume and needs ``frame_rate_hz`` for frame times.

    Raises
    ------
    IVUSInputError
        When the frame times can be neither read nor derived.
    """
    keys = ("frame_times_s", "pullback_speed_mm_s", "catheter_center_px", "acquisition", "source")
    text = {key: node.GetAttribute(ATTRIBUTE_PREFIX + key) for key in keys}
    stored = {k: v if v is None or k == "acquisition" else json.loads(v) for k, v in text.items()}
    return pullback_from_volume(
        image_array(node.GetImageData()), node.GetSpacing()[:2], stored, name=node.GetName(),
        pixel_spacing_mm=pixel_spacing_mm, pullback_speed_mm_s=pullback_speed_mm_s,
        frame_rate_hz=frame_rate_hz, catheter_center_px=catheter_center_px,
    )  # fmt: skip


# ----------------------------------------------------------------------------- segmentation


def _fine_ijk_to_ras(volume_node: Any, oversampling: int) -> np.ndarray:
    """IJK-to-RAS (4, 4) of the volume's frames subdivided ``oversampling`` times in-plane."""
    return oversampled_ijk_to_ras(_ijk_to_ras(volume_node), oversampling)


def _geometry_image(slicer: Any, volume_node: Any, oversampling: int) -> Any:
    """An empty vtkOrientedImageData with the (oversampled) frame geometry of the volume."""
    dims = volume_node.GetImageData().GetDimensions()
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(dims[0] * oversampling, dims[1] * oversampling, dims[2])
    image.SetImageToWorldMatrix(_matrix(_fine_ijk_to_ras(volume_node, oversampling)))
    return image


def _default_oversampling(volume_node: Any) -> int:
    # 2x in-plane halves the outline error; skip it when a labelmap layer would pass 2^27
    # voxels (a long clinical pullback), where memory matters more
    dims = volume_node.GetImageData().GetDimensions()
    return 2 if 4 * dims[0] * dims[1] * dims[2] <= 2**27 else 1


def _segmentation_oversampling(slicer: Any, segmentation_node: Any, volume_node: Any) -> int:
    """In-plane oversampling of a segmentation's reference geometry relative to the volume.

    1 when the geometry is missing or is not an integer subdivision of the volume's pixels
    (the labelmap is then read on the volume grid).
    """
    converter = slicer.vtkSegmentationConverter
    text = segmentation_node.GetSegmentation().GetConversionParameter(
        converter.GetReferenceImageGeometryParameterName()
    )
    if not text:
        return 1
    geometry = slicer.vtkOrientedImageData()
    if not converter.DeserializeImageGeometry(text, geometry, False):
        return 1
    m = vtkMatrix4x4()
    geometry.GetImageToWorldMatrix(m)
    factor = round(float(volume_node.GetSpacing()[0]) / float(geometry.GetSpacing()[0]))
    if factor < 2 or not np.allclose(_array(m), _fine_ijk_to_ras(volume_node, factor), atol=1e-6):
        return 1
    return int(factor)


def _set_segment_mask(
    slicer: Any,
    segmentation_node: Any,
    segment_id: str,
    mask: np.ndarray,
    offset_kji: tuple[int, int, int],
    ijk_to_ras: Any,
) -> None:
    """Replace a segment's labelmap by ``mask`` (K, J, I) placed at index ``offset_kji``."""
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(image_data(mask.astype(np.uint8)))
    k0, j0, i0 = offset_kji
    k, j, i = mask.shape
    # the extent, not the origin, carries the crop: the labelmap stays on the reference grid
    image.SetExtent(i0, i0 + i - 1, j0, j0 + j - 1, k0, k0 + k - 1)
    image.SetImageToWorldMatrix(ijk_to_ras)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(
        image, segmentation_node, segment_id, logic.MODE_REPLACE, None, True
    ):
        raise RuntimeError(f"could not set the {segment_id} labelmap")


def contours_to_segmentation(
    scene: Any,
    contours: ContourSet,
    volume_node: Any,
    *,
    name: str = "IVUS contours",
    node: Any | None = None,
    oversampling: int | None = None,
) -> Any:
    """Rasterise contours on the pullback frames as segments Lumen, Vessel, Calcium.

    Each segment is a binary labelmap (the pixel centres inside the polygon) on the frames
    of ``volume_node``, subdivided ``oversampling`` times in-plane. The subdivided grid is the
    segmentation's reference geometry, so the Segment Editor edits at that resolution (as
    after its "Specify geometry" with an oversampling factor) and
    :func:`segmentation_to_contours` reads it back. Vessel is the whole EEM area (it contains
    the lumen), so segments overlap and each lives in its own labelmap layer, cropped to the
    frames and pixels it covers. Frames without a contour stay empty.

    Parameters
    ----------
    scene : vtkMRMLScene
    contours : ContourSet
        Frame-plane mm; converted with the pullback's pixel spacing and catheter centre
        (the volume attributes), or the ContourSet's when given.
    volume_node : vtkMRMLScalarVolumeNode
        From :func:`pullback_to_volume_node`.
    oversampling : int, optional
        In-plane subdivision of the volume's pixels (1 = the volume grid). Default 2, or 1
        when a layer of the subdivided grid would exceed 2^27 voxels.

    Returns
    -------
    vtkMRMLSegmentationNode
    """
    slicer = _slicer()
    prepare_scene(scene)
    f = int(oversampling) if oversampling is not None else _default_oversampling(volume_node)
    if f < 1:
        raise ValueError(f"oversampling must be >= 1, got {oversampling}")
    spacing_rc, center_rc = _frame_mapping(volume_node, contours)
    dims = volume_node.GetImageData().GetDimensions()
    shape = (dims[2], dims[1] * f, dims[0] * f)
    polygons = frame_polygons_px(
        contours, shape[0], lambda polygon: mm_to_fine_px(polygon, spacing_rc, center_rc, f), where=name
    )
    node = _new_node(scene, "vtkMRMLSegmentationNode", name, node)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    converter = slicer.vtkSegmentationConverter
    node.GetSegmentation().SetConversionParameter(
        converter.GetReferenceImageGeometryParameterName(),
        converter.SerializeImageGeometry(_geometry_image(slicer, volume_node, f)),
    )
    _display_node(node)
    segmentation = node.GetSegmentation()
    ijk_to_ras = _matrix(_fine_ijk_to_ras(volume_node, f))
    for segment in SEGMENT_NAMES:
        if not segmentation.GetSegment(segment):
            segmentation.AddEmptySegment(segment, segment, list(SEGMENT_COLORS[segment]))
        items = polygons[segment.lower()]
        # cropped to the bounding box of the segment's polygons (pixel centres inside it)
        mask, offset = rasterize_frames(items, shape[1:]) if items else (np.zeros((1, 1, 1), bool), (0, 0, 0))
        _set_segment_mask(slicer, node, segment, mask, offset, ijk_to_ras)
    return node


def _frame_mapping(
    volume_node: Any, contours: ContourSet | None = None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Pixel spacing (row, col) and catheter centre (row, col) of the frames of a volume."""
    spacing = volume_node.GetSpacing()
    spacing_rc = (float(spacing[1]), float(spacing[0]))
    center = volume_node.GetAttribute(ATTRIBUTE_PREFIX + "catheter_center_px")
    if center is not None:
        center_rc = tuple(json.loads(center))
    elif contours is not None and contours.catheter_center_px is not None:
        center_rc = contours.catheter_center_px
    else:
        dims = volume_node.GetImageData().GetDimensions()
        center_rc = ((dims[1] - 1) / 2.0, (dims[0] - 1) / 2.0)
    return spacing_rc, (float(center_rc[0]), float(center_rc[1]))


def _segment_mask(
    slicer: Any, segmentation_node: Any, segment_id: str, volume_node: Any, oversampling: int = 1
) -> np.ndarray:
    """A segment's labelmap resampled on the volume's frames subdivided ``oversampling`` times.

    Returns
    -------
    ndarray of shape (K, J * oversampling, I * oversampling), bool
    """
    reference = _geometry_image(slicer, volume_node, oversampling)
    dims = reference.GetDimensions()
    reference.AllocateScalars(3, 1)  # VTK_UNSIGNED_CHAR
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    resampled = slicer.vtkOrientedImageData()
    if labelmap.IsEmpty() if hasattr(labelmap, "IsEmpty") else labelmap.GetNumberOfPoints() == 0:
        return np.zeros((dims[2], dims[1], dims[0]), dtype=bool)
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled
    )
    return image_array(resampled) > 0


def segmentation_to_contours(
    segmentation_node: Any,
    volume_node: Any,
    *,
    template: ContourSet | None = None,
    min_calcium_pixels: int = 4,
    smoothing_px: float = SMOOTHING_PX,
) -> ContourSet:
    """Outline the segments Lumen, Vessel and Calcium frame by frame, back to frame-plane mm.

    A frame with a Lumen region becomes a FrameContours: the largest Lumen region's outline,
    the largest Vessel region's outline (or None) and every Calcium region. Edits made with
    the Segment Editor come back this way. Labelmaps are read on the segmentation's
    reference geometry when it subdivides the volume's pixels (see
    :func:`contours_to_segmentation`), else on the volume grid.

    Parameters
    ----------
    segmentation_node : vtkMRMLSegmentationNode
    volume_node : vtkMRMLScalarVolumeNode
        The pullback volume the frames are read on.
    template : ContourSet, optional
        Phases, ``z_mm`` and landmarks to carry over for frames of the same index.
    min_calcium_pixels : int
        Smaller calcium specks (editing debris), in volume pixels, are ignored.
    smoothing_px : float
        Gaussian standard deviation, in labelmap pixels, before tracing (see
        :func:`mask_outlines_px`).

    Returns
    -------
    ContourSet
        Outlines within half a volume pixel of the rasterised polygons.
    """
    slicer = _slicer()
    spacing_rc, center_rc = _frame_mapping(volume_node, template)
    f = _segmentation_oversampling(slicer, segmentation_node, volume_node)

    segmentation = segmentation_node.GetSegmentation()
    masks = {}
    for segment in SEGMENT_NAMES:
        segment_id = segmentation.GetSegmentIdBySegmentName(segment)
        masks[segment] = (
            _segment_mask(slicer, segmentation_node, segment_id, volume_node, f) if segment_id else None
        )
    if masks["Lumen"] is None:
        raise input_error(
            segmentation_node.GetName(), "segment Lumen", "is missing", "name the lumen segment 'Lumen'"
        )
    masks = {segment.lower(): mask for segment, mask in masks.items()}
    return contours_from_masks(
        masks, spacing_rc, center_rc, f,
        template=template, min_calcium_pixels=min_calcium_pixels, smoothing_px=smoothing_px,
    )  # fmt: skip


# ----------------------------------------------------------------------------- models, tables, plots


def _burden_color_node(scene: Any) -> Any:
    """A colour table for plaque burden: Slicer's Viridis when present, else our own."""
    for node_id in ("vtkMRMLColorTableNodeFileViridis.txt",):
        existing = scene.GetNodeByID(node_id)
        if existing is not None:
            return existing
    existing = scene.GetFirstNodeByName("IVUS plaque burden colors")
    if existing is not None:
        return existing
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", "IVUS plaque burden colors")
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    # a hidden storable node would be moved to scene_Private/ when the scene is committed
    node.SetHideFromEditors(False)
    # viridis anchors: a perceptually uniform map readable by colour-blind users
    anchors = np.array(
        [
            [0.267, 0.005, 0.329],
            [0.229, 0.322, 0.546],
            [0.128, 0.567, 0.551],
            [0.369, 0.789, 0.383],
            [0.993, 0.906, 0.144],
        ]
    )
    t = np.linspace(0.0, 1.0, 256)
    x = np.linspace(0.0, 1.0, len(anchors))
    rgb = np.column_stack([np.interp(t, x, anchors[:, c]) for c in range(3)])
    for i, (r, g, b) in enumerate(rgb):
        node.SetColor(i, f"{100.0 * i / 255:.0f}%", float(r), float(g), float(b), 1.0)
    return node


def mesh_to_model_node(
    scene: Any,
    polydata: Any,
    name: str,
    *,
    color: Sequence[float] = (0.9, 0.25, 0.2),
    opacity: float = 1.0,
    scalars: str | None = "plaque_burden_percent",
    scalar_range: Sequence[float] = BURDEN_RANGE_PERCENT,
    node: Any | None = None,
) -> Any:
    """Show a core mesh (world RAS mm) as a model node.

    Parameters
    ----------
    polydata : vtkPolyData
        Deep-copied into the node.
    scalars : str or None
        Point array to colour by (over ``scalar_range``); None or a missing array shows ``color``.

    Returns
    -------
    vtkMRMLModelNode
    """
    node = _new_node(scene, "vtkMRMLModelNode", name, node)
    copy = vtkPolyData()
    copy.DeepCopy(polydata)
    node.SetAndObservePolyData(copy)
    display = _display_node(node)
    display.SetColor(*[float(c) for c in color])
    display.SetOpacity(float(opacity))
    display.SetBackfaceCulling(False)
    if scalars and copy.GetPointData().GetArray(scalars) is not None:
        display.SetActiveScalar(scalars, 0)  # vtkAssignAttribute::POINT_DATA
        display.SetAndObserveColorNodeID(_burden_color_node(scene).GetID())
        display.SetScalarRangeFlag(0)  # manual range: the same colours in every run
        display.SetScalarRange(*[float(v) for v in scalar_range])
        display.SetScalarVisibility(True)
    else:
        display.SetScalarVisibility(False)
    return node


def _table_columns(table_node: Any, columns: dict[str, np.ndarray]) -> None:
    table = table_node.GetTable()
    table.Initialize()
    for column, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind in "iub":
            array = vtkIntArray()
            cast = int
        else:
            array = vtkDoubleArray()
            cast = float
        array.SetName(column)
        array.SetNumberOfTuples(len(values))
        for i, v in enumerate(values):
            array.SetValue(i, cast(v))
        table.AddColumn(array)
    table_node.Modified()


def metrics_to_table_node(
    scene: Any, metrics: Metrics, *, name: str = "IVUS frames", node: Any | None = None
) -> Any:
    """Per-frame metrics as a table node, one column per ``metrics.per_frame`` key (same order).

    Returns
    -------
    vtkMRMLTableNode
    """
    node = _new_node(scene, "vtkMRMLTableNode", name, node)
    columns = {}
    for column, values in metrics.per_frame.items():
        values = np.asarray(values)
        columns[column] = values if values.dtype.kind in "iubf" else values.astype(float)
    _table_columns(node, columns)
    for column in columns:
        if unit_label(column):
            node.SetColumnUnitLabel(column, unit_label(column))
    return node


def summary_to_table_node(
    scene: Any, metrics: Metrics, *, name: str = "IVUS summary", node: Any | None = None
) -> Any:
    """Summary metrics flattened to rows ``key`` / ``value`` (``mla.area_mm2``, ...).

    Returns
    -------
    vtkMRMLTableNode
    """
    return _key_value_table(scene, name, flatten_rows(metrics.summary), node)


def areas_plot_chart(
    scene: Any,
    table_node: Any,
    *,
    name: str = "IVUS areas",
    x_column: str = "arc_length_mm",
    y_columns: Sequence[str] = ("lumen_area_mm2", "vessel_area_mm2", "plaque_burden_percent"),
) -> Any:
    """A plot chart of per-frame columns against arc length (one line series per column).

    Returns
    -------
    vtkMRMLPlotChartNode
        Its series reference ``table_node`` by column name, so edits of the table show.
    """
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", scene.GenerateUniqueName(name))
    colors = {
        "lumen_area_mm2": (0.90, 0.25, 0.20),
        "vessel_area_mm2": (0.20, 0.55, 0.30),
        "plaque_burden_percent": (0.25, 0.35, 0.80),
    }
    table = table_node.GetTable()
    for column in y_columns:
        if table.GetColumnByName(column) is None:
            continue
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{name}: {column}")
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(x_column)
        series.SetYColumnName(column)
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        series.SetLineStyle(series.LineStyleSolid)
        series.SetColor(*colors.get(column, (0.3, 0.3, 0.3)))
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle("IVUS areas and plaque burden")
    chart.SetXAxisTitle("arc length (mm)")
    chart.SetYAxisTitle("area (mm²) / burden (%)")
    return chart


def _fiducials(
    scene: Any, name: str, points: list[tuple[str, np.ndarray, str]], node: Any | None = None
) -> Any:
    node = _new_node(scene, "vtkMRMLMarkupsFiducialNode", name, node)
    node.RemoveAllControlPoints()
    for label, position, description in points:
        index = node.AddControlPoint(*[float(v) for v in position], label)
        node.SetNthControlPointDescription(index, description)
        node.SetNthControlPointLocked(index, True)
    display = _display_node(node)
    if display is not None:
        display.SetSelectedColor(1.0, 0.85, 0.1)
        display.SetColor(1.0, 0.85, 0.1)
    return node


def metrics_to_markups(
    scene: Any,
    metrics: Metrics,
    poses: FramePoses,
    *,
    name: str = "IVUS MLA and references",
    node: Any | None = None,
) -> Any:
    """Point list with the MLA and the proximal and distal reference frames.

    Each point is the origin (on the centerline) of that frame's pose; labels carry the
    MLA area and the descriptions the role.

    Returns
    -------
    vtkMRMLMarkupsFiducialNode
    """
    rows = {int(f): i for i, f in enumerate(poses.frame_index)}
    points = [
        (label, poses.origin_ras_mm[rows[frame]], description)
        for label, frame, description in marker_points(metrics.summary)
        if frame in rows
    ]
    return _fiducials(scene, name, points, node)


# ----------------------------------------------------------------------------- centerline and landmarks


def centerline_to_curve_node(
    scene: Any, centerline: Centerline, name: str = "IVUS centerline", *, node: Any | None = None
) -> Any:
    """A markups curve through the centerline points (linear, so it passes through each).

    Returns
    -------
    vtkMRMLMarkupsCurveNode
    """
    prepare_scene(scene)
    node = _new_node(scene, "vtkMRMLMarkupsCurveNode", name, node)
    points = vtkPoints()
    for p in np.asarray(centerline.points_ras_mm, dtype=float):
        points.InsertNextPoint(*p)
    node.SetCurveTypeToLinear()
    node.SetControlPointPositionsWorld(points)
    for i in range(node.GetNumberOfControlPoints()):
        node.SetNthControlPointLocked(i, True)
    node.SetAttribute(ATTRIBUTE_PREFIX + "order", "distal-first")
    display = _display_node(node)
    if display is not None:
        display.SetPointLabelsVisibility(False)
        display.SetGlyphScale(0.5) if hasattr(display, "SetGlyphScale") else None
    return node


def _control_points(node: Any) -> np.ndarray:
    n = node.GetNumberOfControlPoints()
    points = np.zeros((n, 3))
    for i in range(n):
        node.GetNthControlPointPositionWorld(i, points[i])
    return points


def curve_node_to_centerline(node: Any, *, order: str = "distal-first") -> Centerline:
    """Centerline from a markups curve's control points (world RAS mm).

    Parameters
    ----------
    order : {"distal-first", "proximal-first"}
        ``proximal-first`` reverses the points so that the first one is distal.
    """
    points = _control_points(node)
    if len(points) < 2:
        raise input_error(
            node.GetName(), "control points", f"are {len(points)}", "place at least two curve points"
        )
    if order == "proximal-first":
        points = points[::-1]
    return Centerline(points_ras_mm=points, source=f"slicer markups curve {node.GetName()}")


def model_node_to_centerline(node: Any, *, order: str = "distal-first") -> Centerline:
    """Centerline from a VMTK centerline model: the longest polyline, with its radius array.

    The radius comes from ``Radius`` or ``MaximumInscribedSphereRadius`` when present.
    """
    return centerline_from_polydata(node.GetPolyData(), order=order, name=node.GetName())


def markups_to_landmarks(node: Any, *, kind: str = "side_branch") -> tuple[Landmark, ...]:
    """Landmarks from a point list whose labels are frame numbers (as DESIGN.md accepts).

    Raises
    ------
    IVUSInputError
        When a label is not a frame number.
    """
    landmarks = []
    points = _control_points(node)
    for i, point in enumerate(points):
        label = node.GetNthControlPointLabel(i).strip()
        try:
            frame = int(label.split()[0]) if label else None
        except ValueError:
            frame = None
        if frame is None:
            raise input_error(
                node.GetName(),
                f"point {i + 1} label '{label}'",
                "is not a frame number",
                "rename it to the frame index",
            )
        description = node.GetNthControlPointDescription(i).strip()
        landmarks.append(Landmark(frame=frame, kind=description or kind, point_ras_mm=point.copy()))
    return tuple(sorted(landmarks, key=lambda lm: lm.frame))


# ----------------------------------------------------------------------------- current frame in 3D


def current_frame_volume_node(
    scene: Any,
    pullback: Pullback,
    poses: FramePoses,
    frame: int,
    *,
    name: str = "IVUS current frame",
    node: Any | None = None,
) -> Any:
    """A one-slice volume of ``frame`` placed where and how the frame sits in the 3D vessel.

    Slice views aligned with it (``vtkMRMLSliceNode.SetSliceToRASByNTP``) show the frame;
    with "slice visible in 3D" it appears at its place and angle in the 3D view.

    Parameters
    ----------
    frame : int
        Pullback frame index; the nearest posed frame is used when it is not posed.

    Returns
    -------
    vtkMRMLScalarVolumeNode
        Attribute ``IVUSReconstruct.frame`` is the frame shown.
    """
    row = int(np.argmin(np.abs(np.asarray(poses.frame_index) - frame)))
    shown = int(poses.frame_index[row])
    node = _new_node(scene, "vtkMRMLScalarVolumeNode", name, node)
    node.SetAndObserveImageData(image_data(np.asarray(pullback.frames[shown])[None]))
    node.SetIJKToRASMatrix(_matrix(frame_ijk_to_ras(pullback, poses, row)))
    node.SetAttribute(FRAME_ATTRIBUTE, str(shown))
    _display_node(node)
    return node


def acquisition_values(volume_node: Any, dicom_path: str | Path | None = None) -> dict[str, Valued]:
    """Known scalar acquisition values of a volume by ``limits.ACQUISITION_OPTIONS`` field: spacing of the
    node; rate and speed of its attributes, under ``dicom_path``'s header as ``io.dicom.read_acquisition``
    (the command line's reading) gives it."""
    from .gating import frame_rate_hz
    from .io.dicom import read_acquisition

    name = volume_node.GetName()
    values = {"pixel_spacing_mm": Valued(float(volume_node.GetSpacing()[0]), f"volume node {name} spacing")}
    times = volume_node.GetAttribute(ATTRIBUTE_PREFIX + "frame_times_s")
    speed = json.loads(volume_node.GetAttribute(ATTRIBUTE_PREFIX + "pullback_speed_mm_s") or "null")
    attributes = {"frame_rate_hz": frame_rate_hz(json.loads(times)) if times else None, "pullback_speed_mm_s": speed}
    header = read_acquisition(dicom_path) if dicom_path is not None else {}
    for key, value in attributes.items():
        if header.get(key) is not None and header[key].value is not None:
            values[key] = Valued(float(header[key].value), header[key].source)
        elif value:
            values[key] = Valued(float(value), f"volume node {name} attribute")
    return values


# ----------------------------------------------------------------------------- whole results


def show_result(
    scene: Any,
    result: Any,
    *,
    volume_node: Any | None = None,
    segmentation_node: Any | None = None,
    prefix: str = "IVUS",
) -> dict[str, Any]:
    """Create every node of a pipeline result.

    Parameters
    ----------
    scene : vtkMRMLScene
    result : pipeline.RunResult
    volume_node : vtkMRMLScalarVolumeNode, optional
        The pullback volume already in the scene; created from ``result.pullback`` otherwise.
    segmentation_node : vtkMRMLSegmentationNode, optional
        Contours already in the scene (the user's edits): kept as they are, not rasterised again.

    Returns
    -------
    dict of str to node
        ``volume``, ``segmentation`` (when there is a pullback), ``lumen``, ``vessel``,
        ``wall`` (when present), ``table``, ``summary``, ``chart``, ``markers``, ``centerline``,
        and with a plan ``device``, ``proximal`` / ``distal`` (landing-zone lines), ``plan_table``.
    """
    prepare_scene(scene)
    nodes: dict[str, Any] = {}
    if result.pullback is not None:
        nodes["volume"] = volume_node or pullback_to_volume_node(scene, result.pullback, f"{prefix} pullback")
        nodes["segmentation"] = segmentation_node or contours_to_segmentation(
            scene, result.contours, nodes["volume"], name=f"{prefix} contours"
        )
    for part, (color, opacity, scalars) in MODEL_STYLE.items():
        polydata = getattr(result.mesh, part)
        if polydata is not None:
            nodes[part] = mesh_to_model_node(
                scene, polydata, f"{prefix} {part}", color=color, opacity=opacity, scalars=scalars
            )
    nodes["table"] = metrics_to_table_node(scene, result.metrics, name=f"{prefix} frames")
    add_source_column(nodes["table"], result.contours)
    nodes["summary"] = summary_to_table_node(scene, result.metrics, name=f"{prefix} summary")
    nodes["chart"] = areas_plot_chart(scene, nodes["table"], name=f"{prefix} areas")
    nodes["markers"] = metrics_to_markups(
        scene, result.metrics, result.poses, name=f"{prefix} MLA and references"
    )
    nodes["centerline"] = centerline_to_curve_node(scene, result.centerline, f"{prefix} centerline")
    plan = result.metrics.summary.get("plan")
    if plan:
        nodes.update(plan_to_nodes(scene, plan, result.centerline.points_ras_mm, prefix=prefix))
    return nodes


def _storage(scene: Any, node: Any, class_name: str, file_name: str) -> Any:
    storage = scene.AddNewNodeByClass(class_name)
    storage.SetFileName(file_name)
    node.SetAndObserveStorageNodeID(storage.GetID())
    return storage


def scene_writers() -> list[Callable[[Path], None]]:
    """``[write_scene]`` with slicer-core installed (the ``[slicer]`` extra), else ``[]``: for ``write_outputs``."""
    return [write_scene] if importlib.util.find_spec("slicer") is not None else []


def write_scene(out_dir: str | Path, *, scene_name: str = "scene.mrml") -> Path:
    """Write ``scene.mrml`` that opens an output folder's files in 3D Slicer.

    The scene references the files already in ``out_dir`` by relative path: ``lumen.vtp``,
    ``vessel.vtp``, ``wall.vtp`` (model storage nodes with coordinate system RAS, since Slicer
    reads untagged model files as LPS), ``centerline.mrk.json`` (markups JSON storage),
    ``frames.csv`` (table), ``vessel_labelmap.nrrd`` (labelmap volume). It adds ``markers.mrk.json`` (MLA and references, placed at the
    plane origins of ``frames.csv``), the plaque-burden colour table and a plot chart.
    Usable as an ``extra_writers`` entry of ``pipeline.write_outputs``.

    Returns
    -------
    Path
        The scene file.
    """
    slicer = _slicer()
    out_dir = Path(out_dir)
    scene = prepare_scene(slicer.vtkMRMLScene())
    scene.SetRootDirectory(str(out_dir))
    scene.SetURL(str(out_dir / scene_name))
    for part, (color, opacity, scalars) in MODEL_STYLE.items():
        path = out_dir / f"{part}.vtp"
        if not path.is_file():
            continue
        model = scene.AddNewNodeByClass("vtkMRMLModelNode", f"IVUS {part}")
        storage = _storage(scene, model, "vtkMRMLModelStorageNode", str(path))
        storage.SetCoordinateSystem(slicer.vtkMRMLStorageNode.CoordinateSystemRAS)
        if not storage.ReadData(model):
            raise input_error(path, "polydata", "could not be read", "re-run to rewrite the output folder")
        mesh_to_model_node(
            scene,
            model.GetPolyData(),
            model.GetName(),
            color=color,
            opacity=opacity,
            scalars=scalars,
            node=model,
        )
    colors = scene.GetFirstNodeByName("IVUS plaque burden colors")
    if colors is not None:
        storage = _storage(
            scene, colors, "vtkMRMLColorTableStorageNode", str(out_dir / "plaque_burden_colors.csv")
        )
        storage.WriteData(colors)
    if (out_dir / "vessel_labelmap.nrrd").is_file():
        # NRRD states its own space, so no coordinate-system flag is needed here
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "IVUS vessel labelmap")
        storage = _storage(
            scene, labelmap, "vtkMRMLVolumeArchetypeStorageNode", str(out_dir / "vessel_labelmap.nrrd")
        )
        storage.ReadData(labelmap)
    table = None
    if (out_dir / "frames.csv").is_file():
        table = scene.AddNewNodeByClass("vtkMRMLTableNode", "IVUS frames")
        storage = _storage(scene, table, "vtkMRMLTableStorageNode", str(out_dir / "frames.csv"))
        storage.ReadData(table)
        areas_plot_chart(scene, table)
    if (out_dir / "centerline.mrk.json").is_file():
        curve = scene.AddNewNodeByClass("vtkMRMLMarkupsCurveNode", "IVUS centerline")
        curve.CreateDefaultDisplayNodes()
        storage = _storage(
            scene, curve, "vtkMRMLMarkupsJsonStorageNode", str(out_dir / "centerline.mrk.json")
        )
        if not storage.ReadData(curve):
            raise input_error(
                out_dir / "centerline.mrk.json", "markups", "could not be read", "re-run the output"
            )
        # the name stays the one stored in the file: reloading the scene reads it again
    summary_path, frames_path = out_dir / "summary.json", out_dir / "frames.csv"
    if summary_path.is_file() and frames_path.is_file():
        from .pipeline import read_frames_csv

        points = marker_positions(json.loads(summary_path.read_text()), read_frames_csv(frames_path))
        if points:
            markers = _fiducials(scene, "IVUS MLA and references", points)
            storage = _storage(
                scene, markers, "vtkMRMLMarkupsJsonStorageNode", str(out_dir / "markers.mrk.json")
            )
            storage.WriteData(markers)
    _write_plan_nodes(scene, out_dir)
    if not scene.Commit():
        raise OSError(f"{out_dir / scene_name}: the scene could not be written")
    return out_dir / scene_name


def _write_plan_nodes(scene: Any, out_dir: Path) -> None:
    """The plan of ``summary.json`` as scene nodes stored beside it (device.vtp, zone lines, table)."""
    from .io.centerline import read_centerline

    summary_path, centerline_path = out_dir / "summary.json", out_dir / "centerline.mrk.json"
    if not (summary_path.is_file() and centerline_path.is_file()):
        return
    plan = json.loads(summary_path.read_text()).get("plan")
    if not plan:
        return
    slicer = _slicer()
    nodes = plan_to_nodes(scene, plan, read_centerline(centerline_path).points_ras_mm)
    if "device" in nodes:
        storage = _storage(scene, nodes["device"], "vtkMRMLModelStorageNode", str(out_dir / "device.vtp"))
        storage.SetCoordinateSystem(slicer.vtkMRMLStorageNode.CoordinateSystemRAS)
        storage.WriteData(nodes["device"])
    for side in ("proximal", "distal"):
        if side in nodes:
            path = out_dir / f"landing_zone_{side}.mrk.json"
            _storage(scene, nodes[side], "vtkMRMLMarkupsJsonStorageNode", str(path)).WriteData(nodes[side])
    _storage(scene, nodes["plan_table"], "vtkMRMLTableStorageNode", str(out_dir / "plan.tsv")).WriteData(
        nodes["plan_table"]
    )


def load_scene(path: str | Path) -> Any:
    """Read a scene file into a fresh scene (data files included), for checks and scripts."""
    slicer = _slicer()
    scene = prepare_scene(slicer.vtkMRMLScene())
    scene.SetURL(str(path))
    if not scene.Import():
        raise OSError(f"{path}: the scene could not be read")
    return scene


# ----------------------------------------------------------------------------- treatment plan

PLAN_ATTRIBUTE = ATTRIBUTE_PREFIX + "plan"
ZONE_COLOR = (0.18, 0.62, 0.31)


def _key_value_table(scene: Any, name: str, rows: list[tuple[str, str]], node: Any | None = None) -> Any:
    node = _new_node(scene, "vtkMRMLTableNode", name, node)
    table = node.GetTable()
    table.Initialize()
    for column, index in (("key", 0), ("value", 1)):
        array = vtkStringArray()
        array.SetName(column)
        for row in rows:
            array.InsertNextValue(row[index])
        table.AddColumn(array)
    node.Modified()
    return node


def _zone_line(scene: Any, name: str, ends: np.ndarray, node: Any | None = None) -> Any:
    node = _new_node(scene, "vtkMRMLMarkupsLineNode", name, node)
    wasModifying = node.StartModify()
    node.RemoveAllControlPoints()
    for label, position in zip(("start", "end"), ends, strict=True):
        node.AddControlPoint(*[float(v) for v in position], label)
    node.EndModify(wasModifying)
    display = _display_node(node)
    if display is not None:
        display.SetSelectedColor(*ZONE_COLOR)
        display.SetColor(*ZONE_COLOR)
    return node


def plan_to_nodes(
    scene: Any,
    plan: dict[str, Any],
    centerline_ras_mm: np.ndarray,
    *,
    nodes: dict[str, Any] | None = None,
    prefix: str = "IVUS",
    zones: bool = True,
) -> dict[str, Any]:
    """Show a plan: the device as a translucent model, a markups line per landing zone, a table.

    Parameters
    ----------
    plan : dict
        ``summary["plan"]``.
    centerline_ras_mm : ndarray of shape (K, 3)
        Distal first; plan positions are arc lengths from its first point.
    nodes : dict, optional
        Nodes of an earlier call, updated in place.
    zones : bool
        Place the landing-zone lines (False leaves them where they are).

    Returns
    -------
    dict of str to node
        ``device`` (model; attribute ``IVUSReconstruct.plan`` holds the plan as JSON),
        ``proximal`` / ``distal`` (markups lines, when the zone exists), ``plan_table``.
    """
    from .render import DEVICE_OPACITY, DEVICE_RGB, device_polydata

    prepare_scene(scene)
    nodes = dict(nodes or {})
    cl = np.asarray(centerline_ras_mm, dtype=float)
    (polydata,) = device_polydata({"plan": plan}, cl)[:1] or (None,)
    if polydata is not None:
        nodes["device"] = mesh_to_model_node(
            scene, polydata, f"{prefix} device", color=DEVICE_RGB, opacity=DEVICE_OPACITY, scalars=None,
            node=nodes.get("device"),
        )  # fmt: skip
        nodes["device"].SetAttribute(PLAN_ATTRIBUTE, json.dumps(plan, default=float))
    for side in ("proximal", "distal") if zones else ():
        zone = (plan.get("landing_zones") or {}).get(side)
        if zone is None:
            continue
        ends = np.array([centerline_point_at(cl, zone[k]) for k in ("start_mm", "end_mm")])
        nodes[side] = _zone_line(scene, f"{prefix} {side} landing zone", ends, node=nodes.get(side))
        nodes[side].SetAttribute(ATTRIBUTE_PREFIX + "landing_zone", side)
    nodes["plan_table"] = _key_value_table(scene, f"{prefix} plan", plan_rows(plan), nodes.get("plan_table"))
    return nodes


def update_plan_from_zones(
    nodes: dict[str, Any], per_frame: dict[str, np.ndarray], centerline_ras_mm: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Re-plan after a landing-zone line moved: device length, diameter, model and table follow.

    Each line's two points are projected on the centerline; the zone runs between their arc
    lengths (``plan.replan``).

    Returns
    -------
    (dict, list of dict)
        The new plan (also stored on the device node) and its flags.
    """
    from .plan import replan

    cl = np.asarray(centerline_ras_mm, dtype=float)
    plan = json.loads(nodes["device"].GetAttribute(PLAN_ATTRIBUTE))
    zones = {}
    for side in ("proximal", "distal"):
        line = nodes.get(side)
        if line is not None and line.GetNumberOfControlPoints() == 2:
            zones[side] = tuple(arc_length_of_point(cl, p) for p in _control_points(line))
    new, flags = replan(
        per_frame, plan, distal_zone_mm=zones.get("distal"), proximal_zone_mm=zones.get("proximal")
    )
    # the lines stay where the user put them: the device, its stored plan and the table follow
    nodes.update(plan_to_nodes(nodes["device"].GetScene(), new, cl, nodes=nodes, zones=False))
    return new, flags


def observe_plan(
    nodes: dict[str, Any], per_frame: dict[str, np.ndarray], centerline_ras_mm: np.ndarray
) -> list[tuple[Any, int]]:
    """Re-plan whenever a landing-zone point is moved (``PointModifiedEvent``: every move, by
    the mouse or a script; the end of a drag would only repeat the last). Returns (node, tag)
    pairs for ``RemoveObserver``."""
    tags = []

    def moved(caller: Any, event: Any) -> None:
        update_plan_from_zones(nodes, per_frame, centerline_ras_mm)

    for side in ("proximal", "distal"):
        line = nodes.get(side)
        if line is None:
            continue
        tags.append((line, line.AddObserver(line.PointModifiedEvent, moved)))
    return tags


# ----------------------------------------------------------------------------- propagating edits

KEYFRAMES_ATTRIBUTE = ATTRIBUTE_PREFIX + "keyframes"
"""Segmentation node attribute: JSON ``{"lumen": [frames], "vessel": [frames]}`` edited so far."""

_BORDER_SEGMENTS = {"lumen": "Lumen", "vessel": "Vessel"}


def _border_masks(segmentation_node: Any, volume_node: Any, template: ContourSet | None) -> tuple[Any, ...]:
    """Lumen and Vessel masks (K, J f, I f) (None when a segment is missing), the oversampling
    f, and the frame mapping (spacing, centre) of the volume."""
    slicer = _slicer()
    spacing_rc, center_rc = _frame_mapping(volume_node, template)
    f = _segmentation_oversampling(slicer, segmentation_node, volume_node)
    segmentation = segmentation_node.GetSegmentation()
    masks = {}
    for border, segment in _BORDER_SEGMENTS.items():
        segment_id = segmentation.GetSegmentIdBySegmentName(segment)
        masks[border] = (
            _segment_mask(slicer, segmentation_node, segment_id, volume_node, f) if segment_id else None
        )
    return masks, f, spacing_rc, center_rc


def edited_frames(
    segmentation_node: Any, volume_node: Any, contours: ContourSet, *, min_changed_pixels: int = 4
) -> dict[str, list[int]]:
    """Frames whose Lumen or Vessel segment no longer matches ``contours``: the Segment Editor's edits.

    Each frame's segment is compared with ``contours`` rasterised as
    :func:`contours_to_segmentation` does: a frame is edited when at least
    ``min_changed_pixels`` volume pixels differ (a frame without a contour: when that much of the
    segment was drawn on it).

    Parameters
    ----------
    segmentation_node : vtkMRMLSegmentationNode
    volume_node : vtkMRMLScalarVolumeNode
    contours : ContourSet
        The borders the segmentation was made from (``RunResult.contours``).
    min_changed_pixels : int

    Returns
    -------
    dict
        ``lumen`` and ``vessel``: sorted frame indices.
    """
    masks, f, spacing_rc, center_rc = _border_masks(segmentation_node, volume_node, contours)
    return edits.edited(masks, f, spacing_rc, center_rc, contours, min_changed_pixels)


def propagate_edits(
    scene: Any,
    nodes: dict[str, Any],
    result: Any,
    *,
    pullback: Pullback | None = None,
    centerline: Centerline | None = None,
    landmarks: Sequence[Landmark] = (),
    options: Any | None = None,
    min_changed_pixels: int = 4,
    progress: Any | None = None,
    cancel: Any | None = None,
) -> tuple[Any, dict[str, list[int]]]:
    """Carry the Segment Editor's edits of some frames to the others, and update the scene.

    The frames whose Lumen or Vessel segment was edited (:func:`edited_frames`), with those
    edited before (the segmentation's ``IVUSReconstruct.keyframes`` attribute), become keyframes:
    their borders are kept as drawn and the pipeline segments every other frame again with them
    (:func:`~IVUSReconstructLib.pipeline.run_pipeline` ``keyframes=``). The segmentation, models,
    tables, markers and plan of ``nodes`` are then updated in place (the chart follows its table).

    Parameters
    ----------
    scene : vtkMRMLScene
    nodes : dict of str to node
        From :func:`show_result`: ``volume`` and ``segmentation`` are required.
    result : pipeline.RunResult
        The run the nodes show (its contours are what the segmentation held before the edits).
    pullback, centerline, landmarks, options
        The run's inputs; by default ``result``'s pullback, centerline and options.
    min_changed_pixels : int
        Volume pixels that must differ for a frame to count as edited.
    progress : callable(fraction, message) or None
    cancel : threading.Event or None

    Returns
    -------
    (RunResult, dict)
        The new run, and the keyframes (``lumen``, ``vessel``: frame indices).

    Raises
    ------
    IVUSInputError
        No frame was edited, or an edited border does not fit the pullback (lumen outside the vessel).
    """
    from .pipeline import RunOptions, run_pipeline

    segmentation, volume = nodes["segmentation"], nodes["volume"]
    masks, f, spacing_rc, center_rc = _border_masks(segmentation, volume, result.contours)
    edited = edits.edited(masks, f, spacing_rc, center_rc, result.contours, min_changed_pixels)
    before = json.loads(segmentation.GetAttribute(KEYFRAMES_ATTRIBUTE) or "{}")
    frames = {b: sorted(set(before.get(b, [])) | set(edited[b])) for b in _BORDER_SEGMENTS}
    if not any(frames.values()):
        raise input_error(
            segmentation.GetName(), "segments Lumen and Vessel", "are unchanged",
            "edit the borders of a few frames in the Segment Editor, then propagate",
        )  # fmt: skip
    keyframes = edits.keyframes_of(masks, f, spacing_rc, center_rc, frames, smoothing_px=SMOOTHING_PX)
    paths = {k: str(v) for k, v in (result.inputs.get("files") or {}).items()}
    paths["keyframes"] = f"{segmentation.GetName()} (Segment Editor)"
    new = run_pipeline(
        pullback=pullback if pullback is not None else result.pullback,
        centerline=centerline if centerline is not None else result.centerline,
        landmarks=landmarks,
        options=options if options is not None else RunOptions.from_parameters(result.parameters),
        input_paths=paths,
        progress=progress,
        cancel=cancel,
        keyframes=keyframes,
    )
    update_result_nodes(scene, nodes, new)
    segmentation.SetAttribute(KEYFRAMES_ATTRIBUTE, json.dumps(frames))
    return new, frames


def add_source_column(table_node: Any, contours: ContourSet) -> None:
    """Append the ``source`` column (edited / propagated / automatic, as in frames.csv) to a
    per-frame table whose ``frame`` column names the rows."""
    table = table_node.GetTable()
    frames = table.GetColumnByName("frame")
    if frames is None:
        return
    by_index = {c.index: c.source or "" for c in contours.frames}
    column = vtkStringArray()
    column.SetName("source")
    column.SetNumberOfValues(table.GetNumberOfRows())
    for row in range(table.GetNumberOfRows()):
        column.SetValue(row, by_index.get(int(frames.GetValue(row)), ""))
    table.AddColumn(column)
    table_node.Modified()


def update_result_nodes(
    scene: Any, nodes: dict[str, Any], result: Any, *, prefix: str = "IVUS"
) -> dict[str, Any]:
    """Show a new result in the nodes of :func:`show_result`, in place (new ones where missing).

    The segmentation is rasterised again from ``result.contours``; models, the per-frame and
    summary tables, the MLA and reference markers and the plan are replaced; the chart's
    series read the updated table.

    Returns
    -------
    dict of str to node
        ``nodes``, updated.
    """
    if result.pullback is not None and "volume" in nodes:
        segmentation = nodes.get("segmentation")
        name = segmentation.GetName() if segmentation is not None else f"{prefix} contours"
        nodes["segmentation"] = contours_to_segmentation(
            scene, result.contours, nodes["volume"], name=name, node=segmentation
        )
    for part, (color, opacity, scalars) in MODEL_STYLE.items():
        polydata = getattr(result.mesh, part)
        if polydata is not None:
            nodes[part] = mesh_to_model_node(
                scene, polydata, f"{prefix} {part}", color=color, opacity=opacity, scalars=scalars,
                node=nodes.get(part),
            )  # fmt: skip
    nodes["table"] = metrics_to_table_node(
        scene, result.metrics, name=f"{prefix} frames", node=nodes.get("table")
    )
    add_source_column(nodes["table"], result.contours)
    nodes["summary"] = summary_to_table_node(
        scene, result.metrics, name=f"{prefix} summary", node=nodes.get("summary")
    )
    if "chart" not in nodes:
        nodes["chart"] = areas_plot_chart(scene, nodes["table"], name=f"{prefix} areas")
    nodes["markers"] = metrics_to_markups(
        scene, result.metrics, result.poses, name=f"{prefix} MLA and references", node=nodes.get("markers")
    )
    plan = result.metrics.summary.get("plan")
    if plan:
        nodes.update(plan_to_nodes(scene, plan, result.centerline.points_ras_mm, nodes=nodes, prefix=prefix))
    return nodes
