"""The one exception type of the image/study I/O layer.

Every problem a user's file can cause (not DICOM, no pixel data, truncated data, a transfer syntax
no installed decoder handles, impossible dimensions...) ends as an ``ImageLoadError`` whose message
is one sentence naming the file and the reason, so the CLI can print it on one line and the viewer
can show it in its status bar. The sentence is formatted by :class:`fpsm_core.errors.FpsmError`.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from fpsm_core.errors import FpsmError


class ImageLoadError(FpsmError):
    """A file could not be read as an image; the message is one sentence naming file and reason.

    Attributes:
        path: The file that failed.
        reason: The reason alone, without the file name (for tables that already show the file).
    """

    path: Path

    def __init__(self, path: str | PathLike[str], reason: object) -> None:
        super().__init__(reason, path=path)

    def where(self) -> str:
        return f"Cannot load '{self.path}': "
