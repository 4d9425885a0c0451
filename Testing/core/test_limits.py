"""The one range table (limits.py): every front end and reader uses it, and each words the fix
in its own terms.

The Slicer module cannot be imported here (no Slicer Qt): its parameter node's ranges are read from
the source with ``ast`` and evaluated against the table, and the .ui spin boxes are compared too.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IVUSReconstructLib import batch, cli, limits
from IVUSReconstructLib.errors import IVUSInputError
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.contours import read_contours
from IVUSReconstructLib.io.dicom import read_pullback, write_pullback
from IVUSReconstructLib.limits import LIMITS, IVUSRangeError
from IVUSReconstructLib.phantom import make_phantom

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "IVUSReconstruct" / "IVUSReconstruct.py"
UI_FILE = REPO / "Resources" / "UI" / "IVUSReconstruct.ui"

# the four values every front end takes, by the front end's own name
FRONT_END_FIELDS = ("pixel_spacing_mm", "pullback_speed_mm_s", "frame_rate_hz", "start_mm")


# --------------------------------------------------------------------------- the table itself


def test_table_rows_are_ordered_ranges_with_units():
    assert set(FRONT_END_FIELDS) <= set(LIMITS)
    for key, lim in LIMITS.items():
        assert lim.low < lim.high, key
        assert lim.unit and lim.typical, key
    # the values the issue names: 40 mm/pixel is refused, 0.02 accepted; 0-20 mm/s is gone
    assert LIMITS["pixel_spacing_mm"].high == 1.0 and LIMITS["pullback_speed_mm_s"].high == 40.0


def test_range_error_carries_the_field_and_each_front_end_words_the_fix():
    with pytest.raises(IVUSRangeError) as info:
        limits.check("pullback_speed_mm_s", 60.0, where="x.dcm", name="IVUSPullbackRate (0018,3101)")
    exc = info.value
    assert (exc.field, exc.value, exc.where) == ("pullback_speed_mm_s", 60.0, "x.dcm")
    head = "x.dcm: IVUSPullbackRate (0018,3101) is 60 mm/s, outside the plausible 0.05-40 mm/s"
    assert str(exc).startswith(head) and "--" not in str(exc)  # the library names no option
    worded = {
        name: limits.reworded(exc, fixes)
        for name, fixes in (
            ("cli", limits.CLI_FIXES),
            ("batch", limits.BATCH_FIXES),
            ("slicer", limits.SLICER_FIXES),
        )
    }
    assert worded["cli"].endswith("--pullback-speed MM_S (typically 0.5, 1 or 2)")
    assert worded["batch"].endswith("fill the pullback_speed column in mm/s (typically 0.5, 1 or 2)")
    assert worded["slicer"].endswith("set 'Pullback speed' (mm/s) in the Acquisition section")
    assert all(w.startswith(head) for w in worded.values())
    # every value a user can set has a fix in every front end's terms
    for fixes in (limits.CLI_FIXES, limits.BATCH_FIXES, limits.SLICER_FIXES):
        assert set(FRONT_END_FIELDS) <= set(fixes)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_non_finite_or_non_positive_is_refused(value):
    with pytest.raises(IVUSRangeError, match="pixel spacing is"):
        limits.check("pixel_spacing_mm", value, where="w")


# --------------------------------------------------------------------------- front ends


def _just_outside(key: str) -> float:
    return LIMITS[key].high * 1.5 + 1.0


@pytest.mark.parametrize(
    ("option", "attribute", "key"), [(o.option, o.column, o.field) for o in limits.ACQUISITION_OPTIONS]
)
def test_cli_options_use_the_table(option, attribute, key):
    ok = argparse.Namespace(**{attribute: LIMITS[key].high})
    cli.check_acquisition_options(ok)
    bad = argparse.Namespace(**{attribute: _just_outside(key)})
    with pytest.raises(IVUSRangeError) as info:
        cli.check_acquisition_options(bad)
    assert info.value.field == key
    lim = LIMITS[key]
    assert str(info.value).startswith(f"{option}: value is ")
    assert f"{lim.low:g}-{lim.high:g} {lim.unit}" in str(info.value)
    assert not hasattr(cli, "_ACQUISITION_LIMITS") and not hasattr(cli, "_positive")


def test_one_option_map_names_the_four_acquisition_values():
    """The command line, the manifest, the readers and the Slicer module name the same four values."""
    assert [o.field for o in limits.ACQUISITION_OPTIONS] == [
        "pixel_spacing_mm", "pullback_speed_mm_s", "frame_rate_hz", "start_mm"
    ]  # fmt: skip
    assert {c: batch.OPTION_FIELDS[c] for c in ("pixel_spacing", "pullback_speed", "frame_rate", "start_mm")} == {
        o.column: o.field for o in limits.ACQUISITION_OPTIONS
    }
    parser = cli.build_parser()
    args = parser.parse_args(["run", "x.dcm", "--pixel-spacing", "0.02", "--pullback-speed", "1",
                              "--frame-rate", "30", "--start-mm", "2"])  # fmt: skip
    options = cli._options_from_args(args)
    assert (options.pixel_spacing_mm, options.pullback_speed_mm_s, options.frame_rate_hz, options.start_mm) == (
        0.02, 1.0, 30.0, 2.0
    )


@pytest.mark.parametrize("column", ["pixel_spacing", "pullback_speed", "frame_rate", "start_mm"])
def test_batch_columns_use_the_table(column):
    key = batch.OPTION_FIELDS[column]
    ok = batch.CaseSpec("a", (("pullback", "x"),), ((column, str(LIMITS[key].high)),), "m.csv", 2)
    batch.case_options(ok)
    bad = batch.CaseSpec("a", (("pullback", "x"),), ((column, str(_just_outside(key))),), "m.csv", 2)
    with pytest.raises(IVUSRangeError) as info:
        batch.case_options(bad)
    lim = LIMITS[key]
    assert info.value.field == key
    assert str(info.value).startswith(f"m.csv: case 'a': column {column} is ")
    assert f"{lim.low:g}-{lim.high:g} {lim.unit}" in str(info.value)
    assert str(info.value).endswith(limits.BATCH_FIXES[key]) and "--" not in str(info.value)


def _module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text())


def test_slicer_parameter_node_uses_the_table():
    tree = _module_tree()
    # the module maps its fields through the one option map of limits.py
    definition = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PARAMETER_LIMITS"
    )
    mapping = eval(
        compile(ast.Expression(definition), "<ast>", "eval"),
        {"ACQUISITION_OPTIONS": limits.ACQUISITION_OPTIONS},
    )
    assert sorted(mapping.values()) == sorted(FRONT_END_FIELDS)
    node_class = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "IVUSReconstructParameterNode"
    )
    ranges = {}
    for item in node_class.body:
        if isinstance(item, ast.AnnAssign) and item.target.id in mapping:
            call = item.annotation.slice.elts[1]
            assert call.func.id == "WithinRange"
            # the bounds are expressions on the table, not numbers typed again
            assert not any(isinstance(a, ast.Constant) and a.value != 0.0 for a in call.args), item.target.id
            low, high = (
                eval(compile(ast.Expression(a), "<ast>", "eval"), {"LIMITS": LIMITS}) for a in call.args
            )
            ranges[item.target.id] = (low, high)
    for name, key in mapping.items():
        lim = LIMITS[key]
        # 0 means "from the data" for the acquisition values, so the lower bound is 0 there
        assert ranges[name] == ((lim.low if key == "start_mm" else 0.0), lim.high), name
    # the logic checks the fields with the table and words the fix in the module's terms
    source = MODULE_FILE.read_text()
    assert "limits.check(field, value" in source and "limits.SLICER_FIXES" in source
    # and the .ui spin boxes show the same ranges
    for prop in ET.parse(UI_FILE).iter("widget"):
        bound = prop.find("property[@name='SlicerParameterName']/string")
        if bound is not None and bound.text in mapping:
            high = float(prop.find("property[@name='maximum']/double").text)
            assert high == LIMITS[mapping[bound.text]].high, bound.text


# --------------------------------------------------------------------------- readers


@pytest.fixture(scope="module")
def small_dicom(tmp_path_factory) -> bytes:
    pb = make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback
    return write_pullback(pb, tmp_path_factory.mktemp("lim") / "p.dcm").read_bytes()


def _dicom(tmp_path: Path, data: bytes, **region) -> Path:
    path = tmp_path / "p.dcm"
    path.write_bytes(data)
    ds = pydicom.dcmread(path)
    for key, value in region.items():
        if key in ("PhysicalDeltaX", "PhysicalDeltaY"):
            setattr(ds.SequenceOfUltrasoundRegions[0], key, value)
        else:
            setattr(ds, key, value)
    ds.save_as(path)
    return path


def test_40_mm_pixels_refused_before_decoding(tmp_path, small_dicom, monkeypatch):
    """The issue's native abort: 4 cm per pixel in the Ultrasound Region."""
    from IVUSReconstructLib.io import dicom

    path = _dicom(tmp_path, small_dicom, PhysicalDeltaX=4.0, PhysicalDeltaY=4.0)

    def no_decoding(*args, **kwargs):
        raise AssertionError("frames decoded before the spacing was checked")

    # the frames of this file would be memory-mapped, those of others decoded: neither happens
    monkeypatch.setattr(dicom.np, "memmap", no_decoding)
    monkeypatch.setattr(dicom, "_chunked", no_decoding)
    with pytest.raises(IVUSRangeError) as info:
        read_pullback(path)
    assert info.value.field == "pixel_spacing_mm" and info.value.value == 40.0
    assert str(info.value).startswith(
        f"{path}: pixel spacing from PhysicalDeltaY (0018,602E) is 40 mm, outside"
    )


