"""One function that runs every stage, with progress and cancel, and the atomic output writer.

``run_pipeline`` works on in-memory core types (the Slicer module calls it on data taken from
nodes); ``load_inputs`` reads files into core types; ``write_outputs`` writes the output folder of
DESIGN.md into a temporary folder and moves it into place only when everything succeeded.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import IVUSCancelled, IVUSInputError, input_error
from .io import release_pages
from .types import (
    Centerline,
    ContourSet,
    FramePoses,
    GatingResult,
    Landmark,
    Metrics,
    Pullback,
    Valued,
    VesselMesh,
)

__all__ = [
    "RunOptions",
    "RunResult",
    "Inputs",
    "load_inputs",
    "run_files",
    "run_pipeline",
    "write_outputs",
    "frames_table",
    "read_frames_csv",
    "summary_document",
    "segmentation_sources",
    "OUTPUT_FILES",
    "jsonable",
    "fill_outputs",
    "rhythm_doubt",
    "read_pullback_any",
]

Progress = Callable[[float, str], None]

# a world-space labelmap for Slicer segmentations: fine enough for coronaries, small for 150 mm
LABELMAP_SPACING_MM = 0.2

OUTPUT_FILES = (
    "summary.json",
    "frames.csv",
    "lesions.csv",
    "contours.json",
    "lumen.vtp",
    "vessel.vtp",
    "wall.vtp",
    "vessel_labelmap.nrrd",
    "centerline.mrk.json",
    "render.png",
    "report.html",
)


@dataclass(frozen=True)
class RunOptions:
    """Everything a run can be told; command-line options map one to one.

    Acquisition overrides (``pixel_spacing_mm``, ``pullback_speed_mm_s``, ``frame_rate_hz``) win
    over the DICOM tags and are recorded as such in ``summary.json``.
    """

    pixel_spacing_mm: float | None = None
    pullback_speed_mm_s: float | None = None
    frame_rate_hz: float | None = None
    start_mm: float = 0.0
    centerline_order: str = "distal-first"
    align: str = "catheter"
    mirror: bool = False
    gating: str | None = None
    frame_range: str | None = None
    metric_params: Any = None
    render_size_px: tuple[int, int] = (1600, 1000)
    seed: int | None = None
    territory: str | None = None
    device: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Run options for summary.json (metric parameters are reported by the metrics stage)."""
        out = asdict(replace(self, metric_params=None))
        out.pop("metric_params")
        out["render_size_px"] = list(self.render_size_px)
        return out

    @classmethod
    def from_parameters(cls, parameters: dict[str, Any]) -> RunOptions:
        """The options a run was made with, from its ``summary.json`` ``parameters`` (other keys ignored;
        metric parameters are left at their default)."""
        names = {f.name for f in fields(cls)} - {"metric_params"}
        values = {k: v for k, v in parameters.items() if k in names}
        if "render_size_px" in values:
            values["render_size_px"] = tuple(values["render_size_px"])
        return cls(**values)


@dataclass(frozen=True)
class Inputs:
    """Inputs read from files, with the paths they came from (for messages and provenance)."""

    pullback: Pullback | None = None
    contours: ContourSet | None = None
    centerline: Centerline | None = None
    landmarks: tuple[Landmark, ...] = ()
    paths: dict[str, str] = field(default_factory=dict)
    keyframes: ContourSet | None = None


