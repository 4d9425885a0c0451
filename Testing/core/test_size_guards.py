"""Memory guards of the readers: the decoded size of a pullback is computed from its header
(DICOM file, DICOM folder, image folder, 3D image) and refused, before any frame is decoded,
when it would not fit in the run's memory budget; a truncated or forged file is still named as
truncated, not pre-empted by the size guard.

The budget is set small with ``IVUS_MEMORY_BUDGET_MB`` (the phantom pullback decodes to
30 x 48 x 48 = 69120 bytes; 0.05 MiB = 52428 bytes).
"""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from IVUSReconstructLib import limits
from IVUSReconstructLib.cli import main
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io import dicom, images
from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import Pullback

SMALL = "0.05"  # MiB: less than the 69120 bytes of the decoded phantom
BUDGET_TEXT = "more than the 0.05 MB this run may use (IVUS_MEMORY_BUDGET_MB=0.05)"


@pytest.fixture(scope="module")
def phantom() -> Pullback:
    return make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, SMALL)


def _no_decoding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a frame was decoded before the size was checked")

    monkeypatch.setattr(dicom, "_to_grey", refuse)
    monkeypatch.setattr(dicom, "_chunked", refuse)


# --------------------------------------------------------------------------- the budget


def test_budget_is_half_the_available_memory_unless_set(monkeypatch):
    monkeypatch.delenv(limits.MEMORY_BUDGET_ENV, raising=False)
    monkeypatch.setattr(limits, "available_memory_bytes", lambda: 8 * 1024**3)
    assert limits.memory_budget_bytes() == (4 * 1024**3, "50% of the available memory")
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, "300")
    assert limits.memory_budget_bytes() == (300 * 1024**2, "IVUS_MEMORY_BUDGET_MB=300")
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, "-1")  # not a budget: the default again
    assert limits.memory_budget_bytes()[0] == 4 * 1024**3


def test_available_memory_is_read():
    # psutil or /proc/meminfo or sysconf: a real reading, not the 8 GB fallback's constant
    available = limits.available_memory_bytes()
    assert 16 * 1024**2 < available < 64 * 1024**4


def test_size_message_names_file_field_size_and_fix(monkeypatch):
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, "1024")
    with pytest.raises(IVUSInputError) as info:
        limits.check_decoded_size("p.dcm", "Rows x Columns x NumberOfFrames", (6000, 1024, 1024), 1)
    assert str(info.value) == (
        "p.dcm: Rows x Columns x NumberOfFrames make 5.9 GB of decoded frames (6000 x 1024 x 1024 x "
        "1 bytes), more than the 1.0 GB this run may use (IVUS_MEMORY_BUDGET_MB=1024); split the pullback "
        "into shorter exports, read it on a machine with more free memory, or export it uncompressed "
        "and grey (read from disk, not decoded into memory)"
    )
    limits.check_decoded_size("p.dcm", "x", (1000, 1024, 1024), 1)  # 0.98 GB fits


# --------------------------------------------------------------------------- DICOM files


@pytest.mark.parametrize(
    ("syntax", "photometric"), [("rle", "MONOCHROME2"), ("explicit-little", "RGB"), ("deflated", "MONOCHROME2")]
)
def test_dicom_decoded_into_memory_is_refused_before_decoding(
    tmp_path, phantom, small_budget, monkeypatch, syntax, photometric
):
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax=syntax, photometric=photometric)
    _no_decoding(monkeypatch)
    with pytest.raises(IVUSInputError) as info:
        read_pullback(path, decode_workers=1)
    assert str(info.value).startswith(
        f"{path}: Rows x Columns x NumberOfFrames (0028,0010/0011/0008) make 0.0659 MB of decoded "
        "frames (30 x 48 x 48 x 1 bytes), " + BUDGET_TEXT
    )


def test_grey_uncompressed_dicom_stays_on_disk_and_is_not_counted(tmp_path, phantom, small_budget):
    path = write_pullback(phantom, tmp_path / "p.dcm")
    back = read_pullback(path)
    assert isinstance(back.frames, np.memmap) and back.frames.shape == (30, 48, 48)


def test_truncated_compressed_file_is_named_truncated_not_too_large(tmp_path, phantom, small_budget):
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax="rle")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IVUSInputError, match=r"PixelData \(7FE0,0010\)|NumberOfFrames \(0028,0008\)") as info:
        read_pullback(path, decode_workers=1)
    assert "decoded frames" not in str(info.value)


def test_truncated_colour_file_is_named_truncated_not_too_large(tmp_path, phantom, small_budget):
    path = write_pullback(phantom, tmp_path / "p.dcm", photometric="RGB")
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(IVUSInputError) as info:
        read_pullback(path)
    assert str(info.value).startswith(f"{path}: PixelData (7FE0,0010) is truncated (")


