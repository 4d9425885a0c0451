"""Pullbacks that are not DICOM: folders of screen-exported frames and 3D images.

Frame folders (PNG, JPEG, TIFF, BMP; one frame per file, natural sort so ``frame2`` comes
before ``frame10``; or one multi-page TIFF) are decoded one file at a time into a single
preallocated grey stack (ITU-R BT.601 luminance, uint8, or uint16 for 16-bit TIFF). While
decoding:

- coloured overlays (pixels whose R, G, B differ by more than ``_CHROMA_THRESHOLD``: measurement
  lines, cursors, colour labels) are replaced by the mean of their uncoloured neighbours,
  unless most of the frame is coloured (a tinted display, kept as luminance);
- the temporal mean and standard deviation of every pixel are accumulated.

From those two images the circular field of view (the textured disc, whose speckle changes
from frame to frame, on a static black background) and the catheter centre (the centre of the
static dark ring-down disc) are detected, and everything outside the disc (burned-in text,
logos, rulers, longitudinal views) is set to 0. A calibration ruler (evenly spaced tick marks
outside the disc) is looked for when ``--pixel-spacing`` is not given.

3D images (NRRD ``.nrrd``/``.nhdr``, NIfTI ``.nii``/``.nii.gz``, MetaImage ``.mha``/``.mhd``) are
read with SimpleITK: slices along the third axis are the frames, the in-plane spacing comes
from the image and the slice spacing is the distance between frames (``speed / frame rate``).

Every acquisition fact is returned with where it came from (option, image header or
``detected: ...``); whatever cannot be known raises :class:`IVUSInputError` naming the option
that supplies it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageSequence
from scipy import ndimage

from .. import limits
from ..errors import (
    FIX_FRAME_RATE,
    FIX_PIXEL_SPACING,
    FIX_PULLBACK_SPEED,
    IVUSCancelled,
    IVUSInputError,
    input_error,
)
from ..geometry import robust_circle_fit
from ..types import Pullback, Valued
from ._common import luminance, natural_key, positive_option

__all__ = [
    "IMAGE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "handles",
    "read_pullback",
    "detect_field_of_view",
    "detect_catheter_center",
    "mask_colour_overlay",
    "pullback_from_volume",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")

_FORMAT_NAMES = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}

# A grey pixel of a JPEG export has R, G, B within a few levels of each other; overlay colours
# (red, green, yellow, cyan lines) differ by well over 100 levels.
_CHROMA_THRESHOLD = 40
# Above this share of coloured pixels among the bright ones the frame is a tinted display
# (sepia, bronze), not an overlay on a grey image: keep its luminance.
_TINTED_FRACTION = 0.5

_FIX_SPACING = FIX_PIXEL_SPACING
_FIX_RATE = FIX_FRAME_RATE
_FIX_SPEED = FIX_PULLBACK_SPEED
_FIX_FOLDER = "keep only the frames of one pullback in the folder"

ProgressFn = Callable[[float, str], None]
_NO_MASK = np.zeros((0, 0), bool)  # grey pages: nothing masked


# --------------------------------------------------------------------------- dispatch


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _image_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` in natural order (hidden files ignored)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and _suffix(p) in IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def handles(path: str | os.PathLike) -> bool:
    """Whether this module reads ``path`` (rather than the DICOM reader).

    Parameters
    ----------
    path : path-like
        A folder holding PNG/JPEG/TIFF/BMP frames (and more image files than other files), a
        multi-page TIFF, or a 3D image (NRRD, NIfTI, MetaImage).

    Returns
    -------
    bool
    """
    path = Path(path)
    if path.is_dir():
        try:
            entries = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        except OSError:
            return False
        n_images = sum(_suffix(p) in IMAGE_SUFFIXES for p in entries)
        # A DICOM folder may carry a thumbnail or two: images must be the majority.
        return n_images > 0 and 2 * n_images > len(entries)
    return _suffix(path) in IMAGE_SUFFIXES + VOLUME_SUFFIXES


# --------------------------------------------------------------------------- options


def _spacing_option(pixel_spacing_mm: float | tuple[float, float] | None) -> tuple[float, float] | None:
    if pixel_spacing_mm is None:
        return None
    values = np.atleast_1d(np.asarray(pixel_spacing_mm, dtype=float))
    for v in values:
        positive_option(float(v), "pixel_spacing_mm")
    if values.size == 1:
        return float(values[0]), float(values[0])
    return float(values[0]), float(values[1])


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IVUSCancelled("reading the pullback was cancelled")


# --------------------------------------------------------------------------- overlays


def mask_colour_overlay(
    rgb: np.ndarray,
    *,
    chroma_threshold: int = _CHROMA_THRESHOLD,
    max_fraction: float = _TINTED_FRACTION,
    region: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey frame of an RGB screen export with its coloured overlay pixels filled in.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    chroma_threshold : int
        A pixel is coloured when ``max(R, G, B) - min(R, G, B)`` exceeds this.
    max_fraction : float
        When more than this share of the bright pixels (a channel above
        ``3 * chroma_threshold``) is coloured the frame is a tinted display: no pixel is masked.
    region : ndarray of shape (H, W), bool, optional
        Where the tint is judged (the image between the catheter and the field-of-view
        edge): a large coloured mask or catheter fill outside it does not make a tinted display.

    Returns
    -------
    grey : ndarray of shape (H, W), uint8
        Luminance; coloured pixels (and their 1-pixel rim, where JPEG and anti-aliasing bleed
        the colour) replaced by the mean of the uncoloured pixels around them, or 0 where a
        coloured blob is too large to fill.
    masked : ndarray of shape (H, W), bool, or None
        The pixels replaced; None for a tinted display.
    """
    grey = luminance(rgb)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # Per-channel maximum and minimum (much faster than reducing over the short last axis).
    high = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    coloured = (high - low) > chroma_threshold
    if not coloured.any():
        return grey, coloured
    # Only pixels bright enough to carry a visible colour say whether the display is tinted
    # (dark pixels of a sepia display have almost no chroma).
    bright = high > 3 * chroma_threshold
    if region is not None and region.shape == bright.shape:
        bright = bright & region
    if int(np.count_nonzero(coloured & bright)) > max_fraction * max(int(np.count_nonzero(bright)), 1):
        return grey, None
    rows = np.nonzero(coloured.any(axis=1))[0]
    cols = np.nonzero(coloured.any(axis=0))[0]
    # Work in the bounding box of the overlay (plus the largest fill window).
    margin = 10
    r0, r1 = max(rows[0] - margin, 0), rows[-1] + margin + 1
    c0, c1 = max(cols[0] - margin, 0), cols[-1] + margin + 1
    box = ndimage.binary_dilation(coloured[r0:r1, c0:c1], structure=np.ones((3, 3), bool))
    coloured[r0:r1, c0:c1] = box
    grey[r0:r1, c0:c1] = _fill_masked(grey[r0:r1, c0:c1], box)
    return grey, coloured


