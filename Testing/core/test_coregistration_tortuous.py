"""Tortuous-vessel phantom: placement, surface and volume accuracy against analytic truth.

The centerline is a straight lead-in followed by a helix whose radius of curvature is
3 x the vessel radius and whose torsion is non-zero. Ground truth is analytic: the helix's
points, tangents and rotation-minimising frames (for a helix the rotation-minimising
vector turns against the Frenet normal at the rate of the torsion), frames at arc lengths
from a +-30 % pullback speed profile, eccentric elliptical lumens and circular vessels whose
size and offset vary along the vessel.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from vtkmodules.util.numpy_support import vtk_to_numpy

from IVUSReconstructLib.coregistration import place_frames
from IVUSReconstructLib.mesh import build_meshes, mesh_report, self_intersections
from IVUSReconstructLib.types import Centerline, ContourSet, FrameContours

R_VESSEL = 1.5  # mean vessel radius, mm
BEND = 3.0 * R_VESSEL  # radius of curvature of the helix, mm
HELIX_A = 3.6  # helix radius, mm; pitch parameter from 1 / curvature = (a^2 + b^2) / a
HELIX_B = np.sqrt(BEND * HELIX_A - HELIX_A**2)
HELIX_C = np.hypot(HELIX_A, HELIX_B)  # arc length per radian
KAPPA = HELIX_A / HELIX_C**2
TAU = HELIX_B / HELIX_C**2
LEAD_MM = 6.0
LENGTH_MM = LEAD_MM + 1.25 * 2 * np.pi * HELIX_C


def _rotation() -> np.ndarray:
    """World-from-local rotation putting the lead-in along +S (initial reference is then +A)."""
    t0 = np.array([0.0, HELIX_A, HELIX_B]) / HELIX_C
    e1 = np.array([1.0, 0.0, 0.0])
    return np.stack([e1, np.cross(t0, e1), t0])


ROT = _rotation()


def _truth(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic point, unit tangent and rotation-minimising x axis at arc lengths ``s`` (N,)."""
    s = np.asarray(s, dtype=float)
    t = np.maximum(s - LEAD_MM, 0.0) / HELIX_C
    a, b, c = HELIX_A, HELIX_B, HELIX_C
    point = np.column_stack([a * np.cos(t), a * np.sin(t), b * t])
    tangent = np.column_stack([-a * np.sin(t), a * np.cos(t), np.full_like(t, b)]) / c
    normal = np.column_stack([-np.cos(t), -np.sin(t), np.zeros_like(t)])
    binormal = np.column_stack([b * np.sin(t), -b * np.cos(t), np.full_like(t, a)]) / c
    lead = s < LEAD_MM
    point[lead] = point[lead] + (s[lead] - LEAD_MM)[:, None] * tangent[lead]
    # the straight lead-in transports +A unchanged to the helix; there the rotation-minimising
    # vector r = cos(phi) N + sin(phi) B obeys phi' = -torsion
    r0 = ROT[1]  # +A in local coordinates
    phi0 = np.arctan2(r0 @ _binormal0(), r0 @ np.array([-1.0, 0, 0]))  # Frenet N(0) = -x
    phi = phi0 - TAU * np.maximum(s - LEAD_MM, 0.0)
    x_axis = np.cos(phi)[:, None] * normal + np.sin(phi)[:, None] * binormal
    x_axis[lead] = r0
    return point @ ROT.T, tangent @ ROT.T, x_axis @ ROT.T


def _binormal0() -> np.ndarray:
    return np.array([0.0, -HELIX_B, HELIX_A]) / HELIX_C


def _shape(s: np.ndarray) -> dict[str, np.ndarray]:
    """Contour parameters along the vessel: lumen ellipse and vessel circle, eccentric (mm)."""
    w = 2 * np.pi * s / 17.0
    return {
        "lumen_a": 0.75 + 0.1 * np.sin(w),
        "lumen_b": 0.65 + 0.08 * np.cos(0.7 * w),
        "lumen_cx": 0.25 * np.cos(0.5 * w),
        "lumen_cy": 0.15 * np.sin(0.5 * w),
        "vessel_r": R_VESSEL + 0.1 * np.sin(0.8 * w),
        "vessel_cx": 0.1 * np.sin(w),
        "vessel_cy": -0.1 * np.cos(w),
    }


