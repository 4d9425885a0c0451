"""Lofted vessel meshes: volume (Pappus), topology, orientation, point arrays, files."""

from __future__ import annotations

import numpy as np
import pytest
from vtkmodules.util.numpy_support import vtk_to_numpy

from IVUSReconstructLib.coregistration import place_frames
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polar_polygon, polygon_area
from IVUSReconstructLib.mesh import build_meshes, loft_rings, mesh_report, unfold_rings, write_mesh
from IVUSReconstructLib.types import Centerline, ContourSet, FrameContours


def _arc(radius, angle=np.pi / 2, n=400):
    th = np.linspace(0.0, angle, n)
    return Centerline(np.column_stack([radius * np.cos(th), radius * np.sin(th), 0 * th]))


def _rings(n_frames, r_lumen=2.0, r_vessel=3.0, centre=(0.0, 0.0)):
    return ContourSet(
        tuple(
            FrameContours(
                i,
                polar_polygon(np.full(90, r_lumen), center_mm=centre),
                polar_polygon(np.full(90, r_vessel), center_mm=centre),
            )
            for i in range(n_frames)
        )
    )


def _array(poly, name):
    return vtk_to_numpy(poly.GetPointData().GetArray(name))


@pytest.mark.parametrize("mirror", [False, True])
def test_pappus_volume_and_topology(mirror):
    radius, r_l, r_v = 20.0, 2.0, 3.0
    length = np.pi / 2 * radius
    s = np.linspace(0.0, length, 64)
    poses = place_frames(_arc(radius), np.arange(64), s, smoothing_length_mm=0.0, mirror=mirror)
    mesh = build_meshes(_rings(64, r_l, r_v), poses, n_points=72)
    # Pappus: the volume swept by a disc along an arc = area * centroid path length
    ring_area_factor = polygon_area(polar_polygon(np.ones(72)))  # 72-gon area of a unit circle
    expected = {"lumen": np.pi * r_l**2 * length, "vessel": np.pi * r_v**2 * length}
    expected["wall"] = expected["vessel"] - expected["lumen"]
    for name in ("lumen", "vessel", "wall"):
        report = mesh_report(getattr(mesh, name))
        assert report["closed"] and report["manifold"] and report["consistently_oriented"], name
        assert report["outward"], name
        assert report["n_boundary_edges"] == 0 and report["n_nonmanifold_edges"] == 0
        assert report["volume_mm3"] == pytest.approx(expected[name], rel=0.005)
        # the remaining error is the polygon (72-gon, from 90-gon input) not the sweep
        assert report["signed_volume_mm3"] == pytest.approx(
            expected[name] * ring_area_factor / np.pi, rel=0.001
        )
    assert mesh_report(mesh.lumen)["n_triangles"] == 2 * 72 * 63 + 2 * 72


def test_point_arrays_on_straight_vessel():
    line = Centerline(np.array([[0.0, 0, 0], [0, 0, 20.0]]))
    s = np.linspace(2.0, 12.0, 11)
    contours = _rings(11, 2.0, 3.0, centre=(0.4, -0.2))
    poses = place_frames(line, np.arange(11), s, contours=contours, align="lumen-centroid")
    per_frame = {"lumen_area_mm2": np.arange(11) * 1.5, "label": np.array(["a"] * 11)}
    mesh = build_meshes(contours, poses, n_points=36, per_frame=per_frame)
    for poly in (mesh.lumen, mesh.vessel, mesh.wall):
        thickness = _array(poly, "plaque_thickness_mm")
        # concentric circles 2 and 3 mm: 1 mm everywhere (polygon chords shave < 0.005 mm)
        np.testing.assert_allclose(thickness, 1.0, atol=0.005)
        # both 90-gons: burden = 1 - (2/3)^2 exactly
        np.testing.assert_allclose(_array(poly, "plaque_burden_percent"), 100 * (1 - 4 / 9), rtol=1e-9)
        frame = _array(poly, "frame_index")
        np.testing.assert_allclose(_array(poly, "arc_length_mm"), 2.0 + frame, atol=1e-9)
        np.testing.assert_allclose(_array(poly, "lumen_area_mm2"), 1.5 * frame)
        assert poly.GetPointData().GetArray("label") is None
    # the lumen centroid sits on the centerline: lumen points at radius 2 around the z axis
    pts = vtk_to_numpy(mesh.lumen.GetPoints().GetData())[:-2]
    np.testing.assert_allclose(np.hypot(pts[:, 0], pts[:, 1]), 2.0, atol=0.01)
    assert mesh_report(mesh.lumen)["volume_mm3"] == pytest.approx(
        polygon_area(polar_polygon(np.full(36, 2.0))) * 10.0, rel=1e-3
    )


