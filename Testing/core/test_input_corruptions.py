"""Broken inputs: each corruption or omission exits with code 2 and names the field.

Every case below is run through ``IVUSReconstructLib.cli.main(["run", ...])`` (the inputs are
read before any processing), must return 2 and print one ``ivus-reconstruct: error:`` line
that contains the expected field. The pullback is a 30-frame 48 x 48 phantom written by
``write_pullback`` and then damaged.

====  =================================================  ==============================================
 #    corruption or omission                              field named in the message
====  =================================================  ==============================================
 1    pixel data cut short (file truncated)               PixelData (7FE0,0010) is truncated
 2    NumberOfFrames 200 for 30 frames of data            NumberOfFrames (0028,0008)
 3    Rows x Columns 65535 x 65535 (~4 GB a frame)        Rows/Columns (0028,0010/0011)
 4    NumberOfFrames 2^31 - 1 (RLE file)                  NumberOfFrames (0028,0008)
 5    60000 x 60000 on a JPEG-LS file (stream: 48x48)     Rows/Columns (0028,0010/0011)
 6    NumberOfFrames 0                                    Rows/Columns/NumberOfFrames
 7    PhysicalDeltaX 0                                    PhysicalDeltaX (0018,602C)
 8    PhysicalDeltaY negative                             PhysicalDeltaY (0018,602E)
 9    PixelSpacing 0 (no Ultrasound Regions)              PixelSpacing (0028,0030)
 10   PixelSpacing negative                               PixelSpacing (0028,0030)
 11   PhysicalUnitsXDirection 4 (seconds)                 PhysicalUnitsXDirection (0018,6024)
 12   PhysicalUnitsYDirection 99 (unknown code)           PhysicalUnitsYDirection (0018,6026)
 13   no spacing at all                                   SequenceOfUltrasoundRegions/PixelSpacing
 14   motorised pullback without a rate                   IVUSPullbackRate (0018,3101)
 15   negative pullback rate                              IVUSPullbackRate (0018,3101)
 16   no FrameTime, FrameTimeVector or CineRate           FrameTime (0018,1063)/...
 17   negative FrameTime                                  FrameTime (0018,1063)
 18   zero FrameTime                                      FrameTime (0018,1063)
 19   FrameTimeVector with 10 values for 30 frames        FrameTimeVector (0018,1065)
 20   FrameTimeVector with a negative increment           FrameTimeVector (0018,1065)
 21   CineRate 0 as the only timing                       CineRate (0018,0040)
 22   BitsAllocated 12                                    BitsAllocated (0028,0100)
 23   BitsAllocated 7 (odd)                               BitsAllocated (0028,0100)
 24   SamplesPerPixel 3 with MONOCHROME2                  SamplesPerPixel (0028,0002)
 25   PixelData missing                                   PixelData (7FE0,0010) is missing
 26   MPEG-4 transfer syntax (no decoder)                 TransferSyntaxUID (0002,0010)
 27   PhotometricInterpretation "HSV"                     PhotometricInterpretation (0028,0004)
 28   PixelRepresentation 1 (signed)                      PixelRepresentation (0028,0103)
 29   a text file named .dcm                              file is not a DICOM file
 30   garbage inside a JPEG frame                         PixelData (7FE0,0010) cannot be decoded
 31   BitsStored 12 with BitsAllocated 8                  BitsStored (0028,0101)
 32   GATED_PULLBACK without IVUS Gated Rate              IVUSGatedRate (0018,3102)
 33   Rows missing                                        Rows (0028,0010) is missing
 34   NumberOfFrames "1.5" (not an integer)               NumberOfFrames (0028,0008)
 35   contour frame 99 in a 30-frame pullback             frame ... outside the pullback
 36   NaN in a lumen contour                              frame 3 lumen ... NaN
 37   self-intersecting (bow-tie) lumen                   frame 0 lumen ... self-intersecting
 38   lumen of 2 points                                   frame 0 lumen ... 2 distinct points
 39   contour JSON cut in the middle                      JSON is not valid (...); fix the file
 40   contour file of an unknown format                   format is not a known contour format
 41   empty centerline file                               file is empty
 42   NaN in a centerline CSV                             x,y,z columns ... non-finite
 43   centerline of one repeated point                    x,y,z columns ... one distinct point
 44   markups centerline without control points           controlPoints / holds no points
 45   --frame-rate 0                                      --frame-rate
 46   PhysicalDeltaX/Y 4 cm (40 mm per pixel)             pixel spacing ... is 40 mm, outside
 47   IVUSPullbackRate 400 mm/s                           IVUSPullbackRate ... is 400 mm/s, outside
 48   FrameTime 33333 ms (s written as ms x 1000)         FrameTime ... is 33.333 s, outside
 49   CineRate 5000                                       CineRate ... is 5000 frames/s, outside
 50   native contours of format version 99                version is 99
 51   lumen outside its vessel border                     frame 2 lumen lies 100% outside its vessel
 52   contours ten times larger than the image            frame 0 lumen reaches 50 mm ... outside the image
 53   contours in um (extent 1500 mm)                     frame 0 lumen extent is 1500 mm, outside
 54   the same frame twice                                frame 4 appears twice
 55   frames out of order                                 frame 3 comes after 7
 56   markups coordinateSystem "XYZ"                      coordinateSystem is 'XYZ', neither LPS nor RAS
 57   centerline in metres (0.055 m long)                 centerline length is 0.055 mm, outside
 58   --pullback-speed 400                                --pullback-speed: value is 400 mm/s
 59   --start-mm 5000                                     --start-mm: value is 5000 mm
 60   FrameTimeVector in us (0.0333 ms increments)        FrameTimeVector ... median increment ... outside
 61   40 mm/s for 116 s (a 4.6 m pullback)                pullback length (speed x duration) ... outside
 62   DICOM folder: 40 mm pixels in the first header      pixel spacing from PhysicalDeltaX ... outside
 63   DICOM folder: one file cut short                    that file: PixelData (7FE0,0010) is truncated
 64   DICOM folder: one file of another frame size        that file: Rows/Columns ... unlike 48x48
 65   NRRD with 5 mm pixels                               NRRD spacing is 5 mm, outside
 66   NRRD cut short                                      size declares ... more than the file holds
 67   PNG folder: one frame cut short                     that frame: image cannot be decoded
 68   PNG folder: one frame of another size               that frame: image size is 40x40 px, unlike
 69   DICOM folder: a frame's file copied                 SOPInstanceUID ... the same frame twice
====  =================================================  ==============================================

Too large to decode (the memory guard) and its order after the truncation checks: see
test_size_guards.py. Angiograms of a wrong geometry: test_angio.py and test_angio_cli.py.

Cases 3, 4 and 5 declare tens of gigabytes: tracemalloc checks that reading allocates less
than the file's size. Property-based tests (hypothesis) flip and cut bytes of valid small
DICOM files and write random JSON/CSV contours and centerlines: the readers may only raise
IVUSInputError.
"""