@pytest.mark.parametrize(
    ("tags", "key", "name"),
    [
        ({"IVUSPullbackRate": "400"}, "pullback_speed_mm_s", "IVUSPullbackRate (0018,3101)"),
        ({"FrameTime": "33333"}, "frame_interval_s", "FrameTime (0018,1063)"),
        ({"PhysicalDeltaX": 0.000001}, "pixel_spacing_mm", "PhysicalDeltaX"),
    ],
)
def test_dicom_tags_outside_the_table(tmp_path, small_dicom, tags, key, name):
    path = _dicom(tmp_path, small_dicom, **tags)
    with pytest.raises(IVUSRangeError) as info:
        read_pullback(path)
    assert info.value.field == key and name in str(info.value)


def test_cli_words_a_reader_range_error_with_its_option(tmp_path, small_dicom, capsys):
    path = _dicom(tmp_path, small_dicom, PhysicalDeltaX=4.0, PhysicalDeltaY=4.0)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.rstrip().endswith(limits.CLI_FIXES["pixel_spacing_mm"])
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["p.dcm"]


def test_batch_words_a_reader_range_error_with_its_column(tmp_path, small_dicom):
    path = _dicom(tmp_path, small_dicom, IVUSPullbackRate="400")
    case = batch.CaseSpec("a", (("pullback", str(path)),), (("gating", "none"),), "m.csv", 2)
    outcome = batch.run_case(case, str(tmp_path / "batch"), batch_id="b")
    assert outcome["status"] == "failed" and outcome["exit_category"] == 2
    assert outcome["message"] == (
        f"{path}: IVUSPullbackRate (0018,3101) is 400 mm/s, outside the plausible 0.05-40 mm/s (motor "
        "pullbacks run at 0.5, 1 or 2 mm/s); fill the pullback_speed column in mm/s (typically 0.5, 1 or 2)"
    )
    assert sorted(p.name for p in (tmp_path / "batch" / "cases").iterdir()) == ["a.error.json"]


