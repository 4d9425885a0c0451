"""Malformed inputs found in review: each gives IVUSInputError naming the field, never a Python error."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest

from IVUSReconstructLib.coregistration import fit_landmarks, resample_centerline
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.contours import read_contours
from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom
from IVUSReconstructLib.types import Centerline, Landmark


@pytest.fixture(scope="module")
def pullback():
    return make_phantom("coronary", length_mm=0.3, size_px=48).pullback


def test_single_value_pixel_spacing(tmp_path, pullback):
    path = write_pullback(pullback, tmp_path / "p.dcm")
    ds = pydicom.dcmread(path)
    del ds.SequenceOfUltrasoundRegions
    ds.PixelSpacing = "0.1"
    ds.save_as(path)
    with pytest.raises(
        IVUSInputError, match=r"PixelSpacing \(0028,0030\) is .*one value \(row and column spacing are needed\); give the pixel spacing in mm"
    ):
        read_pullback(path)


def test_folder_of_many_single_frame_files_reads_into_one_array(tmp_path, pullback):
    folder = write_pullback(pullback, tmp_path / "series", layout="single-frame")
    back = read_pullback(folder)
    assert back.n_frames == pullback.n_frames
    assert not isinstance(back.frames, np.memmap)  # copied: no file stays open per frame
    assert np.array_equal(np.asarray(back.frames), pullback.frames)


@pytest.mark.parametrize("markups", [[1], [{"type": "Curve", "controlPoints": {"position": [0, 0, 0]}}]])
def test_markups_that_are_not_objects(tmp_path, markups):
    path = tmp_path / "c.mrk.json"
    path.write_text(json.dumps({"markups": markups}))
    with pytest.raises(IVUSInputError, match="markups are not objects with a controlPoints list"):
        read_centerline(path)


def test_empty_contour_file(tmp_path):
    path = tmp_path / "contours.json"
    path.write_text("  \n")
    with pytest.raises(IVUSInputError, match="contours.json: file is empty"):
        read_contours(path)


def test_aivus_json_with_short_eem_lists(tmp_path):
    knots = [[[10.0 * np.cos(t) + 256, 10.0 * np.sin(t) + 256] for t in np.linspace(0, 6, 8)]]
    xs = [[p[0] for p in knots[0]]]
    ys = [[p[1] for p in knots[0]]]
    doc = {"lumen": [xs, ys], "eem": [xs, []], "phases": ["D"]}
    path = tmp_path / "anonymized_contours.json"
    path.write_text(json.dumps(doc))
    contours = read_contours(path, pixel_spacing_mm=(0.02, 0.02))
    assert len(contours.frames) == 1 and contours.frames[0].vessel is None


def test_landmarks_at_the_same_nominal_position(tmp_path):
    z = np.linspace(0, 40, 81)
    curve = resample_centerline(Centerline(np.column_stack([np.zeros_like(z), np.zeros_like(z), z])))
    frames = np.arange(10)
    nominal = np.array([0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    landmarks = [
        Landmark(frame=1, point_ras_mm=np.array([0, 0, 1.0])),
        Landmark(frame=2, point_ras_mm=np.array([0, 0, 1.5])),
    ]
    with pytest.raises(IVUSInputError, match="frames 1 and 2 have the same nominal position"):
        fit_landmarks(curve, frames, nominal, landmarks)


def test_damaged_element_read_lazily_is_an_input_error(tmp_path, pullback):
    """pydicom converts elements when first read; an unknown VR in SOPClassUID surfaces late."""
    data = write_pullback(pullback, tmp_path / "p.dcm").read_bytes()
    tag = b"\x08\x00\x16\x00UI"
    start = data.index(tag, 132 + 12)  # the dataset's SOPClassUID, not the file meta's
    damaged = data[:start] + b"\x08\x00\x16\x00\x55\xa2" + data[start + len(tag) :]
    path = tmp_path / "damaged.dcm"
    path.write_bytes(damaged)
    with pytest.raises(
        IVUSInputError, match=r"damaged.dcm: DICOM data cannot be parsed \(NotImplementedError"
    ):
        read_pullback(path)


def test_sixteen_bit_rgb_volume_keeps_its_contrast(tmp_path):
    import SimpleITK as sitk

    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, size=(4, 20, 20)).astype(np.uint16)
    rgb = np.repeat((grey * 257)[..., None], 3, axis=-1)  # 16-bit colour, full range
    image = sitk.GetImageFromArray(rgb, isVector=True)
    image.SetSpacing((0.05, 0.05, 0.1))
    path = tmp_path / "pullback.nrrd"
    sitk.WriteImage(image, str(path))
    from IVUSReconstructLib.io.images import read_pullback as read_image_pullback

    back = read_image_pullback(path, frame_rate_hz=30.0, pullback_speed_mm_s=0.5)
    # scaled, not clipped: the grey levels come back within rounding
    assert np.abs(np.asarray(back.frames, dtype=int) - grey).max() <= 1
