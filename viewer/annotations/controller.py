"""The annotation controller of one film view: drawing, selecting, moving, editing, saving.

It attaches to ONE :class:`~viewer.image_view.ImageViewWidget` (taking the left button's drags
and clicks first through the view box's ``tool_handler`` hook) and to the
:class:`~viewer.state.ViewerState` (the image shown and the ``tool`` field). A layout of several
viewports makes one controller per view. The sheet of the image on screen lives in a Qt-free
:class:`~fpsm_core.annotations.AnnotationDocument` (undo/redo); every change is drawn and written
to the study index at once, and the sheet comes back when the image is opened again.

Mouse, with any tool: a press on a handle of an annotation moves that point, a press on its line,
inside its shape or on its label moves it whole, a click selects it, a double-click edits its text.
Elsewhere, a drawing tool draws: a drag gives its first two points (a line, a box, a span), then
clicks (or further drags) the rest: an angle takes a third point, a Cobb angle and a CTR a second
line. With no tool the left button pans as before. Esc drops what is half drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QPointF, Qt, Signal

from fpsm_core.annotations import (
    Annotation,
    AnnotationDocument,
    AnnotationError,
    AnnotationStore,
    Calibration,
    Measurement,
    Sheet,
    Spacing,
    export_json,
    image_key,
    measure,
    new_annotation,
    original_values,
    resolve_spacing,
)
from fpsm_core.annotations.measure import header_spacing
from fpsm_core.annotations.model import N_POINTS, constrain
from fpsm_core.errors import FpsmError
from viewer.annotations.editor import InlineEditor
from viewer.annotations.graphics import AnnotationItem, label_anchor, make_label

if TYPE_CHECKING:
    import pyqtgraph as pg

    from viewer.image_view import ImageViewWidget
    from viewer.state import ViewerState
    from viewer.workers import LoadedImage

Point = tuple[float, float]
HIT_PX = 8.0  # how close (screen pixels) a press must be to a handle or a line to take it
NAMES = {
    "length": "Length",
    "angle": "Angle",
    "cobb": "Cobb angle",
    "ellipse": "Ellipse ROI",
    "rectangle": "Rectangle ROI",
    "arrow": "Arrow",
    "text": "Text",
    "ctr": "Cardiothoracic ratio",
}


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    ax, ay, bx, by = a[0], a[1], b[0], b[1]
    dx, dy = bx - ax, by - ay
    norm = dx * dx + dy * dy
    t = 0.0 if norm == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / norm))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def body_distance(annotation: Annotation, p: Point) -> float:
    """How far (image pixels) a point is from an annotation's lines; 0 inside an ROI."""
    pts, kind = annotation.points, annotation.kind
    if kind in ("ellipse", "rectangle"):
        (x0, y0), (x1, y1) = pts
        lo_x, hi_x, lo_y, hi_y = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        if kind == "rectangle":
            dx = max(lo_x - p[0], 0.0, p[0] - hi_x)
            dy = max(lo_y - p[1], 0.0, p[1] - hi_y)
            return math.hypot(dx, dy)
        a, b = max((hi_x - lo_x) / 2, 1e-6), max((hi_y - lo_y) / 2, 1e-6)
        r = math.hypot((p[0] - (lo_x + hi_x) / 2) / a, (p[1] - (lo_y + hi_y) / 2) / b)
        return max(0.0, (r - 1.0) * min(a, b))
    if kind == "text":
        return math.hypot(p[0] - pts[0][0], p[1] - pts[0][1])
    pairs = [(0, 1), (1, 2)] if kind == "angle" else [(0, 1), (2, 3)] if len(pts) == 4 else [(0, 1)]
    return min(_segment_distance(p, pts[i], pts[j]) for i, j in pairs)


