"""Non-DICOM pullbacks: frame folders (screen exports) and 3D images through SimpleITK."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from IVUSReconstructLib.errors import IVUSCancelled, IVUSInputError
from IVUSReconstructLib.io import images
from IVUSReconstructLib.phantom import make_phantom

N_FRAMES = 20
CANVAS = (150, 180)  # (rows, cols) of the "screenshot"
OFFSET = (10, 36)  # where the 128 x 128 phantom frame sits in the screenshot
CATHETER = (63.5 + OFFSET[0], 63.5 + OFFSET[1])  # phantom catheter at its image centre
FOV_CENTER = (CATHETER[0] + 1.5, CATHETER[1] - 1.0)  # disc deliberately off the catheter
FOV_RADIUS = 56.0
RED = (255, 0, 0)


@pytest.fixture(scope="module")
def phantom_frames() -> np.ndarray:
    return make_phantom("coronary", length_mm=1, size_px=128).pullback.frames


@pytest.fixture(scope="module")
def scene(phantom_frames: np.ndarray) -> dict:
    """Clean grey truth and its RGB screen export: red line in the FOV, white text outside."""
    frames = phantom_frames[:N_FRAMES]
    h, w = CANVAS
    rr, cc = np.mgrid[0:h, 0:w]
    disc = np.hypot(rr - FOV_CENTER[0], cc - FOV_CENTER[1]) <= FOV_RADIUS
    clean = np.zeros((N_FRAMES, h, w), np.uint8)
    clean[:, OFFSET[0] : OFFSET[0] + 128, OFFSET[1] : OFFSET[1] + 128] = frames
    clean[:, ~disc] = 0
    rgb = np.repeat(clean[..., None], 3, axis=-1)
    line = np.zeros((h, w), bool)
    for t in np.linspace(0.0, 1.0, 400):  # a 2-px measurement line through the catheter
        r, c = int(round(40 + 70 * t)), int(round(60 + 80 * t))
        line[r, c : c + 2] = True
    rgb[:, line] = RED
    rgb[:, 2:10, 2:30] = 255  # static logo
    rgb[:, 4:6, 5:25] = 0
    for k in range(N_FRAMES):  # frame counter that changes from frame to frame
        rgb[k, 140:148, 2 : 6 + k] = 255
    return {"clean": clean, "rgb": rgb, "disc": disc, "line": line}


def _write_pngs(rgb: np.ndarray, folder: Path, pattern: str = "frame{}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(rgb):
        Image.fromarray(frame).save(folder / pattern.format(k + 1))
    return folder


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory: pytest.TempPathFactory, scene: dict) -> Path:
    return _write_pngs(scene["rgb"], tmp_path_factory.mktemp("png") / "export")


@pytest.fixture(scope="module")
def png_pullback(png_folder: Path):
    return images.read_pullback(png_folder, pixel_spacing_mm=0.078125, frame_rate_hz=30.0)


# --------------------------------------------------------------------------- frame folders


def test_png_pixels_equal_inside_fov_and_zero_outside(png_pullback, scene: dict) -> None:
    frames, clean = png_pullback.frames, scene["clean"]
    assert frames.shape == (N_FRAMES, *CANVAS) and frames.dtype == np.uint8
    near_line = ndimage.binary_dilation(scene["line"], structure=np.ones((3, 3), bool))
    inside = scene["disc"] & ~near_line
    # Natural order: frame2.png is frame 1 and frame10.png frame 9 (plain sorting would not).
    assert np.array_equal(frames[:, inside], clean[:, inside])
    rr, cc = np.mgrid[0 : CANVAS[0], 0 : CANVAS[1]]
    far = np.hypot(rr - FOV_CENTER[0], cc - FOV_CENTER[1]) > FOV_RADIUS + 1.5
    assert int(np.count_nonzero(frames[:, far])) == 0  # logo and frame counter removed
    assert not frames.flags.writeable


def test_png_fov_and_catheter_detected_within_one_pixel(png_pullback) -> None:
    fov = png_pullback.provenance["field_of_view_px"].value
    assert np.hypot(*np.subtract(fov["center_px"], FOV_CENTER)) < 1.0
    assert abs(fov["radius_px"] - FOV_RADIUS) < 1.0
    assert np.hypot(*np.subtract(png_pullback.catheter_center_px, CATHETER)) < 1.0
    assert png_pullback.provenance["catheter_center_px"].source.startswith("detected: centre of the dark")


def test_png_colour_overlay_removed(png_pullback, scene: dict) -> None:
    line, clean = scene["line"], scene["clean"].astype(float)
    got = png_pullback.frames[:, line].astype(float)
    error_after = np.abs(got - clean[:, line]).mean()
    red_luma = round(0.299 * 255)
    error_before = np.abs(red_luma - clean[:, line]).mean()
    assert error_after < 0.5 * error_before
    assert png_pullback.provenance["overlay_pixels"].value >= N_FRAMES * int(line.sum())


def test_png_provenance_of_options(png_pullback) -> None:
    prov = png_pullback.provenance
    assert prov["n_frames"].value == N_FRAMES and prov["n_frames"].source == "20 PNG files in natural order"
    assert prov["pixel_spacing_mm"].source == "--pixel-spacing"
    assert prov["frame_times_s"].source == "--frame-rate"
    np.testing.assert_allclose(png_pullback.frame_times_s[:3], [0.0, 1 / 30, 2 / 30])
    assert png_pullback.acquisition == "manual" and png_pullback.pullback_speed_mm_s is None
    assert prov["acquisition"].source == "default: no --pullback-speed"


def test_png_pullback_speed_means_motor(png_folder: Path) -> None:
    pb = images.read_pullback(
        png_folder, pixel_spacing_mm=(0.08, 0.08), frame_rate_hz=30, pullback_speed_mm_s=0.5
    )
    assert pb.acquisition == "motor" and pb.pullback_speed_mm_s == 0.5
    assert pb.provenance["pullback_speed_mm_s"].source == "--pullback-speed"


def test_ruler_gives_pixel_spacing(tmp_path: Path, scene: dict) -> None:
    rgb = scene["rgb"].copy()
    rgb[:, 134:139, 40:161:10] = 255  # 13 ticks every 10 px below the disc
    pb = images.read_pullback(_write_pngs(rgb, tmp_path / "ruler"), frame_rate_hz=30)
    assert pb.pixel_spacing_mm == pytest.approx((0.1, 0.1), abs=1e-9)
    assert pb.provenance["pixel_spacing_mm"].source.startswith("detected: 13 tick marks every 10.00 px")


def test_jpeg_export_within_tolerance(tmp_path: Path, scene: dict) -> None:
    folder = tmp_path / "jpeg"
    folder.mkdir()
    for k, frame in enumerate(scene["rgb"]):
        Image.fromarray(frame).save(folder / f"IMG_{k + 1}.jpg", quality=90)
    pb = images.read_pullback(folder, pixel_spacing_mm=0.1, frame_rate_hz=30)
    fov = pb.provenance["field_of_view_px"].value
    assert abs(fov["radius_px"] - FOV_RADIUS) < 1.0
    assert np.hypot(*np.subtract(pb.catheter_center_px, CATHETER)) < 1.0
    inside = scene["disc"] & ~ndimage.binary_dilation(scene["line"], structure=np.ones((5, 5), bool))
    assert np.abs(pb.frames[:, inside].astype(int) - scene["clean"][:, inside]).mean() < 4.0


def test_tinted_display_is_kept_as_luminance(tmp_path: Path, scene: dict) -> None:
    clean = scene["clean"][:4]
    # A sepia-like display: every pixel coloured, luminance equal to the grey value.
    sepia = np.stack([clean * 1.0, clean * 0.8, clean * 0.55], axis=-1)
    sepia = np.clip(np.rint(sepia), 0, 255).astype(np.uint8)
    pb = images.read_pullback(_write_pngs(sepia, tmp_path / "sepia"), pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert pb.provenance["tinted_frames"].value == 4
    luma = np.rint(sepia[..., 0] * 0.299 + sepia[..., 1] * 0.587 + sepia[..., 2] * 0.114)
    inside = scene["disc"]
    assert np.array_equal(pb.frames[:, inside], luma[:, inside].astype(np.uint8))


def test_frames_filled_edge_to_edge_are_not_masked(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(20, 255, (6, 40, 52), dtype=np.uint8)
    folder = tmp_path / "full"
    folder.mkdir()
    for k, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{k}.png")
    pb = images.read_pullback(folder, pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert pb.provenance["field_of_view_px"].value is None
    assert np.array_equal(pb.frames, frames)
    assert pb.catheter_center_px == (19.5, 25.5)


def test_multipage_tiff(tmp_path: Path, scene: dict) -> None:
    pages = [Image.fromarray(f) for f in scene["clean"][:6]]
    path = tmp_path / "pullback.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    pb = images.read_pullback(path, pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert pb.n_frames == 6 and np.array_equal(
        pb.frames[:, scene["disc"]], scene["clean"][:6][:, scene["disc"]]
    )


def test_handles(tmp_path: Path, png_folder: Path) -> None:
    dicom_folder = tmp_path / "dicom"
    dicom_folder.mkdir()
    for k in range(3):
        (dicom_folder / f"IM{k}").write_bytes(b"x")
    (dicom_folder / "thumb.jpg").write_bytes(b"x")
    assert images.handles(png_folder)
    assert not images.handles(dicom_folder)
    assert images.handles(tmp_path / "a.nii.gz") and images.handles(tmp_path / "a.nhdr")
    assert not images.handles(tmp_path / "a.dcm")


# --------------------------------------------------------------------------- frame folder errors


def test_missing_pixel_spacing(png_folder: Path) -> None:
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(png_folder, frame_rate_hz=30)
    assert str(info.value) == (
        f"{png_folder}: pixel spacing is unknown for PNG frames (no evenly spaced 1 mm dots or tick marks "
        "found in 9 sampled frames); give the pixel spacing in mm"
    )


def _dotted(rgb: np.ndarray, pitch_px: float, colour=(230, 220, 40)) -> np.ndarray:
    """Screen export with 3 x 3 coloured dots every ``pitch_px`` on both axes through the catheter,
    the dot on the catheter itself hidden (as consoles draw them)."""
    out = rgb.copy()
    for axis in (0, 1):
        for k in range(-6, 7):
            if k == 0:
                continue
            pos = CATHETER[axis] + k * pitch_px
            r, c = (pos, CATHETER[1]) if axis == 0 else (CATHETER[0], pos)
            r0, c0 = int(round(r)) - 1, int(round(c)) - 1
            if 0 <= r0 and r0 + 3 <= out.shape[1] and 0 <= c0 and c0 + 3 <= out.shape[2]:
                out[:, r0 : r0 + 3, c0 : c0 + 3] = colour
    return out


def test_coloured_axis_dots_give_pixel_spacing(tmp_path: Path, scene: dict) -> None:
    # Yellow dots every 9.5 px on both axes (JPEG, so each dot arrives as colour fragments).
    folder = tmp_path / "dots"
    folder.mkdir()
    for k, frame in enumerate(_dotted(scene["rgb"], 9.5)):
        Image.fromarray(frame).save(folder / f"{k + 1:04d}.jpg", quality=90)
    pb = images.read_pullback(folder, frame_rate_hz=30)
    assert pb.pixel_spacing_mm[0] == pytest.approx(1 / 9.5, rel=0.01)
    source = pb.provenance["pixel_spacing_mm"].source
    assert source.startswith("detected: ") and "coloured marks in 9 sampled frames" in source
    lines = pb.provenance["calibration_scale"].value["lines"]
    assert {g["axis"] for g in lines} == {"row", "col"}


def test_missing_spacing_refused_before_the_folder_is_read(png_folder: Path) -> None:
    seen: list[str] = []
    with pytest.raises(IVUSInputError):
        images.read_pullback(png_folder, frame_rate_hz=30, progress=lambda f, m: seen.append(m))
    assert seen == []  # no frame decoded into the stack


@pytest.mark.parametrize("pitches", [(9.5, 14.0)])
def test_the_scale_with_most_marks_wins(tmp_path: Path, scene: dict, pitches) -> None:
    rgb = _dotted(scene["rgb"], pitches[0])
    rgb[:, 134:137, 40:161:14] = 255  # a second, white scale of about as many marks and another pitch
    rgb[:, 134:137, 41:161:14] = 255
    folder = _write_pngs(rgb, tmp_path / "two")
    pb = images.read_pullback(folder, frame_rate_hz=30)
    # The coloured dots (22 marks) outnumber the white ticks: they are the scale.
    assert pb.pixel_spacing_mm[0] == pytest.approx(1 / pitches[0], rel=0.01)


def test_missing_frame_rate(png_folder: Path) -> None:
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(png_folder, pixel_spacing_mm=0.1)
    assert str(info.value) == f"{png_folder}: frame rate is unknown for PNG frames; give the frame rate in frames/s"


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no frames here")
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(tmp_path, pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert str(info.value) == (
        f"{tmp_path}: folder contains no image files (.png, .jpg, .jpeg, .tif, .tiff, .bmp); "
        "pass a folder of exported frames, a 3D image or a DICOM pullback"
    )


def test_mixed_sizes(tmp_path: Path, scene: dict) -> None:
    folder = _write_pngs(scene["rgb"][:3], tmp_path / "mixed")
    Image.fromarray(scene["rgb"][3, :100]).save(folder / "frame4.png")
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(folder, pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert str(info.value) == (
        f"{folder / 'frame4.png'}: image size is 180x100 px, unlike 180x150 px of frame1.png; "
        "keep only the frames of one pullback in the folder"
    )


def test_unreadable_and_truncated_images(tmp_path: Path, scene: dict) -> None:
    folder = _write_pngs(scene["rgb"][:3], tmp_path / "bad")
    data = (folder / "frame2.png").read_bytes()
    (folder / "frame2.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(IVUSInputError, match=r"frame2\.png: image cannot be decoded \(OSError\); re-export"):
        images.read_pullback(folder, pixel_spacing_mm=0.1, frame_rate_hz=30)
    (folder / "frame2.png").write_bytes(b"not an image at all")
    with pytest.raises(
        IVUSInputError, match=r"frame2\.png: image cannot be decoded \(UnidentifiedImageError\)"
    ):
        images.read_pullback(folder, pixel_spacing_mm=0.1, frame_rate_hz=30)


def test_single_2d_png(tmp_path: Path, scene: dict) -> None:
    path = tmp_path / "one.png"
    Image.fromarray(scene["clean"][0]).save(path)
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, pixel_spacing_mm=0.1, frame_rate_hz=30)
    assert (
        str(info.value)
        == f"{path}: frames is a single 2D PNG image; pass the folder holding every frame of the pullback"
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("pixel_spacing_mm", 0.0, "pixel spacing (given): value is 0 mm, must be positive, within"),
        ("frame_rate_hz", -30.0, "frame rate (given): value is -30 frames/s, must be positive, within"),
        ("pullback_speed_mm_s", float("nan"), "pullback speed (given): value is nan mm/s, outside the plausible"),
    ],
)
def test_bad_options(png_folder: Path, option: str, value: float, message: str) -> None:
    kwargs = {"pixel_spacing_mm": 0.1, "frame_rate_hz": 30.0, option: value}
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(png_folder, **kwargs)
    assert str(info.value).startswith(message)


# --------------------------------------------------------------------------- 3D images


def _volume(frames: np.ndarray, path: Path, spacing=(0.1, 0.12, 1 / 60)) -> Path:
    image = sitk.GetImageFromArray(frames)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("name", ["pullback.nrrd", "pullback.nii.gz", "pullback.mha"])
def test_volume_round_trip(tmp_path: Path, phantom_frames: np.ndarray, name: str) -> None:
    frames = phantom_frames[:30]
    path = _volume(frames, tmp_path / name)
    pb = images.read_pullback(path, pullback_speed_mm_s=0.5)
    assert np.array_equal(pb.frames, frames)
    assert pb.pixel_spacing_mm == (0.12, 0.1)  # (row, col) = (y, x)
    # 1/60 mm between frames at 0.5 mm/s: 30 frames/s.
    np.testing.assert_allclose(pb.frame_times_s, np.arange(30) / 30.0, rtol=1e-6)
    assert pb.provenance["frame_times_s"].source.startswith("derived: ")
    assert pb.acquisition == "motor"
    assert np.hypot(*np.subtract(pb.catheter_center_px, (63.5, 63.5))) < 1.0


def test_volume_speed_from_z_spacing_and_rate(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    path = _volume(phantom_frames[:10], tmp_path / "v.nrrd", spacing=(0.1, 0.1, 0.02))
    pb = images.read_pullback(path, frame_rate_hz=25.0, pixel_spacing_mm=0.05)
    assert pb.pullback_speed_mm_s == pytest.approx(0.5)
    assert (
        pb.provenance["pullback_speed_mm_s"].source == "derived: NRRD z spacing 0.02 mm x --frame-rate 25/s"
    )
    assert (
        pb.pixel_spacing_mm == (0.05, 0.05) and pb.provenance["pixel_spacing_mm"].source == "--pixel-spacing"
    )


def test_volume_unit_z_spacing_needs_rate(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    path = _volume(phantom_frames[:10], tmp_path / "v.nii", spacing=(0.1, 0.1, 1.0))
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, pullback_speed_mm_s=0.5)
    assert str(info.value) == f"{path}: frame rate is unknown for NIfTI images; give the frame rate in frames/s"
    pb = images.read_pullback(path, frame_rate_hz=30)
    assert pb.acquisition == "manual" and pb.pullback_speed_mm_s is None


def test_volume_float_and_rgb(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    frames = phantom_frames[:5]
    pb = images.read_pullback(
        _volume(frames.astype(np.float32) / 255.0, tmp_path / "f.nrrd"), frame_rate_hz=30
    )
    lo, hi = float(frames.min()), float(frames.max())
    expected = np.rint((frames - lo) * 255.0 / (hi - lo))
    assert np.abs(pb.frames.astype(float) - expected).max() <= 1.0
    rgb = sitk.GetImageFromArray(np.repeat(frames[..., None], 3, axis=-1), isVector=True)
    sitk.WriteImage(rgb, str(tmp_path / "rgb.mha"))
    # written without a spacing (1 mm, the format's default): a 128 mm field of view is refused
    with pytest.raises(IVUSInputError, match=r"field of view \(image size x pixel spacing\) is 128 mm, outside"):
        images.read_pullback(tmp_path / "rgb.mha", frame_rate_hz=30)
    pb = images.read_pullback(tmp_path / "rgb.mha", frame_rate_hz=30, pixel_spacing_mm=0.05)
    assert np.array_equal(pb.frames, frames)


def test_volume_2d_image(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    path = tmp_path / "slice.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(phantom_frames[0]), str(path))
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, frame_rate_hz=30)
    assert str(info.value) == (
        f"{path}: dimension is a 2D NRRD image (128x128 px); "
        "pass a 3D image whose third axis is the frames, or a folder of frames"
    )


def test_volume_nan(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    data = phantom_frames[:4].astype(np.float32)
    data[2, 5, 6] = np.nan
    path = _volume(data, tmp_path / "nan.nrrd")
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, frame_rate_hz=30)
    assert str(info.value) == (
        f"{path}: voxels hold 1 NaN or infinite values (first in frame 2); export the pullback without NaN"
    )


@pytest.mark.parametrize(
    ("name", "old", "new", "value"),
    [
        ("v.mha", b"ElementSpacing = 0.25 ", b"ElementSpacing = 0 ", 0.0),
        ("v.mha", b"ElementSpacing = 0.25 ", b"ElementSpacing = -0.25 ", -0.25),
        ("v.nrrd", b"(0.25,0,0)", b"(0,0,0)", 0.0),
    ],
)
def test_volume_bad_spacing(
    tmp_path: Path, phantom_frames: np.ndarray, name: str, old: bytes, new: bytes, value: float
) -> None:
    path = _volume(phantom_frames[:4], tmp_path / name, spacing=(0.25, 0.12, 0.5))
    path.write_bytes(path.read_bytes().replace(old, new))
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, frame_rate_hz=30)
    assert str(info.value) == (
        f"{path}: spacing is [{value}, 0.12, 0.5] mm (must be positive); give the pixel spacing in mm"
    )


def test_volume_negative_spacing_overridden(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    path = _volume(phantom_frames[:4], tmp_path / "v.mha", spacing=(0.25, 0.12, 0.5))
    path.write_bytes(path.read_bytes().replace(b"ElementSpacing = 0.25 ", b"ElementSpacing = -0.25 "))
    pb = images.read_pullback(path, frame_rate_hz=30, pixel_spacing_mm=0.1)
    assert pb.pixel_spacing_mm == (0.1, 0.1)
    assert pb.pullback_speed_mm_s == pytest.approx(15.0)  # 0.5 mm x 30/s


def test_volume_truncated_and_garbage(tmp_path: Path, phantom_frames: np.ndarray) -> None:
    path = _volume(phantom_frames[:10], tmp_path / "v.mha")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IVUSInputError) as info:
        images.read_pullback(path, frame_rate_hz=30)
    assert str(info.value) == (
        f"{path}: size declares 128x128x10 voxels (163840 bytes), more than the file holds; re-export the MetaImage image"
    )
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(IVUSInputError, match=r"junk\.nii: file cannot be read as NIfTI"):
        images.read_pullback(junk, frame_rate_hz=30)


# --------------------------------------------------------------------------- cancel, progress, fuzz


def test_progress_and_cancel(png_folder: Path) -> None:
    seen: list[float] = []
    images.read_pullback(
        png_folder, pixel_spacing_mm=0.1, frame_rate_hz=30, progress=lambda f, m: seen.append(f)
    )
    assert seen[-1] == 1.0 and bool(np.all(np.diff(seen) >= 0))
    stop = threading.Event()
    stop.set()
    with pytest.raises(IVUSCancelled):
        images.read_pullback(png_folder, pixel_spacing_mm=0.1, frame_rate_hz=30, cancel=stop)


def _small_files() -> dict[str, bytes]:
    """A valid 3-frame PNG export and a 3-frame NRRD, as bytes."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (3, 24, 24), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        _volume(frames, path / "v.nrrd")
        Image.fromarray(frames[0]).save(path / "f.png")
        return {"png": (path / "f.png").read_bytes(), "nrrd": (path / "v.nrrd").read_bytes()}


SMALL = _small_files()


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["png", "nrrd"]),
    edits=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.floats(0.2, 1.0),
)
def test_corrupted_files_raise_only_input_errors(kind: str, edits: list, cut: float) -> None:
    data = bytearray(SMALL[kind])
    for where, value in edits:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(1, int(cut * len(data)))])
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "png":
            folder = Path(tmp) / "frames"
            folder.mkdir()
            (folder / "a1.png").write_bytes(SMALL["png"])
            (folder / "a2.png").write_bytes(data)
            target = folder
        else:
            target = Path(tmp) / "v.nrrd"
            target.write_bytes(data)
        try:
            pb = images.read_pullback(target, pixel_spacing_mm=0.1, frame_rate_hz=30)
        except IVUSInputError as exc:
            assert str(exc).startswith(str(target)) and "\n" not in str(exc)
        else:
            assert pb.frames.ndim == 3 and pb.frames.dtype in (np.uint8, np.uint16)