from __future__ import annotations

import json
import math
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IVUSReconstructLib.cli import main
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.contours import read_contours
from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import Pullback

from .test_dicom import _edit


@pytest.fixture(scope="module")
def phantom() -> Pullback:
    return make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory, phantom: Pullback) -> dict[str, bytes]:
    """Bytes of valid pullbacks in several transfer syntaxes."""
    folder = tmp_path_factory.mktemp("valid")
    out = {}
    for syntax in ("explicit-little", "rle", "jpeg-ls", "jpeg-baseline"):
        out[syntax] = write_pullback(phantom, folder / f"{syntax}.dcm", transfer_syntax=syntax).read_bytes()
    return out


# --------------------------------------------------------------------------- damage helpers


def _region(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds.SequenceOfUltrasoundRegions[0], key, value)
    ds.save_as(path)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-2000])


def _no_timing(path: Path) -> None:
    _edit(path, FrameTime=None, FrameIncrementPointer=None, CineRate=None, RecommendedDisplayFrameRate=None)


def _zero_cine(path: Path) -> None:
    _edit(path, FrameTime=None, FrameIncrementPointer=None, CineRate=0, RecommendedDisplayFrameRate=None)


def _vector(path: Path, values: list[str]) -> None:
    _edit(path, FrameTime=None, FrameIncrementPointer=0x00181065, FrameTimeVector=values)


def _spacing_tag(path: Path, values: list[str]) -> None:
    _edit(path, SequenceOfUltrasoundRegions=None, PixelSpacing=values)


