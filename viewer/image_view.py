"""The diagnostic image view: window/level, zoom, pan, rotate, flip, cursor readout, ruler, CAM overlay.

Built from pyqtgraph parts (``ViewBox`` + ``ImageItem`` + ``HistogramLUTItem``) rather than the
all-in-one ``ImageView``. Everything drawn on the film (the image, the CAM overlay, rulers) is a
child of one *frame* item whose coordinates are image pixels (x = column, y = row); rotation and
flips are that frame's transform, so mapping the cursor back to a pixel is one ``mapFromScene``
whatever the orientation. The image item shows only the pyramid level and crop the screen needs
(:mod:`viewer.display`), which keeps W/L and panning within a frame on 3000x3000 16-bit films.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter, QTransform
from PySide6.QtWidgets import QGraphicsItem, QLabel, QVBoxLayout, QWidget

from viewer import display
from viewer.theme import configure_pyqtgraph

if TYPE_CHECKING:
    from fpsm_core.io.image import XRayImage

PRESET_NAMES = ("dicom", "auto", "lung", "soft tissue", "bone")
# Presets for radiographs, as fractions of the robust (0.5-99.5 percentile) value range: pixel values
# of projection films are not Hounsfield units, so CT's fixed windows cannot be reused. Lung fields
# are the darker part of a display-sense film, bone the brightest, soft tissue in between.
RELATIVE_PRESETS = {
    "lung": (0.30, 0.65),
    "soft tissue": (0.55, 0.50),
    "bone": (0.78, 0.45),
}


@dataclass(frozen=True)
class CursorInfo:
    """What lies under the mouse: pixel indices, value and position in mm (None when unknown)."""

    row: int
    col: int
    value: float
    y_mm: float | None
    x_mm: float | None

    def readout(self) -> str:
        """The status bar's line: position in mm (else pixels) and value."""
        where = (
            f"x {self.x_mm:.1f} mm, y {self.y_mm:.1f} mm"
            if self.x_mm is not None
            else f"col {self.col}, row {self.row} (spacing unknown)"
        )
        return f"{where}   value {self.value:.6g}"


def distance_mm(
    p0: tuple[float, float], p1: tuple[float, float], spacing: tuple[float, float] | None
) -> tuple[float, str]:
    """Length of a segment given in image (x, y) pixels: (value, unit) in mm, or pixels.

    Args:
        spacing: (row, column) pixel spacing in mm, None when unknown.
    """
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if spacing is None:
        return (math.hypot(dx, dy), "px")
    return (math.hypot(dx * spacing[1], dy * spacing[0]), "mm")


def window_presets(
    window: tuple[float, float] | None, robust: tuple[float, float]
) -> dict[str, tuple[float, float]]:
    """Named (center, width) windows for a film.

    Args:
        window: the file's own window, shown as "dicom" (else the robust range).
        robust: (low, high) robust value range of the image.
    """
    lo, hi = robust
    span = max(hi - lo, 1e-6)
    presets: dict[str, tuple[float, float]] = {}
    presets["dicom"] = tuple(window) if window is not None else ((lo + hi) / 2, span)  # type: ignore[assignment]
    presets["auto"] = ((lo + hi) / 2, span)
    for name, (fc, fw) in RELATIVE_PRESETS.items():
        presets[name] = (lo + fc * span, fw * span)
    return presets


class ImageViewBox(pg.ViewBox):
    """A ViewBox where right-drag is window/level and left-drag draws rulers in ruler mode."""

    window_dragged = Signal(float, float)
    window_drag_started = Signal()
    window_drag_finished = Signal()
    ruler_started = Signal(object)
    ruler_moved = Signal(object)
    ruler_finished = Signal(object)
    ruler_clicked = Signal(object)

    def __init__(self) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.ruler_mode = False
        # An annotation controller (viewer.annotations) offered every left drag and click first;
        # its ``view_drag(ev)`` / ``view_click(ev)`` return True when they took the event.
        self.tool_handler: Any = None

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt name)
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self.window_drag_started.emit()
            delta = ev.pos() - ev.lastPos()
            self.window_dragged.emit(float(delta.x()), float(delta.y()))
            if ev.isFinish():
                self.window_drag_finished.emit()
            return
        if self.tool_handler is not None and self.tool_handler.view_drag(ev):
            return
        if self.ruler_mode and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():
                self.ruler_started.emit(ev.buttonDownScenePos())
            self.ruler_moved.emit(ev.scenePos())
            if ev.isFinish():
                self.ruler_finished.emit(ev.scenePos())
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 (Qt name)
        ev.accept()  # no context menu, no auto-range on right click
        if self.tool_handler is not None and self.tool_handler.view_click(ev):
            return
        if self.ruler_mode and ev.button() == Qt.MouseButton.LeftButton:
            self.ruler_clicked.emit(ev.scenePos())


