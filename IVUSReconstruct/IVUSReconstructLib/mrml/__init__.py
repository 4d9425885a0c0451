"""Scene adapter: MRML nodes <-> core types.

The only Lib module that knows MRML. Every function takes the scene (or a node) as an
argument, so it runs unchanged in desktop 3D Slicer, in a web app and in plain pytest with
the ``slicer-core`` wheel (``from slicer import vtkMRMLScene``). ``slicer`` is imported
lazily so that importing this module never requires it.

Volume geometry (``pullback_to_volume_node``): I = image column, J = image row, K = frame.
IJK-to-RAS has the directions diag(-1, -1, 1), the pixel spacing in-plane, the mean frame
spacing along K and the catheter centre at R = A = 0, so a frame-plane point (x, y) mm of
frame k sits at RAS (-x, -y, k * dz): the axial slice view shows the frame as the image
looks, and the sagittal and coronal views are the two longitudinal cuts.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkIntArray, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from ..errors import input_error
from ..geometry import mm_to_px, px_to_mm, signed_area
from ..geometry import rasterize_polygon_px as rasterize_polygon
from ..types import Centerline, ContourSet, FrameContours, FramePoses, Landmark, Metrics, Pullback, Valued

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


def frame_spacing_mm(pullback: Pullback) -> float:
    """Mean distance between frames along the pullback, mm (1 mm when the speed is unknown)."""
    times = np.asarray(pullback.frame_times_s, dtype=float)
    if pullback.pullback_speed_mm_s is None or len(times) < 2:
        return 1.0
    spacing = float(pullback.pullback_speed_mm_s) * float(np.mean(np.diff(times)))
    return spacing if spacing > 0 else 1.0


def _volume_matrix(
    pixel_spacing_mm: Sequence[float], catheter_center_px: Sequence[float], dz_mm: float
) -> np.ndarray:
    row_mm, col_mm = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    m = np.eye(4)
    m[0, 0], m[1, 1], m[2, 2] = -col_mm, -row_mm, dz_mm
    m[0, 3] = catheter_center_px[1] * col_mm
    m[1, 3] = catheter_center_px[0] * row_mm
    return m


def _image_data(array: np.ndarray) -> vtkImageData:
    """(K, J, I) array -> vtkImageData with dimensions (I, J, K), deep copy."""
    array = np.ascontiguousarray(array)
    image = vtkImageData()
    image.SetDimensions(array.shape[2], array.shape[1], array.shape[0])
    vtk_type = numpy_support.get_vtk_array_type(array.dtype)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True, array_type=vtk_type))
    return image


def _image_array(image: Any) -> np.ndarray:
    """vtkImageData -> (K, J, I) array (a copy)."""
    dims = image.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return np.array(scalars).reshape(dims[2], dims[1], dims[0])


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
    node.SetAndObserveImageData(_image_data(np.asarray(pullback.frames)))
    node.SetIJKToRASMatrix(
        _matrix(
            _volume_matrix(pullback.pixel_spacing_mm, pullback.catheter_center_px, frame_spacing_mm(pullback))
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
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
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
    name = node.GetName()
    frames = _image_array(node.GetImageData())
    if frames.ndim != 3:
        raise input_error(name, "image", "is not a 3D volume", "load the pullback as a scalar volume")
    spacing = node.GetSpacing()
    provenance: dict[str, Valued] = {}

    def attribute(key: str) -> Any:
        value = node.GetAttribute(ATTRIBUTE_PREFIX + key)
        return None if value is None else (value if key == "acquisition" else json.loads(value))

    if pixel_spacing_mm is not None:
        spacing_rc = (float(pixel_spacing_mm), float(pixel_spacing_mm))
        provenance["pixel_spacing_mm"] = Valued(list(spacing_rc), "module parameter")
    else:
        spacing_rc = (float(spacing[1]), float(spacing[0]))
        provenance["pixel_spacing_mm"] = Valued(list(spacing_rc), f"volume node {name} spacing")
    speed = pullback_speed_mm_s if pullback_speed_mm_s is not None else attribute("pullback_speed_mm_s")
    provenance["pullback_speed_mm_s"] = Valued(
        speed, "module parameter" if pullback_speed_mm_s is not None else f"volume node {name} attribute"
    )
    n = frames.shape[0]
    if frame_rate_hz is not None and frame_rate_hz > 0:
        times = np.arange(n) / float(frame_rate_hz)
        provenance["frame_times_s"] = Valued(times.tolist(), f"module parameter: {frame_rate_hz} Hz")
    elif attribute("frame_times_s") is not None and len(attribute("frame_times_s")) == n:
        times = np.asarray(attribute("frame_times_s"), dtype=float)
        provenance["frame_times_s"] = Valued(times.tolist(), f"volume node {name} attribute")
    else:
        raise input_error(
            name, "frame rate", "is unknown", "enter the frame rate (Hz) in the acquisition fields"
        )
    center = catheter_center_px or attribute("catheter_center_px")
    if center is None:
        center = ((frames.shape[1] - 1) / 2.0, (frames.shape[2] - 1) / 2.0)
    provenance["n_frames"] = Valued(n, f"volume node {name}")
    acquisition = attribute("acquisition") or ("motor" if speed else "manual")
    return Pullback(
        frames=frames,
        pixel_spacing_mm=spacing_rc,
        frame_times_s=times,
        pullback_speed_mm_s=None if speed is None else float(speed),
        acquisition=acquisition,
        catheter_center_px=(float(center[0]), float(center[1])),
        source=attribute("source") or {"path": f"slicer volume node {name}"},
        provenance=provenance,
    )


# ----------------------------------------------------------------------------- rasterise / outline


def mask_outlines_px(
    mask: np.ndarray, *, largest_only: bool = True, min_pixels: int = 1, smoothing_px: float = 0.0
) -> list[np.ndarray]:
    """Outer outlines of the connected regions of a binary frame (marching squares at 0.5).

    Parameters
    ----------
    mask : ndarray of shape (H, W)
    largest_only : bool
        Keep only the largest 4-connected region (lumen, vessel); otherwise every region
        (calcium) is outlined.
    min_pixels : int
        Regions smaller than this are dropped.
    smoothing_px : float
        Standard deviation (pixels) of a Gaussian applied to each region before the 0.5 level
        is traced: it replaces the 45-degree staircase of the raw mask by a smooth border. A
        region too thin to reach 0.5 after smoothing is traced unsmoothed.

    Returns
    -------
    list of ndarray of shape (M, 2)
        (row, col) outlines, holes filled, counter-clockwise in frame-plane (x, y); largest first.
    """
    from scipy import ndimage
    from vtkmodules.vtkFiltersCore import vtkContourFilter, vtkStripper

    labels, count = ndimage.label(np.asarray(mask) > 0)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    boxes = ndimage.find_objects(labels)
    order = np.argsort(sizes, kind="stable")[::-1]
    if largest_only:
        order = order[:1]
    outlines = []
    for label_index in order:
        if sizes[label_index] < min_pixels:
            continue
        # fill holes on the region's bounding box only: whole frames made this the hot spot
        box = boxes[label_index]
        region = ndimage.binary_fill_holes(labels[box] == label_index + 1)
        rows, cols = np.nonzero(region)
        rows, cols = rows + box[0].start, cols + box[1].start
        # the margin keeps the smoothed region's tail inside the crop
        margin = 1 + int(np.ceil(4.0 * smoothing_px))
        r0, c0 = rows.min() - margin, cols.min() - margin
        crop = np.zeros((rows.max() - r0 + margin + 1, cols.max() - c0 + margin + 1), dtype=np.float32)
        crop[rows - r0, cols - c0] = 1.0
        if smoothing_px > 0:
            smoothed = ndimage.gaussian_filter(crop, smoothing_px, mode="constant", truncate=4.0)
            crop = smoothed if smoothed.max() > 0.5 else crop
        image = _image_data(crop[None])
        contour = vtkContourFilter()
        contour.SetInputData(image)
        contour.SetValue(0, 0.5)
        stripper = vtkStripper()
        stripper.SetInputConnection(contour.GetOutputPort())
        stripper.JoinContiguousSegmentsOn()
        stripper.Update()
        lines = stripper.GetOutput()
        points = numpy_support.vtk_to_numpy(lines.GetPoints().GetData())
        best = None
        for cell in range(lines.GetNumberOfCells()):
            ids = lines.GetCell(cell).GetPointIds()
            loop = points[[ids.GetId(i) for i in range(ids.GetNumberOfIds())]]
            if best is None or len(loop) > len(best):
                best = loop
        outline = np.column_stack([best[:, 1] + r0, best[:, 0] + c0])
        # drop repeated points (the closing one, and contour points that land on a pixel centre)
        keep = np.any(np.abs(np.diff(outline, axis=0, append=outline[:1])) > 1e-9, axis=1)
        outline = outline[keep]
        # (row, col) -> (x=col, y=row): counter-clockwise in the frame plane
        if signed_area(outline[:, ::-1]) < 0:
            outline = outline[::-1]
        outlines.append(outline)
    return outlines


# ----------------------------------------------------------------------------- segmentation


def _fine_ijk_to_ras(volume_node: Any, oversampling: int) -> np.ndarray:
    """IJK-to-RAS of the volume's frames subdivided ``oversampling`` times in-plane, (4, 4).

    Fine pixel centre i' sits at volume index i = (i' + 0.5) / f - 0.5, so the fine pixels
    tile each volume pixel exactly; K (the frames) is not subdivided.
    """
    f = float(oversampling)
    fine_to_volume = np.diag([1.0 / f, 1.0 / f, 1.0, 1.0])
    fine_to_volume[0, 3] = fine_to_volume[1, 3] = -(f - 1.0) / (2.0 * f)
    return _ijk_to_ras(volume_node) @ fine_to_volume


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
    image.ShallowCopy(_image_data(mask.astype(np.uint8)))
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
    polygons: dict[str, list[tuple[int, np.ndarray]]] = {segment: [] for segment in SEGMENT_NAMES}
    for frame in contours.frames:
        if not 0 <= frame.index < shape[0]:
            raise input_error(
                name,
                f"frame {frame.index}",
                f"is outside the pullback's {shape[0]} frames",
                "load the matching pullback",
            )
        items = {"Lumen": [frame.lumen], "Vessel": [frame.vessel], "Calcium": list(frame.calcium)}
        for segment, polygon_list in items.items():
            for polygon in polygon_list:
                if polygon is not None and len(polygon) >= 3:
                    # volume pixel p -> fine pixel f p + (f - 1) / 2 (see _fine_ijk_to_ras)
                    px = mm_to_px(polygon, spacing_rc, center_rc) * f + (f - 1) / 2.0
                    polygons[segment].append((frame.index, px))
    node = _new_node(scene, "vtkMRMLSegmentationNode", name, node)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    converter = slicer.vtkSegmentationConverter
    node.GetSegmentation().SetConversionParameter(
        converter.GetReferenceImageGeometryParameterName(),
        converter.SerializeImageGeometry(_geometry_image(slicer, volume_node, f)),
    )
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    ijk_to_ras = _matrix(_fine_ijk_to_ras(volume_node, f))
    for segment in SEGMENT_NAMES:
        if not segmentation.GetSegment(segment):
            segmentation.AddEmptySegment(segment, segment, list(SEGMENT_COLORS[segment]))
        items = polygons[segment]
        if not items:
            _set_segment_mask(slicer, node, segment, np.zeros((1, 1, 1), bool), (0, 0, 0), ijk_to_ras)
            continue
        # crop to the bounding box of the segment's polygons (pixel centres inside it)
        every = np.concatenate([px for _, px in items])
        lo = np.clip(np.ceil(every.min(axis=0)).astype(int), 0, np.array(shape[1:]) - 1)
        hi = np.clip(np.floor(every.max(axis=0)).astype(int), lo, np.array(shape[1:]) - 1)
        k0 = min(index for index, _ in items)
        k1 = max(index for index, _ in items)
        mask = np.zeros((k1 - k0 + 1, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1), dtype=bool)
        for index, px in items:
            mask[index - k0] |= rasterize_polygon(px - lo, mask.shape[1:])
        _set_segment_mask(slicer, node, segment, mask, (k0, int(lo[0]), int(lo[1])), ijk_to_ras)
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
    return _image_array(resampled) > 0


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

    def to_mm(outline_px: np.ndarray) -> np.ndarray:
        # fine pixel -> volume pixel (inverse of contours_to_segmentation's mapping)
        return px_to_mm((outline_px - (f - 1) / 2.0) / f, spacing_rc, center_rc)

    def outlines(mask: np.ndarray, **options: Any) -> list[np.ndarray]:
        return [to_mm(o) for o in mask_outlines_px(mask, smoothing_px=smoothing_px, **options)]

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
    previous = {c.index: c for c in template.frames} if template is not None else {}
    frames = []
    for index in np.nonzero(masks["Lumen"].any(axis=(1, 2)))[0]:
        lumen = outlines(masks["Lumen"][index])[0]
        vessel = None
        if masks["Vessel"] is not None and masks["Vessel"][index].any():
            vessel = outlines(masks["Vessel"][index])[0]
        calcium: tuple[np.ndarray, ...] = ()
        if masks["Calcium"] is not None and masks["Calcium"][index].any():
            calcium = tuple(
                outlines(masks["Calcium"][index], largest_only=False, min_pixels=min_calcium_pixels * f * f)
            )
        old = previous.get(int(index))
        frames.append(
            FrameContours(
                index=int(index),
                lumen=lumen,
                vessel=vessel,
                calcium=calcium,
                stent=old.stent if old is not None else None,
                phase=old.phase if old is not None else None,
                z_mm=old.z_mm if old is not None else None,
            )
        )
    return ContourSet(
        frames=tuple(frames),
        landmarks=template.landmarks if template is not None else (),
        pixel_spacing_mm=spacing_rc,
        catheter_center_px=center_rc,
    )


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
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
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
        unit = (
            column.rsplit("_", 1)[-1]
            if column.endswith(("_mm", "_mm2", "_mm3", "_s", "_percent", "_deg"))
            else ""
        )
        if unit:
            node.SetColumnUnitLabel(
                column, {"mm2": "mm²", "mm3": "mm³", "percent": "%", "deg": "°"}.get(unit, unit)
            )
    return node


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        for i, item in enumerate(value):
            _flatten(f"{prefix}[{i}]", item, out)
    else:
        out.append((prefix, json.dumps(value, default=float) if not isinstance(value, str) else value))


def summary_to_table_node(
    scene: Any, metrics: Metrics, *, name: str = "IVUS summary", node: Any | None = None
) -> Any:
    """Summary metrics flattened to rows ``key`` / ``value`` (``mla.area_mm2``, ...).

    Returns
    -------
    vtkMRMLTableNode
    """
    rows: list[tuple[str, str]] = []
    _flatten("", metrics.summary, rows)
    return _key_value_table(scene, name, rows, node)


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


def _marker_points(summary: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(label, frame, description) of MLA and the references found in a summary."""
    points = []
    mla = summary.get("mla") or {}
    if mla.get("frame") is not None:
        area = mla.get("area_mm2")
        label = f"MLA {area:.2f} mm2" if isinstance(area, (int, float)) else "MLA"
        points.append((label, int(mla["frame"]), "minimal lumen area"))
    for side in ("proximal", "distal"):
        ref = (summary.get("references") or {}).get(side) or {}
        if ref.get("frame") is not None:
            points.append((f"{side.capitalize()} reference", int(ref["frame"]), f"{side} reference frame"))
    return points


