"""Parameters of the segmentation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SegmentationOptions:
    """Parameters of :func:`segment_pullback` (lengths in mm, so they hold at any image size)."""

    n_angles: int = 180
    correlation_half_mm: float = 0.06
    correlation_angles: int = 3
    refine_inner_mm: float = 0.08
    refine_outer_mm: float = 0.2
    lumen_edge_mm: float = 0.08
    vessel_edge_mm: float = 0.10
    min_wall_mm: float = 0.08
    max_wall_mm: float = 3.0
    max_slope_mm: float = 0.12
    max_slope_fraction: float = 0.03
    inward_preference: float = 0.6
    vessel_inward_preference: float = 0.5
    enclosed_tissue_per_mm: float = 4.0
    smooth_weight: float = 0.02
    wall_smooth_weight: float = 0.15
    shadow_ratio: float = 0.4
    calcium_depth_fraction: float = 0.5
    ring_correlation: float = 0.5
    # catheters are 0.4-0.6 mm in radius and their ring-down a few tenths of a mm: a near field
    # that stays correlated further out is dark, barely moving blood (20 MHz), not the catheter
    max_ring_mm: float = 1.2
    # median correlation of the near field (just outside the ring-down, over frames spread along
    # the pullback) at which blood counts as not moving between frames: the correlation cue then
    # says nothing and the grey level leads (20 MHz phased array, where blood barely echoes).
    # Phantoms 0.27-0.35 (at most 0.45), a 40-60 MHz rotational console 0.48, 20 MHz set B 0.68-0.70
    still_blood_correlation: float = 0.7
    still_blood_range: float = 0.25
    normal_refine_mm: float = 0.5
    normal_refine_passes: int = 2
    region_refine_mm: float = 0.8
    region_window_mm: float = 0.12
    region_refine_passes: int = 3
    region_refine_min_aspect: float = 2.0
    temporal_median_frames: int = 9
    despike_angles: int = 13
    despike_mm: float = 0.1
    wall_only_inner: bool = True
    wall_blur_mm: float = 0.2
    max_wall_stretch: float = 3.0
    faint_wall_smooth_deg: float = 12.0
    clear_eem_step: float = 0.8
    faint_wall_lumen_smooth_deg: float = 4.0
    border_smooth_deg: float = 4.0
    wall_tilt_harmonics: int = 6
    batch_frames: int = 24
    grey_separation_weight: float = 0.5
    tip_half_angle_deg: float = 15.0
    flattened_aspect: float = 2.0
    flattened_charge: float = 0.25
    ellipse_fill_aspect: float = 2.0
    ellipse_fit_margin_deg: float = 8.0
    # an ostium's sector, and a dent dragged in beside a shadow, leave the border's ellipse by
    # at least branch_excess_mm and branch_excess_fraction of its radius
    branch_excess_mm: float = 0.4
    branch_excess_fraction: float = 0.2
    branch_wall_fraction: float = 0.6
    branch_grow_mm: float = 0.05
    branch_max_deg: float = 120.0
    penumbra: bool = True
    overlay_exclude_mm: float = 1.2
    threads: int = 0  # 0: one per core
