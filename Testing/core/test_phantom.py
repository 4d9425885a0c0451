"""Synthetic IVUS phantom: determinism, ground-truth geometry, motion and image content."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polygon_area
from IVUSReconstructLib.phantom import PRESETS, TRUTH_POINTS, Phantom, make_phantom


@pytest.fixture(scope="module")
def coronary() -> Phantom:
    # Features keep their relative positions when the length is scaled: 10 mm holds the
    # whole focal lesion and the calcium arc (600 frames at 30 frames/s).
    return make_phantom("coronary", seed=1, length_mm=10.0, size_px=64)


@pytest.fixture(scope="module")
def femoral() -> Phantom:
    return make_phantom("femoropopliteal", seed=2, length_mm=40.0, size_px=32)


@pytest.fixture(scope="module")
def vein() -> Phantom:
    return make_phantom("iliac-vein", seed=3, length_mm=40.0, size_px=32)


def _areas(ph: Phantom, which: str) -> np.ndarray:
    return np.array([polygon_area(getattr(f, which)) for f in ph.truth.frames])


def _radii(points: np.ndarray) -> np.ndarray:
    return np.hypot(points[:, 0], points[:, 1])


def test_same_seed_gives_identical_bytes():
    a = make_phantom("coronary", seed=7, length_mm=0.4, size_px=40)
    b = make_phantom("coronary", seed=7, length_mm=0.4, size_px=40)
    c = make_phantom("coronary", seed=8, length_mm=0.4, size_px=40)
    assert a.pullback.frames.tobytes() == b.pullback.frames.tobytes()
    assert all(np.array_equal(f.lumen, g.lumen) for f, g in zip(a.truth.frames, b.truth.frames, strict=True))
    assert a.pullback.frames.tobytes() != c.pullback.frames.tobytes()
    assert np.mean(a.pullback.frames != c.pullback.frames) > 0.3


def test_truth_does_not_depend_on_image_size():
    small = make_phantom("coronary", seed=4, length_mm=0.2, size_px=32)
    large = make_phantom("coronary", seed=4, length_mm=0.2, size_px=256)
    assert large.pullback.pixel_spacing_mm == (10.0 / 256, 10.0 / 256)
    np.testing.assert_array_equal(small.truth.frames[3].vessel, large.truth.frames[3].vessel)
    assert len(small.truth.frames[3].lumen) == TRUTH_POINTS


def test_acquisition_facts(coronary: Phantom):
    pb = coronary.pullback
    assert pb.frames.shape == (600, 64, 64) and pb.frames.dtype == np.uint8
    assert pb.pixel_spacing_mm == (10.0 / 64, 10.0 / 64)
    np.testing.assert_allclose(pb.frame_times_s, np.arange(600) / 30.0)
    assert pb.pullback_speed_mm_s == 0.5 and pb.acquisition == "motor"
    assert pb.catheter_center_px == (31.5, 31.5)
    assert coronary.preset == "coronary" and coronary.speckle == "rotational" and coronary.seed == 1
    assert [f.index for f in coronary.truth.frames] == list(range(600))


def test_end_diastolic_frames_sit_at_speed_times_time(coronary: Phantom):
    s, t = coronary.true_arc_length_mm, coronary.pullback.frame_times_s
    ed = coronary.ed_frames
    assert ed[0] == 0 and 23 <= len(ed) <= 25  # 20 s at ~70 bpm
    np.testing.assert_allclose(s[ed], 0.5 * t[ed], atol=1e-12)
    # Between end-diastoles the catheter moves back and forth by up to dz_peak (0.75 mm).
    assert 0.6 < np.max(s - 0.5 * t) <= 0.75 + 1e-9
    phases = [f.index for f in coronary.truth.frames if f.phase == "ED"]
    assert phases == ed.tolist()
    assert all(f.z_mm == pytest.approx(s[f.index]) for f in coronary.truth.frames)


def test_heart_rate_and_rr_jitter(coronary: Phantom):
    rr_s = np.diff(coronary.ed_frames) / 30.0
    assert coronary.heart_rate_bpm == pytest.approx(70.0, rel=0.05)
    assert 60.0 / rr_s.mean() == pytest.approx(coronary.heart_rate_bpm, rel=0.03)
    assert 0.005 < rr_s.std() / rr_s.mean() < 0.06
    faster = make_phantom("coronary", seed=1, length_mm=2.0, size_px=32, heart_rate_bpm=90)
    assert faster.heart_rate_bpm == pytest.approx(90.0, rel=0.05)


def test_coronary_focal_stenosis_and_calcium(coronary: Phantom):
    lumen = _areas(coronary, "lumen")
    vessel = _areas(coronary, "vessel")
    ed = coronary.ed_frames
    mla = lumen[ed].min()
    assert mla / lumen[ed].max() == pytest.approx(0.45, abs=0.05)
    assert 2.0 < mla < 4.0  # mm2: a significant coronary lesion
    assert np.median(lumen) == pytest.approx(np.pi * 1.45**2, rel=0.2)  # ~3 mm lumen diameter
    assert np.all(vessel > lumen + 0.5)
    arcs = np.array([f.calcium_arc_deg for f in coronary.truth.frames])
    assert 90.0 <= arcs.max() <= 120.0
    calcified_mm = np.ptp(coronary.true_arc_length_mm[arcs > 0])
    assert 0.5 < calcified_mm < 2.0  # 11% of the length
    # Calcium lies in the wall: behind the lumen border and inside the vessel border.
    k = int(np.argmax(arcs))
    frame = coronary.truth.frames[k]
    for poly in frame.calcium:
        ang = np.round(np.mod(np.arctan2(poly[:, 1], poly[:, 0]), 2 * np.pi) / (2 * np.pi) * TRUTH_POINTS)
        idx = ang.astype(int) % TRUTH_POINTS
        r = _radii(poly)
        assert np.all(r >= _radii(frame.lumen)[idx] + 0.05)
        assert np.all(r <= _radii(frame.vessel)[idx])


def test_catheter_stays_inside_the_lumen(coronary: Phantom):
    closest = min(_radii(f.lumen).min() for f in coronary.truth.frames)
    assert closest > PRESETS["coronary"].catheter_radius_mm + 0.1


def test_centerline_starts_at_frame_zero_and_is_long_enough(coronary: Phantom):
    cl = coronary.centerline
    assert coronary.true_arc_length_mm[0] == 0.0
    assert cl.length_mm >= coronary.true_arc_length_mm.max() + 5.0
    steps = np.linalg.norm(np.diff(cl.points_ras_mm, axis=0), axis=1)
    assert steps == pytest.approx(np.full_like(steps, steps[0]), rel=1e-3)
    assert cl.radius_mm is not None and len(cl.radius_mm) == len(cl.points_ras_mm)


def _pixel_masks(ph: Phantom, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel radius (mm), and lumen / vessel / calcium-outer radii along each pixel's ray."""
    size = ph.pullback.shape_px[0]
    sp = ph.pullback.pixel_spacing_mm[0]
    c = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size]
    x, y = (cols - c) * sp, (rows - c) * sp
    r = np.hypot(x, y)
    idx = (
        np.round(np.mod(np.arctan2(y, x), 2 * np.pi) / (2 * np.pi) * TRUTH_POINTS).astype(int) % TRUTH_POINTS
    )
    f = ph.truth.frames[k]
    return r, _radii(f.lumen)[idx], _radii(f.vessel)[idx], idx


