"""The main window: worklist on the left, the film in the middle, the AI panel on the right.

A window is wiring. The :class:`~viewer.state.ViewerState` holds what is shown and how; the AI
panel, the film (:class:`~viewer.film_binding.FilmBinding`) and the level strip observe and set it,
never each other. The window builds the docks, actions and menus, passes requests to the
:class:`~viewer.workers.ServiceHub` and puts what comes back into the state: an image is decoded on
the load thread, inference runs on the inference thread, and only results for the image on screen
come back. Every user-caused error ends as one sentence in the status bar.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QWidget,
)

from viewer import dialogs
from viewer.ai_panel import AIPanel
from viewer.annotations.wiring import install_annotations
from viewer.bind import bind_check
from viewer.contours import ContourBinding
from viewer.dicom_out import DicomOutController
from viewer.export import ViewExporter
from viewer.film_binding import FilmBinding
from viewer.ground_truth import GroundTruthBinding, GroundTruthPanel
from viewer.image_view import ImageViewWidget
from viewer.level_grid import LevelGridDialog
from viewer.level_strip import LevelStripWidget
from viewer.pacs_query import QueryPacsController
from viewer.patch_editor.launch import open_patch_editor
from viewer.reading_room import ReadingRoom
from viewer.session import ViewerSession
from viewer.settings import ViewerSettings, settings_for_app
from viewer.state import ViewerState
from viewer.tag_browser import TagBrowserDialog
from viewer.workers import ModelInfo, ServiceHub
from viewer.worklist import WorklistPanel

if TYPE_CHECKING:
    from fpsm_core.io.studies import StudyIndex
    from viewer.image_view import CursorInfo

APP_NAME = "FPSM Viewer"
# Window presets: key, action text, toolbar label (actions are named ``preset_<preset>``).
PRESETS = {
    "dicom": ("D", "DICOM window", "DICOM"),
    "auto": ("A", "Auto window", "Auto"),
    "lung": ("L", "Lung window", "Lung"),
    "soft tissue": ("T", "Soft-tissue window", "Soft"),
    "bone": ("B", "Bone window", "Bone"),
}
# Menus by action name: "-" a separator, "presets" the window presets, "recent" the recent items.
MENUS = {
    "&File": "open open_folder query_pacs open_model patch_editor recent - export_png export_json "
    "export_csv export_phi - export_dicom send_pacs - load_ground_truth - quit",
    "&View": "presets invert - fit one_to_one zoom_in zoom_out rotate_cw rotate_ccw flip_h flip_v "
    "reset_view - ruler clear_rulers tags",
    "&AI": "overlay next_level prev_level next_finding prev_finding rerun cancel triage grid",
    "&Worklist": "next_image prev_image",
    "&Help": "shortcuts about",
}
TOOLBAR = (
    "open open_folder - presets invert - fit one_to_one rotate_ccw rotate_cw flip_h flip_v ruler "
)
TOOLBAR += "- overlay tags export_png"


class MainWindow(QMainWindow):
    """The viewer.

    Args:
        model: checkpoint or ensemble path (None: the bundled default model).
        device: ``auto``, ``cpu``, ``cuda``...
        settings: where preferences live (tests pass an INI file in a temporary folder).
        index_cache: the study index cache (None: the per-user default; False: none).
        torch_threads: torch's intra-op threads (None: all cores but one).
        thumbnails: make worklist thumbnails.

    Signals:
        image_shown(path): the first pixels of a newly opened image are on screen.
        result_shown(Result): the findings of the image on screen are listed.
        overlay_drawn(): a CAM overlay was drawn (or changed).
        grid_drawn(): the level strip shows the selected finding at every level.
        error_shown(message): an error went to the status bar.
        model_ready(ModelInfo), triage_done(cancelled)
    """

    image_shown = Signal(str)
    result_shown = Signal(object)
    overlay_drawn = Signal()
    grid_drawn = Signal()
    error_shown = Signal(str)
    model_ready = Signal(object)
    triage_done = Signal(bool)

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        *,
        settings: QSettings | None = None,
        index_cache: Any = None,
        torch_threads: int | None = None,
        thumbnails: bool = True,
    ) -> None:
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else settings_for_app()
        self.preferences = ViewerSettings(self.settings)
        self.state = ViewerState(self)
        self.hub = ServiceHub(self, torch_threads=torch_threads, index_cache=index_cache)
        self.image_view = ImageViewWidget()
        self.setCentralWidget(self.image_view)
        self.film = FilmBinding(self.state, self.image_view)
        self.contours = ContourBinding(self.state, self.image_view)
        self.gt_panel = GroundTruthPanel(self.state)
        self.gt_boxes = GroundTruthBinding(self.state, self.image_view)
        self.level_grid: LevelGridDialog | None = None
        self.worklist = WorklistPanel(thumbnails=thumbnails)
        self.ai_panel = AIPanel(self.state)
        self.level_strip = LevelStripWidget(self.state)
        self.exporter = ViewExporter(self, self.state, self.preferences, self.image_view.graphics)
        self.dicom_out = DicomOutController(self, self.state, self.settings)
        self.tag_dialog: TagBrowserDialog | None = None
        self._add_docks()
        self.status_label = QLabel("")
        self.cursor_label = QLabel("")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.cursor_label)

        self.session = ViewerSession(self.state, self.hub, self)
        self.timings = self.session.timings
        self.last_error = ""
        self._closing = False

        self.actions_by_name: dict[str, QAction] = {}
        self._build_actions()
        self._build_menus_and_toolbar()
        self._connect()
        self.pacs_query = QueryPacsController(self)
        self.pacs_query.said.connect(
            lambda m, err: (self.show_error if err else self.show_status)(m)
        )
        self.measure = install_annotations(self, index_cache)  # tools, Measure menu, dock
        self.preferences.restore_window(self)
        # Viewports, corner text, frames, lens, key images (viewer/reading_room.py).
        self.reading_room = ReadingRoom(self, key_images=index_cache)
        self.preferences.restore_overlay(self.state)
        self.state.set_urgent(self.preferences.urgent_labels())
        self._refresh_recent_menu()
        self.load_model(model, device)

    # -- construction ------------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(area, dock)
        return dock

    def _add_docks(self) -> None:
        area = Qt.DockWidgetArea
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.ai_panel)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.worklist_dock = self._dock(
            "Worklist", "worklistDock", self.worklist, area.LeftDockWidgetArea
        )
        self.ai_dock = self._dock("AI findings", "aiDock", scroll, area.RightDockWidgetArea)
        self.ai_dock.setMinimumWidth(380)
        title = "Selected finding at every pyramid level (click a tile to show it)"
        self.levels_dock = self._dock(
            title, "levelsDock", self.level_strip, area.BottomDockWidgetArea
        )
        self.gt_dock = self._dock(
            "Ground truth", "groundTruthDock", self.gt_panel, area.LeftDockWidgetArea
        )

    def _action(
        self,
        name: str,
        text: str,
        slot: Callable[..., Any] | None,
        shortcut: str | QKeySequence.StandardKey | None = None,
        icon_text: str | None = None,
    ) -> QAction:
        """An action with its key in the tool tip; ``icon_text`` labels it on the toolbar."""
        action = QAction(text, self)
        if icon_text is not None:
            action.setIconText(icon_text)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{text} ({action.shortcut().toString()})" if shortcut else text)
        if slot is not None:
            action.triggered.connect(slot)
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        a, view, state, key = self._action, self.image_view, self.state, QKeySequence.StandardKey
        a("open", "&Open image…", self._on_open_file_triggered, key.Open)
        a("open_folder", "Open &folder…", self._on_open_folder_triggered, "Ctrl+Shift+O")
        a("open_model", "Open &model…", self._on_open_model_triggered, "Ctrl+M")
        a("export_png", "Export view as &PNG…", self.exporter.export_png, "Ctrl+E", "PNG")
        a("export_json", "Export findings as &JSON…", self.exporter.export_json, "Ctrl+J")
        a("export_csv", "Export findings as &CSV…", self.exporter.export_csv, "Ctrl+Shift+J")
        a("patch_editor", "DADAM patch editor…", lambda: open_patch_editor(self))
        a(
            "export_dicom",
            "Export as &DICOM…",
            lambda: self.dicom_out.open("export"),
            "Ctrl+Shift+E",
        )
        a("send_pacs", "Send to PAC&S…", lambda: self.dicom_out.open("send"), "Ctrl+Shift+S")
        a("query_pacs", "&Query PACS…", lambda: self.pacs_query.open(), "Ctrl+Shift+Q")
        a("quit", "&Quit", self.close, key.Quit)
        a("load_ground_truth", "Load &ground-truth boxes…", self.gt_panel.ask_and_load)
        a("grid", "Members × levels &grid…", self.show_level_grid, "Ctrl+G")
        self.actions_by_name["export_phi"] = self.exporter.phi_action
        for preset, (shortcut, text, label) in PRESETS.items():
            slot = lambda _c=False, p=preset: self.apply_preset(p)  # noqa: E731
            a(f"preset_{preset}", text, slot, shortcut, label)
        a("invert", "&Invert", None, "I", "Invert")
        a("fit", "&Fit to window", view.fit, "F", "Fit")
        a("one_to_one", "1:1 (one image pixel per screen pixel)", view.one_to_one, "1", "1:1")
        a("zoom_in", "Zoom in", lambda: view.zoom(1.25), "+")
        a("zoom_out", "Zoom out", lambda: view.zoom(0.8), "-")
        a("rotate_cw", "Rotate clockwise", lambda: view.rotate(90), "R", "⟳")
        a("rotate_ccw", "Rotate counter-clockwise", lambda: view.rotate(-90), "Shift+R", "⟲")
        a("flip_h", "Flip horizontally", view.flip_horizontal, "H", "⇋")
        a("flip_v", "Flip vertically", view.flip_vertical, "V", "⇵")
        a("reset_view", "Reset orientation", view.reset_orientation, "Ctrl+0")
        a("ruler", "&Ruler / length (distance in mm)", None, "M", "Ruler")
        a("clear_rulers", "Clear all measurements", lambda: self.measure.clear(), "Shift+M")
        a("overlay", "Show &heatmap", None, "C", "Heatmap")
        a("next_level", "Next pyramid level", lambda: state.cycle_level(1), "]")
        a("prev_level", "Previous pyramid level", lambda: state.cycle_level(-1), "[")
        a("next_finding", "Next finding", lambda: state.step_finding(1), "J")
        a("prev_finding", "Previous finding", lambda: state.step_finding(-1), "K")
        a("next_image", "Next image", lambda: self.worklist.step(1), "PgDown")
        a("prev_image", "Previous image", lambda: self.worklist.step(-1), "PgUp")
        a("rerun", "Run the model again", self.session.rerun, "Ctrl+R")
        a("cancel", "Cancel inference / triage", self._on_cancel_triggered, "Esc")
        a("triage", "&Triage the worklist", self.start_triage, "Ctrl+T")
        a("tags", "DICOM &tags…", self.show_tags, "Ctrl+I", "Tags")
        a("shortcuts", "&Keyboard shortcuts", self.show_shortcuts, "F1")
        a("about", "&About", self._on_about_triggered)
        for name in ("invert", "ruler", "overlay"):
            self.actions_by_name[name].setCheckable(True)
        bind_check(self.actions_by_name["invert"], state, "inverted")
        bind_check(self.actions_by_name["overlay"], state, "overlay_visible")

    def _build_menus_and_toolbar(self) -> None:
        n = self.actions_by_name
        presets = QActionGroup(self)
        for title, names in MENUS.items():
            menu = self.menuBar().addMenu(title)
            for name in names.split():
                if name == "-":
                    menu.addSeparator()
                elif name == "recent":
                    self.recent_menu = menu.addMenu("Open &recent")
                elif name == "presets":
                    for preset in PRESETS:
                        menu.addAction(presets.addAction(n[f"preset_{preset}"]))
                else:
                    menu.addAction(n[name])
        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        for name in TOOLBAR.split():
            if name == "-":
                bar.addSeparator()
            elif name == "presets":
                bar.addActions([n[f"preset_{p}"] for p in PRESETS])
            else:
                bar.addAction(n[name])
        self.toolbar = bar

    def _connect(self) -> None:
        hub, worklist, view = self.hub, self.worklist, self.image_view
        session = self.session
        session.image_shown.connect(self._on_session_image_shown)
        session.image_shown.connect(self.image_shown)
        session.model_ready.connect(self._on_session_model_ready)
        session.model_ready.connect(self.model_ready)
        session.result_shown.connect(self.result_shown)
        session.activity.connect(self.ai_panel.set_state)
        session.status.connect(self.show_status)
        session.error.connect(self.show_error)
        self.dicom_out.said.connect(
            lambda m, err: (self.show_error if err else self.show_status)(m)
        )
        hub.folder_indexed.connect(self._on_hub_folder_indexed)
        hub.triage_progressed.connect(worklist.set_progress)
        hub.triage_item_ready.connect(worklist.set_triage_item)
        hub.triage_finished.connect(self._on_hub_triage_finished)
        hub.thumbnail_ready.connect(worklist.set_thumbnail)
        worklist.thumbnails_wanted.connect(hub.request_thumbnails)
        worklist.image_activated.connect(self._on_worklist_image_activated)
        worklist.triage_requested.connect(self.start_triage)
        worklist.triage_cancel_requested.connect(self.cancel_triage)
        worklist.urgent_changed.connect(self._on_worklist_urgent_changed)
        self.film.overlay_drawn.connect(self.overlay_drawn)
        self.level_strip.tiles_drawn.connect(self.grid_drawn)
        self.exporter.saved.connect(self.show_status)
        self.exporter.failed.connect(self.show_error)
        self.gt_panel.loaded.connect(self.show_status)
        self.gt_panel.failed.connect(self.show_error)
        view.cursor_moved.connect(self._on_image_view_cursor_moved)
        view.ruler_measured.connect(
            lambda length, unit: self.show_status(f"Distance: {length:.1f} {unit}")
        )

    # -- opening -------------------------------------------------------------------------------
    def open_path(self, path: str | Path) -> None:
        """Open a file (added to the worklist and shown) or a folder (indexed, first image shown)."""
        p = Path(path)
        if p.is_dir() or p.name.upper() == "DICOMDIR":
            self.show_status(f"Indexing {p}…")
            self.hub.request_index(p)
            self._remember(str(p))
        elif p.exists():
            self.worklist.add_files([p])
            self._remember(str(p))
            self.worklist.select_path(p)
            if self.session.current_path != str(p):
                self.session.open_image(str(p))
        else:
            self.show_error(f"Cannot open '{p}': no such file or folder.")

    def open_files(self, paths: Sequence[str | Path]) -> None:
        """Add several files to the worklist and show the first."""
        files = [Path(p) for p in paths if Path(p).is_file()]
        if files:
            self.worklist.add_files(files)
            self.worklist.select_path(files[0])

    def _on_worklist_image_activated(self, path: str) -> None:
        shown = self.state.image
        if path != self.session.current_path or shown is None or str(shown.path) != path:
            self.session.open_image(path)

    def _on_hub_folder_indexed(self, _request_id: int, index: StudyIndex) -> None:
        self.hub.cancel_thumbnails()  # the old list's queued thumbnails are no longer wanted
        self.worklist.set_index(index)
        self.show_status(
            f"{index.root}: {len(index.studies)} study(ies), {len(index.images)} image(s)"
            + (f", {len(index.errors)} unreadable file(s)" if index.errors else "")
        )
        paths = self.worklist.paths()
        if paths:
            self.worklist.select_path(paths[0])

    def _on_session_image_shown(self, _path: str) -> None:
        self._update_title()
        if self.tag_dialog is not None and self.tag_dialog.isVisible():
            self.show_tags()

    # -- model and inference -------------------------------------------------------------------
    def load_model(self, model: str | Path | None, device: str = "auto") -> None:
        """Switch models; the image on screen is analysed again when the new one is ready."""
        self.session.load_model(model, device)

    def _on_session_model_ready(self, info: ModelInfo) -> None:
        self.worklist.set_urgent_choices(info.labels, self.state.urgent)
        self._update_title()

    def _update_title(self) -> None:
        image, model = self.state.image, self.state.model
        parts = [image.path.name] if image is not None else []
        parts.append(APP_NAME)
        if model is not None and model.untrained:
            parts.append("UNTRAINED MODEL, not for clinical use")
        self.setWindowTitle(" — ".join(parts))

    def _on_cancel_triggered(self) -> None:
        if self.hub.triage_running:
            self.cancel_triage()
        self.session.cancel_inference()
        self.measure.escape()

    # -- view ----------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        if self.state.image is None:
            return
        try:
            self.image_view.apply_preset(name)
        except KeyError:
            self.show_error(f"This image has no '{name}' window.")
            return
        center, width = self.image_view.window_level
        self.show_status(f"Window: {name}  (W {width:.6g}, L {center:.6g})")

    def _on_image_view_cursor_moved(self, info: CursorInfo | None) -> None:
        self.cursor_label.setText("" if info is None else info.readout())

    # -- triage --------------------------------------------------------------------------------
    def start_triage(self) -> None:
        if self.session.start_triage(self.worklist.paths()):
            self.worklist.set_triage_running(True)

    def cancel_triage(self) -> None:
        self.hub.cancel_triage()
        self.show_status("Cancelling triage after the current batch…")

    def _on_hub_triage_finished(self, cancelled: bool) -> None:
        self.worklist.triage_finished(cancelled)
        self.show_status(
            "Triage cancelled." if cancelled else "Triage done: worklist sorted by urgent findings."
        )
        self.triage_done.emit(cancelled)

    def _on_worklist_urgent_changed(self, labels: list[str]) -> None:
        self.preferences.set_urgent_labels(labels)
        self.state.set_urgent(labels)

    # -- messages, dialogs, files --------------------------------------------------------------
    def show_status(self, message: str) -> None:
        self.status_label.setStyleSheet("")
        self.status_label.setText(message)

    def show_error(self, message: str) -> None:
        """One sentence in the status bar (red) and on the error signal; never a crash."""
        self.last_error = message
        self.status_label.setStyleSheet("color: #ff8a80;")
        self.status_label.setText(message)
        self.error_shown.emit(message)

    def show_tags(self) -> None:
        loaded = self.state.image
        if loaded is None:
            self.show_error("Open an image first to see its tags.")
            return
        if self.tag_dialog is None:
            self.tag_dialog = TagBrowserDialog(self)
        problem = self.tag_dialog.show_image(loaded.image, loaded.path)
        if problem:
            self.show_error(problem)

    def show_level_grid(self) -> None:
        """The members x levels grid of the selected finding (one window, raised if open)."""
        if self.level_grid is None:
            self.level_grid = LevelGridDialog(self.state, self)
        self.level_grid.show()
        self.level_grid.raise_()

    def show_shortcuts(self) -> None:
        dialog = dialogs.ShortcutsDialog(list(self.actions_by_name.values()), self)
        dialog.show()
        self._shortcuts_dialog = dialog

    def _on_about_triggered(self) -> None:
        QMessageBox.about(self, f"About {APP_NAME}", dialogs.about_text(APP_NAME, self.state.model))

    def _on_open_file_triggered(self) -> None:
        paths = dialogs.ask_images(self, self.preferences)
        if paths:
            self._remember(paths[0])
            self.open_files(paths)

    def _on_open_folder_triggered(self) -> None:
        path = dialogs.ask_folder(self, self.preferences)
        if path:
            self.open_path(path)

    def _on_open_model_triggered(self) -> None:
        path = dialogs.ask_model(self)
        if path:
            self.load_model(path)

    def _remember(self, path: str) -> None:
        self.preferences.remember(path)
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = self.preferences.recent_items()
        for path in items:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(items))

    # -- drag and drop, close --------------------------------------------------------------------
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        folders = [p for p in paths if p.is_dir()]
        if folders:
            self.open_path(folders[0])
        else:
            self.open_files(paths)
        event.acceptProposedAction()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        if not self._closing:
            self._closing = True
            self.preferences.save(self, self.state)
            self.hub.shutdown()
            self.dicom_out.shutdown()
            self.pacs_query.shutdown()
            self.measure.close()
            if self.tag_dialog is not None:
                self.tag_dialog.close()
        super().closeEvent(event)

    # -- helpers for scripts and tests ---------------------------------------------------------
    def overlay_array(self) -> np.ndarray | None:
        return self.image_view.overlay_array()

    def export_view_png(self, path: str | Path) -> Path:
        return self.exporter.write_png(path)
