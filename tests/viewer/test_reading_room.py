"""The reading room as a reader drives it: corner text, PHI key, markers, linked viewports, priors,
frames, key images, magnifier, copy, print, help and ``--layout`` (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QDockWidget

from tests.viewer.helpers import chest_like, write_dicom

TIMEOUT = 60000


def tagged(path: Path, pixels: np.ndarray | None = None, **tags: object) -> Path:
    write_dicom(path, chest_like(96, 80) if pixels is None else pixels)
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


KNOWN = {
    "PatientName": "DOE^JANE",
    "PatientID": "MRN0042",
    "PatientSex": "F",
    "PatientAge": "064Y",
    "StudyDate": "20241105",
    "StudyTime": "093012",
    "AccessionNumber": "ACC77",
    "InstitutionName": "Harbour General",
    "ViewPosition": "PA",
    "ImageLaterality": "U",
    "SeriesNumber": 4,
    "InstanceNumber": 2,
    "PatientOrientation": ["L", "F"],
}


def shown(qtbot: Any, window: Any, index: int, path: Path) -> Any:
    """Wait until viewport ``index`` shows ``path`` with its header read; returns the viewport."""
    grid = window.reading_room.grid

    def ready() -> bool:
        if index >= len(grid.viewports):
            return False
        vp = grid.viewports[index]
        return vp.path == str(path) and vp.header is not None

    qtbot.waitUntil(ready, timeout=TIMEOUT)
    return grid.viewports[index]


def open_main(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(path)
    return shown(qtbot, window, 0, path)


def drag(
    widget: Any,
    button: Qt.MouseButton,
    start: QPointF,
    end: QPointF,
    steps: int = 6,
) -> None:
    """A real press-move-release sequence (QTest's mouseMove carries no buttons in Qt 6)."""
    from PySide6.QtWidgets import QApplication

    def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
        global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
        event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)

    send(QEvent.Type.MouseButtonPress, start, button)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), button)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


@pytest.fixture(autouse=True)
def _no_mouse_rate_limit(monkeypatch: pytest.MonkeyPatch) -> Any:
    import gc

    import pyqtgraph as pg

    # pyqtgraph drops mouse moves closer than 10 ms apart; synthetic moves come back to back.
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    yield
    # After the windows closed: collect their leftovers here, on the GUI thread, not whenever a
    # worker thread of the next test happens to trigger the collector.
    gc.collect()