def _contour_2d(p: dict[str, np.ndarray], kind: str, n: int) -> np.ndarray:
    """Frame-plane rings (N, n, 2) of the true contours, counter-clockwise."""
    th = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[None, :]
    if kind == "lumen":
        ax, ay, cx, cy = p["lumen_a"], p["lumen_b"], p["lumen_cx"], p["lumen_cy"]
    else:
        ax = ay = p["vessel_r"]
        cx, cy = p["vessel_cx"], p["vessel_cy"]
    return np.stack([cx[:, None] + ax[:, None] * np.cos(th), cy[:, None] + ay[:, None] * np.sin(th)], axis=-1)


def _to_world(rings_2d: np.ndarray, s: np.ndarray) -> np.ndarray:
    origin, tangent, x_axis = _truth(s)
    y_axis = np.cross(tangent, x_axis)
    return origin[:, None] + rings_2d[..., :1] * x_axis[:, None] + rings_2d[..., 1:] * y_axis[:, None]


def _frame_arc_lengths() -> np.ndarray:
    """Frames at 30 frames/s of a 0.5 mm/s pullback whose speed varies +-30 % (period 20 s)."""
    t = np.arange(0.0, 1e4, 1 / 30.0)
    v0, period, start = 0.5, 20.0, 0.7
    s = start + v0 * (t + 0.3 * period / (2 * np.pi) * (1 - np.cos(2 * np.pi * t / period)))
    s = s[s < LENGTH_MM - 0.7]
    # keep every 24th frame (mean 0.4 mm apart) as a gated pullback would
    return s[::24]


def _pappus(kind: str, s0: float, s1: float) -> float:
    """Volume swept by the true contour between arc lengths s0, s1 (generalised Pappus).

    A planar region moving with its plane normal along the tangent sweeps
    ``dV = A (1 - kappa c . N) ds`` (``c`` its centroid, ``N`` the principal normal).
    """

    def integrand(s):
        p = _shape(np.atleast_1d(s))
        area = np.pi * (p["lumen_a"] * p["lumen_b"] if kind == "lumen" else p["vessel_r"] ** 2)
        cx, cy = (p["lumen_cx"], p["lumen_cy"]) if kind == "lumen" else (p["vessel_cx"], p["vessel_cy"])
        origin, tangent, x_axis = _truth(np.atleast_1d(s))
        centroid = cx[:, None] * x_axis + cy[:, None] * np.cross(tangent, x_axis)
        t = max(float(s) - LEAD_MM, 0.0) / HELIX_C
        normal = (np.array([-np.cos(t), -np.sin(t), 0.0]) @ ROT.T)[None]
        kappa = KAPPA if s > LEAD_MM else 0.0
        return float(area[0] * (1 - kappa * np.sum(centroid * normal)))

    return integrate.quad(integrand, s0, s1, points=[LEAD_MM], limit=200, epsabs=1e-9)[0]


@pytest.fixture(scope="module")
def phantom():
    s_ref = np.arange(0.0, LENGTH_MM + 1e-9, 0.02)
    centerline = Centerline(_truth(s_ref)[0], source="helix")
    s = _frame_arc_lengths()
    p = _shape(s)
    contours = ContourSet(
        tuple(
            FrameContours(i, lumen, vessel)
            for i, (lumen, vessel) in enumerate(
                zip(_contour_2d(p, "lumen", 360), _contour_2d(p, "vessel", 360), strict=True)
            )
        )
    )
    poses = place_frames(centerline, np.arange(len(s)), s, smoothing_length_mm=0.0)
    mesh = build_meshes(contours, poses, n_points=72)
    return {"s": s, "poses": poses, "mesh": mesh}


