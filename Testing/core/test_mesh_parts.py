"""The parts of ``mesh.build_meshes`` one at a time, on straight tubes.

Rings are circles in planes z = const, so every segment, fraction and inside test has a
closed-form answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.geometry import polar_polygon
from IVUSReconstructLib.mesh import (
    _per_frame_values,
    _point_values,
    _posed_frames,
    _RingBuffer,
)
from IVUSReconstructLib.types import ContourSet, FrameContours, FramePoses


def circle_rings(z_mm: np.ndarray, radius_mm: float, n: int = 64) -> np.ndarray:
    """Counter-clockwise circles (F, n, 3) about the z axis at heights ``z_mm``."""
    a = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    ring = np.column_stack([radius_mm * np.cos(a), radius_mm * np.sin(a), np.zeros(n)])
    return np.stack([ring + [0.0, 0.0, z] for z in z_mm])


def straight_poses(frame_index, arc_mm) -> FramePoses:
    """Frames on the z axis at their arc length, frame-plane x = RAS x, y = RAS y."""
    f = len(frame_index)
    origin = np.column_stack([np.zeros(f), np.zeros(f), arc_mm])
    axes = np.broadcast_to(np.eye(3)[:, :2], (f, 3, 2)).copy()
    return FramePoses(
        frame_index=np.asarray(frame_index),
        arc_length_mm=np.asarray(arc_mm, float),
        origin_ras_mm=origin,
        axes_ras=axes,
        normal_ras=np.tile([0.0, 0.0, 1.0], (f, 1)),
        offset_mm=np.zeros((f, 2)),
    )


def test_posed_frames_sorted_by_arc_length_unposed_skipped():
    frames = tuple(FrameContours(i, polar_polygon(np.full(8, 1.0))) for i in (5, 6, 7, 8))
    poses = straight_poses([8, 6, 5], [0.5, 1.0, 2.0])  # frame 7 has no pose
    columns, rows, frame_idx = _posed_frames(ContourSet(frames), poses)
    assert frame_idx.tolist() == [8, 6, 5] and columns.tolist() == [3, 1, 0] and rows.tolist() == [0, 1, 2]
    with pytest.raises(IVUSInputError, match=r"only 1 frame\(s\) have a position on the centerline"):
        _posed_frames(ContourSet(frames[:1]), poses)


def test_ring_buffer_places_rings_and_cap_centres():
    lumen = np.stack([polar_polygon(np.full(8, 1.0))] * 3)
    vessel = np.stack([polar_polygon(np.full(8, 2.0))] * 3)
    rings = _RingBuffer.place(
        lumen, vessel, straight_poses([0, 1, 2], [0.0, 1.0, 2.0]), np.arange(3), fix_folds=True
    )
    assert (rings.f, rings.n, rings.block, rings.lumen_at, rings.n_sets) == (3, 8, 26, 26, 2)
    assert np.allclose(rings.vessel[:, :, 2], [[0.0], [1.0], [2.0]])
    assert np.allclose(np.linalg.norm(rings.lumen[..., :2], axis=2), 1.0)
    assert np.allclose(np.linalg.norm(rings.points[: 3 * 8, :2], axis=1), 2.0)  # the vessel block first
    assert np.allclose(
        rings.points[[24, 25, 50, 51]], [[0, 0, 0], [0, 0, 2], [0, 0, 0], [0, 0, 2]], atol=1e-12
    )
    assert not rings.folded.any() and np.allclose(rings.centre, [0.0, 0.0, 1.0])


def test_per_frame_values_keep_numeric_columns_and_compute_burden():
    per_frame = {
        "frame": np.arange(4),
        "lumen_area_mm2": np.array([1.0, 2.0, 3.0, 4.0]),
        "label": np.array(["a", "b", "c", "d"]),
        "short": np.array([1.0, 2.0]),
    }
    columns = np.array([2, 0, 3])
    values = _per_frame_values(per_frame, columns, 4, np.full(3, 1.0), np.array([4.0, 2.0, 0.0]))
    assert sorted(values) == ["lumen_area_mm2", "plaque_burden_percent"]
    assert values["lumen_area_mm2"].tolist() == [3.0, 1.0, 4.0]
    assert values["plaque_burden_percent"][:2].tolist() == [75.0, 50.0] and np.isnan(
        values["plaque_burden_percent"][2]
    )
    given = _per_frame_values(
        {"plaque_burden_percent": np.array([10.0, 20.0])}, np.array([1]), 2, np.ones(1), None
    )
    assert given["plaque_burden_percent"].tolist() == [20.0]
    assert np.isnan(_per_frame_values(None, columns, 4, np.ones(3), None)["plaque_burden_percent"]).all()


def test_point_values_repeat_per_ring_and_caps_take_end_rings():
    lumen = np.stack([polar_polygon(np.full(4, 1.0))] * 3)
    rings = _RingBuffer.place(
        lumen, None, straight_poses([0, 1, 2], [0.0, 1.0, 2.0]), np.arange(3), fix_folds=True
    )
    per_ring = _point_values(rings, np.array([7, 8, 9]), dtype=np.int32)
    assert per_ring.tolist() == [7] * 4 + [8] * 4 + [9] * 4 + [7, 9]
    thickness = np.arange(12.0).reshape(3, 4)
    thickness[2] = np.nan
    per_point = _point_values(rings, None, dtype=float, thickness_sets=[thickness])
    assert per_point[:8].tolist() == list(range(8)) and per_point[12] == 1.5 and np.isnan(per_point[13])