class _FrameItem(pg.GraphicsObject):
    """Parent of everything drawn on the film; its transform is the rotation/flip."""

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, 1, 1)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)  # Qt skips paint()

    def set_size(self, width: int, height: int) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(0, 0, width, height)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return self._rect

    def paint(self, painter: QPainter, *args: Any) -> None:
        pass


class FilmItem(pg.GraphicsObject):
    """Paints one premultiplied-ARGB32 array into a rectangle of its parent's coordinates.

    Qt blits ARGB32 at any scale several times faster than it converts an 8-bit grey image
    (measured 0.5 ms against 4 ms for a 1 Mpx draw), so both the film and the CAM overlay are
    handed to Qt in its native pixel format, skipping pyqtgraph's generic image pipeline.
    """

    def __init__(self, smooth: bool = False) -> None:
        super().__init__()
        self._array: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._rect = QRectF(0, 0, 1, 1)
        self.smooth = smooth

    def set_array(self, argb: np.ndarray | None, rect: QRectF | None = None) -> None:
        """Show a (h, w) uint32 premultiplied ARGB array over ``rect`` (None: show nothing)."""
        if rect is not None and rect != self._rect:
            self.prepareGeometryChange()
            self._rect = QRectF(rect)
        if argb is None:
            self._array, self._qimage = None, None
        else:
            self._array = np.ascontiguousarray(argb, dtype=np.uint32)
            h, w = self._array.shape
            self._qimage = QImage(
                self._array.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied
            )
        self.update()

    @property
    def array(self) -> np.ndarray | None:
        return self._array

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return self._rect

    def paint(self, painter: QPainter, *args: Any) -> None:
        image = self._qimage
        if image is None:
            return
        device = painter.device()
        unit = device is None or device.devicePixelRatioF() == 1.0
        origin = (
            device_blit_origin(painter.transform(), self._rect, image.width(), image.height())
            if unit
            else None
        )
        if origin is not None:
            # One image pixel per device pixel: a plain blit, 3-5x cheaper than Qt's scaled
            # draw, which it takes for any scaled painter even when the scales cancel out.
            painter.save()
            painter.resetTransform()
            painter.drawImage(origin, image)
            painter.restore()
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
        painter.drawImage(self._rect, image)


def device_blit_origin(
    device: QTransform, rect: QRectF, width: int, height: int, tolerance: float = 0.25
) -> QPoint | None:
    """Where to blit a ``width`` x ``height`` image drawn over ``rect`` unscaled, or None.

    None unless ``device`` (item to device pixels) is an unrotated, unmirrored scale under
    which the image's pixels come out one device pixel each, to within ``tolerance`` of a pixel
    over the whole image, on a device of one pixel per logical pixel. The origin is the rect's
    corner rounded to the nearest device pixel: what Qt's nearest-pixel draw does with a
    fractional position.
    """
    if device.type().value > QTransform.TransformationType.TxScale.value or width < 1 or height < 1:
        return None
    sx = device.m11() * rect.width() / width
    sy = device.m22() * rect.height() / height
    if abs(sx - 1.0) * width > tolerance or abs(sy - 1.0) * height > tolerance:
        return None
    corner = device.map(rect.topLeft())
    return QPoint(math.floor(corner.x() + 0.5), math.floor(corner.y() + 0.5))


