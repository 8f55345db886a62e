"""Range-checked numbers for the command line: every number a user types is checked where it enters.

``type=whole(1)`` or ``type=fraction()`` on an ``add_argument`` makes argparse answer a bad value
with one line naming the option (``fpsm dadam plan: error: argument --budget: expected a whole
number of at least 1, not '-1'``) and exit status 2, before any file is read or any model loaded.
NaN and infinities are refused everywhere: no option of this project means anything with them.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from fpsm_core.errors import shorten


def whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An integer in ``[low, high]`` (either bound optional)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if (
            value is None
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(
                f"expected {_whole_range(low, high)}, not {shorten(text)}"
            )
        return value

    return parse


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], float]:
    """A finite real number in the interval from ``low`` to ``high`` (open ends as asked)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        bad = not math.isfinite(value)
        if low is not None:
            bad = bad or value < low or (low_open and value == low)
        if high is not None:
            bad = bad or value > high or (high_open and value == high)
        if bad:
            raise argparse.ArgumentTypeError(
                f"expected {_real_range(low, high, low_open, high_open)}, not {shorten(text)}"
            )
        return value

    return parse


def fraction(*, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite number between 0 and 1."""
    return number(0.0, 1.0, low_open=low_open, high_open=high_open)


def _whole_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"a whole number from {low} to {high}"
    if low is not None:
        return f"a whole number of at least {low}"
    if high is not None:
        return f"a whole number of at most {high}"
    return "a whole number"


def _real_range(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        if not (low_open or high_open):
            return f"a number from {low:g} to {high:g}"
        left = f"above {low:g}" if low_open else f"at least {low:g}"
        right = f"below {high:g}" if high_open else f"at most {high:g}"
        return f"a number {left} and {right}"
    if low is not None:
        return f"a number {'above' if low_open else 'of at least'} {low:g}"
    if high is not None:
        return f"a number {'below' if high_open else 'of at most'} {high:g}"
    return "a finite number"


def plain_help(text: str | None) -> str:
    """A reStructuredText docstring as ``--help`` should print it: ``literal`` and :role:`x` as x."""
    out = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text or "")
    return re.sub(r"``([^`]+)``", r"\1", out).strip()
