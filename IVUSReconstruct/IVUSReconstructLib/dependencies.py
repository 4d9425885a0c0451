"""Which of the packages this project needs are missing, and what to tell the user.

The one requirements list of the project (:data:`REQUIREMENTS`) lives here, the same strings as
``[project.dependencies]`` of ``pyproject.toml`` (a test keeps the two in step). 3D Slicer's Python
bundles some of them; the module (``IVUSReconstruct.py``) calls :func:`check_requirements` on first
use, shows :func:`missing_message` and installs :func:`pip_requirements` with
``slicer.util.pip_install`` after the user agrees.

This module imports only the standard library (``packaging`` when present), so it answers in an
environment that lacks every dependency. Run it as a script to print the problems as JSON::

    python -m IVUSReconstructLib.dependencies
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

__all__ = [
    "REQUIREMENTS",
    "IMPORT_NAMES",
    "SLICER_BUNDLED",
    "Requirement",
    "RequirementProblem",
    "parse_requirement",
    "version_satisfies",
    "check_requirements",
    "missing_message",
    "pip_requirements",
    "bundled_constraints",
    "optional_missing",
    "require_optional",
]

#: The distributions the library imports, as in ``pyproject.toml`` ``[project.dependencies]``.
REQUIREMENTS: tuple[str, ...] = (
    "numpy>=1.24",
    "scipy>=1.10",
    "vtk>=9.3",
    "SimpleITK>=2.3",
    "pydicom>=3.0",
    "matplotlib>=3.7",
    "tqdm>=4.66",
    "distributed>=2024.1",
    "pillow>=10",
    "pylibjpeg>=2.0",
    "pylibjpeg-libjpeg>=2.1",
    "pylibjpeg-openjpeg>=2.3",
    "pylibjpeg-rle>=2.0",
    "pyjpegls>=1.4",
)

#: Top-level module of each distribution whose import name differs from its (normalised) name.
#: VTK is checked through ``vtkmodules``: Slicer's own VTK provides it, and so does the wheel.
IMPORT_NAMES: dict[str, str] = {
    "vtk": "vtkmodules",
    "simpleitk": "SimpleITK",
    "pillow": "PIL",
    "pylibjpeg-libjpeg": "libjpeg",
    "pylibjpeg-openjpeg": "openjpeg",
    "pylibjpeg-rle": "rle",
    "pyjpegls": "jpeg_ls",
}

#: Distributions 3D Slicer 5.12.3 ships in its own Python (Slicer/Slicer, tag v5.12.3:
#: SuperBuild/External_python-numpy.cmake numpy==2.4.6, External_python-scipy.cmake scipy==1.17.1,
#: External_python-SimpleITK.cmake simpleitk==2.5.5, External_VTK.cmake vtk 9.6.2 (its own build
#: with a dist-info), External_python-dicom-requirements.cmake pydicom==3.0.2, pillow==12.2.0,
#: pyjpegls==1.5.1). Installing another version of one of these from the module would replace the
#: one Slicer is built against, so the module reports them and never installs them.
SLICER_BUNDLED: frozenset[str] = frozenset({"numpy", "scipy", "vtk", "simpleitk", "pydicom", "pillow", "pyjpegls"})

_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$")
_CLAUSE_RE = re.compile(r"^\s*(>=|<=|==|!=|>|<|~=)\s*([0-9][0-9A-Za-z.+-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    """One requirement string, split.

    Attributes
    ----------
    name : str
        Distribution name, normalised (lower case, ``-`` for ``_`` and ``.``).
    specifier : str
        The version clauses, e.g. ``">=1.24"`` (empty: any version).
    text : str
        The requirement as written.
    """

    name: str
    specifier: str
    text: str

    @property
    def import_name(self) -> str:
        """The top-level module that proves the distribution is importable."""
        return IMPORT_NAMES.get(self.name, self.name.replace("-", "_"))


@dataclass(frozen=True)
class RequirementProblem:
    """A requirement the environment does not meet.

    Attributes
    ----------
    requirement : str
        The requirement as written, e.g. ``"tqdm>=4.66"``.
    name : str
        Normalised distribution name.
    installed_version : str or None
        The version found, ``None`` when the module cannot be imported.
    bundled_with_slicer : bool
        True for a package Slicer ships (never installed or upgraded by the module).
    """

    requirement: str
    name: str
    installed_version: str | None
    bundled_with_slicer: bool

    @property
    def missing(self) -> bool:
        """True when the package is absent (rather than too old)."""
        return self.installed_version is None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> Requirement:
    """Split ``"name>=1.2,<3"`` into name and version clauses (no extras or markers).

    Parameters
    ----------
    text : str
        A PEP 508 requirement without extras or environment markers.

    Returns
    -------
    Requirement
    """
    match = _NAME_RE.match(text)
    if match is None or "[" in text or ";" in text:
        raise ValueError(f"unsupported requirement {text!r}: write 'name>=version'")
    specifier = match.group(2).replace(" ", "")
    for clause in filter(None, specifier.split(",")):
        if _CLAUSE_RE.match(clause) is None:
            raise ValueError(f"unsupported version clause {clause!r} in requirement {text!r}")
    return Requirement(name=_normalise(match.group(1)), specifier=specifier, text=text.strip())


def _release(version: str) -> tuple[int, ...]:
    """Leading numeric release of a version (``"2.4.6rc1"`` -> ``(2, 4, 6)``)."""
    parts = []
    for piece in version.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.group() != piece:
            break
    return tuple(parts)


def _compare(left: tuple[int, ...], right: tuple[int, ...]) -> int:
    width = max(len(left), len(right))
    left, right = left + (0,) * (width - len(left)), right + (0,) * (width - len(right))
    return (left > right) - (left < right)


def version_satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets ``specifier`` (``">=1.24"``, ``">=2,<3"``, empty for any).

    Uses ``packaging`` when importable (Slicer bundles it); otherwise compares the numeric
    release only, which is enough for the ``>=`` floors of :data:`REQUIREMENTS`.
    """
    if not specifier:
        return True
    try:
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version
    except ImportError:
        pass
    else:
        try:
            return Version(version) in SpecifierSet(specifier, prereleases=True)
        except InvalidVersion:
            pass
    tests = {
        ">=": lambda c: c >= 0,
        "<=": lambda c: c <= 0,
        "==": lambda c: c == 0,
        "!=": lambda c: c != 0,
        ">": lambda c: c > 0,
        "<": lambda c: c < 0,
        "~=": lambda c: c >= 0,
    }
    for clause in specifier.split(","):
        operator, bound = _CLAUSE_RE.match(clause).groups()
        if not tests[operator](_compare(_release(version), _release(bound))):
            return False
    return True


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_requirements(
    requirements: Iterable[str] = REQUIREMENTS,
    *,
    find_spec: Callable[[str], object] = importlib.util.find_spec,
    version_of: Callable[[str], str | None] = _installed_version,
) -> list[RequirementProblem]:
    """The requirements the running environment does not meet, in the order given.

    A requirement is unmet when its module cannot be found (missing) or when its installed
    distribution is older than the specifier allows. A module that imports but has no
    distribution metadata (a package built into the application) counts as met.

    Parameters
    ----------
    requirements : iterable of str
        Requirement strings, default :data:`REQUIREMENTS`.
    find_spec : callable, optional
        ``importlib.util.find_spec``-like: module name -> spec or None (tests pass a fake).
    version_of : callable, optional
        Distribution name -> installed version or None.

    Returns
    -------
    list of RequirementProblem
        Empty when everything is there.
    """
    problems = []
    for text in requirements:
        requirement = parse_requirement(text)
        try:
            found = find_spec(requirement.import_name) is not None
        except (ImportError, ValueError):
            found = False
        version = version_of(requirement.name) if found else None
        if found and (version is None or version_satisfies(version, requirement.specifier)):
            continue
        problems.append(
            RequirementProblem(
                requirement=requirement.text,
                name=requirement.name,
                installed_version=version,
                bundled_with_slicer=requirement.name in SLICER_BUNDLED,
            )
        )
    return problems


