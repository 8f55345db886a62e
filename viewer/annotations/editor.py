"""A one-line editor over the film for an annotation's text or a calibration length.

Opened where the text goes (an image point, placed by the controller after every zoom or pan);
Enter commits, Esc or losing focus without Enter drops the edit. It never blocks the window
(no modal dialog), so drawing, tests and screen readers carry on around it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtWidgets import QLineEdit, QWidget


class InlineEditor(QLineEdit):
    """Signals: committed(text) on Enter."""

    committed = Signal(str)

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("annotationEditor")
        self.setMinimumWidth(220)
        self.anchor: tuple[float, float] | None = None
        self.returnPressed.connect(self._on_return_pressed)
        self.hide()

    def open(self, text: str, hint: str, anchor: tuple[float, float]) -> None:
        self.anchor = (float(anchor[0]), float(anchor[1]))
        self.setText(text)
        self.setPlaceholderText(hint)
        self.show()
        self.raise_()
        self.setFocus(Qt.FocusReason.OtherFocusReason)
        self.selectAll()

    def place(self, pos: QPointF | QPoint) -> None:
        parent = self.parentWidget()
        x, y = int(pos.x()) + 8, int(pos.y()) + 8
        if parent is not None:
            x = max(0, min(x, parent.width() - self.width()))
            y = max(0, min(y, parent.height() - self.height()))
        self.move(x, y)

    def cancel(self) -> None:
        self.hide()
        self.anchor = None

    def _on_return_pressed(self) -> None:
        text = self.text()
        self.cancel()
        self.committed.emit(text)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
            event.accept()
            return
        super().keyPressEvent(event)
