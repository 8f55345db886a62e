"""The reading room wired into the main window: viewports, corner text, frames, lens, output, keys.

:class:`ReadingRoom` is what the main window adds in one line. It puts the window's film into a
:class:`~viewer.viewports.ViewportGrid` (the film stays the first viewport, bound to the window's
state and session as before), adds the reading-room actions and their menu, and makes the film
actions (fit, zoom, rotate, flip, presets) act on the *active* viewport. Key image marks are kept
in the study index's SQLite file (:mod:`fpsm_core.io.key_images`); corner fields and the hanging
preference are settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QWidget,
)

from fpsm_core.errors import FpsmError
from fpsm_core.io.index_cache import default_cache_path
from fpsm_core.io.key_images import KeyImageError, KeyImageStore
from viewer import corner_text
from viewer.active_panels import ActivePanels
from viewer.frames import FrameController
from viewer.help_keys import ReadingKeysDialog
from viewer.magnifier import Magnifier
from viewer.room_output import copy_view, print_pdf
from viewer.viewport_workers import ViewportServices
from viewer.viewports import DEFAULT_HANGING, Viewport, ViewportGrid

if TYPE_CHECKING:
    from viewer.image_view import ImageViewWidget
    from viewer.main_window import MainWindow

# Film actions of the window that act on the active viewport: name -> what they do to a view.
FILM_ACTIONS: dict[str, Callable[[ImageViewWidget], None]] = {
    "fit": lambda v: v.fit(),
    "one_to_one": lambda v: v.one_to_one(),
    "zoom_in": lambda v: v.zoom(1.25),
    "zoom_out": lambda v: v.zoom(0.8),
    "rotate_cw": lambda v: v.rotate(90),
    "rotate_ccw": lambda v: v.rotate(-90),
    "flip_h": lambda v: v.flip_horizontal(),
    "flip_v": lambda v: v.flip_vertical(),
    "reset_view": lambda v: v.reset_orientation(),
}
MENU = (
    "layout_1x1 layout_1x2 layout_2x2 link_views - compare_prior hang_views - hide_phi magnifier "
    "key_image - next_frame prev_frame cine - copy_view print_pdf - corner_settings reading_keys"
)


class ReadingRoom(QObject):
    """Installs the reading room in a main window.

    Args:
        window: the main window (its film becomes the first viewport).
        key_images: where key image marks live: None the study index's default file, False
            nowhere on disk (kept for the session), else a database path.
    """

    def __init__(self, window: MainWindow, key_images: Any = None) -> None:
        super().__init__(window)
        self.services = ViewportServices(window.hub, self)
        corners = corner_text.load_corners(window.settings)
        central = window.takeCentralWidget()
        self.grid = ViewportGrid(
            window.state, window.image_view, self.services, window.open_path, corners
        )
        window.setCentralWidget(self.grid)
        if central is not None and central is not window.image_view:
            central.deleteLater()
        self.grid.hanging = self._load_hanging()
        self.frames = FrameController(self.grid)
        self.magnifiers: dict[int, Magnifier] = {}
        self.keys = self._open_key_store(key_images)
        self._help: ReadingKeysDialog | None = None
        self._closed = False
        self._connect()
        self._build_actions()
        self.panels = ActivePanels(window, self.grid)
        window.installEventFilter(self)
        # The measuring tools (viewer/annotations, when the window has them) get one controller
        # per viewport and follow the active one.
        self._measure = getattr(window, "measure", None)
        self._controllers: dict[int, Any] = {}
        if self._measure is not None:
            self._controllers[0] = self._measure.controller
            self.grid.room.active_changed.connect(self._on_room_active_changed)

    # -- set-up -----------------------------------------------------------------------------
    def _open_key_store(self, where: Any) -> KeyImageStore:
        path = ":memory:" if where is False else (where or default_cache_path())
        if path != ":memory:" and not isinstance(path, str | Path):
            path = default_cache_path()  # an index cache object: its default file
        try:
            return KeyImageStore(path)
        except KeyImageError as exc:
            self.window.show_error(f"{exc} Key image marks are kept for this session only.")
            return KeyImageStore(":memory:")

    def _load_hanging(self) -> tuple[str, ...]:
        value = self.window.settings.value("reading_room/hanging")
        if isinstance(value, str) and value.split():
            return tuple(v.upper() for v in value.split())
        return DEFAULT_HANGING

    def _connect(self) -> None:
        w, grid = self.window, self.grid
        w.hub.folder_indexed.connect(lambda _rid, index: grid.set_index(index))
        w.model_ready.connect(grid.set_model)
        grid.error.connect(w.show_error)
        grid.status.connect(w.show_status)
        grid.main_infer_requested.connect(w.session.rerun)
        grid.film_loaded.connect(self._on_grid_film_loaded)
        grid.room.layout_changed.connect(self._on_room_layout_changed)
        self.frames.infer_requested.connect(grid.infer)
        w.state.inverted_changed.connect(self._on_main_inverted_changed)
        grid.room.phi_hidden_changed.connect(w.worklist.set_phi_hidden)

    def _build_actions(self) -> None:
        w, grid, room = self.window, self.grid, self.grid.room
        w.actions_by_name["shortcuts"].setShortcut("Shift+F1")  # F1 is the one-page keys help
        a = w._action
        a("layout_1x1", "One viewport", lambda: room.set_layout("1x1"), "Ctrl+1")
        a(
            "layout_1x2",
            "Two viewports side by side (1x2)",
            lambda: room.set_layout("1x2"),
            "Ctrl+2",
        )
        a("layout_2x2", "Four viewports (2x2)", lambda: room.set_layout("2x2"), "Ctrl+4")
        a("link_views", "Link W/L, zoom and pan", room.set_linked, "Ctrl+L")
        a("compare_prior", "Compare with prior", grid.compare_with_prior, "P")
        a("hang_views", "Hang PA + lateral", grid.hang_study_views, "Shift+P")
        a("hide_phi", "Hide patient identifiers", room.set_phi_hidden, "Ctrl+H")
        a("magnifier", "Magnifier glass", self.set_magnifier, "G")
        a("key_image", "Mark / unmark key image", self.toggle_key_image, "Ctrl+K")
        a("next_frame", "Next frame", lambda: self.frames.step(1), "Ctrl+PgDown")
        a("prev_frame", "Previous frame", lambda: self.frames.step(-1), "Ctrl+PgUp")
        a("cine", "Play / stop cine", self.frames.toggle_cine, "Ctrl+Shift+Space")
        a("copy_view", "Copy view to clipboard", self.copy_active, "Ctrl+Shift+C")
        a("print_pdf", "Print to PDF…", self._on_print_triggered, "Ctrl+P")
        a("corner_settings", "Corner text and hanging…", self.edit_corners)
        a("reading_keys", "Reading-room keys", self.show_keys, "F1")
        n = w.actions_by_name
        for name in ("link_views", "hide_phi", "magnifier"):
            n[name].setCheckable(True)
        n["link_views"].setChecked(room.linked)
        room.linked_changed.connect(n["link_views"].setChecked)
        room.phi_hidden_changed.connect(n["hide_phi"].setChecked)
        for name, act in FILM_ACTIONS.items():
            action = n.get(name)
            if action is not None:
                action.triggered.disconnect()
                action.triggered.connect(lambda _c=False, f=act: self.on_active_view(f))
        for preset in ("dicom", "auto", "lung", "soft tissue", "bone"):
            action = n.get(f"preset_{preset}")
            if action is not None:
                action.triggered.disconnect()
                action.triggered.connect(lambda _c=False, p=preset: self.apply_preset(p))
        menu = QMenu("&Reading room", w)
        for name in MENU.split():
            if name == "-":
                menu.addSeparator()
            else:
                menu.addAction(n[name])
        actions = w.menuBar().actions()
        help_menu = actions[-1] if actions else None
        if help_menu is not None:
            w.menuBar().insertMenu(help_menu, menu)
            help_items = help_menu.menu()
            if isinstance(help_items, QMenu):
                help_items.insertAction(n["shortcuts"], n["reading_keys"])
        else:
            w.menuBar().addMenu(menu)

    # -- the active viewport ----------------------------------------------------------------
    @property
    def window(self) -> MainWindow:  # type: ignore[override]
        """The main window: its Qt parent, never a Python reference (a cycle between the
        window's wrapper and this object would leave the window to the garbage collector, which
        may run on a worker thread and destroy a widget there)."""
        return self.parent()  # type: ignore[return-value]

    @property
    def active(self) -> Viewport:
        return self.grid.active

    def on_active_view(self, act: Callable[[ImageViewWidget], None]) -> None:
        """Apply a film action to the active viewport; linked views follow its zoom and pan."""
        view = self.active.view
        act(view)
        if self.grid.room.linked:
            self.grid.linker.follow_range(view)

    def apply_preset(self, name: str) -> None:
        viewport = self.active
        if viewport.index == 0:
            self.window.apply_preset(name)
            return
        if viewport.state.image is None:
            return
        try:
            viewport.view.apply_preset(name)
        except KeyError:
            self.window.show_error(f"This image has no '{name}' window.")
            return
        center, width = viewport.view.window_level
        self.window.show_status(f"Window: {name}  (W {width:.6g}, L {center:.6g})")

    def open_beside(self, paths: Sequence[str | Path], layout: str | None = None) -> None:
        """Hang files in the viewports after the first (the first shows the window's film)."""
        count = len(paths) + 1
        self.grid.room.set_layout(layout or ("1x2" if count <= 2 else "2x2"))
        for i, path in enumerate(paths[: self.grid.room.cells - 1], start=1):
            self.grid.open_in(i, path)

    def all_ready(self) -> bool:
        """Every shown viewport with a film has its findings (or there is no model)."""
        if self.window.state.model is None:
            return True
        for viewport in self.grid.shown():
            if viewport.state.image is not None and viewport.state.result is None:
                return False
            if viewport.state.image is not None and viewport.header is None:
                return False
        return True

    # -- reading tools ----------------------------------------------------------------------
    def set_magnifier(self, enabled: bool) -> None:
        for viewport in self.grid.viewports:
            lens = self.magnifiers.get(viewport.index)
            if lens is None:
                lens = self.magnifiers[viewport.index] = Magnifier(viewport.view)
            lens.set_enabled(enabled)

    def toggle_key_image(self) -> bool | None:
        """Mark the active film as a key image (or unmark it); stored at once."""
        viewport = self.active
        loaded = viewport.state.image
        if loaded is None:
            self.window.show_error("Open an image first to mark it as a key image.")
            return None
        uid = loaded.image.instance_uid
        try:
            marked = not self.keys.is_key(loaded.path, uid)
            self.keys.set_key(loaded.path, uid, marked)
        except FpsmError as exc:
            self.window.show_error(str(exc))
            return None
        viewport.corners.set_key_image(marked)
        self.window.show_status(
            f"{loaded.path.name} {'marked as' if marked else 'no longer'} a key image."
        )
        return marked

    def copy_active(self) -> None:
        copy_view(self.active.view.graphics)
        self.window.show_status("View copied to the clipboard.")

    def print_to(self, path: str | Path) -> Path | None:
        try:
            out = print_pdf(self.grid, path)
        except FpsmError as exc:
            self.window.show_error(str(exc))
            return None
        self.window.show_status(f"Printed to {out}.")
        return out

    def _on_print_triggered(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Print to PDF", "", "PDF (*.pdf)")
        if path:
            self.print_to(path if path.lower().endswith(".pdf") else f"{path}.pdf")

    def show_keys(self) -> None:
        if self._help is None:
            self._help = ReadingKeysDialog(self.window.actions_by_name, self.window)
        self._help.show()
        self._help.raise_()

    def edit_corners(self) -> None:
        dialog = CornerSettingsDialog(self.grid.viewports[0].corners.corners, self.grid.hanging)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply_settings(dialog.corners(), dialog.hanging())

    def apply_settings(self, corners: dict[str, tuple[str, ...]], hanging: tuple[str, ...]) -> None:
        corner_text.save_corners(self.window.settings, corners)
        self.window.settings.setValue("reading_room/hanging", " ".join(hanging))
        self.grid.set_corners(corners)
        self.grid.hanging = hanging or DEFAULT_HANGING

    # -- events -----------------------------------------------------------------------------
    def _on_grid_film_loaded(self, index: int) -> None:
        viewport = self.grid.viewports[index]
        loaded = viewport.state.image
        if loaded is None:
            return
        try:
            viewport.corners.set_key_image(self.keys.is_key(loaded.path, loaded.image.instance_uid))
        except FpsmError as exc:
            self.window.show_error(str(exc))

    def _on_room_active_changed(self, index: int) -> None:
        controller = self._controllers.get(index)
        if self._measure is not None and controller is not None:
            self._measure.set_active(controller)

    def _on_room_layout_changed(self, _layout: str) -> None:
        if self._measure is not None:
            for viewport in self.grid.viewports[1:]:
                if viewport.index not in self._controllers:
                    self._controllers[viewport.index] = self._measure.add_viewport(
                        viewport.view, viewport.state
                    )
        inverted = self.window.state.inverted
        for viewport in self.grid.viewports[1:]:
            viewport.state.set_inverted(inverted)
        if self.window.actions_by_name["magnifier"].isChecked():
            self.set_magnifier(True)

    def _on_main_inverted_changed(self, inverted: bool) -> None:
        for viewport in self.grid.viewports[1:]:
            viewport.state.set_inverted(inverted)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if watched is self.window and event.type() == QEvent.Type.Close and not self._closed:
            self._closed = True
            self.frames.stop_cine()
            self.services.shutdown()
            self.keys.close()
        return False


class CornerSettingsDialog(QDialog):
    """Each corner's fields (names separated by spaces) and the hanging order of view positions."""

    def __init__(
        self,
        corners: dict[str, tuple[str, ...]],
        hanging: tuple[str, ...],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Corner text and hanging")
        form = QFormLayout(self)
        form.addRow(QLabel("Fields: " + ", ".join(corner_text.FIELDS)))
        self.edits: dict[str, QLineEdit] = {}
        for corner in corner_text.CORNERS:
            edit = QLineEdit(" ".join(corners.get(corner, ())))
            self.edits[corner] = edit
            form.addRow(corner.replace("_", " ").capitalize(), edit)
        self.hanging_edit = QLineEdit(" ".join(hanging))
        self.hanging_edit.setToolTip("View positions, left to right (e.g. PA AP LL)")
        form.addRow("Hanging order", self.hanging_edit)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def corners(self) -> dict[str, tuple[str, ...]]:
        return {
            corner: tuple(n for n in edit.text().split() if n in corner_text.FIELDS)
            for corner, edit in self.edits.items()
        }

    def hanging(self) -> tuple[str, ...]:
        return tuple(v.upper() for v in self.hanging_edit.text().split())
