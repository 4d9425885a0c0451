"""Frame placement on centerlines: RMF, exact positions, landmarks, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from IVUSReconstructLib.coregistration import (
    fit_landmarks,
    frame_arc_lengths_mm,
    place_frames,
    resample_centerline,
)
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polar_polygon
from IVUSReconstructLib.types import Centerline, ContourSet, FrameContours, Landmark

STRAIGHT = Centerline(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 50.0]]), source="straight.csv")


def _arc(radius=20.0, angle=np.pi / 2, n=400):
    th = np.linspace(0.0, angle, n)
    return Centerline(np.column_stack([radius * np.cos(th), radius * np.sin(th), 0 * th]), source="arc.csv")


def _right_handed(poses):
    return np.einsum("ni,ni->n", np.cross(poses.axes_ras[:, :, 0], poses.axes_ras[:, :, 1]), poses.normal_ras)


def test_helix_rmf_has_no_twist():
    a, b = 5.0, 2.0  # radius, rise per radian
    th = np.linspace(0.0, 4 * np.pi, 4000)
    helix = Centerline(np.column_stack([a * np.cos(th), a * np.sin(th), b * th]))
    curve = resample_centerline(helix, smoothing_length_mm=0.0, step_mm=0.1)
    speed = math.hypot(a, b)
    assert curve.length_mm == pytest.approx(4 * np.pi * speed, rel=1e-6)
    phi = curve.arc_length_mm / speed  # helix angle at each sample
    normal = -np.column_stack([np.cos(phi), np.sin(phi), 0 * phi])  # Frenet normal
    binormal = np.cross(curve.tangents, normal)
    angle = np.unwrap(np.arctan2(np.sum(curve.reference * binormal, 1), np.sum(curve.reference * normal, 1)))
    # rotation-minimising: angle to the Frenet frame = angle0 - torsion * s
    torsion = b / (a * a + b * b)
    expected = angle[0] - torsion * curve.arc_length_mm
    assert np.abs(angle - expected).max() < 1e-4
    # and it does turn relative to Frenet (a Frenet-based frame would fail the test above)
    assert abs(angle[-1] - angle[0]) == pytest.approx(torsion * curve.length_mm, rel=1e-4)
    np.testing.assert_allclose(np.sum(curve.reference * curve.tangents, 1), 0.0, atol=1e-12)


def test_straight_placement_exact():
    s = np.array([0.0, 10.0, 25.5, 50.0])
    poses = place_frames(STRAIGHT, np.arange(4), s)
    np.testing.assert_allclose(poses.origin_ras_mm, np.column_stack([0 * s, 0 * s, s]), atol=1e-12)
    np.testing.assert_allclose(poses.normal_ras, np.tile([0, 0, 1.0], (4, 1)), atol=1e-12)
    # reference starts anterior (A); y = normal x x points left (-R)
    np.testing.assert_allclose(poses.axes_ras[:, :, 0], np.tile([0, 1.0, 0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(poses.axes_ras[:, :, 1], np.tile([-1.0, 0, 0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(_right_handed(poses), 1.0)
    np.testing.assert_allclose(poses.to_world(2, np.array([[1.0, 2.0]])), [[-2.0, 1.0, 25.5]], atol=1e-12)
    np.testing.assert_allclose(poses.matrices()[2] @ [1.0, 2.0, 0, 1], [-2.0, 1.0, 25.5, 1.0], atol=1e-12)


def test_rotation_mirror_and_lumen_centroid():
    centre = (0.5, -0.25)
    contours = ContourSet(
        tuple(FrameContours(i, polar_polygon(np.full(64, 1.5), center_mm=centre)) for i in range(2))
    )
    poses = place_frames(STRAIGHT, np.arange(2), np.array([5.0, 6.0]), rotation_deg=90.0)
    np.testing.assert_allclose(poses.axes_ras[0].T, [[-1, 0, 0], [0, -1, 0]], atol=1e-12)
    mirrored = place_frames(STRAIGHT, np.arange(2), np.array([5.0, 6.0]), mirror=True)
    np.testing.assert_allclose(mirrored.axes_ras[0].T, [[0, 1, 0], [1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(_right_handed(mirrored), -1.0)
    centred = place_frames(
        STRAIGHT, np.arange(2), np.array([5.0, 6.0]), contours=contours, align="lumen-centroid"
    )
    np.testing.assert_allclose(centred.offset_mm, [centre, centre], atol=1e-9)
    np.testing.assert_allclose(centred.to_world(1, np.array([centre])), [[0, 0, 6.0]], atol=1e-9)
    with pytest.raises(IVUSInputError, match="lumen-centroid needs contours"):
        place_frames(STRAIGHT, np.arange(2), np.array([5.0, 6.0]), align="lumen-centroid")


@pytest.mark.parametrize("smoothing, tol", [(0.0, 1e-5), (2.0, 0.005)])
def test_circular_arc_placement(smoothing, tol):
    radius = 20.0
    s = np.array([0.0, 3.0, 10.0, 20.0, 31.0])
    poses = place_frames(_arc(radius), np.arange(5), s, smoothing_length_mm=smoothing)
    phi = s / radius
    np.testing.assert_allclose(
        poses.origin_ras_mm, np.column_stack([radius * np.cos(phi), radius * np.sin(phi), 0 * s]), atol=tol
    )
    np.testing.assert_allclose(
        poses.normal_ras, np.column_stack([-np.sin(phi), np.cos(phi), 0 * s]), atol=tol
    )
    # planar curve: the RMF keeps the out-of-plane axis fixed, x stays radial outward
    np.testing.assert_allclose(
        poses.axes_ras[:, :, 0], np.column_stack([np.cos(phi), np.sin(phi), 0 * s]), atol=tol
    )
    np.testing.assert_allclose(poses.axes_ras[:, :, 1], np.tile([0, 0, -1.0], (5, 1)), atol=tol)
    np.testing.assert_allclose(_right_handed(poses), 1.0, atol=1e-9)


def test_frame_arc_lengths():
    np.testing.assert_allclose(
        frame_arc_lengths_mm(np.array([1.0, 1.1, 1.3]), 0.5, start_mm=2.0), [2.0, 2.05, 2.15]
    )
    with pytest.raises(IVUSInputError, match="pullback speed: value is 0.0; give the pullback speed in mm/s"):
        frame_arc_lengths_mm(np.array([0.0, 1.0]), 0.0)


def test_short_centerline_message():
    short = Centerline(np.array([[0.0, 0, 0], [0, 0, 30.0]]), source="cl.csv")
    s = frame_arc_lengths_mm(np.linspace(0, 20.6, 310), 2.0)
    with pytest.raises(IVUSInputError) as e:
        place_frames(short, np.arange(310), s, start_mm=0.0)
    assert str(e.value) == (
        "cl.csv: centerline length 30.0 mm is shorter than the pullback (needs 41.2 mm from the start position 0 mm); "
        "give a longer centerline or a smaller start position"
    )
    with pytest.raises(IVUSInputError, match="frame 0 falls 2.0 mm before the first"):
        place_frames(short, np.arange(2), np.array([-2.0, 5.0]))


def test_landmarks_map_positions_and_rotation():
    line = Centerline(np.array([[0.0, 0, 0], [0, 0, 100.0]]), source="line.csv")
    frames = np.arange(0, 101)
    nominal = 0.5 * frames  # 0.5 mm per frame
    landmarks = (
        Landmark(40, point_ras_mm=np.array([0.0, 3.0, 25.0]), angle_deg=30.0),  # off-centerline (+A)
        Landmark(80, point_ras_mm=np.array([0.0, 0.0, 45.0])),
    )
    poses = place_frames(line, frames, nominal, landmarks=landmarks)
    np.testing.assert_allclose(
        poses.arc_length_mm[[0, 40, 60, 80, 100]], [5.0, 25.0, 35.0, 45.0, 55.0], atol=1e-9
    )
    # the frame-plane direction 30 deg points at the branch in world
    direction = (
        poses.to_world(40, np.array([[math.cos(math.radians(30)), math.sin(math.radians(30))]]))
        - poses.origin_ras_mm[40]
    )
    np.testing.assert_allclose(direction[0], [0, 1, 0], atol=1e-9)
    mirrored = place_frames(line, frames, nominal, landmarks=landmarks, mirror=True)
    direction = (
        mirrored.to_world(40, np.array([[math.cos(math.radians(30)), math.sin(math.radians(30))]]))
        - mirrored.origin_ras_mm[40]
    )
    np.testing.assert_allclose(direction[0], [0, 1, 0], atol=1e-9)
    fit = fit_landmarks(resample_centerline(line), frames, nominal, landmarks)
    first, second = fit.residuals
    assert first["shift_mm"] == pytest.approx(5.0) and first["distance_to_centerline_mm"] == pytest.approx(
        3.0
    )
    assert first["rotation_deg"] == pytest.approx(-30.0)  # reference is +A, branch is +A, angle 30
    assert second["rotation_deg"] is None and second["leave_one_out_error_mm"] == pytest.approx(0.0, abs=1e-9)
    # uncertainty: 0.5 mm at a landmark, growing with 5 % of the distance to the nearest one
    assert fit.uncertainty_mm[40] == pytest.approx(0.5)
    assert fit.uncertainty_mm[0] == pytest.approx(math.hypot(0.5, 0.05 * 20.0))


def test_landmarks_out_of_order_and_uncertainty_without_landmarks():
    line = Centerline(np.array([[0.0, 0, 0], [0, 0, 100.0]]), source="line.csv")
    frames = np.arange(0, 101)
    bad = (
        Landmark(40, point_ras_mm=np.array([0, 0, 60.0])),
        Landmark(80, point_ras_mm=np.array([0, 0, 30.0])),
    )
    with pytest.raises(
        IVUSInputError, match="landmarks frame 40 lies at 60.0 mm but later frame 80 at 30.0 mm"
    ):
        place_frames(line, frames, 0.5 * frames, landmarks=bad, source_name="lm.json")
    poses = place_frames(line, frames, 0.5 * frames)
    assert poses.uncertainty_mm[0] == pytest.approx(1.0)
    assert poses.uncertainty_mm[80] == pytest.approx(math.hypot(1.0, 0.05 * 40.0))


def test_real_centerline_frames_are_continuous(real_data):
    from IVUSReconstructLib.io.centerline import read_centerline

    cl = read_centerline(real_data / "aaoca_ivus_ccta" / "centerline_raw.csv", order="proximal-first")
    s = frame_arc_lengths_mm(np.arange(2000) / 30.0, 2.0, start_mm=5.0)  # 30 fps, 2 mm/s: 66.6 mm
    poses = place_frames(cl, np.arange(2000), s)
    assert poses.arc_length_mm[-1] == pytest.approx(5.0 + 1999 / 15.0)
    np.testing.assert_allclose(_right_handed(poses), 1.0, atol=1e-9)
    # origins lie on the input polyline (light smoothing): within 0.1 mm of it
    from IVUSReconstructLib.coregistration import SampledCurve

    raw = resample_centerline(cl, smoothing_length_mm=0.0)
    assert isinstance(raw, SampledCurve)
    dist = max(raw.closest_arc_length(p)[1] for p in poses.origin_ras_mm[::50])
    assert dist < 0.1
    # rotation-minimising: the x axis turns smoothly (< 2 deg per 0.067 mm frame step)
    cosines = np.einsum("ni,ni->n", poses.axes_ras[1:, :, 0], poses.axes_ras[:-1, :, 0])
    assert np.degrees(np.arccos(np.clip(cosines, -1, 1))).max() < 2.0


def _helix_curve():
    th = np.linspace(0.0, 2.5 * np.pi, 3000)
    helix = Centerline(np.column_stack([15 * np.cos(th), 15 * np.sin(th), 6 * th]), source="helix.csv")
    return resample_centerline(helix, smoothing_length_mm=0.0)


def test_landmarks_recover_speed_wave_and_twist():
    # true pullback: speed varies +-30 % (one wave), the catheter twists 90 deg along it
    curve = _helix_curve()
    n, start, length = 901, 5.0, 60.0
    x = np.arange(n) / (n - 1)
    true_s = start + length * (x + 0.3 / (2 * np.pi) * np.sin(2 * np.pi * x))
    speed = np.gradient(true_s, x) / length
    assert speed.max() == pytest.approx(1.3, abs=1e-3) and speed.min() == pytest.approx(0.7, abs=1e-3)
    true_rot = 90.0 * (true_s - start) / length
    nominal = start + length * x  # constant nominal speed
    landmarks = []
    for frame, branch_deg in zip((45, 315, 585, 855), (30.0, 150.0, 250.0, 320.0), strict=True):
        p, t, r = curve.evaluate(np.array([true_s[frame]]))
        b = np.cross(t[0], r[0])
        phi = np.radians(true_rot[frame] + branch_deg)
        ostium = p[0] + 2.0 * (np.cos(phi) * r[0] + np.sin(phi) * b)  # on the wall, 2 mm off
        landmarks.append(Landmark(frame, angle_deg=branch_deg, point_ras_mm=ostium))
    poses = place_frames(curve, np.arange(n), nominal, landmarks=landmarks)
    between = slice(45, 856)
    err_mm = np.abs(poses.arc_length_mm - true_s)[between]
    assert err_mm.max() <= 0.3
    assert np.abs(nominal - true_s)[between].max() > 2.5  # without landmarks: mm off
    # rotation: angle between the placed and the true x axis
    _, t, r = curve.evaluate(true_s)
    b = np.cross(t, r)
    th = np.radians(true_rot)
    true_x = np.cos(th)[:, None] * r + np.sin(th)[:, None] * b
    cos = np.clip(np.einsum("ni,ni->n", poses.axes_ras[:, :, 0], true_x), -1, 1)
    err_deg = np.degrees(np.arccos(cos))[between]
    assert err_deg.max() <= 5.0
    fit = fit_landmarks(curve, np.arange(n), nominal, landmarks)
    wrapped = [math.remainder(res["rotation_deg"] - true_rot[res["frame"]], 360.0) for res in fit.residuals]
    np.testing.assert_allclose(wrapped, 0.0, atol=0.01)
    # leave-one-out: how far each landmark is from the map through the other three (symmetric
    # speed wave: +-1.43 mm at the outer landmarks, +-3.93 mm at the inner ones)
    loo = [res["leave_one_out_error_mm"] for res in fit.residuals]
    np.testing.assert_allclose(loo, [1.431, -3.931, 3.931, -1.431], atol=0.01)


@pytest.mark.parametrize("mirror", [False, True])
def test_three_point_alignment(mirror):
    from IVUSReconstructLib.coregistration import three_point_alignment

    curve = _helix_curve()
    s = 30.0
    p, t, r = curve.evaluate(np.array([s]))
    b = np.cross(t[0], r[0])
    true_rot, ref_deg = 40.0, 120.0
    sign = -1.0 if mirror else 1.0

    def wall(frame_deg):
        phi = np.radians(true_rot + sign * frame_deg)
        return p[0] + 1.5 * (np.cos(phi) * r[0] + np.sin(phi) * b)

    landmark, got_mirror = three_point_alignment(
        curve, 7, ref_deg, wall(ref_deg), wall(ref_deg + 40), wall(ref_deg - 40)
    )
    assert got_mirror is mirror
    poses = place_frames(curve, np.array([7]), np.array([10.0]), landmarks=[landmark], mirror=got_mirror)
    assert poses.arc_length_mm[0] == pytest.approx(s, abs=0.005)  # foot on 0.1 mm chords
    direction = poses.to_world(0, np.array([[np.cos(np.radians(ref_deg)), np.sin(np.radians(ref_deg))]]))
    np.testing.assert_allclose(
        (direction - poses.origin_ras_mm[0])[0], (wall(ref_deg) - p[0]) / 1.5, atol=1e-3
    )
