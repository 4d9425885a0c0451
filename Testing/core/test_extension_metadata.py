"""Every Resources file the extension's CMake files name exists (screenshot, icon, .ui)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CMAKE_FILES = [REPO / "CMakeLists.txt", REPO / "IVUSReconstruct" / "CMakeLists.txt"]


def resources_referenced(text: str, module_name: str = "IVUSReconstruct") -> list[str]:
    """``Resources/...`` paths in CMake text, ``${MODULE_NAME}`` expanded, URL prefixes dropped."""
    text = text.replace("${MODULE_NAME}", module_name)
    return sorted(set(re.findall(r"Resources/[A-Za-z0-9_./-]+\.[A-Za-z0-9]+", text)))


def test_parser_reads_urls_and_lists():
    text = (
        'set(EXTENSION_SCREENSHOTURLS "https://raw.example/main/Resources/Screenshots/a.png '
        'https://raw.example/main/Resources/Screenshots/b_c.png")\n'
        "set(MODULE_PYTHON_RESOURCES\n  Resources/Icons/${MODULE_NAME}.png\n  )\n"
    )
    assert resources_referenced(text) == [
        "Resources/Icons/IVUSReconstruct.png",
        "Resources/Screenshots/a.png",
        "Resources/Screenshots/b_c.png",
    ]


@pytest.mark.parametrize("cmake", CMAKE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_resource_exists(cmake):
    referenced = resources_referenced(cmake.read_text())
    assert referenced, f"{cmake} names no Resources file"
    assert [path for path in referenced if not (REPO / path).is_file()] == []


def test_extension_metadata_has_a_screenshot_and_an_icon():
    referenced = resources_referenced(CMAKE_FILES[0].read_text())
    assert "Resources/Icons/IVUSReconstruct.png" in referenced
    assert any(path.startswith("Resources/Screenshots/") for path in referenced)
