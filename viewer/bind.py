"""Bindings: one control kept in step with one field of the :class:`~viewer.state.ViewerState`.

napari's ``qt_gamma_slider`` pattern: the control shows the field, a user's change of the control
sets the field, and nothing else talks to the control. A binding is a child of its control, so it
goes with it, and it disconnects from the state when the control is destroyed, so a state that
outlives its widgets never calls into a deleted one. A new control binds here (or, for a picture
such as the film or the level strip, observes the state's signals itself), never to another widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, SignalInstance
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractScrollArea,
    QApplication,
    QComboBox,
    QSlider,
    QWidget,
)

from viewer.state import ViewerState


class Binding(QObject):
    """Keeps ``owner`` and ``state.<field>`` in step, both ways.

    Args:
        owner: the control (its destruction ends the binding).
        state: the state.
        field: a field name of :class:`ViewerState` (``set_<field>`` and ``<field>_changed``).
        show: puts a field value into the control.
        edited: the control's signal of a user's change.
        read: turns that signal's arguments into a field value.
    """

    def __init__(
        self,
        owner: QObject,
        state: ViewerState,
        field: str,
        show: Callable[[Any], None],
        edited: SignalInstance,
        read: Callable[..., Any],
    ) -> None:
        super().__init__(owner)
        self.field = field
        self._state = state
        self._changed: SignalInstance = getattr(state, f"{field}_changed")
        self._set: Callable[[Any], None] = getattr(state, f"set_{field}")
        self._show = show
        self._read = read
        self._showing = False
        self.bound = True
        self._changed.connect(self._on_state_changed)
        edited.connect(self._on_control_edited)
        owner.destroyed.connect(self.unbind)
        self.refresh()

    def refresh(self) -> None:
        """Show the field's current value (after the control's items were rebuilt)."""
        self._on_state_changed(getattr(self._state, self.field))

    def unbind(self) -> None:
        """Stop listening to the state (called when the control is destroyed)."""
        if self.bound:
            self.bound = False
            try:
                self._changed.disconnect(self._on_state_changed)
            except RuntimeError:
                pass  # the state went first (both belonged to a closing window)

    def _on_state_changed(self, value: Any) -> None:
        if not self.bound:
            return
        self._showing = True  # the control's own change signal must not echo back
        try:
            self._show(value)
        finally:
            self._showing = False

    def _on_control_edited(self, *args: Any) -> None:
        if self.bound and not self._showing:
            self._set(self._read(*args))


def bind_slider(slider: QSlider, state: ViewerState, field: str, scale: float = 100.0) -> Binding:
    """An integer slider for a float field: slider value = field value x ``scale``."""
    return Binding(
        slider,
        state,
        field,
        lambda value: slider.setValue(round(float(value) * scale)),
        slider.valueChanged,
        lambda position: position / scale,
    )


def bind_check(control: QAbstractButton | QAction, state: ViewerState, field: str) -> Binding:
    """A check box, checkable button or checkable action for a bool field."""
    return Binding(control, state, field, control.setChecked, control.toggled, bool)


def bind_combo(combo: QComboBox, state: ViewerState, field: str) -> Binding:
    """A combo box whose items carry the field's values as their data."""

    def show(value: Any) -> None:
        index = combo.findData(value)
        if index >= 0:
            combo.setCurrentIndex(index)

    return Binding(combo, state, field, show, combo.currentIndexChanged, combo.itemData)


class WheelGuard(QObject):
    """Lets the mouse wheel change a control only once the user has focused it.

    Combos and sliders in a scrolling panel otherwise take every wheel turn that passes over
    them, so scrolling the panel silently switches the model member or the heatmap opacity.
    The guard ignores (and so hands on to the parent, the scroll area) wheel events of a control
    without focus; a click or Tab gives it focus (``Qt.StrongFocus``, not the wheel's own focus).
    """

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if (
            event.type() == QEvent.Type.Wheel
            and isinstance(watched, QWidget)
            and not watched.hasFocus()
        ):
            area = _scroll_area_above(watched)
            if area is None:
                event.ignore()  # unaccepted: Qt offers the wheel to the parent widgets
            else:
                # Hand the turn to the scroll area directly: Qt propagates only the system's own
                # wheel events to parents, and handing it on here cannot scroll twice.
                QApplication.sendEvent(area.viewport(), event)
                event.accept()
            return True
        return False


def _scroll_area_above(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QAbstractScrollArea):
        parent = parent.parentWidget()
    return parent


def guard_wheel(*widgets: QWidget) -> WheelGuard:
    """Install one :class:`WheelGuard` on ``widgets`` (it becomes the first one's child)."""
    guard = WheelGuard(widgets[0])
    for widget in widgets:
        widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        widget.installEventFilter(guard)
    return guard