def test_cli_refuses_a_too_large_pullback_with_one_line_and_no_output(tmp_path, phantom, small_budget, capsys):
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax="rle")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ivus-reconstruct: error: {path}: Rows x Columns x NumberOfFrames")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["p.dcm"]


# --------------------------------------------------------------------------- DICOM folders


def test_dicom_folder_refused_from_its_headers_before_any_pixel(tmp_path, phantom, small_budget, monkeypatch):
    folder = write_pullback(phantom, tmp_path / "f", layout="single-frame")

    def refuse(*args, **kwargs):
        raise AssertionError("a file's pixels were read before the folder's size was checked")

    monkeypatch.setattr(dicom, "_file_frames", refuse)
    with pytest.raises(IVUSInputError) as info:
        read_pullback(folder)
    assert str(info.value).startswith(
        f"{folder}: 30 files of Rows x Columns (0028,0010/0011) make 0.0659 MB of decoded frames "
        "(30 x 48 x 48 x 1 bytes), " + BUDGET_TEXT
    )


def test_truncated_file_in_a_folder_is_named_before_the_size(tmp_path, phantom, small_budget):
    folder = write_pullback(phantom, tmp_path / "f", layout="single-frame")
    victim = sorted(folder.iterdir())[7]
    victim.write_bytes(victim.read_bytes()[:-500])
    with pytest.raises(IVUSInputError) as info:
        read_pullback(folder)
    assert str(info.value).startswith(f"{victim}: PixelData (7FE0,0010) is truncated (")


def test_folder_ranges_are_checked_from_the_first_header_before_any_pixel(tmp_path, phantom, monkeypatch):
    """One file per frame: a 40 mm pixel spacing is refused before any file's pixels are read."""
    folder = write_pullback(phantom, tmp_path / "f", layout="single-frame")
    first = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = 4.0
    ds.save_as(first)

    def refuse(*args, **kwargs):
        raise AssertionError("a file's pixels were read before the ranges were checked")

    monkeypatch.setattr(dicom, "_file_frames", refuse)
    with pytest.raises(limits.IVUSRangeError) as info:
        read_pullback(folder)
    assert str(info.value).startswith(
        f"{first}: pixel spacing from PhysicalDeltaX (0018,602C) is 40 mm, outside the plausible 0.001-1 mm"
    )


def test_folder_frame_rate_from_the_first_header(tmp_path, phantom, monkeypatch):
    folder = write_pullback(phantom, tmp_path / "f", layout="single-frame")
    first = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.FrameTime = "33333"  # s written as ms x 1000
    ds.save_as(first)
    monkeypatch.setattr(dicom, "_file_frames", lambda *a, **k: pytest.fail("pixels read"))
    with pytest.raises(limits.IVUSRangeError) as info:
        read_pullback(folder)
    assert info.value.field == "frame_interval_s" and info.value.value == pytest.approx(33.333)


# --------------------------------------------------------------------------- image folders, 3D images


def test_image_folder_refused_after_its_first_frame(tmp_path, phantom, small_budget):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(np.asarray(phantom.frames)):
        Image.fromarray(frame).save(folder / f"f{k:03d}.png")
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(folder, pixel_spacing_mm=0.2, frame_rate_hz=30.0)
    assert str(info.value).startswith(
        f"{folder}: 30 files of 48x48 px make 0.0659 MB of decoded frames (30 x 48 x 48 x 1 bytes), "
        + BUDGET_TEXT
    )


def test_damaged_first_image_is_named_not_the_size(tmp_path, phantom, small_budget):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(np.asarray(phantom.frames)):
        Image.fromarray(frame).save(folder / f"f{k:03d}.png")
    first = folder / "f000.png"
    first.write_bytes(first.read_bytes()[:60])
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(folder, pixel_spacing_mm=0.2, frame_rate_hz=30.0)
    assert str(info.value).startswith(f"{first}: image cannot be decoded (")


def test_volume_refused_from_its_header(tmp_path, phantom, small_budget):
    path = tmp_path / "p.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.asarray(phantom.frames)), str(path))
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, pixel_spacing_mm=0.2, frame_rate_hz=30.0)
    assert str(info.value).startswith(
        f"{path}: size 48x48x30 voxels make 0.132 MB of decoded frames (30 x 48 x 48 x 1 x 1 bytes, "
        "2 copies while reading), " + BUDGET_TEXT
    )


