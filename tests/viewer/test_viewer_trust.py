"""The viewer shows the input verdict everywhere a score is shown (issue 17, the viewer's half).

A film the checks or the gate flag gets an unmistakable banner with every reason and dimmed
findings that stay inspectable; triage puts it in a "needs a human" group instead of ranking it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.viewer.helpers import chest_like, write_dicom

TIMEOUT = 60000


def _open(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(path)
    return blocker.args[0]


def test_a_flagged_film_gets_the_banner_with_its_reasons_and_dimmed_findings(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window()
    small = write_dicom(tmp_path / "small.dcm", chest_like(96, 80))  # under the 256 px check
    result = _open(qtbot, window, small)
    assert result.input.flagged
    panel = window.ai_panel
    assert panel.trust_banner.isVisible()
    text = panel.trust_banner.text()
    assert "Outside the model's training distribution: findings not reliable" in text
    for reason in result.input.reasons:
        assert reason.sentence.split(" (")[0][:40] in text
    assert panel.findings_dimmed
    assert window.image_view.caption_label.text().startswith("NOT RELIABLE: outside the model")
    overlay = window.overlay_array()  # the heatmap is greyed and fainter, still drawn
    shown = overlay[(overlay >> 24) > 0]
    assert shown.size > 0
    r, g, b = (shown >> 16) & 255, (shown >> 8) & 255, shown & 255
    assert (r == g).all() and (g == b).all()
    assert (shown >> 24).max() <= round(window.state.opacity * 255 / 2) + 1
    import numpy as np

    from viewer import cam_display

    st = window.state
    grey = np.full((48, 48), 128, np.uint8)
    for dimmed in (True, False):
        tiles = cam_display.level_tiles(
            st.cams, st.finding, st.member, grey, st.colormap, 1.0, 0.0, dimmed=dimmed
        )
        coloured = any(
            ((rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])).any()
            for _, _, rgb in tiles
        )
        assert coloured is not dimmed  # the strip's tiles are greyed too
    # Still inspectable: a click selects a finding and the state follows.
    view = panel.findings_view
    rect = view.visualRect(panel.findings_model.index(1))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.state.finding == panel.findings_model.finding(1).index


def test_a_film_the_checks_pass_has_no_red_banner_and_says_the_gate_is_missing(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    window = make_window()
    film = write_dicom(tmp_path / "film.dcm", chest_like(320, 300))
    result = _open(qtbot, window, film)
    assert result.input.in_distribution is None  # the tiny test model has no gate
    panel = window.ai_panel
    assert not panel.findings_dimmed
    assert panel.trust_banner.isVisible()
    assert "Input not checked against the training data" in panel.trust_banner.text()
    assert "Outside" not in panel.trust_banner.text()
    assert "NOT calibrated" in panel.state_label.text()
    assert "NOT RELIABLE" not in window.image_view.caption_label.text()
    shown = window.overlay_array()
    shown = shown[(shown >> 24) > 0]
    assert (((shown >> 16) & 255) != (shown & 255)).any()  # in colour


def test_triage_puts_flagged_films_in_their_own_group_instead_of_ranking_them(
    qtbot: Any, tmp_path: Path
) -> None:
    from viewer.workers import TriageItem
    from viewer.worklist import NEEDS_HUMAN, WorklistPanel

    thresholds = {"Pneumothorax": 0.5}
    panel = WorklistPanel(thumbnails=False)
    qtbot.addWidget(panel)
    paths = {name: str(tmp_path / name) for name in ("lateral.png", "urgent.png", "calm.png")}
    panel.add_files(paths.values())
    items = {
        "lateral.png": TriageItem(
            Path(paths["lateral.png"]),
            1.9,
            "Pneumothorax",
            {"Pneumothorax": 0.95},
            thresholds=thresholds,
            above=True,
            needs_human=True,
            input_reasons=("The view is LATERAL; the model reads frontal films.",),
        ),
        "urgent.png": TriageItem(
            Path(paths["urgent.png"]),
            1.6,
            "Pneumothorax",
            {"Pneumothorax": 0.8},
            thresholds=thresholds,
            above=True,
        ),
        "calm.png": TriageItem(
            Path(paths["calm.png"]),
            0.2,
            "Pneumothorax",
            {"Pneumothorax": 0.1},
            thresholds=thresholds,
            above=False,
        ),
    }
    for item in items.values():
        panel.set_triage_item(item)
    panel.triage_finished(False)
    order = [p for p, _ in panel.urgency_order()]
    assert order == [paths["lateral.png"], paths["urgent.png"], paths["calm.png"]]
    row = panel._items[paths["lateral.png"]]
    assert row.text(3).startswith(f"{NEEDS_HUMAN}: The view is LATERAL")
    assert not row.text(2).startswith("\u25b2")  # not ranked as urgent
    assert panel._items[paths["urgent.png"]].text(2).startswith("\u25b2")


@pytest.mark.parametrize("flagged", [True, False])
def test_the_triage_worker_carries_the_verdict(
    qtbot: Any, make_window: Any, tmp_path: Path, flagged: bool
) -> None:
    window = make_window()
    folder = tmp_path / "films"
    folder.mkdir()
    shape = (96, 80) if flagged else (320, 300)
    write_dicom(folder / "a.dcm", chest_like(*shape))
    _open(qtbot, window, folder)
    items: list[Any] = []
    window.hub.triage_item_ready.connect(items.append)
    with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT):
        window.actions_by_name["triage"].trigger()
    assert len(items) == 1 and items[0].needs_human is flagged
    assert bool(items[0].input_reasons) is flagged
