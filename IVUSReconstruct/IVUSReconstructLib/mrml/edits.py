"""Propagating the Segment Editor's edits: edited frames become keyframes, the other frames are segmented again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from vtkmodules.vtkCommonCore import vtkStringArray

from ..errors import input_error
from ..geometry import mm_to_px, px_to_mm
from ..geometry import rasterize_polygon_px as rasterize_polygon
from ..types import Centerline, ContourSet, FrameContours, Landmark, Pullback
from . import (
    ATTRIBUTE_PREFIX,
    MODEL_STYLE,
    SMOOTHING_PX,
    _frame_mapping,
    _segment_mask,
    _segmentation_oversampling,
    _slicer,
    areas_plot_chart,
    contours_to_segmentation,
    mask_outlines_px,
    mesh_to_model_node,
    metrics_to_markups,
    metrics_to_table_node,
    summary_to_table_node,
)
from .plan_nodes import plan_to_nodes

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


def _changed_frames(
    mask: np.ndarray, polygons: dict[int, np.ndarray], to_px: Any, min_pixels: int
) -> list[int]:
    """Frames of ``mask`` (K, H, W) that differ from their rasterised polygon by ``min_pixels``
    or more (a frame without a polygon: a region of that size drawn on it)."""
    shape = np.array(mask.shape[1:])
    counts = mask.sum(axis=(1, 2))
    changed = []
    for k in range(mask.shape[0]):
        polygon = polygons.get(k)
        if polygon is None or len(polygon) < 3:
            if counts[k] >= min_pixels:
                changed.append(k)
            continue
        px = to_px(polygon)
        # only the box of the polygon is rasterised; the mask's pixels outside it all differ
        lo = np.clip(np.ceil(px.min(axis=0)).astype(int), 0, shape - 1)
        hi = np.clip(np.floor(px.max(axis=0)).astype(int), lo, shape - 1)
        expected = rasterize_polygon(px - lo, tuple(hi - lo + 1))
        inside = mask[k, lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
        differ = np.count_nonzero(inside ^ expected) + int(counts[k] - np.count_nonzero(inside))
        if differ >= min_pixels:
            changed.append(k)
    return changed


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
    return _edited(masks, f, spacing_rc, center_rc, contours, min_changed_pixels)


def _edited(masks, f, spacing_rc, center_rc, contours, min_changed_pixels) -> dict[str, list[int]]:
    def to_px(polygon: np.ndarray) -> np.ndarray:
        # as contours_to_segmentation: volume pixel p -> fine pixel f p + (f - 1) / 2
        return mm_to_px(polygon, spacing_rc, center_rc) * f + (f - 1) / 2.0

    out: dict[str, list[int]] = {}
    for border, mask in masks.items():
        polygons = {c.index: getattr(c, border) for c in contours.frames if getattr(c, border) is not None}
        out[border] = (
            [] if mask is None else _changed_frames(mask, polygons, to_px, min_changed_pixels * f * f)
        )
    return out


def _keyframes_of(masks, f, spacing_rc, center_rc, frames: dict[str, list[int]]) -> ContourSet:
    """The outlines of the edited frames' segments as keyframes (frame-plane mm of the volume)."""
    borders: dict[int, dict[str, np.ndarray]] = {}
    for border, indices in frames.items():
        for k in indices:
            if masks[border] is None or not 0 <= k < len(masks[border]) or not masks[border][k].any():
                continue
            outline = mask_outlines_px(masks[border][k], smoothing_px=SMOOTHING_PX)[0]
            borders.setdefault(int(k), {})[border] = px_to_mm(
                (outline - (f - 1) / 2.0) / f, spacing_rc, center_rc
            )
    frames_out = tuple(
        FrameContours(index=k, lumen=b.get("lumen"), vessel=b.get("vessel"), source="edited")
        for k, b in sorted(borders.items())
    )
    return ContourSet(frames=frames_out, pixel_spacing_mm=spacing_rc, catheter_center_px=center_rc)


def _run_options(result: Any) -> Any:
    """The RunOptions a result was made with (its ``parameters``)."""
    from dataclasses import fields

    from ..pipeline import RunOptions

    names = {f.name for f in fields(RunOptions)} - {"metric_params"}
    values = {k: v for k, v in result.parameters.items() if k in names}
    if "render_size_px" in values:
        values["render_size_px"] = tuple(values["render_size_px"])
    return RunOptions(**values)


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
    from ..pipeline import run_pipeline

    segmentation, volume = nodes["segmentation"], nodes["volume"]
    masks, f, spacing_rc, center_rc = _border_masks(segmentation, volume, result.contours)
    edited = _edited(masks, f, spacing_rc, center_rc, result.contours, min_changed_pixels)
    before = json.loads(segmentation.GetAttribute(KEYFRAMES_ATTRIBUTE) or "{}")
    frames = {b: sorted(set(before.get(b, [])) | set(edited[b])) for b in _BORDER_SEGMENTS}
    if not any(frames.values()):
        raise input_error(
            segmentation.GetName(), "segments Lumen and Vessel", "are unchanged",
            "edit the borders of a few frames in the Segment Editor, then propagate",
        )  # fmt: skip
    keyframes = _keyframes_of(masks, f, spacing_rc, center_rc, frames)
    paths = {k: str(v) for k, v in (result.inputs.get("files") or {}).items()}
    paths["keyframes"] = f"{segmentation.GetName()} (Segment Editor)"
    new = run_pipeline(
        pullback=pullback if pullback is not None else result.pullback,
        centerline=centerline if centerline is not None else result.centerline,
        landmarks=landmarks,
        options=options if options is not None else _run_options(result),
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
