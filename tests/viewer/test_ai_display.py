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
    mark = "? " if result.input.flagged else ""  # a film the model does not know: grey, "?"
    assert window.contours.labels() == [f"{mark}{c.label} {c.probability:.0%}" for c in shown]
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
    from viewer.export import view_caption

    assert any(line.startswith("contours of the findings") for line in view_caption(s).lines)

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


def _box_file(tmp_path: Path, image: Path, label: str, rows: list[str] | None = None) -> Path:
    """A box file in the bundled sample's layout naming ``image``'s file."""
    path = tmp_path / "ground_truth.csv"
    lines = ["file,class_name,x_min,y_min,x_max,y_max", f"{image.name},{label},10,20,50,70"]
    path.write_text("\n".join([*lines, *(rows or [])]) + "\n")
    return path


def test_ground_truth_boxes_on_the_film_and_metrics_per_level(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    from fpsm_core.explain import FUSED, energy_in_box, pointing_game, scale_boxes
    from viewer import cam_display

    window = make_window()
    result = _open(qtbot, window, dicom_file)
    label = window.state.selected_finding.label
    boxes = _box_file(
        tmp_path, dicom_file, label, ["other.dcm,Mass,1,1,5,5", "x.dcm,Nodule,a,1,2,3"]
    )
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(boxes), "CSV"))
    panel = window.gt_panel
    with qtbot.waitSignal(panel.loaded) as loaded:
        qtbot.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    assert "2 box(es) on 2 image(s)" in loaded.args[0] and "1 row(s) not used" in loaded.args[0]
    assert window.gt_boxes.rects() == [(10.0, 20.0, 50.0, 70.0)]  # this image's box only
    s = window.state
    grid = cam_display.overlay_shape(result.image_shape)
    region = scale_boxes([(10, 20, 50, 70)], result.image_shape, grid)
    expected = []
    for key in (FUSED, *s.cams.levels_of(s.member)):
        values = s.cams.map(s.finding, key, grid, member=s.member)
        hit = "hit" if bool(pointing_game(values, region)) else "miss"
        expected.append(
            (
                "Fused" if key == FUSED else f"Level {key}",
                hit,
                f"{float(energy_in_box(values, region)):.1%}",
            )
        )
    assert panel.rows() == expected

    # Another finding, with no box on this image: no scores, and the panel says why.
    other = next(f for f in result.findings if f.label not in (label, "No Finding"))
    s.set_finding(other.index)
    assert panel.rows() == [] and f"None of {other.label}" in panel.image_label.text()


def test_a_bad_box_file_is_one_sentence_and_keeps_what_was_loaded(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path
) -> None:
    window = make_window()
    _open(qtbot, window, dicom_file)
    good = _box_file(tmp_path, dicom_file, window.state.selected_finding.label)
    assert window.gt_panel.load(good)
    kept = window.state.ground_truth
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    with qtbot.waitSignal(window.error_shown) as error:
        assert not window.gt_panel.load(bad)
    assert "bad.csv" in error.args[0] and "\n" not in error.args[0]
    assert window.state.ground_truth is kept


def test_the_grid_tiles_are_every_members_map_at_every_level(
    qtbot: Any, make_window: Any, tmp_path: Path, dicom_file: Path
) -> None:
    from fpsm_core.explain import ENSEMBLE, FUSED
    from tests.core.helpers import tiny_ensemble

    model = tiny_ensemble(tmp_path / "ens", n=2)
    window = make_window(model)
    _open(qtbot, window, dicom_file)
    window.show_level_grid()
    dialog = window.level_grid
    qtbot.waitExposed(dialog)
    s = window.state
    assert set(dialog.values) == {
        (m, lv) for m in (ENSEMBLE, 0, 1) for lv in (FUSED, *s.cams.levels_of(m))
    }
    shape = next(iter(dialog.values.values())).shape
    for (member, level), values in dialog.values.items():
        np.testing.assert_array_equal(values, s.cams.map(s.finding, level, shape, member=member))

    a, b = (0, 4), (1, 2)
    with qtbot.waitSignal(dialog.grid_drawn):
        qtbot.mouseClick(dialog.tiles[a], Qt.MouseButton.LeftButton)
    assert s.grid_pair is None  # one tile chosen: A, waiting for B
    with qtbot.waitSignal(s.grid_pair_changed):
        qtbot.mouseClick(dialog.tiles[b], Qt.MouseButton.LeftButton)
    assert s.grid_pair == (a, b)
    np.testing.assert_allclose(dialog.difference, dialog.values[a] - dialog.values[b])
    assert "A − B = m0 L4 − m1 L2" in dialog.diff_label.text()

    # The grid follows the state: another finding redraws every tile.
    other = next(
        f.index for f in s.result.findings if f.index != s.finding and f.label != "No Finding"
    )
    with qtbot.waitSignal(dialog.grid_drawn):
        s.set_finding(other)
    for (member, level), values in dialog.values.items():
        np.testing.assert_array_equal(values, s.cams.map(other, level, shape, member=member))
