"""EEM on crafted layered walls: the media-adventitia interface, not a rise further out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from IVUSReconstructLib.segmentation import SegmentationOptions
from IVUSReconstructLib.segmentation.eem import trace_vessel
from IVUSReconstructLib.segmentation.segmenter import _Segmenter
from IVUSReconstructLib.types import Pullback

LUMEN_MM = 1.5


def _segmenter(options: SegmentationOptions, rng: np.random.Generator | None = None) -> _Segmenter:
    """A segmenter of 4 noise frames, 256 px at 0.026 mm (set B's scale), for crafted polar images."""
    rng = np.random.default_rng(3) if rng is None else rng
    pb = Pullback(
        frames=rng.integers(20, 120, size=(4, 256, 256), dtype=np.uint8),
        pixel_spacing_mm=(0.026, 0.026),
        frame_times_s=np.arange(4) / 30.0,
        pullback_speed_mm_s=0.5,
        acquisition="motor",
        catheter_center_px=(127.5, 127.5),
    )
    return _Segmenter(pb, options)


def _layered(seg: _Segmenter, layers: list[tuple[float, float]], blur_mm: float, seed: int) -> np.ndarray:
    """Polar log image (1, A, R): grey level ``g`` from radius ``r0`` mm out, for each (r0, g),
    multiplied by speckle and blurred along the ray by ``blur_mm``."""
    rng = np.random.default_rng(seed)
    r = seg.radii
    image = np.zeros((1, seg.o.n_angles, len(r)), np.float32)
    for r0, grey in layers:
        image[0][:, r >= r0] = grey
    image = image * rng.uniform(0.7, 1.3, image.shape).astype(np.float32)
    image = ndimage.gaussian_filter1d(image, blur_mm / seg.dr, axis=-1)
    return np.log1p(image)


def _eem_mm(seg: _Segmenter, log_image: np.ndarray, trust: float) -> np.ndarray:
    seg.trust = trust
    lumen = np.full((1, seg.o.n_angles), LUMEN_MM / seg.dr)
    path, _ = trace_vessel(seg, log_image, lumen)
    return seg.to_mm(path)[0]


# 40-60 MHz: echoing blood, a grey plaque 0.7 mm thick, a thin dark media (0.1 mm), a bright
# adventitia 0.3 mm thick, dark perivascular fat, then bright tissue whose rise out of the fat
# is 1.6 times the media-adventitia step (log grey levels) (the LAD and RCA exports: the EEM went out onto it)
INTERFACE_MM = 2.3
ROTATIONAL = [(0.0, 50.0), (LUMEN_MM, 40.0), (2.2, 15.0), (INTERFACE_MM, 90.0), (2.6, 8.0), (3.2, 150.0)]


@pytest.mark.parametrize("seed", [1, 2])
def test_eem_is_the_media_adventitia_interface_not_the_tissue_beyond(seed):
    """The EEM lies within 0.06 mm (median) and 0.12 mm (every direction) of the
    media-adventitia interface at 2.3 mm; without the first-bright-layer charge
    (``eem_skip_weight`` 0) it took the stronger rise at 3.2 mm."""
    seg = _segmenter(SegmentationOptions())
    log_image = _layered(seg, ROTATIONAL, 0.03, seed)
    eem = _eem_mm(seg, log_image, trust=1.0)
    assert np.median(eem) == pytest.approx(INTERFACE_MM, abs=0.06)
    assert np.abs(eem - INTERFACE_MM).max() <= 0.12
    old = _eem_mm(_segmenter(SegmentationOptions(eem_skip_weight=0.0)), log_image, trust=1.0)
    assert np.median(old) > 3.0


def test_eem_beyond_the_blurred_lumen_rise_where_blood_is_dark():
    """20 MHz (blood does not decorrelate, trust 0): a dark lumen, a bright intima-plaque band
    0.5 mm thick, a dark media 0.1 mm and the adventitia, blurred over 0.1 mm. The EEM lies on
    the media-adventitia interface (2.1 mm) within 0.06 mm, not on the lumen's blurred rise;
    searched from the lumen border on (``eem_beyond_lumen_rise`` off) it stays within 0.25 mm
    of the lumen."""
    layers = [(0.0, 8.0), (LUMEN_MM, 60.0), (2.0, 30.0), (2.1, 70.0)]
    seg = _segmenter(SegmentationOptions())
    log_image = _layered(seg, layers, 0.1, 4)
    assert np.median(_eem_mm(seg, log_image, trust=0.0)) == pytest.approx(2.1, abs=0.06)
    old = _segmenter(SegmentationOptions(eem_beyond_lumen_rise=False, still_blood_edge_gain=0.0))
    assert np.median(_eem_mm(old, log_image, trust=0.0)) < LUMEN_MM + 0.25


def test_a_lumen_reaching_the_field_edge_leaves_the_eem_elsewhere():
    """Where the lumen runs out to the field's edge in a few directions (a side branch, the far
    field) no EEM depth is left there; the other directions keep the media-adventitia
    interface (2.3 mm within 0.06 mm) instead of every closed path being forbidden and the
    trace collapsing onto the lumen (RCA export frame 900: vessel/lumen area ratio 1.17)."""
    seg = _segmenter(SegmentationOptions())
    log_image = _layered(seg, ROTATIONAL, 0.03, 1)
    seg.trust = 1.0
    lumen = np.full((1, seg.o.n_angles), LUMEN_MM / seg.dr)
    lumen[0, 40:50] = seg.n_r - 1
    path, _ = trace_vessel(seg, log_image, lumen)
    eem = seg.to_mm(path)[0]
    others = np.r_[0:35, 55 : seg.o.n_angles]
    assert np.median(eem[others]) == pytest.approx(INTERFACE_MM, abs=0.06)
    assert np.all(eem[40:50] >= seg.radii[-1] - 0.2)
