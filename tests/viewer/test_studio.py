"""The composition studio, driven like a user: real clicks, key presses and mouse drags, offscreen.

Targets and patches come from the simulator (PNG films with their labels CSV and boxes); the model
is the tiny random FPSM of the viewer fixtures. What the studio shows must be what
``fpsm dadam generate`` writes for the same recipe, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

sim = pytest.importorskip("fpsm_core.sim", reason="the simulator is not in this build")

from fpsm_core.dadam import PatchLibrary, import_boxes, read_boxes  # noqa: E402
from fpsm_core.dadam.composition import LUNG_FIELD_CLASSES  # noqa: E402

TIMEOUT = 60000


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six simulated PNG films (128 px) with labels.csv and boxes.csv."""
    base = tmp_path_factory.mktemp("studio_sim")
    sim.write_dataset(base, n=6, seed=3, format="png", size=128)
    return base


@pytest.fixture()
def library(tmp_path: Path, films: Path) -> Path:
    root = tmp_path / "lib"
    with PatchLibrary(root) as lib:
        report = import_boxes(lib, read_boxes(films / "boxes.csv", "fpsm"), films)
        assert report.added >= 6 and not report.load_errors
    return root


@pytest.fixture()
def make_editor(qtbot: Any) -> Iterator[Callable[..., Any]]:
    """Factory: a shown PatchEditorWindow on its studio tab; closed at the end, no thread left."""
    from viewer.patch_editor import PatchEditorWindow
    from viewer.theme import apply_theme

    made: list[Any] = []

    def factory(library: Path, **kwargs: Any) -> Any:
        apply_theme(QApplication.instance())  # type: ignore[arg-type]
        window = PatchEditorWindow(library, **kwargs)
        window.resize(1400, 900)
        window.show()
        qtbot.waitExposed(window)
        window.tabs.setCurrentWidget(window.studio)
        made.append(window)
        return window

    yield factory
    for window in made:
        threads = window.threads()
        window.close()
        for thread in threads:
            assert not thread.isRunning(), f"worker thread {thread.objectName()} still running"
        window.deleteLater()


def drag(widget: Any, start: QPointF, end: QPointF, steps: int = 10) -> None:
    """A real press-move-release (QTest's mouseMove carries no buttons in Qt 6)."""

    def send(kind: QEvent.Type, pos: QPointF, buttons: Qt.MouseButton) -> None:
        event = QMouseEvent(
            kind,
            pos,
            QPointF(widget.mapToGlobal(pos.toPoint())),
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(widget, event)

    send(QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton)
    for i in range(1, steps + 1):
        send(QEvent.Type.MouseMove, start + (end - start) * (i / steps), Qt.MouseButton.LeftButton)
    send(QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)


def list_targets(qtbot: Any, studio: Any, source: Path) -> None:
    panel = studio.target_panel
    panel.source.clear()
    qtbot.keyClicks(panel.source, str(source))
    with qtbot.waitSignal(studio.state.targets_changed, timeout=TIMEOUT):
        qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)


