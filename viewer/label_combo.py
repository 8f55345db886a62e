"""An editable combo box of the 26 CXR-LT labels with type-ahead (``mas`` finds Mass).

Shared by the widgets where a reader names a class: the patch editor's source view and the
viewer's *Add the rectangle to a patch library* dialog.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QCompleter, QWidget

from fpsm_core.labels import LABELS


def label_combo(parent: QWidget | None = None) -> QComboBox:
    """An editable combo of the labels; the completer matches anywhere, in any case."""
    combo = QComboBox(parent)
    combo.setEditable(True)
    combo.addItems(list(LABELS))
    combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
    completer = QCompleter(list(LABELS), combo)
    completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    completer.setFilterMode(Qt.MatchFlag.MatchContains)
    combo.setCompleter(completer)
    return combo


def matching_label(text: str) -> str | None:
    """The label typed (any case, surrounding spaces ignored), or None when it is not one."""
    wanted = text.strip().lower()
    return next((lab for lab in LABELS if lab.lower() == wanted), None)