def test_centerline_in_metres_is_refused(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("x,y,z\n" + "\n".join(f"0,0,{z / 1000:.4f}" for z in range(0, 60, 5)) + "\n")
    with pytest.raises(IVUSRangeError) as info:
        read_centerline(path)
    assert info.value.field == "centerline_length_mm" and info.value.value == pytest.approx(0.055)


def _circle(r: float, n: int = 24, cx: float = 0.0) -> list[list[float]]:
    return [[cx + r * math.cos(t), r * math.sin(t)] for t in np.linspace(0, 2 * math.pi, n, endpoint=False)]


def _native(path: Path, frames: list[dict], **extra) -> Path:
    doc = {"format": "ivus-contours", "version": 1, "coordinates": "frame-plane", "units": "mm", **extra}
    path.write_text(json.dumps({**doc, "frames": frames}))
    return path


def test_contours_in_um_are_refused(tmp_path):
    path = _native(tmp_path / "c.json", [{"index": 0, "lumen": _circle(1500.0)}])
    with pytest.raises(IVUSRangeError) as info:
        read_contours(path)
    assert info.value.field == "contour_extent_mm" and info.value.value == pytest.approx(1500.0)


def test_pullback_frame_times_must_increase():
    from dataclasses import replace

    pb = make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback
    times = np.asarray(pb.frame_times_s, dtype=float).copy()
    times[5] = times[4]
    with pytest.raises(IVUSInputError, match=r"^pb: frame times are not increasing \(frame 5 at"):
        limits.check_pullback(replace(pb, frame_times_s=times), "pb")
    limits.check_pullback(pb, "pb")


# --------------------------------------------------------------------------- property-based

FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(key=st.sampled_from(sorted(LIMITS)), value=st.floats(allow_nan=True, allow_infinity=True))
def test_fuzzed_values_are_accepted_exactly_within_their_range(key, value):
    lim = LIMITS[key]
    inside = math.isfinite(value) and lim.low <= value <= lim.high
    try:
        limits.check(key, value, where="w")
    except IVUSRangeError as exc:
        assert not inside and exc.field == key and "\n" not in str(exc)
    else:
        assert inside


@FUZZ
@given(
    r_lumen=st.floats(0.1, 5.0),
    r_vessel=st.floats(0.1, 8.0),
    dx=st.floats(-10.0, 10.0),
    scale=st.sampled_from([1.0, 1.0, 1.0, 100.0, 1000.0]),
)
def test_fuzzed_contours_pass_or_raise_an_input_error(r_lumen, r_vessel, dx, scale):
    from IVUSReconstructLib.types import ContourSet, FrameContours

    lumen = np.asarray(_circle(r_lumen * scale, cx=dx * scale))
    vessel = np.asarray(_circle(r_vessel * scale))
    contours = ContourSet(frames=(FrameContours(index=0, lumen=lumen, vessel=vessel),))
    try:
        limits.check_contours(contours, "c.json", field_of_view_mm=(10.0, 10.0))
    except IVUSInputError as exc:
        assert str(exc).startswith("c.json: frame 0 ") and "\n" not in str(exc)
        refused = True
    else:
        refused = False
    # inside the image, lumen well inside the vessel: accepted; lumen wholly outside: refused
    fits = (abs(dx) + max(r_lumen, r_vessel)) * scale <= 6.25
    if fits and abs(dx) + r_lumen < 0.95 * r_vessel:
        assert not refused
    if abs(dx) > r_lumen + r_vessel:
        assert refused


@FUZZ
@given(
    delta_cm=st.floats(1e-6, 10.0),
    frame_time_ms=st.floats(0.01, 1e5),
    rate=st.floats(1e-3, 1e3),
)
def test_fuzzed_acquisition_tags_raise_only_range_errors(
    tmp_path, small_dicom, delta_cm, frame_time_ms, rate
):
    path = _dicom(
        tmp_path,
        small_dicom,
        PhysicalDeltaX=delta_cm,
        PhysicalDeltaY=delta_cm,
        FrameTime=f"{frame_time_ms:.6g}",
        IVUSPullbackRate=f"{rate:.6g}",
    )
    values = {
        "pixel_spacing_mm": delta_cm * 10.0,
        "frame_interval_s": float(f"{frame_time_ms:.6g}") / 1000.0,
        "pullback_speed_mm_s": float(f"{rate:.6g}"),
    }
    wrong = {k for k, v in values.items() if not LIMITS[k].low <= v <= LIMITS[k].high}
    try:
        pb = read_pullback(path)
        limits.check_pullback(pb, path)
    except IVUSRangeError as exc:
        assert exc.field in wrong | {"field_of_view_mm", "pullback_length_mm"}, str(exc)
    else:
        assert not wrong


# --------------------------------------------------------------------------- size guards


def test_labelmap_that_would_not_fit_is_refused_before_meshing(monkeypatch):
    """Plausible values each, but together a 1950 mm vessel 80 mm wide: a 0.2 mm labelmap of
    9.8 x 10^3 x 4.2 x 10^2 x 4.2 x 10^2 voxels. Refused from the placed frames, before meshing."""
    from IVUSReconstructLib import mesh, pipeline
    from IVUSReconstructLib.types import Centerline, ContourSet, FrameContours

    frames = tuple(
        FrameContours(
            index=k, lumen=np.asarray(_circle(20.0)), vessel=np.asarray(_circle(40.0)), z_mm=10.0 * k
        )
        for k in range(195)
    )
    line = Centerline(points_ras_mm=np.column_stack([np.zeros(40), np.zeros(40), np.linspace(0, 1950, 40)]))

    def no_mesh(*args, **kwargs):
        raise AssertionError("meshing started")

    monkeypatch.setattr(mesh, "build_meshes", no_mesh)
    with pytest.raises(IVUSInputError) as info:
        pipeline.run_pipeline(
            contours=ContourSet(frames=frames), centerline=line, input_paths={"contours": "c.json"}
        )
    message = str(info.value)
    assert message.startswith("c.json: the vessel labelmap would take ")
    gb = float(message.split("would take ")[1].split(" GB")[0])
    voxels = (1940 + 2 * 41) / 0.2 * ((2 * 41) / 0.2) ** 2
    assert gb == pytest.approx(4 * voxels / 1024**3, rel=0.02)
    assert message.endswith(
        "check the pixel spacing and the centerline's unit (the vessel spans 82 x 82 x 2022 mm)"
    )


def test_render_size_outside_the_table_is_refused():
    with pytest.raises(IVUSRangeError, match="render size is 20000 px, outside the plausible 16-8192 px"):
        limits.check_output_sizes(
            np.zeros((3, 3)), 5.0, labelmap_spacing_mm=0.2, render_size_px=(20000, 1000), where="w"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--size-px", "100000"],
            "--size-px: value is 100000 px, outside the plausible 16-4096 px (IVUS frames are 256-1024 pixels "
            "wide); give the frame size in pixels (e.g. 256 or 512)",
        ),
        (
            ["--length-mm", "5000"],
            "--length-mm: value is 5000 mm, outside the plausible 0-1000 mm (pullbacks cover 30-300 mm); "
            "give the pullback length in mm (e.g. 40)",
        ),
    ],
)
def test_phantom_size_options_use_the_table(tmp_path, capsys, args, message):
    """Refused before the phantom is made (100000 px frames would need tens of GB)."""
    assert cli.main(["phantom", "--preset", "coronary", *args, "--out", str(tmp_path / "ph")]) == 2
    assert capsys.readouterr().err == f"ivus-reconstruct: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- derived once, checked once


