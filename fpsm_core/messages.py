"""How numbers read from users' files are written into messages: ``%.6g``, whatever their size.

A coordinate of 1e300 from a tampered box file is echoed as ``1e+300``, not as 301 digits, and an
integer beyond float range as ``1.00000e+400``; text is cut at 40 characters.
"""

from __future__ import annotations

from typing import Any


def fmt_number(value: Any) -> str:
    """A number as a message shows it (``%.6g``; integers under 10^15 as they are)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    try:
        return f"{float(value):.6g}"
    except OverflowError:  # an int beyond float range
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:6]}e+{len(digits) - 1}"


def fmt_coord(value: float) -> str:
    """A pixel coordinate: whole pixels when that is short, else ``%.6g`` (NaN and inf as such)."""
    if isinstance(value, (int, float)) and abs(value) < 1e15:
        return str(round(value))
    return fmt_number(value)
