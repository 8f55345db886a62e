"""The DICOM tag browser: every header element of the current file, nested sequences, search.

The header comes as plain rows from :mod:`fpsm_core.io.tags` (re-exported here for the viewer);
the dialog only ever sees those rows, never a pydicom data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.io.tags import TagRow, image_rows, matches, read_tag_rows

if TYPE_CHECKING:
    from fpsm_core.io.image import XRayImage

__all__ = ["TagBrowserDialog", "TagRow", "image_rows", "matches", "read_tag_rows"]


class TagBrowserDialog(QDialog):
    """A non-modal dialog listing the current file's tags, filtered as you type."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM tags")
        self.resize(760, 640)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Search"))
        self.search = QLineEdit()
        self.search.setPlaceholderText("tag, keyword, VR or value (e.g. 0028 or Window)")
        self.search.setClearButtonEnabled(True)
        top.addWidget(self.search)
        layout.addLayout(top)
        self.source_label = QLabel("")
        layout.addWidget(self.source_label)
        self.tree = QTreeWidget()
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        self.tree.setColumnWidth(0, 110)
        self.tree.setColumnWidth(1, 220)
        self.tree.setColumnWidth(2, 40)
        self.tree.setAlternatingRowColors(True)
        layout.addWidget(self.tree)
        self._rows: tuple[TagRow, ...] = ()
        self.search.textChanged.connect(self._on_search_text_changed)

    def show_image(self, image: XRayImage, path: str | Path) -> str | None:
        """Show a file's tags (a raster's basic facts); the problem, in one sentence, if none."""
        from fpsm_core.io import ImageLoadError

        try:
            rows = read_tag_rows(str(path)) if image.source_format == "dicom" else image_rows(image)
        except ImageLoadError as exc:
            return str(exc)
        self.set_rows(rows, str(path))
        self.show()
        self.raise_()
        return None

    def set_rows(self, rows: Sequence[TagRow], source: str) -> None:
        self._rows = tuple(rows)
        self.source_label.setText(source)
        self._fill()

    def visible_rows(self) -> list[TagRow]:
        """Top-level rows currently shown."""
        return [r for r in self._rows if matches(r, self.search.text())]

    def _fill(self) -> None:
        self.tree.clear()
        needle = self.search.text()

        def add(parent: QTreeWidget | QTreeWidgetItem, row: TagRow) -> None:
            item = QTreeWidgetItem([row.tag, row.name, row.vr, row.value])
            item.setToolTip(3, row.value)
            if isinstance(parent, QTreeWidget):
                parent.addTopLevelItem(item)
            else:
                parent.addChild(item)
            for child in row.children:
                if matches(child, needle):
                    add(item, child)

        for row in self._rows:
            if matches(row, needle):
                add(self.tree, row)
        if needle:
            self.tree.expandAll()

    def _on_search_text_changed(self, _text: str) -> None:
        self._fill()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        if event.key() == Qt.Key.Key_Escape and self.search.text():
            self.search.clear()
            return
        super().keyPressEvent(event)