def pip_requirements(problems: Iterable[RequirementProblem]) -> list[str]:
    """The requirement strings the module may install: every problem but Slicer's own packages."""
    return [problem.requirement for problem in problems if not problem.bundled_with_slicer]


def bundled_constraints(version_of: Callable[[str], str | None] = _installed_version) -> list[str]:
    """``name==version`` of each installed Slicer-bundled package, a pip constraints file's lines.

    Installing with these constraints lets pip add what is missing without replacing a package
    that Slicer is built against (a dependency of matplotlib or distributed asking for a newer
    numpy, say, then fails instead of upgrading it).
    """
    pins = []
    for name in sorted(SLICER_BUNDLED):
        version = version_of(name)
        if version is not None:
            pins.append(f"{name}=={version}")
    return pins


def missing_message(problems: Iterable[RequirementProblem]) -> str:
    """The text shown to the user: what is missing or too old and what will be installed.

    Parameters
    ----------
    problems : iterable of RequirementProblem
        From :func:`check_requirements`.

    Returns
    -------
    str
        Empty when there is no problem.
    """
    problems = list(problems)
    if not problems:
        return ""
    lines = []
    installable = pip_requirements(problems)
    if installable:
        lines.append("IVUSReconstruct needs these Python packages, which are not installed:")
        lines += [f"  {_describe(problem)}" for problem in problems if not problem.bundled_with_slicer]
        lines.append(f"Install them now (pip install {' '.join(installable)})?")
    bundled = [problem for problem in problems if problem.bundled_with_slicer]
    if bundled:
        lines.append("These packages come with 3D Slicer and are not upgraded from here:")
        lines += [f"  {_describe(problem)}" for problem in bundled]
        lines.append("Use a 3D Slicer release that ships them (5.12 or later).")
    return "\n".join(lines)


def _describe(problem: RequirementProblem) -> str:
    if problem.missing:
        return f"{problem.requirement} (missing)"
    return f"{problem.requirement} (installed {problem.installed_version})"


def optional_missing(module: str, distribution: str, feature: str) -> str | None:
    """The message for an optional package that cannot be imported, or None when it imports.

    Parameters
    ----------
    module : str
        The module the feature imports, e.g. ``"distributed"``.
    distribution : str
        The name to ``pip install``.
    feature : str
        What needs it, e.g. ``"a cohort run (batch)"``.

    Returns
    -------
    str or None
        ``"<feature> needs the Python package '<distribution>', which is not installed; run: pip
        install <distribution>"``, or None.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        return (
            f"{feature} needs the Python package {distribution!r}, which is not installed; "
            f"run: pip install {distribution}"
        )
    return None


def require_optional(module: str, distribution: str, feature: str) -> None:
    """Raise :class:`~IVUSReconstructLib.errors.IVUSInputError` when an optional package is absent.

    The parameters are those of :func:`optional_missing`, whose message the error carries.
    """
    message = optional_missing(module, distribution, feature)
    if message is not None:
        from .errors import IVUSInputError

        raise IVUSInputError(message)


if __name__ == "__main__":
    print(json.dumps([asdict(problem) for problem in check_requirements()], indent=1))
