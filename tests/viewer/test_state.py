"""The viewer state without a model: selection, levels, overlay look, bindings, stale-result drop."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import SIGNAL

from fpsm_core.explain import ENSEMBLE, FUSED, ResultCams
from tests.synthetic_result import synthetic_result
from viewer.state import FIELDS, ViewerState


def record(state: ViewerState) -> list[tuple[str, Any]]:
    """Every signal the state emits, in order, as (field, value)."""
    seen: list[tuple[str, Any]] = []
    for name in FIELDS:
        getattr(state, f"{name}_changed").connect(lambda v, n=name: seen.append((n, v)))
    return seen


def shown(result: Any) -> tuple[Any, ResultCams]:
    return result, ResultCams(result)


def test_setters_emit_once_and_only_on_a_real_change(qtbot: Any) -> None:
    state = ViewerState()
    seen = record(state)
    state.set_opacity(0.7)
    state.set_opacity(0.7)
    state.set_opacity(3.0)  # clamped to 1
    state.set_threshold(0.25)  # the default: no change
    state.set_colormap("viridis")
    state.set_colormap("no such map")
    state.set_overlay_visible(False)
    state.set_overlay_visible(False)
    state.set_window((100, 50))
    state.set_window((100.0, 50.0))
    assert seen == [
        ("opacity", 0.7),
        ("opacity", 1.0),
        ("colormap", "viridis"),
        ("overlay_visible", False),
        ("window", (100.0, 50.0)),
    ]
    assert (state.colormap, state.opacity, state.threshold) == ("viridis", 1.0, 0.25)


def test_a_result_selects_its_top_finding_with_every_field_set_before_any_signal(
    qtbot: Any,
) -> None:
    state = ViewerState()
    result, cams = shown(synthetic_result())
    seen: list[tuple[str, Any, Any]] = []
    # Each observer sees the whole new state, whichever field it listens to.
    for name in ("result", "cams", "finding"):
        getattr(state, f"{name}_changed").connect(
            lambda _v, n=name: seen.append((n, state.cams, state.finding))
        )
    state.show_result(result, cams)
    top = result.findings[0].index
    assert seen == [("result", cams, top), ("cams", cams, top), ("finding", cams, top)]
    assert state.levels == (FUSED, 4, 3, 2) and state.member == ENSEMBLE
    assert state.selected_finding is result.findings[0]
    state.show_result(result, cams)  # the same objects again: nothing changed
    assert len(seen) == 3


def test_selection_steps_stop_at_the_ends_and_levels_wrap(qtbot: Any) -> None:
    state = ViewerState()
    result, cams = shown(synthetic_result())
    state.show_result(result, cams)
    order = [f.index for f in result.findings]
    state.step_finding(-1)
    assert state.finding == order[0]
    state.step_finding(2)
    assert state.finding == order[2]
    state.set_finding(999)  # not a finding of this result
    assert state.finding == order[2]
    state.set_finding(None)
    assert state.selected_finding is None
    state.set_level(1)  # not a level of this model
    assert state.level == FUSED
    state.cycle_level(-1)
    assert state.level == 2
    state.cycle_level(1)
    assert state.level == FUSED


def test_a_member_without_the_chosen_level_falls_back_to_fused(qtbot: Any) -> None:
    state = ViewerState()
    result, cams = shown(synthetic_result(((4, 3, 2), (4, 3))))
    state.show_result(result, cams)
    state.set_level(2)
    seen = record(state)
    state.set_member(1)
    assert seen == [("member", 1), ("level", FUSED)]
    assert state.levels == (FUSED, 4, 3)
    state.set_member(5)  # no such member
    assert state.member == 1
    state.set_level(3)
    state.set_member(ENSEMBLE)
    assert state.level == 3


def test_the_level_is_kept_from_one_image_to_the_next(qtbot: Any) -> None:
    state = ViewerState()
    state.show_result(*shown(synthetic_result(seed=1)))
    state.set_level(3)
    state.show_result(None)  # the next image is loading: nothing offered, the choice kept
    assert (state.result, state.cams, state.finding, state.levels) == (None, None, None, ())
    assert state.level == 3
    state.show_result(*shown(synthetic_result(seed=2)))
    assert state.level == 3


def test_panel_controls_are_bound_one_field_each_and_unbound_on_delete(qtbot: Any) -> None:
    from viewer.ai_panel import AIPanel

    state = ViewerState()
    panel = AIPanel(state)
    panel.show()
    result, cams = shown(synthetic_result(((4, 3, 2), (4, 3))))
    state.show_result(result, cams)
    assert panel.opacity_slider.value() == 40 and panel.overlay_check.isChecked()
    panel.opacity_slider.setValue(65)
    assert state.opacity == pytest.approx(0.65)
    state.set_threshold(0.5)
    assert panel.threshold_slider.value() == 50
    assert [panel.level_combo.itemData(i) for i in range(panel.level_combo.count())] == [
        FUSED,
        4,
        3,
        2,
    ]
    panel.member_combo.setCurrentIndex(2)
    assert state.member == 1 and panel.level_combo.count() == 3
    state.set_level(4)
    assert panel.level_combo.currentData() == 4
    row = panel.findings_model.row_of(state.finding)
    assert panel.findings_view.currentIndex().row() == row
    assert result.findings[0].label in panel.detail_label.text()

    receivers = state.receivers(SIGNAL("opacity_changed(double)"))
    assert receivers >= 1
    panel.deleteLater()
    qtbot.waitUntil(lambda: state.receivers(SIGNAL("opacity_changed(double)")) < receivers)
    state.set_opacity(0.1)  # nothing left to call into


def test_stale_requests_and_results_are_dropped_without_a_model(qtbot: Any) -> None:
    from viewer.workers import INFERENCE, ServiceHub

    hub = ServiceHub(torch_threads=1, index_cache=False)
    try:
        image = object()
        with qtbot.waitSignal(hub.failed, timeout=10000) as blocker:
            first = hub.request_inference(image)
            second = hub.request_inference(image)
        # The first request was stale before it started: only the newest is answered.
        assert blocker.args == [INFERENCE, second, "No model is loaded, so there are no findings."]
        with qtbot.assertNotEmitted(hub.failed, wait=200):
            pass
        result = synthetic_result()
        with qtbot.assertNotEmitted(hub.result_ready):
            hub.inference_worker.result_ready.emit(first, result)
        assert hub.dropped == 1
        with qtbot.waitSignal(hub.result_ready) as blocker:
            hub.inference_worker.result_ready.emit(second, result)
        assert blocker.args == [second, result]
        hub.request_image("elsewhere.dcm")  # a new image makes the old inference stale too
        hub.inference_worker.result_ready.emit(second, result)
        assert hub.dropped == 2
    finally:
        hub.shutdown()
