"""Tests of the teaching exports: coloured .glb and turntable GIF."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from PIL import Image
from vtkmodules.util.numpy_support import vtk_to_numpy

from IVUSReconstructLib import export, render

from .test_render import _vessel


@pytest.fixture(scope="module")
def scene():
    return _vessel(n_frames=40, n_around=24)


def _glb_parts(path):
    blob = path.read_bytes()
    magic, version, total = struct.unpack("<4sII", blob[:12])
    length, kind = struct.unpack("<I4s", blob[12:20])
    doc = json.loads(blob[20 : 20 + length])
    blen, bkind = struct.unpack("<I4s", blob[20 + length : 28 + length])
    return magic, version, total, len(blob), kind, bkind, doc, blob[28 + length : 28 + length + blen]


def test_glb_has_vertex_colours_from_the_burden_colormap(scene, tmp_path):
    mesh, *_ = scene
    path = export.write_colored_glb(mesh, tmp_path / "vessel.glb")
    magic, version, total, size, kind, bkind, doc, binary = _glb_parts(path)
    assert (magic, version, total, kind, bkind) == (b"glTF", 2, size, b"JSON", b"BIN\0")
    assert [m["name"] for m in doc["meshes"]] == ["lumen", "vessel"]
    prim = doc["meshes"][1]["primitives"][0]
    colour = doc["accessors"][prim["attributes"]["COLOR_0"]]
    view = doc["bufferViews"][colour["bufferView"]]
    rgba = np.frombuffer(binary, np.float32, colour["count"] * 4, view["byteOffset"]).reshape(-1, 4)
    burden = vtk_to_numpy(mesh.vessel.GetPointData().GetArray("plaque_burden_percent"))
    # Ring points keep their order through the triangle filter, so colours match point by point.
    assert np.allclose(rgba[:, :3], render.colormap_rgb(burden), atol=1e-6)
    assert np.allclose(rgba[:, 3], 0.55)
    positions = doc["accessors"][prim["attributes"]["POSITION"]]
    assert positions["count"] == mesh.vessel.GetNumberOfPoints()
    assert doc["accessors"][prim["indices"]]["count"] == 3 * mesh.vessel.GetNumberOfCells()


def test_glb_loads_in_vtk(scene, tmp_path):
    from vtkmodules.vtkIOGeometry import vtkGLTFReader

    mesh, *_ = scene
    path = export.write_colored_glb(mesh, tmp_path / "vessel.glb")
    reader = vtkGLTFReader()
    reader.SetFileName(str(path))
    reader.Update()
    it = reader.GetOutput().NewIterator()
    it.InitTraversal()
    counts = []
    while not it.IsDoneWithTraversal():
        block = it.GetCurrentDataObject()
        counts.append((block.GetNumberOfPoints(), block.GetPointData().GetArray("COLOR_0") is not None))
        it.GoToNextItem()
    assert sorted(counts) == sorted(
        [(mesh.lumen.GetNumberOfPoints(), True), (mesh.vessel.GetNumberOfPoints(), True)]
    )


def test_turntable_gif_frames(scene, tmp_path):
    mesh, centerline, poses, summary = scene
    path = export.write_turntable_gif(
        mesh, tmp_path / "spin.gif", n_frames=6, size_px=(160, 100), metrics=summary, poses=poses
    )
    with Image.open(path) as gif:
        assert gif.n_frames == 6
        assert gif.size == (160, 100)
        gif.seek(0)
        first = np.asarray(gif.convert("RGB")).copy()
        gif.seek(3)
        half_turn = np.asarray(gif.convert("RGB")).copy()
    assert not np.array_equal(first, half_turn)
