"""IVUSReconstruct core: IVUS pullback to 3D vessel, importable without 3D Slicer."""

__version__ = "0.1.0"
