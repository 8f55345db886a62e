"""The DICOM tag browser: every header element of the current file, nested sequences, search.

The header is flattened into plain :class:`TagRow` records by :func:`read_tag_rows` (through
:func:`fpsm_core.io.dicom.read_dataset`, so a broken file gives the same one-sentence error as
everywhere else); the dialog only ever sees those rows, never a pydicom data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class TagRow:
    """One header element; ``depth`` > 0 inside sequences, ``children`` for sequence items."""

    tag: str
    name: str
    vr: str
    value: str
    depth: int = 0
    children: tuple[TagRow, ...] = ()


def _value_text(element: Any) -> str:
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
        length = getattr(element, "length", None) or len(element.value or b"")
        return f"<{length} bytes>"
    text = str(element.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _rows(dataset: Any, depth: int) -> tuple[TagRow, ...]:
    out = []
    for element in dataset:
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        name = element.keyword or element.name
        if element.VR == "SQ":
            items = tuple(
                TagRow(
                    tag="",
                    name=f"Item {i + 1}",
                    vr="",
                    value="",
                    depth=depth + 1,
                    children=_rows(item, depth + 2),
                )
                for i, item in enumerate(element.value)
            )
            out.append(TagRow(tag, name, "SQ", f"{len(items)} item(s)", depth, items))
        else:
            out.append(TagRow(tag, name, str(element.VR), _value_text(element), depth))
    return tuple(out)


def read_tag_rows(path: str | Path) -> tuple[TagRow, ...]:
    """All header elements (file meta first) of a DICOM file as rows.

    Raises:
        ImageLoadError: the file is not readable DICOM (one sentence naming it).
    """
    from fpsm_core.io.dicom import read_dataset

    dataset, _notes = read_dataset(Path(path), stop_before_pixels=True)
    meta = getattr(dataset, "file_meta", None)
    rows = _rows(meta, 0) if meta is not None else ()
    return rows + _rows(dataset, 0)


def image_rows(image: Any) -> tuple[TagRow, ...]:
    """What a non-DICOM image offers instead of tags (format, size, window, identifiers)."""
    fields = [
        ("Source format", getattr(image, "source_format", "")),
        ("Rows x Columns", "x".join(str(x) for x in image.pixels.shape)),
        ("Window (center, width)", str(tuple(round(v, 3) for v in image.window))),
        ("Pixel spacing (mm)", str(getattr(image, "spacing_mm", None))),
        ("Patient ID", getattr(image, "patient_id", None)),
        ("Study UID", getattr(image, "study_uid", None)),
        ("Instance UID", getattr(image, "instance_uid", None)),
        ("View position", getattr(image, "view_position", None)),
    ]
    return tuple(TagRow("", name, "", str(value or "")) for name, value in fields)


def matches(row: TagRow, needle: str) -> bool:
    """Case-insensitive search over tag, name, VR and value, or any child's."""
    if not needle:
        return True
    n = needle.lower()
    if any(n in x.lower() for x in (row.tag, row.name, row.vr, row.value)):
        return True
    return any(matches(child, needle) for child in row.children)


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
