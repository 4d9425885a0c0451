"""Treatment plan: landing zones, device span, length and diameter along the pullback.

A suggestion for research and teaching, computed from the per-frame metrics (arc length,
lumen and vessel areas and diameters, plaque burden) and the lesions and references of
``metrics``. Every threshold and catalogue is a field of :class:`PlanPolicy` or
:class:`DevicePolicy`, with its source, and is reported in ``plan.policy``; defaults and
sources are listed in ``docs/plan.md``.

Positions are arc lengths in mm (``arc_length_mm``, 0 at the distal end, larger = proximal).
The device covers the treated lesion(s) and both landing zones: it runs from the distal end of
the distal landing zone to the proximal end of the proximal one, and its length is that span
rounded up to the catalogue (the extra length is laid into healthy vessel beyond the zones).

Policies (territories, catalogues, sizing rules and their sources) live in ``plan_policy``.

Pure numpy: the tube shown in the render, the GLB and the Slicer scene is built here as
vertices and triangles (:func:`device_tube`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import input_error
from .plan_policy import (
    SUGGESTION,
    TERRITORIES,
    VENOUS_TERRITORIES,
    DevicePolicy,
    PlanPolicy,
    default_policy,
    run_territory,
    territory_for_preset,
)

__all__ = [
    "TERRITORIES",
    "VENOUS_TERRITORIES",
    "DevicePolicy",
    "PlanPolicy",
    "default_policy",
    "territory_for_preset",
    "plan_treatment",
    "plan_for_run",
    "add_plan",
    "run_territory",
    "landmark_positions_mm",
    "replan",
    "healthy_frames",
    "device_path",
    "device_tube",
    "centerline_point_at",
    "plan_rows",
    "SUGGESTION",
]

# --------------------------------------------------------------------------- per-frame helpers


@dataclass(frozen=True)
class _Profile:
    """Per-frame columns in arc-length order."""

    s: np.ndarray
    lumen: np.ndarray
    vessel: np.ndarray
    burden: np.ndarray
    lumen_d: np.ndarray
    vessel_d: np.ndarray


def _profile(per_frame: Mapping[str, Any]) -> _Profile:
    s = np.asarray(per_frame["arc_length_mm"], dtype=float)
    order = np.argsort(s, kind="stable")
    n = len(s)

    def col(key: str) -> np.ndarray:
        return np.asarray(per_frame[key], dtype=float)[order] if key in per_frame else np.full(n, np.nan)

    def mean_d(kind: str) -> np.ndarray:
        lo, hi = col(f"{kind}_min_diameter_mm"), col(f"{kind}_max_diameter_mm")
        d = (lo + hi) / 2.0
        area = col(f"{kind}_area_mm2")
        return np.where(np.isfinite(d), d, 2.0 * np.sqrt(np.maximum(area, 0.0) / np.pi))

    return _Profile(s[order], col("lumen_area_mm2"), col("vessel_area_mm2"),
                    col("plaque_burden_percent"), mean_d("lumen"), mean_d("vessel"))  # fmt: skip


def healthy_frames(
    per_frame: Mapping[str, Any], policy: PlanPolicy, *, reference_area_mm2: float | None = None
) -> np.ndarray:
    """Which frames (in arc-length order) are healthy enough to land a device on.

    Arteries: plaque burden below ``policy.landing_burden_percent``. Veins: lumen area at least
    ``policy.vein_healthy_share`` of the basis (``reference_area_mm2`` or the segment normal).

    Returns
    -------
    ndarray of shape (N,), bool
    """
    return _healthy(_profile(per_frame), policy, _vein_basis_mm2(policy, reference_area_mm2))


def _vein_basis_mm2(policy: PlanPolicy, reference_area_mm2: float | None) -> float | None:
    if not policy.venous:
        return None
    if policy.vein_basis == "normal" or reference_area_mm2 is None:
        return float(policy.venous_normal_area_mm2[policy.vein_segment or "common_iliac"])
    return float(reference_area_mm2)


def _healthy(p: _Profile, policy: PlanPolicy, basis_mm2: float | None) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if policy.venous:
            return np.isfinite(p.lumen) & (p.lumen >= policy.vein_healthy_share * float(basis_mm2))
        return np.isfinite(p.burden) & (p.burden < policy.landing_burden_percent)


def _round_to(value: float, sizes: Sequence[float], how: str) -> tuple[float, bool]:
    """A catalogue size for ``value`` and whether the catalogue held a size on the asked side."""
    sizes_arr = np.sort(np.asarray(sizes, dtype=float))
    if how == "down":
        below = sizes_arr[sizes_arr <= value + 1e-9]
        return (float(below[-1]), True) if len(below) else (float(sizes_arr[0]), False)
    if how == "up":
        above = sizes_arr[sizes_arr >= value - 1e-9]
        return (float(above[0]), True) if len(above) else (float(sizes_arr[-1]), False)
    return float(sizes_arr[int(np.argmin(np.abs(sizes_arr - value)))]), True


def _num(value: Any) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- landing zones


def _find_zone(
    s: np.ndarray, healthy: np.ndarray, edge_mm: float, direction: int, length_mm: float,
    barriers_mm: np.ndarray, limit_mm: float | None = None,
) -> tuple[float, float] | None:  # fmt: skip
    """The nearest healthy stretch of at least ``length_mm`` beyond ``edge_mm``.

    Walks from ``edge_mm`` in ``direction`` (+1 proximal, -1 distal); a stretch is a run of
    consecutive healthy frames with no barrier inside (a frame at a barrier belongs to none),
    and the zone is its first ``length_mm``. Returns (start, end) in arc length (start < end),
    or None.
    """
    idx = np.flatnonzero(s > edge_mm + 1e-9) if direction > 0 else np.flatnonzero(s < edge_mm - 1e-9)[::-1]
    if limit_mm is not None:
        idx = idx[(s[idx] < limit_mm - 1e-9) if direction > 0 else (s[idx] > limit_mm + 1e-9)]
    run_start: float | None = None
    previous: float | None = None
    for i in idx:
        pos = float(s[i])
        at_barrier = bool(np.any(np.abs(barriers_mm - pos) < 1e-9))
        crossed = previous is not None and _between(barriers_mm, previous, pos)
        if not healthy[i] or at_barrier:
            run_start = None
        elif crossed or run_start is None:
            run_start = pos
        previous = pos
        if run_start is not None and abs(pos - run_start) >= length_mm - 1e-9:
            far = run_start + direction * length_mm
            return (min(run_start, far), max(run_start, far))
    return None


def _between(barriers_mm: np.ndarray, a: float, b: float) -> bool:
    lo, hi = min(a, b), max(a, b)
    return bool(np.any((barriers_mm >= lo - 1e-9) & (barriers_mm <= hi + 1e-9)))


def _room(
    s: np.ndarray, healthy: np.ndarray, edge_mm: float, direction: int, barriers_mm: np.ndarray
) -> float:
    """How far healthy vessel continues beyond ``edge_mm`` without crossing a barrier."""
    idx = np.flatnonzero(s > edge_mm + 1e-9) if direction > 0 else np.flatnonzero(s < edge_mm - 1e-9)[::-1]
    last = edge_mm
    for i in idx:
        pos = float(s[i])
        if not healthy[i] or _between(barriers_mm, last, pos):
            break
        last = pos
    return abs(last - edge_mm)


def _zone_record(p: _Profile, start_mm: float, end_mm: float) -> dict[str, Any]:
    inside = (p.s >= start_mm - 1e-9) & (p.s <= end_mm + 1e-9)
    if not inside.any():  # a zone narrower than the frame spacing: its nearest frame
        inside = np.zeros(len(p.s), dtype=bool)
        inside[int(np.argmin(np.abs(p.s - 0.5 * (start_mm + end_mm))))] = True

    def agg(values: np.ndarray, how) -> float | None:
        v = values[inside]
        v = v[np.isfinite(v)]
        return _num(how(v)) if len(v) else None

    return {
        "start_mm": float(start_mm),
        "end_mm": float(end_mm),
        "length_mm": float(end_mm - start_mm),
        "plaque_burden_percent": agg(p.burden, np.max),
        "lumen_area_mm2": agg(p.lumen, np.min),
        "vessel_area_mm2": agg(p.vessel, np.mean),
        "lumen_mean_diameter_mm": agg(p.lumen_d, np.mean),
        "vessel_mean_diameter_mm": agg(p.vessel_d, np.mean),
        "n_frames": int(inside.sum()),
    }


# --------------------------------------------------------------------------- sizing


def _diameter(zones: dict[str, dict | None], policy: PlanPolicy) -> tuple[float | None, float | None, str]:
    """(raw basis diameter, catalogue diameter, one-line basis) of a device."""
    dev = policy.device
    if dev.diameter_basis == "normal":
        segment = policy.vein_segment or "common_iliac"
        area = float(policy.venous_normal_area_mm2[segment])
        raw = 2.0 * math.sqrt(area / math.pi)
        what = f"equivalent diameter of the {segment.replace('_', ' ')} normal area {area:g} mm2"
    else:
        key = "vessel_mean_diameter_mm" if dev.diameter_basis == "vessel" else "lumen_mean_diameter_mm"
        label = "EEM" if dev.diameter_basis == "vessel" else "lumen"
        values = {side: (z or {}).get(key) for side, z in zones.items()}
        found = [v for v in values.values() if v is not None]
        if not found:
            return None, None, f"no landing zone with a {label} diameter"
        pick = dev.diameter_from
        if pick in ("distal", "proximal") and values.get(pick) is None:
            pick = "mean"  # the asked zone is missing: use what there is, and say so
        raw = {
            "distal": values.get("distal"), "proximal": values.get("proximal"), "mean": float(np.mean(found)),
            "smaller": min(found), "larger": max(found),
        }[pick]  # fmt: skip
        where = (
            "the healthy frames under the device (no landing zone)"
            if "healthy" in values
            else f"the {pick} landing zone"
            if pick in ("distal", "proximal")
            else f"the {pick} of the landing zones"
        )
        what = f"mean {label} diameter of {where}"
    target = raw * dev.diameter_ratio + dev.diameter_offset_mm
    size, inside = _round_to(target, dev.diameters_mm, dev.diameter_rounding)
    ratio = "" if dev.diameter_ratio == 1.0 else f"{dev.diameter_ratio:g} x "
    offset = "" if dev.diameter_offset_mm == 0 else f" + {dev.diameter_offset_mm:g} mm"
    text = f"{ratio}{what} ({raw:.2f} mm){offset} rounded {dev.diameter_rounding} to {size:g} mm"
    if not inside:
        text += " (outside the catalogue: its nearest size)"
    return raw, size, text


def _length(span_mm: float, policy: PlanPolicy) -> tuple[float, int]:
    """Catalogue length covering ``span_mm`` and the number of devices (overlapping by 10 %)."""
    lengths = np.sort(np.asarray(policy.device.lengths_mm, dtype=float))
    fits = lengths[lengths >= span_mm - 1e-9]
    if len(fits):
        return float(fits[0]), 1
    longest = float(lengths[-1])
    overlap = 0.1 * longest
    count = int(math.ceil((span_mm - overlap) / (longest - overlap)))
    return count * longest - (count - 1) * overlap, count


# --------------------------------------------------------------------------- plans


def _lesion_spans(lesions: Sequence[Mapping[str, Any]]) -> list[tuple[float, float, Any]]:
    spans = []
    for lesion in lesions:
        if lesion.get("start_mm") is None or lesion.get("end_mm") is None:
            continue
        a, b = float(lesion["start_mm"]), float(lesion["end_mm"])
        spans.append((min(a, b), max(a, b), lesion.get("id")))
    return sorted(spans)


def _vein_reference(lesions: Sequence[Mapping[str, Any]], ids: Sequence[Any]) -> float | None:
    """Mean lumen area of the outer references of a group of lesions (veins)."""
    group = [les for les in lesions if les.get("id") in ids]
    if not group:
        return None
    first, last = min(group, key=lambda les: les["start_mm"]), max(group, key=lambda les: les["end_mm"])
    areas = [
        ((les.get("references") or {}).get(side) or {}).get("lumen_area_mm2")
        for les, side in ((first, "distal"), (last, "proximal"))
    ]
    areas = [float(a) for a in areas if a is not None]
    return float(np.mean(areas)) if areas else None


def plan_treatment(
    per_frame: Mapping[str, Any],
    summary: Mapping[str, Any],
    *,
    policy: PlanPolicy,
    side_branch_mm: Sequence[float] = (),
    landmarks_mm: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Plan the device(s) that treat the lesions of a pullback.

    Parameters
    ----------
    per_frame : dict of str to ndarray of shape (N,)
        ``arc_length_mm``, ``lumen_area_mm2``, ``vessel_area_mm2``, ``plaque_burden_percent``
        and the min / max lumen and vessel diameters (``metrics.PER_FRAME_COLUMNS``).
    summary : dict
        ``lesions`` (``id``, ``start_mm``, ``end_mm``, ``mla_mm2``, ``references``) and
        ``main_lesion_id`` of the metrics summary.
    policy : PlanPolicy
    side_branch_mm : sequence of float
        Side-branch positions: never inside a landing zone.
    landmarks_mm : dict of str to float, optional
        Positions of landmarks named in ``policy.landmark_rules`` (e.g.
        ``{"iliocaval_confluence": 92.0}``).

    Returns
    -------
    dict
        ``plan`` (the plan of the main lesion, or None), ``plans`` (one per device, distal
        first) and ``flags`` (list of {rule, message}; the reason when ``plan`` is None).
    """
    p = _profile(per_frame)
    lesions = list(summary.get("lesions") or [])
    spans = _lesion_spans(lesions)
    flags: list[dict[str, str]] = []
    if not spans:
        if policy.venous:
            rule = "no compressed segment (lumen below the venous threshold of the adjacent reference)"
        elif not np.isfinite(p.burden).any():
            rule = "no plaque burden (no vessel / EEM contours) to find lesions"
        else:
            rule = "no lesion (plaque burden >= the lesion threshold over the minimum length)"
        flags.append({"rule": "plan_none", "message": f"no treatment plan: {rule} in the pullback"})
        return {"plan": None, "plans": [], "flags": flags}
    landmarks_mm = dict(landmarks_mm or {})
    for name, rule in policy.landmark_rules.items():
        if rule not in ("reach", "not-cross"):
            raise input_error(
                "parameters", f"landmark_rules.{name}", f"{rule!r} is unknown", "use reach or not-cross"
            )
    stops = [float(v) for k, v in landmarks_mm.items() if policy.landmark_rules.get(k) == "not-cross"]
    barriers = np.sort(np.asarray(list(side_branch_mm) + stops, dtype=float))
    groups = _group(p, spans, lesions, policy, barriers)
    while True:
        planned: list[dict[str, str]] = []
        plans = [_plan_group(p, group, lesions, policy, barriers, landmarks_mm, planned) for group in groups]
        # two devices that would overlap are one device: both land in the same short healthy
        # stretch, or the catalogue length carries one into the other (femoropopliteal demo: four
        # lesions, devices overlapping by 7-26 mm)
        k = next(
            (k for k in range(len(plans) - 1) if plans[k]["device"]["end_mm"] > plans[k + 1]["device"]["start_mm"]),
            None,
        )
        if k is None:
            break
        groups[k : k + 2] = [groups[k] + groups[k + 1]]
    flags.extend(planned)
    main_id = summary.get("main_lesion_id")
    if main_id is None:
        main_id = min((les for les in lesions if les.get("mla_mm2") is not None),
                      key=lambda les: les["mla_mm2"], default={}).get("id")  # fmt: skip
    main = next((pl for pl in plans if main_id in pl["lesion_ids"]), plans[0])
    for k, pl in enumerate(plans, start=1):
        pl["id"] = k
        pl["main"] = pl is main
    for first, second in zip(plans[:-1], plans[1:], strict=True):
        overlap = first["device"]["end_mm"] - second["device"]["start_mm"]
        if overlap > 0:
            flags.append({
                "rule": "plan_devices_overlap",
                "message": f"the devices of plans {first['id']} and {second['id']} overlap by {overlap:.1f} mm "
                           "(their lesions are one landing zone apart): one longer device may suit",
            })  # fmt: skip
    return {"plan": main, "plans": plans, "flags": flags}


