"""A centerline from VMTK-style polydata already in memory (what a Slicer model node holds)."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData, vtkPolyLine

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.centerline import centerline_from_polydata


def polydata(points: np.ndarray, lines: list[list[int]], radius_name: str | None = None) -> vtkPolyData:
    vtk_points = vtkPoints()
    for p in points:
        vtk_points.InsertNextPoint(*p)
    cells = vtkCellArray()
    for ids in lines:
        line = vtkPolyLine()
        line.GetPointIds().SetNumberOfIds(len(ids))
        for i, point_id in enumerate(ids):
            line.GetPointIds().SetId(i, point_id)
        cells.InsertNextCell(line)
    out = vtkPolyData()
    out.SetPoints(vtk_points)
    out.SetLines(cells)
    if radius_name:
        radius = vtkDoubleArray()
        radius.SetName(radius_name)
        for r in 1.0 + 0.1 * np.arange(len(points)):
            radius.InsertNextValue(r)
        out.GetPointData().AddArray(radius)
    return out


def test_the_polyline_with_most_points_in_its_order_with_radius():
    points = np.column_stack([np.zeros(8), np.zeros(8), np.arange(8.0)])
    # a long two-point branch and a five-point path: the path with more points wins, not the longer one
    data = polydata(points * [1, 1, 10], [[0, 7], [5, 4, 3, 2, 1]], "MaximumInscribedSphereRadius")
    centerline = centerline_from_polydata(data, name="model")
    assert centerline.points_ras_mm[:, 2] == pytest.approx([50, 40, 30, 20, 10])
    assert centerline.radius_mm == pytest.approx([1.5, 1.4, 1.3, 1.2, 1.1])
    assert centerline.source == "slicer model model"
    back = centerline_from_polydata(data, order="proximal-first")
    assert back.points_ras_mm[:, 2] == pytest.approx([10, 20, 30, 40, 50])
    assert back.radius_mm == pytest.approx([1.1, 1.2, 1.3, 1.4, 1.5])


def test_points_without_lines_in_storage_order_and_too_few_points():
    points = np.array([[0.0, 0.0, 0.0], [0.0, 3.0, 4.0], [0.0, 6.0, 8.0]])
    centerline = centerline_from_polydata(polydata(points, []))
    assert centerline.length_mm == pytest.approx(10.0) and centerline.radius_mm is None
    with pytest.raises(IVUSInputError) as error:
        centerline_from_polydata(polydata(points[:1], []), name="CL")
    assert str(error.value) == "CL: polydata has fewer than 2 points; select a centerline model"
