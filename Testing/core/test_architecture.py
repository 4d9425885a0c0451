"""The library's import structure: no cycle, no private name used across modules.

The import graph counts every import of a module of IVUSReconstructLib, also those inside
functions (a lazy import still ties the two modules together for a reader and for a refactor).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "IVUSReconstruct" / "IVUSReconstructLib"
PACKAGE = "IVUSReconstructLib"
# Packages that are one module split into files: their modules share private helpers inside the
# package (``segmentation`` is rewritten by the real-image borders issue, issue 16, not split twice).
ONE_MODULE_PACKAGES = ("IVUSReconstructLib.segmentation", "IVUSReconstructLib.phantom")


def module_name(path: Path) -> str:
    """``IVUSReconstructLib.io.dicom`` for ``.../IVUSReconstructLib/io/dicom.py``."""
    parts = list(path.relative_to(LIB.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    """Absolute module name of a (possibly relative) ``from`` import in ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    # a package's __init__ is its own anchor; a module's anchor is its package
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """``(imported module, imported name or None)`` for each library import in a module.

    ``from .io import dicom`` gives ``("IVUSReconstructLib.io.dicom", None)`` (a module), ``from
    .pipeline import jsonable`` gives ``("IVUSReconstructLib.pipeline", "jsonable")``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    # ``if TYPE_CHECKING:`` imports are for annotations only and never run
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    found.append((alias.name, None))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_package, node.level, node.module)
            if target.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((sub, None) if sub in modules else (target, alias.name))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> library modules it imports (anywhere in its source), excluding itself."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t, _ in imports_of(name, path, modules)}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as ``[a, b, ..., a]``, or ``[]`` when the graph is acyclic."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def _without_package_init(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # a package __init__ that re-exports its submodules is imported by Python before any of them;
    # submodule -> package edges are the package's own namespace, not a dependency between modules
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_resolve_relative_imports():
    assert _resolve("IVUSReconstructLib.io.dicom", False, 2, "limits") == "IVUSReconstructLib.limits"
    assert _resolve("IVUSReconstructLib.io.dicom", False, 1, "_common") == "IVUSReconstructLib.io._common"
    assert _resolve("IVUSReconstructLib", True, 1, "pipeline") == "IVUSReconstructLib.pipeline"
    assert _resolve("IVUSReconstructLib.segmentation", True, 2, "types") == "IVUSReconstructLib.types"


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # cli imports the pipeline only inside its commands
    assert "IVUSReconstructLib.pipeline" in graph["IVUSReconstructLib.cli"]
    assert "IVUSReconstructLib.io.dicom" in graph["IVUSReconstructLib.pipeline"]


def test_type_checking_imports_are_not_edges(tmp_path):
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .pipeline import RunOptions\n"
    path = tmp_path / "x.py"
    path.write_text(source)
    assert imports_of("IVUSReconstructLib.x", path, {}) == []


def test_library_import_graph_is_acyclic():
    cycle = find_cycle(_without_package_init(import_graph()))
    assert cycle == [], "import cycle: " + " -> ".join(cycle)


def test_front_ends_are_not_imported_by_the_library():
    graph = import_graph()
    users = sorted(m for m, ts in graph.items() if f"{PACKAGE}.cli" in ts)
    assert users == [], f"the command line is a front end; imported by {users}"


def test_no_private_name_is_imported_across_modules():
    modules = _modules()
    crossings = []
    for name, path in modules.items():
        for target, imported in imports_of(name, path, modules):
            private_module = any(
                p.startswith("_") and not p.startswith("__") for p in target.split(".")[1:]
            )
            own_package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
            # ``from . import _helper`` in a package's part names the package itself
            target_package = target if target == own_package else target.rsplit(".", 1)[0]
            same_package = target_package == own_package
            if same_package and target_package in ONE_MODULE_PACKAGES:
                continue
            if imported is not None and imported.startswith("_") and not imported.startswith("__"):
                crossings.append(f"{name}: {target}.{imported}")
            elif private_module and not same_package:
                # a package's private module (io/_common.py) serves that package only
                crossings.append(f"{name}: {target}")
    assert crossings == []


LONG_PENDING: set[str] = set()  # functions allowed over the limit while being split: none
LARGE_PENDING: set[str] = set()
MAX_FUNCTION_LINES = 150
MAX_MODULE_LINES = 1500


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``module.function`` (or ``module.Class.method``) -> lines, for those longer than ``limit``."""
    found = {}
    for name, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = [(name, tree)]
        while scopes:
            prefix, scope = scopes.pop()
            for node in ast.iter_child_nodes(scope):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual = f"{prefix}.{node.name}"
                    length = node.end_lineno - node.lineno + 1
                    if not isinstance(node, ast.ClassDef) and length > limit:
                        found[qual] = length
                    scopes.append((qual, node))
    return found


def test_no_function_over_150_lines():
    long = long_functions()
    assert sorted(set(long) - LONG_PENDING) == [], long


def test_run_pipeline_is_split_along_its_stages():
    assert long_functions(limit=0)["IVUSReconstructLib.pipeline.run_pipeline"] <= MAX_FUNCTION_LINES


def test_no_module_over_1500_lines():
    large = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules().items()
    }
    large = {n: k for n, k in large.items() if k > MAX_MODULE_LINES}
    assert sorted(set(large) - LARGE_PENDING) == [], large


MODULE_FILE = LIB.parent / "IVUSReconstruct.py"


