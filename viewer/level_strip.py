"""The level strip: the selected finding's map fused and at every pyramid level, side by side.

It observes the viewer state and redraws on a later event-loop turn (coalesced), so a new result's
findings and the film's overlay are painted first and no single turn does all the work; after a
window/level drag it waits a little longer, since the tiles show the film at the film's window.
Clicking a tile sets the state's level. The tiles come from :func:`viewer.cam_display.level_tiles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from fpsm_core.explain import LevelKey
from viewer import cam_display, theme
from viewer.state import ViewerState

AFTER_WINDOW_MS = 250


class LevelStripWidget(QWidget):
    """Tiles of the selected finding at every level of the chosen member.

    Signals:
        tiles_drawn(): the tiles show the selected finding at every level.
    """

    tiles_drawn = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._tiles: list[tuple[LevelKey, QLabel, QLabel]] = []
        self._drawn: tuple[Any, ...] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer_timeout)
        for signal in (
            state.image_changed,
            state.cams_changed,
            state.finding_changed,
            state.member_changed,
            state.colormap_changed,
            state.opacity_changed,
            state.threshold_changed,
        ):
            signal.connect(self._on_state_changed)
        state.window_changed.connect(self._on_state_window_changed)
        state.inverted_changed.connect(self._on_state_window_changed)

    def _on_state_changed(self, *_: Any) -> None:
        s = self._state
        if s.cams is None or s.finding is None or s.image is None:
            self._timer.stop()
            self._drawn = None
            self.set_tiles([])
        else:
            self._timer.start(0)

    def _on_state_window_changed(self, *_: Any) -> None:
        s = self._state
        if s.cams is not None and s.finding is not None and s.image is not None:
            self._timer.start(AFTER_WINDOW_MS)

    def _on_timer_timeout(self) -> None:
        s = self._state
        if s.cams is None or s.finding is None or s.image is None:
            return
        look = (s.colormap, s.opacity, s.threshold, s.window, s.inverted)
        key: tuple[Any, ...] = (s.image, s.cams, s.finding, s.member, *look)
        if key != self._drawn:
            self._drawn = key
            pyramid = s.image.pyramid
            grey = cam_display.film_grey(
                pyramid,
                s.image.image,
                s.window,
                s.inverted,
                cam_display.overlay_shape(pyramid.shape, cam_display.TILE_SIDE),
            )
            self.set_tiles(
                cam_display.level_tiles(
                    s.cams,
                    s.finding,
                    s.member,
                    grey,
                    s.colormap,
                    s.opacity,
                    s.threshold,
                    dimmed=s.result is not None and s.result.input.flagged,
                )
            )
        self.tiles_drawn.emit()

    def set_tiles(self, tiles: Sequence[tuple[LevelKey, str, np.ndarray]]) -> None:
        """Tiles as (level key, title, (h, w, 3) uint8 RGB)."""
        for _, image_label, title_label in self._tiles:
            image_label.deleteLater()
            title_label.deleteLater()
        self._tiles = []
        for col, (key, title, rgb) in enumerate(tiles):
            rgb = np.ascontiguousarray(rgb)
            h, w = rgb.shape[:2]
            qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            image_label = QLabel()
            image_label.setPixmap(QPixmap.fromImage(qimage))
            image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image_label.setCursor(Qt.CursorShape.PointingHandCursor)
            image_label.mousePressEvent = self._tile_press_handler(key)  # type: ignore[method-assign]
            title_label = QLabel(title)
            title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            title_label.setStyleSheet(f"color: {theme.TEXT_DIM}; font-size: 8pt;")
            self._layout.addWidget(image_label, 0, col)
            self._layout.addWidget(title_label, 1, col)
            self._tiles.append((key, image_label, title_label))

    def _tile_press_handler(self, key: LevelKey) -> Any:
        def handler(_event: Any) -> None:
            self._state.set_level(key)

        return handler

    def tile_keys(self) -> list[LevelKey]:
        return [key for key, _, _ in self._tiles]

    def tile_titles(self) -> list[str]:
        return [t.text() for _, _, t in self._tiles]
