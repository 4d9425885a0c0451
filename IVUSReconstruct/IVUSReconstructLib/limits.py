"""The one table of plausible acquisition values and size budgets, and the checks that use it.

Every front end (command line, batch manifest, Slicer parameter node) and every reader checks its
values against :data:`LIMITS`, so a value is refused the same way wherever it comes from, before
any frame is decoded or any large array is allocated. A value outside its range raises
:class:`IVUSRangeError`, which carries the field (a :data:`LIMITS` key), the value and the range;
each front end words the fix in its own terms with :func:`reworded` (an option, a manifest column,
a module field), so a message never names a command-line option to a Slicer or batch user.

The ranges are deliberately wide: they catch wrong units (um or cm for mm, ms for s) and damaged
headers, not unusual but real acquisitions. Sources for the typical values: IVUS consoles export
0.01-0.05 mm per pixel over a 6-20 mm field (up to 60 mm at 15-20 MHz for peripheral veins),
20-100 frames/s, 0.5-2 mm/s motor pullbacks (up to 10-40 mm/s for high-speed OCT-like runs),
pullbacks of 30-150 mm (up to 300 mm in the legs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import IVUSInputError

__all__ = [
    "Limit",
    "LIMITS",
    "IVUSRangeError",
    "check",
    "check_acquisition",
    "check_pullback",
    "check_decoded_size",
    "memory_budget_bytes",
    "available_memory_bytes",
    "check_centerline",
    "check_contours",
    "check_array_size",
    "check_output_sizes",
    "reworded",
    "CLI_FIXES",
    "BATCH_FIXES",
    "SLICER_FIXES",
    "MAX_ARRAY_BYTES",
    "AcquisitionOption",
    "ACQUISITION_OPTIONS",
]


@dataclass(frozen=True)
class Limit:
    """A plausible range ``[low, high]`` in ``unit`` and what a typical value looks like."""

    label: str
    low: float
    high: float
    unit: str
    typical: str


LIMITS: dict[str, Limit] = {
    "pixel_spacing_mm": Limit("pixel spacing", 0.001, 1.0, "mm", "IVUS frames have 0.01-0.05 mm per pixel"),
    "field_of_view_mm": Limit("field of view", 1.0, 100.0, "mm", "IVUS frames show 6-60 mm"),
    "image_size_px": Limit("image size", 16, 4096, "px", "IVUS frames are 256-1024 pixels wide"),
    "frame_count": Limit("frame count", 1, 100_000, "frames", "a pullback has 100-10000 frames"),
    "frame_rate_hz": Limit("frame rate", 1.0, 500.0, "frames/s", "IVUS consoles record 20-100 frames/s"),
    "frame_interval_s": Limit(
        "frame interval", 0.001, 5.0, "s", "frames are 0.01-0.05 s apart (about 1 s when gated)"
    ),
    "pullback_speed_mm_s": Limit(
        "pullback speed", 0.05, 40.0, "mm/s", "motor pullbacks run at 0.5, 1 or 2 mm/s"
    ),
    "pullback_length_mm": Limit("pullback length", 0.0, 1000.0, "mm", "pullbacks cover 30-300 mm"),
    "start_mm": Limit("start position", -500.0, 500.0, "mm", "frame 0 lies within the centerline"),
    "centerline_length_mm": Limit("centerline length", 1.0, 2000.0, "mm", "vessels are 30-500 mm long"),
    "centerline_spacing_mm": Limit(
        "centerline point spacing", 0.001, 500.0, "mm", "centerline points are 0.1-5 mm apart"
    ),
    "render_size_px": Limit("render size", 16, 8192, "px", "renders are 800-3200 pixels wide"),
    "contour_extent_mm": Limit(
        "contour extent", 0.02, 60.0, "mm", "a vessel border lies 1-25 mm from the catheter"
    ),
}

class AcquisitionOption(NamedTuple):
    """One acquisition value a user can give, by its name in each front end.

    Attributes
    ----------
    field : str
        The ``RunOptions`` field and the row of :data:`LIMITS`.
    option : str
        The command-line option (``--pixel-spacing``).
    column : str
        The batch manifest column, also the ``argparse`` attribute (``pixel_spacing``).
    parameter : str
        The Slicer module's parameter node field (``pixelSpacing``).
    """

    field: str
    option: str
    column: str
    parameter: str


# The one map of the values that override (or start) the acquisition; every front end and the
# readers look their names up here.
ACQUISITION_OPTIONS: tuple[AcquisitionOption, ...] = (
    AcquisitionOption("pixel_spacing_mm", "--pixel-spacing", "pixel_spacing", "pixelSpacing"),
    AcquisitionOption("pullback_speed_mm_s", "--pullback-speed", "pullback_speed", "pullbackSpeed"),
    AcquisitionOption("frame_rate_hz", "--frame-rate", "frame_rate", "frameRate"),
    AcquisitionOption("start_mm", "--start-mm", "start_mm", "startMm"),
)


# Memory budget of one large array (labelmap, render, mesh). The frames themselves are
# read as a memmap when possible; arrays derived from them must fit in this.
MAX_ARRAY_BYTES = 2 * 1024**3

# Share of the available memory (MemAvailable: free plus reclaimable cache) that a decoded
# pullback volume may take; the rest is for the stages' working arrays (about as large again
# at the peak of segmentation) and for other programs. IVUS_MEMORY_BUDGET_MB overrides it.
MEMORY_SHARE = 0.5
MEMORY_BUDGET_ENV = "IVUS_MEMORY_BUDGET_MB"
# used when the available memory cannot be read (neither psutil, /proc/meminfo nor sysconf)
_FALLBACK_AVAILABLE_BYTES = 8 * 1024**3


# What the user does about a wrong value, in each front end's own terms.
CLI_FIXES: dict[str, str] = {
    "pixel_spacing_mm": "give the spacing in mm with --pixel-spacing MM (e.g. 0.02 for 10 mm over 512 pixels), not in um or cm",
    "field_of_view_mm": "give the spacing in mm with --pixel-spacing MM",
    "frame_rate_hz": "give frames per second with --frame-rate FPS (typically 30)",
    "frame_interval_s": "give frames per second with --frame-rate FPS (typically 30)",
    "pullback_speed_mm_s": "give the motor speed in mm/s with --pullback-speed MM_S (typically 0.5, 1 or 2)",
    "pullback_length_mm": "check --pullback-speed MM_S and --frame-rate FPS",
    "start_mm": "give --start-mm in mm",
    "centerline_length_mm": "give the centerline in mm (--centerline), not in m or um",
    "centerline_spacing_mm": "give the centerline in mm (--centerline), not in m or um",
    "contour_extent_mm": "give --contours in mm of this pullback (or --pixel-spacing MM for pixel contours)",
    # settings named by other library errors (IVUSInputError.setting)
    "centerline_order": "check the landmark points or --centerline-order",
    "start_mm_smaller": "give a longer centerline or a smaller --start-mm",
    "start_mm_larger": "give a larger --start-mm or a centerline that reaches further distally",
    "align_catheter": "give --contours or use --align catheter",
    "frame_range": "set the frames to analyse with --frame-range START:END",
}
BATCH_FIXES: dict[str, str] = {
    "pixel_spacing_mm": "fill the pixel_spacing column in mm (e.g. 0.02), not in um or cm",
    "field_of_view_mm": "fill the pixel_spacing column in mm (e.g. 0.02)",
    "frame_rate_hz": "fill the frame_rate column in frames/s (typically 30)",
    "frame_interval_s": "fill the frame_rate column in frames/s (typically 30)",
    "pullback_speed_mm_s": "fill the pullback_speed column in mm/s (typically 0.5, 1 or 2)",
    "pullback_length_mm": "check the pullback_speed and frame_rate columns",
    "start_mm": "fill the start_mm column in mm",
    "centerline_length_mm": "give the case's centerline file in mm, not in m or um",
    "centerline_spacing_mm": "give the case's centerline file in mm, not in m or um",
    "contour_extent_mm": "give the case's contours in mm of this pullback (or fill pixel_spacing)",
    "centerline_order": "check the landmark points or the centerline_order column",
    "start_mm_smaller": "give a longer centerline or a smaller start_mm",
    "start_mm_larger": "give a larger start_mm or a centerline that reaches further distally",
    "align_catheter": "give the case's contours or set the align column to catheter",
}
SLICER_FIXES: dict[str, str] = {
    "pixel_spacing_mm": "set 'Pixel spacing' (mm) in the Acquisition section",
    "field_of_view_mm": "set 'Pixel spacing' (mm) in the Acquisition section",
    "frame_rate_hz": "set 'Frame rate' (frames/s) in the Acquisition section",
    "frame_interval_s": "set 'Frame rate' (frames/s) in the Acquisition section",
    "pullback_speed_mm_s": "set 'Pullback speed' (mm/s) in the Acquisition section",
    "pullback_length_mm": "check 'Pullback speed' and 'Frame rate' in the Acquisition section",
    "start_mm": "set 'Start' (mm) in the Acquisition section",
    "centerline_length_mm": "select a centerline in mm",
    "centerline_spacing_mm": "select a centerline in mm",
    "contour_extent_mm": "select contours drawn on this volume",
    "centerline_order": "check the landmark points or 'Centerline order'",
    "start_mm_smaller": "select a longer centerline or set a smaller 'Start' (mm) in the Acquisition section",
    "start_mm_larger": "set a larger 'Start' (mm) in the Acquisition section or select a centerline that "
    "reaches further distally",
    "align_catheter": "select contours or set 'Align' to catheter",
}
# Library wording: names no front end's control.
_LIBRARY_FIXES: dict[str, str] = {
    "image_size_px": "re-export the pullback from the IVUS console",
    "frame_count": "re-export the pullback from the IVUS console",
}


class IVUSRangeError(IVUSInputError):
    """A value outside its :data:`LIMITS` range.

    Attributes
    ----------
    where : str
        The file (or option, column, field) the value came from.
    name : str
        How the value is named there (a DICOM tag, a JSON key, an option).
    field : str
        The :data:`LIMITS` key.
    value : float
    """

    def __init__(self, where: object, name: str, field: str, value: float, fix: str | None = None):
        self.where, self.name, self.field, self.value = str(where), name, field, float(value)
        self.fix_given = fix is not None  # a front end's own wording: kept as it is
        super().__init__(self.worded(fix), setting=None if self.fix_given else field)

    def worded(self, fix: str | None = None) -> str:
        """The one-line message with ``fix`` (default: the library's neutral wording)."""
        lim = LIMITS[self.field]
        fix = fix or _LIBRARY_FIXES.get(self.field) or f"check the {lim.label} and its unit"
        where = "must be positive, within" if lim.low > 0 >= self.value else "outside"
        return (
            f"{self.where}: {self.name} is {self.value:g} {lim.unit}, {where} the plausible "
            f"{lim.low:g}-{lim.high:g} {lim.unit} ({lim.typical}); {fix}"
        )


def reworded(exc: IVUSInputError, fixes: Mapping[str, str]) -> str:
    """The message of ``exc`` with the fix in a front end's terms.

    A range error is worded again with ``fixes[field]``; any other error that names the user
    setting fixing it (``exc.setting``) gets ``fixes[setting]`` in place of the library's fix
    (the text after its last ``"; "``). Other messages are returned unchanged.
    """
    if isinstance(exc, IVUSRangeError):
        if not exc.fix_given and exc.field in fixes:
            return exc.worded(fixes[exc.field])
        return str(exc)
    setting = getattr(exc, "setting", None)
    message = str(exc)
    if setting in fixes and "; " in message:
        return f"{message.rsplit('; ', 1)[0]}; {fixes[setting]}"
    return message


def check(
    field: str, value: float | None, *, where: object, name: str | None = None, fix: str | None = None
) -> None:
    """Raise :class:`IVUSRangeError` when ``value`` (if given) is not finite or outside ``LIMITS[field]``."""
    if value is None:
        return
    lim = LIMITS[field]
    v = float(value)
    if not (np.isfinite(v) and lim.low <= v <= lim.high):
        raise IVUSRangeError(where, name or lim.label, field, v, fix)


# --------------------------------------------------------------------------------------------
# whole inputs: what every front end hands the pipeline


def check_acquisition(
    where: object,
    *,
    frame_count: int | None = None,
    image_size_px: tuple[int, int] | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
    frame_rate_hz: float | None = None,
    frame_times_s: np.ndarray | None = None,
    pullback_speed_mm_s: float | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Check a pullback's acquisition facts against the table: the one check every reader (on
    its header, before any frame is decoded) and the pipeline (on pullbacks no reader checked,
    e.g. Slicer volumes) use.

    Parameters
    ----------
    where : str
        The file the facts came from.
    frame_count, image_size_px (rows, cols), pixel_spacing_mm (row, col) : optional
    frame_rate_hz : float, optional
        A rate stated as such (a CineRate tag, an option); ``frame_times_s`` derived from it
        are then not checked again.
    frame_times_s : ndarray of shape (N,), optional
        Must increase; their median interval is checked.
    pullback_speed_mm_s : float, optional
        With ``frame_times_s``, the pullback length (speed x duration) is checked too.
    names : dict of str to str, optional
        How each :data:`LIMITS` key is named in ``where`` (a DICOM tag, a JSON key); a
        ``pixel_spacing_mm`` entry may be a (row, col) pair of names.

    Raises
    ------
    IVUSRangeError
        A value outside its range.
    IVUSInputError
        Frame times that do not increase.
    """
    names = dict(names or {})

    def name(key: str, default: str | None = None):
        return names.get(key, default)

    check("frame_count", frame_count, where=where, name=name("frame_count"))
    if image_size_px is not None:
        for size in image_size_px:
            check("image_size_px", size, where=where, name=name("image_size_px", "image size (rows or columns)"))
    if pixel_spacing_mm is not None:
        spacing_names = name("pixel_spacing_mm")
        if not isinstance(spacing_names, (tuple, list)):
            spacing_names = (spacing_names, spacing_names)
        for value, label in zip(pixel_spacing_mm, spacing_names, strict=True):
            check("pixel_spacing_mm", value, where=where, name=label)
        if image_size_px is not None:
            fov = max(image_size_px[0] * pixel_spacing_mm[0], image_size_px[1] * pixel_spacing_mm[1])
            check("field_of_view_mm", fov, where=where, name="field of view (image size x pixel spacing)")
    check("frame_rate_hz", frame_rate_hz, where=where, name=name("frame_rate_hz"))
    times = None if frame_times_s is None else np.asarray(frame_times_s, dtype=float)
    if times is not None and times.size > 1:
        steps = np.diff(times)
        if not np.all(np.isfinite(steps)) or np.any(steps <= 0):
            k = int(np.flatnonzero(~(steps > 0))[0]) + 1
            raise IVUSInputError(
                f"{where}: frame times are not increasing (frame {k} at {times[k]:g} s after "
                f"{times[k - 1]:g} s); frames must be in acquisition order, each once"
            )
        if frame_rate_hz is None:
            check("frame_interval_s", float(np.median(steps)), where=where,
                  name=name("frame_interval_s", "median frame interval"))  # fmt: skip
    check("pullback_speed_mm_s", pullback_speed_mm_s, where=where, name=name("pullback_speed_mm_s"))
    if pullback_speed_mm_s is not None and times is not None and times.size > 1:
        check("pullback_length_mm", pullback_speed_mm_s * float(times[-1] - times[0]), where=where,
              name="pullback length (speed x duration)")  # fmt: skip


# the key of Pullback.source a reader sets once it has checked the header's facts with
# check_acquisition: the pipeline then does not check them again
CHECKED_KEY = "ranges_checked"


def check_pullback(pullback, where: object) -> None:
    """Check a :class:`~IVUSReconstructLib.types.Pullback`'s acquisition facts against the table
    (:func:`check_acquisition`), unless the reader that made it has already checked them.

    Raises
    ------
    IVUSRangeError
    """
    if (getattr(pullback, "source", None) or {}).get(CHECKED_KEY):
        return
    n, rows, cols = (int(v) for v in pullback.frames.shape[:3])
    timed = "missing" not in str(_source(pullback, "frame_times_s"))
    check_acquisition(
        where,
        frame_count=n,
        image_size_px=(rows, cols),
        pixel_spacing_mm=tuple(pullback.pixel_spacing_mm),
        frame_times_s=np.asarray(pullback.frame_times_s, dtype=float) if timed else None,
        pullback_speed_mm_s=pullback.pullback_speed_mm_s,
    )


def _source(pullback, key: str) -> str:
    prov = getattr(pullback, "provenance", None) or {}
    item = prov.get(key)
    return getattr(item, "source", "") if item is not None else ""


def check_centerline(centerline, where: object) -> None:
    """Check a centerline's length and point spacing (catches m or um for mm).

    Raises
    ------
    IVUSRangeError
    """
    points = np.asarray(centerline.points_ras_mm, dtype=float)
    if len(points) < 2:
        return
    length = float(centerline.length_mm)
    check("centerline_length_mm", length, where=where)
    check(
        "centerline_spacing_mm", length / (len(points) - 1), where=where, name="mean centerline point spacing"
    )


def check_contours(contours, where: object, *, field_of_view_mm: tuple[float, float] | None = None) -> None:
    """Check contour extents, and that each lumen lies inside its vessel border.

    Parameters
    ----------
    contours : ContourSet
    where : str
    field_of_view_mm : (height, width) or None
        The pullback's field of view: borders must lie inside it (catheter at its centre,
        with 25 % slack for an off-centre catheter).

    Raises
    ------
    IVUSInputError
        ``IVUSRangeError`` for an extent out of range.
    """
    half = None if field_of_view_mm is None else 0.5 * 1.25 * max(field_of_view_mm)
    for f in contours.frames:
        for name, poly in (("lumen", f.lumen), ("vessel", f.vessel)):
            if poly is None:
                continue
            extent = float(np.max(np.abs(np.asarray(poly, dtype=float))))
            check("contour_extent_mm", extent, where=where, name=f"frame {f.index} {name} extent")
            if half is not None and extent > half:
                raise IVUSInputError(
                    f"{where}: frame {f.index} {name} reaches {extent:g} mm from the catheter, outside the "
                    f"image ({max(field_of_view_mm):g} mm field of view); use contours of this pullback, in mm"
                )
        if f.vessel is not None and f.lumen is not None:
            share = _share_outside(np.asarray(f.lumen, dtype=float), np.asarray(f.vessel, dtype=float))
            if share > LUMEN_OUTSIDE_VESSEL_MAX:
                raise IVUSInputError(
                    f"{where}: frame {f.index} lumen lies {100 * share:.0f}% outside its vessel border "
                    f"(at most {100 * LUMEN_OUTSIDE_VESSEL_MAX:.0f}% allowed); check that lumen and vessel "
                    "are not swapped and belong to the same frame"
                )


# Share of lumen points allowed outside the vessel border: tracing tolerance where the lumen
# touches the EEM (no plaque), not a swapped or misplaced border.
LUMEN_OUTSIDE_VESSEL_MAX = 0.2


def _share_outside(points: np.ndarray, polygon: np.ndarray) -> float:
    """Share of ``points`` (M, 2) outside the closed ``polygon`` (K, 2) (even-odd rule)."""
    x, y = points[:, :1], points[:, 1:]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    inside = np.count_nonzero(crosses & (x < x_at), axis=1) % 2 == 1
    return float(np.mean(~inside)) if len(points) else 0.0


def check_array_size(what: str, shape: tuple[int, ...], itemsize: int, *, where: object, fix: str) -> None:
    """Refuse an array of ``shape`` x ``itemsize`` bytes before it is made, beyond
    :data:`MAX_ARRAY_BYTES` or the run's memory budget (:func:`memory_budget_bytes`), the smaller."""
    n_bytes = float(np.prod([float(s) for s in shape])) * itemsize
    budget, basis = memory_budget_bytes()
    if n_bytes > MAX_ARRAY_BYTES:
        limit = f"the {MAX_ARRAY_BYTES / 1024**3:.0f} GB allowed"
    elif n_bytes > budget:
        limit = f"the {_gb(budget)} this run may use ({basis})"
    else:
        return
    raise IVUSInputError(
        f"{where}: the {what} would take {_gb(n_bytes)} ({' x '.join(str(int(s)) for s in shape)}), more than "
        f"{limit}; {fix}"
    )


