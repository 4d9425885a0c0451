"""Keyframe files in every contour format land on this pullback's frame plane."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.geometry import mm_to_px, polygon_area, polygon_centroid, px_to_mm, ray_radii
from IVUSReconstructLib.io.contours import write_contours_csv, write_contours_json
from IVUSReconstructLib.io.keyframes import read_keyframes
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import ContourSet, FrameContours

FRAMES = (3, 9)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("coronary", seed=29, length_mm=1.5, size_px=256)


@pytest.fixture(scope="module")
def truth(phantom):
    return {f.index: f for f in phantom.truth.frames if f.index in FRAMES}


def _px(phantom, poly: np.ndarray) -> np.ndarray:
    """Pullback pixels (row, col) of frame-plane mm points."""
    pb = phantom.pullback
    return mm_to_px(poly, pb.pixel_spacing_mm, pb.catheter_center_px)


def _radial_gap_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference of the two borders' radii over 360 directions about the catheter."""
    return float(np.abs(ray_radii(a, np.zeros(2), 360) - ray_radii(b, np.zeros(2), 360)).max())


def _assert_exact(read: ContourSet, truth, tol_mm: float) -> None:
    assert read.indices.tolist() == list(FRAMES)
    for f in read.frames:
        assert f.source == "edited"
        for border in ("lumen", "vessel"):
            assert np.abs(getattr(f, border) - getattr(truth[f.index], border)).max() < tol_mm


def _assert_close(read: ContourSet, truth) -> None:
    # a periodic spline through every 4th point of the truth: the same border within 0.3 %
    # of its area and a quarter of a pixel (0.0098 mm) everywhere
    assert read.indices.tolist() == list(FRAMES)
    for f in read.frames:
        for border in ("lumen", "vessel"):
            mine, theirs = getattr(f, border), getattr(truth[f.index], border)
            assert polygon_area(mine) == pytest.approx(polygon_area(theirs), rel=3e-3)
            assert _radial_gap_mm(mine, theirs) < 0.0098


def test_native_json_in_its_own_spacing_and_centre_lands_on_the_truth(phantom, truth, tmp_path):
    # drawn on the same images but stored with 0.03 mm pixels about a catheter at (140, 120) px
    sp, centre = (0.03, 0.03), (140.0, 120.0)
    theirs = ContourSet(
        frames=tuple(
            FrameContours(index=i, lumen=px_to_mm(_px(phantom, f.lumen), sp, centre),
                          vessel=px_to_mm(_px(phantom, f.vessel), sp, centre))
            for i, f in truth.items()
        ),
        pixel_spacing_mm=sp,
        catheter_center_px=centre,
    )  # fmt: skip
    path = write_contours_json(theirs, tmp_path / "edits.json")
    read = read_keyframes(path, phantom.pullback)
    assert read.pixel_spacing_mm == phantom.pullback.pixel_spacing_mm
    # 5 decimals in the file, scaled by the spacings' ratio
    _assert_exact(read, truth, 1e-5)


def test_plain_csv_is_this_pullbacks_frame_plane(phantom, truth, tmp_path):
    path = write_contours_csv(ContourSet(frames=tuple(truth.values())), tmp_path / "edits.csv")
    _assert_exact(read_keyframes(path, phantom.pullback), truth, 1e-5)


def test_multimodars_csv_about_the_image_corner_lands_on_the_truth(phantom, truth, tmp_path):
    pb = phantom.pullback
    height = pb.shape_px[0]

    def write(path: Path, border: str) -> None:
        lines = []
        for k, (i, f) in enumerate(truth.items()):
            px = _px(phantom, getattr(f, border))
            # AIVUS-CAA: (col, H - row) * spacing, frames 1-based, first point repeated
            xy = np.column_stack(
                [px[:, 1] * pb.pixel_spacing_mm[1], (height - px[:, 0]) * pb.pixel_spacing_mm[0]]
            )
            xy = np.vstack([xy, xy[:1]])
            lines += [f"{i + 1}\t{x:.17g}\t{y:.17g}\t{0.5 * k}" for x, y in xy]
        path.write_text("\n".join(lines) + "\n")

    write(tmp_path / "diastolic_contours.csv", "lumen")
    write(tmp_path / "eem_diastolic_contours.csv", "vessel")
    _assert_exact(read_keyframes(tmp_path / "diastolic_contours.csv", pb), truth, 1e-9)


