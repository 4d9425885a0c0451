"""Keyframes: borders corrected by a reader on a few frames, carried to the frames between.

A keyframe's borders are kept exactly. Every other analysed frame is traced again with a prior:
its radius in each direction is expected within a zone around the radii interpolated (by
analysed frame) between the keyframes on either side, or taken from the nearest one beyond the
last. Inside the zone the image alone places the border; beyond it a cost in the same dynamic
programming rules out the far-off edges (the adventitia's outer edge, an echolucent pool, the
bright speckle inside the lumen) that the automatic trace can take. The zone widens with the
distance to the nearest keyframe, and with no keyframe at all nothing changes.
"""

from __future__ import annotations

import numpy as np

from ..errors import IVUSInputError
from ..geometry import ray_radii
from ..types import ContourSet, FrameContours, Pullback


def to_pullback_plane(keyframes: ContourSet, pullback: Pullback, *, name: str = "keyframes") -> ContourSet:
    """The keyframes in this pullback's frame plane (mm about its catheter centre).

    A contour file records its own catheter centre and pixel spacing when it came from images:
    its points are mapped through those pixels into this pullback's plane, not assumed to share
    it. Files without them (frame-plane mm of another tool) are taken as they are.

    Raises
    ------
    IVUSInputError
        A keyframe outside the pullback's frames, or whose lumen lies outside its vessel.
    """
    n = pullback.n_frames
    src_sp, src_c = keyframes.pixel_spacing_mm, keyframes.catheter_center_px
    dst_sp, dst_c = pullback.pixel_spacing_mm, pullback.catheter_center_px
    same = src_sp is None or src_c is None or (
        np.allclose(src_sp, dst_sp) and np.allclose(src_c, dst_c)
    )

    def move(points: np.ndarray | None) -> np.ndarray | None:
        if points is None or same:
            return points
        p = np.asarray(points, float)
        col = src_c[1] + p[:, 0] / src_sp[1]
        row = src_c[0] + p[:, 1] / src_sp[0]
        return np.column_stack([(col - dst_c[1]) * dst_sp[1], (row - dst_c[0]) * dst_sp[0]])

    out = []
    for f in keyframes.frames:
        if not 0 <= f.index < n:
            raise IVUSInputError(
                f"{name}: frame {f.index} is outside the pullback's frames 0-{n - 1}; "
                "give keyframes of this pullback (0-based frame numbers)"
            )
        lumen, vessel = move(f.lumen), move(f.vessel)
        if lumen is not None and vessel is not None:
            r_l, r_v = (ray_radii(p, np.zeros(2), 90) for p in (lumen, vessel))
            if np.any(r_l > r_v + 1e-6):
                raise IVUSInputError(
                    f"{name}: frame {f.index}: the lumen lies outside the vessel in "
                    f"{int(np.sum(r_l > r_v + 1e-6))} of 90 directions; correct the borders of that frame"
                )
        out.append(FrameContours(index=f.index, lumen=lumen, vessel=vessel, phase=f.phase, source="edited"))
    return ContourSet(frames=tuple(out), pixel_spacing_mm=dst_sp, catheter_center_px=dst_c)


def interpolate_prior(known: dict[int, np.ndarray], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prior radii (F, A) and the distance (F,) to the nearest keyframe, for each frame.

    Parameters
    ----------
    known : dict of int to ndarray of shape (A,)
        Keyframe index to its border's radii (mm).
    frames : ndarray of shape (F,), int

    Returns
    -------
    prior : ndarray of shape (F, A), NaN rows where there is no keyframe
    distance : ndarray of shape (F,), in frames (inf where there is no keyframe)
    """
    keys = np.array(sorted(known))
    n_a = len(next(iter(known.values()))) if known else 1
    prior = np.full((len(frames), n_a), np.nan)
    distance = np.full(len(frames), np.inf)
    if not keys.size:
        return prior, distance
    stack = np.stack([known[k] for k in keys])
    for i, f in enumerate(np.asarray(frames, int)):
        after = int(np.searchsorted(keys, f))
        if after < len(keys) and keys[after] == f:
            prior[i], distance[i] = stack[after], 0.0
            continue
        before = after - 1
        if before >= 0 and after < len(keys):
            t = (f - keys[before]) / (keys[after] - keys[before])
            prior[i] = (1 - t) * stack[before] + t * stack[after]
            distance[i] = min(f - keys[before], keys[after] - f)
        else:
            nearest = after if before < 0 else before
            prior[i] = stack[nearest]
            distance[i] = abs(f - keys[nearest])
    return prior, distance


def prior_cost(
    prior_mm: np.ndarray, width_mm: np.ndarray, radii_mm: np.ndarray, weight: float, *, scale_mm: float = 0.1
) -> np.ndarray:
    """Cost (F, A, R) of each radius against the prior (``width_mm`` (F, A)), 0 where there is
    no prior.

    Free within ``width_mm`` of the prior (the borders change between keyframes, and the image
    places them there); beyond, ``weight * (excess / scale_mm)**2``, capped at 9 ``weight`` so
    that a strong edge far off can still win.
    """
    excess = np.maximum(np.abs(radii_mm[None, None, :] - prior_mm[..., None]) - width_mm[..., None], 0.0)
    cost = weight * np.minimum((excess / scale_mm) ** 2, 9.0)
    return np.nan_to_num(cost, nan=0.0).astype(np.float32)


def keyframe_priors(
    keyframes: ContourSet, frames: np.ndarray, n_angles: int, *, band_mm: float, band_per_frame: float
) -> dict[str, np.ndarray]:
    """Priors of every analysed frame from the keyframes (already in the pullback's plane).

    The free zone's half-width is ``band_mm`` plus ``band_per_frame`` of the prior radius per
    analysed frame of distance to the nearest keyframe: borders change in proportion to the
    vessel's size (a vein's compression moves them by millimetres), and distances are counted in
    analysed frames (ranks in ``frames``), so gated frames a beat apart count as neighbours.

    Returns
    -------
    dict with ``lumen``, ``vessel`` (F, A) prior radii (NaN rows: no keyframe of that border),
    ``lumen_width``, ``vessel_width`` (F, A) mm, and ``edited`` (F,) bool.
    """
    rank = {int(f): k for k, f in enumerate(frames)}
    out: dict[str, np.ndarray] = {"edited": np.isin(frames, [f.index for f in keyframes.frames])}
    for border in ("lumen", "vessel"):
        known = {
            rank[f.index]: ray_radii(np.asarray(getattr(f, border)), np.zeros(2), n_angles)
            for f in keyframes.frames
            if getattr(f, border) is not None
        }
        prior, distance = interpolate_prior(known, np.arange(len(frames)))
        out[border] = prior
        # no keyframe of this border: no prior, and its width is never used
        near = np.where(np.isfinite(distance), distance, 0.0)[:, None]
        out[f"{border}_width"] = np.where(np.isfinite(prior), band_mm + band_per_frame * near * prior, np.inf)
    return out


def keep_keyframes(
    radii_mm: np.ndarray, priors: dict[str, np.ndarray], border: str
) -> np.ndarray:
    """Radii (F, A) with every keyframe's own border put back (the rows the reader drew)."""
    rows = priors["edited"] & np.isfinite(priors[border]).all(axis=1)
    return np.where(rows[:, None], priors[border], radii_mm)
