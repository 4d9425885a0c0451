"""DICOM IVUS pullbacks: read (multi-frame file or folder of single frames); writing is in dicom_write.

Reading keeps the frames of uncompressed little-endian files on disk (a read-only
``np.memmap`` at the pixel data offset) and decodes compressed or colour data frame by
frame. Every acquisition fact (frame count, frame times, pixel spacing, pullback speed,
acquisition kind) is returned with the tag or option it came from. Command-line options
override tags. A missing or inconsistent fact raises :class:`IVUSInputError` with one line
naming the file, the field and the option that fixes it; the header is never trusted to
allocate memory beyond what the file holds.

Tags (see METRICS.md): IVUS Acquisition (0018,3100), IVUS Pullback Rate (0018,3101),
IVUS Gated Rate (0018,3102), Pullback Start/Stop Frame Number (0018,3103/3104), Boston
Scientific private (000B,1001) as a rate fallback; Number of Frames (0028,0008), Frame
Increment Pointer (0028,0009), Frame Time (0018,1063), Frame Time Vector (0018,1065), Cine
Rate (0018,0040); Sequence of Ultrasound Regions (0018,6011) with Physical Delta X/Y
(0018,602C/602E) in Physical Units X/Y (0018,6024/6026; 3 = cm), else Pixel Spacing
(0028,0030).
"""

from __future__ import annotations

import io
import itertools
import os
import struct
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
import pydicom.errors
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames, parse_fragments
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    RLELossless,
)

from .. import limits
from ..errors import FIX_FRAME_RATE, FIX_PIXEL_SPACING, FIX_PULLBACK_SPEED, IVUSInputError, input_error
from ..types import Pullback, Valued
from ._common import luminance, natural_key, positive_option
from .dicom_write import (
    ACQUISITION_TO_DICOM,
    CHUNK_FRAMES,
    FRAME_TIME_VECTOR,
    RAW_SYNTAXES,
    US_MULTIFRAME_SOP_CLASS,
    US_SINGLE_FRAME_SOP_CLASS,
    write_pullback,
)

__all__ = [
    "US_MULTIFRAME_SOP_CLASS",
    "US_SINGLE_FRAME_SOP_CLASS",
    "write_pullback",
    "read_pullback",
    "read_acquisition",
    "jpeg_frame_size",
]

_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# libjpeg-turbo through Pillow is ~6x faster than pylibjpeg-libjpeg on baseline JPEG.
_PILLOW_FIRST = (JPEGBaseline8Bit, JPEGExtended12Bit)
_DICOM_TO_ACQUISITION = {v: k for k, v in ACQUISITION_TO_DICOM.items()}

_PIXEL_DATA = Tag(0x7FE0, 0x0010)
_BSCI_RATE = Tag(0x000B, 0x1001)

_FIX_REEXPORT = "re-export the pullback from the IVUS console"
_FIX_SPACING = FIX_PIXEL_SPACING
_FIX_SPEED = FIX_PULLBACK_SPEED
_FIX_RATE = FIX_FRAME_RATE

ProgressFn = Callable[[float, str], None]
# Called by the frame readers once the file is known to hold what its header declares and
# before any frame is decoded: (decoded shape (n, rows, cols), bytes a sample, whether the
# frames will be decoded into memory rather than read from disk through a memory map).
ReadyFn = Callable[[tuple[int, int, int], int, bool], None]


def _no_check(shape: tuple[int, int, int], itemsize: int, in_memory: bool) -> None:
    return None


# --------------------------------------------------------------------------- reading: headers


