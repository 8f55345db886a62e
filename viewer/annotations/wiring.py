"""Puts measuring into the main window: tool actions, a Measure menu and toolbar, the dock.

A few lines of the window call :func:`install_annotations`; everything else about measuring in
the window is here. The ruler action (M) is the length tool. Keys: M length, N angle, Shift+N Cobb
angle, O ellipse ROI, Shift+O rectangle ROI, W arrow, Shift+W text, Q cardiothoracic ratio,
Shift+Q calibrate; Del deletes the selected annotation, Ctrl+Z / Ctrl+Shift+Z undo and redo, Esc
drops a half-drawn one, then leaves the tool.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QPushButton

from fpsm_core.errors import FpsmError
from viewer.annotations.controller import AnnotationController, open_store
from viewer.annotations.panel import AnnotationPanel
from viewer.annotations.to_library import BoxToLibrary, selected_rectangle

if TYPE_CHECKING:
    from viewer.image_view import ImageViewWidget
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

# name, action text, key, toolbar label; "length" is the window's own ruler action.
TOOL_ACTIONS = (
    ("angle", "Angle", "N", "Angle"),
    ("cobb", "Cobb angle", "Shift+N", "Cobb"),
    ("ellipse", "Ellipse ROI (mean, SD, min, max, area)", "O", "Ellipse"),
    ("rectangle", "Rectangle ROI (mean, SD, min, max, area)", "Shift+O", "Rect"),
    ("arrow", "Arrow", "W", "Arrow"),
    ("text", "Text", "Shift+W", "Text"),
    ("ctr", "Cardiothoracic ratio (heart span, then thorax span)", "Q", "CTR"),
    ("calibrate", "Calibrate from a known length", "Shift+Q", "Calibrate"),
)


class MeasureWiring:
    """The window's measuring parts; ``controller`` is the active viewport's (at first the film's).

    A layout of several viewports makes one controller per view with :meth:`add_viewport` and
    calls :meth:`set_active` when the reader moves to another; the tool stays a state field.
    """

    def __init__(self, window: MainWindow, index_cache: Any) -> None:
        # A weak reference: window.measure -> self -> window would be a cycle left to the
        # garbage collector, which may run on a worker thread and destroy the window there.
        self._window = weakref.ref(window)
        store, problem = open_store(index_cache)
        self.controller = AnnotationController(window.state, window.image_view, store)
        self.panel = AnnotationPanel(self.controller)
        dock = QDockWidget("Measurements", window)
        dock.setObjectName("measurementsDock")
        dock.setWidget(self.panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.dock = dock
        self._build_actions()
        self._connect(self.controller)
        if problem:
            window.show_error(problem)

    @property
    def window(self) -> MainWindow:
        window = self._window()
        assert window is not None, "the window is gone"
        return window

    def _connect(self, controller: AnnotationController) -> None:
        controller.measured.connect(self.window.show_status)
        controller.error.connect(self.window.show_error)
        controller.selection_changed.connect(lambda _id: self._update_library_button())
        controller.sheet_changed.connect(lambda _sheet: self._update_library_button())

    def _update_library_button(self) -> None:
        button = getattr(self, "library_button", None)
        if button is not None:
            button.setEnabled(selected_rectangle(self.controller) is not None)

    def add_viewport(self, view: ImageViewWidget, state: ViewerState) -> AnnotationController:
        """A controller for another film view, saving into the same study index."""
        controller = AnnotationController(state, view, self.controller.store)
        self._connect(controller)
        return controller

    def set_active(self, controller: AnnotationController) -> None:
        """The viewport the keys, the menu and the dock act on (a layout's current one)."""
        self.controller = controller
        self.panel.set_controller(controller)
        self._update_library_button()

    def _build_actions(self) -> None:
        w, state = self.window, self.window.state
        tools = {"length": w.actions_by_name["ruler"]}
        for name, text, key, label in TOOL_ACTIONS:
            tools[name] = w._action(f"tool_{name}", text, None, key, label)
        group = QActionGroup(w)
        group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        for name, action in tools.items():
            action.setCheckable(True)
            group.addAction(action)
            action.toggled.connect(lambda on, n=name: self._on_tool_action_toggled(n, on))
        self.tool_actions = tools
        state.tool_changed.connect(self._on_state_tool_changed)
        active = self._active
        w._action(
            "delete_annotation", "Delete the selected annotation", active("delete_selected"), "Del"
        )
        w._action("undo_annotation", "Undo (measurements)", active("undo"), "Ctrl+Z")
        redo = w._action("redo_annotation", "Redo (measurements)", active("redo"), "Ctrl+Shift+Z")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        w._action("export_measurements_json", "Export measurements as JSON…", self.export_json)
        w._action(
            "export_measurements_gsps",
            "Export measurements as presentation state…",
            self.export_gsps,
        )
        menu = w.menuBar().addMenu("Mea&sure")
        for action in tools.values():
            menu.addAction(action)
        menu.addSeparator()
        for name in ("delete_annotation", "undo_annotation", "redo_annotation", "clear_rulers"):
            menu.addAction(w.actions_by_name[name])
        menu.addSeparator()
        menu.addAction(w.actions_by_name["export_measurements_json"])
        menu.addAction(w.actions_by_name["export_measurements_gsps"])
        # A rectangle drawn on any film becomes a DADAM patch (the patch editor curates it).
        self.to_library = BoxToLibrary(lambda: self.controller, state, w.settings, w)
        self.to_library.said.connect(lambda m, err: (w.show_error if err else w.show_status)(m))
        w._action(
            "add_to_library",
            "Add the rectangle to a patch library…",
            lambda: self.to_library.ask(w),
            "Ctrl+Shift+L",
        )
        menu.addSeparator()
        menu.addAction(w.actions_by_name["add_to_library"])
        self.library_button = QPushButton("Add the rectangle to a patch library…")
        self.library_button.setToolTip("Ctrl+Shift+L: cut the selected rectangle as a DADAM patch")
        self.library_button.clicked.connect(w.actions_by_name["add_to_library"].trigger)
        layout = self.panel.layout()
        assert layout is not None  # the panel lays itself out in __init__
        layout.addWidget(self.library_button)
        self._update_library_button()
        self.menu = menu
        bar = w.addToolBar("Measure")
        bar.setObjectName("measureToolbar")
        bar.setMovable(False)
        bar.addActions([tools[n] for n, *_ in TOOL_ACTIONS])
        self.toolbar = bar

    def _active(self, method: str) -> Any:
        """A slot calling ``method`` of whichever controller is active when it fires."""
        return lambda *_: getattr(self.controller, method)()

    def _on_tool_action_toggled(self, name: str, checked: bool) -> None:
        state = self.window.state
        if checked:
            state.set_tool(name)
            if name == "length":
                self.window.show_status("Length: drag on the image to measure (Esc ends).")
        elif state.tool == name:
            state.set_tool("none")

    def _on_state_tool_changed(self, tool: str) -> None:
        for name, action in self.tool_actions.items():
            if action.isChecked() != (name == tool):
                action.setChecked(name == tool)

    def escape(self) -> None:
        """Esc: drop what is half drawn, else leave the tool."""
        if self.controller.drawing or self.controller.editor.isVisible():
            self.controller.cancel_drawing()
            self.controller.editor.cancel()
        else:
            self.window.state.set_tool("none")

    def clear(self) -> None:
        self.window.image_view.clear_rulers()
        self.controller.clear()

    def export_json(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export measurements", "", "JSON (*.json)"
        )
        if path:
            self._export(self.controller.export_json, path)

    def export_gsps(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export measurements as GSPS", "", "DICOM (*.dcm)"
        )
        if path:
            self._export(self.controller.export_gsps, path)

    def _export(self, write: Any, path: str) -> None:
        try:
            out = write(path)
        except FpsmError as exc:
            self.window.show_error(str(exc))
            return
        self.window.show_status(f"Measurements written to {out}")

    def close(self) -> None:
        if self.controller.store is not None:
            self.controller.store.close()


def install_annotations(window: MainWindow, index_cache: Any) -> MeasureWiring:
    return MeasureWiring(window, index_cache)
