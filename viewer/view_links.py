"""Linked viewports: window/level, zoom and pan of one film view followed by the others.

Films from different detectors (or a PNG beside a 16-bit DICOM) do not share pixel units, so the
window travels as a fraction of each film's robust value range: the same film in two viewports
gets the same numbers, a prior from another machine gets the same *look*. Zoom and pan travel as
the part of the film shown, in the film's own pixel frame whatever its rotation: **in millimetres**
from the film's centre when both films know their pixel spacing, from the header or from a
calibration drawn on the film (a prior from a detector with other pixels shows the anatomy at the
same size), else as fractions of the film's width and height.
A guard stops the echo: a view moved by the link does not move the others back; a film opening
at its own window (a new film or frame in one viewport) moves nothing.

During a right-drag the dragged view draws every step exactly; the views that follow it draw
from their screen codes at half the resolution (a quarter of the pixels through the table) and
put off their histogram and W/L text (:meth:`~viewer.image_view.ImageViewWidget.begin_preview`).
Each followed step would otherwise cost as much as the lead's, so two linked viewports took
1.6x one (``bench/bench_viewports.py``). When the drag ends every follower draws its exact frame,
pixel for pixel what an unlinked W/L change to the same window draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRectF

from viewer import display

if TYPE_CHECKING:
    from viewer.image_view import ImageViewWidget


def relative_window(view: ImageViewWidget) -> tuple[float, float] | None:
    """The view's (center, width) as fractions of its film's robust range; None without a film."""
    pyramid = view.pyramid
    if pyramid is None:
        return None
    lo, hi = display.robust_range(pyramid)
    span = max(hi - lo, 1e-6)
    center, width = view.window_level
    return ((center - lo) / span, width / span)


def apply_relative_window(view: ImageViewWidget, relative: tuple[float, float]) -> None:
    pyramid = view.pyramid
    if pyramid is None:
        return
    lo, hi = display.robust_range(pyramid)
    span = max(hi - lo, 1e-6)
    view.set_window(lo + relative[0] * span, relative[1] * span)


def relative_rect(view: ImageViewWidget) -> tuple[float, float, float, float] | None:
    """The part of the film shown, as fractions of its width and height (film frame)."""
    pyramid = view.pyramid
    if pyramid is None:
        return None
    rows, cols = pyramid.shape
    rect = view.frame.mapRectFromParent(view.view.viewRect())
    return (rect.x() / cols, rect.y() / rows, rect.width() / cols, rect.height() / rows)


def apply_relative_rect(view: ImageViewWidget, rel: tuple[float, float, float, float]) -> None:
    pyramid = view.pyramid
    if pyramid is None:
        return
    rows, cols = pyramid.shape
    rect = QRectF(rel[0] * cols, rel[1] * rows, rel[2] * cols, rel[3] * rows)
    view.view.setRange(rect=view.frame.mapRectToParent(rect), padding=0.0)


def pixel_spacing(view: ImageViewWidget) -> tuple[float, float] | None:
    """The (row, column) mm per pixel the film's lengths use: a calibration drawn on it, else
    its own spacing; None when it has neither (or a zero)."""
    if view.calibration_mm is not None:
        return view.calibration_mm
    image = view.image
    spacing = getattr(image, "spacing_mm", None) if image is not None else None
    if not spacing:
        return None
    rows_mm, cols_mm = float(spacing[0]), float(spacing[1])
    return (rows_mm, cols_mm) if rows_mm > 0 and cols_mm > 0 else None


def physical_rect(view: ImageViewWidget) -> tuple[float, float, float, float] | None:
    """The part of the film shown in mm: (x, y) from the film's centre, width, height."""
    pyramid, spacing = view.pyramid, pixel_spacing(view)
    if pyramid is None or spacing is None:
        return None
    rows, cols = pyramid.shape
    rect = view.frame.mapRectFromParent(view.view.viewRect())
    sy, sx = spacing
    return (
        (rect.x() - cols / 2) * sx,
        (rect.y() - rows / 2) * sy,
        rect.width() * sx,
        rect.height() * sy,
    )


