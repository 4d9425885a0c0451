"""The demo end to end on every preset: measured metrics against the phantom's ground truth.

Tolerances are the foundation issue's: lumen and vessel volume within 3%, MLA within 5%, MLA
position within 1 mm, area stenosis within 3 percentage points; meshes closed, manifold, outward.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.cli import main

PRESETS = ("coronary", "femoropopliteal", "iliac-vein")


# end-to-end runs of the full-length demo phantoms: 140 s of fixture set-up together (pytest --durations)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=PRESETS)
def demo_out(request, tmp_path_factory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo") / request.param
    # seed 7: no parameter was tuned on it (the vein's blunt, cut narrow ends were diagnosed on it)
    assert main(["demo", "--preset", request.param, "--seed", "7", "--out", str(out)]) == 0
    return request.param, out


def test_demo_output_folder(demo_out):
    _, out = demo_out
    names = {p.name for p in out.iterdir()}
    for required in (
        "summary.json",
        "frames.csv",
        "contours.json",
        "lumen.vtp",
        "vessel.vtp",
        "wall.vtp",
        "centerline.mrk.json",
        "render.png",
        "report.html",
        "validation.json",
        "vessel.glb",
    ):
        assert required in names


def test_demo_metrics_within_tolerance(demo_out):
    preset, out = demo_out
    validation = json.loads((out / "validation.json").read_text())
    rows = {r["quantity"]: r for r in validation["comparison"]}
    lumen, vessel = rows["lumen_volume"], rows["vessel_volume"]
    assert abs(lumen["error"]) <= 0.03 * lumen["truth"], lumen
    assert abs(vessel["error"]) <= 0.03 * vessel["truth"], vessel
    assert abs(rows["mla_area"]["error"]) <= 0.05 * rows["mla_area"]["truth"], rows["mla_area"]
    assert abs(rows["area_stenosis"]["error"]) <= 3.0, rows["area_stenosis"]
    position_error = rows["mla_position"]["error"]
    assert abs(position_error) <= 1.0, rows["mla_position"]


def test_demo_meshes_closed_manifold_outward(demo_out):
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    from IVUSReconstructLib.mesh import mesh_report

    _, out = demo_out
    summary = json.loads((out / "summary.json").read_text())
    for name in ("lumen", "vessel", "wall"):
        reader = vtkXMLPolyDataReader()
        reader.SetFileName(str(out / f"{name}.vtp"))
        reader.Update()
        report = mesh_report(reader.GetOutput())
        assert report["n_boundary_edges"] == 0, name
        assert report["n_nonmanifold_edges"] == 0, name
        assert report["outward_normals"], name
        if name != "wall":
            # the contour volume is area x pullback distance (the clinical convention); the mesh
            # sweeps each cross-section along its own centroid path (Pappus), which departs from
            # the catheter path where the catheter lies far off-centre in a curved vessel: up to
            # ~1.5% in the 12 mm vein, under 1% in the arteries
            expected = summary["volumes_mm3"][name]
            tolerance = 0.02 if demo_out[0] == "iliac-vein" else 0.01
            assert report["volume_mm3"] == pytest.approx(expected, rel=tolerance), name


def test_demo_render_coloured_by_burden(demo_out):
    from PIL import Image

    _, out = demo_out
    image = np.asarray(Image.open(out / "render.png").convert("RGB")).astype(int)
    background = image[0, 0]
    foreground = np.any(np.abs(image - background) > 12, axis=2)
    # the vessel spans the frame along its length (left of the colour bar, which starts at 83%)
    columns = np.flatnonzero(foreground[:, : int(0.83 * image.shape[1])].any(axis=0))
    assert columns.max() - columns.min() > 0.7 * image.shape[1]
    assert foreground.mean() > 0.05
    # many distinct hues: a colour map, not a single flat colour
    colours = {tuple(c // 16) for c in image[foreground][:: max(1, foreground.sum() // 20000)]}
    assert len(colours) > 40


def test_demo_report_offline_and_consistent(demo_out):
    _, out = demo_out
    html = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    summary = json.loads((out / "summary.json").read_text())
    mla = summary["mla"]["area_mm2"]
    assert f"{mla:.2f}" in html


def test_demo_labelmap_sits_where_the_meshes_are(demo_out):
    """vessel_labelmap.nrrd (LPS on disk) covers the lumen mesh in RAS with the same volume."""
    import SimpleITK as sitk
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    _, out = demo_out
    image = sitk.ReadImage(str(out / "vessel_labelmap.nrrd"))
    labels = sitk.GetArrayFromImage(image)
    voxel = float(np.prod(image.GetSpacing()))
    summary = json.loads((out / "summary.json").read_text())
    assert (labels == 1).sum() * voxel == pytest.approx(summary["volumes_mm3"]["lumen"], rel=0.03)
    assert (labels >= 1).sum() * voxel == pytest.approx(summary["volumes_mm3"]["vessel"], rel=0.03)
    k, j, i = np.nonzero(labels == 1)
    lps = np.array(
        [
            image.TransformContinuousIndexToPhysicalPoint((float(a), float(b), float(c)))
            for a, b, c in zip(i[::97], j[::97], k[::97], strict=True)
        ]
    )
    ras_centre = (lps * [-1, -1, 1]).mean(axis=0)
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(out / "lumen.vtp"))
    reader.Update()
    mesh_points = vtk_to_numpy(reader.GetOutput().GetPoints().GetData())
    lo, hi = mesh_points.min(axis=0), mesh_points.max(axis=0)
    assert np.all(ras_centre > lo) and np.all(ras_centre < hi)
    # the voxel centroid is the lumen's volume centroid: close to the mesh's for a tube
    assert np.linalg.norm(ras_centre - mesh_points.mean(axis=0)) < 0.1 * np.linalg.norm(hi - lo)


def test_frames_csv_and_summary_are_plain(demo_out):
    _, out = demo_out
    lines = (out / "frames.csv").read_text().splitlines()
    header = lines[0].split(",")
    # the plane origin and normal follow the arc length; missing values are empty fields
    at = header.index("arc_length_mm")
    assert header[at + 1 : at + 7] == ["x_mm", "y_mm", "z_mm", "nx", "ny", "nz"]
    stent = header.index("stent_area_mm2")
    assert all(line.split(",")[stent] == "" for line in lines[1:])  # no stent in the phantoms

    def no_constants(name):
        raise AssertionError(f"summary.json holds {name}")

    summary = json.loads((out / "summary.json").read_text(), parse_constant=no_constants)
    assert summary["stent"] is None


def test_glb_holds_lumen_and_burden_coloured_vessel(demo_out):
    import struct

    _, out = demo_out
    data = (out / "vessel.glb").read_bytes()
    magic, version, length = struct.unpack("<4sII", data[:12])
    assert (magic, version, length) == (b"glTF", 2, len(data))
    chunk_length, chunk_type = struct.unpack("<II", data[12:20])
    assert chunk_type == 0x4E4F534A  # JSON
    gltf = json.loads(data[20 : 20 + chunk_length])
    # then one translucent device per plan of summary.json
    plans = json.loads((out / "summary.json").read_text())["plans"]
    devices = ["device"] + [f"device {k}" for k in range(2, len(plans) + 1)]
    assert [m["name"] for m in gltf["meshes"]] == ["lumen", "vessel"] + devices[: len(plans)]
    assert all("COLOR_0" in m["primitives"][0]["attributes"] for m in gltf["meshes"])


def test_iliac_vein_plan_against_the_phantom_truth(demo_out):
    """The compressed segment's length within 2 mm of the phantom's, landing zones in healthy vein."""
    from IVUSReconstructLib.phantom import compressed_segment_mm

    preset, out = demo_out
    if preset != "iliac-vein":
        pytest.skip("the venous plan is checked on the iliac-vein demo")
    summary = json.loads((out / "summary.json").read_text())
    plan = summary["plan"]
    assert plan["territory"] == "iliac-vein"
    (lesion,) = [les for les in summary["lesions"] if les["id"] in plan["lesion_ids"]]
    # truth: where the phantom's lumen is below half the un-narrowed lumen (67.97-76.03 mm)
    start, end = compressed_segment_mm("iliac-vein")
    assert abs(lesion["length_mm"] - (end - start)) <= 2.0, (lesion["length_mm"], end - start)
    assert abs(lesion["start_mm"] - start) <= 2.0 and abs(lesion["end_mm"] - end) <= 2.0
    # the demo's own table reports it against the truth metrics (same rule on the true contours)
    rows = {r["quantity"]: r for r in json.loads((out / "validation.json").read_text())["comparison"]}
    assert rows["compressed_length"]["pass"] and abs(rows["compressed_length"]["error"]) <= 2.0
    # healthy vein: outside the stretch where the true lumen is below 80 % of the un-narrowed one
    narrow = compressed_segment_mm("iliac-vein", area_share=0.8)
    for side in ("proximal", "distal"):
        zone = plan["landing_zones"][side]
        assert zone["length_mm"] >= 10.0 - 1e-9
        assert zone["end_mm"] < narrow[0] or zone["start_mm"] > narrow[1], (side, zone, narrow)
    device = plan["device"]
    assert device["start_mm"] <= start and device["end_mm"] >= end
    assert device["diameter_mm"] == 16.0 and device["length_mm"] >= device["span_mm"]
    # the report draws the device on the area curves and on the L-mode (one legend entry each)
    assert (out / "report.html").read_text().count("Planned device") == 2