def _group(
    p: _Profile, spans: list[tuple[float, float, Any]], lesions: Sequence[Mapping[str, Any]],
    policy: PlanPolicy, barriers: np.ndarray,
) -> list[list[tuple[float, float, Any]]]:  # fmt: skip
    """Lesions treated by one device: neighbours with no landing zone between them merge."""
    groups = [[spans[0]]]
    for span in spans[1:]:
        ids = [g[2] for g in groups[-1]] + [span[2]]
        healthy = _healthy(p, policy, _vein_basis_mm2(policy, _vein_reference(lesions, ids)))
        end = max(g[1] for g in groups[-1])
        gap_zone = _find_zone(p.s, healthy, end, +1, policy.landing_zone_mm, barriers, limit_mm=span[0])
        if gap_zone is None:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def _plan_group(
    p: _Profile, group: list[tuple[float, float, Any]], lesions: Sequence[Mapping[str, Any]],
    policy: PlanPolicy, barriers: np.ndarray, landmarks_mm: Mapping[str, float], flags: list[dict[str, str]],
) -> dict[str, Any]:  # fmt: skip
    ids = [g[2] for g in group]
    start, end = min(g[0] for g in group), max(g[1] for g in group)
    reference = _vein_reference(lesions, ids) if policy.venous else None
    basis = _vein_basis_mm2(policy, reference)
    healthy = _healthy(p, policy, basis)
    lz = policy.landing_zone_mm
    label = f"lesion{'s' if len(ids) > 1 else ''} {', '.join(str(i) for i in ids)}"
    reach = [float(v) for k, v in landmarks_mm.items() if policy.landmark_rules.get(k) == "reach"]
    reach_prox = min((v for v in reach if v > end), default=None)
    reach_dist = max((v for v in reach if v < start), default=None)
    # a landmark the device must reach is where it ends: that side's landing zone is the last
    # landing-zone length before it, and no extra length goes beyond it
    walls = np.sort(np.concatenate([barriers, [v for v in (reach_prox, reach_dist) if v is not None]]))
    over = policy.reach_overshoot_mm
    zones: dict[str, tuple[float, float] | None] = {}
    for side, direction, edge, target in (
        ("proximal", +1, end, reach_prox),
        ("distal", -1, start, reach_dist),
    ):
        if target is not None:
            near = max(end, target - lz) if direction > 0 else min(start, target + lz)
            zones[side] = tuple(sorted((near, target + direction * over)))
            continue
        zones[side] = _find_zone(p.s, healthy, edge, direction, lz, barriers)
        if zones[side] is None:
            flags.append({
                "rule": f"plan_no_{side}_landing_zone",
                "message": f"{label}: no healthy {side} landing zone of {lz:g} mm within the pullback "
                           "(or before a side branch / landmark): the device ends at the last frame",
            })  # fmt: skip
    distal, proximal = zones["distal"], zones["proximal"]
    lo = distal[0] if distal is not None else float(p.s[0])
    hi = proximal[1] if proximal is not None else float(p.s[-1])
    for name, pos in landmarks_mm.items():
        if policy.landmark_rules.get(name) == "not-cross" and start < pos < end:
            flags.append({
                "rule": "plan_crosses_landmark",
                "message": f"{label} extends across the {name.replace('_', ' ')} at {pos:.1f} mm, which the "
                           "device should not cross: consider treating beyond it",
            })  # fmt: skip
    return _assemble(p, policy, lo, hi, distal, proximal, healthy, walls, ids, (start, end), basis, flags)


