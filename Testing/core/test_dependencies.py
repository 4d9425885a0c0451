"""The dependency check the Slicer module runs on first use (IVUSReconstructLib.dependencies)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from IVUSReconstructLib import dependencies
from IVUSReconstructLib.errors import IVUSInputError

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "IVUSReconstruct"

# What 3D Slicer 5.12.3 ships in its Python (Slicer/Slicer tag v5.12.3, SuperBuild/External_python-*.cmake
# and External_VTK.cmake), as distribution -> version, restricted to what this project could use.
SLICER_5_12_BUNDLE = {
    "numpy": "2.4.6",
    "scipy": "1.17.1",
    "vtk": "9.6.2",
    "simpleitk": "2.5.5",
    "pydicom": "3.0.2",
    "pillow": "12.2.0",
    "pyjpegls": "1.5.1",
    "packaging": "26.2",
}
# The modules those distributions provide.
SLICER_5_12_MODULES = {"numpy", "scipy", "vtk", "vtkmodules", "SimpleITK", "pydicom", "PIL", "jpeg_ls", "packaging"}
EXPECTED_MISSING_IN_SLICER = [
    "matplotlib>=3.7",
    "tqdm>=4.66",
    "distributed>=2024.1",
    "pylibjpeg>=2.0",
    "pylibjpeg-libjpeg>=2.1",
    "pylibjpeg-openjpeg>=2.3",
    "pylibjpeg-rle>=2.0",
]


def _normalised(requirements):
    return [(r.name, r.specifier) for r in map(dependencies.parse_requirement, requirements)]


def test_requirements_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _normalised(dependencies.REQUIREMENTS) == _normalised(project["dependencies"])


def test_every_requirement_maps_to_an_installed_module_here():
    """The import names are right: in the development venv nothing is reported."""
    assert dependencies.check_requirements() == []


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("2.4.6", ">=1.24", True),
        ("1.23.5", ">=1.24", False),
        ("3.0.2", ">=3.0", True),
        ("2.4.4", ">=3.0", False),
        ("10.0", ">=10", True),
        ("2.1.0rc1", ">=2.0,<3", True),
        ("3.1", ">=2.0,<3", False),
        ("1.0", "", True),
    ],
)
def test_version_satisfies(version, specifier, expected, monkeypatch):
    assert dependencies.version_satisfies(version, specifier) is expected
    # The same answer without `packaging` (a Python that lacks it), on release numbers.
    monkeypatch.setitem(sys.modules, "packaging.specifiers", None)
    assert dependencies.version_satisfies(version, specifier) is expected


def test_parse_requirement_rejects_markers():
    with pytest.raises(ValueError, match="unsupported requirement"):
        dependencies.parse_requirement("numpy>=1.24; python_version>'3.10'")
    assert dependencies.parse_requirement("Pylibjpeg_RLE >= 2.0") == dependencies.Requirement(
        name="pylibjpeg-rle", specifier=">=2.0", text="Pylibjpeg_RLE >= 2.0"
    )


def _slicer_like(find_extra=(), versions=None):
    versions = dict(SLICER_5_12_BUNDLE, **(versions or {}))
    modules = SLICER_5_12_MODULES | set(find_extra)
    return {
        "find_spec": lambda name: object() if name in modules else None,
        "version_of": lambda name: versions.get(name),
    }


def test_check_in_a_slicer_5_12_like_importer_reports_exactly_the_missing_list():
    problems = dependencies.check_requirements(**_slicer_like())
    assert [p.requirement for p in problems] == EXPECTED_MISSING_IN_SLICER
    assert all(p.missing and not p.bundled_with_slicer for p in problems)
    assert dependencies.pip_requirements(problems) == EXPECTED_MISSING_IN_SLICER


def test_slicer_5_10_pydicom_is_reported_not_installed():
    """Slicer 5.10.0 ships pydicom 2.4.4: reported as too old, never upgraded by the module."""
    problems = dependencies.check_requirements(**_slicer_like(versions={"pydicom": "2.4.4"}))
    pydicom_problem = problems[0]
    assert (pydicom_problem.requirement, pydicom_problem.installed_version) == ("pydicom>=3.0", "2.4.4")
    assert pydicom_problem.bundled_with_slicer
    assert "pydicom>=3.0" not in dependencies.pip_requirements(problems)
    message = dependencies.missing_message(problems)
    assert "  pydicom>=3.0 (installed 2.4.4)" in message.splitlines()
    assert message.splitlines()[-1] == "Use a 3D Slicer release that ships them (5.12 or later)."


def test_missing_message_text():
    problems = dependencies.check_requirements(
        ["numpy>=1.24", "tqdm>=4.66"], **_slicer_like(versions={"numpy": "1.21"})
    )
    assert dependencies.missing_message(problems).splitlines() == [
        "IVUSReconstruct needs these Python packages, which are not installed:",
        "  tqdm>=4.66 (missing)",
        "Install them now (pip install tqdm>=4.66)?",
        "These packages come with 3D Slicer and are not upgraded from here:",
        "  numpy>=1.24 (installed 1.21)",
        "Use a 3D Slicer release that ships them (5.12 or later).",
    ]
    assert dependencies.missing_message([]) == ""


def test_a_module_without_metadata_counts_as_present():
    """A package built into the application (no dist-info) is importable: not reported."""
    problems = dependencies.check_requirements(["vtk>=9.3"], find_spec=lambda name: object(), version_of=lambda name: None)
    assert problems == []


def test_require_optional_names_the_package():
    with pytest.raises(IVUSInputError) as raised:
        dependencies.require_optional("no_such_module_ivus", "no-such-dist", "a cohort run on a Dask cluster")
    assert str(raised.value) == (
        "a cohort run on a Dask cluster needs the Python package 'no-such-dist', which is not installed; "
        "run: pip install no-such-dist"
    )


def _with_dependencies(names) -> list[str]:
    """The distributions ``names`` and everything they require (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    seen: dict[str, None] = {}
    stack = list(names)
    while stack:
        name = dependencies.parse_requirement(stack.pop()).name
        if name in seen:
            continue
        seen[name] = None
        for text in importlib.metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                stack.append(requirement.name)
    return list(seen)


def _make_bundle_venv(target: Path, names=SLICER_5_12_BUNDLE) -> Path:
    """A real virtual environment holding only the distributions ``names`` (default: what
    Slicer 5.12 bundles).

    The distributions are linked from the development environment (the same files a pip install
    from the local cache would unpack), which keeps the set exact and needs no network.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True)
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for name in names:
        distribution = importlib.metadata.distribution(name)
        base = Path(distribution.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in distribution.files or ()}
        for top in sorted(tops - {"..", "bin"}):
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
    return python


def test_check_in_a_real_venv_with_only_slicers_packages(tmp_path):
    """Must show: the module's check, run in a venv that has only what Slicer bundles, reports
    exactly the missing list."""
    python = _make_bundle_venv(tmp_path / "slicer-like")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONHOME"}
    # The library on the path (its __init__ imports nothing), none of the development venv.
    env["PYTHONPATH"] = str(LIB)
    run = subprocess.run(
        [str(python), "-m", "IVUSReconstructLib.dependencies"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    problems = json.loads(run.stdout)
    assert [p["requirement"] for p in problems] == EXPECTED_MISSING_IN_SLICER
    assert all(p["installed_version"] is None for p in problems)
    # The bundled ones really are importable there, at the versions Slicer ships.
    versions = subprocess.run(
        [str(python), "-c", "import numpy, scipy, pydicom, PIL, SimpleITK, vtkmodules; "
         "print(numpy.__version__, pydicom.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert versions.stdout.split()[1] == "3.0.2"


def test_bundled_constraints_pin_what_slicer_ships():
    versions = dict(SLICER_5_12_BUNDLE)
    del versions["pyjpegls"]  # an older Slicer without it: nothing to pin
    assert dependencies.bundled_constraints(version_of=versions.get) == [
        "numpy==2.4.6",
        "pillow==12.2.0",
        "pydicom==3.0.2",
        "scipy==1.17.1",
        "simpleitk==2.5.5",
        "vtk==9.6.2",
    ]


# --- optional features without their package ---------------------------------------------------


def test_cohort_run_without_distributed_exits_2_naming_the_package(monkeypatch, tmp_path, capsys):
    from IVUSReconstructLib import cli

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as when not installed
    code = cli.main(["batch", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "ivus-reconstruct: error: A cohort run (ivus-reconstruct batch, on Dask) needs the Python package "
        "'distributed', which is not installed; run: pip install distributed"
    )
    assert not (tmp_path / "out").exists()


def test_report_plot_without_matplotlib_is_a_note(monkeypatch):
    import numpy as np

    from IVUSReconstructLib import report

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    per_frame = {"arc_length_mm": np.array([0.0, 1.0]), "lumen_area_mm2": np.array([5.0, 6.0])}
    assert report._profile_plot(per_frame, {}, ()) == (
        "<p class='muted'>This plot needs the Python package &#x27;matplotlib&#x27;, which is not "
        "installed; run: pip install matplotlib</p>"
    )


def test_progress_bar_without_tqdm_is_silent(monkeypatch, capsys):
    from IVUSReconstructLib import cli

    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = cli.ProgressBar(enabled=True)
    bar(0.5, "segmenting")
    bar.scaled(0.5, 1.0)(1.0, "done")
    bar.close()
    assert capsys.readouterr().err == (
        "(The progress bar needs the Python package 'tqdm', which is not installed; run: pip install tqdm)\n"
    )


@pytest.mark.slow
def test_after_the_bootstrap_the_whole_library_imports_in_slicers_python(tmp_path):
    """Slicer's bundle plus what the check reports missing (with their own dependencies), and
    nothing else: every library module imports and a small DICOM pullback round-trips. Proves
    the requirements list is complete (no test-only package leaks into the library)."""
    names = _with_dependencies([*SLICER_5_12_BUNDLE, *EXPECTED_MISSING_IN_SLICER])
    assert not {"pytest", "hypothesis", "slicer-core", "bokeh"} & set(names)
    python = _make_bundle_venv(tmp_path / "slicer-bootstrapped", names)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONHOME"}
    env["PYTHONPATH"] = str(LIB)
    script = (
        "import importlib, pathlib, sys\n"
        "import IVUSReconstructLib as lib\n"
        "root = pathlib.Path(lib.__file__).parent\n"
        "names = sorted('IVUSReconstructLib.' + '.'.join(p.relative_to(root).with_suffix('').parts)\n"
        "               for p in root.rglob('*.py') if p.name != '__init__.py')\n"
        "for name in names: importlib.import_module(name)\n"
        "from IVUSReconstructLib.dependencies import check_requirements\n"
        "from IVUSReconstructLib.io.dicom import read_pullback, write_pullback\n"
        "from IVUSReconstructLib.phantom import make_phantom\n"
        "p = make_phantom('coronary', seed=3, length_mm=0.2, size_px=48).pullback\n"
        "back = read_pullback(write_pullback(p, sys.argv[1], transfer_syntax='jpeg-ls'))\n"
        "print(len(names), check_requirements(), int((back.frames == p.frames).all()))\n"
    )
    run = subprocess.run(
        [str(python), "-c", script, str(tmp_path / "p.dcm")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    count, problems, identical = run.stdout.split()
    assert int(count) >= 25
    assert (problems, identical) == ("[]", "1")
