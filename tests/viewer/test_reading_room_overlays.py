"""AI overlays per viewport, as a reader drives them (pytest-qt, real key and mouse events).

Two films side by side (``--layout 1x2``), both run: each viewport shows its own film's heatmap;
C and the AI panel's overlay controls act on the active viewport (the last one clicked), and while
the viewports are linked the overlay's look (visibility, colour map, opacity, threshold, style) is
the same in all of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.viewer.helpers import chest_like, write_dicom
from tests.viewer.test_reading_room import TIMEOUT, _no_mouse_rate_limit, open_main, shown

__all__ = ["_no_mouse_rate_limit"]  # the reading room tests' autouse fixture applies here too

LOOK = ("overlay_visible", "colormap", "opacity", "threshold", "overlay_style")


def look(state: Any) -> tuple[Any, ...]:
    return tuple(getattr(state, name) for name in LOOK)


def two_films(qtbot: Any, make_window: Any, tmp_path: Path) -> tuple[Any, Any, Any]:
    """``fpsm-viewer a.dcm b.dcm --layout 1x2`` with both films' findings and heatmaps drawn."""
    a = write_dicom(tmp_path / "a.dcm", chest_like(96, 80))
    b = write_dicom(tmp_path / "b.dcm", chest_like(96, 80, seed=3))
    window = make_window()
    left = open_main(qtbot, window, a)
    window.reading_room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    qtbot.waitUntil(lambda: right.view.overlay_array() is not None, timeout=TIMEOUT)
    assert left.view.overlay_array() is not None
    return window, left, right


def click(qtbot: Any, viewport: Any) -> None:
    port = viewport.view.graphics.viewport()
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=port.rect().center())


def press(qtbot: Any, widget: Any, key: Qt.Key, times: int) -> None:
    widget.setFocus()
    for _ in range(times):
        qtbot.keyClick(widget, key)


def test_each_viewport_shows_its_own_films_heatmap(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer import cam_display

    window, left, right = two_films(qtbot, make_window, tmp_path)
    for vp in (left, right):
        s = vp.state
        values = s.cams.map(
            s.finding, s.level, cam_display.overlay_shape(s.cams.result.image_shape), s.member
        )
        dimmed = s.result.input.flagged  # the film's own trust check greys its map
        expected = cam_display.colourise(values, s.colormap, s.opacity, s.threshold, dimmed=dimmed)
        np.testing.assert_array_equal(vp.view.overlay_array(), expected)
    assert right.state.result.path == str(tmp_path / "b.dcm")
    # A new viewport starts with the window's overlay look (the reader's saved preference).
    assert look(right.state) == look(left.state)


def test_c_and_the_overlay_look_act_on_the_active_viewport_and_all_while_linked(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from PySide6.QtGui import QColor

    from viewer.viewports import ACTIVE_COLOUR

    def framed(viewport: Any) -> bool:
        corner = viewport.grab().toImage().pixelColor(0, viewport.height() // 2)
        return corner == QColor(ACTIVE_COLOUR)

    window, left, right = two_films(qtbot, make_window, tmp_path)
    room = window.reading_room
    overlay = window.actions_by_name["overlay"]
    assert (framed(left), framed(right)) == (True, False)  # marked once there are two
    click(qtbot, right)
    assert room.grid.room.active == 1 and room.grid.room.linked
    assert (framed(left), framed(right)) == (False, True)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_C)  # linked: the heatmap goes off in both
    assert right.view.overlay_array() is None
    assert left.view.overlay_array() is None
    assert not overlay.isChecked()
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert right.view.overlay_array() is not None and left.view.overlay_array() is not None
    assert overlay.isChecked()

    # The AI panel on screen is the right film's; its controls change both looks while linked.
    panel = room.panels.shown_panel()
    assert panel.state is right.state
    before = left.view.overlay_array().copy()
    panel.colormap_combo.setFocus()
    qtbot.keyClick(panel.colormap_combo, Qt.Key.Key_Down)
    assert right.state.colormap == left.state.colormap != "turbo"
    assert not np.array_equal(left.view.overlay_array(), before)
    press(qtbot, panel.opacity_slider, Qt.Key.Key_Right, 10)  # (PgUp is the worklist's key)
    assert left.state.opacity == right.state.opacity == pytest.approx(0.50)
    press(qtbot, panel.threshold_slider, Qt.Key.Key_Left, 10)
    assert left.state.threshold == right.state.threshold == pytest.approx(0.15)
    qtbot.mouseClick(panel.style_widget.buttons["contours"], Qt.MouseButton.LeftButton)
    assert left.state.overlay_style == right.state.overlay_style == "contours"
    assert right.view.overlay_array() is None  # contours instead of the heatmap...
    s = right.state
    from viewer.contours import finding_contours

    expected = finding_contours(s.result, s.cams, s.level, s.member)
    assert expected  # the tiny random model calls something positive on this film
    assert [c.text for c in right.contours.contours] == [c.text for c in expected]  # ...its own
    qtbot.mouseClick(panel.style_widget.buttons["heatmap"], Qt.MouseButton.LeftButton)
    assert look(left.state) == look(right.state)

    # Unlinked, C acts on the active viewport alone, and the action shows that viewport's state.
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert not room.grid.room.linked
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert right.view.overlay_array() is None
    assert left.view.overlay_array() is not None
    click(qtbot, left)
    assert overlay.isChecked()  # the left film's heatmap is on
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_C)
    assert left.view.overlay_array() is None
    panel = room.panels.shown_panel()
    press(qtbot, panel.opacity_slider, Qt.Key.Key_Right, 10)
    assert left.state.opacity == pytest.approx(0.60)
    assert right.state.opacity == pytest.approx(0.50)  # unlinked: untouched
    # Linking again shares the active viewport's look with the others.
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert look(right.state) == look(left.state)
    assert right.view.overlay_array() is None


def test_ground_truth_boxes_are_drawn_on_every_viewports_own_film(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window, left, right = two_films(qtbot, make_window, tmp_path)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        "file,class_name,x_min,y_min,x_max,y_max\n"
        "a.dcm,Cardiomegaly,10,20,50,70\n"
        "b.dcm,Nodule,5,6,25,36\n"
    )
    assert window.gt_panel.load(boxes)
    assert window.gt_boxes.rects() == [(10.0, 20.0, 50.0, 70.0)]
    assert right.gt_boxes.rects() == [(5.0, 6.0, 25.0, 36.0)]  # b's box, not a's
    # A viewport opened after the file was loaded draws its film's boxes too.
    window.reading_room.grid.set_layout("2x2")
    third = window.reading_room.grid.viewports[2]
    assert third.state.ground_truth is window.state.ground_truth
    window.gt_panel.clear_button.click()
    assert right.gt_boxes.rects() == [] and window.gt_boxes.rects() == []
