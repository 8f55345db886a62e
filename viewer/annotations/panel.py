"""The measurements dock: every annotation of the image on screen, its values, and the commands.

A list (one line per annotation, its kind and what it measures, in drawing order) kept in step
with the controller: selecting a line selects the annotation on the film and back, double-click
edits its text or note. Above it, the spacing lengths use and where it came from; below, delete,
undo, redo, and forgetting the film's calibration; the exports are in the Measure menu.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:
    from fpsm_core.annotations import Sheet
    from viewer.annotations.controller import AnnotationController

ID_ROLE = Qt.ItemDataRole.UserRole


def spacing_line(controller: AnnotationController) -> str:
    """What lengths are measured with, in words."""
    cal = controller.sheet.calibration
    if cal is not None:
        return f"Spacing: calibrated, {cal.mm_per_px:.4g} mm/px (a {cal.known_mm:g} mm line)"
    spacing = controller.header_spacing
    if spacing is None:
        return "Spacing unknown: lengths in pixels. Calibrate with a line of known length."
    return f"Spacing: {spacing.source} {spacing.row_mm:.4g} x {spacing.col_mm:.4g} mm"


class AnnotationPanel(QWidget):
    """The dock's widget for one controller (the viewport being read)."""

    def __init__(self, controller: AnnotationController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.spacing_label = QLabel("")
        self.spacing_label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("annotationList")
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setMinimumHeight(120)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for name, text in (
            ("delete", "Delete"),
            ("undo", "Undo"),
            ("redo", "Redo"),
            ("uncalibrate", "Uncalibrate"),
        ):
            button = QPushButton(text)
            row.addWidget(button)
            self.buttons[name] = button
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.spacing_label)
        layout.addWidget(self.list, 1)
        layout.addLayout(row)
        self._syncing = False
        self.buttons["delete"].clicked.connect(lambda: self.controller.delete_selected())
        self.buttons["undo"].clicked.connect(lambda: self.controller.undo())
        self.buttons["redo"].clicked.connect(lambda: self.controller.redo())
        self.buttons["uncalibrate"].clicked.connect(lambda: self.controller.remove_calibration())
        self.buttons["uncalibrate"].setToolTip("Forget the calibration of this film (undoable)")
        self.list.currentItemChanged.connect(self._on_list_current_item_changed)
        self.list.itemDoubleClicked.connect(self._on_list_item_double_clicked)
        self._connect(controller)

    def set_controller(self, controller: AnnotationController) -> None:
        """Show another viewport's annotations (the one being read, in a layout of several)."""
        if controller is self.controller:
            return
        old = self.controller
        for signal, slot in self._slots(old):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass  # that viewport is gone
        self.controller = controller
        self._connect(controller)

    def _slots(self, controller: AnnotationController) -> list[tuple[Any, Any]]:
        return [
            (controller.sheet_changed, self._on_controller_sheet_changed),
            (controller.selection_changed, self._on_controller_selection_changed),
        ]

    def _connect(self, controller: AnnotationController) -> None:
        for signal, slot in self._slots(controller):
            signal.connect(slot)
        self._on_controller_sheet_changed(controller.sheet)

    def lines(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _on_controller_sheet_changed(self, sheet: Sheet) -> None:
        self._syncing = True
        try:
            self.list.clear()
            for annotation in sheet.annotations:
                item = QListWidgetItem(self.controller.describe(annotation))
                item.setData(ID_ROLE, annotation.id)
                item.setToolTip(self.controller.measurement(annotation).text)
                self.list.addItem(item)
                if annotation.id == self.controller.selected:
                    self.list.setCurrentItem(item)
        finally:
            self._syncing = False
        line = spacing_line(self.controller)
        if self.controller.store is None:
            line += "\nNot saved: no study index is open."
        self.spacing_label.setText(line)
        document = self.controller.document
        self.buttons["undo"].setEnabled(document.can_undo)
        self.buttons["redo"].setEnabled(document.can_redo)
        self.buttons["delete"].setEnabled(self.controller.selected is not None)
        self.buttons["uncalibrate"].setEnabled(sheet.calibration is not None)

    def _on_controller_selection_changed(self, annotation_id: str | None) -> None:
        self._syncing = True
        try:
            for i in range(self.list.count()):
                item = self.list.item(i)
                if item.data(ID_ROLE) == annotation_id:
                    self.list.setCurrentItem(item)
                    break
            else:
                self.list.setCurrentRow(-1)
        finally:
            self._syncing = False
        self.buttons["delete"].setEnabled(annotation_id is not None)

    def _on_list_current_item_changed(self, current: QListWidgetItem | None, *_: Any) -> None:
        if not self._syncing:
            self.controller.select(None if current is None else current.data(ID_ROLE))

    def _on_list_item_double_clicked(self, item: QListWidgetItem) -> None:
        self.controller.edit_text(item.data(ID_ROLE))
