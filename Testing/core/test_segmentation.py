"""Lumen / vessel segmentation: polar map, DP, shadow fill and accuracy on unseen phantoms."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.evaluation import evaluate_contours
from IVUSReconstructLib.geometry import polygon_area, ray_radii
from IVUSReconstructLib.io.contours import read_contours
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.segmentation import (
    PolarSampler,
    SegmentationOptions,
    dp_closed_path,
    segment_pullback,
)
from IVUSReconstructLib.segmentation.eem import _steady_faint_wall
from IVUSReconstructLib.segmentation.polar import _local_ncc, _step, _subsample
from IVUSReconstructLib.segmentation.segmenter import _despike, _overlay_fill, _Segmenter
from IVUSReconstructLib.segmentation.shadows import (
    _branch_sectors,
    _fill_hidden,
    _fourier_fill,
    _penumbra,
    find_shadows,
)
from IVUSReconstructLib.segmentation.shapes import _aspect_ratio, _axis_ends
from IVUSReconstructLib.types import Pullback


def test_polar_sampler_reads_radius_of_a_radial_ramp():
    n = 200
    rows, cols = np.mgrid[0:n, 0:n]
    centre = (99.5, 99.5)
    image = np.hypot(rows - centre[0], cols - centre[1]).astype(np.float32)  # value = radius in px
    sampler = PolarSampler.build((n, n), (0.05, 0.05), centre, n_angles=64)
    polar = sampler(image[None])[0]
    expected_px = sampler.radii_mm / 0.05
    assert np.allclose(polar[:, 5:-2], expected_px[None, 5:-2], atol=0.05 * expected_px[None, 5:-2] + 0.1)


def test_dp_follows_a_closed_sinusoidal_valley():
    n_a, n_r = 90, 60
    theta = 2 * np.pi * np.arange(n_a) / n_a
    truth = np.round(30 + 8 * np.sin(theta) + 4 * np.cos(2 * theta)).astype(int)
    cost = np.ones((1, n_a, n_r), dtype=np.float32)
    cost[0, np.arange(n_a), truth] = 0.0
    rng = np.random.default_rng(0)
    cost += 0.3 * rng.random(cost.shape).astype(np.float32)
    path = dp_closed_path(cost, max_step=3, smooth_weight=0.01)[0]
    assert np.array_equal(path, truth)
    assert abs(int(path[0]) - int(path[-1])) <= 3  # closed: no jump across theta = 0


def test_dp_path_closes_when_two_borders_compete_around_the_circle():
    # two valleys whose preference swaps around the circle: the padded run's middle turn used to
    # end on one valley and start on the other (16 of these 1000 frames), and the band refined
    # around such a border collapsed the lumen to radius 0
    rng = np.random.default_rng(1)
    n_a, n_r = 90, 60
    theta = 2 * np.pi * np.arange(n_a) / n_a
    worst = 0
    for _ in range(20):
        cost = rng.random((50, n_a, n_r)).astype(np.float32)
        cost[:, :, 15] -= (0.6 + 0.5 * np.cos(theta))[None, :]
        cost[:, :, 45] -= (0.6 - 0.5 * np.cos(theta))[None, :]
        path = dp_closed_path(cost, max_step=2, smooth_weight=0.05)
        seam = np.abs(np.diff(np.concatenate([path, path[:, :1]], axis=1), axis=1)).max()
        worst = max(worst, int(seam))
    assert worst <= 2


def test_step_locates_an_edge_between_samples_to_sub_sample_precision():
    # a ramp-free step of height 1 between samples 19 and 20, blurred symmetrically
    x = np.zeros((1, 1, 40), np.float32)
    x[..., 20:] = 1.0
    edge = _step(x, 3)
    path = np.argmax(edge, axis=-1)
    assert int(path[0, 0]) == 20  # the step at index r lies between samples r - 1 and r
    assert _subsample(edge, path)[0, 0] == pytest.approx(20.0, abs=0.01)


def test_fourier_fill_recovers_an_off_centre_circle_behind_a_long_shadow():
    n_a = 180
    theta = 2 * np.pi * np.arange(n_a) / n_a
    cx, cy, radius = 0.8, -0.4, 3.0
    proj = cx * np.cos(theta) + cy * np.sin(theta)
    truth = proj + np.sqrt(radius**2 - (cx**2 + cy**2) + proj**2)
    hidden = (theta > np.radians(60)) & (theta < np.radians(200))
    seen = np.where(hidden, 1.0, truth)  # garbage behind the shadow
    filled = _fourier_fill(seen, hidden)
    assert np.max(np.abs(filled - truth)) < 0.05
    assert np.array_equal(filled[~hidden], truth[~hidden])


def test_local_correlation_separates_moving_from_still_speckle():
    rng = np.random.default_rng(3)
    still = rng.rayleigh(size=(1, 60, 80)).astype(np.float32)
    a = still.copy()
    b = still.copy()
    # left half: fresh speckle in the second image (blood); right half: the same (tissue)
    b[..., :40] = rng.rayleigh(size=(1, 60, 40))
    ncc = _local_ncc(a, b, 5, 5)
    assert abs(float(ncc[..., 5:35].mean())) < 0.1
    assert float(ncc[..., 45:75].mean()) > 0.99


# Seed 17 was not used to choose methods or parameters, except that its femoropopliteal frames
# showed the calcium missed behind an overshooting lumen estimate (calcium_depth_fraction). The
# bounds are the worst figures over the seeds 3, 5, 9, 11 (tuning) and 31, 37, 41, 43 (checks),
# less a margin; worst lumen J / vessel J, worst lumen HD / vessel HD (mm):
# coronary rotational 0.960 / 0.976, 0.16 / 0.11; phased 0.978 / 0.985, 0.08 / 0.04;
# femoropopliteal rotational 0.925 / 0.956, 0.34 / 0.26 (a tail: most seeds 0.95-0.98,
# 0.1-0.25 mm; see test_femoropopliteal_lumen_stays_in_front_of_the_media); phased 0.981 / 0.984,
# 0.16 / 0.12; iliac-vein rotational 0.984 / 0.975, 0.16 / 0.26; phased 0.985 / 0.975, 0.12 / 0.26.
CASES = [
    ("coronary", "rotational", 0.94, 0.96, 0.25, 0.15),
    ("coronary", "phased", 0.96, 0.97, 0.12, 0.08),
    ("femoropopliteal", "rotational", 0.90, 0.93, 0.45, 0.35),
    ("femoropopliteal", "phased", 0.96, 0.96, 0.25, 0.20),
    ("iliac-vein", "rotational", 0.97, 0.96, 0.25, 0.30),
    ("iliac-vein", "phased", 0.97, 0.96, 0.20, 0.30),
]


@pytest.mark.parametrize(("preset", "speckle", "j_lumen", "j_vessel", "h_lumen", "h_vessel"), CASES)
def test_segmentation_accuracy_on_unseen_phantoms(preset, speckle, j_lumen, j_vessel, h_lumen, h_vessel):
    ph = make_phantom(preset, seed=17, length_mm=8.0, speckle=speckle)
    frames = ph.ed_frames if len(ph.ed_frames) else np.arange(0, ph.pullback.n_frames, 12)
    cs = segment_pullback(ph.pullback, frames)
    assert np.array_equal(cs.indices, np.unique(frames))
    truth = ph.truth.with_frames(tuple(f for f in ph.truth.frames if f.index in set(frames.tolist())))
    summary = evaluate_contours(cs, truth)["summary"]
    assert summary["lumen"]["jaccard"]["mean"] >= j_lumen
    assert summary["vessel"]["jaccard"]["mean"] >= j_vessel
    assert summary["lumen"]["hausdorff_mm"]["mean"] <= h_lumen
    assert summary["vessel"]["hausdorff_mm"]["mean"] <= h_vessel
    conf = np.array([f.confidence for f in cs.frames])
    assert np.all((conf >= 0) & (conf <= 1))


def test_coronary_lumen_area_is_unbiased():
    """The volumes of the demo depend on the mean area error, not only on overlap."""
    ph = make_phantom("coronary", seed=17, length_mm=8.0)
    cs = segment_pullback(ph.pullback, ph.ed_frames)
    truth = {f.index: f for f in ph.truth.frames}
    bias = np.mean([polygon_area(f.lumen) / polygon_area(truth[f.index].lumen) - 1 for f in cs.frames])
    assert abs(bias) < 0.03


def test_calcium_arc_is_measured_where_there_is_calcium():
    ph = make_phantom("coronary", seed=17, length_mm=8.0)
    cs = segment_pullback(ph.pullback, ph.ed_frames)
    truth = {f.index: f for f in ph.truth.frames}
    with_calcium = [f for f in cs.frames if truth[f.index].calcium]
    without = [f for f in cs.frames if not truth[f.index].calcium]
    assert with_calcium and without
    assert np.median([f.calcium_arc_deg for f in with_calcium]) > 40.0  # truth: 110 deg arc
    assert np.median([f.calcium_arc_deg for f in without]) < 5.0


def test_segment_rejects_frames_outside_the_pullback():
    ph = make_phantom("coronary", seed=21, length_mm=0.5)
    n = ph.pullback.n_frames
    with pytest.raises(IVUSInputError, match=rf"frames {n}-{n}: outside the pullback's 0-{n - 1}"):
        segment_pullback(ph.pullback, [n])


def test_aspect_ratio_of_ellipses_seen_from_an_off_centre_catheter():
    theta = 2 * np.pi * np.arange(360) / 360
    rows = []
    for a, b, dx in ((4.0, 1.0, 0.0), (2.0, 1.0, 0.5), (1.0, 1.0, 0.3)):
        # radius of an ellipse centred at (dx, 0) along rays from the origin
        c = np.cos(theta) ** 2 / a**2 + np.sin(theta) ** 2 / b**2
        bq = -2 * dx * np.cos(theta) / a**2
        cq = dx**2 / a**2 - 1
        rows.append((-bq + np.sqrt(bq**2 - 4 * c * cq)) / (2 * c))
    assert _aspect_ratio(np.array(rows)) == pytest.approx([4.0, 2.0, 1.0], rel=0.01)


@pytest.mark.slow
def test_side_branch_ostium_keeps_the_main_lumen():
    """Where a side branch leaves, blood continues out through a 60-degree gap in the wall and the
    truth closes the main lumen across the ostium. Here the guidewire's shadow lies in the
    ostium too: the trace dives beside it and bulges into the branch, and both are filled from
    the rest of the border. Measured on the branch frames: lumen / vessel J 0.975 / 0.967 (it
    was 0.893 / 0.940 with neither closed)."""
    plain = make_phantom("coronary", seed=17, length_mm=8.0)
    ph = make_phantom("coronary", seed=17, length_mm=8.0, side_branch=True)
    assert plain.side_branch_mm is None and ph.side_branch_mm == 2.0  # a quarter of the 8 mm
    z_mm = ph.true_arc_length_mm  # the ostium spans 1 mm either side of its centre
    far = np.abs(z_mm - ph.side_branch_mm) >= 1.0
    assert np.array_equal(ph.pullback.frames[far], plain.pullback.frames[far])
    assert not np.array_equal(ph.pullback.frames[~far], plain.pullback.frames[~far])
    assert all(
        np.array_equal(a.lumen, b.lumen) for a, b in zip(ph.truth.frames, plain.truth.frames, strict=True)
    )
    frames = np.flatnonzero(np.abs(z_mm - ph.side_branch_mm) < 0.8)[::3]
    cs = segment_pullback(ph.pullback, frames)
    summary = evaluate_contours(cs, ph.truth)["summary"]
    assert summary["lumen"]["jaccard"]["mean"] >= 0.95
    assert summary["vessel"]["jaccard"]["mean"] >= 0.95
    # the filled ostium counts as unseen in the edge-strength confidence: measured mean 0.641
    # against 0.658
    raw = SegmentationOptions(calibrated_confidence=False)
    plain_confidence = np.mean([f.confidence for f in segment_pullback(plain.pullback, frames, options=raw).frames])
    branch_confidence = np.mean([f.confidence for f in segment_pullback(ph.pullback, frames, options=raw).frames])
    assert branch_confidence < plain_confidence - 0.01
    # a frame's borders do not depend on which other frames were asked for
    alone = segment_pullback(ph.pullback, frames[10:11]).frames[0]
    with_others = cs.frames[10]
    assert alone.index == with_others.index
    gap_mm = ray_radii(alone.lumen, np.zeros(2), 180) - ray_radii(with_others.lumen, np.zeros(2), 180)
    assert np.max(np.abs(gap_mm)) < 0.02


def _ellipse_mm(a_mm: float, b_mm: float, n: int = 180) -> np.ndarray:
    t = 2 * np.pi * np.arange(n) / n
    return a_mm * b_mm / np.hypot(b_mm * np.cos(t), a_mm * np.sin(t))


def _bump_mm(height_mm: float, centre: int, half_width: int, n: int = 180) -> np.ndarray:
    off = np.abs((np.arange(n) - centre + n // 2) % n - n // 2)
    return np.where(off < half_width, height_mm * np.cos(0.5 * np.pi * off / half_width) ** 2, 0.0)


BRANCH = {
    "min_excess_mm": 0.4,
    "min_excess_fraction": 0.2,
    "wall_fraction": 0.6,
    "grow_mm": 0.05,
    "max_width": 60,
}


def test_branch_sector_needs_lumen_and_eem_to_leave_their_ellipses_together():
    lumen, vessel = _ellipse_mm(2.0, 1.5), _ellipse_mm(2.6, 2.1)
    bump = _bump_mm(1.0, centre=50, half_width=15)  # 60 degrees, 1 mm out
    seen = np.ones(180, bool)
    ostium_lumen, ostium_vessel = _branch_sectors(lumen + bump, vessel + bump, seen, seen, **BRANCH)
    # the sector runs to where the bump is within 0.05 mm: directions 38-62
    assert np.flatnonzero(ostium_lumen).tolist() == list(range(38, 63))
    assert np.array_equal(ostium_vessel, ostium_lumen)
    # a lumen that bulges inside a still EEM has thinner plaque there, not a branch
    lobe_lumen, lobe_vessel = _branch_sectors(lumen + bump, vessel, seen, seen, **BRANCH)
    assert not lobe_lumen.any() and not lobe_vessel.any()
    # an EEM trace that follows the branch's wall behind a closed lumen is closed alone
    wall_lumen, wall_vessel = _branch_sectors(lumen, vessel + bump, seen, seen, **BRANCH)
    assert not wall_lumen.any() and np.flatnonzero(wall_vessel).tolist() == list(range(38, 63))
    # too small to tell from a real border's departure from its ellipse (0.3 mm < 0.4 mm)
    small = _bump_mm(0.3, centre=50, half_width=15)
    assert not any(x.any() for x in _branch_sectors(lumen + small, vessel + small, seen, seen, **BRANCH))
    # wider than 120 degrees is the vessel's shape
    wide = _bump_mm(1.0, centre=50, half_width=40)
    assert not any(x.any() for x in _branch_sectors(lumen + wide, vessel + wide, seen, seen, **BRANCH))


def test_real_expert_borders_are_rarely_taken_for_branches(real_data):
    """Expert contours close the lumen and EEM across side branches (14 of the NARCO frames have
    one), so every sector found on them is a false alarm: 2 of 135 frames, both in the HolOrama
    set (an egg-shaped vessel whose big end leaves the ellipse by > 0.4 mm, and frame 383, whose
    EEM is a narrow band beside its lumen)."""
    sets = [
        read_contours(real_data / "aaoca_ivus_ccta" / "ivus_full" / f"{phase}_contours.csv")
        for phase in ("diastolic", "systolic")
    ]
    holorama = real_data / "aivus_pullback_contours" / "holorama" / "anonymized_contours_ho_0_1_0.json"
    sets.append(read_contours(holorama, pixel_spacing_mm=0.0175553))
    seen = np.ones(180, bool)
    found, total = [], 0
    for cs in sets:
        for f in cs.frames:
            if f.vessel is None:
                continue
            total += 1
            lumen, vessel = (ray_radii(x, np.zeros(2), 180) for x in (f.lumen, f.vessel))
            if _aspect_ratio(lumen[None])[0] < 2.0 and any(
                x.any() for x in _branch_sectors(lumen, vessel, seen, seen, **BRANCH)
            ):
                found.append(f.index)
    assert total == 135
    assert found == [383, 433]


def test_penumbra_hides_a_dive_beside_a_shadow_but_not_plaque_elsewhere():
    radii = _ellipse_mm(1.6, 1.4)
    shadow = np.zeros(180, bool)
    shadow[100:110] = True
    # dragged in beside the shadow; more than 0.05 mm in over directions 90-106
    dive = radii - _bump_mm(0.6, centre=98, half_width=10)
    hidden = _penumbra(dive, shadow, min_dent_mm=0.4, min_dent_fraction=0.2, grow_mm=0.05)
    assert np.flatnonzero(hidden).tolist() == list(range(90, 110))
    # the same dent a quarter turn away is plaque: kept
    plaque = radii - _bump_mm(0.6, centre=30, half_width=10)
    assert np.array_equal(
        _penumbra(plaque, shadow, min_dent_mm=0.4, min_dent_fraction=0.2, grow_mm=0.05), shadow
    )


def test_femoropopliteal_lumen_stays_in_front_of_the_media():
    """At 40-60 MHz the step from the dark media to the adventitia looks like blood meeting wall.
    Charged for the stable plaque it would enclose, the typical lumen stays in front of it: the
    median frame's area error is -0.6 to -0.8% on seeds 3-43 (it was +8% on average before).
    A minority of frames still leak to the media (mean error up to +5%, seed 5)."""
    ph = make_phantom("femoropopliteal", seed=17, length_mm=8.0, speckle="rotational")
    cs = segment_pullback(ph.pullback, ph.ed_frames)
    truth = {f.index: f for f in ph.truth.frames}
    errors = [polygon_area(f.lumen) / polygon_area(truth[f.index].lumen) - 1 for f in cs.frames]
    assert abs(np.median(errors)) < 0.02  # measured -0.006
    assert np.mean(np.abs(errors) < 0.05) >= 0.7  # measured 7 of 9 frames


def _noise_pullback(n_frames: int = 8, size: int = 64) -> Pullback:
    rng = np.random.default_rng(5)
    frames = rng.integers(20, 120, size=(n_frames, size, size), dtype=np.uint8)
    return Pullback(
        frames=frames,
        pixel_spacing_mm=(0.1, 0.1),
        frame_times_s=np.arange(n_frames) / 30.0,
        pullback_speed_mm_s=0.5,
        acquisition="motor",
        catheter_center_px=((size - 1) / 2, (size - 1) / 2),
    )


def test_burned_in_marks_are_replaced_by_image_pixels_but_the_catheter_is_not():
    pb = _noise_pullback()
    frames = np.array(pb.frames)
    frames[:, 10:13, 40:43] = 170  # a depth dot 2.3 mm from the catheter, in every frame
    frames[:, 30:34, 30:34] = 255  # saturated ring-down 0.2 mm from the catheter
    pb = Pullback(**{**pb.__dict__, "frames": frames})
    dst, src = _overlay_fill(pb, exclude_radius_mm=1.2)
    rows, cols = np.unravel_index(dst, (64, 64))
    # the dot and a one-pixel margin, nothing near the catheter
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == {
        (r, c) for r in range(9, 14) for c in range(39, 44)
    } - {
        (9, 39),
        (9, 43),
        (13, 39),
        (13, 43),
    }
    filled = _Segmenter(pb, SegmentationOptions()).frames([0, 1, 2])
    assert np.all(filled[:, 30:34, 30:34] == 255)
    dot = filled[:, 10:13, 40:43].reshape(3, -1)
    assert not np.any(np.all(dot == dot[0], axis=0))  # every replaced pixel now changes between frames


def test_despike_removes_narrow_excursions_and_keeps_wide_ones():
    radii = np.full((1, 180), 3.0)
    radii[0, 50:53] += 0.4  # three directions (6 degrees) out and back: a speckle blob
    radii[0, 100:130] += 0.4  # 60 degrees: eccentric plaque, anatomy
    out = _despike(radii, 9, 0.12)
    assert np.allclose(out[0, 45:58], 3.0)
    assert np.allclose(out[0, 104:126], 3.4)


@pytest.mark.slow
def test_threads_and_batch_size_do_not_change_the_result():
    ph = make_phantom("coronary", seed=2, length_mm=3.0)
    frames = np.arange(1, ph.pullback.n_frames - 1, 3)
    one = segment_pullback(ph.pullback, frames, options=SegmentationOptions(threads=1))
    two = segment_pullback(ph.pullback, frames, options=SegmentationOptions(threads=2))
    small = segment_pullback(ph.pullback, frames, options=SegmentationOptions(threads=2, batch_frames=4))
    for a, b, c in zip(one.frames, two.frames, small.frames, strict=True):
        # batches depend on the frame count only: any core count gives the same bytes
        assert np.array_equal(a.lumen, b.lumen) and np.array_equal(a.vessel, b.vessel)
        # other batches: equal up to float32 summation order in numpy's reductions (3e-6 mm)
        assert np.abs(a.lumen - c.lumen).max() < 1e-4 and np.abs(a.vessel - c.vessel).max() < 1e-4


def _slit_radii(n_a: int = 180) -> np.ndarray:
    """Radii of a 6 x 1.5 mm (semi-axes) ellipse tilted 30 degrees, catheter 0.5 mm off its centre."""
    from IVUSReconstructLib.geometry import ray_radii

    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    tilt = np.deg2rad(30)
    x, y = 6.0 * np.cos(t), 1.5 * np.sin(t)
    pts = np.column_stack([x * np.cos(tilt) - y * np.sin(tilt) + 0.5, x * np.sin(tilt) + y * np.cos(tilt)])
    return ray_radii(pts, np.zeros(2), n_a)


def test_hidden_end_of_a_slit_is_filled_from_its_ellipse_not_cut_by_a_chord():
    truth = _slit_radii()
    hidden = np.zeros(180, bool)
    hidden[8:23] = True  # a guidewire shadow over the end at 30 degrees (index 15)
    chord = _fill_hidden(truth, hidden, long_run=15)
    ellipse = _fill_hidden(truth, hidden, long_run=15, ellipse_aspect=2.0)
    assert truth[15] - chord[15] > 1.5  # the chord cuts the end off by more than 1.5 mm
    assert np.abs(ellipse - truth).max() < 0.02


def test_reflector_nearer_the_lumen_border_than_the_catheter_is_calcium():
    """A guidewire beside the catheter and a calcium plate 15 % in front of the (overshooting)
    lumen estimate: both cast a shadow, only the plate is calcium and cuts the lumen."""
    seg = _Segmenter(_noise_pullback(), SegmentationOptions())
    seg.ring = 5
    n_a, r = seg.o.n_angles, seg.radii
    image = np.full((1, n_a, len(r)), 0.5, np.float32)
    for sector, reflector_mm in ((slice(20, 30), r[seg.ring] + 0.3), (slice(100, 120), 0.85 * 2.4)):
        image[0, sector, r > reflector_mm + 0.05] = 0.01
        image[0, sector, np.argmin(np.abs(r - reflector_mm))] = 3.0
    lumen = np.full((1, n_a), 2.4)
    shadow, calcium, polygons, reflector = find_shadows(seg, image, lumen, lumen + 0.3)
    assert shadow[0, 20:30].all() and shadow[0, 100:120].all()
    assert not calcium[0, 20:30].any()
    assert calcium[0, 102:118].all()
    assert np.allclose(reflector[0, 102:118], 2.04, atol=seg.dr)
    assert len(polygons[0]) == 1


def test_faint_eem_is_smoothed_around_the_vessel_and_a_clear_one_is_kept():
    """A vein's EEM step is faint: each direction's trace wanders by a few samples about the true
    wall, and the smoothed thickness recovers it; a clear step is kept as traced."""
    seg = _Segmenter(_noise_pullback(), SegmentationOptions())
    n_a = seg.o.n_angles
    lumen = np.full((1, n_a), 40.0)
    wander = np.where(np.arange(n_a) % 6 < 3, 2.0, -2.0)  # +-2 samples about a 5-sample wall
    traced = lumen + 5.0 + wander[None]
    stretch = np.ones((1, n_a))
    faint = _steady_faint_wall(seg, traced, lumen, stretch, np.full((1, n_a), 0.08))
    clear = _steady_faint_wall(seg, traced, lumen, stretch, np.full((1, n_a), 0.8))
    assert np.abs(faint - (lumen + 5.0)).max() < 0.25  # 90 % smoothed: 0.1 x 2 samples of wander left
    assert np.array_equal(clear, traced)


def test_ellipse_fill_leaves_out_the_cut_directions_beside_the_shadow():
    """Next to a guidewire shadow the trace stops short (the shadow is in its windows); an ellipse
    fitted to those directions too cuts the hidden end by 1.4 mm."""
    truth = _slit_radii()
    hidden = np.zeros(180, bool)
    hidden[10:21] = True  # over the end at index 15
    traced = truth.copy()
    beside = np.r_[6:10, 21:25]
    traced[beside] = 0.7 * truth[beside]
    naive = _fill_hidden(traced, hidden, long_run=15, ellipse_aspect=2.0)
    margin = _fill_hidden(traced, hidden, long_run=15, ellipse_aspect=2.0, fit_margin=4)
    assert truth[15] - naive[15] > 1.0  # measured 1.44 mm
    assert np.abs(margin[hidden] - truth[hidden]).max() < 0.02
    assert np.array_equal(margin[~hidden], traced[~hidden])  # only the hidden sector is filled


def test_axis_ends_of_a_tilted_slit():
    ends = _axis_ends(_slit_radii()[None], 15.0)[0]
    # 30 and 210 degrees (indices 15 and 105) with +-15 degrees; seen from the off-centre catheter
    # the far end spans a little less, the near one a little more
    assert ends[15] == 1 and ends[105] == 1
    assert ends[60] == 0 and ends[150] == 0
    assert 12 <= ends.sum() <= 36
