"""Command line: ``ivus-reconstruct demo|phantom|run|segment|evaluate``.

Exit codes: 0 ok, 2 bad input or usage (one line, no traceback), 1 internal error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, limits
from .dependencies import optional_missing
from .errors import IVUSCancelled, IVUSInputError, input_error

PRESET_NAMES = ("coronary", "femoropopliteal", "iliac-vein")

# ---------------------------------------------------------------------------------------------
# option checks: the values users mistype most (units) get a message naming the option


def check_acquisition_options(args: argparse.Namespace) -> None:
    """Reject acquisition options outside the range table before any work is done."""
    for opt in limits.ACQUISITION_OPTIONS:
        value = getattr(args, opt.column, None)
        limits.check(opt.field, value, where=opt.option, name="value", fix=limits.CLI_FIXES[opt.field])


# ---------------------------------------------------------------------------------------------
# progress


class ProgressBar:
    """A tqdm bar driven by ``progress(fraction, message)`` callbacks (quiet when not a terminal)."""

    def __init__(self, *, enabled: bool | None = None):
        self._lock = threading.Lock()
        missing = optional_missing("tqdm", "tqdm", "The progress bar")
        if missing is not None:
            # cosmetic: the run goes on without a bar
            print(f"({missing})", file=sys.stderr)
            self._bar = None
            return
        from tqdm import tqdm

        disable = None if enabled is None else not enabled
        self._bar = tqdm(
            total=1000,
            disable=disable,
            file=sys.stderr,
            bar_format="{desc:<34.34}|{bar}| {percentage:3.0f}% {elapsed}",
            leave=False,
        )

    def __call__(self, fraction: float, message: str) -> None:
        if self._bar is None:
            return
        with self._lock:
            n = int(round(min(max(fraction, 0.0), 1.0) * 1000))
            if n > self._bar.n:
                self._bar.update(n - self._bar.n)
            self._bar.set_description_str(message, refresh=True)

    def scaled(self, start: float, end: float) -> Callable[[float, str], None]:
        return lambda f, m: self(start + (end - start) * f, m)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------------------
# commands


def _options_from_args(args: argparse.Namespace):
    from .pipeline import RunOptions

    acquisition = {o.field: getattr(args, o.column, None) for o in limits.ACQUISITION_OPTIONS}
    acquisition["start_mm"] = acquisition["start_mm"] or 0.0
    return RunOptions(
        **acquisition,
        centerline_order=getattr(args, "centerline_order", "distal-first"),
        align=getattr(args, "align", "catheter"),
        mirror=bool(getattr(args, "mirror", False)),
        gating=getattr(args, "gating", None),
        frame_range=getattr(args, "frame_range", None),
        territory=getattr(args, "territory", None),
        device=getattr(args, "device", None),
    )


def _isocenter_option(text: str | None):
    if text is None or text == "none":
        return None
    if text == "auto":
        return "auto"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise IVUSInputError(f"--isocenter {text!r}: give auto, none, or three numbers X,Y,Z in mm (LPS)")
    return np.asarray(values)


def _reconstruct_angio(args: argparse.Namespace, progress=None):
    from .angio import reconstruct_from_files, single_view_from_files

    if len(args.angio) > 2:
        raise IVUSInputError("--angio takes one or two XA files (two projections give a 3D centerline)")
    if not args.angio_curves or len(args.angio_curves) != len(args.angio):
        raise IVUSInputError(
            "--angio needs --angio-curves with one curve per view: the vessel traced (or its two ends clicked) on each"
        )
    named = [(p, "--angio") for p in args.angio] + [(c, "--angio-curves") for c in args.angio_curves]
    for path, option in named:
        if not Path(path).exists():
            raise input_error(path, option, "does not exist", "check the path")
    if len(args.angio) == 1:
        result = single_view_from_files(args.angio[0], args.angio_curves[0], frame=args.frame1)
        for warning in result.warnings:
            print(f"ivus-reconstruct: warning: {warning}", file=sys.stderr)
        return result
    (xa1, xa2), (c1, c2) = args.angio, args.angio_curves
    result = reconstruct_from_files(
        xa1,
        xa2,
        c1,
        c2,
        frame1=args.frame1,
        frame2=args.frame2,
        isocenter_offset_mm=_isocenter_option(args.isocenter),
        reverse_mismatched=args.reverse_mismatched,
        progress=progress,
    )
    for warning in result.warnings:
        print(f"ivus-reconstruct: warning: {warning}", file=sys.stderr)
    return result


def cmd_angio(args: argparse.Namespace) -> int:
    from .io.centerline import write_markups_curve

    if (args.xa2 is None) != (args.curve2 is None):
        raise IVUSInputError("angio: give XA2 together with --curve2, or neither for a single projection")
    args.angio = [p for p in (args.xa1, args.xa2) if p is not None]
    args.angio_curves = [c for c in (args.curve1, args.curve2) if c is not None]
    result = _reconstruct_angio(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        write_markups_curve(result.centerline, tmp, coordinate_system="RAS")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    residual = np.asarray(result.residual_px, dtype=float)
    fit = (
        f"back-projection residual {np.sqrt(np.mean(residual**2)):.2f} px RMS, {residual.max():.2f} px max"
        if residual.size
        else "single projection: planar and foreshortened"
    )
    print(
        f"centerline: {len(result.centerline.points_ras_mm)} points, {result.centerline.length_mm:.1f} mm, {fit} -> {out}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .mrml import scene_writers
    from .output_place import claim_for_run
    from .pipeline import run_files, write_outputs

    check_acquisition_options(args)
    out = Path(args.out)
    # held from now on: a second run to the same folder is refused at once, not after its work
    claim_for_run(out)
    options = _options_from_args(args)
    if args.angio and args.centerline:
        raise IVUSInputError("--angio and --centerline both give the centerline; use one")
    bar = ProgressBar()
    try:
        angio = None
        if args.angio:
            angio = (
                _reconstruct_angio(args).centerline,
                "angio: " + " + ".join(Path(p).name for p in args.angio),
            )
        result = run_files(
            pullback_path=args.pullback,
            centerline_path=args.centerline,
            contours_path=args.contours,
            landmarks_path=args.landmarks,
            options=options,
            centerline=angio,
            keyframes_path=args.keyframes,
            progress=bar.scaled(0.0, 0.8),
        )
        write_outputs(result, out, extra_writers=scene_writers(), progress=bar.scaled(0.8, 1.0))
    finally:
        bar.close()
    _print_summary(result.metrics.summary, out)
    _print_notes(result.flags)
    return 0


# Flags about how the pullback was read that the user should see without opening summary.json.
_NOTED_RULES = ("pullback_structure", "gating_plausibility")


def _print_notes(flags: Sequence[dict[str, str]]) -> None:
    for flag in flags:
        if flag.get("rule") in _NOTED_RULES:
            print(f"note: {flag['message']}")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return f"{float(value):.{digits}f}"


def _plan_line(summary: dict[str, Any]) -> str:
    """One line of the main plan (a suggestion for research and teaching)."""
    plan = summary.get("plan")
    if not plan:
        return "none (see the plan_none flag)"
    device = plan["device"]
    # without a reference or landing zone there is nothing to size the diameter on: say so
    size = (
        f"{_fmt(device.get('length_mm'), 0)} mm {device.get('type')} (no diameter: no reference or landing zone)"
        if device.get("diameter_mm") is None
        else f"{_fmt(device.get('diameter_mm'), 2)} x {_fmt(device.get('length_mm'), 0)} mm {device.get('type')}"
    )
    return (
        f"{size} "
        f"at {_fmt(device.get('start_mm'), 1)}-{_fmt(device.get('end_mm'), 1)} mm ({plan.get('territory')}; "
        "a suggestion for research and teaching)"
    )


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    vol = summary.get("volumes_mm3") or {}
    mla = summary.get("mla") or {}
    stenosis = summary.get("area_stenosis_percent") or {}
    lines = [
        f"lumen volume   {_fmt(vol.get('lumen'), 1)} mm3",
        f"vessel volume  {_fmt(vol.get('vessel'), 1)} mm3",
        f"PAV            {_fmt(summary.get('pav_percent'), 1)} %",
        f"MLA            {_fmt(mla.get('area_mm2'))} mm2 at {_fmt(mla.get('arc_length_mm'), 1)} mm (frame {_fmt(mla.get('frame'))})",
        f"area stenosis  {_fmt(stenosis.get('largest'), 1)} % (vs largest reference)",
        f"plan           {_plan_line(summary)}",
        f"output         {out}",
    ]
    print("\n".join(lines))


def _write_phantom_files(phantom, folder: Path, screens: bool = False) -> dict[str, Path]:
    from .io.centerline import write_markups_curve
    from .io.contours import write_contours_json
    from .io.dicom import write_pullback
    from .phantom import truth_metrics
    from .pipeline import jsonable

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "pullback": folder / "pullback.dcm",
        "centerline": folder / "centerline.mrk.json",
        "truth_contours": folder / "truth_contours.json",
        "truth_metrics": folder / "truth_metrics.json",
    }
    write_pullback(phantom.pullback, paths["pullback"], heart_rate_bpm=phantom.heart_rate_bpm)
    write_markups_curve(phantom.centerline, paths["centerline"], coordinate_system="LPS")
    write_contours_json(phantom.truth, paths["truth_contours"])
    truth = truth_metrics(phantom)
    doc = {
        "format": "ivus-phantom-truth",
        "version": __version__,
        "preset": phantom.preset,
        "seed": phantom.seed,
        "heart_rate_bpm": phantom.heart_rate_bpm,
        "ed_frames": np.asarray(phantom.ed_frames).tolist(),
        "true_arc_length_mm": np.round(np.asarray(phantom.true_arc_length_mm), 5).tolist(),
        "summary": jsonable(truth.summary),
        "lesions": jsonable(truth.lesions),
    }
    paths["truth_metrics"].write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    if screens and phantom.console_overlay is not None:
        paths["screens"] = _write_screens(phantom, folder / "screens")
    return paths


def _write_screens(phantom, folder: Path) -> Path:
    """The console-overlay phantom as colour screen exports, one PNG per frame."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(phantom.pullback.n_frames):
        Image.fromarray(phantom.screen_frame(k)).save(folder / f"{k + 1:04d}.png")
    return folder


