"""The film bound to the viewer state: the image shown, its inversion, its window, the CAM overlay.

:class:`~viewer.image_view.ImageViewWidget` knows nothing of findings or CAMs; this binding shows
the state's image on it, passes the film's own window/level changes back to the state (the level
strip shows the film at the same window), and draws the selected finding's map at the chosen
level, member and look over it, synchronously, so what a setter changed is on screen when it
returns. A caption on the film names what the overlay shows (:func:`overlay_caption`) and follows
every change of the fields it names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from fpsm_core.explain import ENSEMBLE, FUSED
from viewer import cam_display
from viewer.image_view import ImageViewWidget
from viewer.state import ViewerState

if TYPE_CHECKING:
    from viewer.workers import LoadedImage


def overlay_caption(state: ViewerState) -> str:
    """The film's caption: finding, probability and threshold, level, member, model.

    Empty when there is no result or no finding selected; says so when the heatmap is hidden.
    """
    result, finding = state.result, state.selected_finding
    if result is None or finding is None:
        return ""
    parts = [
        f"{finding.label} {finding.probability:.1%}"
        f" ({'above' if finding.above_threshold else 'below'} threshold {finding.threshold:.1%})"
    ]
    if not state.overlay_visible:
        parts.append("heatmap hidden")
    elif state.cams is None:
        parts.append("no heatmap")
    else:
        level = state.level
        if state.overlay_style == "contours":
            parts.append("contours of the findings above their thresholds")
        parts.append("fused levels" if level == FUSED else f"level {level}")
        names = list(result.member_names)
        if state.member == ENSEMBLE:
            parts.append(f"Ensemble mean of {len(names)} member{'s' if len(names) != 1 else ''}")
        elif 0 <= state.member < len(names):
            parts.append(f"member {names[state.member]}")
    model = state.model.name if state.model is not None else result.model.get("name", "")
    if model:
        parts.append(f"model {model}")
    if result.input.flagged:  # the caption travels with grabs of the film: say it there too
        parts.insert(0, "NOT RELIABLE: outside the model's training distribution")
    return "  ·  ".join(parts)


class FilmBinding(QObject):
    """Binds an :class:`ImageViewWidget` to a :class:`ViewerState` (a child of the view).

    Signals:
        overlay_drawn(): the CAM overlay was drawn, changed or hidden.
    """

    overlay_drawn = Signal()

    def __init__(self, state: ViewerState, view: ImageViewWidget) -> None:
        super().__init__(view)
        self._state = state
        self._view = view
        self._drawn: tuple[Any, ...] | None = None
        state.image_changed.connect(self._on_state_image_changed)
        state.inverted_changed.connect(self._on_state_inverted_changed)
        for signal in (
            state.cams_changed,
            state.finding_changed,
            state.level_changed,
            state.member_changed,
            state.colormap_changed,
            state.opacity_changed,
            state.threshold_changed,
            state.overlay_visible_changed,
            state.overlay_style_changed,
        ):
            signal.connect(self._on_state_overlay_changed)
        view.window_changed.connect(self._on_view_window_changed)
        for signal in (
            state.model_changed,
            state.result_changed,
            state.cams_changed,
            state.finding_changed,
            state.level_changed,
            state.member_changed,
            state.overlay_visible_changed,
            state.overlay_style_changed,
        ):
            signal.connect(self._on_state_caption_changed)

    def _on_state_caption_changed(self, *_: Any) -> None:
        self._view.set_caption(overlay_caption(self._state))

    def _on_state_image_changed(self, loaded: LoadedImage | None) -> None:
        self._drawn = None
        if loaded is None:
            self._view.clear()
            return
        self._view.set_image(loaded.image, loaded.pyramid, invert=self._state.inverted)
        self._view.graphics.viewport().repaint()  # the first pixels now, before any other work
        self.redraw()

    def _on_state_inverted_changed(self, inverted: bool) -> None:
        self._view.set_inverted(inverted)

    def _on_view_window_changed(self, center: float, width: float) -> None:
        self._state.set_window((center, width))

    def _on_state_overlay_changed(self, *_: Any) -> None:
        self.redraw()

    def redraw(self) -> None:
        """Draw the selected finding's map as the state says, unless that is what is shown."""
        s = self._state
        look = (s.image, s.cams, s.finding, s.level, s.member, s.colormap, s.opacity, s.threshold)
        key = (*look, s.overlay_visible, s.overlay_style)
        if key == self._drawn:
            return  # one call changed several fields: the first signal already drew the result
        self._drawn = key
        if s.cams is None or s.finding is None or s.image is None:
            self._view.set_overlay(None)
            return
        if s.overlay_visible and s.overlay_style == "heatmap":  # contours: viewer.contours
            shape = cam_display.overlay_shape(s.cams.result.image_shape)
            values = s.cams.map(s.finding, s.level, shape, member=s.member)
            dimmed = s.result is not None and s.result.input.flagged
            self._view.set_overlay(
                cam_display.colourise(values, s.colormap, s.opacity, s.threshold, dimmed=dimmed)
            )
        else:
            self._view.set_overlay(None)
        self.overlay_drawn.emit()
