"""Polar resampling about the catheter centre and the polar-image operators the cues are built from."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse

from ..errors import IVUSInputError


def _block_mean(frames: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` pixel blocks, (F, H, W) -> (F, h, w) float32.

    Sums strided views in an integer accumulator for 8-bit frames: several times faster than a
    floating-point reshape-mean on a 512 x 512 pullback.
    """
    h, w = shape
    if factor == 1:
        return np.asarray(frames[:, :h, :w], dtype=np.float32)
    if frames.dtype == np.uint8 and factor <= 4:
        # integer sums do not depend on their order: whole rows first (contiguous), then columns
        rows = np.add(
            frames[:, 0 : h * factor : factor, :], frames[:, 1 : h * factor : factor, :], dtype=np.uint16
        )
        for i in range(2, factor):
            rows += frames[:, i : h * factor : factor, :]
        acc = np.add(rows[:, :, 0 : w * factor : factor], rows[:, :, 1 : w * factor : factor])
        for j in range(2, factor):
            acc += rows[:, :, j : w * factor : factor]
        out = acc.astype(np.float32)
        out *= np.float32(1.0 / factor**2)
        return out
    wide = np.float32
    acc = np.zeros((frames.shape[0], h, w), dtype=wide)
    for i in range(factor):
        for j in range(factor):
            acc += frames[:, i : h * factor : factor, j : w * factor : factor]
    return acc.astype(np.float32) * np.float32(1.0 / factor**2)


