"""Bad input on the command line: exit code 2, one line naming the file and the fix, no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from IVUSReconstructLib.cli import _parse_frames, main
from IVUSReconstructLib.errors import IVUSInputError


@pytest.fixture(scope="module")
def small_phantom_dir(tmp_path_factory) -> Path:
    """A 3 mm coronary phantom written by the CLI (DICOM + centerline + truth)."""
    out = tmp_path_factory.mktemp("phantom") / "ph"
    assert (
        main(["phantom", "--preset", "coronary", "--length-mm", "3", "--size-px", "128", "--out", str(out)])
        == 0
    )
    return out


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "IVUSReconstructLib.cli", *args], capture_output=True, text=True, timeout=300
    )


def _assert_clean_failure(proc: subprocess.CompletedProcess, out: Path, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    # the progress bar may draw on stderr; the message is the last line and the only error line
    errors = [line for line in lines if line.startswith("ivus-reconstruct: error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert not out.exists(), f"{out} was created"
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []
    return errors[0]


def test_truncated_dicom(small_phantom_dir, tmp_path):
    data = (small_phantom_dir / "pullback.dcm").read_bytes()
    bad = tmp_path / "truncated.dcm"
    bad.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    msg = _assert_clean_failure(_run_cli(["run", str(bad), "--out", str(out)]), out, str(bad))
    assert "PixelData" in msg or "pixel data" in msg.lower()


def test_text_file_named_dcm(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("this is not a DICOM file\n")
    out = tmp_path / "out"
    msg = _assert_clean_failure(_run_cli(["run", str(bad), "--out", str(out)]), out, str(bad))
    assert "not a DICOM file" in msg


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    _assert_clean_failure(_run_cli(["run", str(empty), "--out", str(out)]), out, str(empty))


def test_dicom_without_pixel_spacing(small_phantom_dir, tmp_path):
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(small_phantom_dir / "pullback.dcm")
    for keyword in ("SequenceOfUltrasoundRegions", "PixelSpacing", "ImagerPixelSpacing"):
        if keyword in ds:
            delattr(ds, keyword)
    bad = tmp_path / "nospacing.dcm"
    ds.save_as(bad)
    out = tmp_path / "out"
    _assert_clean_failure(_run_cli(["run", str(bad), "--out", str(out)]), out, str(bad), "--pixel-spacing")


@pytest.mark.slow
def test_centerline_shorter_than_pullback(small_phantom_dir, tmp_path):
    short = tmp_path / "short.csv"
    short.write_text("x,y,z\n0,0,0\n0,0,1.0\n0,0,2.0\n")
    out = tmp_path / "out"
    proc = _run_cli(
        [
            "run",
            str(small_phantom_dir / "pullback.dcm"),
            "--centerline",
            str(short),
            "--gating",
            "none",
            "--out",
            str(out),
        ]
    )
    _assert_clean_failure(proc, out, "short.csv", "shorter than the pullback")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--pixel-spacing", "20", "not in um or cm"),
        ("--pullback-speed", "-1", "positive"),
        ("--frame-rate", "0", "positive"),
    ],
)
def test_wrong_units_in_options(small_phantom_dir, tmp_path, option, value, needle):
    out = tmp_path / "out"
    proc = _run_cli(["run", str(small_phantom_dir / "pullback.dcm"), option, value, "--out", str(out)])
    _assert_clean_failure(proc, out, option, needle)


def test_out_folder_that_is_not_ours_is_refused(small_phantom_dir, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.docx").write_text("precious")
    proc = _run_cli(["run", str(small_phantom_dir / "pullback.dcm"), "--out", str(out)])
    assert proc.returncode == 2
    assert "not an IVUSReconstruct output" in proc.stderr
    assert (out / "thesis.docx").read_text() == "precious"


def test_missing_input_is_usage_error(tmp_path):
    proc = _run_cli(["run", "--out", str(tmp_path / "o")])
    assert proc.returncode == 2
    assert "no input" in proc.stderr


def test_frame_spec_parsing():
    assert _parse_frames("0-3,7", 10).tolist() == [0, 1, 2, 3, 7]
    assert _parse_frames("all", 4).tolist() == [0, 1, 2, 3]
    with pytest.raises(IVUSInputError, match="frame 12 is outside 0-9"):
        _parse_frames("1,12", 10)


@pytest.mark.slow
def test_inputs_are_not_modified(small_phantom_dir, tmp_path):
    before = {p.name: p.read_bytes() for p in small_phantom_dir.iterdir()}
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(small_phantom_dir / "pullback.dcm"),
                "--centerline",
                str(small_phantom_dir / "centerline.mrk.json"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    after = {p.name: p.read_bytes() for p in small_phantom_dir.iterdir()}
    assert before == after
    summary = json.loads((out / "summary.json").read_text())
    # no patient identifiers travel to the outputs
    text = json.dumps(summary) + (out / "report.html").read_text()
    assert "PHANTOM^" not in text and "PatientName" not in text
    assert summary["inputs"]["pullback_speed_mm_s"]["source"].startswith("IVUSPullbackRate")
    assert np.isclose(summary["inputs"]["pullback_speed_mm_s"]["value"], 0.5)


def test_only_errors_in_the_output_place_are_called_output_errors(tmp_path):
    from IVUSReconstructLib.cli import in_output_place

    out = tmp_path / "run1"
    assert in_output_place(out, out) and in_output_place(out / "frames.csv", out)
    assert in_output_place(tmp_path / ".run1.partial-1-2-3" / "lumen.vtp", out)
    # an input beside the output folder (its landmarks, its centerline) is not
    assert not in_output_place(tmp_path / "landmarks.json", out)
    assert not in_output_place(tmp_path / "run10" / "x.json", out)


def test_an_unreadable_input_is_named_as_an_input(tmp_path, monkeypatch, capsys):
    from IVUSReconstructLib import cli

    def refuse(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "landmarks.json"))

    args = cli.build_parser().parse_args(["segment", str(tmp_path / "pb"), "--out", str(tmp_path / "c.json")])
    monkeypatch.setattr(args, "func", refuse, raising=False)
    assert cli._dispatch(args) == 2
    assert capsys.readouterr().err == (
        f"ivus-reconstruct: error: {tmp_path / 'landmarks.json'}: cannot be read (Permission denied); "
        "check the path and its permissions\n"
    )
