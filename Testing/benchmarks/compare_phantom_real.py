"""Phantom against real IVUS frames: grey levels per region, speckle size, blood decorrelation.

Usage::

    IVUS_REAL_FRAMES=/work/realdata PYTHONPATH=IVUSReconstruct \\
        python Testing/benchmarks/compare_phantom_real.py [--appearance default|realistic] \\
        [--figure Resources/Screenshots/phantom_vs_real.png] [--table phantom_vs_real.md]

Real frames are never part of the project: the script finds them under ``IVUS_REAL_FRAMES``
(or ``--real``) and stops with one line when they are not there.

- 40-60 MHz rotational: consecutive screen exports of ``ivus_collector/patient1/{preLAD,preRCA}``
  (480 x 480 JPEG, 1/44 mm per pixel, catheter at (239.5, 239.5)). Colour pixels (the red field
  of view ring and catheter disc, yellow 1 mm dots, banner) are left out of every region.
- 20 MHz phased array: the 100 set-B frames of ``IVUS-100.v1i.tensorflow`` (384 x 384, 0.026 mm
  per pixel, catheter at the image centre), 20 gated positions x 5 neighbouring frames.

Regions
-------
Phantom: from its exact truth (catheter at the image centre). Blood: inside the lumen, beyond
the ring-down (catheter radius + 0.3 mm). Plaque: lumen + 0.05 mm to EEM - media - 0.05 mm.
Media: the band of ``media_mm`` inside the EEM, 0.03 mm in from either edge. Adventitia: EEM
+ 0.03 mm to EEM + adventitia thickness - 0.03 mm. Echolucent plaque: the phantom's lipid pool.
Left out: calcium arcs, the guidewire (the saturated spot in the lumen) with 15 degrees either
side (its shadow), console overlay pixels. The real sectors avoid wire, shadows and calcium.

40-60 MHz real frames: sectors placed by hand on polar unwraps of three frames (``HF_SECTORS``:
angle from the image +x axis towards +row in degrees, depth from the catheter centre in
pixels). Blood, plaque and echolucent plaque are read straight from their sectors. Media and
adventitia from the "wall" sectors, where the three-layer wall is visible, ray by ray: the
adventitia peak is the brightest point of the smoothed profile in the sector, the media the
darkest 3 pixels in the 0.3 mm inside it, the adventitia band the 0.25 mm just outside that
minimum. (Choosing a minimum and a maximum biases both a little darker and brighter.)

20 MHz real frames: the annotated lumen box gives an ellipse (centre and half-axes of the box).
Blood: that ellipse scaled by 0.7, beyond 0.55 mm of the catheter centre. Plaque: the ring
between 1.05 and 1.3 of the ellipse. Media and adventitia: the same ray-wise profile rule as
above, searched between 1.05 and 2.0 of the ellipse.

Speckle size: full width at half maximum of the masked autocorrelation of the grey levels on a
polar resampling (radial: along depth; lateral: along the arc at the region's median depth), in
blood and in tissue beyond the EEM (phantom), beyond 2.5 mm depth (40-60 MHz real: the frames
above have their EEM inside 2.5 mm on most rays), beyond 1.5 x the box ellipse (20 MHz real).

Blood decorrelation: Pearson correlation of the high-passed grey levels of the same pixels in
consecutive frames, in the blood (of both frames, phantom; of the sector or box, real), against
the same in the tissue region after aligning the tissue (see ``frame_correlation``).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d, map_coordinates, uniform_filter1d

REGIONS = ("blood", "plaque", "echolucent", "media", "adventitia", "media_rule", "adventitia_rule")
"""Regions measured; ``*_rule`` by the ray-wise profile rule (the only media/adventitia of real
frames), the others from truth (phantom) or hand-placed sectors (real)."""
FIGURE_REGIONS = ("blood", "plaque", "echolucent", "media_rule", "adventitia_rule")
HF_SPACING_MM = 1.0 / 44.0
HF_CENTRE = (239.5, 239.5)
LF_SPACING_MM = 0.026
HIGHPASS_MM = 0.2

# (pullback, frame, region, angle_from_deg, angle_to_deg, depth_from_px, depth_to_px), placed on
# polar unwraps of these frames (catheter disc: radius 29 px).
HF_SECTORS: tuple[tuple[str, int, str, float, float, float, float], ...] = (
    # RCA 700: little plaque; blood around the catheter, a thin dark media, bright adventitia.
    ("preRCA", 700, "blood", 90.0, 180.0, 34.0, 48.0),
    ("preRCA", 700, "blood", 300.0, 360.0, 34.0, 48.0),
    ("preRCA", 700, "wall", 90.0, 170.0, 45.0, 110.0),
    ("preRCA", 700, "wall", 290.0, 350.0, 45.0, 110.0),
    # LAD 1500: large lumen above the catheter, lipid pool (darker than blood) in the plaque at
    # upper right, layered wall at lower left.
    ("preLAD", 1500, "blood", 250.0, 290.0, 34.0, 60.0),
    ("preLAD", 1500, "echolucent", 308.0, 325.0, 88.0, 112.0),
    ("preLAD", 1500, "plaque", 280.0, 298.0, 78.0, 110.0),
    ("preLAD", 1500, "wall", 180.0, 240.0, 60.0, 130.0),
    # LAD 300: lumen to the lower right, eccentric plaque upper left, wall at lower right.
    ("preLAD", 300, "blood", 0.0, 60.0, 36.0, 75.0),
    ("preLAD", 300, "plaque", 200.0, 250.0, 60.0, 88.0),
    ("preLAD", 300, "wall", 30.0, 90.0, 70.0, 130.0),
)


@dataclass
class Sample:
    """Measurements of one image source (a phantom regime or a real set)."""

    name: str
    spacing_mm: float
    grey: dict[str, list[np.ndarray]] = field(default_factory=lambda: {r: [] for r in REGIONS})
    speckle: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: {"blood": [], "tissue": []})
    corr: dict[str, list[float]] = field(default_factory=lambda: {"blood": [], "tissue": []})
    example: np.ndarray | None = None


# --------------------------------------------------------------------------- measurements


def _polar_coords(shape: tuple[int, int], centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Depth (px) and angle (rad in [0, 2 pi), from +col towards +row) of every pixel."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dy, dx = rows - centre[0], cols - centre[1]
    return np.hypot(dx, dy), np.mod(np.arctan2(dy, dx), 2 * np.pi)


def speckle_fwhm_mm(
    grey: np.ndarray, mask: np.ndarray, centre: tuple[float, float], spacing_mm: float
) -> tuple[float, float]:
    """Radial and lateral FWHM (mm) of the autocorrelation of ``grey`` inside ``mask``.

    The image is resampled on a polar grid (depth step one pixel; angle step one pixel of arc at
    the region's median depth); the masked, mean-free autocorrelation is computed by FFT.
    """
    depth, angle = _polar_coords(grey.shape, centre)
    d_in = depth[mask]
    if d_in.size < 200:
        return float("nan"), float("nan")
    r_ref = float(np.median(d_in))
    d0, d1 = float(np.percentile(d_in, 1)), float(np.percentile(d_in, 99))
    n_ang = int(np.ceil(2 * np.pi * r_ref))
    th = np.arange(n_ang) * 2 * np.pi / n_ang
    r = np.arange(np.floor(d0), np.ceil(d1) + 1)
    rows = centre[0] + np.sin(th)[:, None] * r[None]
    cols = centre[1] + np.cos(th)[:, None] * r[None]
    g = map_coordinates(grey.astype(float), [rows, cols], order=1)
    m = map_coordinates(mask.astype(float), [rows, cols], order=0) > 0.5
    # the local mean (ring-down, attenuation, layers) is no speckle: remove it inside the mask
    sigma = HIGHPASS_MM / spacing_mm
    local = gaussian_filter(np.where(m, g, 0.0), sigma, mode=("wrap", "nearest"))
    weight = gaussian_filter(m.astype(float), sigma, mode=("wrap", "nearest"))
    g = np.where(m, g - local / np.maximum(weight, 1e-6), 0.0)
    shape = (2 * g.shape[0], 2 * g.shape[1])
    fg, fm = np.fft.rfft2(g, shape), np.fft.rfft2(m.astype(float), shape)
    num = np.fft.irfft2(fg * np.conj(fg), shape)
    den = np.fft.irfft2(fm * np.conj(fm), shape)
    acf = num / np.maximum(den, 1.0)
    acf = acf / acf[0, 0]

    def half_width(profile: np.ndarray) -> float:
        below = np.nonzero(profile < 0.5)[0]
        if below.size == 0:
            return float("nan")
        k = int(below[0])
        # linear interpolation between lags k-1 and k
        return (k - 1) + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k])

    radial = half_width(acf[0, :60])
    lateral = half_width(acf[:60, 0])
    return 2 * radial * spacing_mm, 2 * lateral * spacing_mm * 1.0  # arc step is one pixel


def highpass(grey: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Grey levels minus their local mean (Gaussian of ``HIGHPASS_MM``): the speckle alone."""
    g = grey.astype(float)
    return g - gaussian_filter(g, HIGHPASS_MM / spacing_mm)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 50 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def frame_correlation(
    a: np.ndarray, b: np.ndarray, blood: np.ndarray, tissue: np.ndarray, spacing_mm: float
) -> tuple[float, float]:
    """Correlation of the speckle (high-passed grey levels) of two consecutive frames in the
    blood region of the first (as imaged, in the catheter's frame) and in its tissue region
    after the whole-pixel shift (up to 4 px) that best aligns the tissue: the shared mean
    structure (ring-down, depth gradient) would correlate even where the speckle is new, and
    the wall moves a little between frames."""
    ha, hb = highpass(a, spacing_mm), highpass(b, spacing_mm)
    best, shift = -2.0, (0, 0)
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            c = _pearson(ha[tissue], np.roll(hb, (dy, dx), axis=(0, 1))[tissue])
            if np.isfinite(c) and c > best:
                best, shift = c, (dy, dx)
    moved = np.roll(hb, shift, axis=(0, 1))
    return _pearson(ha[blood], hb[blood]), _pearson(ha[tissue], moved[tissue])


def wall_layers(
    grey: np.ndarray,
    centre: tuple[float, float],
    spacing_mm: float,
    sector: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Media and adventitia masks by the ray-wise profile rule (see the module docstring).

    ``sector``: ray angles (rad) to read; ``lo``/``hi``: the depth range (px) searched on each.
    """
    media = np.zeros(grey.shape, dtype=bool)
    adv = np.zeros(grey.shape, dtype=bool)
    n_r = int(np.ceil(hi.max())) + 2
    r = np.arange(n_r, dtype=float)
    rows = centre[0] + np.sin(sector)[:, None] * r[None]
    cols = centre[1] + np.cos(sector)[:, None] * r[None]
    prof = map_coordinates(grey.astype(float), [rows, cols], order=1, mode="nearest")
    smooth = uniform_filter1d(gaussian_filter1d(prof, 1.5, axis=1), 5, axis=0, mode="wrap")
    inside_px = max(2, int(round(0.3 / spacing_mm)))
    band_px = max(2, int(round(0.25 / spacing_mm)))
    for k in range(len(sector)):
        a, b = int(lo[k]), int(min(hi[k], n_r - 1))
        if b - a < inside_px + 3:
            continue
        peak = a + int(np.argmax(smooth[k, a:b]))
        s0 = max(a, peak - inside_px)
        if peak - s0 < 3:
            continue
        dip = s0 + int(np.argmin(smooth[k, s0:peak]))
        for depth_range, target in (((dip - 1, dip + 2), media), ((dip + 2, dip + 2 + band_px), adv)):
            rr = np.arange(*depth_range)
            pr = np.round(centre[0] + np.sin(sector[k]) * rr).astype(int)
            pc = np.round(centre[1] + np.cos(sector[k]) * rr).astype(int)
            ok = (pr >= 0) & (pr < grey.shape[0]) & (pc >= 0) & (pc < grey.shape[1])
            target[pr[ok], pc[ok]] = True
    return media, adv


# --------------------------------------------------------------------------- real frames


def _grey_and_colour(path: str) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    grey = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 30
    # JPEG bleeds colour one pixel around the marks
    coloured = coloured | np.roll(coloured, 1, 0) | np.roll(coloured, -1, 0)
    coloured = coloured | np.roll(coloured, 1, 1) | np.roll(coloured, -1, 1)
    return grey, coloured


def _sector_mask(shape, centre, a0_deg, a1_deg, d0, d1) -> np.ndarray:
    depth, angle = _polar_coords(shape, centre)
    ang = np.rad2deg(angle)
    return (ang >= a0_deg) & (ang < a1_deg) & (depth >= d0) & (depth < d1)


def measure_high_frequency(root: Path) -> Sample:
    out = Sample("real 40-60 MHz (LAD/RCA exports)", HF_SPACING_MM)
    frames = sorted({(p, f) for p, f, *_ in HF_SECTORS}, key=lambda x: (x[0], x[1]))
    for pullback, frame in frames:
        path = root / "ivus_collector" / "patient1" / pullback / f"{frame:04d}.jpg"
        grey, coloured = _grey_and_colour(str(path))
        nxt, nxt_col = _grey_and_colour(str(path.with_name(f"{frame + 1:04d}.jpg")))
        usable = ~coloured & ~nxt_col
        blood = np.zeros(grey.shape, dtype=bool)
        for p, f, region, a0, a1, d0, d1 in HF_SECTORS:
            if (p, f) != (pullback, frame):
                continue
            m = _sector_mask(grey.shape, HF_CENTRE, a0, a1, d0, d1) & usable
            if region == "wall":
                sector = np.deg2rad(np.arange(a0, a1, 0.5))
                media, adv = wall_layers(
                    grey, HF_CENTRE, HF_SPACING_MM, sector, np.full(sector.size, d0), np.full(sector.size, d1)
                )
                out.grey["media_rule"].append(grey[media & usable])
                out.grey["adventitia_rule"].append(grey[adv & usable])
            else:
                out.grey[region].append(grey[m])
                blood |= m if region == "blood" else False
        depth, _ = _polar_coords(grey.shape, HF_CENTRE)
        tissue = (depth > 2.5 / HF_SPACING_MM) & (depth < 4.5 / HF_SPACING_MM) & usable
        out.speckle["blood"].append(speckle_fwhm_mm(grey, blood, HF_CENTRE, HF_SPACING_MM))
        out.speckle["tissue"].append(speckle_fwhm_mm(grey, tissue, HF_CENTRE, HF_SPACING_MM))
        cb, ct = frame_correlation(grey, nxt, blood, tissue, HF_SPACING_MM)
        out.corr["blood"].append(cb)
        out.corr["tissue"].append(ct)
        if pullback == "preRCA":
            out.example = np.asarray(Image.open(path).convert("RGB"))
    return out


def _setb_boxes(root: Path) -> dict[str, tuple[float, float, float, float]]:
    boxes = {}
    for csv in glob.glob(str(root / "IVUS-100.v1i.tensorflow" / "*" / "_annotations.csv")):
        for line in Path(csv).read_text().splitlines()[1:]:
            name, _w, _h, _cls, x0, y0, x1, y1 = line.split(",")
            boxes[str(Path(csv).parent / name)] = (float(x0), float(y0), float(x1), float(y1))
    return boxes


def measure_low_frequency(root: Path) -> Sample:
    out = Sample("real 20 MHz (set B, Volcano)", LF_SPACING_MM)
    boxes = _setb_boxes(root)
    by_key = {}
    for path in boxes:
        stem = Path(path).name.split("_png")[0]  # frame_01_GGGG_AAA
        by_key[stem] = path
    for stem in sorted(by_key):
        path = by_key[stem]
        grey = np.asarray(Image.open(path).convert("L")).astype(np.float32)
        centre = ((grey.shape[0] - 1) / 2.0, (grey.shape[1] - 1) / 2.0)
        x0, y0, x1, y1 = boxes[path]
        cy, cx, ay, ax = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        rows, cols = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]].astype(float)
        ell = np.hypot((rows - cy) / ay, (cols - cx) / ax)
        depth, angle = _polar_coords(grey.shape, centre)
        fov = depth < min(centre) - 0.5 / LF_SPACING_MM
        blood = (ell < 0.7) & (depth > 0.55 / LF_SPACING_MM)
        out.grey["blood"].append(grey[blood])
        out.grey["plaque"].append(grey[(ell >= 1.05) & (ell < 1.3) & fov])
        # ray-wise wall search between 1.05 and 2.0 of the box ellipse (depth from the catheter)
        sector = np.deg2rad(np.arange(0.0, 360.0, 1.0))
        lo, hi = [], []
        for a in sector:
            t = np.arange(0, min(centre), 0.5)
            e = np.hypot((centre[0] + np.sin(a) * t - cy) / ay, (centre[1] + np.cos(a) * t - cx) / ax)
            lo.append(t[np.argmax(e >= 1.05)] if (e >= 1.05).any() else t[-1])
            hi.append(min(t[np.argmax(e >= 2.0)] if (e >= 2.0).any() else t[-1], min(centre) - 15))
        media, adv = wall_layers(grey, centre, LF_SPACING_MM, sector, np.array(lo), np.array(hi))
        out.grey["media_rule"].append(grey[media & fov])
        out.grey["adventitia_rule"].append(grey[adv & fov])
        tissue = (ell > 1.5) & fov
        if stem.endswith("_001"):  # one speckle measurement per gated position
            out.speckle["blood"].append(speckle_fwhm_mm(grey, blood, centre, LF_SPACING_MM))
            out.speckle["tissue"].append(speckle_fwhm_mm(grey, tissue, centre, LF_SPACING_MM))
        nxt_stem = stem[:-3] + f"{int(stem[-3:]) + 1:03d}"
        if nxt_stem in by_key:
            nxt = np.asarray(Image.open(by_key[nxt_stem]).convert("L")).astype(np.float32)
            cb, ct = frame_correlation(grey, nxt, blood, tissue, LF_SPACING_MM)
            out.corr["blood"].append(cb)
            out.corr["tissue"].append(ct)
        if stem == "frame_01_0002_001":
            out.example = np.stack([grey.astype(np.uint8)] * 3, axis=-1)
    return out


# --------------------------------------------------------------------------- phantom


def phantom_regions(ph, k: int) -> dict[str, np.ndarray]:
    """Masks of the truth regions of phantom frame ``k`` (catheter at the image centre)."""
    from IVUSReconstructLib.phantom import PRESETS

    preset = PRESETS[ph.preset]
    frame = ph.truth.frames[k]
    spacing = ph.pullback.pixel_spacing_mm[0]
    shape = ph.pullback.frames.shape[1:]
    centre = ph.pullback.catheter_center_px
    depth_px, angle = _polar_coords(shape, centre)
    depth = depth_px * spacing
    th = np.mod(np.arctan2(frame.lumen[:, 1], frame.lumen[:, 0]), 2 * np.pi)
    order = np.argsort(th)
    lum = np.interp(angle, th[order], np.hypot(*frame.lumen.T)[order], period=2 * np.pi)
    ves = np.interp(angle, th[order], np.hypot(*frame.vessel.T)[order], period=2 * np.pi)
    look = ph.appearance
    media_mm = look.media_mm if look is not None and look.media_mm is not None else preset.media_mm
    regions = {
        "blood": (depth < lum) & (depth > preset.catheter_radius_mm + 0.3),
        "plaque": (depth > lum + 0.05) & (depth < ves - media_mm - 0.05),
        "media": (depth > ves - media_mm + 0.03) & (depth < ves - 0.03),
        "adventitia": (depth > ves + 0.03) & (depth < ves + preset.adventitia_mm - 0.03),
        "tissue": (depth > ves + preset.adventitia_mm) & (depth < ves + 2.5),
    }
    if ph.echolucent is not None and len(ph.echolucent[k]) >= 3:
        from matplotlib.path import Path as PolygonPath

        rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
        xy = np.column_stack([(cols.ravel() - centre[1]) * spacing, (rows.ravel() - centre[0]) * spacing])
        pool = PolygonPath(ph.echolucent[k]).contains_points(xy).reshape(shape)
        regions["echolucent"] = pool
        regions["plaque"] &= ~pool
    for c in frame.calcium:  # calcium and its shadow are no region of ours
        ca = np.mod(np.arctan2(c[:, 1], c[:, 0]), 2 * np.pi)
        lo, hi = ca.min(), ca.max()
        inside = (angle >= lo) & (angle <= hi) if hi - lo < np.pi else (angle <= lo) | (angle >= hi)
        for key in regions:
            regions[key] &= ~inside
    fov = depth_px < min(centre) - 2
    # The guidewire (the saturated spot in the lumen) and its shadow: 15 degrees either side.
    grey = np.asarray(ph.pullback.frames[k])
    spot = (depth < lum) & (depth > preset.catheter_radius_mm + 0.1) & (grey >= 250)
    if ph.console_overlay is not None:
        spot &= ~ph.console_overlay[1]
    if spot.any():
        wire = np.angle(np.mean(np.exp(1j * angle[spot])))
        fov &= np.abs(np.angle(np.exp(1j * (angle - wire)))) > np.deg2rad(15.0)
    if ph.console_overlay is not None:
        fov &= ~ph.console_overlay[1]
    else:  # the default marks: 1 mm depth dots up the vertical axis
        rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
        fov &= ~((np.abs(cols - shape[1] // 2) <= 2) & (rows < centre[0]))
    regions = {key: m & fov for key, m in regions.items()}
    regions["fov"] = fov
    return regions


def measure_phantom(speckle: str, appearance: str, seed: int, n_frames: int) -> Sample:
    from IVUSReconstructLib.phantom import PRESETS, make_phantom

    size = 440 if speckle == "rotational" else 384  # 1/44 mm and 0.026 mm per pixel, as the real sets
    kwargs = {}
    if appearance == "realistic":
        from IVUSReconstructLib.phantom import realistic_appearance

        # the lipid pool is a 40-60 MHz finding (real frames above); at 20 MHz none is measured
        arc = 120.0 if speckle == "rotational" else 0.0
        kwargs["appearance"] = realistic_appearance(
            speckle, echolucent_arc_deg=arc, console=speckle == "rotational"
        )
    label = "40-60 MHz" if speckle == "rotational" else "20 MHz"
    fps, speed = 30.0, 0.5
    ph = make_phantom(
        "coronary", seed=seed, length_mm=(n_frames + 1) / fps * speed, size_px=size, speckle=speckle, **kwargs
    )
    out = Sample(f"phantom {label} ({appearance})", ph.pullback.pixel_spacing_mm[0])
    frames = ph.pullback.frames
    centre = ph.pullback.catheter_center_px
    adventitia_mm = PRESETS[ph.preset].adventitia_mm
    for k in range(min(n_frames, len(frames) - 1)):
        regions = phantom_regions(ph, k)
        # blood in both frames: the wall moves across the catheter's frame with the heart beat
        both = regions["blood"] & phantom_regions(ph, k + 1)["blood"]
        grey = frames[k].astype(np.float32)
        for key in REGIONS:
            if key in regions:
                out.grey[key].append(grey[regions[key]])
        # the real frames' rule on the phantom, searched from the lumen to beyond the adventitia
        sector = np.deg2rad(np.arange(0.0, 360.0, 1.0))
        th = np.mod(np.arctan2(ph.truth.frames[k].lumen[:, 1], ph.truth.frames[k].lumen[:, 0]), 2 * np.pi)
        order = np.argsort(th)
        lum = np.interp(sector, th[order], np.hypot(*ph.truth.frames[k].lumen.T)[order], period=2 * np.pi)
        ves = np.interp(sector, th[order], np.hypot(*ph.truth.frames[k].vessel.T)[order], period=2 * np.pi)
        lo = (lum + 0.1) / out.spacing_mm
        hi = np.minimum((ves + adventitia_mm + 0.25) / out.spacing_mm, min(centre) - 3)
        media, adv = wall_layers(grey, centre, out.spacing_mm, sector, lo, hi)
        keep = regions["fov"]
        out.grey["media_rule"].append(grey[media & keep])
        out.grey["adventitia_rule"].append(grey[adv & keep])
        if k % 5 == 0:
            out.speckle["blood"].append(speckle_fwhm_mm(grey, regions["blood"], centre, out.spacing_mm))
            out.speckle["tissue"].append(speckle_fwhm_mm(grey, regions["tissue"], centre, out.spacing_mm))
        cb, ct = frame_correlation(grey, frames[k + 1], both, regions["tissue"], out.spacing_mm)
        out.corr["blood"].append(cb)
        out.corr["tissue"].append(ct)
    screen = getattr(ph, "screen_frame", None)
    out.example = screen(0) if screen is not None else np.stack([frames[0]] * 3, axis=-1)
    return out


# --------------------------------------------------------------------------- output


def _stats(values: list[np.ndarray]) -> str:
    if not values:
        return "n/a"
    v = np.concatenate(values)
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.0f} ({np.percentile(v, 10):.0f}-{np.percentile(v, 90):.0f})"


def _pair(values: list[tuple[float, float]], which: int) -> str:
    v = np.array([x[which] for x in values], dtype=float)
    v = v[np.isfinite(v)]
    return f"{np.median(v):.3f}" if v.size else "n/a"


def _mean(values: list[float]) -> str:
    v = np.array(values, dtype=float)
    v = v[np.isfinite(v)]
    return f"{v.mean():.2f}" if v.size else "n/a"


def table(samples: list[Sample]) -> str:
    head = (
        "| source | blood | plaque | echolucent | media | adventitia | media (rule) | adventitia (rule) "
        "| speckle blood r/l mm | speckle tissue r/l mm | corr blood | corr tissue |"
    )
    lines = [head, "|" + "---|" * 12]
    for s in samples:
        cells = [_stats(s.grey[r]) for r in REGIONS]
        cells.append(f"{_pair(s.speckle['blood'], 0)} / {_pair(s.speckle['blood'], 1)}")
        cells.append(f"{_pair(s.speckle['tissue'], 0)} / {_pair(s.speckle['tissue'], 1)}")
        cells += [_mean(s.corr["blood"]), _mean(s.corr["tissue"])]
        lines.append(f"| {s.name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Grey levels: mean (10th-90th percentile), 0-255. Speckle: median autocorrelation FWHM, "
        "radial / lateral. corr: mean Pearson correlation of the high-passed grey levels of "
        "consecutive frames (tissue-aligned). media/adventitia: phantom truth; (rule): the ray-wise "
        "profile rule, the only one applied to real frames."
    )
    return "\n".join(lines)


def figure(samples: list[Sample], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [[s for s in samples if "40-60" in s.name], [s for s in samples if "20 MHz" in s.name]]
    ncol = len(FIGURE_REGIONS) + max(len(g) for g in groups)
    fig, axes = plt.subplots(2, ncol, figsize=(3.6 * ncol, 7.5))
    bins = np.arange(0, 257, 8)
    for row, group in enumerate(groups):
        for col, region in enumerate(FIGURE_REGIONS):
            ax = axes[row, col]
            for i, s in enumerate(group):
                colour = ("tab:blue", "tab:orange", "tab:green", "tab:red")[i % 4]
                if s.grey[region] and np.concatenate(s.grey[region]).size:
                    v = np.concatenate(s.grey[region])
                    style = "-" if s.name.startswith("real") else "--"
                    ax.hist(
                        v,
                        bins=bins,
                        density=True,
                        histtype="step",
                        lw=1.8,
                        ls=style,
                        color=colour,
                        label=s.name,
                    )
            ax.set_title(f"{'40-60 MHz' if row == 0 else '20 MHz'}: {region.replace('_rule', ' (rule)')}")
            ax.set_yticks([])
            ax.set_xlim(0, 255)
            if col == 0:
                ax.legend(fontsize=7, loc="upper right")
        for j in range(axes.shape[1] - len(FIGURE_REGIONS)):
            ax = axes[row, len(FIGURE_REGIONS) + j]
            ax.axis("off")
            if j < len(group) and group[j].example is not None:
                ax.imshow(group[j].example)
                ax.set_title(group[j].name, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=os.environ.get("IVUS_REAL_FRAMES"), help="folder of the real frames")
    ap.add_argument(
        "--appearance",
        nargs="+",
        choices=("default", "realistic"),
        default=["default", "realistic"],
        help="phantom appearances to compare (default: both)",
    )
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--frames", type=int, default=20, help="phantom frames measured per regime")
    ap.add_argument("--figure", default="Resources/Screenshots/phantom_vs_real.png")
    ap.add_argument("--table", help="also write the markdown table here")
    args = ap.parse_args(argv)
    if not args.real or not Path(args.real).is_dir():
        print("real frames not found: set IVUS_REAL_FRAMES (or --real) to the folder holding them")
        return 2
    root = Path(args.real)
    samples = [measure_high_frequency(root)]
    samples += [measure_phantom("rotational", a, args.seed, args.frames) for a in args.appearance]
    samples.append(measure_low_frequency(root))
    samples += [measure_phantom("phased", a, args.seed, args.frames) for a in args.appearance]
    text = table(samples)
    print(text)
    if args.table:
        Path(args.table).write_text(text + "\n", encoding="utf-8")
    figure(samples, Path(args.figure))
    print(args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