def _looks_like_raw_dataset(path: Path) -> bool:
    """True when a file without the 128-byte preamble starts with a group 0002/0008 tag."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if len(head) < 4:
        return False
    group = struct.unpack("<H", head[:2])[0]
    return group in (0x0002, 0x0008)


def _read_header(path: Path) -> Dataset:
    """The dataset with large values (pixel data) deferred, or an IVUSInputError."""
    try:
        return pydicom.dcmread(path, defer_size=4096)
    except InvalidDicomError:
        if _looks_like_raw_dataset(path):
            try:
                return pydicom.dcmread(path, defer_size=4096, force=True)
            except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
                raise input_error(
                    path, "file", f"cannot be parsed as DICOM ({type(exc).__name__})", _FIX_REEXPORT
                ) from None
        raise input_error(
            path,
            "file",
            "is not a DICOM file",
            "pass a multi-frame DICOM file or a folder of single-frame DICOM files",
        ) from None
    except (OSError, EOFError, struct.error, ValueError, KeyError, TypeError) as exc:
        raise input_error(
            path, "file", f"cannot be parsed as DICOM ({type(exc).__name__})", _FIX_REEXPORT
        ) from None


def _number(value: object) -> float | None:
    """A float from a DS/IS/FD value, a one-element list, or raw private bytes."""
    if value is None or value == "":
        return None
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        if len(raw) == 8:
            return float(struct.unpack("<d", raw)[0])
        if len(raw) == 4:
            return float(struct.unpack("<f", raw)[0])
        try:
            return float(raw.decode("ascii").strip("\x00 \\"))
        except (UnicodeDecodeError, ValueError):
            return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return _number(value[0]) if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int_tag(ds: Dataset, keyword: str, path: Path, tag_text: str, *, required: bool = True) -> int | None:
    value = ds.get(keyword)
    if value is None or value == "":
        if required:
            raise input_error(path, f"{keyword} ({tag_text})", "is missing", _FIX_REEXPORT)
        return None
    try:
        number = float(str(value).strip()) if isinstance(value, (str, bytes)) else float(value)
        if not number.is_integer():
            raise ValueError(value)
        return int(number)
    except (TypeError, ValueError, OverflowError):
        text = str(value)[:40]
        raise input_error(
            path, f"{keyword} ({tag_text})", f"is {text!r} (not an integer)", _FIX_REEXPORT
        ) from None


# --------------------------------------------------------------------------- reading: pixels


def _chunked(
    src: np.ndarray,
    convert: Callable[[np.ndarray], np.ndarray],
    out_shape: tuple[int, ...],
    dtype: np.dtype,
    progress: ProgressFn | None,
    label: str,
) -> np.ndarray:
    """Convert ``src`` frame-chunk by frame-chunk into a new array (bounded temporaries)."""
    out = np.empty(out_shape, dtype=dtype)
    n = out_shape[0]
    step = max(1, min(n, 64))
    for start in range(0, n, step):
        out[start : start + step] = convert(np.asarray(src[start : start + step]))
        if progress is not None:
            progress(min(1.0, (start + step) / n), f"{label}: frame {min(n, start + step)}/{n}")
    return out


_GREY = ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
# Deflate expands at most ~1032:1; anything declaring more is not a real file.
_MAX_DEFLATE_RATIO = 1100


def _pixel_description(ds: Dataset, path: Path) -> tuple[int, int, str]:
    """(SamplesPerPixel, BitsAllocated, PhotometricInterpretation), checked for consistency."""
    spp = _int_tag(ds, "SamplesPerPixel", path, "0028,0002", required=False) or 1
    bits = _int_tag(ds, "BitsAllocated", path, "0028,0100")
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
    if bits not in (8, 16):
        raise input_error(
            path,
            "BitsAllocated (0028,0100)",
            f"is {bits} (only 8 and 16 are supported)",
            "convert the pullback to 8- or 16-bit grey",
        )
    stored = _int_tag(ds, "BitsStored", path, "0028,0101", required=False)
    if stored is not None and not 1 <= stored <= bits:
        raise input_error(
            path, "BitsStored (0028,0101)", f"is {stored} (must be 1 to BitsAllocated {bits})", _FIX_REEXPORT
        )
    if int(_number(ds.get("PixelRepresentation", 0)) or 0) != 0:
        raise input_error(
            path,
            "PixelRepresentation (0028,0103)",
            "is 1 (signed pixels)",
            "convert the pullback to unsigned 8- or 16-bit grey",
        )
    if photometric not in _GREY + _COLOUR:
        raise input_error(
            path,
            "PhotometricInterpretation (0028,0004)",
            f"is {photometric!r} (not a known colour space)",
            _FIX_REEXPORT,
        )
    expected = 1 if photometric in _GREY else 3
    if spp != expected:
        raise input_error(
            path,
            "SamplesPerPixel (0028,0002)",
            f"is {spp} but PhotometricInterpretation (0028,0004) {photometric} needs {expected}",
            _FIX_REEXPORT,
        )
    return spp, bits, photometric


def _raw_frames(
    path: Path, ds: Dataset, n: int, rows: int, cols: int, progress: ProgressFn | None, ready: ReadyFn = _no_check
) -> np.ndarray | None:
    """Frames of an uncompressed little-endian file, memory-mapped when grey.

    Returns None when the pixel data is not stored raw (compressed, big-endian, deflated).
    """
    ts = ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)
    elem = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if ts not in RAW_SYNTAXES or elem is None:
        return None
    length = getattr(elem, "length", None)
    offset = getattr(elem, "value_tell", None)
    if length is None or offset is None or length == 0xFFFFFFFF:
        return None
    spp, bits, photometric = _pixel_description(ds, path)
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    if photometric == "YBR_FULL_422":
        frame_bytes = rows * (cols // 2) * 4 * dtype.itemsize
    else:
        frame_bytes = rows * cols * spp * dtype.itemsize
    file_size = path.stat().st_size
    in_file = max(0, file_size - offset)
    if length > in_file:
        raise input_error(
            path,
            "PixelData (7FE0,0010)",
            f"is truncated ({in_file} of {length} bytes in the file)",
            _FIX_REEXPORT,
        )
    if frame_bytes > length:
        raise input_error(
            path,
            "Rows/Columns (0028,0010/0011)",
            f"are {rows}x{cols} ({frame_bytes} bytes a frame) but PixelData (7FE0,0010) holds {length} bytes",
            _FIX_REEXPORT,
        )
    if n * frame_bytes > length:
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but PixelData (7FE0,0010) holds only {length // frame_bytes} frames",
            _FIX_REEXPORT,
        )
    if photometric == "PALETTE COLOR" or (spp == 3 and photometric in ("YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT")):
        return None  # decoded by pydicom (_decoded_frames checks before decoding)
    # grey frames stay on disk (a memory map); the others are converted into memory
    ready((n, rows, cols if photometric != "YBR_FULL_422" else (cols // 2) * 2), dtype.itemsize,
          photometric != "MONOCHROME2")  # fmt: skip

    if spp == 1:
        if photometric == "PALETTE COLOR":
            return None  # through the colour lookup tables
        mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n, rows, cols))
        if photometric == "MONOCHROME1":
            top = dtype.type((1 << int(ds.get("BitsStored", bits))) - 1)
            return _chunked(mm, lambda a: top - a, (n, rows, cols), dtype, progress, "inverting MONOCHROME1")
        if progress is not None:
            progress(1.0, f"mapped {n} frames")
        return mm
    planar = int(_number(ds.get("PlanarConfiguration", 0)) or 0)
    if photometric == "YBR_FULL_422":
        mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n, rows, cols // 2, 4))
        return _chunked(
            mm,
            lambda a: a[..., :2].reshape(len(a), rows, (cols // 2) * 2),
            (n, rows, (cols // 2) * 2),
            dtype,
            progress,
            "reading luminance",
        )
    if photometric in ("YBR_FULL", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"):
        if photometric != "YBR_FULL":
            return None
        take = (lambda a: a[:, 0]) if planar else (lambda a: a[..., 0])
    else:
        take = (lambda a: luminance(np.moveaxis(a, 1, -1))) if planar else luminance
    shape = (n, 3, rows, cols) if planar else (n, rows, cols, 3)
    mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return _chunked(mm, take, (n, rows, cols), dtype, progress, "converting colour to luminance")


def _to_grey(frame: np.ndarray, photometric: str, full: Dataset) -> np.ndarray:
    """One decoded frame (rows, cols[, 3]) in ``photometric`` as grey (rows, cols)."""
    if photometric == "PALETTE COLOR":
        frame = pydicom.pixels.apply_color_lut(frame, full)
        if frame.dtype == np.uint16 and int(frame.max(initial=0)) > 255:
            frame = (frame >> 8).astype(np.uint8)
        else:
            frame = frame.astype(np.uint8)
        photometric = "RGB"
    if frame.ndim == 3:
        # Decoded with as_rgb=False: YBR keeps its luminance in channel 0.
        return np.ascontiguousarray(frame[..., 0]) if photometric.startswith("YBR") else luminance(frame)
    if photometric == "MONOCHROME1" and frame.dtype.kind == "u":
        top = (1 << int(full.get("BitsStored", frame.dtype.itemsize * 8))) - 1
        return (top - frame).astype(frame.dtype)
    return frame


def _undecodable(path: Path, exc: Exception, where: str) -> IVUSInputError:
    """The one-line error for pixel data a decoder rejects (its first line kept, shortened)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return input_error(
        path,
        "PixelData (7FE0,0010)",
        f"cannot be decoded{where} ({message[:120]})",
        "re-export the pullback uncompressed",
    )


