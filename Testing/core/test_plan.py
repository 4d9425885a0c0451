"""Treatment plan on analytic vessels whose plaque burden (or venous lumen) along the pullback is known.

Each vessel is a stack of concentric circles every 0.25 mm: the EEM diameter is set, the lumen
follows from the burden profile (burden = 1 - (r / R)^2), lesions are raised-cosine bumps of
burden. The plan must cover every frame at or above the lesion threshold (within one frame),
land both zones in healthy vessel, never be shorter than the span, round its length up to the
catalogue and size its diameter exactly by the stated policy.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from IVUSReconstructLib import plan as planning
from IVUSReconstructLib.metrics import MetricParams, compute_metrics
from IVUSReconstructLib.types import ContourSet, FrameContours, Landmark

STEP_MM = 0.25


def circle(r: float, n: int = 360) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([r * np.cos(t), r * np.sin(t)])


def bump(s: np.ndarray, centre: float, half_length: float) -> np.ndarray:
    x = np.clip((s - centre) / half_length, -1.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def artery(length_mm: float, eem_d_mm: float, lesions: list[tuple[float, ...]], *, base=15.0):
    """Arc lengths, burden profile and metrics of an artery with raised-cosine lesions
    (centre, half length[, peak burden, default 70 %])."""
    s = np.arange(0.0, length_mm + 1e-9, STEP_MM)
    burden = np.full_like(s, base)
    for centre, half, *peak in lesions:
        top = peak[0] if peak else 70.0
        burden = np.maximum(burden, base + (top - base) * bump(s, centre, half))
    big_r = eem_d_mm / 2.0
    frames = tuple(
        FrameContours(index=i, lumen=circle(big_r * math.sqrt(1.0 - b / 100.0)), vessel=circle(big_r))
        for i, b in enumerate(burden)
    )
    metrics = compute_metrics(ContourSet(frames=frames), s, params=MetricParams(coronary_flags=False))
    return s, burden, metrics


def check_plan(
    plan: dict, s: np.ndarray, burden: np.ndarray, policy: planning.PlanPolicy, covered: np.ndarray
):
    """The must-show properties of one plan on a known burden profile."""
    device = plan["device"]
    # every frame at or above the lesion threshold of the treated lesions is covered (one frame slack)
    hit = s[covered & (burden >= 40.0)]
    assert len(hit)
    assert device["start_mm"] <= hit.min() + STEP_MM and device["end_mm"] >= hit.max() - STEP_MM
    # both landing zones: long enough and healthy in every frame (the known profile, not the record)
    for side in ("proximal", "distal"):
        zone = plan["landing_zones"][side]
        assert zone["end_mm"] - zone["start_mm"] >= policy.landing_zone_mm - 1e-9
        inside = (s >= zone["start_mm"] - 1e-9) & (s <= zone["end_mm"] + 1e-9)
        assert inside.sum() >= policy.landing_zone_mm / STEP_MM
        assert burden[inside].max() < 40.0
        assert zone["plaque_burden_percent"] < 40.0
        # the device covers its landing zones
        assert device["start_mm"] <= zone["start_mm"] + 1e-9 and device["end_mm"] >= zone["end_mm"] - 1e-9
    # length: never shorter than the span, the next catalogue size up, laid out in full
    span = plan["landing_zones"]["proximal"]["end_mm"] - plan["landing_zones"]["distal"]["start_mm"]
    assert device["span_mm"] == pytest.approx(span)
    assert device["length_mm"] >= span
    catalogue = np.array(policy.device.lengths_mm)
    assert device["length_mm"] == catalogue[catalogue >= span].min()
    assert device["end_mm"] - device["start_mm"] == pytest.approx(device["length_mm"])


@pytest.mark.parametrize(
    ("territory", "device", "eem_d_mm", "expected_d_mm"),
    [
        # EAPCI 2018: distal mean EEM diameter 3.4 rounded down -> 3.25
        ("coronary", None, 3.4, 3.25),
        # coronary DCB: mean lumen diameter of the zones (3.4 x sqrt(0.85) = 3.135) rounded down -> 3.0
        ("coronary", "drug-coated balloon", 3.4, 3.0),
        # femoropopliteal DCB 1:1 to the EEM (6.6) rounded down -> 6
        ("femoropopliteal", None, 6.6, 6.0),
        # self-expanding stent: EEM 6.6 + 1 mm = 7.6 rounded up -> 8
        ("femoropopliteal", "stent", 6.6, 8.0),
        # iliac artery: EEM 8.4 to the nearest size -> 8
        ("iliac-artery", None, 8.4, 8.0),
    ],
)
def test_single_lesion_plan_per_territory(territory, device, eem_d_mm, expected_d_mm):
    s, burden, metrics = artery(120.0, eem_d_mm, [(60.0, 9.0)])
    result = planning.add_plan(metrics, territory=territory, device=device)
    plan = result.summary["plan"]
    policy = planning.default_policy(territory, device=device)
    assert plan["territory"] == territory and plan["device"]["type"] == policy.device.type
    check_plan(plan, s, burden, policy, np.ones(len(s), dtype=bool))
    assert plan["device"]["diameter_mm"] == expected_d_mm
    # the stated policy reproduced from the zones' own numbers
    zones = plan["landing_zones"]
    key = "lumen_mean_diameter_mm" if policy.device.diameter_basis == "lumen" else "vessel_mean_diameter_mm"
    basis = {
        "distal": zones["distal"][key],
        "mean": (zones["distal"][key] + zones["proximal"][key]) / 2,
    }[policy.device.diameter_from]
    assert plan["device"]["basis_diameter_mm"] == pytest.approx(basis)
    assert plan["policy"]["device"]["value"]["diameter_rounding"] == policy.device.diameter_rounding
    assert plan["policy"]["landing_zone_mm"]["source"]
    assert plan["policy"]["lesion_definition"]["value"] == {
        "lesion_burden_percent": 40.0,
        "lesion_min_length_mm": 3.0,
        "lesion_merge_mm": 1.5,
        "reference_search_mm": 10.0,
    }
    assert result.summary["plans"] == [plan]


def test_coronary_zones_are_the_nearest_healthy_5_mm():
    s, burden, metrics = artery(80.0, 3.4, [(40.0, 8.0)])
    plan = planning.add_plan(metrics, territory="coronary").summary["plan"]
    # burden falls below 40 % where the bump is below (40 - 15) / (70 - 15): |x| > 4.94 mm from 40
    edge = 8.0 * math.acos(2 * (25.0 / 55.0) - 1.0) / math.pi
    zones = plan["landing_zones"]
    assert zones["proximal"]["start_mm"] == pytest.approx(40.0 + edge, abs=STEP_MM)
    assert zones["distal"]["end_mm"] == pytest.approx(40.0 - edge, abs=STEP_MM)
    assert zones["proximal"]["length_mm"] == pytest.approx(5.0)
    # span 2 x 4.94 + 2 x 5 = 19.9 mm -> 23 mm stent
    assert plan["device"]["length_mm"] == 23.0


def test_two_close_lesions_merge_into_one_device():
    # femoropopliteal bumps 14 mm apart, each 3 mm half-length: a 6-7 mm healthy gap < 10 mm zone
    s, burden, metrics = artery(150.0, 6.6, [(60.0, 6.0), (74.0, 6.0)])
    assert len(metrics.lesions) == 2
    summary = planning.add_plan(metrics, territory="femoropopliteal").summary
    assert len(summary["plans"]) == 1
    plan = summary["plan"]
    assert plan["lesion_ids"] == [1, 2]
    check_plan(plan, s, burden, planning.default_policy("femoropopliteal"), np.ones(len(s), dtype=bool))


def test_two_distant_lesions_get_one_plan_each():
    # 50 mm apart: a healthy 10 mm zone fits between them; the second lesion is the tighter one
    s, burden, metrics = artery(160.0, 6.6, [(45.0, 7.0, 70.0), (95.0, 7.0, 80.0)])
    summary = planning.add_plan(metrics, territory="femoropopliteal").summary
    plans = summary["plans"]
    assert [p["lesion_ids"] for p in plans] == [[1], [2]]
    assert summary["plan"]["lesion_ids"] == [2] and summary["plan"]["main"]
    policy = planning.default_policy("femoropopliteal")
    for p, (lo, hi) in zip(plans, ((0.0, 70.0), (70.0, 160.0)), strict=True):
        check_plan(p, s, burden, policy, (s >= lo) & (s < hi))
    assert plans[0]["device"]["end_mm"] < plans[1]["device"]["start_mm"]


def test_lesions_whose_devices_would_overlap_get_one_device():
    # burden >= 40 % over 25.06-34.94 and 45.06-54.94 mm: the 10.1 mm gap holds one 10 mm zone, in
    # which both devices would land and overlap: one device covers both lesions instead
    s, burden, metrics = artery(90.0, 6.6, [(30.0, 8.0), (50.0, 8.0)])
    summary = planning.add_plan(metrics, territory="femoropopliteal").summary
    (plan,) = summary["plans"]
    assert plan["lesion_ids"] == [1, 2]
    device, zones = plan["device"], plan["landing_zones"]
    # measured: device 10-70 mm (60 mm), zones 15.75-25.75 and 54.25-64.25, lesions 26-34 and 46-54
    assert device["start_mm"] <= 25.06 and device["end_mm"] >= 54.94
    first, second = summary["lesions"]
    assert zones["distal"]["end_mm"] <= first["start_mm"] and zones["proximal"]["start_mm"] >= second["end_mm"]
    assert zones["distal"]["plaque_burden_percent"] < 40 and zones["proximal"]["plaque_burden_percent"] < 40
    assert device["length_mm"] == 60.0
    assert not [f for f in summary["flags"] if f["rule"] == "plan_devices_overlap"]


def test_side_branch_never_inside_a_landing_zone():
    s, burden, metrics = artery(80.0, 3.4, [(40.0, 8.0)])
    # a branch 2 mm beyond the lesion's proximal edge: the 5 mm zone starts past it
    result = planning.plan_treatment(
        metrics.per_frame, metrics.summary, policy=planning.default_policy("coronary"), side_branch_mm=[47.0]
    )
    zone = result["plan"]["landing_zones"]["proximal"]
    assert zone["start_mm"] > 47.0 and zone["length_mm"] == pytest.approx(5.0)


def test_no_lesion_gives_no_plan_and_says_why():
    s, burden, metrics = artery(60.0, 3.4, [])
    summary = planning.add_plan(metrics, territory="coronary").summary
    assert summary["plan"] is None and summary["plans"] == []
    flag = [f for f in summary["flags"] if f["rule"] == "plan_none"]
    assert flag == [
        {
            "rule": "plan_none",
            "message": "no treatment plan: no lesion (plaque burden >= the lesion threshold over the minimum "
            "length) in the pullback",
        }
    ]


# ----------------------------------------------------------------------------- veins


def vein(length_mm: float, *, centre=60.0, half=12.0, fraction=0.33, ref_area=110.0):
    """A lumen-only vein of area ``ref_area`` compressed to ``fraction`` by a raised cosine."""
    s = np.arange(0.0, length_mm + 1e-9, STEP_MM)
    area = ref_area * (1.0 - (1.0 - fraction) * bump(s, centre, half))
    scale = ref_area / (0.5 * 360 * math.sin(2 * math.pi / 360) * (ref_area / math.pi))  # polygon vs circle
    frames = tuple(
        FrameContours(index=i, lumen=circle(math.sqrt(a * scale / math.pi))) for i, a in enumerate(area)
    )
    metrics = compute_metrics(ContourSet(frames=frames), s, params=MetricParams(vein_segment="common_iliac"))
    return s, area, metrics


def test_vein_compressed_segment_is_a_lesion_of_the_venous_rule():
    s, area, metrics = vein(120.0)
    # lumen below half the adjacent reference: bump > 0.5 / 0.67 -> |x| < 0.3362 x 12 = 4.03 mm
    half = 12.0 * math.acos(2 * (0.5 / 0.67) - 1.0) / math.pi
    (lesion,) = metrics.lesions
    assert lesion["start_mm"] == pytest.approx(60.0 - half, abs=STEP_MM)
    assert lesion["end_mm"] == pytest.approx(60.0 + half, abs=STEP_MM)
    assert lesion["length_mm"] == pytest.approx(2 * half, abs=2 * STEP_MM)


def test_vein_plan_lands_in_healthy_vein_with_the_normal_diameter():
    s, area, metrics = vein(120.0)
    summary = planning.add_plan(metrics, territory="iliac-vein").summary
    plan = summary["plan"]
    policy = planning.default_policy("iliac-vein")
    # healthy vein: lumen >= 80 % of the reference (110 mm2)
    for side in ("proximal", "distal"):
        zone = plan["landing_zones"][side]
        inside = (s >= zone["start_mm"] - 1e-9) & (s <= zone["end_mm"] + 1e-9)
        assert area[inside].min() >= 0.8 * 110.0 * 0.999
        assert zone["length_mm"] == pytest.approx(10.0)
    compressed = s[area < 0.5 * 110.0]
    device = plan["device"]
    assert device["start_mm"] <= compressed.min() and device["end_mm"] >= compressed.max()
    # common iliac normal 200 mm2 -> 15.96 mm -> 16 mm venous stent; span rounded up to 40 mm
    assert device["diameter_mm"] == 16.0 and device["type"] == "venous stent"
    assert device["length_mm"] == 40.0 and device["length_mm"] >= device["span_mm"]
    assert plan["vein_basis_area_mm2"] == pytest.approx(110.0, rel=2e-3)
    assert policy.vein_healthy_share == 0.8
    assert plan["policy"]["lesion_definition"]["value"]["venous_lesion_percent"] == 50.0


def test_vein_landmarks_reach_the_confluence_and_stop_at_the_ligament():
    s, area, metrics = vein(120.0)
    landmarks = (Landmark(frame=int(round(90.0 / STEP_MM)), kind="iliocaval_confluence"),
                 Landmark(frame=int(round(25.0 / STEP_MM)), kind="inguinal_ligament"))  # fmt: skip
    plan = planning.add_plan(metrics, territory="iliac-vein", landmarks=landmarks).summary["plan"]
    device = plan["device"]
    # the device reaches the confluence and ends there; it never passes the ligament
    assert device["end_mm"] == pytest.approx(90.0)
    assert device["start_mm"] >= 25.0 - 1e-9
    assert plan["landing_zones"]["proximal"]["end_mm"] == pytest.approx(90.0)
    assert plan["landing_zones"]["distal"]["start_mm"] >= 25.0
    # the extra catalogue length goes distally, where healthy vein runs down to the ligament
    assert device["length_mm"] >= device["span_mm"]
    assert device["end_mm"] - device["start_mm"] == pytest.approx(device["length_mm"])


def test_no_compression_gives_no_vein_plan():
    s, area, metrics = vein(80.0, fraction=0.7)
    summary = planning.add_plan(metrics, territory="iliac-vein").summary
    assert metrics.lesions == [] and summary["plan"] is None
    assert summary["flags"][-1]["message"].startswith("no treatment plan: no compressed segment")


# ----------------------------------------------------------------------------- moving a zone, geometry


def test_replan_after_moving_the_proximal_zone():
    s, burden, metrics = artery(120.0, 6.6, [(60.0, 9.0)])
    plan = planning.add_plan(metrics, territory="femoropopliteal").summary["plan"]
    distal = plan["landing_zones"]["distal"]
    new, flags = planning.replan(metrics.per_frame, plan, proximal_zone_mm=(90.0, 100.0))
    assert flags == []
    assert new["landing_zones"]["proximal"]["start_mm"] == 90.0
    span = 100.0 - distal["start_mm"]
    assert new["device"]["span_mm"] == pytest.approx(span)
    assert new["device"]["length_mm"] == 60.0 and new["device"]["diameter_mm"] == 6.0
    # a zone moved onto the lesion is flagged, and sizing follows the zone moved
    bad, flags = planning.replan(metrics.per_frame, plan, proximal_zone_mm=(58.0, 68.0))
    assert [f["rule"] for f in flags] == ["plan_proximal_landing_zone_unhealthy"]


def test_policy_round_trips_through_json():
    policy = planning.default_policy("femoropopliteal", device="stent")
    again = planning.PlanPolicy.from_json(policy.to_json())
    assert again == policy


def test_device_tube_is_closed_with_the_cylinder_volume():
    path = planning.device_path(np.column_stack([np.zeros(50), np.zeros(50), np.arange(50.0)]), 10.0, 30.0)
    assert path[0] == pytest.approx([0, 0, 10.0]) and path[-1] == pytest.approx([0, 0, 30.0])
    vertices, triangles = planning.device_tube(path, 3.0, sides=64)
    v = vertices[triangles]
    volume = np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0
    # a 64-gon prism of circumradius 3 and height 20, outward-facing triangles (positive volume)
    assert volume == pytest.approx(0.5 * 64 * 9.0 * math.sin(2 * math.pi / 64) * 20.0, rel=1e-9)
    edges = np.sort(np.vstack([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # closed and manifold


def test_unknown_territory_is_an_input_error():
    from IVUSReconstructLib.errors import IVUSInputError

    with pytest.raises(
        IVUSInputError, match=r"^territory: popliteal is not a known territory; use one of coronary"
    ):
        planning.run_territory("popliteal", None)


def test_artery_without_eem_has_no_plan_and_says_why():
    s = np.arange(0.0, 30.0 + 1e-9, STEP_MM)
    frames = tuple(FrameContours(index=i, lumen=circle(1.5)) for i in range(len(s)))
    metrics = compute_metrics(ContourSet(frames=frames), s, params=MetricParams(coronary_flags=False))
    summary = planning.add_plan(metrics, territory="coronary").summary
    assert summary["plan"] is None
    assert summary["flags"][-1]["message"] == (
        "no treatment plan: no plaque burden (no vessel / EEM contours) to find lesions in the pullback"
    )


def test_manifest_territory_column(tmp_path):
    from IVUSReconstructLib.batch import case_options, read_manifest
    from IVUSReconstructLib.errors import IVUSInputError

    manifest = tmp_path / "cohort.csv"
    manifest.write_text("id,contours,territory\na,a.json,iliac-vein\nb,b.json,popliteal\n")
    cases = read_manifest(manifest)
    assert case_options(cases[0]).territory == "iliac-vein"
    with pytest.raises(
        IVUSInputError, match=r"case 'b': column territory 'popliteal' is not one of coronary, "
    ):
        case_options(cases[1])


def test_plan_line_says_when_no_diameter_could_be_chosen():
    from IVUSReconstructLib.cli import _plan_line

    device = {"type": "stent", "length_mm": 28.0, "start_mm": 0.0, "end_mm": 28.0}
    plan = {"territory": "coronary", "device": dict(device, diameter_mm=None)}
    assert _plan_line({"plan": plan}) == (
        "28 mm stent (no diameter: no reference or landing zone) at 0.0-28.0 mm "
        "(coronary; a suggestion for research and teaching)"
    )
    plan["device"]["diameter_mm"] = 3.5
    assert _plan_line({"plan": plan}).startswith("3.50 x 28 mm stent at 0.0-28.0 mm")


def test_a_device_without_landing_zones_is_sized_on_the_healthy_vessel_it_covers():
    # lesions at both ends of a 40 mm artery (EEM 6.6 mm): each plan would land in the healthy
    # middle and overlap the other, so one device covers the whole pullback, with no landing zone
    s, burden, metrics = artery(40.0, 6.6, [(4.0, 6.0), (36.0, 6.0)])
    (plan,) = planning.add_plan(metrics, territory="femoropopliteal").summary["plans"]
    assert plan["landing_zones"] == {"proximal": None, "distal": None}
    device = plan["device"]
    assert (device["start_mm"], device["end_mm"], device["length_mm"]) == (0.0, 40.0, 40.0)
    # drug-coated balloon 1:1 to the EEM of the healthy frames (6.6), rounded down
    assert device["diameter_mm"] == 6.0
    assert device["basis"] == (
        "diameter: mean EEM diameter of the healthy frames under the device (no landing zone) (6.60 mm) "
        "rounded down to 6 mm; length: span 40.0 mm (distal end of the pullback to proximal end of the "
        "pullback) rounded up to 40 mm"
    )


def test_values_taken_from_the_run_name_the_run_as_their_source():
    s, burden, metrics = artery(80.0, 6.6, [(40.0, 8.0)])
    policy = planning.add_plan(metrics, territory="femoropopliteal").summary["plan"]["policy"]
    assert policy["landing_burden_percent"]["value"] == 40.0
    assert policy["landing_burden_percent"]["source"] == (
        "this run's lesion threshold (lesion_burden_percent), so the device covers every lesion frame"
    )
    assert policy["lesion_definition"]["source"] == "this run's metric parameters"
