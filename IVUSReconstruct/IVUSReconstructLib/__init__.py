"""IVUSReconstruct core: IVUS pullback to 3D vessel, importable without 3D Slicer.

The scripting API (Slicer's Python console, notebooks)::

    import IVUSReconstructLib as ivus

    pullback = ivus.read_pullback("pullback.dcm")
    result = ivus.run("pullback.dcm", centerline="centerline.mrk.json", out="ivus-output")
    loaded = ivus.load_result("ivus-output")

:func:`run`, :func:`segment`, :func:`read_pullback` and :func:`load_result` live in :mod:`.api`,
imported on first use: ``import IVUSReconstructLib`` itself loads no numpy, VTK or pydicom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "run", "segment", "read_pullback", "load_result", "LoadedResult"]

_API = frozenset(("run", "segment", "read_pullback", "load_result", "LoadedResult"))

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from __getattr__
    from .api import LoadedResult, load_result, read_pullback, run, segment


def __getattr__(name: str) -> Any:
    """Import the scripting API (:mod:`.api`) when one of its names is first used."""
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _API)