def _decoder(path: Path, ts: UID):
    """pydicom's decoder for ``ts`` with at least one installed plugin, or an IVUSInputError."""
    fix = "re-export the pullback uncompressed (or as JPEG, JPEG-LS, JPEG 2000 or RLE)"
    try:
        decoder = pydicom.pixels.get_decoder(ts)
    except NotImplementedError:
        raise input_error(
            path,
            "TransferSyntaxUID (0002,0010)",
            f"is {ts} ({ts.name}), which no installed decoder reads",
            fix,
        ) from None
    if not decoder.is_available:
        missing = (
            "; ".join(f"{k}: {v}" for k, v in decoder.missing_dependencies.items())
            if hasattr(decoder.missing_dependencies, "items")
            else ", ".join(decoder.missing_dependencies)
        )
        raise input_error(
            path,
            "TransferSyntaxUID (0002,0010)",
            f"is {ts} ({ts.name}) but its decoder plugins are not installed ({missing})",
            "pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle, or " + fix,
        )
    return decoder


# Start-of-frame markers: ITU-T T.81 B.1.1.3 (SOF0-SOF15 less DHT C4, JPG C8, DAC CC) and
# ITU-T T.87 (JPEG-LS SOF55, F7). Standalone markers (TEM 01, RST0-7 D0-D7) carry no length.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})


