"""Two XA projections plus an IVUS pullback to 3D meshes in one command (issue 9)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from IVUSReconstructLib import angio
from IVUSReconstructLib.cli import main
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.xa import XAGeometry, write_xa


def _geometry(primary: float, secondary: float) -> XAGeometry:
    return XAGeometry(primary, secondary, 1100.0, 750.0, (0.3, 0.3), 512, 512)


@pytest.fixture(scope="module")
def biplane_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("angio")
    assert (
        main(
            [
                "phantom",
                "--preset",
                "coronary",
                "--length-mm",
                "6",
                "--size-px",
                "128",
                "--out",
                str(root / "ph"),
            ]
        )
        == 0
    )
    truth = read_centerline(root / "ph" / "centerline.mrk.json")
    paths = []
    for k, (primary, secondary) in enumerate(((-30.0, 20.0), (45.0, 25.0))):
        g = _geometry(primary, secondary)
        xa = write_xa(root / f"view{k}.dcm", angio.render_angiogram(truth.points_ras_mm, g, seed=k), g)
        rng = np.random.default_rng(k)
        curve = angio.project(truth.points_ras_mm, g) + rng.normal(0.0, 0.3, (len(truth.points_ras_mm), 2))
        curve_path = root / f"curve{k}.csv"
        np.savetxt(curve_path, curve, delimiter=",", header="row,col", comments="")
        paths += [xa, curve_path]
    return root, truth, paths


@pytest.mark.slow
def test_run_with_angiography_places_frames_on_the_true_centerline(biplane_case):
    root, truth, (xa1, c1, xa2, c2) = biplane_case
    out = root / "run"
    code = main(
        [
            "run",
            str(root / "ph" / "pullback.dcm"),
            "--angio",
            str(xa1),
            str(xa2),
            "--angio-curves",
            str(c1),
            str(c2),
            "--gating",
            "none",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    with open(out / "frames.csv") as fh:
        rows = list(csv.DictReader(fh))
    origins = np.array([[float(r["x_mm"]), float(r["y_mm"]), float(r["z_mm"])] for r in rows])
    arc = np.array([float(r["arc_length_mm"]) for r in rows])
    # where each frame belongs on the phantom's true centerline
    s_true = truth.arc_length_mm
    expected = np.column_stack([np.interp(arc, s_true, truth.points_ras_mm[:, i]) for i in range(3)])
    rms = float(np.sqrt(np.mean(np.sum((origins - expected) ** 2, axis=1))))
    assert rms < 0.5  # measured ~0.1 mm
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"]["centerline"]["source"] == "angio: view0.dcm + view1.dcm"
    assert (out / "lumen.vtp").stat().st_size > 10_000


def test_angio_command_writes_ras_markups(biplane_case, tmp_path):
    root, truth, (xa1, c1, xa2, c2) = biplane_case
    out = tmp_path / "cl.mrk.json"
    assert (
        main(["angio", str(xa1), str(xa2), "--curve1", str(c1), "--curve2", str(c2), "--out", str(out)]) == 0
    )
    doc = json.loads(out.read_text())
    assert doc["markups"][0]["coordinateSystem"] == "RAS"
    rebuilt = read_centerline(out)
    assert rebuilt.length_mm == pytest.approx(truth.length_mm, rel=0.05)


def test_angio_without_curves_is_a_usage_error(biplane_case, tmp_path, capsys):
    root, _, (xa1, _, xa2, _) = biplane_case
    code = main(
        [
            "run",
            str(root / "ph" / "pullback.dcm"),
            "--angio",
            str(xa1),
            str(xa2),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "--angio needs --angio-curves with one curve per view" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_single_projection_gives_a_planar_foreshortened_centerline(biplane_case, tmp_path, capsys):
    root, truth, (xa1, c1, _, _) = biplane_case
    out = tmp_path / "single.mrk.json"
    assert main(["angio", str(xa1), "--curve1", str(c1), "--out", str(out)]) == 0
    assert "foreshortened" in capsys.readouterr().err
    single = read_centerline(out)
    # the projection of the curve on the isocentre plane: never longer than the 3D truth
    assert single.length_mm <= truth.length_mm * 1.01
    assert single.length_mm > 0.5 * truth.length_mm
    pts = single.points_ras_mm - single.points_ras_mm.mean(axis=0)
    assert np.linalg.svd(pts, compute_uv=False)[2] < 1e-6 * single.length_mm  # planar


def test_second_view_without_its_curve_is_refused(biplane_case, tmp_path, capsys):
    _, _, (xa1, c1, xa2, _) = biplane_case
    assert (
        main(["angio", str(xa1), str(xa2), "--curve1", str(c1), "--out", str(tmp_path / "x.mrk.json")]) == 2
    )
    assert "give XA2 together with --curve2" in capsys.readouterr().err


def test_flipped_view_is_refused_with_one_line_and_nothing_written(biplane_case, tmp_path, capsys):
    """The issue's wrong geometry: view 2's image upside down. About half the points (or more)
    find no epipolar match; refused (exit 2) instead of a curve 13-17% too short."""
    _, _, (xa1, c1, xa2, c2) = biplane_case
    flipped = tmp_path / "curve1_flipped.csv"
    curve = np.loadtxt(c2, delimiter=",", skiprows=1)
    np.savetxt(flipped, np.column_stack([511 - curve[:, 0], curve[:, 1]]), delimiter=",",
               header="row,col", comments="")  # fmt: skip
    out = tmp_path / "cl.mrk.json"
    code = main(["angio", str(xa1), str(xa2), "--curve1", str(c1), "--curve2", str(flipped), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    # measured: only 2 points lie on each other's epipolar lines
    assert err.startswith(f"ivus-reconstruct: error: {flipped}: points do not correspond to {c1} (only ")
    assert err.rstrip().endswith(
        "; the geometry is likely wrong: check the view angles (PositionerPrimaryAngle/PositionerSecondaryAngle), "
        "the isocentre offset (table moved between runs), the image orientation (rows/columns flipped), that "
        "both curves trace the same vessel and that both run between the same two vessel ends"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve1_flipped.csv"]
