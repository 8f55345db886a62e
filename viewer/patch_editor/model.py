"""The patch editor's Qt-free logic: what the gallery asks of a library, and what it gets back.

:class:`GalleryFilter` is the gallery's question (labels, states, data sets, size range, reader
agreement, free text, sort); :class:`PatchCard` is what one thumbnail shows; :class:`EditorSession`
owns one open :class:`fpsm_core.dadam.PatchLibrary` on the GUI thread and turns every curation
action into one call of the core (one SQLite transaction each, so nothing waits for a Save).
Whatever the core raises for a user's input (``DadamError``, a locked or corrupt database) comes
back as one sentence in :class:`EditorError`; the window shows it and stays usable.

The session asks the core for what it can do (``query_ids``, ``undo``, ``update_box``...) rather
than re-implementing it: curation logic lives in ``fpsm_core.dadam``. Where an older core lacks a
call, the session keeps the editor working with view-level fallbacks (a Python filter over the
rows, an in-session undo of state changes) and says which features need the newer library.
"""

from __future__ import annotations

import getpass
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpsm_core.labels import LABELS

if TYPE_CHECKING:
    from fpsm_core.dadam.library import Patch, PatchLibrary, Provenance

STATES = ("unreviewed", "accepted", "rejected")
DB_NAME = "library.sqlite"
SORT_KEYS = ("date", "size", "label", "source", "rating", "efficacy")
STATE_KEYS = {"a": "accepted", "r": "rejected", "u": "unreviewed"}
CARD_CACHE = 4096


class EditorError(Exception):
    """A problem the user can act on, as one sentence (the window shows it, nothing crashes)."""


@dataclass(frozen=True)
class GalleryFilter:
    """Which patches the gallery lists, and in which order.

    Attributes:
        labels: Only these CXR-LT classes (empty: all).
        states: Only these curation states (empty: all).
        datasets: Only patches with a source box from these data sets (empty: all).
        min_size: Least larger lesion side, in mm when known (else px).
        max_size: Largest larger lesion side.
        min_readers: Least number of readers that marked the lesion (reader agreement).
        text: Case-insensitive text that must appear in the notes or tags.
        sort: One of :data:`SORT_KEYS` ("efficacy": scored patches by efficacy, unscored last).
        descending: Reverse the order.
        min_efficacy: Only patches whose stored efficacy is at least this (unscored ones out).
        efficacy_model: Whose efficacy the gallery shows, sorts and filters by (a model's name
            or id prefix; "": each patch's newest score, of any model).
    """

    labels: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    min_size: float | None = None
    max_size: float | None = None
    min_readers: int = 1
    text: str = ""
    sort: str = "date"
    descending: bool = False
    min_efficacy: float | None = None
    efficacy_model: str = ""

    def with_(self, **changes: Any) -> GalleryFilter:
        """A copy with some fields changed (the state model replaces filters whole)."""
        return replace(self, **changes)


@dataclass(frozen=True)
class PatchCard:
    """What a thumbnail and the curation panel show about one patch."""

    id: int
    label: str
    state: str
    file: Path
    size_text: str
    size: float
    dataset: str
    readers: int
    box: tuple[int, int, int, int] = (0, 0, 1, 1)
    crop_size: tuple[int, int] = (1, 1)
    rating: int | None = None
    notes: str = ""
    tags: tuple[str, ...] = ()
    edited: bool = False
    efficacy: float | None = None
    efficacy_text: str = ""


@dataclass(frozen=True)
class SourceBox:
    """One box drawn on a source image: a patch's source box from one reader.

    Attributes:
        patch_id: The patch this box produced.
        box: (x0, y0, x1, y1) in source-image pixels.
        label: CXR-LT class of the patch.
        reader: Reader id ("" when the data set has none).
        dataset: Source data set.
        box_id: The core's id for the box (provenance row), when it has one.
    """

    patch_id: int
    box: tuple[float, float, float, float]
    label: str
    reader: str
    dataset: str
    box_id: int | None = None
    editable: bool = True
    source_label: str = ""  # the class as the data set spelt it (VinDr "Nodule/Mass")


@dataclass(frozen=True)
class SourceRef:
    """Where a patch's source image is: the file recorded at import, and its boxes."""

    patch_id: int
    image_path: str
    image_id: str
    dataset: str
    boxes: tuple[SourceBox, ...] = field(default_factory=tuple)