def _fill_masked(grey: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Replace ``masked`` pixels by the mean of unmasked pixels in a growing window."""
    out = grey.copy()
    valid = (~masked).astype(np.float32)
    values = grey.astype(np.float32) * valid
    todo = masked.copy()
    for size in (5, 9, 17):
        total = ndimage.uniform_filter(values, size=size, mode="constant")
        weight = ndimage.uniform_filter(valid, size=size, mode="constant")
        ok = todo & (weight > 1e-3)
        out[ok] = np.clip(np.rint(total[ok] / weight[ok]), 0, 255).astype(np.uint8)
        todo &= ~ok
        if not todo.any():
            break
    out[todo] = 0
    return out


# --------------------------------------------------------------------------- detection


def detect_field_of_view(
    mean_image: np.ndarray, std_image: np.ndarray
) -> tuple[tuple[float, float], float] | None:
    """The circular field of view: the disc whose pixels change from frame to frame.

    Parameters
    ----------
    mean_image, std_image : ndarray of shape (H, W)
        Temporal mean and standard deviation of the frames (grey levels). With a single frame
        (``std_image`` all 0) the non-black pixels are used instead.

    Returns
    -------
    ((row, col), radius_px) or None
        Centre and radius in pixels (sub-pixel), or None when no disc covering at least 2 % of
        the image, with its rim visible over at least half of its circumference, is found.
    """
    activity = std_image if float(std_image.max()) > 0 else mean_image
    active = activity[activity > 0.5]
    if active.size == 0:
        return None
    threshold = max(1.0, 0.2 * float(np.median(active)))
    mask = activity > threshold
    # Close speckle gaps, then open to cut thin attachments (cursor lines, changing text).
    # (Padded by replication so that the image border does not erode a disc cut by it.)
    pad = 4
    mask = np.pad(mask, pad, mode="edge")
    mask = ndimage.binary_closing(mask, structure=_disk(2))
    mask = ndimage.binary_opening(mask, structure=_disk(3))[pad:-pad, pad:-pad]
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    disc = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    if disc.sum() < 0.02 * disc.size:
        return None
    edge = disc & ~ndimage.binary_erosion(disc)
    h, w = disc.shape
    rr, cc = np.nonzero(edge)
    # Where the disc is cut by the image border the border is not the circle.
    inner = (rr > 0) & (rr < h - 1) & (cc > 0) & (cc < w - 1)
    if inner.sum() < 16:
        return None
    pr, pc = rr[inner].astype(float), cc[inner].astype(float)
    r0, c0, radius = robust_circle_fit(pr, pc)
    # A real disc shows its rim all round; a rectangle filled edge to edge only at its
    # (rounded) corners: require rim points in at least half of 36 ten-degree sectors.
    on_rim = np.abs(np.hypot(pr - r0, pc - c0) - radius) < 2.0
    sectors = np.floor(np.degrees(np.arctan2(pr[on_rim] - r0, pc[on_rim] - c0)) / 10.0)
    if len(np.unique(sectors)) < 18:
        return None
    # Edge pixel centres lie about half a pixel inside the continuous boundary.
    return (r0, c0), radius + 0.5


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x**2 + y**2 <= radius**2 + 0.5


def detect_catheter_center(
    mean_image: np.ndarray,
    std_image: np.ndarray,
    *,
    fov_center_px: tuple[float, float],
    fov_radius_px: float,
    unreliable: np.ndarray | None = None,
    max_offset_fraction: float = 0.4,
) -> tuple[tuple[float, float], float] | None:
    """Centre of the catheter: the static dark disc inside the ring-down near the FOV centre.

    The disc is found as the dark, static blob nearest the FOV centre; its centre is then
    refined by a robust circle fit to its edge, found sub-pixel along 90 rays of the mean
    image (edge points next to ``unreliable`` pixels, e.g. under an overlay, are dropped).

    Parameters
    ----------
    mean_image, std_image : ndarray of shape (H, W)
        Temporal mean and standard deviation of the frames.
    fov_center_px : (row, col)
    fov_radius_px : float
    unreliable : ndarray of shape (H, W), bool, optional
        Pixels whose mean is not observed (filled-in overlays).
    max_offset_fraction : float
        How far from ``fov_center_px`` the disc's centre may lie, as a fraction of
        ``fov_radius_px``.

    Returns
    -------
    ((row, col), radius_px) or None
        Centre (sub-pixel) and radius of the dark disc, or None when no dark static disc of
        plausible size lies within ``max_offset_fraction`` of the FOV radius.
    """
    h, w = mean_image.shape
    rr, cc = np.mgrid[0:h, 0:w]
    dist = np.hypot(rr - fov_center_px[0], cc - fov_center_px[1])
    inside = dist < fov_radius_px
    if not inside.any():
        return None
    level = float(np.median(mean_image[inside]))
    if level <= 0:
        return None
    dark_level = 0.3 * level
    static = std_image <= max(2.0, 0.5 * float(np.median(std_image[inside])))
    dark = (dist < 0.4 * fov_radius_px) & (mean_image < dark_level) & static
    if unreliable is not None and unreliable.shape == dark.shape:
        dark &= ~unreliable
    labels, n = ndimage.label(dark)
    if n == 0:
        return None
    index = np.arange(1, n + 1)
    areas = ndimage.sum_labels(dark, labels, index=index)
    centres = np.array(ndimage.center_of_mass(dark, labels, index=index)).reshape(-1, 2)
    off = np.hypot(centres[:, 0] - fov_center_px[0], centres[:, 1] - fov_center_px[1])
    max_area = np.pi * (0.3 * fov_radius_px) ** 2
    plausible = (areas >= 4) & (areas <= max_area) & (off <= max_offset_fraction * fov_radius_px)
    if not plausible.any():
        return None
    best = int(np.argmin(np.where(plausible, off - np.sqrt(areas / np.pi), np.inf)))
    disc = ndimage.binary_fill_holes(labels == best + 1)
    row, col = (float(v) for v in ndimage.center_of_mass(disc))
    radius = float(np.sqrt(disc.sum() / np.pi))
    for _ in range(2):
        edge = _ray_edges(mean_image, (row, col), radius, unreliable)
        if edge is None and unreliable is not None:
            # Too much of the rim under an overlay: rely on the robust fit to drop those points.
            edge = _ray_edges(mean_image, (row, col), radius, None)
        if edge is None:
            break
        row, col, radius = robust_circle_fit(edge[:, 0], edge[:, 1])
    return (row, col), radius


def _ray_edges(
    mean_image: np.ndarray,
    center: tuple[float, float],
    radius: float,
    unreliable: np.ndarray | None,
    n_rays: int = 90,
) -> np.ndarray | None:
    """Sub-pixel points (K, 2) where rays from ``center`` leave the dark disc, or None."""
    step = 0.1
    r = np.arange(0.0, 2.5 * radius + 2.0, step)
    theta = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)
    rows = center[0] + np.outer(np.sin(theta), r)
    cols = center[1] + np.outer(np.cos(theta), r)
    profiles = ndimage.map_coordinates(mean_image, [rows, cols], order=1, mode="nearest")
    dark = float(np.median(profiles[:, : max(2, int(0.5 * radius / step))]))
    points = []
    for k, profile in enumerate(profiles):
        peak = int(np.argmax(profile))
        half = 0.5 * (dark + float(profile[peak]))
        if peak == 0 or profile[peak] - dark < 20:
            continue
        above = np.nonzero(profile[: peak + 1] >= half)[0]
        j = int(above[0])
        if j == 0:
            continue
        # Linear interpolation between the samples on either side of the half level.
        t = (half - profile[j - 1]) / (profile[j] - profile[j - 1])
        rad = r[j - 1] + t * step
        pr, pc = center[0] + np.sin(theta[k]) * rad, center[1] + np.cos(theta[k]) * rad
        if unreliable is not None and unreliable.shape == mean_image.shape:
            r0, r1 = int(np.floor(pr - 1.0)), int(np.ceil(pr + 1.0)) + 1
            c0, c1 = int(np.floor(pc - 1.0)), int(np.ceil(pc + 1.0)) + 1
            if unreliable[max(r0, 0) : r1, max(c0, 0) : c1].any():
                continue
        points.append((pr, pc))
    if len(points) < n_rays // 4:
        return None
    return np.asarray(points)


def _decode(
    im: Image.Image, path: Path, region: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """One page as a grey (H, W) array (uint8, or uint16 for 16-bit) and its overlay mask."""
    mode = im.mode
    if mode == "L":
        return np.asarray(im, dtype=np.uint8), _NO_MASK
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        data = np.asarray(im)
        if data.size and (int(data.min()) < 0 or int(data.max()) > 65535):
            raise input_error(
                path,
                "pixel values",
                f"span {data.min()}..{data.max()} (not 16-bit)",
                "export 8- or 16-bit frames",
            )
        return data.astype(np.uint16), _NO_MASK
    if mode == "F":
        raise input_error(path, "pixel type", "is 32-bit float", "export 8-bit PNG, JPEG or TIFF frames")
    if mode in ("1", "LA", "La"):
        return np.asarray(im.convert("L"), dtype=np.uint8), _NO_MASK
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return mask_colour_overlay(rgb, region=region)


def _open_image(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except Exception as exc:  # noqa: BLE001 - any decoder failure (bomb, truncation) is a bad file
        raise input_error(
            path, "image", f"cannot be decoded ({type(exc).__name__})", "re-export the frame or remove it"
        ) from None


def _iter_pages(path: Path, files: list[Path]):
    """Yield (file, PIL page) for a folder (first page of each file) or a multi-page TIFF."""
    if files:
        for p in files:
            im = _open_image(p)
            try:
                yield p, im
            finally:
                im.close()
        return
    im = _open_image(path)
    try:
        for k, page in enumerate(ImageSequence.Iterator(im)):
            try:
                page.load()
            except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad page
                raise input_error(
                    path, f"page {k + 1}", f"cannot be decoded ({type(exc).__name__})", "re-export the TIFF"
                ) from None
            yield path, page
    finally:
        im.close()


def _count_pages(path: Path) -> int:
    im = _open_image(path)
    try:
        return int(getattr(im, "n_frames", 1))
    finally:
        im.close()


def _read_frame_stack(
    path: Path, progress: ProgressFn | None, cancel: threading.Event | None, region: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Valued], str]:
    """Decode frames into one stack, accumulating the temporal mean and std.

    Returns frames (N, H, W), mean and std images (H, W), the pixels under a colour overlay
    (H, W) bool, provenance entries and the format name of the files.
    """
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise input_error(
                path,
                "folder",
                "contains no image files (.png, .jpg, .jpeg, .tif, .tiff, .bmp)",
                "pass a folder of exported frames, a 3D image or a DICOM pullback",
            )
        n = len(files)
        fmt = _FORMAT_NAMES[_suffix(files[0])]
        n_source = f"{n} {fmt} files in natural order"
    else:
        files = []
        n = _count_pages(path)
        fmt = _FORMAT_NAMES[_suffix(path)]
        if n < 2:
            raise input_error(
                path,
                "frames",
                f"is a single 2D {fmt} image",
                "pass the folder holding every frame of the pullback",
            )
        n_source = f"{n} pages of the {fmt} file"

    frames: np.ndarray | None = None
    first_name = ""
    total = total_sq = overlay_count = None
    n_masked = 0
    tinted = 0
    for k, (file, page) in enumerate(_iter_pages(path, files)):
        _check_cancel(cancel)
        grey, masked = _decode(page, file, region)
        if frames is None:
            # the first frame decoded (a damaged one is named as such), the others not yet
            field = f"{n} files of {grey.shape[1]}x{grey.shape[0]} px" if files else f"{n} pages of {grey.shape[1]}x{grey.shape[0]} px"
            limits.check_decoded_size(path, field, (n,) + grey.shape, grey.dtype.itemsize)
            frames = np.empty((n,) + grey.shape, dtype=grey.dtype)
            first_name = file.name if files else "page 1"
            total = np.zeros(grey.shape, np.float64)
            total_sq = np.zeros(grey.shape, np.float64)
            overlay_count = np.zeros(grey.shape, np.int32)
        elif grey.shape != frames.shape[1:]:
            where = file if files else f"{path} page {k + 1}"
            raise input_error(
                where,
                "image size",
                f"is {grey.shape[1]}x{grey.shape[0]} px, unlike {frames.shape[2]}x{frames.shape[1]} px of {first_name}",
                _FIX_FOLDER,
            )
        elif grey.dtype != frames.dtype:
            where = file if files else f"{path} page {k + 1}"
            raise input_error(
                where, "bit depth", f"is {grey.dtype} unlike {frames.dtype} of {first_name}", _FIX_FOLDER
            )
        frames[k] = grey
        values = grey.astype(np.float64)
        total += values
        total_sq += values * values
        if masked is None:
            tinted += 1
        elif masked.size:
            n_masked += int(masked.sum())
            overlay_count += masked
        if progress is not None and (k % 16 == 0 or k == n - 1):
            progress(0.9 * (k + 1) / n, f"decoding frame {k + 1}/{n}")
    assert frames is not None and total is not None and total_sq is not None
    # Pixels under an overlay in a fifth of the frames or more: their mean is filled in, not seen.
    overlay = overlay_count >= max(1, 0.2 * n)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
    provenance = {
        "n_frames": Valued(n, n_source),
        "overlay_pixels": Valued(
            n_masked,
            f"detected: pixels with R, G, B more than {_CHROMA_THRESHOLD} levels apart (and their rim), "
            "replaced by the mean of their grey neighbours",
        ),
    }
    if tinted:
        provenance["tinted_frames"] = Valued(
            tinted,
            f"detected: over {_TINTED_FRACTION:.0%} of the bright pixels coloured; luminance kept, no overlay masked",
        )
    return frames, mean, std, overlay, provenance, fmt


def _geometry(
    mean: np.ndarray, std: np.ndarray, overlay: np.ndarray | None = None
) -> tuple[tuple[tuple[float, float], float] | None, tuple[float, float], Valued]:
    """(FOV or None, catheter centre, catheter provenance) from the temporal images."""
    h, w = mean.shape
    fov = detect_field_of_view(mean, std)
    # Without a visible disc (image filled edge to edge) search around the image centre.
    search = fov if fov is not None else (((h - 1) / 2.0, (w - 1) / 2.0), min(h, w) / 2.0)
    # scan conversion puts the transducer at the centre of the field of view's circle: a dark
    # static blob well off it is a lumen that barely moved between frames (20 MHz blood is nearly
    # black), not the catheter (set B: 22 px off, and every border was then drawn about it)
    catheter = detect_catheter_center(
        mean,
        std,
        fov_center_px=search[0],
        fov_radius_px=search[1],
        unreliable=overlay,
        max_offset_fraction=0.4 if fov is None else 0.06,
    )
    if catheter is not None:
        (row, col), radius = catheter
        return (
            fov,
            (row, col),
            Valued(
                (round(row, 2), round(col, 2)),
                f"detected: centre of the dark ring-down disc (radius {radius:.1f} px) in the temporal mean image",
            ),
        )
    if fov is not None:
        (row, col), _ = fov
        return (
            fov,
            (row, col),
            Valued(
                (round(row, 2), round(col, 2)), "detected: field-of-view centre (no dark catheter disc found)"
            ),
        )
    centre = ((h - 1) / 2.0, (w - 1) / 2.0)
    return None, centre, Valued(centre, "default: image centre (no field of view or catheter found)")


def _zero_outside(frames: np.ndarray, center: tuple[float, float], radius: float) -> int:
    """Set pixels beyond the field of view (plus a 1-pixel margin) to 0 in place."""
    h, w = frames.shape[1:]
    rr, cc = np.mgrid[0:h, 0:w]
    outside = np.hypot(rr - center[0], cc - center[1]) > radius + 1.0
    rows = np.nonzero(outside.any(axis=1))[0]
    for r in rows:  # row by row: no index arrays the size of the stack
        frames[:, r, outside[r]] = 0
    return int(outside.sum())


_N_SAMPLES = 9


def _sample_rgb(path: Path, n_samples: int = _N_SAMPLES) -> np.ndarray | None:
    """A few frames spread over the pullback as (K, H, W, 3) uint8 RGB, or None.

    Decoding 9 of 1,700 JPEG frames takes well under a second: enough to find the
    calibration marks and the display geometry before the whole folder is read.
    """
    try:
        if path.is_dir():
            files = _image_files(path)
            picks = sorted(
                set(np.linspace(0, len(files) - 1, min(n_samples, len(files))).round().astype(int))
            )
            images = [_open_image(files[i]) for i in picks]
        else:
            im = _open_image(path)
            n = int(getattr(im, "n_frames", 1))
            images = []
            for i in sorted(set(np.linspace(0, n - 1, min(n_samples, n)).round().astype(int))):
                im.seek(int(i))
                images.append(im.copy())
            im.close()
    except (OSError, EOFError):
        return None  # the full read names the bad page
    out = []
    for im in images:
        if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
            grey = np.asarray(im, dtype=np.float64)
            top = float(grey.max()) or 1.0
            grey = np.clip(np.rint(grey * (255.0 / top)), 0, 255).astype(np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=-1)
        else:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        im.close()
        out.append(rgb)
    if len(out) < 3 or len({a.shape for a in out}) != 1:
        return None
    return np.stack(out)


def _scale_from_samples(
    path: Path, samples: np.ndarray | None, fmt: str
) -> tuple[tuple[float, float], Valued, dict]:
    """Pixel spacing from calibration marks on sampled frames, or a refusal naming the fix."""
    from .calibration import detect_scale_marks

    scale = detect_scale_marks(samples) if samples is not None else None
    if scale is None:
        seen = f"{len(samples)} sampled frames" if samples is not None else "the frames"
        raise input_error(
            path,
            "pixel spacing",
            f"is unknown for {fmt} frames (no evenly spaced 1 mm dots or tick marks found in {seen})",
            _FIX_SPACING,
        )
    mm = 1.0 / scale["pitch_px"]
    where = " and ".join(f"{g['axis']} {g['line_px']}" for g in scale["lines"])
    source = (
        f"detected: {scale['n_ticks']} tick marks every {scale['pitch_px']:.2f} px along {where} "
        f"({scale['kind']} marks in {len(samples)} sampled frames), assumed 1 mm apart (a given pixel spacing overrides it)"
    )
    return (mm, mm), Valued((mm, mm), source), scale


def _zero_inside(frames: np.ndarray, center: tuple[float, float], radius: float) -> int:
    """Set pixels within ``radius`` of ``center`` to 0 in place (the catheter fill)."""
    h, w = frames.shape[1:]
    rr, cc = np.mgrid[0:h, 0:w]
    inside = np.hypot(rr - center[0], cc - center[1]) < radius
    for r in np.nonzero(inside.any(axis=1))[0]:
        frames[:, r, inside[r]] = 0
    return int(inside.sum())


def _image_region(display: dict | None) -> np.ndarray | None:
    """Pixels between the catheter fill and the mask of a detected display (None without one)."""
    if display is None:
        return None
    h, w = display["shape_px"]
    rr, cc = np.mgrid[0:h, 0:w]
    fov = (
        np.hypot(rr - display["fov_center_px"][0], cc - display["fov_center_px"][1])
        < display["fov_radius_px"]
    )
    cath = (
        np.hypot(rr - display["catheter_center_px"][0], cc - display["catheter_center_px"][1])
        < display["catheter_radius_px"] + 2
    )
    return fov & ~cath


def _scale_json(scale: dict) -> dict:
    """The calibration found, rounded for summary.json."""
    return {
        "pitch_px": round(scale["pitch_px"], 3),
        "n_ticks": scale["n_ticks"],
        "kind": scale["kind"],
        "lines": [
            {
                "axis": g["axis"],
                "line_px": g["line_px"],
                "n_marks": g["n_marks"],
                "pitch_px": round(g["pitch_px"], 3),
                "residual_px": round(g["residual_px"], 3),
            }
            for g in scale["lines"]
        ],
    }


def _read_frames(
    path: Path,
    spacing: tuple[float, float] | None,
    speed: float | None,
    rate: float | None,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
    require_timing: bool,
) -> Pullback:
    from .calibration import detect_display_geometry

    if path.is_dir() and not _image_files(path):
        _read_frame_stack(path, progress, cancel)  # raises the empty-folder message
    if rate is None and require_timing:
        fmt0 = _FORMAT_NAMES[_suffix(_image_files(path)[0] if path.is_dir() else path)]
        raise input_error(path, "frame rate", f"is unknown for {fmt0} frames", _FIX_RATE)
    # A few sampled frames decide the calibration (and refuse) before the whole folder is read.
    samples = _sample_rgb(path)
    spacing_source = scale = None
    if spacing is None:
        fmt0 = _FORMAT_NAMES[_suffix(_image_files(path)[0] if path.is_dir() else path)]
        spacing, spacing_source, scale = _scale_from_samples(path, samples, fmt0)
    display = detect_display_geometry(samples) if samples is not None else None
    # the facts once against the range table, before the whole folder is decoded when the
    # sampled frames give the frame size
    checked = samples is not None
    if checked:
        n_frames = len(_image_files(path)) if path.is_dir() else _count_pages(path)
        _check_frame_facts(path, n_frames, samples.shape[1:3], spacing, spacing_source is not None, rate, speed)
    frames, mean, std, overlay, provenance, fmt = _read_frame_stack(
        path, progress, cancel, _image_region(display)
    )
    n, h, w = frames.shape
    fov, catheter, catheter_source = _geometry(mean, std, overlay)
    if display is not None and not catheter_source.source.startswith("detected: centre of the dark"):
        # No dark static disc in the mean image (a coloured catheter fill whose colour changes,
        # or a mask that flickers): the flat disc and textured field of the samples hold.
        fov = (display["fov_center_px"], display["fov_radius_px"])
        catheter = display["catheter_center_px"]
        catheter_source = Valued(
            (round(catheter[0], 2), round(catheter[1], 2)),
            f"detected: centre of the flat catheter disc (radius {display['catheter_radius_px']:.1f} px) "
            f"in {len(samples)} sampled frames",
        )
        fov_source = "detected: circle where speckle texture ends, in sampled frames (mask of any colour)"
        disc_zeroed = _zero_inside(frames, catheter, display["catheter_radius_px"])
        provenance["masked_catheter_disc_px"] = Valued(
            disc_zeroed, "detected: the catheter disc fill (a display overlay, not image) set to 0"
        )
    else:
        fov_source = "detected: circle fit to the edge of the disc that changes between frames (temporal std)"
    if fov is None:
        provenance["field_of_view_px"] = Valued(None, "not detected: no textured disc; nothing masked")
    else:
        (r0, c0), radius = fov
        zeroed = _zero_outside(frames, (r0, c0), radius)
        provenance["field_of_view_px"] = Valued(
            {"center_px": [round(r0, 2), round(c0, 2)], "radius_px": round(radius, 2)}, fov_source
        )
        provenance["masked_outside_fov_px"] = Valued(
            zeroed, "detected: pixels beyond the field of view (text, rulers) set to 0"
        )
    provenance["catheter_center_px"] = catheter_source

    if spacing_source is None:
        provenance["pixel_spacing_mm"] = Valued(spacing, "--pixel-spacing")
    else:
        provenance["pixel_spacing_mm"] = spacing_source
        provenance["calibration_scale"] = Valued(_scale_json(scale), "detected")

    if rate is not None:
        provenance["frame_times_s"] = Valued(np.arange(n) / rate, "--frame-rate")
    elif require_timing:
        raise input_error(path, "frame rate", f"is unknown for {fmt} frames", _FIX_RATE)
    else:
        provenance["frame_times_s"] = Valued(np.arange(n, dtype=float), "missing: frame index used as time")
    if speed is not None:
        provenance["pullback_speed_mm_s"] = Valued(speed, "--pullback-speed")
        provenance["acquisition"] = Valued("motor", "--pullback-speed")
    else:
        provenance["pullback_speed_mm_s"] = Valued(None, "not given (no --pullback-speed)")
        provenance["acquisition"] = Valued("manual", "default: no --pullback-speed")
    if not checked:
        _check_frame_facts(path, n, (h, w), spacing, spacing_source is not None, rate, speed)
    frames.flags.writeable = False
    if progress is not None:
        progress(1.0, f"read {n} frames")
    return Pullback(
        frames=frames,
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        frame_times_s=np.asarray(provenance["frame_times_s"].value, dtype=float),
        pullback_speed_mm_s=speed,
        acquisition=str(provenance["acquisition"].value),
        catheter_center_px=catheter,
        source={"path": str(path), "sop_class_uid": "", "vendor": f"{fmt} frames", limits.CHECKED_KEY: True},
        provenance=provenance,
    )


def _check_frame_facts(
    path: Path,
    n: int,
    shape: tuple[int, int],
    spacing: tuple[float, float],
    detected: bool,
    rate: float | None,
    speed: float | None,
) -> None:
    """A frame folder's (or multi-page file's) facts against the range table, once."""
    limits.check_acquisition(
        path,
        frame_count=n,
        image_size_px=(int(shape[0]), int(shape[1])),
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        frame_rate_hz=rate,
        pullback_speed_mm_s=speed,
        frame_times_s=np.arange(n) / rate if rate is not None else None,
        names={"pixel_spacing_mm": "detected pixel spacing" if detected else "pixel spacing (given)"},
    )


# --------------------------------------------------------------------------- 3D images

_UNIT_SPACING_NOTE = "not positive, or 1 (the default of image formats): not used as the frame spacing"


def _declared_bytes_ok(path: Path, n_bytes: int) -> bool:
    """False when the file is too short for the voxel count its header declares."""
    suffix = _suffix(path)
    try:
        head = _head(path)
        size = path.stat().st_size
    except OSError:
        return True
    if suffix in (".nii.gz", ".nrrd", ".mha") and n_bytes > 1100 * size:
        return False  # more than zlib can expand (about 1000:1): a forged header
    if suffix == ".nii":
        return n_bytes <= size
    text = head.decode("latin-1", errors="replace")
    if suffix == ".nrrd" and re.search(r"^encoding:\s*raw\s*$", text, re.M):
        return n_bytes <= size
    if (
        suffix == ".mha"
        and re.search(r"ElementDataFile\s*=\s*LOCAL", text)
        and not re.search(r"CompressedData\s*=\s*True", text)
    ):
        return n_bytes <= size
    return True


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4096)


def _to_grey(array: np.ndarray, path: Path) -> tuple[np.ndarray, str]:
    """(N, H, W[, C]) voxels as uint8/uint16 grey frames and how they were converted."""
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            k = int(np.argmax(bad.reshape(len(bad), -1).any(axis=1)))
            raise input_error(
                path,
                "voxels",
                f"hold {int(bad.sum())} NaN or infinite values (first in frame {k})",
                "export the pullback without NaN",
            )
    if array.ndim == 4:
        if array.shape[-1] not in (3, 4):
            raise input_error(
                path, "pixel components", f"are {array.shape[-1]} per voxel", "pass a grey or RGB 3D image"
            )
        array = array[..., :3]
        note = "RGB converted to BT.601 luminance"
        if array.dtype != np.uint8:
            # 16-bit or float colour: scale the channel range onto 0..255 rather than clip it
            top = float(array.max()) if array.size else 0.0
            scale = 255.0 / top if top > 255 else 1.0
            array = np.clip(array * scale, 0, 255).astype(np.uint8)
            if scale != 1.0:
                note += f" after scaling the channels by 255/{top:g}"
        out = np.empty(array.shape[:3], np.uint8)
        for k in range(0, len(out), 64):
            out[k : k + 64] = luminance(array[k : k + 64])
        return out, note
    if array.dtype in (np.uint8, np.uint16):
        return array, "as stored"
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    integral = np.issubdtype(array.dtype, np.integer) or bool(np.all(array == np.round(array)))
    if integral and lo >= 0 and hi <= 255:
        return array.astype(np.uint8), f"{array.dtype} values in 0..255 kept"
    if integral and lo >= 0 and hi <= 65535:
        return array.astype(np.uint16), f"{array.dtype} values in 0..65535 kept"
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    out = np.empty(array.shape, np.uint8)
    for k in range(0, len(out), 64):
        out[k : k + 64] = np.clip(np.rint((array[k : k + 64] - lo) * scale), 0, 255)
    return out, f"{array.dtype} values {lo:g}..{hi:g} rescaled to 0..255"


def _read_volume(
    path: Path,
    spacing: tuple[float, float] | None,
    speed: float | None,
    rate: float | None,
    progress: ProgressFn | None,
    require_timing: bool,
) -> Pullback:
    fmt = _FORMAT_NAMES[_suffix(path)]
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise _itk_error(path, fmt, exc) from None
    dim = reader.GetDimension()
    size = tuple(int(v) for v in reader.GetSize())
    if dim == 2 or (dim == 3 and size[2] == 1):
        raise input_error(
            path,
            "dimension",
            f"is a 2D {fmt} image ({size[0]}x{size[1]} px)",
            "pass a 3D image whose third axis is the frames, or a folder of frames",
        )
    if dim != 3:
        raise input_error(
            path, "dimension", f"is {dim}D {size}", "pass a 3D image whose third axis is the frames"
        )
    image_spacing = tuple(float(v) for v in reader.GetSpacing())
    if fmt == "NIfTI":  # stored as float32: drop the float32 noise (0.1 -> 0.10000000149)
        image_spacing = tuple(float(f"{v:.7g}") for v in image_spacing)
    valid = [bool(np.isfinite(v) and v > 0) for v in image_spacing]
    if spacing is None and not (valid[0] and valid[1]):
        raise input_error(path, "spacing", f"is {list(image_spacing)} mm (must be positive)", _FIX_SPACING)
    bits = re.search(r"(\d+)-bit", sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    n_bytes = (
        int(np.prod(size, dtype=np.int64))
        * reader.GetNumberOfComponents()
        * (int(bits.group(1)) // 8 if bits else 1)
    )
    if not _declared_bytes_ok(path, n_bytes):
        raise input_error(
            path,
            "size",
            f"declares {size[0]}x{size[1]}x{size[2]} voxels ({n_bytes} bytes), more than the file holds",
            f"re-export the {fmt} image",
        )
    n = size[2]
    sx, sy, sz = image_spacing
    provenance: dict[str, Valued] = {
        "n_frames": Valued(n, f"{fmt} size along the third axis"),
        "z_spacing_mm": Valued(sz, f"{fmt} spacing (third axis)"),
    }
    if spacing is not None:
        provenance["pixel_spacing_mm"] = Valued(spacing, "--pixel-spacing")
    else:
        spacing = (sy, sx)
        provenance["pixel_spacing_mm"] = Valued(
            spacing, f"{fmt} spacing (row = second axis, col = first axis)"
        )

    # Image formats write 1 when they know no spacing: 1 mm between IVUS frames is not a
    # measurement, so it is not used to derive timing.
    z_known = valid[2] and sz != 1.0
    if not z_known:
        provenance["z_spacing_mm"] = Valued(sz, f"{fmt} spacing (third axis): {_UNIT_SPACING_NOTE}")
    if rate is not None:
        times = Valued(np.arange(n) / rate, "--frame-rate")
    elif speed is not None and z_known:
        times = Valued(
            np.arange(n) * sz / speed,
            f"derived: {fmt} z spacing {sz:g} mm / --pullback-speed {speed:g} mm/s",
        )
    elif require_timing:
        raise input_error(path, "frame rate", f"is unknown for {fmt} images", _FIX_RATE)
    else:
        times = Valued(np.arange(n, dtype=float), "missing: frame index used as time")
    provenance["frame_times_s"] = times
    if speed is not None:
        provenance["pullback_speed_mm_s"] = Valued(speed, "--pullback-speed")
        provenance["acquisition"] = Valued("motor", "--pullback-speed")
    elif rate is not None and z_known:
        speed = sz * rate
        provenance["pullback_speed_mm_s"] = Valued(
            speed, f"derived: {fmt} z spacing {sz:g} mm x --frame-rate {rate:g}/s"
        )
        provenance["acquisition"] = Valued("motor", f"derived: {fmt} z spacing")
    else:
        provenance["pullback_speed_mm_s"] = Valued(None, "not given (no --pullback-speed, no z spacing)")
        provenance["acquisition"] = Valued("manual", "default: no --pullback-speed")
    # the facts from the header, once, against the range table, before any voxel is read
    limits.check_acquisition(
        path,
        frame_count=n,
        image_size_px=(size[1], size[0]),
        pixel_spacing_mm=tuple(float(v) for v in spacing),
        frame_rate_hz=rate,
        frame_times_s=None if times.source.startswith("missing") else np.asarray(times.value, dtype=float),
        pullback_speed_mm_s=speed,
        names={
            "pixel_spacing_mm": f"{fmt} spacing" if provenance["pixel_spacing_mm"].source.startswith(fmt)
            else "pixel spacing (given)",
            "frame_interval_s": f"frame interval from the {fmt} z spacing and the pullback speed",
        },
    )  # fmt: skip
    # the ITK image and its numpy copy are alive together while reading
    limits.check_decoded_size(
        path, f"size {size[0]}x{size[1]}x{size[2]} voxels", (size[2], size[1], size[0], reader.GetNumberOfComponents()),
        int(bits.group(1)) // 8 if bits else 1, copies=2,
    )  # fmt: skip
    if progress is not None:
        progress(0.05, f"reading {fmt} image")
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise _itk_error(path, fmt, exc) from None
    array = sitk.GetArrayFromImage(image)  # (N, H, W[, C]); one copy, the ITK image is dropped
    del image
    frames, conversion = _to_grey(array, path)
    del array
    provenance["intensity"] = Valued(str(frames.dtype), conversion)
    mean, std = _temporal_stats(frames)
    _, catheter, catheter_source = _geometry(mean, std)
    provenance["catheter_center_px"] = catheter_source
    frames.flags.writeable = False
    if progress is not None:
        progress(1.0, f"read {n} frames")
    return Pullback(
        frames=frames,
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        frame_times_s=np.asarray(times.value, dtype=float),
        pullback_speed_mm_s=None if speed is None else float(speed),
        acquisition=str(provenance["acquisition"].value),
        catheter_center_px=catheter,
        source={"path": str(path), "sop_class_uid": "", "vendor": f"{fmt} image", limits.CHECKED_KEY: True},
        provenance=provenance,
    )


def _temporal_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and std over frames, in chunks (bounded float temporaries)."""
    total = np.zeros(frames.shape[1:], np.float64)
    total_sq = np.zeros(frames.shape[1:], np.float64)
    for k in range(0, len(frames), 32):
        chunk = frames[k : k + 32].astype(np.float64)
        total += chunk.sum(axis=0)
        total_sq += (chunk * chunk).sum(axis=0)
    mean = total / len(frames)
    return mean, np.sqrt(np.maximum(total_sq / len(frames) - mean * mean, 0.0))