@dataclass(frozen=True, eq=False)
class RunResult:
    """Everything a run produced, in core types."""

    pullback: Pullback | None
    gating: GatingResult | None
    contours: ContourSet
    centerline: Centerline
    poses: FramePoses
    mesh: VesselMesh
    metrics: Metrics
    parameters: dict[str, Any]
    inputs: dict[str, Any]
    flags: list[dict[str, str]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    structure: Any = None


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays to Python, NaN and inf to None.

    Parameters
    ----------
    value : object
        Nested dicts, lists and tuples of numbers, numpy scalars and arrays, paths and strings.

    Returns
    -------
    object
        The same structure in types ``json.dumps(..., allow_nan=False)`` accepts.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if np.isfinite(v) else None
    if isinstance(value, Path):
        return str(value)
    return value


class _Stages:
    """Maps stage-local progress to overall progress and checks the cancel flag."""

    def __init__(self, progress: Progress | None, cancel: threading.Event | None, weights: dict[str, float]):
        self._progress = progress
        self._cancel = cancel
        total = sum(weights.values())
        self._start: dict[str, float] = {}
        self._span: dict[str, float] = {}
        acc = 0.0
        for name, w in weights.items():
            self._start[name] = acc / total
            self._span[name] = w / total
            acc += w
        self.timings: dict[str, float] = {}
        self._t0 = 0.0
        self._current = ""

    def check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise IVUSCancelled("cancelled by the user")

    def begin(self, name: str, message: str) -> Progress:
        self.check()
        self._current = name
        self._t0 = time.perf_counter()
        start, span = self._start[name], self._span[name]
        if self._progress is not None:
            self._progress(start, message)

        def sub(fraction: float, msg: str) -> None:
            if self._progress is not None:
                self._progress(start + span * min(max(fraction, 0.0), 1.0), msg)

        return sub

    def end(self) -> None:
        self.timings[self._current] = round(time.perf_counter() - self._t0, 3)
        self.check()


# --------------------------------------------------------------------------------------------
# reading


def load_inputs(
    *,
    pullback_path: str | Path | None = None,
    centerline_path: str | Path | None = None,
    contours_path: str | Path | None = None,
    landmarks_path: str | Path | None = None,
    options: RunOptions = RunOptions(),
    progress: Progress | None = None,
    keyframes_path: str | Path | None = None,
) -> Inputs:
    """Read the input files of a run into core types.

    Raises
    ------
    IVUSInputError
        Missing or unreadable files, with the file, the field and the fix.
    """
    from .io.centerline import read_centerline
    from .io.contours import check_contours_fit, read_contours, read_landmarks

    paths: dict[str, str] = {}
    pullback = None
    if pullback_path is not None:
        pullback = read_pullback_any(pullback_path, options=options, progress=progress)
        paths["pullback"] = str(pullback_path)
    contours = None
    if contours_path is not None:
        _require_file(contours_path, "contour file")
        spacing = options.pixel_spacing_mm
        spacing_rc = (spacing, spacing) if spacing else (pullback.pixel_spacing_mm if pullback else None)
        center = pullback.catheter_center_px if pullback else None
        contours = read_contours(contours_path, pixel_spacing_mm=spacing_rc, catheter_center_px=center)
        paths["contours"] = str(contours_path)
        if pullback is not None:
            check_contours_fit(contours, pullback.n_frames, contours_path)
    if pullback is None and contours is None:
        raise IVUSInputError(
            "no input: give a pullback (DICOM file or folder, frame folder, NRRD/NIfTI/MHA) "
            "or contours with z_mm per frame"
        )
    centerline = None
    if centerline_path is not None:
        _require_file(centerline_path, "centerline file")
        centerline = read_centerline(centerline_path, order=options.centerline_order)
        paths["centerline"] = str(centerline_path)
    landmarks: tuple[Landmark, ...] = ()
    if landmarks_path is not None:
        _require_file(landmarks_path, "landmark file")
        landmarks = tuple(read_landmarks(landmarks_path))
        paths["landmarks"] = str(landmarks_path)
    keyframes = None
    if keyframes_path is not None:
        keyframes = _read_keyframes(keyframes_path, pullback, contours_path)
        paths["keyframes"] = str(keyframes_path)
    return Inputs(
        pullback=pullback, contours=contours, centerline=centerline, landmarks=landmarks, paths=paths,
        keyframes=keyframes,
    )  # fmt: skip


def _read_keyframes(
    path: str | Path, pullback: Pullback | None, contours_path: str | Path | None
) -> ContourSet:
    from .io.keyframes import read_keyframes

    if contours_path is not None:
        raise input_error(path, "keyframes", "guide the segmentation, and contours for every frame skip it",
                          "give keyframes (a few corrected frames) or contours (every frame), not both")  # fmt: skip
    if pullback is None:
        raise input_error(path, "keyframes", "need the pullback they were drawn on", "give the pullback")
    return read_keyframes(path, pullback)


def _require_file(path: str | Path, option: str) -> None:
    if not Path(path).exists():
        raise input_error(path, option, "does not exist", "check the path")


def read_pullback_any(
    path: str | Path, *, options: RunOptions, progress: Progress | None = None, require_timing: bool = True
) -> Pullback:
    """Read a pullback from any supported source (DICOM, frame folder, 3D image).

    ``require_timing=False`` accepts pullbacks without frame times or speed (segmentation of
    chosen frames needs neither)."""
    from .io import dicom

    path = Path(path)
    if not path.exists():
        raise input_error(path, "PULLBACK", "does not exist", "check the path")
    spacing = options.pixel_spacing_mm
    kwargs = dict(
        pixel_spacing_mm=(spacing, spacing) if spacing else None,
        pullback_speed_mm_s=options.pullback_speed_mm_s,
        frame_rate_hz=options.frame_rate_hz,
    )
    from .io import images

    if images.handles(path):
        return images.read_pullback(path, progress=progress, require_timing=require_timing, **kwargs)
    return dicom.read_pullback(path, progress=progress, require_timing=require_timing, **kwargs)


# --------------------------------------------------------------------------------------------
# running


def _straight_centerline(length_mm: float) -> Centerline:
    """A straight line along +S (inferior to superior) for runs without a centerline."""
    n = max(int(np.ceil(length_mm)) + 1, 2)
    z = np.linspace(0.0, length_mm, n)
    return Centerline(
        points_ras_mm=np.column_stack([np.zeros(n), np.zeros(n), z]), source="straight (no --centerline)"
    )


def _arc_lengths(
    pullback: Pullback | None, contours: ContourSet, options: RunOptions, source_hint: str
) -> tuple[np.ndarray, str]:
    """Arc length of every analysed frame and how it was obtained."""
    from .coregistration import frame_arc_lengths_mm

    idx = contours.indices
    z = [f.z_mm for f in contours.frames]
    if pullback is not None and pullback.acquisition in ("motor", "gated") and pullback.pullback_speed_mm_s:
        times = np.asarray(pullback.frame_times_s, dtype=float)[idx]
        s = frame_arc_lengths_mm(times, pullback.pullback_speed_mm_s, start_mm=options.start_mm)
        return np.asarray(s, dtype=float), "pullback speed x frame time"
    if all(v is not None for v in z):
        return options.start_mm + np.asarray(z, dtype=float), "contour z_mm"
    if pullback is not None and pullback.acquisition == "manual":
        raise IVUSInputError(
            f"{source_hint}: IVUSAcquisition is MANUAL_PULLBACK and frames carry no z_mm; "
            "give the pullback speed in mm/s if the pullback was motorised, or contours with z_mm",
            setting="pullback_speed_mm_s",
        )
    raise IVUSInputError(
        f"{source_hint}: frames have no longitudinal position; give the pullback speed in mm/s with a "
        "pullback, or contours whose frames carry z_mm",
        setting="pullback_speed_mm_s",
    )


def run_pipeline(
    *,
    pullback: Pullback | None = None,
    contours: ContourSet | None = None,
    centerline: Centerline | None = None,
    landmarks: Sequence[Landmark] = (),
    options: RunOptions = RunOptions(),
    input_paths: dict[str, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    keyframes: ContourSet | None = None,
) -> RunResult:
    """Run gating, segmentation, co-registration, meshing and metrics.

    Parameters
    ----------
    pullback : Pullback or None
        Needed unless ``contours`` carry every frame's ``z_mm``.
    contours : ContourSet or None
        When given, exactly these frames are analysed and segmentation is skipped.
    centerline : Centerline or None
        Distal-first; a straight line is used (and flagged) when absent.
    landmarks : sequence of Landmark
    options : RunOptions
    input_paths : dict of str to str
        Paths the inputs came from, for messages and provenance.
    progress : callable(fraction, message) or None
    cancel : threading.Event or None
    keyframes : ContourSet or None
        Borders a reader corrected on some frames, in ``pullback``'s frame plane
        (:func:`~IVUSReconstructLib.io.keyframes.read_keyframes`): kept exactly, they guide the
        segmentation of the other frames, and their frames are analysed too.

    Returns
    -------
    RunResult

    Raises
    ------
    IVUSInputError
        Input that cannot be analysed as given.
    IVUSCancelled
        When ``cancel`` is set.
    """
    from .metrics import MetricParams, compute_metrics
    from .plan import add_plan, run_territory

    input_paths = dict(input_paths or {})
    params = options.metric_params or MetricParams()
    territory, vein_segment = run_territory(options.territory, params.vein_segment)
    params = replace(params, vein_segment=vein_segment)
    segmenting = contours is None
    stages = _Stages(
        progress,
        cancel,
        {
            "structure": 0.5 if segmenting else 0.0,
            "gating": 1.0,
            "segmentation": 6.0 if segmenting else 0.1,
            "placement": 0.5,
            "metrics": 0.3,
            "mesh": 1.0,
        },
    )
    flags: list[dict[str, str]] = []
    source_hint = input_paths.get("pullback") or input_paths.get("contours") or "input"

    if pullback is None and contours is None:
        raise IVUSInputError("no input: give a pullback or contours")
    if keyframes is not None and not segmenting:
        raise IVUSInputError(
            "keyframes guide the segmentation, and contours given for every frame skip it; give one of them"
        )
    _check_ranges(pullback, None if segmenting else contours, centerline, options, input_paths)

    gating: GatingResult | None = None
    structure = None
    if segmenting:
        structure, gating, contours = _segment(pullback, options, stages, flags, cancel, keyframes)
    else:
        stages.begin("gating", "gating")
        if options.gating == "ecg":
            raise IVUSInputError(
                "gating 'ecg': ECG gating needs an ECG waveform in the DICOM; use gating 'image' or 'none'"
            )
        stages.end()
        stages.begin("segmentation", "contours from file")
        stages.end()
    if not contours.frames:
        raise IVUSInputError(f"{source_hint}: no frame to analyse; check the frames asked for / the contour file")

    stages.begin("placement", "placing frames on the centerline")
    landmarks = tuple(landmarks)
    centerline, poses, arc, arc_source = _place(
        pullback, contours, centerline, landmarks, options, input_paths, flags
    )
    stages.end()

    stages.begin("metrics", "measuring")
    times = None
    if pullback is not None:
        times = np.asarray(pullback.frame_times_s, dtype=float)[contours.indices]
    metrics = compute_metrics(contours, arc, frame_times_s=times, params=params, landmarks=landmarks)
    metrics = add_plan(
        metrics, territory=territory, device=options.device, landmarks=tuple(contours.landmarks) + landmarks
    )
    stages.end()

    sub = stages.begin("mesh", "building meshes")
    mesh = _meshes(contours, poses, metrics, flags, progress=sub, cancel=cancel)
    stages.end()

    inputs = _inputs_record(pullback, contours, centerline, input_paths, gating, arc_source, options)
    if landmarks:
        inputs["landmarks"] = {"n": len(landmarks), "residuals": jsonable(list(poses.landmark_residuals))}
    if keyframes is not None:
        from .io.keyframes import keyframe_record

        inputs["keyframes"] = keyframe_record(input_paths.get("keyframes", "keyframes"), keyframes)
    parameters = options.as_json()
    return RunResult(
        pullback=pullback,
        gating=gating,
        contours=contours,
        centerline=centerline,
        poses=poses,
        mesh=mesh,
        metrics=metrics,
        parameters=parameters,
        inputs=inputs,
        flags=flags,
        timings_s=dict(stages.timings),
        structure=structure,
    )


def _segment(
    pullback: Pullback,
    options: RunOptions,
    stages: _Stages,
    flags: list[dict[str, str]],
    cancel: threading.Event | None,
    keyframes: ContourSet | None = None,
) -> tuple[Any, GatingResult, ContourSet]:
    """The structure, gating and segmentation stages of a run on a pullback.

    ``keyframes`` (borders corrected by the user, in this pullback's frame plane) are kept exactly
    and guide the other frames.

    Returns
    -------
    structure : PullbackStructure
    gating : GatingResult
        Frame indices of the whole pullback.
    contours : ContourSet
        The gated frames' borders, end-diastolic ones marked ``phase="ED"``.
    """
    from .gating import gate_pullback
    from .segmentation import segment_pullback

    sub = stages.begin("structure", "pullback structure")
    structure = _pullback_structure(pullback, options, progress=_releasing(sub, pullback), cancel=cancel)
    release_pages(pullback.frames)
    if structure.cuts:
        flags.append({"rule": "pullback_structure", "message": structure.message()})
    stages.end()
    sub = stages.begin("gating", "gating")
    method = options.gating or "image"
    gating = _offset_gating(
        gate_pullback(_usable_part(pullback, structure), method=method, progress=sub, cancel=cancel),
        structure.first_frame,
    )
    if gating.message:
        flags.append({"rule": "gating", "message": gating.message})
    doubt = rhythm_doubt(pullback, gating)
    if doubt:
        flags.append({"rule": "gating_plausibility", "message": doubt})
    stages.end()
    sub = stages.begin("segmentation", f"segmenting {len(gating.selected_frames)} frames")
    contours = segment_pullback(
        pullback,
        np.asarray(gating.selected_frames),
        progress=_releasing(sub, pullback),
        cancel=cancel,
        keyframes=keyframes,
    )
    release_pages(pullback.frames)
    ed = set(int(i) for i in gating.ed_frames)
    contours = contours.with_frames(
        tuple(replace(f, phase="ED") if f.index in ed else f for f in contours.frames)
    )
    low = [f.index for f in contours.frames if f.confidence is not None and f.confidence < 0.5]
    if low:
        flags.append(
            {
                "rule": "low_segmentation_confidence",
                "message": f"{len(low)} frame(s) segmented with confidence < 0.5: review frames {_frame_list(low)}",
            }
        )
    stages.end()
    return structure, gating, contours


def _place(
    pullback: Pullback | None,
    contours: ContourSet,
    centerline: Centerline | None,
    landmarks: tuple[Landmark, ...],
    options: RunOptions,
    input_paths: dict[str, str],
    flags: list[dict[str, str]],
) -> tuple[Centerline, FramePoses, np.ndarray, str]:
    """Arc length of each frame and its pose on the centerline (a straight one, flagged, if none).

    Returns
    -------
    centerline : Centerline
        The one the frames were placed on.
    poses : FramePoses
    arc : ndarray of shape (F,)
        Arc length of each analysed frame in mm, after any landmark correction.
    arc_source : str
        How the arc lengths were obtained (for summary.json).
    """
    from .coregistration import place_frames

    source_hint = input_paths.get("pullback") or input_paths.get("contours") or "input"
    arc, arc_source = _arc_lengths(pullback, contours, options, source_hint)
    if np.any(np.diff(arc) < 0):
        raise IVUSInputError(
            f"{input_paths.get('contours', source_hint)}: frame positions (z_mm) decrease along the frames; "
            "frames must be ordered in the pullback direction"
        )
    if centerline is None:
        centerline = _straight_centerline(float(arc.max()) + 10.0)
        flags.append(
            {"rule": "no_centerline", "message": "no centerline given: frames stacked on a straight line"}
        )
    poses = place_frames(
        centerline,
        contours.indices,
        arc,
        contours=contours,
        align=options.align,
        mirror=options.mirror,
        landmarks=landmarks,
        source_name=input_paths.get("centerline", centerline.source),
    )
    # landmarks may have corrected the positions: measure along the corrected ones
    arc = np.asarray(poses.arc_length_mm, dtype=float)
    _check_sizes(contours, poses, options, source_hint)
    return centerline, poses, arc, arc_source


def _meshes(
    contours: ContourSet,
    poses: FramePoses,
    metrics: Metrics,
    flags: list[dict[str, str]],
    *,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> VesselMesh:
    """The lumen, vessel and wall meshes, with a flag for frames folded at tight bends."""
    from .mesh import build_meshes

    mesh = build_meshes(contours, poses, per_frame=metrics.per_frame, progress=progress, cancel=cancel)
    folded = _field_array(mesh.lumen, "folded_frame_index")
    if folded.size:
        flags.append(
            {
                "rule": "folded_frames",
                "message": f"{folded.size} frame(s) fold at tight bends (centerline radius of curvature below "
                f"the vessel radius): frames {_frame_list([int(f) for f in folded])}; the inner wall is compressed",
            }
        )
    return mesh


def rhythm_doubt(pullback: Pullback, gating: GatingResult) -> str:
    """The gating plausibility line ('' when the rhythm found is believable or none was)."""
    from .gating import frame_rate_hz, rhythm_plausibility

    rate = frame_rate_hz(pullback.frame_times_s)
    if rate is None:
        return ""
    prov = pullback.provenance.get("frame_times_s") if pullback.provenance else None
    source = str(getattr(prov, "source", "")) if prov is not None else ""
    return rhythm_plausibility(gating, rate, frame_rate_source=source)


def _pullback_structure(
    pullback: Pullback, options: RunOptions, *, progress: Progress | None, cancel: threading.Event | None
) -> Any:
    """The usable frames: ``--frame-range`` when given, else found (guide catheter, motionless ends)."""
    from .pullback_structure import find_pullback_structure, manual_structure

    if options.frame_range:
        return manual_structure(pullback, options.frame_range)
    return find_pullback_structure(pullback, progress=progress, cancel=cancel)


def _usable_part(pullback: Pullback, structure: Any) -> Pullback:
    """The pullback restricted to its usable frames (a view: no frame is copied)."""
    if structure.first_frame == 0 and structure.last_frame == pullback.n_frames - 1:
        return pullback
    keep = slice(structure.first_frame, structure.last_frame + 1)
    return replace(
        pullback, frames=pullback.frames[keep], frame_times_s=np.asarray(pullback.frame_times_s)[keep]
    )


def _offset_gating(gating: GatingResult, first: int) -> GatingResult:
    """Gating of the usable part with its frame numbers moved back to the whole pullback's."""
    if first == 0:
        return gating
    return replace(
        gating,
        selected_frames=np.asarray(gating.selected_frames) + first,
        ed_frames=np.asarray(gating.ed_frames) + first,
    )


def _check_ranges(
    pullback: Pullback | None,
    contours: ContourSet | None,
    centerline: Centerline | None,
    options: RunOptions,
    input_paths: dict[str, str],
) -> None:
    """Every input against the range table (limits.py) before any stage runs, whichever front end
    built it (files, Slicer nodes, a batch case)."""
    from . import limits

    for key, value in (
        ("pixel_spacing_mm", options.pixel_spacing_mm),
        ("pullback_speed_mm_s", options.pullback_speed_mm_s),
        ("frame_rate_hz", options.frame_rate_hz),
        ("start_mm", options.start_mm),
    ):
        limits.check(key, value, where="options", name=key)
    fov = None
    if pullback is not None:
        limits.check_pullback(pullback, input_paths.get("pullback", "pullback"))
        rows, cols = pullback.shape_px
        fov = (rows * pullback.pixel_spacing_mm[0], cols * pullback.pixel_spacing_mm[1])
    if centerline is not None:
        limits.check_centerline(centerline, input_paths.get("centerline", centerline.source or "centerline"))
    if contours is not None:
        limits.check_contours(contours, input_paths.get("contours", "contours"), field_of_view_mm=fov)


def _check_sizes(contours: ContourSet, poses: FramePoses, options: RunOptions, where: str) -> None:
    """The sizes of the labelmap, mesh and render from the placed frames, before any is made."""
    from . import limits

    extent = max(
        float(np.max(np.abs(np.asarray(p, dtype=float))))
        for f in contours.frames
        for p in (f.lumen, f.vessel)
        if p is not None
    )
    limits.check_output_sizes(
        poses.origin_ras_mm,
        extent + float(np.max(np.abs(poses.offset_mm))) if len(poses.offset_mm) else extent,
        labelmap_spacing_mm=LABELMAP_SPACING_MM,
        render_size_px=options.render_size_px,
        where=where,
    )


def _releasing(progress: Progress, pullback: Pullback, every_s: float = 0.5) -> Progress:
    """``progress`` that also drops the pullback's pages read so far from resident memory (at
    most every ``every_s``): a memory-mapped pullback segmented frame by frame then never
    counts whole in the process's memory (the pages stay in the file cache)."""
    last = [time.perf_counter()]

    def call(fraction: float, message: str) -> None:
        now = time.perf_counter()
        if now - last[0] >= every_s:
            release_pages(pullback.frames)
            last[0] = now
        progress(fraction, message)

    return call


def _field_array(polydata: Any, name: str) -> np.ndarray:
    """A field-data array of a vtkPolyData as numpy (empty when absent)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    array = polydata.GetFieldData().GetArray(name) if polydata is not None else None
    return np.empty(0) if array is None else vtk_to_numpy(array)


def run_files(
    *,
    pullback_path: str | Path | None = None,
    centerline_path: str | Path | None = None,
    contours_path: str | Path | None = None,
    landmarks_path: str | Path | None = None,
    options: RunOptions = RunOptions(),
    centerline: tuple[Centerline, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    keyframes_path: str | Path | None = None,
) -> RunResult:
    """Read the input files and run the pipeline: what ``run`` and each case of ``batch`` do.

    Parameters
    ----------
    centerline : (Centerline, label) or None
        A centerline made in memory (e.g. from angiograms) instead of ``centerline_path``;
        the label names its source in ``summary.json``.
    """
    t0 = time.perf_counter()
    inputs = load_inputs(
        pullback_path=pullback_path,
        centerline_path=centerline_path,
        contours_path=contours_path,
        landmarks_path=landmarks_path,
        options=options,
        progress=None if progress is None else (lambda f, m: progress(0.1 * f, m)),
        keyframes_path=keyframes_path,
    )
    reading_s = round(time.perf_counter() - t0, 3)
    if inputs.pullback is not None:
        release_pages(inputs.pullback.frames)
    paths = dict(inputs.paths)
    if centerline is not None:
        paths["centerline"] = centerline[1]
    result = run_pipeline(
        pullback=inputs.pullback,
        contours=inputs.contours,
        centerline=centerline[0] if centerline is not None else inputs.centerline,
        landmarks=inputs.landmarks,
        options=options,
        input_paths=paths,
        progress=None if progress is None else (lambda f, m: progress(0.1 + 0.9 * f, m)),
        cancel=cancel,
        keyframes=inputs.keyframes,
    )
    return replace(result, timings_s={"reading": reading_s, **result.timings_s})


def _frame_list(frames: Sequence[int], most: int = 12) -> str:
    text = ", ".join(str(f) for f in frames[:most])
    return text + (f", ... ({len(frames)} in all)" if len(frames) > most else "")


def _inputs_record(
    pullback: Pullback | None,
    contours: ContourSet,
    centerline: Centerline,
    paths: dict[str, str],
    gating: GatingResult | None,
    arc_source: str,
    options: RunOptions,
) -> dict[str, Any]:
    """The ``inputs`` block of summary.json: each acquisition value with its source."""
    record: dict[str, Any] = {"files": {k: Path(v).name for k, v in paths.items()}}
    if pullback is not None:
        prov = dict(pullback.provenance)
        defaults = {
            "n_frames": Valued(pullback.n_frames, "pixel data"),
            "pixel_spacing_mm": Valued(list(pullback.pixel_spacing_mm), "unknown"),
            "pullback_speed_mm_s": Valued(pullback.pullback_speed_mm_s, "unknown"),
            "acquisition": Valued(pullback.acquisition, "unknown"),
        }
        for key, val in defaults.items():
            prov.setdefault(key, val)
        for key, val in prov.items():
            entry = val.to_json() if isinstance(val, Valued) else {"value": val, "source": "unknown"}
            if key == "frame_times_s":
                times = np.asarray(entry["value"], dtype=float)
                entry = {
                    "value": {
                        "n": int(times.size),
                        "first_s": float(times[0]) if times.size else None,
                        "last_s": float(times[-1]) if times.size else None,
                        "mean_interval_ms": float(np.mean(np.diff(times)) * 1e3) if times.size > 1 else None,
                    },
                    "source": entry["source"],
                }
            record[key] = jsonable(entry)
        record.setdefault(
            "catheter_center_px", {"value": list(pullback.catheter_center_px), "source": "image centre"}
        )
        record["image_size_px"] = list(pullback.shape_px)
        record["sop_class_uid"] = pullback.source.get("sop_class_uid")
        record["vendor"] = pullback.source.get("vendor")
    record["analysed_frames"] = {
        "value": int(len(contours.frames)),
        "source": f"gating: {gating.method}" if gating is not None else "frames in --contours",
    }
    if gating is not None:
        record["gating"] = {
            "method": gating.method,
            "heart_rate_bpm": jsonable(gating.heart_rate_bpm),
            "confidence": jsonable(gating.confidence),
            "n_end_diastolic_frames": int(len(gating.ed_frames)),
            "message": gating.message,
        }
        if pullback is not None:
            doubt = rhythm_doubt(pullback, gating)
            record["gating"]["plausibility"] = doubt or ("plausible" if gating.method == "image" else None)
    record["arc_length"] = {"source": arc_source, "start_mm": options.start_mm}
    record["centerline"] = {
        "source": Path(paths["centerline"]).name if "centerline" in paths else centerline.source,
        "order": options.centerline_order,
        "length_mm": round(centerline.length_mm, 3),
    }
    record["coordinates"] = {
        "world": "RAS",
        "align": options.align,
        "mirror": options.mirror,
        "frame_plane": "mm, origin at the catheter centre, x along columns, y along rows",
    }
    return record


# --------------------------------------------------------------------------------------------
# writing

_POSE_COLUMNS = ("x_mm", "y_mm", "z_mm", "nx", "ny", "nz")


def frames_table(result: RunResult) -> tuple[list[str], list[list[Any]]]:
    """The rows of frames.csv: per-frame metrics with the plane origin and normal inserted.

    Returns
    -------
    header : list of str
    rows : list of list
    """
    per_frame = result.metrics.per_frame
    names = list(per_frame.keys())
    pos = names.index("arc_length_mm") + 1 if "arc_length_mm" in names else len(names)
    header = names[:pos] + list(_POSE_COLUMNS) + names[pos:]
    pose_cols = {
        "x_mm": result.poses.origin_ras_mm[:, 0],
        "y_mm": result.poses.origin_ras_mm[:, 1],
        "z_mm": result.poses.origin_ras_mm[:, 2],
        "nx": result.poses.normal_ras[:, 0],
        "ny": result.poses.normal_ras[:, 1],
        "nz": result.poses.normal_ras[:, 2],
    }
    if result.poses.uncertainty_mm is not None:
        header.append("placement_uncertainty_mm")
        pose_cols["placement_uncertainty_mm"] = result.poses.uncertainty_mm
    # provenance of each frame's borders: edited (a keyframe), propagated, automatic; empty when
    # the contours came from a file that does not say
    by_index = {f.index: f.source or "" for f in result.contours.frames}
    header.append("source")
    pose_cols["source"] = np.array([by_index.get(int(i), "") for i in per_frame["frame"]], dtype=object)
    columns = [_csv_column(pose_cols[h] if h in pose_cols else per_frame[h]) for h in header]
    rows = [list(row) for row in zip(*columns, strict=True)]
    return header, rows


def read_frames_csv(path: str | Path) -> dict[int, dict[str, str]]:
    """The rows of a frames.csv (as written by :func:`write_outputs`) by frame index, values as text."""
    with Path(path).open(newline="") as handle:
        return {int(float(row["frame"])): row for row in csv.DictReader(handle)}


def _csv_column(column: Any) -> list[Any]:
    """The cells of one column, as :func:`_csv_value` makes them, a column at a time."""
    values = np.asarray(column)
    if values.dtype.kind in "iu":
        return [int(v) for v in values.tolist()]
    if values.dtype.kind in "fb":
        return [f"{v:.6g}" if math.isfinite(v) else "" for v in values.astype(float).tolist()]
    return [_csv_value(v) for v in values]


def _csv_value(v: Any) -> Any:
    """A CSV cell: integers as such, floats to 6 significant digits, NaN as empty."""
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return v
    return f"{f:.6g}" if np.isfinite(f) else ""


def segmentation_sources(contours: ContourSet) -> dict[str, int]:
    """How many analysed frames are ``edited`` (keyframes), ``propagated`` and ``automatic``
    (``unknown``: contours from a file that does not say, counted only when there are some)."""
    counts = {"edited": 0, "propagated": 0, "automatic": 0}
    for f in contours.frames:
        key = f.source or "unknown"
        counts[key] = counts.get(key, 0) + 1
    return counts


def summary_document(result: RunResult) -> dict[str, Any]:
    """The content of summary.json (keys of DESIGN.md first)."""
    m = result.metrics
    doc: dict[str, Any] = {"format": "ivus-summary", "version": __version__}
    doc["inputs"] = result.inputs
    measured = jsonable(m.summary)
    doc["parameters"] = {**result.parameters, "metrics": measured.pop("metric_parameters", None)}
    doc.update(measured)
    doc["lesions"] = jsonable(m.lesions)
    if result.structure is not None:
        doc["pullback_structure"] = jsonable(result.structure.as_json())
    doc["segmentation"] = {"sources": segmentation_sources(result.contours)}
    doc["flags"] = jsonable(list(result.flags) + list(m.flags))
    doc["timings_s"] = dict(result.timings_s)
    return doc


def _write_summary(folder: Path, summary: dict[str, Any]) -> None:
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    (folder / "summary.json").write_text(text, encoding="utf-8")


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _lesion_rows(lesions: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    flat = []
    for lesion in lesions:
        row: dict[str, Any] = {}
        for key, value in lesion.items():
            if isinstance(value, dict):
                for k2, v2 in value.items():
                    if isinstance(v2, dict):
                        for k3, v3 in v2.items():
                            row[f"{key}_{k2}_{k3}"] = v3
                    else:
                        row[f"{key}_{k2}"] = v2
            else:
                row[key] = value
        flat.append(row)
    header: list[str] = []
    for row in flat:
        header += [k for k in row if k not in header]
    rows = [[_csv_value(r.get(h)) if r.get(h) is not None else "" for h in header] for r in flat]
    return header or ["id"], rows


def write_outputs(
    result: RunResult,
    out_dir: str | Path,
    *,
    extra_writers: Sequence[Callable[[Path], None]] = (),
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Path]:
    """Write the output folder of DESIGN.md atomically.

    Parameters
    ----------
    result : RunResult
    out_dir : path
        Created, or replaced when it holds an earlier output.
    extra_writers : sequence of callable(folder)
        Run on the temporary folder after the standard files (the CLI adds the Slicer scene).

    Returns
    -------
    dict of str to Path
        Final paths of the files written.
    """
    out_dir = Path(out_dir)

    def fill(tmp: Path) -> dict[str, Path]:
        return fill_outputs(result, tmp, extra_writers=extra_writers, progress=progress, cancel=cancel)

    from .output_place import atomic_folder

    written = atomic_folder(Path(out_dir), fill, need_bytes=output_bytes_estimate(result))
    return {name: out_dir.absolute() / name for name in written}


def output_bytes_estimate(result: RunResult) -> int:
    """An upper estimate of the output folder's size, checked against the free space first.

    Meshes are counted uncompressed twice (VTP and glTF, plus the scene), the render as raw
    RGB once (PNG and the report's copy compress it), contours as JSON text.
    """
    mesh_bytes = 0
    for poly in (result.mesh.lumen, result.mesh.vessel, result.mesh.wall):
        if poly is not None:
            mesh_bytes += 40 * poly.GetNumberOfPoints() + 24 * poly.GetNumberOfCells()
    width, height = result.parameters.get("render_size_px", (1600, 1000))
    contour_points = sum(
        len(f.lumen) + (0 if f.vessel is None else len(f.vessel)) for f in result.contours.frames
    )
    return int(2 * mesh_bytes + 3 * width * height + 40 * contour_points + (2 << 20))


def fill_outputs(
    result: RunResult,
    tmp: Path,
    *,
    extra_writers: Sequence[Callable[[Path], None]] = (),
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Write every output file of a run into the folder ``tmp`` (not atomically).

    :func:`write_outputs` calls it on a temporary folder that it moves into place; the demo calls
    it inside its own atomic folder (which also holds the phantom).

    Parameters
    ----------
    result : RunResult
    tmp : Path
        An existing, empty folder.
    extra_writers : sequence of callable(folder)
        Run after the standard files (e.g. ``mrml.scene_writers()``).
    progress : callable(fraction, message) or None
    cancel : threading.Event or None

    Returns
    -------
    list of str
        Names of the files in ``tmp``, sorted.
    """
    from .export import write_colored_glb
    from .io.centerline import write_markups_curve
    from .io.contours import write_contours_json
    from .labelmap import vessel_labelmap, write_labelmap_nrrd
    from .mesh import write_mesh
    from .render import RenderStyle, device_polydata, render_vessel, write_png
    from .report import build_report, pullback_figures

    def step(fraction: float, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise IVUSCancelled("cancelled by the user")
        if progress is not None:
            progress(fraction, message)

    timings = result.timings_s
    clock = [time.perf_counter()]

    def done(name: str) -> None:
        """Time since the previous output into ``timings_s[name]``."""
        now = time.perf_counter()
        timings[name] = round(now - clock[0], 3)
        clock[0] = now

    step(0.0, "writing meshes")
    write_mesh(result.mesh.lumen, tmp / "lumen.vtp")
    if result.mesh.vessel is not None:
        write_mesh(result.mesh.vessel, tmp / "vessel.vtp")
    if result.mesh.wall is not None:
        write_mesh(result.mesh.wall, tmp / "wall.vtp")
    # one file that opens anywhere (Windows 3D Viewer, Blender, web viewers): lumen and vessel
    # coloured by plaque burden as in the render
    devices = device_polydata(result.metrics.summary, result.centerline.points_ras_mm)
    write_colored_glb(result.mesh, tmp / "vessel.glb", devices=devices)
    if devices:
        write_mesh(devices[0], tmp / "device.vtp")
    done("write_meshes")
    step(0.05, "labelmap")
    labels, origin, spacing = vessel_labelmap(
        result.mesh,
        LABELMAP_SPACING_MM,
        progress=lambda f, m: step(0.05 + 0.1 * f, m),
        cancel=cancel,
    )
    done("labelmap")
    step(0.15, "writing the labelmap")
    write_labelmap_nrrd(labels, origin, spacing, tmp / "vessel_labelmap.nrrd")
    del labels
    done("write_labelmap")
    step(0.2, "writing contours.json")
    write_contours_json(result.contours, tmp / "contours.json", cancel=cancel)
    done("write_contours")
    step(0.25, "writing frames.csv")
    write_markups_curve(result.centerline, tmp / "centerline.mrk.json", coordinate_system="LPS")
    header, rows = frames_table(result)
    _write_csv(tmp / "frames.csv", header, rows)
    lheader, lrows = _lesion_rows(result.metrics.lesions)
    _write_csv(tmp / "lesions.csv", lheader, lrows)
    done("write_tables")

    step(0.3, "rendering")
    image = render_vessel(
        result.mesh,
        centerline=result.centerline,
        poses=result.poses,
        metrics=result.metrics,
        contours=result.contours,
        style=RenderStyle(size_px=tuple(result.parameters.get("render_size_px", (1600, 1000)))),
    )
    write_png(image, tmp / "render.png")
    done("render")

    step(0.7, "writing the report")
    summary = summary_document(result)
    _write_summary(tmp, summary)
    pb = result.pullback
    per_frame = {k: np.asarray(v) for k, v in result.metrics.per_frame.items()}
    figures = pullback_figures(
        None if pb is None else pb.frames,
        contours=result.contours,
        per_frame=per_frame,
        pixel_spacing_mm=None if pb is None else pb.pixel_spacing_mm,
        catheter_center_px=None if pb is None else pb.catheter_center_px,
        summary=summary,
        lesions=summary["lesions"],
    )
    if summary.get("pullback_structure") and pb is not None:
        from .report import structure_figure

        figures[
            "Whole pullback (L-mode by frame) with the frames left out of the analysis shaded, and why"
        ] = structure_figure(
            pb.frames,
            summary["pullback_structure"],
            pixel_spacing_mm=pb.pixel_spacing_mm,
            catheter_center_px=pb.catheter_center_px,
        )
    if pb is not None:
        release_pages(pb.frames)
    html = build_report(
        figures=figures,
        summary=summary,
        per_frame=per_frame,
        lesions=summary["lesions"],
        flags=summary["flags"],
        images={"3D reconstruction": (tmp / "render.png").read_bytes()},
        inputs=summary["inputs"],
        parameters=summary["parameters"],
        version=__version__,
    )
    (tmp / "report.html").write_text(html, encoding="utf-8")
    done("report")
    for writer in extra_writers:
        step(0.9, "writing the Slicer scene")
        writer(tmp)
    if extra_writers:
        done("scene")
    # summary.json again, now that every output has its time
    summary["timings_s"] = dict(timings)
    _write_summary(tmp, summary)
    step(1.0, "done")
    return sorted(p.name for p in tmp.iterdir())