def jpeg_frame_size(codestream: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the start-of-frame header of a JPEG or JPEG-LS codestream.

    Parameters
    ----------
    codestream : bytes
        One frame, starting with the SOI marker ``FF D8``.

    Returns
    -------
    tuple of int or None
        ``(rows, columns)``; None when the header is damaged, ends before a start-of-frame, or
        leaves the number of lines to a later DNL/LSE segment (rows 0), so the decoder decides.
    """
    if codestream[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(codestream):
        if codestream[at] != 0xFF:
            return None
        marker = codestream[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in _STANDALONE_MARKERS:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI, or scan data before any frame header
            return None
        (length,) = struct.unpack(">H", codestream[at + 2 : at + 4])
        if marker in _SOF_MARKERS:
            if length < 8 or at + 9 > len(codestream):
                return None
            rows, cols = struct.unpack(">HH", codestream[at + 5 : at + 9])
            return (rows, cols) if rows and cols else None
        if length < 2:
            return None
        at += 2 + length
    return None


def _check_codestream(path: Path, ts: UID, frame: bytes, rows: int, cols: int, spp: int, bits: int) -> None:
    """Compare the first frame's own header with Rows/Columns before allocating the output.

    Declared sizes are never trusted: a header claiming a 60000 x 60000 frame must not make
    the reader allocate gigabytes for a small file.
    """
    size = None
    if frame[:2] == b"\xff\xd8":  # JPEG family (baseline, extended, lossless, JPEG-LS)
        size = jpeg_frame_size(frame)
    elif b"\xff\x51" in frame[:256]:  # JPEG 2000 SIZ marker
        at = frame.index(b"\xff\x51")
        if len(frame) >= at + 22:
            xsiz, ysiz, xo, yo = struct.unpack(">IIII", frame[at + 6 : at + 22])
            size = (ysiz - yo, xsiz - xo)
    if size is not None and size != (rows, cols):
        raise input_error(
            path,
            "Rows/Columns (0028,0010/0011)",
            f"are {rows}x{cols} but the compressed frames are {size[0]}x{size[1]}",
            _FIX_REEXPORT,
        )
    if ts == RLELossless:
        # An RLE byte pair expands to at most 128 bytes.
        need = rows * cols * spp * (bits // 8)
        if need > 64 * len(frame) + 128:
            raise input_error(
                path,
                "Rows/Columns (0028,0010/0011)",
                f"are {rows}x{cols} but an RLE frame of {len(frame)} bytes cannot hold them",
                _FIX_REEXPORT,
            )


def _encapsulated_frames(
    path: Path,
    ds: Dataset,
    n: int,
    rows: int,
    cols: int,
    progress: ProgressFn | None,
    workers: int,
    ready: ReadyFn = _no_check,
) -> np.ndarray:
    """Decode compressed frames one by one into a preallocated (n, rows, cols) array.

    Only the compressed bytes, the output and the frames in flight are in memory. Frames
    are decoded by a thread pool (Pillow's JPEG decoder releases the GIL).
    """
    spp, bits, photometric = _pixel_description(ds, path)
    ts = UID(ds.file_meta.TransferSyntaxUID)
    if n * 8 > path.stat().st_size:  # each frame takes at least an 8-byte item header
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but the file is too small to hold them",
            _FIX_REEXPORT,
        )
    decoder = _decoder(path, ts)
    plugin = "pillow" if "pillow" in decoder.available_plugins and ts in _PILLOW_FIRST else ""
    try:
        full = pydicom.dcmread(path, force=True)
        data = full.PixelData
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise input_error(
            path, "PixelData (7FE0,0010)", f"cannot be read ({type(exc).__name__})", _FIX_REEXPORT
        ) from None
    try:
        if bytes(data[:4]) != b"\xfe\xff\x00\xe0":
            raise ValueError("no Basic Offset Table item")
        stream = io.BytesIO(data)
        stream.seek(8 + struct.unpack("<I", data[4:8])[0])
        n_fragments = parse_fragments(stream)[0]
    except Exception:  # noqa: BLE001
        raise input_error(
            path, "PixelData (7FE0,0010)", "is not valid encapsulated (compressed) data", _FIX_REEXPORT
        ) from None
    if n_fragments < n:
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but PixelData (7FE0,0010) holds only {n_fragments} compressed frames",
            _FIX_REEXPORT,
        )
    options = dict(
        rows=rows,
        columns=cols,
        samples_per_pixel=spp,
        bits_allocated=bits,
        bits_stored=int(_number(full.get("BitsStored", bits)) or bits),
        pixel_representation=0,
        photometric_interpretation=photometric,
        planar_configuration=int(_number(full.get("PlanarConfiguration", 0)) or 0),
        number_of_frames=1,
        transfer_syntax_uid=ts,
        as_rgb=False,
    )
    if plugin:
        options["decoding_plugin"] = plugin

    def decode(frame: bytes) -> np.ndarray:
        array, meta = decoder.as_array(encapsulate([frame]), **options)
        grey = _to_grey(array, str(meta.get("photometric_interpretation", photometric)), full)
        if grey.shape != (rows, cols):
            raise input_error(
                path,
                "Rows/Columns (0028,0010/0011)",
                f"are {rows}x{cols} but a frame decodes to {grey.shape}",
                _FIX_REEXPORT,
            )
        return grey

    out = None
    done = 0
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 and n > 1 else None
    try:
        frames = generate_frames(data, number_of_frames=n)
        while done < n:
            batch = list(itertools.islice(frames, CHUNK_FRAMES if out is not None else 1))
            if not batch:
                break
            if out is None:
                _check_codestream(path, ts, batch[0], rows, cols, spp, bits)
                ready((n, rows, cols), 1 if bits == 8 else 2, True)
            decoded = (
                list(pool.map(decode, batch))
                if pool is not None and len(batch) > 1
                else [decode(f) for f in batch]
            )
            if out is None:
                out = np.empty(
                    (n, rows, cols), dtype=np.uint16 if decoded[0].dtype.itemsize > 1 else np.uint8
                )
            for frame in decoded:
                if done < n:
                    out[done] = frame
                    done += 1
            if progress is not None:
                progress(done / n, f"decoding frame {done}/{n}")
    except IVUSInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder failure is a file problem for the user
        raise _undecodable(path, exc, f" at frame {done}") from None
    finally:
        if pool is not None:
            pool.shutdown()
    if out is None or done < n:
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but PixelData (7FE0,0010) holds only {done} frames",
            _FIX_REEXPORT,
        )
    return out


def _decoded_frames(
    path: Path, ds: Dataset, n: int, rows: int, cols: int, progress: ProgressFn | None, ready: ReadyFn = _no_check
) -> np.ndarray:
    """Frames through pydicom's native handlers (deflated, big-endian, palette, undefined length)."""
    spp, bits, photometric = _pixel_description(ds, path)
    ts = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    frame_bytes = rows * cols * spp * bits // 8
    limit = path.stat().st_size * (_MAX_DEFLATE_RATIO if ts == DeflatedExplicitVRLittleEndian else 1)
    if frame_bytes > limit:
        raise input_error(
            path,
            "Rows/Columns (0028,0010/0011)",
            f"are {rows}x{cols} ({frame_bytes} bytes a frame), more than the file can hold",
            _FIX_REEXPORT,
        )
    if n * frame_bytes > limit:
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but the file is too small to hold them",
            _FIX_REEXPORT,
        )
    ready((n, rows, cols), bits // 8, True)
    try:
        full = pydicom.dcmread(path, force=True)
        out = None
        k = -1
        for k, frame in enumerate(pydicom.pixels.iter_pixels(full, as_rgb=False)):
            if k >= n:
                break
            frame = _to_grey(frame, photometric, full)
            if frame.shape != (rows, cols):
                raise input_error(
                    path,
                    "Rows/Columns (0028,0010/0011)",
                    f"say {rows}x{cols} but frame {k} decodes to {frame.shape}",
                    _FIX_REEXPORT,
                )
            if frame.dtype not in (np.uint8, np.uint16):
                frame = np.clip(frame, 0, 65535).astype(np.uint16)
            if out is None:
                out = np.empty((n, rows, cols), dtype=frame.dtype)
            out[k] = frame
            if progress is not None and (k % 32 == 0 or k == n - 1):
                progress((k + 1) / n, f"decoding frame {k + 1}/{n}")
    except IVUSInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder failure is a file problem for the user
        raise _undecodable(path, exc, "") from None
    decoded = 0 if out is None else min(k + 1, n)
    if out is None or decoded < n:
        raise input_error(
            path,
            "NumberOfFrames (0028,0008)",
            f"is {n} but PixelData (7FE0,0010) holds only {decoded} frames",
            _FIX_REEXPORT,
        )
    return out


def _file_frames(
    path: Path, ds: Dataset, progress: ProgressFn | None, *, workers: int = 1, ready: ReadyFn = _no_check
) -> np.ndarray:
    """All frames of one DICOM file, (n, rows, cols) uint8 or uint16.

    ``ready`` is called once the file is known to hold what its header declares, before any
    frame is decoded (the acquisition facts and the memory guard run there).
    """
    if ds.get_item(_PIXEL_DATA, keep_deferred=True) is None:
        raise input_error(
            path, "PixelData (7FE0,0010)", "is missing (not an image)", "pass an IVUS image file"
        )
    rows = _int_tag(ds, "Rows", path, "0028,0010")
    cols = _int_tag(ds, "Columns", path, "0028,0011")
    n = _int_tag(ds, "NumberOfFrames", path, "0028,0008", required=False)
    n = 1 if n is None else n
    if rows <= 0 or cols <= 0 or n <= 0:
        raise input_error(
            path,
            "Rows/Columns/NumberOfFrames (0028,0010/0011/0008)",
            f"are {rows}/{cols}/{n} (must be positive)",
            _FIX_REEXPORT,
        )
    _pixel_description(ds, path)
    ts = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    if ts.is_encapsulated:
        return _encapsulated_frames(path, ds, n, rows, cols, progress, workers, ready)
    if ts not in RAW_SYNTAXES and ts not in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
        _decoder(path, ts)  # names the unknown syntax
    frames = _raw_frames(path, ds, n, rows, cols, progress, ready)
    if frames is None:
        frames = _decoded_frames(path, ds, n, rows, cols, progress, ready)
    return frames


def _folder_headers(folder: Path) -> list[tuple[Path, Dataset]]:
    """(path, header) of the image files of a folder, sorted by InstanceNumber then name."""
    entries = sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")),
        key=lambda p: natural_key(p.name),
    )
    headers = []
    for p in entries:
        try:
            ds = pydicom.dcmread(p, defer_size=256, stop_before_pixels=False)
        except Exception:  # noqa: BLE001 - non-DICOM files in the folder are skipped
            continue
        sop = str(ds.get("SOPClassUID", ds.file_meta.get("MediaStorageSOPClassUID", "")))
        if sop == _DICOMDIR_SOP_CLASS or ds.get_item(_PIXEL_DATA, keep_deferred=True) is None:
            continue
        headers.append((p, ds))
    if not headers:
        raise input_error(
            folder,
            "folder",
            "contains no DICOM image files",
            "pass a folder of single-frame DICOM files or a multi-frame DICOM file",
        )

    def order(item):
        number = _number(item[1].get("InstanceNumber"))
        return (
            (0, number, natural_key(item[0].name))
            if number is not None
            else (1, 0.0, natural_key(item[0].name))
        )

    headers.sort(key=order)
    _check_instance_numbers(headers)
    return headers


def _check_instance_numbers(headers: list[tuple[Path, Dataset]]) -> None:
    """Refuse two files of a folder that claim the same place in the pullback.

    A folder whose files all carry one InstanceNumber (some exports stamp 1 on every file) is
    ordered by file name instead; only a repeat among otherwise distinct numbers is ambiguous.
    """
    numbered = [(p, _number(ds.get("InstanceNumber")), str(ds.get("SOPInstanceUID", ""))) for p, ds in headers]
    numbers = {n for _, n, _ in numbered if n is not None}
    if len(numbers) <= 1:
        return
    first: dict[float, tuple[Path, str]] = {}
    for p, n, uid in numbered:
        if n is None:
            continue
        # the same frame's file twice is named as such by the folder's layout check
        if n in first and not (uid and uid == first[n][1]):
            raise input_error(
                p,
                "InstanceNumber (0020,0013)",
                f"is {n:g}, the same as in {first[n][0].name}, so the frame order is ambiguous",
                "keep only the frames of one pullback in the folder (one file per InstanceNumber)",
            )
        first.setdefault(n, (p, uid))


def _folder_order_source(headers: list[tuple[Path, Dataset]]) -> str:
    """How the folder's files were put in order, for the provenance line."""
    numbers = {_number(ds.get("InstanceNumber")) for _, ds in headers}
    if len(headers) > 1 and len(numbers - {None}) <= 1:
        return "sorted by file name (no distinct InstanceNumber (0020,0013))"
    return "sorted by InstanceNumber (0020,0013)"


def _folder_layout(headers: list[tuple[Path, Dataset]]) -> tuple[int, int, int, int]:
    """(frames, rows, cols, bytes a sample) the folder's headers declare, every file checked
    for the same frame size and, when stored uncompressed, for holding its declared pixels."""
    first_path, first = headers[0]
    rows = _int_tag(first, "Rows", first_path, "0028,0010")
    cols = _int_tag(first, "Columns", first_path, "0028,0011")
    n = 0
    itemsize = 1
    seen: dict[str, Path] = {}
    for p, ds in headers:
        uid = str(ds.get("SOPInstanceUID", "") or "")
        if uid and uid in seen:
            raise input_error(
                p,
                "SOPInstanceUID (0008,0018)",
                f"is that of {seen[uid].name} too (the same frame twice)",
                "keep each frame's file once in the folder",
            )
        seen[uid] = p
        if int(ds.get("Rows", -1)) != rows or int(ds.get("Columns", -1)) != cols:
            raise input_error(
                p,
                "Rows/Columns (0028,0010/0011)",
                f"are {ds.get('Rows')}x{ds.get('Columns')}, unlike {rows}x{cols} in {first_path.name}",
                "keep only the frames of one pullback in the folder",
            )
        count = _int_tag(ds, "NumberOfFrames", p, "0028,0008", required=False)
        n += 1 if count is None or count < 1 else count
        itemsize = max(itemsize, 2 if _number(ds.get("BitsAllocated")) == 16 else 1)
        _check_raw_length(p, ds)
    return n, rows, cols, itemsize


def _check_raw_length(path: Path, ds: Dataset) -> None:
    """Refuse an uncompressed file whose pixel data is cut short (from its header and size)."""
    elem = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    ts = ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)
    length = getattr(elem, "length", None)
    offset = getattr(elem, "value_tell", None)
    if ts not in RAW_SYNTAXES or length is None or offset is None or length == 0xFFFFFFFF:
        return
    in_file = max(0, path.stat().st_size - offset)
    if length > in_file:
        raise input_error(
            path, "PixelData (7FE0,0010)", f"is truncated ({in_file} of {length} bytes in the file)", _FIX_REEXPORT
        )


