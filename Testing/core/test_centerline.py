"""Centerline readers and the Slicer markups writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.centerline import read_centerline, write_markups_curve
from IVUSReconstructLib.types import Centerline

POINTS = np.array([[1.0, 2.0, 3.0], [4.0, 6.0, 3.0], [4.0, 6.0, 15.0]])  # length 5 + 12 = 17


def _markups(path, points, system="LPS", kind="Curve"):
    doc = {
        "@schema": "x",
        "markups": [
            {
                "type": kind,
                "coordinateSystem": system,
                "controlPoints": [{"id": str(i), "position": list(p)} for i, p in enumerate(points)],
            }
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def test_markups_lps_is_converted_to_ras(tmp_path):
    c = read_centerline(_markups(tmp_path / "c.mrk.json", POINTS, "LPS"))
    np.testing.assert_allclose(c.points_ras_mm, POINTS * [-1, -1, 1])
    assert c.length_mm == pytest.approx(17.0)


def test_markups_ras_point_list_kept(tmp_path):
    c = read_centerline(_markups(tmp_path / "c.json", POINTS, "RAS", kind="Fiducial"))
    np.testing.assert_allclose(c.points_ras_mm, POINTS)


def test_proximal_first_is_reversed(tmp_path):
    c = read_centerline(_markups(tmp_path / "c.json", POINTS, "RAS"), order="proximal-first")
    np.testing.assert_allclose(c.points_ras_mm, POINTS[::-1])


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_write_markups_roundtrip(tmp_path, system):
    cl = Centerline(POINTS)
    frames = np.array([[1.0, 2.0, 3.5], [4.0, 6.0, 9.0]])
    path = write_markups_curve(cl, tmp_path / "cl.mrk.json", coordinate_system=system, frame_points=frames)
    doc = json.loads(path.read_text())
    assert "markups-schema-v1.0.3" in doc["@schema"]
    curve, points = doc["markups"]
    assert (curve["type"], curve["coordinateSystem"], curve["coordinateUnits"]) == ("Curve", system, "mm")
    assert points["type"] == "Fiducial" and [cp["label"] for cp in points["controlPoints"]] == ["F0", "F1"]
    sign = np.array([-1, -1, 1]) if system == "LPS" else np.ones(3)
    np.testing.assert_allclose([cp["position"] for cp in curve["controlPoints"]], POINTS * sign)
    assert all(cp["positionStatus"] == "defined" for cp in curve["controlPoints"])
    np.testing.assert_allclose(read_centerline(path).points_ras_mm, POINTS)


def _vtk_lines(path, cells, radius=None, header=None):
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts = np.vstack(cells)
    poly = vtkPolyData()
    vp = vtkPoints()
    vp.SetData(numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vp)
    lines = vtkCellArray()
    start = 0
    for c in cells:
        lines.InsertNextCell(len(c), list(range(start, start + len(c))))
        start += len(c)
    poly.SetLines(lines)
    if radius is not None:
        arr = numpy_to_vtk(np.asarray(radius, dtype=float), deep=True)
        arr.SetName("MaximumInscribedSphereRadius")
        poly.GetPointData().AddArray(arr)
    if str(path).endswith(".vtp"):
        from vtkmodules.vtkIOXML import vtkXMLPolyDataWriter

        w = vtkXMLPolyDataWriter()
    else:
        from vtkmodules.vtkIOLegacy import vtkPolyDataWriter

        w = vtkPolyDataWriter()
        if header:
            w.SetHeader(header)
    w.SetInputData(poly)
    w.SetFileName(str(path))
    w.Write()
    return path


def test_vmtk_vtp_takes_longest_cell_and_radius(tmp_path):
    short = np.array([[0, 0, 0], [0, 0, 5.0]])
    long = np.array([[0, 0, 0], [0, 0, 5.0], [0, 3, 9.0]])
    path = _vtk_lines(tmp_path / "cl.vtp", [short, long], radius=[9, 8, 3, 2, 1.5])
    c = read_centerline(path)
    np.testing.assert_allclose(c.points_ras_mm, long)
    np.testing.assert_allclose(c.radius_mm, [3, 2, 1.5])
    assert c.length_mm == pytest.approx(10.0)
    c0 = read_centerline(path, cell=0, order="proximal-first")
    np.testing.assert_allclose(c0.points_ras_mm, short[::-1])
    np.testing.assert_allclose(c0.radius_mm, [8, 9])


def test_legacy_vtk_with_lps_tag_is_converted(tmp_path):
    path = _vtk_lines(tmp_path / "cl.vtk", [POINTS], header="3D Slicer output. SPACE=LPS")
    np.testing.assert_allclose(read_centerline(path).points_ras_mm, POINTS * [-1, -1, 1])


@pytest.mark.parametrize(
    "text",
    [
        "x,y,z\n1,2,3\n4,6,3\n4,6,15\n",
        "1\t2\t3\n4\t6\t3\n4\t6\t15\n",
        "1 2 3\n4 6 3\n\n4 6 15\n",
        "id,z_mm,y_mm,x_mm\na,3,2,1\nb,3,6,4\nc,15,6,4\n",
        "# columns = id,x,y,z,ow\np1,1,2,3,1\np2,4,6,3,1\np3,4,6,15,1\n",
    ],
)
def test_text_point_lists(tmp_path, text):
    path = tmp_path / "cl.csv"
    path.write_text(text)
    np.testing.assert_allclose(read_centerline(path).points_ras_mm, POINTS)


def test_fcsv_lps_tag(tmp_path):
    path = tmp_path / "cl.fcsv"
    path.write_text("# CoordinateSystem = LPS\n# columns = id,x,y,z\n1,1,2,3\n2,4,6,3\n3,4,6,15\n")
    np.testing.assert_allclose(read_centerline(path).points_ras_mm, POINTS * [-1, -1, 1])


def test_errors(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(IVUSInputError) as e:
        read_centerline(missing)
    assert str(e.value) == f"{missing}: file does not exist; check the centerline's path"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IVUSInputError, match="file is empty; export the centerline again"):
        read_centerline(empty)
    one = tmp_path / "one.csv"
    one.write_text("1,2,3\n")
    with pytest.raises(
        IVUSInputError, match="has fewer than 2 points; give a centerline of at least 2 distinct"
    ):
        read_centerline(one)
    dup = tmp_path / "dup.csv"
    dup.write_text("1,2,3\n1,2,3\n1,2,3\n")
    with pytest.raises(IVUSInputError, match="has only one distinct point"):
        read_centerline(dup)
    nan = tmp_path / "nan.csv"
    nan.write_text("1,2,3\n4,nan,6\n7,8,9\n")
    with pytest.raises(IVUSInputError, match="non-finite coordinate at point 1"):
        read_centerline(nan)
    bad = tmp_path / "bad.xyz"
    bad.write_text("1 2 3\n")
    with pytest.raises(IVUSInputError, match="suffix is not a centerline format"):
        read_centerline(bad)
    with pytest.raises(IVUSInputError, match="centerline order is 'backwards'; use distal-first or proximal-first"):
        read_centerline(dup, order="backwards")


def test_real_vmtk_and_csv(real_data):
    folder = real_data / "aaoca_ivus_ccta"
    rca = read_centerline(folder / "rca_cl.vtp")
    assert rca.points_ras_mm.shape == (763, 3)  # longest of the 4 outlet paths
    assert rca.length_mm == pytest.approx(204.35, abs=0.01)
    # VMTK paths start at the inlet (aorta, radius ~12.8 mm) and end in the distal RCA
    assert rca.radius_mm[0] == pytest.approx(12.778, abs=1e-3)
    distal_first = read_centerline(folder / "rca_cl.vtp", order="proximal-first")
    assert distal_first.radius_mm[0] == pytest.approx(1.0408, abs=1e-3)
    raw = read_centerline(folder / "centerline_raw.csv")
    assert raw.points_ras_mm.shape == (188, 3)
    assert raw.length_mm == pytest.approx(161.54, abs=0.01)
    np.testing.assert_allclose(raw.points_ras_mm[0], [13.0847, -200.3508, 1751.8602])
