"""The DADAM patch editor, driven like a user: real key presses and mouse events, offscreen.

Libraries are made from the simulator's boxes (small DICOM films with spacing, as in
tests/core/test_dadam_sim.py). Every change must be in ``library.sqlite`` at once, so the tests read
it back through a second, independent ``PatchLibrary``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

sim = pytest.importorskip("fpsm_core.sim", reason="the simulator is not in this build")

from fpsm_core.dadam import PatchLibrary, import_boxes, read_boxes  # noqa: E402

TIMEOUT = 30000


@pytest.fixture(scope="module")
def sim_films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated DICOM films (128 px, with spacing) and their boxes.csv."""
    base = tmp_path_factory.mktemp("sim")
    sim.write_dataset(base, n=6, seed=3, format="dicom", size=128)
    return base


@pytest.fixture()
def sim_library(tmp_path: Path, sim_films: Path) -> Path:
    """A library imported from the simulated films' boxes."""
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        report = import_boxes(lib, read_boxes(sim_films / "boxes.csv", "fpsm"), sim_films)
        assert report.added >= 6 and not report.load_errors
    return root


@pytest.fixture()
def make_editor(qtbot: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a shown PatchEditorWindow; each is closed at the end and must leave no thread."""
    from viewer.patch_editor import PatchEditorWindow
    from viewer.theme import apply_theme

    made: list[Any] = []

    def factory(library: Path | None = None, **kwargs: Any) -> Any:
        apply_theme(QApplication.instance())  # type: ignore[arg-type]
        window = PatchEditorWindow(library, **kwargs)
        window.resize(1280, 860)
        window.show()
        window.activateWindow()  # window shortcuts (Ctrl+Z) need the active window
        qtbot.waitExposed(window)
        qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)
        made.append(window)
        return window

    yield factory
    for window in made:
        threads = window.threads()
        window.close()
        for thread in threads:
            assert not thread.isRunning(), f"worker thread {thread.objectName()} still running"
        assert not window.thumbnails.decode_thread.isRunning()
        window.deleteLater()


def states_on_disk(root: Path) -> dict[int, str]:
    with PatchLibrary(root, create=False) as lib:
        return {p.id: p.state for p in lib.patches(states=("unreviewed", "accepted", "rejected"))}


def click_card(qtbot: Any, window: Any, patch_id: int, modifier: Any = None) -> None:
    rect = window.gallery.index_rect(patch_id)
    assert rect.isValid()
    mods = modifier or Qt.KeyboardModifier.NoModifier
    qtbot.mouseClick(window.gallery.view.viewport(), Qt.MouseButton.LeftButton, mods, rect.center())


def drag(widget: Any, start: QPointF, end: QPointF, steps: int = 8) -> None:
    """A real press-move-release on a widget (QTest's mouseMove carries no buttons in Qt 6)."""

    def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
        global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
        event = QMouseEvent(
            kind,
            pos,
            global_pos,
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(widget, event)

    send(QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_a_library_is_created_from_simulator_boxes_in_the_window(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path
) -> None:
    root = tmp_path / "new_lib"
    window = make_editor(root)
    assert "holds no patch library yet" in window.banner.text()
    assert window.state.ids == []
    window.actions_by_name["new"].trigger()
    dialog = window.dialog
    assert dialog is not None and dialog.library.text() == str(root)
    qtbot.keyClicks(dialog.boxes, str(sim_films / "boxes.csv"))
    qtbot.keyClicks(dialog.images, str(sim_films))
    with qtbot.waitSignal(window.library_opened, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    with PatchLibrary(root, create=False) as lib:
        n = len(lib)
    assert n >= 6
    assert len(window.state.ids) == n
    assert window.counts.count("all", "unreviewed") == n
    assert "new patches" in dialog.message.text()
    assert not window.banner.isVisible()
    # Resumable: the same import again adds nothing and skips every box.
    with qtbot.waitSignal(dialog.import_finished, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert "0 new patches" in blocker.args[1] and "already imported" in blocker.args[1]


def test_import_of_a_missing_box_file_is_one_sentence(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path
) -> None:
    window = make_editor(tmp_path / "lib2")
    dialog = window.new_library()
    qtbot.keyClicks(dialog.boxes, str(tmp_path / "nope.csv"))
    qtbot.keyClicks(dialog.images, str(sim_films))
    with qtbot.waitSignal(dialog.import_failed, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert "nope.csv" in dialog.message.text() and "not found" in dialog.message.text()
    assert dialog.start_button.isEnabled()


def test_filter_by_label_and_sort_by_size(qtbot: Any, make_editor: Any, sim_library: Path) -> None:
    window = make_editor(sim_library)
    session = window.state.session
    all_ids = list(window.state.ids)
    labels = {session.card(i).label for i in all_ids}
    label = max(labels, key=lambda lab: sum(session.card(i).label == lab for i in all_ids))
    window.filter_bar.label_combo.setCurrentText(label)
    assert window.state.filter.labels == (label,)
    listed = window.state.ids
    assert listed and all(session.card(i).label == label for i in listed)
    assert window.gallery.model.rowCount() == len(listed)
    assert window.count_label.text().startswith(f"{len(listed)} listed")
    window.filter_bar.label_combo.setCurrentText("all")
    window.filter_bar.sort_combo.setCurrentText("size")
    sizes = [session.card(i).size for i in window.state.ids]
    assert sizes == sorted(sizes) and len(sizes) == len(all_ids)
    qtbot.mouseClick(window.filter_bar.descending, Qt.MouseButton.LeftButton)
    assert [session.card(i).size for i in window.state.ids] == sorted(sizes, reverse=True)
    # A size range keeps only lesions whose larger side lies in it.
    window.filter_bar.min_size.setValue(sizes[len(sizes) // 2])
    assert all(session.card(i).size >= sizes[len(sizes) // 2] for i in window.state.ids)


def test_keys_accept_reject_reset_and_the_counts_follow(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    window = make_editor(sim_library)
    view = window.gallery.view
    first, second = window.state.ids[0], window.state.ids[1]
    click_card(qtbot, window, first)
    assert window.state.current == first
    qtbot.keyClick(view, Qt.Key.Key_A)
    assert states_on_disk(sim_library)[first] == "accepted"  # written at once, no Save
    assert window.counts.count("all", "accepted") == 1
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert window.state.current == second
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert states_on_disk(sim_library)[second] == "rejected"
    assert window.counts.count("all", "rejected") == 1
    label = window.state.session.card(second).label
    assert window.counts.count(label, "rejected") >= 1
    qtbot.keyClick(view, Qt.Key.Key_U)
    assert states_on_disk(sim_library)[second] == "unreviewed"
    assert window.counts.count("all", "rejected") == 0
    # The state filter follows edits: only accepted patches listed.
    window.filter_bar.state_combo.setCurrentText("accepted")
    assert window.state.ids == [first]


def test_a_batch_of_selected_patches_is_accepted_in_one_key_and_undone(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    window = make_editor(sim_library)
    view = window.gallery.view
    ids = window.state.ids
    click_card(qtbot, window, ids[0])
    click_card(qtbot, window, ids[3], Qt.KeyboardModifier.ShiftModifier)
    assert set(window.state.selection) == set(ids[:4])
    assert "4 selected" in window.count_label.text()
    qtbot.keyClick(view, Qt.Key.Key_A)
    disk = states_on_disk(sim_library)
    assert [disk[i] for i in ids[:4]] == ["accepted"] * 4
    assert all(disk[i] == "unreviewed" for i in ids[4:])
    assert window.counts.count("all", "accepted") == 4
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(s == "unreviewed" for s in states_on_disk(sim_library).values())
    assert window.counts.count("all", "accepted") == 0
    qtbot.keyClick(
        view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
    )
    disk = states_on_disk(sim_library)
    assert [disk[i] for i in ids[:4]] == ["accepted"] * 4


def test_rating_notes_and_tags_are_written_at_once(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    window = make_editor(sim_library)
    if not window.state.session.has("set_rating"):
        pytest.skip("this fpsm_core has no ratings/notes/tags (schema 2)")
    pid = window.state.ids[0]
    click_card(qtbot, window, pid)
    qtbot.keyClick(window.gallery.view, Qt.Key.Key_4)
    qtbot.keyClicks(window.curation.notes, "faint edge")
    qtbot.keyClick(window.curation.notes, Qt.Key.Key_Return)
    qtbot.keyClicks(window.curation.tags, "keep, sharp")
    qtbot.keyClick(window.curation.tags, Qt.Key.Key_Return)
    with PatchLibrary(sim_library, create=False) as lib:
        patch = lib.get(pid)
        assert patch.rating == 4  # type: ignore[attr-defined]
        assert patch.notes == "faint edge"  # type: ignore[attr-defined]
        assert set(patch.tags) >= {"keep", "sharp"}  # type: ignore[attr-defined]
    window.filter_bar.text.setText("faint")
    assert window.state.ids == [pid]


def test_space_opens_the_source_image_with_its_boxes(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    window = make_editor(sim_library)
    pid = window.state.ids[0]
    click_card(qtbot, window, pid)
    with qtbot.waitSignal(window.source_view.source_shown, timeout=TIMEOUT):
        qtbot.keyClick(window.gallery.view, Qt.Key.Key_Space)
    assert window.tabs.currentWidget() is window.source_view
    view = window.source_view
    item = view.box_for(pid)
    assert item is not None
    with PatchLibrary(sim_library, create=False) as lib:
        expected = lib.provenance(pid)[0].box
    assert item.image_box() == pytest.approx(expected)
    # The box is drawn where the source box is: the film item maps scene <-> image pixels.
    centre = item.mapToScene(item.boundingRect().center())
    p = view.image_point(centre)
    assert p.x() == pytest.approx((expected[0] + expected[2]) / 2, abs=1.0)
    assert p.y() == pytest.approx((expected[1] + expected[3]) / 2, abs=1.0)


def _viewport_point(view: Any, x: float, y: float) -> QPointF:
    """Where an image pixel (x, y) is in the source view's viewport."""
    scene = view.film.mapToScene(QPointF(x, y))
    return QPointF(view.graphics.mapFromScene(scene))


def test_draw_resize_relabel_a_box_and_undo_redo_each(
    qtbot: Any, make_editor: Any, sim_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyqtgraph as pg

    window = make_editor(sim_library)
    session = window.state.session
    if not (session.has("add_box") and session.has("update_box") and session.has("undo")):
        pytest.skip("this fpsm_core has no update_box/add_box/undo")
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)  # synthetic moves come fast
    pid = window.state.ids[0]
    window.state.set_current(pid)
    view = window.source_view
    with qtbot.waitSignal(view.source_shown, timeout=TIMEOUT):
        window.state.open_source()
    qtbot.waitExposed(view.graphics)
    view.fit()  # the tab was just shown: settle the view's range before mapping pixels
    QApplication.processEvents()
    viewport = view.graphics.viewport()
    n0 = len(session)

    # Draw: N, then a real drag from image (20, 20) to (60, 50).
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_N)
    assert view.view.draw_mode
    view.class_combo.setCurrentText("Nodule")
    drag(viewport, _viewport_point(view, 20, 20), _viewport_point(view, 60, 50))
    assert len(session) == n0 + 1
    new_id = max(window.state.session.query_ids(window.state.filter))
    drawn = session.source(new_id).boxes
    box = next(b for b in drawn if b.patch_id == new_id)
    assert box.label == "Nodule"
    assert box.box == pytest.approx((20, 20, 60, 50), abs=1.5)

    # Resize: drag the bottom-right handle of the new box by +15 px in the image.
    item = view.box_for(new_id)
    assert item is not None
    handle = next(h for h in item.getHandles() if h.pos().x() > 0 and h.pos().y() > 0)
    start = QPointF(view.graphics.mapFromScene(handle.scenePos()))
    drag(viewport, start, _viewport_point(view, 75, 65))
    resized = next(
        b for b in session.source(window.state.current or new_id).boxes if b.label == "Nodule"
    )
    assert resized.box[2] == pytest.approx(75, abs=1.5)
    assert resized.box[3] == pytest.approx(65, abs=1.5)

    # Relabel with type-ahead: "mas" + Enter picks "Mass".
    view.select_box(view.box_for(resized.patch_id))
    view.class_combo.lineEdit().clear()
    qtbot.keyClicks(view.class_combo.lineEdit(), "Mass")
    qtbot.keyClick(view.class_combo.lineEdit(), Qt.Key.Key_Return)
    labels = [b.label for b in session.source(pid).boxes]
    assert "Mass" in labels

    # Undo each edit in turn (relabel, resize, draw), then redo them.
    undo = window.actions_by_name["undo"]
    redo = window.actions_by_name["redo"]
    undo.trigger()
    assert "Mass" not in [b.label for b in session.source(pid).boxes]
    undo.trigger()
    nodule = next(b for b in session.source(pid).boxes if b.label == "Nodule")
    assert nodule.box == pytest.approx((20, 20, 60, 50), abs=1.5)
    undo.trigger()
    assert "Nodule" not in [b.label for b in session.source(pid).boxes]
    for _ in range(3):
        redo.trigger()
    assert "Mass" in [b.label for b in session.source(pid).boxes]


def test_a_corrupt_library_is_one_sentence_and_nothing_is_rewritten(
    qtbot: Any, make_editor: Any, tmp_path: Path
) -> None:
    root = tmp_path / "bad"
    root.mkdir()
    junk = b"this is not sqlite" * 200
    (root / "library.sqlite").write_bytes(junk)
    window = make_editor(root)
    text = window.banner.text()
    assert window.banner.isVisible() and "library.sqlite" in text
    assert "Traceback" not in text and text.count(".") <= 3
    assert window.state.session is None and window.state.ids == []
    assert (root / "library.sqlite").read_bytes() == junk
    # The rest is usable: the new-library dialog opens.
    assert window.new_library().isVisible()


def test_a_library_of_a_newer_schema_is_refused_without_rewriting(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    import sqlite3

    db = sim_library / "library.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("UPDATE meta SET value='99' WHERE key='schema'")
    before = db.read_bytes()
    window = make_editor(sim_library)
    if window.state.session is not None:
        pytest.skip("this fpsm_core does not check the schema version")
    assert "schema" in window.banner.text() or "newer" in window.banner.text()
    assert db.read_bytes() == before


def test_a_missing_patch_file_and_a_moved_source_image_are_one_sentence_each(
    qtbot: Any, make_editor: Any, sim_library: Path
) -> None:
    with PatchLibrary(sim_library, create=False) as lib:
        patches = lib.patches()
        gone = patches[0]
        gone.file.unlink()
        moved = patches[1]
        source = Path(lib.provenance(moved.id)[0].image_path)
    source.rename(source.with_suffix(".moved"))
    try:
        window = make_editor(sim_library)
        window.gallery.view.viewport().update()  # the card may have been painted already
        qtbot.waitUntil(lambda: str(gone.file) in window.status_label.text(), timeout=TIMEOUT)
        assert window.thumbnails.error(gone.id)
        assert len(window.state.ids) == len(patches)  # the rest is listed
        window.state.set_current(moved.id)
        with qtbot.waitSignal(window.source_view.loader.source_failed, timeout=TIMEOUT):
            window.state.open_source()
        banner = window.source_view.banner
        assert banner.isVisible() and str(source) in banner.text()
        assert "no longer there" in banner.text()
        # Still usable: accept by key in the gallery.
        window.tabs.setCurrentIndex(0)
        click_card(qtbot, window, patches[2].id)
        qtbot.keyClick(window.gallery.view, Qt.Key.Key_A)
        assert states_on_disk(sim_library)[patches[2].id] == "accepted"
    finally:
        source.with_suffix(".moved").rename(source)


def test_duplicates_view_compares_a_group_large_and_merges_it(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path
) -> None:
    """A second reader's boxes, 2 px off, make one group per lesion: shown large, compared
    row by row (box overlap), merged in one step."""
    import csv

    from viewer.patch_editor.duplicates import COMPARE_SIDE

    rows = list(csv.DictReader((sim_films / "boxes.csv").open()))
    reread = tmp_path / "reread.csv"
    with reread.open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(rows[0]))
        out.writeheader()
        for r in rows:
            if r["x_min"]:
                r = {**r, **{k: str(float(r[k]) + 2) for k in ("x_min", "y_min", "x_max", "y_max")}}
            out.writerow(r)
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        import_boxes(lib, read_boxes(sim_films / "boxes.csv", "fpsm"), sim_films, dataset="sim")
        import_boxes(lib, read_boxes(reread, "fpsm"), sim_films, dataset="sim-reread")
    window = make_editor(root)
    window.actions_by_name["duplicates"].trigger()
    dup = window.duplicates
    assert dup.groups, dup.hint.text()
    group = dup.current_group()
    assert len(group) == 2
    table = dup.table
    assert table.rowCount() == 2
    assert {table.item(r, 1).text() for r in range(2)} == {"sim", "sim-reread"}
    assert table.item(0, 6).text() == "1.00" and 0.5 < float(table.item(1, 6).text()) < 1.0
    assert table.item(1, 7).text() == "yes"  # one film, listed by both data sets
    hint = dup.strip.itemDelegate().sizeHint(None, dup.model.index(0))
    assert hint.width() > COMPARE_SIDE  # the group's crops are compared large
    qtbot.mouseClick(dup.merge_button, Qt.MouseButton.LeftButton)
    with PatchLibrary(root, create=False) as lib:  # merged: one keeps both boxes, one rejected
        states = {p.id: p.state for p in lib.patches(states=("unreviewed", "rejected"))}
        kept = [pid for pid in group if states[pid] != "rejected"]
        assert len(kept) == 1 and len(lib.provenance(kept[0])) == 2
        assert [states[pid] for pid in group if pid not in kept] == ["rejected"]


def test_the_viewer_menu_opens_the_patch_editor(
    qtbot: Any, make_window: Any, sim_library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QFileDialog

    from viewer.patch_editor import launch

    window = make_window()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(sim_library))
    action = next(
        a for a in window.menuBar().actions()[0].menu().actions() if "patch editor" in a.text()
    )
    action.trigger()
    (editor,) = launch._OPEN
    try:
        assert editor.library_path == sim_library and editor.state.ids
    finally:
        editor.close()


def test_thumbnails_scrolled_away_are_dropped_before_decoding(qtbot: Any, tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from viewer.patch_editor.workers import ThumbnailLoader

    files = []
    for i in range(40):
        f = tmp_path / f"p{i}.png"
        cv2.imwrite(str(f), np.full((30, 20), i, np.uint8))
        files.append(f)
    loader = ThumbnailLoader()
    try:
        loader.set_wanted({38, 39})
        for i, f in enumerate(files):
            loader.get(i, f)
        qtbot.waitUntil(
            lambda: loader.get(38, files[38]) is not None and loader.get(39, files[39]) is not None,
            timeout=TIMEOUT,
        )
        assert loader.pending() == 0
        img = loader.get(39, files[39])
        assert img is not None and (img.width(), img.height()) == (20, 30)
        assert img.pixel(QPoint(0, 0)) & 0xFF == 39
        assert loader.decoded <= 4 and loader.dropped >= 36
    finally:
        loader.shutdown()


def test_the_command_line_flag_opens_the_editor_and_saves_a_screenshot(
    sim_library: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from viewer.app import build_parser

    args = build_parser().parse_args(["--patch-editor", str(sim_library), "--images", "a", "b"])
    assert args.patch_editor == sim_library and args.images == [Path("a"), Path("b")]
    out = tmp_path / "editor.png"
    # In a fresh process: the editor's app.exec() and quit must not end this test session's loop.
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    cmd = [
        sys.executable,
        "-m",
        "viewer",
        "--patch-editor",
        str(sim_library),
        "--screenshot",
        str(out),
    ]
    done = subprocess.run(
        cmd, env=env, cwd=Path(__file__).resolve().parents[2], capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-500:]
    assert out.stat().st_size > 10000


def test_a_moved_image_folder_is_found_through_images_and_edits_cut_from_it(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--images DIR``: a library whose source images moved still opens them, and new boxes are
    cut from the image shown, recorded at where it was found."""
    import shutil

    import pyqtgraph as pg

    films = tmp_path / "films"
    shutil.copytree(sim_films, films)
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        import_boxes(lib, read_boxes(films / "boxes.csv", "fpsm"), films)
        pid = lib.patches()[0].id
        recorded = Path(lib.provenance(pid)[0].image_path)
    now_at = tmp_path / "elsewhere" / "films" / recorded.relative_to(films)
    moved = tmp_path / "elsewhere" / "films"
    moved.parent.mkdir()
    films.rename(moved)  # the data set went to another disk
    assert not recorded.exists()

    window = make_editor(root, images=[moved.parent])
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    window.state.set_current(pid)
    view = window.source_view
    with qtbot.waitSignal(view.source_shown, timeout=TIMEOUT):
        window.state.open_source()
    assert view.loaded is not None and view.loaded.path == now_at
    assert "found under --images" in view.info.text()
    qtbot.waitExposed(view.graphics)
    view.fit()
    QApplication.processEvents()
    session = window.state.session
    n0 = len(session)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_N)
    view.class_combo.setCurrentText("Nodule")
    drag(view.graphics.viewport(), _viewport_point(view, 20, 20), _viewport_point(view, 60, 50))
    assert len(session) == n0 + 1
    with PatchLibrary(root, create=False) as lib:
        new = max(p.id for p in lib.patches())
        assert Path(lib.provenance(new)[0].image_path) == now_at
        assert lib.get(new).file.is_file()


def test_without_images_a_moved_source_says_how_to_find_it(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path
) -> None:
    import shutil

    films = tmp_path / "films"
    shutil.copytree(sim_films, films)
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        import_boxes(lib, read_boxes(films / "boxes.csv", "fpsm"), films)
        pid = lib.patches()[0].id
    films.rename(tmp_path / "gone")
    window = make_editor(root)
    window.state.set_current(pid)
    with qtbot.waitSignal(window.source_view.loader.source_failed, timeout=TIMEOUT):
        window.state.open_source()
    text = window.source_view.banner.text()
    assert "no longer there" in text and "--images" in text
    assert text.count(".") <= 3  # one sentence (a file name's dots aside)


def test_a_vindr_nodule_mass_box_is_split_the_other_way_by_hand_and_undone(
    qtbot: Any, make_editor: Any, tmp_path: Path, sim_films: Path
) -> None:
    """VinDr's combined "Nodule/Mass" is split by size at import; S makes it the other class."""
    images = sorted((sim_films / "images").glob("*.dcm"))[:2]
    csv = tmp_path / "train.csv"
    csv.write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        f"{images[0].stem},Nodule/Mass,8,R8,30,30,52,50\n"
        f"{images[1].stem},Cardiomegaly,3,R9,40,20,80,60\n"
    )
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        report = import_boxes(lib, read_boxes(csv, "vindr"), sim_films)
        assert report.added == 2, report
        split = next(p for p in lib.patches() if p.label in ("Nodule", "Mass"))
        other = next(p for p in lib.patches() if p.id != split.id)
    first = split.label
    flipped = {"Nodule": "Mass", "Mass": "Nodule"}[first]
    window = make_editor(root)
    view = window.source_view
    window.state.set_current(other.id)
    with qtbot.waitSignal(view.source_shown, timeout=TIMEOUT):
        window.state.open_source()
    assert not view.split_button.isEnabled()  # not a Nodule/Mass box
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_S)
    assert "Nodule/Mass" in window.state.message  # says why nothing happened
    window.state.set_current(split.id)
    with qtbot.waitSignal(view.source_shown, timeout=TIMEOUT):
        window.state.open_source()
    assert view.selected is not None and view.selected.source_box.source_label == "Nodule/Mass"
    assert view.split_button.isEnabled()
    view.setFocus()
    with qtbot.waitSignal(view.boxes_drawn, timeout=TIMEOUT):
        qtbot.keyClick(view, Qt.Key.Key_S)
    with PatchLibrary(root, create=False) as lib:
        labels = {p.label for p in lib.patches() if p.id != other.id and not p.deleted}
        assert labels == {flipped}
        edited = next(p for p in lib.patches() if p.label == flipped)
        assert edited.edited  # the provenance records the hand split
    window.state.undo()
    with PatchLibrary(root, create=False) as lib:
        assert {p.label for p in lib.patches() if p.id != other.id} == {first}
