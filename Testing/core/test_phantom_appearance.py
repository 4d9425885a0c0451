"""Phantom realism options (``Appearance``): measured properties, exact truth, defaults unchanged."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polygon_area
from IVUSReconstructLib.io.images import mask_colour_overlay
from IVUSReconstructLib.phantom import (
    CONSOLE_RED,
    PRESETS,
    Appearance,
    Phantom,
    make_phantom,
    realistic_appearance,
)

# sha256 of the frames of main at 9ad59d4 (before the appearance options existed)
DEFAULT_SHA256 = {
    "rotational": "97804c09d311f7da6730c7ddeb56ca36e846d0aee7fea12f717e99e2cab7f10e",
    "phased+branch": "c527f62deb0c4d7d5dec1b41708a94bfb38838e5474cd658af46c9386058fa9a",
}

# A straight coronary segment with a thick wall (lumen 1.4 mm, EEM 2.3 mm), no lesion or calcium.
THICK = replace(
    PRESETS["coronary"],
    name="coronary",
    vessel_radius_mm=2.3,
    vessel_radius_proximal_mm=2.3,
    narrowings=(),
    calcium=(),
)


def _sha(ph: Phantom) -> str:
    return hashlib.sha256(ph.pullback.frames.tobytes()).hexdigest()


def _regions(ph: Phantom, k: int) -> dict[str, np.ndarray]:
    """Truth masks of frame k: blood (beyond the ring-down), plaque, pool, outer tissue."""
    from matplotlib.path import Path as PolygonPath

    f = ph.truth.frames[k]
    spacing = ph.pullback.pixel_spacing_mm[0]
    shape = ph.pullback.frames.shape[1:]
    c = ph.pullback.catheter_center_px
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    x, y = (cols - c[1]) * spacing, (rows - c[0]) * spacing
    depth, angle = np.hypot(x, y), np.mod(np.arctan2(y, x), 2 * np.pi)
    th = np.mod(np.arctan2(f.lumen[:, 1], f.lumen[:, 0]), 2 * np.pi)
    order = np.argsort(th)
    lum = np.interp(angle, th[order], np.hypot(*f.lumen.T)[order], period=2 * np.pi)
    ves = np.interp(angle, th[order], np.hypot(*f.vessel.T)[order], period=2 * np.pi)
    xy = np.column_stack([x.ravel(), y.ravel()])
    pool = np.zeros(shape, dtype=bool)
    if ph.echolucent is not None and len(ph.echolucent[k]) >= 3:
        pool = PolygonPath(ph.echolucent[k]).contains_points(xy).reshape(shape)
    fov = depth < 0.5 * shape[0] * spacing - 0.2
    return {
        "blood": (depth > 0.9) & (depth < lum - 0.05) & fov,
        "plaque": (depth > lum + 0.05) & (depth < ves - 0.3) & ~pool & fov,
        "pool": pool & fov,
        "tissue": (depth > ves + 0.5) & (depth < ves + 1.5) & fov,
    }


def test_default_output_is_unchanged():
    a = make_phantom("coronary", seed=3, length_mm=0.3, size_px=64)
    b = make_phantom("coronary", seed=3, length_mm=0.3, size_px=64, appearance=Appearance())
    c = make_phantom("coronary", seed=3, length_mm=0.3, size_px=64, speckle="phased", side_branch=True)
    assert _sha(a) == _sha(b) == DEFAULT_SHA256["rotational"]
    assert _sha(c) == DEFAULT_SHA256["phased+branch"]
    assert a.appearance is None and a.echolucent is None and a.console_overlay is None


@pytest.fixture(scope="module")
def lipid() -> tuple[Phantom, Phantom]:
    look = realistic_appearance("rotational", echolucent_arc_deg=150.0)
    plain = make_phantom(THICK, seed=4, length_mm=0.1, size_px=256)
    return plain, make_phantom(THICK, seed=4, length_mm=0.1, size_px=256, appearance=look)


def test_echolucent_plaque_is_darker_than_blood_and_keeps_the_truth(lipid):
    plain, ph = lipid
    for f, g in zip(plain.truth.frames, ph.truth.frames, strict=True):
        np.testing.assert_array_equal(f.lumen, g.lumen)
        np.testing.assert_array_equal(f.vessel, g.vessel)
    means = {key: [] for key in ("blood", "plaque", "pool")}
    arcs = []
    for k in range(len(ph.truth.frames)):
        regions = _regions(ph, k)
        grey = ph.pullback.frames[k].astype(float)
        for key in means:
            means[key].append(grey[regions[key]].mean())
        pool = ph.echolucent[k]
        arcs.append(np.ptp(np.unwrap(np.arctan2(pool[: len(pool) // 2, 1], pool[: len(pool) // 2, 0]))))
    blood, plaque, pool = (float(np.mean(means[k])) for k in ("blood", "plaque", "pool"))
    # real 40-60 MHz: pool 48, blood 101, plaque 146 (compare_phantom_real.py)
    assert pool < 0.7 * blood < plaque
    assert 25 < pool < 65  # 36 measured here
    assert np.rad2deg(np.mean(arcs)) == pytest.approx(150.0, abs=6.0)  # 128 truth rays: 2.8 deg each


def test_realistic_grey_levels_follow_the_measured_real_frames(lipid):
    _plain, ph = lipid
    regions = _regions(ph, 0)
    grey = ph.pullback.frames[0].astype(float)
    # real 40-60 MHz means: blood 101, plaque 146
    assert 90 < grey[regions["blood"]].mean() < 115
    assert 135 < grey[regions["plaque"]].mean() < 170
    phased = make_phantom(
        THICK,
        seed=4,
        length_mm=0.05,
        size_px=192,
        speckle="phased",
        appearance=realistic_appearance("phased"),
    )
    regions = _regions(phased, 0)
    grey = phased.pullback.frames[0].astype(float)
    # real 20 MHz means: blood 11, plaque 136
    assert grey[regions["blood"]].mean() < 20
    assert 120 < grey[regions["plaque"]].mean() < 165


def test_tissue_renewal_decorrelates_tissue_between_frames():
    from scipy.ndimage import gaussian_filter

    def tissue_corr(look):
        ph = make_phantom(THICK, seed=6, length_mm=0.2, size_px=128, appearance=look)
        f = ph.pullback.frames.astype(float)
        speckle = f - gaussian_filter(f, (0.0, 3.0, 3.0))  # minus the local mean (0.23 mm)
        # late diastole (frames 6-11 of a beat starting at 0): the wall barely moves
        return float(
            np.mean(
                [
                    np.corrcoef(speckle[k][m], speckle[k + 1][m])[0, 1]
                    for k in range(6, 11)
                    for m in [_regions(ph, k)["tissue"]]
                ]
            )
        )

    fixed = tissue_corr(None)
    renewed = tissue_corr(Appearance(tissue_renewal=0.8))
    assert fixed > 0.7
    assert renewed < 0.25


def test_wedged_catheter_hugs_the_lumen_in_the_lesion():
    def gaps(look):
        ph = make_phantom("coronary", seed=5, length_mm=10.0, size_px=32, appearance=look)
        area = np.array([polygon_area(f.lumen) for f in ph.truth.frames])
        gap = (
            np.array([np.hypot(*f.lumen.T).min() for f in ph.truth.frames])
            - PRESETS["coronary"].catheter_radius_mm
        )
        k = int(np.argmin(area))
        return area[k], gap[k], gap.min()

    area0, gap0, _ = gaps(None)
    area1, gap1, min1 = gaps(Appearance(wedged_catheter=True))
    assert gap0 > 0.2 and area0 > 3.0
    assert gap1 < 0.05 and area1 < 0.7 * area0
    assert min1 > 0.0  # the catheter never leaves the lumen


def test_console_overlay_pixels_where_expected(tmp_path):
    ph = make_phantom("coronary", seed=2, length_mm=0.1, size_px=240, appearance=Appearance(console=True))
    plain = make_phantom("coronary", seed=2, length_mm=0.1, size_px=240)
    colours, where = ph.console_overlay
    c = 120  # (240 - 1) / 2 rounded up: inside the catheter disc
    mm_px = 1.0 / ph.pullback.pixel_spacing_mm[0]  # 24 px
    red_grey = round(0.299 * CONSOLE_RED[0] + 0.587 * CONSOLE_RED[1] + 0.114 * CONSOLE_RED[2])
    for k in (0, len(ph.pullback.frames) - 1):
        screen = ph.screen_frame(k)
        assert tuple(screen[c, c]) == CONSOLE_RED  # catheter disc
        assert tuple(screen[c, 1]) == CONSOLE_RED  # field-of-view ring
        assert tuple(screen[c, c + round(2 * mm_px)]) == (250, 240, 30)  # 2 mm calibration dot
        assert tuple(screen[234, c]) == (190, 40, 40)  # banner
        assert ph.pullback.frames[k][c, c] == red_grey == 56
    assert 0.10 < where.mean() < 0.25
    # Away from the marks the ultrasound is the default phantom's, pixel for pixel.
    away = ~where
    away[:40, :70] = False  # the default text marks
    away[200:, 170:] = False  # and scale bar
    away[:, c - 2 : c + 2] = False  # and depth dots
    assert np.array_equal(ph.pullback.frames[:, away], plain.pullback.frames[:, away])
    # The project's reader of screen exports sees every coloured mark as overlay.
    _grey, coloured = mask_colour_overlay(ph.screen_frame(0))
    strong = where & ((colours.max(axis=2).astype(int) - colours.min(axis=2)) > 60)
    assert coloured[strong].mean() > 0.99


def test_console_offset_moves_the_catheter_not_the_truth():
    look = Appearance(console=True)
    centred = make_phantom("coronary", seed=2, length_mm=0.05, size_px=240, appearance=look)
    moved = make_phantom(
        "coronary", seed=2, length_mm=0.05, size_px=240, appearance=replace(look, console_offset_px=(6, -9))
    )
    assert moved.pullback.catheter_center_px == (125.5, 110.5)
    assert moved.truth.catheter_center_px == (125.5, 110.5)
    for f, g in zip(centred.truth.frames, moved.truth.frames, strict=True):
        np.testing.assert_array_equal(f.lumen, g.lumen)
    screen = moved.screen_frame(0)
    assert tuple(screen[126, 111]) == CONSOLE_RED  # the disc on the catheter
    assert tuple(screen[126, 111 + 48]) == (250, 240, 30)  # 2 mm dot to its right
    assert tuple(screen[234, 120]) == (190, 40, 40)  # the banner stays
    # The ultrasound moved by (6, -9) pixels, away from every mark.
    free = ~centred.console_overlay[1][:-6, 9:] & ~moved.console_overlay[1][6:, :-9]
    a = centred.pullback.frames[:, :-6, 9:][:, free]
    b = moved.pullback.frames[:, 6:, :-9][:, free]
    assert np.array_equal(a, b)
    with pytest.raises(IVUSInputError) as err:
        make_phantom("coronary", length_mm=0.05, size_px=64, appearance=Appearance(console_offset_px=(9, 0)))
    assert (
        str(err.value)
        == "appearance.console_offset_px: (9, 0) is out of range; use at most 8 px (size_px / 8)"
    )


def test_cli_realism_flags_write_the_screen_exports(tmp_path):
    from IVUSReconstructLib.cli import main

    out = tmp_path / "ph"
    code = main(
        [
            "phantom",
            "--preset",
            "coronary",
            "--length-mm",
            "0.05",
            "--size-px",
            "64",
            "--realistic",
            "--echolucent-plaque",
            "90",
            "--wedged-catheter",
            "--console-overlay",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    screens = sorted((out / "screens").glob("*.png"))
    assert [p.name for p in screens] == ["0001.png", "0002.png", "0003.png"]
    rgb = np.asarray(Image.open(screens[0]))
    assert rgb.shape == (64, 64, 3) and tuple(rgb[32, 32]) == CONSOLE_RED


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"blood_correlation": 1.0},
            "appearance.blood_correlation: 1.0 is out of range; use a value in [0, 1)",
        ),
        (
            {"echolucent_level": 0.0},
            "appearance.echolucent_level: 0.0 is out of range; use a positive fraction of the blood echo",
        ),
        (
            {"lateral_speckle_deg": 45.0},
            "appearance.lateral_speckle_deg: 45.0 is out of range; use degrees in [0, 30]",
        ),
    ],
)
def test_bad_appearance_is_one_clear_line(changes, message):
    with pytest.raises(IVUSInputError) as err:
        make_phantom("coronary", length_mm=0.05, size_px=32, appearance=Appearance(**changes))
    assert str(err.value) == message
