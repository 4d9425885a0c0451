"""Keyframe files: borders a reader corrected on some frames, in any contour format, mapped
into the frame plane of the pullback they belong to.

Every format :func:`~IVUSReconstructLib.io.contours.read_contours` reads is accepted, and each
frame may hold the lumen, the vessel or both. Where each format's points land:

- native JSON with ``pixel_spacing_mm`` and ``catheter_center_px``: that file's own frame plane,
  mapped through its pixels (the images' pixels are the common ground) into this pullback's;
  without them, frame-plane mm of this pullback, as they are;
- AIVUS / HolOrama JSON and EchoPlaque XML (pixels of this pullback's frames): converted with
  this pullback's pixel spacing and catheter centre;
- multimodars / AIVUS-CAA CSV (image mm, ``y`` up): the image centre subtracted is this
  pullback's catheter centre, so ``(col, H - row) * spacing`` lands on pixel ``(row, col)``;
- plain CSV: frame-plane mm of this pullback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import IVUSInputError, input_error
from ..geometry import mm_to_px
from ..segmentation.keyframes import to_pullback_plane
from ..types import ContourSet, Pullback
from .contours import read_contours

__all__ = ["read_keyframes", "check_inside_image", "keyframe_record"]


def read_keyframes(path: str | Path, pullback: Pullback) -> ContourSet:
    """Read a keyframe file and map its borders into ``pullback``'s frame plane.

    Parameters
    ----------
    path : path-like
        Any contour file :func:`read_contours` reads.
    pullback : Pullback
        The pullback the keyframes were drawn on.

    Returns
    -------
    ContourSet
        Lumen and vessel borders (either may be None) in frame-plane mm of ``pullback``, with its
        pixel spacing and catheter centre; ``source`` ``"edited"``.

    Raises
    ------
    IVUSInputError
        Unreadable file, a frame outside the pullback, a border outside the image, a lumen
        outside its vessel: one line naming the file, the frame and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "keyframe file", "does not exist", "check the path")
    spacing, center = pullback.pixel_spacing_mm, pullback.catheter_center_px
    height = pullback.shape_px[0]
    contours = read_contours(
        path,
        pixel_spacing_mm=spacing,
        catheter_center_px=center,
        # AIVUS-CAA writes (col, H - row) * spacing: its image centre is the catheter's pixel
        csv_image_center_mm=(center[1] * spacing[1], (height - center[0]) * spacing[0]),
        require_lumen=False,
    )
    # a border off the image is the first thing to say: its lumen-in-vessel test would only
    # report the consequence
    check_inside_image(contours, pullback, path)
    return to_pullback_plane(contours, pullback, name=str(path))


def check_inside_image(keyframes: ContourSet, pullback: Pullback, path: object) -> None:
    """Raise when a keyframe border leaves the pixels of ``pullback``'s frames.

    The borders are in the frame plane of ``keyframes`` (its own pixel spacing and catheter
    centre when it has both, else ``pullback``'s). Frames outside the pullback are left to
    :func:`~IVUSReconstructLib.segmentation.keyframes.to_pullback_plane`.

    Raises
    ------
    IVUSInputError
    """
    rows, cols = pullback.shape_px
    own = keyframes.pixel_spacing_mm is not None and keyframes.catheter_center_px is not None
    spacing = keyframes.pixel_spacing_mm if own else pullback.pixel_spacing_mm
    center = keyframes.catheter_center_px if own else pullback.catheter_center_px
    for f in keyframes.frames:
        if not 0 <= f.index < pullback.n_frames:
            continue
        for border in ("lumen", "vessel"):
            points = getattr(f, border)
            if points is None:
                continue
            px = mm_to_px(np.asarray(points, float), spacing, center)
            outside = (
                (px[:, 0] < -0.5) | (px[:, 0] > rows - 0.5) | (px[:, 1] < -0.5) | (px[:, 1] > cols - 0.5)
            )
            if outside.any():
                r, c = px[np.flatnonzero(outside)[0]]
                raise IVUSInputError(
                    f"{path}: frame {f.index} {border} reaches pixel (row {r:.0f}, col {c:.0f}), outside the "
                    f"{rows} x {cols} image; give borders drawn on this pullback's frames (in mm about its "
                    "catheter centre, or with the file's own pixel_spacing_mm and catheter_center_px)"
                )


def keyframe_record(path: str | Path, keyframes: ContourSet) -> dict[str, object]:
    """The ``inputs.keyframes`` entry of summary.json: the file name and its frames per border."""
    return {
        "file": Path(path).name,
        "frames": [int(f.index) for f in keyframes.frames],
        "lumen_frames": [int(f.index) for f in keyframes.frames if f.lumen is not None],
        "vessel_frames": [int(f.index) for f in keyframes.frames if f.vessel is not None],
    }