def test_each_reader_checks_the_header_facts_once_and_the_pipeline_not_again(tmp_path, monkeypatch):
    """Every reader derives its acquisition facts once and checks them once with
    limits.check_acquisition; the pipeline checks only pullbacks no reader checked (a Slicer
    volume, a phantom)."""
    import SimpleITK as sitk
    from PIL import Image

    from IVUSReconstructLib import pipeline
    from IVUSReconstructLib.io import images

    pb = make_phantom("coronary", seed=5, length_mm=0.5, size_px=48).pullback
    calls: list[str] = []
    real = limits.check_acquisition

    def spy(where, **facts):
        calls.append(str(where))
        return real(where, **facts)

    monkeypatch.setattr(limits, "check_acquisition", spy)
    frames_dir = tmp_path / "png"
    frames_dir.mkdir()
    for k, frame in enumerate(np.asarray(pb.frames)):
        Image.fromarray(frame).save(frames_dir / f"f{k:03d}.png")
    volume = tmp_path / "p.nrrd"
    image = sitk.GetImageFromArray(np.asarray(pb.frames))
    image.SetSpacing((0.2, 0.2, 0.5))
    sitk.WriteImage(image, str(volume))
    readers = {
        "dicom file": lambda: read_pullback(write_pullback(pb, tmp_path / "p.dcm")),
        "dicom folder": lambda: read_pullback(write_pullback(pb, tmp_path / "f", layout="single-frame")),
        "image folder": lambda: images.read_pullback(frames_dir, pixel_spacing_mm=0.2, frame_rate_hz=30.0),
        "3D image": lambda: images.read_pullback(volume, frame_rate_hz=30.0),
    }
    for name, read in readers.items():
        calls.clear()
        back = read()
        assert len(calls) == 1, (name, calls)
        pipeline._check_ranges(back, None, None, pipeline.RunOptions(), {"pullback": "p"})
        assert len(calls) == 1, (name, "checked again by the pipeline")
    calls.clear()
    pipeline._check_ranges(pb, None, None, pipeline.RunOptions(), {"pullback": "p"})
    assert calls == ["p"]  # a pullback no reader made is checked by the pipeline, once


