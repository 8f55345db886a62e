"""The DADAM patch editor window: wiring of the state model, the workers and the small widgets.

Layout: a banner for library problems above a ``QTabWidget`` of workspaces. "Gallery" (filter bar,
virtualised thumbnails, curation panel and per-label counts), "Source" (the source image with its
boxes) and "Duplicates". Further workspaces plug in with :meth:`PatchEditorWindow.add_workspace`
(the composition studio of issue 16, the "Studio" tab, is one: it gets the same
:class:`EditorState`, so it sees the current patch and selection and calls the session). Every
change goes to the library at once through the core (there is no Save); Ctrl+Z / Ctrl+Shift+Z undo
and redo through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from viewer.patch_editor.duplicates import DuplicatesWidget
from viewer.patch_editor.gallery import GalleryWidget
from viewer.patch_editor.import_dialog import NewLibraryDialog
from viewer.patch_editor.model import DB_NAME, EditorError, EditorSession
from viewer.patch_editor.panels import CountsTable, CurationPanel, FilterBar
from viewer.patch_editor.source_view import SourceViewWidget
from viewer.patch_editor.state import EditorState
from viewer.patch_editor.studio.widget import StudioWidget
from viewer.patch_editor.workers import ThumbnailLoader


class PatchEditorWindow(QMainWindow):
    """The patch editor.

    Args:
        library: Library folder to open (one that does not exist yet can be created from here).
        images: Extra folders where moved source images are looked for.
        model: Checkpoint or ensemble the composition studio checks with (default: the demo).

    Signals:
        library_opened(Path): a library is open and listed.
        library_failed(str): a library could not be opened (the sentence shown).
    """

    library_opened = Signal(object)
    library_failed = Signal(str)

    def __init__(
        self,
        library: str | Path | None = None,
        images: list[Path] | None = None,
        parent: QWidget | None = None,
        model: str | Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("DADAM patch editor")
        self.images = list(images or [])
        self.state = EditorState(self)
        self.thumbnails = ThumbnailLoader(self)
        self.gallery = GalleryWidget(self.state, self.thumbnails)
        self.filter_bar = FilterBar(self.state)
        self.curation = CurationPanel(self.state)
        self.counts = CountsTable(self.state)
        self.source_view = SourceViewWidget(self.state)
        self.duplicates = DuplicatesWidget(self.state, self.thumbnails)
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.dialog: NewLibraryDialog | None = None
        self.library_path: Path | None = Path(library) if library else None

        gallery_page = QWidget()
        gl = QVBoxLayout(gallery_page)
        gl.setContentsMargins(0, 0, 0, 0)
        gl.addWidget(self.filter_bar)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.gallery)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.curation)
        side.addWidget(self.counts)
        side.setStretchFactor(1, 1)
        split.addWidget(side)
        split.setStretchFactor(0, 1)
        split.setSizes([960, 440])
        gl.addWidget(split, 1)
        self.tabs = QTabWidget()
        self.tabs.addTab(gallery_page, "Gallery")
        self.tabs.addTab(self.source_view, "Source")
        self.tabs.addTab(self.duplicates, "Duplicates")
        self.studio = StudioWidget(self.state, model, self.images)
        self.add_workspace(self.studio, "Studio")
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.banner)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.status_label = QLabel("")
        self.statusBar().addWidget(self.status_label, 1)
        self.count_label = QLabel("")
        self.statusBar().addPermanentWidget(self.count_label)

        self.actions_by_name: dict[str, QAction] = {}
        self._build_actions()
        self.state.message_changed.connect(self._on_state_message_changed)
        self.state.ids_changed.connect(lambda _ids: self._update_count_label())
        self.state.selection_changed.connect(lambda _s: self._update_count_label())
        self.state.source_requested.connect(
            lambda _pid: self.tabs.setCurrentWidget(self.source_view)
        )
        self.thumbnails.thumbnail_failed.connect(self._on_thumbnails_thumbnail_failed)
        self._missing_files = 0
        self.resize(1400, 900)
        if library is not None:
            self.open_library(library)

    # -- construction ----------------------------------------------------------------------------
    def _action(self, name: str, text: str, slot: Any, shortcut: Any = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        a = self._action
        menu = self.menuBar().addMenu("&Library")
        menu.addAction(a("open", "&Open library…", self._on_open_triggered, "Ctrl+O"))
        menu.addAction(a("new", "&New library from boxes…", self.new_library, "Ctrl+N"))
        menu.addSeparator()
        menu.addAction(a("close", "&Close window", self.close, QKeySequence.StandardKey.Close))
        menu = self.menuBar().addMenu("&Edit")
        menu.addAction(a("undo", "&Undo", self.state.undo, "Ctrl+Z"))
        menu.addAction(a("redo", "&Redo", self.state.redo, "Ctrl+Shift+Z"))
        menu.addSeparator()
        menu.addAction(a("select_all", "Select all listed", self._on_select_all_triggered))
        menu = self.menuBar().addMenu("&View")
        menu.addAction(a("gallery", "&Gallery", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1"))
        menu.addAction(a("source", "&Source view", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2"))
        menu.addAction(a("duplicates", "&Duplicates", self._on_duplicates_triggered, "Ctrl+3"))
        menu.addAction(a("studio", "Composition s&tudio", self._on_studio_triggered, "Ctrl+4"))

    def add_workspace(self, widget: QWidget, title: str) -> int:
        """Add a workspace tab bound to :attr:`state` (the composition studio plugs in here)."""
        return self.tabs.addTab(widget, title)

    # -- library ---------------------------------------------------------------------------------
    def open_library(self, root: str | Path) -> bool:
        """Open a library folder; a folder without one offers to create it. True when opened."""
        root = Path(root)
        self.library_path = root
        if not (root / DB_NAME).exists():
            self.state.set_session(None)
            self._show_banner(
                f"'{root}' holds no patch library yet: Library > New library from boxes "
                "(Ctrl+N) imports one there."
            )
            self.library_failed.emit(self.banner.text())
            return False
        try:
            session = EditorSession(root, images=self.images)
        except EditorError as exc:
            self.state.set_session(None)
            self._show_banner(str(exc))
            self.library_failed.emit(str(exc))
            return False
        self.banner.hide()
        self._missing_files = 0
        self.setWindowTitle(f"DADAM patch editor — {root}")
        self.state.set_session(session)
        missing = [n for n in ("set_rating", "undo", "update_box", "duplicate_groups")
                   if not session.has(n)]  # fmt: skip
        self.state.say(
            f"{len(session)} patches in {root}."
            + (f" This core lacks: {', '.join(missing)}." if missing else "")
        )
        self.library_opened.emit(root)
        return True

    def new_library(self) -> NewLibraryDialog:
        """Show the new-library dialog (non-modal), prefilled with the current library path."""
        if self.dialog is None:
            self.dialog = NewLibraryDialog(self.library_path, self)
            self.dialog.import_finished.connect(self._on_dialog_import_finished)
        elif self.library_path is not None and not self.dialog.worker.running:
            self.dialog.library.setText(str(self.library_path))
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _on_dialog_import_finished(self, library: Path, summary: str, cancelled: bool) -> None:
        if self.open_library(library):
            self.state.say(summary, error=cancelled)

    def _on_open_triggered(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Open a patch library", str(self.library_path or "")
        )
        if path:
            self.open_library(path)

    def _on_select_all_triggered(self) -> None:
        self.gallery.view.selectAll()

    def _on_studio_triggered(self) -> None:
        self.tabs.setCurrentWidget(self.studio)

    def _on_duplicates_triggered(self) -> None:
        self.tabs.setCurrentWidget(self.duplicates)
        self.duplicates.find_groups()

    # -- messages ----------------------------------------------------------------------------------
    def _show_banner(self, text: str) -> None:
        self.banner.setText(text)
        self.banner.show()
        self.status_label.setText(text)

    def show_error(self, text: str) -> None:
        """One sentence in the status bar (the app's excepthook calls this for bugs too)."""
        self._on_state_message_changed(text, True)

    def _on_state_message_changed(self, text: str, error: bool) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #ff8a80;" if error else "")

    def _on_thumbnails_thumbnail_failed(self, patch_id: int, message: str) -> None:
        # One sentence for the first missing file, a count after that; the gallery goes on.
        self._missing_files += 1
        more = (
            f" ({self._missing_files} patch files missing so far)"
            if self._missing_files > 1
            else ""
        )
        self.state.say(f"Patch {patch_id}: {message}{more}.", error=True)

    def _update_count_label(self) -> None:
        n, sel = len(self.state.ids), len(self.state.selection)
        self.count_label.setText(f"{n} listed" + (f", {sel} selected" if sel > 1 else ""))

    # -- closing -----------------------------------------------------------------------------------
    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every worker thread and close the library (idempotent)."""
        if self.dialog is not None:
            self.dialog.shutdown()
        self.thumbnails.shutdown()
        self.duplicates.shutdown()
        self.source_view.shutdown()
        self.studio.shutdown()
        if self.state.session is not None:
            self.state.set_session(None)

    def threads(self) -> list[Any]:
        """The worker threads (tests check none is left running)."""
        out = [
            self.source_view.loader.worker_thread,
            self.thumbnails.decode_thread,
            self.duplicates.loader.decode_thread,
        ]
        out += self.studio.threads()
        if self.dialog is not None:
            out.append(self.dialog.worker.worker_thread)
        return out
