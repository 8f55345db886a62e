"""The CAM overlay's look across viewports: each film its own heatmap, one look while linked.

Each viewport's :class:`~viewer.state.ViewerState` holds its own film, findings and maps, and its
own overlay look (:data:`LOOK_FIELDS`: heatmap shown, heatmap or contours, colour map, opacity,
threshold). The controls act on the *active* viewport's state: the AI panel on screen is the
active viewport's (:mod:`viewer.active_panels`), and so is the C key's action. While the viewports
are linked (the reading room's one link toggle, the same that links W/L, zoom and pan), a change
of the look in one viewport's state is copied into the others' states; linking copies the active
viewport's look to all; a new viewport starts with the window's look (the reader's saved
preference). Only states are touched here: each film binding draws from its own state, as the
window's inversion reaches the other viewports in :mod:`viewer.reading_room`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

if TYPE_CHECKING:
    from viewer.state import ViewerState
    from viewer.viewports import ViewportGrid

LOOK_FIELDS = ("overlay_visible", "overlay_style", "colormap", "opacity", "threshold")


def copy_look(source: ViewerState, target: ViewerState) -> None:
    """Give ``target`` the overlay look of ``source`` (each setter emits only on a change)."""
    for field in LOOK_FIELDS:
        getattr(target, f"set_{field}")(getattr(source, field))


class OverlayLink(QObject):
    """Keeps the overlay look of a grid's viewports in step while they are linked."""

    def __init__(self, grid: ViewportGrid) -> None:
        super().__init__(grid)
        self._watched: list[ViewerState] = []
        self._copying = False
        grid.viewport_added.connect(self._on_grid_viewport_added)
        grid.room.linked_changed.connect(self._on_room_linked_changed)
        for viewport in grid.viewports:
            self._watch(viewport.state)

    @property
    def grid(self) -> ViewportGrid:
        return self.parent()  # type: ignore[return-value]

    def _watch(self, state: ViewerState) -> None:
        if any(s is state for s in self._watched):
            return
        self._watched.append(state)
        for field in LOOK_FIELDS:
            getattr(state, f"{field}_changed").connect(
                lambda value, s=state, f=field: self._on_state_look_changed(s, f, value)
            )

    def _on_grid_viewport_added(self, index: int) -> None:
        grid = self.grid
        state = grid.viewports[index].state
        if index > 0:
            copy_look(grid.viewports[0].state, state)
        self._watch(state)

    def _on_state_look_changed(self, source: ViewerState, field: str, value: Any) -> None:
        if self._copying or not self.grid.room.linked:
            return
        self._copying = True
        try:
            for viewport in self.grid.viewports:
                if viewport.state is not source:
                    getattr(viewport.state, f"set_{field}")(value)
        finally:
            self._copying = False

    def _on_room_linked_changed(self, linked: bool) -> None:
        if not linked:
            return
        active = self.grid.active.state
        self._copying = True
        try:
            for viewport in self.grid.viewports:
                if viewport.state is not active:
                    copy_look(active, viewport.state)
        finally:
            self._copying = False
