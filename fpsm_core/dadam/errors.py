"""The one exception type of the DADAM engine.

Everything a user's input can cause (a box file in the wrong layout, a missing image, a plan that
belongs to another library, an output folder of another plan) ends as a ``DadamError`` whose message
is one sentence naming the file and the problem, so ``fpsm dadam`` prints it on one line. The
sentence is formatted by :class:`fpsm_core.errors.FpsmError`, the base of every user error.
"""

from __future__ import annotations

from os import PathLike

from fpsm_core.errors import FpsmError


class DadamError(FpsmError):
    """A user-facing DADAM problem; the message is one sentence naming the file and the problem."""

    def __init__(self, path: str | PathLike[str] | None, reason: object) -> None:
        super().__init__(reason, path=path)