def apply_physical_rect(view: ImageViewWidget, mm: tuple[float, float, float, float]) -> None:
    pyramid, spacing = view.pyramid, pixel_spacing(view)
    if pyramid is None or spacing is None:
        return
    rows, cols = pyramid.shape
    sy, sx = spacing
    rect = QRectF(mm[0] / sx + cols / 2, mm[1] / sy + rows / 2, mm[2] / sx, mm[3] / sy)
    view.view.setRange(rect=view.frame.mapRectToParent(rect), padding=0.0)


class ViewLinker(QObject):
    """Keeps a set of film views in step while ``enabled``."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.enabled = True
        self._views: list[ImageViewWidget] = []
        self._busy = False
        self._films: dict[int, object] = {}  # view id -> the film its last window was for

    def set_views(self, views: Sequence[ImageViewWidget]) -> None:
        self.end_previews()  # a layout changed mid-drag: the drag's lead may be gone
        for view in self._views:
            if view not in views:
                view.window_changed.disconnect(self._on_view_window_changed)
                view.window_drag_started.disconnect(self._on_view_window_drag_started)
                view.window_drag_finished.disconnect(self._on_view_window_drag_finished)
                view.view.sigRangeChangedManually.disconnect(self._on_view_range_changed)
        for view in views:
            if view not in self._views:
                self._films[id(view)] = view.image
                view.window_changed.connect(self._on_view_window_changed)
                view.window_drag_started.connect(self._on_view_window_drag_started)
                view.window_drag_finished.connect(self._on_view_window_drag_finished)
                # Only a user's zoom or pan travels, not each view's own fit to a new film.
                view.view.sigRangeChangedManually.connect(self._on_view_range_changed)
        self._views = list(views)

    def _source(self, signal_sender: QObject | None) -> ImageViewWidget | None:
        for view in self._views:
            if signal_sender is view or signal_sender is view.view:
                return view
        return None

    def _on_view_window_changed(self, *_: float) -> None:
        source = self._source(self.sender())
        if source is None:
            return
        if self._films.get(id(source)) is not source.image:
            # A new film (or frame) opens at its own window: that is not a reader's change.
            self._films[id(source)] = source.image
            return
        if not self.enabled or self._busy:
            return
        relative = relative_window(source)
        if relative is None:
            return
        self._busy = True
        try:
            for view in self._views:
                if view is not source and view.isVisible():
                    apply_relative_window(view, relative)
        finally:
            self._busy = False

    def _on_view_window_drag_started(self) -> None:
        source = self._source(self.sender())
        if source is None or not self.enabled:
            return
        for view in self._views:
            if view is not source and view.isVisible():
                view.begin_preview()

    def _on_view_window_drag_finished(self) -> None:
        self.end_previews()

    def end_previews(self) -> None:
        """Every follower draws its exact frame (its W/L text and histogram follow)."""
        self._busy = True  # their window_changed now is the link's doing, not a reader's
        try:
            for view in self._views:
                view.end_preview()
        finally:
            self._busy = False

    def _on_view_range_changed(self, *_: object) -> None:
        source = self._source(self.sender())
        if source is not None:
            self.follow_range(source)

    def follow_range(self, source: ImageViewWidget) -> None:
        """Show the same part of every other film as ``source`` shows of its own: the same
        millimetres where both films are calibrated, the same fractions otherwise."""
        if not self.enabled or self._busy:
            return
        rel = relative_rect(source)
        if rel is None:
            return
        mm = physical_rect(source)
        self._busy = True
        try:
            for view in self._views:
                if view is not source and view.isVisible():
                    if mm is not None and pixel_spacing(view) is not None:
                        apply_physical_rect(view, mm)
                    else:
                        apply_relative_rect(view, rel)
        finally:
            self._busy = False
