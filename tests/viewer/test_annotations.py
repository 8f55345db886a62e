"""Measuring on the film with real mouse drags: each tool's value, editing, undo, saving, CTR.

A film view, a state and a controller are built without the main window (no model to load) for
the tools; the main window is used where the whole app matters (reopen, keys, the dock).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from tests.viewer.helpers import SPACING_MM, chest_like, write_dicom

LEFT = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton


def _send(widget: Any, kind: QEvent.Type, pos: QPointF, button: Any, buttons: Any) -> None:
    global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
    event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(widget: Any, start: QPointF, end: QPointF, steps: int = 8) -> None:
    """A real left press-move-release (QTest's mouseMove carries no buttons in Qt 6)."""
    _send(widget, QEvent.Type.MouseMove, start, NONE, NONE)
    _send(widget, QEvent.Type.MouseButtonPress, start, LEFT, LEFT)
    for i in range(1, steps + 1):
        _send(widget, QEvent.Type.MouseMove, start + (end - start) * (i / steps), LEFT, LEFT)
    _send(widget, QEvent.Type.MouseButtonRelease, end, LEFT, NONE)


def click(widget: Any, pos: QPointF) -> None:
    _send(widget, QEvent.Type.MouseMove, pos, NONE, NONE)
    _send(widget, QEvent.Type.MouseButtonPress, pos, LEFT, LEFT)
    _send(widget, QEvent.Type.MouseButtonRelease, pos, LEFT, NONE)


class Film:
    """The view, state and controller of one viewport, with image <-> viewport mapping."""

    def __init__(self, view: Any, state: Any, controller: Any) -> None:
        self.view, self.state, self.controller = view, state, controller
        self.viewport = view.graphics.viewport()

    def at(self, x: float, y: float) -> QPointF:
        """The viewport position of image point (x, y)."""
        scene = self.view.frame.mapToScene(QPointF(x, y))
        return QPointF(self.view.graphics.mapFromScene(scene))

    def image_point(self, pos: QPointF) -> tuple[float, float]:
        p = self.view.frame.mapFromScene(self.view.graphics.mapToScene(pos.toPoint()))
        return (p.x(), p.y())

    def drag_image(self, p0: tuple[float, float], p1: tuple[float, float]) -> None:
        drag(self.viewport, self.at(*p0), self.at(*p1))

    def click_image(self, p: tuple[float, float]) -> None:
        click(self.viewport, self.at(*p))

    def only(self) -> Any:
        (annotation,) = self.controller.annotations
        return annotation


def load(path: Path) -> Any:
    from fpsm_core.io.loader import load_image
    from viewer import display
    from viewer.workers import LoadedImage

    image = load_image(path)
    return LoadedImage(path, image, display.build_pyramid(image.pixels), 0.0)


@pytest.fixture()
def make_film(qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import pyqtgraph as pg

    from viewer.annotations.controller import AnnotationController
    from viewer.film_binding import FilmBinding
    from viewer.image_view import ImageViewWidget
    from viewer.state import ViewerState

    # pyqtgraph drops mouse moves closer than 10 ms apart; synthetic moves come back to back.
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)

    def factory(path: Path, store: Any = None) -> Film:
        view = ImageViewWidget()
        qtbot.addWidget(view)
        view.resize(800, 700)
        view.show()
        qtbot.waitExposed(view)
        state = ViewerState(view)
        FilmBinding(state, view)
        controller = AnnotationController(state, view, store)
        state.set_image(load(path))
        QApplication.processEvents()
        return Film(view, state, controller)

    return factory


@pytest.fixture()
def ramp_file(tmp_path: Path) -> Path:
    """A 200 x 160 film whose value is 10 * column + row, spacing 0.25 x 0.2 mm."""
    rows, cols = 200, 160
    y, x = np.mgrid[0:rows, 0:cols]
    return write_dicom(tmp_path / "ramp.dcm", (10 * x + y).astype(np.uint16), window=(900, 1800))


def test_length_drawn_with_a_drag_is_in_mm_and_names_its_spacing(
    make_film: Any, ramp_file: Path
) -> None:
    film = make_film(ramp_file)
    film.state.set_tool("length")
    film.drag_image((20.5, 30.5), (80.5, 110.5))
    a = film.only()
    want = math.hypot(60 * SPACING_MM[1], 80 * SPACING_MM[0])
    m = film.controller.measurement(a)
    assert m.unit == "mm" and m.value == pytest.approx(want, abs=0.1)
    assert "PixelSpacing" in m.text
    label = film.controller._items[a.id][1].textItem.toPlainText()
    assert f"{want:.1f} mm" in label and "PixelSpacing" in label


def test_angle_and_cobb_from_drags_and_clicks(make_film: Any, ramp_file: Path) -> None:
    film = make_film(ramp_file)
    film.state.set_tool("angle")
    film.drag_image((100.5, 50.5), (50.5, 50.5))  # first arm, ending on the vertex
    film.click_image((50.5, 100.5))  # the second arm: 90 degrees in mm (0.25 vs 0.2 spacing)
    a = film.only()
    u = np.array([50 * SPACING_MM[1], 0.0])
    v = np.array([0.0, 50 * SPACING_MM[0]])
    assert film.controller.measurement(a).value == pytest.approx(90.0, abs=0.5)
    film.controller.clear()
    film.state.set_tool("cobb")
    film.drag_image((20.5, 40.5), (120.5, 40.5))  # horizontal in mm
    film.drag_image((20.5, 120.5), (120.5, 150.5))
    cobb = film.only()
    dx, dy = 100 * SPACING_MM[1], 30 * SPACING_MM[0]
    assert film.controller.measurement(cobb).value == pytest.approx(
        math.degrees(math.atan2(dy, dx)), abs=0.5
    )
    del u, v


@pytest.mark.parametrize("kind", ["rectangle", "ellipse"])
def test_roi_statistics_are_of_the_original_pixels(
    make_film: Any, tmp_path: Path, kind: str
) -> None:
    # MONOCHROME1: the loader mirrors the pixels for display; the ROI must report stored values.
    rows, cols = 200, 160
    y, x = np.mgrid[0:rows, 0:cols]
    stored = (10 * x + y).astype(np.uint16)
    path = write_dicom(tmp_path / "m1.dcm", stored, window=(900, 1800), photometric="MONOCHROME1")
    film = make_film(path)
    film.state.set_tool(kind)
    film.drag_image((40.0, 50.0), (100.0, 130.0))
    a = film.only()
    (x0, y0), (x1, y1) = a.points
    cx, cy = np.arange(cols) + 0.5, np.arange(rows) + 0.5
    xx, yy = np.meshgrid(cx, cy)
    if kind == "rectangle":
        inside = (
            (xx >= min(x0, x1)) & (xx <= max(x0, x1)) & (yy >= min(y0, y1)) & (yy <= max(y0, y1))
        )
        area = abs(x1 - x0) * abs(y1 - y0)
    else:
        a_, b_ = abs(x1 - x0) / 2, abs(y1 - y0) / 2
        inside = ((xx - (x0 + x1) / 2) / a_) ** 2 + ((yy - (y0 + y1) / 2) / b_) ** 2 <= 1
        area = math.pi * a_ * b_
    values = stored[inside].astype(float)
    d = film.controller.measurement(a).details
    assert d["mean"] == pytest.approx(values.mean(), rel=1e-6)
    assert d["sd"] == pytest.approx(values.std(), rel=1e-6)
    assert (d["min"], d["max"]) == (values.min(), values.max())
    assert d["area_unit"] == "mm²"
    assert film.controller.measurement(a).text.splitlines()[-1].endswith("mm² · PixelSpacing")
    assert d["area"] == pytest.approx(area * SPACING_MM[0] * SPACING_MM[1], rel=1e-6)
    assert abs(x0 - 40.0) < 1 and abs(y1 - 130.0) < 1  # the box is where the drag went


def test_move_a_point_move_the_whole_delete_undo_redo(make_film: Any, ramp_file: Path) -> None:
    film = make_film(ramp_file)
    c = film.controller
    film.state.set_tool("length")
    film.drag_image((20.5, 20.5), (60.5, 20.5))
    first = film.only()
    # Drag the end handle somewhere else: the same annotation, a new end.
    film.drag_image((60.5, 20.5), (60.5, 90.5))
    moved = film.only()
    assert moved.id == first.id
    assert moved.points[1] == pytest.approx((60.5, 90.5), abs=1.0)
    # Without a drawing tool, dragging the middle of the line moves the whole line.
    film.state.set_tool("none")
    mid = (
        (moved.points[0][0] + moved.points[1][0]) / 2,
        (moved.points[0][1] + moved.points[1][1]) / 2,
    )
    film.drag_image(mid, (mid[0] + 30, mid[1] + 10))
    shifted = film.only()
    assert shifted.points[0] == pytest.approx(
        (moved.points[0][0] + 30, moved.points[0][1] + 10), abs=1.0
    )
    assert c.measurement(shifted).value == pytest.approx(c.measurement(moved).value, rel=1e-3)
    # Select with a click, delete, undo, undo, redo.
    film.click_image(shifted.points[0])
    assert c.selected == shifted.id
    assert c.delete_selected()
    assert c.annotations == ()
    assert c.undo() and c.annotations == (shifted,)
    assert c.undo() and c.annotations == (moved,)
    assert c.redo() and c.annotations == (shifted,)


def test_text_and_arrow_typed_in_place_and_edited(
    qtbot: Any, make_film: Any, ramp_file: Path
) -> None:
    film = make_film(ramp_file)
    c = film.controller
    film.state.set_tool("text")
    film.click_image((40.0, 40.0))
    assert c.editor.isVisible()
    qtbot.keyClicks(c.editor, "left hilum")
    qtbot.keyClick(c.editor, Qt.Key.Key_Return)
    text = film.only()
    assert text.kind == "text" and text.text == "left hilum"
    film.state.set_tool("arrow")
    film.drag_image((120.0, 150.0), (70.0, 100.0))
    arrow = c.annotations[-1]
    assert arrow.kind == "arrow" and arrow.points[1] == pytest.approx((70.0, 100.0), abs=1.0)
    qtbot.keyClicks(c.editor, "nodule")
    qtbot.keyClick(c.editor, Qt.Key.Key_Return)
    assert c.annotations[-1].text == "nodule"
    # Double-click the text's anchor to edit it.
    film.state.set_tool("none")
    pos = film.at(40.0, 40.0)
    _send(film.viewport, QEvent.Type.MouseButtonPress, pos, LEFT, LEFT)
    _send(film.viewport, QEvent.Type.MouseButtonRelease, pos, LEFT, NONE)
    _send(film.viewport, QEvent.Type.MouseButtonDblClick, pos, LEFT, LEFT)
    _send(film.viewport, QEvent.Type.MouseButtonRelease, pos, LEFT, NONE)
    assert c.editor.isVisible() and c.editor.text() == "left hilum"
    c.editor.clear()
    qtbot.keyClicks(c.editor, "right hilum")
    qtbot.keyClick(c.editor, Qt.Key.Key_Return)
    assert c.sheet.get(text.id).text == "right hilum"


def test_calibration_on_a_film_without_spacing(qtbot: Any, make_film: Any, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "nospacing.dcm", chest_like(200, 160), spacing=None)
    film = make_film(path)
    c = film.controller
    film.state.set_tool("length")
    film.drag_image((20.5, 20.5), (20.5, 120.5))
    before = c.measurement(film.only())
    assert before.unit == "px" and before.value == pytest.approx(100.0, abs=1.0)
    assert "uncalibrated" in before.text
    film.state.set_tool("calibrate")
    film.drag_image((40.5, 20.5), (90.5, 20.5))  # a 50 px marker known to be 25 mm
    assert c.editor.isVisible()
    qtbot.keyClicks(c.editor, "25")
    qtbot.keyClick(c.editor, Qt.Key.Key_Return)
    cal = c.sheet.calibration
    assert cal is not None
    mm_per_px = 25.0 / math.dist(*cal.points)
    after = c.measurement(film.only())
    assert after.unit == "mm" and "calibrated" in after.text
    assert after.value == pytest.approx(before.value * mm_per_px, rel=1e-6)
    assert after.value == pytest.approx(50.0, abs=0.8)
    # A wrong entry is one sentence, and the calibration stays.
    film.drag_image((40.5, 60.5), (90.5, 60.5))
    qtbot.keyClicks(c.editor, "abc")
    with qtbot.waitSignal(c.error, timeout=2000) as blocker:
        qtbot.keyClick(c.editor, Qt.Key.Key_Return)
    assert "not a length" in blocker.args[0]
    assert c.sheet.calibration == cal
    assert c.undo() and c.sheet.calibration is None  # the calibration is undoable too
    assert c.redo() and c.sheet.calibration == cal
    from viewer.annotations.panel import AnnotationPanel

    panel = AnnotationPanel(c)
    qtbot.addWidget(panel)
    assert (
        panel.spacing_label.text().splitlines()[0]
        == f"Spacing: calibrated, {mm_per_px:.4g} mm/px (a 25 mm line)"
    )
    qtbot.mouseClick(panel.buttons["uncalibrate"], LEFT)
    assert c.sheet.calibration is None and "uncalibrated" in c.measurement(film.only()).text
    assert not panel.buttons["uncalibrate"].isEnabled()


@pytest.fixture(scope="module")
def sim_films(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict[str, float]]]:
    import csv

    from fpsm_core.sim import write_dataset

    out = tmp_path_factory.mktemp("sim")
    write_dataset(out, n=4, seed=3, format="dicom", size=256)
    with (out / "measurements.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        (
            out / "images" / f"{r['image_id']}.dcm",
            {k: float(v) for k, v in r.items() if k != "image_id"},
        )
        for r in rows
    ]


