"""errors.py: the one message of a JSON input that cannot be parsed, from every reader of JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from IVUSReconstructLib.batch import read_manifest
from IVUSReconstructLib.errors import IVUSInputError, input_error, read_json_input
from IVUSReconstructLib.io.centerline import read_centerline
from IVUSReconstructLib.io.contours import read_contours, read_landmarks
from IVUSReconstructLib.io.xa import read_curve_px

BROKEN = '{"frames": [1, 2,,]}'
PROBLEM = "JSON is not valid (Expecting value at line 1, column 18)"


def test_input_error_layout():
    assert str(input_error("a.json", "frames", "is missing", "add them")) == "a.json: frames is missing; add them"


def test_read_json_input_parses_and_accepts_a_byte_order_mark(tmp_path: Path):
    path = tmp_path / "a.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": [1, 2.5]}')
    assert read_json_input(path) == {"a": [1, 2.5]}


def test_read_json_input_names_file_line_column_and_fix(tmp_path: Path):
    path = tmp_path / "a.json"
    path.write_text('{\n  "a": 1\n  "b": 2\n}\n')
    with pytest.raises(IVUSInputError) as info:
        read_json_input(path, fix="save it again")
    assert str(info.value) == (
        f"{path}: JSON is not valid (Expecting ',' delimiter at line 3, column 3); save it again"
    )


def test_read_json_input_refuses_text_that_is_not_utf8(tmp_path: Path):
    path = tmp_path / "a.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(IVUSInputError) as info:
        read_json_input(path)
    assert str(info.value) == f"{path}: JSON is not UTF-8 text (byte 7); save the file as UTF-8"


@pytest.mark.parametrize(
    ("name", "read", "fix"),
    [
        ("contours.json", lambda p: read_contours(p, pixel_spacing_mm=(0.02, 0.02)), "fix the file"),
        ("landmarks.json", read_landmarks, "fix the file"),
        ("centerline.mrk.json", read_centerline, "save the markups again from Slicer"),
        ("curve.json", read_curve_px, "fix the file"),
        ("manifest.json", read_manifest, "fix the file"),
    ],
)
def test_every_json_reader_words_a_broken_file_the_same(tmp_path: Path, name, read, fix):
    path = tmp_path / name
    path.write_text(BROKEN)
    with pytest.raises(IVUSInputError) as info:
        read(path)
    assert str(info.value) == f"{path}: {PROBLEM}; {fix}"