def _mpeg(path: Path) -> None:
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264
    ds.save_as(path)


def _jpeg_garbage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.rfind(b"\xff\xd8\xff")  # the last frame's JPEG stream: overwrite its headers
    data[at : at + 600] = bytes(range(256)) * 2 + bytes(88)
    path.write_bytes(bytes(data))


def _text(path: Path) -> None:
    path.write_text("exported notes, not an image\n" * 40)


# Each case: (id, syntax of the base file, damage, expected text in the message).
DICOM_CASES: list[tuple[str, str, Callable[[Path], None], str]] = [
    ("truncated-pixels", "explicit-little", _truncate, "PixelData (7FE0,0010) is truncated"),
    ("frames-beyond-data", "explicit-little", lambda p: _edit(p, NumberOfFrames=200), "NumberOfFrames (0028,0008) is 200"),
    ("huge-rows-columns", "explicit-little", lambda p: _edit(p, Rows=65535, Columns=65535), "Rows/Columns (0028,0010/0011) are 65535x65535"),
    ("huge-frame-count-rle", "rle", lambda p: _edit(p, NumberOfFrames=2**31 - 1), "NumberOfFrames (0028,0008) is 2147483647"),
    ("huge-rows-jpeg-ls", "jpeg-ls", lambda p: _edit(p, Rows=60000, Columns=60000), "Rows/Columns (0028,0010/0011) are 60000x60000"),
    ("zero-frames", "explicit-little", lambda p: _edit(p, NumberOfFrames=0), "Rows/Columns/NumberOfFrames"),
    ("zero-delta-x", "explicit-little", lambda p: _region(p, PhysicalDeltaX=0.0), "PhysicalDeltaX (0018,602C) is 0.0 cm"),
    ("negative-delta-y", "explicit-little", lambda p: _region(p, PhysicalDeltaY=-0.002), "PhysicalDeltaY (0018,602E) is -0.002 cm"),
    ("zero-pixel-spacing", "explicit-little", lambda p: _spacing_tag(p, ["0", "0"]), "PixelSpacing (0028,0030)"),
    ("negative-pixel-spacing", "explicit-little", lambda p: _spacing_tag(p, ["-0.02", "0.02"]), "PixelSpacing (0028,0030)"),
    ("units-seconds", "explicit-little", lambda p: _region(p, PhysicalUnitsXDirection=4), "PhysicalUnitsXDirection (0018,6024) is 4"),
    ("units-unknown", "explicit-little", lambda p: _region(p, PhysicalUnitsYDirection=99), "PhysicalUnitsYDirection (0018,6026) is 99 (unknown"),
    ("no-spacing", "explicit-little", lambda p: _edit(p, SequenceOfUltrasoundRegions=None), "SequenceOfUltrasoundRegions (0018,6011)/PixelSpacing"),
    ("motor-without-rate", "explicit-little", lambda p: _edit(p, IVUSPullbackRate=None), "IVUSPullbackRate (0018,3101) is missing"),
    ("negative-rate", "explicit-little", lambda p: _edit(p, IVUSPullbackRate="-0.5"), "IVUSPullbackRate (0018,3101) is -0.5"),
    ("no-timing", "explicit-little", _no_timing, "FrameTime (0018,1063)/FrameTimeVector"),
    ("negative-frame-time", "explicit-little", lambda p: _edit(p, FrameTime="-33.3"), "FrameTime (0018,1063) is -33.3"),
    ("zero-frame-time", "explicit-little", lambda p: _edit(p, FrameTime="0"), "FrameTime (0018,1063) is 0.0"),
    ("vector-length", "explicit-little", lambda p: _vector(p, ["0"] + ["33.3"] * 9), "FrameTimeVector (0018,1065) has 10 values"),
    ("vector-negative", "explicit-little", lambda p: _vector(p, ["0", "-33.3"] + ["33.3"] * 28), "FrameTimeVector (0018,1065)"),
    ("zero-cine-rate", "explicit-little", _zero_cine, "CineRate (0018,0040) is 0.0"),
    ("bits-12", "explicit-little", lambda p: _edit(p, BitsAllocated=12), "BitsAllocated (0028,0100) is 12"),
    ("bits-odd", "explicit-little", lambda p: _edit(p, BitsAllocated=7), "BitsAllocated (0028,0100) is 7"),
    ("rgb-samples-mono", "explicit-little", lambda p: _edit(p, SamplesPerPixel=3), "SamplesPerPixel (0028,0002) is 3"),
    ("no-pixel-data", "explicit-little", lambda p: _edit(p, PixelData=None), "PixelData (7FE0,0010) is missing"),
    ("mpeg4-syntax", "jpeg-ls", _mpeg, "TransferSyntaxUID (0002,0010) is 1.2.840.10008.1.2.4.102"),
    ("unknown-photometric", "explicit-little", lambda p: _edit(p, PhotometricInterpretation="HSV"), "PhotometricInterpretation (0028,0004)"),
    ("signed-pixels", "explicit-little", lambda p: _edit(p, PixelRepresentation=1), "PixelRepresentation (0028,0103)"),
    ("text-file", "explicit-little", _text, "file is not a DICOM file"),
    ("jpeg-garbage", "jpeg-baseline", _jpeg_garbage, "PixelData (7FE0,0010) cannot be decoded"),
    ("bits-stored", "explicit-little", lambda p: _edit(p, BitsStored=12), "BitsStored (0028,0101) is 12"),
    ("gated-without-rate", "explicit-little", lambda p: _edit(p, IVUSAcquisition="GATED_PULLBACK"), "IVUSGatedRate (0018,3102)"),
    ("no-rows", "explicit-little", lambda p: _edit(p, Rows=None), "Rows (0028,0010) is missing"),
    ("frames-text", "explicit-little", lambda p: _edit(p, NumberOfFrames="1.5"), "NumberOfFrames (0028,0008)"),
    ("spacing-40-mm", "explicit-little", lambda p: _region(p, PhysicalDeltaX=4.0, PhysicalDeltaY=4.0), "pixel spacing from PhysicalDeltaY (0018,602E) is 40 mm, outside the plausible 0.001-1 mm"),
    ("rate-400", "explicit-little", lambda p: _edit(p, IVUSPullbackRate="400"), "IVUSPullbackRate (0018,3101) is 400 mm/s, outside the plausible 0.05-40 mm/s"),
    ("frame-time-seconds-as-ms", "explicit-little", lambda p: _edit(p, FrameTime="33333"), "FrameTime (0018,1063) is 33.333 s, outside the plausible 0.001-5 s"),
    ("cine-rate-5000", "explicit-little", lambda p: _edit(p, FrameTime=None, FrameIncrementPointer=None, CineRate=5000), "CineRate (0018,0040) is 5000 frames/s, outside the plausible 1-500 frames/s"),
    ("vector-microseconds", "explicit-little", lambda p: _vector(p, ["0"] + ["0.0333"] * 29), "FrameTimeVector (0018,1065) median increment is 3.33e-05 s, outside the plausible 0.001-5 s"),
    ("pullback-4-metres", "explicit-little", lambda p: _edit(p, FrameTime="4000", IVUSPullbackRate="40"), "pullback length (speed x duration) is 4640 mm, outside the plausible 0-1000 mm"),
]  # fmt: skip