def _folder_frames(
    headers: list[tuple[Path, Dataset]], n: int, rows: int, cols: int, progress: ProgressFn | None
) -> np.ndarray:
    """Frames of a folder's single-frame DICOM files (headers from :func:`_folder_headers`)."""
    # each file is copied into one array as it is read: keeping every file's memory map until a
    # final concatenate would hold one open file per frame and a second copy of the pixels
    frames: np.ndarray | None = None
    filled = 0
    for i, (p, ds) in enumerate(headers):
        part = _file_frames(p, ds, None)
        if frames is None:
            frames = np.empty((max(n, len(part)), rows, cols), dtype=np.uint8)
        if filled + len(part) > len(frames):
            frames = np.concatenate(
                [frames, np.empty((filled + len(part) - len(frames), rows, cols), frames.dtype)]
            )
        if part.dtype.itemsize > frames.dtype.itemsize:
            frames = frames.astype(np.uint16)
        frames[filled : filled + len(part)] = part
        filled += len(part)
        del part
        if progress is not None and (i % 32 == 0 or i == len(headers) - 1):
            progress((i + 1) / len(headers), f"reading file {i + 1}/{len(headers)}")
    return frames[:filled]


# --------------------------------------------------------------------------- reading: facts


def _frame_times(ds: Dataset, path: Path, n: int, frame_rate_hz: float | None, *, required: bool) -> Valued:
    if frame_rate_hz is not None:
        return Valued(np.arange(n) / float(frame_rate_hz), "--frame-rate")
    pointer = ds.get("FrameIncrementPointer")
    pointers = [
        Tag(t)
        for t in (pointer if isinstance(pointer, (list, pydicom.multival.MultiValue)) else [pointer])
        if t is not None
    ]
    vector = ds.get("FrameTimeVector")
    if vector is not None and (FRAME_TIME_VECTOR in pointers or ds.get("FrameTime") is None):
        values = np.atleast_1d(np.asarray([_number(v) for v in np.atleast_1d(vector)], dtype=float))
        if len(values) != n or not np.all(np.isfinite(values)) or np.any(values[1:] <= 0):
            raise input_error(
                path,
                "FrameTimeVector (0018,1065)",
                f"has {len(values)} values, not {n} positive increments",
                _FIX_RATE,
            )
        times_ms = np.cumsum(values) - values[0]
        return Valued(times_ms / 1000.0, "FrameTimeVector (0018,1065)")
    frame_time = _number(ds.get("FrameTime"))
    if frame_time is not None:
        if not frame_time > 0:
            raise input_error(
                path, "FrameTime (0018,1063)", f"is {frame_time} ms (must be positive)", _FIX_RATE
            )
        return Valued(np.arange(n) * frame_time / 1000.0, "FrameTime (0018,1063)")
    cine = _number(ds.get("CineRate"))
    if cine is not None:
        if not cine > 0:
            raise input_error(path, "CineRate (0018,0040)", f"is {cine} (must be positive)", _FIX_RATE)
        return Valued(np.arange(n) / cine, "CineRate (0018,0040)")
    if required:
        raise input_error(
            path,
            "FrameTime (0018,1063)/FrameTimeVector (0018,1065)/CineRate (0018,0040)",
            "is missing",
            _FIX_RATE,
        )
    return Valued(np.arange(n, dtype=float), "missing: frame index used as time")


