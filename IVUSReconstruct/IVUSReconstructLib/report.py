"""Self-contained HTML report of a reconstruction.

One file, no external requests: inline CSS (with print rules for A4 / Letter), images as base64
``data:`` URIs and plots as inline SVG made with matplotlib's Agg-free SVG back end. Every number
comes from the ``summary`` / ``per_frame`` / ``lesions`` given, formatted by :func:`format_value`
at a precision chosen from the key's unit suffix, and carries a ``data-key`` attribute naming its
place in the summary, so a test can check the page against ``summary.json``.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .dependencies import optional_missing
from .io import release_pages

__all__ = [
    "DISCLAIMER",
    "PLAN_NOTE",
    "build_report",
    "decimals_for",
    "format_value",
    "frame_gallery",
    "review_frames",
    "review_gallery",
    "keyframe_gallery",
    "keyframe_indices",
    "lmode_figure",
    "structure_figure",
    "pullback_figures",
]

DISCLAIMER = "For research use only; not for diagnosis."

# Decimals by unit suffix of the key (the first suffix that matches wins).
_DECIMALS: tuple[tuple[str, int], ...] = (
    ("_mm3", 1),
    ("_mm2", 2),
    ("_percent", 1),
    ("_mm", 2),
    ("_deg", 0),
    ("_bpm", 0),
    ("_mm_s", 2),
    ("_hz", 1),
    ("_s", 2),
    ("_ratio", 2),
)

# Keys whose leaf name carries no unit but whose parent does (volumes_mm3.lumen, ...).
_UNIT_OF_PARENT = ("volumes_mm3", "area_stenosis_percent", "diameter_stenosis_percent")

_UNITS = (
    ("_mm3", "mm³"),
    ("_mm2", "mm²"),
    ("_percent", "%"),
    ("_mm_s", "mm/s"),
    ("_mm", "mm"),
    ("_deg", "°"),
    ("_bpm", "bpm"),
    ("_hz", "Hz"),
    ("_s", "s"),
)


def decimals_for(key: str) -> int | None:
    """Decimals shown for a number stored under ``key`` (a dotted path).

    Returns 0 for frame numbers and counts, the decimals of the unit suffix (``_mm2`` 2,
    ``_mm3`` 1, ``_percent`` 1, ...), or None for unitless values, shown with 4 significant
    digits.

    Parameters
    ----------
    key : str
        e.g. ``"mla.area_mm2"``, ``"volumes_mm3.lumen"``, ``"references.proximal.frame"``.
    """
    parts = key.split(".")
    leaf = parts[-1]
    if leaf in ("frame", "frames", "n_frames", "count", "id") or leaf.endswith(
        ("_frame", "_frames", "frame_index", "_count")
    ):
        return 0
    if any("spacing" in part for part in parts):
        return None  # sub-millimetre pixel sizes need their significant digits
    for name in (leaf, *reversed(parts[:-1])):
        for suffix, decimals in _DECIMALS:
            if name.endswith(suffix):
                return decimals
        if name in _UNIT_OF_PARENT:
            break
    return None


def number_format(key: str) -> str:
    """The format spec (``".2f"``, ``".4g"``, ...) used for a float stored under ``key``."""
    decimals = decimals_for(key)
    return ".4g" if decimals is None else f".{decimals}f"


def unit_for(key: str) -> str:
    """Unit text of the value stored under ``key`` ('' when it has none)."""
    parts = key.split(".")
    for name in (parts[-1], *reversed(parts[:-1])):
        for suffix, unit in _UNITS:
            if name.endswith(suffix):
                return unit
    return ""


def format_value(value: Any, key: str = "") -> str:
    """The one formatter of every value in the report.

    Numbers get the decimals of :func:`decimals_for` (integers for frame numbers), booleans
    ``yes`` / ``no``, None ``—``, sequences are joined with ``", "``; the result is plain text
    (escape it before putting it into HTML).

    Parameters
    ----------
    value : Any
    key : str
        Dotted path of the value, which decides its precision.
    """
    if value is None:
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if not math.isfinite(number):
            return "—"
        text = format(number, number_format(key))
        # "-0.0" reads as a sign error; it is zero at the precision shown.
        return text.lstrip("-") if float(text) == 0.0 else text
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v, key) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v, f'{key}.{k}')}" for k, v in value.items())
    return str(value)


def _cell(value: Any, key: str, *, tag: str = "td") -> str:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )
    attrs = f' data-key="{html.escape(key)}"' if key else ""
    if numeric:
        attrs += ' class="num"'
    return f"<{tag}{attrs}>{html.escape(format_value(value, key))}</{tag}>"


def _label(key: str) -> str:
    """Readable name of a key: ``lumen_area_mm2`` -> ``Lumen area (mm²)``."""
    unit = ""
    name = key
    for suffix, text in _UNITS:
        if name.endswith(suffix):
            unit, name = text, name[: -len(suffix)]
            break
    words = name.replace("_", " ").strip()
    words = {"pav": "PAV", "tav norm": "TAVnorm", "mla": "MLA"}.get(words, words)
    words = words[:1].upper() + words[1:]
    return f"{words} ({unit})" if unit else words


def _table(rows: Iterable[tuple[str, Any, str]], *, headers: Sequence[str] = ("Quantity", "Value")) -> str:
    """A two-column table of (label, value, data-key) rows."""
    body = "".join(
        f"<tr><th scope='row'>{html.escape(label)}</th>{_cell(value, key)}</tr>" for label, value, key in rows
    )
    if not body:
        return "<p class='muted'>None.</p>"
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(value: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping) and value and not ({"value", "source"} >= set(value)):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return [(prefix, value)]


def _get(mapping: Mapping[str, Any], path: str) -> Any:
    node: Any = mapping
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _provenance(value: Any) -> tuple[Any, str]:
    if hasattr(value, "value") and hasattr(value, "source"):
        return value.value, str(value.source)
    if isinstance(value, Mapping) and "value" in value:
        return value["value"], str(value.get("source", ""))
    return value, ""


def _inputs_table(inputs: Mapping[str, Any]) -> str:
    rows = []
    for name, entry in inputs.items():
        value, source = _provenance(entry)
        key = (
            f"inputs.{name}.value" if isinstance(entry, Mapping) and "value" in entry else (f"inputs.{name}")
        )
        rows.append(
            f"<tr><th scope='row'>{html.escape(_label(str(name)))}</th>{_cell(value, key)}"
            f"<td class='source'>{html.escape(source) or '—'}</td></tr>"
        )
    if not rows:
        return "<p class='muted'>None recorded.</p>"
    return (
        "<table><thead><tr><th scope='col'>Input</th><th scope='col'>Value</th>"
        "<th scope='col'>Source</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _records_table(records: Sequence[Mapping[str, Any]], prefix: str) -> str:
    """A table of dicts: one row per record, one column per key (union, first-seen order)."""
    if not records:
        return "<p class='muted'>None.</p>"
    columns: list[str] = []
    for record in records:
        for key, value in record.items():
            if key not in columns and not isinstance(value, Mapping | list | tuple):
                columns.append(key)
    head = "<th scope='col'>#</th>" + "".join(
        f"<th scope='col'>{html.escape(_label(c))}</th>" for c in columns
    )
    rows = []
    for i, record in enumerate(records):
        cells = "".join(_cell(record.get(c), f"{prefix}.{i}.{c}" if c in record else "") for c in columns)
        rows.append(f"<tr><td class='num'>{i + 1}</td>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _lesion_span_mm(
    lesion: Mapping[str, Any], per_frame: Mapping[str, np.ndarray]
) -> tuple[float, float] | None:
    """(start, end) arc length of a lesion from whichever keys the lesion carries."""
    for a, b in (
        ("start_arc_length_mm", "end_arc_length_mm"),
        ("start_mm", "end_mm"),
        ("arc_start_mm", "arc_end_mm"),
    ):
        if lesion.get(a) is not None and lesion.get(b) is not None:
            return float(lesion[a]), float(lesion[b])
    frames = per_frame.get("frame")
    arc = per_frame.get("arc_length_mm")
    for a, b in (("start_frame", "end_frame"), ("first_frame", "last_frame")):
        if lesion.get(a) is not None and lesion.get(b) is not None and frames is not None:
            lookup = dict(zip(np.asarray(frames).astype(int).tolist(), np.asarray(arc), strict=False))
            if int(lesion[a]) in lookup and int(lesion[b]) in lookup:
                s0, s1 = float(lookup[int(lesion[a])]), float(lookup[int(lesion[b])])
                return min(s0, s1), max(s0, s1)
    return None


def _svg(figure: Any) -> str:
    """Inline SVG text of a matplotlib figure, without the XML prolog and DOCTYPE."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    buffer = io.StringIO()
    # A fixed hash salt and no date make the SVG identical for identical data.
    with rc_context({"svg.hashsalt": "ivus-report", "svg.fonttype": "none"}):
        FigureCanvasSVG(figure).print_svg(buffer, metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


_DEVICE_COLOUR = "#00c7e6"
_ZONE_COLOUR = "#2e9d4f"


def _plans_of(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    plans = summary.get("plans") or ([summary["plan"]] if summary.get("plan") else [])
    return [p for p in plans if isinstance(p, Mapping) and isinstance(p.get("device"), Mapping)]


def _draw_plans(
    summary: Mapping[str, Any], axes: Sequence[Any], *, label_ax: Any, band: tuple[float, float] | None = None
) -> None:
    """The planned device(s) as a cyan bar and their landing zones as green bars on each axis.

    ``band`` (axes fraction) confines the bars to a strip (the L-mode's bottom edge); without it
    the device spans the plot, faintly.
    """
    for i, plan in enumerate(_plans_of(summary)):
        device = plan["device"]
        if device.get("start_mm") is None or device.get("end_mm") is None:
            continue
        for ax in axes:
            first = i == 0 and ax is label_ax
            ymin, ymax = band if band is not None else (0.0, 1.0)
            ax.axvspan(float(device["start_mm"]), float(device["end_mm"]), ymin=ymin, ymax=ymax,
                       color=_DEVICE_COLOUR, alpha=0.55 if band else 0.13, lw=0,
                       label="Planned device" if first else None)  # fmt: skip
            for zone in (plan.get("landing_zones") or {}).values():
                if not isinstance(zone, Mapping):
                    continue
                low, high = (ymin, ymin + 0.5 * (ymax - ymin)) if band else (0.0, 0.04)
                ax.axvspan(float(zone["start_mm"]), float(zone["end_mm"]), ymin=low, ymax=high,
                           color=_ZONE_COLOUR, alpha=0.9, lw=0,
                           label="Landing zone" if first and zone is plan["landing_zones"].get("proximal") else None)  # fmt: skip


def _plots_unavailable() -> str | None:
    """A note in place of a plot when matplotlib is missing: the report still opens, without plots."""
    message = optional_missing("matplotlib", "matplotlib", "This plot")
    return None if message is None else f"<p class='muted'>{html.escape(message)}</p>"


def _profile_plot(
    per_frame: Mapping[str, np.ndarray],
    summary: Mapping[str, Any],
    lesions: Sequence[Mapping[str, Any]],
) -> str:
    """Lumen / vessel area and plaque burden against arc length, as inline SVG."""
    arc = per_frame.get("arc_length_mm")
    if arc is None or len(arc) == 0:
        return "<p class='muted'>No per-frame data.</p>"
    if (missing := _plots_unavailable()) is not None:
        return missing
    from matplotlib.figure import Figure

    arc = np.asarray(arc, dtype=float)
    order = np.argsort(arc, kind="stable")
    arc = arc[order]
    fig = Figure(figsize=(7.2, 4.6), layout="constrained")
    ax_area, ax_burden = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    series = (
        ("vessel_area_mm2", "Vessel (EEM) area", "#4a6fa5"),
        ("lumen_area_mm2", "Lumen area", "#c62828"),
    )
    for key, name, colour in series:
        if key in per_frame:
            ax_area.plot(arc, np.asarray(per_frame[key], float)[order], color=colour, lw=1.6, label=name)
    if "vessel_area_mm2" in per_frame and "lumen_area_mm2" in per_frame:
        ax_area.fill_between(
            arc,
            np.asarray(per_frame["lumen_area_mm2"], float)[order],
            np.asarray(per_frame["vessel_area_mm2"], float)[order],
            color="#8fa8c8",
            alpha=0.25,
            lw=0,
            label="Plaque + media",
        )
    if "plaque_burden_percent" in per_frame:
        ax_burden.plot(
            arc, np.asarray(per_frame["plaque_burden_percent"], float)[order], color="#2e7d6b", lw=1.6
        )
    for i, lesion in enumerate(lesions):
        span = _lesion_span_mm(lesion, per_frame)
        if span is None:
            continue
        for ax in (ax_area, ax_burden):
            ax.axvspan(
                *span,
                color="#f2b134",
                alpha=0.22,
                lw=0,
                label="Lesion" if (i == 0 and ax is ax_area) else None,
            )
    _draw_plans(summary, (ax_area, ax_burden), label_ax=ax_area)
    mla = summary.get("mla") or {}
    if mla.get("arc_length_mm") is not None:
        for ax in (ax_area, ax_burden):
            ax.axvline(
                float(mla["arc_length_mm"]),
                color="#d81b60",
                lw=1.2,
                ls="-",
                label="MLA" if ax is ax_area else None,
            )
    refs = summary.get("references") or {}
    for side, style in (("proximal", "--"), ("distal", ":")):
        ref = refs.get(side) or {}
        if ref.get("arc_length_mm") is not None:
            for ax in (ax_area, ax_burden):
                ax.axvline(
                    float(ref["arc_length_mm"]),
                    color="#1a4fd6",
                    lw=1.1,
                    ls=style,
                    label=f"{side.capitalize()} reference" if ax is ax_area else None,
                )
    ax_area.set_ylabel("Area (mm²)")
    ax_area.set_ylim(bottom=0)
    ax_burden.set_ylabel("Plaque burden (%)")
    ax_burden.set_ylim(0, 100)
    ax_burden.set_xlabel("Arc length from the distal end (mm)")
    for ax in (ax_area, ax_burden):
        ax.grid(True, color="#dddddd", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=8)
    ax_area.legend(fontsize=7, ncols=3, frameon=False, loc="upper left", bbox_to_anchor=(0.0, 1.28))
    return _svg(fig)


def _cut_offsets_mm(polygon: np.ndarray | None, angle_deg: float) -> tuple[float, float]:
    """Where a closed polygon (M, 2) crosses the line through the catheter at ``angle_deg``.

    Returns
    -------
    (float, float)
        The farthest crossing on the ``+angle`` side (>= 0) and on the opposite side (<= 0), mm
        from the catheter centre; NaN where the polygon does not cross that half line.
    """
    if polygon is None or len(polygon) < 3:
        return math.nan, math.nan
    p = np.asarray(polygon, dtype=float)
    q = np.roll(p, -1, axis=0)
    d = np.array([math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))])
    edge = q - p
    denom = d[0] * edge[:, 1] - d[1] * edge[:, 0]
    num = -(d[0] * p[:, 1] - d[1] * p[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        s = num / denom
    ok = (np.abs(denom) > 1e-12) & (s >= 0.0) & (s < 1.0)
    t = (p[ok] + s[ok, None] * edge[ok]) @ d
    plus, minus = t[t >= 0], t[t <= 0]
    return (float(plus.max()) if len(plus) else math.nan, float(minus.min()) if len(minus) else math.nan)


def _narrowest_angle_deg(polygon: np.ndarray | None) -> float:
    """The cut direction (0-175 degrees, 5-degree steps) across the narrowest lumen diameter."""
    if polygon is None or len(polygon) < 3:
        return 0.0
    angles = np.arange(0.0, 180.0, 5.0)
    widths = []
    for a in angles:
        plus, minus = _cut_offsets_mm(polygon, float(a))
        widths.append(plus - minus if math.isfinite(plus) and math.isfinite(minus) else math.inf)
    return float(angles[int(np.argmin(widths))])


def _contours_by_frame(contours: Any) -> dict[int, Any]:
    frames = getattr(contours, "frames", contours) or ()
    return {int(fc.index): fc for fc in frames}


_KEYFRAME_COLOUR = "#00c853"


def keyframe_indices(contours: Any) -> list[int]:
    """Frames whose borders a reader drew (``source`` ``"edited"``), in order."""
    return sorted(
        int(f.index) for f in getattr(contours, "frames", ()) if getattr(f, "source", None) == "edited"
    )


def _marks(summary: Mapping[str, Any]) -> list[tuple[str, int | None, float | None, str, str]]:
    """(name, frame, arc length, colour, line style) of the distal ref, MLA and proximal ref."""
    refs = summary.get("references") or {}
    mla = summary.get("mla") or {}
    out = []
    for name, data, colour, style in (
        ("Distal reference", refs.get("distal"), "#1a4fd6", ":"),
        ("MLA", mla, "#d81b60", "-"),
        ("Proximal reference", refs.get("proximal"), "#1a4fd6", "--"),
    ):
        if isinstance(data, Mapping) and data.get("frame") is not None:
            out.append((name, int(data["frame"]), data.get("arc_length_mm"), colour, style))
    return out


class _FrameSubset:
    """Some frames of a pullback (e.g. a memmap), read only when sliced: ``frames[indices]``
    without the copy of them all."""

    def __init__(self, frames: np.ndarray, indices: np.ndarray):
        self._frames = frames
        self._indices = np.asarray(indices, dtype=np.intp)
        self.shape = (len(self._indices), *frames.shape[1:])
        self.dtype = frames.dtype

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, item: slice) -> np.ndarray:
        block = np.stack([np.asarray(self._frames[int(i)]) for i in self._indices[item]])
        # a memory-mapped pullback's pages just read leave the resident set again
        release_pages(self._frames)
        return block


def lmode_figure(
    frames: np.ndarray,
    *,
    contours: Any,
    frame_index: np.ndarray,
    arc_length_mm: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None = None,
    summary: Mapping[str, Any] | None = None,
    lesions: Sequence[Mapping[str, Any]] = (),
    angle_deg: float | None = None,
    max_columns: int = 1500,
) -> str:
    """The longitudinal (L-mode) cut of the analysed frames with lumen and vessel traces, as SVG.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
        The whole pullback (a memmap is fine: only the analysed frames are read).
    contours : ContourSet
        Frame-plane mm borders (origin at the catheter centre) of the analysed frames.
    frame_index, arc_length_mm : ndarray of shape (B,)
        Analysed frames and their arc length from the distal end (``per_frame["frame"]``,
        ``per_frame["arc_length_mm"]``).
    pixel_spacing_mm : (float, float)
        (row, col) spacing.
    catheter_center_px : (float, float), optional
        (row, col); the image centre by default.
    summary : dict, optional
        ``mla`` and ``references`` are marked by vertical lines.
    lesions : list of dict
        Spans (``start_mm`` / ``end_mm``, ...) shaded along the top edge.
    angle_deg : float, optional
        Cut direction in the frame plane, counter-clockwise from +x; by default the narrowest
        lumen diameter of the MLA frame.
    max_columns : int
        At most this many frames are sampled (evenly) for the image.

    Returns
    -------
    str
        Inline ``<svg>`` text.
    """
    if (missing := _plots_unavailable()) is not None:
        return missing
    from matplotlib.figure import Figure

    from .longitudinal import longitudinal_view

    summary = summary or {}
    by_frame = _contours_by_frame(contours)
    idx = np.asarray(frame_index).astype(int)
    arc = np.asarray(arc_length_mm, dtype=float)
    order = np.argsort(arc, kind="stable")
    idx, arc = idx[order], arc[order]
    valid = (idx >= 0) & (idx < len(frames))
    idx, arc = idx[valid], arc[valid]
    if len(idx) < 2:
        return "<p class='muted'>Too few frames for a longitudinal view.</p>"
    mla = summary.get("mla") or {}
    if angle_deg is None:
        mla_fc = by_frame.get(int(mla["frame"])) if mla.get("frame") is not None else None
        angle_deg = _narrowest_angle_deg(mla_fc.lumen if mla_fc is not None else None)
    pick = np.unique(np.linspace(0, len(idx) - 1, min(len(idx), max_columns)).round().astype(int))
    # the picked frames are read block by block by longitudinal_view, never stacked whole
    stack = _FrameSubset(frames, idx[pick])
    row_mm, col_mm = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    span_mm = max(float(arc[-1] - arc[0]), 1e-6)
    step_mm = max(col_mm, span_mm / 1400.0)
    image = longitudinal_view(
        stack,
        float(angle_deg),
        pixel_spacing_mm=(row_mm, col_mm),
        frame_positions_mm=arc[pick],
        catheter_center_px=catheter_center_px,
        mm_per_px=step_mm,
    )
    half_mm = (image.shape[0] - 1) * step_mm / 2.0
    cuts = np.array(
        [
            _cut_offsets_mm(getattr(by_frame.get(int(i)), "lumen", None), angle_deg)
            + _cut_offsets_mm(getattr(by_frame.get(int(i)), "vessel", None), angle_deg)
            for i in idx
        ]
    )  # (B, 4): lumen +, lumen -, vessel +, vessel -
    reach = np.nanmax(np.abs(cuts)) if np.isfinite(cuts).any() else half_mm
    y_lim = float(min(half_mm, 1.35 * reach))

    fig = Figure(figsize=(7.2, 2.9), layout="constrained")
    ax = fig.subplots()
    ax.imshow(
        image,
        cmap="gray",
        aspect="auto",
        interpolation="bilinear",
        extent=(float(arc[0]), float(arc[-1]), -half_mm, half_mm),
        origin="upper",
    )
    ax.plot(arc, cuts[:, 0], color="#ff5252", lw=1.0, label="Lumen")
    ax.plot(arc, cuts[:, 1], color="#ff5252", lw=1.0)
    if np.isfinite(cuts[:, 2:]).any():
        ax.plot(arc, cuts[:, 2], color="#40c4ff", lw=1.0, label="Vessel (EEM)")
        ax.plot(arc, cuts[:, 3], color="#40c4ff", lw=1.0)
    for i, lesion in enumerate(lesions):
        span = _lesion_span_mm(lesion, {})
        if span is not None:
            ax.axvspan(*span, ymin=0.94, ymax=1.0, color="#f2b134", lw=0, label="Lesion" if i == 0 else None)
    _draw_plans(summary, (ax,), label_ax=ax, band=(0.0, 0.06))
    keyed = np.isin(idx, keyframe_indices(contours))
    if keyed.any():
        # the frames a reader corrected, the others propagated from them: a tick each, above the
        # plan's strip at the bottom edge
        ax.plot(arc[keyed], np.full(int(keyed.sum()), 0.12), ls="", marker="^", ms=6, color=_KEYFRAME_COLOUR,
                mec="black", mew=0.4, label="Keyframe (edited)", transform=ax.get_xaxis_transform())  # fmt: skip
    for name, _, s_mm, colour, style in _marks(summary):
        if s_mm is not None:
            ax.axvline(
                float(s_mm), color=colour if name != "MLA" else "#ff4081", lw=1.3, ls=style, label=name
            )
    ax.set_ylim(-y_lim, y_lim)
    ax.set_xlim(float(arc[0]), float(arc[-1]))
    ax.set_xlabel("Arc length from the distal end (mm)")
    ax.set_ylabel(f"Cut at {angle_deg:.0f}° (mm)")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, ncols=5, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    return _svg(fig)


_CUT_COLOURS = {
    "guide_catheter": "#e53935",
    "motionless_start": "#fb8c00",
    "motionless_end": "#fb8c00",
    "other_pass": "#8e24aa",
    "frame_range": "#757575",
}


def structure_figure(
    frames: np.ndarray,
    structure: Mapping[str, Any],
    *,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None = None,
    angle_deg: float = 0.0,
    max_columns: int = 1200,
) -> str:
    """L-mode of the whole recording by frame number, the frames left out shaded, as SVG.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
        Every frame of the pullback (a memmap is fine: at most ``max_columns`` are read).
    structure : dict
        ``summary.json``'s ``pullback_structure``: ``usable_frames`` [first, last] and
        ``cuts`` (``kind``, ``first_frame``, ``last_frame``, ``reason``).
    pixel_spacing_mm : (float, float)
    catheter_center_px : (float, float), optional
    angle_deg : float
        Cut direction in the frame plane, counter-clockwise from +x.
    max_columns : int

    Returns
    -------
    str
        Inline ``<svg>`` text.
    """
    from matplotlib.figure import Figure

    from .longitudinal import longitudinal_view

    n = len(frames)
    if n < 2:
        return "<p class='muted'>Too few frames for a longitudinal view.</p>"
    pick = np.unique(np.linspace(0, n - 1, min(n, max_columns)).round().astype(int))
    # read 256 frames at a time by longitudinal_view, never stacked whole
    stack = _FrameSubset(frames, np.asarray(pick))
    # One frame per column pixel along the pullback (positions in units of the column spacing),
    # so that the cut across keeps its millimetres.
    col_mm = float(pixel_spacing_mm[1])
    step_mm = col_mm * max(1.0, (n - 1) / 1200.0)
    image = longitudinal_view(
        stack,
        float(angle_deg),
        pixel_spacing_mm=pixel_spacing_mm,
        frame_positions_mm=pick.astype(float) * col_mm,
        catheter_center_px=catheter_center_px,
        mm_per_px=step_mm,
    )
    half_mm = 0.5 * (image.shape[0] - 1) * step_mm
    fig = Figure(figsize=(7.2, 2.4), layout="constrained")
    ax = fig.subplots()
    ax.imshow(
        image, cmap="gray", aspect="auto", extent=(0.0, float(n - 1), -half_mm, half_mm), origin="upper"
    )
    seen: set[str] = set()
    for cut in structure.get("cuts", []):
        kind = str(cut.get("kind", ""))
        colour = _CUT_COLOURS.get(kind, "#757575")
        label = kind.replace("_", " ") if kind not in seen else None
        seen.add(kind)
        ax.axvspan(
            float(cut["first_frame"]) - 0.5,
            float(cut["last_frame"]) + 0.5,
            color=colour,
            alpha=0.35,
            lw=0,
            label=label,
        )
    first, last = structure.get("usable_frames", [0, n - 1])
    ax.axvline(float(first), color="#43a047", lw=1.2, label="analysed range")
    ax.axvline(float(last), color="#43a047", lw=1.2)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel("mm", fontsize=8)
    ax.set_xlabel("Frame")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, ncols=5, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0))
    return _svg(fig)