def _span_ends(distal, proximal) -> str:
    """What the device's span runs between, in words."""
    ends = ("distal landing zone" if distal is not None else "distal end of the pullback",
            "proximal landing zone" if proximal is not None else "proximal end of the pullback")  # fmt: skip
    return f"{ends[0]} to {ends[1]}"


def _assemble(
    p: _Profile, policy: PlanPolicy, lo: float, hi: float, distal, proximal, healthy: np.ndarray,
    barriers: np.ndarray, ids: list[Any], treated: tuple[float, float], basis: float | None,
    flags: list[dict[str, str]],
) -> dict[str, Any]:  # fmt: skip
    zones = {
        "proximal": _zone_record(p, *proximal) if proximal is not None else None,
        "distal": _zone_record(p, *distal) if distal is not None else None,
    }
    span = hi - lo
    length, count = _length(span, policy)
    sizing: dict[str, dict | None] = zones
    if all(z is None for z in zones.values()):
        # a device over the whole pullback (long diffuse disease) has no landing zone: it is
        # sized on the healthy vessel it covers, as a reader would
        under = healthy & (p.s >= lo - 1e-9) & (p.s <= hi + 1e-9)
        if under.any():
            sizing = {"healthy": {
                "vessel_mean_diameter_mm": _num(np.nanmean(p.vessel_d[under])),
                "lumen_mean_diameter_mm": _num(np.nanmean(p.lumen_d[under])),
            }}  # fmt: skip
    raw_d, diameter, d_text = _diameter(sizing, policy)
    # the catalogue length is longer than the span: lay the extra into healthy vessel beyond
    # the zones, half each side where there is room
    extra = length - span
    d0, d1 = lo, hi
    if extra > 0:
        room_p = _room(p.s, healthy, hi, +1, barriers) if proximal is not None else 0.0
        room_d = _room(p.s, healthy, lo, -1, barriers) if distal is not None else 0.0
        add_p = min(extra / 2.0, room_p)
        add_d = min(extra - add_p, room_d)
        add_p = min(extra - add_d, room_p)
        d0, d1 = lo - add_d, hi + add_p
        rest = extra - add_p - add_d
        if rest > 1e-6:
            # no healthy room left: run on where no landmark or branch stops the device
            if not np.any(barriers > hi - 1e-9):
                d1, where = d1 + rest, "runs on proximally"
            elif not np.any(barriers < lo + 1e-9):
                d0, where = d0 - rest, "runs on distally"
            else:
                where = "does not fit between the landmarks / branches: shown clipped"
            flags.append({
                "rule": "plan_device_beyond_healthy",
                "message": f"lesion(s) {', '.join(str(i) for i in ids)}: the {length:g} mm device is "
                           f"{rest:.1f} mm longer than the healthy vessel beyond the landing zones and {where}",
            })  # fmt: skip
    if count > 1:
        flags.append({
            "rule": "plan_overlapping_devices",
            "message": f"span {span:.1f} mm is longer than the longest {policy.device.type} "
                       f"({max(policy.device.lengths_mm):g} mm): {count} overlapping devices",
        })  # fmt: skip
    basis_text = (
        f"diameter: {d_text}; length: span {span:.1f} mm ({_span_ends(distal, proximal)}) rounded up to "
        f"{length:g} mm" + (f" ({count} overlapping devices)" if count > 1 else "")
    )
    plan: dict[str, Any] = {
        "territory": policy.territory,
        "suggestion": SUGGESTION,
        "lesion_ids": ids,
        "treated_segment": {
            "start_mm": treated[0],
            "end_mm": treated[1],
            "length_mm": treated[1] - treated[0],
        },
        "landing_zones": zones,
        "device": {
            "type": policy.device.type,
            "start_mm": float(d0),
            "end_mm": float(d1),
            "length_mm": float(length),
            "diameter_mm": diameter,
            "span_mm": float(span),
            "count": count,
            "basis_diameter_mm": raw_d,
            "basis": basis_text,
        },
        "policy": policy.to_json(),
    }
    if policy.venous:
        plan["vein_basis_area_mm2"] = basis
    return plan


