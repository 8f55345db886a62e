"""The one exception type of the DADAM engine.

Everything a user's input can cause (a box file in the wrong layout, a missing image, a plan that
belongs to another library, an output folder of another plan) ends as a ``DadamError`` whose message
is one sentence naming the file and the problem, so ``fpsm dadam`` prints it on one line.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path


class DadamError(ValueError):
    """A user-facing DADAM problem; the message is one sentence naming the file and the problem."""

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = " ".join(str(reason).split()).rstrip(". ")
        where = f"'{self.path}': " if self.path is not None else ""
        super().__init__(f"{where}{self.reason}.")