def test_lumen_only_has_nan_plaque_and_no_wall():
    line = Centerline(np.array([[0.0, 0, 0], [0, 0, 20.0]]))
    contours = ContourSet(tuple(FrameContours(i, polar_polygon(np.full(40, 1.5))) for i in range(5)))
    poses = place_frames(line, np.arange(5), np.arange(5.0))
    mesh = build_meshes(contours, poses)
    assert mesh.vessel is None and mesh.wall is None
    assert np.isnan(_array(mesh.lumen, "plaque_thickness_mm")).all()
    assert mesh_report(mesh.lumen)["outward"]
    with pytest.raises(IVUSInputError, match="only 1 frame\\(s\\) have a position on the centerline"):
        build_meshes(contours, place_frames(line, np.array([3]), np.array([1.0])))


def test_tight_bend_folds_are_detected_and_fixed():
    # radius of curvature 2.5 mm < vessel radius 3 mm: consecutive planes cross inside
    radius = 2.5
    s = np.linspace(0.0, np.pi / 2 * radius, 40)
    poses = place_frames(_arc(radius), np.arange(40), s, smoothing_length_mm=0.0)
    contours = _rings(40, 1.0, 3.0)
    raw = build_meshes(contours, poses, n_points=48, fix_folds=False)
    fixed = build_meshes(contours, poses, n_points=48)
    assert mesh_report(raw.vessel)["n_folded_frames"] == 39
    assert mesh_report(fixed.vessel)["n_folded_frames"] == 39
    report = mesh_report(fixed.wall)
    assert report["closed"] and report["consistently_oriented"] and report["outward"]
    # after the fix every vessel strand advances along the vessel
    pts = vtk_to_numpy(fixed.vessel.GetPoints().GetData())[:-2].reshape(40, 48, 3)
    normals = poses.normal_ras[:-1] + poses.normal_ras[1:]
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    steps = np.einsum("fni,fi->fn", np.diff(pts, axis=0), normals)
    assert steps.min() >= 0.01 - 1e-12
    raw_pts = vtk_to_numpy(raw.vessel.GetPoints().GetData())[:-2].reshape(40, 48, 3)
    # without the fix the innermost strand steps back by ds (1 - r / R) per frame
    ds = s[1] - s[0]
    raw_steps = np.einsum("fni,fi->fn", np.diff(raw_pts, axis=0), normals)
    assert raw_steps.min() == pytest.approx(ds * (1 - 3.0 / radius), rel=1e-3)


def test_unfold_leaves_clean_rings_untouched():
    rings = np.stack(
        [
            np.column_stack([np.cos(t), np.sin(t), np.full(8, z)])
            for z in range(4)
            for t in [np.linspace(0, 2 * np.pi, 8, endpoint=False)]
        ]
    )
    out, folded = unfold_rings(rings, np.tile([0, 0, 1.0], (4, 1)))
    np.testing.assert_array_equal(out, rings)
    assert not folded.any()


def test_open_surface_is_reported():
    from IVUSReconstructLib.mesh import _polydata

    rings = np.stack(
        [
            np.column_stack([np.cos(t), np.sin(t), np.full(16, z)])
            for z in range(3)
            for t in [np.linspace(0, 2 * np.pi, 16, endpoint=False)]
        ]
    )
    points, triangles = loft_rings(rings)
    tube_only = triangles[: 2 * 16 * 2]
    report = mesh_report(_polydata(points, tube_only, {}, np.zeros(0)))
    assert report["n_boundary_edges"] == 32 and not report["closed"] and not report["outward"]
    assert report["consistently_oriented"]
    flipped = np.vstack([tube_only[:-1], tube_only[-1:, ::-1]])
    assert not mesh_report(_polydata(points, flipped, {}, np.zeros(0)))["consistently_oriented"]