def frame_gallery(
    frames: np.ndarray,
    *,
    contours: Any,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None = None,
    summary: Mapping[str, Any],
) -> str:
    """The distal reference, MLA and proximal reference frames with their borders, as SVG.

    Parameters
    ----------
    frames : ndarray of shape (N, H, W)
    contours : ContourSet
        Frame-plane mm borders; calcium polygons are filled.
    pixel_spacing_mm : (float, float)
    catheter_center_px : (float, float), optional
        (row, col); the image centre by default.
    summary : dict
        ``mla`` and ``references`` name the frames shown.

    Returns
    -------
    str
        Inline ``<svg>`` text, or a short note when none of the frames is available.
    """
    marks = [m for m in _marks(summary) if m[1] is not None and 0 <= m[1] < len(frames)]
    if not marks:
        return "<p class='muted'>No MLA or reference frame to show.</p>"
    lumen_key = {"MLA": "area_mm2"}
    panels = []
    for name, frame, _, colour, _ in marks:
        data = (
            summary.get("mla")
            if name == "MLA"
            else (summary.get("references") or {}).get(name.split()[0].lower())
        )
        area = (data or {}).get(lumen_key.get(name, "lumen_area_mm2"))
        subtitle = f"frame {frame}" + (
            f" · {format_value(float(area), 'area_mm2')} mm²" if area is not None else ""
        )
        source = getattr(_contours_by_frame(contours).get(frame), "source", None)
        if source in ("edited", "propagated"):
            subtitle += " · keyframe (edited)" if source == "edited" else " · propagated"
        panels.append((f"{name}\n{subtitle}", frame, colour))
    return _border_panels(frames, panels, contours, pixel_spacing_mm, catheter_center_px)


