"""The plan as key/value rows (the scene's plan table) and points at arc lengths (landing-zone lines)."""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.plan import centerline_point_at, plan_rows


def test_plan_rows_leave_the_policy_out():
    plan = {"territory": "coronary", "device": {"length_mm": 18.0}, "policy": {"x": 1}}
    assert plan_rows(plan) == [("territory", "coronary"), ("device.length_mm", "18.0")]


def test_centerline_point_at_an_arc_length():
    cl = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0], [0.0, 10.0, 10.0]])
    assert centerline_point_at(cl, 13.0) == pytest.approx([0.0, 3.0, 10.0])
    assert centerline_point_at(cl, 0.0) == pytest.approx([0.0, 0.0, 0.0])
