"""jpeg_frame_size: our own start-of-frame parsing (replaces a private pydicom helper)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from IVUSReconstructLib.io.dicom import jpeg_frame_size


def _image(rows, cols):
    rng = np.random.default_rng(3)
    return rng.integers(0, 255, size=(rows, cols), dtype=np.uint8)


@pytest.mark.parametrize(("rows", "cols"), [(37, 61), (512, 480), (1, 65500)])
def test_baseline_jpeg_from_pillow(rows, cols):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_image(rows, cols)).save(buffer, format="JPEG", quality=90)
    assert jpeg_frame_size(buffer.getvalue()) == (rows, cols)


def test_progressive_jpeg_sof2():
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_image(40, 24)).save(buffer, format="JPEG", progressive=True)
    assert b"\xff\xc2" in buffer.getvalue()
    assert jpeg_frame_size(buffer.getvalue()) == (40, 24)


def test_jpeg_ls_sof55():
    jpeg_ls = pytest.importorskip("jpeg_ls")
    stream = bytes(jpeg_ls.encode_array(_image(33, 70)))
    assert b"\xff\xf7" in stream
    assert jpeg_frame_size(stream) == (33, 70)


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def test_fill_bytes_app_segments_and_a_lying_header():
    sof = _segment(0xC0, bytes([8]) + struct.pack(">HH", 60000, 60000) + bytes([1, 1, 0x11, 0]))
    stream = b"\xff\xd8" + _segment(0xE0, b"JFIF\x00" + bytes(9)) + b"\xff\xff" + sof + b"\xff\xda"
    assert jpeg_frame_size(stream) == (60000, 60000)


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"\x00\x01\x02\x03",  # not a JPEG
        b"\xff\xd8",  # SOI only
        b"\xff\xd8\xff\xda\x00\x08",  # scan before any frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # segment length below 2
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00",  # truncated SOF
        b"\xff\xd8\x12\x34\x56\x78",  # garbage where a marker should be
        b"\xff\xd8" + b"\xff\xc0\x00\x0b\x08\x00\x00\x01\x00\x01\x01\x11\x00",  # rows 0 (DNL)
    ],
)
def test_damaged_or_undecided_headers_leave_the_decision_to_the_decoder(stream):
    assert jpeg_frame_size(stream) is None


@pytest.mark.parametrize("syntax", ["jpeg-baseline", "jpeg-ls"])
def test_reader_rejects_rows_columns_that_disagree_with_the_codestream(tmp_path, syntax):
    """The size check before allocation, now on our parser: a header claiming 4000 x 4000 for
    48 x 48 frames is an input error naming both sizes."""
    import pydicom

    from IVUSReconstructLib.errors import IVUSInputError
    from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
    from IVUSReconstructLib.phantom import make_phantom

    pullback = make_phantom("coronary", seed=3, length_mm=0.2, size_px=48).pullback
    path = write_pullback(pullback, tmp_path / "p.dcm", transfer_syntax=syntax)
    ds = pydicom.dcmread(path)
    ds.Rows, ds.Columns = 4000, 4000
    ds.save_as(path)
    with pytest.raises(IVUSInputError) as raised:
        read_pullback(path)
    assert f"{path}: Rows/Columns (0028,0010/0011) are 4000x4000 but the compressed frames are 48x48; " in str(
        raised.value
    )
