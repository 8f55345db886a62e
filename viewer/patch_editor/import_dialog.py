"""The new-library dialog: a box file, an image folder and a format, imported in a worker.

It runs exactly ``fpsm dadam import`` (``read_boxes`` then ``import_boxes``) on
:class:`viewer.patch_editor.workers.ImportWorker`, with a progress bar and a Cancel button. The
import commits image by image, so cancelling keeps what was done and starting it again (into the
same library) finishes it: boxes already imported are skipped.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.patch_editor.workers import ImportRequest, ImportWorker

FORMATS = (
    ("fpsm", "fpsm: VinDr layout with CXR-LT names (fpsm sim boxes.csv)"),
    ("vindr", "vindr: VinDr-CXR annotations CSV (PhysioNet or Kaggle)"),
    ("nih", "nih: NIH BBox_List_2017.csv"),
    ("chestxdet", "chestxdet: ChestX-Det JSON"),
)


class NewLibraryDialog(QDialog):
    """Pick the library folder, box file, images folder and format; import with progress.

    Signals:
        import_finished(library, summary, cancelled): the worker is done (the library exists).
        import_failed(message): the import could not start or stopped on an error.
    """

    import_finished = Signal(object, str, bool)
    import_failed = Signal(str)

    def __init__(self, library: str | Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New patch library from boxes")
        self.worker = ImportWorker(self)
        self.library = QLineEdit(str(library) if library else "")
        self.boxes = QLineEdit()
        self.images = QLineEdit()
        self.dataset = QLineEdit()
        self.dataset.setPlaceholderText("(default: the format name)")
        self.format = QComboBox()
        for key, text in FORMATS:
            self.format.addItem(text, key)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.start_button = QPushButton("Import")
        self.cancel_button = QPushButton("Cancel import")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")

        form = QFormLayout()
        form.addRow("Library folder", self._with_browse(self.library, folder=True))
        form.addRow("Box file", self._with_browse(self.boxes, folder=False))
        form.addRow("Images folder", self._with_browse(self.images, folder=True))
        form.addRow("Format", self.format)
        form.addRow("Data set name", self.dataset)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.resize(640, 260)

        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.close_button.clicked.connect(self.close)
        self.worker.progressed.connect(self._on_worker_progressed)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)

    def _with_browse(self, edit: QLineEdit, folder: bool) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        button = QPushButton("…")
        button.setFixedWidth(32)

        def browse() -> None:
            path = (
                QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
                if folder
                else QFileDialog.getOpenFileName(self, "Choose a box file", edit.text())[0]
            )
            if path:
                edit.setText(path)

        button.clicked.connect(browse)
        h.addWidget(button)
        return row

    def request(self) -> ImportRequest | None:
        """The import the fields describe, or None after saying which field is missing."""
        for edit, name in ((self.library, "library folder"), (self.boxes, "box file"),
                           (self.images, "images folder")):  # fmt: skip
            if not edit.text().strip():
                self.message.setText(f"Choose the {name}.")
                return None
        return ImportRequest(
            library=Path(self.library.text().strip()),
            boxes=Path(self.boxes.text().strip()),
            images=Path(self.images.text().strip()),
            format=str(self.format.currentData()),
            dataset=self.dataset.text().strip() or None,
        )

    def start(self) -> None:
        req = self.request()
        if req is None or self.worker.running:
            return
        self.message.setText("Importing…")
        self.progress.setRange(0, 0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.start(req)

    def _on_worker_progressed(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.message.setText(f"{done} of {total} images")

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_worker_finished(self, summary: str, cancelled: bool) -> None:
        self._done()
        self.message.setText(summary)
        self.import_finished.emit(Path(self.library.text().strip()), summary, cancelled)

    def _on_worker_failed(self, message: str) -> None:
        self._done()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.message.setText(message)
        self.import_failed.emit(message)

    def closeEvent(self, event: object) -> None:  # noqa: N802 (Qt name)
        self.worker.cancel()
        super().closeEvent(event)  # type: ignore[arg-type]

    def shutdown(self) -> None:
        self.worker.shutdown()