_UNIT_NAMES = {
    0: "none",
    1: "percent",
    2: "dB",
    3: "cm",
    4: "seconds",
    5: "hertz",
    6: "dB/seconds",
    7: "cm/sec",
    8: "cm2",
    9: "cm2/sec",
    10: "cm3",
    11: "cm3/sec",
    12: "degrees",
}


def _pick_region(regions: Sequence, rows: int, cols: int) -> Dataset:
    """The region that holds the image centre, preferring 2D tissue regions."""
    cy, cx = (rows - 1) / 2.0, (cols - 1) / 2.0

    def score(region: Dataset) -> tuple[int, int]:
        x0, x1 = region.get("RegionLocationMinX0", 0), region.get("RegionLocationMaxX1", cols - 1)
        y0, y1 = region.get("RegionLocationMinY0", 0), region.get("RegionLocationMaxY1", rows - 1)
        holds = int(x0 <= cx <= x1 and y0 <= cy <= y1)
        return holds, int(region.get("RegionSpatialFormat", 1) == 1)

    return max(regions, key=score)


def _pixel_spacing(
    ds: Dataset, path: Path, rows: int, cols: int, option: float | tuple[float, float] | None
) -> Valued:
    if option is not None:
        pair = (float(option), float(option)) if np.isscalar(option) else tuple(float(v) for v in option)
        return Valued(pair, "--pixel-spacing")
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        region = _pick_region(regions, rows, cols)
        values = []
        for axis, unit_tag, delta_tag in (("X", "0018,6024", "0018,602C"), ("Y", "0018,6026", "0018,602E")):
            unit = region.get(f"PhysicalUnits{axis}Direction")
            delta = _number(region.get(f"PhysicalDelta{axis}"))
            if unit is None or delta is None:
                raise input_error(
                    path,
                    f"PhysicalDelta{axis} ({delta_tag}) in SequenceOfUltrasoundRegions (0018,6011)",
                    "is missing",
                    _FIX_SPACING,
                )
            if int(unit) != 3:
                name = _UNIT_NAMES.get(int(unit), "unknown")
                raise input_error(
                    path,
                    f"PhysicalUnits{axis}Direction ({unit_tag})",
                    f"is {int(unit)} ({name}, not cm)",
                    _FIX_SPACING,
                )
            if not (np.isfinite(delta) and delta > 0):
                raise input_error(
                    path,
                    f"PhysicalDelta{axis} ({delta_tag})",
                    f"is {delta} cm (must be positive)",
                    _FIX_SPACING,
                )
            values.append(delta * 10.0)
        return Valued(
            (values[1], values[0]), "PhysicalDeltaX/Y (0018,602C/602E) of SequenceOfUltrasoundRegions"
        )
    spacing = ds.get("PixelSpacing")
    if spacing is not None and not isinstance(spacing, (list, tuple, pydicom.multival.MultiValue)):
        raise input_error(
            path,
            "PixelSpacing (0028,0030)",
            f"is {spacing!r}, one value (row and column spacing are needed)",
            _FIX_SPACING,
        )
    if spacing is not None and len(spacing) == 2:
        pair = (_number(spacing[0]), _number(spacing[1]))
        if any(v is None or not (np.isfinite(v) and v > 0) for v in pair):
            raise input_error(
                path, "PixelSpacing (0028,0030)", f"is {list(spacing)} mm (must be positive)", _FIX_SPACING
            )
        return Valued((float(pair[0]), float(pair[1])), "PixelSpacing (0028,0030)")
    raise input_error(
        path, "SequenceOfUltrasoundRegions (0018,6011)/PixelSpacing (0028,0030)", "is missing", _FIX_SPACING
    )


