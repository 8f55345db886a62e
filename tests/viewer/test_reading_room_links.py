"""Linked W/L during a right-drag: the other viewport previews, and its last frame is exact.

While a reader right-drags W/L in one viewport, the linked viewports draw each step from half
their screen resolution (``viewer/view_links.py``); on the release they draw their exact frame,
which must be the very picture an unlinked W/L change to the same window draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from tests.viewer.helpers import chest_like, write_dicom
from tests.viewer.test_reading_room import _no_mouse_rate_limit, open_main, shown

__all__ = ["_no_mouse_rate_limit"]  # the reading room tests' autouse fixture applies here too


def send(
    widget: Any,
    kind: QEvent.Type,
    pos: QPointF,
    buttons: Qt.MouseButton,
    button: Qt.MouseButton = Qt.MouseButton.RightButton,
) -> None:
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def side_by_side(qtbot: Any, make_window: Any, tmp_path: Path) -> tuple[Any, Any, Any]:
    """Two 480x400 films in 1x2: the window and its left and right viewports."""
    a = write_dicom(tmp_path / "a.dcm", chest_like(480, 400))
    b = write_dicom(tmp_path / "b.dcm", chest_like(480, 400, seed=3))
    window = make_window()
    left = open_main(qtbot, window, a)
    window.reading_room.open_beside([b], "1x2")
    return window, left, shown(qtbot, window, 1, b)


def test_a_linked_viewport_previews_during_the_drag_and_ends_exact(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.view_links import relative_window

    window, left, right = side_by_side(qtbot, make_window, tmp_path)
    exact_before = left.view.displayed_array()
    port = right.view.graphics.viewport()
    start = QPointF(port.width() * 0.4, port.height() * 0.5)
    right_button = Qt.MouseButton.RightButton
    send(port, QEvent.Type.MouseButtonPress, start, right_button)
    for i in range(1, 7):
        send(port, QEvent.Type.MouseMove, start + QPointF(10 * i, -5 * i), right_button)
    # Mid-drag: the leader is exact, the follower shows the new window from half resolution.
    assert left.view.previewing and not right.view.previewing
    assert relative_window(left.view) == pytest.approx(relative_window(right.view), rel=1e-6)
    preview = left.view.displayed_array()
    assert preview.shape == (exact_before.shape[0] // 2, exact_before.shape[1] // 2)
    assert right.view.displayed_array().shape == right.view._codes.shape
    send(port, QEvent.Type.MouseButtonRelease, start + QPointF(70, -35), Qt.MouseButton.NoButton)
    assert not left.view.previewing
    final = left.view.displayed_array()
    center, width = left.view.window_level
    # What the reader sees after the drag: the window's numbers, the histogram's region and the
    # state all say the window shown...
    assert left.state.window == (center, width)
    assert left.view.histogram.getLevels() == pytest.approx(
        (center - width / 2, center + width / 2)
    )
    text = left.view.info_label.text()
    assert text.startswith(f"W {width:.6g}  L {center:.6g}")
    # ...and the pixels are those of the same window set with the link off.
    window.reading_room.grid.room.set_linked(False)
    left.view.set_window(center + 50, width)
    left.view.set_window(center, width)
    np.testing.assert_array_equal(final, left.view.displayed_array())
    assert left.view.info_label.text() == text
    assert final.shape == exact_before.shape
    assert not np.array_equal(final, exact_before)  # the drag did change the window


def test_the_histogram_shows_the_films_counts_with_its_axis_fixed(qtbot: Any) -> None:
    from fpsm_core.io.image import XRayImage
    from viewer.image_view import ImageViewWidget

    view = ImageViewWidget()
    qtbot.addWidget(view)
    view.resize(600, 600)
    view.show()
    pixels = chest_like(300, 260).astype(np.float32)
    view.set_image(XRayImage(pixels=pixels, window=(2000.0, 3000.0), spacing_mm=None, path=None))
    histogram = view.histogram
    curve = histogram.plot.mapRectToParent(histogram.plot.boundingRect())
    (x0, x1), _ = histogram.vb.viewRange()
    # The whole curve is in view (it is drawn turned, the counts along x) and the axis no longer
    # follows every W/L step.
    assert x0 <= curve.left() and curve.right() <= x1
    assert curve.width() > 0.9 * (x1 - x0)
    assert histogram.vb.state["autoRange"][0] is False


def test_linked_zoom_and_pan_travel_in_millimetres_between_calibrated_films(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.view_links import physical_rect, relative_rect

    # The same size in pixels, twice the size in mm on the right (another detector's pixels).
    a = write_dicom(tmp_path / "a.dcm", chest_like(96, 80), spacing=(0.25, 0.2))
    b = write_dicom(tmp_path / "b.dcm", chest_like(96, 80, seed=4), spacing=(0.5, 0.4))
    bare = write_dicom(tmp_path / "bare.dcm", chest_like(96, 80, seed=5), spacing=None)
    window = make_window()
    left = open_main(qtbot, window, a)
    grid = window.reading_room.grid
    window.reading_room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    qtbot.waitUntil(lambda: bool(grid.change_label.text()), timeout=60000)
    zoom_in_and_pan(qtbot, window, left.view, QPointF(40, 25))
    (lx, ly, lw, lh), (rx, ry, rw, rh) = physical_rect(left.view), physical_rect(right.view)
    # The same millimetres around the same point from the film's centre (heights: each view box
    # keeps its own aspect).
    assert (rx + rw / 2, ry + rh / 2) == pytest.approx((lx + lw / 2, ly + lh / 2), abs=1e-3)
    assert rh == pytest.approx(lh, rel=1e-3)
    assert relative_rect(right.view)[3] == pytest.approx(relative_rect(left.view)[3] / 2, rel=1e-3)

    # A film without spacing follows by fractions of the film.
    grid.open_in(1, bare)
    right = shown(qtbot, window, 1, bare)
    qtbot.keyClick(window, Qt.Key.Key_Minus)
    (lx, ly, lw, lh), (rx, ry, rw, rh) = relative_rect(left.view), relative_rect(right.view)
    assert (rx + rw / 2, ry + rh / 2) == pytest.approx((lx + lw / 2, ly + lh / 2), abs=1e-3)
    assert rh == pytest.approx(lh, rel=1e-3)


def test_a_film_calibrated_by_the_reader_follows_in_millimetres(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.view_links import physical_rect, relative_rect

    a = write_dicom(tmp_path / "a.dcm", chest_like(96, 80), spacing=(0.25, 0.25))
    bare = write_dicom(tmp_path / "bare.dcm", chest_like(96, 80, seed=5), spacing=None)
    window = make_window()
    left = open_main(qtbot, window, a)
    window.reading_room.open_beside([bare], "1x2")
    right = shown(qtbot, window, 1, bare)
    assert physical_rect(right.view) is None  # no spacing of its own
    controller = window.reading_room._controllers[1]
    # The reader draws a 40-pixel line on the right film and says it is 20 mm long.
    controller.calibrate(((10.0, 10.0), (50.0, 10.0)), 20.0)
    assert right.view.calibration_mm == pytest.approx((0.5, 0.5))
    zoom_in_and_pan(qtbot, window, left.view, QPointF(30, 20))
    (lx, ly, lw, lh), (rx, ry, rw, rh) = physical_rect(left.view), physical_rect(right.view)
    assert (rx + rw / 2, ry + rh / 2) == pytest.approx((lx + lw / 2, ly + lh / 2), abs=1e-3)
    assert rh == pytest.approx(lh, rel=1e-3)
    # Half the pixels of the right film for the same millimetres (0.5 mm against 0.25 mm).
    assert relative_rect(right.view)[3] == pytest.approx(relative_rect(left.view)[3] / 2, rel=1e-3)

    # Without the calibration it follows by fractions of the film again.
    controller.remove_calibration()
    assert right.view.calibration_mm is None
    qtbot.keyClick(window, Qt.Key.Key_Minus)
    (lx, ly, lw, lh), (rx, ry, rw, rh) = relative_rect(left.view), relative_rect(right.view)
    assert (rx + rw / 2, ry + rh / 2) == pytest.approx((lx + lw / 2, ly + lh / 2), abs=1e-3)
    assert rh == pytest.approx(lh, rel=1e-3)


def zoom_in_and_pan(qtbot: Any, window: Any, view: Any, by: QPointF) -> None:
    """Click the view, zoom in twice with +, and drag the film by ``by`` with the left button."""
    port = view.graphics.viewport()
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=port.rect().center())
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    centre = QPointF(port.width() * 0.5, port.height() * 0.5)
    drag_left(port, centre, centre + by)


def drag_left(widget: Any, start: QPointF, end: QPointF, steps: int = 6) -> None:
    left = Qt.MouseButton.LeftButton
    send(widget, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        send(widget, QEvent.Type.MouseMove, start + (end - start) * (i / steps), left, left)
    send(widget, QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton, left)


def test_a_preview_follows_the_film_and_crop_on_screen(qtbot: Any) -> None:
    from fpsm_core.io.image import XRayImage
    from viewer.image_view import ImageViewWidget

    view = ImageViewWidget()
    qtbot.addWidget(view)
    view.resize(600, 600)
    view.show()
    qtbot.waitExposed(view)
    first = chest_like(900, 800).astype(np.float32)
    view.set_image(XRayImage(pixels=first, window=(2000.0, 3000.0), spacing_mm=None, path=None))
    view.begin_preview()
    center, width = view.window_level
    view.set_window(center + 10, width)
    half = (view._codes.shape[0] // 2, view._codes.shape[1] // 2)
    assert view.displayed_array().shape == half
    # Zoomed while previewing: the next preview step is made from the new crop, not the old one.
    view.zoom(3.0)
    qtbot.waitUntil(lambda: view._codes is not None and view._codes.shape[0] // 2 != half[0])
    view.set_window(center + 20, width)
    assert view.displayed_array().shape == (view._codes.shape[0] // 2, view._codes.shape[1] // 2)
    # A new film while previewing: its first frame is exact, its next steps previews of it.
    second = chest_like(400, 300, seed=2).astype(np.float32)
    view.set_image(XRayImage(pixels=second, window=(2000.0, 3000.0), spacing_mm=None, path=None))
    assert view.displayed_array().shape == view._codes.shape
    view.set_window(center + 30, width)
    assert view.displayed_array().shape == (view._codes.shape[0] // 2, view._codes.shape[1] // 2)
    view.end_preview()
    assert view.displayed_array().shape == view._codes.shape


def test_a_layout_change_mid_drag_ends_the_preview(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window, left, right = side_by_side(qtbot, make_window, tmp_path)
    port = right.view.graphics.viewport()
    start = QPointF(port.width() * 0.4, port.height() * 0.5)
    send(port, QEvent.Type.MouseButtonPress, start, Qt.MouseButton.RightButton)
    for i in range(1, 4):
        send(port, QEvent.Type.MouseMove, start + QPointF(10 * i, 0), Qt.MouseButton.RightButton)
    assert left.view.previewing
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)  # one viewport
    assert not left.view.previewing
    assert left.view.displayed_array().shape == left.view._codes.shape
    assert left.state.window == left.view.window_level
