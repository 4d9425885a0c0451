"""The segmentation's fast paths give bit for bit what the plain computations give.

Each speed-up of the segmentation (issue 16: >= 50 frames/s at 512 x 512) reorders memory or
skips work that cannot change a value; these tests hold each one to the plain formulation it
replaced, on inputs where a slip would show (borders leaving the image, ties, frames sharing
neighbours). Exact equality, not a tolerance: a speed-up must not move a border.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from IVUSReconstructLib.segmentation import PolarSampler, SegmentationOptions, dp_closed_path
from IVUSReconstructLib.segmentation.eem import _wall_step
from IVUSReconstructLib.segmentation.lumen import _dark_tissue, _field_percentile, _separation
from IVUSReconstructLib.segmentation.paths import _dp_run
from IVUSReconstructLib.segmentation.polar import _block_mean, _box, _local_ncc, _max_ncc, _step
from IVUSReconstructLib.segmentation.refine import _Smoothed
from IVUSReconstructLib.segmentation.shadows import _ellipse_radii, _fill_hidden, _penumbra
from IVUSReconstructLib.segmentation.shapes import _aspect_ratio


def _plain_dp_run(c, steps, penalty, end):
    """The argmin-per-column DP that ``_dp_run`` replaced."""
    n_f, n_l, n_r = c.shape
    m = int(steps.max())
    big = np.float32(1e9)
    acc = c[:, 0, :].copy()
    back = np.zeros((n_l, n_f, n_r), dtype=np.int64)
    padded = np.full((n_f, n_r + 2 * m), big, dtype=np.float32)
    cand = np.empty((len(steps), n_f, n_r), dtype=np.float32)
    for i in range(1, n_l):
        padded[:, m : m + n_r] = acc
        for j, s in enumerate(steps):
            cand[j] = padded[:, m + s : m + s + n_r] + penalty[j][None, :]
        arg = np.argmin(cand, axis=0)
        back[i] = arg
        acc = np.take_along_axis(cand, arg[None], axis=0)[0] + c[:, i, :]
    path = np.zeros((n_l, n_f), dtype=np.int64)
    path[-1] = np.argmin(acc, axis=1) if end is None else end
    rows = np.arange(n_f)
    for i in range(n_l - 1, 0, -1):
        path[i - 1] = np.clip(path[i] + steps[back[i][rows, path[i]]], 0, n_r - 1)
    return path.T


def test_dp_run_takes_the_plain_argmin_path_ties_included():
    rng = np.random.default_rng(3)
    steps = np.arange(-3, 4)
    penalty = (0.05 * (steps[:, None] / np.linspace(1.0, 4.0, 40)[None, :]) ** 2).astype(np.float32)
    # quantised costs make many exact ties, where the first cheapest move must win as before
    cost = (np.round(rng.random((5, 70, 40)) * 4) / 4).astype(np.float32)
    cost[:, :, :4] = 1e9
    for end in (None, 17):
        assert np.array_equal(_dp_run(cost, steps, penalty, end), _plain_dp_run(cost, steps, penalty, end))


def test_dp_closed_path_of_random_costs_is_closed_and_within_the_step():
    rng = np.random.default_rng(5)
    cost = rng.random((4, 60, 30)).astype(np.float32)
    path = dp_closed_path(cost, max_step=2)
    assert np.all(np.abs(np.diff(np.c_[path, path[:, :1]], axis=1)) <= 2)


def test_polar_sampler_equals_the_frame_major_gather():
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (3, 120, 130)).astype(np.uint8)
    sampler = PolarSampler.build((120, 130), (0.05, 0.05), (61.3, 64.8), n_angles=36, n_radii=50)
    f = sampler.factor
    hd, wd = sampler.ds_shape
    ds = frames[:, : hd * f, : wd * f].astype(np.float32)
    flat = ds.reshape(3, -1)
    out = np.zeros((3, sampler.index.shape[1]), dtype=np.float32)
    for k in range(4):
        out += flat[:, sampler.index[k]] * sampler.weight[k]
    plain = out.reshape(3, sampler.n_angles, sampler.supersample, -1).mean(axis=2)
    assert np.array_equal(sampler(frames), plain)


def test_polar_sampler_sparse_product_equals_its_gather_at_any_batch_size():
    rng = np.random.default_rng(23)
    frames = rng.integers(0, 256, (11, 400, 390)).astype(np.uint8)  # block mean 2, chunks of 8 + 3
    sampler = PolarSampler.build((400, 390), (0.03, 0.03), (201.7, 188.2), n_angles=90, n_radii=80)
    assert sampler._matrix is not None  # the product reproduces the gather on this machine
    fast = sampler(frames)
    gather = PolarSampler.build((400, 390), (0.03, 0.03), (201.7, 188.2), n_angles=90, n_radii=80)
    gather.__dict__["_matrix"] = None  # as where the sparse kernel rounds otherwise
    assert np.array_equal(fast, gather(frames))
    # a frame's polar image does not depend on the frames sampled with it
    assert np.array_equal(sampler(frames[9:10])[0], fast[9])


def test_block_mean_of_bytes_equals_the_float_mean():
    rng = np.random.default_rng(11)
    for factor, shape in ((2, (2, 101, 97)), (3, (2, 64, 65)), (4, (1, 40, 44))):
        frames = rng.integers(0, 256, shape).astype(np.uint8)
        h, w = shape[1] // factor, shape[2] // factor
        blocks = frames[:, : h * factor, : w * factor].reshape(shape[0], h, factor, w, factor)
        plain = blocks.astype(np.float32).sum(axis=(2, 4)) * np.float32(1.0 / factor**2)
        assert np.array_equal(_block_mean(frames, factor, (h, w)), plain)


def test_step_equals_the_window_means_around_each_sample():
    rng = np.random.default_rng(13)
    x = rng.random((2, 3, 25)).astype(np.float32)
    w = 4
    cs = np.concatenate([np.zeros((2, 3, 1), np.float32), np.cumsum(x, axis=-1, dtype=np.float32)], axis=-1)
    r = np.arange(25)
    lo, hi = np.clip(r - w, 0, 25), np.clip(r + w, 0, 25)
    inner = (cs[..., r] - cs[..., lo]) / np.maximum(r - lo, 1)
    outer = (cs[..., hi] - cs[..., r]) / np.maximum(hi - r, 1)
    assert np.array_equal(_step(x, w), (outer - inner).astype(np.float32))


def test_max_ncc_equals_both_neighbours_correlated_one_by_one():
    rng = np.random.default_rng(17)
    images = {i: rng.random((12, 20)).astype(np.float32) for i in range(8)}
    # consecutive frames share their neighbours; an end frame takes the next two
    triples = [(0, 2, 1), (1, 0, 2), (2, 1, 3), (5, 4, 6)]
    got = _max_ncc(images, triples, 5, 3)
    for k, (i, p, n) in enumerate(triples):
        a, b, c = images[i][None], images[p][None], images[n][None]
        assert np.array_equal(got[k], np.maximum(_local_ncc(a, b, 5, 3), _local_ncc(a, c, 5, 3))[0])


def test_smoothed_box_samples_equal_the_whole_frame_filtered():
    rng = np.random.default_rng(19)
    frame = rng.integers(0, 256, (90, 80)).astype(np.uint8)
    whole = ndimage.gaussian_filter(frame.astype(np.float32), sigma=1.0)
    previous = None
    # inside, across the border and wholly outside the image (clamped as mode "nearest" does)
    for centre, spread in (((40, 40), 6.0), ((3, 70), 9.0), ((95, 85), 3.0), ((45, 40), 8.0)):
        rows = centre[0] + spread * rng.standard_normal(60)
        cols = centre[1] + spread * rng.standard_normal(60)
        previous = _Smoothed.covering(frame, rows, cols, previous)
        plain = ndimage.map_coordinates(whole, [rows, cols], order=1, mode="nearest")
        assert np.array_equal(previous.sample(rows, cols), plain)


def test_penumbra_memo_returns_the_same_answer_and_a_private_copy():
    n = 90
    theta = 2 * np.pi * np.arange(n) / n
    radii = 2.0 + 0.3 * np.cos(theta)
    shadow = np.zeros(n, bool)
    shadow[10:15] = True
    radii[8:18] -= 0.6  # the trace dragged into the shadow
    opts = {"min_dent_mm": 0.4, "min_dent_fraction": 0.2, "grow_mm": 0.05}
    memo: dict = {}
    first = _penumbra(radii, shadow, **opts, memo=memo)
    first[:] = False  # a caller's change must not reach the memo
    again = _penumbra(radii, shadow, **opts, memo=memo)
    assert len(memo) == 1
    assert np.array_equal(again, _penumbra(radii, shadow, **opts))
    assert again[8:18].all() and not again[30:].any()


def test_field_percentile_memo_answers_as_numpy_and_only_the_same_question():
    rng = np.random.default_rng(29)
    x = rng.random((3, 20, 30)).astype(np.float32)
    memo: dict = {}
    first = _field_percentile(x, 4, 75, memo)
    first[:] = -1.0  # a caller's change must not reach the memo
    plain = np.percentile(x[..., 4:].reshape(3, -1), 75, axis=1)
    assert np.array_equal(_field_percentile(x, 4, 75, memo), plain) and plain.dtype == np.float32
    # asked together, numpy answers in float64: not the single question's answer
    both = _field_percentile(x, 4, [25, 75], memo)
    assert np.array_equal(both, np.percentile(x[..., 4:].reshape(3, -1), [25, 75], axis=1))
    assert both.dtype == np.float64 and len(memo) == 2
    # another start, or another array of the same values, is another question
    assert np.array_equal(
        _field_percentile(x, 9, 75, memo), np.percentile(x[..., 9:].reshape(3, -1), 75, axis=1)
    )
    assert np.array_equal(_field_percentile(x[:2].copy(), 4, 75, memo), plain[:2])
    assert len(memo) == 4


class _Grid:
    """The sampling a stage reads from the segmenter: radial step and samples per mm."""

    def __init__(self, dr: float, n_r: int):
        self.dr, self.n_r = dr, n_r

    def samples(self, mm: float, minimum: int = 1) -> int:
        return max(minimum, int(round(mm / self.dr)))


def test_separation_equals_the_masks_compared_radius_by_radius():
    rng = np.random.default_rng(31)
    for n_f, n_a, n_r, start in ((3, 17, 40, 0), (2, 30, 90, 11), (1, 8, 12, 5)):
        seg = _Grid(0.04, n_r)
        smooth = (2 * rng.random((n_f, n_a, n_r)) - 1).astype(np.float32)
        path = rng.integers(0, n_r, (n_f, n_a))
        path[0, :3] = [0, start, n_r - 1]  # at the catheter, at the ring-down, at the field's edge
        r = np.arange(n_r)[None, None, :]
        inside = (r >= start) & (r < path[..., None])
        outside = (r >= path[..., None]) & (r < path[..., None] + seg.samples(0.3, 3))
        mean_in = (smooth * inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1)
        mean_out = (smooth * outside).sum(axis=(1, 2)) / np.maximum(outside.sum(axis=(1, 2)), 1)
        got = _separation(seg, smooth, path, start)
        assert got.dtype == (mean_out - mean_in).dtype and np.array_equal(got, mean_out - mean_in)


def test_wall_step_equals_the_window_sums_gathered_per_ray():
    rng = np.random.default_rng(37)
    x = rng.random((2, 9, 50)).astype(np.float32)
    edge = rng.random((2, 9, 50)).astype(np.float32)
    wall_start = rng.integers(0, 50, (2, 9))
    wall_start[0, :2] = [0, 49]
    w, n_r = 4, 50
    cs = np.concatenate([np.zeros((2, 9, 1), np.float32), np.cumsum(x, axis=-1, dtype=np.float32)], axis=-1)
    r = np.arange(n_r)[None, None, :]
    lo = np.clip(np.maximum(r - w, wall_start[..., None]), 0, np.maximum(r - 1, 0))
    hi = np.minimum(r + w, n_r)
    at_r = np.take_along_axis(cs, np.broadcast_to(r, x.shape), -1)
    inner = (at_r - np.take_along_axis(cs, lo, -1)) / np.maximum(r - lo, 1)
    outer = (np.take_along_axis(cs, np.broadcast_to(hi, x.shape), -1) - at_r) / np.maximum(hi - r, 1)
    plain = np.where(r > wall_start[..., None], outer - inner, edge).astype(np.float32)
    assert np.array_equal(_wall_step(x, w, wall_start, edge), plain)


def test_fill_hidden_margin_equals_the_union_of_rolled_masks():
    n = 60
    theta = 2 * np.pi * np.arange(n) / n
    # a flattened border (ellipse fill) and a round one (chords), hidden across the wrap-around
    filled_from_ellipse = 0
    for radii in (2.0 + 1.2 * np.cos(2 * theta), 2.0 + 0.05 * np.sin(3 * theta)):
        hidden = np.zeros(n, bool)
        hidden[[0, 1, 2, 57, 58, 59, 30]] = True
        for margin in (0, 1, 4, 70):
            near = np.logical_or.reduce([np.roll(hidden, k) for k in range(-margin, margin + 1)])
            got = _fill_hidden(radii, hidden, long_run=10, ellipse_aspect=1.5, fit_margin=margin)
            expected = _fill_hidden(radii, hidden, long_run=10, ellipse_aspect=np.inf)
            if (~near).sum() >= 12:
                fitted = _ellipse_radii(radii.astype(float), ~near)
                if fitted is not None and _aspect_ratio(fitted[None])[0] >= 1.5:
                    expected = radii.astype(float).copy()
                    expected[hidden] = fitted[hidden]
            assert np.array_equal(got, expected)
            filled_from_ellipse += int(not np.array_equal(expected, _fill_hidden(radii, hidden, long_run=10)))
    assert filled_from_ellipse >= 2  # the margin decided which directions the ellipse was fitted to


def test_dark_tissue_memo_gives_each_bright_layer_its_own_answer():
    rng = np.random.default_rng(41)
    seg = _Grid(0.04, 60)
    seg.o = SegmentationOptions()
    seg.angles = lambda deg: deg * 36 / 360.0
    grey = (3.0 + rng.random((2, 36, 60))).astype(np.float32)
    grey[:, 10:20, 20:30] -= 2.0  # a pool darker than blood in front of the wall
    blood = (np.full(2, 3.2), np.full(2, 3.5), np.full(2, 3.8))
    memo: dict = {}
    for bright in (rng.random((2, 36, 60)).astype(np.float32), np.ones((2, 36, 60), np.float32)):
        plain = _dark_tissue(seg, grey, bright, blood)
        assert plain[:, 12:18, 22:28].max() > 0  # the pool is found
        assert np.array_equal(_dark_tissue(seg, grey, bright, blood, memo), plain)
    assert len(memo) == 1  # the darkness, shared by both layers


def test_local_ncc_in_place_equals_the_plain_formula_flat_windows_included():
    rng = np.random.default_rng(43)
    for dtype in (np.float32, np.float64):
        a = rng.random((2, 30, 40)).astype(dtype)
        b = rng.random((2, 30, 40)).astype(dtype)
        a[:, :10, :10] = 0.5  # flat in both: correlation 1
        b[:, :10, :10] = 0.25
        ma, mb = _box(a, 5, 3), _box(b, 5, 3)
        va = np.maximum(_box(a * a, 5, 3) - ma * ma, 0.0)
        vb = np.maximum(_box(b * b, 5, 3) - mb * mb, 0.0)
        cov = _box(a * b, 5, 3) - ma * mb
        denom = np.sqrt(va * vb)
        flat = denom < 1e-3
        plain = np.where(flat, 1.0, cov / np.where(flat, 1.0, denom)).astype(np.float32)
        got = _local_ncc(a, b, 5, 3)
        assert got.dtype == np.float32 and np.array_equal(got, plain)
        assert (got[:, 2:8, 2:8] == 1.0).all()
