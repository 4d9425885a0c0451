"""XA DICOM geometry, frame selection and curve files (io/xa.py)."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.xa import (
    XA_SOP_CLASS_UID,
    XAGeometry,
    read_curve_px,
    read_xa_frame,
    read_xa_geometry,
    write_xa,
)

GEOMETRY = XAGeometry(
    primary_angle_deg=-30.0,
    secondary_angle_deg=20.5,
    sid_mm=1100.0,
    sod_mm=750.0,
    pixel_spacing_mm=(0.3, 0.25),
    rows=64,
    cols=48,
    frame_time_ms=66.7,
    table_height_mm=180.0,
)


def _frames(n: int = 15) -> np.ndarray:
    # Frame k is filled with the value 100 * k so the selected frame is recognisable.
    return np.stack([np.full((64, 48), 100.0 * k) for k in range(n)])


def test_geometry_round_trip(tmp_path):
    path = write_xa(tmp_path / "a.dcm", _frames(), GEOMETRY)
    geometry = read_xa_geometry(path)
    assert geometry.primary_angle_deg == -30.0
    assert geometry.secondary_angle_deg == 20.5
    assert geometry.sid_mm == 1100.0
    assert geometry.sod_mm == 750.0
    assert geometry.pixel_spacing_mm == (0.3, 0.25)
    assert (geometry.rows, geometry.cols, geometry.n_frames) == (64, 48, 15)
    assert geometry.frame_time_ms == pytest.approx(66.7)
    assert geometry.table_height_mm == 180.0
    assert geometry.magnification == pytest.approx(1100.0 / 750.0)
    assert geometry.label == "RAO 30 / CRA 20"
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == XA_SOP_CLASS_UID
    assert str(ds.PatientName) == "" and ds.PatientID == ""


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        (
            "DistanceSourceToDetector",
            "DistanceSourceToDetector (0018,1110) is missing; export the run as XA DICOM with its distance "
            "tags, or give the source-to-image distance explicitly (typically 1000-1200 mm)",
        ),
        (
            "PositionerPrimaryAngle",
            "PositionerPrimaryAngle (0018,1510) is missing; export the run from the angiography system as XA "
            "DICOM (not a screenshot or secondary capture), or give the LAO(+)/RAO(-) angle explicitly",
        ),
        (
            "ImagerPixelSpacing",
            "ImagerPixelSpacing (0018,1164) is missing; export the run as XA DICOM with its detector pixel "
            "spacing, or give the detector pixel spacing explicitly (typically 0.15-0.3 mm)",
        ),
        (
            "DistanceSourceToPatient",
            "DistanceSourceToPatient (0018,1111) is missing; export the run as XA DICOM with its distance "
            "tags, or give the source-to-isocentre distance explicitly (typically 700-800 mm)",
        ),
    ],
)
def test_missing_geometry_tag_names_file_tag_and_fix(tmp_path, keyword, message):
    path = write_xa(tmp_path / "a.dcm", _frames(2), GEOMETRY)
    ds = pydicom.dcmread(path)
    delattr(ds, keyword)
    ds.save_as(path)
    with pytest.raises(IVUSInputError) as info:
        read_xa_geometry(path)
    assert str(info.value) == f"{path}: {message}"


def test_missing_tag_can_be_given_explicitly(tmp_path):
    path = write_xa(tmp_path / "a.dcm", _frames(2), GEOMETRY)
    ds = pydicom.dcmread(path)
    del ds.DistanceSourceToDetector
    ds.save_as(path)
    assert read_xa_geometry(path, sid_mm=1200.0).sid_mm == 1200.0


def test_source_farther_than_detector_is_refused(tmp_path):
    bad = XAGeometry(0.0, 0.0, 700.0, 750.0, (0.3, 0.3), 64, 48)
    path = write_xa(tmp_path / "a.dcm", _frames(2), bad)
    with pytest.raises(IVUSInputError) as info:
        read_xa_geometry(path)
    assert str(info.value) == (
        f"{path}: DistanceSourceToPatient (0018,1111) (750 mm) is not smaller than DistanceSourceToDetector "
        "(700 mm); check both distances: the isocentre lies between source and detector"
    )


def test_not_dicom_is_refused(tmp_path):
    path = tmp_path / "a.dcm"
    path.write_text("hello")
    with pytest.raises(IVUSInputError) as info:
        read_xa_geometry(path)
    assert str(info.value).startswith(f"{path}: file is not readable DICOM")


def test_enhanced_xa_angles_in_functional_groups(tmp_path):
    path = write_xa(tmp_path / "a.dcm", _frames(2), GEOMETRY)
    ds = pydicom.dcmread(path)
    del ds.PositionerPrimaryAngle
    position = Dataset()
    position.PositionerPrimaryAngle = "42"
    shared = Dataset()
    shared.PositionerPositionSequence = [position]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.save_as(path)
    assert read_xa_geometry(path).primary_angle_deg == 42.0


def test_frame_selection_user_ecg_middle(tmp_path):
    plain = write_xa(tmp_path / "plain.dcm", _frames(), GEOMETRY)
    gated = write_xa(tmp_path / "gated.dcm", _frames(), GEOMETRY, r_wave_frames=(2, 5, 12))
    middle = read_xa_frame(plain)
    assert (middle.index, middle.selected_by, middle.image[0, 0]) == (7, "middle", 700.0)
    ecg = read_xa_frame(gated)
    assert (ecg.index, ecg.selected_by, ecg.image[0, 0]) == (5, "ecg", 500.0)
    user = read_xa_frame(gated, frame=9)
    assert (user.index, user.selected_by, user.image[0, 0]) == (9, "user", 900.0)
    with pytest.raises(IVUSInputError) as info:
        read_xa_frame(plain, frame=15)
    assert str(info.value) == f"{plain}: frame 15 is outside 0..14; choose a frame between 0 and 14"


def test_frame_selection_from_ecg_waveform(tmp_path):
    path = write_xa(tmp_path / "a.dcm", _frames(), GEOMETRY)
    ds = pydicom.dcmread(path)
    rate_hz = 500.0
    n = int(15 * 0.0667 * rate_hz)
    signal = np.zeros(n, dtype=np.int16)
    for frame in (4, 13):  # R waves at these frames' times
        k = int(round(frame * 0.0667 * rate_hz))
        signal[k - 2 : k + 3] = [200, 600, 1000, 600, 200]
    group = Dataset()
    group.MultiplexGroupTimeOffset = "0"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = 1
    group.NumberOfWaveformSamples = n
    group.SamplingFrequency = str(rate_hz)
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = signal.tobytes()
    ds.WaveformSequence = [group]
    ds.save_as(path)
    frame = read_xa_frame(path)
    assert (frame.index, frame.selected_by) == (4, "ecg")


def test_read_curve_files(tmp_path):
    csv = tmp_path / "c.csv"
    csv.write_text("row,col\n10,20\n11.5,22\n13,24\n")
    np.testing.assert_allclose(read_curve_px(csv), [[10, 20], [11.5, 22], [13, 24]])
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"points_px": [[1, 2], [3, 4]]}))
    np.testing.assert_allclose(read_curve_px(js), [[1, 2], [3, 4]])
    mrk = tmp_path / "c.mrk.json"
    mrk.write_text(
        json.dumps(
            {
                "markups": [
                    {
                        "type": "Curve",
                        "coordinateSystem": "LPS",
                        "controlPoints": [{"position": [6.0, 3.0, 0.0]}, {"position": [7.5, 4.5, 0.0]}],
                    }
                ]
            }
        )
    )
    np.testing.assert_allclose(read_curve_px(mrk, pixel_spacing_mm=(0.3, 0.25)), [[10, 24], [15, 30]])
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    with pytest.raises(IVUSInputError) as info:
        read_curve_px(bad)
    assert str(info.value) == f"{bad}: line 2 is not two numbers ('3,x'); write one 'row,col' pair per line"
