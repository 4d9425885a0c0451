"""A pullback from a volume already in memory (a Slicer volume node's voxels and stored values)."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.images import pullback_from_volume

FRAMES = np.zeros((4, 6, 8), np.uint8)


def test_stored_values_are_used_and_arguments_win():
    stored = {"frame_times_s": [0.0, 0.1, 0.2, 0.3], "pullback_speed_mm_s": 0.5,
              "catheter_center_px": [2.0, 3.0], "acquisition": "motor", "source": {"path": "a.dcm"}}  # fmt: skip
    p = pullback_from_volume(FRAMES, (0.05, 0.04), stored, name="IVUS")
    assert p.pixel_spacing_mm == (0.04, 0.05)  # (row, col) = (J, I) spacing
    assert p.frame_times_s.tolist() == [0.0, 0.1, 0.2, 0.3]
    assert (p.pullback_speed_mm_s, p.catheter_center_px, p.source) == (0.5, (2.0, 3.0), {"path": "a.dcm"})
    assert p.provenance["frame_times_s"].source == "volume node IVUS attribute"
    p = pullback_from_volume(
        FRAMES, (0.05, 0.04), stored, name="IVUS", pixel_spacing_mm=0.03, pullback_speed_mm_s=1.0,
        frame_rate_hz=20.0, catheter_center_px=(1.0, 1.5),
    )  # fmt: skip
    assert p.pixel_spacing_mm == (0.03, 0.03) and p.pullback_speed_mm_s == 1.0
    assert p.frame_times_s == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert p.catheter_center_px == (1.0, 1.5)
    assert p.provenance["frame_times_s"].source == "module parameter: 20.0 Hz"


def test_a_foreign_volume_needs_a_frame_rate_and_gets_defaults():
    with pytest.raises(IVUSInputError) as error:
        pullback_from_volume(FRAMES, (0.05, 0.04), {"frame_times_s": [0.0, 0.1]}, name="loaded")
    assert str(error.value) == "loaded: frame rate is unknown; enter the frame rate (Hz) in the acquisition fields"
    p = pullback_from_volume(FRAMES, (0.05, 0.04), {}, name="loaded", frame_rate_hz=25.0)
    assert p.catheter_center_px == (2.5, 3.5)  # the image centre
    assert p.acquisition == "manual" and p.pullback_speed_mm_s is None
    assert p.source == {"path": "slicer volume node loaded"}
    assert pullback_from_volume(FRAMES, (1, 1), {}, name="v", frame_rate_hz=25.0, pullback_speed_mm_s=0.5).acquisition == "motor"
    with pytest.raises(IVUSInputError, match="^v: image is not a 3D volume"):
        pullback_from_volume(FRAMES[0], (1, 1), {}, name="v", frame_rate_hz=25.0)
