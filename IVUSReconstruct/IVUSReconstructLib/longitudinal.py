"""The longitudinal (L-mode) view: one diameter of every frame, side by side along the pullback.

numpy only: frames are sampled bilinearly along the cut and placed by their position, so the
view reads lazily from a memmap or a subset and never holds the pullback as floats.
"""

from __future__ import annotations

import numpy as np

__all__ = ["longitudinal_view"]


def longitudinal_view(
    frames: np.ndarray,
    angle_deg: float,
    *,
    pixel_spacing_mm: tuple[float, float],
    frame_positions_mm: np.ndarray,
    catheter_center_px: tuple[float, float] | None = None,
    half_width_mm: float | None = None,
    mm_per_px: float | None = None,
) -> np.ndarray:
    """The longitudinal (L-mode) cut through all frames along one diameter.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
        Grey-level frames (any numeric dtype); any object with ``shape`` and slicing (a
        memmap, a lazy subset) is read 256 frames at a time.
    angle_deg : float
        Direction of the cut in the frame plane, counter-clockwise from +x (columns).
    pixel_spacing_mm : (float, float)
        (row, col) spacing.
    frame_positions_mm : ndarray of shape (N,)
        Longitudinal position of each frame (increasing or not; frames are placed by position).
    catheter_center_px : (float, float), optional
        (row, col) of the catheter; the image centre by default.
    half_width_mm : float, optional
        Half length of the diameter sampled; by default the largest circle inside the frame.
    mm_per_px : float, optional
        Output pixel size along both axes; the in-plane column spacing by default.

    Returns
    -------
    ndarray of shape (R, C), same dtype as ``frames``
        Rows run along the diameter (row 0 at ``+angle`` side), columns along the pullback
        (column 0 at the smallest position); each column is the nearest frame.
    """
    if not (hasattr(frames, "shape") and hasattr(frames, "__getitem__")):
        frames = np.asarray(frames)
    n, h, w = frames.shape
    positions = np.asarray(frame_positions_mm, dtype=float)
    if positions.shape != (n,):
        raise ValueError(f"frame_positions_mm must have shape ({n},), got {positions.shape}")
    row_mm, col_mm = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    if catheter_center_px is None:
        catheter_center_px = ((h - 1) / 2.0, (w - 1) / 2.0)
    c_row, c_col = catheter_center_px
    if half_width_mm is None:
        half_width_mm = min(
            c_row * row_mm, (h - 1 - c_row) * row_mm, c_col * col_mm, (w - 1 - c_col) * col_mm
        )
    step = float(mm_per_px) if mm_per_px else col_mm
    offsets_mm = np.arange(half_width_mm, -half_width_mm - 1e-9, -step)
    a = np.radians(angle_deg)
    # Frame plane: x along columns, y along rows.
    cols = c_col + offsets_mm * np.cos(a) / col_mm
    rows = c_row + offsets_mm * np.sin(a) / row_mm
    # Bilinear interpolation in each frame along the diameter.
    r0 = np.clip(np.floor(rows).astype(int), 0, h - 2)
    c0 = np.clip(np.floor(cols).astype(int), 0, w - 2)
    fr, fc = rows - r0, cols - c0
    # Only the four neighbours of each sample are read (frame by frame for a memmap), so a
    # long pullback is never converted to float as a whole.
    lines = np.empty((n, len(offsets_mm)), dtype=np.float32)
    weights = [((1 - fr) * (1 - fc), 0, 0), (fr * (1 - fc), 1, 0), ((1 - fr) * fc, 0, 1), (fr * fc, 1, 1)]
    for start in range(0, n, 256):
        block = np.asarray(frames[start : start + 256])
        acc = np.zeros((len(block), len(offsets_mm)), dtype=np.float32)
        for weight, dr, dc in weights:
            acc += block[:, r0 + dr, c0 + dc].astype(np.float32) * weight.astype(np.float32)
        lines[start : start + len(block)] = acc  # (N, R)
    order = np.argsort(positions, kind="stable")
    sorted_pos = positions[order]
    grid = np.arange(sorted_pos[0], sorted_pos[-1] + 1e-9, step) if n > 1 else sorted_pos
    idx = np.clip(np.searchsorted(sorted_pos, grid), 1, max(n - 1, 1)) if n > 1 else np.zeros(1, int)
    if n > 1:
        left = sorted_pos[idx - 1]
        pick_left = (grid - left) <= (sorted_pos[idx] - grid)
        idx = np.where(pick_left, idx - 1, idx)
    out = lines[order[idx]].T
    if np.issubdtype(frames.dtype, np.integer):
        info = np.iinfo(frames.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(frames.dtype)
