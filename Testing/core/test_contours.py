"""Contour / landmark files: formats, validation messages, and real clinical data."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polygon_area, polygon_centroid
from IVUSReconstructLib.io.contours import (
    check_contours_fit,
    read_contours,
    read_landmarks,
    spline_contour,
    write_contours_csv,
    write_contours_json,
    write_landmarks_json,
)
from IVUSReconstructLib.metrics import frame_geometry
from IVUSReconstructLib.types import ContourSet, FrameContours, Landmark

SPACING = 0.0175553  # mm / pixel of the AIVUS-CAA / HolOrama pullback (9 mm over 512 px)


def circle(r: float, center=(0.0, 0.0), n: int = 360) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([center[0] + r * np.cos(t), center[1] + r * np.sin(t)])


def sample_set() -> ContourSet:
    frames = (
        FrameContours(index=2, lumen=circle(1.5), vessel=circle(2.5), phase="ED", z_mm=0.0),
        FrameContours(index=7, lumen=circle(1.2, (0.1, 0.2)), calcium=(circle(0.3, (2.0, 0.0)),),
                      stent=circle(1.3), z_mm=0.5, calcium_arc_deg=12.0, confidence=0.9),
    )  # fmt: skip
    return ContourSet(frames=frames, landmarks=(Landmark(frame=7, kind="side_branch", angle_deg=135.0),),
                      pixel_spacing_mm=(0.02, 0.02), catheter_center_px=(249.5, 249.5))  # fmt: skip


def msg(path: Path, text: str) -> str:
    return "^" + re.escape(f"{path}: {text}") + "$"


# ---------------------------------------------------------------- native formats


def test_native_json_round_trip(tmp_path):
    path = write_contours_json(sample_set(), tmp_path / "contours.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "ivus-contours" and doc["frames"][0]["index"] == 2
    back = read_contours(path)
    assert back.indices.tolist() == [2, 7]
    np.testing.assert_allclose(back.frames[0].vessel, circle(2.5), atol=1e-5)
    np.testing.assert_allclose(back.frames[1].calcium[0], circle(0.3, (2.0, 0.0)), atol=1e-5)
    assert back.frames[0].phase == "ED" and back.frames[1].z_mm == 0.5
    assert back.frames[1].calcium_arc_deg == 12.0 and back.frames[1].confidence == 0.9
    assert back.frames[1].stent is not None and back.frames[1].vessel is None
    assert back.landmarks[0].angle_deg == 135.0 and back.catheter_center_px == (249.5, 249.5)


def test_plain_csv_round_trip(tmp_path):
    path = write_contours_csv(sample_set(), tmp_path / "contours.csv")
    assert path.read_text().splitlines()[0] == "frame,contour,x_mm,y_mm,z_mm"
    back = read_contours(path)
    assert back.indices.tolist() == [2, 7]
    assert polygon_area(back.frames[0].vessel) == pytest.approx(polygon_area(circle(2.5)), rel=1e-6)
    assert len(back.frames[1].calcium) == 1 and back.frames[1].z_mm == 0.5


# ---------------------------------------------------------------- tool formats


def _write_multimodars(path: Path, frames: dict[int, np.ndarray], z_step: float = 0.5) -> None:
    lines = []
    for k, (frame, pts) in enumerate(frames.items()):
        closed = np.vstack([pts, pts[:1]])
        lines += [f"{frame}\t{x:.17g}\t{y:.17g}\t{k * z_step:.17g}" for x, y in closed]
    path.write_text("\n".join(lines) + "\n")


def test_multimodars_csv_with_siblings(tmp_path):
    lumen = tmp_path / "diastolic_contours.csv"
    # image mm, y up, centre (4.5, 4.5): a circle at plane (0.5, -0.2) is written at (5.0, 4.7)
    _write_multimodars(lumen, {5: circle(1.5, (5.0, 4.7), 500), 9: circle(1.4, (4.5, 4.5), 500)})
    _write_multimodars(tmp_path / "eem_diastolic_contours.csv", {5: circle(2.5, (5.0, 4.7), 500)})
    _write_multimodars(tmp_path / "calcium_diastolic_contours.csv", {9: circle(0.2, (6.5, 4.5), 100)})
    _write_multimodars(tmp_path / "branch_diastolic_contours.csv", {9: circle(0.5, (4.5, 2.0), 100)})
    cs = read_contours(lumen)
    assert cs.indices.tolist() == [4, 8]  # 1-based frame numbers
    np.testing.assert_allclose(polygon_centroid(cs.frames[0].lumen), [0.5, -0.2], atol=1e-9)
    assert polygon_area(cs.frames[0].vessel) == pytest.approx(polygon_area(circle(2.5, n=500)), rel=1e-9)
    assert cs.frames[1].vessel is None and len(cs.frames[1].calcium) == 1
    assert cs.frames[0].phase == "ED" and cs.frames[1].z_mm == 0.5
    # the branch lies at image y 2.0 (below the centre, y up) = +y in the frame plane: 90 degrees
    assert cs.landmarks[0].frame == 8 and cs.landmarks[0].angle_deg == pytest.approx(90.0, abs=1e-6)
    eem = tmp_path / "eem_diastolic_contours.csv"
    with pytest.raises(
        IVUSInputError,
        match=msg(
            eem, f"file holds eem contours, not the lumen; pass {lumen}: its eem_* sibling is read with it"
        ),
    ):
        read_contours(eem)
    plain = read_contours(lumen, csv_y_up=False, csv_image_center_mm=(5.0, 4.7))
    np.testing.assert_allclose(polygon_centroid(plain.frames[0].lumen), [0.0, 0.0], atol=1e-9)


def _aivus_doc(knots_xy: list[np.ndarray]) -> dict:
    # AIVUS-CAA stores one extra knot that splprep(per=1) ignores
    xs = [list(k[:, 0]) + [float(k[0, 0]) + 0.7] for k in knots_xy]
    ys = [list(k[:, 1]) + [float(k[0, 1]) - 0.4] for k in knots_xy]
    return {"lumen": [xs, ys], "phases": ["D", "-"], "lumen_area": [0.0, 0.0]}


def test_aivus_json_spline_knots(tmp_path):
    knots = circle(50.0, (300.0, 256.0), 10)  # (x = col, y = row) pixels
    path = tmp_path / "anonymized_contours_1.json"
    path.write_text(json.dumps(_aivus_doc([knots, knots + 5.0])))
    with pytest.raises(IVUSInputError, match=r"pixel_spacing_mm is not stored .*; give the pixel spacing in mm"):
        read_contours(path)
    cs = read_contours(path, pixel_spacing_mm=SPACING)
    assert cs.indices.tolist() == [0, 1] and cs.frames[0].phase == "ED" and cs.frames[1].phase is None
    # a periodic cubic through 10 knots of a circle is within 0.1 % of the circle's area
    assert polygon_area(cs.frames[0].lumen) == pytest.approx(np.pi * (50 * SPACING) ** 2, rel=1e-3)
    # default catheter centre: (255.5, 255.5) px
    np.testing.assert_allclose(
        polygon_centroid(cs.frames[0].lumen), [44.5 * SPACING, 0.5 * SPACING], atol=1e-4
    )
    assert cs.catheter_center_px == (255.5, 255.5)


def test_holorama_json(tmp_path):
    knots = circle(60.0, (256.0, 256.0), 10)
    eem = circle(90.0, (256.0, 256.0), 12)
    entry = {"phase": "S", "lumen": {"contours": [[list(knots[:, 0]), list(knots[:, 1])]]},
             "eem": {"contours": [[list(eem[:, 0]), list(eem[:, 1])]]}, "calcium": {"contours": []},
             "branch": {"contours": []}}  # fmt: skip
    path = tmp_path / "ho.json"
    path.write_text(json.dumps({"3": entry, "gating_signal": {}}))
    cs = read_contours(path, pixel_spacing_mm=0.02, catheter_center_px=(256.0, 256.0))
    assert cs.indices.tolist() == [3] and cs.frames[0].phase == "ES"
    assert polygon_area(cs.frames[0].vessel) == pytest.approx(np.pi * 1.8**2, rel=5e-4)
    np.testing.assert_allclose(polygon_centroid(cs.frames[0].lumen), [0.0, 0.0], atol=1e-6)


def test_echoplaque_xml(tmp_path):
    pts = circle(40.0, (256.0, 256.0), 24)
    body = "".join(f"<Pt>{x:.4f},{y:.4f}</Pt>" for x, y in pts)
    path = tmp_path / "frames.xml"
    path.write_text(f"<Export><Fm><Num>4</Num><Ctr><Type>L</Type><Npts>24</Npts>{body}</Ctr></Fm></Export>")
    cs = read_contours(path, pixel_spacing_mm=0.025, catheter_center_px=(256.0, 256.0))
    assert cs.indices.tolist() == [4]
    assert polygon_area(cs.frames[0].lumen) == pytest.approx(polygon_area(pts) * 0.025**2, rel=1e-6)
    # AIVUS-CAA layout: calibration and image size in the file, <p> points, phase
    lower = body.replace("<Pt>", "<p>").replace("</Pt>", "</p>")
    path.write_text(
        "<AnalysisState><ImageState><Xdim>513</Xdim><Ydim>513</Ydim><NumberOfFrames>9</NumberOfFrames></ImageState>"
        "<ImageCalibration><XCalibration>0.02</XCalibration><YCalibration>0.02</YCalibration></ImageCalibration>"
        f"<FrameState><Fm><Num>2</Num><Phase>D</Phase><Ctr><Type>L</Type>{lower}</Ctr></Fm></FrameState>"
        "</AnalysisState>"
    )
    cs = read_contours(path)
    assert cs.frames[0].phase == "ED" and cs.catheter_center_px == (256.0, 256.0)
    assert polygon_area(cs.frames[0].lumen) == pytest.approx(polygon_area(pts) * 0.02**2, rel=1e-6)
    np.testing.assert_allclose(polygon_centroid(cs.frames[0].lumen), [0.0, 0.0], atol=1e-5)


def test_spline_contour_interpolates_knots():
    knots = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.5]])
    dense = spline_contour(knots, n_points=400)
    assert np.allclose(dense[0], knots[0])
    assert min(np.linalg.norm(dense - knots[2], axis=1)) < 0.02


# ---------------------------------------------------------------- validation


def _native(path: Path, frames: list[dict]) -> Path:
    path.write_text(json.dumps({"format": "ivus-contours", "version": 1, "frames": frames}))
    return path


def test_validation_messages(tmp_path):
    good = circle(1.0).tolist()
    nan = [list(p) for p in circle(1.0)]
    nan[3][0] = float("nan")
    p = _native(tmp_path / "nan.json", [{"index": 0, "lumen": nan}])
    with pytest.raises(
        IVUSInputError,
        match=msg(p, "frame 0 lumen has NaN or infinite coordinates; remove or fix those points"),
    ):
        read_contours(p)
    p = _native(tmp_path / "two.json", [{"index": 0, "lumen": [[0, 0], [1, 0]]}])
    with pytest.raises(
        IVUSInputError,
        match=msg(p, "frame 0 lumen has 2 distinct points; give a closed contour of at least 3 points"),
    ):
        read_contours(p)
    bowtie = [[0, 0], [1, 1], [1, 0], [0, 1]]
    p = _native(tmp_path / "bow.json", [{"index": 0, "lumen": good, "vessel": bowtie}])
    with pytest.raises(
        IVUSInputError, match=msg(p, "frame 0 vessel is a self-intersecting polygon; redraw that contour")
    ):
        read_contours(p)
    p = _native(tmp_path / "dup.json", [{"index": 3, "lumen": good}, {"index": 3, "lumen": good}])
    with pytest.raises(IVUSInputError, match=msg(p, "frame 3 appears twice; keep one contour set per frame")):
        read_contours(p)
    p = _native(tmp_path / "order.json", [{"index": 5, "lumen": good}, {"index": 3, "lumen": good}])
    with pytest.raises(IVUSInputError, match=msg(p, "frame 3 comes after 5; sort the frames by index")):
        read_contours(p)
    p = tmp_path / "notes.txt"
    p.write_text("hello world\n")
    with pytest.raises(IVUSInputError, match=re.escape(f"{p}: format is not a known contour format; use")):
        read_contours(p)
    cs = read_contours(
        _native(tmp_path / "ok.json", [{"index": 0, "lumen": good}, {"index": 12, "lumen": good}])
    )
    with pytest.raises(IVUSInputError, match=msg(Path("c.json"), "frame index 12 is outside the pullback's 10 frames (0..9); "
                                                 "use contours of this pullback (frame indices are 0-based)")):  # fmt: skip
        check_contours_fit(cs, 10, "c.json")
    check_contours_fit(cs, 13, "c.json")  # fits


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        ({"index": None}, "frames[1].index is None, not a number"),
        ({"index": "a"}, "frames[1].index is 'a', not a number"),
        ({"index": 2.5}, "frames[1].index is 2.5, not a whole number"),
        ({"index": True}, "frames[1].index is True, not a number"),
    ],
)
def test_native_index_not_an_integer(tmp_path, frame, text):
    good = circle(1.0).tolist()
    p = _native(tmp_path / "c.json", [{"index": 0, "lumen": good}, {**frame, "lumen": good}])
    with pytest.raises(
        IVUSInputError, match=msg(p, f"{text}; give each frame's 0-based index as a whole number")
    ):
        read_contours(p)


def test_native_numeric_fields_and_landmarks(tmp_path):
    good = circle(1.0).tolist()
    p = _native(tmp_path / "z.json", [{"index": 0, "lumen": good, "z_mm": "x"}])
    with pytest.raises(
        IVUSInputError, match=msg(p, "frames[0].z_mm is 'x', not a number; give z_mm as a number")
    ):
        read_contours(p)
    p = tmp_path / "nan.json"
    # json.dumps writes the bare NaN token that json.loads accepts
    p.write_text(json.dumps({"format": "ivus-contours", "frames": [{"index": 4, "lumen": good,
                                                                    "confidence": float("nan")}]}))  # fmt: skip
    with pytest.raises(IVUSInputError, match=msg(
        p, "frames[0].confidence is nan, not a finite number; give the confidence as a number in [0, 1]")):  # fmt: skip
        read_contours(p)
    doc = {"format": "ivus-contours", "frames": [{"index": 4, "lumen": good}], "landmarks": 3}
    p.write_text(json.dumps(doc))
    with pytest.raises(IVUSInputError, match=msg(
        p, 'landmarks is 3, not a list; write "landmarks": [{"frame": 40, "kind": "side_branch"}, ...]')):  # fmt: skip
        read_contours(p)
    doc["landmarks"] = [{"frame": 4, "point": [1, 2]}]
    p.write_text(json.dumps(doc))
    with pytest.raises(IVUSInputError, match=msg(
        p, "landmarks[0].point is [1, 2], not 3 numbers; give the point as [x, y, z] in mm")):  # fmt: skip
        read_contours(p)
    doc["landmarks"], doc["pixel_spacing_mm"] = [], 0.02
    p.write_text(json.dumps(doc))
    with pytest.raises(IVUSInputError, match=msg(
        p, "pixel_spacing_mm is 0.02, not 2 numbers; give [row, col] mm per pixel")):  # fmt: skip
        read_contours(p)


def test_plain_csv_bad_cells(tmp_path):
    p = tmp_path / "c.csv"
    head = "frame,contour,x_mm,y_mm,z_mm\n0,lumen,1,0,\n"
    cases = [
        ("0,lumen,a,0,\n", "line 3 column x_mm is 'a', not a number; write a number"),
        ("inf,lumen,0,1,\n", "line 3 column frame is 'inf', not a finite number; "
                               "write the 0-based frame index as a whole number"),
        ("1e999,lumen,0,1,\n", "line 3 column frame is '1e999', not a finite number; "
                                 "write the 0-based frame index as a whole number"),
        ("0.5,lumen,0,1,\n", "line 3 column frame is '0.5', not a whole number; "
                               "write the 0-based frame index as a whole number"),
        (",lumen,0,1,\n", "line 3 column frame is '', not a number; write the 0-based frame index as a whole number"),
        ("0,lumen,0,1,zz\n", "line 3 column z_mm is 'zz', not a number; write a number or leave it empty"),
    ]  # fmt: skip
    for row, text in cases:
        p.write_text(head + row)
        with pytest.raises(IVUSInputError, match=msg(p, text)):
            read_contours(p)
    # a NaN coordinate is a number: validate_polygon names the frame and contour
    p.write_text(head + "0,lumen,nan,1,\n0,lumen,0,-1,\n")
    with pytest.raises(IVUSInputError, match=msg(p, "frame 0 lumen has NaN or infinite coordinates; "
                                                   "remove or fix those points")):  # fmt: skip
        read_contours(p)


def test_multimodars_bad_frame_numbers(tmp_path):
    p = tmp_path / "diastolic_contours.csv"
    for frame, text in [
        ("inf", "row 2 frame is inf, not a finite number; write the 1-based frame number as a whole number"),
        ("nan", "row 2 frame is nan, not a finite number; write the 1-based frame number as a whole number"),
        ("2.5", "row 2 frame is 2.5, not a whole number; write the 1-based frame number as a whole number"),
    ]:
        p.write_text(f"1\t5.0\t4.5\t0\n{frame}\t4.5\t5.0\t0\n1\t4.0\t4.5\t0\n")
        with pytest.raises(IVUSInputError, match=msg(p, text)):
            read_contours(p)


def test_pixel_formats_bad_values(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"lumen": [[[300, 350, 300, "x"]], [[200, 256, 300, 256]]]}))
    with pytest.raises(IVUSInputError, match=msg(
        p, "lumen frame 0 is not two equally long lists of numbers (x, y); export the contours again")):  # fmt: skip
        read_contours(p, pixel_spacing_mm=SPACING)
    p = tmp_path / "e.xml"
    p.write_text("<R><Fm><Num>x1</Num><Ctr><Type>L</Type><p>1,2</p></Ctr></Fm></R>")
    with pytest.raises(IVUSInputError, match=msg(
        p, "Fm/Num is 'x1', not a number; give each frame number as a whole number")):  # fmt: skip
        read_contours(p, pixel_spacing_mm=SPACING)
    p.write_text("<R><Fm><Num>1</Num><Ctr><Type>L</Type><p>1,2</p><p>3</p></Ctr></Fm></R>")
    with pytest.raises(IVUSInputError, match=msg(
        p, "frame 1 Ctr/p is ['3'], not 2 numbers; write each point as x,y pixels")):  # fmt: skip
        read_contours(p, pixel_spacing_mm=SPACING)


def test_landmarks_native_lps_and_markups(tmp_path):
    lms = (Landmark(frame=40, kind="side_branch", angle_deg=135.0, point_ras_mm=np.array([1.0, 2.0, 3.0])),)
    path = write_landmarks_json(lms, tmp_path / "lm.json", coordinate_system="LPS")
    assert json.loads(path.read_text())["landmarks"][0]["point"] == [-1.0, -2.0, 3.0]
    back = read_landmarks(path)
    np.testing.assert_allclose(back[0].point_ras_mm, [1.0, 2.0, 3.0])
    assert back[0].angle_deg == 135.0 and back[0].frame == 40
    markups = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
               "markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [
                   {"label": "F120", "position": [10.0, 20.0, 30.0]}, {"label": "33", "position": [0.0, 1.0, 2.0]}]}]}  # fmt: skip
    mp = tmp_path / "points.mrk.json"
    mp.write_text(json.dumps(markups))
    got = read_landmarks(mp)
    assert [lm.frame for lm in got] == [33, 120]
    np.testing.assert_allclose(got[1].point_ras_mm, [-10.0, -20.0, 30.0])
    assert got[0].kind == "side_branch"


# ---------------------------------------------------------------- real clinical data


AAOCA = ("ivus_rest", "ivus_stress", "ivus_prestent", "ivus_poststent")


def test_real_aaoca_areas_match_report(real_data):
    worst = 0.0
    for name in AAOCA:
        folder = real_data / "aaoca_ivus_ccta" / name
        report = {(int(r["frame"]), r["phase"]): float(r["lumen_area"])
                  for r in csv.DictReader(open(folder / "combined_sorted_manual.csv"))}  # fmt: skip
        for phase, file in (("D", "diastolic_contours.csv"), ("S", "systolic_contours.csv")):
            cs = read_contours(folder / file)
            assert len(cs.frames) >= 17
            for f in cs.frames:
                worst = max(worst, abs(polygon_area(f.lumen) - report[(f.index + 1, phase)]))
    assert worst < 0.01  # the report is rounded to 0.01 mm2 (measured: 0.005)


def test_real_ivus_full_lumen_inside_eem(real_data):
    for phase in ("diastolic", "systolic"):
        cs = read_contours(real_data / "aaoca_ivus_ccta" / "ivus_full" / f"{phase}_contours.csv")
        assert cs.has_vessel and len(cs.frames) in (31, 32)
        assert sum(bool(f.calcium) for f in cs.frames) == 12
        assert len(cs.landmarks) == 14
        geo = frame_geometry(cs.frames)
        # measured: the lumen stays >= 0.045 mm inside the EEM on every frame
        assert np.nanmax(geo["lumen_outside_vessel_mm"]) < -0.04
        assert np.nanmin(geo["plaque_area_mm2"]) > 0.8


def test_real_aivus_and_holorama_areas(real_data):
    folder = real_data / "aivus_pullback_contours"
    src = folder / "aivus_caa" / "anonymized_contours_0_7_4.json"
    stored = json.loads(src.read_text())
    cs = read_contours(src, pixel_spacing_mm=SPACING)
    assert len(cs.frames) == 439
    errors = [abs(polygon_area(f.lumen) - stored["lumen_area"][f.index]) for f in cs.frames]
    assert max(errors) < 0.01  # measured 0.003
    assert sum(f.phase == "ED" for f in cs.frames) == stored["phases"].count("D")

    rows = [
        r.split("\t") for r in (folder / "aivus_caa" / "anonymized_report.txt").read_text().splitlines()[1:]
    ]
    report = {int(r[0]): float(r[3]) for r in rows}
    by_index = {f.index: f for f in cs.frames}
    for file in ("diastolic_contours.csv", "systolic_contours.csv"):
        gated = read_contours(folder / "aivus_caa" / "anonymized_csv_files" / file)
        assert max(abs(polygon_area(f.lumen) - report[f.index + 1]) for f in gated.frames) < 0.01
        # same frame, two formats: the y-up CSV and the pixel knots agree in the frame plane
        # (within the 4.5 mm vs 255.5 px centre conventions, 0.015 mm)
        for f in gated.frames[:5]:
            d = polygon_centroid(f.lumen) - polygon_centroid(by_index[f.index].lumen)
            assert np.hypot(*d) < 0.05

    ho_path = folder / "holorama" / "anonymized_contours_ho_0_1_0.json"
    ho = json.loads(ho_path.read_text())
    hs = read_contours(ho_path, pixel_spacing_mm=SPACING)
    assert len(hs.frames) == 439 and sum(f.vessel is not None for f in hs.frames) == 72
    assert (
        max(abs(polygon_area(f.lumen) - ho[str(f.index)]["lumen"]["measurements"]["area"]) for f in hs.frames)
        < 0.01
    )
    geo = frame_geometry(hs.frames)
    assert np.nanmax(geo["lumen_outside_vessel_mm"]) < 0.0


def test_contours_json_streamed_by_numpy_is_byte_identical_to_json_dumps(tmp_path):
    """The numpy printer writes exactly json.dumps(indent=1): signs, -0.0, 1e-05 forms, trailing
    zeros, empty polygons, calcium lists, large values, landmarks."""
    from IVUSReconstructLib.io.contours import contours_to_json, write_contours_json
    from IVUSReconstructLib.types import Landmark

    rng = np.random.default_rng(4)
    edge = np.array([0.0, -0.0, 1e-5, -3e-5, 9.4e-5, 1e-4, -1e-4, 4.9e-5, -4e-6, 123456.78901, -99999.999996,
                     5.5, 12.0, 0.1, 1.23456789, -7.000001, 0.00015, 1e8 + 0.5])  # fmt: skip
    frames = (
        FrameContours(
            0,
            np.column_stack([edge, edge[::-1]]),
            np.zeros((0, 2)),
            calcium=(rng.normal(size=(5, 2)), 1e-4 * rng.normal(size=(1, 2))),
            stent=100 * rng.normal(size=(3, 2)),
            phase="ED",
            z_mm=0.1,
            confidence=0.5,
        ),  # fmt: skip
        FrameContours(3, 3 * rng.normal(size=(180, 2)), 5 * rng.normal(size=(180, 2)), calcium_arc_deg=12.5),
        FrameContours(4, np.array([[np.nan, 1.0], [2.0, 3.0]])),
    )
    contours = ContourSet(frames, pixel_spacing_mm=(0.02, 0.02), catheter_center_px=(1.5, 2.5),
                          landmarks=(Landmark(3, "side_branch", 10.0, None),))  # fmt: skip
    for case in (contours, ContourSet(frames[:2]), ContourSet(())):
        path = write_contours_json(case, tmp_path / "c.json", chunk_frames=1)
        assert path.read_text(encoding="utf-8") == json.dumps(contours_to_json(case), indent=1) + "\n"