def _fiducials(
    scene: Any, name: str, points: list[tuple[str, np.ndarray, str]], node: Any | None = None
) -> Any:
    node = _new_node(scene, "vtkMRMLMarkupsFiducialNode", name, node)
    node.RemoveAllControlPoints()
    for label, position, description in points:
        index = node.AddControlPoint(*[float(v) for v in position], label)
        node.SetNthControlPointDescription(index, description)
        node.SetNthControlPointLocked(index, True)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
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
        for label, frame, description in _marker_points(metrics.summary)
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
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
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
    polydata = node.GetPolyData()
    if polydata is None or polydata.GetNumberOfPoints() < 2:
        raise input_error(node.GetName(), "polydata", "has fewer than 2 points", "select a centerline model")
    points = numpy_support.vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    lines = polydata.GetLines()
    ids = None
    if lines is not None and lines.GetNumberOfCells() > 0:
        for cell in range(polydata.GetNumberOfCells()):
            if polydata.GetCellType(cell) in (3, 4):  # VTK_LINE, VTK_POLY_LINE
                cell_ids = polydata.GetCell(cell).GetPointIds()
                candidate = [cell_ids.GetId(i) for i in range(cell_ids.GetNumberOfIds())]
                if ids is None or len(candidate) > len(ids):
                    ids = candidate
    if ids is None:
        ids = list(range(len(points)))
    radius = None
    for array_name in ("Radius", "MaximumInscribedSphereRadius"):
        array = polydata.GetPointData().GetArray(array_name)
        if array is not None:
            radius = numpy_support.vtk_to_numpy(array).astype(float)[ids]
            break
    points = points[ids]
    if order == "proximal-first":
        points = points[::-1]
        radius = radius[::-1] if radius is not None else None
    return Centerline(points_ras_mm=points, radius_mm=radius, source=f"slicer model {node.GetName()}")


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


