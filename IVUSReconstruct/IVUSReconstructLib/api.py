"""The scripting API: a few functions for Slicer's Python console, notebooks and scripts.

Reached from the package itself (``import IVUSReconstructLib as ivus; ivus.run(...)``), which
imports this module only when one of these names is first used, so ``import IVUSReconstructLib``
stays light. Each function does what the command of the same name does, on files or on the core
types (:mod:`.types`), and raises :class:`~IVUSReconstructLib.errors.IVUSInputError` with the
same one-line messages.
"""

from __future__ import annotations

import csv
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IVUSInputError, input_error
from .types import Centerline, ContourSet, Landmark, Pullback

__all__ = ["run", "segment", "read_pullback", "load_result", "LoadedResult"]

PathLike = str | os.PathLike
Progress = Callable[[float, str], None]


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def read_pullback(
    path: PathLike,
    *,
    pixel_spacing_mm: float | None = None,
    pullback_speed_mm_s: float | None = None,
    frame_rate_hz: float | None = None,
    require_timing: bool = True,
) -> Pullback:
    """Read a pullback: DICOM file or folder, folder of exported frames, NRRD/NIfTI/MHA.

    Parameters
    ----------
    path : path-like
    pixel_spacing_mm, pullback_speed_mm_s, frame_rate_hz : float or None
        Override the file's values (as ``--pixel-spacing``, ``--pullback-speed``, ``--frame-rate``).
    require_timing : bool
        False accepts a pullback without frame times or speed (enough for segmentation).

    Returns
    -------
    Pullback
        ``frames`` of shape (N, H, W); ``provenance`` records each value with its source.
    """
    from .pipeline import RunOptions, read_pullback_any

    options = RunOptions(
        pixel_spacing_mm=pixel_spacing_mm, pullback_speed_mm_s=pullback_speed_mm_s, frame_rate_hz=frame_rate_hz
    )
    return read_pullback_any(path, options=options, require_timing=require_timing)


