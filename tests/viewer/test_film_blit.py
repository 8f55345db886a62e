"""The film on the device's pixel grid: zoomed out, each screen code is one screen pixel, and the
film item blits them unscaled (Qt's scaled draw cost 3-5x as much per W/L step)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QTransform

from tests.viewer.test_viewer_truth import _Film
from viewer import display
from viewer.image_view import device_blit_origin


def test_device_codes_are_the_screen_codes_when_the_grids_agree() -> None:
    pyr = display.build_pyramid(np.arange(2000 * 1000, dtype=np.float32).reshape(2000, 1000) % 4000)
    crop = (0, 0, 150, 200)  # level 1: 300 x 400 film pixels
    codes, rect = display.device_codes(pyr, 1, crop, origin=(0.0, 0.0), scale=(0.3, 0.3))
    np.testing.assert_array_equal(codes, display.screen_codes(pyr, 1, crop, 0.3))
    assert rect == pytest.approx((0.0, 0.0, 300.0, 400.0))


@pytest.mark.parametrize("origin", [(0.3, 0.0), (17.49, 3.51), (-2.5, 40.75)])
def test_device_codes_cover_whole_device_pixels(origin: tuple[float, float]) -> None:
    pyr = display.build_pyramid(np.arange(2000 * 1000, dtype=np.float32).reshape(2000, 1000) % 4000)
    crop = (40, 60, 190, 260)
    scale = (0.2913, 0.2913)
    codes, (x, y, w, h) = display.device_codes(pyr, 1, crop, origin, scale)
    # Every edge lands on a whole device pixel, one code per pixel.
    left, top = origin[0] + x * scale[0], origin[1] + y * scale[1]
    assert left == pytest.approx(round(left), abs=1e-9)
    assert top == pytest.approx(round(top), abs=1e-9)
    assert (w * scale[0], h * scale[1]) == pytest.approx((codes.shape[1], codes.shape[0]))
    # Within half a device pixel of the crop's own extent (2 film pixels per level pixel).
    assert abs(left - (origin[0] + 80 * scale[0])) <= 0.5
    assert abs(left + codes.shape[1] - (origin[0] + 380 * scale[0])) <= 0.5
    # The values are the level's, bilinearly resampled: inside the crop's range.
    level = pyr.levels[1][60:260, 40:190]
    assert level.min() <= codes.min() and codes.max() <= level.max()


def test_blit_only_for_an_unscaled_unrotated_draw() -> None:
    rect = QRectF(100.0, 50.0, 300.0, 200.0)
    # x = 0.5 (x + 10.2), y = 0.5 (y + 20.7): the rect lands at (55.1, 35.35), 150 x 100 pixels.
    scale = QTransform.fromScale(0.5, 0.5).translate(10.2, 20.7)
    origin = device_blit_origin(scale, rect, 150, 100)
    assert origin is not None and (origin.x(), origin.y()) == (55, 35)
    assert device_blit_origin(scale, rect, 149, 100) is None  # a pixel too few: scaled draw
    assert device_blit_origin(QTransform.fromScale(-0.5, 0.5), rect, 150, 100) is None  # mirrored
    assert device_blit_origin(QTransform().rotate(90), rect, 200, 300) is None  # turned


@pytest.fixture()
def big_film_view(qtbot: Any) -> Any:
    from viewer.image_view import ImageViewWidget

    view = ImageViewWidget()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 4096, size=(2400, 1800)).astype(np.uint16)
    view.set_image(_Film(pixels, (2048.0, 4096.0), (0.2, 0.2)))
    qtbot.wait(20)
    return view


def _screen(view: Any) -> np.ndarray:
    image = view.graphics.viewport().grab().toImage()
    image = image.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    array = np.frombuffer(image.constBits(), dtype=np.uint32)
    return array.reshape(image.height(), image.bytesPerLine() // 4)[:, : image.width()].copy()


def _origin(view: Any) -> Any:
    item = view.image_item
    device = item.deviceTransform(view.graphics.viewportTransform())
    array = item.array
    return device_blit_origin(device, item.boundingRect(), array.shape[1], array.shape[0])


def test_the_fitted_film_is_on_screen_code_for_code(qtbot: Any, big_film_view: Any) -> None:
    view = big_film_view
    assert view.screen_per_image() < 0.5  # zoomed out: screen codes, not the film's pixels
    origin = _origin(view)
    assert origin is not None, "the fitted film should be drawn unscaled"
    shown = view.image_item.array
    h, w = shown.shape
    screen = _screen(view)
    # The codes cover the whole film with a margin clipped to it, and the view shows it all.
    np.testing.assert_array_equal(
        screen[origin.y() : origin.y() + h, origin.x() : origin.x() + w], shown
    )
    # A W/L step redraws through the same grid.
    view.set_window(1500.0, 1200.0)
    qtbot.wait(10)
    assert _origin(view) == origin
    screen = _screen(view)
    np.testing.assert_array_equal(
        screen[origin.y() : origin.y() + h, origin.x() : origin.x() + w], view.image_item.array
    )


def test_a_turned_film_is_still_drawn_through_the_scaled_path(
    qtbot: Any, big_film_view: Any
) -> None:
    view = big_film_view
    view.rotate(90)
    qtbot.wait(20)
    assert _origin(view) is None
    screen = _screen(view)
    # The film is on screen: most of the view's centre shows film greys, not the background.
    h, w = screen.shape
    centre = screen[h // 3 : 2 * h // 3, w // 3 : w // 2]
    greys = np.unique(centre & np.uint32(0xFF))
    assert greys.size > 100