def _itk_error(path: Path, fmt: str, exc: RuntimeError) -> IVUSInputError:
    text = str(exc)
    if "spacing" in text.lower():
        return input_error(
            path, "spacing", "is zero or negative", f"re-export the {fmt} image with positive spacing"
        )
    detail = text.strip().splitlines()[-1][:120] if text.strip() else type(exc).__name__
    if "ITK ERROR" in detail or "Exception thrown" in detail or not detail:
        detail = "SimpleITK cannot read it"
    return input_error(path, "file", f"cannot be read as {fmt} ({detail})", f"re-export the {fmt} image")


# --------------------------------------------------------------------------- entry point


def read_pullback(
    path: str | os.PathLike,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    pullback_speed_mm_s: float | None = None,
    frame_rate_hz: float | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    require_timing: bool = True,
) -> Pullback:
    """Read a pullback from a folder of exported frames, a multi-page TIFF or a 3D image.

    Parameters
    ----------
    path : path-like
        Folder of PNG/JPEG/TIFF/BMP frames (natural sort), multi-page TIFF, or 3D image
        (``.nrrd``, ``.nhdr``, ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``; third axis = frames).
    pixel_spacing_mm : float or (row, col), optional
        ``--pixel-spacing``; required for frames unless a ruler is detected; overrides the
        spacing of a 3D image.
    pullback_speed_mm_s : float, optional
        ``--pullback-speed``: a motorised pullback at this speed (else manual, or, for 3D
        images with a slice spacing, ``slice spacing x frame rate``).
    frame_rate_hz : float, optional
        ``--frame-rate``; required unless a 3D image's slice spacing and the pullback speed
        give it.
    progress : callable(fraction, message), optional
    cancel : threading.Event, optional
        Raises :class:`IVUSCancelled` between frames when set.
    require_timing : bool
        When False a missing frame rate gives frame indices as times (marked ``missing``).

    Returns
    -------
    Pullback
        ``frames`` (N, H, W) uint8 (uint16 for 16-bit input), read-only; for frame folders,
        zero outside the detected field of view. ``catheter_center_px`` detected (sub-pixel).
        ``provenance`` holds each value and its source, including the detected
        ``field_of_view_px``, ``catheter_center_px`` and overlay/mask pixel counts.

    Raises
    ------
    IVUSInputError
        One line naming the file, the field and the fix.
    """
    positive_option(pullback_speed_mm_s, "pullback_speed_mm_s")
    positive_option(frame_rate_hz, "frame_rate_hz")
    spacing = _spacing_option(pixel_spacing_mm)
    path = Path(path)
    if not path.exists():
        raise input_error(path, "path", "does not exist", "pass an existing folder of frames or 3D image")
    speed = None if pullback_speed_mm_s is None else float(pullback_speed_mm_s)
    rate = None if frame_rate_hz is None else float(frame_rate_hz)
    if path.is_dir() or _suffix(path) in IMAGE_SUFFIXES:
        return _read_frames(path, spacing, speed, rate, progress, cancel, require_timing)
    if _suffix(path) in VOLUME_SUFFIXES:
        return _read_volume(path, spacing, speed, rate, progress, require_timing)
    raise input_error(
        path,
        "file type",
        f"{_suffix(path) or '(none)'} is not an image format",
        "pass a folder of PNG/JPEG/TIFF frames, an NRRD/NIfTI/MHA image or a DICOM pullback",
    )