# --------------------------------------------------------------------------- library words, front ends' fixes

LIBRARY = REPO / "IVUSReconstruct" / "IVUSReconstructLib"
FRONT_ENDS = {"cli.py", "batch.py", "limits.py"}  # limits.py holds the front ends' fix tables
OPTION = __import__("re").compile(r"(?<![\w-])--[a-z][a-z-]+")


def _message_strings(tree: ast.AST):
    """String parts of what the library says to users: raised errors, input_error(...) and
    IVUSInputError(...) arguments, and flag messages ({"rule": ..., "message": ...})."""
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            roots.append(node.exc)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("input_error", "IVUSInputError"):
            roots.extend(node.args)
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if "message" in keys:
                roots.append(node.values[keys.index("message")])
        for root in roots:
            for part in ast.walk(root):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield part.lineno, part.value


def test_library_messages_name_no_command_line_option():
    """A Slicer or batch user reads the library's messages too: they name settings in plain words
    (with IVUSInputError.setting for each front end to name its own control), never an option."""
    found = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.name in FRONT_ENDS:
            continue
        for line, text in _message_strings(ast.parse(path.read_text())):
            if OPTION.search(text):
                found.append(f"{path.relative_to(LIBRARY)}:{line}: {text[:80]}")
    assert found == []