def test_write_mesh_formats(tmp_path):
    from vtkmodules.vtkIOGeometry import vtkGLTFReader, vtkSTLReader
    from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

    line = Centerline(np.array([[0.0, 0, 0], [0, 0, 20.0]]))
    poses = place_frames(line, np.arange(4), np.arange(4.0))
    mesh = build_meshes(_rings(4), poses, n_points=24)
    n_points = mesh.wall.GetNumberOfPoints()
    for suffix in (".vtp", ".vtk", ".stl", ".obj", ".ply", ".glb", ".gltf"):
        assert write_mesh(mesh.wall, tmp_path / f"wall{suffix}").stat().st_size > 1000
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(tmp_path / "wall.vtp"))
    reader.Update()
    poly = reader.GetOutput()
    assert poly.GetNumberOfPoints() == n_points
    assert poly.GetFieldData().GetAbstractArray("SPACE").GetValue(0) == "RAS"
    assert mesh.wall.GetFieldData().GetAbstractArray("SPACE") is None  # input untouched
    np.testing.assert_allclose(_array(poly, "plaque_thickness_mm"), _array(mesh.wall, "plaque_thickness_mm"))
    assert b"SPACE=RAS" in (tmp_path / "wall.stl").read_bytes()[:80]
    assert (tmp_path / "wall.obj").read_text().startswith("# IVUSReconstruct mesh. SPACE=RAS")
    stl = vtkSTLReader()
    stl.SetFileName(str(tmp_path / "wall.stl"))
    stl.Update()
    assert stl.GetOutput().GetNumberOfCells() == mesh.wall.GetNumberOfCells()
    assert (tmp_path / "wall.glb").read_bytes()[:4] == b"glTF"
    gltf = vtkGLTFReader()
    gltf.SetFileName(str(tmp_path / "wall.glb"))
    gltf.Update()
    assert gltf.GetOutput().GetNumberOfPoints() == n_points
    with pytest.raises(IVUSInputError, match="suffix '.x3d' is not a mesh format"):
        write_mesh(mesh.wall, tmp_path / "wall.x3d")


@pytest.mark.parametrize("mirror", [False, True])
def test_outward_on_a_vessel_that_turns_back(mirror):
    # 270 deg arc: the far end lies behind the start, orientation must come from the local advance
    radius = 10.0
    s = np.linspace(0.0, 1.5 * np.pi * radius, 60)
    poses = place_frames(
        _arc(radius, angle=1.5 * np.pi), np.arange(60), s, smoothing_length_mm=0.0, mirror=mirror
    )
    mesh = build_meshes(_rings(60, 1.0, 2.0), poses, n_points=32)
    for poly in (mesh.lumen, mesh.vessel, mesh.wall):
        report = mesh_report(poly)
        assert report["outward"] and report["signed_volume_mm3"] > 0
    area = polygon_area(polar_polygon(np.full(32, 2.0)))
    assert mesh_report(mesh.vessel)["volume_mm3"] == pytest.approx(area * s[-1], rel=0.002)


def _soup(triangles_pts):
    """vtkPolyData of separate triangles (no shared vertices), (T, 3, 3) mm."""
    from IVUSReconstructLib.mesh import _polydata

    pts = np.asarray(triangles_pts, dtype=float).reshape(-1, 3)
    return _polydata(pts, np.arange(len(pts)).reshape(-1, 3), {}, np.zeros(0))


