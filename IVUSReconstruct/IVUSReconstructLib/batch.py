"""Cohorts on Dask (``dask.distributed``): the engine of ``ivus-reconstruct batch MANIFEST --out DIR``.

The command line (options, progress lines, exit) is in :mod:`cli`; this module takes values, not
``argparse`` namespaces, and never exits.

Each case of the manifest is one Dask task that runs exactly what ``ivus-reconstruct run`` runs
(``run_files`` -> ``write_outputs``, as ``run`` does) and writes ``DIR/cases/<id>/``
atomically, with a ``case.json`` holding the content hash of its inputs, options and software
version. A rerun skips cases whose hash matches and whose outputs are complete, so a task retried by
Dask after its worker died, or a batch rerun after Ctrl-C, does each case exactly once. Failed cases
write ``DIR/cases/<id>.error.json`` and never stop the batch. At the end ``DIR/cohort.csv``,
``DIR/cohort.json`` (median / IQR of each metric, TAVnorm with the cohort's median frame count) and
``DIR/index.html`` are written.

Output folder::

    DIR/batch.json                  manifest path, case ids, last batch id (marks DIR as a batch folder)
    DIR/cases/<id>/                 the output folder of ``run`` for the case + case.json
    DIR/cases/<id>.error.json       message, exit_category (2 input, 1 internal) of a failed case
    DIR/cohort.csv, cohort.json, index.html
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html
import io
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, limits
from .dependencies import require_optional
from .errors import IVUSCancelled, IVUSInputError, input_error, read_json_input
from .plan import TERRITORIES

__all__ = [
    "CaseSpec",
    "CaseOutcome",
    "read_manifest",
    "case_options",
    "case_hash",
    "software_digest",
    "case_complete",
    "run_case",
    "run_batch",
    "cohort_rows",
    "cohort_statistics",
    "write_cohort",
    "BatchResult",
    "prepare_batch_dir",
    "start_client",
    "exit_code",
    "COHORT_COLUMNS",
    "FILE_FIELDS",
    "OPTION_FIELDS",
]

FILE_FIELDS = ("pullback", "centerline", "contours", "landmarks", "keyframes")
# manifest column -> RunOptions field; the short names match the `run` options
_NUMBER_COLUMNS = tuple(o.column for o in limits.ACQUISITION_OPTIONS)
OPTION_FIELDS: dict[str, str] = {
    **{o.column: o.field for o in limits.ACQUISITION_OPTIONS},
    "centerline_order": "centerline_order",
    "align": "align",
    "mirror": "mirror",
    "gating": "gating",
    "territory": "territory",
}
# the long RunOptions names are accepted as column names too
_OPTION_ALIASES = {v: k for k, v in OPTION_FIELDS.items() if v != k}
_CHOICES = {
    "centerline_order": ("distal-first", "proximal-first"),
    "align": ("catheter", "lumen-centroid"),
    "gating": ("none", "image", "ecg"),
    "territory": TERRITORIES,
}
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_HASH_CHUNK = 1 << 20

# A worker started with several threads would otherwise run several cases at once; this keeps
# at most one pullback's frames in memory per worker process whatever the cluster's --nthreads.
_ONE_CASE_PER_PROCESS = threading.Lock()


@dataclass(frozen=True)
class CaseSpec:
    """One row of the manifest.

    Attributes
    ----------
    case_id : str
        Folder name of the case under ``DIR/cases``.
    files : tuple of (str, str)
        ``(role, absolute path)`` for the roles of :data:`FILE_FIELDS` that the row gives.
    options : tuple of (str, object)
        ``(manifest column, raw value)`` of the per-case options (checked by :func:`case_options`).
    manifest : str
        The manifest path, for messages.
    row : int
        1-based row (CSV line or JSON list position), for messages.
    """

    case_id: str
    files: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    manifest: str = ""
    row: int = 0

    @property
    def paths(self) -> dict[str, str]:
        return dict(self.files)


@dataclass
class CaseOutcome:
    """What happened to a case in this batch (JSON-serialisable with :meth:`to_json`)."""

    case_id: str
    status: str  # "ok", "failed" or "pending"
    reused: bool = False
    seconds: float = 0.0
    message: str | None = None
    exit_category: int | None = None
    error_type: str | None = None
    digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------------------------
# manifest


def read_manifest(path: str | Path) -> list[CaseSpec]:
    """Read a CSV or JSON manifest of cases.

    CSV: a header row with ``id`` and any of ``pullback``, ``centerline``, ``contours``,
    ``landmarks``, ``keyframes`` and the options ``pixel_spacing``, ``pullback_speed``, ``frame_rate``, ``start_mm``,
    ``centerline_order``, ``align``, ``mirror``, ``gating``, ``territory`` (empty cell = default). JSON: a list of
    such objects, or ``{"defaults": {...}, "cases": [...]}``. Paths are relative to the manifest.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of CaseSpec
        In manifest order, paths made absolute.

    Raises
    ------
    IVUSInputError
        Unreadable manifest, unknown column, missing or duplicate ``id``, a case with no input.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "MANIFEST", "does not exist", "give a CSV or JSON file listing the cases")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise input_error(
            path,
            "MANIFEST",
            f"cannot be read as UTF-8 text ({type(exc).__name__})",
            "save it as UTF-8 CSV or JSON",
        ) from None
    if path.suffix.lower() == ".json":
        doc = read_json_input(path, text=text)
        defaults: dict[str, Any] = {}
        if isinstance(doc, dict):
            defaults = doc.get("defaults") or {}
            doc = doc.get("cases")
        if (
            not isinstance(doc, list)
            or not all(isinstance(r, dict) for r in doc)
            or not isinstance(defaults, dict)
        ):
            raise input_error(
                path, "cases", "is not a list of objects", 'give [{"id": ..., "pullback": ...}, ...]'
            )
        rows = [(i + 1, {**defaults, **r}) for i, r in enumerate(doc)]
    else:
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        reader = csv.DictReader(io.StringIO("\n".join(lines)))
        if reader.fieldnames is None:
            raise input_error(path, "header", "is missing", "give a first row such as id,pullback,centerline")
        rows = [(i + 2, {k.strip(): v for k, v in r.items() if k is not None}) for i, r in enumerate(reader)]
    if not rows:
        raise input_error(path, "cases", "are missing", "list at least one case")
    known = {"id", *FILE_FIELDS, *OPTION_FIELDS, *_OPTION_ALIASES}
    base = path.parent.absolute()
    cases: list[CaseSpec] = []
    seen: set[str] = set()
    for row_no, row in rows:
        unknown = sorted(k for k in row if k not in known)
        if unknown:
            raise input_error(
                path,
                f"column {unknown[0]!r}",
                "is unknown",
                f"use id, {', '.join(FILE_FIELDS)}, {', '.join(OPTION_FIELDS)}",
            )
        case_id = str(row.get("id") or "").strip()
        if not case_id:
            raise input_error(path, f"row {row_no}: id", "is empty", "give every case a unique id")
        if not _ID_PATTERN.match(case_id):
            raise input_error(
                path,
                f"row {row_no}: id {case_id!r}",
                "is not a folder name",
                "use letters, digits, '.', '_' and '-'",
            )
        if case_id in seen:
            raise input_error(
                path, f"row {row_no}: id {case_id!r}", "is a duplicate", "give every case a unique id"
            )
        seen.add(case_id)
        files = []
        for role in FILE_FIELDS:
            value = row.get(role)
            if value is not None and str(value).strip():
                p = Path(str(value).strip()).expanduser()
                files.append((role, str(p if p.is_absolute() else base / p)))
        if not any(role in ("pullback", "contours") for role, _ in files):
            raise input_error(
                path, f"case {case_id!r}: pullback", "is empty", "give a pullback or a contours file"
            )
        options = []
        for key, value in row.items():
            name = _OPTION_ALIASES.get(key, key)
            if name in OPTION_FIELDS and value is not None and str(value).strip() != "":
                options.append((name, value))
        cases.append(CaseSpec(case_id, tuple(files), tuple(sorted(options)), str(path), row_no))
    return cases


