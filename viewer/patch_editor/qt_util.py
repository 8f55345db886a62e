"""Small Qt helpers of the patch editor.

``blocked`` replaces ``with QSignalBlocker(w):``: PySide6 6.12's QSignalBlocker context manager
drops a reference to None on every exit (found here: 1,000 uses abort the interpreter with
"deallocating None"), so the editor blocks signals by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QObject


@contextmanager
def blocked(obj: QObject) -> Iterator[None]:
    """Block an object's signals for the ``with`` body, restoring the previous setting."""
    was = obj.blockSignals(True)
    try:
        yield
    finally:
        obj.blockSignals(was)