@pytest.mark.parametrize(
    ("fixes", "ending"),
    [
        (limits.CLI_FIXES, "--pixel-spacing MM (e.g. 0.02 for 10 mm over 512 pixels), not in um or cm"),
        (limits.BATCH_FIXES, "fill the pixel_spacing column in mm (e.g. 0.02), not in um or cm"),
        (limits.SLICER_FIXES, "set 'Pixel spacing' (mm) in the Acquisition section"),
    ],
)
def test_each_front_end_words_a_missing_value_in_its_own_terms(tmp_path, small_dicom, fixes, ending):
    path = _dicom(tmp_path, small_dicom)
    ds = pydicom.dcmread(path)
    del ds.SequenceOfUltrasoundRegions
    ds.save_as(path)
    with pytest.raises(IVUSInputError) as info:
        read_pullback(path)
    head = f"{path}: SequenceOfUltrasoundRegions (0018,6011)/PixelSpacing (0028,0030) is missing"
    assert str(info.value) == f"{head}; give the pixel spacing in mm"  # the library's words
    assert info.value.setting == "pixel_spacing_mm"
    assert limits.reworded(info.value, fixes) == f"{head}; {fixes['pixel_spacing_mm']}"
    assert limits.reworded(info.value, fixes).endswith(ending)


def test_every_setting_a_library_error_names_has_a_fix_in_every_front_end():
    settings = set()
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            for kw in getattr(node, "keywords", []) or []:
                if kw.arg == "setting" and isinstance(kw.value, ast.Constant) and kw.value.value:
                    settings.add(kw.value.value)
    from IVUSReconstructLib import errors

    settings |= set(errors._SETTING_OF_FIX.values())
    assert {"pixel_spacing_mm", "frame_rate_hz", "pullback_speed_mm_s", "start_mm_smaller"} <= settings
    for fixes in (limits.CLI_FIXES, limits.BATCH_FIXES, limits.SLICER_FIXES):
        missing = settings - set(fixes) - {"memory", "frame_range"}
        assert missing == set(), missing
    assert "frame_range" in limits.CLI_FIXES  # the frame range is set on the command line only


