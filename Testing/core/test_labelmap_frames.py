"""Frame labelmaps (no MRML): contours rasterised frame by frame and outlined back, and the
oversampled-pixel geometry they live on."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib import labelmap
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import (
    fine_px_to_mm,
    mm_to_fine_px,
    oversampled_ijk_to_ras,
    polygon_area,
    rasterize_polygon_px,
    signed_area,
    volume_ijk_to_ras,
)
from IVUSReconstructLib.types import ContourSet, FrameContours


def test_outline_of_a_rectangle_cuts_each_corner_by_an_eighth_pixel():
    mask = np.zeros((20, 20), bool)
    mask[3:13, 5:11] = True  # 10 x 6 pixels
    (outline,) = labelmap.mask_outlines_px(mask)
    # the 0.5 level runs half a pixel outside the pixel centres; marching squares cuts 4 corners
    assert polygon_area(outline) == pytest.approx(60.0 - 4 * 0.125)
    assert outline[:, 0].min() == pytest.approx(2.5) and outline[:, 1].max() == pytest.approx(10.5)
    assert signed_area(outline[:, ::-1]) > 0  # counter-clockwise in (x = col, y = row)


def test_outlines_fill_holes_order_by_size_and_drop_small_regions():
    mask = np.zeros((30, 30), bool)
    mask[2:12, 2:12] = True
    mask[5:8, 5:8] = False  # a hole: filled
    mask[20:23, 20:23] = True  # 9 pixels
    mask[26, 26] = True  # 1 pixel
    outlines = labelmap.mask_outlines_px(mask, largest_only=False, min_pixels=2)
    assert [round(polygon_area(o), 3) for o in outlines] == [99.5, 8.5]
    assert labelmap.mask_outlines_px(np.zeros((5, 5))) == []


def test_rasterize_frames_crops_to_the_polygons_box():
    square = np.array([[2.0, 3.0], [2.0, 6.0], [5.0, 6.0], [5.0, 3.0]])  # (row, col), centres 2..5 x 3..6 edge-on
    items = [(4, square), (6, square + [1.0, 0.0]), (6, square + [0.0, 10.0])]
    mask, offset = labelmap.rasterize_frames(items, (12, 30))
    assert offset == (4, 2, 3)
    assert mask.shape == (3, 5, 14)  # frames 4..6, rows 2..6, cols 3..16
    assert mask[1].sum() == 0  # frame 5 has no polygon
    full = np.zeros((12, 30), bool)
    full[2:7, 3:17] = mask[2]
    expected = rasterize_polygon_px(square + [1.0, 0.0], (12, 30)) | rasterize_polygon_px(square + [0.0, 10.0], (12, 30))
    assert np.array_equal(full, expected)


def test_frame_polygons_px_by_kind_and_the_out_of_range_message():
    tri = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    frames = (
        FrameContours(index=0, lumen=tri, vessel=2 * tri, calcium=(tri, tri[:2])),
        FrameContours(index=2, lumen=tri, vessel=None),
    )
    polygons = labelmap.frame_polygons_px(ContourSet(frames=frames), 3, lambda p: p * 10, where="seg")
    assert {k: [i for i, _ in v] for k, v in polygons.items()} == {"lumen": [0, 2], "vessel": [0], "calcium": [0]}
    assert np.array_equal(polygons["vessel"][0][1], 20 * tri)
    with pytest.raises(IVUSInputError) as error:
        labelmap.frame_polygons_px(ContourSet(frames=frames), 2, lambda p: p, where="IVUS contours")
    assert str(error.value) == "IVUS contours: frame 2 is outside the pullback's 2 frames; load the matching pullback"


def test_contours_round_trip_through_oversampled_masks():
    spacing, center, f = (0.05, 0.05), (20.0, 20.0), 2
    a = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    lumen = np.column_stack([0.5 * np.cos(a) + 0.1, 0.4 * np.sin(a)])
    vessel = np.column_stack([0.9 * np.cos(a), 0.8 * np.sin(a)])
    template = ContourSet(frames=(FrameContours(index=1, lumen=lumen, vessel=vessel, phase="ED", z_mm=3.5),))
    masks = {k: np.zeros((3, 41 * f, 41 * f), bool) for k in ("lumen", "vessel")}
    for kind, polygon in (("lumen", lumen), ("vessel", vessel)):
        px = mm_to_fine_px(polygon, spacing, center, f)
        masks[kind][1] = rasterize_polygon_px(px, masks[kind].shape[1:])
    masks["calcium"] = None
    back = labelmap.contours_from_masks(masks, spacing, center, f, template=template)
    (frame,) = back.frames
    assert frame.index == 1 and frame.phase == "ED" and frame.z_mm == 3.5 and frame.calcium == ()
    assert polygon_area(frame.lumen) == pytest.approx(np.pi * 0.5 * 0.4, rel=0.02)
    assert polygon_area(frame.vessel) == pytest.approx(np.pi * 0.9 * 0.8, rel=0.02)
    assert frame.lumen.mean(axis=0) == pytest.approx([0.1, 0.0], abs=0.005)
    assert back.pixel_spacing_mm == spacing and back.catheter_center_px == center


def test_fine_pixels_tile_the_volume_pixels():
    spacing, center = (0.2, 0.1), (10.0, 12.0)
    points = np.array([[0.0, 0.0], [1.0, -0.4]])
    fine = mm_to_fine_px(points, spacing, center, 3)
    # the catheter centre (volume pixel 10, 12) is the centre fine pixel 3 p + 1 of that pixel
    assert fine[0] == pytest.approx([31.0, 37.0])
    assert fine[1] == pytest.approx([3 * (10 - 2) + 1, 3 * (12 + 10) + 1])
    assert fine_px_to_mm(fine, spacing, center, 3) == pytest.approx(points)
    m = oversampled_ijk_to_ras(np.diag([2.0, 2.0, 5.0, 1.0]), 2)
    # fine pixel 0 sits at volume index -0.25, fine pixel 1 at +0.25
    assert (m @ [0, 1, 4, 1])[:3] == pytest.approx([-0.5, 0.5, 20.0])


def test_volume_ijk_to_ras_puts_frame_plane_points_at_minus_x_minus_y():
    spacing, center, dz = (0.2, 0.1), (10.0, 12.0), 0.5
    m = volume_ijk_to_ras(spacing, center, dz)
    x_mm, y_mm, k = 0.3, -0.4, 6
    col, row = center[1] + x_mm / spacing[1], center[0] + y_mm / spacing[0]
    assert (m @ [col, row, k, 1])[:3] == pytest.approx([-x_mm, -y_mm, k * dz])
