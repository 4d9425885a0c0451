"""Closed minimal-cost paths r(theta) through polar cost images (dynamic programming)."""

from __future__ import annotations

import numpy as np


def dp_closed_path(
    cost: np.ndarray,
    *,
    max_step: int = 3,
    smooth_weight: float = 0.05,
    pad_fraction: float = 0.25,
    step_scale: np.ndarray | None = None,
) -> np.ndarray:
    """Minimal-cost closed path r(theta) through polar cost images, for a batch of frames.

    The path takes one radius per angle, moves at most ``max_step`` radial samples between
    neighbouring angles and pays ``smooth_weight * step**2`` per move. Closure
    (r(0) = r(2 pi)) is obtained by running over the angles with half a turn of wrap-around
    on each side and keeping the middle turn, where the path no longer depends on where
    the run started.

    Parameters
    ----------
    cost : ndarray of shape (F, A, R)
        Cost of each radius at each angle; ``inf`` forbids a sample.
    max_step : int
    smooth_weight : float
    pad_fraction : float
        Wrap-around on each side, as a fraction of a turn.
    step_scale : ndarray of shape (R,) or None
        Divides the step before squaring, per arrival radius: a border far from the catheter
        moves more samples per angle for the same shape, so its steps cost less.

    Returns
    -------
    ndarray of shape (F, A), int
        Radial index of the path at each angle.
    """
    n_f, n_a, n_r = cost.shape
    pad = int(round(pad_fraction * n_a))
    big = np.float32(1e9)
    c = np.where(np.isfinite(cost), cost, big).astype(np.float32)
    steps = np.arange(-max_step, max_step + 1)
    scale = np.ones(n_r, np.float32) if step_scale is None else np.asarray(step_scale, np.float32)
    # penalty[j, r]: arriving at radius r by a step of steps[j]
    penalty = (smooth_weight * (steps.astype(np.float32)[:, None] / scale[None, :]) ** 2).astype(np.float32)
    # a long run over the angles, with wrap-around before and after the turn that is kept
    order = np.arange(-pad, n_a + pad) % n_a
    long = _dp_run(c[:, order, :], steps, penalty, None)
    out = np.empty((n_f, n_a), dtype=np.int64)
    # the run closes where it passes the same radius at the same angle one turn apart: the turn
    # between is a closed path. Of such turns, the one nearest the middle of the run
    ks = np.arange(max(len(order) - n_a, 0))
    same = long[:, ks] == long[:, ks + n_a]
    preference = np.abs(ks - pad)
    for f in range(n_f):
        hits = ks[same[f]]
        if hits.size:
            k = int(hits[np.argmin(preference[same[f]])])
            out[f, (k - pad + np.arange(n_a)) % n_a] = long[f, k : k + n_a]
            continue
        # no turn closes by itself: run one turn plus one angle from the middle turn's first
        # radius and arrive back at it
        r0 = int(long[f, pad])
        ring = c[f : f + 1, np.r_[np.arange(n_a), 0], :].copy()
        ring[:, 0, :] = big
        ring[:, 0, r0] = c[f, 0, r0]
        ring[:, -1, :] = big
        ring[:, -1, r0] = 0.0
        closed = _dp_run(ring, steps, penalty, r0)
        out[f] = closed[0, :n_a]
    return out


def _dp_run(c: np.ndarray, steps: np.ndarray, penalty: np.ndarray, end: int | None) -> np.ndarray:
    """Minimal-cost path through the columns of ``c`` (F, L, R), one radius per column, moving
    by ``steps`` with ``penalty`` (S, R) per move; it ends at radius ``end`` or at the cheapest
    one. Returns (F, L) int radii.

    The forward pass keeps only the accumulated costs (a minimum over the moves, no argmin: an
    argmin over a short axis costs numpy several times more); the move into each column is
    recomputed for the path's own radius while tracing back, from the same float32 sums, so the
    first cheapest move wins as an argmin would have chosen it.

    The costs are held radius-major (L, R, F): each move is a shift of whole contiguous rows of
    F frames. Moves of +s and -s pay the same penalty (it grows with the step's square), and
    rounding is monotonic, so ``min(a, b) + p`` is exactly ``min(a + p, b + p)``: the two are
    compared before the penalty is added once, which halves the sums.
    """
    n_f, n_l, n_r = c.shape
    m = int(steps.max())
    big = np.float32(1e9)
    # acc[i, m + r, f]: cost of the best path to radius r at column i; big beyond either end
    acc = np.empty((n_l, n_r + 2 * m, n_f), dtype=np.float32)
    acc[:, :m] = big
    acc[:, m + n_r :] = big
    cols = np.ascontiguousarray(c.transpose(1, 2, 0))  # (L, R, F)
    acc[0, m : m + n_r] = cols[0]
    pen = np.ascontiguousarray(penalty[:, :, None])  # (S, R, 1)
    symmetric = bool(np.array_equal(steps, -steps[::-1]) and np.array_equal(penalty, penalty[::-1]))
    centre = int(np.flatnonzero(steps == 0)[0]) if symmetric else -1
    tmp = np.empty((n_r, n_f), dtype=np.float32)
    for i in range(1, n_l):
        prev, out = acc[i - 1], acc[i, m : m + n_r]
        if symmetric:
            np.add(prev[m : m + n_r], pen[centre], out=out)
            for d in range(1, m + 1):
                np.minimum(prev[m + d : m + d + n_r], prev[m - d : m - d + n_r], out=tmp)
                tmp += pen[centre + d]
                np.minimum(out, tmp, out=out)
        else:
            np.add(prev[m + steps[0] : m + steps[0] + n_r], pen[0], out=out)
            for j in range(1, len(steps)):
                np.add(prev[m + steps[j] : m + steps[j] + n_r], pen[j], out=tmp)
                np.minimum(out, tmp, out=out)
        out += cols[i]
    path = np.zeros((n_l, n_f), dtype=np.int64)
    path[-1] = np.argmin(acc[-1, m : m + n_r], axis=0) if end is None else end
    # flat offsets of the moves into radius 0 of each frame; the loop is a few small calls
    flat = acc.reshape(n_l, -1)
    moves = (m + steps[None, :]) * n_f + np.arange(n_f)[:, None]  # (F, S)
    arrive = np.ascontiguousarray(penalty.T)  # (R, S)
    for i in range(n_l - 1, 0, -1):
        r = path[i]
        came = flat[i - 1].take(moves + (r * n_f)[:, None]) + arrive[r]
        path[i - 1] = np.minimum(np.maximum(r + steps[came.argmin(axis=1)], 0), n_r - 1)
    return path.T.copy()