def test_image_layers_catheter_blood_wall():
    coronary = make_phantom("coronary", seed=5, length_mm=0.2, size_px=256)
    k = 0
    img = coronary.pullback.frames[k].astype(float)
    r, lumen_r, vessel_r, _ = _pixel_masks(coronary, k)
    cath = PRESETS["coronary"].catheter_radius_mm
    assert img[r < cath - 0.1].mean() < 3.0  # dark catheter disc
    assert img[(r > cath) & (r < cath + 0.1)].mean() > 150.0  # bright ring-down
    blood = img[(r > cath + 0.35) & (r < lumen_r - 0.1)]
    adventitia = img[(r > vessel_r + 0.05) & (r < vessel_r + 0.25)]
    assert blood.mean() < 0.6 * adventitia.mean()
    outside = img[r > 5.05]  # black outside the field of view but for burned-in marks
    assert img[-1, 0] == 0 and 0.0 < np.mean(outside > 0) < 0.15


def test_calcium_casts_an_acoustic_shadow(coronary: Phantom):
    arcs = np.array([f.calcium_arc_deg for f in coronary.truth.frames])
    k = int(np.argmax(arcs))
    img = coronary.pullback.frames[k].astype(float)
    r, _, vessel_r, idx = _pixel_masks(coronary, k)
    poly = coronary.truth.frames[k].calcium[0]
    rays = np.unique(
        np.round(np.mod(np.arctan2(poly[:, 1], poly[:, 0]), 2 * np.pi) / (2 * np.pi) * TRUTH_POINTS).astype(
            int
        )
        % TRUTH_POINTS
    )
    inner = rays[2:-2]  # away from the arc ends
    band = (r > vessel_r + 0.4) & (r < 4.0)
    behind = img[band & np.isin(idx, inner)]
    elsewhere = img[band & ~np.isin(idx, rays)]
    assert behind.mean() < 0.3 * elsewhere.mean()


