"""Phantom imaging: the catheter's polar grid and scan conversion, blood and tissue speckle,
ring-down, shadows, burned-in and console overlays, the guiding catheter (internal to
:mod:`IVUSReconstructLib.phantom`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import IVUSInputError
from ._shapes import _TWO_PI, _Rays, _wrap
from .presets import Appearance, PhantomPreset

# --------------------------------------------------------------------------- imaging


@dataclass(frozen=True)
class _Scanner:
    """Polar grid, scan-conversion maps and stationary image parts of one acquisition."""

    theta: np.ndarray  # (A,)
    depth_mm: np.ndarray  # (R,)
    index: np.ndarray  # (4, P) flat polar indices of the pixels inside the field of view
    weight: np.ndarray  # (4, P) float32
    inside: np.ndarray  # (P,) flat pixel indices
    ringdown: np.ndarray  # (A, R) float32, additive amplitude
    catheter: np.ndarray  # (R,) bool, depth inside the catheter
    overlay: np.ndarray  # (H, W) uint8, burned-in marks (0 = none)
    size_px: int
    spacing_mm: float


def _scanner(preset: PhantomPreset, size_px: int, speckle: str, rng: np.random.Generator) -> _Scanner:
    n_rays = max(128, int(np.ceil(size_px / 128.0)) * 128)
    n_depth = size_px // 2
    fov_r = 0.5 * preset.fov_mm
    dr = fov_r / n_depth
    theta = np.arange(n_rays) * (_TWO_PI / n_rays)
    depth = (np.arange(n_depth) + 0.5) * dr
    spacing = preset.fov_mm / size_px

    c = (size_px - 1) / 2.0
    rows, cols = np.mgrid[0:size_px, 0:size_px]
    x = (cols - c) * spacing
    y = (rows - c) * spacing
    r = np.hypot(x, y).ravel()
    ang = np.mod(np.arctan2(y, x).ravel(), _TWO_PI)
    inside = np.flatnonzero(r < fov_r)
    a_f = ang[inside] / _TWO_PI * n_rays
    j_f = np.clip(r[inside] / dr - 0.5, 0.0, n_depth - 1.0)
    a0 = np.floor(a_f).astype(np.int64)
    wa = (a_f - a0).astype(np.float32)
    a0 %= n_rays
    a1 = (a0 + 1) % n_rays
    j0 = np.minimum(np.floor(j_f).astype(np.int64), n_depth - 1)
    wj = (j_f - j0).astype(np.float32)
    j1 = np.minimum(j0 + 1, n_depth - 1)
    index = np.stack([a0 * n_depth + j0, a0 * n_depth + j1, a1 * n_depth + j0, a1 * n_depth + j1])
    weight = np.stack([(1 - wa) * (1 - wj), (1 - wa) * wj, wa * (1 - wj), wa * wj]).astype(np.float32)

    # Ring-down: bright decaying rings just outside the transducer, fixed from frame to frame;
    # solid-state (phased) catheters ring longer.
    cath = preset.catheter_radius_mm
    rotational = speckle == "rotational"
    ring_len = 0.08 if rotational else 0.18
    d = depth - cath
    ripple = 0.25 if rotational else 0.1
    rings = np.where(
        d >= 0, np.exp(-d / ring_len) * (1.0 - ripple + ripple * np.cos(_TWO_PI * d / 0.06)), 0.0
    )
    per_ray = 1.0 + (0.2 if rotational else 0.1) * rng.standard_normal(n_rays)
    ringdown = ((2.5 if rotational else 0.45) * per_ray[:, None] * rings[None, :]).astype(np.float32)
    if speckle == "rotational":
        sheath = np.exp(-(((depth - cath - 0.03 - 0.1) / 0.02) ** 2))  # catheter sheath echo
        ringdown += (1.2 * sheath[None, :]).astype(np.float32)

    return _Scanner(
        theta=theta,
        depth_mm=depth.astype(np.float32),
        index=index,
        weight=weight,
        inside=inside,
        ringdown=ringdown,
        catheter=depth < cath,
        overlay=_overlay(size_px, spacing, rng),
        size_px=size_px,
        spacing_mm=spacing,
    )


def _overlay(size_px: int, spacing_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Burned-in vendor marks: text-like blocks, a scale bar and 1 mm depth dots."""
    img = np.zeros((size_px, size_px), dtype=np.uint8)
    u = max(1, size_px // 128)  # one "character pixel"
    # Three lines of text-like blocks in the top-left corner.
    for line in range(3):
        col = 2 * u
        row = 2 * u + line * 5 * u
        for _ in range(int(rng.integers(4, 8))):
            w = int(rng.integers(2, 5)) * u
            img[row : row + 3 * u, col : col + w] = 200
            img[row + u : row + 2 * u, col + u : col + w - u : 2 * u] = 0
            col += w + u
            if col > size_px // 4:
                break
    # Scale bar with ticks in the bottom-right corner (1 mm).
    mm_px = max(2, int(round(1.0 / spacing_mm)))
    r0 = size_px - 4 * u
    c1 = size_px - 3 * u
    c0 = max(c1 - mm_px, size_px - size_px // 4)
    img[r0 : r0 + u, c0:c1] = 220
    img[r0 - 2 * u : r0 + u, c0 : c0 + u] = 220
    img[r0 - 2 * u : r0 + u, c1 - u : c1] = 220
    # Depth dots every mm along the upward axis, as on vendor screens.
    c = size_px // 2
    for k in range(1, int(0.5 * size_px * spacing_mm)):
        r = int(round((size_px - 1) / 2.0 - k / spacing_mm))
        if r < 0:
            break
        img[r : r + u, c : c + u] = 170
    return img


def _smooth_field(z: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """A complex field (..., A, R) smoothed by a Gaussian beam of ``sigma`` (rays, depth cells)."""
    sig = (0.0,) * (z.ndim - 2) + tuple(sigma)
    mode = ("nearest",) * (z.ndim - 2) + ("wrap", "nearest")
    re = gaussian_filter(z.real, sig, mode=mode)
    im = gaussian_filter(z.imag, sig, mode=mode)
    return (re + 1j * im).astype(np.complex64)


def _psf_sigma(look: Appearance | None, n_rays: int, depth_step_mm: float) -> tuple[float, float] | None:
    """Gaussian sigma (rays, depth cells) of the beam an appearance asks for, None for none."""
    if look is None or (look.lateral_speckle_deg <= 0 and look.axial_speckle_mm <= 0):
        return None
    fwhm = 2.0 * np.sqrt(2.0 * np.log(2.0))
    return (
        look.lateral_speckle_deg / fwhm * n_rays / 360.0,
        look.axial_speckle_mm / fwhm / depth_step_mm,
    )


CONSOLE_RED = (146, 19, 10)
"""Colour of the console's field-of-view ring and catheter disc (as on the public
ivus_collector screen exports)."""


def _console_overlay(
    size_px: int, spacing_mm: float, catheter_radius_mm: float, offset_px: tuple[int, int] = (0, 0)
) -> tuple[np.ndarray, np.ndarray]:
    """A console screen export's burned-in overlay: colours (H, W, 3) uint8 and mask (H, W).

    A dark-red ring over the edge of the field of view and a dark-red disc over the catheter
    and its ring-down, a red banner with white text at the bottom, yellow dots every 1 mm
    along both axes through the catheter, a dashed green measurement box with a text line,
    and a yellow caliper (two cyan "+" markers joined by a dotted line). Ring, disc and dots
    are centred on the catheter, ``offset_px`` (row, column) from the image centre.
    """
    rgb = np.zeros((size_px, size_px, 3), dtype=np.uint8)
    mask = np.zeros((size_px, size_px), dtype=bool)
    u = max(1, int(round(size_px / 240.0)))  # one overlay "pixel" (2 at 480 px)
    c = (size_px - 1) / 2.0
    cr, cc = c + offset_px[0], c + offset_px[1]
    rows, cols = np.mgrid[0:size_px, 0:size_px]
    r = np.hypot(rows - cr, cols - cc)

    def paint(where: np.ndarray, colour: tuple[int, int, int]) -> None:
        rgb[where] = colour
        mask[where] = True

    paint((r >= size_px / 2.0 - 8 * u) & (r < size_px / 2.0 + 2 * u), CONSOLE_RED)
    paint(r <= (catheter_radius_mm + 0.2) / spacing_mm, CONSOLE_RED)
    # Banner with text-like white strokes.
    b0, b1 = size_px - 14 * u, size_px - 5 * u
    h0, h1 = int(c - 42 * u), int(c + 42 * u)
    paint((rows >= b0) & (rows < b1) & (cols >= h0) & (cols < h1), (190, 40, 40))
    text = (rows >= b0 + 2 * u) & (rows < b1 - 2 * u) & (cols >= h0 + 3 * u) & (cols < h1 - 3 * u)
    text &= ((cols - h0) // u) % 4 != 3
    paint(text, (235, 225, 225))
    # Calibration dots every mm along both axes through the catheter.
    mm_px = 1.0 / spacing_mm
    for k in range(-int(size_px / mm_px), int(size_px / mm_px) + 1):
        if k == 0:
            continue
        near = [int(np.floor(v + 0.5)) for v in (cr + k * mm_px, cc, cr, cc + k * mm_px)]
        for rr, cl in ((near[0], near[1]), (near[2], near[3])):
            if 0 <= rr < size_px and 0 <= cl < size_px and abs(k) * mm_px < c:
                paint((np.abs(rows - rr) <= u // 2) & (np.abs(cols - cl) <= u // 2), (250, 240, 30))
    # Measurement box (dashed) and its text line, upper left.
    y0, y1, x0, x1 = int(0.18 * size_px), int(0.32 * size_px), int(0.16 * size_px), int(0.36 * size_px)
    dash = ((rows + cols) // (3 * u)) % 2 == 0
    edge = ((np.abs(rows - y0) < u) | (np.abs(rows - y1) < u)) & (cols >= x0) & (cols <= x1)
    edge |= ((np.abs(cols - x0) < u) | (np.abs(cols - x1) < u)) & (rows >= y0) & (rows <= y1)
    paint(edge & dash, (40, 220, 60))
    label = (rows >= y0 - 7 * u) & (rows < y0 - 3 * u) & (cols >= x0) & (cols < x0 + 40 * u)
    paint(label & (((cols - x0) // u) % 3 != 2), (40, 220, 60))
    # Caliper: two "+" markers joined by a dotted line, lower right.
    m0 = (int(0.66 * size_px), int(0.62 * size_px))
    m1 = (int(0.78 * size_px), int(0.80 * size_px))
    for mr, mc in (m0, m1):
        plus = ((np.abs(rows - mr) < u) & (np.abs(cols - mc) <= 4 * u)) | (
            (np.abs(cols - mc) < u) & (np.abs(rows - mr) <= 4 * u)
        )
        paint(plus, (40, 220, 230))
    n = int(np.hypot(m1[0] - m0[0], m1[1] - m0[1]) / (3 * u))
    for t in np.linspace(0.15, 0.85, max(n, 2)):
        pr, pc = int(round(m0[0] + t * (m1[0] - m0[0]))), int(round(m0[1] + t * (m1[1] - m0[1])))
        paint((np.abs(rows - pr) <= u // 2) & (np.abs(cols - pc) <= u // 2), (250, 240, 30))
    return rgb, mask


def _shifted(image: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """The image moved by (rows, columns), zero where nothing moved in."""
    out = np.zeros_like(image)
    dy, dx = offset
    h, w = image.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luminance of uint8 RGB, uint8 (what a grey reader of the export sees)."""
    y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


class _TissueSpeckle:
    """Tissue speckle fixed to the anatomy: complex slices every ``step_mm`` of arc length.

    Slice ``i`` is drawn from a generator seeded by (seed, i), so the pattern at a given
    arc length is the same whatever the frame order; between slices the complex fields are
    interpolated, which keeps Rayleigh statistics. A smooth "mottle" field (fat lobules,
    fibrous strands) that modulates the tissue echogenicity has its own, sparser slices
    (every ``mottle_step_mm``): its structures are larger along the vessel too.
    """

    POOL_SIZE = 48

    def __init__(
        self,
        seed: int,
        shape: tuple[int, int],
        *,
        step_mm: float,
        coarse: bool,
        depth_step_mm: float,
        blob_mm: float,
        mottle_step_mm: float = 0.5,
        psf_sigma: tuple[float, float] | None = None,
    ) -> None:
        self.seed = seed
        self.shape = shape
        self.step_mm = step_mm
        self.coarse = coarse
        self.depth_step_mm = depth_step_mm
        self.blob_mm = blob_mm
        self.mottle_step_mm = mottle_step_mm
        self.psf_sigma = psf_sigma
        self.speckle_cache: dict[int, np.ndarray] = {}
        self.pool: np.ndarray | None = None
        self.mottle_cache: dict[int, np.ndarray] = {}

    @staticmethod
    def _remember(cache: dict[int, np.ndarray], i: int, value: np.ndarray) -> np.ndarray:
        if len(cache) > 16:  # frames move back and forth by a few slices only
            for key in sorted(cache, key=lambda j: abs(j - i))[8:]:
                del cache[key]
        cache[i] = value
        return value

    def _pool(self) -> np.ndarray:
        """A few independent complex fields that slices are cut from (cheaper than one each)."""
        if self.pool is None:
            rng = np.random.default_rng([self.seed, 7])
            shape = (self.POOL_SIZE, *self.shape)
            z = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
                shape, dtype=np.float32
            )
            # Axial correlation of a finite pulse; coarser for 20 MHz.
            z = z + 0.6 * np.roll(z, 1, axis=2)
            if self.coarse:
                z = z + np.roll(z, 1, axis=2) + 0.8 * np.roll(z, 1, axis=1)
            if self.psf_sigma is not None:
                z = _smooth_field(z, self.psf_sigma)
            self.pool = (z / np.sqrt(np.mean(np.abs(z) ** 2))).astype(np.complex64)
        return self.pool

    def _speckle(self, i: int) -> np.ndarray:
        z = self.speckle_cache.get(i)
        if z is None:
            # Slice i: a pool field chosen and turned by a generator seeded by (seed, i).
            rng = np.random.default_rng([self.seed, 8, i + 1_000_000])
            k, turn = int(rng.integers(self.POOL_SIZE)), int(rng.integers(self.shape[0]))
            z = self._remember(self.speckle_cache, i, np.roll(self._pool()[k], turn, axis=0))
        return z

    def _mottle(self, i: int) -> np.ndarray:
        m = self.mottle_cache.get(i)
        if m is None:
            rng = np.random.default_rng([self.seed, 9, i + 1_000_000])
            # Blobs of ~blob_mm in depth and ~1/30 turn around.
            m = gaussian_filter(
                rng.standard_normal(self.shape, dtype=np.float32),
                sigma=(self.shape[0] / 60.0, self.blob_mm / self.depth_step_mm),
                mode=("wrap", "nearest"),
            )
            m = self._remember(self.mottle_cache, i, (m / (m.std() + 1e-6)).astype(np.float32))
        return m

    def __call__(
        self, s_mm: float, fresh: np.ndarray | None = None, share: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Speckle amplitude (mean square 1) and mottle (zero mean, unit s.d.), each (A, R).

        ``fresh``: a complex field of mean square 1 that takes ``share`` of the speckle power
        (speckle renewed from frame to frame)."""
        x = s_mm / self.step_mm
        i = int(np.floor(x))
        f = np.float32(x - i)
        norm = np.float32(1.0 / np.sqrt((1 - f) ** 2 + f**2))
        if fresh is None:
            speckle = np.abs((1 - f) * self._speckle(i) + f * self._speckle(i + 1)) * norm
        else:
            z = ((1 - f) * self._speckle(i) + f * self._speckle(i + 1)) * norm
            speckle = np.abs(np.float32(np.sqrt(1.0 - share)) * z + np.float32(np.sqrt(share)) * fresh)
        x = s_mm / self.mottle_step_mm
        i = int(np.floor(x))
        f = np.float32(x - i)
        norm = np.float32(1.0 / np.sqrt((1 - f) ** 2 + f**2))
        mottle = ((1 - f) * self._mottle(i) + f * self._mottle(i + 1)) * norm
        return speckle, mottle


def _render_polar(
    rays: _Rays,
    scanner: _Scanner,
    tissue: tuple[np.ndarray, np.ndarray],
    blood: np.ndarray,
    wire: tuple[float, float],
    preset: PhantomPreset,
    speckle: str,
    texture: np.ndarray,
    artery: tuple[np.ndarray, float] | None = None,
    look: Appearance | None = None,
    pool: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Echo amplitude on the polar grid, ndarray of shape (A, R), float32.

    Layers along each ray: catheter, blood, intima/plaque, media (dark), adventitia
    (bright), periadventitial tissue fading with depth; then calcium with its shadow, the
    guidewire with its shadow wedge, attenuation and the catheter ring-down. ``look`` scales
    the layers (see ``Appearance``); ``pool`` is the lipid pool's inner and outer depth on
    every ray (NaN where none).
    """
    speck, mottle = tissue
    r = scanner.depth_mm[None, :]
    tl = rays.lumen[:, None].astype(np.float32)
    tv = rays.vessel[:, None].astype(np.float32)
    edge = np.float32(0.05)

    def ramp(x, w):
        return np.clip(x / w + 0.5, 0.0, 1.0)

    plaque = np.float32(0.4) * texture[:, None] * np.exp(np.float32(0.2) * mottle)
    media = np.float32(0.05)
    adv = np.float32(0.9) * np.exp(np.float32(0.25) * mottle)
    if look is not None:
        plaque = plaque * np.float32(look.plaque_gain)
        adv = adv * np.float32(look.adventitia_gain)
        if look.media_level is not None:
            media = np.float32(look.media_level)
    if preset.media_mm <= 0:  # vein wall: one thin echogenic layer
        media = adv
    depth_out = np.maximum(r - tv - preset.adventitia_mm, 0.0)
    peri = (
        np.float32(0.4) * np.exp(-depth_out / np.float32(preset.penetration_mm)) + np.float32(0.04)
    ) * np.exp(np.float32(0.55) * mottle)
    echo = (
        plaque
        + (media - plaque) * ramp(r - (tv - preset.media_mm), edge)
        + (adv - media) * ramp(r - tv, edge)
        + (peri - adv) * ramp(r - tv - preset.adventitia_mm, 3 * edge)
    )
    blood_level = np.float32(0.05 if speckle == "rotational" else 0.015)
    if look is not None:
        blood_level = blood_level * np.float32(look.blood_gain)
    if pool is not None and np.isfinite(pool[0]).any():
        # Lipid pool: echolucent, darker than blood, behind its fibrous cap.
        p_in = np.nan_to_num(pool[0], nan=np.inf)[:, None].astype(np.float32)
        p_out = np.nan_to_num(pool[1], nan=-np.inf)[:, None].astype(np.float32)
        inside = ramp(r - p_in, edge / 2) * ramp(p_out - r, edge / 2)
        lipid = blood_level * np.float32(look.echolucent_level if look is not None else 0.35)
        echo = echo * (1 - inside) + lipid * inside
    w = ramp(r - tl, edge)
    amp = blood_level * blood * (1 - w) + echo * speck * w

    if np.isfinite(rays.calcium_in).any():
        on = np.isfinite(rays.calcium_in)
        d = r[0][None, :] - rays.calcium_in[on][:, None].astype(np.float32)
        lead = np.float32(0.05)
        shadow = 1.0 - 0.97 * ramp(d - 1.5 * lead, lead)
        bright = np.float32(3.0) * np.exp(-((d / lead) ** 2)) * (0.7 + 0.3 * speck[on])
        amp[on] = amp[on] * shadow + bright

    if artery is not None:
        # Extrinsic artery: dark blood inside a bright wall, along the rays that cross it.
        centre, radius = artery
        uc = np.cos(scanner.theta) * centre[0] + np.sin(scanner.theta) * centre[1]
        disc = uc**2 - float(centre @ centre) + radius**2
        hit = (disc > 0) & (uc > 0)
        if hit.any():
            root = np.sqrt(disc[hit])
            t0 = (uc[hit] - root)[:, None].astype(np.float32)
            t1 = (uc[hit] + root)[:, None].astype(np.float32)
            rr = r[0][None, :]
            inside = ramp(rr - t0, edge) * ramp(t1 - rr, edge)
            rim = np.float32(0.9) * np.exp(-(((rr - t0) / 0.25) ** 2)) + np.float32(0.5) * np.exp(
                -(((rr - t1) / 0.25) ** 2)
            )
            lumen_echo = blood_level * np.float32(0.6) * blood[hit]
            amp[hit] = amp[hit] * (1 - inside) + lumen_echo * inside + rim * speck[hit]

    # Guidewire: a bright spot in the lumen with a shadow wedge behind it.
    angle, dist = wire
    # A wire lies in the lumen: keep it off the border where the lumen is tight.
    ray = int(np.round(np.mod(angle, _TWO_PI) / _TWO_PI * len(scanner.theta))) % len(scanner.theta)
    dist = min(dist, float(rays.lumen[ray]) - 0.12)
    lateral = np.abs(_wrap(scanner.theta - angle)) * dist
    near = lateral < 0.35
    if near.any():
        lat = lateral[near][:, None].astype(np.float32)
        d = r - np.float32(dist)
        spot = np.float32(4.0) * np.exp(-((d / 0.05) ** 2) - (lat / 0.12) ** 2)
        reverb = np.float32(0.4) * np.exp(-(((d - 0.3) / 0.04) ** 2) - (lat / 0.1) ** 2)
        wedge = 1.0 - 0.95 * ramp(d - 0.08, 0.04) * np.exp(-((lat / 0.16) ** 4))
        amp[near] = amp[near] * wedge + spot + reverb

    # Attenuation in tissue (blood barely attenuates), then the catheter and its ring-down.
    amp *= np.exp(-np.float32(preset.attenuation_per_mm) * np.maximum(r - tl, 0.0))
    amp += scanner.ringdown if look is None else scanner.ringdown * np.float32(look.ringdown_gain)
    amp[:, scanner.catheter] = 0.002
    return amp


def _log_compress(amp: np.ndarray) -> np.ndarray:
    """Log compression to 0..255 over a 45 dB dynamic range (white at amplitude 1.4)."""
    db = 20.0 * np.log10(amp + np.float32(1e-4))
    return np.clip((db + np.float32(42.0)) * np.float32(255.0 / 45.0), 0.0, 255.0)


def _scan_convert(polar: np.ndarray, scanner: _Scanner) -> np.ndarray:
    flat = polar.ravel()
    idx, w = scanner.index, scanner.weight
    values = flat[idx[0]] * w[0] + flat[idx[1]] * w[1] + flat[idx[2]] * w[2] + flat[idx[3]] * w[3]
    out = np.zeros(scanner.size_px * scanner.size_px, dtype=np.uint8)
    out[scanner.inside] = (values + 0.5).astype(np.uint8)
    out = out.reshape(scanner.size_px, scanner.size_px)
    np.maximum(out, scanner.overlay, out=out)
    return out


def _draw_guide_catheter(
    frames: np.ndarray,
    scanner: _Scanner,
    rng: np.random.Generator,
    *,
    offset: tuple[int, int] = (0, 0),
    console: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Frames inside a 6 F guiding catheter (inner radius 0.95 mm), in place.

    The guide's wall is a bright, thin, speckled ring around the imaging catheter (which lies
    off the guide's axis); it reflects most of the beam, so the vessel beyond is faint.
    ``offset`` is where the catheter sits from the image centre (row, col) and ``console``
    the grey console overlay and its pixels, drawn again on top.
    """
    size = scanner.size_px
    cr, cc = (size - 1) / 2.0 + offset[0], (size - 1) / 2.0 + offset[1]
    rows, cols = np.mgrid[0:size, 0:size]
    angle = rng.uniform(0.0, _TWO_PI)
    off = 0.2 / scanner.spacing_mm  # imaging catheter 0.2 mm off the guide's axis
    r_mm = np.hypot(rows - cr - off * np.sin(angle), cols - cc - off * np.cos(angle)) * scanner.spacing_mm
    wall = np.exp(-(((r_mm - 1.0) / 0.05) ** 2)).astype(np.float32)
    beyond = np.clip((r_mm - 1.0) / 0.1, 0.0, 1.0).astype(np.float32)
    fov = np.zeros(size * size, np.uint8)
    fov[scanner.inside] = 1
    fov = fov.reshape(size, size)
    if offset != (0, 0):
        fov = _shifted(fov, offset)
    for k in range(len(frames)):
        f = frames[k].astype(np.float32)
        speck = rng.rayleigh(1.0, size=(size, size)).astype(np.float32)
        f = f * (1.0 - 0.75 * beyond) + 210.0 * wall * np.clip(speck, 0.3, 1.6)
        out = np.where(fov > 0, np.clip(f + 0.5, 0, 255), 0).astype(np.uint8)
        np.maximum(out, scanner.overlay, out=out)
        if console is not None:
            out[console[1]] = console[0][console[1]]
        frames[k] = out


def _check_appearance(look: Appearance | None) -> Appearance | None:
    """The appearance, or IVUSInputError naming the first field out of range."""
    if look is None:
        return None
    if not isinstance(look, Appearance):
        raise IVUSInputError(f"appearance: {type(look).__name__} is not an Appearance; pass Appearance(...)")
    checks = (
        ("blood_gain", look.blood_gain > 0, "a positive factor"),
        ("plaque_gain", look.plaque_gain > 0, "a positive factor"),
        ("adventitia_gain", look.adventitia_gain > 0, "a positive factor"),
        ("media_level", look.media_level is None or look.media_level > 0, "a positive amplitude"),
        ("media_mm", look.media_mm is None or 0 <= look.media_mm <= 1.0, "a thickness in [0, 1] mm"),
        ("lateral_speckle_deg", 0 <= look.lateral_speckle_deg <= 30, "degrees in [0, 30]"),
        ("axial_speckle_mm", 0 <= look.axial_speckle_mm <= 0.5, "mm in [0, 0.5]"),
        ("blood_correlation", 0 <= look.blood_correlation < 1, "a value in [0, 1)"),
        ("tissue_renewal", 0 <= look.tissue_renewal <= 1, "a share in [0, 1]"),
        ("ringdown_gain", look.ringdown_gain >= 0, "a factor >= 0"),
        ("echolucent_arc_deg", 0 <= look.echolucent_arc_deg <= 360, "degrees in [0, 360]"),
        ("echolucent_level", look.echolucent_level > 0, "a positive fraction of the blood echo"),
    )
    for name, ok, what in checks:
        if not ok:
            raise IVUSInputError(f"appearance.{name}: {getattr(look, name)!r} is out of range; use {what}")
    return look


def _fresh_field(
    rng: np.random.Generator, shape: tuple[int, int], psf: tuple[float, float] | None
) -> np.ndarray:
    """A complex Gaussian field of mean square 1, smoothed by the beam ``psf``."""
    z = (
        rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32)
    ).astype(np.complex64)
    if psf is not None:
        z = _smooth_field(z, psf)
    return z * np.float32(1.0 / np.sqrt(np.mean(np.abs(z) ** 2)))


def _blood_speckle(
    rng: np.random.Generator,
    scanner: _Scanner,
    psf: tuple[float, float] | None,
    rho: float,
    previous: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Blood speckle amplitude (A, R) of Rayleigh scale 0.8 (mean 1), and its complex field.

    The field is smoothed by the beam ``psf`` and keeps a correlation ``rho`` with the
    previous frame's field (blood moves a fraction of a speckle between frames)."""
    z = _fresh_field(rng, (len(scanner.theta), len(scanner.depth_mm)), psf) * np.float32(0.8 * np.sqrt(2.0))
    if rho > 0 and previous is not None:
        z = (np.float32(rho) * previous + np.float32(np.sqrt(1.0 - rho**2)) * z).astype(np.complex64)
    return np.abs(z).astype(np.float32), z