class WindowHistogram(pg.HistogramLUTItem):
    """The film's histogram with its window region, without pyqtgraph's colour gradient.

    pyqtgraph draws lines from the region's ends to the gradient bar on every repaint; the
    gradient is hidden here (the film is grey), so those were two stray diagonal strokes at the
    histogram's ends, and a fifth of the cost of repainting a view during a W/L drag.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents)  # Qt skips paint()

    def paint(self, painter: QPainter, *args: Any) -> None:
        pass


def grey_to_argb(lut8: np.ndarray) -> np.ndarray:
    """uint8 grey table to opaque ARGB32 (uint32) of the same length."""
    grey = lut8.astype(np.uint32)
    return (grey * np.uint32(0x010101)) | np.uint32(0xFF000000)


def histogram_item() -> WindowHistogram:
    """The film's :class:`WindowHistogram`, built without importing matplotlib.

    Its gradient editor (hidden here) builds a colour-map menu that lists matplotlib's maps
    outside its own categories, and listing them imports ``matplotlib.pyplot``: +58 MiB RSS
    and ~0.6 s before the window shows, for a menu this viewer never opens. The listing is
    skipped while the item is built (on the GUI thread); the menu's category submenus still
    import matplotlib if ever opened.
    """
    from pyqtgraph.widgets import ColorMapMenu as menu_module

    leftovers = menu_module.find_mpl_leftovers
    menu_module.find_mpl_leftovers = list  # no extra maps: an empty list
    try:
        return WindowHistogram(fillHistogram=True)
    finally:
        menu_module.find_mpl_leftovers = leftovers


class ImageViewWidget(QWidget):
    """The film: shows an image (anything with ``pixels``, ``window``, ``spacing_mm``).

    Signals:
        window_changed(center, width): after every W/L change (during a preview, once at its end).
        window_drag_started(), window_drag_finished(): the user's right-drag W/L began, ended.
        cursor_moved(CursorInfo | None): pixel under the mouse (None when outside the film).
        ruler_measured(length, unit): when a ruler is drawn or edited.
        view_changed(): zoom/pan/orientation changed.
    """

    window_changed = Signal(float, float)
    window_drag_started = Signal()
    window_drag_finished = Signal()
    cursor_moved = Signal(object)
    ruler_measured = Signal(float, str)
    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        configure_pyqtgraph()
        self.graphics = pg.GraphicsLayoutWidget()
        self.view = ImageViewBox()
        self.graphics.addItem(self.view, row=0, col=0)
        self.histogram = histogram_item()
        self.histogram.gradient.hide()
        # The histogram curve and axis only change with the image: repaint them from a cache on
        # W/L changes (halves the repaint cost of the whole view).
        # The window's region too: it moves with W/L, but in a view that follows another one's
        # drag (viewer.view_links) it stays put, and a cached region costs a blit, not a blend.
        # The curve is drawn turned by 90 degrees, and Qt re-renders a turned item's device
        # cache on every paint: it paints directly, which is cheaper.
        region = self.histogram.region
        for item in (self.histogram.axis, region, *region.lines):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.histogram.setMaximumWidth(110)
        self.graphics.addItem(self.histogram, row=0, col=1)
        self.frame = _FrameItem()
        self.view.addItem(self.frame)
        self.image_item = FilmItem()
        self.image_item.setParentItem(self.frame)
        self.overlay_item = FilmItem(smooth=True)  # a low-resolution map, always interpolated
        self.overlay_item.setParentItem(self.frame)
        self.overlay_item.setZValue(10)
        self.overlay_item.setVisible(False)
        # The scene fills the whole view with its solid background: without this, Qt painted the
        # style sheet's background of the view and of every widget under it first, each repaint
        # (a third of a W/L step's repaint of an 800x800 view).
        self.graphics.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.info_label = QLabel(self.graphics)
        self.info_label.setObjectName("overlayText")
        self.info_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.status_label = QLabel(self.graphics)
        self.status_label.setObjectName("overlayText")
        self.status_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        # What the overlay on the film is (finding, level, member, model): set by its binding.
        self.caption_label = QLabel(self.graphics)
        self.caption_label.setObjectName("overlayText")
        self.caption_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.caption_label.setWordWrap(True)  # never runs under the histogram: wraps instead
        self.caption_label.hide()

        self._image: XRayImage | None = None
        self._pyramid: display.DisplayPyramid | None = None
        self._window = (0.0, 1.0)
        self._function = "LINEAR"
        self._invert = False
        self._lut: np.ndarray | None = None
        self._lut_argb: np.ndarray | None = None
        self._presets: dict[str, tuple[float, float]] = {}
        self._orientation = np.eye(2, dtype=int)
        self._rendered: tuple[int, tuple[int, int, int, int]] | None = None
        self._codes: np.ndarray | None = None
        self._codes_key: tuple[int, tuple[int, int, int, int], float] | None = None
        self._codes_rect = (0.0, 0.0, 1.0, 1.0)
        self._rulers: list[tuple[pg.LineSegmentROI, pg.TextItem]] = []
        self._drawing: pg.LineSegmentROI | None = None
        # A ruler begun by a click whose end follows the cursor until the second click.
        self._clicked: pg.LineSegmentROI | None = None
        self._syncing_histogram = False
        self._render_pending = False
        self.render_count = 0
        # While another view's W/L drag leads this one (viewer.view_links): the window is shown
        # from codes at half the screen's resolution, and the histogram and W/L text wait for
        # the exact frame that ending the preview draws.
        self._previewing = False
        self._preview_codes: np.ndarray | None = None
        # A spacing drawn on the film (a calibration; viewer.annotations sets it): the one its
        # lengths use, so the millimetre link of viewer.view_links uses it too.
        self._calibration_mm: tuple[float, float] | None = None

        self.view.window_dragged.connect(self._on_view_window_dragged)
        self.view.window_drag_started.connect(self.window_drag_started)
        self.view.window_drag_finished.connect(self.window_drag_finished)
        self.view.ruler_started.connect(self._on_view_ruler_started)
        self.view.ruler_moved.connect(self._on_view_ruler_moved)
        self.view.ruler_finished.connect(self._on_view_ruler_finished)
        self.view.ruler_clicked.connect(self._on_view_ruler_clicked)
        self.view.sigRangeChanged.connect(self._on_view_range_changed)
        self.histogram.sigLevelsChanged.connect(self._on_histogram_levels_changed)
        self.graphics.scene().sigMouseMoved.connect(self._on_scene_mouse_moved)

    # -- image -----------------------------------------------------------------------------
    @property
    def image(self) -> XRayImage | None:
        return self._image

    @property
    def pyramid(self) -> display.DisplayPyramid | None:
        return self._pyramid

    def set_image(
        self,
        image: XRayImage,
        pyramid: display.DisplayPyramid | None = None,
        *,
        invert: bool | None = None,
    ) -> None:
        """Show a new film at its own window, fitted, upright; clears rulers and overlay.

        Args:
            image: an ``XRayImage`` (or any object with ``pixels``, ``window``, ``spacing_mm``).
            pyramid: a pyramid already built for it off the GUI thread, else built here.
            invert: show it inverted (None keeps the current choice).
        """
        if invert is not None:
            self._invert = bool(invert)
        self._image = image
        self._pyramid = pyramid if pyramid is not None else display.build_pyramid(image.pixels)
        rows, cols = self._pyramid.shape
        self.frame.set_size(cols, rows)
        self._orientation = np.eye(2, dtype=int)
        self._apply_orientation()
        self.clear_rulers()
        self.set_overlay(None)
        self.status_label.setText("")  # the previous film's cursor value is not this film's
        self._function = str(getattr(image, "voi_function", "LINEAR") or "LINEAR")
        robust = display.robust_range(self._pyramid)
        center, width = image.window
        self._presets = window_presets((float(center), float(width)), robust)
        values, counts = display.histogram(self._pyramid)
        self.histogram.plot.setData(values, counts)
        lo, hi = self._pyramid.value_range()
        self.histogram.setHistogramRange(lo, hi, padding=0.02)
        # The counts' axis fixed once per film: left on auto-range, pyqtgraph re-measured every
        # child of the histogram on each W/L step (the region moved), 0.2 ms a step.
        curve = self.histogram.plot  # drawn turned by 90 degrees: its counts run along x
        counts_rect = curve.mapRectToParent(curve.boundingRect())
        self.histogram.vb.setXRange(counts_rect.left(), counts_rect.right(), padding=0.02)
        self._invalidate()
        self.fit()
        self.set_window(*self._presets["dicom"])
        self._update_info()

    def clear(self) -> None:
        """Show nothing."""
        self._image = None
        self._pyramid = None
        self._invalidate()
        self.image_item.set_array(None)
        self.set_overlay(None)
        self.clear_rulers()
        self.histogram.plot.setData([], [])  # a broken file must not show the last film's values
        self.info_label.setText("")
        self.status_label.setText("")

    # -- window / level --------------------------------------------------------------------
    @property
    def window_level(self) -> tuple[float, float]:
        """The current (center, width); not called ``window`` so QWidget.window() stays intact."""
        return self._window

    @property
    def inverted(self) -> bool:
        return self._invert

    def presets(self) -> dict[str, tuple[float, float]]:
        return dict(self._presets)

    def apply_preset(self, name: str) -> None:
        """Set a named window (see :func:`window_presets`); unknown names raise KeyError."""
        self.set_window(*self._presets[name])

    def set_window(self, center: float, width: float) -> None:
        if self._pyramid is None:
            return
        width = max(float(width), self._pyramid.step, 1e-6)
        self._window = (float(center), width)
        self._lut = display.window_lut(self._pyramid, center, width, self._function, self._invert)
        self._lut_argb = grey_to_argb(self._lut)
        if self._previewing and self._render_preview():
            return
        self._render(force=True)
        self._syncing_histogram = True
        try:
            self.histogram.setLevels(center - width / 2, center + width / 2)
        finally:
            self._syncing_histogram = False
        self._update_info()
        self.window_changed.emit(self._window[0], self._window[1])

    # -- calibration ------------------------------------------------------------------------
    @property
    def calibration_mm(self) -> tuple[float, float] | None:
        """(row, column) mm per pixel calibrated on the film by the reader; None when not."""
        return self._calibration_mm

    def set_calibration(self, spacing: tuple[float, float] | None) -> None:
        self._calibration_mm = None if spacing is None else (float(spacing[0]), float(spacing[1]))

    # -- preview while another view leads a W/L drag ---------------------------------------
    @property
    def previewing(self) -> bool:
        return self._previewing

    def begin_preview(self) -> None:
        """Show W/L changes coarsely (half the screen resolution) until :meth:`end_preview`."""
        self._previewing = True

    def end_preview(self) -> None:
        """Draw the exact frame at the current window: what :meth:`set_window` draws unlinked."""
        if not self._previewing:
            return
        self._previewing = False
        self._preview_codes = None
        if self._pyramid is not None:  # the screen codes are still cached: only the table runs
            self.set_window(*self._window)

    def _render_preview(self) -> bool:
        """The cached screen codes halved (area mean) through the new table; False: not ready."""
        codes = self._codes
        if codes is None or self._lut_argb is None or min(codes.shape) < 4:
            return False
        if self._preview_codes is None:
            half = (max(1, codes.shape[1] // 2), max(1, codes.shape[0] // 2))
            self._preview_codes = cv2.resize(codes, half, interpolation=cv2.INTER_AREA)
        argb = display.apply_lut(self._preview_codes, self._lut_argb)
        self.image_item.set_array(argb, QRectF(*self._codes_rect))
        self.render_count += 1
        return True

    def set_inverted(self, inverted: bool) -> None:
        self._invert = bool(inverted)
        self.set_window(*self._window)

    # -- orientation and zoom --------------------------------------------------------------
    def rotate(self, degrees: int) -> None:
        """Rotate by a multiple of 90 degrees, clockwise on screen."""
        turns = (int(degrees) // 90) % 4
        clockwise = np.array([[0, -1], [1, 0]], dtype=int)
        for _ in range(turns):
            self._orientation = clockwise @ self._orientation
        self._apply_orientation()
        self.fit()

    def flip_horizontal(self) -> None:
        self._orientation = np.array([[-1, 0], [0, 1]], dtype=int) @ self._orientation
        self._apply_orientation()
        self.fit()

    def flip_vertical(self) -> None:
        self._orientation = np.array([[1, 0], [0, -1]], dtype=int) @ self._orientation
        self._apply_orientation()
        self.fit()

    def reset_orientation(self) -> None:
        self._orientation = np.eye(2, dtype=int)
        self._apply_orientation()
        self.fit()

    @property
    def orientation(self) -> np.ndarray:
        return self._orientation.copy()

    def set_orientation(self, matrix: np.ndarray) -> None:
        """Show the film through a 2x2 rotation/flip matrix (as ``orientation`` returns it)."""
        self._orientation = np.asarray(matrix, dtype=int).copy()
        self._apply_orientation()

    def fit(self) -> None:
        """Show the whole film."""
        if self._pyramid is None:
            return
        rect = self.frame.mapRectToParent(self.frame.boundingRect())
        self.view.setRange(rect=rect, padding=0.01)
        self._schedule_render()

    def one_to_one(self) -> None:
        """One image pixel per screen pixel, around the current centre."""
        sx, sy = self.view.viewPixelSize()
        if sx > 0 and sy > 0:
            self.view.scaleBy(x=1.0 / sx, y=1.0 / sy, center=self.view.viewRect().center())
            self._schedule_render()

    def zoom(self, factor: float) -> None:
        """Zoom in by ``factor`` (>1) or out (<1) around the centre."""
        self.view.scaleBy(s=(1.0 / factor, 1.0 / factor), center=self.view.viewRect().center())
        self._schedule_render()

    def screen_per_image(self) -> float:
        sx, sy = self.view.viewPixelSize()
        size = max(sx, sy)
        return 1.0 / size if size > 0 else 1.0

    def _apply_orientation(self) -> None:
        m = self._orientation
        rect = self.frame.boundingRect()
        c = np.array([rect.width() / 2, rect.height() / 2])
        d = c - m @ c
        # QTransform maps x' = m11 x + m21 y + dx, y' = m12 x + m22 y + dy.
        transform = QTransform(
            float(m[0, 0]), float(m[1, 0]), float(m[0, 1]), float(m[1, 1]), float(d[0]), float(d[1])
        )
        self.frame.setTransform(transform)
        self._invalidate()
        self.view_changed.emit()

    # -- rendering -------------------------------------------------------------------------
    def _schedule_render(self) -> None:
        if not self._render_pending:
            self._render_pending = True
            QTimer.singleShot(0, self._deferred_render)

    def _deferred_render(self) -> None:
        self._render_pending = False
        self._render()

    def _visible_rect(self) -> tuple[float, float, float, float]:
        rect = self.frame.mapRectFromParent(self.view.viewRect())
        return (rect.x(), rect.y(), rect.width(), rect.height())

    def _render(self, force: bool = False) -> None:
        """Show the level and crop the screen needs, resampled to screen pixels when zoomed out.

        Pan and zoom re-crop (and, zoomed out, area-resample the uint16 codes to the screen grid);
        a W/L change (``force``) only looks the cached codes up through the new table, so its cost
        scales with the screen, not with the film.
        """
        if self._pyramid is None or self._lut is None:
            return
        pyr = self._pyramid
        scale = self.screen_per_image()
        level = display.pick_level(pyr, scale)
        visible = self._visible_rect()
        needed = display.crop_for_view(pyr, level, visible, margin=0.0)
        cached = self._codes_key
        reuse = (
            cached is not None
            and cached[0] == level
            and abs(cached[2] - scale) <= 1e-3 * scale
            and cached[1][0] <= needed[0]
            and cached[1][1] <= needed[1]
            and cached[1][2] >= needed[2]
            and cached[1][3] >= needed[3]
        )
        if reuse and not force:
            return
        if not reuse:
            crop = display.crop_for_view(pyr, level, visible, margin=0.1)
            grid = self._device_grid()
            if grid is not None and display.downsampled(pyr, level, scale):
                # On the device's own pixel grid: the film item then blits it unscaled.
                self._codes, self._codes_rect = display.device_codes(pyr, level, crop, *grid)
            else:
                self._codes = display.screen_codes(pyr, level, crop, scale)
                self._codes_rect = display.level_rect(pyr, level, crop)
            self._preview_codes = None  # a preview is made from the codes on screen
            self._codes_key = (level, crop, scale)
            # Zoomed out, the codes are already on the screen grid; zoomed in, magnify smoothly.
            self.image_item.smooth = scale > 1.01
        assert (
            self._codes is not None and self._codes_key is not None and self._lut_argb is not None
        )
        argb = display.apply_lut(self._codes, self._lut_argb)
        self.image_item.set_array(argb, QRectF(*self._codes_rect))
        self._rendered = (level, self._codes_key[1])
        self.render_count += 1

    def _device_grid(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """(device position of the film's corner, device pixels per film pixel) when the film
        shows unrotated and unmirrored on a one-pixel-per-pixel screen; else None."""
        transform = self.image_item.deviceTransform(self.graphics.viewportTransform())
        if transform is None or self.graphics.viewport().devicePixelRatioF() != 1.0:
            return None
        if transform.type().value > QTransform.TransformationType.TxScale.value:
            return None
        if transform.m11() <= 0 or transform.m22() <= 0:
            return None
        return (transform.dx(), transform.dy()), (transform.m11(), transform.m22())

    def _invalidate(self) -> None:
        self._rendered = None
        self._codes = None
        self._codes_key = None
        self._preview_codes = None

    def displayed_array(self) -> np.ndarray | None:
        """The uint8 grey array the film item currently shows (a level crop, on screen pixels)."""
        argb = self.image_item.array
        return None if argb is None else (argb & np.uint32(0xFF)).astype(np.uint8)

    def rendered_level(self) -> int | None:
        return None if self._rendered is None else self._rendered[0]

    # -- overlay ---------------------------------------------------------------------------
    def set_overlay(self, argb: np.ndarray | None) -> None:
        """Show an (h, w) uint32 premultiplied-ARGB map stretched over the whole film, or hide it."""
        if argb is None or self._pyramid is None:
            self.overlay_item.setVisible(False)
            self.overlay_item.set_array(None)
            return
        rows, cols = self._pyramid.shape
        self.overlay_item.set_array(argb, QRectF(0, 0, cols, rows))
        self.overlay_item.setVisible(True)

    def overlay_array(self) -> np.ndarray | None:
        """The premultiplied ARGB32 overlay shown, or None when hidden."""
        if not self.overlay_item.isVisible():
            return None
        return self.overlay_item.array

    # -- rulers ----------------------------------------------------------------------------
    def set_ruler_mode(self, enabled: bool) -> None:
        """Left-drag or click-click draws rulers; leaving the mode drops a half-drawn one."""
        if not enabled and self._clicked is not None:
            self._remove_ruler(self._clicked)
        self.view.ruler_mode = bool(enabled)
        self.view.setCursor(Qt.CursorShape.CrossCursor if enabled else Qt.CursorShape.ArrowCursor)

    @property
    def ruler_mode(self) -> bool:
        return self.view.ruler_mode

    def add_ruler(self, p0: tuple[float, float], p1: tuple[float, float]) -> tuple[float, str]:
        """Add a ruler between two image points (x, y); returns its length and unit."""
        roi = pg.LineSegmentROI([p0, p1], pen=pg.mkPen("#f0c040", width=2))
        roi.setParentItem(self.frame)
        label = pg.TextItem(color="#f0c040", anchor=(0, 1))
        label.setParentItem(self.frame)
        self._rulers.append((roi, label))
        roi.sigRegionChanged.connect(lambda r=roi, t=label: self._update_ruler(r, t))
        return self._update_ruler(roi, label)

    def ruler_lengths(self) -> list[tuple[float, str]]:
        return [self._measure(roi) for roi, _ in self._rulers]

    def clear_rulers(self) -> None:
        for roi, label in self._rulers:
            for item in (roi, label):
                item.setParentItem(None)
                if item.scene() is not None:
                    item.scene().removeItem(item)
        self._rulers.clear()
        self._drawing = None
        self._clicked = None

    def _remove_ruler(self, roi: pg.LineSegmentROI) -> None:
        for entry in list(self._rulers):
            if entry[0] is roi:
                for item in entry:
                    item.setParentItem(None)
                    if item.scene() is not None:
                        item.scene().removeItem(item)
                self._rulers.remove(entry)
        if self._clicked is roi:
            self._clicked = None

    def _measure(self, roi: pg.LineSegmentROI) -> tuple[float, str]:
        handles = roi.getHandles()
        p0 = roi.mapToParent(handles[0].pos())
        p1 = roi.mapToParent(handles[1].pos())
        spacing = getattr(self._image, "spacing_mm", None)
        return distance_mm((p0.x(), p0.y()), (p1.x(), p1.y()), spacing)

    def _update_ruler(self, roi: pg.LineSegmentROI, label: pg.TextItem) -> tuple[float, str]:
        length, unit = self._measure(roi)
        handles = roi.getHandles()
        end = roi.mapToParent(handles[1].pos())
        label.setText(f"{length:.1f} {unit}")
        label.setPos(end)
        self.ruler_measured.emit(length, unit)
        return length, unit

    def _on_view_ruler_started(self, scene_pos: QPointF) -> None:
        if self._pyramid is None:
            return
        if self._clicked is not None:  # a drag after a first click: start afresh
            self._remove_ruler(self._clicked)
        p = self.frame.mapFromScene(scene_pos)
        self.add_ruler((p.x(), p.y()), (p.x(), p.y()))
        self._drawing = self._rulers[-1][0]

    def _move_end(self, roi: pg.LineSegmentROI, scene_pos: QPointF, finish: bool) -> None:
        # movePoint takes the ROI's *parent* coordinates (the frame's image pixels), not the
        # scene's: the frame carries the rotation/flip and the view box the zoom and pan.
        roi.movePoint(roi.getHandles()[1], self.frame.mapFromScene(scene_pos), finish=finish)

    def _on_view_ruler_moved(self, scene_pos: QPointF) -> None:
        if self._drawing is not None:
            self._move_end(self._drawing, scene_pos, finish=False)

    def _on_view_ruler_finished(self, scene_pos: QPointF) -> None:
        if self._drawing is not None:
            self._move_end(self._drawing, scene_pos, finish=True)
            self._drawing = None

    def _on_view_ruler_clicked(self, scene_pos: QPointF) -> None:
        """Click-click measuring: the first click anchors a ruler, the second ends it."""
        if self._pyramid is None:
            return
        if self._clicked is None:
            p = self.frame.mapFromScene(scene_pos)
            self.add_ruler((p.x(), p.y()), (p.x(), p.y()))
            self._clicked = self._rulers[-1][0]
        else:
            self._move_end(self._clicked, scene_pos, finish=True)
            self._clicked = None

    # -- events ----------------------------------------------------------------------------
    def _on_view_window_dragged(self, dx: float, dy: float) -> None:
        if self._pyramid is None:
            return
        lo, hi = display.robust_range(self._pyramid)
        per_pixel = max(hi - lo, 1e-6) / 400.0
        center, width = self._window
        self.set_window(center - dy * per_pixel, width + dx * per_pixel)

    def _on_histogram_levels_changed(self, *_: Any) -> None:
        if self._syncing_histogram or self._pyramid is None:
            return
        lo, hi = self.histogram.getLevels()
        self.set_window((lo + hi) / 2, hi - lo)

    def _on_view_range_changed(self, *_: Any) -> None:
        self._schedule_render()
        self._update_info()
        self.view_changed.emit()

    def _on_scene_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._clicked is not None:
            self._move_end(self._clicked, scene_pos, finish=False)
        info = self.cursor_info(scene_pos)
        if info is not None:
            # The same labelled line as the status bar, so the two never disagree on the order.
            self.status_label.setText(info.readout())
            self.status_label.adjustSize()
            self._place_labels()
        self.cursor_moved.emit(info)

    def cursor_info(self, scene_pos: QPointF) -> CursorInfo | None:
        """Pixel, value and mm position under a scene point; None outside the film."""
        if self._image is None or self._pyramid is None:
            return None
        p = self.frame.mapFromScene(scene_pos)
        return self.pixel_info(int(math.floor(p.y())), int(math.floor(p.x())))

    def pixel_info(self, row: int, col: int) -> CursorInfo | None:
        if self._image is None:
            return None
        pixels = self._image.pixels
        if not (0 <= row < pixels.shape[0] and 0 <= col < pixels.shape[1]):
            return None
        spacing = getattr(self._image, "spacing_mm", None)
        y_mm = (row + 0.5) * spacing[0] if spacing else None
        x_mm = (col + 0.5) * spacing[1] if spacing else None
        return CursorInfo(row, col, float(pixels[row, col]), y_mm, x_mm)

    # -- corner text -----------------------------------------------------------------------
    def _update_info(self) -> None:
        if self._image is None:
            return
        center, width = self._window
        zoom = self.screen_per_image() * 100
        # Integer films get integer W/L: decimals there are drag noise, not information.
        integer = np.issubdtype(np.asarray(self._image.pixels).dtype, np.integer)
        w_text, c_text = (
            (f"{width:.0f}", f"{center:.0f}") if integer else (f"{width:.6g}", f"{center:.6g}")
        )
        lines = [f"W {w_text}  L {c_text}" + ("  (inverted)" if self._invert else "")]
        lines.append(f"zoom {zoom:.0f}%")
        spacing = getattr(self._image, "spacing_mm", None)
        if spacing:
            lines.append(f"{spacing[0]:.3g} x {spacing[1]:.3g} mm/px")
        else:
            lines.append("pixel spacing unknown: lengths in pixels")
        self.info_label.setText("\n".join(lines))
        self.info_label.adjustSize()
        self._place_labels()

    def set_caption(self, text: str) -> None:
        """The line naming what the film's overlay shows (empty: no caption)."""
        self.caption_label.setText(text)
        self.caption_label.setVisible(bool(text))
        self._place_labels()

    def _place_labels(self) -> None:
        height = self.graphics.height()
        self.info_label.move(8, max(0, height - self.info_label.height() - 8))
        # The caption keeps to the film's side of the histogram, wrapping when it is longer.
        room = max(80, int(self.view.sceneBoundingRect().width()) - 16)
        label = self.caption_label
        width = min(room, label.fontMetrics().horizontalAdvance(label.text()) + 16)
        if label.text():
            label.setFixedWidth(width)
            label.setFixedHeight(max(1, label.heightForWidth(width)))
        label.move(8, 8)
        below = self.caption_label.height() + 4 if self.caption_label.isVisibleTo(self) else 0
        self.status_label.move(8, 8 + below)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._place_labels()
        self._schedule_render()