def _knots(phantom, poly: np.ndarray) -> np.ndarray:
    """Every 4th point as (x = col, y = row) pixel knots."""
    return _px(phantom, poly)[::4, ::-1]


def test_aivus_json_knots_in_pixels_land_on_the_truth(phantom, truth, tmp_path):
    n = max(FRAMES) + 1
    doc = {"lumen": [[[] for _ in range(n)], [[] for _ in range(n)]],
           "eem": [[[] for _ in range(n)], [[] for _ in range(n)]]}  # fmt: skip
    for i, f in truth.items():
        for key, border in (("lumen", "lumen"), ("eem", "vessel")):
            k = _knots(phantom, getattr(f, border))
            # AIVUS-CAA stores one more knot, which its splprep(per=1) ignores
            doc[key][0][i] = [*k[:, 0].tolist(), float(k[0, 0]) + 3.0]
            doc[key][1][i] = [*k[:, 1].tolist(), float(k[0, 1]) - 2.0]
    path = tmp_path / "anonymized_contours_1.json"
    path.write_text(json.dumps(doc))
    _assert_close(read_keyframes(path, phantom.pullback), truth)


def test_holorama_json_knots_in_pixels_land_on_the_truth(phantom, truth, tmp_path):
    doc = {}
    for i, f in truth.items():
        entry = {}
        for key, border in (("lumen", "lumen"), ("eem", "vessel")):
            k = _knots(phantom, getattr(f, border))
            entry[key] = {"contours": [[k[:, 0].tolist(), k[:, 1].tolist()]]}
        doc[str(i)] = entry
    path = tmp_path / "holorama.json"
    path.write_text(json.dumps(doc))
    _assert_close(read_keyframes(path, phantom.pullback), truth)


def test_echoplaque_xml_with_another_calibration_lands_on_the_truth(phantom, truth, tmp_path):
    # its own calibration (0.05 mm) and image size (513 px) describe another display of the
    # same pixels: the pixels, read with this pullback's spacing and centre, decide
    frames = ""
    for i, f in truth.items():
        frames += f"<Fm><Num>{i}</Num>"
        for kind, border in (("L", "lumen"), ("V", "vessel")):
            pts = "".join(f"<p>{c:.17g},{r:.17g}</p>" for r, c in _px(phantom, getattr(f, border)))
            frames += f"<Ctr><Type>{kind}</Type>{pts}</Ctr>"
        frames += "</Fm>"
    path = tmp_path / "echoplaque.xml"
    path.write_text(
        "<AnalysisState><ImageState><Xdim>513</Xdim><Ydim>513</Ydim></ImageState>"
        "<ImageCalibration><XCalibration>0.05</XCalibration><YCalibration>0.05</YCalibration></ImageCalibration>"
        f"<FrameState>{frames}</FrameState></AnalysisState>"
    )
    _assert_exact(read_keyframes(path, phantom.pullback), truth, 1e-9)


def test_a_keyframe_may_hold_the_vessel_alone(phantom, truth, tmp_path):
    f = truth[FRAMES[0]]
    path = tmp_path / "vessel_only.json"
    path.write_text(json.dumps({
        "format": "ivus-contours", "version": 1, "units": "mm", "coordinates": "frame-plane",
        "frames": [{"index": f.index, "vessel": f.vessel.tolist()}],
    }))  # fmt: skip
    read = read_keyframes(path, phantom.pullback).frames[0]
    assert read.lumen is None and np.abs(read.vessel - f.vessel).max() < 1e-12
    assert polygon_centroid(read.vessel) == pytest.approx(polygon_centroid(f.vessel), abs=1e-12)
