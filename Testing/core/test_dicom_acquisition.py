"""io.dicom.read_acquisition: the header's acquisition values, the same records read_pullback keeps.

The Slicer module shows these before a run (through mrml.acquisition_values); they must be
exactly the values and sources the command line gets, in the same order of precedence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.tag import Tag

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.dicom import read_acquisition, read_pullback, write_pullback
from IVUSReconstructLib.phantom import make_phantom


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    phantom = make_phantom("coronary", length_mm=1.0, size_px=48)
    path = tmp_path_factory.mktemp("acq") / "pullback.dcm"
    write_pullback(phantom.pullback, path)
    return path


def _edited(src: Path, dst: Path, **changes) -> Path:
    ds = pydicom.dcmread(src)
    for keyword, value in changes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        elif keyword == "BSCI_RATE":
            ds.add_new(Tag(0x000B, 0x1001), "DS", value)
        else:
            setattr(ds, keyword, value)
    ds.save_as(dst)
    return dst


def test_same_records_as_read_pullback(written: Path):
    header = read_acquisition(written)
    full = read_pullback(written).provenance
    for key in ("n_frames", "pullback_speed_mm_s", "acquisition", "pixel_spacing_mm"):
        assert header[key].source == full[key].source, key
        assert np.allclose(header[key].value, full[key].value) if key != "acquisition" else (
            header[key].value == full[key].value
        )
    assert header["frame_times_s"].source == full["frame_times_s"].source == "FrameTime (0018,1063)"
    np.testing.assert_allclose(header["frame_times_s"].value, full["frame_times_s"].value)
    assert header["frame_rate_hz"].value == pytest.approx(30.0, rel=1e-6)
    assert header["pullback_speed_mm_s"].value == 0.5


def test_frame_time_vector_wins_over_frame_time_and_cine_rate(written: Path, tmp_path: Path):
    n = read_acquisition(written)["n_frames"].value
    path = _edited(
        written, tmp_path / "v.dcm", FrameTimeVector=[0.0] + [40.0] * (n - 1), FrameTime=None, CineRate=10
    )
    values = read_acquisition(path)
    assert values["frame_times_s"].source == "FrameTimeVector (0018,1065)"
    assert values["frame_rate_hz"].value == pytest.approx(25.0)
    assert values["frame_rate_hz"].source == "FrameTimeVector (0018,1065)"


def test_frame_time_wins_over_cine_rate(written: Path, tmp_path: Path):
    # the module used to read CineRate first; the command line reads FrameTime first
    values = read_acquisition(_edited(written, tmp_path / "c.dcm", FrameTime=50.0, CineRate=10))
    assert (values["frame_rate_hz"].value, values["frame_rate_hz"].source) == (
        pytest.approx(20.0), "FrameTime (0018,1063)"
    )


def test_cine_rate_alone(written: Path, tmp_path: Path):
    values = read_acquisition(_edited(written, tmp_path / "r.dcm", FrameTime=None, CineRate=15))
    assert (values["frame_rate_hz"].value, values["frame_rate_hz"].source) == (
        pytest.approx(15.0), "CineRate (0018,0040)"
    )


def test_vendor_pullback_rate(written: Path, tmp_path: Path):
    values = read_acquisition(
        _edited(written, tmp_path / "b.dcm", IVUSPullbackRate=None, IVUSAcquisition=None, BSCI_RATE="1.0")
    )
    assert (values["pullback_speed_mm_s"].value, values["pullback_speed_mm_s"].source) == (
        1.0, "Boston Scientific private (000B,1001)"
    )


def test_missing_timing_and_speed_are_reported_not_refused(written: Path, tmp_path: Path):
    path = _edited(
        written, tmp_path / "m.dcm", FrameTime=None, CineRate=None, IVUSPullbackRate=None, IVUSAcquisition=None
    )
    values = read_acquisition(path)
    assert values["frame_rate_hz"].value is None
    assert values["frame_times_s"].source == "missing: frame index used as time"
    assert values["pullback_speed_mm_s"].value is None


def test_implausible_value_is_refused_with_the_tag(written: Path, tmp_path: Path):
    path = _edited(written, tmp_path / "n.dcm", FrameTime=-5.0)
    with pytest.raises(IVUSInputError) as info:
        read_acquisition(path)
    assert str(info.value) == f"{path}: FrameTime (0018,1063) is -5.0 ms (must be positive); give the frame rate in frames/s"
    assert info.value.setting == "frame_rate_hz"  # each front end words the fix in its own terms


def test_not_a_dicom_file(tmp_path: Path):
    path = tmp_path / "x.dcm"
    path.write_text("hello")
    with pytest.raises(IVUSInputError, match=r"x.dcm: file is not a DICOM file"):
        read_acquisition(path)
