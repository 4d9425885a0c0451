"""Parameters of the segmentation, grouped by the cue they tune.

Lengths are in mm and angles in degrees, so that they hold at any image size and any number of
directions; "directions" counts polar angles (``n_angles`` per turn), "samples" radial samples.
Costs are in the units of the dynamic-programming cost images, where an edge of full strength
costs 0 and no edge 1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class SegmentationOptions:
    """Parameters of :func:`segment_pullback`. Every field is keyword-only; the defaults are the
    tuned values (phantoms and the real pullbacks of ``../shared/data``)."""

    # ------------------------------------------------------------------ polar grid
    n_angles: int = 180
    """Points per contour, i.e. polar directions per turn (count)."""

    # ------------------------------------------------------------------ catheter, ring-down, correlation
    correlation_half_mm: float = 0.06
    """Radial half-size of the local correlation window with the neighbouring frames (mm)."""
    correlation_angles: int = 3
    """Angular size of the local correlation window (directions; at least 5 are used)."""
    ring_correlation: float = 0.5
    """Median correlation below which the catheter's ring-down ends (correlation, 0-1)."""
    # catheters are 0.4-0.6 mm in radius and their ring-down a few tenths of a mm: a near field
    # that stays correlated further out is dark, barely moving blood (20 MHz), not the catheter
    max_ring_mm: float = 1.2
    """Largest radius the catheter and its ring-down may reach (mm)."""
    # median correlation of the near field (just outside the ring-down, over frames spread along
    # the pullback) at which blood counts as not moving between frames: the correlation cue then
    # says nothing and the grey level leads (20 MHz phased array, where blood barely echoes).
    # Phantoms 0.27-0.35 (at most 0.45), a 40-60 MHz rotational console 0.48, 20 MHz set B 0.68-0.70
    still_blood_correlation: float = 0.7
    """Near-field correlation at which the correlation cue is no longer trusted (correlation, 0-1)."""
    still_blood_range: float = 0.25
    """Correlation range below ``still_blood_correlation`` over which the trust rises to 1."""
    overlay_exclude_mm: float = 1.2
    """Radius about the catheter centre where constant pixels are not taken for overlay marks (mm)."""

    # ------------------------------------------------------------------ lumen trace
    lumen_edge_mm: float = 0.08
    """Radial half-window of the lumen's step filters (mm)."""
    smooth_weight: float = 0.02
    """Lumen path's penalty per squared radial step between neighbouring directions (cost)."""
    max_slope_mm: float = 0.12
    """Largest radial move of a border between neighbouring directions (mm) ..."""
    max_slope_fraction: float = 0.03
    """... or this fraction of the field-of-view radius, whichever is larger (fraction)."""
    inward_preference: float = 0.6
    """Cost added from the ring-down (0) to the field's edge (this): of two steps, the inner (cost)."""
    enclosed_tissue_per_mm: float = 4.0
    """Charge for bright, stable tissue a lumen border would enclose (cost per mm of tissue)."""
    dark_tissue_ahead_mm: float = 1.5
    """Echolucent plaque: grey levels clearly darker than blood count as enclosed tissue where
    bright wall follows within this depth along the ray (mm); 0 disables."""
    dark_tissue_drop_mm: float = 0.3
    """... and clearly darker than the grey level this far further in on the ray (mm)."""
    dark_tissue_max_contrast: float = 0.25
    """... only where blood is nearly as bright as the wall: log grey contrast (wall's 75th
    percentile minus near-field blood) at which that cue is off, fully on at half of it."""
    dark_tissue_min_deg: float = 12.0
    """Narrowest arc of such echolucent tissue (deg): narrower darkness is a shadow's edge."""
    region_blood: bool = True
    """Trace again with blood's grey level judged at each depth over all directions, not only by
    its near field, and keep that trace on frames where it separates blood from wall better
    without enclosing more echolucent tissue (switch)."""
    blood_share: float = 0.8
    """... where decorrelated samples keep this fraction of the near field's share of them
    (fraction)."""
    blood_brightening_per_mm: float = 1.0
    """... blood may brighten with depth by this much at most (log grey level per mm): faster is
    a wall, not the console's gain."""
    region_blood_continuity: float = 0.1
    """... each analysed frame keeps one of the two traces by a choice over the whole sequence:
    a change of the traced lumen area by a factor e between neighbouring analysed frames costs
    this much separation score; a frame only ever moves to its smaller trace (a leak), never
    widens (0: each frame by its own score)."""
    grey_separation_weight: float = 0.5
    """Weight of the grey-level separation (in interquartile ranges) when choosing a candidate trace."""
    flattened_aspect: float = 2.0
    """Aspect ratio from which a lumen counts as flattened (a compressed vein) (ratio)."""
    flattened_charge: float = 0.25
    """Fraction of the enclosed-tissue charge kept when a flattened lumen is traced again (fraction)."""
    refine_inner_mm: float = 0.08
    """Grey-step refinement band: how far inside the correlation border it starts (mm)."""
    refine_outer_mm: float = 0.2
    """Grey-step refinement band: how far beyond a correlation half-window outside it ends (mm)."""

    # ------------------------------------------------------------------ lumen, frame-plane refinements
    normal_refine_mm: float = 0.5
    """Largest move of a ray-parallel border point along the border's normal (mm); 0 disables."""
    normal_refine_passes: int = 2
    """Repetitions of the normal refinement, each from the moved border (count)."""
    region_refine_mm: float = 0.8
    """Half-width of the band about the border where blood and wall compete (mm); 0 disables."""
    region_window_mm: float = 0.12
    """Gaussian window of the frame-plane correlation and mean of the region competition (mm)."""
    region_refine_passes: int = 3
    """Repetitions of the region competition, each from the moved border (count)."""
    region_refine_min_aspect: float = 2.0
    """Aspect ratio from which a lumen is refined by region competition (ratio)."""
    tip_half_angle_deg: float = 15.0
    """Half-angle about either end of the major axis where the region competition may move (deg)."""

    # ------------------------------------------------------------------ EEM trace
    vessel_edge_mm: float = 0.10
    """Radial half-window of the EEM's step filter (mm)."""
    min_wall_mm: float = 0.08
    """Thinnest wall: the EEM lies at least this far outside the lumen (mm)."""
    # off by default: 0.2 moves set B's EEM off the lumen (vessel/lumen area ratio 1.19 -> 1.48
    # median) but costs its lumen box IoU 0.011 (side-branch fill) and the thin-walled still-blood
    # coronary phantom its vessel Jaccard (0.960 -> 0.925)
    min_wall_still_blood_mm: float = 0.0
    """Added to ``min_wall_mm`` for the EEM search where blood does not decorrelate (x (1 - trust)) (mm)."""
    still_blood_edge_gain: float = 0.5
    """Widening of the EEM's step window where blood does not decorrelate (x (1 - trust)) (ratio)."""
    eem_beyond_lumen_rise: bool = True
    """Search the EEM only beyond the end of the lumen's grey-level rise (switch)."""
    eem_skip_weight: float = 1.0
    """Charge for each EEM depth: this times the strongest rise it leaves inside (cost)."""
    eem_skip_floor_percentile: float = 75.0
    """Percentile of the frame's rises across the wall that a skipped rise is charged above (%)."""
    max_wall_mm: float = 3.0
    """Thickest wall searched for the EEM, across the wall (mm)."""
    vessel_inward_preference: float = 0.5
    """Cost added over the wall's depth (0 at ``min_wall_mm``, this at ``max_wall_mm``) (cost)."""
    wall_smooth_weight: float = 0.15
    """Wall-thickness path's penalty per squared step between neighbouring directions (cost)."""
    wall_only_inner: bool = True
    """Keep the EEM step's inner window inside the wall, out of the dark lumen (switch)."""
    wall_blur_mm: float = 0.2
    """Depth beyond the lumen border where that inner window may start (mm)."""
    max_wall_stretch: float = 3.0
    """Cap on how much longer an obliquely crossed wall is along the ray than across it (ratio)."""
    wall_tilt_harmonics: int = 6
    """Fourier harmonics of the lumen shape the wall's tilt is taken from (count); 0: the raw trace."""
    faint_wall_smooth_deg: float = 12.0
    """Gaussian sigma of the wall thickness where the EEM step is faint (deg); 0 disables."""
    faint_wall_lumen_smooth_deg: float = 4.0
    """Gaussian sigma of the lumen under that smoothed thickness (deg)."""
    clear_eem_step: float = 0.8
    """EEM step at and above which the trace is kept as found (log grey level)."""
    # where the adventitia is hidden (shadow behind calcium or the wire, dark perivascular
    # tissue) the trace follows the darkness (LAD export 1200: 18.4 mm2, the EEM 0.5-0.8 mm out
    # into a shadow and into dark tissue at 4-5 o'clock)
    unseen_wall_min_seen: float = 0.35
    """Least share of the turn showing the adventitia for the unseen EEM to be taken from the
    seen arc's shape (0-1); above 1 disables."""
    unseen_wall_max_deg: float = 90.0
    """Widest unseen sector taken from the seen arc's shape (deg)."""
    unseen_wall_look_mm: float = 0.4
    """Depth beyond the EEM whose brightness shows the adventitia (mm)."""
    unseen_wall_dark: float = 0.3
    """Brightness beyond the EEM, as a fraction of the frame's typical, at and below which no
    adventitia is seen (fraction) ..."""
    unseen_wall_bright: float = 0.8
    """... and at and above which it is fully seen (fraction)."""
    unseen_wall_smooth_deg: float = 5.0
    """Gaussian sigma of the blend from the trace to that shape at an unseen sector's edges (deg)."""

    # ------------------------------------------------------------------ shadows, calcium, hidden sectors
    shadow_ratio: float = 0.4
    """A direction is shadowed where its far field is below this fraction of the frame's median (fraction)."""
    calcium_depth_fraction: float = 0.5
    """A reflector beyond this fraction of the way from the ring-down to the lumen is calcium (fraction)."""
    ellipse_fill_aspect: float = 2.0
    """Aspect ratio from which hidden sectors are filled from the ellipse of the visible border (ratio)."""
    ellipse_fit_margin_deg: float = 8.0
    """Directions beside each hidden sector left out of that ellipse fit (deg)."""
    penumbra: bool = True
    """Hide with a shadow the border dent it drags in beside it (switch)."""

    # ------------------------------------------------------------------ side branches (and penumbra dents)
    # an ostium's sector, and a dent dragged in beside a shadow, leave the border's ellipse by
    # at least branch_excess_mm and branch_excess_fraction of its radius
    branch_excess_mm: float = 0.4
    """Least excess over the border's ellipse of an ostium's (or a dent's) core (mm) ..."""
    branch_excess_fraction: float = 0.2
    """... and as a fraction of the ellipse's radius (fraction)."""
    branch_wall_fraction: float = 0.6
    """The EEM leaves its ellipse at an ostium by at least this fraction of the lumen's excess (fraction)."""
    branch_grow_mm: float = 0.05
    """A sector spans the directions whose border stays this far past the ellipse (mm)."""
    branch_max_deg: float = 120.0
    """Widest ostium sector (deg); 0 disables the ostium fill."""
    # the lumen's trace stops a step window short of the last sample, and its refinement may
    # pull it in by a sample or two more (RCA 525: 0.05-0.15 mm inside the last sample)
    field_edge_margin_mm: float = 0.25
    """A lumen within this of the field's edge met no wall there: such directions (up to half the
    circle) are filled from the border seen elsewhere (mm); negative disables."""
    # a branch's walls funnel out to the edge (LAD 1224: 35-70 degrees off the circle), the
    # main vessel's wall about an eccentric catheter is tilted by asin(offset / radius)
    leak_flank_deg: float = 30.0
    """Beside such a leak, the border that descends from it tilted from the circle about the
    catheter by at least this is the branch's wall, and is filled with it (deg); 0 disables."""

    # ------------------------------------------------------------------ sequence and final smoothing
    temporal_median_frames: int = 9
    """Median window of each direction over consecutive frames (frames, odd); < 3 disables."""
    despike_angles: int = 13
    """Angular median window of the despike (directions); < 3 disables."""
    despike_mm: float = 0.1
    """Departure from that median beyond which a border point is a spike (mm)."""
    border_smooth_deg: float = 4.0
    """Gaussian sigma of the final borders around the vessel (deg); 0 disables."""
    keyframe_band_mm: float = 0.25
    """Half-width of the free zone around the keyframes' prior next to a keyframe (mm)."""
    keyframe_band_per_frame: float = 0.1
    """Growth of that half-width per analysed frame of distance to the nearest keyframe, as a
    fraction of the prior radius."""
    keyframe_weight: float = 1.0
    """Cost of the vessel straying 0.1 mm beyond the zone, against an edge's 0-1."""
    keyframe_look_weight: float = 1.0
    """Cost of a lumen border per mm of log-likelihood ratio by which another radius splits the
    looks learned from the keyframes (blood against wall) better (0: no looks learned)."""
    keyframe_wall_look_weight: float = 2.0
    """The same for the vessel border, with the looks of the keyframes' wall against what lies
    beyond it (0: not learned)."""
    keyframe_pull: float = 0.05
    """Cost of the vessel 0.1 mm from the keyframes' (squared), on a keyframe's neighbour ..."""
    keyframe_pull_frames: float = 2.0
    """... falling as exp(-distance / this), the distance in analysed frames to the nearest keyframe."""
    keyframe_lumen_pull: float = 0.02
    """The same pull for the lumen, towards the keyframes' lumen interpolated (cost per (0.1 mm)²)."""
    keyframe_fill_frames: float = 2.0
    """Behind a calcium arc, the vessel takes the keyframes' shape with a weight falling as
    exp(-distance / this), the distance counted in analysed frames to the nearest keyframe."""
    calibrated_confidence: bool = True
    """Report each frame's confidence calibrated against border error (the probability that its
    worse Jaccard is at least 0.85); False: the raw edge-strength confidence."""

    # ------------------------------------------------------------------ execution
    batch_frames: int = 24
    """Frames per batch (count); results do not depend on the core count."""
    threads: int = 0
    """Worker threads (count); 0: one per core, at most 8."""