class AnnotationController(QObject):
    """Measurements and annotations on one film view (see the module docstring).

    Args:
        state: the viewer state (image shown, tool).
        view: the film view to draw on.
        store: where sheets are kept (None: not saved).

    Signals:
        sheet_changed(Sheet): after every change, undo and redo, and when an image's sheet loads.
        selection_changed(str | None): the selected annotation's id.
        measured(str): a line for the status bar about the annotation just drawn or edited.
        error(str): one sentence for the status bar.
    """

    sheet_changed = Signal(object)
    selection_changed = Signal(object)
    measured = Signal(str)
    error = Signal(str)

    def __init__(
        self, state: ViewerState, view: ImageViewWidget, store: AnnotationStore | None = None
    ) -> None:
        super().__init__(view)
        self._state = state
        self._view = view
        self.store = store
        self.document = AnnotationDocument()
        self.document.subscribe(self._on_document_changed)
        self._key: str | None = None
        self._path: Path | None = None
        self._image: Any = None
        self._header_spacing: Spacing | None = None
        self._values: np.ndarray | None = None
        self._items: dict[str, tuple[AnnotationItem, pg.TextItem]] = {}
        self._calibration_items: tuple[AnnotationItem, pg.TextItem] | None = None
        # What each item shows now, and with which spacing (redraw only what changed).
        self._drawn: dict[str, Annotation] = {}
        self._drawn_spacing: Spacing | None = None
        self.selected: str | None = None
        self._loading = False
        # A drag in progress: ("draw" | "point" | "move", annotation id, point index, start point).
        self._drag: tuple[str, str | None, int, Point] | None = None
        self._declined = False  # this drag belongs to the view (pan)
        self._pending: list[Point] = []  # points fixed of the annotation being drawn
        self._float: Point | None = None  # its next point, following the cursor or the drag
        self._pending_item: AnnotationItem | None = None
        self._pending_label: Any = None
        self._live: Annotation | None = None  # an annotation being moved, not yet committed
        self.editor = InlineEditor(view.graphics.viewport())
        self.editor.committed.connect(self._on_editor_committed)
        self._editing: tuple[str, Any] | None = None
        view.view.tool_handler = self
        state.image_changed.connect(self._on_state_image_changed)
        state.tool_changed.connect(self._on_state_tool_changed)
        view.graphics.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)
        view.view_changed.connect(self._on_view_changed)
        if state.image is not None:
            self._on_state_image_changed(state.image)

    # -- what is measured --------------------------------------------------------------------
    @property
    def sheet(self) -> Sheet:
        return self.document.sheet

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        return self.document.sheet.annotations

    @property
    def spacing(self) -> Spacing | None:
        """The spacing lengths use now: the calibration, else the header's, else None."""
        calibration = self.sheet.calibration
        if calibration is not None:
            return resolve_spacing(None, calibration)
        return self._header_spacing

    @property
    def header_spacing(self) -> Spacing | None:
        return self._header_spacing

    def measurement(self, annotation: Annotation) -> Measurement:
        values = None
        if annotation.kind in ("ellipse", "rectangle") and self._image is not None:
            if self._values is None:
                self._values = original_values(self._image)
            values = self._values
        return measure(annotation, values, self.spacing)

    def describe(self, annotation: Annotation) -> str:
        """One line for the panel and the status bar: the kind and what it measures."""
        text = self.measurement(annotation).text.replace("\n", "  ")
        if annotation.kind == "text":
            text = annotation.text
        return f"{NAMES[annotation.kind]}: {text}" if text else NAMES[annotation.kind]

    # -- image -------------------------------------------------------------------------------
    def _on_state_image_changed(self, loaded: LoadedImage | None) -> None:
        self.cancel_drawing()
        self.editor.cancel()
        self._image = None if loaded is None else loaded.image
        self._path = None if loaded is None else Path(loaded.path)
        self._values = None
        self._drawn.clear()
        self._header_spacing = None if loaded is None else header_spacing(loaded.image)
        self._key = None if loaded is None else image_key(loaded.image)
        sheet = Sheet()
        if self._key is not None and self.store is not None:
            try:
                sheet = self.store.load(self._key) or Sheet()
            except AnnotationError as exc:
                self.error.emit(str(exc))
        self.selected = None
        self._loading = True
        try:
            self.document.reset(sheet)
        finally:
            self._loading = False
        self.selection_changed.emit(None)

    # -- document ----------------------------------------------------------------------------
    def _on_document_changed(self, sheet: Sheet) -> None:
        cal = sheet.calibration
        self._view.set_calibration(None if cal is None else (cal.mm_per_px, cal.mm_per_px))
        if self.selected is not None and sheet.get(self.selected) is None:
            self.selected = None
            self.selection_changed.emit(None)
        self._redraw()
        if not self._loading and self.store is not None and self._key is not None:
            try:
                self.store.save(self._key, sheet, self._path)
            except AnnotationError as exc:
                self.error.emit(str(exc))
        self.sheet_changed.emit(sheet)

    def _redraw(self) -> None:
        frame = self._view.frame
        wanted = {a.id: a for a in self.annotations}
        for annotation_id in list(self._items):
            if annotation_id not in wanted:
                self._drop_items(self._items.pop(annotation_id))
                self._drawn.pop(annotation_id, None)
        # Only what changed is measured and drawn again (a new spacing changes every label).
        spacing = self.spacing
        if spacing != self._drawn_spacing:
            self._drawn.clear()
            self._drawn_spacing = spacing
        for annotation in self.annotations:
            shown = (
                self._live
                if self._live is not None and self._live.id == annotation.id
                else annotation
            )
            if annotation.id not in self._items:
                item = AnnotationItem(shown.kind, shown.points, frame)
                item.set_pad(1.0 / max(self._view.screen_per_image(), 1e-9))
                self._items[annotation.id] = (item, make_label(frame))
            if self._drawn.get(annotation.id) != shown:
                self._show(shown)
        if self._calibration_items is not None:
            self._drop_items(self._calibration_items)
            self._calibration_items = None
        calibration = self.sheet.calibration
        if calibration is not None:
            item = AnnotationItem("calibrate", calibration.points, frame)
            label = make_label(frame)
            label.setText(f"calibration: {calibration.known_mm:g} mm")
            label.setPos(QPointF(*calibration.points[1]))
            self._calibration_items = (item, label)

    def _show(self, annotation: Annotation) -> None:
        item, label = self._items[annotation.id]
        self._drawn[annotation.id] = annotation
        item.set_points(annotation.points)
        item.set_selected(annotation.id == self.selected)
        text = self.measurement(annotation).text
        if annotation.kind in ("arrow", "text"):
            text = annotation.text or ("" if annotation.kind == "arrow" else "(text)")
        label.setText(text)
        label.setColor(item_colour(annotation.id == self.selected))
        label.setPos(QPointF(*label_anchor(annotation.kind, annotation.points)))
        label.setVisible(bool(text))
        self._side(label)

    def _side(self, label: Any) -> None:
        """A label right of its point, or left of it in the right part of the screen (never cut)."""
        x = self._view.graphics.mapFromScene(self._view.frame.mapToScene(label.pos())).x()
        right = x > 0.55 * self._view.graphics.viewport().width()
        label.setAnchor((1, 1) if right else (0, 1))

    def _on_view_changed(self) -> None:
        self._place_editor()
        per_screen = 1.0 / max(self._view.screen_per_image(), 1e-9)
        for item, label in self._items.values():
            item.set_pad(per_screen)
            self._side(label)
        for extra in (self._pending_item, *(self._calibration_items or ())[:1]):
            if isinstance(extra, AnnotationItem):
                extra.set_pad(per_screen)

    @staticmethod
    def _drop_items(items: tuple[Any, ...]) -> None:
        for item in items:
            item.setParentItem(None)
            if item.scene() is not None:
                item.scene().removeItem(item)

    # -- commands ----------------------------------------------------------------------------
    def add(self, annotation: Annotation) -> None:
        self.document.add(annotation)
        self.select(annotation.id)
        self._announce(annotation)

    def select(self, annotation_id: str | None) -> None:
        if annotation_id is not None and self.sheet.get(annotation_id) is None:
            annotation_id = None
        if annotation_id != self.selected:
            self.selected = annotation_id
            for key, (item, label) in self._items.items():
                item.set_selected(key == annotation_id)
                label.setColor(item_colour(key == annotation_id))
            self.selection_changed.emit(annotation_id)

    def delete_selected(self) -> bool:
        if self.selected is None:
            return False
        self.document.remove(self.selected)
        return True

    def delete(self, annotation_id: str) -> None:
        self.document.remove(annotation_id)

    def clear(self) -> None:
        self.document.clear()

    def undo(self) -> bool:
        self.cancel_drawing()
        return self.document.undo()

    def redo(self) -> bool:
        self.cancel_drawing()
        return self.document.redo()

    def set_text(self, annotation_id: str, text: str) -> None:
        annotation = self.sheet.get(annotation_id)
        if annotation is not None:
            self.document.update(annotation.with_text(text))

    def calibrate(self, points: tuple[Point, Point], known_mm: float) -> None:
        """Calibrate the film from a line of ``known_mm``; ValueError for an unusable one."""
        self.document.set_calibration(Calibration.from_line(points, known_mm))
        cal = self.sheet.calibration
        assert cal is not None
        self.measured.emit(f"Calibrated: {cal.mm_per_px:.4g} mm per pixel (every length says so).")

    def remove_calibration(self) -> None:
        self.document.set_calibration(None)

    def export_json(self, path: str | Path) -> Path:
        if self._image is None:
            raise AnnotationError("open an image first; there is nothing to export")
        return export_json(path, self.sheet, self._image)

    def export_gsps(self, path: str | Path) -> Path:
        from fpsm_core.export.measurements import write_measurements_gsps

        if self._image is None:
            raise AnnotationError("open an image first; there is nothing to export")
        return write_measurements_gsps(self.sheet, self._image, path)

    def _announce(self, annotation: Annotation) -> None:
        if annotation.kind == "length":
            value = self.measurement(annotation)
            self.measured.emit(f"Distance: {value.text}")
        else:
            self.measured.emit(self.describe(annotation))

    # -- mouse -------------------------------------------------------------------------------
    def _image_point(self, scene_pos: QPointF) -> Point:
        p = self._view.frame.mapFromScene(scene_pos)
        return (float(p.x()), float(p.y()))

    def _tolerance(self) -> float:
        return HIT_PX / max(self._view.screen_per_image(), 1e-9)

    def hit(self, p: Point, scene_pos: QPointF | None = None) -> tuple[str, str, int] | None:
        """("point", id, index) on a handle, ("move", id, -1) on a line, shape or label; else None.

        With a drawing tool only handles are taken, so a new ROI can start over an old one.
        """
        tol = self._tolerance()
        bodies = self._state.tool == "none"
        order = sorted(self.annotations, key=lambda a: a.id != self.selected)  # selected first
        for annotation in order:
            for i, q in enumerate(annotation.points):
                if math.hypot(p[0] - q[0], p[1] - q[1]) <= tol and annotation.kind != "text":
                    return ("point", annotation.id, i)
        for annotation in reversed(order if bodies else []):
            if body_distance(annotation, p) <= tol:
                return ("move", annotation.id, -1)
            _, label = self._items.get(annotation.id, (None, None))
            if (
                scene_pos is not None
                and label is not None
                and label.isVisible()
                and label.sceneBoundingRect().contains(scene_pos)
            ):
                return ("move", annotation.id, -1)
        return None

    def view_drag(self, ev: Any) -> bool:
        """The view box's left drags; False hands the drag back (pan)."""
        if ev.button() != Qt.MouseButton.LeftButton or self._image is None:
            return False
        if ev.isStart():
            self._declined = False
            start_scene = ev.buttonDownScenePos()
            start = self._image_point(start_scene)
            found = None if self._pending else self.hit(start, start_scene)
            if found is not None:
                mode, annotation_id, index = found
                self._drag = (mode, annotation_id, index, start)
                self.select(annotation_id)
            elif self._state.tool not in ("none", "text"):
                self._drag = ("draw", None, -1, start)
                # A drag that starts on the last point drawn continues from it (an angle's arm).
                # A drag whose start would be the last point is one point: its end.
                far = not self._pending or math.dist(self._pending[-1], start) > self._tolerance()
                if far and len(self._pending) + 1 < self._needed():
                    self._pending.append(start)
                self._float = start
            else:
                self._declined = True
                return False
        if self._declined or self._drag is None:
            return False
        ev.accept()
        self._drag_to(self._image_point(ev.scenePos()), finish=ev.isFinish())
        return True

    def _drag_to(self, here: Point, finish: bool) -> None:
        assert self._drag is not None
        mode, annotation_id, index, start = self._drag
        if mode == "draw":
            self._float = here
            if finish:
                self._drag = None
                self._add_point(here)
            else:
                self._update_pending()
            return
        base = self.sheet.get(annotation_id or "")
        if base is None:
            self._drag = None
            return
        if mode == "point":
            live = base.with_point(index, here)
        else:
            live = base.moved(here[0] - start[0], here[1] - start[1])
        if finish:
            self._drag = None
            self._live = None
            self.document.update(live)
            self._announce(live)
        else:
            self._live = live
            if live.id in self._items:
                self._show(live)

    def view_click(self, ev: Any) -> bool:
        """The view box's left clicks: add a point, select, edit; False when not ours."""
        if ev.button() != Qt.MouseButton.LeftButton or self._image is None:
            return False
        scene_pos = ev.scenePos()
        p = self._image_point(scene_pos)
        tool = self._state.tool
        if self._pending:
            self._add_point(p)
            return True
        found = self.hit(p, scene_pos)
        if found is not None:
            self.select(found[1])
            if ev.double():
                self.edit_text(found[1])
            return True
        if tool == "text":
            self._ask_text(p)
            return True
        if tool != "none":
            self._pending = [p]  # the next point follows the cursor until the next click
            self._float = p
            self._update_pending()
            return True
        self.select(None)
        return False

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._pending and self._drag is None and self._float is not None:
            self._float = self._image_point(scene_pos)
            self._update_pending()
        elif self._drag is None and self._image is not None:
            # Say what a press would take: a handle (point), an annotation (move), else the tool.
            found = self.hit(self._image_point(scene_pos), scene_pos) if self.annotations else None
            shape = self._tool_cursor()
            if found is not None:
                shape = (
                    Qt.CursorShape.PointingHandCursor
                    if found[0] == "point"
                    else Qt.CursorShape.SizeAllCursor
                )
            if self._view.view.cursor().shape() != shape:
                self._view.view.setCursor(shape)

    def _tool_cursor(self) -> Qt.CursorShape:
        none = self._state.tool == "none"
        return Qt.CursorShape.ArrowCursor if none else Qt.CursorShape.CrossCursor

    # -- drawing -----------------------------------------------------------------------------
    def _needed(self) -> int:
        tool = self._state.tool
        return 2 if tool == "calibrate" else N_POINTS.get(tool, 2)

    def _update_pending(self) -> None:
        kind = self._state.tool
        points = list(self._pending)
        if self._float is not None and len(points) < self._needed():
            points.append(self._float)
        if kind == "ctr":
            points = list(constrain(kind, points))
        if self._pending_item is None:
            self._pending_item = AnnotationItem(kind, points, self._view.frame)
            self._pending_label = make_label(self._view.frame)
        self._pending_item.kind = kind
        self._pending_item.set_points(points)
        self._pending_label.setText(self._live_text(kind, points))
        if points:
            done = len(points) == self._needed() and kind != "calibrate"
            self._pending_label.setPos(
                QPointF(*(label_anchor(kind, points) if done else points[-1]))
            )
            self._side(self._pending_label)

    def _live_text(self, kind: str, points: list[Point]) -> str:
        """What the annotation being drawn measures so far: the heart span alone, then the CTR."""
        if kind == "calibrate" and len(points) == 2:
            return f"{math.dist(points[0], points[1]):.1f} px: its length in mm follows"
        if kind == "ctr" and 2 <= len(points) < 4:
            spacing = self.spacing
            width = abs(points[1][0] - points[0][0]) * (spacing.col_mm if spacing else 1.0)
            return f"heart {width:.1f} {'mm' if spacing else 'px'}: now the thorax span"
        if len(points) != N_POINTS.get(kind, 0) or kind in ("text", "arrow"):
            return ""
        return self.measurement(Annotation("", kind, tuple(points))).text

    def _add_point(self, p: Point) -> None:
        """Fix the next point; make the annotation once the tool has them all."""
        if math.dist(self._pending[-1], p) < 1.0:
            self._float = p  # a click on the last point (or a tiny drag): keep drawing
            self._update_pending()
            return
        self._pending.append(p)
        self._float = p
        if len(self._pending) < self._needed():
            self._update_pending()
            return
        kind, points = self._state.tool, list(self._pending)
        self.cancel_drawing()
        if kind == "calibrate":
            self._ask_calibration((points[0], points[1]))
            return
        annotation = new_annotation(kind, points)
        self.add(annotation)
        if kind == "arrow":
            self.edit_text(annotation.id)  # an arrow usually says what it points at

    def cancel_drawing(self) -> None:
        """Drop a half-drawn annotation (Esc, another tool, another image)."""
        self._pending = []
        self._float = None
        self._drag = None
        if self._pending_item is not None:
            self._drop_items((self._pending_item, self._pending_label))
            self._pending_item = None

    @property
    def drawing(self) -> bool:
        return bool(self._pending)

    def _on_state_tool_changed(self, tool: str) -> None:
        self.cancel_drawing()
        self._view.view.setCursor(self._tool_cursor())

    # -- text --------------------------------------------------------------------------------
    def edit_text(self, annotation_id: str) -> None:
        """Open the inline editor on an annotation's text (a note, or the text of a mark)."""
        annotation = self.sheet.get(annotation_id)
        if annotation is None:
            return
        self._editing = ("text", annotation_id)
        self.editor.open(
            annotation.text, "text or note", label_anchor(annotation.kind, annotation.points)
        )
        self._place_editor()

    def _ask_text(self, point: Point) -> None:
        self._editing = ("new_text", point)
        self.editor.open("", "type the text, Enter", point)
        self._place_editor()

    def _ask_calibration(self, points: tuple[Point, Point]) -> None:
        self._editing = ("calibrate", points)
        self.editor.open("", "known length in mm, Enter", points[1])
        self._place_editor()

    def _place_editor(self) -> None:
        if self.editor.isVisible() and self.editor.anchor is not None:
            scene = self._view.frame.mapToScene(QPointF(*self.editor.anchor))
            self.editor.place(self._view.graphics.mapFromScene(scene))

    def _on_editor_committed(self, text: str) -> None:
        editing, self._editing = self._editing, None
        if editing is None:
            return
        what, subject = editing
        if what == "text":
            self.set_text(subject, text)
            annotation = self.sheet.get(subject)
            if annotation is not None:
                self._announce(annotation)
        elif what == "new_text":
            if text.strip():
                self.add(new_annotation("text", [subject], text.strip()))
        elif what == "calibrate":
            try:
                known = float(text.replace(",", ".").replace("mm", "").strip())
                self.calibrate(subject, known)
            except ValueError as exc:
                reason = str(exc) if "must" in str(exc) else f"{text!r} is not a length in mm"
                self.error.emit(f"Calibration not set: {reason}.")


def item_colour(selected: bool) -> str:
    from viewer.annotations.graphics import COLOUR, SELECTED

    return SELECTED if selected else COLOUR


def open_store(index_cache: Any) -> tuple[AnnotationStore | None, str]:
    """The store in the study index file the viewer uses (None when caching is off) and a problem."""
    if index_cache is False:
        return None, ""
    from fpsm_core.io.index_cache import default_cache_path

    path = Path(index_cache) if index_cache is not None else default_cache_path()
    try:
        return AnnotationStore(path), ""
    except FpsmError as exc:
        return None, str(exc)