@FUZZ
@given(
    spacing_xy=st.floats(1e-4, 8.0),
    spacing_z=st.floats(0.01, 20.0),
    speed=st.one_of(st.none(), st.floats(0.01, 100.0)),
)
def test_fuzzed_volume_header_facts_raise_only_range_errors(tmp_path, spacing_xy, spacing_z, speed):
    """A 3D image's header facts go through the table before any voxel is read: refused exactly
    when one of them (or the field of view, the frame interval, the pullback length) is out."""
    import SimpleITK as sitk

    from IVUSReconstructLib.io import images

    path = tmp_path / "v.nrrd"
    image = sitk.GetImageFromArray(np.zeros((6, 32, 32), np.uint8))
    image.SetSpacing((spacing_xy, spacing_xy, spacing_z))
    sitk.WriteImage(image, str(path))
    xy = float(f"{spacing_xy:.17g}")
    fov = 32 * xy
    interval = spacing_z / speed if speed else None
    wrong = {
        "pixel_spacing_mm": not LIMITS["pixel_spacing_mm"].low <= xy <= LIMITS["pixel_spacing_mm"].high,
        "field_of_view_mm": not LIMITS["field_of_view_mm"].low <= fov <= LIMITS["field_of_view_mm"].high,
        "pullback_speed_mm_s": speed is not None
        and not LIMITS["pullback_speed_mm_s"].low <= speed <= LIMITS["pullback_speed_mm_s"].high,
        "frame_interval_s": interval is not None
        and not LIMITS["frame_interval_s"].low <= interval <= LIMITS["frame_interval_s"].high,
    }
    try:
        images.read_pullback(path, pullback_speed_mm_s=speed, require_timing=False)
    except IVUSRangeError as exc:
        assert exc.field in {k for k, v in wrong.items() if v} | {"pullback_length_mm"}, str(exc)
    else:
        assert not any(wrong.values()), wrong


@FUZZ
@given(delta_cm=st.floats(1e-5, 1.0), cut=st.one_of(st.none(), st.integers(0, 5)))
def test_fuzzed_dicom_folder_checked_from_headers(tmp_path_factory, delta_cm, cut):
    """A folder of single-frame files: a cut file is named first, then the first header's facts
    go through the table, all before any file's pixels are read."""
    from IVUSReconstructLib.io import dicom

    pb = make_phantom("coronary", seed=5, length_mm=0.2, size_px=48).pullback
    folder = write_pullback(pb, tmp_path_factory.mktemp("fold") / "f", layout="single-frame")
    files = sorted(folder.iterdir())
    ds = pydicom.dcmread(files[0])
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = delta_cm
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaY = delta_cm
    ds.save_as(files[0])
    if cut is not None:
        victim = files[min(cut, len(files) - 1)]
        victim.write_bytes(victim.read_bytes()[:-300])
    spacing = float(pydicom.dcmread(files[0]).SequenceOfUltrasoundRegions[0].PhysicalDeltaX) * 10.0
    bad_spacing = not (
        LIMITS["pixel_spacing_mm"].low <= spacing <= LIMITS["pixel_spacing_mm"].high
        and LIMITS["field_of_view_mm"].low <= 48 * spacing <= LIMITS["field_of_view_mm"].high
    )
    real = dicom._file_frames
    try:
        dicom._file_frames = lambda *a, **k: pytest.fail("pixels read before the headers were checked")
        read_pullback(folder)
    except IVUSRangeError as exc:
        assert cut is None and bad_spacing and exc.field in ("pixel_spacing_mm", "field_of_view_mm")
    except IVUSInputError as exc:
        assert cut is not None and str(exc).startswith(f"{victim}: PixelData (7FE0,0010) is truncated (")
    except BaseException as exc:  # the pixels were reached: only for a whole folder in range
        assert cut is None and not bad_spacing, exc
    else:
        pytest.fail("pixels never read")
    finally:
        dicom._file_frames = real