def available_memory_bytes() -> int:
    """Memory available to a new allocation: psutil if installed, else /proc/meminfo
    (MemAvailable), else ``os.sysconf`` (free pages), else 8 GB."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - not installed, or no reading on this system
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_AVAILABLE_BYTES


def memory_budget_bytes() -> tuple[int, str]:
    """(bytes a decoded pullback may take, how that budget was set), read at each call.

    ``IVUS_MEMORY_BUDGET_MB`` (a positive number of MiB) sets it; otherwise it is
    :data:`MEMORY_SHARE` of :func:`available_memory_bytes`.
    """
    text = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if text:
        try:
            mb = float(text)
        except ValueError:
            mb = 0.0
        if np.isfinite(mb) and mb > 0:
            return int(mb * 1024**2), f"{MEMORY_BUDGET_ENV}={text}"
    return int(MEMORY_SHARE * available_memory_bytes()), f"{MEMORY_SHARE:.0%} of the available memory"


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:.1f} GB" if n_bytes >= 1024**3 else f"{n_bytes / 1024**2:.3g} MB"


def check_decoded_size(
    where: object, field: str, shape: tuple[int, ...], itemsize: int, *, copies: int = 1
) -> None:
    """Refuse a pullback whose decoded frames would not fit in :func:`memory_budget_bytes`.

    Called by the readers from the header's sizes, after the checks that the file holds what
    it declares (a truncated or forged file gets its own message) and before any frame is
    decoded into memory.

    Parameters
    ----------
    where : str
        The file or folder.
    field : str
        The header fields the sizes come from, e.g. ``"Rows x Columns x NumberOfFrames
        (0028,0010/0011/0008)"``.
    shape : tuple of int
        (frames, rows, cols[, samples]) as decoded.
    itemsize : int
        Bytes per sample.
    copies : int
        Arrays of that size alive at once while reading (2 when a library's image is copied).

    Raises
    ------
    IVUSInputError
    """
    n_bytes = float(np.prod([float(v) for v in shape])) * itemsize * copies
    budget, basis = memory_budget_bytes()
    if n_bytes > budget:
        dims = " x ".join(str(int(v)) for v in shape) + f" x {itemsize} bytes"
        if copies > 1:
            dims += f", {copies} copies while reading"
        raise IVUSInputError(
            f"{where}: {field} make {_gb(n_bytes)} of decoded frames ({dims}), more than the "
            f"{_gb(budget)} this run may use ({basis}); split the pullback into shorter exports, "
            "read it on a machine with more free memory, or export it uncompressed and grey "
            "(read from disk, not decoded into memory)",
            setting="memory",
        )


# bytes per labelmap voxel at the peak of labelmap.vessel_labelmap (stencil image, label copy, lumen)
_LABELMAP_BYTES_PER_VOXEL = 4
# bytes per mesh point of the three surfaces with their arrays and triangles (measured on
# phantoms: about 70; rounded up)
_MESH_BYTES_PER_POINT = 100
MESH_POINTS_PER_RING = 72


def check_output_sizes(
    origins_ras_mm: np.ndarray,
    extent_mm: float,
    *,
    labelmap_spacing_mm: float,
    render_size_px: tuple[int, int],
    where: object,
) -> None:
    """Refuse outputs whose arrays would not fit, from the placed frames, before meshing.

    Parameters
    ----------
    origins_ras_mm : ndarray of shape (N, 3)
        Where the frames are placed.
    extent_mm : float
        Largest distance of a border from its frame's origin.
    labelmap_spacing_mm : float
    render_size_px : (width, height)

    Raises
    ------
    IVUSInputError
    """
    for size in render_size_px:
        check("render_size_px", size, where=where, name="render size")
    w, h = (int(v) for v in render_size_px)
    check_array_size("render", (h, w, 4), 2, where=where, fix="ask for a smaller render")
    origins = np.asarray(origins_ras_mm, dtype=float).reshape(-1, 3)
    check_array_size(
        "mesh", (len(origins), MESH_POINTS_PER_RING, 3), _MESH_BYTES_PER_POINT, where=where,
        fix="analyse fewer frames (a shorter pullback or gated frames)",
    )  # fmt: skip
    span = origins.max(axis=0) - origins.min(axis=0) + 2.0 * (extent_mm + 1.0)
    dims = tuple(int(np.ceil(v / labelmap_spacing_mm)) + 2 for v in span)
    check_array_size(
        "vessel labelmap", dims[::-1], _LABELMAP_BYTES_PER_VOXEL, where=where,
        fix=f"check the pixel spacing and the centerline's unit (the vessel spans "
        f"{' x '.join(f'{v:.0f}' for v in span)} mm)",
    )  # fmt: skip