def test_frame_similarity_follows_the_cardiac_cycle(coronary: Phantom):
    frames = coronary.pullback.frames.astype(np.float32).reshape(600, -1)
    frames -= frames.mean(axis=1, keepdims=True)
    frames /= np.linalg.norm(frames, axis=1, keepdims=True)
    ncc = np.sum(frames[1:] * frames[:-1], axis=1)
    phase = coronary.cardiac_phase[:-1]
    diastole = ncc[(phase > 0.75)].mean()
    systole = ncc[(phase > 0.1) & (phase < 0.45)].mean()
    # Decorrelation (1 - NCC) is several times larger while the heart contracts.
    assert 1.0 - systole > 2.0 * (1.0 - diastole)


def test_tissue_speckle_is_anchored_to_the_anatomy(coronary: Phantom):
    s = coronary.true_arc_length_mm
    ph = coronary.cardiac_phase
    # The cardiac motion brings the catheter back over the same anatomy: an early-systolic
    # frame is revisited later in the same beat, at another phase.
    i = int(np.argmin(np.abs(ph - 0.25) + 10 * (s < 3.0)))
    later = np.flatnonzero((np.arange(600) > i + 5) & (np.arange(600) < i + 25) & (np.abs(s - s[i]) < 0.01))
    assert later.size
    j = int(later[0])
    assert abs(ph[j] - ph[i]) > 0.2
    r, _, vessel_r, _ = _pixel_masks(coronary, i)
    tissue = (r > vessel_r + 0.6) & (r < 3.5)
    far = int(np.argmin(np.abs(s - s[i] - 0.5)))

    def corr(a: int, b: int) -> float:
        x = coronary.pullback.frames[a][tissue].astype(float)
        y = coronary.pullback.frames[b][tissue].astype(float)
        return float(np.corrcoef(x, y)[0, 1])

    assert corr(i, j) > 0.75
    assert corr(i, j) > corr(i, far) + 0.2


def test_femoropopliteal_diffuse_disease_heavy_calcium(femoral: Phantom):
    lumen = _areas(femoral, "lumen")
    vessel = _areas(femoral, "vessel")
    arcs = np.array([f.calcium_arc_deg for f in femoral.truth.frames])
    assert femoral.pullback.frames.shape[0] == 600  # 40 mm at 1 mm/s, 15 frames/s
    assert 165.0 <= arcs.max() <= 185.0
    assert np.mean(arcs > 0) > 0.3  # long calcified segments
    assert np.median(lumen) == pytest.approx(np.pi * 2.5**2, rel=0.3)
    assert np.median(1 - lumen / vessel) > 0.4  # diffuse plaque burden
    assert femoral.heart_rate_bpm == pytest.approx(65.0, rel=0.05)


def test_iliac_vein_compression_without_cardiac_rhythm(vein: Phantom):
    lumen = _areas(vein, "lumen")
    s = vein.true_arc_length_mm
    assert vein.ed_frames.size == 0 and vein.heart_rate_bpm is None
    assert all(f.phase is None for f in vein.truth.frames)
    reference = np.median(lumen[s < 15.0])
    assert reference == pytest.approx(110.0, rel=0.12)
    mla = lumen.min()
    assert mla <= 0.4 * reference
    assert 1.0 - mla / 200.0 >= 0.5  # vs the common iliac normal
    # Slow respiratory motion: 0.25 Hz, 0.5 mm peak, no beat-to-beat jumps.
    dz = s - 1.0 * vein.pullback.frame_times_s
    assert 0.45 < dz.max() <= 0.5 + 1e-9
    spectrum = np.abs(np.fft.rfft(dz - dz.mean()))
    freq = np.fft.rfftfreq(len(dz), 1 / 15.0)
    assert freq[np.argmax(spectrum)] == pytest.approx(0.25, abs=0.03)


def test_unknown_preset_and_speckle_are_input_errors():
    with pytest.raises(IVUSInputError) as info:
        make_phantom("carotid")
    assert (
        str(info.value)
        == "preset: unknown phantom preset 'carotid'; use one of coronary, femoropopliteal, iliac-vein"
    )
    with pytest.raises(IVUSInputError) as info:
        make_phantom("coronary", speckle="optical")
    assert str(info.value) == "speckle: 'optical' is not a speckle model; use 'rotational' or 'phased'"


def test_phased_array_look_darker_blood_longer_ringdown():
    looks = {}
    for speckle in ("rotational", "phased"):
        ph = make_phantom("coronary", seed=5, length_mm=0.1, size_px=256, speckle=speckle)
        r, lumen_r, _, _ = _pixel_masks(ph, 0)
        img = ph.pullback.frames[0].astype(float)
        cath = PRESETS["coronary"].catheter_radius_mm
        blood = img[(r > cath + 0.6) & (r < np.minimum(cath + 0.8, lumen_r - 0.1))].mean()
        halo = img[(r > cath + 0.2) & (r < cath + 0.3)].mean()
        looks[speckle] = (blood, halo / blood)
    assert looks["phased"][0] < 0.85 * looks["rotational"][0]  # 20 MHz: darker blood
    assert looks["phased"][1] > 1.15 * looks["rotational"][1]  # ring-down reaches further
