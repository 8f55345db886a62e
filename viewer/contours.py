"""Contours on the film: the outline of each finding above its operating point, labelled with its score.

What chest X-ray AI products show instead of a full-film heatmap (Lunit INSIGHT CXR's contours with
scores): the film stays readable, and only findings the model calls positive are drawn. For each
such finding (not the case label *No Finding*), the map at the state's level and member is
thresholded at :data:`CONTOUR_LEVEL` of its own peak, the half-maximum outline CAM localisation
studies use (the same level as the DICOM exports' regions, ``fpsm_core.export.evidence``); every
blob of at least :data:`MIN_AREA` of the largest is outlined in the finding's colour (the
selected finding thicker), and the largest one is labelled "Finding 87%", moved down where it
would cover an earlier label. On a film outside the model's training distribution the outlines
are grey and dotted and the labels start with "?", as the heatmap is greyed there. :func:`finding_contours` is the plain-numpy part;
:class:`ContourBinding` draws it on an :class:`~viewer.image_view.ImageViewWidget` whenever the
state's ``overlay_style`` is ``"contours"`` (the heatmap is one click away in the AI panel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QButtonGroup, QGraphicsPathItem, QHBoxLayout, QPushButton, QWidget

from fpsm_core.explain import LevelKey
from viewer import cam_display
from viewer.bind import Binding
from viewer.state import CASE_LABEL, OVERLAY_STYLES, ViewerState

if TYPE_CHECKING:
    from fpsm_core.explain import ResultCams
    from fpsm_core.inference import Result
    from viewer.image_view import ImageViewWidget

CONTOUR_LEVEL = 0.5
MIN_AREA = 0.25
# Label boxes on screen (pixels), for keeping labels from covering one another.
LABEL_HEIGHT_PX = 20
# Outline colours by rank among the drawn findings (RGB): the exports' palette.
COLOURS = (
    (255, 64, 64),
    (255, 200, 0),
    (0, 200, 255),
    (160, 255, 80),
    (255, 120, 255),
    (255, 150, 60),
    (170, 170, 255),
    (80, 255, 200),
)


@dataclass(frozen=True, eq=False)
class FindingContour:
    """The outline of one finding on the image.

    Attributes:
        index: the finding's class index; label, probability, threshold: as the result says.
        polygons: closed outlines, each (N, 2) float (column, row) in image pixels, largest first.
        colour: RGB.
    """

    index: int
    label: str
    probability: float
    threshold: float
    polygons: tuple[np.ndarray, ...]
    colour: tuple[int, int, int]

    @property
    def text(self) -> str:
        return f"{self.label} {self.probability:.0%}"


def outlines(values: np.ndarray, image_shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The outlines of a [0, 1] map at :data:`CONTOUR_LEVEL` of its peak, in image pixels.

    Args:
        values: the map on any grid of the image's aspect.
        image_shape: (rows, cols) of the image.
    """
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0:
        return ()
    mask = (values >= CONTOUR_LEVEL * peak).astype(np.uint8)
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not found:
        return ()
    # Pixel (i, j) of the map covers [j, j+1) x [i, i+1): contour points are pixel centres.
    sx = image_shape[1] / values.shape[1]
    sy = image_shape[0] / values.shape[0]
    areas = [max(cv2.contourArea(c), 1.0) for c in found]
    largest = max(areas)
    ranked = sorted(zip(areas, range(len(found)), strict=True), reverse=True)
    out = []
    for area, i in ranked:
        if area < MIN_AREA * largest:
            continue
        pts = found[i].reshape(-1, 2).astype(np.float64) + 0.5
        out.append(np.column_stack([pts[:, 0] * sx, pts[:, 1] * sy]))
    return tuple(out)


def finding_contours(
    result: Result,
    cams: ResultCams,
    level: LevelKey,
    member: int,
    shape: tuple[int, int] | None = None,
) -> list[FindingContour]:
    """Outlines of the findings above their thresholds, highest probability first.

    Args:
        shape: the grid the maps are computed on (default the viewer's overlay grid).
    """
    image_shape = (int(result.image_shape[0]), int(result.image_shape[1]))
    grid = shape or cam_display.overlay_shape(image_shape)
    out: list[FindingContour] = []
    for f in result.findings:
        if not f.above_threshold or f.label == CASE_LABEL:
            continue
        polygons = outlines(cams.map(f.index, level, grid, member=member), image_shape)
        if polygons:
            colour = COLOURS[len(out) % len(COLOURS)]
            out.append(
                FindingContour(f.index, f.label, f.probability, f.threshold, polygons, colour)
            )
    return out