def keyframe_gallery(
    frames: np.ndarray,
    *,
    contours: Any,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None = None,
    most: int = 8,
) -> str | None:
    """Thumbnails of the keyframes (the borders a reader drew, kept exactly) as SVG, or None
    when no frame is a keyframe; at most ``most``, evenly spread along the pullback."""
    keys = [k for k in keyframe_indices(contours) if 0 <= k < len(frames)]
    if not keys:
        return None
    picked = [
        keys[i] for i in np.unique(np.linspace(0, len(keys) - 1, min(len(keys), most)).round().astype(int))
    ]
    panels = [(f"frame {k}\nkeyframe (edited)", k, _KEYFRAME_COLOUR) for k in picked]
    return _border_panels(frames, panels, contours, pixel_spacing_mm, catheter_center_px, columns=4)


def review_frames(contours: Any, *, threshold: float = 0.5, most: int = 8) -> list[tuple[int, float]]:
    """The frames to check first: (frame, confidence) below ``threshold``, least confident first.

    Parameters
    ----------
    contours : ContourSet
    threshold : float
        The confidence below which a frame is flagged (the ``low_segmentation_confidence`` rule).
    most : int
        At most this many.
    """
    low = [
        (int(f.index), float(f.confidence))
        for f in getattr(contours, "frames", ())
        if f.confidence is not None and f.confidence < threshold
    ]
    return sorted(low, key=lambda item: (item[1], item[0]))[:most]


