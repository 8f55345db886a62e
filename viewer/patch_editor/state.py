"""The patch editor's state model: one object, one signal per field, and the curation actions.

Widgets observe and set this object, never each other (the viewer's pattern, after napari's evented
models and Slicer's parameter node). Fields: the open :class:`EditorSession`, the gallery filter,
the listed ids, the current patch, the selection, and the last message. Every curation action goes
through here: it calls the session (one core transaction), then says what changed with
``library_edited(ids)`` so the gallery, the counts and the panels refresh themselves. A user's
problem becomes ``message_changed(text, is_error)``: one sentence, and the editor stays usable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from viewer.patch_editor.model import EditorError, EditorSession, GalleryFilter, SourceRef

FAILED: Any = object()  # what an action returns when the library refused it


class EditorState(QObject):
    """What the patch editor shows and acts on.

    Signals:
        session_changed(EditorSession | None): a library was opened or closed.
        filter_changed(GalleryFilter): the gallery's question changed.
        ids_changed(list[int]): the listed ids changed (new filter, or an edit changed membership).
        current_changed(int | None): the patch in focus.
        selection_changed(tuple[int, ...]): the selected patches (batch actions apply to them).
        library_edited(tuple[int, ...] | None): these patches changed (None: maybe all of them).
        message_changed(str, bool): a sentence for the status bar; True when it is an error.
        source_requested(int): open this patch's source image.
    """

    session_changed = Signal(object)
    filter_changed = Signal(object)
    ids_changed = Signal(object)
    current_changed = Signal(object)
    selection_changed = Signal(object)
    library_edited = Signal(object)
    message_changed = Signal(str, bool)
    source_requested = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._session: EditorSession | None = None
        self._filter = GalleryFilter()
        self._ids: list[int] = []
        self._current: int | None = None
        self._selection: tuple[int, ...] = ()
        self._message = ""

    # -- fields ------------------------------------------------------------------------------
    @property
    def session(self) -> EditorSession | None:
        return self._session

    def set_session(self, session: EditorSession | None) -> None:
        if self._session is not None and self._session is not session:
            self._session.close()
        self._session = session
        self._current = None
        self._selection = ()
        self.session_changed.emit(session)
        self.refresh()

    @property
    def filter(self) -> GalleryFilter:
        return self._filter

    def set_filter(self, flt: GalleryFilter) -> None:
        if flt == self._filter:
            return
        self._filter = flt
        self.filter_changed.emit(flt)
        self.refresh()

    def update_filter(self, **changes: Any) -> None:
        self.set_filter(self._filter.with_(**changes))

    @property
    def ids(self) -> list[int]:
        return self._ids

    @property
    def current(self) -> int | None:
        return self._current

    def set_current(self, patch_id: int | None) -> None:
        if patch_id != self._current:
            self._current = patch_id
            self.current_changed.emit(patch_id)

    @property
    def selection(self) -> tuple[int, ...]:
        return self._selection

    def set_selection(self, ids: Sequence[int]) -> None:
        sel = tuple(int(i) for i in ids)
        if sel != self._selection:
            self._selection = sel
            self.selection_changed.emit(sel)

    def targets(self) -> tuple[int, ...]:
        """What an action applies to: the selection, else the current patch."""
        if self._selection:
            return self._selection
        return () if self._current is None else (self._current,)

    @property
    def message(self) -> str:
        return self._message

    def say(self, text: str, error: bool = False) -> None:
        self._message = text
        self.message_changed.emit(text, error)

    # -- queries -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Ask the library again for the listed ids (after a filter change or an edit)."""
        ids: list[int] = []
        if self._session is not None:
            try:
                ids = self._session.query_ids(self._filter)
            except EditorError as exc:
                self.say(str(exc), error=True)
        if ids != self._ids:
            self._ids = ids
            self.ids_changed.emit(ids)

    # -- actions -------------------------------------------------------------------------------------
    def _act(self, what: Callable[[EditorSession], Any], edited: Sequence[int] | None) -> Any:
        if self._session is None:
            self.say("Open or create a patch library first.", error=True)
            return FAILED
        try:
            out = what(self._session)
        except EditorError as exc:
            self.say(str(exc), error=True)
            return FAILED
        self.library_edited.emit(None if edited is None else tuple(edited))
        self.refresh()
        return out

    def set_state(self, state: str, ids: Sequence[int] | None = None) -> int:
        """Accept, reject or reset the targets (or ``ids``); returns how many changed."""
        ids = tuple(self.targets() if ids is None else ids)
        if not ids:
            return 0
        n = self._act(lambda s: s.set_state(ids, state), ids)
        if n is FAILED:
            return 0
        self.say(f"{len(ids)} patch{'es' if len(ids) != 1 else ''} {state}.")
        return int(n)

    def set_rating(self, rating: int | None) -> None:
        ids = self.targets()
        if ids and self._act(lambda s: s.set_rating(ids, rating), ids) is not FAILED:
            self.say(f"Rating {rating or 'cleared'} on {len(ids)} patch(es).")

    def set_notes(self, notes: str) -> None:
        if self._current is not None:
            pid = self._current
            self._act(lambda s: s.set_notes(pid, notes), (pid,))

    def add_tags(self, tags: Sequence[str]) -> None:
        ids = self.targets()
        if ids and tags:
            self._act(lambda s: s.add_tags(ids, tags), ids)

    def remove_tags(self, tags: Sequence[str]) -> None:
        ids = self.targets()
        if ids and tags:
            self._act(lambda s: s.remove_tags(ids, tags), ids)

    def undo(self) -> None:
        done = self._act(lambda s: s.undo(), None)
        if done is not FAILED:
            self.say("Undone." if done else "Nothing to undo.")

    def redo(self) -> None:
        done = self._act(lambda s: s.redo(), None)
        if done is not FAILED:
            self.say("Redone." if done else "Nothing to redo.")

    def merge(self, ids: Sequence[int]) -> int | None:
        kept = self._act(lambda s: s.merge(ids), None)
        if kept is FAILED:
            return None
        self.say(f"Merged {len(ids)} patches into patch {kept}.")
        return int(kept)

    def reject_all_but(self, keep: int, ids: Sequence[int]) -> None:
        n = self._act(lambda s: s.reject_all_but(keep, ids), ids)
        if n is not FAILED:
            self.say(f"Kept patch {keep}, rejected {n}.")

    def update_box(
        self, patch_id: int, box: Sequence[float], label: str | None = None, image: Any = None
    ) -> int | None:
        new = self._act(lambda s: s.update_box(patch_id, box, label, image), None)
        if new is FAILED:
            return None
        self.say(f"Patch {patch_id} re-cut" + (f" as {label}." if label else "."))
        return int(new)

    def add_box(
        self,
        source: SourceRef,
        box: Sequence[float],
        label: str,
        image: Any = None,
        image_path: str | Path | None = None,
    ) -> int | None:
        new = self._act(lambda s: s.add_box(source, box, label, image, image_path), None)
        if new is FAILED:
            return None
        self.say(f"New {label} patch {new} cut from {source.image_id}.")
        return int(new)

    def delete_box(self, patch_id: int) -> None:
        if self._act(lambda s: s.delete_box(patch_id), (patch_id,)) is not FAILED:
            self.say(f"Box of patch {patch_id} deleted (the patch is rejected, not erased).")

    def open_source(self, patch_id: int | None = None) -> None:
        pid = self._current if patch_id is None else patch_id
        if pid is not None:
            self.source_requested.emit(pid)
