"""Which frames were edited, and the edited borders as keyframes, on masks drawn by hand (no MRML).

The scene adapter's round trips (Segment Editor edits on real MRML) are in Testing/mrml/test_keyframes_mrml.py.
"""

from __future__ import annotations

import numpy as np

from IVUSReconstructLib import edits
from IVUSReconstructLib.geometry import mm_to_fine_px, polygon_area, rasterize_polygon_px
from IVUSReconstructLib.types import ContourSet, FrameContours

SPACING_RC = (0.1, 0.1)
CENTER_RC = (15.0, 15.0)  # frames of 31 x 31 volume pixels, 3.1 mm across


def circle_mm(radius_mm: float, n: int = 90) -> np.ndarray:
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([radius_mm * np.cos(a), radius_mm * np.sin(a)])


def masks_of(contours: ContourSet, n_frames: int, f: int) -> dict[str, np.ndarray]:
    """Lumen and vessel masks rasterised as the scene adapter does (fine pixel = f p + (f - 1) / 2)."""
    shape = (n_frames, 31 * f, 31 * f)
    out = {"lumen": np.zeros(shape, bool), "vessel": np.zeros(shape, bool)}
    for frame in contours.frames:
        for border in out:
            polygon = getattr(frame, border)
            if polygon is not None:
                px = mm_to_fine_px(polygon, SPACING_RC, CENTER_RC, f)
                out[border][frame.index] = rasterize_polygon_px(px, shape[1:])
    return out


def three_frames() -> ContourSet:
    frames = tuple(FrameContours(index=k, lumen=circle_mm(0.6), vessel=circle_mm(1.2)) for k in range(3))
    return ContourSet(frames=frames, pixel_spacing_mm=SPACING_RC, catheter_center_px=CENTER_RC)


def test_changed_frames_counts_differing_pixels():
    square = np.array([[-0.45, -0.45], [0.45, -0.45], [0.45, 0.45], [-0.45, 0.45]])

    def to_px(polygon):
        return polygon / 0.1 + 5.0  # 1 mm = 10 px, centre at (5, 5)

    mask = np.zeros((3, 12, 12), bool)
    mask[0] = mask[1] = rasterize_polygon_px(to_px(square), (12, 12))
    assert mask[0].sum() == 81  # pixel centres 1..9 inside |x| < 4.5 px
    mask[1, 11, 11] = mask[1, 11, 10] = mask[1, 0, 0] = True  # 3 pixels outside the polygon's box
    mask[1, 5, 5] = mask[1, 5, 6] = False  # 2 inside it
    mask[2, 0, :4] = True  # drawn on a frame without a polygon
    polygons = {0: square, 1: square}
    assert edits.changed_frames(mask, polygons, to_px, 4) == [1, 2]
    assert edits.changed_frames(mask, polygons, to_px, 5) == [1]
    assert edits.changed_frames(mask, polygons, to_px, 6) == []


def test_edited_frames_on_oversampled_masks():
    contours = three_frames()
    masks = masks_of(contours, 3, 2)
    assert edits.edited(masks, 2, SPACING_RC, CENTER_RC, contours, 4) == {"lumen": [], "vessel": []}
    masks["lumen"][1, 4:8, 4:8] = True  # a 2 x 2 volume-pixel patch (16 fine pixels) away from the lumen
    masks["vessel"][2, 30:32, 30:32] = False  # 4 fine pixels: one volume pixel, below the threshold
    found = edits.edited(masks, 2, SPACING_RC, CENTER_RC, contours, 4)
    assert found == {"lumen": [1], "vessel": []}
    assert edits.edited(masks, 2, SPACING_RC, CENTER_RC, contours, 1) == {"lumen": [1], "vessel": [2]}
    # a border without a segment has no edited frame
    assert edits.edited({"lumen": None}, 2, SPACING_RC, CENTER_RC, contours, 4) == {"lumen": []}


def test_keyframes_of_outline_the_edited_masks_in_mm():
    contours = three_frames()
    masks = masks_of(contours, 3, 2)
    key = edits.keyframes_of(masks, 2, SPACING_RC, CENTER_RC, {"lumen": [0, 2, 7], "vessel": [2]})
    assert [c.index for c in key.frames] == [0, 2]  # frame 7 is outside the masks
    assert [c.source for c in key.frames] == ["edited", "edited"]
    assert key.frames[0].vessel is None
    # pi 0.6^2 = 1.131 mm2; the 0.5-level outline of a rasterised disc (0.05 mm fine pixels)
    assert abs(polygon_area(key.frames[0].lumen) - np.pi * 0.36) < 0.02
    assert abs(polygon_area(key.frames[1].vessel) - np.pi * 1.44) < 0.04
    # centred on the catheter: the fine-pixel mapping is inverted exactly
    assert np.allclose(key.frames[1].vessel.mean(axis=0), 0.0, atol=0.01)
    assert key.pixel_spacing_mm == SPACING_RC and key.catheter_center_px == CENTER_RC
    masks["vessel"][2] = False
    assert [c.index for c in edits.keyframes_of(masks, 2, SPACING_RC, CENTER_RC, {"vessel": [2]}).frames] == []
