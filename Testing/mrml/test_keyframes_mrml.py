"""Propagate edits with real MRML (slicer-core): the lumen redrawn on two frames in the scene
becomes keyframes; the other frames are segmented again and every node follows."""

from __future__ import annotations

import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from IVUSReconstructLib import mrml  # noqa: E402
from IVUSReconstructLib.errors import IVUSInputError  # noqa: E402
from IVUSReconstructLib.geometry import mm_to_px, polygon_area  # noqa: E402

EDITED = (12, 36)
DISC_MM = 0.8  # radius of the lumen the reader draws instead (the phantom's is ~1.1-1.6 mm)


@pytest.fixture(scope="module")
def phantom():
    from IVUSReconstructLib.phantom import make_phantom

    return make_phantom("coronary", seed=5, length_mm=1.6, size_px=128)


@pytest.fixture(scope="module")
def automatic(phantom):
    from IVUSReconstructLib.pipeline import RunOptions, run_pipeline

    return run_pipeline(
        pullback=phantom.pullback,
        centerline=phantom.centerline,
        options=RunOptions(gating="none", render_size_px=(320, 200)),
    )


def _column(table_node, name: str) -> np.ndarray:
    table = table_node.GetTable()
    array = table.GetColumnByName(name)
    return np.array([array.GetValue(i) for i in range(table.GetNumberOfRows())], dtype=float)


def _lumen_areas(table_node) -> dict[int, float]:
    """Frame -> lumen area (mm²) as the scene's per-frame table shows it."""
    frames = _column(table_node, "frame").astype(int)
    return dict(zip(frames.tolist(), _column(table_node, "lumen_area_mm2").tolist(), strict=True))


def _draw_discs(nodes, pullback, frames, radius_mm: float, segment: str = "Lumen") -> np.ndarray:
    """What the Segment Editor's paint does: the ``segment`` labelmap of ``frames`` replaced by
    a disc about the catheter; returns the drawn pixel count per frame (on the segmentation's
    grid) and the grid's subdivision."""
    segmentation, volume = nodes["segmentation"], nodes["volume"]
    f = mrml._segmentation_oversampling(slicer, segmentation, volume)
    lumen_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(segment)
    mask = mrml._segment_mask(slicer, segmentation, lumen_id, volume, f)
    rows, cols = np.indices(mask.shape[1:])
    c = np.asarray(mm_to_px(np.zeros((1, 2)), pullback.pixel_spacing_mm, pullback.catheter_center_px))[0]
    r_px = ((rows - (f * c[0] + (f - 1) / 2)) ** 2 + (cols - (f * c[1] + (f - 1) / 2)) ** 2) ** 0.5
    disc = r_px <= radius_mm / pullback.pixel_spacing_mm[0] * f
    for k in frames:
        mask[k] = disc
    ijk_to_ras = mrml._matrix(mrml._fine_ijk_to_ras(volume, f))
    mrml._set_segment_mask(slicer, segmentation, lumen_id, mask, (0, 0, 0), ijk_to_ras)
    return np.array([disc.sum()] * len(frames)), f


def test_propagate_edits_keeps_the_drawn_frames_and_changes_the_others(automatic, phantom):
    scene = mrml.prepare_scene(slicer.vtkMRMLScene())
    nodes = mrml.show_result(scene, automatic)
    before = _lumen_areas(nodes["table"])
    assert mrml.edited_frames(nodes["segmentation"], nodes["volume"], automatic.contours) == {
        "lumen": [],
        "vessel": [],
    }
    with pytest.raises(IVUSInputError) as err:
        mrml.propagate_edits(scene, nodes, automatic)
    assert str(err.value) == (
        "IVUS contours: segments Lumen and Vessel are unchanged; edit the borders of a few frames in the "
        "Segment Editor, then propagate"
    )

    drawn, f = _draw_discs(nodes, phantom.pullback, EDITED, DISC_MM)
    assert mrml.edited_frames(nodes["segmentation"], nodes["volume"], automatic.contours) == {
        "lumen": list(EDITED),
        "vessel": [],
    }
    table, chart = nodes["table"], nodes["chart"]
    new, keys = mrml.propagate_edits(scene, nodes, automatic)
    assert keys == {"lumen": list(EDITED), "vessel": []}
    # the same nodes, updated: the chart's series still read this table
    assert nodes["table"] is table and nodes["chart"] is chart
    after = _lumen_areas(table)
    assert sorted(after) == sorted(before)
    pixel_mm2 = (phantom.pullback.pixel_spacing_mm[0] / f) ** 2
    for k, n_pixels in zip(EDITED, drawn, strict=True):
        # exactly the border drawn (the outline of the painted pixels) ...
        edited = next(c for c in new.contours.frames if c.index == k)
        assert edited.source == "edited"
        assert after[k] == pytest.approx(polygon_area(edited.lumen), rel=1e-12)
        # ... which is the painted disc: its pixel count within its perimeter's half pixel
        assert after[k] == pytest.approx(n_pixels * pixel_mm2, rel=0.03)
        assert after[k] == pytest.approx(np.pi * DISC_MM**2, rel=0.03)
        assert before[k] > 1.5 * after[k]
    # the frames between were segmented again with the smaller lumen drawn on both sides
    between = [k for k in after if EDITED[0] < k < EDITED[1]]
    changed = [k for k in between if abs(after[k] - before[k]) > 1e-6]
    # the keyframes' guidance fades with distance (a drawn border that the image does not support
    # is not carried across the whole gap): the frames beside each edit follow it
    assert {EDITED[0] + 1, EDITED[0] + 2, EDITED[1] - 2, EDITED[1] - 1} <= set(changed)
    assert np.mean([after[k] for k in between]) < np.mean([before[k] for k in between])
    assert {c.source for c in new.contours.frames if c.index not in EDITED} == {"propagated"}
    # the table says which frames are which, as frames.csv does
    sources = table.GetTable().GetColumnByName("source")
    frames = _column(table, "frame").astype(int)
    assert [int(frames[i]) for i in range(len(frames)) if sources.GetValue(i) == "edited"] == list(EDITED)
    assert {sources.GetValue(i) for i in range(len(frames))} == {"edited", "propagated"}
    assert new.metrics.summary["volumes_mm3"]["lumen"] < automatic.metrics.summary["volumes_mm3"]["lumen"]
    # the summary table, the models and the segmentation show the new run
    assert nodes["lumen"].GetPolyData().GetNumberOfPoints() == new.mesh.lumen.GetNumberOfPoints()
    assert json.loads(nodes["segmentation"].GetAttribute(mrml.KEYFRAMES_ATTRIBUTE)) == keys
    # and the segmentation now holds the new borders: nothing is edited any more
    assert mrml.edited_frames(nodes["segmentation"], nodes["volume"], new.contours) == {
        "lumen": [],
        "vessel": [],
    }

    # a second round: the vessel redrawn on another frame; the lumen keyframes stay keyframes
    vessel_frame, vessel_mm = 60, 2.4
    _draw_discs(nodes, phantom.pullback, [vessel_frame], vessel_mm, segment="Vessel")
    again, keys = mrml.propagate_edits(scene, nodes, new)
    assert keys == {"lumen": list(EDITED), "vessel": [vessel_frame]}
    areas = _lumen_areas(table)
    for k in EDITED:
        # outlined again from the segmentation the first round rasterised: within its pixels
        assert areas[k] == pytest.approx(after[k], rel=0.02)
    frames = _column(table, "frame").astype(int)
    vessel = dict(zip(frames.tolist(), _column(table, "vessel_area_mm2").tolist(), strict=True))
    assert vessel[vessel_frame] == pytest.approx(np.pi * vessel_mm**2, rel=0.03)
    assert [c.index for c in again.contours.frames if c.source == "edited"] == sorted([*EDITED, vessel_frame])