def review_gallery(
    frames: np.ndarray,
    *,
    contours: Any,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None = None,
    threshold: float = 0.5,
) -> str | None:
    """Thumbnails of the least confident frames with their borders (SVG), or None when no frame
    is below ``threshold``."""
    picked = [(f, c) for f, c in review_frames(contours, threshold=threshold) if 0 <= f < len(frames)]
    if not picked:
        return None
    panels = [(f"frame {frame}\nconfidence {conf:.2f}", frame, "#b3261e") for frame, conf in picked]
    return _border_panels(frames, panels, contours, pixel_spacing_mm, catheter_center_px, columns=4)


def _border_panels(
    frames: np.ndarray,
    panels: Sequence[tuple[str, int, str]],
    contours: Any,
    pixel_spacing_mm: tuple[float, float],
    catheter_center_px: tuple[float, float] | None,
    *,
    columns: int | None = None,
) -> str:
    """Frames (title, frame index, title colour) with their lumen, vessel and calcium, as SVG."""
    if (missing := _plots_unavailable()) is not None:
        return missing
    from matplotlib.figure import Figure

    by_frame = _contours_by_frame(contours)
    h, w = np.asarray(frames[panels[0][1]]).shape[:2]
    row_mm, col_mm = float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])
    c_row, c_col = catheter_center_px if catheter_center_px is not None else ((h - 1) / 2.0, (w - 1) / 2.0)
    extent = (-c_col * col_mm, (w - 1 - c_col) * col_mm, (h - 1 - c_row) * row_mm, -c_row * row_mm)
    reach = 0.0
    for _, frame, _ in panels:
        fc = by_frame.get(frame)
        for poly in (getattr(fc, "vessel", None), getattr(fc, "lumen", None)):
            if poly is not None and len(poly):
                reach = max(reach, float(np.abs(np.asarray(poly)).max()))
    half = 1.3 * reach if reach > 0 else max(abs(v) for v in extent)
    n_cols = min(len(panels), columns or len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(2.5 * n_cols, 3.0 * n_rows), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.08)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    for ax, (title, frame, colour) in zip(axes, panels, strict=False):
        ax.imshow(np.asarray(frames[frame]), cmap="gray", extent=extent, interpolation="bilinear")
        fc = by_frame.get(frame)
        if fc is not None:
            for poly in getattr(fc, "calcium", ()) or ():
                poly = np.asarray(poly)
                ax.fill(poly[:, 0], poly[:, 1], color="#fff3c4", alpha=0.55, lw=0.8, ec="#ffe082")
            for poly, line in ((fc.vessel, "#40c4ff"), (fc.lumen, "#ff5252")):
                if poly is not None and len(poly):
                    closed = np.vstack([poly, poly[:1]])
                    ax.plot(closed[:, 0], closed[:, 1], color=line, lw=1.1)
        ax.set_title(title, fontsize=8, color=colour)
        ax.set_xlim(-half, half)
        ax.set_ylim(half, -half)
        ax.tick_params(labelsize=6)
        ax.set_xlabel("x (mm)", fontsize=7)
    axes[0].set_ylabel("y (mm)", fontsize=7)
    return _svg(fig)


