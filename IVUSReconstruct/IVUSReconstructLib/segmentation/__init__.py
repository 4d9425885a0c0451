"""Automatic lumen and vessel (EEM) segmentation of IVUS frames.

Every border is a closed path r(theta) in the polar image about the catheter centre, found by
dynamic programming over the angles with a smoothness penalty and refined to sub-sample
precision. The cues are those a reader uses on real pullbacks:

1. **Blood moves, tissue stays.** Blood speckle decorrelates completely between consecutive
   raw frames (at 20-60 MHz and 15-30 frames/s), while wall speckle is stable. The local
   normalised cross-correlation of each analysed frame with its raw neighbours is ~0 in the
   lumen and ~1 in tissue; the lumen border is the first step from one to the other outside
   the catheter. The stationary catheter and ring-down look like tissue; their extent is the
   near field that stays correlated in every direction of every frame and is excluded.
   Without neighbours (a single frame) the step of the local contrast is used instead.
2. **The EEM is where dark media meets bright adventitia**: the strongest dark-to-bright
   step of the log intensity outside the lumen (beyond a minimum wall), nearest first.
3. **Shadows**: a sector whose far field is much darker than the other directions of the same
   frame hides what lies behind its reflector. A reflector beyond the lumen border is calcium
   (its arc is measured at the lumen centroid), one inside the lumen is the guidewire. Borders
   in hidden sectors are filled from a low-order Fourier fit of the visible part, and the frame
   is marked less confident. A border that dives beside a shadow is hidden with it.
4. **Sequence**: on runs of consecutive frames each direction's radius is median-filtered over
   neighbouring frames. Sparse (gated) frames are left alone: a beat apart, a real narrowing
   or respiratory motion changes the border more than any consistency test could allow.
5. **What a lumen may enclose**: a border is charged for the bright, stable tissue it would
   enclose, so the step from dark media to bright adventitia (which looks like blood meeting
   wall) does not win over the thin plaque in front of it.
6. **Side branches**: where the lumen opens into a branch, lumen and EEM leave the ellipses
   of the rest of the vessel outwards together over one sector (plaque moves the lumen alone).
   The reader closes the main vessel across the ostium; so does the fill of that sector.

Nothing here depends on absolute grey levels: features are correlations, contrasts
normalised per frame, and comparisons between directions of the same frame.

The package, by layer (each module uses only those above it):

- ``polar``: the polar map about the catheter and the operators on polar images (box means,
  local correlation, radial steps, sub-sample peaks);
- ``paths``: closed minimal-cost paths r(theta) by dynamic programming;
- ``shapes``: shape measures of closed borders (elongation, axis ends, normals);
- ``options``: :class:`SegmentationOptions`, grouped by cue;
- ``shadows``: shadows and calcium (cue 3), ostia (cue 6), and the fill of hidden sectors;
- ``lumen``: the ring-down, the trust in the correlation and the lumen trace (cues 1 and 5);
- ``eem``: the EEM trace (cue 2);
- ``refine``: frame-plane refinements of a lumen border running along the rays;
- ``confidence``: per-frame confidence;
- ``segmenter``: the shared state of one pullback, batches, the sequence filters (cue 4) and
  :func:`segment_pullback`.
"""

from __future__ import annotations

from .options import SegmentationOptions
from .paths import dp_closed_path
from .polar import PolarSampler
from .segmenter import segment_pullback

__all__ = [
    "PolarSampler",
    "SegmentationOptions",
    "dp_closed_path",
    "segment_pullback",
]
