"""The viewer's state: what is on screen and how it is shown, one object that widgets observe and set.

napari's evented models and 3D Slicer's parameter node: every field has a setter and a signal,
``<field>_changed(value)``, emitted once and only when the value really changes. The AI panel, the
film and the level strip each observe the fields they show and set the ones their controls change;
none reads another's widgets, and the main window only wires them (a new widget binds to this
object, see :mod:`viewer.bind`). A setter that changes several fields at once (a new result selects
its top finding and offers its own levels) sets them all before any signal goes out, so every
observer sees a consistent state.

The rules (which levels a member offers, where a level falls back to, how stepping wraps or stops)
are plain functions below, free of Qt; the class only adds the signals.

Fields:
    image: the ``LoadedImage`` on the film, or None.
    model: the ``ModelInfo`` of the loaded model, or None.
    result: the inference ``Result`` of the image on screen, or None.
    cams: its :class:`~fpsm_core.explain.ResultCams`, or None (no result, or no CAMs).
    member: the member whose maps are shown, or ``ENSEMBLE`` (-1).
    level: the map shown, a paper level number or ``"fused"``.
    finding: the selected finding's class index, or None.
    colormap, opacity, threshold, overlay_visible: the CAM overlay's look.
    window: the film's (center, width); inverted: white shown as black.
    urgent: the findings triage ranks by, shown in red when above threshold.
    tool: the measuring/annotation tool the left button draws with (``TOOLS``; "none" pans).
    overlay_style: ``"heatmap"`` (the colour map) or ``"contours"`` (outlines of the findings
        above their thresholds, labelled, the film left readable).
    ground_truth: the loaded boxes file (a ``GroundTruth``), or None.
    grid_pair: the two (member, level) tiles of the members x levels grid whose difference is
        shown, or None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from fpsm_core.explain import ENSEMBLE, FUSED, LevelKey
from viewer.cam_display import COLORMAPS

if TYPE_CHECKING:
    from fpsm_core.explain import ResultCams
    from fpsm_core.inference import Finding, Result
    from viewer.workers import LoadedImage, ModelInfo

# Signal order when one call changes several fields: what the others are read against goes first.
FIELDS = (
    "image",
    "model",
    "result",
    "cams",
    "member",
    "level",
    "finding",
    "colormap",
    "opacity",
    "threshold",
    "overlay_visible",
    "window",
    "inverted",
    "urgent",
    "tool",
    "overlay_style",
    "ground_truth",
    "grid_pair",
)
# Objects compare by identity (a new result is a change even if its numbers repeat); values by ==.
_BY_IDENTITY = frozenset({"image", "model", "result", "cams", "ground_truth"})
OVERLAY_STYLES = ("heatmap", "contours")
DEFAULTS: dict[str, Any] = {
    "image": None,
    "model": None,
    "result": None,
    "cams": None,
    "member": ENSEMBLE,
    "level": FUSED,
    "finding": None,
    "colormap": COLORMAPS[0],
    "opacity": 0.40,
    "threshold": 0.25,
    "overlay_visible": True,
    "window": (0.0, 1.0),
    "inverted": False,
    "urgent": (),
    "tool": "none",
    "overlay_style": "heatmap",
    "ground_truth": None,
    "grid_pair": None,
}
# The left button's tools on the film: "none" pans and selects, the others draw (see
# fpsm_core.annotations.model for the points each takes); "calibrate" draws a line of known length.
TOOLS = (
    "none",
    "length",
    "angle",
    "cobb",
    "ellipse",
    "rectangle",
    "arrow",
    "text",
    "ctr",
    "calibrate",
)


def available_levels(cams: ResultCams | None, member: int) -> tuple[LevelKey, ...]:
    """The maps a member offers: fused, then its levels; none without CAMs."""
    return () if cams is None else (FUSED, *cams.levels_of(member))


def fallback_level(level: LevelKey, available: Sequence[LevelKey]) -> LevelKey:
    """The level kept when what is offered changes: the same one if still there, else fused.

    With nothing offered (no CAMs yet) the choice is kept for the next result.
    """
    if not available or level in available:
        return level
    return FUSED


def step_clamped(order: Sequence[int], current: int | None, step: int) -> int:
    """The item ``step`` places from ``current`` in ``order``, stopping at the ends."""
    i = order.index(current) if current in order else -1
    return order[max(0, min(len(order) - 1, i + step))]


def step_wrapped(order: Sequence[LevelKey], current: LevelKey, step: int) -> LevelKey:
    """The item ``step`` places from ``current`` in ``order``, wrapping around."""
    i = order.index(current) if current in order else 0
    return order[(i + step) % len(order)]


CASE_LABEL = "No Finding"
"""The case-level label: shown apart from the findings (a case line), never selected as one."""


def finding_order(result: Result | None) -> list[int]:
    """Class indices of a result's findings, highest probability first (not the case label)."""
    return [] if result is None else [f.index for f in result.findings if f.label != CASE_LABEL]


