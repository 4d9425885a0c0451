"""No module of the library uses a private name of a third-party package.

A leading-underscore name of numpy, pydicom, VTK, ... can go in any release; the library uses
only public API (issue 20). Dunder names (``__version__``) are public by convention.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "IVUSReconstruct" / "IVUSReconstructLib"


def _private(name: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in name.split("."))


def private_third_party_uses(source: str) -> list[str]:
    """``module.name`` for each private third-party name the source imports or reads.

    Parameters
    ----------
    source : str
        Python source text.

    Returns
    -------
    list of str
        E.g. ``["pydicom.pixels.utils._get_jpg_parameters"]``; relative and
        ``IVUSReconstructLib`` imports are ours and not reported.
    """
    tree = ast.parse(source)
    aliases: dict[str, str] = {}  # local name -> third-party dotted module
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "IVUSReconstructLib":
                    continue
                if _private(alias.name):
                    found.append(alias.name)
                # `import a.b` binds `a`; `import a.b as c` binds c to `a.b`
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] == "IVUSReconstructLib":
                continue
            for alias in node.names:
                if _private(node.module) or _private(alias.name):
                    found.append(f"{node.module}.{alias.name}")
                else:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                found.append(".".join([aliases[value.id], *reversed(chain)]))
    return found


LIB_FILES = sorted(LIB.rglob("*.py"))


def test_the_scan_sees_every_form():
    source = (
        "import numpy as np\nimport pydicom\nimport vtkmodules.all as vtk\n"
        "from pydicom.pixels.utils import _get_jpg_parameters\n"
        "from scipy._lib import util\n"
        "import scipy._lib\n"
        "from . import _common\nfrom IVUSReconstructLib.io import _common as c\n"
        "x = np.core._multiarray_umath\ny = pydicom.__version__\nz = vtk._private\n"
        "w = c._FIX\nself._bar = 1\n"
    )
    assert sorted(private_third_party_uses(source)) == sorted([
        "pydicom.pixels.utils._get_jpg_parameters",
        "scipy._lib.util",
        "scipy._lib",
        "numpy.core._multiarray_umath",
        "vtkmodules.all._private",
    ])


@pytest.mark.parametrize("path", LIB_FILES, ids=[str(p.relative_to(LIB)) for p in LIB_FILES])
def test_no_private_third_party_name(path):
    assert private_third_party_uses(path.read_text(encoding="utf-8")) == []


def test_the_library_is_scanned():
    assert len(LIB_FILES) >= 25


def test_the_scan_finds_the_pydicom_helper_this_issue_removed():
    before = "from pydicom.pixels.utils import _get_jpg_parameters\ninfo = _get_jpg_parameters(frame)\n"
    assert private_third_party_uses(before) == ["pydicom.pixels.utils._get_jpg_parameters"]
