"""Shared fixtures: real data location, temporary output folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _real_data_dir() -> Path | None:
    env = os.environ.get("IVUS_REAL_DATA")
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    default = REPO.parent / "shared" / "data"
    return default if default.is_dir() else None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real anonymized data (``IVUS_REAL_DATA`` or ``../shared/data``)."""
    path = _real_data_dir()
    if path is None:
        pytest.skip("real data not found: set IVUS_REAL_DATA to the shared/data folder")
    return path
