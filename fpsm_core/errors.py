"""The one base of every error a user can cause, and the one place its sentence is formatted.

A user's mistake (a bad file, checkpoint, table, option or path) ends as an :class:`FpsmError`
subclass whose ``str()`` is one sentence: the file first when one is known, then the reason, with
whitespace collapsed (library messages carry newlines and indentation) and overlong text trimmed,
so the CLI prints it on one line and the viewer shows it in its status bar. Entry points catch
``FpsmError`` once; anything else is a programming error and keeps its traceback.

``FpsmError`` derives from ``ValueError`` because every such class did before it existed, so
callers that catch ``ValueError`` keep working. Messages of library exceptions that are folded into
a sentence go through :func:`one_sentence`; values echoed from a user's input (a cell, a number of
300 digits) through :func:`shorten`.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

MAX_REASON = 500
"""Longest reason kept, in characters; a message is for a status bar or one terminal line."""

_ENDS_SENTENCE = ("?", "!")


def one_sentence(text: object, limit: int = MAX_REASON) -> str:
    """``text`` (an exception or any value) on one line: whitespace collapsed, trimmed to ``limit``.

    An exception with an empty message gives its class name, so a sentence never ends in ": .".
    """
    flat = " ".join(str(text).split())
    if not flat and isinstance(text, BaseException):
        flat = type(text).__name__
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of a user's value for a message, trimmed (a 300-digit number stays readable)."""
    text = repr(value) if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FpsmError(ValueError):
    """A problem a user can cause and fix; ``str()`` is one sentence naming the file.

    Args:
        reason: What is wrong (a sentence; a trailing full stop is optional).
        path: The file or folder concerned, when the reason does not name it itself.

    Attributes:
        path: The file concerned, or None.
        reason: The reason alone, on one line, without the file and the final full stop (for
            tables that already show the file).
    """

    def __init__(self, reason: object = "", *, path: str | PathLike[str] | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.reason: str = one_sentence(reason).rstrip(" .") or type(self).__name__
        super().__init__(self.sentence())

    def where(self) -> str:
        """The prefix naming the file (empty without a path); subclasses may word it."""
        return f"'{self.path}': " if self.path is not None else ""

    def sentence(self) -> str:
        """The one sentence: where, reason, full stop (unless the reason ends a sentence)."""
        end = "" if self.reason.endswith(_ENDS_SENTENCE) else "."
        return f"{self.where()}{self.reason}{end}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the fields, not from ``args`` (the formatted sentence): subclasses with
        # their own (path, reason) signature survive pickling between processes.
        return (_rebuild, (type(self), self.reason, self.path))


def _rebuild(cls: type[FpsmError], reason: str, path: Path | None) -> FpsmError:
    err = cls.__new__(cls)
    FpsmError.__init__(err, reason, path=path)
    return err