CTR_TOLERANCE = 0.02
"""Drawing the spans at the simulator's true border points must give its CTR within 0.02 (the
inter-reader spread of CTR is about 0.02-0.03): the film is tilted by the pose (~1.5 degrees) and
the drag lands within a screen pixel."""


def test_ctr_on_simulated_films_matches_the_simulators_truth(
    make_film: Any, sim_films: list[tuple[Path, dict[str, float]]]
) -> None:
    film = make_film(sim_films[0][0])
    for path, truth in sim_films:
        film.state.set_image(load(path))  # the next film in the same viewport
        QApplication.processEvents()
        assert film.controller.annotations == ()
        film.state.set_tool("ctr")
        film.drag_image(
            (truth["cardiac_x0"], truth["cardiac_y0"]), (truth["cardiac_x1"], truth["cardiac_y0"])
        )
        assert len(film.controller.annotations) == 0  # one span drawn: the thorax still to come
        # The ratio is shown live while the thorax span is dragged, before the button is released.
        start = film.at(truth["thoracic_x0"], truth["thoracic_y0"])
        end = film.at(truth["thoracic_x1"], truth["thoracic_y0"])
        _send(film.viewport, QEvent.Type.MouseMove, start, NONE, NONE)
        _send(film.viewport, QEvent.Type.MouseButtonPress, start, LEFT, LEFT)
        for i in range(1, 9):
            _send(film.viewport, QEvent.Type.MouseMove, start + (end - start) * (i / 8), LEFT, LEFT)
        live = film.controller._pending_label.textItem.toPlainText()
        assert live.startswith("CTR ")
        assert float(live.split()[1]) == pytest.approx(truth["ctr"], abs=CTR_TOLERANCE + 0.005)
        _send(film.viewport, QEvent.Type.MouseButtonRelease, end, LEFT, NONE)
        a = film.only()
        m = film.controller.measurement(a)
        assert m.value == pytest.approx(truth["ctr"], abs=CTR_TOLERANCE), path.name
        assert a.points[1][1] == a.points[0][1] and a.points[3][1] == a.points[2][1]  # horizontal
        assert "CTR" in m.text