class ContourBinding(QObject):
    """Draws the state's contours on the film (a child of the view).

    Signals:
        contours_drawn(count): the contours were drawn (count findings), changed or cleared.
    """

    contours_drawn = Signal(int)

    def __init__(self, state: ViewerState, view: ImageViewWidget) -> None:
        super().__init__(view)
        self._state = state
        self._view = view
        self._items: list[Any] = []
        self._drawn: tuple[Any, ...] | None = None
        self.contours: list[FindingContour] = []
        for signal in (
            state.image_changed,
            state.cams_changed,
            state.level_changed,
            state.member_changed,
            state.finding_changed,
            state.overlay_visible_changed,
            state.overlay_style_changed,
        ):
            signal.connect(self._on_state_changed)

    def _on_state_changed(self, *_: Any) -> None:
        self.redraw()

    def redraw(self) -> None:
        s = self._state
        wanted = (
            s.overlay_style == "contours"
            and s.overlay_visible
            and s.result is not None
            and s.cams is not None
            and s.image is not None
        )
        key = (s.image, s.cams, s.level, s.member, s.finding) if wanted else None
        if key == self._drawn and (key is None or self._items):
            return
        self._drawn = key
        self._clear()
        if wanted and s.result is not None and s.cams is not None:
            self.contours = finding_contours(s.result, s.cams, s.level, s.member)
            taken: list[tuple[float, float, float]] = []
            flagged = s.result.input.flagged
            for contour in self.contours:
                self._draw(contour, contour.index == s.finding, taken, flagged)
        self.contours_drawn.emit(len(self.contours))

    def _clear(self) -> None:
        for item in self._items:
            item.setParentItem(None)
            scene = item.scene()
            if scene is not None:
                scene.removeItem(item)
        self._items = []
        self.contours = []

    def _draw(
        self,
        contour: FindingContour,
        selected: bool,
        taken: list[tuple[float, float, float]],
        flagged: bool = False,
    ) -> None:
        # A film outside what the model knows: grey dotted outlines, "?" labels (as the heatmap
        # is greyed), so they do not read like findings.
        colour = QColor(160, 160, 160) if flagged else QColor(*contour.colour)
        pen = QPen(colour)
        pen.setWidthF(3.0 if selected else 1.6)
        if flagged:
            pen.setStyle(Qt.PenStyle.DotLine)
        pen.setCosmetic(True)  # two screen pixels at any zoom
        for polygon in contour.polygons:
            path = QPainterPath()
            path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in polygon]))
            path.closeSubpath()
            item = QGraphicsPathItem(path)
            item.setPen(pen)
            item.setZValue(20)
            item.setParentItem(self._view.frame)  # image coordinates: follows zoom, rotation
            self._items.append(item)
        top = contour.polygons[0]
        i = int(np.argmin(top[:, 1]))  # the outline's top point: the label hangs just inside
        x, y = float(top[i, 0]), float(top[i, 1])
        # Labels keep their screen size: in image pixels one is this tall at the current zoom.
        height = LABEL_HEIGHT_PX / max(self._view.screen_per_image(), 1e-6)
        width = height * 0.45 * len(contour.text)
        while any(abs(y - ty) < height and abs(x - tx) < max(width, tw) for tx, ty, tw in taken):
            y += height
        taken.append((x, y, width))
        text = f"? {contour.text}" if flagged else contour.text
        label = pg.TextItem(text, color=colour, fill=pg.mkBrush(0, 0, 0, 170), anchor=(0.5, 0.0))
        label.setParentItem(self._view.frame)
        label.setPos(x, y)
        label.setZValue(21)
        self._items.append(label)

    def labels(self) -> list[str]:
        """The texts of the labels drawn (for tests and scripts; "? " first on a flagged film)."""
        return [item.toPlainText() for item in self._items if isinstance(item, pg.TextItem)]


class OverlayStyleWidget(QWidget):
    """Two buttons, Heatmap | Contours: one click switches the film's overlay style."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QPushButton] = {}
        tips = {
            "heatmap": "Colour map of the selected finding over the whole film",
            "contours": "Outline and score of every finding above its threshold",
        }
        for i, style in enumerate(OVERLAY_STYLES):
            button = QPushButton(style.capitalize())
            button.setCheckable(True)
            button.setToolTip(tips[style])
            self.group.addButton(button, i)
            layout.addWidget(button)
            self.buttons[style] = button
        self.group.setExclusive(True)
        self._binding = Binding(
            self,
            state,
            "overlay_style",
            lambda style: self.buttons[style].setChecked(True),
            self.group.idClicked,
            lambda i: OVERLAY_STYLES[i],
        )
