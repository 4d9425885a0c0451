"""Real coronary data: NARCO ``ivus_rest`` lumen contours placed on the CCTA RCA centerline.

Lumen-centroid mode with the three landmark points of SOURCE.md (main, ccw, cw) and the
reference point of ``diastolic_reference_points.csv``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from IVUSReconstructLib.coregistration import place_frames, resample_centerline, three_point_alignment
from IVUSReconstructLib.geometry import polygon_area, polygon_centroid
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.contours import read_contours
from IVUSReconstructLib.mesh import build_meshes, mesh_report

MAIN = np.array([12.2605, -201.3643, 1751.0554])
CCW = np.array([11.7567, -202.1920, 1754.7975])
CW = np.array([15.6605, -202.1920, 1749.9655])


def place_rest(folder):
    """(contours, curve, poses, landmark, mirror) of the ivus_rest diastolic stack."""
    contours = read_contours(folder / "ivus_rest" / "diastolic_contours.csv")
    ref = np.loadtxt(folder / "ivus_rest" / "diastolic_reference_points.csv").reshape(-1)
    # its frame number (385) is a raw frame; the gated frame at the same z (24.54 mm) is 384
    z = np.array([f.z_mm for f in contours.frames])
    ref_frame = int(contours.indices[np.argmin(np.abs(z - ref[3]))])
    # same frame-plane mapping as read_contours for this CSV: centre (4.5, 4.5) mm, y up -> down
    ref_xy = np.array([ref[1] - 4.5, -(ref[2] - 4.5)])
    by_index = {f.index: f for f in contours.frames}
    centroid = polygon_centroid(by_index[ref_frame].lumen)
    ref_angle = math.degrees(math.atan2(ref_xy[1] - centroid[1], ref_xy[0] - centroid[0]))
    # the file runs from the ostium outwards; the pullback ends at the ostium (reference frame)
    curve = resample_centerline(read_centerline(folder / "centerline_raw.csv", order="proximal-first"))
    landmark, mirror = three_point_alignment(curve, ref_frame, ref_angle, MAIN, CCW, CW)
    poses = place_frames(
        curve,
        contours.indices,
        z,
        contours=contours,
        align="lumen-centroid",
        landmarks=[landmark],
        mirror=mirror,
    )
    return contours, curve, poses, landmark, mirror


def test_rest_stack_on_rca(real_data):
    folder = real_data / "aaoca_ivus_ccta"
    contours, curve, poses, _, mirror = place_rest(folder)
    assert len(contours.frames) == 20
    # pinned at the ostium end: the reference frame (last, z = 24.54 mm) at main's foot
    s_main = curve.closest_arc_length(MAIN)[0]
    assert poses.arc_length_mm[-1] == pytest.approx(s_main, abs=1e-9)
    z = np.array([f.z_mm for f in contours.frames])
    np.testing.assert_allclose(poses.arc_length_mm, s_main - (z[-1] - z), atol=1e-9)
    # lumen centroids on the centerline, areas preserved
    for row, frame in enumerate(contours.frames):
        world = poses.to_world(row, frame.lumen)
        area_3d = 0.5 * np.linalg.norm(np.cross(world, np.roll(world, -1, axis=0)).sum(axis=0))
        assert area_3d == pytest.approx(polygon_area(frame.lumen), rel=0.005)
        c3 = poses.to_world(row, polygon_centroid(frame.lumen)[None])[0]
        assert curve.closest_arc_length(c3)[1] < 0.01
    # the reference direction points at main
    lumen = contours.frames[-1].lumen
    mesh = build_meshes(contours, poses, n_points=96)
    report = mesh_report(mesh.lumen)
    assert report["closed"] and report["manifold"] and report["outward"]
    field = mesh.lumen.GetFieldData().GetArray("volume_mm3").GetValue(0)
    assert field == pytest.approx(report["signed_volume_mm3"], rel=1e-9)
    # volume vs the trapezoid area x length of the stack (bends change it by < 1 %)
    areas = np.array([polygon_area(f.lumen) for f in contours.frames])
    assert report["volume_mm3"] == pytest.approx(np.trapezoid(areas, poses.arc_length_mm), rel=0.02)
    assert isinstance(mirror, bool) and len(lumen) == 500
