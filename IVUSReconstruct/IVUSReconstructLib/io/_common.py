"""Small helpers shared by the pullback readers (DICOM and image folders)."""

from __future__ import annotations

import mmap
import re

import numpy as np

from .. import limits

__all__ = ["luminance", "natural_key", "positive_option", "release_pages"]


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: frame2 before frame10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def positive_option(value: float | None, field: str) -> None:
    """Refuse a value given to a reader (an override of the file's own) that is not a finite
    number within its plausible range.

    Parameters
    ----------
    value : float or None
        None: not given.
    field : str
        Its row of the range table (``"pixel_spacing_mm"``, ``"pullback_speed_mm_s"``,
        ``"frame_rate_hz"``); the error carries it, so each front end names its own control.
    """
    name = f"{limits.LIMITS[field].label} (given)"
    limits.check(field, value, where=name, name="value")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of (..., 3) integer RGB, in the input's dtype.

    Both readers convert colour frames with this one function, so a pullback gives the same
    grey levels whether it arrives as DICOM or as exported images.
    """
    y = rgb[..., 0] * np.float32(0.299)
    y += rgb[..., 1] * np.float32(0.587)
    y += rgb[..., 2] * np.float32(0.114)
    return np.clip(np.rint(y), 0, np.iinfo(rgb.dtype).max).astype(rgb.dtype)


def release_pages(frames: object) -> bool:
    """Drop the pages of a memory-mapped pullback from this process's resident memory.

    Pages already read stay in the operating system's file cache and are mapped in again, at
    the cost of a minor page fault, when read again: a long pullback read frame by frame then
    never counts whole in the resident memory of the process. Arrays that are not file
    mappings are left alone.

    Returns
    -------
    bool
        Whether pages were released.
    """
    mapped = frames
    while mapped is not None and getattr(mapped, "_mmap", None) is None:
        mapped = getattr(mapped, "base", None)
    handle = getattr(mapped, "_mmap", None)
    advise = getattr(mmap, "MADV_DONTNEED", None)
    # only read-only mappings: dropping copy-on-write pages would lose their changes
    if handle is None or advise is None or getattr(mapped, "mode", None) != "r":
        return False
    try:
        handle.madvise(advise)
    except (OSError, ValueError):
        return False
    return True
