"""The members x levels grid: the selected finding for every member at every level, and a difference map.

For a researcher asking "which member looks where, at which scale": one row per member (the
ensemble mean first), one column per map (fused, then each pyramid level of the ensemble); a
member without a level has an empty cell. Every tile is :meth:`ResultCams.map` of that member and
level on the tile grid, blended over the film at the film's window, exactly what the film would
show for that choice. Clicking one tile and then another sets the state's ``grid_pair``; the
difference map below is A - B on the same grid (red where A is stronger, blue where B is), with
the mean absolute difference and the maps' correlation. The dialog observes the state and
redraws only while it is shown.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QVBoxLayout, QWidget

from fpsm_core.explain import ENSEMBLE, FUSED, LevelKey
from viewer import cam_display, theme
from viewer.state import ViewerState

Tile = tuple[int, LevelKey]  # (member or ENSEMBLE, level or FUSED)
GRID_TILE_SIDE = 150
PICK_COLOURS = {"A": "#ff6b6b", "B": "#4dabf7"}


def grid_keys(cams: Any) -> tuple[list[int], list[LevelKey]]:
    """Rows (ENSEMBLE, then each member) and columns (FUSED, then the ensemble's levels)."""
    members = [ENSEMBLE, *range(len(cams.result.member_names))]
    return members, [FUSED, *cams.levels_of(ENSEMBLE)]


def difference_rgb(grey: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """A signed map in [-1, 1] over a grey film: red where positive, blue where negative."""
    base = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    alpha = (np.clip(np.abs(diff), 0, 1) * 0.85)[..., None]
    colour = np.where((diff >= 0)[..., None], (255.0, 60.0, 60.0), (60.0, 140.0, 255.0))
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference and Pearson correlation of two maps (NaN when one is flat)."""
    mad = float(np.mean(np.abs(a - b)))
    sa, sb = float(a.std()), float(b.std())
    corr = (
        float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb)) if sa > 0 and sb > 0 else np.nan
    )
    return mad, corr


def _pixmap(rgb: np.ndarray) -> QPixmap:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class LevelGridDialog(QDialog):
    """The grid window (non-modal), bound to a :class:`ViewerState`.

    Signals:
        grid_drawn(): the tiles (and the difference, when a pair is chosen) show the state.
    """

    grid_drawn = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Members × levels")
        self._state = state
        layout = QVBoxLayout(self)
        self.title = QLabel("")
        self.title.setWordWrap(True)
        layout.addWidget(self.title)
        self._grid = QGridLayout()
        self._grid.setSpacing(4)
        layout.addLayout(self._grid)
        self.hint = QLabel(
            "Click a tile (A, red border), then another (B, blue border), to see A − B."
        )
        self.hint.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.hint)
        self.diff_image = QLabel()
        self.diff_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.diff_image)
        self.diff_label = QLabel("")
        self.diff_label.setWordWrap(True)
        layout.addWidget(self.diff_label)
        self.values: dict[Tile, np.ndarray] = {}
        self.tiles: dict[Tile, QLabel] = {}
        self.difference: np.ndarray | None = None
        self._pending: Tile | None = None
        self._widgets: list[QWidget] = []
        for signal in (
            state.image_changed,
            state.cams_changed,
            state.finding_changed,
            state.colormap_changed,
            state.window_changed,
            state.inverted_changed,
            state.grid_pair_changed,
        ):
            signal.connect(self._on_state_changed)

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        super().showEvent(event)
        self.redraw()

    def _on_state_changed(self, *_: Any) -> None:
        if self.isVisible():
            self.redraw()

    def _grey(self, shape: tuple[int, int]) -> np.ndarray:
        s = self._state
        assert s.image is not None
        return cam_display.film_grey(s.image.pyramid, s.image.image, s.window, s.inverted, shape)

    def redraw(self) -> None:
        s = self._state
        for widget in self._widgets:
            widget.deleteLater()
        self._widgets, self.tiles, self.values = [], {}, {}
        self.difference = None
        finding = s.selected_finding
        if s.cams is None or finding is None or s.image is None:
            self.title.setText("No maps: open an image and let the model run.")
            self.diff_image.clear()
            self.diff_label.setText("")
            self.grid_drawn.emit()
            return
        cams = s.cams
        self.title.setText(
            f"<b>{finding.label}</b> {finding.probability:.1%} (threshold "
            f"{finding.threshold:.1%}): every member at every level"
        )
        shape = cam_display.overlay_shape(cams.result.image_shape, GRID_TILE_SIDE)
        grey = self._grey(shape)
        members, levels = grid_keys(cams)
        names = list(cams.result.member_names)
        for col, level in enumerate(levels, start=1):
            self._add(QLabel("Fused" if level == FUSED else f"Level {level}"), 0, col)
        pair = s.grid_pair
        picks = {} if pair is None else {pair[0]: "A", pair[1]: "B"}
        if self._pending is not None:
            picks = {self._pending: "A"}
        for row, member in enumerate(members, start=1):
            name = f"Ensemble mean ({len(names)})" if member == ENSEMBLE else names[member]
            self._add(QLabel(name), row, 0)
            offered = (FUSED, *cams.levels_of(member))
            for col, level in enumerate(levels, start=1):
                if level not in offered:
                    self._add(QLabel("—"), row, col)
                    continue
                values = cams.map(finding.index, level, shape, member=member)
                self.values[(member, level)] = values
                rgb = cam_display.blend_rgb(grey, values, s.colormap, 0.55, 0.0)
                tile = QLabel()
                tile.setPixmap(_pixmap(rgb))
                tile.setCursor(Qt.CursorShape.PointingHandCursor)
                tile.setToolTip(f"{name}, {'fused' if level == FUSED else f'level {level}'}")
                pick = picks.get((member, level))
                border = PICK_COLOURS[pick] if pick else "transparent"
                tile.setStyleSheet(f"border: 3px solid {border};")
                tile.mousePressEvent = self._press_handler((member, level))  # type: ignore[method-assign]
                self.tiles[(member, level)] = tile
                self._add(tile, row, col)
        self._draw_difference(grey)
        self.grid_drawn.emit()

    def _add(self, widget: QWidget, row: int, col: int) -> None:
        if isinstance(widget, QLabel) and widget.pixmap().isNull():
            widget.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._grid.addWidget(widget, row, col)
        self._widgets.append(widget)

    def _draw_difference(self, grey: np.ndarray) -> None:
        pair = self._state.grid_pair
        if pair is None or pair[0] not in self.values or pair[1] not in self.values:
            self.diff_image.clear()
            self.diff_label.setText("")
            return
        a, b = self.values[pair[0]], self.values[pair[1]]
        self.difference = a - b
        # Full colour at the largest difference, so small disagreements still show (stated below).
        peak = float(np.abs(self.difference).max())
        shown = self.difference / peak if peak > 0 else self.difference
        big = cv2.resize(
            grey, (grey.shape[1] * 2, grey.shape[0] * 2), interpolation=cv2.INTER_LINEAR
        )
        diff = cv2.resize(shown, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_LINEAR)
        self.diff_image.setPixmap(_pixmap(difference_rgb(big, diff)))
        mad, corr = compare(a, b)
        names = list(self._state.cams.result.member_names) if self._state.cams else []

        def text(tile: Tile) -> str:
            member, level = tile
            who = "ensemble" if member == ENSEMBLE else names[member]
            return f"{who} {'fused' if level == FUSED else f'L{level}'}"

        r = "n/a (a flat map)" if np.isnan(corr) else f"{corr:.2f}"
        self.diff_label.setText(
            f"A − B = {text(pair[0])} − {text(pair[1])}: red where A is stronger, blue where B "
            f"is (full colour at the largest difference, {peak:.3f}). Mean |A − B| {mad:.3f}, "
            f"correlation {r}."
        )

    def _press_handler(self, tile: Tile) -> Any:
        def handler(_event: Any) -> None:
            if self._pending is None:
                self._pending = tile
                self.redraw()
            else:
                first, self._pending = self._pending, None
                before = self._state.grid_pair
                self._state.set_grid_pair((first, tile))
                if before == self._state.grid_pair:
                    self.redraw()  # the same pair again: no state change, but A's mark goes

        return handler
