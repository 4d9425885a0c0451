"""DICOM pullback I/O: round trips, tag fallbacks, option overrides and error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.dicom import US_MULTIFRAME_SOP_CLASS, read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import Pullback

REEXPORT = "re-export the pullback from the IVUS console"


@pytest.fixture(scope="module")
def pullback() -> Pullback:
    # 0.5 mm at 0.5 mm/s and 30 frames/s: 30 frames of 48 x 48 px.
    return make_phantom("coronary", seed=3, length_mm=0.5, size_px=48).pullback


@pytest.fixture()
def dicom_file(tmp_path: Path, pullback: Pullback) -> Path:
    return write_pullback(pullback, tmp_path / "pullback.dcm")


def _edit(path: Path, **changes) -> Path:
    """Rewrite ``path`` with keywords set (value None deletes the element)."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            if key in ds:
                del ds[key]
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def _expect(path: Path, message: str, **options) -> None:
    with pytest.raises(IVUSInputError) as info:
        read_pullback(path, **options)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- round trips


def test_round_trip_multiframe_is_memmapped_and_exact(dicom_file: Path, pullback: Pullback):
    back = read_pullback(dicom_file)
    assert isinstance(back.frames, np.memmap)
    assert not back.frames.flags.writeable
    assert back.frames.shape == (30, 48, 48)
    np.testing.assert_array_equal(np.asarray(back.frames), pullback.frames)
    assert back.pixel_spacing_mm == pytest.approx(pullback.pixel_spacing_mm, rel=1e-12)
    assert back.pixel_spacing_mm[0] == pytest.approx(10.0 / 48, rel=1e-12)
    np.testing.assert_allclose(back.frame_times_s, np.arange(30) / 30.0, atol=1e-8)
    assert back.pullback_speed_mm_s == pytest.approx(0.5)
    assert back.acquisition == "motor"
    assert back.catheter_center_px == (23.5, 23.5)
    sources = {k: v.source for k, v in back.provenance.items()}
    assert sources == {
        "n_frames": "NumberOfFrames (0028,0008)",
        "frame_times_s": "FrameTime (0018,1063)",
        "pixel_spacing_mm": "PhysicalDeltaX/Y (0018,602C/602E) of SequenceOfUltrasoundRegions",
        "pullback_speed_mm_s": "IVUSPullbackRate (0018,3101)",
        "acquisition": "IVUSAcquisition (0018,3100)",
        "pullback_start_frame": "IVUSPullbackStartFrameNumber (0018,3103)",
        "pullback_stop_frame": "IVUSPullbackStopFrameNumber (0018,3104)",
    }
    assert back.provenance["n_frames"].value == 30
    assert back.source == {
        "path": str(dicom_file),
        "sop_class_uid": US_MULTIFRAME_SOP_CLASS,
        "vendor": "IVUSReconstruct phantom IVUSReconstruct",
        "ranges_checked": True,  # the header's facts went through the range table once
    }


def test_unequal_row_and_column_spacing_are_not_swapped(tmp_path: Path, pullback: Pullback):
    # rows run along y (PhysicalDeltaY, PixelSpacing[0]), columns along x (PhysicalDeltaX,
    # PixelSpacing[1]); with equal spacings a swap would go unnoticed
    path = write_pullback(pullback, tmp_path / "p.dcm")
    ds = pydicom.dcmread(path)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = 0.003  # cm: 0.03 mm per column
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaY = 0.002  # cm: 0.02 mm per row
    ds.save_as(path)
    assert read_pullback(path).pixel_spacing_mm == pytest.approx((0.02, 0.03))
    del ds.SequenceOfUltrasoundRegions
    ds.PixelSpacing = [0.025, 0.035]  # row, column (mm)
    ds.save_as(path)
    back = read_pullback(path)
    assert back.pixel_spacing_mm == pytest.approx((0.025, 0.035))
    assert back.provenance["pixel_spacing_mm"].source.startswith("PixelSpacing")


def test_written_header_is_conformant_and_anonymous(dicom_file: Path):
    ds = pydicom.dcmread(dicom_file)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.FrameIncrementPointer == 0x00181063
    assert float(ds.FrameTime) == pytest.approx(1000.0 / 30.0, rel=1e-9)
    assert ds.CineRate == 30
    assert ds.IVUSAcquisition == "MOTOR_PULLBACK"
    assert float(ds.IVUSPullbackRate) == 0.5
    region = ds.SequenceOfUltrasoundRegions[0]
    assert (region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection) == (3, 3)
    assert region.PhysicalDeltaX == pytest.approx(1.0 / 48)  # cm
    assert (region.RegionLocationMaxX1, region.RegionLocationMaxY1) == (47, 47)
    assert str(ds.PatientName) == "PHANTOM" and ds.PatientID == "PHANTOM"
    assert ds.Manufacturer == "IVUSReconstruct phantom"
    other = write_pullback(read_pullback(dicom_file), dicom_file.with_name("b.dcm"))
    assert pydicom.dcmread(other).StudyInstanceUID != ds.StudyInstanceUID  # fresh UIDs