def test_helix_is_tortuous_enough():
    # the phantom itself: bend radius 3 x vessel radius, non-zero torsion, > 1 full turn
    assert 1 / KAPPA == pytest.approx(3 * R_VESSEL, rel=1e-12)
    assert TAU == pytest.approx(0.1111, abs=1e-4)
    # analytic rotation-minimising frame: orthonormal and d(x axis)/ds parallel to the tangent
    s = np.linspace(LEAD_MM + 0.1, LENGTH_MM - 0.1, 200)
    _, tangent, x_axis = _truth(s)
    np.testing.assert_allclose(np.einsum("ij,ij->i", tangent, x_axis), 0.0, atol=1e-12)
    h = 1e-5
    d = (_truth(s + h)[2] - _truth(s - h)[2]) / (2 * h)
    side = d - np.einsum("ij,ij->i", d, tangent)[:, None] * tangent
    assert np.abs(side).max() < 1e-6


def test_frame_placement_error(phantom):
    s, poses = phantom["s"], phantom["poses"]
    origin, tangent, x_axis = _truth(s)
    origin_err = np.linalg.norm(poses.origin_ras_mm - origin, axis=1)
    tilt = np.arccos(np.clip(np.einsum("ij,ij->i", poses.normal_ras, tangent), -1, 1))
    spin = np.arccos(np.clip(np.einsum("ij,ij->i", poses.axes_ras[:, :, 0], x_axis), -1, 1))
    rms = lambda v: float(np.sqrt(np.mean(v**2)))  # noqa: E731
    assert len(s) > 60 and np.ptp(np.diff(s)) > 0.2  # uneven spacing from the speed profile
    assert rms(origin_err) <= 0.05
    # plane errors as displacement at the vessel wall
    assert rms(tilt) * (R_VESSEL + 0.25) <= 0.05
    assert rms(spin) * (R_VESSEL + 0.25) <= 0.05
    np.testing.assert_allclose(poses.arc_length_mm, s, atol=1e-9)


def _dense_truth_surface(kind: str, s0: float, s1: float):
    s = np.linspace(s0, s1, int(np.ceil((s1 - s0) / 0.04)) + 1)
    return _to_world(_contour_2d(_shape(s), kind, 360), s).reshape(-1, 3)


def _tube_samples(poly, k: int = 8) -> np.ndarray:
    """Points of the lofted tube (caps left out) on a barycentric grid of each triangle."""
    points = vtk_to_numpy(poly.GetPoints().GetData())
    tri = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    cap_centres = len(points) - 2
    tri = tri[(tri < cap_centres).all(axis=1)]
    i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1))
    keep = i + j <= k
    w = np.column_stack([i[keep], j[keep], k - i[keep] - j[keep]]) / k
    return np.einsum("wv,tvi->twi", w, points[tri]).reshape(-1, 3)


@pytest.mark.parametrize("kind", ["lumen", "vessel"])
def test_surface_hausdorff_to_truth(phantom, kind):
    from scipy.spatial import cKDTree

    s = phantom["s"]
    poly = getattr(phantom["mesh"], kind)
    truth = _dense_truth_surface(kind, s[0], s[-1])
    mesh_pts = _tube_samples(poly)
    to_truth = cKDTree(truth).query(mesh_pts)[0].max()
    to_mesh = cKDTree(mesh_pts).query(truth)[0].max()
    # sampling spacing of the two point sets bounds how far apart coincident surfaces look
    assert max(to_truth, to_mesh) <= 0.1


def test_volumes_match_pappus(phantom):
    s, mesh = phantom["s"], phantom["mesh"]
    expected = {k: _pappus(k, s[0], s[-1]) for k in ("lumen", "vessel")}
    expected["wall"] = expected["vessel"] - expected["lumen"]
    for name in ("lumen", "vessel", "wall"):
        report = mesh_report(getattr(mesh, name))
        assert report["closed"] and report["manifold"] and report["outward"], name
        assert report["n_folded_frames"] == 0
        assert report["signed_volume_mm3"] == pytest.approx(expected[name], rel=0.005), name


def test_no_self_intersection(phantom):
    for name in ("lumen", "vessel", "wall"):
        assert self_intersections(getattr(phantom["mesh"], name)) == 0, name
