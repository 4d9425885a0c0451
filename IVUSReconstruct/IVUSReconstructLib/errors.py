"""User-facing errors.

Every problem a user can fix (a bad file, a missing field, a wrong option) raises
:class:`IVUSInputError` with a message naming the file, the field and the fix. The CLI
prints the message and exits with code 2, without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "IVUSInputError",
    "IVUSCancelled",
    "input_error",
    "read_json_input",
    "FIX_PIXEL_SPACING",
    "FIX_FRAME_RATE",
    "FIX_PULLBACK_SPEED",
]

# The library's words for the fixes a user setting makes; front ends replace them with their own
# (an option, a manifest column, a module field) through the setting they name.
FIX_PIXEL_SPACING = "give the pixel spacing in mm"
FIX_FRAME_RATE = "give the frame rate in frames/s"
FIX_PULLBACK_SPEED = "give the pullback speed in mm/s"
_SETTING_OF_FIX = {
    FIX_PIXEL_SPACING: "pixel_spacing_mm",
    FIX_FRAME_RATE: "frame_rate_hz",
    FIX_PULLBACK_SPEED: "pullback_speed_mm_s",
}


class IVUSInputError(ValueError):
    """A problem with the user's input that the user can fix.

    Parameters
    ----------
    message : str
        The one-line message, in the library's own terms (it names no front end's control).
    setting : str, optional
        The user setting that fixes the problem, as a key of the front ends' fix tables
        (``limits.CLI_FIXES``, ``BATCH_FIXES``, ``SLICER_FIXES``: e.g. ``"pixel_spacing_mm"``).
        Each front end then replaces the text after the last ``"; "`` with its own words
        (an option, a manifest column, a module field).
    """

    def __init__(self, message: str = "", *, setting: str | None = None):
        super().__init__(message)
        self.setting = setting

    def __reduce__(self):
        # keeps the setting across processes (batch workers); subclasses with other
        # constructors pickle as this class, message and setting intact
        return (_rebuilt, (str(self), self.setting))


def _rebuilt(message: str, setting: str | None) -> IVUSInputError:
    return IVUSInputError(message, setting=setting)


class IVUSCancelled(RuntimeError):
    """Raised when a long run is cancelled through its ``threading.Event``."""


def input_error(
    path: object, field: str, problem: str, fix: str, *, setting: str | None = None
) -> IVUSInputError:
    """Build an :class:`IVUSInputError` with the project's one-line message layout.

    Parameters
    ----------
    path : path-like or str
        The file (or option) the problem is in.
    field : str
        The DICOM tag, JSON key, column or option at fault.
    problem : str
        What is wrong, e.g. ``"is missing"``.
    fix : str
        What the user should do, in the library's terms, e.g. ``"give the pixel spacing in mm"``.
    setting : str, optional
        The user setting that fixes it (see :class:`IVUSInputError`), for front ends to reword;
        by default the one of the standard fixes (``FIX_PIXEL_SPACING``...) when ``fix`` is one.

    Returns
    -------
    IVUSInputError
        To be raised by the caller.
    """
    return IVUSInputError(f"{path}: {field} {problem}; {fix}", setting=setting or _SETTING_OF_FIX.get(fix))


def read_json_input(path: str | Path, *, fix: str = "fix the file", text: str | None = None) -> Any:
    """Parse a JSON input, or raise the one message for a file that is not JSON.

    Every reader of a JSON input (contours, landmarks, centerline markups, XA curves, batch
    manifests) parses through here, so a broken file reads the same wherever it is given:
    ``PATH: JSON is not valid (Expecting value at line 3, column 5); FIX``.

    Parameters
    ----------
    path : path-like
        The file, named in the message (and read when ``text`` is None).
    fix : str
        What the user does about it, in the reader's terms.
    text : str or None
        The file's text when the caller has already read it.

    Returns
    -------
    object
        The parsed document.

    Raises
    ------
    IVUSInputError
        Text that is not UTF-8, or not JSON, naming the file, the line and column, and ``fix``.
    """
    if text is None:
        try:
            text = Path(path).read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise input_error(
                path, "JSON", f"is not UTF-8 text (byte {exc.start})", "save the file as UTF-8"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # json's own wording ends some messages in "at" ("Unterminated string starting at")
        what = exc.msg.removesuffix(" at")
        raise input_error(
            path, "JSON", f"is not valid ({what} at line {exc.lineno}, column {exc.colno})", fix
        ) from None
