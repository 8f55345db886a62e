"""The viewer's preferences: window layout, overlay look, urgent findings, recent items, last folder.

Everything the viewer remembers between sessions goes through :class:`ViewerSettings`, on a
``QSettings`` store (per user and native by default; tests pass an INI file in a temporary folder).
Values are stored as the first version wrote them (opacity and threshold as percent, lists joined
with ``|``), so an existing user's preferences keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QRect, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow

from viewer.cam_display import COLORMAPS
from viewer.state import ViewerState

MAX_RECENT = 10
DEFAULT_URGENT = ("Pneumothorax", "Pneumomediastinum", "Pneumoperitoneum")
DEFAULT_SIZE = (1600, 1000)
FIRST_RUN_FRACTION = 0.9  # of the available screen, on the first run (no saved geometry)


def first_run_geometry(window: QMainWindow) -> QRect:
    """~90 % of the screen's available area, centred (DEFAULT_SIZE when no screen is known)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return QRect(0, 0, *DEFAULT_SIZE)
    area = screen.availableGeometry()
    width = int(area.width() * FIRST_RUN_FRACTION)
    height = int(area.height() * FIRST_RUN_FRACTION)
    rect = QRect(0, 0, width, height)
    rect.moveCenter(area.center())
    return rect


def settings_for_app() -> QSettings:
    """The user's settings store (per user, native format)."""
    return QSettings("fpsm-cxr", "fpsm-viewer")


class ViewerSettings:
    """Reads and writes the viewer's preferences on one store.

    Args:
        store: the ``QSettings`` to use (None: :func:`settings_for_app`).
    """

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else settings_for_app()

    # -- window and overlay ------------------------------------------------------------------
    def restore_window(self, window: QMainWindow) -> None:
        geometry = self.store.value("window/geometry")
        if geometry is not None:
            window.restoreGeometry(geometry)  # type: ignore[arg-type]
        else:
            window.setGeometry(first_run_geometry(window))
        state = self.store.value("window/state")
        if state is not None:
            window.restoreState(state)  # type: ignore[arg-type]

    def restore_overlay(self, state: ViewerState) -> None:
        """The colour map, opacity and threshold last used (defaults where unset or unknown)."""
        state.set_colormap(str(self.store.value("cam/colormap", COLORMAPS[0])))
        state.set_opacity(_percent(self.store.value("cam/opacity"), 40) / 100.0)
        state.set_threshold(_percent(self.store.value("cam/threshold"), 25) / 100.0)
        state.set_overlay_style(str(self.store.value("cam/style", "heatmap")))

    def save(self, window: QMainWindow, state: ViewerState) -> None:
        """Remember the window layout and the overlay look (on close)."""
        s = self.store
        s.setValue("window/geometry", window.saveGeometry())
        s.setValue("window/state", window.saveState())
        s.setValue("cam/colormap", state.colormap)
        s.setValue("cam/opacity", round(state.opacity * 100))
        s.setValue("cam/threshold", round(state.threshold * 100))
        s.setValue("cam/style", state.overlay_style)
        s.sync()

    # -- triage ------------------------------------------------------------------------------
    def urgent_labels(self) -> list[str]:
        value = self.store.value("triage/urgent")
        if value is None:
            return list(DEFAULT_URGENT)
        if isinstance(value, str):
            return [v for v in value.split("|") if v]
        return [str(v) for v in value]  # type: ignore[attr-defined]

    def set_urgent_labels(self, labels: Sequence[str]) -> None:
        self.store.setValue("triage/urgent", "|".join(labels))

    # -- files -------------------------------------------------------------------------------
    def recent_items(self) -> list[str]:
        value = self.store.value("recent", "")
        items = value.split("|") if isinstance(value, str) else [str(v) for v in list(value or [])]  # type: ignore[call-overload]
        return [v for v in items if v]

    def remember(self, path: str | Path) -> None:
        """Put a file or folder first in the recent items."""
        items = [p for p in self.recent_items() if p != str(path)]
        items.insert(0, str(path))
        self.store.setValue("recent", "|".join(items[:MAX_RECENT]))

    def last_dir(self) -> str:
        return str(self.store.value("last_dir", str(Path.home())))

    def set_last_dir(self, folder: str | Path) -> None:
        self.store.setValue("last_dir", str(folder))


def _percent(value: object, default: int) -> int:
    try:
        return int(str(value)) if value is not None else default
    except ValueError:
        return default