def _run(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("syntax", "damage", "expected"), [c[1:] for c in DICOM_CASES], ids=[c[0] for c in DICOM_CASES]
)
def test_damaged_pullback_exits_2_naming_the_field(
    tmp_path: Path, capsys, valid_files: dict[str, bytes], syntax: str, damage, expected: str
):
    path = tmp_path / "pullback.dcm"
    path.write_bytes(valid_files[syntax])
    damage(path)
    code, err = _run(capsys, str(path), "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert err.startswith(f"ivus-reconstruct: error: {path}") and err.count("\n") == 1
    assert expected in err
    assert [p.name for p in tmp_path.iterdir()] == ["pullback.dcm"]  # nothing in the output place


def _contours_json(path: Path, frames: list[dict], **extra) -> Path:
    doc = {"format": "ivus-contours", "coordinates": "frame-plane", "units": "mm", **extra, "frames": frames}
    path.write_text(json.dumps(doc))
    return path


def _circle(r: float = 1.5, n: int = 24, cx: float = 0.0) -> list[list[float]]:
    return [[cx + r * math.cos(t), r * math.sin(t)] for t in np.linspace(0, 2 * math.pi, n, endpoint=False)]


OTHER_CASES = [
    ("contour-beyond-pullback", "contours", lambda p: _contours_json(p, [{"index": 99, "lumen": _circle()}]), "frame index 99 is outside the pullback's 30 frames"),
    ("contour-nan", "contours", lambda p: _contours_json(p, [{"index": 3, "lumen": [[float("nan"), 0.0]] + _circle()[1:]}]), "frame 3 lumen has NaN"),
    ("contour-bow-tie", "contours", lambda p: _contours_json(p, [{"index": 0, "lumen": [[0, 0], [2, 2], [2, 0], [0, 2]]}]), "frame 0 lumen is a self-intersecting polygon"),
    ("contour-two-points", "contours", lambda p: _contours_json(p, [{"index": 0, "lumen": [[0, 0], [1, 1]]}]), "frame 0 lumen has 2 distinct points"),
    ("contour-cut-json", "contours", lambda p: p.write_text(json.dumps({"format": "ivus-contours", "frames": []})[:20]), "JSON is not valid (Unterminated string starting at line 1, column 12); fix the file"),
    ("contour-unknown-format", "contours", lambda p: p.write_text("lumen area report\n1;2;3\n"), "format is not a known contour format"),
    ("centerline-empty", "centerline", lambda p: p.write_bytes(b""), "file is empty"),
    ("centerline-nan", "centerline", lambda p: p.write_text("x,y,z\n0,0,0\n1,nan,0\n2,0,0\n"), "has a non-finite coordinate at point 1"),
    ("centerline-one-point", "centerline", lambda p: p.write_text("x,y,z\n1,2,3\n1,2,3\n"), "has only one distinct point"),
    ("centerline-no-points", "centerline", lambda p: p.write_text(json.dumps({"markups": [{"type": "Curve", "controlPoints": []}]})), "controlPoints"),
    ("contour-version-99", "contours", lambda p: _contours_json(p, [{"index": 0, "lumen": _circle()}], version=99), "version is 99, not a version this release reads (1)"),
    ("lumen-outside-vessel", "contours", lambda p: _contours_json(p, [{"index": 2, "lumen": _circle(1.0, cx=3.0), "vessel": _circle(1.5)}]), "frame 2 lumen lies 100% outside its vessel border"),
    ("contours-ten-times-image", "contours", lambda p: _contours_json(p, [{"index": 0, "lumen": _circle(50.0)}]), "frame 0 lumen reaches 50 mm from the catheter, outside the image (10 mm field of view)"),
    ("contours-in-um", "contours", lambda p: _contours_json(p, [{"index": 0, "lumen": _circle(1500.0)}]), "frame 0 lumen extent is 1500 mm, outside the plausible 0.02-60 mm"),
    ("contour-frame-twice", "contours", lambda p: _contours_json(p, [{"index": 4, "lumen": _circle()}, {"index": 4, "lumen": _circle()}]), "frame 4 appears twice"),
    ("contour-frames-unordered", "contours", lambda p: _contours_json(p, [{"index": 7, "lumen": _circle()}, {"index": 3, "lumen": _circle()}]), "frame 3 comes after 7"),
    ("centerline-system-xyz", "centerline", lambda p: p.write_text(json.dumps({"markups": [{"type": "Curve", "coordinateSystem": "XYZ", "controlPoints": [{"position": [0, 0, z]} for z in range(0, 40, 5)]}]})), "coordinateSystem is 'XYZ', neither LPS nor RAS"),
    ("centerline-in-metres", "centerline", lambda p: p.write_text("x,y,z\n" + "\n".join(f"0,0,{z / 1000:.4f}" for z in range(0, 60, 5)) + "\n"), "centerline length is 0.055 mm, outside the plausible 1-2000 mm"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("option", "make", "expected"), [c[1:] for c in OTHER_CASES], ids=[c[0] for c in OTHER_CASES]
)
def test_damaged_contours_and_centerlines_exit_2(
    tmp_path: Path, capsys, valid_files: dict[str, bytes], option: str, make, expected: str
):
    pullback = tmp_path / "pullback.dcm"
    pullback.write_bytes(valid_files["explicit-little"])
    bad = tmp_path / ("contours.json" if option == "contours" else "centerline.csv")
    if option == "centerline" and ("controlPoints" in expected or "coordinateSystem" in expected):
        bad = tmp_path / "centerline.mrk.json"
    make(bad)
    code, err = _run(capsys, str(pullback), f"--{option}", str(bad), "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert err.startswith(f"ivus-reconstruct: error: {bad}") and err.count("\n") == 1
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([bad.name, "pullback.dcm"])


OPTION_CASES = [
    ("frame-rate-option", ["--frame-rate", "0"], "--frame-rate: value is 0 frames/s, must be positive"),
    (
        "speed-option-400",
        ["--pullback-speed", "400"],
        "--pullback-speed: value is 400 mm/s, outside the plausible",
    ),
    (
        "start-option-5000",
        ["--start-mm", "5000"],
        "--start-mm: value is 5000 mm, outside the plausible -500-500 mm",
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES]
)
def test_bad_option_exits_2(tmp_path: Path, capsys, valid_files: dict[str, bytes], args, expected):
    pullback = tmp_path / "pullback.dcm"
    pullback.write_bytes(valid_files["explicit-little"])
    code, err = _run(capsys, str(pullback), *args, "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith(f"ivus-reconstruct: error: {expected}") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pullback.dcm"]


# --------------------------------------------------------------------------- other pullback forms


def _dicom_folder(root: Path, phantom: Pullback) -> tuple[Path, list[Path]]:
    folder = write_pullback(phantom, root / "frames", layout="single-frame")
    return folder, sorted(folder.iterdir())


def _folder_spacing_40mm(root: Path, phantom: Pullback):
    folder, files = _dicom_folder(root, phantom)
    _region(files[0], PhysicalDeltaX=4.0)
    return folder, [], files[0], "pixel spacing from PhysicalDeltaX (0018,602C) is 40 mm, outside"


def _folder_truncated_file(root: Path, phantom: Pullback):
    folder, files = _dicom_folder(root, phantom)
    files[12].write_bytes(files[12].read_bytes()[:-400])
    return folder, [], files[12], "PixelData (7FE0,0010) is truncated ("


def _folder_mixed_sizes(root: Path, phantom: Pullback):
    folder, files = _dicom_folder(root, phantom)
    _edit(files[5], Rows=40)
    return folder, [], files[5], "Rows/Columns (0028,0010/0011) are 40x48, unlike 48x48 in IMG00001.dcm"


def _nrrd(root: Path, phantom: Pullback, spacing=(0.2, 0.2, 0.5), compress=True) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(phantom.frames))
    image.SetSpacing(spacing)
    path = root / "pullback.nrrd"
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def _nrrd_spacing_5mm(root: Path, phantom: Pullback):
    path = _nrrd(root, phantom, spacing=(5.0, 5.0, 0.5))
    return path, ["--frame-rate", "30"], path, "NRRD spacing is 5 mm, outside the plausible 0.001-1 mm"


def _nrrd_truncated(root: Path, phantom: Pullback):
    path = _nrrd(root, phantom, compress=False)
    path.write_bytes(path.read_bytes()[:-5000])
    return path, ["--frame-rate", "30"], path, "size declares 48x48x30 voxels (69120 bytes), more than the file holds"


def _png_folder(root: Path, phantom: Pullback) -> tuple[Path, list[Path]]:
    from PIL import Image

    folder = root / "png"
    folder.mkdir()
    for k, frame in enumerate(np.asarray(phantom.frames)):
        Image.fromarray(frame).save(folder / f"f{k:03d}.png")
    return folder, sorted(folder.iterdir())


def _png_damaged_frame(root: Path, phantom: Pullback):
    folder, files = _png_folder(root, phantom)
    files[9].write_bytes(files[9].read_bytes()[:100])
    return folder, ["--pixel-spacing", "0.2", "--frame-rate", "30"], files[9], "image cannot be decoded ("


def _png_mixed_sizes(root: Path, phantom: Pullback):
    from PIL import Image

    folder, files = _png_folder(root, phantom)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(files[3])
    return folder, ["--pixel-spacing", "0.2", "--frame-rate", "30"], files[3], "image size is 40x40 px, unlike 48x48 px of f000.png"


def _folder_duplicate_file(root: Path, phantom: Pullback):
    import shutil

    folder, files = _dicom_folder(root, phantom)
    copy = folder / "IMG00007 copy.dcm"
    shutil.copy(files[6], copy)
    # the copy sorts first (same InstanceNumber, ' ' before '.'): the original is named as the repeat
    return folder, [], files[6], "SOPInstanceUID (0008,0018) is that of IMG00007 copy.dcm too (the same frame twice)"


FORM_CASES = [
    ("dicom-folder-duplicate-file", _folder_duplicate_file),
    ("dicom-folder-spacing-40-mm", _folder_spacing_40mm),
    ("dicom-folder-truncated-file", _folder_truncated_file),
    ("dicom-folder-mixed-sizes", _folder_mixed_sizes),
    ("nrrd-spacing-5-mm", _nrrd_spacing_5mm),
    ("nrrd-truncated", _nrrd_truncated),
    ("png-folder-damaged-frame", _png_damaged_frame),
    ("png-folder-mixed-sizes", _png_mixed_sizes),
]


@pytest.mark.parametrize("make", [c[1] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES])
def test_damaged_folders_and_volumes_exit_2_naming_the_file(tmp_path: Path, capsys, phantom: Pullback, make):
    """DICOM folders, 3D images and image folders: refused from their headers (or the damaged
    file) with one line naming the file and the field; nothing in the output place."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    pullback, extra, named, expected = make(inputs, phantom)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = _run(capsys, str(pullback), *extra, "--out", str(tmp_path / "out"))
    assert code == 2, err
    assert err.startswith(f"ivus-reconstruct: error: {named}: ") and err.count("\n") == 1
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_case_table_lists_at_least_30_distinct_cases():
    ids = [c[0] for c in DICOM_CASES] + [c[0] for c in OTHER_CASES] + [c[0] for c in OPTION_CASES]
    ids += [c[0] for c in FORM_CASES]
    assert len(set(ids)) == len(ids) >= 69


@pytest.mark.parametrize(
    "case", ["huge-rows-columns", "huge-frame-count-rle", "huge-rows-jpeg-ls", "frames-beyond-data"]
)
def test_declared_gigabytes_allocate_less_than_the_file(
    tmp_path: Path, valid_files: dict[str, bytes], case: str
):
    _, syntax, damage, expected = next(c for c in DICOM_CASES if c[0] == case)
    path = tmp_path / "big.dcm"
    path.write_bytes(valid_files[syntax])
    damage(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    declared = int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1))
    size = path.stat().st_size
    assert declared > 1000 * size or case == "frames-beyond-data"
    tracemalloc.start()
    try:
        with pytest.raises(IVUSInputError, match=expected.split(" (")[0]):
            read_pullback(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size + 64 * 1024, (peak, size)  # pydicom's header objects take a few kB


# --------------------------------------------------------------------------- property-based


def _read_or_input_error(path: Path, reader: Callable[[Path], object]) -> None:
    try:
        reader(path)
    except IVUSInputError as exc:
        assert "\n" not in str(exc)


FUZZ = settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    syntax=st.sampled_from(["explicit-little", "rle", "jpeg-ls", "jpeg-baseline"]),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
    keep=st.one_of(st.none(), st.floats(0, 1)),
)
def test_fuzzed_dicom_raises_only_input_errors(
    tmp_path: Path, valid_files: dict[str, bytes], syntax, flips, keep
):
    data = bytearray(valid_files[syntax])
    for where, value in flips:
        data[int(where * len(data))] = value
    if keep is not None:
        data = data[: int(keep * len(data))]
    path = tmp_path / "fuzz.dcm"
    path.write_bytes(bytes(data))
    _read_or_input_error(path, lambda p: read_pullback(p, decode_workers=1))


_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-(10**6), 10**6),
    st.just("x"),
    st.none(),
)
_points = st.lists(st.lists(_numbers, min_size=0, max_size=3), max_size=12)
_frames = st.lists(
    st.fixed_dictionaries(
        {"index": st.one_of(st.integers(-3, 40), st.just("a"), st.none()), "lumen": _points},
        optional={"vessel": _points, "phase": st.sampled_from(["ED", "ES", None]), "z_mm": _numbers},
    ),
    max_size=4,
)


@FUZZ
@given(
    frames=_frames,
    extra=st.dictionaries(st.sampled_from(["units", "coordinates", "landmarks"]), _numbers, max_size=2),
)
def test_fuzzed_contour_json_raises_only_input_errors(tmp_path: Path, frames, extra):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"format": "ivus-contours", "frames": frames, **extra}))
    _read_or_input_error(path, read_contours)


_cell = st.one_of(
    st.floats(allow_nan=True, width=32).map(str),
    st.integers(-50, 50).map(str),
    st.sampled_from(["", "a", "1e999"]),
)


def _csv(path: Path, rows: list[list[str]], sep: str, header: str | None) -> Path:
    lines = ([header] if header else []) + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


_rows = st.lists(st.lists(_cell, min_size=0, max_size=5), max_size=10)


@FUZZ
@given(rows=_rows, sep=st.sampled_from([",", "\t", " "]), header=st.booleans())
def test_fuzzed_centerline_csv_raises_only_input_errors(tmp_path: Path, rows, sep, header):
    path = _csv(tmp_path / "centerline.csv", rows, sep, sep.join("xyz") if header else None)
    _read_or_input_error(path, read_centerline)


@FUZZ
@given(rows=_rows, sep=st.sampled_from([",", "\t", " "]), header=st.booleans())
def test_fuzzed_contour_csv_raises_only_input_errors(tmp_path: Path, rows, sep, header):
    path = _csv(tmp_path / "contours.csv", rows, sep, "frame,contour,x_mm,y_mm,z_mm" if header else None)
    _read_or_input_error(path, read_contours)


@FUZZ
@given(
    points=st.lists(
        st.fixed_dictionaries({"position": st.lists(_numbers, min_size=0, max_size=4)}), max_size=6
    ),
    system=st.sampled_from(["LPS", "RAS", "XYZ", None]),
)
def test_fuzzed_markups_raise_only_input_errors(tmp_path: Path, points, system):
    markup = {"type": "Curve", "controlPoints": points}
    if system is not None:
        markup["coordinateSystem"] = system
    path = tmp_path / "c.mrk.json"
    path.write_text(json.dumps({"markups": [markup]}))
    _read_or_input_error(path, read_centerline)


@FUZZ
@given(
    version=st.one_of(st.integers(-3, 200), st.floats(allow_nan=True), st.text(max_size=4), st.none(), st.booleans()),
    system=st.one_of(st.sampled_from(["LPS", "RAS", "lps", "ras", "XYZ", "", "IJK"]), st.integers(0, 3)),
)
def test_fuzzed_format_version_and_coordinate_system(tmp_path: Path, version, system):
    """Native contours are read exactly when their version is 1; markups exactly when their
    coordinateSystem is LPS or RAS (any case); everything else is one IVUSInputError line."""
    path = _contours_json(tmp_path / "c.json", [{"index": 0, "lumen": _circle()}], version=version)
    try:
        read_contours(path)
    except IVUSInputError as exc:
        assert "version is " in str(exc) and "\n" not in str(exc)
        assert isinstance(version, bool) or version != 1
    else:
        assert version == 1 and not isinstance(version, bool)
    points = [{"position": [0.0, 0.0, float(z)]} for z in range(0, 40, 5)]
    markups = tmp_path / "c.mrk.json"
    markups.write_text(json.dumps({"markups": [{"type": "Curve", "coordinateSystem": system, "controlPoints": points}]}))
    try:
        read_centerline(markups)
    except IVUSInputError as exc:
        assert "coordinateSystem is " in str(exc) and "\n" not in str(exc)
        assert not (isinstance(system, str) and system.upper() in ("LPS", "RAS"))
    else:
        assert isinstance(system, str) and system.upper() in ("LPS", "RAS")


def test_library_warnings_do_not_add_lines_in_a_real_process(tmp_path: Path, valid_files: dict[str, bytes]):
    """Outside pytest (which captures warnings) pydicom's warnings about an invalid value would
    print their own lines on stderr before the error: the reader silences them."""
    import subprocess
    import sys

    path = tmp_path / "pullback.dcm"
    path.write_bytes(valid_files["explicit-little"])
    _edit(path, NumberOfFrames="1.5")
    code = "import sys; from IVUSReconstructLib.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "IVUSReconstruct")}
    proc = subprocess.run(
        [sys.executable, "-c", code, "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"ivus-reconstruct: error: {path}: NumberOfFrames (0028,0008) is '1.5' (not an integer); "
        "re-export the pullback from the IVUS console\n"
    )