def pullback_figures(
    frames: np.ndarray | None,
    *,
    contours: Any,
    per_frame: Mapping[str, np.ndarray],
    pixel_spacing_mm: tuple[float, float] | None,
    catheter_center_px: tuple[float, float] | None,
    summary: Mapping[str, Any],
    lesions: Sequence[Mapping[str, Any]] = (),
    angle_deg: float | None = None,
) -> dict[str, str]:
    """The L-mode and the frame gallery for :func:`build_report` (``figures=``).

    Returns an empty dict when there are no frames (contour-only runs).

    Parameters
    ----------
    frames : ndarray of shape (N, H, W) or None
        ``Pullback.frames``.
    contours : ContourSet
    per_frame : dict of str to ndarray of shape (B,)
        ``frame`` and ``arc_length_mm`` of the analysed frames.
    pixel_spacing_mm, catheter_center_px : (float, float)
        Of the pullback.
    summary : dict
    lesions : list of dict
    angle_deg : float, optional
        L-mode cut direction (see :func:`lmode_figure`).

    Returns
    -------
    dict of str to str
        Caption to inline SVG.
    """
    if frames is None or pixel_spacing_mm is None or len(frames) == 0:
        return {}
    if per_frame.get("frame") is None or per_frame.get("arc_length_mm") is None:
        return {}
    out: dict[str, str] = {}
    review = review_gallery(
        frames, contours=contours, pixel_spacing_mm=pixel_spacing_mm, catheter_center_px=catheter_center_px
    )
    if review is not None:
        # the frames a reader should check come first: a flag that only counts them sends nobody there
        out["Frames to review first: the least confident segmentations (confidence below 0.5), lumen "
            "(red) and vessel (blue)"] = review
    keyed = keyframe_indices(contours)
    lmode_caption = (
        "Longitudinal view (L-mode) with lumen (red) and vessel (blue) borders; MLA and "
        "reference frames marked, lesions shaded at the top"
    )
    if keyed:
        lmode_caption += (
            f"; the {len(keyed)} keyframes (borders drawn by a reader, kept exactly) marked by green "
            "triangles near the bottom, the other frames propagated from them"
        )
    keys = keyframe_gallery(
        frames, contours=contours, pixel_spacing_mm=pixel_spacing_mm, catheter_center_px=catheter_center_px
    )
    if keys is not None:
        out[f"Keyframes: the borders a reader drew (kept exactly), lumen (red) and vessel (blue); frames "
            f"{', '.join(str(k) for k in keyed[:12])}{' ...' if len(keyed) > 12 else ''}"] = keys  # fmt: skip
    return out | {
        lmode_caption: lmode_figure(
            frames,
            contours=contours,
            frame_index=np.asarray(per_frame["frame"]),
            arc_length_mm=np.asarray(per_frame["arc_length_mm"]),
            pixel_spacing_mm=pixel_spacing_mm,
            catheter_center_px=catheter_center_px,
            summary=summary,
            lesions=lesions,
            angle_deg=angle_deg,
        ),
        "Reference and MLA frames with lumen (red), vessel (blue) and calcium (cream) borders": frame_gallery(
            frames,
            contours=contours,
            pixel_spacing_mm=pixel_spacing_mm,
            catheter_center_px=catheter_center_px,
            summary=summary,
        ),
    }