def test_truncated_volume_is_named_truncated_not_too_large(tmp_path, phantom, small_budget):
    path = tmp_path / "p.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.asarray(phantom.frames)), str(path), useCompression=False)
    path.write_bytes(path.read_bytes()[:-20000])
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, pixel_spacing_mm=0.2, frame_rate_hz=30.0)
    assert "more than the file holds" in str(info.value) and "decoded frames" not in str(info.value)


def test_within_the_budget_everything_reads(tmp_path, phantom, monkeypatch):
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, "1")  # 1 MiB: the 69 kB phantom fits
    path = write_pullback(phantom, tmp_path / "p.dcm", transfer_syntax="rle")
    back = read_pullback(path, decode_workers=1)
    np.testing.assert_array_equal(np.asarray(back.frames), phantom.frames)


# --------------------------------------------------------------------------- property-based

FUZZ = settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
DECODED_BYTES = 30 * 48 * 48


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, phantom) -> dict[tuple[str, str], bytes]:
    folder = tmp_path_factory.mktemp("enc")
    forms = [("explicit-little", "MONOCHROME2"), ("explicit-little", "RGB"), ("rle", "MONOCHROME2")]
    return {
        (syntax, photometric): write_pullback(
            phantom, folder / f"{syntax}-{photometric}.dcm", transfer_syntax=syntax, photometric=photometric
        ).read_bytes()
        for syntax, photometric in forms
    }


@FUZZ
@given(
    form=st.sampled_from([("explicit-little", "MONOCHROME2"), ("explicit-little", "RGB"), ("rle", "MONOCHROME2")]),
    budget_bytes=st.integers(20_000, 200_000),
    keep=st.one_of(st.none(), st.floats(0.2, 0.995)),
)
def test_fuzzed_budget_and_truncation(tmp_path, encoded, form, budget_bytes, keep):
    """Whatever the budget and wherever the file is cut: a cut file is never reported as too
    large; a whole one is refused as too large exactly when its decoded frames (not a memory
    map) exceed the budget."""
    data = encoded[form]
    if keep is not None:
        data = data[: int(keep * len(data))]
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    os.environ[limits.MEMORY_BUDGET_ENV] = f"{budget_bytes / 1024**2:.9f}"
    try:
        read_pullback(path, decode_workers=1)
    except IVUSInputError as exc:
        too_large = "of decoded frames" in str(exc)
        assert "\n" not in str(exc)
        if keep is not None:
            assert not too_large, str(exc)
        else:
            assert too_large and form != ("explicit-little", "MONOCHROME2")
            assert DECODED_BYTES > limits.memory_budget_bytes()[0]
    else:
        budget = limits.memory_budget_bytes()[0]
        assert keep is None and (form == ("explicit-little", "MONOCHROME2") or DECODED_BYTES <= budget)
    finally:
        del os.environ[limits.MEMORY_BUDGET_ENV]


def test_labelmap_mesh_and_render_sizes_also_respect_the_budget(monkeypatch):
    """Below the 2 GB cap, the run's memory budget bounds the output arrays too."""
    origins = np.column_stack([np.zeros(50), np.zeros(50), np.linspace(0.0, 49.0, 50)])
    limits.check_output_sizes(origins, 5.0, labelmap_spacing_mm=0.2, render_size_px=(800, 600), where="w")
    monkeypatch.setenv(limits.MEMORY_BUDGET_ENV, "1")
    with pytest.raises(IVUSInputError) as info:
        limits.check_output_sizes(origins, 5.0, labelmap_spacing_mm=0.2, render_size_px=(800, 600), where="w")
    # the render comes first: 600 x 800 x 4 x 2 bytes = 3.66 MiB
    assert str(info.value) == (
        "w: the render would take 3.66 MB (600 x 800 x 4), more than the 1 MB this run may use "
        "(IVUS_MEMORY_BUDGET_MB=1); ask for a smaller render"
    )


def test_image_folder_facts_checked_before_the_folder_is_decoded(tmp_path, monkeypatch):
    """1 mm pixels (the largest plausible) on 128-pixel frames: a 128 mm field of view, refused
    from the sampled frames before the whole folder is read."""
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in range(6):
        Image.fromarray(rng.integers(0, 255, (128, 128), dtype=np.uint8)).save(folder / f"f{k}.png")
    monkeypatch.setattr(images, "_read_frame_stack", lambda *a, **k: pytest.fail("folder decoded"))
    with pytest.raises(limits.IVUSRangeError) as info:
        images.read_pullback(folder, pixel_spacing_mm=1.0, frame_rate_hz=30.0)
    assert str(info.value).startswith(
        f"{folder}: field of view (image size x pixel spacing) is 128 mm, outside the plausible 1-100 mm"
    )
