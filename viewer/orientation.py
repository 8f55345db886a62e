"""Orientation markers: the patient direction at each edge of the film, following rotate and flip.

The film's own labels (``FilmHeader.orientation``: the directions towards its right edge and its
bottom edge, from PatientOrientation, else a convention from ViewPosition) are carried through the
view's orientation matrix, so after a rotation or a flip the letters move with the anatomy. A film
turned or mirrored on screen says so (:func:`transform_text`) in amber on its markers and in its
corner text, because a flipped chest film shows dextrocardia that is not there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtWidgets import QLabel

from fpsm_core.io.film_header import opposite

if TYPE_CHECKING:
    from fpsm_core.io.film_header import FilmHeader
    from viewer.image_view import ImageViewWidget

EDGES = ("left", "right", "top", "bottom")
# Screen directions of the edges (x right, y down, as the view's orientation matrix maps them).
_SCREEN = {"right": (1, 0), "left": (-1, 0), "bottom": (0, 1), "top": (0, -1)}
# A dark backing keeps the letter readable over a bright film or heatmap.
_BOX = "font-weight: bold; background: rgba(0, 0, 0, 150); padding: 0px 3px; border-radius: 2px;"
NORMAL_STYLE = f"color: #7fd0ff; {_BOX}"
TURNED_STYLE = f"color: #ffb74d; {_BOX}"


def edge_labels(orientation: tuple[str, str] | None, matrix: np.ndarray) -> dict[str, str]:
    """The direction letters at each screen edge of a film shown through ``matrix``.

    Args:
        orientation: (towards the film's right, towards its bottom) as stored; None: unknown.
        matrix: the view's 2x2 integer orientation (screen = matrix @ image, y down).

    Returns:
        {"left", "right", "top", "bottom"} -> letters ("" for all when unknown).
    """
    if orientation is None:
        return dict.fromkeys(EDGES, "")
    row_dir, col_dir = orientation
    m = np.asarray(matrix, dtype=int)
    out = {}
    for edge, screen in _SCREEN.items():
        dx, dy = (m.T @ np.array(screen)).tolist()  # the image direction shown towards the edge
        if dx:
            out[edge] = row_dir if dx > 0 else opposite(row_dir)
        else:
            out[edge] = col_dir if dy > 0 else opposite(col_dir)
    return out


def transform_text(matrix: np.ndarray) -> str:
    """How the film is turned on screen: "" when upright, else e.g. "flipped H, rotated 90° CW"."""
    m = np.asarray(matrix, dtype=int)
    if np.array_equal(m, np.eye(2, dtype=int)):
        return ""
    flipped = round(float(np.linalg.det(m))) < 0
    # m = R @ F with F the horizontal mirror when flipped; R's first column is its rotation.
    r = m @ np.array([[-1, 0], [0, 1]]) if flipped else m
    angle = int(round(np.degrees(np.arctan2(r[1, 0], r[0, 0])))) % 360
    parts = ["flipped H"] if flipped else []  # m = R @ F: the mirror comes first
    if angle:
        parts.append(f"rotated {angle}° CW" if angle != 270 else "rotated 90° CCW")
    return ", ".join(parts)


class OrientationMarkers(QObject):
    """Four letters at the edges of a film view (a child of the view; follows its changes)."""

    def __init__(self, view: ImageViewWidget) -> None:
        super().__init__(view)
        self._view = view
        self._header: FilmHeader | None = None
        self.labels: dict[str, QLabel] = {}
        for edge in EDGES:
            label = QLabel(view.graphics)
            label.setObjectName(f"orientation_{edge}")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            label.setStyleSheet(NORMAL_STYLE)
            self.labels[edge] = label
        view.view_changed.connect(self.refresh)
        view.graphics.installEventFilter(self)
        view.caption_label.installEventFilter(self)  # the top blocks sit below the caption
        self.refresh()

    def set_header(self, header: FilmHeader | None) -> None:
        self._header = header
        self.refresh()

    def texts(self) -> dict[str, str]:
        """What each edge shows now (for tests and exports)."""
        return {edge: label.text() for edge, label in self.labels.items()}

    def refresh(self) -> None:
        view = self._view
        known = self._header is not None and view.image is not None
        orientation = self._header.orientation if known and self._header else None
        letters = edge_labels(orientation, view.orientation)
        turned = bool(transform_text(view.orientation))
        for edge, label in self.labels.items():
            label.setText(letters[edge])
            label.setStyleSheet(TURNED_STYLE if turned else NORMAL_STYLE)
            label.adjustSize()
            label.setVisible(bool(letters[edge]))
        self._place()

    def _place(self) -> None:
        from viewer.corner_text import caption_height

        view = self._view
        box = view.graphics.mapFromScene(view.view.sceneBoundingRect()).boundingRect()
        # The letters sit on the film's own edges (inside the view when the film runs past it).
        film = view.graphics.mapFromScene(view.frame.sceneBoundingRect()).boundingRect()
        rect = film.intersected(box) if view.image is not None else box
        if rect.isEmpty():
            rect = box
        mid = QPointF(rect.center())
        for edge, label in self.labels.items():
            w, h = label.width(), label.height()
            if edge == "left":
                x, y = rect.left() + 6, mid.y() - h / 2
            elif edge == "right":
                x, y = rect.right() - w - 6, mid.y() - h / 2
            elif edge == "top":
                top = max(rect.top(), box.top() + caption_height(view))
                x, y = mid.x() - w / 2, top + 4
            else:
                x, y = mid.x() - w / 2, rect.bottom() - h - 4
            label.move(int(x), int(y))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide):
            self._place()
        return False