_CSS = """
:root { --ink: #1d1f24; --muted: #5d6470; --line: #d9dde3; --accent: #1a4fd6; --warn: #b3261e; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 24px 32px 48px;
       font-size: 14px; line-height: 1.45; background: #fff; }
header { border-bottom: 2px solid var(--ink); padding-bottom: 8px; margin-bottom: 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
     padding-bottom: 4px; break-after: avoid; }
.meta, .muted { color: var(--muted); }
.disclaimer { border: 1px solid #e8b4b0; background: #fdf1f0; color: var(--warn);
              padding: 6px 10px; border-radius: 4px; font-weight: 600; margin: 10px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 22px; font-weight: 650; }
.card .unit { font-size: 13px; color: var(--muted); margin-left: 2px; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 0 24px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; }
thead th { background: #f4f6f8; font-weight: 600; }
tbody th { font-weight: 500; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.source { color: var(--muted); font-size: 12px; }
figure { margin: 8px 0 16px; break-inside: avoid; }
figure img, figure svg { max-width: 100%; height: auto; display: block;
                         border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.flag { color: var(--warn); font-weight: 600; }
footer { margin-top: 32px; border-top: 1px solid var(--line); padding-top: 8px;
         color: var(--muted); font-size: 12px; }
@page { size: A4; margin: 14mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  h2 { margin-top: 16px; }
  section, table, figure, .cards { break-inside: avoid; }
  .grid2 { grid-template-columns: 1fr 1fr; }
  a { color: inherit; text-decoration: none; }
}
@media print and (max-width: 216mm) { @page { size: letter; } }
@media (max-width: 720px) { .grid2 { grid-template-columns: 1fr; } }
"""


def _card(label: str, value: Any, key: str) -> str:
    unit = unit_for(key)
    unit_html = f"<span class='unit'>{html.escape(unit)}</span>" if unit and value is not None else ""
    return (
        f"<div class='card'><div class='label'>{html.escape(label)}</div>"
        f"<div class='value'><span data-key='{html.escape(key)}'>"
        f"{html.escape(format_value(value, key))}</span>{unit_html}</div></div>"
    )


def _image_figure(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
    )


_SUMMARY_SHOWN = {
    "version",
    "inputs",
    "parameters",
    "volumes_mm3",
    "pav_percent",
    "tav_norm_mm3",
    "mla",
    "references",
    "area_stenosis_percent",
    "diameter_stenosis_percent",
    "lesions",
    "flags",
    "plan",
    "plans",
}

PLAN_NOTE = "The plan is a suggestion for research and teaching, not a treatment decision."
_ZONE_COLUMNS = (
    "start_mm",
    "end_mm",
    "length_mm",
    "plaque_burden_percent",
    "lumen_area_mm2",
    "vessel_area_mm2",
    "lumen_mean_diameter_mm",
    "vessel_mean_diameter_mm",
)
_DEVICE_ROWS = (
    ("Device", "type"),
    ("Diameter (mm)", "diameter_mm"),
    ("Length (mm)", "length_mm"),
    ("Start (mm)", "start_mm"),
    ("End (mm)", "end_mm"),
    ("Span to cover (mm)", "span_mm"),
    ("Devices", "count"),
    ("Basis", "basis"),
)


