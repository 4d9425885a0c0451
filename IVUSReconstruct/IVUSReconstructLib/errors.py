"""User-facing errors.

Every problem a user can fix (a bad file, a missing field, a wrong option) raises
:class:`IVUSInputError` with a message naming the file, the field and the fix. The CLI
prints the message and exits with code 2, without a traceback.
"""

from __future__ import annotations

__all__ = ["IVUSInputError", "IVUSCancelled", "input_error"]


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