def segment(
    pullback: Pullback | PathLike,
    frames: Sequence[int] | str | None = None,
    *,
    keyframes: ContourSet | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> ContourSet:
    """Lumen and vessel (EEM) borders of a pullback's frames, as ``ivus-reconstruct segment``.

    Parameters
    ----------
    pullback : Pullback or path-like
    frames : sequence of int, ``"all"`` or None
        Frame indices (0-based) to segment; None segments the end-diastolic frames found by
        image gating (and marks them ``phase="ED"``).
    keyframes : ContourSet or None
        Borders corrected by a reader on some frames; kept exactly and followed by the others.
    progress : callable(fraction, message) or None
    cancel : threading.Event or None

    Returns
    -------
    ContourSet
        Borders in mm of the frame plane, one FrameContours per segmented frame.
    """
    from .segmentation import segment_pullback

    if _is_path(pullback):
        pullback = read_pullback(pullback, require_timing=frames is None)
    if frames is None:
        from .gating import gate_pullback

        gating = gate_pullback(pullback, method="image")
        ed = {int(i) for i in gating.ed_frames}
        contours = segment_pullback(
            pullback, np.asarray(gating.selected_frames), keyframes=keyframes, progress=progress, cancel=cancel
        )
        return contours.with_frames(
            tuple(replace(f, phase="ED") if f.index in ed else f for f in contours.frames)
        )
    indices = np.arange(pullback.n_frames) if isinstance(frames, str) and frames == "all" else frames
    if isinstance(indices, str):
        raise IVUSInputError(f"frames {frames!r}: give frame indices, 'all' or None (end-diastolic frames)")
    return segment_pullback(pullback, np.asarray(list(indices), dtype=int), keyframes=keyframes,
                            progress=progress, cancel=cancel)  # fmt: skip


def run(
    pullback: Pullback | PathLike | None = None,
    *,
    centerline: Centerline | PathLike | None = None,
    contours: ContourSet | PathLike | None = None,
    landmarks: Sequence[Landmark] | PathLike | None = None,
    out: PathLike | None = None,
    options: Any = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    **option_values: Any,
) -> Any:
    """Reconstruct a pullback, as ``ivus-reconstruct run``; optionally write its output folder.

    Parameters
    ----------
    pullback : Pullback, path-like or None
        Needed unless ``contours`` carry every frame's ``z_mm``.
    centerline : Centerline, path-like or None
        Distal end first (``centerline_order="proximal-first"`` for the other way); a straight
        line (flagged) when None.
    contours : ContourSet, path-like or None
        Analyse these borders instead of segmenting.
    landmarks : sequence of Landmark, path-like or None
    out : path-like or None
        Write the output folder of ``run`` here (atomically, with the Slicer scene when slicer-core
        is installed).
    options : RunOptions or None
    progress : callable(fraction, message) or None
    cancel : threading.Event or None
    **option_values
        Fields of :class:`~IVUSReconstructLib.pipeline.RunOptions` (``pixel_spacing_mm``,
        ``pullback_speed_mm_s``, ``frame_rate_hz``, ``start_mm``, ``gating``, ``territory``, ...).

    Returns
    -------
    RunResult
        ``metrics.summary`` holds the summary.json values, ``metrics.per_frame`` the frames.csv
        columns, ``mesh`` the VTK meshes.
    """
    from .io.centerline import read_centerline
    from .io.contours import read_landmarks
    from .mrml import scene_writers
    from .pipeline import RunOptions, run_files, run_pipeline, write_outputs

    try:
        opts = replace(options or RunOptions(), **option_values)
    except TypeError as exc:
        raise IVUSInputError(f"run: {exc}; see RunOptions for the option names") from None
    if _is_path(pullback) or (pullback is None and _is_path(contours)):
        if (contours is not None and not _is_path(contours)) or (landmarks and not _is_path(landmarks)):
            raise IVUSInputError("run: give contours and landmarks as files with a pullback file")
        in_memory = None if centerline is None or _is_path(centerline) else (centerline, centerline.source)
        result = run_files(
            pullback_path=pullback,
            centerline_path=centerline if _is_path(centerline) else None,
            contours_path=contours,
            landmarks_path=landmarks if landmarks else None,
            options=opts,
            centerline=in_memory,
            progress=progress,
            cancel=cancel,
        )
    else:
        if _is_path(contours):
            raise IVUSInputError("run: give contours in memory (a ContourSet) with a Pullback in memory")
        if _is_path(centerline):
            centerline = read_centerline(centerline, order=opts.centerline_order)
        result = run_pipeline(
            pullback=pullback,
            contours=contours,
            centerline=centerline,
            landmarks=tuple(read_landmarks(landmarks) if _is_path(landmarks) else (landmarks or ())),
            options=opts,
            progress=progress,
            cancel=cancel,
        )
    if out is not None:
        write_outputs(result, out, extra_writers=scene_writers())
    return result


@dataclass(frozen=True)
class LoadedResult:
    """An output folder of ``run`` (or ``demo``) read back.

    Attributes
    ----------
    folder : Path
    summary : dict
        summary.json.
    frames : dict of str to ndarray of shape (F,)
        The columns of frames.csv (numbers as float, empty cells NaN; text columns as str).
    contours : ContourSet or None
        contours.json, None when the folder has none.
    files : dict of str to Path
        Every file of the folder by name.
    """

    folder: Path
    summary: dict[str, Any]
    frames: dict[str, np.ndarray]
    contours: ContourSet | None = None
    files: dict[str, Path] = field(default_factory=dict)


def _column(values: list[str]) -> np.ndarray:
    try:
        return np.array([float(v) if v != "" else np.nan for v in values], dtype=float)
    except ValueError:
        return np.array(values, dtype=str)


def load_result(folder: PathLike) -> LoadedResult:
    """Read an output folder of ``ivus-reconstruct run`` or ``demo`` back into Python.

    Parameters
    ----------
    folder : path-like

    Returns
    -------
    LoadedResult

    Raises
    ------
    IVUSInputError
        A folder without summary.json, or a summary.json that is not JSON.
    """
    from .errors import read_json_input
    from .io.contours import read_contours

    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise input_error(folder, "summary.json", "is missing", "give an output folder of ivus-reconstruct run or demo")
    summary = read_json_input(summary_path)
    frames: dict[str, np.ndarray] = {}
    if (folder / "frames.csv").is_file():
        with (folder / "frames.csv").open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        names = list(rows[0].keys()) if rows else []
        frames = {name: _column([r[name] for r in rows]) for name in names}
    contours = read_contours(folder / "contours.json") if (folder / "contours.json").is_file() else None
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
    return LoadedResult(folder=folder, summary=summary, frames=frames, contours=contours, files=files)
