"""Clinical metrics against analytic shapes (circles, ellipses, cosine stenoses, sectors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.metrics import (
    MetricParams,
    compute_metrics,
    frame_geometry,
)
from IVUSReconstructLib.types import ContourSet, FrameContours, Landmark

N_POINTS = 360


def ellipse(
    a: float, b: float, *, center=(0.0, 0.0), angle_deg: float = 0.0, n: int = N_POINTS
) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    x, y = a * np.cos(t), b * np.sin(t)
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.column_stack([center[0] + c * x - s * y, center[1] + s * x + c * y])


def circle(r: float, **kw) -> np.ndarray:
    return ellipse(r, r, **kw)


def sector(r0: float, r1: float, start_deg: float, end_deg: float, n: int = 90) -> np.ndarray:
    t = np.radians(np.linspace(start_deg, end_deg, n))
    outer = np.column_stack([r1 * np.cos(t), r1 * np.sin(t)])
    inner = np.column_stack([r0 * np.cos(t[::-1]), r0 * np.sin(t[::-1])])
    return np.vstack([outer, inner])


def run(lumen_radius, vessel_radius=None, *, s=None, **frame_kw) -> ContourSet:
    frames = []
    for i, r in enumerate(lumen_radius):
        vessel = (
            None
            if vessel_radius is None
            else circle(float(np.broadcast_to(vessel_radius, len(lumen_radius))[i]))
        )
        frames.append(FrameContours(index=i, lumen=circle(float(r)), vessel=vessel, **frame_kw))
    return ContourSet(frames=tuple(frames))


def cosine_stenosis(s: np.ndarray, *, r_ref=2.0, r_min=1.0, center=20.0, length=10.0) -> np.ndarray:
    x = 2 * np.pi * (s - center) / length
    dip = np.where(np.abs(s - center) < length / 2, (1 + np.cos(x)) / 2, 0.0)
    return r_ref - (r_ref - r_min) * dip


# ---------------------------------------------------------------- cross-sections


def test_concentric_circles():
    geo = frame_geometry([FrameContours(index=0, lumen=circle(1.5), vessel=circle(2.5))])
    assert geo["lumen_area_mm2"][0] == pytest.approx(np.pi * 1.5**2, rel=5e-3)
    assert geo["vessel_area_mm2"][0] == pytest.approx(np.pi * 2.5**2, rel=5e-3)
    assert geo["plaque_burden_percent"][0] == pytest.approx(64.0, abs=0.1)
    assert geo["lumen_min_diameter_mm"][0] == pytest.approx(3.0, rel=1e-3)
    assert geo["lumen_max_diameter_mm"][0] == pytest.approx(3.0, rel=1e-3)
    assert geo["vessel_equivalent_diameter_mm"][0] == pytest.approx(5.0, rel=1e-3)
    assert geo["lumen_eccentricity"][0] == pytest.approx(0.0, abs=1e-3)
    for key in ("plaque_thickness_min_mm", "plaque_thickness_max_mm", "plaque_thickness_mean_mm"):
        assert geo[key][0] == pytest.approx(1.0, abs=2e-3)


def test_rotated_offset_ellipse_in_circle():
    lumen = ellipse(2.0, 1.0, center=(0.7, -0.3), angle_deg=30.0)
    vessel = circle(3.0, center=(0.7, -0.3))
    geo = frame_geometry([FrameContours(index=3, lumen=lumen[::-1], vessel=vessel)])  # clockwise input too
    assert geo["lumen_area_mm2"][0] == pytest.approx(2 * np.pi, rel=5e-3)
    assert geo["lumen_min_diameter_mm"][0] == pytest.approx(2.0, rel=2e-3)
    assert geo["lumen_max_diameter_mm"][0] == pytest.approx(4.0, rel=2e-3)
    assert geo["lumen_eccentricity"][0] == pytest.approx(0.5, abs=2e-3)
    assert geo["lumen_equivalent_diameter_mm"][0] == pytest.approx(2 * math.sqrt(2), rel=3e-3)
    assert geo["plaque_thickness_min_mm"][0] == pytest.approx(1.0, abs=5e-3)
    assert geo["plaque_thickness_max_mm"][0] == pytest.approx(2.0, abs=5e-3)
    assert geo["lumen_outside_vessel_mm"][0] == pytest.approx(-1.0, abs=5e-3)


def test_calcium_arc_of_sectors():
    one = FrameContours(index=0, lumen=circle(1.5), calcium=(sector(1.6, 1.9, 30.0, 120.0),))
    # two overlapping sectors: union 10..200 degrees = 190
    two = FrameContours(index=1, lumen=circle(1.5),
                        calcium=(sector(1.6, 1.9, 10.0, 120.0), sector(1.7, 2.0, 100.0, 200.0)))  # fmt: skip
    # a sector straddling 0 degrees
    wrap = FrameContours(index=2, lumen=circle(1.5), calcium=(sector(1.6, 1.9, -40.0, 25.0),))
    geo = frame_geometry([one, two, wrap])
    assert geo["calcium_arc_deg"][0] == pytest.approx(90.0, abs=0.5)
    assert geo["calcium_arc_deg"][1] == pytest.approx(190.0, abs=0.5)
    assert geo["calcium_arc_deg"][2] == pytest.approx(65.0, abs=0.5)


def test_stent_area_and_symmetry():
    frames = [FrameContours(index=0, lumen=circle(1.5), stent=circle(1.4)),
              FrameContours(index=1, lumen=circle(1.5), stent=ellipse(1.6, 1.2)),
              FrameContours(index=2, lumen=circle(1.5))]  # fmt: skip
    geo = frame_geometry(frames)
    assert geo["stent_area_mm2"][0] == pytest.approx(np.pi * 1.96, rel=5e-3)
    assert geo["stent_symmetry"][0] == pytest.approx(0.0, abs=1e-3)
    assert geo["stent_symmetry"][1] == pytest.approx(0.25, abs=2e-3)
    assert np.isnan(geo["stent_area_mm2"][2])


# ---------------------------------------------------------------- along the pullback


def _stenosis_metrics(**params):
    s = np.arange(0.0, 40.0 + 1e-9, 0.1)
    cs = run(cosine_stenosis(s), 2.5)
    return s, compute_metrics(cs, s, frame_times_s=s / 2.0, params=MetricParams(**params))


def test_cosine_stenosis_mla_references_stenosis_volumes():
    s, m = _stenosis_metrics()
    summ = m.summary
    assert summ["mla"]["area_mm2"] == pytest.approx(np.pi, rel=5e-3)
    assert abs(summ["mla"]["arc_length_mm"] - 20.0) <= 0.1
    # lesion where burden >= 40 %: r <= 2.5 sqrt(0.6), |s - 20| <= 5 acos(-0.873) / pi = 4.19 mm
    half = 5.0 * math.acos(2 * (2.0 - 2.5 * math.sqrt(0.6)) - 1) / math.pi
    assert len(m.lesions) == 1
    lesion = m.lesions[0]
    assert lesion["length_mm"] == pytest.approx(2 * half, abs=0.2)
    assert lesion["start_mm"] == pytest.approx(20.0 - half, abs=0.1)
    assert lesion["mla_mm2"] == pytest.approx(np.pi, rel=5e-3)
    for side in ("proximal", "distal"):
        ref = summ["references"][side]
        assert ref["lumen_area_mm2"] == pytest.approx(4 * np.pi, rel=5e-3)
        assert ref["vessel_area_mm2"] == pytest.approx(6.25 * np.pi, rel=5e-3)
    assert summ["references"]["proximal"]["arc_length_mm"] > lesion["end_mm"]
    assert summ["references"]["proximal"]["arc_length_mm"] <= lesion["end_mm"] + 10.0
    assert summ["references"]["distal"]["arc_length_mm"] < lesion["start_mm"]
    for key in ("proximal", "distal", "largest", "mean"):
        assert summ["area_stenosis_percent"][key] == pytest.approx(75.0, abs=0.2)
        assert summ["diameter_stenosis_percent"][key] == pytest.approx(50.0, abs=0.2)
    assert summ["remodeling_index"] == pytest.approx(1.0, abs=0.01)
    assert summ["remodeling"] == "intermediate"
    # closed forms: lumen pi (4 x 30 + 2.375 x 10), vessel 6.25 pi x 40
    assert summ["volumes_mm3"]["lumen"] == pytest.approx(np.pi * 143.75, rel=5e-3)
    assert summ["volumes_mm3"]["vessel"] == pytest.approx(np.pi * 250.0, rel=5e-3)
    assert summ["volumes_mm3"]["plaque"] == pytest.approx(np.pi * 106.25, rel=5e-3)
    assert summ["pav_percent"] == pytest.approx(100 * 106.25 / 250.0, rel=5e-3)
    assert summ["tav_norm_mm3"] == pytest.approx(np.pi * 106.25 / 40.0 * 10.0, rel=5e-3)
    rules = [f["rule"] for f in m.flags]
    assert rules == ["mla_below_4mm2", "area_stenosis_above_70"]
    assert m.per_frame["time_s"][10] == pytest.approx(0.5)
    # sizing at the references: EEM 5 mm -> 5.0 balloon, lumen 4 mm -> 4.0 stent
    assert summ["device_sizing"]["proximal"]["balloon_diameter_mm"] == 5.0
    assert summ["device_sizing"]["distal"]["stent_diameter_mm"] == 4.0


def test_side_branch_bounds_reference_and_roi():
    s = np.arange(0.0, 40.0 + 1e-9, 0.1)
    radius = cosine_stenosis(s) + np.where(s > 27.0, 0.2, 0.0)  # larger lumen beyond the branch
    cs = run(radius, 2.5)
    free = compute_metrics(cs, s)
    assert free.summary["references"]["proximal"]["arc_length_mm"] > 27.0
    branch = compute_metrics(cs, s, landmarks=(Landmark(frame=260, kind="side_branch"),))
    prox = branch.summary["references"]["proximal"]
    assert 24.0 < prox["arc_length_mm"] < 26.0
    assert prox["lumen_area_mm2"] == pytest.approx(4 * np.pi, rel=5e-3)
    roi = compute_metrics(cs, s, params=MetricParams(roi_start_mm=30.0, roi_end_mm=40.0))
    assert roi.summary["mla"]["area_mm2"] == pytest.approx(np.pi * 2.2**2, rel=5e-3)
    assert roi.summary["n_frames"] == 101
    assert roi.lesions == []


def test_lesion_running_to_the_proximal_end_takes_its_reference_from_the_stenosis():
    # diffuse disease from 15 mm to the end of the pullback (burden >= 40 % everywhere there):
    # lumen radius 1.8 mm, narrowing to 1.0 mm at 20 mm, widening to 1.9 mm at 26-28 mm
    s = np.arange(0.0, 35.0 + 1e-9, 0.1)
    lumen = np.where(s < 15.0, 2.2, cosine_stenosis(s, r_ref=1.8, r_min=1.0, center=20.0, length=6.0))
    lumen = np.where((s >= 26.0) & (s <= 28.0), 1.9, lumen)
    m = compute_metrics(run(lumen, 2.5), s)
    (lesion,) = m.lesions
    assert lesion["start_mm"] == pytest.approx(15.0, abs=0.11)
    assert lesion["end_mm"] == pytest.approx(35.0, abs=1e-6)
    prox, dist = m.summary["references"]["proximal"], m.summary["references"]["distal"]
    # no frame beyond the lesion: the largest lumen within 10 mm proximal of the MLA (20 mm)
    assert 26.0 <= prox["arc_length_mm"] <= 28.0
    assert prox["lumen_area_mm2"] == pytest.approx(np.pi * 1.9**2, rel=5e-3)
    # the distal side keeps its reference outside the lesion
    assert dist["arc_length_mm"] < 15.0
    assert dist["lumen_area_mm2"] == pytest.approx(np.pi * 2.2**2, rel=5e-3)
    assert m.summary["area_stenosis_percent"]["proximal"] == pytest.approx(100 * (1 - 1 / 1.9**2), abs=0.2)
    flag = next(f for f in m.flags if f["rule"] == "proximal_reference_inside_lesion")
    assert flag["frames"] == [prox["frame"]]
    assert "distal_reference_inside_lesion" not in [f["rule"] for f in m.flags]


def test_lesion_merging_and_minimum_length():
    s = np.arange(0.0, 40.0 + 1e-9, 0.1)
    lumen = np.full(len(s), 2.0)  # burden 36 % with a 2.5 mm EEM
    diseased = ((s >= 5.0) & (s <= 9.0)) | ((s >= 10.0) & (s <= 14.0)) | ((s >= 20.0) & (s <= 24.0))
    diseased |= (s >= 30.0) & (s <= 32.0)  # 2 mm: too short
    lumen[diseased] = 1.5  # burden 64 %
    m = compute_metrics(run(lumen, 2.5), s)
    spans = [(round(le["start_mm"], 1), round(le["end_mm"], 1)) for le in m.lesions]
    assert spans == [(5.0, 14.0), (20.0, 24.0)]  # 9.1..9.9 gap (< 1.5 mm) merged
    m2 = compute_metrics(
        run(lumen, 2.5), s, params=MetricParams(lesion_merge_mm=0.5, lesion_min_length_mm=1.0)
    )
    assert len(m2.lesions) == 4


def test_stent_expansion_and_edge_burden():
    s = np.arange(0.0, 40.0 + 1e-9, 0.2)
    frames = []
    for i, si in enumerate(s):
        stented = 15.0 <= si <= 25.0
        lumen_r = 1.4 if stented else 1.5 if 11.0 <= si < 15.0 else 2.0
        frames.append(FrameContours(index=i, lumen=circle(lumen_r), vessel=circle(2.5),
                                    stent=circle(1.4) if stented else None))  # fmt: skip
    m = compute_metrics(ContourSet(frames=tuple(frames)), s)
    stent = m.summary["stent"]
    assert stent["min_area_mm2"] == pytest.approx(np.pi * 1.96, rel=5e-3)
    # references outside the stent: the 2 mm lumen beyond 25 mm, and before 11 mm on the distal side
    assert stent["expansion_percent"] == pytest.approx(100 * 1.96 / 4.0, abs=0.3)
    assert stent["edge_burden_percent"]["distal"] == pytest.approx(64.0, abs=0.2)
    assert stent["edge_burden_percent"]["proximal"] == pytest.approx(36.0, abs=0.2)
    rules = [f["rule"] for f in m.flags]
    assert "stent_expansion_below_80" in rules
    assert [f["message"].split(":")[0] for f in m.flags if f["rule"] == "edge_burden_above_50"] == [
        "distal stent edge"
    ]


def test_compressed_vein_lumen_only():
    s = np.arange(0.0, 60.0 + 1e-9, 0.5)
    normal_r = math.sqrt(200.0 / np.pi)
    frames = []
    for i, si in enumerate(s):
        # elliptical compression at 30 mm: area 60 mm2
        lumen = ellipse(12.0, 5.0 / np.pi, n=720) if abs(si - 30.0) < 0.1 else circle(normal_r, n=720)
        frames.append(FrameContours(index=i, lumen=lumen))
    m = compute_metrics(ContourSet(frames=tuple(frames)), s, params=MetricParams(vein_segment="common_iliac"))
    ven = m.summary["venous"]
    assert ven["mla_mm2"] == pytest.approx(60.0, rel=5e-3)
    assert ven["stenosis_vs_normal_percent"] == pytest.approx(70.0, abs=0.3)
    assert ven["stenosis_vs_reference_percent"] == pytest.approx(70.0, abs=0.3)
    assert [f["rule"] for f in m.flags] == ["venous_stenosis_vs_normal_50", "venous_stenosis_vs_reference_50"]
    assert np.all(np.isnan(m.per_frame["vessel_area_mm2"]))
    assert m.summary["volumes_mm3"]["vessel"] is None and m.summary["pav_percent"] is None
    assert m.summary["remodeling_index"] is None
    # mild compression: against the external iliac normal (150) 60 mm2 is 60 %, still flagged
    ext = compute_metrics(
        ContourSet(frames=tuple(frames)), s, params=MetricParams(vein_segment="external_iliac")
    )
    assert ext.summary["venous"]["stenosis_vs_normal_percent"] == pytest.approx(60.0, abs=0.3)


def test_lumen_outside_vessel_flag_names_frames():
    frames = [FrameContours(index=i, lumen=circle(1.5), vessel=circle(2.5)) for i in range(5)]
    frames[3] = FrameContours(index=3, lumen=circle(1.5, center=(1.5, 0.0)), vessel=circle(2.5))
    m = compute_metrics(ContourSet(frames=tuple(frames)), np.arange(5) * 0.5)
    flag = [f for f in m.flags if f["rule"] == "lumen_outside_vessel"]
    assert len(flag) == 1 and flag[0]["frames"] == [3]
    assert "by up to 0.50 mm on 1 frame(s): 3;" in flag[0]["message"]


def test_input_errors():
    cs = run([1.5, 1.5], 2.5)
    with pytest.raises(
        IVUSInputError, match=r"^arc_length_mm: length is 3 for 2 frames; give one position per frame$"
    ):
        compute_metrics(cs, np.arange(3.0))
    with pytest.raises(IVUSInputError, match=r"vein_segment 'popliteal' is unknown; use one of"):
        compute_metrics(cs, np.arange(2.0), params=MetricParams(vein_segment="popliteal"))


def test_mla_on_6000_frames():
    """A clinical-length pullback (400 mm) gives the analytic MLA; its speed is measured by
    Testing/benchmarks/bench_metrics.py, not asserted here."""
    n = 6000
    s = np.arange(n) * 0.0667
    radius = cosine_stenosis(s, center=200.0)
    lumens = [ellipse(r, 1.2 * r, n=500) for r in radius]
    vessel = circle(2.6, n=500)
    cs = ContourSet(frames=tuple(FrameContours(index=i, lumen=lumens[i], vessel=vessel) for i in range(n)))
    m = compute_metrics(cs, s)
    assert m.summary["mla"]["area_mm2"] == pytest.approx(1.2 * np.pi, rel=5e-3)


def test_odd_or_tiny_ray_count_is_refused():
    from IVUSReconstructLib.errors import IVUSInputError
    from IVUSReconstructLib.metrics import MetricParams, compute_metrics
    from IVUSReconstructLib.types import ContourSet, FrameContours

    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = np.column_stack([np.cos(theta), np.sin(theta)])
    contours = ContourSet(frames=(FrameContours(index=0, lumen=circle),))
    for n_rays in (2, 359):
        with pytest.raises(
            IVUSInputError, match=f"parameters: n_rays is {n_rays}; use an even number of at least 4"
        ):
            compute_metrics(contours, np.zeros(1), params=MetricParams(n_rays=n_rays))