def _phantom_appearance(args: argparse.Namespace):
    """The Appearance the realism flags ask for, None without any (the historical images)."""
    from .phantom import PRESETS, Appearance, realistic_appearance

    changes: dict[str, Any] = {}
    if getattr(args, "echolucent_plaque", None):
        changes["echolucent_arc_deg"] = float(args.echolucent_plaque)
    if getattr(args, "wedged_catheter", False):
        changes["wedged_catheter"] = True
    if getattr(args, "console_overlay", False):
        changes["console"] = True
    if getattr(args, "console_offset_px", None):
        try:
            row, col = (int(v) for v in args.console_offset_px.split(","))
        except ValueError:
            raise IVUSInputError(
                f"--console-offset-px: {args.console_offset_px!r} is not ROW,COL; give two integers, e.g. 6,-9"
            ) from None
        changes["console_offset_px"] = (row, col)
    if getattr(args, "realistic", False):
        speckle = getattr(args, "speckle", None) or PRESETS[args.preset].speckle
        return realistic_appearance(speckle, **changes)
    return Appearance(**changes) if changes else None


def _make_phantom(args: argparse.Namespace):
    from .phantom import make_phantom

    kwargs: dict[str, Any] = {"seed": args.seed}
    # the phantom's own size options, against the same table as real acquisitions
    limits.check("image_size_px", getattr(args, "size_px", None), where="--size-px", name="value",
                 fix="give the frame size in pixels (e.g. 256 or 512)")  # fmt: skip
    length = getattr(args, "length_mm", None)
    if length is not None and not length > 0:
        raise IVUSInputError(
            f"--length-mm: value is {length} mm, must be positive; give the pullback length in mm"
        )
    limits.check("pullback_length_mm", length, where="--length-mm", name="value",
                 fix="give the pullback length in mm (e.g. 40)")  # fmt: skip
    if getattr(args, "length_mm", None):
        kwargs["length_mm"] = args.length_mm
    if getattr(args, "size_px", None):
        kwargs["size_px"] = args.size_px
    if getattr(args, "speckle", None):
        kwargs["speckle"] = args.speckle
    if getattr(args, "side_branch", False):
        kwargs["side_branch"] = True
    appearance = _phantom_appearance(args)
    if appearance is not None:
        kwargs["appearance"] = appearance
    return make_phantom(args.preset, **kwargs)


