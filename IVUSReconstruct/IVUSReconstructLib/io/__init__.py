"""Readers and writers: DICOM pullbacks, contours, centerlines."""