def case_options(case: CaseSpec):
    """The :class:`~IVUSReconstructLib.pipeline.RunOptions` of a case.

    Raises
    ------
    IVUSInputError
        A value that ``run`` would reject, naming the manifest, the case and the column.
    """
    from .pipeline import RunOptions

    where = f"{case.manifest}: case {case.case_id!r}"
    kwargs: dict[str, Any] = {}
    for name, raw in case.options:
        text = str(raw).strip()
        if name in _NUMBER_COLUMNS:
            try:
                value: Any = float(raw)
            except (TypeError, ValueError):
                raise IVUSInputError(
                    f"{where}: column {name} {text!r} is not a number; give e.g. 0.5"
                ) from None
        elif name == "mirror":
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise IVUSInputError(f"{where}: column mirror {text!r} is not true/false; give true or false")
            value = lowered in ("true", "1", "yes")
        else:
            value = text
            if value not in _CHOICES[name]:
                raise IVUSInputError(
                    f"{where}: column {name} {text!r} is not one of {', '.join(_CHOICES[name])}"
                )
        kwargs[OPTION_FIELDS[name]] = value
    # the same range table as the command line and the Slicer module
    for opt in limits.ACQUISITION_OPTIONS:
        limits.check(
            opt.field, kwargs.get(opt.field), where=where, name=f"column {opt.column}",
            fix=limits.BATCH_FIXES[opt.field],
        )  # fmt: skip
    return RunOptions(**kwargs)


