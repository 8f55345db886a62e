"""The studio's composite view: the target with its patches pasted, dragged live with the mouse.

The film is a :class:`viewer.image_view.FilmItem` (ARGB32 handed to Qt as is: the fastest way to
put a 1024 px grey image on screen), showing the composite, the original or their difference as
the state's view says. The lung field that limits placement is drawn as an outline; each pasted
lesion box is a dashed rectangle in its class colour, the patch being edited drawn thicker. A left
drag that starts on a patch moves it (the state snaps it into the lung field and re-composes at
once); a drag elsewhere pans, the wheel zooms. Arrow keys nudge the edited patch by a pixel
(Shift: ten), Delete removes it, F fits the film. Coordinates are the film item's own (image pixels),
mapped with ``mapFromScene``, so zoom and pan never shift a placement.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QVBoxLayout, QWidget

from viewer.image_view import FilmItem, grey_to_argb
from viewer.patch_editor.gallery import label_colour
from viewer.patch_editor.studio import model as sm
from viewer.patch_editor.studio.state import StudioState
from viewer.theme import configure_pyqtgraph


def grey_argb(grey: np.ndarray) -> np.ndarray:
    """(h, w) uint8 grey as opaque ARGB32 (uint32): OpenCV's BGRA bytes are ARGB32 in memory on
    little-endian machines, about ten times faster than a 256-entry table lookup at 1 Mpx."""
    if sys.byteorder != "little":
        return grey_to_argb(np.arange(256, dtype=np.uint8))[grey]
    bgra = cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGRA)
    return bgra.view(np.uint32).reshape(grey.shape)


def union(regions: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int] | None:
    """The rectangle covering every (x0, y0, x1, y1), or None for none."""
    if not regions:
        return None
    return (
        min(r[0] for r in regions),
        min(r[1] for r in regions),
        max(r[2] for r in regions),
        max(r[3] for r in regions),
    )


class _StudioViewBox(pg.ViewBox):
    """A ViewBox whose left drag on a patch is reported instead of panning."""

    def __init__(self, view: CompositeViewWidget) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._view = view
        self._dragging: int | None = None
        self._grab = QPointF(0, 0)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt name)
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        v = self._view
        if ev.isStart():
            hit = v.patch_at(v.film.mapFromScene(ev.buttonDownScenePos()))
            self._dragging = hit
            if hit is not None:
                v.state.set_current(hit)
                start = v.film.mapFromScene(ev.buttonDownScenePos())
                self._grab = start - v.centre_px(hit)
        if self._dragging is None:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        pos = v.film.mapFromScene(ev.scenePos()) - self._grab
        v.drag_to(self._dragging, pos)
        if ev.isFinish():
            v.drag_finished.emit(self._dragging)
            self._dragging = None

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 (Qt name)
        ev.accept()
        if ev.button() == Qt.MouseButton.LeftButton:
            hit = self._view.patch_at(self._view.film.mapFromScene(ev.scenePos()))
            if hit is not None:
                self._view.state.set_current(hit)


class CompositeViewWidget(QWidget):
    """The composite (or original, or difference), the lung outline and the pasted boxes.

    Signals:
        drawn(int): the film shows this composite revision.
        drag_finished(int): a drag of this patch index ended.
    """

    drawn = Signal(int)
    drag_finished = Signal(int)

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = _StudioViewBox(self)
        self.graphics.addItem(self.view)
        self.film = FilmItem(smooth=False)
        self.view.addItem(self.film)
        self.outline = pg.PlotCurveItem(
            pen=pg.mkPen("#4dd0e1", width=1.5, style=Qt.PenStyle.DotLine), connect="finite"
        )
        self.outline.setParentItem(self.film)
        # A drag repaints the rectangle it touched, which the outline always crosses: blit it
        # from a pixmap rather than stroke the dotted path again (about 0.3 ms a step).
        self.outline.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._boxes: list[QGraphicsRectItem] = []
        self._shape: tuple[int, int] | None = None
        # What the film's ARGB buffer shows: (view, target, composite regions); a drag rewrites
        # only the rectangle the old and new patch regions cover.
        self._shown: tuple[str, Any, tuple[tuple[int, int, int, int], ...]] | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics.setFocusProxy(self)
        state.composition_changed.connect(self._on_state_composition_changed)
        state.view_changed.connect(lambda _v: self._redraw())
        state.target_changed.connect(self._on_state_target_changed)
        state.settings_changed.connect(lambda _s: self._draw_outline())
        state.current_changed.connect(lambda _i: self._draw_boxes())

    # -- keys ----------------------------------------------------------------------------------
    NUDGE = {
        Qt.Key.Key_Left: (-1, 0),
        Qt.Key.Key_Right: (1, 0),
        Qt.Key.Key_Up: (0, -1),
        Qt.Key.Key_Down: (0, 1),
    }

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        """Arrows nudge the edited patch by a pixel (Shift: ten), Delete removes it, F fits."""
        st, key = self.state, Qt.Key(event.key())
        i = st.current
        if key in self.NUDGE and st.target is not None and 0 <= i < len(st.patches):
            step = 10 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            dx, dy = self.NUDGE[key]
            h, w = st.target.pixels.shape
            cx, cy = st.patches[i].center
            st.move_patch(i, (cx + dx * step / w, cy + dy * step / h))
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and 0 <= i < len(st.patches):
            st.remove_patch(i)
        elif key == Qt.Key.Key_F:
            self.fit()
        else:
            super().keyPressEvent(event)

    # -- geometry ------------------------------------------------------------------------------
    def centre_px(self, index: int) -> QPointF:
        """Patch ``index``'s lesion centre in image pixels (where the drag holds it)."""
        t = self.state.target
        if t is None:
            return QPointF(0, 0)
        cx, cy = self.state.patches[index].center
        h, w = t.pixels.shape
        return QPointF(cx * w, cy * h)

    def patch_at(self, pos: QPointF) -> int | None:
        """The topmost patch whose pasted region holds ``pos`` (image pixels), or None."""
        comp = self.state.composition
        if comp is None:
            return None
        for i in reversed(range(len(comp.placements))):
            x0, y0, x1, y1 = comp.placements[i].region
            if x0 <= pos.x() < x1 and y0 <= pos.y() < y1:
                return i
        return None

    def drag_to(self, index: int, pos: QPointF) -> None:
        t = self.state.target
        if t is not None:
            h, w = t.pixels.shape
            self.state.move_patch(index, (float(pos.x()) / w, float(pos.y()) / h))

    def image_to_viewport(self, x: float, y: float) -> QPointF:
        """Where image pixel (x, y) is in the view's viewport (tests drive real mouse events)."""
        scene = self.film.mapToScene(QPointF(x, y))
        return QPointF(self.graphics.mapFromScene(scene))

    def fit(self) -> None:
        if self._shape is not None:
            h, w = self._shape
            self.view.setRange(QRectF(0, 0, w, h), padding=0.01)

    # -- drawing ---------------------------------------------------------------------------------
    def _on_state_target_changed(self, target: sm.Target | None) -> None:
        if target is None:
            self._shape = None
            self.film.set_array(None)
            self.outline.setData([], [])
            return
        shape = target.pixels.shape
        new = shape != self._shape
        self._shape = (int(shape[0]), int(shape[1]))
        self._shown = None
        if new:
            self.film.set_array(None, QRectF(0, 0, shape[1], shape[0]))
            self.fit()
        self._draw_outline()

    def _draw_outline(self) -> None:
        t = self.state.target
        if t is None:
            return
        mask, _kind = sm.lung_field(t, self.state.settings)
        xs: list[float] = []
        ys: list[float] = []
        for poly in sm.field_outline(mask, t.pixels.shape):  # type: ignore[arg-type]
            xs.extend(poly[:, 0].tolist() + [np.nan])
            ys.extend(poly[:, 1].tolist() + [np.nan])
        self.outline.setData(np.array(xs), np.array(ys))

    def _on_state_composition_changed(self, _comp: Any) -> None:
        self._redraw()

    def displayed(self) -> np.ndarray | None:
        """The grey image the film shows now (the view's choice)."""
        t, comp = self.state.target, self.state.composition
        if t is None or comp is None:
            return None
        view = self.state.view
        if view == "before":
            return t.pixels
        if view == "difference":
            return sm.difference(t.pixels, comp.image).image
        return comp.image

    def _redraw(self) -> None:
        t, comp, view = self.state.target, self.state.composition, self.state.view
        if t is None or comp is None:
            self.film.set_array(None)
            self._shown = None
        else:
            regions = tuple(pl.region for pl in comp.placements)
            shown, buf = self._shown, self.film.array
            if (
                view == "after"
                and shown is not None
                and shown[:2] == ("after", t)
                and buf is not None
                and buf.shape == comp.image.shape
            ):
                dirty = union(shown[2] + regions)
                if dirty is not None:
                    x0, y0, x1, y1 = dirty
                    buf[y0:y1, x0:x1] = grey_argb(comp.image[y0:y1, x0:x1])
                    self.film.update(QRectF(x0, y0, x1 - x0, y1 - y0))
            else:
                grey = self.displayed()
                assert grey is not None
                self.film.set_array(grey_argb(grey))
            self._shown = (view, t, regions)
        self._draw_boxes()
        self.drawn.emit(self.state.revision)

    def _draw_boxes(self) -> None:
        comp = self.state.composition
        placements = comp.placements if comp is not None else ()
        while len(self._boxes) > len(placements):
            item = self._boxes.pop()
            scene = item.scene()
            if scene is not None:
                scene.removeItem(item)
        while len(self._boxes) < len(placements):
            item = QGraphicsRectItem()
            item.setParentItem(self.film)
            self._boxes.append(item)
        for i, (item, pl) in enumerate(zip(self._boxes, placements, strict=True)):
            x0, y0, x1, y1 = pl.box
            item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            pen = QPen(label_colour(pl.label))
            pen.setCosmetic(True)
            pen.setWidthF(2.5 if i == self.state.current else 1.2)
            pen.setStyle(Qt.PenStyle.DashLine)
            item.setPen(pen)
