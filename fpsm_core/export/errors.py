"""The export package's user-facing error: one sentence naming the file or option at fault."""

from __future__ import annotations


class ExportError(ValueError):
    """A DICOM output could not be written (a source without pixels, a bad option, a full disk).

    Derives from ValueError so callers can catch it beside the project's other user errors; the
    lead rebases it on ``FpsmError`` when that base lands.
    """