def cmd_phantom(args: argparse.Namespace) -> int:
    from .output_place import atomic_folder

    out = Path(args.out)
    phantom = _make_phantom(args)
    paths = atomic_folder(out, lambda tmp: _write_phantom_files(phantom, tmp, screens=True))
    for name, path in paths.items():
        print(f"{name:16s} {out / path.name}")
    return 0


# tolerances of the foundation issue: measured against ground truth
DEMO_TOLERANCES = {
    "lumen_volume": ("relative", 0.03),
    "vessel_volume": ("relative", 0.03),
    "mla_area": ("relative", 0.05),
    "mla_position": ("absolute", 1.0),
    "area_stenosis": ("absolute", 3.0),
    "compressed_length": ("absolute", 2.0),
}


def compare_to_truth(measured: dict[str, Any], truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the demo table: quantity, measured, truth, error, tolerance, pass.

    Parameters
    ----------
    measured, truth : dict
        ``summary.json``-style metric summaries.
    """

    def get(doc: dict[str, Any], *keys: str) -> float | None:
        for k in keys:
            if not isinstance(doc, dict) or doc.get(k) is None:
                return None
            doc = doc[k]
        return float(doc)

    quantities = [
        ("lumen_volume", "lumen volume (mm3)", ("volumes_mm3", "lumen")),
        ("vessel_volume", "vessel volume (mm3)", ("volumes_mm3", "vessel")),
        ("plaque_volume", "plaque volume (mm3)", ("volumes_mm3", "plaque")),
        ("pav", "PAV (%)", ("pav_percent",)),
        ("mla_area", "MLA (mm2)", ("mla", "area_mm2")),
        ("mla_position", "MLA position (mm)", ("mla", "arc_length_mm")),
        ("area_stenosis", "area stenosis, largest ref (%)", ("area_stenosis_percent", "largest")),
        ("area_stenosis_proximal", "area stenosis, proximal ref (%)", ("area_stenosis_percent", "proximal")),
        ("area_stenosis_distal", "area stenosis, distal ref (%)", ("area_stenosis_percent", "distal")),
    ]
    if measured.get("venous"):
        # the compressed segment is the vein's main lesion (venous rule)
        measured, truth = (
            {**doc, "main_lesion_length_mm": _main_lesion_length(doc)} for doc in (measured, truth)
        )
        quantities.append(("compressed_length", "compressed segment length (mm)", ("main_lesion_length_mm",)))
    rows = []
    for key, label, path in quantities:
        m, t = get(measured, *path), get(truth, *path)
        kind, tol = DEMO_TOLERANCES.get(key, (None, None))
        err = None if m is None or t is None else m - t
        ok = None
        if err is not None and kind == "relative":
            ok = abs(err) <= tol * abs(t)
        elif err is not None and kind == "absolute":
            ok = abs(err) <= tol
        tol_text = "" if kind is None else (f"{tol * 100:.0f}%" if kind == "relative" else f"{tol:g}")
        rows.append(
            {
                "quantity": key,
                "label": label,
                "measured": m,
                "truth": t,
                "error": err,
                "tolerance": tol_text,
                "pass": ok,
            }
        )
    return rows


def _main_lesion_length(summary: dict[str, Any]) -> float | None:
    main = summary.get("main_lesion_id")
    return next((les["length_mm"] for les in summary.get("lesions") or [] if les.get("id") == main), None)


def _print_comparison(rows: list[dict[str, Any]], preset: str) -> None:
    print(f"\nIVUSReconstruct demo: {preset} phantom, measured vs ground truth")
    print(f"{'quantity':34s} {'measured':>10s} {'truth':>10s} {'error':>9s} {'tol':>6s}  ")
    for r in rows:
        verdict = {True: "ok", False: "FAIL", None: ""}[r["pass"]]
        print(
            f"{r['label']:34s} {_fmt(r['measured']):>10s} {_fmt(r['truth']):>10s} "
            f"{_fmt(r['error']):>9s} {r['tolerance']:>6s}  {verdict}"
        )


def cmd_demo(args: argparse.Namespace) -> int:
    from .mrml import scene_writers
    from .output_place import atomic_folder
    from .phantom import metric_params_for
    from .pipeline import RunOptions, fill_outputs, jsonable, run_files
    from .plan import territory_for_preset

    out = Path(args.out or f"ivus-demo-{args.preset}")
    bar = ProgressBar()
    state: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        bar(0.0, f"making the {args.preset} phantom")
        phantom = _make_phantom(args)
        bar(0.1, "writing the phantom DICOM")
        paths = _write_phantom_files(phantom, tmp / "phantom")
        options = RunOptions(
            metric_params=metric_params_for(args.preset),
            seed=args.seed,
            territory=args.territory or territory_for_preset(args.preset),
            device=args.device,
        )
        result = run_files(
            pullback_path=paths["pullback"],
            centerline_path=paths["centerline"],
            options=options,
            progress=bar.scaled(0.15, 0.85),
        )
        fill_outputs(
            result, tmp, extra_writers=scene_writers(), progress=bar.scaled(0.85, 1.0), cancel=None
        )
        truth = json.loads(paths["truth_metrics"].read_text())
        rows = compare_to_truth(jsonable(result.metrics.summary), truth["summary"])
        gating = result.gating
        validation = {
            "preset": args.preset,
            "seed": args.seed,
            "comparison": jsonable(rows),
            "gating": {
                "heart_rate_bpm": {
                    "measured": jsonable(gating.heart_rate_bpm) if gating else None,
                    "truth": truth["heart_rate_bpm"],
                },
                "ed_frames_detected": int(len(gating.ed_frames)) if gating else 0,
                "ed_frames_truth": len(truth["ed_frames"]),
            },
            "all_within_tolerance": all(r["pass"] is not False for r in rows),
        }
        (tmp / "validation.json").write_text(json.dumps(validation, indent=2) + "\n", encoding="utf-8")
        state["rows"] = rows
        state["summary"] = result.metrics.summary

    try:
        atomic_folder(out, fill)
    finally:
        bar.close()
    _print_comparison(state["rows"], args.preset)
    print(f"\nplan: {_plan_line(state['summary'])}")
    print(f"\noutput: {out.absolute()}  (open report.html; render.png; scene.mrml in 3D Slicer)")
    return 0


def _parse_frames(spec: str, n_frames: int) -> np.ndarray:
    """``"0-99,120,130-140"`` to frame indices; ``all``."""
    if spec in ("all", "*"):
        return np.arange(n_frames)
    frames: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                frames.extend(range(int(a), int(b) + 1))
            elif part:
                frames.append(int(part))
    except ValueError:
        raise IVUSInputError(f"--frames {spec!r}: not a frame list; use e.g. 0-99,120 or all or ed") from None
    bad = [f for f in frames if not 0 <= f < n_frames]
    if bad:
        raise IVUSInputError(
            f"--frames {spec!r}: frame {bad[0]} is outside 0-{n_frames - 1}; the pullback has {n_frames} frames"
        )
    return np.unique(np.asarray(frames, dtype=int))


def cmd_segment(args: argparse.Namespace) -> int:
    from .gating import gate_pullback
    from .io.contours import write_contours_json
    from .pipeline import RunOptions, read_pullback_any, rhythm_doubt
    from .segmentation import segment_pullback

    check_acquisition_options(args)
    options = RunOptions(pixel_spacing_mm=args.pixel_spacing, frame_rate_hz=args.frame_rate)
    out = Path(args.out)
    if out.is_dir():
        raise input_error(out, "--out", "is a folder", "give a file name such as contours.json")
    gated = args.frames in (None, "ed")
    pullback = read_pullback_any(args.pullback, options=options, require_timing=gated)
    keyframes = None
    if args.keyframes is not None:
        from .io.keyframes import read_keyframes

        keyframes = read_keyframes(args.keyframes, pullback)
    bar = ProgressBar()
    try:
        if gated:
            gating = gate_pullback(pullback, method="image", progress=bar.scaled(0.0, 0.2))
            doubt = rhythm_doubt(pullback, gating)
            frames = np.asarray(gating.selected_frames)
            ed = set(int(i) for i in gating.ed_frames)
        else:
            frames, ed, doubt = _parse_frames(args.frames, pullback.n_frames), set(), ""
        contours = segment_pullback(pullback, frames, progress=bar.scaled(0.2, 1.0), keyframes=keyframes)
    finally:
        bar.close()
    contours = contours.with_frames(
        tuple(replace(f, phase="ED") if f.index in ed else f for f in contours.frames)
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        write_contours_json(contours, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    edited = sum(f.source == "edited" for f in contours.frames)
    kept = (
        f" ({edited} keyframe{'s' * (edited != 1)} kept, the others propagated from them)" if edited else ""
    )
    print(f"{len(contours.frames)} frames segmented{kept} -> {out}")
    if doubt:
        print(f"note: {doubt}")
    return 0


def _print_evaluation(summary: dict[str, Any]) -> None:
    print(f"{'border':8s} {'measure':28s} {'mean':>9s} {'std':>9s}")
    for border, measures in summary.items():
        if not isinstance(measures, dict):
            continue
        for name, stats in measures.items():
            if isinstance(stats, dict):
                print(
                    f"{border:8s} {name:28s} {_fmt(stats.get('mean'), 3):>9s} {_fmt(stats.get('std'), 3):>9s}"
                )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_contours
    from .io.contours import read_contours
    from .pipeline import jsonable

    check_acquisition_options(args)
    spacing = (args.pixel_spacing, args.pixel_spacing) if args.pixel_spacing else None
    pred = read_contours(args.pred, pixel_spacing_mm=spacing)
    truth = read_contours(args.truth, pixel_spacing_mm=spacing)
    result = evaluate_contours(pred, truth)
    _print_evaluation(result.get("summary", result))
    if any(f.source == "edited" for f in pred.frames):
        # keyframes are the reference's own borders: what propagation achieved is on the others
        others = pred.with_frames(tuple(f for f in pred.frames if f.source != "edited"))
        result["summary_without_keyframes"] = evaluate_contours(others, truth)["summary"]
        print("\nwithout the keyframes (frames whose source is edited):")
        _print_evaluation(result["summary_without_keyframes"])
    if args.out:
        Path(args.out).write_text(json.dumps(jsonable(result), indent=2) + "\n", encoding="utf-8")
    return 0


# ---------------------------------------------------------------------------------------------
# batch: the command line of the cohort engine (batch.py)


class BatchProgress:
    """Prints one line per finished case: done, failed, remaining, rate (cases computed per minute)."""

    def __init__(self, stream: Any = None):
        self._stream = stream or sys.stderr
        self._t0 = time.perf_counter()

    def __call__(self, outcome: Any, result: Any, n_cases: int) -> None:
        finished = len(result.outcomes)
        elapsed_min = (time.perf_counter() - self._t0) / 60.0
        rate = result.computed / elapsed_min if elapsed_min > 0 else 0.0
        what = "reused" if outcome.reused else ("done" if outcome.status == "ok" else "FAILED")
        tail = f": {outcome.message}" if outcome.status == "failed" else f" ({outcome.seconds:.1f} s)"
        print(
            f"[{finished}/{n_cases}] {outcome.case_id} {what}{tail} | done {finished - result.failed}, "
            f"failed {result.failed}, remaining {n_cases - finished}, {rate:.1f} cases/min",
            file=self._stream,
            flush=True,
        )


def cmd_batch(args: argparse.Namespace) -> int:
    """``ivus-reconstruct batch``: exit 0 when every case succeeded, 1 when a case had an internal
    error, 2 when cases failed on bad input (or the manifest is bad), 130 when interrupted."""
    from .batch import exit_code, prepare_batch_dir, read_manifest, run_batch, start_client
    from .dependencies import require_optional

    require_optional("distributed", "distributed", "A cohort run (ivus-reconstruct batch, on Dask)")
    cases = read_manifest(args.manifest)
    out = Path(args.out).absolute()
    prepare_batch_dir(out)
    if args.scheduler and args.workers is not None:
        print("batch: --workers is ignored with --scheduler (the cluster has its own workers)", file=sys.stderr)
    client, cluster, where = start_client(
        scheduler=args.scheduler,
        workers=args.workers,
        n_cases=len(cases),
        debug=bool(getattr(args, "debug", False)),
    )
    try:
        info = client.scheduler_info()
        print(
            f"batch: {len(cases)} case(s) on {where} ({len(info.get('workers', {}))} worker(s) now) -> {out}",
            file=sys.stderr,
        )
        if "dashboard" in (info.get("services") or {}):
            print(f"batch: Dask dashboard {client.dashboard_link}", file=sys.stderr)
        result = run_batch(
            cases,
            out,
            client=client,
            force=args.force,
            report=BatchProgress(),
            manifest=str(Path(args.manifest).absolute()),
        )
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    minutes = result.elapsed_s / 60.0
    rate = result.computed / minutes if minutes > 0 else 0.0
    reused = sum(o.reused for o in result.outcomes.values())
    print(
        f"batch: {result.computed} computed, {reused} reused, {result.failed} failed, "
        f"{len(cases) - len(result.outcomes)} not run; {rate:.1f} cases/min; cohort: {out / 'cohort.csv'}, "
        f"{out / 'index.html'}",
        file=sys.stderr,
    )
    if result.interrupted:
        print("ivus-reconstruct: interrupted; finished cases are kept: rerun the same command to do the rest",
              file=sys.stderr)  # fmt: skip
    return exit_code(result)


def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "batch",
        help="reconstruct a cohort listed in a manifest, on a local or existing Dask cluster",
        description=(
            "Run every case of MANIFEST (CSV or JSON: id, pullback, centerline, contours, landmarks, "
            "pixel_spacing, pullback_speed, frame_rate, start_mm, centerline_order, align, mirror, gating, territory; "
            "paths relative to the manifest) and write DIR/cases/<id>/, DIR/cohort.csv, cohort.json, "
            "index.html. Reruns skip finished cases whose inputs are unchanged."
        ),
    )
    p.add_argument("manifest", metavar="MANIFEST", help="CSV or JSON list of cases")
    p.add_argument("--out", metavar="DIR", required=True, help="batch output folder")
    p.add_argument(
        "--workers", type=int, metavar="N", help="local worker processes (default: cores, at most cases)"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use a running Dask cluster, e.g. tcp://10.0.0.5:8786 (workers must see MANIFEST's files and DIR "
        "at the same paths; start them with --nthreads 1)",
    )
    p.add_argument("--force", action="store_true", help="recompute cases that are already finished")
    p.set_defaults(func=cmd_batch)
    return p


# ---------------------------------------------------------------------------------------------
# parser


def _add_acquisition(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("acquisition (override the DICOM tags)")
    g.add_argument("--pixel-spacing", type=float, metavar="MM", help="in-plane pixel spacing in mm")
    g.add_argument("--pullback-speed", type=float, metavar="MM_S", help="motorised pullback speed in mm/s")
    g.add_argument("--frame-rate", type=float, metavar="FPS", help="frames per second")


def _add_phantom_options(p: argparse.ArgumentParser, *, required_preset: bool) -> None:
    if required_preset:
        p.add_argument("--preset", choices=PRESET_NAMES, required=True)
    else:
        p.add_argument("--preset", choices=PRESET_NAMES, default="coronary", help="default: coronary")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--length-mm", type=float, help="pullback length in mm (default: the preset's)")
    p.add_argument("--size-px", type=int, help="frame size in pixels (default: the preset's)")
    p.add_argument(
        "--speckle", choices=("rotational", "phased"), help="40-60 MHz rotational or 20 MHz phased-array look"
    )
    p.add_argument(
        "--side-branch",
        action="store_true",
        help="open a side branch a quarter of the way along (the truth keeps the main lumen closed)",
    )
    g = p.add_argument_group("realism (phantom appearance; the truth stays exact)")
    g.add_argument(
        "--realistic",
        action="store_true",
        help="grey levels and speckle tuned to real frames of the --speckle regime (20 or 40-60 MHz)",
    )
    g.add_argument(
        "--echolucent-plaque",
        type=float,
        metavar="DEG",
        help="an echolucent lipid pool, darker than blood, over DEG degrees of the thickest plaque",
    )
    g.add_argument(
        "--wedged-catheter",
        action="store_true",
        help="in the narrowings the lumen closes onto the catheter, which lies against the wall",
    )
    g.add_argument(
        "--console-overlay",
        action="store_true",
        help="screen-export look: red FOV ring and catheter disc, banner, 1 mm dots, measurement box "
        "(phantom also writes the colour exports to screens/)",
    )
    g.add_argument(
        "--console-offset-px",
        metavar="ROW,COL",
        help="move the catheter centre this many pixels off the image centre (screen exports)",
    )


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    from .plan import TERRITORIES

    g = p.add_argument_group("treatment plan (a suggestion for research and teaching)")
    g.add_argument(
        "--territory",
        choices=TERRITORIES,
        help="vessel territory of the plan (default: the preset's; for run: coronary, or a vein when analysed as one)",
    )
    g.add_argument(
        "--device", metavar="TYPE", help="device type of the territory (default: its first, see docs/plan.md)"
    )


def _add_angio_geometry(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--frame1", type=int, metavar="N", help="frame of XA1 (default: end-diastolic by ECG, else middle)"
    )
    p.add_argument("--frame2", type=int, metavar="N", help="frame of XA2")
    p.add_argument("--isocenter", metavar="auto|none|X,Y,Z", help="isocentre offset of view 2 (mm, LPS)")
    p.add_argument(
        "--reverse-mismatched", action="store_true", help="reverse a curve traced in the other direction"
    )


def _add_angio(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("centerline from angiography (instead of --centerline)")
    g.add_argument(
        "--angio", nargs="+", metavar="XA", help="two XA DICOM projections (one: planar, foreshortened)"
    )
    g.add_argument(
        "--angio-curves", nargs="+", metavar="CURVE", help="the vessel traced on each, distal end first"
    )
    _add_angio_geometry(g)


def _add_keyframes(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--keyframes",
        metavar="FILE",
        help="borders corrected on some frames (any contour format; lumen, vessel or both): kept exactly, "
        "they guide the segmentation of the other frames",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivus-reconstruct",
        description="IVUS pullback to a 3D vessel: gating, segmentation, co-registration, meshes, metrics.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="make a realistic phantom and reconstruct it, with a truth table")
    _add_phantom_options(p, required_preset=False)
    p.add_argument("--out", metavar="DIR", help="output folder (default: ivus-demo-PRESET)")
    _add_plan_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("phantom", help="write a synthetic pullback, centerline and ground truth")
    _add_phantom_options(p, required_preset=True)
    p.add_argument("--out", metavar="DIR", required=True)
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser("run", help="reconstruct a pullback")
    p.add_argument(
        "pullback", nargs="?", metavar="PULLBACK", help="DICOM file or folder, frame folder, NRRD/NIfTI/MHA"
    )
    p.add_argument("--centerline", metavar="FILE", help="markups JSON, VMTK .vtp/.vtk, or CSV/TXT points")
    p.add_argument(
        "--contours", metavar="FILE", help="contours (native JSON, multimodars CSV, AIVUS/HolOrama JSON)"
    )
    p.add_argument("--landmarks", metavar="FILE", help="landmarks JSON or markups point list")
    _add_keyframes(p)
    _add_angio(p)
    p.add_argument("--align", choices=("catheter", "lumen-centroid"), default="catheter")
    p.add_argument("--mirror", action="store_true", help="frames seen from the other side (see README)")
    _add_acquisition(p)
    p.add_argument(
        "--start-mm", type=float, default=0.0, metavar="MM", help="arc length of frame 0 (default 0)"
    )
    p.add_argument("--centerline-order", choices=("distal-first", "proximal-first"), default="distal-first")
    p.add_argument("--gating", choices=("none", "image", "ecg"), help="default: image when segmenting")
    p.add_argument(
        "--frame-range",
        metavar="START:END",
        help="analyse only frames START..END (0-based, inclusive); default: found from the images "
        "(motionless start and end, frames inside the guiding catheter left out)",
    )
    p.add_argument("--out", metavar="DIR", default="ivus-output")
    _add_plan_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("angio", help="centerline from two X-ray angiography projections (or one, planar)")
    p.add_argument("xa1", metavar="XA1")
    p.add_argument("xa2", metavar="XA2", nargs="?", help="second projection (leave out for a single view)")
    p.add_argument(
        "--curve1", required=True, metavar="FILE", help="vessel traced on XA1 (CSV row,col px, or 2 ends)"
    )
    p.add_argument("--curve2", metavar="FILE", help="vessel traced on XA2, same direction (distal first)")
    _add_angio_geometry(p)
    p.add_argument("--out", required=True, metavar="CENTERLINE.mrk.json")
    p.set_defaults(func=cmd_angio)

    p = sub.add_parser("segment", help="segment lumen and vessel borders")
    p.add_argument("pullback", metavar="PULLBACK")
    p.add_argument("--frames", metavar="SPEC", help="ed (default), all, or a list such as 0-99,120")
    p.add_argument("--pixel-spacing", type=float, metavar="MM")
    p.add_argument("--frame-rate", type=float, metavar="FPS")
    _add_keyframes(p)
    p.add_argument("--out", metavar="CONTOURS.json", required=True)
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("evaluate", help="compare contours with a reference (Jaccard, Dice, Hausdorff, ...)")
    p.add_argument("--pred", required=True, metavar="CONTOURS")
    p.add_argument("--truth", required=True, metavar="CONTOURS")
    p.add_argument("--pixel-spacing", type=float, metavar="MM", help="for contour files in pixels")
    p.add_argument("--out", metavar="JSON", help="write per-frame and summary measures")
    p.set_defaults(func=cmd_evaluate)

    add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    finally:
        from .output_place import release_run_claims

        release_run_claims()


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except IVUSInputError as exc:
        print(f"ivus-reconstruct: error: {limits.reworded(exc, limits.CLI_FIXES)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, IVUSCancelled):
        if getattr(args, "command", None) == "batch":
            print("ivus-reconstruct: interrupted; rerun the same command to finish the missing cases",
                  file=sys.stderr)  # fmt: skip
        else:
            print("ivus-reconstruct: interrupted; no output was written", file=sys.stderr)
        return 130
    except OSError as exc:
        from .output_place import output_error

        out = Path(getattr(args, "out", None) or ".")
        name = getattr(exc, "filename", None)
        if name is not None and not in_output_place(Path(name), out):
            # an input that cannot be read is not the output place's fault
            print(f"ivus-reconstruct: error: {name}: cannot be read ({exc.strerror or exc}); "
                  "check the path and its permissions", file=sys.stderr)  # fmt: skip
            return 2
        translated = output_error(exc, out)
        if translated is None:
            return _internal_error(args, exc)
        print(f"ivus-reconstruct: error: {translated}", file=sys.stderr)
        return 2
    except Exception as exc:  # an internal error: say so, keep the traceback for --debug
        return _internal_error(args, exc)


def in_output_place(path: Path, out: Path) -> bool:
    """Whether ``path`` is the output folder, inside it, or inside its partial sibling
    (``.NAME.partial-*``, where a run writes before moving its output into place)."""
    p, o = Path(os.path.abspath(path)), Path(os.path.abspath(out))
    return any(q == o or (q.parent == o.parent and q.name.startswith(f".{o.name}.partial")) for q in (p, *p.parents))


def _internal_error(args: argparse.Namespace, exc: BaseException) -> int:
    if args.debug or os.environ.get("IVUS_DEBUG"):
        traceback.print_exc()
    print(
        f"ivus-reconstruct: internal error: {type(exc).__name__}: {exc} "
        "(please report it; --debug shows the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