def test_annotations_survive_closing_and_reopening_the_app(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyqtgraph as pg

    from tests.viewer.test_viewer import open_and_wait

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    index = tmp_path / "index.sqlite3"
    path = write_dicom(tmp_path / "chest.dcm", chest_like(200, 160))
    window = make_window(index_cache=index)
    open_and_wait(qtbot, window, path)
    film = Film(window.image_view, window.state, window.measure.controller)
    window.actions_by_name["ruler"].trigger()  # the ruler is the length tool
    assert window.state.tool == "length"
    film.drag_image((20.5, 20.5), (80.5, 100.5))
    window.actions_by_name["tool_ellipse"].trigger()
    film.drag_image((30.0, 30.0), (90.0, 80.0))
    saved = film.controller.annotations
    assert [a.kind for a in saved] == ["length", "ellipse"]
    assert window.measure.panel.lines()[0].startswith("Length: ")
    assert "Not saved" not in window.measure.panel.spacing_label.text()
    window.close()

    again = make_window(index_cache=index)
    open_and_wait(qtbot, again, path)
    assert again.measure.controller.annotations == saved
    assert len(again.measure.panel.lines()) == 2
    # Keys: Del deletes the selected one, Ctrl+Z brings it back; each change is saved at once.
    again.measure.controller.select(saved[0].id)
    again.actions_by_name["delete_annotation"].trigger()
    assert again.measure.controller.annotations == saved[1:]
    from fpsm_core.annotations import AnnotationStore, image_key

    with AnnotationStore(index) as store:
        assert store.load(image_key(again.state.image.image)).annotations == saved[1:]
    again.actions_by_name["undo_annotation"].trigger()
    assert again.measure.controller.annotations == saved
    again.actions_by_name["cancel"].trigger()
    assert again.state.tool == "none"


@pytest.mark.parametrize("pose", ["zoomed-panned", "rotated", "rotated-flipped"])
def test_tools_measure_the_image_whatever_the_zoom_rotation_or_flip(
    make_film: Any, ramp_file: Path, pose: str
) -> None:
    film = make_film(ramp_file)
    view = film.view
    if pose == "zoomed-panned":
        view.zoom(2.0)
        view.view.translateBy(x=20, y=-15)
    if "rotated" in pose:
        view.rotate(90)
    if "flipped" in pose:
        view.flip_horizontal()
    QApplication.processEvents()
    vp = film.viewport
    start = QPointF(vp.width() * 0.45, vp.height() * 0.4)
    end = start + QPointF(40, 90)
    film.state.set_tool("length")
    drag(vp, start, end)
    a = film.only()
    want0, want1 = film.image_point(start), film.image_point(end)
    assert a.points[0] == pytest.approx(want0, abs=1.0)
    assert a.points[1] == pytest.approx(want1, abs=1.0)
    dx = (a.points[1][0] - a.points[0][0]) * SPACING_MM[1]
    dy = (a.points[1][1] - a.points[0][1]) * SPACING_MM[0]
    assert film.controller.measurement(a).value == pytest.approx(math.hypot(dx, dy), rel=1e-9)
    # The drawn end sits under the cursor on screen, and its handle can be taken again there.
    shown = film.at(*a.points[1])
    assert abs(shown.x() - end.x()) <= 1.5 and abs(shown.y() - end.y()) <= 1.5
    film.state.set_tool("none")
    drag(vp, end, end + QPointF(-30, 0))
    assert film.only().points[1] == pytest.approx(film.image_point(end + QPointF(-30, 0)), abs=1.0)


def test_the_dock_lists_selects_and_deletes(qtbot: Any, make_film: Any, ramp_file: Path) -> None:
    from viewer.annotations.panel import AnnotationPanel

    film = make_film(ramp_file)
    panel = AnnotationPanel(film.controller)
    qtbot.addWidget(panel)
    panel.show()
    film.state.set_tool("rectangle")
    film.drag_image((10.0, 10.0), (50.0, 40.0))
    film.state.set_tool("length")
    film.drag_image((60.5, 60.5), (60.5, 160.5))
    assert panel.lines()[0].startswith("Rectangle ROI: mean ")
    assert panel.lines()[1] == "Length: 25.0 mm · PixelSpacing"
    assert panel.spacing_label.text().splitlines() == [
        "Spacing: PixelSpacing 0.25 x 0.2 mm",
        "Not saved: no study index is open.",  # this film's controller was given no store
    ]
    first = panel.list.visualItemRect(panel.list.item(0)).center()
    qtbot.mouseClick(panel.list.viewport(), LEFT, pos=first)
    assert film.controller.selected == film.controller.annotations[0].id
    qtbot.mouseClick(panel.buttons["delete"], LEFT)
    assert [a.kind for a in film.controller.annotations] == ["length"]
    qtbot.mouseClick(panel.buttons["undo"], LEFT)
    assert len(panel.lines()) == 2


def test_typing_in_the_editor_does_not_fire_the_windows_keys(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyqtgraph as pg

    from tests.viewer.test_viewer import open_and_wait

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    path = write_dicom(tmp_path / "chest.dcm", chest_like(200, 160))
    window = make_window()
    open_and_wait(qtbot, window, path)
    film = Film(window.image_view, window.state, window.measure.controller)
    window.actions_by_name["tool_text"].trigger()
    film.click_image((50.0, 50.0))
    editor = window.measure.controller.editor
    assert editor.isVisible()
    inverted, orientation = window.state.inverted, window.image_view.orientation
    qtbot.keyClicks(editor, "Hilar mass, review RIH")  # H flips, I inverts, R rotates, M length
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert film.only().text == "Hilar mass, review RIH"
    assert window.state.inverted == inverted and window.state.tool == "text"
    assert np.array_equal(window.image_view.orientation, orientation)


def test_a_second_viewport_gets_its_own_controller_and_the_dock_follows_the_active_one(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyqtgraph as pg

    from fpsm_core.annotations import AnnotationStore, image_key
    from tests.viewer.test_viewer import open_and_wait
    from viewer.film_binding import FilmBinding
    from viewer.image_view import ImageViewWidget
    from viewer.state import ViewerState

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    index = tmp_path / "index.sqlite3"
    first = write_dicom(tmp_path / "a.dcm", chest_like(200, 160))
    second = write_dicom(tmp_path / "b.dcm", chest_like(200, 160, seed=3))
    window = make_window(index_cache=index)
    open_and_wait(qtbot, window, first)
    view = ImageViewWidget()
    qtbot.addWidget(view)
    view.resize(600, 600)
    view.show()
    qtbot.waitExposed(view)
    state = ViewerState(view)
    FilmBinding(state, view)
    other = window.measure.add_viewport(view, state)
    state.set_image(load(second))
    QApplication.processEvents()
    film = Film(view, state, other)
    state.set_tool("rectangle")
    film.drag_image((20.0, 20.0), (60.0, 50.0))
    assert window.measure.controller.annotations == ()  # the window's film is not touched
    window.measure.set_active(other)
    assert window.measure.panel.lines()[0].startswith("Rectangle ROI")
    other.select(film.only().id)
    window.actions_by_name["delete_annotation"].trigger()
    assert other.annotations == ()
    window.actions_by_name["undo_annotation"].trigger()
    (rect,) = other.annotations
    with AnnotationStore(index) as store:  # both viewports save into the same study index
        assert store.load(image_key(state.image.image)).annotations == (rect,)


def test_a_rectangle_drawn_on_a_film_is_added_to_a_patch_library(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: boxes drawn on any image opened in the viewer go to the library the same way."""
    import pyqtgraph as pg

    from fpsm_core.dadam import PatchLibrary
    from tests.viewer.test_viewer import open_and_wait

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    path = write_dicom(tmp_path / "chest.dcm", chest_like(200, 160))
    window = make_window()
    open_and_wait(qtbot, window, path)
    button = window.measure.library_button
    assert not button.isEnabled()  # nothing selected
    window.actions_by_name["add_to_library"].trigger()
    assert "Select a rectangle" in window.last_error
    film = Film(window.image_view, window.state, window.measure.controller)
    window.actions_by_name["tool_rectangle"].trigger()
    film.drag_image((40.0, 50.0), (90.0, 110.0))
    (rect,) = film.controller.annotations
    film.controller.select(rect.id)
    assert button.isEnabled()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = window.measure.to_library.dialog
    assert dialog is not None and dialog.isVisible()
    library = tmp_path / "my library"
    dialog.library.setText(str(library))
    dialog.label.setCurrentText("nodule")  # any case, as typed
    with qtbot.waitSignal(window.measure.to_library.added, timeout=30000) as blocker:
        dialog.accept()
    lib_path, pid = blocker.args
    assert lib_path == library
    with PatchLibrary(library, create=False) as lib:
        patch = lib.get(pid)
        assert patch.label == "Nodule" and patch.state == "unreviewed"
        assert patch.dataset == "viewer" and patch.image_path == str(path)
        assert patch.source_box == pytest.approx((40.0, 50.0, 90.0, 110.0), abs=1.0)
        assert patch.spacing_mm is not None  # the film's spacing is kept: sizes in mm
        assert patch.file.is_file()
    assert f"Patch {pid} (Nodule) added to {library}" in window.status_label.text()
    # A class that is not a CXR-LT label is one sentence; nothing is added.
    window.measure.to_library.ask(window)
    window.measure.to_library.dialog.library.setText(str(library))
    window.measure.to_library.dialog.label.setCurrentText("Tibia fracture")
    window.measure.to_library.dialog.accept()
    assert window.last_error == "'Tibia fracture' is not one of the 26 CXR-LT classes."
    with PatchLibrary(library, create=False) as lib:
        assert len(lib) == 1