# --------------------------------------------------------------------------------------------
# hashing and completeness


def _file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's relative names and contents (sorted); 'missing' if absent."""
    h = hashlib.sha256()
    if path.is_file():
        files = [(path.name, path)]
    elif path.is_dir():
        files = sorted((str(p.relative_to(path)), p) for p in path.rglob("*") if p.is_file())
    else:
        return "missing"
    for name, p in files:
        h.update(name.encode() + b"\0")
        with p.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def software_digest() -> str:
    """Version plus a hash of the package's Python sources.

    An editable or patched install can change results without a version bump; such a change
    must not let a rerun reuse old outputs.
    """
    h = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return f"{__version__}+{h.hexdigest()[:16]}"


def case_hash(case: CaseSpec, options: Any | None = None) -> str:
    """Content hash of a case: its input files' bytes, its run options and the software
    (:func:`software_digest`).

    Paths do not enter the hash (a moved cohort is not recomputed); contents do.

    Parameters
    ----------
    case : CaseSpec
    options : RunOptions or None
        Default: :func:`case_options` of the case.

    Returns
    -------
    str
        64 hex digits.
    """
    options = case_options(case) if options is None else options
    doc = {
        "software": software_digest(),
        "options": options.as_json(),
        "files": {role: _file_digest(Path(p)) for role, p in case.files},
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def case_complete(case_dir: str | Path, digest: str) -> dict[str, Any] | None:
    """The ``case.json`` of a finished case whose hash is ``digest`` and whose files all exist.

    Returns
    -------
    dict or None
        None when the case must be (re)computed.
    """
    case_dir = Path(case_dir)
    record = _read_json(case_dir / "case.json")
    if record is None or record.get("hash") != digest:
        return None
    outputs = record.get("outputs") or []
    if "summary.json" not in outputs or not all((case_dir / name).exists() for name in outputs):
        return None
    return record


# --------------------------------------------------------------------------------------------
# one case (runs on a Dask worker)


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _error_path(out_dir: Path, case_id: str) -> Path:
    return out_dir / "cases" / f"{case_id}.error.json"


def record_failure(
    out_dir: str | Path, outcome: CaseOutcome, *, batch_id: str = "", detail: str | None = None
) -> None:
    """Write ``DIR/cases/<id>.error.json`` for a failed case."""
    out_dir = Path(out_dir)
    (out_dir / "cases").mkdir(parents=True, exist_ok=True)
    doc = {
        "format": "ivus-batch-error",
        "version": __version__,
        "id": outcome.case_id,
        "message": outcome.message,
        "exit_category": outcome.exit_category,
        "type": outcome.error_type,
        "hash": outcome.digest,
        "batch_id": batch_id,
        "traceback": detail,
    }
    _write_json_atomic(_error_path(out_dir, outcome.case_id), doc)


def _watch_dask_cancel(cancel: threading.Event, finished: threading.Event) -> None:
    """Set ``cancel`` when this Dask task is cancelled or its worker closes (Ctrl-C of the batch).

    Dask cannot interrupt a running task; the pipeline checks ``cancel`` between its steps, so a
    cancelled case stops within a frame or two instead of running to the end. Outside a Dask
    worker this does nothing.
    """
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
        key = thread_state.key
    except (ImportError, ValueError, AttributeError):
        return

    def watch() -> None:
        while not finished.wait(0.2):
            ts = worker.state.tasks.get(key)
            # a hard close (the cluster shut down after Ctrl-C), not a graceful retire that lets cases finish
            closing = worker.status.name in ("closing", "closed", "failed")
            if ts is None or ts.state in ("cancelled", "released", "forgotten") or closing:
                cancel.set()
                return

    threading.Thread(target=watch, name="ivus-case-cancel-watch", daemon=True).start()


def run_case(case: CaseSpec, out_dir: str, *, force: bool = False, batch_id: str = "") -> dict[str, Any]:
    """Reconstruct one case into ``out_dir/cases/<id>/`` exactly as ``ivus-reconstruct run`` would.

    Idempotent: when the case folder already holds complete outputs for the same content hash
    (written by an earlier batch, or by an earlier attempt of this task in this batch ``batch_id``
    even with ``force``), nothing is recomputed. The folder appears by one atomic rename.

    Parameters
    ----------
    case : CaseSpec
    out_dir : str
        The batch folder (``DIR``).
    force : bool
        Recompute even when an earlier batch finished the case.
    batch_id : str
        Identifies this batch, so that a retry within the batch is not recomputed under ``force``.

    Returns
    -------
    dict
        :class:`CaseOutcome` fields; errors are returned (and written to ``<id>.error.json``),
        never raised.
    """
    from .mrml import scene_writers
    from .pipeline import run_files, write_outputs

    out = Path(out_dir)
    case_dir = out / "cases" / case.case_id
    t0 = time.perf_counter()
    outcome = CaseOutcome(case.case_id, "failed")
    cancel, finished = threading.Event(), threading.Event()
    with _ONE_CASE_PER_PROCESS:
        _watch_dask_cancel(cancel, finished)
        try:
            options = case_options(case)
            outcome.digest = digest = case_hash(case, options)
            record = case_complete(case_dir, digest)
            if record is not None and (not force or record.get("batch_id") == batch_id):
                outcome.status, outcome.reused = "ok", record.get("batch_id") != batch_id
            else:
                paths = case.paths
                result = run_files(
                    pullback_path=paths.get("pullback"),
                    centerline_path=paths.get("centerline"),
                    contours_path=paths.get("contours"),
                    landmarks_path=paths.get("landmarks"),
                    keyframes_path=paths.get("keyframes"),
                    options=options,
                    cancel=cancel,
                )

                def write_case_record(tmp: Path) -> None:
                    # last writer: lists every file of the folder, so completeness can be checked
                    outputs = sorted(p.name for p in tmp.iterdir()) + ["case.json"]
                    doc = {
                        "format": "ivus-batch-case",
                        "version": __version__,
                        "id": case.case_id,
                        "hash": digest,
                        "software": software_digest(),
                        "batch_id": batch_id,
                        "files": {role: p for role, p in case.files},
                        "options": options.as_json(),
                        "outputs": outputs,
                        "host": os.uname().nodename,
                        "pid": os.getpid(),
                    }
                    (tmp / "case.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")

                write_outputs(
                    result, case_dir, extra_writers=[*scene_writers(), write_case_record], cancel=cancel
                )
                del result
                outcome.status = "ok"
            _error_path(out, case.case_id).unlink(missing_ok=True)
        except IVUSCancelled:
            outcome.status = "pending"  # stopped by the user: the next batch does it
        except IVUSInputError as exc:
            message = limits.reworded(exc, limits.BATCH_FIXES)
            outcome.message, outcome.exit_category, outcome.error_type = message, 2, type(exc).__name__
            record_failure(out, outcome, batch_id=batch_id)
        except Exception as exc:  # an internal error of one case must not stop the cohort
            outcome.message = f"internal error: {type(exc).__name__}: {exc}"
            outcome.exit_category, outcome.error_type = 1, type(exc).__name__
            record_failure(out, outcome, batch_id=batch_id, detail=traceback.format_exc())
        finally:
            finished.set()
    outcome.seconds = round(time.perf_counter() - t0, 3)
    return outcome.to_json()


# --------------------------------------------------------------------------------------------
# cohort table and statistics

COHORT_COLUMNS = (
    "id",
    "status",
    "reused",
    "exit_category",
    "error",
    "n_frames",
    "lumen_volume_mm3",
    "vessel_volume_mm3",
    "plaque_volume_mm3",
    "pav_percent",
    "tav_norm_mm3",
    "tav_norm_single_pullback_mm3",
    "mean_plaque_area_mm2",
    "mla_area_mm2",
    "mla_frame",
    "mla_arc_length_mm",
    "area_stenosis_largest_percent",
    "area_stenosis_proximal_percent",
    "area_stenosis_distal_percent",
    "report",
)
METRIC_COLUMNS = COHORT_COLUMNS[5:-1]


def _get(doc: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(k)
    return doc


def _mean_plaque_area_mm2(case_dir: Path, summary: dict[str, Any]) -> float | None:
    """Mean (EEM - lumen) area over the frames of the region of interest (the TAVnorm numerator / n)."""
    try:
        with (case_dir / "frames.csv").open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    lo, hi = _get(summary, "roi", "start_mm"), _get(summary, "roi", "end_mm")
    plaque = []
    for r in rows:
        try:
            s, lumen, vessel = (
                float(r["arc_length_mm"]),
                float(r["lumen_area_mm2"]),
                float(r["vessel_area_mm2"]),
            )
        except (KeyError, ValueError):
            continue  # no vessel contour on this frame (empty cell)
        # frames.csv keeps 6 significant digits: compare the ROI bounds with a tolerance
        if lo is not None and hi is not None and not (lo - 1e-4 <= s <= hi + 1e-4):
            continue
        plaque.append(vessel - lumen)
    return float(np.mean(plaque)) if plaque else None


def cohort_rows(
    cases: Sequence[CaseSpec], out_dir: str | Path, outcomes: dict[str, CaseOutcome]
) -> tuple[list[dict[str, Any]], int | None]:
    """One row per case (manifest order) and the cohort's median analysed frame count.

    ``tav_norm_mm3`` follows METRICS.md for cohorts: sum(EEM - lumen) / n_frames x the median
    n_frames of the cohort's successful cases; ``tav_norm_single_pullback_mm3`` is the value of the
    case's own summary.json.
    """
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    for case in cases:
        oc = outcomes.get(case.case_id) or CaseOutcome(case.case_id, "pending")
        row: dict[str, Any] = {c: None for c in COHORT_COLUMNS}
        row.update(id=case.case_id, status=oc.status, reused=oc.reused if oc.status == "ok" else None)
        if oc.status == "failed":
            row.update(exit_category=oc.exit_category, error=oc.message)
        case_dir = out_dir / "cases" / case.case_id
        summary = _read_json(case_dir / "summary.json") if oc.status == "ok" else None
        if summary is not None:
            row.update(
                n_frames=summary.get("n_frames") or _get(summary, "inputs", "analysed_frames", "value"),
                lumen_volume_mm3=_get(summary, "volumes_mm3", "lumen"),
                vessel_volume_mm3=_get(summary, "volumes_mm3", "vessel"),
                plaque_volume_mm3=_get(summary, "volumes_mm3", "plaque"),
                pav_percent=summary.get("pav_percent"),
                tav_norm_single_pullback_mm3=summary.get("tav_norm_mm3"),
                mean_plaque_area_mm2=_mean_plaque_area_mm2(case_dir, summary),
                mla_area_mm2=_get(summary, "mla", "area_mm2"),
                mla_frame=_get(summary, "mla", "frame"),
                mla_arc_length_mm=_get(summary, "mla", "arc_length_mm"),
                area_stenosis_largest_percent=_get(summary, "area_stenosis_percent", "largest"),
                area_stenosis_proximal_percent=_get(summary, "area_stenosis_percent", "proximal"),
                area_stenosis_distal_percent=_get(summary, "area_stenosis_percent", "distal"),
                report=f"cases/{case.case_id}/report.html",
            )
        rows.append(row)
    counts = [r["n_frames"] for r in rows if r["status"] == "ok" and r["n_frames"]]
    median_frames = int(round(float(np.median(counts)))) if counts else None
    for r in rows:
        if median_frames is not None and r["mean_plaque_area_mm2"] is not None:
            r["tav_norm_mm3"] = r["mean_plaque_area_mm2"] * median_frames
    return rows, median_frames


def cohort_statistics(
    rows: Sequence[dict[str, Any]], *, median_n_frames: int | None = None
) -> dict[str, Any]:
    """Median, quartiles, IQR, min, max and mean of every metric column over the successful cases.

    Returns
    -------
    dict
        ``{"n_cases", "n_ok", "n_failed", "n_pending", "median_n_frames", "statistics": {column:
        {"n", "median", "q1", "q3", "iqr", "min", "max", "mean"}}}``; statistics of a column with
        no value are None.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    stats: dict[str, Any] = {}
    for col in METRIC_COLUMNS:
        values = np.array([float(r[col]) for r in ok if r.get(col) is not None], dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            stats[col] = None
            continue
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        stats[col] = {
            "n": int(values.size),
            "median": float(med),
            "q1": float(q1),
            "q3": float(q3),
            "iqr": float(q3 - q1),
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.mean()),
        }
    return {
        "n_cases": len(rows),
        "n_ok": len(ok),
        "n_failed": sum(r["status"] == "failed" for r in rows),
        "n_pending": sum(r["status"] == "pending" for r in rows),
        "median_n_frames": median_n_frames,
        "tav_norm_definition": (
            "sum(EEM - lumen) / n_frames x cohort median n_frames "
            f"({median_n_frames}) over each case's region of interest (METRICS.md)"
        ),
        "statistics": stats,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if np.isfinite(value) else ""
    return str(value)


def _index_html(rows: Sequence[dict[str, Any]], doc: dict[str, Any]) -> str:
    e = html.escape
    shown = ("n_frames", "lumen_volume_mm3", "vessel_volume_mm3", "pav_percent", "tav_norm_mm3", "mla_area_mm2",
             "area_stenosis_largest_percent")  # fmt: skip
    head = "".join(f"<th>{e(c)}</th>" for c in ("case", "status", *shown, "error"))
    body = []
    for r in rows:
        name = e(r["id"])
        link = f'<a href="{e(r["report"])}">{name}</a>' if r.get("report") else name
        cells = "".join(f"<td>{e(_cell(r[c]))}</td>" for c in shown)
        body.append(f'<tr class="{e(r["status"])}"><td>{link}</td><td>{e(r["status"])}</td>{cells}'
                    f"<td>{e(_cell(r['error']))}</td></tr>")  # fmt: skip
    stat_rows = []
    for col, s in doc["statistics"].items():
        if s is None:
            continue
        stat_rows.append(
            f"<tr><td>{e(col)}</td><td>{s['n']}</td><td>{_cell(s['median'])}</td><td>{_cell(s['q1'])}</td>"
            f"<td>{_cell(s['q3'])}</td><td>{_cell(s['iqr'])}</td></tr>"
        )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>IVUSReconstruct cohort</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "tr.failed{background:#fdd}tr.pending{background:#eee}</style></head><body>\n"
        f"<h1>IVUSReconstruct cohort</h1><p>{doc['n_cases']} cases: {doc['n_ok']} ok, {doc['n_failed']} failed, "
        f"{doc['n_pending']} pending. Software {e(__version__)}. TAVnorm: {e(doc['tav_norm_definition'])}. "
        'Tables: <a href="cohort.csv">cohort.csv</a>, <a href="cohort.json">cohort.json</a>.</p>\n'
        f"<h2>Cases</h2><table><tr>{head}</tr>\n" + "\n".join(body) + "</table>\n"
        "<h2>Cohort statistics</h2><table><tr><th>metric</th><th>n</th><th>median</th><th>Q1</th><th>Q3</th>"
        "<th>IQR</th></tr>\n" + "\n".join(stat_rows) + "</table>\n</body></html>\n"
    )


def write_cohort(
    cases: Sequence[CaseSpec], out_dir: str | Path, outcomes: dict[str, CaseOutcome]
) -> dict[str, Any]:
    """Write ``cohort.csv``, ``cohort.json`` and ``index.html`` into ``out_dir`` (each atomically).

    Returns
    -------
    dict
        The content of ``cohort.json``.
    """
    out_dir = Path(out_dir)
    rows, median_frames = cohort_rows(cases, out_dir, outcomes)
    doc = {"format": "ivus-cohort", "version": __version__}
    doc.update(cohort_statistics(rows, median_n_frames=median_frames))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COHORT_COLUMNS)
    writer.writerows([[_cell(r[c]) for c in COHORT_COLUMNS] for r in rows])
    for name, text in (("cohort.csv", buf.getvalue()), ("index.html", _index_html(rows, doc))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out_dir / name)
    _write_json_atomic(out_dir / "cohort.json", doc)
    return doc


# --------------------------------------------------------------------------------------------
# the batch (client side)


@dataclass
class BatchResult:
    """Outcome of :func:`run_batch`."""

    outcomes: dict[str, CaseOutcome] = field(default_factory=dict)
    cohort: dict[str, Any] = field(default_factory=dict)
    batch_id: str = ""
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def computed(self) -> int:
        return sum(o.status == "ok" and not o.reused for o in self.outcomes.values())

    @property
    def failed(self) -> int:
        return sum(o.status == "failed" for o in self.outcomes.values())


def _remove_partials(cases_dir: Path) -> None:
    """Partial folders of attempts that died (a killed worker) never become outputs: drop them.

    Only folders whose claim no live process holds (output_place.py): a case still being written
    by a worker of another batch on the same folder is left alone."""
    from .output_place import remove_stale_partials

    if cases_dir.is_dir():
        remove_stale_partials(cases_dir)


def prepare_batch_dir(out_dir: Path) -> None:
    """Refuse a non-empty ``--out`` folder that is not an earlier batch output."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise input_error(out_dir, "--out", "is a file", "give a folder path")
        if any(out_dir.iterdir()) and not (out_dir / "batch.json").exists():
            raise input_error(
                out_dir, "--out", "is a non-empty folder that is not a batch output", "choose a new folder"
            )


def run_batch(
    cases: Sequence[CaseSpec],
    out_dir: str | Path,
    *,
    client: Any,
    force: bool = False,
    report: Callable[[CaseOutcome, BatchResult, int], None] | None = None,
    manifest: str | None = None,
) -> BatchResult:
    """Run every case on a Dask client, then write the cohort table, statistics and index page.

    Parameters
    ----------
    cases : sequence of CaseSpec
    out_dir : path
        The batch folder; must be reachable at the same path from every worker.
    client : distributed.Client
    force : bool
        Recompute cases that an earlier batch finished.
    report : callable(outcome, result so far, n_cases) or None
        Called on the client as each case finishes (progress display).
    manifest : str or None
        Recorded in ``batch.json``.

    Returns
    -------
    BatchResult
        ``interrupted`` is True when a KeyboardInterrupt stopped the batch: the futures are
        cancelled, the cohort files list the unfinished cases as ``pending`` and the
        KeyboardInterrupt is not re-raised.
    """
    from distributed import as_completed

    out = Path(out_dir).absolute()
    prepare_batch_dir(out)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    _remove_partials(out / "cases")
    batch_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    _write_json_atomic(
        out / "batch.json",
        {"format": "ivus-batch", "version": __version__, "manifest": manifest, "batch_id": batch_id,
         "force": force, "cases": [c.case_id for c in cases]},
    )  # fmt: skip
    result = BatchResult(batch_id=batch_id)
    t0 = time.perf_counter()
    futures = {}
    try:
        for case in cases:
            fut = client.submit(
                run_case, case, str(out), force=force, batch_id=batch_id, key=f"ivus-case-{case.case_id}-{batch_id}",
                pure=False,
            )  # fmt: skip
            futures[fut.key] = (fut, case)
        for fut in as_completed([f for f, _ in futures.values()]):
            case = futures[fut.key][1]
            try:
                outcome = CaseOutcome(**fut.result())
            except Exception as exc:  # the task itself never raises: its workers died (KilledWorker)
                outcome = CaseOutcome(
                    case.case_id, "failed", message=_worker_death_message(exc),
                    exit_category=1, error_type=type(exc).__name__,
                )  # fmt: skip
                record_failure(out, outcome, batch_id=batch_id)
            fut.release()
            result.outcomes[case.case_id] = outcome
            if report is not None:
                report(outcome, result, len(cases))
    except KeyboardInterrupt:
        result.interrupted = True
        client.cancel([f for f, _ in futures.values()], force=True)
    result.elapsed_s = time.perf_counter() - t0
    if not result.interrupted:
        _remove_partials(out / "cases")
    else:
        _finished_on_disk(cases, out, result)
    result.cohort = write_cohort(cases, out, result.outcomes)
    return result


def _worker_death_message(exc: Exception) -> str:
    """Why a case has no result: its worker processes died (e.g. killed for memory)."""
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        import dask

        tries = int(dask.config.get("distributed.scheduler.allowed-failures", 3)) + 1
        return (
            f"its worker process died {tries} times while running this case (killed from outside, most "
            "often by the out-of-memory killer); the other cases are unaffected: rerun the batch to retry "
            "only this case, with fewer --workers if memory is short"
        )
    return f"internal error: {type(exc).__name__}: {exc}"


def _finished_on_disk(cases: Sequence[CaseSpec], out: Path, result: BatchResult) -> None:
    """After an interrupt: cases whose folder was renamed into place before their result reached
    the client are finished; count them as such in the cohort files."""
    for case in cases:
        if case.case_id in result.outcomes:
            continue
        try:
            digest = case_hash(case)
        except (IVUSInputError, OSError):
            continue
        record = case_complete(out / "cases" / case.case_id, digest)
        if record is not None:
            reused = record.get("batch_id") != result.batch_id
            result.outcomes[case.case_id] = CaseOutcome(case.case_id, "ok", reused=reused, digest=digest)


def _ignore_sigint_plugin() -> Any:
    """A worker plugin that makes local worker processes ignore SIGINT.

    Ctrl-C in a terminal reaches the whole process group; the batch process alone should handle it
    (cancel, close the cluster, exit 130) instead of every worker dying with a traceback. Plugins
    are re-applied to workers the nanny restarts.
    """
    from distributed import WorkerPlugin

    class IgnoreSigint(WorkerPlugin):
        name = "ivus-ignore-sigint"

        def setup(self, worker: Any) -> None:
            import signal

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def _dashboard_available() -> bool:
    try:
        import bokeh  # noqa: F401  (the Dask dashboard needs it)
    except ImportError:
        return False
    return True


def start_client(
    *, scheduler: str | None = None, workers: int | None = None, n_cases: int = 1, debug: bool = False
) -> tuple[Any, Any, str]:
    """A Dask client: connected to a running scheduler, or on a new local cluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://HOST:PORT``); None starts a local cluster.
    workers : int or None
        Local worker processes (default: cores, at most ``n_cases``); ignored with ``scheduler``.
    n_cases : int
        Cases of the batch (no more local workers than cases).
    debug : bool
        Let the cluster log warnings (errors only otherwise).

    Returns
    -------
    client : distributed.Client
    cluster : distributed.LocalCluster or None
        To close after the client; None with ``scheduler``.
    where : str
        The cluster in words, for messages.

    Raises
    ------
    IVUSInputError
        ``distributed`` missing, ``workers`` < 1, or no scheduler at ``scheduler``.
    """
    require_optional("distributed", "distributed", "A cohort run (ivus-reconstruct batch, on Dask)")
    import dask
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise IVUSInputError(f"--workers {workers}: must be at least 1")
    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except OSError as exc:
            raise IVUSInputError(
                f"--scheduler {scheduler}: cannot connect ({exc}); start `dask scheduler` and "
                "`dask worker ADDRESS --nthreads 1` first, or leave --scheduler out for a local cluster"
            ) from None
        return client, None, f"Dask scheduler {scheduler}"
    n_workers = workers or min(os.cpu_count() or 1, n_cases)
    # a worker killed mid-case is replaced by its nanny and the case retried this many times
    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0" if _dashboard_available() else None,
            silence_logs=logging.WARNING if debug else logging.ERROR,
            # Mesa's software renderer starts a thread per core in every worker; share the
            # cores instead of oversubscribing them (Dask already sets OMP/MKL threads to 1)
            env={"LP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n_workers))},
        )
    try:
        client = Client(cluster)
        client.register_plugin(_ignore_sigint_plugin())
    except BaseException:
        cluster.close()
        raise
    return client, cluster, f"local Dask cluster of {n_workers} worker process(es)"


def exit_code(result: BatchResult) -> int:
    """Exit code of a batch: 130 interrupted, 1 when a case had an internal error, 2 when cases
    failed on bad input, else 0."""
    if result.interrupted:
        return 130
    categories = {o.exit_category for o in result.outcomes.values() if o.status == "failed"}
    return 1 if 1 in categories else (2 if 2 in categories else 0)
