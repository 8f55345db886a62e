"""The main window: worklist on the left, the film in the middle, the AI panel on the right.

It wires widgets to the :class:`~viewer.workers.ServiceHub` and never does heavy work itself: an
image is decoded on the load thread, inference runs on the inference thread, and only results for
the image on screen come back. Every user-caused error ends as one sentence in the status bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer import cam_display, display
from viewer.ai_panel import AIPanel
from viewer.cam_display import FUSED, LevelKey, ResultCams, level_shares
from viewer.export import ExportError, write_findings_csv, write_findings_json
from viewer.image_view import ImageViewWidget
from viewer.patch_editor.launch import open_patch_editor
from viewer.prevalence import prevalence_tiers
from viewer.tag_browser import TagBrowserDialog, image_rows, read_tag_rows
from viewer.workers import LoadedImage, ModelInfo, ServiceHub
from viewer.worklist import WorklistPanel, thumbnail_rgb

APP_NAME = "FPSM Viewer"
MAX_RECENT = 10
GRID_TILE_SIDE = 170
DEFAULT_URGENT = ("Pneumothorax", "Pneumomediastinum", "Pneumoperitoneum")


def settings_for_app() -> QSettings:
    """The user's settings store (per user, native format)."""
    return QSettings("fpsm-cxr", "fpsm-viewer")


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
        grid_drawn(): the level grid shows the selected finding at every level.
        error_shown(message): an error went to the status bar.
        triage_done(cancelled)
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
        self.hub = ServiceHub(self, torch_threads=torch_threads, index_cache=index_cache)
        self.image_view = ImageViewWidget()
        self.setCentralWidget(self.image_view)
        self.worklist = WorklistPanel(thumbnails=thumbnails)
        self.ai_panel = AIPanel()
        self.tag_dialog: TagBrowserDialog | None = None
        self._add_docks()
        self.status_label = QLabel("")
        self.cursor_label = QLabel("")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.cursor_label)

        self.model_info: ModelInfo | None = None
        self.current_path: str | None = None
        self.loaded: LoadedImage | None = None
        self.result: Any = None
        self.cams: ResultCams | None = None
        self.timings: dict[str, float] = {}
        self.last_error = ""
        self._t_open = 0.0
        self._t_infer = 0.0
        self._pending_inference = False
        self._triage_done_count = 0
        self._closing = False
        self._grid_timer = QTimer(self)
        self._grid_timer.setSingleShot(True)
        self._grid_timer.timeout.connect(self._on_grid_timer_timeout)

        self.actions_by_name: dict[str, QAction] = {}
        self._build_actions()
        self._build_menus_and_toolbar()
        self._connect()
        self._restore_settings()
        self.hub.load_model(model, device)
        self.ai_panel.set_state("Loading the model…")

    # -- construction ------------------------------------------------------------------------
    def _add_docks(self) -> None:
        left = QDockWidget("Worklist", self)
        left.setObjectName("worklistDock")
        left.setWidget(self.worklist)
        left.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)
        right = QDockWidget("AI findings", self)
        right.setObjectName("aiDock")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.ai_panel)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        right.setWidget(scroll)
        right.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        right.setMinimumWidth(380)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, right)
        bottom = QDockWidget(
            "Selected finding at every pyramid level (click a tile to show it)", self
        )
        bottom.setObjectName("levelsDock")
        bottom.setWidget(self.ai_panel.level_grid)
        bottom.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, bottom)
        self.worklist_dock, self.ai_dock, self.levels_dock = left, right, bottom

    def _action(
        self,
        name: str,
        text: str,
        slot: Callable[..., Any],
        shortcut: str | QKeySequence.StandardKey | None = None,
        *,
        checkable: bool = False,
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.setToolTip(
            f"{tip or text} ({action.shortcut().toString()})" if shortcut else tip or text
        )
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions_by_name[name] = action
        return action

    def _build_actions(self) -> None:
        a = self._action
        a("open", "&Open image…", self._on_open_file_triggered, QKeySequence.StandardKey.Open)
        a("open_folder", "Open &folder…", self._on_open_folder_triggered, "Ctrl+Shift+O")
        a("open_model", "Open &model…", self._on_open_model_triggered, "Ctrl+M")
        a("export_png", "Export view as &PNG…", self._on_export_png_triggered, "Ctrl+E")
        a("export_json", "Export findings as &JSON…", self._on_export_json_triggered, "Ctrl+J")
        a("export_csv", "Export findings as &CSV…", self._on_export_csv_triggered, "Ctrl+Shift+J")
        a("quit", "&Quit", self.close, QKeySequence.StandardKey.Quit)
        for key, (name, preset) in {
            "D": ("DICOM window", "dicom"),
            "A": ("Auto window", "auto"),
            "L": ("Lung window", "lung"),
            "T": ("Soft-tissue window", "soft tissue"),
            "B": ("Bone window", "bone"),
        }.items():
            a(f"preset_{preset}", name, lambda _c=False, p=preset: self.apply_preset(p), key)
        a("invert", "&Invert", self._on_invert_toggled, "I", checkable=True)
        a("fit", "&Fit to window", self.image_view.fit, "F")
        a("one_to_one", "1:1 (one image pixel per screen pixel)", self.image_view.one_to_one, "1")
        a("zoom_in", "Zoom in", lambda: self.image_view.zoom(1.25), "+")
        a("zoom_out", "Zoom out", lambda: self.image_view.zoom(0.8), "-")
        a("rotate_cw", "Rotate clockwise", lambda: self.image_view.rotate(90), "R")
        a("rotate_ccw", "Rotate counter-clockwise", lambda: self.image_view.rotate(-90), "Shift+R")
        a("flip_h", "Flip horizontally", self.image_view.flip_horizontal, "H")
        a("flip_v", "Flip vertically", self.image_view.flip_vertical, "V")
        a("reset_view", "Reset orientation", self.image_view.reset_orientation, "Ctrl+0")
        a("ruler", "&Ruler (distance in mm)", self._on_ruler_toggled, "M", checkable=True)
        a("clear_rulers", "Clear rulers", self.image_view.clear_rulers, "Shift+M")
        a("overlay", "Show &heatmap", self._on_overlay_toggled, "C", checkable=True)
        a("next_level", "Next pyramid level", lambda: self.ai_panel.cycle_level(1), "]")
        a("prev_level", "Previous pyramid level", lambda: self.ai_panel.cycle_level(-1), "[")
        a("next_finding", "Next finding", lambda: self._step_finding(1), "J")
        a("prev_finding", "Previous finding", lambda: self._step_finding(-1), "K")
        a("next_image", "Next image", lambda: self.worklist.step(1), "PgDown")
        a("prev_image", "Previous image", lambda: self.worklist.step(-1), "PgUp")
        a("rerun", "Run the model again", self._on_rerun_triggered, "Ctrl+R")
        a("cancel", "Cancel inference / triage", self._on_cancel_triggered, "Esc")
        a("triage", "&Triage the worklist", self.start_triage, "Ctrl+T")
        a("tags", "DICOM &tags…", self.show_tags, "Ctrl+I")
        a("shortcuts", "&Keyboard shortcuts", self.show_shortcuts, "F1")
        a("about", "&About", self._on_about_triggered)
        self.actions_by_name["overlay"].setChecked(True)

    def _build_menus_and_toolbar(self) -> None:
        n = self.actions_by_name
        menu = self.menuBar().addMenu("&File")
        for key in ("open", "open_folder", "open_model"):
            menu.addAction(n[key])
        menu.addAction("DADAM patch editor…", lambda: open_patch_editor(self))
        self.recent_menu = menu.addMenu("Open &recent")
        menu.addSeparator()
        for key in ("export_png", "export_json", "export_csv"):
            menu.addAction(n[key])
        menu.addSeparator()
        menu.addAction(n["quit"])
        menu = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        for key in (
            "preset_dicom",
            "preset_auto",
            "preset_lung",
            "preset_soft tissue",
            "preset_bone",
        ):
            menu.addAction(n[key])
            group.addAction(n[key])
        menu.addAction(n["invert"])
        menu.addSeparator()
        for key in (
            "fit",
            "one_to_one",
            "zoom_in",
            "zoom_out",
            "rotate_cw",
            "rotate_ccw",
            "flip_h",
            "flip_v",
            "reset_view",
        ):
            menu.addAction(n[key])
        menu.addSeparator()
        for key in ("ruler", "clear_rulers", "tags"):
            menu.addAction(n[key])
        menu = self.menuBar().addMenu("&AI")
        for key in (
            "overlay",
            "next_level",
            "prev_level",
            "next_finding",
            "prev_finding",
            "rerun",
            "cancel",
            "triage",
        ):
            menu.addAction(n[key])
        menu = self.menuBar().addMenu("&Worklist")
        for key in ("next_image", "prev_image"):
            menu.addAction(n[key])
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(n["shortcuts"])
        menu.addAction(n["about"])

        bar = self.addToolBar("Main")
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        for key in ("open", "open_folder"):
            bar.addAction(n[key])
        bar.addSeparator()
        short: dict[str | None, str | None] = {
            "preset_dicom": "DICOM",
            "preset_auto": "Auto",
            "preset_lung": "Lung",
            "preset_soft tissue": "Soft",
            "preset_bone": "Bone",
            "invert": "Invert",
            None: None,
            "fit": "Fit",
            "one_to_one": "1:1",
            "rotate_ccw": "⟲",
            "rotate_cw": "⟳",
            "flip_h": "⇋",
            "flip_v": "⇵",
            "ruler": "Ruler",
            "": None,
            "overlay": "Heatmap",
            "tags": "Tags",
            "export_png": "PNG",
        }
        for name, label in short.items():
            if label is None:
                bar.addSeparator()
                continue
            action = n[str(name)]
            action.setIconText(label)
            bar.addAction(action)
        self.toolbar = bar

    def _connect(self) -> None:
        hub = self.hub
        hub.image_loaded.connect(self._on_hub_image_loaded)
        hub.image_failed.connect(self._on_hub_image_failed)
        hub.folder_indexed.connect(self._on_hub_folder_indexed)
        hub.folder_failed.connect(self._on_hub_folder_failed)
        hub.model_loaded.connect(self._on_hub_model_loaded)
        hub.model_failed.connect(self._on_hub_model_failed)
        hub.result_ready.connect(self._on_hub_result_ready)
        hub.inference_failed.connect(self._on_hub_inference_failed)
        hub.triage_progressed.connect(self._on_hub_triage_progressed)
        hub.triage_item_ready.connect(self._on_hub_triage_item_ready)
        hub.triage_finished.connect(self._on_hub_triage_finished)
        self.worklist.image_activated.connect(self._on_worklist_image_activated)
        self.worklist.triage_requested.connect(self.start_triage)
        self.worklist.triage_cancel_requested.connect(self.cancel_triage)
        self.worklist.urgent_changed.connect(self._on_worklist_urgent_changed)
        self.ai_panel.finding_selected.connect(self._on_ai_panel_finding_selected)
        self.ai_panel.level_changed.connect(self._on_ai_panel_level_changed)
        self.ai_panel.member_changed.connect(self._on_ai_panel_member_changed)
        self.ai_panel.overlay_changed.connect(self._on_ai_panel_overlay_changed)
        self.image_view.cursor_moved.connect(self._on_image_view_cursor_moved)
        self.image_view.ruler_measured.connect(self._on_image_view_ruler_measured)
        self.image_view.window_changed.connect(self._on_image_view_window_changed)

    # -- settings ------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1600, 1000)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        self.ai_panel.set_colormap(str(s.value("cam/colormap", cam_display.COLORMAPS[0])))
        self.ai_panel.opacity_slider.setValue(int(str(s.value("cam/opacity", 40))))
        self.ai_panel.threshold_slider.setValue(int(str(s.value("cam/threshold", 25))))
        self._refresh_recent_menu()

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("cam/colormap", self.ai_panel.colormap)
        s.setValue("cam/opacity", self.ai_panel.opacity_slider.value())
        s.setValue("cam/threshold", self.ai_panel.threshold_slider.value())
        s.sync()

    def urgent_labels(self) -> list[str]:
        value = self.settings.value("triage/urgent")
        if value is None:
            return list(DEFAULT_URGENT)
        if isinstance(value, str):
            return [v for v in value.split("|") if v]
        return [str(v) for v in value]

    def set_urgent_labels(self, labels: Sequence[str]) -> None:
        self.settings.setValue("triage/urgent", "|".join(labels))

    def recent_items(self) -> list[str]:
        value = self.settings.value("recent", "")
        items = value.split("|") if isinstance(value, str) else [str(v) for v in list(value or [])]  # type: ignore[call-overload]
        return [v for v in items if v]

    def _remember(self, path: str) -> None:
        items = [p for p in self.recent_items() if p != path]
        items.insert(0, path)
        self.settings.setValue("recent", "|".join(items[:MAX_RECENT]))
        self._refresh_recent_menu()

    def _refresh_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_items():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_items()))

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
            if self.current_path != str(p):
                self._open_image(str(p))
        else:
            self.show_error(f"Cannot open '{p}': no such file or folder.")

    def open_files(self, paths: Sequence[str | Path]) -> None:
        """Add several files to the worklist and show the first."""
        files = [Path(p) for p in paths if Path(p).is_file()]
        if files:
            self.worklist.add_files(files)
            self.worklist.select_path(files[0])

    def _open_image(self, path: str) -> None:
        self.current_path = path
        self.result = None
        self.cams = None
        self._t_open = time.perf_counter()
        self.ai_panel.clear()
        self.ai_panel.set_state("Loading the image…")
        self.show_status(f"Loading {Path(path).name}…")
        self.hub.request_image(path)

    def _on_worklist_image_activated(self, path: str) -> None:
        if path != self.current_path or self.loaded is None or str(self.loaded.path) != path:
            self._open_image(path)

    def _on_hub_folder_indexed(self, _request_id: int, index: Any) -> None:
        self.worklist.set_index(index)
        n = len(index.images)
        self.show_status(
            f"{index.root}: {len(index.studies)} study(ies), {n} image(s)"
            + (f", {len(index.errors)} unreadable file(s)" if index.errors else "")
        )
        paths = self.worklist.paths()
        if paths:
            self.worklist.select_path(paths[0])

    def _on_hub_folder_failed(self, _request_id: int, message: str) -> None:
        self.show_error(message)

    def _on_hub_image_loaded(self, _request_id: int, loaded: LoadedImage) -> None:
        self.loaded = loaded
        self.image_view.set_image(
            loaded.image, loaded.pyramid, invert=self.actions_by_name["invert"].isChecked()
        )
        self.image_view.graphics.viewport().repaint()
        self.timings["load_ms"] = loaded.load_ms
        self.timings["first_pixel_ms"] = (time.perf_counter() - self._t_open) * 1e3
        small = loaded.pyramid.levels[-1]
        center, width = loaded.image.window
        lut = display.window_lut(loaded.pyramid, center, width, loaded.image.voi_function)
        self.worklist.set_thumbnail(loaded.path, thumbnail_rgb(display.apply_lut(small, lut)))
        image = loaded.image
        notes = "; ".join(getattr(image, "warnings", ()) or ())
        self.show_status(
            f"{loaded.path.name}  {image.shape[1]}x{image.shape[0]}  "
            f"{getattr(image, 'photometric', '')}  loaded in {loaded.load_ms:.0f} ms"
            + (f"  ·  {notes}" if notes else "")
        )
        self._update_title()
        if self.tag_dialog is not None and self.tag_dialog.isVisible():
            self.show_tags()
        self.image_shown.emit(str(loaded.path))
        if self.model_info is not None:
            self._request_inference()
        else:
            self._pending_inference = True

    def _on_hub_image_failed(self, _request_id: int, message: str) -> None:
        self.loaded = None
        self.image_view.clear()
        self.ai_panel.clear()
        self.ai_panel.set_state("No image.")
        self.show_error(message)

    # -- inference -----------------------------------------------------------------------------
    def _request_inference(self) -> None:
        if self.loaded is None:
            return
        self._pending_inference = False
        self._t_infer = time.perf_counter()
        self.ai_panel.set_state("Running the model…")
        self.hub.request_inference(self.loaded.image)

    def _on_hub_model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self.ai_panel.set_model_info(info)
        self.ai_panel.set_state("Model ready.")
        self.worklist.set_urgent_choices(info.labels, self.urgent_labels())
        self._update_title()
        self.model_ready.emit(info)
        if self._pending_inference:
            self._request_inference()

    def _update_title(self) -> None:
        parts = [str(self.loaded.path.name)] if self.loaded is not None else []
        parts.append(APP_NAME)
        if self.model_info is not None and self.model_info.untrained:
            parts.append("UNTRAINED MODEL, not for clinical use")
        self.setWindowTitle(" — ".join(parts))

    def _on_hub_model_failed(self, message: str) -> None:
        self.model_info = None
        self.ai_panel.set_state("No model: findings unavailable.")
        self.show_error(message)

    def _on_hub_result_ready(self, _request_id: int, result: Any) -> None:
        self.result = result
        try:
            self.cams = ResultCams(result) if result.cams is not None else None
        except Exception as exc:  # noqa: BLE001 - a CAM problem must not hide the findings
            self.cams = None
            self.show_error(f"Heatmaps unavailable for this image: {exc}")
        tiers = prevalence_tiers(self.model_info.train_counts if self.model_info else None)
        levels = self.cams.levels if self.cams is not None else ()
        self.ai_panel.set_result(result, tiers, self.urgent_labels(), levels)
        self.timings["findings_ms"] = (time.perf_counter() - self._t_open) * 1e3
        self.timings["inference_ms"] = (time.perf_counter() - self._t_infer) * 1e3
        if result.findings:
            self.ai_panel.select_finding(result.findings[0].index)
        self.result_shown.emit(result)

    def _on_hub_inference_failed(self, _request_id: int, message: str) -> None:
        self.ai_panel.set_state("Inference failed.")
        self.show_error(message)

    def _on_rerun_triggered(self) -> None:
        if self.loaded is not None and self.model_info is not None:
            self._request_inference()

    def _on_cancel_triggered(self) -> None:
        if self.hub.triage_running:
            self.cancel_triage()
        if self.result is None and self.loaded is not None:
            self.hub.cancel_inference()
            self.ai_panel.set_state("Inference cancelled (Ctrl+R runs it again).")
        if self.image_view.ruler_mode:
            self.actions_by_name["ruler"].setChecked(False)
            self.image_view.set_ruler_mode(False)

    # -- findings and overlays -----------------------------------------------------------------
    def _step_finding(self, step: int) -> None:
        if self.result is None:
            return
        order = [f.index for f in self.result.findings]
        current = self.ai_panel.selected_class
        i = order.index(current) if current in order else -1
        self.ai_panel.select_finding(order[max(0, min(len(order) - 1, i + step))])

    def _on_ai_panel_finding_selected(self, class_index: int) -> None:
        if self.result is None:
            return
        finding = next(f for f in self.result.findings if f.index == class_index)
        weights = self.cams.fusion_weights(class_index, self.ai_panel.member) if self.cams else None
        self.ai_panel.set_details(finding, level_shares(self.result, class_index), weights)
        self.update_overlay()

    def _on_ai_panel_level_changed(self, _level: object) -> None:
        self.update_overlay(grid=False)

    def _on_ai_panel_member_changed(self, member: int) -> None:
        if self.cams is not None:
            self.ai_panel.set_levels(self.cams.levels_of(member))
        if self.ai_panel.selected_class is not None:
            self._on_ai_panel_finding_selected(self.ai_panel.selected_class)

    def _on_ai_panel_overlay_changed(self) -> None:
        self.actions_by_name["overlay"].setChecked(self.ai_panel.overlay_visible)
        self.update_overlay()

    def _on_overlay_toggled(self, checked: bool) -> None:
        self.ai_panel.overlay_check.setChecked(checked)

    def update_overlay(self, grid: bool = True) -> None:
        """Draw the selected finding's map at the chosen level (and refresh the level grid)."""
        class_index = self.ai_panel.selected_class
        if self.cams is None or class_index is None or self.loaded is None:
            self.image_view.set_overlay(None)
            return
        panel = self.ai_panel
        if panel.overlay_visible:
            values = self.cams.map(class_index, panel.level, member=panel.member)
            self.image_view.set_overlay(
                cam_display.colourise(values, panel.colormap, panel.opacity, panel.threshold)
            )
        else:
            self.image_view.set_overlay(None)
        if grid:
            self._schedule_grid(0)
        self.overlay_drawn.emit()

    def _schedule_grid(self, delay_ms: int) -> None:
        """Refresh the level grid on a later event-loop turn (coalesced), so a new result's
        findings and main overlay are painted first and no single turn does all the work."""
        self._grid_timer.start(delay_ms)

    def _on_grid_timer_timeout(self) -> None:
        class_index = self.ai_panel.selected_class
        if class_index is not None:
            self._update_grid(class_index)

    def _update_grid(self, class_index: int) -> None:
        if self.cams is None or self.loaded is None:
            return
        panel = self.ai_panel
        shape = cam_display.overlay_shape(self.loaded.pyramid.shape, GRID_TILE_SIDE)
        small = self.loaded.pyramid.levels[-1]
        center, width = self.image_view.window_level
        lut = display.window_lut(
            self.loaded.pyramid,
            center,
            width,
            self.loaded.image.voi_function,
            self.image_view.inverted,
        )
        grey = display.apply_lut(small, lut)
        grey = cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        weights = self.cams.fusion_weights(class_index, panel.member)
        tiles: list[tuple[LevelKey, str, np.ndarray]] = []
        keys: list[LevelKey] = [FUSED, *self.cams.levels_of(panel.member)]
        for key in keys:
            values = self.cams.map(class_index, key, shape, member=panel.member)
            rgb = cam_display.blend_rgb(
                grey, values, panel.colormap, max(panel.opacity, 0.45), panel.threshold
            )
            title = (
                "Fused" if isinstance(key, str) else f"Level {key} · {weights.get(key, 0.0):.0%}"
            )
            tiles.append((key, title, rgb))
        panel.level_grid.set_tiles(tiles)
        self.grid_drawn.emit()

    # -- view ----------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        if self.loaded is None:
            return
        try:
            self.image_view.apply_preset(name)
        except KeyError:
            self.show_error(f"This image has no '{name}' window.")
            return
        self.show_status(
            f"Window: {name}  (W {self.image_view.window_level[1]:.6g}, L {self.image_view.window_level[0]:.6g})"
        )

    def _on_invert_toggled(self, checked: bool) -> None:
        self.image_view.set_inverted(checked)

    def _on_ruler_toggled(self, checked: bool) -> None:
        self.image_view.set_ruler_mode(checked)
        if checked:
            self.show_status("Ruler: drag on the image to measure (Esc ends).")

    def _on_image_view_cursor_moved(self, info: Any) -> None:
        if info is None:
            self.cursor_label.setText("")
            return
        where = (
            f"x {info.x_mm:.1f} mm, y {info.y_mm:.1f} mm"
            if info.x_mm is not None
            else f"col {info.col}, row {info.row} (spacing unknown)"
        )
        self.cursor_label.setText(f"{where}   value {info.value:.6g}")

    def _on_image_view_ruler_measured(self, length: float, unit: str) -> None:
        self.show_status(f"Distance: {length:.1f} {unit}")

    def _on_image_view_window_changed(self, center: float, width: float) -> None:
        if self.result is not None and self.ai_panel.selected_class is not None and self.cams:
            # The grid tiles show the film at the current window; refresh them after the drag.
            self._schedule_grid(250)

    # -- triage --------------------------------------------------------------------------------
    def start_triage(self) -> None:
        paths = self.worklist.paths()
        if self.model_info is None:
            self.show_error("The model is not loaded yet, so triage cannot run.")
            return
        if not paths:
            self.show_error("The worklist is empty: open a folder first.")
            return
        if self.hub.triage_running:
            return
        self._triage_done_count = 0
        self.worklist.set_triage_running(True)
        self.hub.start_triage(paths, self.worklist.urgent() or self.urgent_labels())

    def cancel_triage(self) -> None:
        self.hub.cancel_triage()
        self.show_status("Cancelling triage after the current batch…")

    def _on_hub_triage_progressed(self, done: int, total: int) -> None:
        self.worklist.set_progress(done, total)

    def _on_hub_triage_item_ready(self, item: Any) -> None:
        self._triage_done_count += 1
        self.worklist.set_triage_item(item)
        if item.error and not str(item.path).strip(". "):
            self.show_error(item.error)

    def _on_hub_triage_finished(self, cancelled: bool) -> None:
        self.worklist.triage_finished(cancelled, self._triage_done_count)
        self.show_status(
            "Triage cancelled." if cancelled else "Triage done: worklist sorted by urgent findings."
        )
        self.triage_done.emit(cancelled)

    def _on_worklist_urgent_changed(self, labels: list[str]) -> None:
        self.set_urgent_labels(labels)

    # -- dialogs and exports -------------------------------------------------------------------
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
        if self.loaded is None:
            self.show_error("Open an image first to see its tags.")
            return
        if self.tag_dialog is None:
            self.tag_dialog = TagBrowserDialog(self)
        path = str(self.loaded.path)
        if getattr(self.loaded.image, "source_format", "dicom") == "dicom":
            from fpsm_core.io import ImageLoadError

            try:
                rows = read_tag_rows(path)
            except ImageLoadError as exc:
                self.show_error(str(exc))
                return
        else:
            rows = image_rows(self.loaded.image)
        self.tag_dialog.set_rows(rows, path)
        self.tag_dialog.show()
        self.tag_dialog.raise_()

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(list(self.actions_by_name.values()), self)
        dialog.show()
        self._shortcuts_dialog = dialog

    def _on_about_triggered(self) -> None:
        info = self.model_info
        text = f"<b>{APP_NAME}</b><br>Feature Pyramid Sum Models on chest radiographs.<br>"
        if info is not None:
            text += f"Model: {info.name} on {info.device}.<br>"
            if info.untrained:
                text += "<b>The model is UNTRAINED: its output is meaningless.</b><br>"
            if info.disclaimer:
                text += f"{info.disclaimer}<br>"
        text += "Research software, not for clinical use."
        QMessageBox.about(self, f"About {APP_NAME}", text)

    def _ask_save(self, title: str, suffix: str, filt: str) -> str | None:
        stem = Path(self.current_path).stem if self.current_path else "view"
        start = str(
            Path(str(self.settings.value("last_dir", str(Path.home())))) / f"{stem}{suffix}"
        )
        path, _ = QFileDialog.getSaveFileName(self, title, start, filt)
        if path:
            self.settings.setValue("last_dir", str(Path(path).parent))
        return path or None

    def export_view_png(self, path: str | Path) -> Path:
        target = Path(path)
        if not self.image_view.graphics.grab().save(str(target), "PNG"):
            raise ExportError(f"Cannot write '{target}': the PNG could not be saved.")
        return target

    def _on_export_png_triggered(self) -> None:
        path = self._ask_save("Export view as PNG", ".png", "PNG images (*.png)")
        if path:
            self._run_export(lambda: self.export_view_png(path))

    def _on_export_json_triggered(self) -> None:
        if self.result is None:
            self.show_error("There are no findings to export yet.")
            return
        path = self._ask_save("Export findings as JSON", ".json", "JSON (*.json)")
        if path:
            self._run_export(lambda: write_findings_json(self.result, path))

    def _on_export_csv_triggered(self) -> None:
        if self.result is None:
            self.show_error("There are no findings to export yet.")
            return
        path = self._ask_save("Export findings as CSV", ".csv", "CSV (*.csv)")
        if path:
            self._run_export(lambda: write_findings_csv(self.result, path))

    def _run_export(self, job: Callable[[], Path]) -> None:
        try:
            written = job()
        except ExportError as exc:
            self.show_error(str(exc))
            return
        self.show_status(f"Saved {written}")

    def _on_open_file_triggered(self) -> None:
        start = str(self.settings.value("last_dir", str(Path.home())))
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Open images",
            start,
            "Radiographs (*.dcm *.dicom *.dic *.png *.jpg *.jpeg *.tif *.tiff);;All files (*)",
        )
        if paths:
            self.settings.setValue("last_dir", str(Path(paths[0]).parent))
            self._remember(paths[0])
            self.open_files(paths)

    def _on_open_folder_triggered(self) -> None:
        start = str(self.settings.value("last_dir", str(Path.home())))
        path = QFileDialog.getExistingDirectory(self, "Open folder", start)
        if path:
            self.settings.setValue("last_dir", path)
            self.open_path(path)

    def _on_open_model_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a checkpoint (.json) or ensemble.json", str(Path.home()), "JSON (*.json)"
        )
        if path:
            self.load_model(path)

    def load_model(self, model: str | Path | None, device: str = "auto") -> None:
        """Switch models; the image on screen is analysed again when the new one is ready."""
        self.model_info = None
        self.ai_panel.set_state("Loading the model…")
        self._pending_inference = self.loaded is not None
        self.hub.load_model(model, device)

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
            self._save_settings()
            self.worklist.shutdown()
            self.hub.shutdown()
            if self.tag_dialog is not None:
                self.tag_dialog.close()
        super().closeEvent(event)

    # -- helpers for scripts and tests ---------------------------------------------------------
    def overlay_array(self) -> np.ndarray | None:
        return self.image_view.overlay_array()