def _acquisition(
    ds: Dataset, path: Path, option_speed: float | None, *, required: bool
) -> tuple[Valued, Valued, dict[str, Valued]]:
    """(acquisition, pullback speed, extra provenance) from tags and options."""
    extra: dict[str, Valued] = {}
    tag_value = str(ds.get("IVUSAcquisition", "") or "").strip().upper()
    kind = _DICOM_TO_ACQUISITION.get(tag_value)
    acq_src = "IVUSAcquisition (0018,3100)"
    for keyword, tag_text, name in (
        ("IVUSGatedRate", "0018,3102", "gated_rate_mm_per_beat"),
        ("IVUSPullbackStartFrameNumber", "0018,3103", "pullback_start_frame"),
        ("IVUSPullbackStopFrameNumber", "0018,3104", "pullback_stop_frame"),
        ("HeartRate", "0018,1088", "heart_rate_bpm"),
    ):
        value = _number(ds.get(keyword))
        if value is not None:
            extra[name] = Valued(value, f"{keyword} ({tag_text})")

    if option_speed is not None:
        speed = Valued(float(option_speed), "--pullback-speed")
        if kind != "motor":
            kind, acq_src = "motor", "--pullback-speed"
        return Valued(kind, acq_src), speed, extra

    rate = _number(ds.get("IVUSPullbackRate"))
    rate_src = "IVUSPullbackRate (0018,3101)"
    if rate is None and _BSCI_RATE in ds:
        rate = _number(ds[_BSCI_RATE].value)
        rate_src = "Boston Scientific private (000B,1001)"
    if rate is not None and not (np.isfinite(rate) and rate > 0):
        raise input_error(path, rate_src, f"is {rate} mm/s (must be positive)", _FIX_SPEED)

    if kind in ("manual", "selective", "gated"):
        if kind == "gated" and "gated_rate_mm_per_beat" not in extra and required:
            raise input_error(
                path, "IVUSGatedRate (0018,3102)", "is missing for a GATED_PULLBACK acquisition", _FIX_SPEED
            )
        return Valued(kind, acq_src), Valued(None, acq_src), extra
    if kind == "motor":
        if rate is None:
            if required:
                raise input_error(
                    path,
                    "IVUSPullbackRate (0018,3101)",
                    "is missing for a MOTOR_PULLBACK acquisition",
                    _FIX_SPEED,
                )
            return Valued("motor", acq_src), Valued(None, "missing"), extra
        return Valued("motor", acq_src), Valued(rate, rate_src), extra
    # No (or an unknown) IVUS Acquisition: a pullback rate implies a motorised pullback.
    if rate is not None:
        return Valued("motor", f"derived: {rate_src} present"), Valued(rate, rate_src), extra
    if required:
        raise input_error(path, "IVUSPullbackRate (0018,3101)", "is missing", _FIX_SPEED)
    return Valued("manual", "missing: no IVUSAcquisition (0018,3100) or rate"), Valued(None, "missing"), extra


def read_pullback(
    path: str | os.PathLike,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None = None,
    pullback_speed_mm_s: float | None = None,
    frame_rate_hz: float | None = None,
    progress: ProgressFn | None = None,
    require_timing: bool = True,
    decode_workers: int | None = None,
) -> Pullback:
    """Read an IVUS pullback from DICOM.

    Parameters
    ----------
    path : path-like
        A multi-frame DICOM file or a folder of single-frame DICOM files (sorted by
        InstanceNumber, then file name).
    pixel_spacing_mm : float or (row, col), optional
        Overrides the file's spacing (``--pixel-spacing``).
    pullback_speed_mm_s : float, optional
        Overrides the file's pullback rate (``--pullback-speed``); implies a motor pullback.
    frame_rate_hz : float, optional
        Overrides the file's timing (``--frame-rate``).
    progress : callable(fraction, message), optional
    require_timing : bool
        When False (e.g. for segmentation only), a missing pullback rate gives
        ``pullback_speed_mm_s=None`` and missing timing gives frame indices as times, each
        marked ``"missing..."`` in the provenance, instead of raising.
    decode_workers : int, optional
        Threads decoding compressed frames (default: the CPU count, at most 4).

    Returns
    -------
    Pullback
        ``frames`` of shape (N, H, W), uint8 or uint16: a read-only memmap for uncompressed
        little-endian grey files. ``catheter_center_px`` is the image centre.

    Raises
    ------
    IVUSInputError
        One line naming the file, the field and the fix.
    """
    try:
        with warnings.catch_warnings():
            # pydicom warns (on stderr) about each value that breaks its VR; the reader refuses
            # what it cannot use with one line of its own and reads the rest: no second voice
            warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
            return _read_pullback(
                Path(path),
                pixel_spacing_mm=pixel_spacing_mm,
                pullback_speed_mm_s=pullback_speed_mm_s,
                frame_rate_hz=frame_rate_hz,
                progress=progress,
                require_timing=require_timing,
                decode_workers=decode_workers,
            )
    except IVUSInputError:
        raise
    except _DAMAGED_DATA as exc:
        # pydicom converts elements lazily: a damaged element raises wherever it is first read
        message = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise input_error(
            path,
            "DICOM data",
            f"cannot be parsed ({type(exc).__name__}: {message})",
            "the file is damaged: export the pullback again",
        ) from None


def read_acquisition(path: str | os.PathLike) -> dict[str, Valued]:
    """The acquisition values of a DICOM pullback file from its header alone (no frame decoded).

    The same records (values, sources, precedence: FrameTimeVector, FrameTime, CineRate; the
    vendors' rate tags) :func:`read_pullback` keeps in ``Pullback.provenance``, plus
    ``frame_rate_hz`` (median interval, None without timing). A missing value is reported as
    missing (``pixel_spacing_mm`` left out), not refused: a front end lets the user fill it in.

    Raises
    ------
    IVUSInputError
        Not a DICOM file, or a value present but implausible (a negative FrameTime, ...).
    """
    from ..gating import frame_rate_hz

    path = Path(path)
    ds = _read_header(path)
    n = _int_tag(ds, "NumberOfFrames", path, "0028,0008", required=False)
    rows, cols = (_int_tag(ds, k, path, t, required=False) for k, t in (("Rows", "0028,0010"), ("Columns", "0028,0011")))
    values = {"n_frames": Valued(n or 1, "NumberOfFrames (0028,0008)" if n else "single frame")}
    values["frame_times_s"] = times = _frame_times(ds, path, n or 1, None, required=False)
    timed = not str(times.source).startswith("missing")
    values["frame_rate_hz"] = Valued(frame_rate_hz(times.value) if timed else None, times.source)
    values["acquisition"], values["pullback_speed_mm_s"], extra = _acquisition(ds, path, None, required=False)
    try:
        values["pixel_spacing_mm"] = _pixel_spacing(ds, path, rows, cols, None) if rows and cols else None
    except limits.IVUSRangeError:
        raise
    except IVUSInputError:
        values["pixel_spacing_mm"] = None  # not in the header: the front end asks for it
    return {k: v for k, v in {**values, **extra}.items() if v is not None}


_DAMAGED_DATA = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    NotImplementedError,
    OverflowError,
    EOFError,
    struct.error,
    pydicom.errors.BytesLengthException,
)


