"""The AI display beyond the heatmap (issue 19): contours, the members x levels grid, ground truth.

Each test drives the viewer as a user does (real clicks through pytest-qt) and checks what is
drawn against the numbers of ``fpsm_core``: contours only for findings above their operating
points, grid tiles equal to each member's map at each level, ground-truth metrics equal to
``fpsm_core.explain.metrics`` on the same maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

TIMEOUT = 60000


def _open(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(path)
    return blocker.args[0]


def test_contours_outline_only_findings_above_their_thresholds(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    from viewer.contours import finding_contours, outlines
    from viewer.state import CASE_LABEL

    window = make_window()
    result = _open(qtbot, window, dicom_file)
    above = [f for f in result.findings if f.above_threshold and f.label != CASE_LABEL]
    below = [f for f in result.findings if not f.above_threshold]
    assert above and below  # the fixture's random model calls some findings, not all
    style = window.ai_panel.style_widget
    with qtbot.waitSignal(window.contours.contours_drawn) as drawn:
        qtbot.mouseClick(style.buttons["contours"], Qt.MouseButton.LeftButton)
    assert window.state.overlay_style == "contours"
    assert window.overlay_array() is None  # the film stays readable: no colour map over it
    shown = window.contours.contours
    assert drawn.args == [len(shown)]
    assert [c.label for c in shown] == [f.label for f in above if c_has_blob(window, f)]
    assert not {c.label for c in shown} & {f.label for f in below}
    assert window.contours.labels() == [f"{c.label} {c.probability:.0%}" for c in shown]
    s = window.state
    grid = (64, 64)
    for c in finding_contours(result, s.cams, s.level, s.member, grid):
        expected = outlines(s.cams.map(c.index, s.level, grid, member=s.member), result.image_shape)
        assert len(c.polygons) == len(expected)
        for got, want in zip(c.polygons, expected, strict=True):
            np.testing.assert_allclose(got, want)
    assert (
        "contours of the findings above their thresholds" in window.image_view.caption_label.text()
    )

    with qtbot.waitSignal(window.overlay_drawn):
        qtbot.mouseClick(style.buttons["heatmap"], Qt.MouseButton.LeftButton)
    assert window.state.overlay_style == "heatmap"
    assert window.overlay_array() is not None and window.contours.labels() == []


def c_has_blob(window: Any, finding: Any) -> bool:
    """A finding above threshold whose map is flat has no outline to draw."""
    from viewer import cam_display

    s = window.state
    shape = cam_display.overlay_shape(s.result.image_shape)
    return float(s.cams.map(finding.index, s.level, shape, member=s.member).max()) > 0


def test_outlines_follow_the_half_maximum_of_a_map() -> None:
    from viewer.contours import outlines

    values = np.zeros((20, 40), dtype=np.float32)
    values[5:10, 10:20] = 1.0  # one blob at the peak
    values[12:14, 30:32] = 0.4  # below half the peak: not outlined
    (polygon,) = outlines(values, (200, 400))  # the image is 10x the map
    xs, ys = polygon[:, 0], polygon[:, 1]
    assert xs.min() == pytest.approx(105) and xs.max() == pytest.approx(195)
    assert ys.min() == pytest.approx(55) and ys.max() == pytest.approx(95)
    assert outlines(np.zeros((4, 4)), (8, 8)) == ()
