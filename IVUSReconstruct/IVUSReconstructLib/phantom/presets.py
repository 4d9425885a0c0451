"""Phantom parameters and results: vessel presets, realism options and the :class:`Phantom` record.

Presets are parameters of the generator only: no analysis stage may read them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..types import Centerline, ContourSet, Pullback

TRUTH_POINTS = 128
"""Vertices of every truth polygon (equally spaced catheter rays)."""


@dataclass(frozen=True)
class Narrowing:
    """A lumen narrowing (plaque or extrinsic compression).

    Attributes
    ----------
    position : float
        Centre as a fraction of the pullback length (0 distal, 1 proximal).
    half_length_mm : float
        Half its length (raised-cosine profile) at the preset length; scaled with ``length_mm``.
    area_fraction : float
        Lumen area at its centre over the reference lumen area there.
    aspect : float
        Lumen major/minor axis ratio at its centre (1 keeps the baseline shape).
    remodeling : float
        EEM radius factor at its centre (> 1: positive remodeling).
    eccentricity : float
        Extra lumen shift towards the thin side of the plaque at its centre, in [0, 1].
    """

    position: float
    half_length_mm: float
    area_fraction: float
    aspect: float = 1.0
    remodeling: float = 1.0
    eccentricity: float = 0.0


@dataclass(frozen=True)
class CalciumSegment:
    """A calcified plaque segment.

    Attributes
    ----------
    start, stop : float
        Extent as fractions of the pullback length.
    arc_deg : float
        Largest arc, seen from the lumen centre; the arc tapers to zero at both ends.
    gap_mm : float
        Depth of its leading edge behind the lumen border.
    thickness_mm : float
    angle_deg : float
        Position of the arc centre relative to the thick side of the plaque.
    """

    start: float
    stop: float
    arc_deg: float
    gap_mm: float = 0.1
    thickness_mm: float = 0.4
    angle_deg: float = 0.0


@dataclass(frozen=True)
class PhantomPreset:
    """Parameters of one synthetic vessel and acquisition (see ``PRESETS``).

    Radii are equivalent radii (sqrt(area / pi)) in mm; ``*_proximal_mm`` values are reached
    linearly at the proximal end. ``heart_rate_bpm`` None means no cardiac rhythm; motion then
    follows ``respiratory_rate_hz``.
    """

    name: str
    length_mm: float
    pullback_speed_mm_s: float
    frame_rate_hz: float
    fov_mm: float
    catheter_radius_mm: float
    lumen_radius_mm: float
    lumen_radius_proximal_mm: float
    vessel_radius_mm: float
    vessel_radius_proximal_mm: float
    lumen_aspect: float = 1.1
    eccentricity: float = 0.3
    wall_follows_lumen: bool = False
    min_wall_mm: float = 0.25
    media_mm: float = 0.2
    adventitia_mm: float = 0.3
    diffuse_narrowing: float = 0.0
    narrowings: tuple[Narrowing, ...] = ()
    calcium: tuple[CalciumSegment, ...] = ()
    heart_rate_bpm: float | None = 70.0
    rr_jitter: float = 0.03
    respiratory_rate_hz: float | None = None
    pulsation: float = 0.04
    dz_peak_mm: float = 0.75
    inplane_motion_mm: float = 0.15
    rotation_deg: float = 3.0
    speckle: str = "rotational"
    attenuation_per_mm: float = 0.35
    penetration_mm: float = 2.0
    compressing_artery_radius_mm: float = 0.0


PRESETS: dict[str, PhantomPreset] = {
    "coronary": PhantomPreset(
        name="coronary",
        length_mm=40.0,
        pullback_speed_mm_s=0.5,
        frame_rate_hz=30.0,
        fov_mm=10.0,
        catheter_radius_mm=0.45,
        lumen_radius_mm=1.4,
        lumen_radius_proximal_mm=1.6,
        vessel_radius_mm=1.75,
        vessel_radius_proximal_mm=1.97,
        lumen_aspect=1.12,
        eccentricity=0.3,
        narrowings=(
            Narrowing(
                position=0.45,
                half_length_mm=5.0,
                area_fraction=0.48,
                aspect=1.3,
                remodeling=1.08,
                eccentricity=0.5,
            ),
        ),
        calcium=(
            CalciumSegment(
                start=0.47, stop=0.58, arc_deg=110.0, gap_mm=0.08, thickness_mm=0.45, angle_deg=30.0
            ),
        ),
        heart_rate_bpm=70.0,
        dz_peak_mm=0.75,
        inplane_motion_mm=0.15,
        speckle="rotational",
        attenuation_per_mm=0.6,
        penetration_mm=1.2,
    ),
    # 15 frames/s (real systems acquire 30) keeps the 150 mm demo at ~2250 frames.
    "femoropopliteal": PhantomPreset(
        name="femoropopliteal",
        length_mm=150.0,
        pullback_speed_mm_s=1.0,
        frame_rate_hz=15.0,
        fov_mm=16.0,
        catheter_radius_mm=0.6,
        lumen_radius_mm=2.45,
        lumen_radius_proximal_mm=2.75,
        vessel_radius_mm=3.0,
        vessel_radius_proximal_mm=3.35,
        lumen_aspect=1.12,
        eccentricity=0.35,
        min_wall_mm=0.3,
        media_mm=0.25,
        adventitia_mm=0.4,
        diffuse_narrowing=0.2,
        narrowings=(
            Narrowing(
                position=0.35,
                half_length_mm=14.0,
                area_fraction=0.6,
                aspect=1.25,
                remodeling=1.05,
                eccentricity=0.4,
            ),
            Narrowing(
                position=0.72,
                half_length_mm=9.0,
                area_fraction=0.4,
                aspect=1.3,
                remodeling=1.0,
                eccentricity=0.5,
            ),
        ),
        calcium=(
            CalciumSegment(start=0.12, stop=0.26, arc_deg=120.0, gap_mm=0.1, thickness_mm=0.6, angle_deg=0.0),
            CalciumSegment(
                start=0.3, stop=0.46, arc_deg=180.0, gap_mm=0.08, thickness_mm=0.7, angle_deg=20.0
            ),
            CalciumSegment(
                start=0.62, stop=0.8, arc_deg=150.0, gap_mm=0.3, thickness_mm=0.6, angle_deg=-40.0
            ),
        ),
        heart_rate_bpm=65.0,
        pulsation=0.03,
        dz_peak_mm=0.3,
        inplane_motion_mm=0.1,
        rotation_deg=2.0,
        speckle="rotational",
        attenuation_per_mm=0.35,
        penetration_mm=2.0,
    ),
    "iliac-vein": PhantomPreset(
        name="iliac-vein",
        length_mm=100.0,
        pullback_speed_mm_s=1.0,
        frame_rate_hz=15.0,
        fov_mm=28.0,
        catheter_radius_mm=0.8,
        lumen_radius_mm=5.8,
        lumen_radius_proximal_mm=6.1,
        vessel_radius_mm=6.2,
        vessel_radius_proximal_mm=6.5,
        lumen_aspect=1.25,
        eccentricity=0.0,
        wall_follows_lumen=True,
        min_wall_mm=0.3,
        media_mm=0.0,
        adventitia_mm=0.5,
        narrowings=(Narrowing(position=0.72, half_length_mm=12.0, area_fraction=0.33, aspect=4.0),),
        compressing_artery_radius_mm=4.5,
        heart_rate_bpm=None,
        respiratory_rate_hz=0.25,
        pulsation=0.05,
        dz_peak_mm=0.5,
        inplane_motion_mm=0.3,
        rotation_deg=2.0,
        speckle="rotational",
        attenuation_per_mm=0.15,
        penetration_mm=4.0,
    ),
}


@dataclass(frozen=True)
class Appearance:
    """Optional realism of the phantom's images; the defaults draw the historical images.

    Values tuned against real frames are given by :func:`realistic_appearance` (measured by
    ``Testing/benchmarks/compare_phantom_real.py``). None of them moves a truth contour except
    ``wedged_catheter``, which changes the geometry and keeps the truth exact.

    Attributes
    ----------
    blood_gain, plaque_gain, adventitia_gain : float
        Echo amplitude factors of blood, plaque (intima) and adventitia (1: unchanged).
    media_level : float, optional
        Echo amplitude of the media (default 0.05: dark; a 20 MHz array barely resolves it).
    media_mm : float, optional
        Media thickness, overriding the preset's (a thin dark media at 40-60 MHz: ~0.1 mm).
    lateral_speckle_deg : float
        Lateral full width at half maximum of the beam, degrees of catheter rotation: blood and
        tissue speckle are smoothed around the catheter by it (0: no smoothing).
    axial_speckle_mm : float
        Axial width (FWHM, mm) the speckle is smoothed over in depth (0: none).
    blood_correlation : float
        Correlation of the blood echo field between consecutive frames, in [0, 1) (0: new
        blood speckle in every frame, as moving blood at 30 frames/s nearly gives).
    tissue_renewal : float
        Share of the tissue speckle power drawn anew in every frame, in [0, 1] (0: speckle
        fixed to the anatomy; real exports decorrelate between frames by motion and jitter).
    ringdown_gain : float
        Amplitude factor of the catheter ring-down and sheath echo.
    echolucent_arc_deg : float
        Arc (degrees, on the thickest plaque) of an echolucent lipid pool inside the plaque
        behind a thin fibrous cap (0: none). See ``Phantom.echolucent``.
    echolucent_level : float
        Echo amplitude of the pool relative to the blood echo (< 1: darker than blood).
    wedged_catheter : bool
        In the narrowings the lumen's minor semi-axis closes to 0.25 mm beyond the catheter
        radius and the catheter lies against the wall (0.02-0.04 mm off it), as in a tight
        lesion the catheter wedges into (coronary: MLA ~1.9 mm2 instead of ~3.2).
    console : bool
        Screen-export look: a dark-red field-of-view ring and catheter disc, a text banner,
        yellow 1 mm calibration dots and a measurement box with markers, burned into every
        frame instead of the default marks. ``Phantom.screen_frame`` gives the colour export.
    console_offset_px : tuple of int
        (row, column) shift of the catheter centre from the image centre: the ultrasound image
        and the console marks drawn around the catheter move, the banner and the measurement
        box stay (without ``console`` the default marks move with the image). The pullback's
        and the truth's ``catheter_center_px`` follow; contours in mm do not change. At most an
        eighth of the frame size.
    """

    blood_gain: float = 1.0
    plaque_gain: float = 1.0
    adventitia_gain: float = 1.0
    media_level: float | None = None
    media_mm: float | None = None
    lateral_speckle_deg: float = 0.0
    axial_speckle_mm: float = 0.0
    blood_correlation: float = 0.0
    tissue_renewal: float = 0.0
    ringdown_gain: float = 1.0
    echolucent_arc_deg: float = 0.0
    echolucent_level: float = 0.35
    wedged_catheter: bool = False
    console: bool = False
    console_offset_px: tuple[int, int] = (0, 0)


def realistic_appearance(speckle: str = "rotational", **changes) -> Appearance:
    """The appearance tuned to the real frames of ``compare_phantom_real.py`` for one speckle
    regime (``"rotational"`` 40-60 MHz, ``"phased"`` 20 MHz), with optional field changes."""
    if speckle == "phased":
        base = Appearance(
            blood_gain=0.35,
            plaque_gain=0.55,
            adventitia_gain=0.48,
            media_level=0.12,
            lateral_speckle_deg=6.0,
            axial_speckle_mm=0.09,
            blood_correlation=0.9,
            tissue_renewal=0.5,
            ringdown_gain=0.15,
        )
    else:
        base = Appearance(
            blood_gain=1.5,
            plaque_gain=0.7,
            media_level=0.14,
            media_mm=0.12,
            lateral_speckle_deg=2.8,
            tissue_renewal=0.8,
            ringdown_gain=0.25,
        )
    return replace(base, **changes)


@dataclass(frozen=True, eq=False)
class Phantom:
    """A synthetic pullback and its ground truth.

    Attributes
    ----------
    preset : str
    pullback : Pullback
        Frames in memory, uint8 of shape (N, H, W).
    centerline : Centerline
        RAS mm, distal to proximal; its first point is the true position of frame 0 and it
        is at least 5 mm longer than the pullback.
    truth : ContourSet
        Every frame's true lumen, vessel and calcium polygons in frame-plane mm, phase "ED" on
        end-diastolic frames, ``z_mm`` the true longitudinal position from frame 0.
    true_arc_length_mm : ndarray of shape (N,)
        True position of every frame along the centerline.
    ed_frames : ndarray of shape (B,), int
        End-diastolic frames (empty without a cardiac rhythm).
    heart_rate_bpm : float or None
        Mean heart rate of the simulated RR intervals.
    speckle : str
        ``"rotational"`` (40-60 MHz mechanical) or ``"phased"`` (20 MHz solid state).
    cardiac_phase : ndarray of shape (N,)
        Phase in [0, 1) of the cardiac (or respiratory) cycle, 0 at end-diastole.
    seed : int
        The seed it was generated from.
    motion_start_frame : int
        First frame of the motor pullback (0 unless the phantom has a motionless start).
    guide_start_frame : int or None
        First frame inside the guiding catheter (None without one).
    side_branch_mm : float or None
        Position of the side branch's ostium centre (``true_arc_length_mm`` units), None without
        a branch; the ostium spans 1 mm either side of it.
    appearance : Appearance or None
        The realism options it was drawn with (None: the defaults).
    echolucent : tuple of ndarray or None
        With an echolucent plaque: every frame's lipid pool polygon (frame-plane mm, shape
        (P, 2), inner arc then outer arc back; shape (0, 2) where the plaque has no room).
    console_overlay : tuple of ndarray or None
        With console overlays: their colours, uint8 (H, W, 3), and where they are, bool (H, W).
    """

    preset: str
    pullback: Pullback
    centerline: Centerline
    truth: ContourSet
    true_arc_length_mm: np.ndarray
    ed_frames: np.ndarray
    heart_rate_bpm: float | None
    speckle: str
    cardiac_phase: np.ndarray | None = None
    seed: int = 0
    side_branch_mm: float | None = None
    appearance: Appearance | None = None
    echolucent: tuple[np.ndarray, ...] | None = None
    console_overlay: tuple[np.ndarray, np.ndarray] | None = None
    motion_start_frame: int = 0
    guide_start_frame: int | None = None

    def screen_frame(self, k: int) -> np.ndarray:
        """Frame ``k`` as a colour screen export, uint8 (H, W, 3): the console overlays in
        colour over the grey frame (the grey frame alone without console overlays)."""
        grey = np.asarray(self.pullback.frames[k])
        rgb = np.repeat(grey[..., None], 3, axis=2)
        if self.console_overlay is not None:
            colours, where = self.console_overlay
            rgb[where] = colours[where]
        return rgb
