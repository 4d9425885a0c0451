"""User-facing errors.

Every problem a user can fix (a bad file, a missing field, a wrong option) raises
:class:`IVUSInputError` with a message naming the file, the field and the fix. The CLI
prints the message and exits with code 2, without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["IVUSInputError", "IVUSCancelled", "input_error", "read_json_input"]


class IVUSInputError(ValueError):
    """A problem with the user's input that the user can fix."""


class IVUSCancelled(RuntimeError):
    """Raised when a long run is cancelled through its ``threading.Event``."""


def input_error(path: object, field: str, problem: str, fix: str) -> IVUSInputError:
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
        What the user should do, e.g. ``"pass --pixel-spacing MM"``.

    Returns
    -------
    IVUSInputError
        To be raised by the caller.
    """
    return IVUSInputError(f"{path}: {field} {problem}; {fix}")


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