def pullback_from_volume(
    frames: np.ndarray,
    spacing_xy_mm: tuple[float, float],
    stored: dict[str, Any],
    *,
    name: str,
    pixel_spacing_mm: float | None = None,
    pullback_speed_mm_s: float | None = None,
    frame_rate_hz: float | None = None,
    catheter_center_px: tuple[float, float] | None = None,
) -> Pullback:
    """A pullback from a volume already in memory (a Slicer volume node, K slices = frames).

    Explicit arguments win over the ``stored`` values (those the scene adapter keeps on the
    node); the in-plane spacing comes from the volume otherwise.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
    spacing_xy_mm : (float, float)
        The volume's spacing along columns and rows.
    stored : dict
        ``frame_times_s``, ``pullback_speed_mm_s``, ``catheter_center_px``, ``acquisition``,
        ``source``: each optional (missing or None: unknown).
    name : str
        The volume's name, for messages and provenance.

    Raises
    ------
    IVUSInputError
        Not 3D, or the frame times can be neither read nor derived.
    """
    if frames.ndim != 3:
        raise input_error(name, "image", "is not a 3D volume", "load the pullback as a scalar volume")
    provenance: dict[str, Valued] = {}
    if pixel_spacing_mm is not None:
        spacing_rc = (float(pixel_spacing_mm), float(pixel_spacing_mm))
        provenance["pixel_spacing_mm"] = Valued(list(spacing_rc), "module parameter")
    else:
        spacing_rc = (float(spacing_xy_mm[1]), float(spacing_xy_mm[0]))
        provenance["pixel_spacing_mm"] = Valued(list(spacing_rc), f"volume node {name} spacing")
    speed = pullback_speed_mm_s if pullback_speed_mm_s is not None else stored.get("pullback_speed_mm_s")
    provenance["pullback_speed_mm_s"] = Valued(
        speed, "module parameter" if pullback_speed_mm_s is not None else f"volume node {name} attribute"
    )
    n = frames.shape[0]
    stored_times = stored.get("frame_times_s")
    if frame_rate_hz is not None and frame_rate_hz > 0:
        times = np.arange(n) / float(frame_rate_hz)
        provenance["frame_times_s"] = Valued(times.tolist(), f"module parameter: {frame_rate_hz} Hz")
    elif stored_times is not None and len(stored_times) == n:
        times = np.asarray(stored_times, dtype=float)
        provenance["frame_times_s"] = Valued(times.tolist(), f"volume node {name} attribute")
    else:
        raise input_error(
            name, "frame rate", "is unknown", "enter the frame rate (Hz) in the acquisition fields"
        )
    center = catheter_center_px or stored.get("catheter_center_px")
    if center is None:
        center = ((frames.shape[1] - 1) / 2.0, (frames.shape[2] - 1) / 2.0)
    provenance["n_frames"] = Valued(n, f"volume node {name}")
    return Pullback(
        frames=frames,
        pixel_spacing_mm=spacing_rc,
        frame_times_s=times,
        pullback_speed_mm_s=None if speed is None else float(speed),
        acquisition=stored.get("acquisition") or ("motor" if speed else "manual"),
        catheter_center_px=(float(center[0]), float(center[1])),
        source=stored.get("source") or {"path": f"slicer volume node {name}"},
        provenance=provenance,
    )
