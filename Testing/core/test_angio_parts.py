"""The steps of ``reconstruct_centerline`` one at a time: view checks, curve order, matching."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib import angio
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.xa import XAGeometry

NAMES = ("a.json", "b.json")


def geometry(primary: float, secondary: float = 0.0, **kw) -> XAGeometry:
    return XAGeometry(primary, secondary, 1000.0, 750.0, (0.2, 0.2), 512, 512, **kw)


def test_view_pair_checks():
    assert angio._view_pair_warnings(geometry(0.0), geometry(90.0), None) == []
    [close] = angio._view_pair_warnings(geometry(0.0), geometry(20.0), None)
    assert "only 20.0 degrees apart (< 30)" in close
    with pytest.raises(IVUSInputError, match=r"4\.0 degrees apart"):
        angio._view_pair_warnings(geometry(0.0, source="v1.dcm"), geometry(4.0, source="v2.dcm"), None)
    [prone] = angio._view_pair_warnings(geometry(0.0), geometry(90.0, patient_position="HFP", source="v2"), None)
    assert prone.startswith("v2: PatientPosition is HFP")
    moved = (geometry(0.0, table_height_mm=100.0), geometry(90.0, table_height_mm=110.0))
    [table] = angio._view_pair_warnings(*moved, None)
    assert "table height differs between the views (100 vs 110 mm)" in table
    assert angio._view_pair_warnings(*moved, np.zeros(3)) == []  # an offset was given


def test_matched_points_limits():
    distance = np.zeros(101)
    t = np.arange(101.0)  # each curve-1 point meets curve 2 at the same index
    keep, warnings = angio._matched_points(distance, t, 101, 3.0, NAMES)
    assert keep.tolist() == list(range(101)) and warnings == []
    distance[:3] = 10.0  # 3 % unmatched at one end: left out with a warning
    keep, [note] = angio._matched_points(distance, t, 101, 3.0, NAMES)
    assert keep[0] == 3 and note.startswith("3 of 101 points of a.json have no counterpart on b.json")
    distance[:20] = 10.0  # 20 % > 5 %
    with pytest.raises(IVUSInputError, match=r"leave 20% of the vessel without an epipolar match \(81 of 101 points"):
        angio._matched_points(distance, t, 101, 3.0, NAMES)
    # every curve-1 point matched, but only the first half of curve 2: a wrong geometry too
    with pytest.raises(IVUSInputError, match=r"leave 50% of the vessel .* 50% of b\.json's length is matched"):
        angio._matched_points(np.zeros(101), t / 2, 101, 3.0, NAMES)
    with pytest.raises(IVUSInputError, match=r"only 4 points lie on each other's epipolar lines"):
        angio._matched_points(np.r_[np.zeros(4), np.full(1, 9.0)], np.arange(5.0), 5, 3.0, NAMES)


def test_bridge_ill_conditioned_interpolates_along_the_curve():
    t = np.array([0.0, 9.0, 9.0, 3.0, 4.0])
    good = np.array([True, False, False, True, True])
    bridged, [note] = angio._bridge_ill_conditioned(t, good, NAMES)
    assert bridged.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert note.startswith("40% of the vessel runs along the epipolar lines")
    assert angio._bridge_ill_conditioned(t, np.ones(5, bool), NAMES) == (t, [])
    with pytest.raises(IVUSInputError, match="run along the epipolar lines everywhere"):
        angio._bridge_ill_conditioned(t, np.eye(5, dtype=bool)[0], NAMES)


def test_second_curve_reversed_when_traced_the_other_way():
    g1, g2 = geometry(0.0), geometry(90.0)
    s = np.linspace(-20.0, 20.0, 60)
    points = np.column_stack([s, 0.3 * s, 5.0 * np.sin(s / 10.0)])
    c1, c2 = angio.project(points, g1), angio.project(points, g2)
    same, notes = angio._orient_second_curve(c1, c2, g1, g2, None, 3.0, False, NAMES)
    assert same is c2 and notes == []
    fixed, [note] = angio._orient_second_curve(c1, c2[::-1], g1, g2, None, 3.0, True, NAMES)
    assert np.array_equal(fixed, c2) and note == "b.json was traced in the opposite direction to a.json: reversed it"
    with pytest.raises(IVUSInputError, match="b.json: point order runs opposite to a.json"):
        angio._orient_second_curve(c1, c2[::-1], g1, g2, None, 3.0, False, NAMES)
