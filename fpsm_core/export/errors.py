"""The export package's user-facing error: one sentence naming the file or option at fault."""

from __future__ import annotations

from fpsm_core.errors import FpsmError


class ExportError(FpsmError):
    """A DICOM output could not be written (a source without pixels, a bad option, a full disk)."""
