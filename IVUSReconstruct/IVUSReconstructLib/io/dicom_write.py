"""Writing DICOM IVUS pullbacks: US Multi-frame (or one file per frame) with the IVUS acquisition
tags, in any transfer syntax the reader takes; the tags and syntaxes both sides use.

The reader (:mod:`.dicom`) reads every file written here; tests round-trip each syntax.
"""

from __future__ import annotations

import datetime
import io
import os
import struct
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    JPEG2000,
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from ..errors import IVUSInputError
from ..types import Pullback

__all__ = [
    "write_pullback",
    "US_MULTIFRAME_SOP_CLASS",
    "US_SINGLE_FRAME_SOP_CLASS",
    "ACQUISITION_TO_DICOM",
    "CHUNK_FRAMES",
    "FRAME_TIME_VECTOR",
    "RAW_SYNTAXES",
]

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"
US_SINGLE_FRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.6.1"

_TRANSFER_SYNTAXES = {
    "explicit-little": ExplicitVRLittleEndian,
    "implicit-little": ImplicitVRLittleEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg-baseline": JPEGBaseline8Bit,
    "jpeg-ls": JPEGLSLossless,
    "jpeg2000-lossless": JPEG2000Lossless,
    "jpeg2000": JPEG2000,
}
RAW_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_LOSSY_SYNTAXES = {JPEGBaseline8Bit: "ISO_10918_1", JPEG2000: "ISO_15444_1"}
_WRITE_PHOTOMETRICS = ("MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422")
# Frames per chunk when streaming pixel data to or from disk: bounds the temporaries.
CHUNK_FRAMES = 64

ACQUISITION_TO_DICOM = {
    "motor": "MOTOR_PULLBACK",
    "manual": "MANUAL_PULLBACK",
    "gated": "GATED_PULLBACK",
    "selective": "SELECTIVE",
}

_FRAME_TIME = Tag(0x0018, 0x1063)
FRAME_TIME_VECTOR = Tag(0x0018, 0x1065)


def _ds_number(value: float) -> str:
    """A Decimal String (at most 16 characters) that keeps ~10 significant digits."""
    for digits in (10, 9, 8, 7, 6):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.6g}"