def frame_ijk_to_ras(pullback: Pullback, poses: FramePoses, row: int) -> np.ndarray:
    """IJK-to-RAS of one frame placed at its pose, ndarray of shape (4, 4).

    Pixel (col=i, row=j) maps to the frame-plane point ((i - c_col) s_col, (j - c_row) s_row)
    and then through ``poses.matrices()[row]``.
    """
    row_mm, col_mm = pullback.pixel_spacing_mm
    center_row, center_col = pullback.catheter_center_px
    pixel_to_plane = np.array(
        [
            [col_mm, 0.0, 0.0, -center_col * col_mm],
            [0.0, row_mm, 0.0, -center_row * row_mm],
            [0.0, 0.0, 1.0, 0.0],
            [0, 0, 0, 1.0],
        ]
    )
    return poses.matrices()[row] @ pixel_to_plane


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
    node.SetAndObserveImageData(_image_data(np.asarray(pullback.frames[shown])[None]))
    node.SetIJKToRASMatrix(_matrix(frame_ijk_to_ras(pullback, poses, row)))
    node.SetAttribute(FRAME_ATTRIBUTE, str(shown))
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def acquisition_values(volume_node: Any, dicom_path: str | Path | None = None) -> dict[str, Valued]:
    """Known scalar acquisition values of a volume by ``limits.ACQUISITION_OPTIONS`` field: spacing of the
    node; rate and speed of its attributes, under ``dicom_path``'s header as ``io.dicom.read_acquisition``
    (the command line's reading) gives it."""
    from ..gating import frame_rate_hz
    from ..io.dicom import read_acquisition

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


def _read_frames_csv(path: Path) -> dict[int, dict[str, str]]:
    with path.open(newline="") as handle:
        return {int(float(row["frame"])): row for row in csv.DictReader(handle)}


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
        summary = json.loads(summary_path.read_text())
        rows = _read_frames_csv(frames_path)
        points = []
        for label, frame, description in _marker_points(summary):
            row = rows.get(frame)
            if row is not None and all(row.get(k) not in (None, "") for k in ("x_mm", "y_mm", "z_mm")):
                position = np.array([float(row["x_mm"]), float(row["y_mm"]), float(row["z_mm"])])
                if np.all(np.isfinite(position)):
                    points.append((label, position, description))
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
    from ..io.centerline import read_centerline

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


# the plan's and the edits' nodes live in their own files of this package and use the helpers above
from .edits import (  # noqa: E402
    KEYFRAMES_ATTRIBUTE,
    add_source_column,
    edited_frames,
    propagate_edits,
    update_result_nodes,
)
from .plan_nodes import (  # noqa: E402
    PLAN_ATTRIBUTE,
    _key_value_table,
    arc_length_of_point,
    centerline_point_at,
    observe_plan,
    plan_to_nodes,
    update_plan_from_zones,
)
