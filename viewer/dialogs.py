"""The main window's small dialogs: keyboard shortcuts, About, and the file pickers.

Kept apart from :mod:`viewer.main_window` so the window stays wiring; each picker returns what the
user chose (nothing when cancelled) and remembers the folder in the viewer's settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.settings import ViewerSettings

if TYPE_CHECKING:
    from viewer.workers import ModelInfo

IMAGE_FILTER = "Radiographs (*.dcm *.dicom *.dic *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)"


class ShortcutsDialog(QDialog):
    """Help > Keyboard shortcuts: every action that has a key."""

    def __init__(self, actions: Sequence[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(460, 560)
        rows = [
            (a.text().replace("&", ""), a.shortcut().toString())
            for a in actions
            if not a.shortcut().isEmpty()
        ]
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Action", "Key"])
        for i, (name, key) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(name))
            table.setItem(i, 1, QTableWidgetItem(key))
        table.horizontalHeader().setStretchLastSection(True)
        table.setColumnWidth(0, 280)
        table.verticalHeader().hide()
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        self.table = table


def about_text(app_name: str, info: ModelInfo | None) -> str:
    """The About box: the model on screen and what it must not be used for."""
    text = f"<b>{app_name}</b><br>Feature Pyramid Sum Models on chest radiographs.<br>"
    if info is not None:
        text += f"Model: {info.name} on {info.device}.<br>"
        if info.untrained:
            text += "<b>The model is UNTRAINED: its output is meaningless.</b><br>"
        if info.disclaimer:
            text += f"{info.disclaimer}<br>"
    return text + "Research software, not for clinical use."


def ask_images(parent: QWidget, settings: ViewerSettings) -> list[str]:
    paths, _ = QFileDialog.getOpenFileNames(
        parent, "Open images", settings.last_dir(), IMAGE_FILTER
    )
    if paths:
        settings.set_last_dir(Path(paths[0]).parent)
    return list(paths)


def ask_folder(parent: QWidget, settings: ViewerSettings) -> str | None:
    path = QFileDialog.getExistingDirectory(parent, "Open folder", settings.last_dir())
    if path:
        settings.set_last_dir(path)
    return path or None


def ask_model(parent: QWidget) -> str | None:
    path, _ = QFileDialog.getOpenFileName(
        parent, "Open a checkpoint (.json) or ensemble.json", str(Path.home()), "JSON (*.json)"
    )
    return path or None
