"""The scripting API (IVUSReconstructLib.run, segment, read_pullback, load_result) and the README
example that shows it, run as written on a small phantom."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import IVUSReconstructLib as ivus
from IVUSReconstructLib.errors import IVUSInputError

REPO = Path(__file__).resolve().parents[2]
HEADING = "## Scripting (Slicer Python console, notebooks)"


def readme_example() -> str:
    """The first python code block of the README's scripting section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(HEADING) :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory) -> Path:
    """pullback.dcm and centerline.mrk.json of a short coronary phantom, as `ivus-reconstruct phantom`."""
    from IVUSReconstructLib import cli

    folder = tmp_path_factory.mktemp("api")
    args = cli.build_parser().parse_args(
        ["phantom", "--preset", "coronary", "--length-mm", "6", "--size-px", "128", "--out", str(folder)]
    )
    cli._write_phantom_files(cli._make_phantom(args), folder)
    return folder


def test_import_is_light():
    code = "import sys, IVUSReconstructLib; print(sorted(m for m in ('numpy', 'vtkmodules', 'pydicom', 'scipy') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO / "IVUSReconstruct")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_api_names_are_documented_and_typed():
    for name in ("run", "segment", "read_pullback", "load_result"):
        func = getattr(ivus, name)
        assert func.__module__ == "IVUSReconstructLib.api"
        assert "Parameters" in func.__doc__ and "Returns" in func.__doc__, name
        assert "return" in func.__annotations__, name
    assert set(ivus.__all__) >= {"run", "segment", "read_pullback", "load_result"}
    with pytest.raises(AttributeError):
        ivus.no_such_function  # noqa: B018


@pytest.mark.slow  # a whole run with its output folder: 9.5 s measured
def test_readme_example_runs(phantom_folder: Path, monkeypatch, capsys):
    monkeypatch.chdir(phantom_folder)
    exec(compile(readme_example(), "README.md (scripting)", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    truth = json.loads((phantom_folder / "truth_metrics.json").read_text())["summary"]
    summary = json.loads((phantom_folder / "ivus-output" / "summary.json").read_text())
    # the run is the command line's run: its MLA lies within the demo tolerance of the truth
    assert summary["mla"]["area_mm2"] == pytest.approx(truth["mla"]["area_mm2"], rel=0.05)
    assert printed[1].startswith("[0, 10, 20, 30] (")
    assert printed[2].startswith(f"{summary['mla']['area_mm2']} mm2 at")


def test_read_pullback_overrides(phantom_folder: Path):
    pullback = ivus.read_pullback(phantom_folder / "pullback.dcm", frame_rate_hz=25.0, pixel_spacing_mm=0.05)
    assert pullback.pixel_spacing_mm == (0.05, 0.05)
    assert np.diff(pullback.frame_times_s)[0] == pytest.approx(0.04)
    assert pullback.provenance["frame_times_s"].source == "--frame-rate"


def test_run_in_memory_equals_run_on_files(phantom_folder: Path):
    from IVUSReconstructLib.io.centerline import read_centerline
    from IVUSReconstructLib.io.contours import read_contours

    truth = read_contours(phantom_folder / "truth_contours.json")
    centerline = read_centerline(phantom_folder / "centerline.mrk.json")
    pullback = ivus.read_pullback(phantom_folder / "pullback.dcm")
    on_files = ivus.run(
        phantom_folder / "pullback.dcm", centerline=phantom_folder / "centerline.mrk.json",
        contours=phantom_folder / "truth_contours.json", render_size_px=(64, 48),
    )  # fmt: skip
    in_memory = ivus.run(pullback, centerline=centerline, contours=truth, render_size_px=(64, 48))
    assert in_memory.metrics.summary["volumes_mm3"] == on_files.metrics.summary["volumes_mm3"]


def test_run_refuses_an_unknown_option(phantom_folder: Path):
    with pytest.raises(IVUSInputError, match=r"^run: .*'pixel_spacing'.*; see RunOptions for the option names$"):
        ivus.run(phantom_folder / "pullback.dcm", pixel_spacing=0.02)


def test_load_result_of_a_folder_without_summary(tmp_path: Path):
    with pytest.raises(IVUSInputError) as info:
        ivus.load_result(tmp_path)
    assert str(info.value) == f"{tmp_path}: summary.json is missing; give an output folder of ivus-reconstruct run or demo"


def test_segment_defaults_to_the_end_diastolic_frames(phantom_folder: Path):
    from IVUSReconstructLib.gating import gate_pullback

    pullback = ivus.read_pullback(phantom_folder / "pullback.dcm")
    contours = ivus.segment(pullback)
    gating = gate_pullback(pullback, method="image")
    assert [f.index for f in contours.frames] == sorted(int(i) for i in gating.selected_frames)
    assert {f.index for f in contours.frames if f.phase == "ED"} == {int(i) for i in gating.ed_frames}
    with pytest.raises(IVUSInputError, match=r"^frames 'ed': give frame indices, 'all' or None"):
        ivus.segment(pullback, frames="ed")