def test_slicer_module_reads_no_dicom_and_parses_no_attributes():
    """The Slicer module is a thin Qt layer: acquisition values come from the library."""
    source = MODULE_FILE.read_text(encoding="utf-8")
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"pydicom", "SimpleITK", "dicom", "gdcm", "json"}, imported
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"dcmread", "ReadImage", "ImageFileReader", "FrameTime", "CineRate", "FrameTimeVector"}
    # node attributes of the library are named through mrml's constants and functions
    literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not [t for t in literals if t.startswith("IVUSReconstruct.")]


TESTING = LIB.parents[1] / "Testing"
# modules whose behaviour is tested through others (types: data classes; plan_policy: through plan;
# output_place: through the commands' fault tests; the parts of segmentation/: test_segmentation*.py;
# the parts of phantom/: test_phantom*.py; dicom_write: round trips in test_dicom*.py; longitudinal: the L-mode tests in test_render.py / test_report.py)
TESTED_ELSEWHERE = {"types", "plan_policy", "output_place", "_common", "__init__", "options", "paths",
                    "polar", "shapes", "eem", "lumen", "refine", "shadows", "segmenter", "confidence",
                    "_imaging", "_shapes", "generator", "presets", "longitudinal", "dicom_write"}  # fmt: skip


def test_each_module_has_tests_under_its_name():
    """Testing/core/test_<module>.py (or test_<module>_<aspect>.py) exists for each module."""
    names = {p.stem.removeprefix("test_") for p in TESTING.rglob("test_*.py")}
    missing = sorted(
        path.stem
        for path in LIB.rglob("*.py")
        if path.stem not in TESTED_ELSEWHERE
        and not any(n == path.stem or n.startswith(path.stem + "_") for n in names)
    )
    assert missing == []


_CLOCKS = ("perf_counter", "monotonic", "process_time", "time")


def _clock_names(tree: ast.AST) -> set[str]:
    """Names assigned from an expression that reads a clock (``t = time.perf_counter() - t0``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            reads_clock = any(
                isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr in _CLOCKS
                and isinstance(c.func.value, ast.Name) and c.func.value.id == "time"
                for c in ast.walk(node.value)
            )  # fmt: skip
            if reads_clock:
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def wall_clock_assertions(source: str) -> list[int]:
    """Lines of ``assert`` statements that compare a time read from a clock."""
    tree = ast.parse(source)
    clocked = _clock_names(tree)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            used = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            calls = [c for c in ast.walk(node.test) if isinstance(c, ast.Attribute) and c.attr in _CLOCKS[:3]]
            if used & clocked or calls:
                lines.append(node.lineno)
    return lines


def test_wall_clock_assertions_are_found():
    source = "import time\nt0 = time.perf_counter()\nrun()\nelapsed = time.perf_counter() - t0\nassert elapsed < 1.0\n"
    assert wall_clock_assertions(source) == [5]
    assert wall_clock_assertions("import time\ndeadline = time.time() + 60\nassert done\n") == []


def test_no_test_asserts_wall_clock_time():
    """Speed is measured by Testing/benchmarks (ratios in one process), never asserted in a test."""
    found = {
        str(p.relative_to(TESTING)): wall_clock_assertions(p.read_text(encoding="utf-8"))
        for p in sorted(TESTING.rglob("test_*.py"))
    }
    assert {k: v for k, v in found.items() if v} == {}


# ----------------------------------------------------------------------------- MRML stays in mrml.py

SCENE_ADAPTER = LIB / "mrml.py"
# the application's and MRML's Python modules: only the scene adapter and IVUSReconstruct.py import them
_SLICER_IMPORTS = ("slicer", "qt", "ctk", "mrml", "vtkSlicer", "vtkAddon")
_MRML_CLASS = re.compile(r"\b(vtkMRML\w*|vtkSlicer\w*|vtkSegmentation\w*|vtkOrientedImageData\w*)")


def mrml_mentions(source: str) -> list[str]:
    """What in a module's source knows MRML or the Slicer application: imports of ``slicer``,
    ``qt``, ``ctk`` (or of MRML's own modules), names bound to them, and MRML class names
    (``vtkMRML*``, ``vtkSlicer*``, ``vtkSegmentation*``, ``vtkOrientedImageData``) anywhere,
    strings and comments included (a node class is often named in a string)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [f"import {n}" for n in names if n.split(".")[0] in _SLICER_IMPORTS or n.startswith("vtkMRML")]
    found += sorted(set(_MRML_CLASS.findall(source)))
    return found


def test_mrml_mentions_finds_planted_uses():
    source = 'import numpy\ndef f(scene):\n    import slicer\n    return scene.AddNewNodeByClass("vtkMRMLModelNode")\n'
    assert mrml_mentions(source) == ["import slicer", "vtkMRMLModelNode"]
    assert mrml_mentions("from qt import QWidget\nx = 1  # vtkOrientedImageData\n") == [
        "import qt", "vtkOrientedImageData"
    ]  # fmt: skip
    assert mrml_mentions("import numpy as np\nsource = 'slicer volume node'\n") == []


def test_only_the_scene_adapter_knows_mrml():
    """DESIGN.md: only ``mrml.py`` (and the Slicer module IVUSReconstruct.py, outside the library)
    know MRML; the adapter is one module, not a package."""
    assert SCENE_ADAPTER.is_file() and not (LIB / "mrml").exists()
    assert "vtkMRMLScalarVolumeNode" in mrml_mentions(SCENE_ADAPTER.read_text(encoding="utf-8"))
    others = {
        str(p.relative_to(LIB)): mrml_mentions(p.read_text(encoding="utf-8"))
        for p in sorted(LIB.rglob("*.py"))
        if p != SCENE_ADAPTER
    }
    assert {k: v for k, v in others.items() if v} == {}
