"""The composition studio's state model: one object, one signal per field, widgets bound to it.

The patch editor's pattern (``viewer/patch_editor/state.py``, after napari's evented models): the
target, the placed patches, the settings, the view (before / after / difference), the composite,
the model check and the last message live here, each with a setter and a ``<field>_changed``
signal sent once and only on a real change. The rules are the plain functions of
:mod:`viewer.patch_editor.studio.model`; this class only keeps the fields and re-composes on the
GUI thread when an input changes (a paste is a small-region operation, well inside one frame at
1024 px: ``bench/bench_studio_gui.py``), with a ``ComposeCache`` that keeps what a drag does not
change. A composite gets a new ``revision``: model checks and scores carry it, and a result for
an older revision is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from viewer.patch_editor.studio import model as sm

if TYPE_CHECKING:
    from fpsm_core.dadam.composition import Composition
    from fpsm_core.dadam.library import PatchLibrary
    from fpsm_core.dadam.recipe import Recipe

VIEWS = ("after", "before", "difference")


class StudioState(QObject):
    """What the studio shows.

    Signals:
        targets_changed(list[TargetRef]): the pickable targets (a folder or a labels CSV).
        target_changed(Target | None): the loaded target.
        patches_changed(tuple[StudioPatch, ...]): the placed patches (moved, added, removed).
        current_changed(int): the index of the patch the controls edit (-1: none).
        settings_changed(StudioSettings): mode, matching, mm-consistency, lung policy, seed.
        view_changed(str): "after", "before" or "difference".
        composition_changed(Composition | None): a new composite (``revision`` went up).
        labels_changed(np.ndarray): the composite's label vector (26 values).
        partner_changed(str): the proposed MixUp partner class ("" when none).
        check_changed(object): the model check of the current revision, or None (stale).
        message_changed(str, bool): a sentence; True when it is an error.
    """

    targets_changed = Signal(object)
    target_changed = Signal(object)
    patches_changed = Signal(object)
    current_changed = Signal(int)
    settings_changed = Signal(object)
    view_changed = Signal(str)
    composition_changed = Signal(object)
    labels_changed = Signal(object)
    partner_changed = Signal(str)
    check_changed = Signal(object)
    message_changed = Signal(str, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._targets: list[sm.TargetRef] = []
        self._target: sm.Target | None = None
        self._patches: tuple[sm.StudioPatch, ...] = ()
        self._current = -1
        self._settings = sm.StudioSettings()
        self._view = "after"
        self._composition: Composition | None = None
        self._labels = np.zeros(len(sm.LABELS), np.float32)
        self._partner = ""
        self._check: Any = None
        self._corr: np.ndarray | None = None
        self._recipe: Recipe | None = None
        self.partner_candidates: Sequence[str] | None = None
        """Classes that have patches in the library (partners are chosen among them)."""
        self.revision = 0
        self.library: Callable[[], PatchLibrary | None] = lambda: None
        """Where the patches come from (the editor's open library; set by the studio widget)."""
        self.source: Any = None  # the generated image's recipe this composition was opened from
        self.compose_cache: sm.ComposeCache | None = sm.ComposeCache()
        """What a drag step reuses (the resized patch, its weights, the target's lung estimate);
        None composes everything afresh (the same pixels: ``bench/bench_studio_gui.py`` compares)."""

    # -- fields ------------------------------------------------------------------------------
    @property
    def targets(self) -> list[sm.TargetRef]:
        return self._targets

    def set_targets(self, refs: Sequence[sm.TargetRef], corr: np.ndarray | None = None) -> None:
        self._targets = list(refs)
        self._corr = corr
        self.targets_changed.emit(self._targets)
        self._update_partner()

    @property
    def correlation(self) -> np.ndarray | None:
        """The co-occurrence matrix of the labels CSV the targets came from (None: no table)."""
        return self._corr

    @property
    def target(self) -> sm.Target | None:
        return self._target

    def set_target(self, target: sm.Target | None) -> None:
        if target is self._target:
            return
        self._target = target
        if target is not None:  # patches keep their places; the new field may move them
            self._patches = tuple(
                sm.place(p, p.center, target, self._settings) for p in self._patches
            )
        self.target_changed.emit(target)
        self._recompose(patches=True)

    @property
    def patches(self) -> tuple[sm.StudioPatch, ...]:
        return self._patches

    def set_patches(self, patches: Sequence[sm.StudioPatch]) -> None:
        t = self._target
        new = tuple(
            sm.place(p, p.center, t, self._settings) if t is not None else p for p in patches
        )
        self._patches = new
        if self._current >= len(new):
            self.set_current(len(new) - 1)
        elif self._current < 0 and new:
            self.set_current(0)
        self._recompose(patches=True)
        self._update_partner()

    def load(
        self,
        target: sm.Target,
        patches: Sequence[sm.StudioPatch],
        settings: sm.StudioSettings,
        source: Any = None,
    ) -> None:
        """Show a saved composition as it was made: nothing snapped or re-placed (a recipe's
        centre outside the lung field is re-drawn by ``compose`` with its seed, as ``generate``
        did)."""
        self._target, self._patches, self.source = target, tuple(patches), source
        if settings != self._settings:
            self._settings = settings
            self.settings_changed.emit(settings)
        self.target_changed.emit(target)
        self._current = -1
        self.set_current(0 if self._patches else -1)
        self._recompose(patches=True)
        self._update_partner()

    def add_patch(self, patch: sm.StudioPatch) -> None:
        self.set_patches((*self._patches, patch))
        self.set_current(len(self._patches) - 1)

    def remove_patch(self, index: int) -> None:
        if 0 <= index < len(self._patches):
            self.set_patches(self._patches[:index] + self._patches[index + 1 :])

    def move_patch(self, index: int, centre: tuple[float, float]) -> None:
        """Move patch ``index`` so its lesion centre is at ``centre`` (fractions of the target)."""
        if self._target is None or not 0 <= index < len(self._patches):
            return
        moved = sm.place(self._patches[index], centre, self._target, self._settings)
        if moved.center == self._patches[index].center:
            return
        self._patches = self._patches[:index] + (moved,) + self._patches[index + 1 :]
        self._recompose(patches=True)

    def update_patch(self, index: int, **changes: Any) -> None:
        """Change one patch's ``factor``, ``alpha``, ``feather`` or ``match`` (the panel's controls)."""
        if not 0 <= index < len(self._patches):
            return
        p = self._patches[index]
        new = p.with_(**changes)
        if self._target is not None:
            new = sm.place(new, new.center, self._target, self._settings)
        if new == p:
            return
        self._patches = self._patches[:index] + (new,) + self._patches[index + 1 :]
        self._recompose(patches=True)

    @property
    def current(self) -> int:
        return self._current

    def set_current(self, index: int) -> None:
        if index != self._current:
            self._current = index
            self.current_changed.emit(index)
            self._update_partner()

    @property
    def settings(self) -> sm.StudioSettings:
        return self._settings

    def set_settings(self, settings: sm.StudioSettings) -> None:
        if settings == self._settings:
            return
        old, self._settings = self._settings, settings
        if settings.mode != old.mode:  # the mode's default alpha, for every patch
            alpha = sm.DEFAULT_ALPHA[settings.mode]
            self._patches = tuple(p.with_(alpha=alpha) for p in self._patches)
        if self._target is not None:
            self._patches = tuple(
                sm.place(p, p.center, self._target, settings) for p in self._patches
            )
        self.settings_changed.emit(settings)
        self._recompose(patches=True)

    def update_settings(self, **changes: Any) -> None:
        self.set_settings(self._settings.with_(**changes))

    @property
    def view(self) -> str:
        return self._view

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        if view != self._view:
            self._view = view
            self.view_changed.emit(view)

    @property
    def composition(self) -> Composition | None:
        return self._composition

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def partner(self) -> str:
        return self._partner

    @property
    def check(self) -> Any:
        return self._check

    def set_check(self, revision: int, check: Any) -> bool:
        """Show a model check; False (dropped) when it was made for an older composite."""
        if revision != self.revision:
            return False
        self._check = check
        self.check_changed.emit(check)
        return True

    def say(self, text: str, error: bool = False) -> None:
        self.message_changed.emit(text, error)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def recipe(self) -> Recipe | None:
        """The recipe of the composite on screen (None: no target, or it could not be made)."""
        return self._recipe

    def _recompose(self, patches: bool = False) -> None:
        if patches:
            self.patches_changed.emit(self._patches)
        t = self._target
        self.revision += 1
        self._composition, self._recipe = None, None
        library = self.library()
        if t is not None and self._patches and library is None:
            self.say("Open a patch library first: the patches come from it.", error=True)
        elif t is not None:
            try:
                self._recipe = sm.to_recipe(t.ref, self._patches, self._settings, t)
                self._composition = (
                    sm.composite(t, self._patches, self._settings, library, self.compose_cache)
                    if self._patches and library is not None
                    else sm.Composition(t.pixels, ())
                )
            except sm.StudioError as exc:
                self._recipe = None
                self.say(str(exc), error=True)
        if self._check is not None:
            self._check = None
            self.check_changed.emit(None)
        self.composition_changed.emit(self._composition)
        if self._recipe is not None and self._patches:
            labels = sm.label_vector(self._recipe)
        elif t is not None and self._recipe is not None:  # nothing pasted: the target's own row
            labels = np.array(t.ref.values, np.float32)
        else:
            labels = np.zeros(len(sm.LABELS), np.float32)
        if not np.array_equal(labels, self._labels):
            self._labels = labels
            self.labels_changed.emit(labels)

    def _update_partner(self) -> None:
        label = ""
        if 0 <= self._current < len(self._patches):
            label = self._patches[self._current].label
        partner = (
            (sm.partner_for(label, self._corr, self.partner_candidates) or "") if label else ""
        )
        if partner != self._partner:
            self._partner = partner
            self.partner_changed.emit(partner)