# -- corner text and PHI ----------------------------------------------------------------------
def test_corner_text_shows_the_header_and_the_phi_key_hides_it(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    path = tagged(tmp_path / "known.dcm", **KNOWN)
    window = make_window()
    vp = open_main(qtbot, window, path)
    corners = vp.corners
    assert corners.text("top_left").splitlines() == ["DOE JANE", "ID MRN0042", "F / 64Y"]
    assert corners.text("top_right").splitlines() == [
        "Harbour General",
        "2024-11-05 09:30:12",
        "Acc ACC77",
    ]
    bottom_left = corners.text("bottom_left").splitlines()
    assert bottom_left[0].startswith("W ") and "  L " in bottom_left[0]
    assert bottom_left[1].startswith("zoom ") and bottom_left[1].endswith("%")
    assert bottom_left[2] == "0.25 x 0.2 mm/px (PixelSpacing)"  # SPACING_MM, rows x columns
    assert corners.text("bottom_right").splitlines()[:3] == ["DX", "PA U", "Se 4  Im 2"]

    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    assert window.reading_room.grid.room.phi_hidden
    text = corners.all_text()
    for phi in ("DOE", "MRN0042", "2024-11-05", "ACC77", "Harbour", "64Y"):
        assert phi not in text
    assert corners.text("top_left") == "PHI hidden"
    assert "PA U" in text and "DX" in text  # what is not PHI stays
    assert not window.worklist.tree.isVisible()  # its titles name the patient
    qtbot.keyClick(window, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    assert "DOE JANE" in corners.all_text()
    assert window.worklist.tree.isVisible()


def test_spacing_source_and_uncalibrated_films_say_so(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    imager = tagged(tmp_path / "imager.dcm", ImagerPixelSpacing=["0.2", "0.2"])
    ds = pydicom.dcmread(imager)
    del ds.PixelSpacing
    ds.save_as(imager)
    bare = write_dicom(tmp_path / "bare.dcm", chest_like(96, 80), spacing=None)
    window = make_window()
    vp = open_main(qtbot, window, imager)
    assert vp.corners.text("bottom_left").splitlines()[2] == (
        "0.2 mm/px (ImagerPixelSpacing: detector)"
    )
    vp = open_main(qtbot, window, bare)
    assert vp.corners.text("bottom_left").splitlines()[2] == "uncalibrated: lengths in pixels"


def test_corner_fields_are_configurable_per_corner(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.corner_text import load_corners

    path = tagged(tmp_path / "known.dcm", **KNOWN)
    window = make_window()
    vp = open_main(qtbot, window, path)
    room = window.reading_room
    corners = dict(load_corners(window.settings))
    corners["top_left"] = ("modality", "accession")
    corners["top_right"] = ()
    room.apply_settings(corners, ("LL", "PA"))
    assert vp.corners.text("top_left").splitlines() == ["DX", "Acc ACC77"]
    assert vp.corners.text("top_right") == ""
    assert load_corners(window.settings)["top_left"] == ("modality", "accession")
    assert room.grid.hanging == ("LL", "PA")


# -- orientation markers ----------------------------------------------------------------------
def test_markers_follow_rotate_and_flip_and_say_the_film_was_turned(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.orientation import NORMAL_STYLE, TURNED_STYLE

    path = tagged(tmp_path / "known.dcm", **KNOWN)
    window = make_window()
    vp = open_main(qtbot, window, path)
    markers = vp.markers
    assert markers.texts() == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert "ROTATED" not in vp.corners.all_text()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_R)  # clockwise: the head goes to the right
    assert markers.texts() == {"left": "F", "right": "H", "top": "R", "bottom": "L"}
    assert "ROTATED 90° CW" in vp.corners.text("bottom_right")
    assert markers.labels["top"].styleSheet() == TURNED_STYLE
    qtbot.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window, Qt.Key.Key_H)  # mirrored: right and left swap sides
    assert markers.texts() == {"left": "L", "right": "R", "top": "H", "bottom": "F"}
    assert "FLIPPED H" in vp.corners.text("bottom_right")
    qtbot.keyClick(window, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    assert markers.texts()["left"] == "R"
    assert markers.labels["left"].styleSheet() == NORMAL_STYLE
    assert "FLIPPED" not in vp.corners.all_text()


def test_edge_labels_and_transform_text_for_every_orientation() -> None:
    from viewer.orientation import edge_labels, transform_text

    cw = np.array([[0, -1], [1, 0]])
    flip = np.array([[-1, 0], [0, 1]])
    assert edge_labels(("P", "F"), np.eye(2, dtype=int)) == {
        "left": "A",
        "right": "P",
        "top": "H",
        "bottom": "F",
    }
    assert edge_labels(("L", "F"), cw @ cw)["left"] == "L"  # upside down
    assert transform_text(cw @ cw) == "rotated 180° CW"
    assert transform_text(cw @ cw @ cw) == "rotated 90° CCW"
    assert transform_text(flip) == "flipped H"
    assert transform_text(cw @ flip) == "flipped H, rotated 90° CW"  # mirrored, then turned
    assert transform_text(flip @ cw) == "flipped H, rotated 90° CCW"  # the same film as this
    assert edge_labels(None, cw) == {"left": "", "right": "", "top": "", "bottom": ""}


# -- viewports, links, drag, priors ------------------------------------------------------------
def test_linked_window_level_follows_a_right_drag_in_the_other_viewport(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    a = tagged(tmp_path / "a.dcm", PatientID="A")
    b = tagged(tmp_path / "b.dcm", chest_like(96, 80, seed=3), PatientID="B")
    window = make_window()
    left = open_main(qtbot, window, a)
    room = window.reading_room
    room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    assert room.grid.room.layout == "1x2"
    assert right.isVisible() and left.isVisible()
    before_left = left.view.window_level
    port = right.view.graphics.viewport()
    centre = QPointF(port.width() * 0.4, port.height() * 0.5)
    drag(port, Qt.MouseButton.RightButton, centre, centre + QPointF(60, -30))
    assert room.grid.room.active == 1  # the press made it active
    r_center, r_width = right.view.window_level
    l_center, l_width = left.view.window_level
    assert (l_center, l_width) != before_left
    # Same kind of film: the same fraction of each film's value range.
    from viewer.view_links import relative_window

    assert relative_window(left.view) == pytest.approx(relative_window(right.view), rel=1e-6)
    # Unlinked, the other film keeps its window.
    qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert not room.grid.room.linked
    kept = left.view.window_level
    drag(port, Qt.MouseButton.RightButton, centre, centre + QPointF(-40, 20))
    assert left.view.window_level == kept
    assert right.view.window_level != (r_center, r_width)


def test_linked_zoom_and_pan_show_the_same_part_of_both_films(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from viewer.view_links import relative_rect

    a = tagged(tmp_path / "a.dcm")
    b = tagged(tmp_path / "b.dcm", chest_like(96, 80, seed=4))
    window = make_window()
    left = open_main(qtbot, window, a)
    grid = window.reading_room.grid
    window.reading_room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    # The change list appears above the films with the second result: let the layout settle.
    qtbot.waitUntil(lambda: bool(grid.change_label.text()), timeout=TIMEOUT)
    port = left.view.graphics.viewport()
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=port.rect().center())
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    qtbot.keyClick(window, Qt.Key.Key_Plus)
    centre = QPointF(port.width() * 0.5, port.height() * 0.5)
    drag(port, Qt.MouseButton.LeftButton, centre, centre + QPointF(40, 25))
    # The same centre and the same height of film shown (each view box keeps its own aspect,
    # and their widths differ by the histogram axes' label widths).
    (lx, ly, lw, lh), (rx, ry, rw, rh) = relative_rect(left.view), relative_rect(right.view)
    assert (rx + rw / 2, ry + rh / 2) == pytest.approx((lx + lw / 2, ly + lh / 2), abs=1e-3)
    assert rh == pytest.approx(lh, rel=1e-3)
    assert min(lw, lh) < 0.9  # zoomed in (the narrow views show the film's full height)


def test_a_worklist_item_dropped_on_a_viewport_shows_there(
    qtbot: Any, make_window: Any, study_folder: Path
) -> None:
    from PySide6.QtGui import QDropEvent

    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(study_folder)
    room = window.reading_room
    room.grid.room.set_layout("1x2")
    target = room.grid.viewports[1]
    paths = window.worklist.paths()
    item = window.worklist._items[paths[1]]
    mime = window.worklist.tree.mimeData([item])
    assert [u.toLocalFile() for u in mime.urls()] == [paths[1]]
    port = target.view.graphics.viewport()
    drop = QDropEvent(
        QPointF(port.rect().center()),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # Qt delivers drop events only inside a platform drag, which offscreen cannot run (as in
    # test_viewer's drop test): the viewport's own handler gets the real event.
    assert target.eventFilter(port, drop)
    assert drop.isAccepted()
    vp = shown(qtbot, window, 1, Path(paths[1]))
    qtbot.waitUntil(lambda: vp.state.result is not None, timeout=TIMEOUT)
    assert vp.state.result.path == paths[1]  # its own findings, on its own film
    assert room.grid.viewports[0].path == paths[0]
    assert room.grid.room.active == 1
    assert "Left vs right:" in room.grid.change_label.text()


def test_a_prior_is_found_and_hung_on_the_right(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from pydicom.uid import generate_uid

    folder = tmp_path / "patient"
    (folder / "2024").mkdir(parents=True)
    (folder / "2021").mkdir()
    current = tagged(
        folder / "2024" / "pa.dcm",
        PatientID="P1",
        StudyDate="20240301",
        StudyInstanceUID=generate_uid(),
    )
    prior = tagged(
        folder / "2021" / "pa.dcm",
        chest_like(96, 80, seed=9),
        PatientID="P1",
        StudyDate="20210301",
        StudyInstanceUID=generate_uid(),
    )
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(folder)  # newest study first in the worklist
    grid = window.reading_room.grid
    shown(qtbot, window, 0, current)
    qtbot.waitUntil(grid.prior_button.isEnabled, timeout=TIMEOUT)
    qtbot.mouseClick(grid.prior_button, Qt.MouseButton.LeftButton)
    vp = shown(qtbot, window, 1, prior)
    assert grid.room.layout == "1x2"
    assert vp.corners.text("top_right").splitlines()[0] == "2021-03-01"
    assert window.status_label.text() == "Prior of 2021-03-01 on the right (1 prior study found)."
    qtbot.waitUntil(lambda: vp.state.result is not None, timeout=TIMEOUT)
    assert grid.change_label.text().startswith("Since the prior of 2021-03-01: ")


def test_no_prior_is_one_sentence(qtbot: Any, make_window: Any, dicom_file: Path) -> None:
    window = make_window()
    open_main(qtbot, window, dicom_file)
    assert not window.reading_room.grid.compare_with_prior()
    assert window.last_error == "Priors are found in a study index: open the patient's folder."


# -- frames ------------------------------------------------------------------------------------
def multi_frame(path: Path, frames: int = 3) -> tuple[Path, list[np.ndarray]]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stack = [np.roll(chest_like(64, 56), 7 * s, axis=1) for s in range(frames)]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"  # X-ray angiographic
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "CINE^C", "C", "XA"
    ds.Rows, ds.Columns = stack[0].shape
    ds.NumberOfFrames = frames
    ds.FrameTime = "50"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = "2000", "3000"
    ds.PixelData = np.ascontiguousarray(np.stack(stack), dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path, stack


def assert_same_part(rect: tuple[float, ...], before: tuple[float, ...]) -> None:
    """The same part of the film shown: a new frame is not a new film (no re-fit)."""
    assert rect == pytest.approx(before, abs=1e-6)


def test_frames_of_a_multi_frame_dicom_step_with_keys_and_ctrl_wheel(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    from viewer.view_links import relative_rect

    path, stack = multi_frame(tmp_path / "cine.dcm")
    window = make_window()
    vp = open_main(qtbot, window, path)
    assert "frame 1/3" in vp.corners.text("bottom_right")
    view = vp.view
    # The docks resize as findings arrive; without them the film's box keeps its size.
    for dock in window.findChildren(QDockWidget):
        dock.hide()
    qtbot.waitUntil(lambda: view.graphics.width() > 1000, timeout=TIMEOUT)
    view.rotate(90)
    window.activateWindow()
    view.zoom(2.0)
    rect_before = relative_rect(view)
    with qtbot.waitSignal(window.reading_room.grid.frame_shown, timeout=TIMEOUT):
        qtbot.keyClick(window, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    image = vp.state.image.image
    assert image.frame == 1
    np.testing.assert_array_equal(image.pixels, stack[1].astype(np.float32))
    assert "frame 2/3" in vp.corners.text("bottom_right")
    assert view.orientation.tolist() == [[0, -1], [1, 0]]  # the reader's view is kept
    assert_same_part(relative_rect(view), rect_before)
    # Findings follow the frame once stepping settles.
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        pass
    assert vp.state.result is not None
    # Ctrl+wheel down: the next frame; the wheel does not zoom.
    port = view.graphics.viewport()
    centre = port.rect().center()
    # The docks resize when findings come (the view keeps its centre, not its zoom): compare
    # the part of the film shown from here, and that the wheel did not zoom.
    (cx, cy, cw, ch) = relative_rect(view)
    wheel = QWheelEvent(
        QPointF(centre),
        QPointF(port.mapToGlobal(centre)),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    with qtbot.waitSignal(window.reading_room.grid.frame_shown, timeout=TIMEOUT):
        QApplication.sendEvent(port, wheel)
    assert vp.state.image.image.frame == 2
    assert_same_part(relative_rect(view), (cx, cy, cw, ch))
    # The last frame stops stepping; cine wraps around at the file's rate.
    assert not window.reading_room.frames.step(1)
    frames = window.reading_room.frames
    assert frames.interval_ms() == 50
    assert frames.toggle_cine()
    with qtbot.waitSignal(window.reading_room.grid.frame_shown, timeout=TIMEOUT):
        pass
    assert vp.state.image.image.frame in (0, 1)
    frames.stop_cine()
    assert not frames.running


def test_a_single_frame_film_says_it_has_one_frame(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    open_main(qtbot, window, dicom_file)
    assert not window.reading_room.frames.step(1)
    assert window.status_label.text() == "This film has one frame."


# -- small things --------------------------------------------------------------------------------
def test_key_image_mark_is_stored_and_back_after_reopening(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    path = tagged(tmp_path / "known.dcm", **KNOWN)
    db = tmp_path / "index.sqlite3"
    window = make_window(index_cache=db)
    vp = open_main(qtbot, window, path)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert "★ KEY IMAGE" in vp.corners.text("bottom_right")
    window.close()
    again = make_window(index_cache=db)
    vp2 = open_main(qtbot, again, path)
    qtbot.waitUntil(lambda: "★ KEY IMAGE" in vp2.corners.text("bottom_right"), timeout=TIMEOUT)
    assert again.reading_room.keys.marked_paths() == [str(path.absolute())]


def test_magnifier_shows_the_films_own_pixels_under_the_cursor(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from fpsm_core.io.image import apply_window
    from viewer.magnifier import LENS_PX

    pixels = chest_like(96, 80)
    path = write_dicom(tmp_path / "lens.dcm", pixels)
    window = make_window()
    vp = open_main(qtbot, window, path)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_G)
    lens = window.reading_room.magnifiers[0]
    port = vp.view.graphics.viewport()
    qtbot.mouseMove(port, port.rect().center())
    qtbot.waitUntil(lambda: lens.lens.isVisible(), timeout=TIMEOUT)
    picture = lens.shown
    assert picture is not None and picture.shape == (LENS_PX, LENS_PX)
    info = vp.view.cursor_info(vp.view.graphics.mapToScene(port.rect().center()))
    center, width = vp.view.window_level
    expected = apply_window(np.float32(pixels[info.row, info.col]), center, width)
    assert int(picture[LENS_PX // 2, LENS_PX // 2]) == pytest.approx(int(expected), abs=1)
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert not lens.lens.isVisible()


def test_copy_and_print_the_view(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    from PySide6.QtGui import QGuiApplication

    path = tagged(tmp_path / "known.dcm", **KNOWN)
    window = make_window()
    vp = open_main(qtbot, window, path)
    window.reading_room.copy_active()
    image = QGuiApplication.clipboard().image()
    assert (image.width(), image.height()) == (vp.view.graphics.width(), vp.view.graphics.height())
    out = window.reading_room.print_to(tmp_path / "view.pdf")
    assert out is not None and out.read_bytes()[:5] == b"%PDF-"
    assert window.reading_room.print_to(tmp_path / "missing" / "v.pdf") is None
    assert window.last_error == (
        f"Cannot print to '{tmp_path / 'missing' / 'v.pdf'}': "
        f"the folder {tmp_path / 'missing'} does not exist."
    )


def test_f1_shows_the_reading_room_keys(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    dialog = window.reading_room._help
    assert dialog is not None and dialog.isVisible()
    text = dialog.browser.toPlainText()
    for expected in ("Right-drag", "Ctrl+H", "Hide patient identifiers", "Ctrl+PgDown", "Ctrl+2"):
        assert expected in text
    dialog.close()


def test_layout_option_opens_two_films_side_by_side(tiny_model: Path, tmp_path: Path) -> None:
    from PIL import Image

    a = tagged(tmp_path / "a.dcm", **KNOWN)
    b = tagged(tmp_path / "b.dcm", chest_like(96, 80, seed=5), PatientID="OTHER")
    shot = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FPSM_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "viewer", str(a), str(b), "--layout", "1x2"]
        + ["--model", str(tiny_model), "--threads", "1", "--screenshot", str(shot)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert Image.open(shot).size == (1600, 1000)


def test_the_active_viewport_drives_the_ai_panel_and_the_finding_keys(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    a = tagged(tmp_path / "a.dcm")
    b = tagged(tmp_path / "b.dcm", chest_like(96, 80, seed=7))
    window = make_window()
    left = open_main(qtbot, window, a)
    room = window.reading_room
    room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    qtbot.waitUntil(lambda: right.state.result is not None, timeout=TIMEOUT)
    panels = room.panels
    assert panels.shown_panel() is window.ai_panel
    port = right.view.graphics.viewport()
    qtbot.mouseClick(port, Qt.MouseButton.LeftButton, pos=port.rect().center())
    assert room.grid.room.active == 1
    panel = panels.shown_panel()
    assert panel is not window.ai_panel
    rows = panel.findings_model.rowCount()
    shown_labels = [panel.findings_model.finding(r).label for r in range(rows)]
    assert shown_labels[:3] == [f.label for f in right.state.result.findings[:3]]
    # J selects the next finding of the active viewport's film, not the first one's.
    first_before = left.state.finding
    selected = right.state.finding
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_J)
    assert right.state.finding != selected
    assert left.state.finding == first_before
    qtbot.mouseClick(left.view.graphics.viewport(), Qt.MouseButton.LeftButton)
    assert panels.shown_panel() is window.ai_panel


def test_pa_and_lateral_of_one_study_hang_together_in_the_preferred_order(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from pydicom.uid import generate_uid

    folder = tmp_path / "study"
    folder.mkdir()
    uid = generate_uid()
    common = {"PatientID": "P2", "StudyDate": "20240301", "StudyInstanceUID": uid}
    # Series numbers fix the worklist order (each file has a series of its own).
    lateral = tagged(folder / "1_lat.dcm", ViewPosition="LL", SeriesNumber=1, **common)
    frontal = tagged(folder / "2_pa.dcm", ViewPosition="PA", SeriesNumber=2, **common)
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(folder)  # the lateral is listed (and shown) first
    grid = window.reading_room.grid
    shown(qtbot, window, 0, lateral)
    qtbot.waitUntil(grid.views_button.isEnabled, timeout=TIMEOUT)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    # The hanging order puts PA left: the main film becomes the PA, the lateral goes right.
    left = shown(qtbot, window, 0, frontal)
    right = shown(qtbot, window, 1, lateral)
    assert grid.room.layout == "1x2"
    assert left.markers.texts()["left"] == "R"
    assert right.markers.texts() == {"left": "A", "right": "P", "top": "H", "bottom": "F"}


def test_a_film_opening_beside_another_keeps_the_others_window(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    a = write_dicom(tmp_path / "a.dcm", chest_like(96, 80), window=(2000.0, 3000.0))
    b = write_dicom(tmp_path / "b.dcm", chest_like(96, 80, seed=2), window=(900.0, 500.0))
    window = make_window()
    left = open_main(qtbot, window, a)
    assert left.view.window_level == (2000.0, 3000.0)
    window.reading_room.open_beside([b], "1x2")
    right = shown(qtbot, window, 1, b)
    assert right.view.window_level == (900.0, 500.0)  # its own window
    assert left.view.window_level == (2000.0, 3000.0)  # untouched by the link
