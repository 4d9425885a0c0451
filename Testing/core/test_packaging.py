"""Extension packaging: the module CMake list, the .ui bindings and the resources.

Slicer packages only the files listed in ``MODULE_PYTHON_SCRIPTS``: a Lib file missing there is
silently missing from the extension. The module file cannot be imported here (no Slicer Qt), so
the parameter node's fields are read from its source with ``ast``.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "IVUSReconstruct"
MODULE_FILE = MODULE_DIR / "IVUSReconstruct.py"
UI_FILE = REPO / "Resources" / "UI" / "IVUSReconstruct.ui"


def _cmake_list(text: str, name: str) -> list[str]:
    match = re.search(rf"set\(\s*{name}\s+(.*?)\)", text, flags=re.S)
    assert match, f"{name} not found"
    items = [line.split("#", 1)[0].strip() for line in match.group(1).splitlines()]
    return [item for item in items if item]


def _parameter_fields() -> set[str]:
    tree = ast.parse(MODULE_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list
        ):
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in IVUSReconstruct.py")


def _ui_parameter_names() -> list[str]:
    tree = ET.parse(UI_FILE)
    return [
        prop.find("string").text
        for prop in tree.iter("property")
        if prop.get("name") == "SlicerParameterName" and prop.find("string") is not None
    ]


def test_every_lib_file_is_in_the_module_cmake_list():
    listed = _cmake_list((MODULE_DIR / "CMakeLists.txt").read_text(), "MODULE_PYTHON_SCRIPTS")
    on_disk = sorted(
        p.relative_to(MODULE_DIR).as_posix()
        for p in (MODULE_DIR / "IVUSReconstructLib").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    missing = [f for f in on_disk if f not in listed]
    assert missing == [], f"add to MODULE_PYTHON_SCRIPTS in IVUSReconstruct/CMakeLists.txt: {missing}"
    stale = [f for f in listed if f != "${MODULE_NAME}.py" and not (MODULE_DIR / f).is_file()]
    assert stale == [], f"listed in IVUSReconstruct/CMakeLists.txt but not on disk: {stale}"
    assert listed[0] == "${MODULE_NAME}.py"
    assert "IVUSReconstructLib/mrml.py" in listed  # the scene adapter ships with the module


def test_module_resources_exist():
    listed = _cmake_list((MODULE_DIR / "CMakeLists.txt").read_text(), "MODULE_PYTHON_RESOURCES")
    assert sorted(listed) == ["Resources/Icons/${MODULE_NAME}.png", "Resources/UI/${MODULE_NAME}.ui"]
    for item in listed:
        assert (REPO / item.replace("${MODULE_NAME}", "IVUSReconstruct")).is_file(), item
    from PIL import Image

    with Image.open(REPO / "Resources" / "Icons" / "IVUSReconstruct.png") as icon:
        assert icon.size == (128, 128)


def test_ui_parameter_names_match_parameter_node_fields():
    names = _ui_parameter_names()
    assert len(names) == len(set(names)), "a parameter is bound to two widgets"
    fields = _parameter_fields()
    assert sorted(set(names) - fields) == [], "SlicerParameterName without a parameter node field"
    assert sorted(fields - set(names)) == [], "parameter node field without a widget"
    assert len(fields) == 18


def test_widget_code_names_exist_in_ui():
    """Every ``self.ui.<name>`` the widget uses is a widget of the .ui file."""
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE_FILE.read_text()))
    declared = {w.get("name") for w in ET.parse(UI_FILE).iter("widget")}
    assert sorted(used - declared) == []
    assert {"applyButton", "updateFromSegmentationButton", "currentFrameSlider"} <= used


def test_module_file_compiles_and_follows_the_template():
    source = MODULE_FILE.read_text()
    tree = ast.parse(source)
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    assert classes == [
        "IVUSReconstruct",
        "IVUSReconstructParameterNode",
        "IVUSReconstructWidget",
        "IVUSReconstructLogic",
        "IVUSReconstructTest",
    ]
    assert 'self.parent.title = _("IVUS Reconstruct")' in source
    compile(source, str(MODULE_FILE), "exec")


@pytest.mark.parametrize(
    "key",
    [
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
        "EXTENSION_DEPENDS",
    ],
)
def test_extension_metadata(key):
    text = (REPO / "CMakeLists.txt").read_text()
    match = re.search(rf'set\({key} "([^"]+)"\)', text)
    assert match and match.group(1).strip(), key
    assert "add_subdirectory(IVUSReconstruct)" in text
