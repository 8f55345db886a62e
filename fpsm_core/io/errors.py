"""The one exception type of the image/study I/O layer.

Every problem a user's file can cause (not DICOM, no pixel data, truncated data, a transfer syntax
no installed decoder handles, impossible dimensions...) ends as an ``ImageLoadError`` whose message
is one sentence naming the file and the reason, so the CLI can print it on one line and the viewer
can show it in its status bar.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class ImageLoadError(ValueError):
    """A file could not be read as an image; the message is one sentence naming file and reason.

    Attributes:
        path: The file that failed.
        reason: The reason alone, without the file name (for tables that already show the file).
    """

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = _one_line(reason).rstrip(". ")
        super().__init__(f"Cannot load '{self.path}': {self.reason}.")


def _one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace so library messages never break the one-line rule."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