def _plan_section(summary: Mapping[str, Any]) -> str:
    """The "Plan" section: device, landing zones, every plan and the policy with its sources."""
    if "plan" not in summary:
        return ""
    esc = html.escape
    parts = ["<section><h2>Plan</h2>", f"<div class='disclaimer'>{esc(PLAN_NOTE)}</div>"]
    plan = summary.get("plan")
    if not isinstance(plan, Mapping):
        reasons = [str(f.get("message")) for f in summary.get("flags") or [] if f.get("rule") == "plan_none"]
        parts.append(f"<p class='muted'>{esc('; '.join(reasons) or 'No treatment plan.')}</p></section>")
        return "".join(parts)
    device = plan.get("device") or {}
    cards = [
        _card("Device diameter", device.get("diameter_mm"), "plan.device.diameter_mm"),
        _card("Device length", device.get("length_mm"), "plan.device.length_mm"),
        _card("Span to cover", device.get("span_mm"), "plan.device.span_mm"),
    ]
    parts.append(
        f"<p>{esc(str(device.get('type', 'device')).capitalize())} for the "
        f"<span data-key='plan.territory'>{esc(str(plan.get('territory')))}</span> territory, "
        f"treating lesion(s) {esc(format_value(plan.get('lesion_ids')))}.</p>"
        f"<div class='cards'>{''.join(cards)}</div>"
    )
    rows = [(label, device.get(key), f"plan.device.{key}") for label, key in _DEVICE_ROWS if key in device]
    zones = plan.get("landing_zones") or {}
    head = "<th scope='col'>Landing zone</th>" + "".join(
        f"<th scope='col'>{esc(_label(c))}</th>" for c in _ZONE_COLUMNS
    )
    body = "".join(
        f"<tr><th scope='row'>{esc(side.capitalize())}</th>"
        + (
            "".join(_cell(zone.get(c), f"plan.landing_zones.{side}.{c}") for c in _ZONE_COLUMNS)
            if isinstance(zone, Mapping)
            else f"<td colspan='{len(_ZONE_COLUMNS)}' class='muted'>none found</td>"
        )
        + "</tr>"
        for side, zone in zones.items()
    )
    parts.append(
        "<div class='grid2'><div><h3>Device</h3>" + _table(rows) + "</div><div><h3>Landing zones</h3>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></div>"
    )
    plans = [p for p in summary.get("plans") or [] if isinstance(p, Mapping)]
    if len(plans) > 1:
        keys = ("start_mm", "end_mm", "length_mm", "diameter_mm")
        head = "<th scope='col'>Plan</th><th scope='col'>Lesions</th>" + "".join(
            f"<th scope='col'>{esc(_label(k))}</th>" for k in keys
        )
        body = "".join(
            f"<tr>{_cell(p.get('id', i + 1), f'plans.{i}.id')}<td>{esc(format_value(p.get('lesion_ids')))}"
            f"{' (main)' if p.get('main') else ''}</td>"
            + "".join(_cell((p.get("device") or {}).get(k), f"plans.{i}.device.{k}") for k in keys)
            + "</tr>"
            for i, p in enumerate(plans)
        )
        parts.append(
            f"<h3>Every plan (one device each)</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
    policy = plan.get("policy") or {}
    policy_rows = "".join(
        f"<tr><th scope='row'>{esc(name)}</th>{_cell(entry.get('value'), f'plan.policy.{name}.value')}"
        f"<td class='source'>{esc(str(entry.get('source') or '—'))}</td></tr>"
        for name, entry in policy.items()
        if isinstance(entry, Mapping)
    )
    parts.append(
        "<h3>Policy (every threshold and catalogue, with its source)</h3><table><thead><tr>"
        "<th scope='col'>Parameter</th><th scope='col'>Value</th><th scope='col'>Source</th></tr></thead>"
        f"<tbody>{policy_rows}</tbody></table></section>"
    )
    return "".join(parts)


def build_report(
    *,
    summary: Mapping[str, Any],
    per_frame: Mapping[str, np.ndarray],
    lesions: Sequence[Mapping[str, Any]],
    flags: Sequence[Mapping[str, Any]],
    images: Mapping[str, bytes],
    inputs: Mapping[str, Any],
    parameters: Mapping[str, Any],
    version: str,
    title: str = "IVUS reconstruction",
    figures: Mapping[str, str] | None = None,
) -> str:
    """Build the self-contained HTML report.

    Parameters
    ----------
    summary : dict
        The content of ``summary.json`` (keys of DESIGN.md: ``volumes_mm3``, ``pav_percent``,
        ``tav_norm_mm3``, ``mla``, ``references``, ``area_stenosis_percent``, ...).
    per_frame : dict of str to ndarray of shape (N,)
        Columns of ``frames.csv``; ``arc_length_mm``, ``lumen_area_mm2``, ``vessel_area_mm2``
        and ``plaque_burden_percent`` are plotted.
    lesions : list of dict
        One row each in the lesion table; spans (``start_arc_length_mm`` / ``end_arc_length_mm``
        or ``start_frame`` / ``end_frame``) are shaded in the plots.
    flags : list of dict
        ``{"rule": ..., "message": ...}``.
    images : dict of str to bytes
        PNG files by caption, inlined as ``data:`` URIs.
    inputs : dict
        Acquisition values: each a ``Valued``, a ``{"value", "source"}`` dict or a plain value.
    parameters : dict
        Analysis parameters (nested dicts are flattened to dotted names).
    version : str
        Software version.
    title : str
    figures : dict of str to str, optional
        Caption to inline SVG (e.g. :func:`pullback_figures`), shown after the profile plot.

    Returns
    -------
    str
        The HTML document. It makes no external request: no scripts, fonts or style sheets
        from elsewhere.
    """
    parts = _page_head(title, version)
    parts.append(_key_results(summary, lesions))
    if flags:
        parts.append(_flags_section(flags))
    for caption, png in images.items():
        if png:
            parts.append(_image_figure(str(caption), png))
    parts.append("<section><h2>Along the pullback</h2><figure>")
    parts.append(_profile_plot(per_frame, summary, lesions))
    parts.append(
        "<figcaption>Lumen and vessel (EEM) area and plaque burden against arc length; "
        "lesions shaded, MLA and reference frames marked.</figcaption></figure></section>"
    )
    for caption, svg in (figures or {}).items():
        if svg:
            parts.append(
                f"<section><figure class='wide'>{svg}<figcaption>{html.escape(str(caption))}</figcaption>"
                "</figure></section>"
            )
    parts.append(_volumes_and_mla(summary))
    parts.append(_references_and_stenosis(summary))
    parts.append("<section><h2>Lesions</h2>" + _records_table(lesions, "lesions") + "</section>")
    parts.append(_plan_section(summary))
    other = _other_measurements(summary)
    if other:
        parts.append(other)
    parts.append(_inputs_and_parameters(inputs, parameters))
    if not flags:
        parts.append("<section><h2>Flags</h2><p class='muted'>No flags raised.</p></section>")
    parts.append(
        f"<footer>IVUSReconstruct {html.escape(version)} · {html.escape(DISCLAIMER)} Numbers are those of "
        "summary.json at the precision shown.</footer></body></html>"
    )
    return "\n".join(parts)


def _page_head(title: str, version: str) -> list[str]:
    """Doctype, head (inline style sheet only) and the page header with the disclaimer."""
    esc = html.escape
    return [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<meta name='generator' content='IVUSReconstruct {esc(version)}'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1>",
        f"<div class='meta'>IVUSReconstruct {esc(version)}</div>",
        f"<div class='disclaimer'>{esc(DISCLAIMER)}</div></header>",
    ]


def _key_results(summary: Mapping[str, Any], lesions: Sequence[Mapping[str, Any]]) -> str:
    """Cards of MLA, area stenosis, PAV, TAVnorm, plaque volume and the lesion count."""
    mla = summary.get("mla") or {}
    stenosis = summary.get("area_stenosis_percent") or {}
    cards = [
        _card("Minimal lumen area", mla.get("area_mm2"), "mla.area_mm2"),
        _card("Area stenosis (largest ref.)", stenosis.get("largest"), "area_stenosis_percent.largest"),
        _card("Percent atheroma volume", summary.get("pav_percent"), "pav_percent"),
        _card("TAVnorm", summary.get("tav_norm_mm3"), "tav_norm_mm3"),
        _card("Plaque volume", _get(summary, "volumes_mm3.plaque"), "volumes_mm3.plaque"),
        f"<div class='card'><div class='label'>Lesions</div><div class='value'>{len(lesions)}</div></div>",
    ]
    return f"<section><h2>Key results</h2><div class='cards'>{''.join(cards)}</div></section>"


def _flags_section(flags: Sequence[Mapping[str, Any]]) -> str:
    """The raised flags as a list: rule, then message."""
    esc = html.escape
    items = "".join(
        f"<li><span class='flag'>{esc(str(f.get('rule', '')))}</span>: {esc(str(f.get('message', '')))}</li>"
        for f in flags
    )
    return f"<section><h2>Flags</h2><ul>{items}</ul></section>"


def _volumes_and_mla(summary: Mapping[str, Any]) -> str:
    """Volumes, PAV and TAVnorm beside the MLA frame's values."""
    volumes = summary.get("volumes_mm3") or {}
    volume_rows = [(f"{k.capitalize()} volume (mm³)", v, f"volumes_mm3.{k}") for k, v in volumes.items()]
    volume_rows += [
        ("Percent atheroma volume, PAV (%)", summary.get("pav_percent"), "pav_percent"),
        ("Normalised total atheroma volume, TAVnorm (mm³)", summary.get("tav_norm_mm3"), "tav_norm_mm3"),
    ]
    mla = summary.get("mla") or {}
    mla_rows = [(_label(k), v, f"mla.{k}") for k, v in mla.items() if not isinstance(v, Mapping)]
    return (
        "<section class='grid2'><div><h2>Volumetric summary</h2>"
        + _table(volume_rows)
        + "</div><div><h2>Minimal lumen area</h2>"
        + _table(mla_rows)
        + "</div></section>"
    )


def _references_and_stenosis(summary: Mapping[str, Any]) -> str:
    """A table of the reference frames (one row per side, the union of their values) and the
    area and diameter stenoses against each reference."""
    esc = html.escape
    refs = summary.get("references") or {}
    ref_keys: list[str] = []
    for side in refs.values():
        if isinstance(side, Mapping):
            ref_keys += [k for k in side if k not in ref_keys and not isinstance(side[k], Mapping)]
    ref_head = "<th scope='col'>Reference</th>" + "".join(
        f"<th scope='col'>{esc(_label(k))}</th>" for k in ref_keys
    )
    ref_rows = "".join(
        f"<tr><th scope='row'>{esc(str(side).capitalize())}</th>"
        + "".join(_cell(data.get(k), f"references.{side}.{k}" if k in data else "") for k in ref_keys)
        + "</tr>"
        for side, data in refs.items()
        if isinstance(data, Mapping)
    )
    ref_html = (
        f"<table><thead><tr>{ref_head}</tr></thead><tbody>{ref_rows}</tbody></table>"
        if ref_rows
        else "<p class='muted'>No reference frames.</p>"
    )
    stenosis = summary.get("area_stenosis_percent") or {}
    stenosis_rows = [
        (f"Area stenosis vs {k} reference (%)", v, f"area_stenosis_percent.{k}") for k, v in stenosis.items()
    ]
    diameter = summary.get("diameter_stenosis_percent") or {}
    if isinstance(diameter, Mapping):
        stenosis_rows += [
            (f"Diameter stenosis vs {k} reference (%)", v, f"diameter_stenosis_percent.{k}")
            for k, v in diameter.items()
        ]
    return "<section><h2>References</h2>" + ref_html + "<h2>Stenosis</h2>" + _table(stenosis_rows) + "</section>"


def _other_measurements(summary: Mapping[str, Any]) -> str:
    """Every scalar summary value not shown elsewhere, so nothing measured is left out of the
    page; empty when there is none."""
    extra = [
        (_label(k.split(".")[-1]) if "." not in k else k, v, k)
        for top, value in summary.items()
        if top not in _SUMMARY_SHOWN
        for k, v in _flatten(value, top)
        if not isinstance(v, list | tuple | Mapping)
    ]
    return "<section><h2>Other measurements</h2>" + _table(extra) + "</section>" if extra else ""


def _inputs_and_parameters(inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
    """The acquisition values with their sources beside the (flattened) analysis parameters."""
    return (
        "<section class='grid2'><div><h2>Inputs</h2>"
        + _inputs_table(inputs)
        + "</div><div><h2>Parameters</h2>"
        + _table(
            [(k, v, f"parameters.{k}") for k, v in _flatten(parameters, "")],
            headers=("Parameter", "Value"),
        )
        + "</div></section>"
    )
