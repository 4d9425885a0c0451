"""A matrix of DICOM variants of one phantom: all read to the same pixels, geometry and timing.

Dimensions: photometric (MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422; PALETTE COLOR separately) x transfer syntax
(explicit/implicit little endian, deflated, RLE, JPEG-LS, JPEG 2000 lossless and lossy,
JPEG baseline) x timing (Frame Time, Frame Time Vector, Cine Rate) x spacing source
(Sequence of Ultrasound Regions, Pixel Spacing). Every valid (syntax, photometric) pair is
written once; timing and spacing rotate over the pairs so that every syntax meets every
timing and both spacing sources, and one syntax gets the full timing x spacing grid.
Lossless variants must give identical pixels; lossy ones a mean absolute error below 3
grey levels (JPEG baseline, quality 90) or 1 grey level (JPEG 2000 at 45 dB PSNR).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import Pullback

pytest.importorskip("pylibjpeg")
pytest.importorskip("openjpeg")
pytest.importorskip("jpeg_ls")

SYNTAXES = (
    "explicit-little",
    "implicit-little",
    "deflated",
    "rle",
    "jpeg-ls",
    "jpeg2000-lossless",
    "jpeg2000",
    "jpeg-baseline",
)
# Mean absolute error bound in grey levels (0 = bit-exact).
TOLERANCE = {"jpeg-baseline": 3.0, "jpeg2000": 1.0}
PHOTOMETRICS = ("MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422")
TIMINGS = ("FrameTime", "FrameTimeVector", "CineRate")
SPACINGS = ("regions", "PixelSpacing")
TIMING_SOURCES = {
    "FrameTime": "FrameTime (0018,1063)",
    "FrameTimeVector": "FrameTimeVector (0018,1065)",
    "CineRate": "CineRate (0018,0040)",
}
SPACING_SOURCES = {
    "regions": "PhysicalDeltaX/Y (0018,602C/602E) of SequenceOfUltrasoundRegions",
    "PixelSpacing": "PixelSpacing (0028,0030)",
}


def _valid(syntax: str, photometric: str) -> bool:
    # YBR_FULL_422 exists only uncompressed (packed) and in JPEG baseline (4:2:2 sampling).
    return photometric != "YBR_FULL_422" or syntax in ("explicit-little", "implicit-little", "jpeg-baseline")


def _cases() -> list[tuple[str, str, str, str]]:
    pairs = [(s, p) for s in SYNTAXES for p in PHOTOMETRICS if _valid(s, p)]
    cases = []
    for i, (syntax, photometric) in enumerate(pairs):
        # Rotate so that each syntax (3-4 photometrics) meets several timings and spacings.
        cases.append((syntax, photometric, TIMINGS[i % 3], SPACINGS[(i // 2) % 2]))
    # The full timing x spacing grid on a compressed syntax.
    cases += [("jpeg-ls", "MONOCHROME2", t, s) for t in TIMINGS for s in SPACINGS]
    return sorted(set(cases))


CASES = _cases()


@pytest.fixture(scope="module")
def phantom() -> Pullback:
    # 0.5 mm at 0.5 mm/s, 30 frames/s: 30 frames of 64 x 64 px at 0.15625 mm.
    return make_phantom("coronary", length_mm=0.5, size_px=64).pullback


def _retime_and_respace(path: Path, timing: str, spacing: str) -> None:
    """Swap the written Frame Time / Ultrasound Regions for another source of the same facts."""
    if timing == "FrameTime" and spacing == "regions":
        return
    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    frame_time_ms = float(ds.FrameTime)
    if timing == "FrameTimeVector":
        ds.FrameIncrementPointer = 0x00181065
        ds.FrameTimeVector = ["0"] + [f"{frame_time_ms:.10g}"[:16]] * (n - 1)
        del ds.FrameTime
    elif timing == "CineRate":
        del ds.FrameTime
        del ds.FrameIncrementPointer
        ds.CineRate = round(1000.0 / frame_time_ms)
    if spacing == "PixelSpacing":
        region = ds.SequenceOfUltrasoundRegions[0]
        ds.PixelSpacing = [f"{region.PhysicalDeltaY * 10:.10g}", f"{region.PhysicalDeltaX * 10:.10g}"]
        del ds.SequenceOfUltrasoundRegions
    ds.save_as(path)


def test_matrix_covers_every_dimension():
    assert len(CASES) >= 30
    assert {c[0] for c in CASES} == set(SYNTAXES)
    assert {c[1] for c in CASES} == set(PHOTOMETRICS)
    for syntax in SYNTAXES:
        assert len({c[2] for c in CASES if c[0] == syntax}) >= 2, syntax
    assert {(c[2], c[3]) for c in CASES} == {(t, s) for t in TIMINGS for s in SPACINGS}


@pytest.mark.parametrize(("syntax", "photometric", "timing", "spacing"), CASES)
def test_variant_reads_like_the_phantom(
    tmp_path: Path, phantom: Pullback, syntax: str, photometric: str, timing: str, spacing: str
):
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax=syntax, photometric=photometric)
    _retime_and_respace(path, timing, spacing)
    written = pydicom.dcmread(path, stop_before_pixels=True)
    assert written.PhotometricInterpretation == photometric
    assert written.file_meta.TransferSyntaxUID.is_compressed == (syntax not in SYNTAXES[:3])

    back = read_pullback(path, decode_workers=2)
    assert back.frames.shape == (30, 64, 64) and back.frames.dtype == np.uint8
    error = np.abs(np.asarray(back.frames, dtype=float) - phantom.frames)
    if syntax in TOLERANCE:
        assert 0.0 < error.mean() < TOLERANCE[syntax]
    else:
        assert error.max() == 0.0
    assert back.pixel_spacing_mm == pytest.approx((0.15625, 0.15625), rel=1e-9)
    np.testing.assert_allclose(back.frame_times_s, np.arange(30) / 30.0, atol=1e-6)
    assert back.pullback_speed_mm_s == 0.5 and back.acquisition == "motor"
    assert back.catheter_center_px == (31.5, 31.5)
    assert back.provenance["frame_times_s"].source == TIMING_SOURCES[timing]
    assert back.provenance["pixel_spacing_mm"].source == SPACING_SOURCES[spacing]
    if syntax == "explicit-little" and photometric == "MONOCHROME2":
        assert isinstance(back.frames, np.memmap)


@pytest.mark.parametrize("syntax", ["jpeg-baseline", "rle", "explicit-little"])
def test_single_frame_folder_variants(tmp_path: Path, phantom: Pullback, syntax: str):
    folder = write_pullback(phantom, tmp_path / "frames", transfer_syntax=syntax, layout="single-frame")
    back = read_pullback(folder)
    error = np.abs(np.asarray(back.frames, dtype=float) - phantom.frames)
    assert error.mean() < TOLERANCE.get(syntax, 1e-12)
    np.testing.assert_allclose(back.frame_times_s, np.arange(30) / 30.0, atol=1e-6)
    assert back.provenance["n_frames"].value == 30


def test_compressed_decode_reports_progress_and_threads_agree(tmp_path: Path, phantom: Pullback):
    path = write_pullback(phantom, tmp_path / "j.dcm", transfer_syntax="jpeg-baseline")
    seen: list[float] = []
    one = read_pullback(path, decode_workers=1, progress=lambda f, _m: seen.append(f))
    two = read_pullback(path, decode_workers=2)
    np.testing.assert_array_equal(one.frames, two.frames)
    assert seen[0] == pytest.approx(1 / 30) and seen[-1] == 1.0
    assert seen == sorted(seen)


def _to_palette(path: Path, *, entry_bits: int) -> None:
    """Rewrite a MONOCHROME2 file as PALETTE COLOR with a grey ramp lookup table (0x0000-0xFFFF
    for 16-bit entries, 0-255 for 8-bit ones), so the colours are grey and read back as the
    original grey levels."""
    ds = pydicom.dcmread(path)
    ramp = np.arange(256, dtype=np.uint16) * (257 if entry_bits == 16 else 1)
    data = ramp.astype("<u2").tobytes() if entry_bits == 16 else ramp.astype(np.uint8).tobytes()
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, entry_bits])
        ds[f"{colour}PaletteColorLookupTableDescriptor"].VR = "US"
        setattr(ds, f"{colour}PaletteColorLookupTableData", data)
        ds[f"{colour}PaletteColorLookupTableData"].VR = "OW"
    ds.save_as(path)


@pytest.mark.parametrize(
    ("syntax", "entry_bits"), [("explicit-little", 16), ("rle", 16), ("explicit-little", 8)]
)
def test_palette_color_reads_as_its_grey_levels(
    tmp_path: Path, phantom: Pullback, syntax: str, entry_bits: int
):
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax=syntax)
    _to_palette(path, entry_bits=entry_bits)
    back = read_pullback(path)
    assert pydicom.dcmread(path, stop_before_pixels=True).PhotometricInterpretation == "PALETTE COLOR"
    assert back.frames.dtype == np.uint8
    assert np.array_equal(np.asarray(back.frames), phantom.frames)
    assert back.pixel_spacing_mm == pytest.approx((0.15625, 0.15625), rel=1e-9)