@pytest.mark.parametrize(
    ("transfer_syntax", "photometric"),
    [
        ("implicit-little", "MONOCHROME2"),
        ("explicit-little", "RGB"),
        ("explicit-little", "YBR_FULL"),
        ("rle", "MONOCHROME2"),
        ("deflated", "RGB"),
    ],
)
def test_round_trip_syntaxes_and_colour(
    tmp_path: Path, pullback: Pullback, transfer_syntax: str, photometric: str
):
    path = write_pullback(
        pullback, tmp_path / "p.dcm", transfer_syntax=transfer_syntax, photometric=photometric
    )
    back = read_pullback(path)
    assert back.frames.dtype == np.uint8 and back.frames.shape == (30, 48, 48)
    np.testing.assert_array_equal(np.asarray(back.frames), pullback.frames)


def test_rgb_is_converted_to_bt601_luminance(tmp_path: Path, pullback: Pullback):
    path = write_pullback(pullback, tmp_path / "rgb.dcm", photometric="RGB")
    ds = pydicom.dcmread(path)
    rgb = np.zeros((30, 48, 48, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # pure red 200 -> luma 0.299 * 200 = 59.8
    rgb[..., 2] = 100  # plus blue 100 -> 11.4; total 71.2 -> 71
    ds.PixelData = rgb.tobytes()
    ds.save_as(path)
    assert int(read_pullback(path).frames[0, 0, 0]) == 71


def test_single_frame_folder_sorted_by_instance_number(tmp_path: Path, pullback: Pullback):
    folder = write_pullback(pullback, tmp_path / "frames", layout="single-frame")
    # Shuffle the file names so that only InstanceNumber gives the order.
    files = sorted(folder.iterdir())
    for i, f in enumerate(files):
        f.rename(folder / f"x{(i * 7) % len(files):03d}_{i}.dcm")
    (folder / "README.txt").write_text("not dicom")
    back = read_pullback(folder)
    np.testing.assert_array_equal(back.frames, pullback.frames)
    assert back.provenance["n_frames"].source == "30 files sorted by InstanceNumber (0020,0013)"
    np.testing.assert_allclose(back.frame_times_s, np.arange(30) / 30.0, atol=1e-8)


def test_folder_with_a_repeated_instance_number_is_refused(tmp_path: Path, pullback: Pullback):
    folder = write_pullback(pullback, tmp_path / "frames", layout="single-frame")
    files = sorted(folder.iterdir())
    ds = pydicom.dcmread(files[5])
    ds.InstanceNumber = pydicom.dcmread(files[4]).InstanceNumber
    ds.save_as(files[5])
    with pytest.raises(IVUSInputError) as err:
        read_pullback(folder)
    assert str(err.value) == (
        f"{files[5]}: InstanceNumber (0020,0013) is 5, the same as in {files[4].name}, so the frame "
        "order is ambiguous; keep only the frames of one pullback in the folder (one file per "
        "InstanceNumber)"
    )


def test_folder_with_one_instance_number_everywhere_is_ordered_by_name(
    tmp_path: Path, pullback: Pullback
):
    folder = write_pullback(pullback, tmp_path / "frames", layout="single-frame")
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = 1
        ds.save_as(f)
    back = read_pullback(folder)
    np.testing.assert_array_equal(back.frames, pullback.frames)
    assert back.provenance["n_frames"].source == (
        "30 files sorted by file name (no distinct InstanceNumber (0020,0013))"
    )


def test_frame_time_vector_for_irregular_times(tmp_path: Path, pullback: Pullback):
    from dataclasses import replace

    times = np.cumsum(np.r_[0.0, np.full(29, 1 / 30.0)] * (1 + 0.1 * np.sin(np.arange(30))))
    times -= times[0]
    path = write_pullback(replace(pullback, frame_times_s=times), tmp_path / "v.dcm")
    assert pydicom.dcmread(path).FrameIncrementPointer == 0x00181065
    back = read_pullback(path)
    np.testing.assert_allclose(back.frame_times_s, times, atol=1e-8)
    assert back.provenance["frame_times_s"].source == "FrameTimeVector (0018,1065)"


def test_fallbacks_cine_rate_pixel_spacing_and_boston_rate(dicom_file: Path):
    ds = pydicom.dcmread(dicom_file)
    for key in (
        "FrameTime",
        "FrameIncrementPointer",
        "SequenceOfUltrasoundRegions",
        "IVUSPullbackRate",
        "IVUSAcquisition",
    ):
        del ds[key]
    ds.CineRate = 25
    ds.PixelSpacing = [0.03, 0.02]
    ds.add_new(0x000B0010, "LO", "BSC IVUS")
    ds.add_new(0x000B1001, "FD", 0.75)
    ds.save_as(dicom_file)
    back = read_pullback(dicom_file)
    np.testing.assert_allclose(back.frame_times_s, np.arange(30) / 25.0)
    assert back.pixel_spacing_mm == (0.03, 0.02)
    assert back.pullback_speed_mm_s == 0.75
    assert back.provenance["pullback_speed_mm_s"].source == "Boston Scientific private (000B,1001)"
    assert back.provenance["pixel_spacing_mm"].source == "PixelSpacing (0028,0030)"
    assert back.provenance["frame_times_s"].source == "CineRate (0018,0040)"
    assert back.acquisition == "motor"


def test_options_override_tags(dicom_file: Path):
    back = read_pullback(dicom_file, pixel_spacing_mm=0.05, pullback_speed_mm_s=1.0, frame_rate_hz=10.0)
    assert back.pixel_spacing_mm == (0.05, 0.05)
    assert back.pullback_speed_mm_s == 1.0
    assert back.frame_times_s[-1] == pytest.approx(2.9)
    assert back.provenance["pixel_spacing_mm"].source == "--pixel-spacing"
    assert back.provenance["pullback_speed_mm_s"].source == "--pullback-speed"
    assert back.provenance["frame_times_s"].source == "--frame-rate"


def test_manual_pullback_has_no_speed(dicom_file: Path):
    _edit(dicom_file, IVUSAcquisition="MANUAL_PULLBACK", IVUSPullbackRate=None)
    back = read_pullback(dicom_file)
    assert back.acquisition == "manual" and back.pullback_speed_mm_s is None


# ----------------------------------------------------------------------------- errors


def test_error_truncated_pixel_data(dicom_file: Path):
    data = dicom_file.read_bytes()
    dicom_file.write_bytes(data[:-1000])
    need = 30 * 48 * 48
    _expect(
        dicom_file,
        f"{dicom_file}: PixelData (7FE0,0010) is truncated ({need - 1000} of {need} bytes in the file); "
        f"{REEXPORT}",
    )


def test_error_text_file_named_dcm(tmp_path: Path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient notes, not an image\n" * 20)
    _expect(
        path,
        f"{path}: file is not a DICOM file; pass a multi-frame DICOM file or a folder of single-frame "
        "DICOM files",
    )


def test_error_empty_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    _expect(
        tmp_path / "empty",
        f"{tmp_path / 'empty'}: folder contains no DICOM image files; pass a folder of "
        "single-frame DICOM files or a multi-frame DICOM file",
    )


def test_error_missing_path(tmp_path: Path):
    _expect(
        tmp_path / "nope.dcm",
        f"{tmp_path / 'nope.dcm'}: path does not exist; pass an existing DICOM file or folder",
    )


def test_error_no_spacing(dicom_file: Path):
    _edit(dicom_file, SequenceOfUltrasoundRegions=None)
    _expect(
        dicom_file,
        f"{dicom_file}: SequenceOfUltrasoundRegions (0018,6011)/PixelSpacing (0028,0030) is missing; "
        "give the pixel spacing in mm",
    )
    assert read_pullback(dicom_file, pixel_spacing_mm=0.05).pixel_spacing_mm == (0.05, 0.05)


def test_error_motor_pullback_without_rate(dicom_file: Path):
    _edit(dicom_file, IVUSPullbackRate=None)
    _expect(
        dicom_file,
        f"{dicom_file}: IVUSPullbackRate (0018,3101) is missing for a MOTOR_PULLBACK acquisition; "
        "give the pullback speed in mm/s",
    )
    relaxed = read_pullback(dicom_file, require_timing=False)
    assert (
        relaxed.pullback_speed_mm_s is None and relaxed.provenance["pullback_speed_mm_s"].source == "missing"
    )


def test_error_no_timing(dicom_file: Path):
    _edit(
        dicom_file,
        FrameTime=None,
        FrameIncrementPointer=None,
        CineRate=None,
        RecommendedDisplayFrameRate=None,
    )
    _expect(
        dicom_file,
        f"{dicom_file}: FrameTime (0018,1063)/FrameTimeVector (0018,1065)/CineRate (0018,0040) is "
        "missing; give the frame rate in frames/s",
    )
    assert read_pullback(dicom_file, frame_rate_hz=20.0).frame_times_s[1] == pytest.approx(0.05)


def test_error_more_frames_than_data(dicom_file: Path):
    _edit(dicom_file, NumberOfFrames=200)
    _expect(
        dicom_file,
        f"{dicom_file}: NumberOfFrames (0028,0008) is 200 but PixelData (7FE0,0010) holds only 30 "
        f"frames; {REEXPORT}",
    )


def test_error_more_frames_than_compressed_data(tmp_path: Path, pullback: Pullback):
    path = write_pullback(pullback, tmp_path / "rle.dcm", transfer_syntax="rle")
    _edit(path, NumberOfFrames=10**9)  # must fail before allocating 10^9 frames
    _expect(
        path,
        f"{path}: NumberOfFrames (0028,0008) is 1000000000 but the file is too small to hold them; "
        f"{REEXPORT}",
    )


@pytest.mark.parametrize("delta", [0.0, -0.001])
def test_error_non_positive_spacing(dicom_file: Path, delta: float):
    ds = pydicom.dcmread(dicom_file)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = delta
    ds.save_as(dicom_file)
    _expect(
        dicom_file,
        f"{dicom_file}: PhysicalDeltaX (0018,602C) is {delta} cm (must be positive); give the pixel spacing in mm",
    )


def test_error_unknown_units(dicom_file: Path):
    ds = pydicom.dcmread(dicom_file)
    ds.SequenceOfUltrasoundRegions[0].PhysicalUnitsXDirection = 4
    ds.save_as(dicom_file)
    _expect(
        dicom_file,
        f"{dicom_file}: PhysicalUnitsXDirection (0018,6024) is 4 (seconds, not cm); give the pixel spacing in mm",
    )


def test_error_bad_option(dicom_file: Path):
    _expect(
        dicom_file,
        "pullback speed (given): value is -1 mm/s, must be positive, within the plausible 0.05-40 mm/s "
        "(motor pullbacks run at 0.5, 1 or 2 mm/s); check the pullback speed and its unit",
        pullback_speed_mm_s=-1.0,
    )


def test_monochrome1_is_inverted_and_ybr_422_keeps_luminance(tmp_path: Path, pullback: Pullback):
    path = write_pullback(pullback, tmp_path / "m1.dcm")
    _edit(path, PhotometricInterpretation="MONOCHROME1")
    np.testing.assert_array_equal(read_pullback(path).frames, 255 - pullback.frames)

    path = write_pullback(pullback, tmp_path / "422.dcm", photometric="YBR_FULL")
    y = pullback.frames
    packed = np.full(y.shape[:2] + (y.shape[2] // 2, 4), 128, dtype=np.uint8)  # Y0 Y1 Cb Cr
    packed[..., 0], packed[..., 1] = y[:, :, 0::2], y[:, :, 1::2]
    _edit(path, PhotometricInterpretation="YBR_FULL_422", PixelData=packed.tobytes())
    np.testing.assert_array_equal(read_pullback(path).frames, y)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RssFile from /proc (Linux)")
def test_memmapped_pixels_leave_resident_memory_when_released(tmp_path: Path):
    """A 64 MB memory-mapped pullback read whole counts in the process's resident file pages;
    release_pages drops them (the pixels read back the same) and leaves copies alone."""
    from IVUSReconstructLib.io import release_pages

    def resident_file_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        raise AssertionError("no RssFile")

    frames = np.random.default_rng(0).integers(0, 256, size=(256, 512, 512), dtype=np.uint8)
    big = Pullback(frames=frames, pixel_spacing_mm=(0.02, 0.02), frame_times_s=np.arange(256) / 30.0,
                   pullback_speed_mm_s=0.5, acquisition="motor", catheter_center_px=(255.5, 255.5))  # fmt: skip
    back = read_pullback(write_pullback(big, tmp_path / "big.dcm"))
    assert isinstance(back.frames, np.memmap) and not back.frames.flags.writeable
    total = int(back.frames[::2].sum(dtype=np.int64)) + int(back.frames[1::2].sum(dtype=np.int64))
    before = resident_file_kib()
    assert release_pages(back.frames[10:20])
    after = resident_file_kib()
    assert before - after > 0.9 * 64 * 1024
    assert int(back.frames.sum(dtype=np.int64)) == total == int(frames.sum(dtype=np.int64))
    assert not release_pages(np.array(back.frames[:2]))