class ViewerState(QObject):
    """The state of one viewer window (see the module docstring for the fields)."""

    image_changed = Signal(object)
    model_changed = Signal(object)
    result_changed = Signal(object)
    cams_changed = Signal(object)
    member_changed = Signal(int)
    level_changed = Signal(object)
    finding_changed = Signal(object)
    colormap_changed = Signal(str)
    opacity_changed = Signal(float)
    threshold_changed = Signal(float)
    overlay_visible_changed = Signal(bool)
    window_changed = Signal(object)
    inverted_changed = Signal(bool)
    urgent_changed = Signal(object)
    tool_changed = Signal(str)
    overlay_style_changed = Signal(str)
    ground_truth_changed = Signal(object)
    grid_pair_changed = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._values: dict[str, Any] = dict(DEFAULTS)

    def _update(self, **values: Any) -> None:
        """Set fields, then emit each changed field's signal once, in ``FIELDS`` order."""
        changed = set()
        for name, value in values.items():
            old = self._values[name]
            if (old is not value) if name in _BY_IDENTITY else (old != value):
                self._values[name] = value
                changed.add(name)
        for name in FIELDS:
            if name in changed:
                getattr(self, f"{name}_changed").emit(self._values[name])

    # -- fields ------------------------------------------------------------------------------
    @property
    def image(self) -> LoadedImage | None:
        return self._values["image"]  # type: ignore[no-any-return]

    @property
    def model(self) -> ModelInfo | None:
        return self._values["model"]  # type: ignore[no-any-return]

    @property
    def result(self) -> Result | None:
        return self._values["result"]  # type: ignore[no-any-return]

    @property
    def cams(self) -> ResultCams | None:
        return self._values["cams"]  # type: ignore[no-any-return]

    @property
    def member(self) -> int:
        return int(self._values["member"])

    @property
    def level(self) -> LevelKey:
        return self._values["level"]  # type: ignore[no-any-return]

    @property
    def finding(self) -> int | None:
        return self._values["finding"]  # type: ignore[no-any-return]

    @property
    def colormap(self) -> str:
        return str(self._values["colormap"])

    @property
    def opacity(self) -> float:
        return float(self._values["opacity"])

    @property
    def threshold(self) -> float:
        return float(self._values["threshold"])

    @property
    def overlay_visible(self) -> bool:
        return bool(self._values["overlay_visible"])

    @property
    def window(self) -> tuple[float, float]:
        return self._values["window"]  # type: ignore[no-any-return]

    @property
    def inverted(self) -> bool:
        return bool(self._values["inverted"])

    @property
    def urgent(self) -> tuple[str, ...]:
        return self._values["urgent"]  # type: ignore[no-any-return]

    @property
    def tool(self) -> str:
        return str(self._values["tool"])

    # -- derived -----------------------------------------------------------------------------
    @property
    def levels(self) -> tuple[LevelKey, ...]:
        """The maps offered for the chosen member (empty without CAMs)."""
        return available_levels(self.cams, self.member)

    @property
    def selected_finding(self) -> Finding | None:
        result, index = self.result, self.finding
        if result is None or index is None:
            return None
        return next((f for f in result.findings if f.index == index), None)

    # -- setters -----------------------------------------------------------------------------
    def set_image(self, image: LoadedImage | None) -> None:
        self._update(image=image)

    def set_model(self, model: ModelInfo | None) -> None:
        self._update(model=model)

    def show_result(self, result: Result | None, cams: ResultCams | None = None) -> None:
        """A new result (None: none): its top finding selected, the ensemble's maps, the level kept
        where the new result has it."""
        if result is None:
            cams = None
        findings = finding_order(result)
        self._update(
            result=result,
            cams=cams,
            member=ENSEMBLE,
            level=fallback_level(self.level, available_levels(cams, ENSEMBLE)),
            finding=findings[0] if findings else None,
        )

    def set_member(self, member: int) -> None:
        """Show one member's maps (a member index) or the ensemble's (``ENSEMBLE``)."""
        result = self.result
        if not isinstance(member, int):
            return
        if member != ENSEMBLE and (result is None or not 0 <= member < len(result.member_names)):
            return
        level = fallback_level(self.level, available_levels(self.cams, member))
        self._update(member=member, level=level)

    def set_level(self, level: LevelKey) -> None:
        """Show a level the chosen member has (anything else is ignored)."""
        if level in self.levels:
            self._update(level=level)

    def cycle_level(self, step: int) -> None:
        levels = self.levels
        if levels:
            self._update(level=step_wrapped(levels, self.level, step))

    def set_finding(self, class_index: int | None) -> None:
        """Select a finding of the result by class index (None: no selection)."""
        if class_index is None or class_index in finding_order(self.result):
            self._update(finding=class_index)

    def step_finding(self, step: int) -> None:
        order = finding_order(self.result)
        if order:
            self._update(finding=step_clamped(order, self.finding, step))

    def set_colormap(self, name: str) -> None:
        if name in COLORMAPS:
            self._update(colormap=name)

    def set_opacity(self, opacity: float) -> None:
        self._update(opacity=min(1.0, max(0.0, float(opacity))))

    def set_threshold(self, threshold: float) -> None:
        self._update(threshold=min(1.0, max(0.0, float(threshold))))

    def set_overlay_visible(self, visible: bool) -> None:
        self._update(overlay_visible=bool(visible))

    def set_window(self, window: tuple[float, float]) -> None:
        self._update(window=(float(window[0]), float(window[1])))

    def set_inverted(self, inverted: bool) -> None:
        self._update(inverted=bool(inverted))

    def set_urgent(self, labels: Sequence[str]) -> None:
        self._update(urgent=tuple(str(label) for label in labels))

    def set_tool(self, tool: str) -> None:
        """Choose the film's left-button tool (unknown names are ignored)."""
        if tool in TOOLS:
            self._update(tool=tool)

    # -- fields added for the AI display (contours, ground truth, members x levels grid) ---------
    @property
    def overlay_style(self) -> str:
        return str(self._values["overlay_style"])

    @property
    def ground_truth(self) -> Any:
        return self._values["ground_truth"]

    @property
    def grid_pair(self) -> tuple[tuple[int, LevelKey], tuple[int, LevelKey]] | None:
        return self._values["grid_pair"]  # type: ignore[no-any-return]

    def set_overlay_style(self, style: str) -> None:
        """``heatmap`` or ``contours`` (anything else is ignored)."""
        if style in OVERLAY_STYLES:
            self._update(overlay_style=style)

    def set_ground_truth(self, ground_truth: Any) -> None:
        self._update(ground_truth=ground_truth)

    def set_grid_pair(self, pair: tuple[tuple[int, LevelKey], tuple[int, LevelKey]] | None) -> None:
        """The two grid tiles to compare, as ((member, level), (member, level)), or None."""
        if pair is not None:
            (m0, l0), (m1, l1) = pair
            pair = ((int(m0), l0), (int(m1), l1))
        self._update(grid_pair=pair)


LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1), "2x2": (2, 2)}
"""Viewport layouts by name: (rows, columns)."""


class ReadingRoomState(QObject):
    """The state shared by a window's viewports (each viewport has its own :class:`ViewerState`).

    Fields, each with ``set_<field>`` and ``<field>_changed``:
        layout: a name of ``LAYOUTS`` ("1x1", "1x2", "2x2"...).
        active: the index of the viewport that keys and the toolbar act on.
        linked: window/level, zoom and pan of one viewport follow to the others.
        phi_hidden: corner text leaves out everything that identifies the patient.
    """

    layout_changed = Signal(str)
    active_changed = Signal(int)
    linked_changed = Signal(bool)
    phi_hidden_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._layout = "1x1"
        self._active = 0
        self._linked = True
        self._phi_hidden = False

    @property
    def layout(self) -> str:
        return self._layout

    @property
    def cells(self) -> int:
        rows, cols = LAYOUTS[self._layout]
        return rows * cols

    @property
    def active(self) -> int:
        return self._active

    @property
    def linked(self) -> bool:
        return self._linked

    @property
    def phi_hidden(self) -> bool:
        return self._phi_hidden

    def set_layout(self, layout: str) -> None:
        if layout in LAYOUTS and layout != self._layout:
            self._layout = layout
            self.layout_changed.emit(layout)
            if self._active >= self.cells:
                self.set_active(0)

    def set_active(self, index: int) -> None:
        if 0 <= int(index) < self.cells and int(index) != self._active:
            self._active = int(index)
            self.active_changed.emit(self._active)

    def set_linked(self, linked: bool) -> None:
        if bool(linked) != self._linked:
            self._linked = bool(linked)
            self.linked_changed.emit(self._linked)

    def set_phi_hidden(self, hidden: bool) -> None:
        if bool(hidden) != self._phi_hidden:
            self._phi_hidden = bool(hidden)
            self.phi_hidden_changed.emit(self._phi_hidden)