def pick_target(qtbot: Any, studio: Any, row: int) -> Any:
    panel = studio.target_panel
    rect = panel.list.visualItemRect(panel.list.item(row))
    with qtbot.waitSignal(studio.target_shown, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    return blocker.args[0]


def lung_patch(library: Path) -> int:
    with PatchLibrary(library, create=False) as lib:
        return next(p.id for p in lib.patches() if p.label in LUNG_FIELD_CLASSES)


def place_selected(qtbot: Any, window: Any, ids: list[int]) -> None:
    window.state.set_selection(ids)
    qtbot.mouseClick(window.studio.patch_panel.add_button, Qt.MouseButton.LeftButton)


def normal_row(studio: Any) -> int:
    return next(i for i, r in enumerate(studio.state.targets) if r.label_text() == "No Finding")


def setup_composite(qtbot: Any, window: Any, films: Path, library: Path) -> tuple[Any, int]:
    studio = window.studio
    list_targets(qtbot, studio, films / "labels.csv")
    pick_target(qtbot, studio, normal_row(studio))
    pid = lung_patch(library)
    place_selected(qtbot, window, [pid])
    assert [p.patch_id for p in studio.state.patches] == [pid]
    return studio, pid


def test_drag_moves_the_patch_and_the_labels_and_check_follow(
    qtbot: Any,
    make_editor: Any,
    films: Path,
    library: Path,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pyqtgraph as pg

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)  # synthetic moves come fast
    window = make_editor(library, model=tiny_model)
    studio, pid = setup_composite(qtbot, window, films, library)
    label = studio.state.patches[0].label
    # The label vector beside the composite: the pasted class is 1, "No Finding" is cleared.
    assert studio.label_table.value(label) == "1"
    assert studio.label_table.value(label, "target") == "0"
    assert studio.label_table.value("No Finding", "target") == "1"
    assert studio.label_table.value("No Finding") == "0"

    # Check with the model: per member and level, the pasted class's change and in-box energy.
    check = studio.check_panel
    with qtbot.waitSignal(check.check_shown, timeout=TIMEOUT) as first:
        qtbot.mouseClick(check.button, Qt.MouseButton.LeftButton)
    result = first.args[0]
    assert result.label == label
    before_box = studio.state.composition.placements[0].box
    assert tuple(result.box) == tuple(float(v) for v in before_box)
    for level in (4, 3, 2, "fused"):
        cell = check.value("ensemble", level, "Δp")
        assert cell.startswith(("+", "-"))
        assert check.value("tiny", level, "in-box after").endswith("%")
    assert check.tiles() == 2 * 4  # original and composite maps, per level and fused

    # A real drag of the patch inside the lung field moves it and re-checks the new composite.
    view = studio.view
    view.fit()
    QApplication.processEvents()
    x0, y0, x1, y1 = before_box
    start = view.image_to_viewport((x0 + x1) / 2, (y0 + y1) / 2)
    h, w = studio.state.target.pixels.shape
    centre = studio.state.patches[0].center
    goal_x = (1.0 - centre[0]) * w  # the other lung
    end = view.image_to_viewport(goal_x, centre[1] * h)
    with qtbot.waitSignal(check.check_shown, timeout=TIMEOUT) as second:
        drag(view.graphics.viewport(), start, end)
    moved = studio.state.patches[0].center
    assert abs(moved[0] - centre[0]) > 0.2
    after_box = studio.state.composition.placements[0].box
    assert after_box != before_box
    assert tuple(second.args[0].box) == tuple(float(v) for v in after_box)
    assert studio.label_table.value(label) == "1"
    # The film shows the new composite (the drag rewrites only the rectangle it touched).
    from viewer.patch_editor.studio.composite_view import grey_argb

    assert np.array_equal(view.film.array, grey_argb(studio.state.composition.image))
    # Placement stays inside the lung field (what compose keeps, so it is not re-drawn at random).
    from viewer.patch_editor.studio import model as sm

    field, _ = sm.lung_field(studio.state.target, studio.state.settings)
    ok = sm.allowed_centres(
        field, sm.lesion_size(studio.state.patches[0], studio.state.target, studio.state.settings)
    )
    assert ok[int(moved[1] * 128), int(moved[0] * 128)]


def test_the_studio_composite_is_compose_bit_for_bit(
    qtbot: Any, make_editor: Any, films: Path, library: Path
) -> None:
    from fpsm_core.dadam.composition import PatchSpec, compose
    from fpsm_core.dadam.importer import load_display
    from fpsm_core.dadam.library import read_patch_png

    window = make_editor(library)
    studio, pid = setup_composite(qtbot, window, films, library)
    state = studio.state
    # Non-default settings: MixUp alpha, a size factor, feathering, no intensity matching.
    state.update_settings(mode="mixup", seed=7)
    panel = studio.patch_panel
    panel.factor.setValue(1.4)
    panel.feather.setValue(0.5)
    panel.match.setChecked(False)
    p = state.patches[0]
    assert (p.alpha, p.factor, p.feather, p.match) == (0.6, 1.4, 0.5, False)
    with PatchLibrary(library, create=False) as lib:
        patch = lib.get(pid)
    dest, spacing = load_display(state.target.ref.path)
    spec = PatchSpec(
        pixels=read_patch_png(patch.file),
        box=patch.box,
        label=patch.label,
        center=p.center,
        alpha=0.6,
        scale=1.4,
        spacing_mm=patch.spacing_mm,
        image_size=patch.image_size,
        patch_id=pid,
        feather=0.5,
        match=False,
    )
    expected = compose(dest, [spec], dest_spacing=spacing, rng=np.random.default_rng(7))
    assert np.array_equal(state.composition.image, expected.image)
    assert state.composition.placements[0].box == expected.placements[0].box
    assert not np.array_equal(expected.image, dest)  # something was pasted
    # The difference view shows only where pixels changed.
    studio.settings_panel.view_buttons["difference"].click()
    shown = studio.view.displayed()
    assert shown is not None and set(np.unique(shown[expected.image == dest])) == {128}


def test_drag_change_a_setting_and_drag_again_still_equal_render(
    qtbot: Any, make_editor: Any, films: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drag reuses what it can (ComposeCache); what it shows stays render()'s, uncached."""
    import pyqtgraph as pg

    from fpsm_core.dadam.recipe import render
    from viewer.patch_editor.studio.composite_view import grey_argb

    monkeypatch.setitem(pg.CONFIG_OPTIONS, "mouseRateLimit", 0)  # synthetic moves come fast
    window = make_editor(library)
    studio, _pid = setup_composite(qtbot, window, films, library)
    state, view = studio.state, studio.view
    lib = window.state.session.library
    view.fit()
    QApplication.processEvents()

    def shows_render() -> None:
        want = render(state.recipe, lib, target=(state.target.pixels, state.target.spacing))
        assert np.array_equal(state.composition.image, want.image)
        assert state.composition.placements == want.placements
        QApplication.processEvents()  # the film's repaint of the rectangle the drag touched
        assert np.array_equal(view.film.array, grey_argb(state.composition.image))

    def drag_to_the_other_lung() -> None:
        x0, y0, x1, y1 = state.composition.placements[0].box
        h, w = state.target.pixels.shape
        cx, cy = state.patches[0].center
        start = view.image_to_viewport((x0 + x1) / 2, (y0 + y1) / 2)
        end = view.image_to_viewport((x0 + x1) / 2 + (1.0 - 2 * cx) * w, (y0 + y1) / 2)
        drag(view.graphics.viewport(), start, end)
        assert abs(state.patches[0].center[0] - cx) > 0.2

    shows_render()
    drag_to_the_other_lung()
    shows_render()
    # The patch list's row follows (retitled at most ten times a second during a drag).
    cx, cy = state.patches[0].center
    row = studio.patch_panel.list.item(0)
    qtbot.waitUntil(lambda: f"at ({cx:.2f}, {cy:.2f})" in row.text(), timeout=TIMEOUT)
    hits = state.compose_cache.hits
    assert hits > 0  # the moves reused the prepared patch
    panel = studio.patch_panel
    panel.alpha.setValue(0.55)
    panel.feather.setValue(0.4)
    panel.match.setChecked(False)
    assert (state.patches[0].alpha, state.patches[0].feather) == (0.55, 0.4)
    shows_render()
    panel.match.setChecked(True)
    panel.factor.setValue(0.8)
    shows_render()
    drag_to_the_other_lung()
    shows_render()
    assert state.compose_cache.hits > hits


def test_a_saved_recipe_generates_the_same_pixels_and_opens_back(
    qtbot: Any, make_editor: Any, films: Path, library: Path, tmp_path: Path
) -> None:
    from fpsm_core.dadam.generator import generate

    window = make_editor(library)
    studio, pid = setup_composite(qtbot, window, films, library)
    studio.patch_panel.factor.setValue(1.2)
    shown = studio.state.composition.image.copy()
    plan = tmp_path / "studio_plan.jsonl"
    qtbot.keyClicks(studio.plan_path, str(plan))
    with qtbot.waitSignal(studio.recipe_saved, timeout=TIMEOUT) as saved:
        qtbot.mouseClick(studio.save_button, Qt.MouseButton.LeftButton)
    item_id = saved.args[1]
    out = tmp_path / "out"
    report = generate(plan, library, films, out, workers=1)
    assert report.generated == 1 and not report.failed
    made = cv2.imread(str(out / "images" / f"{item_id}.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(made, shown)

    # A reviewer opens the generated image in the studio and sees its recipe.
    studio.state.set_patches(())
    qtbot.keyClicks(studio.output_path, str(out))
    qtbot.keyClicks(studio.generated_name, f"{item_id}.png")
    with qtbot.waitSignal(studio.recipe_opened, timeout=TIMEOUT) as opened:
        qtbot.mouseClick(studio.open_button, Qt.MouseButton.LeftButton)
    recipe = opened.args[0]
    assert [p.patch_id for p in recipe.patches] == [pid]
    assert np.array_equal(studio.state.composition.image, made)
    assert f"patch {pid}" in studio.recipe_text.text() and "seed 0" in studio.recipe_text.text()
    assert "bit for bit" in studio.message.text()


def test_a_bad_model_path_is_one_sentence_in_the_window(
    qtbot: Any, make_editor: Any, films: Path, library: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "no_such_model"
    window = make_editor(library, model=bad)
    studio, _ = setup_composite(qtbot, window, films, library)
    with qtbot.waitSignal(studio.check_panel.check_failed, timeout=TIMEOUT) as failed:
        qtbot.mouseClick(studio.check_panel.button, Qt.MouseButton.LeftButton)
    text = failed.args[0]
    assert str(bad) in text and "model not found" in text
    assert "\n" not in text and "Traceback" not in text
    assert studio.message.text() == text
    assert window.status_label.text() == text
    assert studio.state.check is None


def test_an_image_that_fails_to_load_is_one_sentence(
    qtbot: Any, make_editor: Any, library: Path, tmp_path: Path, films: Path
) -> None:
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = next((films / "images").iterdir())
    (folder / "good.png").write_bytes(good.read_bytes())
    window = make_editor(library)
    studio = window.studio
    list_targets(qtbot, studio, folder)
    assert [r.name for r in studio.state.targets] == ["broken.png", "good.png"]
    panel = studio.target_panel
    rect = panel.list.visualItemRect(panel.list.item(0))
    with qtbot.waitSignal(studio.jobs.failed, timeout=TIMEOUT) as failed:
        qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    text = failed.args[1]
    assert "broken.png" in text and "\n" not in text and "Traceback" not in text
    assert studio.message.text() == text
    # The studio goes on: the next target loads.
    pick_target(qtbot, studio, 1)
    assert studio.state.target.ref.name == "good.png"
    assert "labels unknown" in studio.target_panel.labels.text()


def test_mixup_proposes_the_most_correlated_partner(
    qtbot: Any, make_editor: Any, films: Path, library: Path
) -> None:
    from fpsm_core.dadam.cooc import correlation_matrix, most_correlated
    from fpsm_core.dadam.table import read_labels_csv

    window = make_editor(library)
    studio, _ = setup_composite(qtbot, window, films, library)
    label = studio.state.patches[0].label
    with PatchLibrary(library, create=False) as lib:
        have = set(lib.counts())
    corr = correlation_matrix(read_labels_csv(films / "labels.csv").y)
    expected = most_correlated(corr, candidates=have)[label]
    assert expected, "the simulator's labels give this class a partner"
    assert studio.patch_panel.partner.currentText() == expected
    qtbot.mouseClick(studio.patch_panel.partner_button, Qt.MouseButton.LeftButton)
    assert [p.label for p in studio.state.patches] == [label, expected]
    assert studio.label_table.value(expected) == "1"


def test_a_check_for_an_older_composite_is_dropped(
    qtbot: Any, make_editor: Any, films: Path, library: Path
) -> None:
    window = make_editor(library)
    studio, _ = setup_composite(qtbot, window, films, library)
    state = studio.state
    old = state.revision
    centre = state.patches[0].center
    state.move_patch(0, (1.0 - centre[0], centre[1]))  # the other lung: a new composite
    assert state.revision > old
    with qtbot.assertNotEmitted(state.check_changed):
        assert not state.set_check(old, object())
    assert state.check is None


def test_outside_the_lung_field_a_lung_patch_snaps_to_the_nearest_fitting_place(
    films: Path, library: Path
) -> None:
    from viewer.patch_editor.studio import model as sm

    ref = next(
        r for r in sm.targets_from_csv(films / "labels.csv") if r.label_text() == "No Finding"
    )
    target = sm.load_target(ref)
    settings = sm.StudioSettings()
    with PatchLibrary(library, create=False) as lib:
        patch = lib.get(lung_patch(library))
    p = sm.studio_patch(patch, 1.0)
    field, _ = sm.lung_field(target, settings)
    size = sm.lesion_size(p, target, settings)
    ok = sm.allowed_centres(field, size)
    placed = sm.place(p, (0.5, 0.05), target, settings)  # above the lungs, on the neck
    cx, cy = placed.center
    assert ok[int(cy * 128), int(cx * 128)]
    # ... and the nearest such place: no allowed grid cell is closer to where the hand was.
    ys, xs = np.nonzero(ok)
    d = np.hypot((xs + 0.5) / 128 - 0.5, (ys + 0.5) / 128 - 0.05).min()
    assert np.hypot(cx - 0.5, cy - 0.05) <= d + 1e-9
    # Inside the field the position is kept as it is.
    ys, xs = np.nonzero(ok)
    inside = ((xs[0] + 0.3) / 128, (ys[0] + 0.6) / 128)
    assert sm.place(p, inside, target, settings).center == inside
    # Without mm-consistency the factor is in pixels: the recipe's scale undoes the mm rule.
    free = settings.with_(mm_consistent=False)
    base = sm.plan_scale(p.with_(factor=1.0), target, settings.with_(mm_consistent=True))
    assert base == 1.0
    scale = sm.plan_scale(p.with_(factor=1.0), target, free)
    from fpsm_core.dadam.composition import patch_scale

    spec = sm._size_spec(p)
    assert scale * patch_scale(spec, target.pixels.shape, target.spacing) == pytest.approx(1.0)


def test_score_selection_stores_efficacy_and_the_gallery_sorts_by_it(
    qtbot: Any, make_editor: Any, films: Path, library: Path, tiny_model: Path
) -> None:
    pytest.importorskip("fpsm_core.dadam.efficacy", reason="the core cannot score yet")
    from fpsm_core.dadam.efficacy import stored_scores

    window = make_editor(library, model=tiny_model)
    studio = window.studio
    list_targets(qtbot, studio, films / "labels.csv")
    ids = window.state.ids[:3]
    window.state.set_selection(ids)
    panel = studio.score_panel
    panel.per_patch.setValue(2)
    with qtbot.waitSignal(panel.scored, timeout=TIMEOUT * 3) as done:
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    report = done.args[0]
    assert sorted(s.patch_id for s in report.scored) == sorted(ids)
    assert "3 patches scored" in panel.status.text()
    with PatchLibrary(library, create=False) as lib:
        stored = stored_scores(lib, ids)
    assert sorted(stored) == sorted(ids)
    assert all(ss[0].n == 2 and ss[0].seed == 0 for ss in stored.values())
    # The gallery: sort by efficacy (scored first, highest first with desc), filter by it.
    bar = window.filter_bar
    bar.sort_combo.setCurrentText("efficacy")
    bar.descending.setChecked(True)
    eff = {pid: stored[pid][0].efficacy for pid in ids}
    best_first = sorted(ids, key=lambda i: (eff[i], i), reverse=True)
    assert window.state.ids[:3] == best_first
    assert window.state.session.card(best_first[0]).efficacy == pytest.approx(eff[best_first[0]])
    bar.min_efficacy.setValue(round(eff[best_first[0]], 2) - 0.005)
    assert best_first[0] in window.state.ids and set(window.state.ids) <= set(ids)
    # Scoring again with the same model, seed and N skips what is stored.
    with qtbot.waitSignal(panel.scored, timeout=TIMEOUT * 3) as again:
        qtbot.mouseClick(panel.button, Qt.MouseButton.LeftButton)
    assert not again.args[0].scored and len(again.args[0].skipped) == 3


def test_keys_nudge_and_remove_the_edited_patch(
    qtbot: Any, make_editor: Any, films: Path, library: Path
) -> None:
    from viewer.patch_editor.studio import model as sm

    window = make_editor(library)
    studio, _ = setup_composite(qtbot, window, films, library)
    state, view = studio.state, studio.view
    h, w = state.target.pixels.shape
    # Put the lesion deep inside the field (the allowed centre farthest from its edge).
    field, _ = sm.lung_field(state.target, state.settings)
    ok = sm.allowed_centres(field, sm.lesion_size(state.patches[0], state.target, state.settings))
    depth = cv2.distanceTransform(ok.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    assert depth[y, x] >= 2
    state.move_patch(0, ((x + 0.5) / 128, (y + 0.5) / 128))
    start = state.patches[0].center
    box0 = state.composition.placements[0].box
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Down)
    cx, cy = state.patches[0].center
    assert (cx, cy) == (pytest.approx(start[0] + 1 / w), pytest.approx(start[1] + 1 / h))
    box1 = state.composition.placements[0].box
    # compose rounds the crop's corner to whole pixels: a one-pixel nudge moves it by 1 (or 2)
    assert 1 <= box1[0] - box0[0] <= 2 and 1 <= box1[1] - box0[1] <= 2
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert state.patches == ()
    assert studio.label_table.value("No Finding") == "1"  # nothing pasted: the target's own row


def test_a_lung_mask_folder_limits_placement_as_generate_does(
    qtbot: Any, make_editor: Any, films: Path, library: Path, tmp_path: Path
) -> None:
    from fpsm_core.dadam.generator import generate

    window = make_editor(library)
    studio, pid = setup_composite(qtbot, window, films, library)
    state = studio.state
    masks = tmp_path / "masks"
    masks.mkdir()
    h, w = state.target.pixels.shape
    mask = np.zeros((h, w), np.uint8)
    mask[h // 5 : 4 * h // 5, w // 10 : w // 2 - 4] = 255  # one tall "lung" on the left only
    cv2.imwrite(str(masks / f"{state.target.ref.meta['dicom_id']}.png"), mask)
    state.update_settings(lung=str(masks))
    assert studio.settings_panel.lung.currentText() == str(masks)
    placed = state.composition.placements[0]
    assert placed.placed_in == "lung_mask"
    # Dragged to the right side, the lesion stays in the mask's field.
    state.move_patch(0, (0.8, 0.5))
    x0, y0, x1, y1 = state.composition.placements[0].box
    assert x1 <= w // 2 + 2
    qtbot.keyClicks(studio.plan_path, str(tmp_path / "plan.jsonl"))
    with qtbot.waitSignal(studio.recipe_saved, timeout=TIMEOUT) as saved:
        qtbot.mouseClick(studio.save_button, Qt.MouseButton.LeftButton)
    assert f"--lung {masks}" in studio.message.text()
    out = tmp_path / "out"
    generate(tmp_path / "plan.jsonl", library, films, out, workers=1, lung=masks)
    made = cv2.imread(str(out / "images" / f"{saved.args[1]}.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(made, state.composition.image)


def test_the_viewer_menu_gives_the_studio_the_viewer_s_model(
    qtbot: Any, library: Path, tiny_model: Path
) -> None:
    from types import SimpleNamespace

    from fpsm_core.resources import default_model_path
    from viewer.patch_editor.launch import open_patch_editor

    viewer = SimpleNamespace(state=SimpleNamespace(model=SimpleNamespace(
        identity={"path": str(tiny_model)})))  # fmt: skip
    window = open_patch_editor(None, library)
    assert window.studio.model.model_path == str(default_model_path())  # no viewer: the demo
    window.close()
    window = open_patch_editor(viewer, library)
    assert window.studio.model.model_path == str(tiny_model)
    threads = window.threads()
    window.close()
    assert not any(t.isRunning() for t in threads)