def test_self_intersections_on_triangle_pairs():
    from IVUSReconstructLib.mesh import self_intersections

    flat = [[0, 0, 0], [2, 0, 0], [0, 2, 0]]
    # a triangle piercing the first one through its interior
    piercing = [[0.5, 0.5, -1], [0.5, 0.5, 1], [1.5, -0.5, 0.2]]
    assert self_intersections(_soup([flat, piercing])) == 1
    # the same triangle moved beyond the hypotenuse x + y = 2: planes cross, triangles do not
    assert self_intersections(_soup([flat, np.add(piercing, [1.5, 1.5, 0])])) == 0
    # parallel, 0.1 mm apart
    assert self_intersections(_soup([flat, np.add(flat, [0, 0, 0.1])])) == 0
    # coplanar: overlapping, disjoint, and merely touching along an edge
    assert self_intersections(_soup([flat, np.add(flat, [0.5, 0.5, 0])])) == 1
    assert self_intersections(_soup([flat, np.add(flat, [3, 0, 0])])) == 0
    assert self_intersections(_soup([flat, [[2, 0, 0], [0, 2, 0], [2, 2, 0]]])) == 0
    # a small triangle inside a large coplanar one
    assert self_intersections(_soup([flat, [[0.2, 0.2, 0], [0.4, 0.2, 0], [0.2, 0.4, 0]]])) == 1
    # one triangle piercing two parallel ones: 2 pairs
    assert self_intersections(_soup([flat, piercing, np.add(flat, [0, 0, 0.15])])) == 2
    # crossing triangles that share a vertex index are neighbours: never counted
    from IVUSReconstructLib.mesh import _polydata

    pts = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [1, 1, -1], [0.2, 0.2, 1]], dtype=float)
    assert self_intersections(_polydata(pts, np.array([[0, 1, 2], [0, 3, 4]]), {}, np.zeros(0))) == 0


def test_self_intersections_find_folds_at_tight_bends():
    from IVUSReconstructLib.mesh import self_intersections

    # bend radius 2.5 mm < vessel radius 3 mm: the raw loft folds on the inner side
    radius = 2.5
    s = np.linspace(0.0, np.pi / 2 * radius, 40)
    poses = place_frames(_arc(radius), np.arange(40), s, smoothing_length_mm=0.0)
    contours = _rings(40, 1.0, 3.0)
    raw = build_meshes(contours, poses, n_points=48, fix_folds=False)
    fixed = build_meshes(contours, poses, n_points=48)
    n_raw = self_intersections(raw.vessel)
    assert n_raw > 1000
    # the lumen (radius 1 < 2.5) does not fold
    assert self_intersections(raw.lumen) == 0
    # pushing folded points forward removes most crossings (not all: see unfold_rings)
    assert self_intersections(fixed.vessel) <= n_raw // 10
    # a gentle bend (radius 10 mm, vessel 2 mm) has none on any surface
    s = np.linspace(0.0, np.pi / 2 * 10.0, 50)
    mesh = build_meshes(
        _rings(50, 1.0, 2.0), place_frames(_arc(10.0), np.arange(50), s, smoothing_length_mm=0.0), n_points=48
    )
    assert [self_intersections(p) for p in (mesh.lumen, mesh.vessel, mesh.wall)] == [0, 0, 0]
    with pytest.raises(ValueError, match="exceed max_pairs=10"):
        self_intersections(mesh.wall, max_pairs=10)


def test_labelmap_volume_matches_mesh():
    from IVUSReconstructLib.labelmap import mesh_to_labelmap

    radius = 10.0
    s = np.linspace(0.0, np.pi / 2 * radius, 60)
    poses = place_frames(_arc(radius), np.arange(60), s, smoothing_length_mm=0.0)
    mesh = build_meshes(_rings(60, 1.0, 2.0), poses, n_points=72)
    for poly in (mesh.vessel, mesh.wall):
        labels, origin, spacing = mesh_to_labelmap(poly, 0.1)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}
        np.testing.assert_allclose(spacing, 0.1)
        volume = labels.sum() * np.prod(spacing)
        assert volume == pytest.approx(mesh_report(poly)["volume_mm3"], rel=0.02)
    # index [k, j, i] is voxel origin + (i, j, k) * spacing: the vessel's bounds (+-1 voxel)
    k, j, i = np.nonzero(labels)
    lo = origin + np.array([i.min(), j.min(), k.min()]) * spacing
    hi = origin + np.array([i.max(), j.max(), k.max()]) * spacing
    bounds = np.array(mesh.wall.GetBounds()).reshape(3, 2)
    np.testing.assert_allclose(lo, bounds[:, 0], atol=0.1)
    np.testing.assert_allclose(hi, bounds[:, 1], atol=0.1)
    # a 1 mm margin of background on every side
    assert labels[:, :, :10].sum() == 0 and labels[:, :, -10:].sum() == 0
    assert labels[:10].sum() == 0 and labels[-10:].sum() == 0