def card_size(patch: Patch) -> tuple[float, str]:
    """The larger lesion side (mm when the spacing is known, else px) and its text."""
    x0, y0, x1, y1 = patch.box
    if patch.size_mm is not None:
        w, h = patch.size_mm
        return max(w, h), f"{w:.0f}x{h:.0f} mm"
    return float(max(x1 - x0, y1 - y0)), f"{x1 - x0}x{y1 - y0} px"


def _efficacy_fields(score: Any) -> dict[str, Any]:
    if score is None:
        return {}
    return {
        "efficacy": float(score.efficacy),
        "efficacy_text": f"{score.efficacy:+.3f} [{score.lo:+.3f}, {score.hi:+.3f}] "
        f"({score.model_name}, seed {score.seed}, N {score.n})",
    }


def user_name() -> str:
    """The OS user name recorded with each edit (empty when the OS does not say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def _sentence(exc: BaseException, root: Path) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
        return f"'{root}' is locked by another program; try again in a moment."
    if isinstance(exc, sqlite3.DatabaseError):
        return f"'{root / 'library.sqlite'}' cannot be used ({text})."
    return text or type(exc).__name__


class EditorSession:
    """One open patch library and the editor's calls into it (GUI thread only).

    Args:
        root: The library folder.
        create: Create an empty library when the folder has none.
        images: Folders where source images that moved are looked for (``--images``).

    Raises:
        EditorError: the library cannot be opened (one sentence naming it and why).
    """

    def __init__(
        self, root: str | Path, *, create: bool = False, images: Sequence[Path] = ()
    ) -> None:
        from fpsm_core.dadam import DadamError, PatchLibrary

        self.root = Path(root)
        self.images = [Path(p) for p in images]
        self.user = user_name()
        try:
            self.library: PatchLibrary = PatchLibrary(self.root, create=create)
        except (DadamError, sqlite3.Error, OSError) as exc:
            raise EditorError(_sentence(exc, self.root)) from None
        self._cards: OrderedDict[int, PatchCard] = OrderedDict()
        self._rows: list[Patch] | None = None  # fallback filter cache (older cores only)
        self._undo: list[list[tuple[int, str]]] = []  # fallback undo (older cores only)
        self._redo: list[list[tuple[int, str]]] = []
        self._efficacy: dict[int, Any] | None = None  # patch id -> newest Score (issue 16)
        self.efficacy_model = ""

    # -- capabilities ------------------------------------------------------------------------
    def has(self, name: str) -> bool:
        """Whether the core library offers this call (``set_rating``, ``update_box``...)."""
        return callable(getattr(self.library, name, None))

    def close(self) -> None:
        self.library.close()

    def _call(self, what: Callable[[], Any]) -> Any:
        from fpsm_core.dadam import DadamError

        try:
            return what()
        except (DadamError, sqlite3.Error, OSError, KeyError, ValueError) as exc:
            raise EditorError(_sentence(exc, self.root)) from None

    def _changed(self, ids: Iterable[int] | None = None) -> None:
        if ids is None:
            self._cards.clear()
        else:
            for i in ids:
                self._cards.pop(int(i), None)
        self._rows = None

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._call(lambda: len(self.library)))

    def query_ids(self, flt: GalleryFilter) -> list[int]:
        """The ids the gallery lists for a filter, in order."""
        if flt.efficacy_model != self.efficacy_model:
            self.efficacy_model = flt.efficacy_model
            self.efficacy_changed()
        if flt.sort == "efficacy" or flt.min_efficacy is not None:
            return self._efficacy_query(flt)
        if self.has("query_ids"):
            return list(self._call(lambda: self.library.query_ids(**self._query_kwargs(flt))))
        return self._call(lambda: self._fallback_query(flt))

    def _query_kwargs(self, flt: GalleryFilter) -> dict[str, Any]:
        return {
            "labels": flt.labels or None,
            "states": flt.states or None,
            "datasets": flt.datasets or None,
            "min_size": flt.min_size,
            "max_size": flt.max_size,
            "size_unit": self._size_unit(),
            "min_readers": flt.min_readers if flt.min_readers > 1 else None,
            "text": flt.text or None,
            "sort": flt.sort,
            "descending": flt.descending,
        }

    def _size_unit(self) -> str:
        # Cards show mm when the spacing is known; the size filter uses the same unit.
        if not hasattr(self, "_unit"):
            first = self.library.patches(states=STATES, limit=1)
            self._unit = "mm" if first and first[0].size_mm is not None else "px"
        return self._unit

    def _fallback_query(self, flt: GalleryFilter) -> list[int]:
        if self._rows is None:
            self._rows = self.library.patches(states=STATES)
        out: list[tuple[Any, int]] = []
        for p in self._rows:
            if flt.labels and p.label not in flt.labels:
                continue
            if flt.states and p.state not in flt.states:
                continue
            size, _ = card_size(p)
            if flt.min_size is not None and size < flt.min_size:
                continue
            if flt.max_size is not None and size > flt.max_size:
                continue
            if flt.datasets or flt.min_readers > 1 or flt.text or flt.sort == "source":
                card = self.card(p.id)
                if flt.datasets and card.dataset not in flt.datasets:
                    continue
                if card.readers < flt.min_readers:
                    continue
                hay = (card.notes + " " + " ".join(card.tags)).lower()
                if flt.text and flt.text.lower() not in hay:
                    continue
                source = card.dataset
            else:
                source = ""
            key: Any = {
                "date": p.id,
                "size": (size, p.id),
                "label": (p.label, p.id),
                "source": (source, p.id),
                "rating": (0, p.id),
            }[flt.sort]
            out.append((key, p.id))
        out.sort(reverse=flt.descending)
        return [i for _, i in out]

    # -- efficacy (issue 16: the studio's scores, stored in the library) --------------------------
    def efficacy(self) -> dict[int, Any]:
        """Patch id -> its newest stored efficacy ``Score`` under :attr:`efficacy_model` ({} when
        the library has none, or the core cannot score)."""
        if self._efficacy is None:
            self._efficacy = self._call(self._read_efficacy)
        return self._efficacy

    def efficacy_models(self) -> list[tuple[str, str, int]]:
        """(name, id, patches scored) of every model with stored scores."""
        try:
            from fpsm_core.dadam.efficacy import scored_models
        except ImportError:
            return []
        try:
            return list(self._call(lambda: scored_models(self.library)))
        except EditorError:
            return []  # a library without the efficacy table (an older schema)

    def efficacy_changed(self) -> None:
        """Scores were written (maybe by another connection): read them again."""
        self._efficacy = None
        self._changed()

    def _read_efficacy(self) -> dict[int, Any]:
        try:
            from fpsm_core.dadam.efficacy import stored_scores
        except ImportError:
            return {}
        try:
            scores = stored_scores(self.library, model=self.efficacy_model or None)
        except sqlite3.OperationalError:
            return {}  # no efficacy table: nothing was ever scored in this library
        return {pid: ss[0] for pid, ss in scores.items()}

    def _efficacy_query(self, flt: GalleryFilter) -> list[int]:
        by_efficacy = flt.sort == "efficacy"
        plain = flt.with_(min_efficacy=None)
        ids = self.query_ids(plain.with_(sort="date", descending=False) if by_efficacy else plain)
        scores = self.efficacy()
        if flt.min_efficacy is not None:
            ids = [i for i in ids if i in scores and scores[i].efficacy >= flt.min_efficacy]
        if not by_efficacy:
            return ids
        scored = sorted((i for i in ids if i in scores), key=lambda i: (scores[i].efficacy, i),
                        reverse=flt.descending)  # fmt: skip
        return scored + [i for i in ids if i not in scores]

    def patch(self, patch_id: int) -> Patch:
        return self._call(lambda: self.library.get(patch_id))  # type: ignore[no-any-return]

    def card(self, patch_id: int) -> PatchCard:
        """The card of one patch (cached; edits drop it)."""
        card = self._cards.get(patch_id)
        if card is not None:
            self._cards.move_to_end(patch_id)
            return card
        card = self._call(lambda: self._make_card(patch_id))
        self._cards[patch_id] = card
        if len(self._cards) > CARD_CACHE:
            self._cards.popitem(last=False)
        return card

    def _make_card(self, patch_id: int) -> PatchCard:
        return self._card_from(self.library.get(patch_id))

    def prefetch(self, ids: Iterable[int]) -> None:
        """Cards of these patches in one query (the rows about to be painted)."""
        missing = [int(i) for i in ids if int(i) not in self._cards]
        if not missing or not self.has("get_many"):
            return
        for p in self._call(lambda: self.library.get_many(missing)):
            self._cards[p.id] = self._card_from(p)
        while len(self._cards) > CARD_CACHE:
            self._cards.popitem(last=False)

    def _card_from(self, p: Patch) -> PatchCard:
        dataset = str(getattr(p, "dataset", "") or "")
        n_readers = int(getattr(p, "readers", 0) or 0)
        if not dataset or not n_readers:  # an older core: read the provenance rows
            prov = self.library.provenance(p.id)
            readers = {r for pr in prov for r in (pr.reader.split("+") if pr.reader else [""])}
            n_readers = max(1, len(readers))
            dataset = ", ".join(sorted({pr.dataset for pr in prov}))
        size, text = card_size(p)
        return PatchCard(
            id=p.id,
            label=p.label,
            state=p.state,
            file=p.file,
            size_text=text,
            size=size,
            dataset=dataset,
            readers=n_readers,
            box=p.box,
            crop_size=(p.width, p.height),
            rating=getattr(p, "rating", None),
            notes=str(getattr(p, "notes", "") or ""),
            tags=tuple(getattr(p, "tags", ()) or ()),
            edited=bool(getattr(p, "edited", False)),
            **_efficacy_fields(self.efficacy().get(p.id)),
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Label -> state -> count, over the whole library (the long tail at a glance)."""
        return dict(self._call(self.library.state_counts))

    def datasets(self) -> list[str]:
        """Data set names present in the library."""
        if self.has("datasets"):
            return sorted(str(k) for k in self._call(self.library.datasets))
        names: set[str] = set()
        for pid in self._call(lambda: self.query_ids(GalleryFilter())):
            names.add(self.card(pid).dataset)
            if len(names) > 32:
                break
        return sorted(n for n in names if n)

    def provenance(self, patch_id: int) -> list[Provenance]:
        return list(self._call(lambda: self.library.provenance(patch_id)))

    def source(self, patch_id: int) -> SourceRef:
        """The patch's source image and every box on it that the library knows."""
        prov = self.provenance(patch_id)
        if not prov:
            raise EditorError(f"Patch {patch_id} has no recorded source image.")
        first = prov[0]
        if self.has("source_boxes"):
            rows = self._call(lambda: self.library.source_boxes(first.dataset, first.image_id))
            boxes = tuple(
                SourceBox(
                    int(r.patch_id),
                    tuple(map(float, r.box)),  # type: ignore[arg-type]
                    str(r.label),
                    str(r.reader),
                    str(r.dataset),
                    getattr(r, "provenance_id", None),
                    editable=str(getattr(r, "kind", "patch")) == "patch",
                    source_label=str(getattr(r, "source_label", "") or ""),
                )
                for r in rows
            )
            boxes = _with_source_labels(boxes)
        else:
            label = self.patch(patch_id).label
            boxes = tuple(
                SourceBox(patch_id, tuple(map(float, p.box)), label, p.reader, p.dataset)  # type: ignore[arg-type]
                for p in prov
                if p.image_id == first.image_id
            )
        return SourceRef(patch_id, first.image_path, first.image_id, first.dataset, boxes)

    # -- curation ------------------------------------------------------------------------------
    def set_state(self, ids: Sequence[int], state: str) -> int:
        """Set the curation state of patches in one transaction; returns how many."""
        if state not in STATES:
            raise EditorError(f"Unknown curation state {state!r}.")
        ids = [int(i) for i in ids]
        if not ids:
            return 0
        if not self.has("undo"):
            before = [(i, self.card(i).state) for i in ids]
        n = _count(self._call(lambda: self.library.set_state(ids, state)))
        if not self.has("undo"):
            self._undo.append(before)
            self._redo.clear()
        self._changed(ids)
        return n

    def _require(self, name: str) -> None:
        if not self.has(name):
            raise EditorError(
                f"This version of the patch library cannot {name.replace('_', ' ')}; "
                "update fpsm_core."
            )

    def set_rating(self, ids: Sequence[int], rating: int | None) -> None:
        self._require("set_rating")
        self._call(lambda: self.library.set_rating(list(ids), rating))
        self._changed(ids)

    def set_notes(self, patch_id: int, notes: str) -> None:
        self._require("set_notes")
        self._call(lambda: self.library.set_notes([patch_id], notes))
        self._changed([patch_id])

    def add_tags(self, ids: Sequence[int], tags: Sequence[str]) -> None:
        self._require("add_tags")
        self._call(lambda: self.library.add_tags(list(ids), list(tags)))
        self._changed(ids)

    def remove_tags(self, ids: Sequence[int], tags: Sequence[str]) -> None:
        self._require("remove_tags")
        self._call(lambda: self.library.remove_tags(list(ids), list(tags)))
        self._changed(ids)

    def undo(self) -> bool:
        """Undo the last edit; False when there is nothing to undo."""
        if self.has("undo"):
            done = self._call(self.library.undo) is not None
            self._changed()
            return done
        if not self._undo:
            return False
        step = self._undo.pop()
        self._redo.append([(i, self.card(i).state) for i, _ in step])
        self._apply_states(step)
        return True

    def redo(self) -> bool:
        """Redo the last undone edit; False when there is nothing to redo."""
        if self.has("redo"):
            done = self._call(self.library.redo) is not None
            self._changed()
            return done
        if not self._redo:
            return False
        step = self._redo.pop()
        self._undo.append([(i, self.card(i).state) for i, _ in step])
        self._apply_states(step)
        return True

    def _apply_states(self, step: list[tuple[int, str]]) -> None:
        lib = self.library

        def run() -> None:
            with lib.transaction():
                for state in STATES:
                    ids = [i for i, s in step if s == state]
                    if ids:
                        lib.set_state(ids, state)

        self._call(run)
        self._changed(i for i, _ in step)

    # -- duplicates ------------------------------------------------------------------------------
    def duplicate_groups(self) -> list[list[int]]:
        """Groups of patch ids the core considers duplicates (same source box, near-same crop)."""
        self._require("duplicate_groups")
        return [list(map(int, g)) for g in self._call(self.library.duplicate_groups)]

    def merge(self, ids: Sequence[int]) -> int:
        """Merge a duplicate group into one patch; returns the id kept."""
        self._require("merge")
        done = self._call(lambda: self.library.merge(list(ids)))
        kept = int(getattr(done, "kept", None) or min(ids))
        self._changed()
        return kept

    def reject_all_but(self, keep: int, ids: Sequence[int]) -> int:
        """Reject every patch of a group except ``keep``, in one transaction."""
        return self.set_state([i for i in ids if i != keep], "rejected")

    # -- boxes ------------------------------------------------------------------------------------
    def update_box(
        self, patch_id: int, box: Sequence[float], label: str | None = None, image: Any = None
    ) -> int:
        """Move, resize or relabel a patch's box: the core re-cuts the patch; returns its id.

        ``image`` is the displayed source image (an ``XRayImage``): the patch is re-cut from what
        the user sees, and no file is read on the GUI thread. Without it the core reads the file.
        """
        self._require("update_box")
        check_label(label)
        bx = tuple(float(v) for v in box)
        done = self._call(lambda: self.library.update_box(patch_id, bx, label, image=image))
        self._changed()
        ids = getattr(done, "patch_ids", ())
        return int(ids[0]) if ids else int(patch_id)

    def add_box(
        self,
        source: SourceRef,
        box: Sequence[float],
        label: str,
        image: Any = None,
        image_path: str | Path | None = None,
    ) -> int:
        """Draw a new box on a source image: the core cuts a patch; returns its id.

        ``image`` is the displayed image (cut from it, as shown); ``image_path`` where it was
        actually found (an ``--images`` folder when the recorded path has moved).
        """
        self._require("add_box")
        check_label(label)
        bx = tuple(float(v) for v in box)
        path = source.image_path if image_path is None else str(image_path)
        done = self._call(
            lambda: self.library.add_box(
                path, source.dataset, bx, label, image=image, image_id=source.image_id
            )
        )
        self._changed()
        return int(done.patch_ids[0])

    def delete_box(self, patch_id: int) -> None:
        """Delete a box drawn on the source: its patch is rejected (never erased)."""
        if self.has("delete_patch"):
            self._call(lambda: self.library.delete_patch([patch_id]))
            self._changed()
        else:
            self.set_state([patch_id], "rejected")


def _with_source_labels(boxes: tuple[SourceBox, ...]) -> tuple[SourceBox, ...]:
    """Give each patch's own box the class its readers' boxes had in the source data set.

    A VinDr "Nodule/Mass" lesion is split by size at import; the patch box then says which
    source class it came from, so the source view can offer to split it the other way.
    """
    from dataclasses import replace

    spelt: dict[int, str] = {}
    for b in boxes:
        if not b.editable and b.source_label:
            spelt.setdefault(b.patch_id, b.source_label)
    return tuple(
        replace(b, source_label=spelt.get(b.patch_id, ""))
        if b.editable and not b.source_label
        else b
        for b in boxes
    )


def _count(result: Any) -> int:
    """How many patches a core call changed (a ChangeSet, or a count from older cores)."""
    ids = getattr(result, "patch_ids", None)
    return len(ids) if ids is not None else int(result)


def check_label(label: str | None) -> None:
    """Refuse a class that is not one of the 26 CXR-LT labels (one sentence)."""
    if label is not None and label not in LABELS:
        raise EditorError(f"'{label}' is not one of the 26 CXR-LT classes.")