def replan(
    per_frame: Mapping[str, Any],
    plan: Mapping[str, Any],
    *,
    distal_zone_mm: tuple[float, float] | None = None,
    proximal_zone_mm: tuple[float, float] | None = None,
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The plan with landing zones moved by the user (e.g. in 3D Slicer).

    The device runs from the distal zone's distal end to the proximal zone's proximal end; its
    length and diameter follow the plan's own policy (``plan["policy"]``). A zone holding an
    unhealthy frame is flagged, not refused.

    Parameters
    ----------
    per_frame : dict of str to ndarray of shape (N,)
    plan : dict
        A plan of :func:`plan_treatment`.
    distal_zone_mm, proximal_zone_mm : (float, float), optional
        New (start, end) arc lengths, either order; None keeps the zone.

    Returns
    -------
    (dict, list of dict)
        The new plan and its flags.
    """
    policy = PlanPolicy.from_json(plan["policy"])
    p = _profile(per_frame)
    old = plan["landing_zones"]

    def zone(new, old_zone):
        if new is not None:
            return (float(min(new)), float(max(new)))
        return None if old_zone is None else (float(old_zone["start_mm"]), float(old_zone["end_mm"]))

    distal, proximal = zone(distal_zone_mm, old.get("distal")), zone(proximal_zone_mm, old.get("proximal"))
    if distal is not None and proximal is not None and distal[0] > proximal[0]:
        distal, proximal = proximal, distal
    healthy = _healthy(p, policy, plan.get("vein_basis_area_mm2"))
    flags: list[dict[str, str]] = []
    for side, z in (("distal", distal), ("proximal", proximal)):
        if z is None:
            continue
        inside = (p.s >= z[0] - 1e-9) & (p.s <= z[1] + 1e-9)
        if inside.any() and not healthy[inside].all():
            flags.append({"rule": f"plan_{side}_landing_zone_unhealthy",
                          "message": f"the {side} landing zone {z[0]:.1f}-{z[1]:.1f} mm holds "
                                     f"{int((~healthy[inside]).sum())} frame(s) that are not healthy"})  # fmt: skip
    lo = distal[0] if distal is not None else float(plan["device"]["start_mm"])
    hi = proximal[1] if proximal is not None else float(plan["device"]["end_mm"])
    treated = plan["treated_segment"]
    new = _assemble(p, policy, lo, hi, distal, proximal, healthy, np.empty(0), list(plan["lesion_ids"]),
                    (treated["start_mm"], treated["end_mm"]), plan.get("vein_basis_area_mm2"), flags)  # fmt: skip
    for key in ("id", "main"):
        if key in plan:
            new[key] = plan[key]
    return new, flags


def landmark_positions_mm(
    per_frame: Mapping[str, Any], landmarks: Sequence[Any]
) -> tuple[list[float], dict[str, float]]:
    """Arc lengths of landmarks: side branches, and the others by kind.

    Parameters
    ----------
    per_frame : dict
        ``frame`` and ``arc_length_mm`` columns.
    landmarks : sequence of Landmark
        ``frame`` and ``kind`` are used (frames between analysed frames are interpolated).

    Returns
    -------
    (list of float, dict of str to float)
    """
    frames = np.asarray(per_frame["frame"], dtype=float)
    s = np.asarray(per_frame["arc_length_mm"], dtype=float)
    order = np.argsort(frames)
    branches: list[float] = []
    named: dict[str, float] = {}
    for lm in landmarks:
        pos = float(np.interp(float(lm.frame), frames[order], s[order]))
        if lm.kind == "side_branch":
            branches.append(pos)
        else:
            named[str(lm.kind)] = pos
    return branches, named


def plan_for_run(
    per_frame: Mapping[str, Any],
    summary: Mapping[str, Any],
    *,
    territory: str,
    device: str | None = None,
    vein_segment: str | None = None,
    landmarks: Sequence[Any] = (),
) -> dict[str, Any]:
    """:func:`plan_treatment` with the territory's default policy and the run's landmarks.

    Returns
    -------
    dict
        ``plan``, ``plans`` and ``flags`` as :func:`plan_treatment`.
    """
    policy = default_policy(territory, device=device, vein_segment=vein_segment)
    params = summary.get("metric_parameters") or {}
    keys = ("venous_lesion_percent",) if policy.venous else ("lesion_burden_percent",)
    keys += ("lesion_min_length_mm", "lesion_merge_mm", "reference_search_mm")
    changes: dict[str, Any] = {"lesion_definition": {k: params[k] for k in keys if k in params}}
    # values taken from the run say so in the policy table (they kept their defaults' sources)
    sources = {**policy.sources, "lesion_definition": "this run's metric parameters"}
    if not policy.venous and params.get("lesion_burden_percent") is not None:
        # healthy is below the run's own lesion threshold, so the device covers every lesion frame
        changes["landing_burden_percent"] = float(params["lesion_burden_percent"])
        sources["landing_burden_percent"] = (
            "this run's lesion threshold (lesion_burden_percent), so the device covers every lesion frame"
        )
    policy = replace(policy, sources=sources, **changes)
    branches, named = landmark_positions_mm(per_frame, landmarks)
    return plan_treatment(per_frame, summary, policy=policy, side_branch_mm=branches, landmarks_mm=named)


def add_plan(
    metrics: Any, *, territory: str, device: str | None = None, landmarks: Sequence[Any] = ()
) -> Any:
    """``metrics`` with ``plan`` and ``plans`` in its summary and the plan's flags added.

    Parameters
    ----------
    metrics : Metrics
        Of a run whose metric parameters match ``territory`` (a vein segment for veins).
    territory : str
    device : str, optional
    landmarks : sequence of Landmark

    Returns
    -------
    Metrics
    """
    params = metrics.summary.get("metric_parameters") or {}
    result = plan_for_run(
        metrics.per_frame,
        metrics.summary,
        territory=territory,
        device=device,
        vein_segment=params.get("vein_segment"),
        landmarks=landmarks,
    )
    flags = list(metrics.flags) + result["flags"]
    summary = {**metrics.summary, "plan": result["plan"], "plans": result["plans"], "flags": flags}
    return replace(metrics, summary=summary, flags=flags)


# --------------------------------------------------------------------------- geometry of the device


def device_path(
    centerline_ras_mm: np.ndarray, start_mm: float, end_mm: float, *, step_mm: float = 0.5
) -> np.ndarray:
    """Points of the centerline between two arc lengths (from its first point).

    Parameters
    ----------
    centerline_ras_mm : ndarray of shape (K, 3)
        Distal first; arc length 0 at the first point (frames.csv ``arc_length_mm``).
    start_mm, end_mm : float
    step_mm : float
        Spacing of the samples (the centerline's own vertices in between are kept).

    Returns
    -------
    ndarray of shape (M, 3), M >= 2
    """
    pts = np.asarray(centerline_ras_mm, dtype=float)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    a, b = sorted((float(start_mm), float(end_mm)))
    n = max(2, int(math.ceil((b - a) / step_mm)) + 1)
    at = np.union1d(np.linspace(a, b, n), arc[(arc > a) & (arc < b)])
    # beyond the centerline's ends the path goes straight on along the end tangents
    out = np.column_stack([np.interp(at, arc, pts[:, k]) for k in range(3)])
    for end, sel, anchor, step in ((0, at < 0, 0, 1), (1, at > arc[-1], -1, -2)):
        if np.any(sel):
            tangent = pts[anchor] - pts[step]
            tangent /= max(np.linalg.norm(tangent), 1e-12)
            dist = (-at[sel]) if end == 0 else (at[sel] - arc[-1])
            out[sel] = pts[anchor] + dist[:, None] * tangent
    return out


def device_tube(
    path_ras_mm: np.ndarray, radius_mm: float, *, sides: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """A closed tube (capped cylinder) of ``radius_mm`` around a path.

    Parameters
    ----------
    path_ras_mm : ndarray of shape (M, 3), M >= 2
    radius_mm : float
    sides : int

    Returns
    -------
    vertices : ndarray of shape (M * sides + 2, 3)
    triangles : ndarray of shape (T, 3), int, outward (counter-clockwise seen from outside)
    """
    path = np.asarray(path_ras_mm, dtype=float)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(path, axis=0), axis=1) > 1e-9])
    path = path[keep]
    if len(path) < 2:
        raise ValueError("device_tube needs a path of two distinct points")
    tangent = np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    helper = np.eye(3)[int(np.argmin(np.abs(tangent[0])))]
    normal = np.cross(tangent[0], helper)
    normal /= np.linalg.norm(normal)
    normals = np.empty_like(path)
    for i, t in enumerate(tangent):  # parallel transport: no twist along the tube
        normal = normal - (normal @ t) * t
        normal /= np.linalg.norm(normal)
        normals[i] = normal
    binormals = np.cross(tangent, normals)
    angle = np.linspace(0.0, 2.0 * np.pi, sides, endpoint=False)
    rings = path[:, None, :] + radius_mm * (
        np.cos(angle)[None, :, None] * normals[:, None, :]
        + np.sin(angle)[None, :, None] * binormals[:, None, :]
    )
    m = len(path)
    vertices = np.vstack([rings.reshape(-1, 3), path[0], path[-1]])
    j = np.arange(m - 1)[:, None]
    k = np.arange(sides)[None, :]
    a, b = j * sides + k, j * sides + (k + 1) % sides
    side_tris = np.stack(
        [np.stack([a, b, b + sides], -1), np.stack([a, b + sides, a + sides], -1)], 2
    ).reshape(-1, 3)
    first, last = m * sides, m * sides + 1
    ring0 = np.arange(sides)
    ring1 = (m - 1) * sides + np.arange(sides)
    cap0 = np.column_stack([np.full(sides, first), np.roll(ring0, -1), ring0])
    cap1 = np.column_stack([np.full(sides, last), ring1, np.roll(ring1, -1)])
    triangles = np.vstack([side_tris, cap0, cap1]).astype(np.int64)
    # orientation: the side triangles' normals must point away from the axis
    v = vertices[triangles[: len(side_tris)]]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    out = v.mean(axis=1) - np.repeat(path[:-1], 2 * sides, axis=0)
    if np.sum(np.einsum("ij,ij->i", n, out)) < 0:
        triangles = triangles[:, ::-1]
    return vertices, triangles


def centerline_point_at(centerline_ras_mm: np.ndarray, arc_length_mm: float) -> np.ndarray:
    """The centerline point (RAS mm) at an arc length from its first point, ndarray of shape (3,)."""
    return device_path(centerline_ras_mm, arc_length_mm, arc_length_mm)[0]


def plan_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """A plan as ``(key, value)`` text rows (``device.length_mm``, ...), its policy left out."""
    from .metrics import flatten_rows

    return flatten_rows({k: v for k, v in plan.items() if k != "policy"})
