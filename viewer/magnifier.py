"""The magnifier glass: a lens under the cursor showing the film's own pixels, magnified.

The lens is drawn from the film's stored values (not a grab of the screen), windowed with the
view's current window, VOI function and inversion and turned the way the view is turned, so it
shows detail the zoomed-out screen has averaged away. Each lens pixel block is one film pixel
(nearest neighbour: a magnifier that smooths would invent edges).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel

from fpsm_core.io.image import apply_window

if TYPE_CHECKING:
    from viewer.image_view import CursorInfo, ImageViewWidget

LENS_PX = 220
MAGNIFICATION = 3.0  # relative to the view's own zoom


def oriented(array: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """An image array turned the way a view with orientation ``matrix`` shows it.

    ``matrix`` maps image (x, y) to screen (x, y), y down; it is a signed identity or a signed
    swap, written ``D @ P`` (P the swap or the identity, D diagonal): the screen array is the
    array (transposed when P swaps), its columns reversed when ``D[0, 0] < 0``, its rows when
    ``D[1, 1] < 0``.
    """
    m = np.asarray(matrix, dtype=int)
    swap = m[0, 0] == 0
    out = array.T if swap else array
    d = m @ np.array([[0, 1], [1, 0]]) if swap else m
    if d[0, 0] < 0:
        out = out[:, ::-1]
    if d[1, 1] < 0:
        out = out[::-1, :]
    return np.ascontiguousarray(out)


def lens_pixels(
    view: ImageViewWidget, row: int, col: int, lens_px: int = LENS_PX
) -> np.ndarray | None:
    """The lens picture (uint8 grey, lens_px square) around film pixel (row, col)."""
    image = view.image
    if image is None:
        return None
    scale = view.screen_per_image() * MAGNIFICATION  # lens pixels per film pixel
    half = max(2, int(round(lens_px / scale / 2)))
    pixels = image.pixels
    rows, cols = pixels.shape
    r0, c0 = row - half, col - half
    crop = np.full((2 * half, 2 * half), np.nan, dtype=np.float32)
    rs, cs = max(0, r0), max(0, c0)
    re, ce = min(rows, r0 + 2 * half), min(cols, c0 + 2 * half)
    if re <= rs or ce <= cs:
        return None
    crop[rs - r0 : re - r0, cs - c0 : ce - c0] = pixels[rs:re, cs:ce]
    center, width = view.window_level
    function = str(getattr(image, "voi_function", "LINEAR") or "LINEAR")
    grey = apply_window(np.nan_to_num(crop, nan=-np.inf), center, width, function)
    if view.inverted:
        grey = 255 - grey
    grey[np.isnan(crop)] = 0
    grey = oriented(grey, view.orientation)
    repeat = max(1, int(np.ceil(lens_px / grey.shape[0])))
    big = np.repeat(np.repeat(grey, repeat, axis=0), repeat, axis=1)
    return np.ascontiguousarray(big[:lens_px, :lens_px])


class Magnifier(QObject):
    """A lens that follows the cursor over one film view while enabled."""

    def __init__(self, view: ImageViewWidget) -> None:
        super().__init__(view)
        self._view = view
        self.enabled = False
        self.lens = QLabel(view.graphics)
        self.lens.setObjectName("magnifier")
        self.lens.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.lens.setFixedSize(LENS_PX, LENS_PX)
        self.lens.setStyleSheet("border: 2px solid #4fc3f7;")
        self.lens.hide()
        self.shown: np.ndarray | None = None
        view.cursor_moved.connect(self._on_view_cursor_moved)

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        if not self.enabled:
            self.lens.hide()

    def _on_view_cursor_moved(self, info: CursorInfo | None) -> None:
        if not self.enabled or info is None:
            self.lens.hide()
            return
        grey = lens_pixels(self._view, info.row, info.col)
        if grey is None:
            self.lens.hide()
            return
        self.shown = grey
        h, w = grey.shape
        qimage = QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        self.lens.setPixmap(QPixmap.fromImage(qimage))
        cursor = self._view.graphics.mapFromGlobal(self._view.graphics.cursor().pos())
        x = min(max(0, cursor.x() + 24), max(0, self._view.graphics.width() - LENS_PX))
        y = min(max(0, cursor.y() - LENS_PX // 2), max(0, self._view.graphics.height() - LENS_PX))
        self.lens.move(x, y)
        self.lens.show()
        self.lens.raise_()
