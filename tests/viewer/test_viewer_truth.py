"""Regression tests for issue 19's defects: what the viewer shows must be true.

Each test drives the widget as a user does (real mouse/keyboard events through pytest-qt where
the defect needs them) and failed before its fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

TIMEOUT = 60000


@dataclass
class _Film:
    """The least an image needs to be shown: pixels, a window and a pixel spacing."""

    pixels: np.ndarray
    window: tuple[float, float]
    spacing_mm: tuple[float, float] | None


def _send(widget: Any, kind: QEvent.Type, pos: QPointF, button: Any, buttons: Any) -> None:
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def _drag(widget: Any, start: QPointF, end: QPointF, steps: int = 8) -> None:
    """A real left press-move-release sequence (QTest's mouseMove carries no buttons in Qt 6)."""
    left = Qt.MouseButton.LeftButton
    _send(widget, QEvent.Type.MouseButtonPress, start, left, left)
    for i in range(1, steps + 1):
        _send(widget, QEvent.Type.MouseMove, start + (end - start) * (i / steps), left, left)
    _send(widget, QEvent.Type.MouseButtonRelease, end, left, Qt.MouseButton.NoButton)


def _click(widget: Any, pos: QPointF) -> None:
    left = Qt.MouseButton.LeftButton
    _send(widget, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    _send(widget, QEvent.Type.MouseButtonPress, pos, left, left)
    _send(widget, QEvent.Type.MouseButtonRelease, pos, left, Qt.MouseButton.NoButton)


@pytest.fixture()
def film_view(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import pyqtgraph as pg

    from viewer.image_view import ImageViewWidget

    # pyqtgraph drops mouse moves closer than 10 ms apart; synthetic moves come back to back.
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    view = ImageViewWidget()
    qtbot.addWidget(view)
    view.resize(800, 700)
    view.show()
    qtbot.waitExposed(view)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(600, 400)).astype(np.uint16)
    view.set_image(_Film(pixels, (2048.0, 4096.0), (0.2, 0.3)))
    return view


def _image_point(view: Any, viewport_pos: QPointF) -> QPointF:
    return view.frame.mapFromScene(view.graphics.mapToScene(viewport_pos.toPoint()))


def _ruler_ends(view: Any, index: int = -1) -> tuple[QPointF, QPointF]:
    roi = view._rulers[index][0]
    h0, h1 = roi.getHandles()
    return roi.mapToParent(h0.pos()), roi.mapToParent(h1.pos())


@pytest.mark.parametrize("pose", ["fit", "zoomed-panned", "rotated", "flipped", "rotated-flipped"])
def test_ruler_end_follows_the_cursor_and_measures_the_image_distance(
    qtbot: Any, film_view: Any, pose: str
) -> None:
    view = film_view
    if pose == "zoomed-panned":
        view.zoom(2.5)
        view.view.translateBy(x=40, y=-25)
    if "rotated" in pose:
        view.rotate(90)
    if "flipped" in pose:
        view.flip_horizontal()
    QApplication.processEvents()
    viewport = view.graphics.viewport()
    start = QPointF(viewport.width() * 0.4, viewport.height() * 0.3)
    end = start + QPointF(30, 300)
    view.set_ruler_mode(True)
    _drag(viewport, start, end)
    p0, p1 = _ruler_ends(view)
    want0, want1 = _image_point(view, start), _image_point(view, end)
    assert abs(p0.x() - want0.x()) < 1.0 and abs(p0.y() - want0.y()) < 1.0
    assert abs(p1.x() - want1.x()) < 1.0 and abs(p1.y() - want1.y()) < 1.0
    ((length, unit),) = view.ruler_lengths()
    dx, dy = (p1.x() - p0.x()) * 0.3, (p1.y() - p0.y()) * 0.2
    assert unit == "mm"
    assert length == pytest.approx(math.hypot(dx, dy), rel=1e-6)
    # The end sits under the cursor on screen, whatever the zoom or orientation.
    shown = view.graphics.mapFromScene(view.frame.mapToScene(p1))
    assert abs(shown.x() - end.x()) <= 1.5 and abs(shown.y() - end.y()) <= 1.5


def test_ruler_click_click_measures_between_the_two_clicks(qtbot: Any, film_view: Any) -> None:
    view = film_view
    viewport = view.graphics.viewport()
    first = QPointF(viewport.width() * 0.3, viewport.height() * 0.3)
    second = QPointF(viewport.width() * 0.6, viewport.height() * 0.7)
    view.set_ruler_mode(True)
    with qtbot.waitSignal(view.ruler_measured, timeout=5000):
        _click(viewport, first)
        _click(viewport, second)
    assert len(view.ruler_lengths()) == 1
    p0, p1 = _ruler_ends(view)
    want0, want1 = _image_point(view, first), _image_point(view, second)
    assert abs(p0.x() - want0.x()) < 1.0 and abs(p0.y() - want0.y()) < 1.0
    assert abs(p1.x() - want1.x()) < 1.0 and abs(p1.y() - want1.y()) < 1.0
    # A third click starts the next ruler rather than editing the finished one.
    _click(viewport, first + QPointF(10, 0))
    _click(viewport, first + QPointF(10, 100))
    assert len(view.ruler_lengths()) == 2


def test_level_logits_are_never_clipped_and_keep_their_sign(qtbot: Any) -> None:
    from PySide6.QtGui import QFont, QFontMetrics
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from fpsm_core.explain import LevelShare
    from viewer.ai_panel import LevelShareWidget

    holder = QWidget()
    qtbot.addWidget(holder)
    layout = QVBoxLayout(holder)
    widget = LevelShareWidget()
    font = QFont(widget.font())
    font.setPixelSize(17)  # a large desktop font: the old fixed 92 px box clipped the "+"
    widget.setFont(font)
    layout.addWidget(widget)
    holder.resize(340, 200)
    holder.show()
    qtbot.waitExposed(holder)
    widget.set_shares(
        [
            LevelShare("m", 4, 4.82, 0.54),
            LevelShare("m", 3, -12.345, -0.31),
            LevelShare("m", 2, 0.5, 0.15),
        ]
    )
    QApplication.processEvents()
    metrics = QFontMetrics(widget.font())
    cells = widget.value_cells()
    texts = [text for text, _ in cells]
    assert texts[0].startswith("+4.82")
    assert texts == ["+4.82 (+54%)", "-12.35 (-31%)", "+0.50 (+15%)"]
    for text, rect in cells:
        assert metrics.horizontalAdvance(text) <= rect.width(), text
        assert widget.rect().contains(rect)


def _open_and_wait(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(path)
    return blocker.args[0]


def test_a_failed_open_model_keeps_the_working_model_and_its_findings(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from tests.viewer.helpers import chest_like, write_dicom

    first = write_dicom(tmp_path / "first.dcm", chest_like(seed=3))
    second = write_dicom(tmp_path / "second.dcm", chest_like(seed=4))
    window = make_window()
    result = _open_and_wait(qtbot, window, first)
    model_text = window.ai_panel.model_label.text()
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("this is not a checkpoint")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.load_model(not_a_model)
    message = blocker.args[0]
    assert "notes.txt" in message and "tiny" in message
    assert "\n" not in message and "Traceback" not in message
    # The working model, its findings and the panel's model line all stay.
    assert window.state.model is not None and window.state.model.name == "tiny"
    assert window.state.result is result
    assert window.ai_panel.model_label.text() == model_text
    # Images opened afterwards still get their findings.
    later = _open_and_wait(qtbot, window, second)
    assert later.path == str(second)
    assert len(later.findings) == 26


def test_triage_ranks_each_finding_against_its_own_threshold(qtbot: Any, tmp_path: Path) -> None:
    from viewer.workers import TriageItem, urgency
    from viewer.worklist import NONE_ABOVE, WorklistPanel

    thresholds = {"Pneumomediastinum": 0.92, "Pneumothorax": 0.74}
    # The case: 0.90 is the higher probability but below its 0.92 operating point.
    films = {
        "a.png": {"Pneumomediastinum": 0.90, "Pneumothorax": 0.20},
        "b.png": {"Pneumomediastinum": 0.10, "Pneumothorax": 0.80},
        "c.png": {"Pneumomediastinum": 0.30, "Pneumothorax": 0.30},
    }
    score, top, above = urgency(films["b.png"], thresholds)
    assert top == "Pneumothorax" and above and score == pytest.approx(0.80 / 0.74)
    score, top, above = urgency(films["a.png"], thresholds)
    assert top == "Pneumomediastinum" and not above and score == pytest.approx(0.90 / 0.92)

    panel = WorklistPanel(thumbnails=False)
    qtbot.addWidget(panel)
    paths = {name: str(tmp_path / name) for name in films}
    panel.add_files(paths.values())
    for name, probs in films.items():
        score, top, above = urgency(probs, thresholds)
        panel.set_triage_item(
            TriageItem(Path(paths[name]), score, top, probs, thresholds=thresholds, above=above)
        )
    panel.triage_finished(False)
    assert [p for p, _ in panel.urgency_order()] == [paths["b.png"], paths["a.png"], paths["c.png"]]
    rows = {name: panel._items[path] for name, path in paths.items()}
    assert rows["b.png"].text(2).startswith("\u25b2")  # flagged: crossed its threshold
    assert "Pneumothorax 80%" in rows["b.png"].text(3)
    for name in ("a.png", "c.png"):
        assert not rows[name].text(2).startswith("\u25b2")
        assert rows[name].text(3) == NONE_ABOVE


def test_triage_in_the_window_scores_probability_over_threshold(
    qtbot: Any, make_window: Any, study_folder: Path
) -> None:
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(study_folder)
    items: list[Any] = []
    window.hub.triage_item_ready.connect(items.append)
    with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT):
        window.actions_by_name["triage"].trigger()
    info = window.state.model
    thresholds = dict(zip(info.labels, info.thresholds, strict=True))
    scored = [item for item in items if item.score is not None]
    assert len(scored) == 4
    for item in scored:
        ratios = {k: p / thresholds[k] for k, p in item.probabilities.items()}
        assert item.score == pytest.approx(max(ratios.values()))
        assert item.top_label == max(ratios, key=ratios.__getitem__)
        assert item.above == (item.probabilities[item.top_label] >= thresholds[item.top_label])


def _wheel(widget: Any, steps: int = -3) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    pos = QPointF(widget.rect().center())
    event = QWheelEvent(
        pos,
        QPointF(widget.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_ai_panel_instead_of_changing_its_settings(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from PySide6.QtWidgets import QScrollArea

    from tests.viewer.helpers import chest_like, write_dicom

    window = make_window()
    window.resize(1280, 420)  # short enough for the AI panel to scroll
    _open_and_wait(qtbot, window, write_dicom(tmp_path / "w.dcm", chest_like(seed=5)))
    panel = window.ai_panel
    scroll = panel.parentWidget().parentWidget()
    assert isinstance(scroll, QScrollArea)
    bar = scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5000)
    window.image_view.setFocus()
    before = (
        window.state.level,
        window.state.colormap,
        window.state.opacity,
        window.state.threshold,
    )
    for widget in (
        panel.level_combo,
        panel.colormap_combo,
        panel.opacity_slider,
        panel.threshold_slider,
    ):
        assert widget.focusPolicy() == Qt.FocusPolicy.StrongFocus
        bar.setValue(0)
        _wheel(widget)
        assert bar.value() > 0, widget.objectName() or type(widget).__name__
    after = (
        window.state.level,
        window.state.colormap,
        window.state.opacity,
        window.state.threshold,
    )
    assert after == before
    # Once the user has clicked into a control (it has focus), the wheel changes it.
    panel.opacity_slider.setFocus()
    qtbot.waitUntil(panel.opacity_slider.hasFocus, timeout=5000)
    _wheel(panel.opacity_slider, steps=3)
    assert window.state.opacity != before[2]


def test_the_film_caption_says_which_overlay_it_shows_and_follows_every_change(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from fpsm_core.explain import ENSEMBLE, FUSED
    from tests.viewer.helpers import chest_like, write_dicom

    window = make_window()
    result = _open_and_wait(qtbot, window, write_dicom(tmp_path / "c.dcm", chest_like(seed=6)))
    state, caption = window.state, window.image_view.caption_label
    assert caption.isVisibleTo(window)

    def shown() -> str:
        return caption.text()

    first = state.selected_finding
    assert first.label in shown() and f"{first.probability:.1%}" in shown()
    assert "tiny" in shown()  # the model's name
    assert ("Ensemble mean" in shown()) == (state.member == ENSEMBLE)
    second = result.findings[1]
    state.set_finding(second.index)
    assert second.label in shown() and f"{second.probability:.1%}" in shown()
    assert first.label not in shown()
    for level in state.levels:
        state.set_level(level)
        want = "fused" if level == FUSED else f"level {level}"
        assert want in shown().lower()
    state.set_overlay_visible(False)
    assert "hidden" in shown()
    state.show_result(None)
    assert shown() == ""
    # The caption stays on the film's side of the histogram, wrapped rather than cut.
    state.show_result(result, window.state.cams)
    view = window.image_view
    right = caption.geometry().right()
    assert caption.text() and right <= view.view.sceneBoundingRect().right()


def test_no_finding_is_a_case_line_apart_from_the_ranked_findings(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from dataclasses import replace

    from tests.viewer.helpers import chest_like, write_dicom
    from viewer.ai_panel import case_line

    window = make_window()
    result = _open_and_wait(qtbot, window, write_dicom(tmp_path / "n.dcm", chest_like(seed=7)))
    model = window.ai_panel.findings_model
    labels = [model.finding(r).label for r in range(model.rowCount())]
    assert "No Finding" not in labels and len(labels) == len(result.findings) - 1
    case = next(f for f in result.findings if f.label == "No Finding")
    line = window.ai_panel.case_label.text()
    assert line.startswith("Case: ") and f"No Finding {case.probability:.1%}" in line
    assert window.state.selected_finding.label != "No Finding"
    # The three cases, from the same findings with the scores moved.
    others = [f for f in result.findings if f.label != "No Finding"]
    low = [replace(f, probability=0.0) for f in others]
    high = [replace(f, probability=1.0) for f in others]
    yes = replace(case, probability=0.9, threshold=0.5)
    no = replace(case, probability=0.1, threshold=0.5)
    assert case_line([yes, *low]).startswith("Case: no finding")
    assert case_line([no, *high]).startswith("Case: abnormal")
    assert f"{len(high)} finding(s) above" in case_line([yes, *high])


def test_cursor_readout_has_one_labelled_order_and_resets_with_the_film(
    qtbot: Any, film_view: Any
) -> None:
    view = film_view
    viewport = view.graphics.viewport()
    pos = QPointF(viewport.width() * 0.5, viewport.height() * 0.5)
    readouts: list[Any] = []
    view.cursor_moved.connect(readouts.append)
    _send(viewport, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    info = next(i for i in readouts if i is not None)
    text = view.status_label.text()
    assert text == info.readout()  # the film and the status bar say the same thing
    assert text.startswith(f"x {info.x_mm:.1f} mm, y {info.y_mm:.1f} mm")
    # The next film does not keep the previous film's cursor value or histogram.
    view.set_image(_Film(np.zeros((50, 40), np.uint16) + 7, (7.0, 2.0), None))
    assert view.status_label.text() == ""
    view.clear()
    x, _ = view.histogram.plot.getData()
    assert x is None or len(x) == 0


def test_window_level_of_integer_films_is_shown_without_decimals(film_view: Any) -> None:
    film_view.set_window(2048.37, 1000.61)
    assert film_view.info_label.text().splitlines()[0] == "W 1001  L 2048"
    film_view.set_image(_Film(np.linspace(0, 1, 2000).reshape(50, 40), (0.5, 0.25), None))
    film_view.set_window(0.51234, 0.25)
    assert film_view.info_label.text().splitlines()[0] == "W 0.25  L 0.51234"


def test_worklist_keeps_file_names_readable_after_triage(qtbot: Any, tmp_path: Path) -> None:
    from viewer.workers import TriageItem
    from viewer.worklist import COL_NAME, NAME_MIN, WorklistPanel

    panel = WorklistPanel(thumbnails=False)
    qtbot.addWidget(panel)
    panel.resize(320, 500)
    panel.show()
    qtbot.waitExposed(panel)
    path = tmp_path / ("1.2.840.113619.2.55.3.604688119.969.1268071029.320" + ".dcm")
    panel.add_files([path])
    panel.set_triage_item(
        TriageItem(
            path, 0.5, "Pneumothorax", {"Pneumothorax": 0.37}, thresholds={"Pneumothorax": 0.74}
        )
    )
    QApplication.processEvents()
    tree = panel.tree
    assert tree.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert tree.columnWidth(COL_NAME) >= NAME_MIN  # beside the 56 px thumbnail
    assert panel._items[str(path)].toolTip(COL_NAME) == str(path)


def test_worklist_shows_urgency_and_top_finding_in_a_320_px_dock(
    qtbot: Any, tmp_path: Path
) -> None:
    """Item 9: at the dock's narrowest, the top urgent finding is on screen, not scrolled off."""
    from viewer.workers import TriageItem
    from viewer.worklist import COL_NAME, COL_SCORE, COL_TOP, COL_VIEW, NAME_MIN, WorklistPanel

    panel = WorklistPanel(thumbnails=False)
    qtbot.addWidget(panel)
    panel.resize(320, 500)
    panel.show()
    qtbot.waitExposed(panel)
    path = tmp_path / "1.2.840.113619.2.55.3.604688119.969.1268071029.320.dcm"
    panel.add_files([path])
    panel.set_triage_item(
        TriageItem(
            path,
            1.2,
            "Pneumothorax",
            {"Pneumothorax": 0.89},
            thresholds={"Pneumothorax": 0.74},
            above=True,
        )
    )
    tree = panel.tree
    row = panel._items[str(path)]
    qtbot.waitUntil(lambda: not tree.isColumnHidden(COL_TOP))
    QApplication.processEvents()
    width = sum(tree.columnWidth(c) for c in (COL_NAME, COL_VIEW, COL_SCORE, COL_TOP))
    assert width <= tree.viewport().width()
    assert tree.horizontalScrollBar().maximum() == 0
    index = tree.indexFromItem(row, COL_TOP)
    rect = tree.visualRect(index)
    assert rect.left() >= 0 and rect.right() <= tree.viewport().width()
    assert tree.columnWidth(COL_NAME) >= NAME_MIN
    metrics = tree.fontMetrics()
    assert tree.columnWidth(COL_SCORE) >= metrics.horizontalAdvance(row.text(COL_SCORE)) + 8
    assert tree.columnWidth(COL_TOP) >= metrics.horizontalAdvance("Pneumot") + 8
    assert row.text(COL_TOP).startswith("Pneumothorax 89%")
    assert "Pneumothorax: 89.0% (threshold 74.0%)" in row.toolTip(COL_TOP)


def test_first_run_opens_at_about_ninety_percent_of_the_screen(qtbot: Any, tmp_path: Path) -> None:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMainWindow

    from viewer.settings import ViewerSettings

    window = QMainWindow()
    qtbot.addWidget(window)
    store = QSettings(str(tmp_path / "first.ini"), QSettings.Format.IniFormat)
    ViewerSettings(store).restore_window(window)
    area = window.screen().availableGeometry()
    assert abs(window.width() - 0.9 * area.width()) <= 2
    assert abs(window.height() - 0.9 * area.height()) <= 2
    assert area.contains(window.geometry())


@pytest.mark.parametrize("answer", ["No", "Yes"])
def test_export_png_of_a_burned_in_film_asks_first_and_writes_nothing_unless_allowed(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    import pydicom
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from tests.viewer.helpers import chest_like, write_dicom

    film = write_dicom(tmp_path / "burned.dcm", chest_like())
    ds = pydicom.dcmread(film)
    ds.BurnedInAnnotation = "YES"
    ds.save_as(film)
    target = tmp_path / "view.png"
    asked: list[str] = []

    def question(*args: Any) -> Any:
        asked.append(args[2])
        return getattr(QMessageBox.StandardButton, answer)

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG"))
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=60000):
        window.open_path(film)
    if answer == "No":
        with qtbot.waitSignal(window.error_shown) as blocker:
            window.exporter.export_png()
        assert "BurnedInAnnotation YES" in blocker.args[0] and "burned.dcm" in blocker.args[0]
        assert not target.exists()
    else:
        window.exporter.export_png()
        assert target.is_file()
    assert len(asked) == 1 and "BurnedInAnnotation YES" in asked[0]


def test_exported_view_png_carries_its_caption_strip_and_the_csv_its_model(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 7: the view PNG names finding, probability, threshold, level, member, model and
    disclaimer (strip and PNG text); the patient line only when asked; the CSV names the model."""
    import csv

    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QFileDialog

    from fpsm_core.explain.caption import read_png_text
    from viewer.export import grab_rgb, write_findings_csv

    target = tmp_path / "view.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG"))
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(dicom_file)
    window.state.set_level(3)
    finding = window.state.selected_finding
    with qtbot.waitSignal(window.exporter.saved):
        qtbot.keyClick(window, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    lines = read_png_text(target)["Description"].splitlines()
    side = "above" if finding.above_threshold else "below"
    assert (
        f"{finding.label}: probability {finding.probability:.1%}, {side} its threshold "
        f"{finding.threshold:.1%}" in lines
    )
    assert "closed-form Grad-CAM | level 3 | member tiny (the only one)" in lines
    assert any(line.startswith("model tiny | fpsm ") and "UNTRAINED" in line for line in lines)
    assert "Research software, not for clinical use." in lines
    assert not any("TEST" in line for line in lines)  # no identifier unless asked
    grabbed = grab_rgb(window.image_view.graphics)
    picture = QImage(str(target))
    assert picture.height() > grabbed.shape[0] and picture.width() == grabbed.shape[1]

    window.exporter.phi_action.trigger()  # File > Patient line on exported pictures
    window.exporter.export_png()
    assert any(
        line.startswith("patient TEST")
        for line in read_png_text(target)["Description"].splitlines()
    )

    with write_findings_csv(window.state.result, tmp_path / "f.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][-2:] == ["model", "disclaimer"]
    assert {tuple(r[-2:]) for r in rows[1:]} == {
        ("tiny", "Research software, not for clinical use.")
    }
