"""Helpers for viewer tests (the DICOM writers are shared with the core tests)."""

from tests.synthetic_dicom import SPACING_MM, chest_like, write_dicom

__all__ = ["SPACING_MM", "chest_like", "write_dicom"]