def _draw_borders(nodes, pullback, borders_mm: dict[int, np.ndarray], segment: str = "Lumen") -> None:
    """What a reader correcting borders does: the ``segment`` labelmap of each frame replaced by
    the given border (frame-plane mm), rasterised on the segmentation's grid."""
    from IVUSReconstructLib.geometry import rasterize_polygon_px

    segmentation, volume = nodes["segmentation"], nodes["volume"]
    f = mrml._segmentation_oversampling(slicer, segmentation, volume)
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName(segment)
    mask = mrml._segment_mask(slicer, segmentation, segment_id, volume, f)
    for k, border in borders_mm.items():
        px = np.asarray(mm_to_px(border, pullback.pixel_spacing_mm, pullback.catheter_center_px))
        # the segmentation's pixels subdivide the volume's f times: centre i' = f i + (f - 1) / 2
        mask[k] = rasterize_polygon_px(f * px + (f - 1) / 2, mask.shape[1:])
    ijk_to_ras = mrml._matrix(mrml._fine_ijk_to_ras(volume, f))
    mrml._set_segment_mask(slicer, segmentation, segment_id, mask, (0, 0, 0), ijk_to_ras)


def test_a_correction_the_images_support_reaches_every_frame_between(automatic, phantom):
    """The issue's round trip with a realistic edit: the true lumen drawn on two frames; every
    frame between is segmented again, the drawn frames keep exactly what was drawn, and the
    frames between come closer to the true lumen areas."""
    scene = mrml.prepare_scene(slicer.vtkMRMLScene())
    nodes = mrml.show_result(scene, automatic)
    before = _lumen_areas(nodes["table"])
    truth = {t.index: t.lumen for t in phantom.truth.frames}
    _draw_borders(nodes, phantom.pullback, {k: truth[k] for k in EDITED})
    new, keys = mrml.propagate_edits(scene, nodes, automatic)
    assert keys == {"lumen": list(EDITED), "vessel": []}
    after = _lumen_areas(nodes["table"])
    for k in EDITED:
        edited = next(c for c in new.contours.frames if c.index == k)
        assert edited.source == "edited"
        assert after[k] == pytest.approx(polygon_area(edited.lumen), rel=1e-12)
        # the painted pixels' outline: the true border within its half pixel
        assert after[k] == pytest.approx(polygon_area(truth[k]), rel=0.05)
    between = [k for k in after if EDITED[0] < k < EDITED[1]]
    assert [k for k in between if abs(after[k] - before[k]) > 1e-6] == between
    error_before = np.mean([abs(before[k] - polygon_area(truth[k])) for k in between])
    error_after = np.mean([abs(after[k] - polygon_area(truth[k])) for k in between])
    # measured: mean error 0.617 automatic, 0.528 propagated. Mid-stretch (frames 20-25) the
    # automatic lumen is right (6.46-6.63, true 6.57-6.62) and stays so (6.48-6.60): the looks of
    # two lumen-only drawings choose the lumen's step there, the grey step places it (they held
    # it ~0.35 mm2 inside before, 6.13-6.26, and the stretch's error rose to 0.713)
    assert error_after < error_before