@dataclass(frozen=True)
class PolarSampler:
    """Precomputed bilinear map from frames to a polar grid about the catheter centre.

    Attributes
    ----------
    n_angles : int
        Angles of the output polar image (counter-clockwise from +x, x along columns).
    radii_mm : ndarray of shape (R,)
        Radius of each polar sample.
    factor : int
        Block-mean downsampling applied to the frames before sampling.
    """

    n_angles: int
    radii_mm: np.ndarray
    factor: int
    supersample: int
    index: np.ndarray  # (4, A*s*R) flat indices into the downsampled frame
    weight: np.ndarray  # (4, A*s*R)
    ds_shape: tuple[int, int]

    @property
    def dr_mm(self) -> float:
        return float(self.radii_mm[1] - self.radii_mm[0])

    @classmethod
    def build(
        cls,
        shape_px: tuple[int, int],
        pixel_spacing_mm: tuple[float, float],
        catheter_center_px: tuple[float, float],
        *,
        n_angles: int = 128,
        n_radii: int = 128,
        supersample: int = 2,
    ) -> PolarSampler:
        """Build the map for frames of ``shape_px``.

        The radial range runs to the nearest image border; its step is chosen so that
        ``n_radii`` samples cover it (never finer than the downsampled pixel).
        """
        h, w = shape_px
        sr, sc = pixel_spacing_mm
        cr, cc = catheter_center_px
        factor = 2 if min(h, w) >= 384 else 1
        reach_mm = min(cr * sr, (h - 1 - cr) * sr, cc * sc, (w - 1 - cc) * sc) - factor * max(sr, sc)
        if reach_mm <= 0:
            raise IVUSInputError(
                "pullback: catheter_center_px lies on the image border; pass the catheter centre inside the frame"
            )
        dr = max(reach_mm / n_radii, factor * min(sr, sc))
        radii = (np.arange(int(reach_mm / dr)) + 0.5) * dr
        theta = (
            2 * np.pi * (np.arange(n_angles * supersample) + 0.5 - supersample / 2) / (n_angles * supersample)
        )
        rr, tt = np.meshgrid(radii, theta)
        row = (cr + rr * np.sin(tt) / sr - (factor - 1) / 2) / factor
        col = (cc + rr * np.cos(tt) / sc - (factor - 1) / 2) / factor
        hd, wd = h // factor, w // factor
        r0 = np.clip(np.floor(row).astype(int), 0, hd - 2)
        c0 = np.clip(np.floor(col).astype(int), 0, wd - 2)
        fr = np.clip(row - r0, 0, 1).ravel()
        fc = np.clip(col - c0, 0, 1).ravel()
        r0, c0 = r0.ravel(), c0.ravel()
        index = np.stack([r0 * wd + c0, r0 * wd + c0 + 1, (r0 + 1) * wd + c0, (r0 + 1) * wd + c0 + 1])
        index = index.astype(np.int32 if hd * wd < 2**31 else np.int64)
        weight = np.stack([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc]).astype(np.float32)
        return cls(n_angles, radii, factor, supersample, index, weight, (hd, wd))

    @functools.cached_property
    def _matrix(self) -> sparse.csr_array | None:
        """The four bilinear taps of each polar sample as rows of a sparse matrix (A*s*R, h*w), or
        None where its product does not reproduce the gather of :meth:`__call__` bit for bit.

        Built on first use (not by :meth:`build`): a map built and used once pays nothing for it.
        Each row holds its taps in order, so the product sums ``0 + w0 x0 + w1 x1 + w2 x2 + w3 x3``
        in float32 as the gather does; a sparse kernel compiled with fused multiply-adds would
        round differently, and is then not used.
        """
        q = self.index.shape[1]
        matrix = sparse.csr_array(
            (self.weight.T.ravel(), self.index.T.ravel(), np.arange(0, 4 * q + 1, 4)),
            shape=(q, self.ds_shape[0] * self.ds_shape[1]),
        )
        rng = np.random.default_rng(0)
        x = rng.random((self.ds_shape[0] * self.ds_shape[1], 3), dtype=np.float32)
        rows = rng.integers(0, q, 512)
        return matrix if np.array_equal((matrix @ x)[rows], self._gather(x, rows)) else None

    def _gather(self, flat: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Polar samples ``rows`` (Q,) of the pixels-major frames ``flat`` (P, F), (Q, F)."""
        # pixels-major (P, F): each bilinear tap gathers a contiguous row of F values instead of
        # F scattered values (3-4x faster gathers)
        out = np.take(flat, self.index[0, rows], axis=0)
        out *= self.weight[0, rows][:, None]
        tap = np.empty_like(out)
        for k in range(1, 4):
            np.take(flat, self.index[k, rows], axis=0, out=tap)
            tap *= self.weight[k, rows][:, None]
            out += tap
        return out

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Polar images of frames (F, H, W) -> (F, A, R), float32."""
        f = self.factor
        frames = np.asarray(frames)
        n = frames.shape[0]
        hd, wd = self.ds_shape
        ds = _block_mean(frames, f, (hd, wd)).reshape(n, -1)
        r = len(self.radii_mm)
        matrix = self._matrix
        if matrix is None:
            out = self._gather(np.ascontiguousarray(ds.T))
            out = out.reshape(self.n_angles, self.supersample, r, n).mean(axis=1)
            return np.ascontiguousarray(out.transpose(2, 0, 1))
        # the sparse product sums the same taps in the same order; on a few frames at a time
        # (pixels-major, as the gather) the transposes stay in cache: twice as fast as a gather
        # of all frames at once, whose transpose of the whole stack cost as much as the gather
        out = np.empty((n, matrix.shape[0]), np.float32)
        for k in range(0, n, 8):
            out[k : k + 8] = (matrix @ np.ascontiguousarray(ds[k : k + 8].T)).T
        return out.reshape(n, self.n_angles, self.supersample, r).mean(axis=2)


def _box(x: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Box mean over (angle, radius), circular in angle; x of shape (F, A, R)."""
    return _boxes(x, size_a, (size_r,))[0]


def _boxes(x: np.ndarray, size_a: int, sizes_r: tuple[int, ...]) -> list[np.ndarray]:
    """:func:`_box` of ``x`` for each radial size of ``sizes_r``: the angular pass (the dearer,
    across the rows) is shared."""
    y = ndimage.uniform_filter1d(x, size=max(1, size_a), axis=1, mode="wrap")
    return [ndimage.uniform_filter1d(y, size=max(1, size_r), axis=2, mode="nearest") for size_r in sizes_r]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Circular runs of True as (start, length)."""
    n = len(mask)
    if mask.all():
        return [(0, n)]
    if not mask.any():
        return []
    shift = int(np.argmin(mask))  # start scanning at a False so runs do not wrap
    m = np.roll(mask, -shift)
    d = np.diff(np.concatenate([[0], m.astype(int), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [((s + shift) % n, e - s) for s, e in zip(starts, ends, strict=False)]


def _local_ncc(a: np.ndarray, b: np.ndarray, size_a: int, size_r: int) -> np.ndarray:
    """Local normalised cross-correlation of two polar stacks (F, A, R).

    Where both windows are flat (the inside of the catheter) the correlation is 1: nothing
    there changes between frames.
    """
    return _ncc(a, b, _moments(a, size_a, size_r), _moments(b, size_a, size_r), size_a, size_r)


def _moments(x: np.ndarray, size_a: int, size_r: int) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance (F, A, R) of a polar stack over the windows of :func:`_local_ncc`."""
    m = _box(x, size_a, size_r)
    # in place: the stacks are large, and fresh temporaries cost their page faults
    v = _box(x * x, size_a, size_r)
    v -= m * m
    return m, np.maximum(v, 0.0, out=v)


def _ncc(
    a: np.ndarray,
    b: np.ndarray,
    moments_a: tuple[np.ndarray, np.ndarray],
    moments_b: tuple[np.ndarray, np.ndarray],
    size_a: int,
    size_r: int,
) -> np.ndarray:
    """:func:`_local_ncc` from the two stacks' :func:`_moments`, which a frame compared with both
    its neighbours (or a neighbour shared by two frames) needs only once."""
    (ma, va), (mb, vb) = moments_a, moments_b
    cov = _box(a * b, size_a, size_r)
    cov -= ma * mb
    denom = va * vb
    np.sqrt(denom, out=denom)
    flat = denom < 1e-3
    denom[flat] = 1.0
    cov /= denom
    cov[flat] = 1.0
    return cov.astype(np.float32, copy=False)


def _max_ncc(
    images: dict[int, np.ndarray], pairs: list[tuple[int, int, int]], size_a: int, size_r: int
) -> np.ndarray:
    """Per frame, the larger :func:`_local_ncc` with either of its neighbours, (F, A, R).

    ``pairs`` holds (frame, previous, next) indices into ``images`` (A, R each). Every image's
    moments and every pair's correlation (symmetric) are computed once, each image in one
    stack: consecutive frames share their neighbours.
    """
    used = sorted({i for p in pairs for i in p})
    row = {i: k for k, i in enumerate(used)}
    stack = np.stack([images[i] for i in used])
    m, v = _moments(stack, size_a, size_r)
    links = sorted({(min(i, j), max(i, j)) for i, p, n in pairs for j in (p, n)})
    a = np.array([row[i] for i, _ in links], dtype=int)
    b = np.array([row[j] for _, j in links], dtype=int)
    ncc = _ncc(stack[a], stack[b], (m[a], v[a]), (m[b], v[b]), size_a, size_r)
    link = {ij: k for k, ij in enumerate(links)}
    first = [link[(min(i, p), max(i, p))] for i, p, _ in pairs]
    second = [link[(min(i, n), max(i, n))] for i, _, n in pairs]
    return np.maximum(ncc[first], ncc[second])


def _step(x: np.ndarray, w: int) -> np.ndarray:
    """Outward step of ``x`` along the last axis: mean over [r, r + w) minus mean over [r - w, r).

    A step of height h between samples r - 1 and r gives h at index r: the border lies half a
    sample inside ``radii_mm[r]``.
    """
    n_r = x.shape[-1]
    cs = np.empty(x.shape[:-1] + (n_r + 1,), np.float32)
    cs[..., 0] = 0.0
    np.cumsum(x, axis=-1, dtype=np.float32, out=cs[..., 1:])
    r = np.arange(n_r)
    lo = np.clip(r - w, 0, n_r)
    hi = np.clip(r + w, 0, n_r)
    mid = cs[..., :n_r]
    # window lengths as float64, the type of the quotient: numpy would cast integers anew for
    # every block of the batch
    inner = (mid - np.take(cs, lo, axis=-1)) / np.maximum(r - lo, 1).astype(np.float64)
    outer = (np.take(cs, hi, axis=-1) - mid) / np.maximum(hi - r, 1).astype(np.float64)
    return (outer - inner).astype(np.float32)


def _subsample(edge: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Parabolic refinement of the edge maximum at each path sample, in samples (F, A)."""
    n_r = edge.shape[-1]
    i = np.clip(path, 1, n_r - 2)
    take = lambda k: np.take_along_axis(edge, (i + k)[..., None], axis=-1)[..., 0]  # noqa: E731
    left, mid, right = take(-1), take(0), take(1)
    denom = left - 2 * mid + right
    offset = np.where(denom < -1e-6, 0.5 * (left - right) / np.where(denom < -1e-6, denom, -1.0), 0.0)
    return path + np.clip(offset, -0.5, 0.5)


def _neighbours(index: int, n_frames: int) -> tuple[int, int] | None:
    """The raw frames compared with ``index``: its neighbours, or the next two at an end."""
    if n_frames < 2:
        return None
    prev = index - 1 if index > 0 else min(index + 2, n_frames - 1)
    nxt = index + 1 if index < n_frames - 1 else max(index - 2, 0)
    return prev, nxt
