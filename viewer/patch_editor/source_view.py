"""The source view: a patch's source image with every box on it, drawn, moved, resized, relabelled.

The image comes from :class:`viewer.patch_editor.workers.SourceLoader` (``fpsm_core.io`` and the
viewer's display pyramid, off the GUI thread) and is shown at its own window through the viewer's
lookup tables (``viewer.display``); right-drag changes the window as in the viewer. Boxes are
pyqtgraph ``RectROI`` s whose parent is the film item, whose coordinates are image pixels (x =
column, y = row): a box's position and size *are* its source box, and the pointer is mapped with the
film item's ``mapFromScene`` (never with scene coordinates, the mistake behind the main viewer's
ruler bug). Every finished edit calls the core through the state (``update_box`` / ``add_box``),
which re-cuts the patch and records the edit in its provenance; undo/redo redraw the boxes.

Keys: N toggles draw mode (drag a new box), Delete rejects the selected box's patch, S splits a
VinDr "Nodule/Mass" box the other way (Nodule <-> Mass), Escape leaves draw mode, F fits the image. The class box has type-ahead over the 26 CXR-LT labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer import display
from viewer.image_view import FilmItem, grey_to_argb
from viewer.label_combo import label_combo, matching_label
from viewer.patch_editor.gallery import label_colour
from viewer.patch_editor.model import EditorError, SourceBox, SourceRef
from viewer.patch_editor.qt_util import blocked
from viewer.patch_editor.state import EditorState
from viewer.patch_editor.workers import LoadedSource, SourceLoader
from viewer.theme import configure_pyqtgraph

MIN_BOX_PX = 3.0
NODULE_MASS = "Nodule/Mass"  # VinDr's combined class, split by size at import (nodule <= 3 cm)
SPLIT_OTHER = {"Nodule": "Mass", "Mass": "Nodule"}


class BoxViewBox(pg.ViewBox):
    """A ViewBox where right-drag is window/level and left-drag draws a box in draw mode."""

    window_dragged = Signal(float, float)
    draw_started = Signal(object)
    draw_moved = Signal(object)
    draw_finished = Signal(object)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.draw_mode = False

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt name)
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.pos() - ev.lastPos()
            self.window_dragged.emit(float(delta.x()), float(delta.y()))
            return
        if self.draw_mode and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():
                self.draw_started.emit(ev.buttonDownScenePos())
            self.draw_moved.emit(ev.scenePos())
            if ev.isFinish():
                self.draw_finished.emit(ev.scenePos())
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 (Qt name)
        ev.accept()  # no context menu; a click on the film deselects (handled by the widget)


class BoxItem(pg.RectROI):
    """One source box: a rectangle in image pixels with four corner handles and its class."""

    def __init__(self, box: SourceBox, current: bool) -> None:
        x0, y0, x1, y1 = box.box
        colour = label_colour(box.label)
        super().__init__(
            [x0, y0],
            [max(x1 - x0, 1.0), max(y1 - y0, 1.0)],
            pen=pg.mkPen(colour, width=3 if current else 1.5),
            hoverPen=pg.mkPen(colour.lighter(140), width=3),
            handlePen=pg.mkPen(colour),
            movable=box.editable,
            removable=False,
        )
        if box.editable:  # RectROI has one handle (bottom-right); add the other three corners.
            self.addScaleHandle([0, 0], [1, 1])
            self.addScaleHandle([1, 0], [0, 1])
            self.addScaleHandle([0, 1], [1, 0])
        else:  # a reader's original box: shown dashed, for reference, not edited
            for handle in self.getHandles():
                self.removeHandle(handle)
            self.setPen(pg.mkPen(colour, width=1, style=Qt.PenStyle.DashLine))
        self.source_box = box
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        reader = f" ({box.reader})" if box.reader else ""
        if box.editable and box.source_label == NODULE_MASS:
            reader = " (VinDr Nodule/Mass: S splits it the other way)"
        self.text = pg.TextItem(f"{box.label}{reader}", color=colour, anchor=(0, 1))
        self.text.setParentItem(self)

    def image_box(self) -> tuple[float, float, float, float]:
        """The box in image pixels (the ROI's parent is the film item)."""
        pos, size = self.pos(), self.size()
        x0, y0 = float(pos.x()), float(pos.y())
        x1, y1 = x0 + float(size.x()), y0 + float(size.y())
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


class SourceViewWidget(QWidget):
    """The source image of the current patch and its boxes, bound to the state.

    Signals:
        source_shown(patch_id): an image and its boxes are on screen.
        boxes_drawn(): the boxes were (re)drawn.
    """

    source_shown = Signal(int)
    boxes_drawn = Signal()

    def __init__(self, state: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        configure_pyqtgraph()
        self.state = state
        self.loader = SourceLoader(self)
        self.draw_button = QPushButton("Draw box (N)")
        self.draw_button.setCheckable(True)
        self.class_combo = label_combo()
        self.class_combo.setMinimumWidth(220)
        self.class_combo.setToolTip("class of the selected box, or of the next box you draw")
        self.delete_button = QPushButton("Delete box (Del)")
        self.split_button = QPushButton("Nodule ⇄ Mass (S)")
        self.split_button.setToolTip(
            'VinDr boxes a reader called "Nodule/Mass" are split by size at import (nodule up to '
            "3 cm); S makes the selected one the other class, re-cut and recorded as an edit"
        )
        self.fit_button = QPushButton("Fit (F)")
        self.info = QLabel("Open a patch (Space in the gallery) to see its source image.")
        self.info.setObjectName("hint")
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = BoxViewBox()
        self.graphics.addItem(self.view)
        self.film = FilmItem()
        self.view.addItem(self.film)

        bar = QHBoxLayout()
        for w in (
            self.draw_button,
            QLabel("Class"),
            self.class_combo,
            self.delete_button,
            self.split_button,
        ):
            bar.addWidget(w)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.info, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.banner)
        layout.addWidget(self.graphics, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.ref: SourceRef | None = None
        self.loaded: LoadedSource | None = None
        self.boxes: list[BoxItem] = []
        self.selected: BoxItem | None = None
        self._codes: np.ndarray | None = None
        self._window = (0.0, 1.0)
        self._drawing: pg.RectROI | None = None
        self._draw_start: QPointF | None = None

        self.draw_button.toggled.connect(self.set_draw_mode)
        self.delete_button.clicked.connect(self.delete_selected)
        self.split_button.clicked.connect(self.split_nodule_mass)
        self.fit_button.clicked.connect(self.fit)
        self.class_combo.activated.connect(lambda _i: self._on_class_chosen())
        line = self.class_combo.lineEdit()
        assert line is not None  # an editable combo box has one
        line.returnPressed.connect(self._on_class_chosen)
        self.view.window_dragged.connect(self._on_view_window_dragged)
        self.view.draw_started.connect(self._on_view_draw_started)
        self.view.draw_moved.connect(self._on_view_draw_moved)
        self.view.draw_finished.connect(self._on_view_draw_finished)
        self.loader.source_loaded.connect(self._on_loader_source_loaded)
        self.loader.source_failed.connect(self._on_loader_source_failed)
        state.source_requested.connect(self.show_patch)
        state.library_edited.connect(self._on_state_library_edited)
        state.session_changed.connect(lambda _s: self.clear())
        self._update_buttons()

    # -- opening -------------------------------------------------------------------------------
    def show_patch(self, patch_id: int) -> None:
        """Load the patch's source image (in the worker) and draw its boxes when it arrives."""
        session = self.state.session
        if session is None:
            return
        try:
            ref = session.source(patch_id)
        except EditorError as exc:
            self._fail(str(exc))
            return
        same_image = (
            self.loaded is not None
            and self.ref is not None
            and (self.ref.image_path == ref.image_path)
        )
        self.ref = ref
        if same_image:
            self._draw_boxes()
            self.source_shown.emit(patch_id)
            return
        self.info.setText(f"Loading {ref.image_path}…")
        self.loader.request(patch_id, ref.image_path, ref.image_id, session.images)

    def clear(self) -> None:
        self.ref = None
        self.loaded = None
        self._codes = None
        self.film.set_array(None)
        self._clear_boxes()
        self.banner.hide()
        self.info.setText("Open a patch (Space in the gallery) to see its source image.")
        self._update_buttons()

    def _fail(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()
        self.state.say(message, error=True)

    def _on_loader_source_failed(self, _patch_id: int, message: str) -> None:
        self.loaded = None
        self._codes = None
        self.film.set_array(None)
        self._clear_boxes()
        self.info.setText("")
        self._fail(message)

    def _on_loader_source_loaded(self, loaded: LoadedSource) -> None:
        self.banner.hide()
        self.loaded = loaded
        pyr = loaded.pyramid
        rows, cols = pyr.shape
        view_px = max(self.graphics.width(), self.graphics.height(), 256)
        level = display.pick_level(pyr, view_px / max(rows, cols))
        self._codes = np.ascontiguousarray(pyr.levels[level])
        self._rect = QRectF(0, 0, cols, rows)
        image = loaded.image
        self._window = tuple(image.window)  # type: ignore[assignment]
        self._function = str(getattr(image, "voi_function", "LINEAR") or "LINEAR")
        self._render()
        self.fit()
        spacing = image.spacing_mm
        mm = f", {spacing[0]:.3g} mm/px" if spacing else ", spacing unknown (sizes in px)"
        moved = (
            f" (found under --images; the library recorded {self.ref.image_path})"
            if self.ref is not None and str(loaded.path) != self.ref.image_path
            else ""
        )
        self.info.setText(f"{loaded.path.name}: {cols}x{rows}{mm}; right-drag = window{moved}")
        self._draw_boxes()
        self.source_shown.emit(loaded.patch_id)

    def _render(self) -> None:
        if self.loaded is None or self._codes is None:
            return
        center, width = self._window
        lut = display.window_lut(self.loaded.pyramid, center, max(width, 1e-6), self._function)
        self.film.set_array(display.apply_lut(self._codes, grey_to_argb(lut)), self._rect)

    def fit(self) -> None:
        if self.loaded is not None:
            self.view.setRange(rect=self._rect, padding=0.01)

    # -- boxes ---------------------------------------------------------------------------------
    def _clear_boxes(self) -> None:
        for item in self.boxes:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)
        self.boxes.clear()
        self.selected = None

    def _draw_boxes(self) -> None:
        self._clear_boxes()
        if self.ref is None or self.loaded is None:
            return
        for box in self.ref.boxes:
            item = BoxItem(box, current=box.patch_id == self.ref.patch_id)
            item.setParentItem(self.film)  # image-pixel coordinates
            item.sigRegionChangeFinished.connect(self._on_box_region_change_finished)
            item.sigClicked.connect(lambda it, _ev: self.select_box(it))
            self.boxes.append(item)
            if box.patch_id == self.ref.patch_id and box.editable and self.selected is None:
                self.select_box(item)
        self._update_buttons()
        self.boxes_drawn.emit()

    def select_box(self, item: BoxItem | None) -> None:
        self.selected = item
        if item is not None:
            with blocked(self.class_combo):
                self.class_combo.setCurrentText(item.source_box.label)
        self._update_buttons()

    def box_for(self, patch_id: int) -> BoxItem | None:
        """The editable box of a patch on screen."""
        return next(
            (b for b in self.boxes if b.source_box.patch_id == patch_id and b.source_box.editable),
            None,
        )

    def _update_buttons(self) -> None:
        session = self.state.session
        editable = self.loaded is not None and session is not None
        self.delete_button.setEnabled(editable and self.selected is not None)
        self.split_button.setEnabled(editable and self._splittable(self.selected))
        self.draw_button.setEnabled(editable and session is not None and session.has("add_box"))

    def _shown_image(self) -> Any:
        """The source image on screen (the patch is re-cut from it, not from the file again)."""
        return self.loaded.image if self.loaded is not None else None

    def _after_edit(self, new_id: int | None, old_id: int) -> None:
        if new_id is None or self.ref is None:
            self._draw_boxes()  # refused: put the box back where the library has it
            return
        current = self.ref.patch_id
        if old_id == current:
            current = new_id
            self.state.set_current(new_id)
        self.show_patch(current)
        item = self.box_for(new_id)
        if item is not None:
            self.select_box(item)

    def _on_box_region_change_finished(self, item: BoxItem) -> None:
        old = item.source_box
        box = item.image_box()
        if np.allclose(box, old.box, atol=0.5):
            return
        new = self.state.update_box(old.patch_id, box, image=self._shown_image())
        self._after_edit(new, old.patch_id)

    def _on_class_chosen(self) -> None:
        label = self.class_combo.currentText().strip()
        match = matching_label(label)
        if match is None:
            self.state.say(f"'{label}' is not one of the 26 CXR-LT classes.", error=True)
            return
        with blocked(self.class_combo):
            self.class_combo.setCurrentText(match)
        item = self.selected
        if item is None or item.source_box.label == match:
            return
        new = self.state.update_box(
            item.source_box.patch_id, item.image_box(), label=match, image=self._shown_image()
        )
        self._after_edit(new, item.source_box.patch_id)

    @staticmethod
    def _splittable(item: BoxItem | None) -> bool:
        return (
            item is not None
            and item.source_box.editable
            and item.source_box.source_label == NODULE_MASS
            and item.source_box.label in SPLIT_OTHER
        )

    def split_nodule_mass(self) -> None:
        """Make the selected VinDr "Nodule/Mass" box the other of the two classes, by hand."""
        item = self.selected
        if not self._splittable(item):
            self.state.say(
                'Select a box a VinDr reader called "Nodule/Mass" to split it by hand.', error=True
            )
            return
        assert item is not None
        other = SPLIT_OTHER[item.source_box.label]
        new = self.state.update_box(
            item.source_box.patch_id, item.image_box(), label=other, image=self._shown_image()
        )
        self._after_edit(new, item.source_box.patch_id)

    def delete_selected(self) -> None:
        if self.selected is not None:
            pid = self.selected.source_box.patch_id
            self.state.delete_box(pid)
            if self.ref is not None:
                self.show_patch(self.ref.patch_id)

    def _on_state_library_edited(self, ids: Any) -> None:
        if self.ref is None or self.loaded is None or ids is not None:
            return
        # Undo/redo or a merge: the current patch may be gone; show what the library has now.
        session = self.state.session
        pid = self.state.current if self.state.current is not None else self.ref.patch_id
        try:
            if session is not None:
                session.patch(pid)
        except EditorError:
            pid = self.ref.patch_id
        self.show_patch(pid)

    # -- drawing -------------------------------------------------------------------------------
    def set_draw_mode(self, on: bool) -> None:
        self.view.draw_mode = bool(on)
        self.view.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)
        with blocked(self.draw_button):
            self.draw_button.setChecked(bool(on))

    def image_point(self, scene_pos: QPointF) -> QPointF:
        """A scene point in image pixels (through the film item, whatever the zoom)."""
        return self.film.mapFromScene(scene_pos)

    def _on_view_draw_started(self, scene_pos: QPointF) -> None:
        if self.loaded is None:
            return
        p = self.image_point(scene_pos)
        self._draw_start = p
        self._drawing = pg.RectROI([p.x(), p.y()], [1, 1], pen=pg.mkPen("#f0c040", width=2))
        self._drawing.setParentItem(self.film)

    def _on_view_draw_moved(self, scene_pos: QPointF) -> None:
        if self._drawing is None or self._draw_start is None:
            return
        p, s = self.image_point(scene_pos), self._draw_start
        self._drawing.setPos([min(p.x(), s.x()), min(p.y(), s.y())], finish=False)
        self._drawing.setSize([abs(p.x() - s.x()), abs(p.y() - s.y())], finish=False)

    def _on_view_draw_finished(self, scene_pos: QPointF) -> None:
        if self._drawing is None or self._draw_start is None:
            return
        p, s = self.image_point(scene_pos), self._draw_start
        temp, self._drawing, self._draw_start = self._drawing, None, None
        temp.setParentItem(None)
        if temp.scene() is not None:
            temp.scene().removeItem(temp)
        rows, cols = self.loaded.pyramid.shape if self.loaded is not None else (0, 0)
        x0, x1 = sorted((max(0.0, min(p.x(), s.x())), min(float(cols), max(p.x(), s.x()))))
        y0, y1 = sorted((max(0.0, min(p.y(), s.y())), min(float(rows), max(p.y(), s.y()))))
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX or self.ref is None:
            self.state.say("Drag a larger box (at least 3 pixels each way).", error=True)
            return
        label = self.class_combo.currentText()
        new = self.state.add_box(
            self.ref,
            (x0, y0, x1, y1),
            label,
            image=self._shown_image(),
            image_path=self.loaded.path if self.loaded is not None else None,
        )
        if new is not None:
            self.set_draw_mode(False)
            self.show_patch(self.ref.patch_id)
            item = self.box_for(new)
            if item is not None:
                self.select_box(item)

    def _on_view_window_dragged(self, dx: float, dy: float) -> None:
        if self.loaded is None:
            return
        lo, hi = display.robust_range(self.loaded.pyramid)
        per_pixel = max(hi - lo, 1e-6) / 400.0
        center, width = self._window
        self._window = (center - dy * per_pixel, max(width + dx * per_pixel, 1e-6))
        self._render()

    # -- keys ----------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        key = event.key()
        if key == Qt.Key.Key_N:
            self.set_draw_mode(not self.view.draw_mode)
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        elif key == Qt.Key.Key_S:
            self.split_nodule_mass()
        elif key == Qt.Key.Key_Escape:
            self.set_draw_mode(False)
        elif key == Qt.Key.Key_F:
            self.fit()
        else:
            super().keyPressEvent(event)

    def shutdown(self) -> None:
        self.loader.shutdown()