# how each acquisition fact is named in messages, by the source it was derived from
_TIMING_NAMES = {
    "FrameTimeVector (0018,1065)": ("frame_interval_s", "FrameTimeVector (0018,1065) median increment"),
    "FrameTime (0018,1063)": ("frame_interval_s", "FrameTime (0018,1063)"),
    "CineRate (0018,0040)": ("frame_rate_hz", "CineRate (0018,0040)"),
    "--frame-rate": ("frame_rate_hz", "frame rate (given)"),
}
_REGION_SPACING_NAMES = (
    "pixel spacing from PhysicalDeltaY (0018,602E)",
    "pixel spacing from PhysicalDeltaX (0018,602C)",
)


def _header_facts(
    ds: Dataset,
    path: Path,
    shape: tuple[int, int, int],
    *,
    pixel_spacing_mm: float | tuple[float, float] | None,
    pullback_speed_mm_s: float | None,
    frame_rate_hz: float | None,
    require_timing: bool,
) -> dict[str, Valued]:
    """Every acquisition fact of a pullback of ``shape`` = (frames, rows, cols), derived once
    from the header (and the options), then checked once against the range table.

    Called before any frame is decoded, after the checks that the file holds what its header
    declares. Returns the provenance entries (``frame_times_s``, ``pixel_spacing_mm``,
    ``pullback_speed_mm_s``, ``acquisition`` and the other IVUS tags found).
    """
    n, rows, cols = shape
    times = _frame_times(ds, path, n, frame_rate_hz, required=require_timing)
    spacing = _pixel_spacing(ds, path, rows, cols, pixel_spacing_mm)
    acquisition, speed, extra = _acquisition(ds, path, pullback_speed_mm_s, required=require_timing)
    timing_field, timing_name = _TIMING_NAMES.get(times.source, ("frame_interval_s", None))
    rate = None
    if timing_field == "frame_rate_hz":
        rate = float(frame_rate_hz) if times.source == "--frame-rate" else _number(ds.get("CineRate"))
    names = {
        timing_field: timing_name,
        "pullback_speed_mm_s": "pullback speed (given)" if speed.source == "--pullback-speed" else speed.source,
        "pixel_spacing_mm": (
            _REGION_SPACING_NAMES
            if spacing.source.startswith("PhysicalDelta")
            else "pixel spacing (given)" if spacing.source == "--pixel-spacing" else spacing.source
        ),
        "frame_count": "number of frames",
    }
    limits.check_acquisition(
        path,
        frame_count=n,
        image_size_px=(rows, cols),
        pixel_spacing_mm=tuple(float(v) for v in spacing.value),
        frame_rate_hz=rate,
        frame_times_s=None if times.source.startswith("missing") else np.asarray(times.value, dtype=float),
        pullback_speed_mm_s=None if speed.value is None else float(speed.value),
        names={k: v for k, v in names.items() if v is not None},
    )
    return {
        "frame_times_s": times,
        "pixel_spacing_mm": spacing,
        "pullback_speed_mm_s": speed,
        "acquisition": acquisition,
        **extra,
    }


def _read_pullback(
    path: Path,
    *,
    pixel_spacing_mm: float | tuple[float, float] | None,
    pullback_speed_mm_s: float | None,
    frame_rate_hz: float | None,
    progress: ProgressFn | None,
    require_timing: bool,
    decode_workers: int | None,
) -> Pullback:
    positive_option(pullback_speed_mm_s, "pullback_speed_mm_s")
    positive_option(frame_rate_hz, "frame_rate_hz")
    if pixel_spacing_mm is not None:
        for v in np.atleast_1d(np.asarray(pixel_spacing_mm, dtype=float)):
            positive_option(float(v), "pixel_spacing_mm")
    path = Path(path)
    if not path.exists():
        raise input_error(path, "path", "does not exist", "pass an existing DICOM file or folder")
    options = dict(
        pixel_spacing_mm=pixel_spacing_mm,
        pullback_speed_mm_s=pullback_speed_mm_s,
        frame_rate_hz=frame_rate_hz,
        require_timing=require_timing,
    )
    if path.is_dir():
        headers = _folder_headers(path)
        n, rows, cols, itemsize = _folder_layout(headers)
        header_path, ds = headers[0]
        # the first header's facts for the whole folder, before any frame is read
        facts = _header_facts(ds, header_path, (n, rows, cols), **options)
        limits.check_decoded_size(
            path, f"{len(headers)} files of Rows x Columns (0028,0010/0011)", (n, rows, cols), itemsize
        )
        frames = _folder_frames(headers, n, rows, cols, progress)
        counted = f"{len(headers)} files" + (
            f" ({len(frames)} frames)" if len(frames) != len(headers) else ""
        )
        n_source = f"{counted} {_folder_order_source(headers)}"
    else:
        ds = _read_header(path)
        header_path = path
        facts = {}

        def ready(shape: tuple[int, int, int], itemsize: int, in_memory: bool) -> None:
            facts.update(_header_facts(ds, path, shape, **options))
            if in_memory:
                limits.check_decoded_size(
                    path, "Rows x Columns x NumberOfFrames (0028,0010/0011/0008)", shape, itemsize
                )

        workers = decode_workers if decode_workers is not None else min(4, os.cpu_count() or 1)
        frames = _file_frames(path, ds, progress, workers=max(1, int(workers)), ready=ready)
        n_source = "NumberOfFrames (0028,0008)" if ds.get("NumberOfFrames") is not None else "single frame"
    n, rows, cols = frames.shape
    times, spacing = facts.pop("frame_times_s"), facts.pop("pixel_spacing_mm")
    acquisition, speed = facts.pop("acquisition"), facts.pop("pullback_speed_mm_s")
    extra = facts

    vendor = " ".join(str(ds.get(k, "") or "") for k in ("Manufacturer", "ManufacturerModelName")).strip()
    sop = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    provenance = {
        "n_frames": Valued(n, n_source),
        "frame_times_s": times,
        "pixel_spacing_mm": spacing,
        "pullback_speed_mm_s": speed,
        "acquisition": acquisition,
        **extra,
    }
    return Pullback(
        frames=frames,
        pixel_spacing_mm=tuple(float(v) for v in spacing.value),
        frame_times_s=np.asarray(times.value, dtype=float),
        pullback_speed_mm_s=None if speed.value is None else float(speed.value),
        acquisition=str(acquisition.value),
        catheter_center_px=((rows - 1) / 2.0, (cols - 1) / 2.0),
        source={"path": str(path), "sop_class_uid": sop, "vendor": vendor, limits.CHECKED_KEY: True},
        provenance=provenance,
    )
