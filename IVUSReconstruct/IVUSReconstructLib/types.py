"""Core data types shared by every stage.

Frozen dataclasses of numpy arrays; units are part of the field names. Coordinates
(see ``DESIGN.md``):

- image: pixel (row, col), origin top-left;
- frame plane: mm, origin at the catheter centre, ``x`` along columns, ``y`` along rows;
- world: RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "Acquisition",
    "Valued",
    "Pullback",
    "FrameContours",
    "Landmark",
    "ContourSet",
    "Centerline",
    "FramePoses",
    "GatingResult",
    "VesselMesh",
    "Metrics",
]

Acquisition = str
"""One of ``"motor"``, ``"manual"``, ``"gated"``, ``"selective"``."""


@dataclass(frozen=True)
class Valued:
    """An acquisition value together with where it came from.

    ``source`` is a DICOM keyword with its tag (``"IVUSPullbackRate (0018,3101)"``), a
    command-line option (``"--pullback-speed"``), ``"default"`` or ``"derived: ..."``.
    """

    value: Any
    source: str

    def to_json(self) -> dict[str, Any]:
        value = self.value
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        return {"value": value, "source": self.source}


@dataclass(frozen=True, eq=False)
class Pullback:
    """An IVUS pullback: frames and the acquisition facts needed to measure them.

    Attributes
    ----------
    frames : ndarray of shape (N, H, W), uint8 or uint16
        Grey-level frames (RGB input is converted to luminance). May be a read-only memmap.
    pixel_spacing_mm : tuple of float
        (row, col) spacing in mm.
    frame_times_s : ndarray of shape (N,)
        Acquisition time of each frame, first frame at 0 s.
    pullback_speed_mm_s : float or None
        Motorised pullback speed; None for manual pullbacks.
    acquisition : str
        ``"motor"``, ``"manual"``, ``"gated"`` or ``"selective"``.
    catheter_center_px : tuple of float
        (row, col) of the catheter centre.
    source : dict
        ``path``, ``sop_class_uid``, ``vendor``: never patient identifiers.
    provenance : dict of str to Valued
        For ``n_frames``, ``frame_times_s``, ``pixel_spacing_mm``, ``pullback_speed_mm_s``,
        ``acquisition``: the value used and where it came from.
    """

    frames: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    frame_times_s: np.ndarray
    pullback_speed_mm_s: float | None
    acquisition: Acquisition
    catheter_center_px: tuple[float, float]
    source: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Valued] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def shape_px(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])


@dataclass(frozen=True, eq=False)
class FrameContours:
    """The borders traced on one frame, closed polygons in frame-plane mm.

    Attributes
    ----------
    index : int
        Frame index in the pullback (0-based).
    lumen : ndarray of shape (M, 2), mm
        Lumen border (x, y); first point not repeated.
    vessel : ndarray of shape (M, 2), mm, or None
        External elastic membrane (media-adventitia) border.
    calcium : tuple of ndarray of shape (K, 2), mm
        Calcium regions.
    stent : ndarray of shape (M, 2), mm, or None
    phase : str or None
        ``"ED"`` (end-diastole), ``"ES"`` or None.
    z_mm : float or None
        Longitudinal position from the first frame, when known from the contour source.
    calcium_arc_deg : float or None
        Calcium arc seen from the lumen centroid, when a detector measured it.
    confidence : float or None
        Segmentation confidence in [0, 1]; None for contours read from a file.
    source : str or None
        How the borders came about: ``"edited"`` (a keyframe a reader corrected, kept exactly),
        ``"propagated"`` (segmented with keyframes' guidance), ``"automatic"``; None when unknown.
    """

    index: int
    lumen: np.ndarray
    vessel: np.ndarray | None = None
    calcium: tuple[np.ndarray, ...] = ()
    stent: np.ndarray | None = None
    phase: str | None = None
    z_mm: float | None = None
    calcium_arc_deg: float | None = None
    confidence: float | None = None
    source: str | None = None


@dataclass(frozen=True, eq=False)
class Landmark:
    """A fiducial along the pullback (side-branch ostium, ...).

    Attributes
    ----------
    frame : int
    kind : str
        e.g. ``"side_branch"``.
    angle_deg : float or None
        Direction in the frame plane, counter-clockwise from +x.
    point_ras_mm : ndarray of shape (3,) or None
        Position on (or near) the centerline in RAS mm.
    """

    frame: int
    kind: str = "side_branch"
    angle_deg: float | None = None
    point_ras_mm: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class ContourSet:
    """Contours of the analysed frames, sorted by frame index."""

    frames: tuple[FrameContours, ...]
    landmarks: tuple[Landmark, ...] = ()
    pixel_spacing_mm: tuple[float, float] | None = None
    catheter_center_px: tuple[float, float] | None = None

    @property
    def indices(self) -> np.ndarray:
        """Frame indices, ndarray of shape (N,), int."""
        return np.array([f.index for f in self.frames], dtype=int)

    @property
    def has_vessel(self) -> bool:
        return bool(self.frames) and all(f.vessel is not None for f in self.frames)

    def with_frames(self, frames: tuple[FrameContours, ...]) -> ContourSet:
        return replace(self, frames=tuple(sorted(frames, key=lambda f: f.index)))


@dataclass(frozen=True, eq=False)
class Centerline:
    """An ordered 3D curve in RAS mm.

    Attributes
    ----------
    points_ras_mm : ndarray of shape (K, 3)
        Ordered in the pullback direction after loading (first point distal).
    radius_mm : ndarray of shape (K,) or None
        Local lumen radius (e.g. VMTK ``MaximumInscribedSphereRadius``).
    source : str
        File it came from, for messages.
    """

    points_ras_mm: np.ndarray
    radius_mm: np.ndarray | None = None
    source: str = ""

    @property
    def arc_length_mm(self) -> np.ndarray:
        """Cumulative arc length of each point, ndarray of shape (K,), mm."""
        steps = np.linalg.norm(np.diff(self.points_ras_mm, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length_mm(self) -> float:
        return float(self.arc_length_mm[-1]) if len(self.points_ras_mm) > 1 else 0.0


@dataclass(frozen=True, eq=False)
class FramePoses:
    """Where each analysed frame sits in the world.

    Attributes
    ----------
    frame_index : ndarray of shape (N,), int
    arc_length_mm : ndarray of shape (N,)
        Position along the centerline from its first point.
    origin_ras_mm : ndarray of shape (N, 3)
        World position of the frame-plane origin (the point put on the centerline).
    axes_ras : ndarray of shape (N, 3, 2)
        Unit world directions of the frame-plane x and y axes.
    normal_ras : ndarray of shape (N, 3)
        Unit plane normal (the centerline tangent, pullback direction).
    offset_mm : ndarray of shape (N, 2)
        Frame-plane point that is put at ``origin_ras_mm`` (zero for catheter alignment,
        the lumen centroid for lumen-centroid alignment).
    uncertainty_mm : ndarray of shape (N,) or None
        Estimated placement uncertainty.
    landmark_residuals : tuple of dict
        Per landmark used in the placement: its shift, distance to the centerline, leave-one-out
        error and rotation (see ``coregistration.fit_landmarks``).
    """

    frame_index: np.ndarray
    arc_length_mm: np.ndarray
    origin_ras_mm: np.ndarray
    axes_ras: np.ndarray
    normal_ras: np.ndarray
    offset_mm: np.ndarray
    uncertainty_mm: np.ndarray | None = None
    landmark_residuals: tuple[dict[str, Any], ...] = ()

    def to_world(self, i: int, points_mm: np.ndarray) -> np.ndarray:
        """Map frame-plane points of the ``i``-th posed frame to RAS.

        Parameters
        ----------
        i : int
            Row in this object (not the frame index).
        points_mm : ndarray of shape (M, 2)

        Returns
        -------
        ndarray of shape (M, 3), RAS mm
        """
        local = np.asarray(points_mm, dtype=float) - self.offset_mm[i]
        return self.origin_ras_mm[i] + local @ self.axes_ras[i].T

    def matrices(self) -> np.ndarray:
        """Frame-plane-mm to world transforms, ndarray of shape (N, 4, 4).

        The plane point (x, y) maps to ``M @ [x, y, 0, 1]``.
        """
        n = len(self.frame_index)
        m = np.zeros((n, 4, 4))
        m[:, :3, 0] = self.axes_ras[:, :, 0]
        m[:, :3, 1] = self.axes_ras[:, :, 1]
        m[:, :3, 2] = self.normal_ras
        shift = np.einsum("nij,nj->ni", self.axes_ras, self.offset_mm)
        m[:, :3, 3] = self.origin_ras_mm - shift
        m[:, 3, 3] = 1.0
        return m


@dataclass(frozen=True)
class GatingResult:
    """Result of end-diastolic frame selection.

    Attributes
    ----------
    method : str
        ``"none"``, ``"image"``, ``"ecg"`` or ``"contours"``.
    selected_frames : ndarray of shape (B,), int
        Frames to analyse (all frames when gating is off or falls back).
    ed_frames : ndarray of shape (B,), int
        Detected end-diastolic frames (empty when none were found).
    heart_rate_bpm : float or None
    confidence : float
        In [0, 1]: share of the signal's spectral power in the detected peak.
    signal : ndarray of shape (N,)
        The per-frame motion signal the decision was made on.
    message : str
        What was decided and why (e.g. "no cardiac rhythm: all frames analysed").
    """

    method: str
    selected_frames: np.ndarray
    ed_frames: np.ndarray
    heart_rate_bpm: float | None
    confidence: float
    signal: np.ndarray
    message: str = ""


@dataclass(frozen=True, eq=False)
class VesselMesh:
    """Surfaces in world RAS mm (``vtkPolyData``), with point arrays ``frame_index``,
    ``arc_length_mm``, ``plaque_thickness_mm``, ``plaque_burden_percent``."""

    lumen: Any
    vessel: Any | None = None
    wall: Any | None = None


@dataclass(frozen=True)
class Metrics:
    """Measurements, all JSON-serialisable.

    Attributes
    ----------
    per_frame : dict of str to ndarray of shape (N,)
        Columns of ``frames.csv`` (``frame``, ``arc_length_mm``, ``lumen_area_mm2``, ...).
    summary : dict
        ``volumes_mm3``, ``pav_percent``, ``tav_norm_mm3``, ``mla``, ``references``,
        ``area_stenosis_percent``, ... (see DESIGN.md).
    lesions : list of dict
    flags : list of dict
        Each ``{"rule": ..., "message": ...}``.
    """

    per_frame: dict[str, np.ndarray]
    summary: dict[str, Any]
    lesions: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
