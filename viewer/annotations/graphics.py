"""How one annotation looks on the film: a graphics item in image pixels plus an upright label.

The item is a child of the view's frame (whose transform is the rotation/flip), so it turns with
the film; its pens are cosmetic (the same width at every zoom) and its handles keep a fixed size
on screen. The label is a ``pg.TextItem``, which stays upright and unscaled whatever the view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem

Point = tuple[float, float]
COLOUR = "#f0c040"
SELECTED = "#40c8ff"
CARDIAC, THORACIC = "#ff7070", "#60e0ff"
HANDLE_PX = 4.0  # half-size of a handle on screen


def _pen(colour: str, width: float = 2.0, dashed: bool = False) -> QPen:
    pen = QPen(QColor(colour))
    pen.setCosmetic(True)
    pen.setWidthF(width)
    if dashed:
        pen.setStyle(Qt.PenStyle.DashLine)
    return pen


def arrow_head(tail: Point, tip: Point, size: float) -> list[QPointF]:
    """The two wing ends of an arrow head of ``size`` (image pixels) at ``tip``."""
    angle = math.atan2(tip[1] - tail[1], tip[0] - tail[0])
    return [
        QPointF(tip[0] - size * math.cos(angle + s), tip[1] - size * math.sin(angle + s))
        for s in (0.45, -0.45)
    ]


class AnnotationItem(pg.GraphicsObject):
    """Draws one annotation (or one being drawn, with fewer points) in its parent's pixels."""

    def __init__(self, kind: str, points: Sequence[Point], parent: Any = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.points: list[Point] = list(points)
        self.selected = False
        self.pad = 16.0  # image pixels around the points for handles and ticks: see set_pad
        self.dashed = kind == "calibrate"
        self.setZValue(20)
        # Drawn once per zoom, not on every W/L frame of the film beneath.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def set_points(self, points: Sequence[Point]) -> None:
        self.prepareGeometryChange()
        self.points = list(points)
        self.update()

    def set_pad(self, image_px_per_screen_px: float) -> None:
        """Room for the handles and end ticks, which keep their size on screen at any zoom."""
        pad = 12.0 * image_px_per_screen_px
        if abs(pad - self.pad) > 1e-6 * max(pad, 1.0):
            self.prepareGeometryChange()
            self.pad = pad

    def set_selected(self, selected: bool) -> None:
        self.selected = bool(selected)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        if not self.points:
            return QRectF()
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        pad = self.pad + 0.15 * max(max(xs) - min(xs), max(ys) - min(ys))  # the arrow head
        return QRectF(
            min(xs) - pad, min(ys) - pad, max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad
        )

    def paint(self, painter: QPainter, *args: Any) -> None:
        pts = [QPointF(x, y) for x, y in self.points]
        if not pts:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        colour = SELECTED if self.selected else COLOUR
        painter.setPen(_pen(colour, dashed=self.dashed))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        scale = math.hypot(painter.worldTransform().m11(), painter.worldTransform().m12()) or 1.0
        per_screen = 1.0 / scale  # image pixels per screen pixel
        kind = self.kind
        if kind in ("length", "calibrate", "angle"):
            painter.drawPolyline(pts)
            if kind != "angle":
                for p in pts:
                    self._tick(painter, p, pts, per_screen)
        elif kind == "cobb":
            for pair in (pts[:2], pts[2:4]):
                if len(pair) == 2:
                    painter.drawLine(pair[0], pair[1])
                elif pair:
                    painter.drawPoint(pair[0])
        elif kind == "ctr":
            for i, colour_i in ((0, CARDIAC), (2, THORACIC)):
                pair = pts[i : i + 2]
                painter.setPen(_pen(SELECTED if self.selected else colour_i))
                if len(pair) == 2:
                    painter.drawLine(pair[0], pair[1])
                    for p in pair:
                        painter.drawLine(
                            QPointF(p.x(), p.y() - 6 * per_screen),
                            QPointF(p.x(), p.y() + 6 * per_screen),
                        )
        elif kind in ("ellipse", "rectangle") and len(pts) == 2:
            rect = QRectF(pts[0], pts[1]).normalized()
            if kind == "ellipse":
                painter.drawEllipse(rect)
            else:
                painter.drawRect(rect)
        elif kind == "arrow" and len(pts) == 2:
            painter.drawLine(pts[0], pts[1])
            size = max(
                10 * per_screen, 0.12 * math.hypot(pts[1].x() - pts[0].x(), pts[1].y() - pts[0].y())
            )
            path = QPainterPath(pts[1])
            wings = arrow_head(self.points[0], self.points[1], size)
            path.moveTo(wings[0])
            path.lineTo(pts[1])
            path.lineTo(wings[1])
            painter.drawPath(path)
        elif kind == "text":
            r = 2 * per_screen
            painter.drawEllipse(pts[0], r, r)
        if self.selected:
            h = HANDLE_PX * per_screen
            painter.setPen(_pen(SELECTED, 1.0))
            painter.setBrush(QColor(SELECTED))
            for p in pts:
                painter.drawRect(QRectF(p.x() - h, p.y() - h, 2 * h, 2 * h))

    @staticmethod
    def _tick(painter: QPainter, p: QPointF, pts: list[QPointF], per_screen: float) -> None:
        """A short bar across a line's end, so the ends read exactly where they are."""
        if len(pts) < 2:
            return
        dx, dy = pts[-1].x() - pts[0].x(), pts[-1].y() - pts[0].y()
        norm = math.hypot(dx, dy)
        if norm == 0:
            return
        nx, ny = -dy / norm * 5 * per_screen, dx / norm * 5 * per_screen
        painter.drawLine(QPointF(p.x() - nx, p.y() - ny), QPointF(p.x() + nx, p.y() + ny))


def label_anchor(kind: str, points: Sequence[Point]) -> Point:
    """Where an annotation's label sits (image pixels)."""
    if kind in ("ellipse", "rectangle"):
        return (max(points[0][0], points[1][0]), max(points[0][1], points[1][1]))
    if kind == "angle":
        return points[1]
    if kind == "arrow":
        return points[0]
    if kind == "cobb":
        return ((points[2][0] + points[3][0]) / 2, (points[2][1] + points[3][1]) / 2)
    if kind == "ctr":
        return (max(points[2][0], points[3][0]), points[2][1])
    return points[-1]


def make_label(parent: Any, selected: bool = False) -> pg.TextItem:
    label = pg.TextItem(color=SELECTED if selected else COLOUR, anchor=(0, 1), fill=(0, 0, 0, 140))
    label.setParentItem(parent)
    label.setZValue(21)
    # No item cache here: a cached TextItem loses its fill when its text or anchor changes.
    return label
