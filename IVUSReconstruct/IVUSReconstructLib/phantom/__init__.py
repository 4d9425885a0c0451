"""Synthetic IVUS pullbacks with known ground truth.

A phantom is a vessel defined by smooth functions of the true arc length ``s`` (lumen and
EEM ellipses with small harmonics, an eccentric plaque, narrowings, calcium arcs), imaged by
a catheter that wanders slowly inside the lumen and moves with the heart beat (or with
respiration, for veins). Frames are built in the polar domain of the catheter (rays x depth)
and scan-converted, so they carry the look of real IVUS: catheter ring-down, blood and
tissue speckle, a dark media band, bright adventitia, depth attenuation, a guidewire with its
shadow, calcium with an acoustic shadow, a circular field of view and burned-in marks.

The ground truth (lumen, vessel and calcium polygons of every frame in frame-plane mm, the
true longitudinal position of every frame, the end-diastolic frames) comes from the same
geometry the images are drawn from. Presets are parameters of the generator only: no
analysis stage may read them.
"""

from ._imaging import CONSOLE_RED
from .generator import compressed_segment_mm, make_phantom, metric_params_for, truth_metrics
from .presets import (
    PRESETS,
    TRUTH_POINTS,
    Appearance,
    CalciumSegment,
    Narrowing,
    Phantom,
    PhantomPreset,
    realistic_appearance,
)

__all__ = [
    "CONSOLE_RED",
    "TRUTH_POINTS",
    "Narrowing",
    "CalciumSegment",
    "PhantomPreset",
    "PRESETS",
    "compressed_segment_mm",
    "Phantom",
    "Appearance",
    "realistic_appearance",
    "make_phantom",
    "metric_params_for",
    "truth_metrics",
]
