"""The viewer as a user drives it (pytest-qt, offscreen): open, read findings, overlays, W/L, triage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from tests.viewer.helpers import SPACING_MM, chest_like, write_dicom

TIMEOUT = 60000


def open_and_wait(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(path)
    return blocker.args[0]


def click_finding(qtbot: Any, window: Any, row: int) -> None:
    view = window.ai_panel.findings_view
    rect = view.visualRect(window.ai_panel.findings_model.index(row))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_open_dicom_lists_ranked_findings_with_banner_and_overlay(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    result = open_and_wait(qtbot, window, dicom_file)
    assert result.path == str(dicom_file)
    model = window.ai_panel.findings_model
    assert model.rowCount() == 25  # No Finding is the case line, not a ranked row
    probs = [model.finding(r).probability for r in range(25)]
    assert probs == sorted(probs, reverse=True)
    assert window.state.finding == model.finding(0).index
    assert window.ai_panel.banner.isVisibleTo(window)
    assert "UNTRAINED" in window.ai_panel.banner.text()
    assert "UNTRAINED" in window.windowTitle()
    shown = window.image_view.displayed_array()
    assert shown is not None and shown.std() > 0
    overlay = window.overlay_array()
    assert overlay is not None and (overlay >> 24).max() > 0
    assert {"first_pixel_ms", "findings_ms"} <= set(window.timings)
    assert window.worklist.paths() == [str(dicom_file)]


def test_clicking_a_finding_changes_the_overlay_and_details(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    result = open_and_wait(qtbot, window, dicom_file)
    before = window.overlay_array().copy()
    with qtbot.waitSignal(window.overlay_drawn, timeout=TIMEOUT):
        click_finding(qtbot, window, 5)
    assert window.state.finding == result.findings[5].index
    after = window.overlay_array()
    assert not np.array_equal(before, after)
    assert result.findings[5].label in window.ai_panel.detail_label.text()
    shares = window.ai_panel.shares_widget.shares
    assert [s.level for s in shares] == [4, 3, 2]
    assert sum(s.logit for s in shares) == pytest.approx(
        sum(result.findings[5].level_logits[0]), abs=1e-5
    )


def test_switching_levels_changes_the_overlay_and_the_grid_shows_every_level(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    with qtbot.waitSignal(window.grid_drawn, timeout=TIMEOUT):
        open_and_wait(qtbot, window, dicom_file)
    state = window.state
    assert state.level == "fused"
    assert window.level_strip.tile_keys() == ["fused", 4, 3, 2]
    assert window.level_strip.tile_titles()[0] == "Fused"
    seen = {"fused": window.overlay_array().copy()}
    for level in (4, 3, 2):
        with qtbot.waitSignal(state.level_changed, timeout=TIMEOUT):
            state.set_level(level)
        assert state.level == level
        seen[level] = window.overlay_array().copy()
    assert not np.array_equal(seen[3], seen[2])
    assert not np.array_equal(seen["fused"], seen[2])
    window.actions_by_name["prev_level"].trigger()
    assert state.level == 3
    # Hiding the heatmap removes the overlay; showing it again brings the same map back.
    window.actions_by_name["overlay"].trigger()
    assert window.overlay_array() is None
    window.actions_by_name["overlay"].trigger()
    np.testing.assert_array_equal(window.overlay_array(), seen[3])


def test_window_presets_drag_and_invert_change_the_picture(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    view = window.image_view
    assert view.window_level == (2000.0, 3000.0)  # the file's own window
    presets = view.presets()
    pictures = {}
    for name in ("lung", "soft tissue", "bone", "auto", "dicom"):
        window.actions_by_name[f"preset_{name}"].trigger()
        assert view.window_level == pytest.approx(presets[name])
        pictures[name] = view.displayed_array().copy()
    assert not np.array_equal(pictures["lung"], pictures["bone"])
    lo, hi = view.histogram.getLevels()
    assert (lo + hi) / 2 == pytest.approx(presets["dicom"][0])
    with qtbot.waitSignal(view.window_changed):
        view.view.window_dragged.emit(40.0, -25.0)
    assert view.window_level[1] > presets["dicom"][1] and view.window_level[0] > presets["dicom"][0]
    window.actions_by_name["preset_dicom"].trigger()
    plain = view.displayed_array().copy()
    window.actions_by_name["invert"].trigger()
    assert view.inverted
    np.testing.assert_array_equal(view.displayed_array(), 255 - plain)


def test_cursor_readout_in_mm_and_ruler_length(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    view = window.image_view
    pixels = window.state.image.image.pixels
    info = view.pixel_info(10, 20)
    assert info.value == pixels[10, 20]
    assert info.y_mm == pytest.approx(10.5 * SPACING_MM[0])
    assert info.x_mm == pytest.approx(20.5 * SPACING_MM[1])
    assert view.pixel_info(-1, 0) is None
    # The cursor maps back to the same pixel whatever the orientation.
    view.rotate(90)
    view.flip_horizontal()
    scene = view.frame.mapToScene(QPointF(20.5, 10.5))
    info = view.cursor_info(scene)
    assert (info.row, info.col) == (10, 20)
    view.reset_orientation()
    assert np.array_equal(view.orientation, np.eye(2, dtype=int))
    length, unit = view.add_ruler((0.0, 0.0), (30.0, 40.0))
    assert unit == "mm"
    assert length == pytest.approx(np.hypot(30 * SPACING_MM[1], 40 * SPACING_MM[0]))
    assert view.ruler_lengths() == [(length, unit)]
    window.actions_by_name["clear_rulers"].trigger()
    assert view.ruler_lengths() == []


def test_ruler_in_pixels_when_spacing_is_unknown(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    path = write_dicom(tmp_path / "nospacing.dcm", chest_like(), spacing=None)
    window = make_window()
    open_and_wait(qtbot, window, path)
    assert window.image_view.add_ruler((0.0, 0.0), (3.0, 4.0)) == (5.0, "px")
    assert window.image_view.pixel_info(1, 1).x_mm is None


def test_broken_file_shows_one_sentence_and_the_app_keeps_working(
    qtbot: Any, make_window: Any, tmp_path: Path, dicom_file: Path
) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    window = make_window()
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_path(broken)
    message = blocker.args[0]
    assert "broken.dcm" in message and message.startswith("Cannot load")
    assert "\n" not in message
    assert window.status_label.text() == message
    assert window.state.result is None
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
        window.open_path(tmp_path / "does-not-exist.dcm")
    assert "does-not-exist.dcm" in blocker.args[0]
    result = open_and_wait(qtbot, window, dicom_file)
    assert result.path == str(dicom_file)
    assert window.worklist.paths() == [str(broken), str(dicom_file)]


def test_a_model_that_cannot_load_is_reported_and_images_still_open(
    qtbot: Any, make_window: Any, tmp_path: Path, dicom_file: Path
) -> None:
    from PySide6.QtCore import QSettings

    from viewer.main_window import MainWindow

    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(bad, "cpu", settings=settings, index_cache=False, torch_threads=1)
    qtbot.addWidget(window)
    try:
        with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as blocker:
            pass
        assert "bad.json" in blocker.args[0]
        with qtbot.waitSignal(window.image_shown, timeout=TIMEOUT):
            window.open_path(dicom_file)
        assert window.image_view.displayed_array() is not None
        assert window.state.result is None
    finally:
        window.close()


def test_stale_results_are_dropped(qtbot: Any, make_window: Any, tmp_path: Path) -> None:
    a = write_dicom(tmp_path / "a.dcm", chest_like(seed=1))
    b = write_dicom(tmp_path / "b.dcm", chest_like(seed=2))
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(a)
        window.open_path(b)  # before a's pixels arrive: a is no longer wanted
    assert blocker.args[0].path == str(b)
    assert str(window.state.image.path) == str(b)
    # Two inference requests in a row: only the newest one's result reaches the window.
    from fpsm_core.io import load_image

    hub = window.hub
    with qtbot.waitSignal(hub.result_ready, timeout=TIMEOUT) as blocker:
        hub.request_inference(load_image(a))
        hub.request_inference(load_image(b))
    assert blocker.args[1].path == str(b)
    with qtbot.assertNotEmitted(hub.result_ready, wait=300):
        pass


def test_folder_worklist_triage_cancel_then_full_run_sorts_by_urgency(
    qtbot: Any, make_window: Any, study_folder: Path
) -> None:
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(study_folder)
    worklist = window.worklist
    assert len(worklist.paths()) == 5
    assert any("ALPHA" in t for t in worklist.study_titles())
    assert "Unreadable files" in worklist.study_titles()
    assert worklist.urgent() == ["Pneumomediastinum", "Pneumoperitoneum", "Pneumothorax"]

    # Cancel in the middle of the run: the worker stops before the next batch. Triage runs the
    # batch pipeline on its own copy of the model; the cancel goes in where the worker calls it,
    # with one film per batch so that there is a next batch to stop before.
    import dataclasses

    import fpsm_core.pipeline as pipeline

    original = pipeline.run_pipeline

    def cancel_after_first(service: Any, paths: Any, plan: Any, **kwargs: Any) -> Any:
        progress = kwargs["progress"]

        def progress_then_cancel(done: int, total: int) -> None:
            progress(done, total)
            window.hub.triage_worker.cancel_event.set()

        kwargs["progress"] = progress_then_cancel
        return original(service, paths, dataclasses.replace(plan, batch_size=1), **kwargs)

    pipeline.run_pipeline = cancel_after_first  # type: ignore[assignment]
    try:
        with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT) as blocker:
            window.actions_by_name["triage"].trigger()
            assert not worklist.triage_button.isEnabled()
        assert blocker.args == [True]
    finally:
        pipeline.run_pipeline = original  # type: ignore[assignment]
    assert window.hub.triage_worker.service is not window.hub.inference_worker.service
    scored = [s for _, s in worklist.urgency_order() if s >= 0]
    assert len(scored) == 1
    assert "cancelled" in worklist.triage_label.text()
    assert worklist.triage_button.isEnabled() and not worklist.cancel_button.isEnabled()

    with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(worklist.triage_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [False]
    order = worklist.urgency_order()
    scores = {p: s for p, s in order}
    assert sum(s >= 0 for s in scores.values()) == 4
    assert worklist.progress.value() == worklist.progress.maximum() == 5
    # Studies sorted by their most urgent image, images by score inside each study.
    study_best = []
    for i in range(worklist.tree.topLevelItemCount()):
        study = worklist.tree.topLevelItem(i)
        kids = [
            scores[study.child(j).data(0, Qt.ItemDataRole.UserRole + 1)]
            for j in range(study.childCount())
        ]
        assert kids == sorted(kids, reverse=True)
        study_best.append(max(kids))
    assert study_best == sorted(study_best, reverse=True)


def test_triage_cancelled_before_it_starts(
    qtbot: Any, make_window: Any, study_folder: Path
) -> None:
    window = make_window()
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(study_folder)
    with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT) as blocker:
        window.start_triage()
        window.actions_by_name["cancel"].trigger()
    assert blocker.args == [True]
    # The worker may already be in its first batch when the flag is set; it stops after it.
    assert sum(s >= 0 for _, s in window.worklist.urgency_order()) <= 1
    assert window.worklist.triage_button.isEnabled()


def test_drop_a_file_and_recent_items(qtbot: Any, make_window: Any, dicom_file: Path) -> None:
    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dicom_file))])
    event = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.dropEvent(event)
    assert window.worklist.paths() == [str(dicom_file)]
    window.open_path(dicom_file)
    assert window.preferences.recent_items() == [str(dicom_file)]
    assert [a.text() for a in window.recent_menu.actions()] == [str(dicom_file)]


def test_tag_browser_searches_the_current_file(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["tags"].trigger()
    dialog = window.tag_dialog
    assert dialog.isVisible()
    assert dialog.tree.topLevelItemCount() > 20
    qtbot.keyClicks(dialog.search, "PixelSpacing")
    assert [r.name for r in dialog.visible_rows()] == ["PixelSpacing"]
    assert dialog.tree.topLevelItemCount() == 1
    assert dialog.tree.topLevelItem(0).text(3) == "[0.25, 0.2]"


def test_exports_write_png_json_and_csv(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path
) -> None:
    from viewer.export import write_findings_csv, write_findings_json

    window = make_window()
    result = open_and_wait(qtbot, window, dicom_file)
    png = window.export_view_png(tmp_path / "view.png")
    image = QImage(str(png))
    assert image.width() > 300 and image.height() > 300
    data = json.loads(write_findings_json(window.state.result, tmp_path / "f.json").read_text())
    assert [f["label"] for f in data["findings"]] == [f.label for f in result.findings]
    assert (
        len(write_findings_csv(window.state.result, tmp_path / "f.csv").read_text().splitlines())
        == 27
    )


def test_shortcuts_are_listed_under_help_and_settings_persist(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    window.actions_by_name["shortcuts"].trigger()
    table = window._shortcuts_dialog.table
    keys = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert keys["Invert"] == "I"
    assert keys["Lung window"] == "L"
    assert len(keys) >= 25
    window.state.set_colormap("viridis")
    window.ai_panel.opacity_slider.setValue(70)
    settings_file = window.settings.fileName()
    window.close()
    from PySide6.QtCore import QSettings

    saved = QSettings(settings_file, QSettings.Format.IniFormat)
    assert saved.value("cam/colormap") == "viridis"
    assert int(saved.value("cam/opacity")) == 70


def test_prevalence_badges_come_from_the_models_training_counts(
    qtbot: Any, make_window: Any, counted_model: Path, dicom_file: Path
) -> None:
    from viewer.ai_panel import TierRole

    window = make_window(counted_model)
    assert window.state.model.train_counts["Tortuous Aorta"] == 26000
    open_and_wait(qtbot, window, dicom_file)
    model = window.ai_panel.findings_model
    tiers = {
        model.finding(r).label: model.data(model.index(r), TierRole)
        for r in range(model.rowCount())
    }
    assert tiers["Tortuous Aorta"] == "head"
    assert tiers["Atelectasis"] == "tail"
    assert not window.ai_panel.banner.text().startswith("UNTRAINED")


def _run_viewer(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "viewer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_screenshot_writes_a_real_picture(
    tmp_path: Path, tiny_model: Path, dicom_file: Path
) -> None:
    out = tmp_path / "shot.png"
    proc = _run_viewer(
        [str(dicom_file), "--model", str(tiny_model), "--device", "cpu", "--screenshot", str(out)],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    image = QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 800
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = (
        np.frombuffer(image.constBits(), dtype=np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : 3 * image.width()]
        .reshape(image.height(), image.width(), 3)
    )
    assert arr.std() > 20  # not a blank window
    rgb = arr.astype(int)
    coloured = np.abs(rgb[..., 0] - rgb[..., 2]) > 60
    assert coloured.mean() > 0.01  # the heatmap (and the banner) are there


def test_no_path_and_no_sample_shows_the_hint(tmp_path: Path, tiny_model: Path) -> None:
    resources = tmp_path / "resources"
    (resources / "samples").mkdir(parents=True)
    out = tmp_path / "empty.png"
    proc = _run_viewer(
        ["--model", str(tiny_model), "--device", "cpu", "--screenshot", str(out)],
        tmp_path,
        FPSM_RESOURCES=str(resources),
    )
    assert proc.returncode == 0, proc.stderr
    assert QImage(str(out)).width() >= 1280


def test_worklist_hint_and_keyboard_navigation(
    qtbot: Any, make_window: Any, study_folder: Path
) -> None:
    window = make_window()
    assert window.worklist.hint.isVisibleTo(window)
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
        window.open_path(study_folder)
    assert not window.worklist.hint.isVisibleTo(window)
    first = window.worklist.current_path
    with qtbot.waitSignal(window.image_shown, timeout=TIMEOUT) as blocker:
        qtbot.keyClick(window, Qt.Key.Key_PageDown)
    assert blocker.args[0] != first
    assert window.worklist.current_path == blocker.args[0]


def _drag(
    widget: Any, button: Qt.MouseButton, start: QPointF, end: QPointF, steps: int = 6
) -> None:
    """A real press-move-release sequence (QTest's mouseMove carries no buttons in Qt 6)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
        global_pos = QPointF(widget.mapToGlobal(pos.toPoint()))
        event = QMouseEvent(kind, pos, global_pos, button, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, event)

    send(QEvent.Type.MouseButtonPress, start, button)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), button)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def test_right_drag_changes_window_and_left_drag_draws_a_ruler(
    qtbot: Any, make_window: Any, dicom_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyqtgraph as pg

    # pyqtgraph drops mouse moves closer than 10 ms apart; synthetic moves come back to back.
    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    view = window.image_view
    viewport = view.graphics.viewport()
    centre = QPointF(viewport.width() * 0.35, viewport.height() * 0.5)
    before = view.window_level
    _drag(viewport, Qt.MouseButton.RightButton, centre, centre + QPointF(60, -30))
    center, width = view.window_level
    assert width > before[1] and center > before[0]
    # The ruler is the measuring length tool: its lengths are annotations, kept with the image.
    window.actions_by_name["ruler"].trigger()
    assert window.state.tool == "length"
    _drag(viewport, Qt.MouseButton.LeftButton, centre, centre + QPointF(80, 0))
    (ruler,) = window.measure.controller.annotations
    measured = window.measure.controller.measurement(ruler)
    assert ruler.kind == "length" and measured.unit == "mm" and measured.value > 0
    assert window.status_label.text().startswith("Distance:")
    window.actions_by_name["cancel"].trigger()
    assert window.state.tool == "none"
    assert not window.actions_by_name["ruler"].isChecked()


def test_an_ensemble_shows_member_spread_and_each_members_maps(
    qtbot: Any, make_window: Any, tmp_path: Path, dicom_file: Path
) -> None:
    import torch

    from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble

    folder = tmp_path / "ens"
    members = []
    for i, levels in enumerate(((4, 3, 2), (4, 3))):
        torch.manual_seed(10 + i)
        model = create_fpsm("resnet18", levels=levels).eval()
        members.append(
            save_checkpoint(
                model, folder / f"m{i}", name=f"m{i}", preprocessing=Preprocessing(input_size=64)
            )
        )
    write_ensemble(folder, members, name="two", member_names=["deep", "shallow"])
    window = make_window(folder)
    result = open_and_wait(qtbot, window, dicom_file)
    panel = window.ai_panel
    assert [panel.member_combo.itemText(i) for i in range(3)] == [
        "Ensemble mean",
        "deep",
        "shallow",
    ]
    assert panel.member_combo.isEnabled()
    assert any(f.member_spread > 0 for f in result.findings)
    assert [s.member for s in panel.shares_widget.shares] == ["deep"] * 3 + ["shallow"] * 2
    window.state.set_level(2)
    level2_mean = window.overlay_array().copy()
    # Level 2 exists only in the first member: choosing the shallow one offers its own levels.
    with qtbot.waitSignal(window.grid_drawn, timeout=TIMEOUT):
        panel.member_combo.setCurrentIndex(2)
    assert window.state.member == 1
    assert window.state.level == "fused"
    assert window.level_strip.tile_keys() == ["fused", 4, 3]
    assert not np.array_equal(window.overlay_array(), level2_mean)
    panel.member_combo.setCurrentIndex(1)
    assert (
        window.state.level == "fused"
        and [panel.level_combo.itemText(i) for i in range(4)][-1] == "Level 2"
    )
