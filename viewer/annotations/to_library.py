"""Measure > Add the rectangle to a patch library: a box drawn on any film becomes a DADAM patch.

The selected rectangle annotation (Shift+O draws one) is cut from the film on screen the way the
patch editor cuts a drawn box (``PatchLibrary.add_box``: the lesion box plus its margin, at the
film's display window, its spacing recorded), with the class the reader picks (the 26 CXR-LT
labels, with type-ahead; the AI panel's selected finding is offered first) into the library folder
the reader names (created when it has none). The new patch is *unreviewed*, its data set
``viewer`` and its reader the OS user, so it is curated in the patch editor like any other; the
library may be open in the editor or in ``fpsm dadam`` at the same time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.errors import FpsmError, one_sentence
from fpsm_core.labels import LABELS
from viewer.label_combo import label_combo, matching_label

if TYPE_CHECKING:
    from viewer.annotations.controller import AnnotationController
    from viewer.state import ViewerState

DATASET = "viewer"


def selected_rectangle(controller: AnnotationController) -> tuple[float, ...] | None:
    """The selected rectangle as (x0, y0, x1, y1) in image pixels, or None."""
    if controller.selected is None:
        return None
    annotation = controller.sheet.get(controller.selected)
    if annotation is None or annotation.kind != "rectangle":
        return None
    (ax, ay), (bx, by) = annotation.points[:2]
    return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def add_to_library(
    library: Path, image: Any, image_path: Path, box: tuple[float, ...], label: str
) -> int:
    """Cut ``box`` of the film into the library as a new patch; returns its id (FpsmError)."""
    from fpsm_core.dadam import PatchLibrary
    from fpsm_core.dadam.library import current_user

    if label not in LABELS:
        raise FpsmError(f"'{label}' is not one of the 26 CXR-LT classes.")
    with PatchLibrary(library, create=True) as lib:
        done = lib.add_box(image_path, DATASET, box, label, image=image, reader=current_user())
    return int(done.patch_ids[0])


class AddToLibraryDialog(QDialog):
    """Library folder and class for the selected rectangle."""

    def __init__(self, settings: Any, label: str | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add the rectangle to a patch library")
        self.library = QLineEdit(str(settings.value("dadam/library", "") or ""))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.label = label_combo()
        if label in LABELS:
            self.label.setCurrentText(label)
        self.message = QLabel(
            "The box is cut at the film's display window with a margin, as the patch editor "
            "cuts a drawn box; the patch starts unreviewed."
        )
        self.message.setWordWrap(True)
        self.message.setObjectName("hint")
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.library, 1)
        row.addWidget(browse)
        form.addRow("Library folder", row)
        form.addRow("Class", self.label)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Patch library folder", self.library.text())
        if folder:
            self.library.setText(folder)

    def chosen_label(self) -> str | None:
        return matching_label(self.label.currentText())


class BoxToLibrary(QObject):
    """The action: asks where and which class, adds the patch, says what it did.

    Signals:
        said(message, error), added(library, patch_id)
    """

    said = Signal(str, bool)
    added = Signal(object, int)

    def __init__(self, controller: Any, state: ViewerState, settings: Any, parent: QObject) -> None:
        super().__init__(parent)
        self._controller = controller  # a callable: the active viewport's controller
        self.state = state
        self.settings = settings
        self.dialog: AddToLibraryDialog | None = None

    def ask(self, parent: QWidget | None = None) -> AddToLibraryDialog | None:
        """Open the dialog for the selected rectangle (None, with a sentence, when there is none)."""
        controller = self._controller()
        if self.state.image is None:
            self.said.emit("Open an image and draw a rectangle (Shift+O) on it first.", True)
            return None
        if selected_rectangle(controller) is None:
            self.said.emit(
                "Select a rectangle annotation (Shift+O draws one) to add it to a patch library.",
                True,
            )
            return None
        self.dialog = AddToLibraryDialog(self.settings, self._finding_label(), parent)
        self.dialog.accepted.connect(self._on_dialog_accepted)
        self.dialog.show()
        return self.dialog

    def _finding_label(self) -> str | None:
        """The AI panel's selected finding, offered as the class."""
        index, result = self.state.finding, self.state.result
        labels = getattr(result, "labels", None) or ()
        return str(labels[index]) if index is not None and 0 <= index < len(labels) else None

    def _on_dialog_accepted(self) -> None:
        dialog = self.dialog
        assert dialog is not None
        text = dialog.library.text().strip()
        label = dialog.chosen_label()
        if not text:
            self.said.emit("Name the patch library folder to add the box to.", True)
            return
        if label is None:
            self.said.emit(
                f"'{dialog.label.currentText()}' is not one of the 26 CXR-LT classes.", True
            )
            return
        self.add(Path(text).expanduser(), label)

    def add(self, library: Path, label: str) -> int | None:
        """Add the selected rectangle of the film on screen; the new patch id, or None."""
        controller = self._controller()
        box = selected_rectangle(controller)
        loaded = self.state.image
        if box is None or loaded is None:
            self.said.emit("Select a rectangle annotation on the film first.", True)
            return None
        try:
            pid = add_to_library(library, loaded.image, Path(loaded.path), box, label)
        except FpsmError as exc:
            self.said.emit(one_sentence(exc), True)
            return None
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or exc
            self.said.emit(f"Cannot write the patch library {library}: {reason}.", True)
            return None
        self.settings.setValue("dadam/library", str(library))
        self.said.emit(
            f"Patch {pid} ({label}) added to {library} from {Path(loaded.path).name}.", False
        )
        self.added.emit(library, pid)
        return pid
