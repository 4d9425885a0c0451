"""The treatment plan in the scene: device model, landing-zone lines, plan table, and re-planning when a zone moves."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import ATTRIBUTE_PREFIX, _control_points, _flatten, _new_node, mesh_to_model_node, prepare_scene

# ----------------------------------------------------------------------------- treatment plan

PLAN_ATTRIBUTE = ATTRIBUTE_PREFIX + "plan"
ZONE_COLOR = (0.18, 0.62, 0.31)


def centerline_point_at(centerline_ras_mm: np.ndarray, arc_length_mm: float) -> np.ndarray:
    """The centerline point (RAS mm) at an arc length from its first point, ndarray of shape (3,)."""
    from ..plan import device_path

    return device_path(centerline_ras_mm, arc_length_mm, arc_length_mm)[0]


def arc_length_of_point(centerline_ras_mm: np.ndarray, point_ras_mm: np.ndarray) -> float:
    """Arc length (from the first point) of the centerline point nearest to ``point_ras_mm``."""
    pts = np.asarray(centerline_ras_mm, dtype=float)
    a, d = pts[:-1], np.diff(pts, axis=0)
    length2 = np.maximum((d * d).sum(axis=1), 1e-18)
    t = np.clip(((np.asarray(point_ras_mm, dtype=float) - a) * d).sum(axis=1) / length2, 0.0, 1.0)
    dist = np.linalg.norm(a + t[:, None] * d - point_ras_mm, axis=1)
    k = int(np.argmin(dist))
    arc = np.concatenate([[0.0], np.cumsum(np.sqrt(length2))])
    return float(arc[k] + t[k] * np.sqrt(length2[k]))


def _plan_rows(plan: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    _flatten("", {k: v for k, v in plan.items() if k != "policy"}, rows)
    return rows


def _key_value_table(scene: Any, name: str, rows: list[tuple[str, str]], node: Any | None = None) -> Any:
    from vtkmodules.vtkCommonCore import vtkStringArray

    node = _new_node(scene, "vtkMRMLTableNode", name, node)
    table = node.GetTable()
    table.Initialize()
    for column, index in (("key", 0), ("value", 1)):
        array = vtkStringArray()
        array.SetName(column)
        for row in rows:
            array.InsertNextValue(row[index])
        table.AddColumn(array)
    node.Modified()
    return node


def _zone_line(scene: Any, name: str, ends: np.ndarray, node: Any | None = None) -> Any:
    node = _new_node(scene, "vtkMRMLMarkupsLineNode", name, node)
    wasModifying = node.StartModify()
    node.RemoveAllControlPoints()
    for label, position in zip(("start", "end"), ends, strict=True):
        node.AddControlPoint(*[float(v) for v in position], label)
    node.EndModify(wasModifying)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None:
        display.SetSelectedColor(*ZONE_COLOR)
        display.SetColor(*ZONE_COLOR)
    return node


def plan_to_nodes(
    scene: Any,
    plan: dict[str, Any],
    centerline_ras_mm: np.ndarray,
    *,
    nodes: dict[str, Any] | None = None,
    prefix: str = "IVUS",
    zones: bool = True,
) -> dict[str, Any]:
    """Show a plan: the device as a translucent model, a markups line per landing zone, a table.

    Parameters
    ----------
    plan : dict
        ``summary["plan"]``.
    centerline_ras_mm : ndarray of shape (K, 3)
        Distal first; plan positions are arc lengths from its first point.
    nodes : dict, optional
        Nodes of an earlier call, updated in place.
    zones : bool
        Place the landing-zone lines (False leaves them where they are).

    Returns
    -------
    dict of str to node
        ``device`` (model; attribute ``IVUSReconstruct.plan`` holds the plan as JSON),
        ``proximal`` / ``distal`` (markups lines, when the zone exists), ``plan_table``.
    """
    from ..render import DEVICE_OPACITY, DEVICE_RGB, device_polydata

    prepare_scene(scene)
    nodes = dict(nodes or {})
    cl = np.asarray(centerline_ras_mm, dtype=float)
    (polydata,) = device_polydata({"plan": plan}, cl)[:1] or (None,)
    if polydata is not None:
        nodes["device"] = mesh_to_model_node(
            scene, polydata, f"{prefix} device", color=DEVICE_RGB, opacity=DEVICE_OPACITY, scalars=None,
            node=nodes.get("device"),
        )  # fmt: skip
        nodes["device"].SetAttribute(PLAN_ATTRIBUTE, json.dumps(plan, default=float))
    for side in ("proximal", "distal") if zones else ():
        zone = (plan.get("landing_zones") or {}).get(side)
        if zone is None:
            continue
        ends = np.array([centerline_point_at(cl, zone[k]) for k in ("start_mm", "end_mm")])
        nodes[side] = _zone_line(scene, f"{prefix} {side} landing zone", ends, node=nodes.get(side))
        nodes[side].SetAttribute(ATTRIBUTE_PREFIX + "landing_zone", side)
    nodes["plan_table"] = _key_value_table(scene, f"{prefix} plan", _plan_rows(plan), nodes.get("plan_table"))
    return nodes


def update_plan_from_zones(
    nodes: dict[str, Any], per_frame: dict[str, np.ndarray], centerline_ras_mm: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Re-plan after a landing-zone line moved: device length, diameter, model and table follow.

    Each line's two points are projected on the centerline; the zone runs between their arc
    lengths (``plan.replan``).

    Returns
    -------
    (dict, list of dict)
        The new plan (also stored on the device node) and its flags.
    """
    from ..plan import replan

    cl = np.asarray(centerline_ras_mm, dtype=float)
    plan = json.loads(nodes["device"].GetAttribute(PLAN_ATTRIBUTE))
    zones = {}
    for side in ("proximal", "distal"):
        line = nodes.get(side)
        if line is not None and line.GetNumberOfControlPoints() == 2:
            zones[side] = tuple(arc_length_of_point(cl, p) for p in _control_points(line))
    new, flags = replan(
        per_frame, plan, distal_zone_mm=zones.get("distal"), proximal_zone_mm=zones.get("proximal")
    )
    # the lines stay where the user put them: the device, its stored plan and the table follow
    nodes.update(plan_to_nodes(nodes["device"].GetScene(), new, cl, nodes=nodes, zones=False))
    return new, flags


def observe_plan(
    nodes: dict[str, Any], per_frame: dict[str, np.ndarray], centerline_ras_mm: np.ndarray
) -> list[tuple[Any, int]]:
    """Re-plan whenever a landing-zone point is moved (``PointModifiedEvent``: every move, by
    the mouse or a script; the end of a drag would only repeat the last). Returns (node, tag)
    pairs for ``RemoveObserver``."""
    tags = []

    def moved(caller: Any, event: Any) -> None:
        update_plan_from_zones(nodes, per_frame, centerline_ras_mm)

    for side in ("proximal", "distal"):
        line = nodes.get(side)
        if line is None:
            continue
        tags.append((line, line.AddObserver(line.PointModifiedEvent, moved)))
    return tags
