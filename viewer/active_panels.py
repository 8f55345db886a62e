"""The AI panel and the level strip follow the active viewport.

Each viewport has its own :class:`~viewer.state.ViewerState`; the panels are bound to one state
each (the house pattern: a widget observes one state, never another widget), so the window keeps
one :class:`~viewer.ai_panel.AIPanel` and one :class:`~viewer.level_strip.LevelStripWidget` per
viewport that has been active, in a stack inside the existing docks, and shows the active one's.
The AI keys (next/previous finding and level) act on the active viewport's state too, and so does
the heatmap action (C), rebound to the active viewport's state when another one becomes active
(how the overlay's look is shared while linked: :mod:`viewer.overlay_link`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QScrollArea, QStackedWidget, QWidget

from viewer.ai_panel import AIPanel
from viewer.bind import Binding, bind_check
from viewer.level_strip import LevelStripWidget

if TYPE_CHECKING:
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState
    from viewer.viewports import ViewportGrid

# AI actions of the window that act on the active viewport's state: name -> what they do.
STATE_ACTIONS = {
    "next_level": lambda s: s.cycle_level(1),
    "prev_level": lambda s: s.cycle_level(-1),
    "next_finding": lambda s: s.step_finding(1),
    "prev_finding": lambda s: s.step_finding(-1),
}


class ActivePanels(QObject):
    """Swaps the AI dock's and the level dock's contents to the active viewport's panels."""

    def __init__(self, window: MainWindow, grid: ViewportGrid) -> None:
        super().__init__(window)
        self.grid = grid
        self.ai_stack = QStackedWidget()
        self.level_stack = QStackedWidget()
        self.ai_panels: dict[int, AIPanel] = {0: window.ai_panel}
        self.level_strips: dict[int, LevelStripWidget] = {0: window.level_strip}
        # Each panel keeps its own scroll area (as the window made the first one's).
        self.ai_stack.addWidget(window.ai_dock.widget())
        window.ai_dock.setWidget(self.ai_stack)
        taken_strip = window.levels_dock.widget()
        self.level_stack.addWidget(taken_strip)
        window.levels_dock.setWidget(self.level_stack)
        grid.room.active_changed.connect(self._on_room_active_changed)
        window.state.urgent_changed.connect(self._on_main_urgent_changed)
        for name, act in STATE_ACTIONS.items():
            action = window.actions_by_name.get(name)
            if action is not None:
                action.triggered.disconnect()
                action.triggered.connect(lambda _c=False, f=act: f(self.active_state))
        # The heatmap action: the window bound it to its own state; it follows the active one.
        self._overlay_binding: Binding | None = None
        overlay = window.actions_by_name.get("overlay")
        if overlay is not None:
            for binding in overlay.findChildren(Binding):
                binding.unbind()
                binding.deleteLater()
            self._overlay_binding = bind_check(overlay, window.state, "overlay_visible")

    @property
    def window(self) -> MainWindow:  # type: ignore[override]
        """The main window, as its Qt parent (no Python reference cycle with its wrapper)."""
        return self.parent()  # type: ignore[return-value]

    @property
    def active_state(self) -> ViewerState:
        return self.grid.active.state

    def _on_room_active_changed(self, index: int) -> None:
        if index >= len(self.grid.viewports):
            return
        state = self.grid.viewports[index].state
        self._bind_overlay_action(state)
        if index not in self.ai_panels:
            state.set_urgent(self.window.state.urgent)
            panel = AIPanel(state)
            strip = LevelStripWidget(state)
            # A panel made now shows what its state already holds (its slots, called once).
            panel._on_state_model_changed(state.model)
            panel._on_state_result_changed(state.result)
            strip._on_state_changed()
            self.ai_panels[index] = panel
            self.level_strips[index] = strip
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(panel)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            self.ai_stack.addWidget(scroll)
            self.level_stack.addWidget(strip)
        self._show(self.ai_stack, self._scroll_of(self.ai_panels[index]))
        self._show(self.level_stack, self.level_strips[index])

    def _bind_overlay_action(self, state: ViewerState) -> None:
        old = self._overlay_binding
        if old is None:
            return
        old.unbind()
        action = old.parent()
        old.deleteLater()
        self._overlay_binding = bind_check(action, state, "overlay_visible")  # type: ignore[arg-type]

    @staticmethod
    def _show(stack: QStackedWidget, widget: QWidget) -> None:
        stack.setCurrentWidget(widget)

    def _scroll_of(self, panel: AIPanel) -> QWidget:
        """The page of the AI stack holding ``panel`` (its scroll area)."""
        for i in range(self.ai_stack.count()):
            page = self.ai_stack.widget(i)
            if page is not None and (page is panel or page.isAncestorOf(panel)):
                return page
        return panel

    def _on_main_urgent_changed(self, urgent: tuple[str, ...]) -> None:
        for viewport in self.grid.viewports[1:]:
            viewport.state.set_urgent(urgent)

    def shown_panel(self) -> AIPanel:
        """The AI panel on screen (the active viewport's)."""
        page = self.ai_stack.currentWidget()
        return next(
            p for p in self.ai_panels.values() if page is p or (page and page.isAncestorOf(p))
        )