def _labelmap_agreement(old: np.ndarray, new: np.ndarray) -> tuple[float, int]:
    """Fraction of labelled voxels with the same label, and the voxels whose label is not found
    within one voxel (3 x 3 x 3) in the other labelmap, counted both ways."""
    from scipy import ndimage

    cube = np.ones((3, 3, 3), dtype=bool)
    far = 0
    for label in (1, 2):
        a, b = old == label, new == label
        far += int(
            (b & ~ndimage.binary_dilation(a, cube)).sum() + (a & ~ndimage.binary_dilation(b, cube)).sum()
        )
    return 1.0 - float((old != new).sum()) / max(int((old > 0).sum()), 1), far


@pytest.mark.parametrize(("preset", "mirror"), [("femoropopliteal", False), ("coronary", True)])
def test_ring_labelmap_matches_scan_conversion_within_one_voxel(preset, mirror):
    """The labelmap made from the rings has today's grid and today's voxels but at the borders."""
    from dataclasses import replace

    from IVUSReconstructLib.labelmap import _mesh_rings, stencil_labelmap, vessel_labelmap
    from IVUSReconstructLib.phantom import make_phantom

    ph = make_phantom(preset, seed=2, length_mm=12.0, size_px=32)
    arc = np.array([f.z_mm for f in ph.truth.frames])
    order = np.argsort(arc, kind="stable")
    contours = replace(ph.truth, frames=tuple(ph.truth.frames[i] for i in order))
    poses = place_frames(ph.centerline, contours.indices, arc[order], contours=contours, mirror=mirror)
    mesh = build_meshes(contours, poses)
    # the rings are what the new labelmap is made from: without them it falls back to the stencil
    # and would be compared with itself
    assert _mesh_rings(mesh.lumen) is not None and _mesh_rings(mesh.vessel) is not None
    old, old_origin, old_spacing = stencil_labelmap(mesh, 0.2)
    new, origin, spacing = vessel_labelmap(mesh, 0.2)
    assert new.shape == old.shape and new.dtype == np.uint8
    np.testing.assert_array_equal(origin, old_origin)
    np.testing.assert_array_equal(spacing, old_spacing)
    assert set(np.unique(new)) == {0, 1, 2}
    agreement, far = _labelmap_agreement(old, new)
    assert far == 0
    assert agreement > 0.99
    # lumen and wall volumes agree with the meshes' as well as the scan conversion's do
    voxel = 0.2**3
    assert (new == 1).sum() * voxel == pytest.approx(mesh_report(mesh.lumen)["volume_mm3"], rel=0.01)
    assert (new > 0).sum() * voxel == pytest.approx(mesh_report(mesh.vessel)["volume_mm3"], rel=0.01)


def test_ring_labelmap_of_a_bent_tube_without_vessel():
    """Lumen-only meshes give label 1; a quarter torus (bend radius 10 mm) keeps the Pappus volume."""
    from IVUSReconstructLib.labelmap import _mesh_rings, stencil_labelmap, vessel_labelmap

    radius = 10.0
    s = np.linspace(0.0, np.pi / 2 * radius, 60)
    poses = place_frames(_arc(radius), np.arange(60), s, smoothing_length_mm=0.0)
    rings = _rings(60, 1.5, 2.0)
    lumen_only = ContourSet(tuple(FrameContours(f.index, f.lumen) for f in rings.frames))
    mesh = build_meshes(lumen_only, poses, n_points=72)
    assert mesh.vessel is None and _mesh_rings(mesh.lumen) is not None  # not the stencil fallback
    new, _, _ = vessel_labelmap(mesh, 0.1)
    old, _, _ = stencil_labelmap(mesh, 0.1)
    assert set(np.unique(new)) == {0, 1}
    agreement, far = _labelmap_agreement(old, new)
    assert far == 0 and agreement > 0.99
    pappus = np.pi * 1.5**2 * (np.pi / 2 * radius)
    assert new.sum() * 0.1**3 == pytest.approx(pappus, rel=0.01)
