"""Readers and writers: DICOM pullbacks, contours, centerlines."""

from ._common import release_pages

__all__ = ["release_pages"]
