"""X-ray angiography (XA / XRF) DICOM: projection geometry, frame selection, curve files.

The geometry read here is what :mod:`IVUSReconstructLib.angio` needs to project 3D points
onto the detector and to back-project traced 2D curves:

- ``PositionerPrimaryAngle (0018,1510)``: LAO (+) / RAO (-), degrees;
- ``PositionerSecondaryAngle (0018,1511)``: CRA (+) / CAU (-), degrees;
- ``DistanceSourceToDetector (0018,1110)``: SID, mm;
- ``DistanceSourceToPatient (0018,1111)``: SOD (source to isocentre), mm;
- ``ImagerPixelSpacing (0018,1164)``: (row, col) spacing in the detector plane, mm;
- ``Rows``, ``Columns``, ``NumberOfFrames``, ``FrameTime (0018,1063)``;
- optional ``TableHeight (0018,1130)``, ``TableTraverse (0018,1131)``,
  ``PatientPosition (0018,5100)`` and ``RWavePointer (0028,6040)``.

Enhanced XA files keep the same attributes inside functional-group sequences; they are looked
up there as well. No patient identifiers are read or written.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ..errors import input_error, read_json_input

__all__ = [
    "XA_SOP_CLASS_UID",
    "XRF_SOP_CLASS_UID",
    "ENHANCED_XA_SOP_CLASS_UID",
    "XAGeometry",
    "XAFrame",
    "read_xa_geometry",
    "read_xa_frame",
    "write_xa",
    "read_curve_px",
]

XA_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.12.1"
ENHANCED_XA_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.12.1.1"
XRF_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.12.2"

_TAGS = {
    "PositionerPrimaryAngle": "(0018,1510)",
    "PositionerSecondaryAngle": "(0018,1511)",
    "DistanceSourceToDetector": "(0018,1110)",
    "DistanceSourceToPatient": "(0018,1111)",
    "DistanceSourceToIsocenter": "(0018,9402)",
    "ImagerPixelSpacing": "(0018,1164)",
    "FrameTime": "(0018,1063)",
    "TableHeight": "(0018,1130)",
    "TableTraverse": "(0018,1131)",
    "RWavePointer": "(0028,6040)",
}

_FIXES = {
    "PositionerPrimaryAngle": "export the run from the angiography system as XA DICOM (not a "
    "screenshot or secondary capture), or give the LAO(+)/RAO(-) angle explicitly",
    "PositionerSecondaryAngle": "export the run from the angiography system as XA DICOM (not a "
    "screenshot or secondary capture), or give the CRA(+)/CAU(-) angle explicitly",
    "DistanceSourceToDetector": "export the run as XA DICOM with its distance tags, or give the "
    "source-to-image distance explicitly (typically 1000-1200 mm)",
    "DistanceSourceToPatient": "export the run as XA DICOM with its distance tags, or give the "
    "source-to-isocentre distance explicitly (typically 700-800 mm)",
    "ImagerPixelSpacing": "export the run as XA DICOM with its detector pixel spacing, or give the "
    "detector pixel spacing explicitly (typically 0.15-0.3 mm)",
}


@dataclass(frozen=True)
class XAGeometry:
    """Projection geometry of one angiographic run (one C-arm position).

    Attributes
    ----------
    primary_angle_deg : float
        LAO (+) / RAO (-) rotation about the patient's head-feet axis.
    secondary_angle_deg : float
        CRA (+) / CAU (-) tilt towards the head.
    sid_mm : float
        Source-to-image (detector) distance.
    sod_mm : float
        Source-to-isocentre distance.
    pixel_spacing_mm : tuple of float
        (row, col) spacing in the detector plane.
    rows, cols : int
        Image size in pixels.
    n_frames : int
    frame_time_ms : float or None
    table_height_mm, table_traverse_mm : float or None
        Table position when the file records it.
    patient_position : str
        ``PatientPosition (0018,5100)``; the projection model assumes ``"HFS"``.
    source : str
        File it came from, for messages.
    """

    primary_angle_deg: float
    secondary_angle_deg: float
    sid_mm: float
    sod_mm: float
    pixel_spacing_mm: tuple[float, float]
    rows: int
    cols: int
    n_frames: int = 1
    frame_time_ms: float | None = None
    table_height_mm: float | None = None
    table_traverse_mm: float | None = None
    patient_position: str = "HFS"
    source: str = ""

    @property
    def magnification(self) -> float:
        """Geometric magnification of the isocentre plane, SID / SOD."""
        return self.sid_mm / self.sod_mm

    @property
    def label(self) -> str:
        """Conventional view name, e.g. ``"LAO 30 / CRA 20"``."""
        a, b = self.primary_angle_deg, self.secondary_angle_deg
        side = "LAO" if a >= 0 else "RAO"
        tilt = "CRA" if b >= 0 else "CAU"
        return f"{side} {abs(a):.0f} / {tilt} {abs(b):.0f}"


@dataclass(frozen=True, eq=False)
class XAFrame:
    """One selected angiographic frame.

    Attributes
    ----------
    image : ndarray of shape (rows, cols), float
        Grey levels as stored (MONOCHROME1 is inverted so that dense vessels are dark).
    index : int
        0-based frame index in the run.
    selected_by : str
        ``"user"``, ``"ecg"`` (R-wave, end-diastole) or ``"middle"``.
    """

    image: np.ndarray
    index: int
    selected_by: str


def _find(ds: Dataset, keyword: str) -> Any:
    """Value of ``keyword`` at top level or inside the first item of (nested) sequences."""
    if keyword in ds and ds[keyword].value not in (None, "", []):
        return ds[keyword].value
    for elem in ds:
        if elem.VR == "SQ" and elem.value:
            found = _find(elem.value[0], keyword)
            if found is not None:
                return found
    return None


def _float(ds: Dataset, keyword: str, path: Path, *, required: bool) -> float | None:
    value = _find(ds, keyword)
    if value is None:
        if required:
            raise input_error(path, f"{keyword} {_TAGS[keyword]}", "is missing", _FIXES[keyword])
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise input_error(
            path,
            f"{keyword} {_TAGS[keyword]}",
            f"is not a number ({value!r})",
            _FIXES.get(keyword, "fix the file"),
        ) from None


def _read_dataset(path: str | Path, *, pixels: bool) -> tuple[Path, Dataset]:
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "file", "does not exist", "give the path of an XA DICOM file")
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
    except Exception as exc:  # pydicom raises several types for non-DICOM input
        raise input_error(
            path, "file", f"is not readable DICOM ({exc.__class__.__name__})", "give an XA DICOM file"
        ) from None
    return path, ds


def read_xa_geometry(
    path: str | Path,
    *,
    primary_angle_deg: float | None = None,
    secondary_angle_deg: float | None = None,
    sid_mm: float | None = None,
    sod_mm: float | None = None,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> XAGeometry:
    """Read the projection geometry of an XA (or XRF / Enhanced XA) DICOM file.

    Parameters
    ----------
    path : path-like
    primary_angle_deg, secondary_angle_deg, sid_mm, sod_mm, pixel_spacing_mm : optional
        Values that replace (or stand in for missing) tags.

    Returns
    -------
    XAGeometry

    Raises
    ------
    IVUSInputError
        When a geometry tag is missing and not given, naming the file, the tag and the fix.
    """
    path, ds = _read_dataset(path, pixels=False)
    a = (
        primary_angle_deg
        if primary_angle_deg is not None
        else _float(ds, "PositionerPrimaryAngle", path, required=True)
    )
    b = (
        secondary_angle_deg
        if secondary_angle_deg is not None
        else _float(ds, "PositionerSecondaryAngle", path, required=True)
    )
    sid = sid_mm if sid_mm is not None else _float(ds, "DistanceSourceToDetector", path, required=True)
    if sod_mm is None:
        # Enhanced XA records the isocentre distance in its own tag.
        sod_mm = _float(ds, "DistanceSourceToIsocenter", path, required=False)
        if sod_mm is None:
            sod_mm = _float(ds, "DistanceSourceToPatient", path, required=True)
    if pixel_spacing_mm is None:
        spacing = _find(ds, "ImagerPixelSpacing")
        if spacing is None:
            raise input_error(
                path, "ImagerPixelSpacing (0018,1164)", "is missing", _FIXES["ImagerPixelSpacing"]
            )
        values = [
            float(v)
            for v in (
                spacing if isinstance(spacing, (list, tuple, pydicom.multival.MultiValue)) else [spacing]
            )
        ]
        pixel_spacing_mm = (values[0], values[-1])
    rows, cols = _find(ds, "Rows"), _find(ds, "Columns")
    if rows is None or cols is None:
        raise input_error(
            path, "Rows/Columns (0028,0010-0011)", "is missing", "give an XA DICOM file with image data"
        )
    for name, value in (
        ("DistanceSourceToDetector (0018,1110)", sid),
        ("DistanceSourceToPatient (0018,1111)", sod_mm),
    ):
        if not value or value <= 0:
            raise input_error(
                path, name, f"is not positive ({value})", "fix the value in the file or give it explicitly"
            )
    if sod_mm >= sid:
        raise input_error(
            path,
            "DistanceSourceToPatient (0018,1111)",
            f"({sod_mm:g} mm) is not smaller than DistanceSourceToDetector ({sid:g} mm)",
            "check both distances: the isocentre lies between source and detector",
        )
    if min(pixel_spacing_mm) <= 0:
        raise input_error(
            path,
            "ImagerPixelSpacing (0018,1164)",
            f"is not positive {pixel_spacing_mm}",
            _FIXES["ImagerPixelSpacing"],
        )
    n_frames = int(_find(ds, "NumberOfFrames") or 1)
    frame_time = _float(ds, "FrameTime", path, required=False)
    if frame_time is None and _find(ds, "CineRate"):
        frame_time = 1000.0 / float(_find(ds, "CineRate"))
    return XAGeometry(
        primary_angle_deg=float(a),
        secondary_angle_deg=float(b),
        sid_mm=float(sid),
        sod_mm=float(sod_mm),
        pixel_spacing_mm=(float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])),
        rows=int(rows),
        cols=int(cols),
        n_frames=n_frames,
        frame_time_ms=frame_time,
        table_height_mm=_float(ds, "TableHeight", path, required=False),
        table_traverse_mm=_float(ds, "TableTraverse", path, required=False),
        patient_position=str(_find(ds, "PatientPosition") or "HFS"),
        source=str(path),
    )


def _ecg_frames(ds: Dataset, n_frames: int, frame_time_ms: float | None) -> np.ndarray:
    """0-based end-diastolic (R-wave) frames from ``RWavePointer`` or an ECG waveform."""
    pointer = _find(ds, "RWavePointer")
    if pointer is not None:
        values = np.atleast_1d(np.asarray(pointer, dtype=int)) - 1  # DICOM frame numbers start at 1
        return values[(values >= 0) & (values < n_frames)]
    if "WaveformSequence" not in ds or not frame_time_ms:
        return np.array([], dtype=int)
    for group in ds.WaveformSequence:
        try:
            n_channels = int(group.NumberOfWaveformChannels)
            rate_hz = float(group.SamplingFrequency)
            bits = int(group.WaveformBitsAllocated)
            dtype = np.int16 if bits == 16 else np.int8
            data = np.frombuffer(group.WaveformData, dtype=dtype).reshape(-1, n_channels).astype(float)
        except (AttributeError, ValueError):
            continue
        label = ""
        if "ChannelDefinitionSequence" in group and group.ChannelDefinitionSequence:
            source = group.ChannelDefinitionSequence[0].get("ChannelSourceSequence")
            if source:
                label = str(source[0].get("CodeMeaning", ""))
        if label and "ecg" not in label.lower() and "lead" not in label.lower():
            continue
        signal = data[:, 0] - np.median(data[:, 0])
        if abs(signal.min()) > abs(signal.max()):
            signal = -signal  # R wave as the dominant positive deflection
        threshold = 0.6 * signal.max()
        refractory = int(0.3 * rate_hz)  # no two beats closer than 300 ms
        peaks: list[int] = []
        for i in range(1, len(signal) - 1):
            if signal[i] >= threshold and signal[i] >= signal[i - 1] and signal[i] > signal[i + 1]:
                if not peaks or i - peaks[-1] > refractory:
                    peaks.append(i)
        offset_ms = float(group.get("MultiplexGroupTimeOffset", 0.0) or 0.0)
        times_ms = np.asarray(peaks) / rate_hz * 1000.0 + offset_ms
        frames = np.round(times_ms / frame_time_ms).astype(int)
        return frames[(frames >= 0) & (frames < n_frames)]
    return np.array([], dtype=int)


def read_xa_frame(path: str | Path, frame: int | None = None) -> XAFrame:
    """Read one frame of an angiographic run.

    The user's frame wins when given; otherwise the end-diastolic frame (R wave from
    ``RWavePointer (0028,6040)`` or an ECG waveform) nearest the middle of the run; otherwise
    the middle frame.

    Parameters
    ----------
    path : path-like
    frame : int, optional
        0-based frame index.

    Returns
    -------
    XAFrame
    """
    path, ds = _read_dataset(path, pixels=True)
    if "PixelData" not in ds:
        raise input_error(
            path, "PixelData (7FE0,0010)", "is missing", "give an XA DICOM file with image data"
        )
    pixels = ds.pixel_array
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    stack = pixels.reshape((n_frames, *pixels.shape[-2:]))
    if frame is not None:
        if not 0 <= frame < n_frames:
            raise input_error(
                path,
                "frame",
                f"{frame} is outside 0..{n_frames - 1}",
                f"choose a frame between 0 and {n_frames - 1}",
            )
        index, how = int(frame), "user"
    else:
        frame_time = ds.get("FrameTime")
        ed = _ecg_frames(ds, n_frames, float(frame_time) if frame_time else None)
        if ed.size:
            index, how = int(ed[np.argmin(np.abs(ed - (n_frames - 1) / 2))]), "ecg"
        else:
            index, how = (n_frames - 1) // 2, "middle"
    image = stack[index].astype(float)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        image = image.max() - image
    return XAFrame(image=image, index=index, selected_by=how)


def write_xa(
    path: str | Path,
    image: np.ndarray,
    geometry: XAGeometry,
    *,
    r_wave_frames: tuple[int, ...] = (),
) -> Path:
    """Write an XA Image Storage file (for tests and phantoms), without patient identifiers.

    Parameters
    ----------
    path : path-like
    image : ndarray of shape (rows, cols) or (N, rows, cols)
        Grey levels; converted to uint16 (values are clipped to 0..65535).
    geometry : XAGeometry
        Angles, distances and spacing to record.
    r_wave_frames : tuple of int
        0-based frames to record in ``RWavePointer (0028,6040)``.

    Returns
    -------
    Path
    """
    path = Path(path)
    frames = np.asarray(image)
    if frames.ndim == 2:
        frames = frames[None]
    frames = np.clip(np.rint(frames), 0, 65535).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XA_SOP_CLASS_UID
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = XA_SOP_CLASS_UID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "XA"
    ds.PatientName = ""
    ds.PatientID = ""
    ds.ContentDate = datetime.date.today().strftime("%Y%m%d")
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.PatientPosition = geometry.patient_position
    ds.PositionerPrimaryAngle = f"{geometry.primary_angle_deg:.6g}"
    ds.PositionerSecondaryAngle = f"{geometry.secondary_angle_deg:.6g}"
    ds.DistanceSourceToDetector = f"{geometry.sid_mm:.6g}"
    ds.DistanceSourceToPatient = f"{geometry.sod_mm:.6g}"
    ds.ImagerPixelSpacing = [f"{geometry.pixel_spacing_mm[0]:.6g}", f"{geometry.pixel_spacing_mm[1]:.6g}"]
    if geometry.table_height_mm is not None:
        ds.TableHeight = f"{geometry.table_height_mm:.6g}"
    if geometry.table_traverse_mm is not None:
        ds.TableTraverse = f"{geometry.table_traverse_mm:.6g}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = int(frames.shape[0])
    ds.FrameTime = f"{geometry.frame_time_ms or 66.7:.6g}"
    ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if r_wave_frames:
        ds.RWavePointer = [int(f) + 1 for f in r_wave_frames]
    ds.PixelData = frames.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def read_curve_px(path: str | Path, *, pixel_spacing_mm: tuple[float, float] | None = None) -> np.ndarray:
    """Read a 2D curve traced on an angiogram, as pixel (row, col) points.

    Accepted files:

    - CSV / TXT with two columns ``row, col`` (pixels; a header line is skipped);
    - JSON: ``{"points_px": [[row, col], ...]}`` or a bare list of ``[row, col]``;
    - Slicer markups JSON (``.mrk.json``) placed on the 2D image loaded with its origin at 0 and
      ``pixel_spacing_mm`` (row, col) as spacing: ``col = |x| / col_spacing``,
      ``row = |y| / row_spacing`` (the in-plane LPS or RAS position).

    Parameters
    ----------
    path : path-like
    pixel_spacing_mm : tuple of float, optional
        Needed for markups files.

    Returns
    -------
    ndarray of shape (K, 2), pixels (row, col)
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(
            path, "file", "does not exist", "give a curve file (CSV of row,col pixels or markups JSON)"
        )
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        data = read_json_input(path, text=text)
        if isinstance(data, dict) and "markups" in data:
            if pixel_spacing_mm is None:
                raise input_error(
                    path,
                    "markups",
                    "needs the image pixel spacing",
                    "read the XA geometry first and pass its pixel spacing",
                )
            markup = data["markups"][0]
            points = np.array(
                [cp["position"] for cp in markup.get("controlPoints", [])], dtype=float
            ).reshape(-1, 3)
            return np.column_stack(
                [np.abs(points[:, 1]) / pixel_spacing_mm[0], np.abs(points[:, 0]) / pixel_spacing_mm[1]]
            )
        if isinstance(data, dict):
            data = data.get("points_px", data.get("points"))
        try:
            points = np.asarray(data, dtype=float)
        except (TypeError, ValueError):
            points = np.empty((0,))
        if points.ndim != 2 or points.shape[1] != 2:
            raise input_error(
                path, "points_px", "is not a list of [row, col] pairs", "write the curve as [[row, col], ...]"
            )
        return points
    rows: list[list[float]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in line.replace(";", ",").replace("\t", ",").replace(" ", ",").split(",") if f]
        if not fields:
            continue
        try:
            values = [float(f) for f in fields[:2]]
        except ValueError:
            if line_number == 1:
                continue  # header
            raise input_error(
                path,
                f"line {line_number}",
                f"is not two numbers ({line.strip()!r})",
                "write one 'row,col' pair per line",
            ) from None
        if len(values) != 2:
            raise input_error(
                path, f"line {line_number}", "has fewer than two columns", "write one 'row,col' pair per line"
            )
        rows.append(values)
    return np.asarray(rows, dtype=float).reshape(-1, 2)