def _frames_for_photometric(frames: np.ndarray, photometric: str) -> np.ndarray:
    """Grey frames (n, H, W) as stored uncompressed for ``photometric``.

    Returns (n, H, W) for MONOCHROME2, (n, H, W, 3) for RGB and YBR_FULL (neutral colour:
    Cb = Cr = mid-grey) and (n, H, W/2, 4) packed ``Y0 Y1 Cb Cr`` for YBR_FULL_422.
    """
    if photometric == "MONOCHROME2":
        return frames
    if photometric == "RGB":
        return np.repeat(frames[..., None], 3, axis=-1)
    mid = (np.iinfo(frames.dtype).max + 1) // 2
    if photometric == "YBR_FULL":
        out = np.full(frames.shape + (3,), mid, dtype=frames.dtype)
        out[..., 0] = frames
        return out
    if photometric == "YBR_FULL_422":
        n, rows, cols = frames.shape
        out = np.full((n, rows, cols // 2, 4), mid, dtype=frames.dtype)
        out[..., 0], out[..., 1] = frames[:, :, 0::2], frames[:, :, 1::2]
        return out
    raise IVUSInputError(
        f"photometric: {photometric!r} is not supported for writing; use one of {', '.join(_WRITE_PHOTOMETRICS)}"
    )


def _frame_chunks(frames, step: int = CHUNK_FRAMES):
    """(n, H, W) ndarrays of at most ``step`` frames from an array-like (array, memmap, lazy)."""
    for start in range(0, int(frames.shape[0]), step):
        yield np.asarray(frames[start : start + step])


def _jpeg_baseline_fragments(frames, photometric: str, quality: int) -> list[bytes]:
    """One JPEG (ISO 10918-1 baseline) codestream per frame, encoded with Pillow."""
    from PIL import Image  # optional: only needed to write JPEG test data

    options = {"format": "JPEG", "quality": int(quality)}
    if photometric == "RGB":
        options.update(subsampling=0, keep_rgb=True)  # Adobe marker: no colour transform
    elif photometric == "YBR_FULL":
        options.update(subsampling=0)
    elif photometric == "YBR_FULL_422":
        options.update(subsampling=1)
    out = []
    for chunk in _frame_chunks(frames):
        for frame in chunk:
            image = Image.fromarray(frame, "L")
            if photometric != "MONOCHROME2":
                image = image.convert("RGB")
            buffer = io.BytesIO()
            image.save(buffer, **options)
            out.append(buffer.getvalue())
    return out


def _pullback_dataset(
    pullback: Pullback,
    shape: tuple[int, int, int],
    dtype: np.dtype,
    *,
    sop_class: str,
    photometric: str,
    transfer_syntax_uid: str,
    study_uid: str,
    series_uid: str,
    instance_number: int,
    manufacturer: str,
    heart_rate_bpm: float | None,
) -> Dataset:
    """Header (everything but the pixel data) of one file holding ``shape`` = (n, H, W) frames."""
    now = datetime.datetime.now()
    n, rows, cols = shape
    bits = 8 if dtype == np.uint8 else 16

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["DERIVED", "PRIMARY"]
    # No real patient identifiers: a synthetic, anonymous subject.
    ds.PatientName = "PHANTOM"
    ds.PatientID = "PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.Modality = "IVUS"
    ds.Manufacturer = manufacturer
    ds.ManufacturerModelName = "IVUSReconstruct"
    ds.PatientOrientation = ""

    ds.SamplesPerPixel = 1 if photometric.startswith("MONOCHROME") else 3
    ds.PhotometricInterpretation = photometric
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if transfer_syntax_uid in _LOSSY_SYNTAXES:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = _LOSSY_SYNTAXES[transfer_syntax_uid]
    else:
        ds.LossyImageCompression = "00"

    times = np.asarray(pullback.frame_times_s, dtype=float)[:n] if n > 1 else np.zeros(1)
    all_times = np.asarray(pullback.frame_times_s, dtype=float)
    steps = np.diff(all_times)
    uniform = len(steps) == 0 or np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9)
    frame_time_ms = float(steps[0] * 1000.0) if len(steps) else 0.0
    if sop_class == US_MULTIFRAME_SOP_CLASS:
        ds.NumberOfFrames = n
        if uniform and frame_time_ms > 0:
            ds.FrameIncrementPointer = _FRAME_TIME
            ds.FrameTime = _ds_number(frame_time_ms)
        else:
            ds.FrameIncrementPointer = FRAME_TIME_VECTOR
            ds.FrameTimeVector = [_ds_number(v) for v in np.concatenate([[0.0], np.diff(times) * 1000.0])]
    if uniform and frame_time_ms > 0:
        ds.CineRate = int(round(1000.0 / frame_time_ms))
        ds.RecommendedDisplayFrameRate = ds.CineRate
        if sop_class != US_MULTIFRAME_SOP_CLASS:
            ds.FrameTime = _ds_number(frame_time_ms)
    if heart_rate_bpm is not None:
        ds.HeartRate = int(round(heart_rate_bpm))

    ds.IVUSAcquisition = ACQUISITION_TO_DICOM.get(pullback.acquisition, "MOTOR_PULLBACK")
    if pullback.pullback_speed_mm_s is not None:
        ds.IVUSPullbackRate = _ds_number(float(pullback.pullback_speed_mm_s))
    if sop_class == US_MULTIFRAME_SOP_CLASS:
        ds.IVUSPullbackStartFrameNumber = 1
        ds.IVUSPullbackStopFrameNumber = n

    region = Dataset()
    region.RegionSpatialFormat = 1  # 2D tissue image
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = cols - 1
    region.RegionLocationMaxY1 = rows - 1
    region.ReferencePixelX0 = int(round(pullback.catheter_center_px[1]))
    region.ReferencePixelY0 = int(round(pullback.catheter_center_px[0]))
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = float(pullback.pixel_spacing_mm[1]) / 10.0
    region.PhysicalDeltaY = float(pullback.pixel_spacing_mm[0]) / 10.0
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    return ds


def _save_streamed(ds: Dataset, frames, photometric: str, path: Path) -> None:
    """Save ``ds`` then append its uncompressed PixelData chunk by chunk.

    Never holds more than ``CHUNK_FRAMES`` frames: a 6000-frame pullback is written in
    bounded memory. PixelData (7FE0,0010) is the last element, so appending it keeps the
    file valid.
    """
    n, rows, cols = (int(v) for v in frames.shape)
    dtype = np.dtype(frames.dtype)
    spp = 1 if photometric == "MONOCHROME2" else 3
    length = n * rows * cols * dtype.itemsize * (2 if photometric == "YBR_FULL_422" else spp)
    padded = length + (length % 2)  # even value length
    ds.save_as(path, enforce_file_format=True)
    tag = struct.pack("<HH", 0x7FE0, 0x0010)
    if ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian:
        header = tag + struct.pack("<I", padded)
    else:
        header = tag + (b"OB" if dtype.itemsize == 1 else b"OW") + b"\x00\x00" + struct.pack("<I", padded)
    with open(path, "ab") as f:
        f.write(header)
        for chunk in _frame_chunks(frames):
            stored = _frames_for_photometric(chunk.astype(dtype.newbyteorder("<"), copy=False), photometric)
            f.write(np.ascontiguousarray(stored).tobytes())
        if padded != length:
            f.write(b"\x00")


def _set_pixel_data(ds: Dataset, frames, photometric: str, transfer_syntax_uid: str, quality: int) -> None:
    """Fill PixelData in memory (compressed and deflated syntaxes; small pullbacks)."""
    n = int(frames.shape[0])
    if transfer_syntax_uid == JPEGBaseline8Bit:
        ds.PixelData = encapsulate(_jpeg_baseline_fragments(frames, photometric, quality))
        ds["PixelData"].VR = "OB"
        return
    stored = _frames_for_photometric(np.asarray(frames), photometric)
    if transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        data = np.ascontiguousarray(stored).astype(stored.dtype.newbyteorder("<"), copy=False).tobytes()
        ds.PixelData = data + b"\x00" * (len(data) % 2)
        ds["PixelData"].VR = "OB" if stored.dtype.itemsize == 1 else "OW"
        return
    options = {}
    if transfer_syntax_uid == JPEG2000:
        options["j2k_psnr"] = [float(quality)]
    if transfer_syntax_uid in (JPEG2000, JPEG2000Lossless) and photometric != "MONOCHROME2":
        options["use_mct"] = False  # keep the declared colour space
    try:
        ds.compress(
            transfer_syntax_uid,
            np.ascontiguousarray(stored if n > 1 else stored[0]),
            generate_instance_uid=False,
            **options,
        )
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        message = str(exc).replace("\n", " ")[:160]
        raise IVUSInputError(
            f"transfer_syntax: encoding {transfer_syntax_uid.name} failed ({message}); "
            "install pylibjpeg, pylibjpeg-openjpeg, pylibjpeg-rle and pyjpegls, or use 'explicit-little'"
        ) from None


def write_pullback(
    pullback: Pullback,
    path: str | os.PathLike,
    *,
    transfer_syntax: str = "explicit-little",
    photometric: str = "MONOCHROME2",
    layout: str = "multi-frame",
    manufacturer: str = "IVUSReconstruct phantom",
    heart_rate_bpm: float | None = None,
    quality: int = 90,
) -> Path:
    """Write a pullback as standard DICOM Ultrasound images.

    Parameters
    ----------
    pullback : Pullback
        Frames (N, H, W) uint8 or uint16 with their acquisition facts. ``frames`` may be
        any array-like with ``shape``, ``dtype`` and slicing (e.g. a memmap or a lazy
        generator object): uncompressed syntaxes stream it to disk 64 frames at a time.
    path : path-like
        Output file (``layout="multi-frame"``) or folder (``"single-frame"``).
    transfer_syntax : {"explicit-little", "implicit-little", "deflated", "rle", "jpeg-baseline", \
"jpeg-ls", "jpeg2000-lossless", "jpeg2000"}
        ``jpeg-baseline`` (8-bit, lossy, encoded with Pillow) and ``jpeg2000`` are lossy;
        JPEG 2000 needs frames of at least 64 x 64 px.
    photometric : {"MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"}
        Colour variants store the grey frames as neutral colour (for testing readers).
        YBR_FULL_422 is written uncompressed (packed) or as JPEG baseline 4:2:2 only.
    layout : {"multi-frame", "single-frame"}
        One Ultrasound Multi-frame Image (1.2.840.10008.5.1.4.1.1.3.1) or a folder of
        Ultrasound Images (1.2.840.10008.5.1.4.1.1.6.1) numbered by InstanceNumber.
    manufacturer : str
    heart_rate_bpm : float, optional
        Written to Heart Rate (0018,1088).
    quality : int
        JPEG baseline quality (1-100), or the JPEG 2000 target PSNR in dB.

    Returns
    -------
    Path
        The file or folder written.
    """
    if transfer_syntax not in _TRANSFER_SYNTAXES:
        raise IVUSInputError(
            f"transfer_syntax: {transfer_syntax!r} is not supported; use one of {', '.join(_TRANSFER_SYNTAXES)}"
        )
    if photometric not in _WRITE_PHOTOMETRICS:
        raise IVUSInputError(
            f"photometric: {photometric!r} is not supported for writing; use one of {', '.join(_WRITE_PHOTOMETRICS)}"
        )
    frames = pullback.frames
    if not isinstance(frames, np.ndarray) and not (hasattr(frames, "shape") and hasattr(frames, "dtype")):
        frames = np.asarray(frames)
    dtype = np.dtype(frames.dtype)
    if len(frames.shape) != 3 or dtype not in (np.uint8, np.uint16):
        raise IVUSInputError(f"frames: shape {frames.shape} dtype {dtype} is not (N, H, W) uint8/uint16")
    ts = _TRANSFER_SYNTAXES[transfer_syntax]
    if photometric == "YBR_FULL_422" and (
        ts not in (*RAW_SYNTAXES, JPEGBaseline8Bit) or frames.shape[2] % 2
    ):
        raise IVUSInputError(
            f"photometric: YBR_FULL_422 needs an even width and an uncompressed or jpeg-baseline "
            f"transfer syntax, not {transfer_syntax!r} with width {frames.shape[2]}"
        )
    if ts == JPEGBaseline8Bit and dtype != np.uint8:
        raise IVUSInputError(
            "transfer_syntax: 'jpeg-baseline' holds 8-bit frames only; use 'jpeg-ls' for 16-bit"
        )
    study_uid, series_uid = generate_uid(), generate_uid()
    path = Path(path)
    common = dict(
        photometric=photometric,
        transfer_syntax_uid=ts,
        study_uid=study_uid,
        series_uid=series_uid,
        manufacturer=manufacturer,
        heart_rate_bpm=heart_rate_bpm,
    )

    def save(part, target: Path, sop_class: str, instance_number: int) -> None:
        ds = _pullback_dataset(
            pullback,
            tuple(int(v) for v in part.shape),
            dtype,
            sop_class=sop_class,
            instance_number=instance_number,
            **common,
        )
        if ts in RAW_SYNTAXES:
            _save_streamed(ds, part, photometric, target)
        else:
            _set_pixel_data(ds, part, photometric, ts, quality)
            ds.save_as(target, enforce_file_format=True)

    if layout == "multi-frame":
        path.parent.mkdir(parents=True, exist_ok=True)
        save(frames, path, US_MULTIFRAME_SOP_CLASS, 1)
        return path
    if layout == "single-frame":
        path.mkdir(parents=True, exist_ok=True)
        n = int(frames.shape[0])
        width = max(5, len(str(n)))
        for k in range(n):
            save(
                np.asarray(frames[k : k + 1]),
                path / f"IMG{k + 1:0{width}d}.dcm",
                US_SINGLE_FRAME_SOP_CLASS,
                k + 1,
            )
        return path
    raise IVUSInputError(f"layout: {layout!r} is not supported; use 'multi-frame' or 'single-frame'")
