"""Which frames a user edited, and the edited borders as keyframes: frame labelmaps vs a result's contours.

The scene adapter (``mrml.edited_frames``, ``mrml.propagate_edits``) reads the Lumen and Vessel
segments into masks and hands them here; nothing in this module knows MRML. Masks are on the
frames subdivided ``f`` times in-plane (the segmentation's oversampling): volume pixel p is fine
pixel f p + (f - 1) / 2 (:func:`~IVUSReconstructLib.geometry.mm_to_fine_px`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .geometry import fine_px_to_mm, mm_to_fine_px, rasterize_polygon_px
from .labelmap import mask_outlines_px
from .types import ContourSet, FrameContours

__all__ = ["BORDERS", "changed_frames", "edited", "keyframes_of"]

BORDERS = ("lumen", "vessel")
"""The borders whose edits become keyframes."""


def changed_frames(
    mask: np.ndarray, polygons: dict[int, np.ndarray], to_px: Callable[[np.ndarray], np.ndarray], min_pixels: int
) -> list[int]:
    """Frames of ``mask`` (K, H, W) that differ from their rasterised polygon by ``min_pixels``
    or more (a frame without a polygon: a region of that size drawn on it).

    Parameters
    ----------
    mask : ndarray of shape (K, H, W), bool
    polygons : dict of int to ndarray of shape (M, 2)
        Frame-plane mm polygons by frame index.
    to_px : callable
        Frame-plane mm (M, 2) -> (row, col) pixels of ``mask``.
    min_pixels : int

    Returns
    -------
    list of int
        Sorted frame indices.
    """
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
        expected = rasterize_polygon_px(px - lo, tuple(hi - lo + 1))
        inside = mask[k, lo[0] : hi[0] + 1, lo[1] : hi[1] + 1]
        differ = np.count_nonzero(inside ^ expected) + int(counts[k] - np.count_nonzero(inside))
        if differ >= min_pixels:
            changed.append(k)
    return changed


def edited(
    masks: dict[str, np.ndarray | None],
    f: int,
    spacing_rc: tuple[float, float],
    center_rc: tuple[float, float],
    contours: ContourSet,
    min_changed_pixels: int,
) -> dict[str, list[int]]:
    """Frames whose ``lumen`` / ``vessel`` mask no longer matches ``contours`` (:func:`changed_frames`).

    Parameters
    ----------
    masks : dict
        ``lumen``, ``vessel``: ndarray of shape (K, H f, W f), bool, or None (no such segment:
        no frame edited).
    f : int
        In-plane oversampling of the masks.
    spacing_rc, center_rc
        Pixel spacing (mm) and catheter centre (px) of the frames, (row, col).
    contours : ContourSet
        The borders the masks were rasterised from.
    min_changed_pixels : int
        In frame pixels (f * f fine pixels each).

    Returns
    -------
    dict
        Border -> sorted frame indices.
    """

    def to_px(polygon: np.ndarray) -> np.ndarray:
        return mm_to_fine_px(polygon, spacing_rc, center_rc, f)

    out: dict[str, list[int]] = {}
    for border, mask in masks.items():
        polygons = {c.index: getattr(c, border) for c in contours.frames if getattr(c, border) is not None}
        out[border] = (
            [] if mask is None else changed_frames(mask, polygons, to_px, min_changed_pixels * f * f)
        )
    return out


def keyframes_of(
    masks: dict[str, np.ndarray | None],
    f: int,
    spacing_rc: tuple[float, float],
    center_rc: tuple[float, float],
    frames: dict[str, list[int]],
    *,
    smoothing_px: float = 0.0,
) -> ContourSet:
    """The outlines of the edited frames' masks as keyframes (frame-plane mm of the volume).

    A frame listed in ``frames`` whose mask is missing, out of range or empty gives no border;
    each keyframe's ``source`` is ``"edited"``.
    """
    borders: dict[int, dict[str, np.ndarray]] = {}
    for border, indices in frames.items():
        for k in indices:
            if masks[border] is None or not 0 <= k < len(masks[border]) or not masks[border][k].any():
                continue
            outline = mask_outlines_px(masks[border][k], smoothing_px=smoothing_px)[0]
            borders.setdefault(int(k), {})[border] = fine_px_to_mm(outline, spacing_rc, center_rc, f)
    frames_out = tuple(
        FrameContours(index=k, lumen=b.get("lumen"), vessel=b.get("vessel"), source="edited")
        for k, b in sorted(borders.items())
    )
    return ContourSet(frames=frames_out, pixel_spacing_mm=spacing_rc, catheter_center_px=center_rc)
