"""The disease-patch library: lesion crops with their provenance and curation, in SQLite plus PNGs.

A library is a folder holding ``library.sqlite`` and ``patches/<ab>/<sha256>.png``. Each patch is
the lesion box with a margin of context, cut from the *displayed* image (modality LUT, VOI and
MONOCHROME1 inversion applied by ``fpsm_core.io``), stored as 8-bit grey. A patch row records the
lesion box inside the crop, its CXR-LT label, its size in pixels and (when the spacing is known) in
mm, its box in the source image, and its curation: state (unreviewed / accepted / rejected), a 1-5
rating, notes, tags. Each source box is a provenance row (data set, image, reader, box); identical
crops (same pixels, box and label) are stored once and gain provenance rows.

Every write is one ``BEGIN IMMEDIATE`` transaction that reads what it changes under the write
lock, so two processes curating one library (WAL, busy timeout) never lose each other's update, and
a kill -9 leaves each change wholly there or wholly absent. A patch file is written (temporary
name, then rename) before the row naming it is committed. Curation calls return a
:class:`~fpsm_core.dadam.curation.ChangeSet`; every change is kept in the ``history`` table (OS
user, time, field, old -> new) and can be undone and redone (``undo``, ``redo``,
``apply_inverse``). The schema, its upgrade from schema 1 and the checks on opening live in
``fpsm_core.dadam.schema``; the change engine in ``curation``; box editing in ``editing``;
duplicates in ``duplicates``.
"""

from __future__ import annotations

import contextlib
import getpass
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fpsm_core.dadam import curation, duplicates, editing
from fpsm_core.dadam.curation import ChangeSet, HistoryEntry, PatchQuery
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.patch_files import (
    content_hash,
    patch_geometry,
    read_patch_png,
    write_png_atomic,
)
from fpsm_core.dadam.schema import (
    DB_NAME,
    DEFAULT_BUSY_TIMEOUT_S,
    open_database,
    reader_count,
)

if TYPE_CHECKING:
    from fpsm_core.dadam.duplicates import DuplicateGroup
    from fpsm_core.dadam.editing import Edit, SourceBox
    from fpsm_core.io import XRayImage

STATES = ("unreviewed", "accepted", "rejected")
USABLE_STATES = ("unreviewed", "accepted")


def current_user() -> str:
    """The OS user name recorded in the history ("unknown" where the OS gives none)."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):  # no login name (containers, services)
        return "unknown"


@dataclass(frozen=True)
class Patch:
    """One library patch.

    Attributes:
        id: Row id.
        sha256: Content hash at cutting time (pixels, lesion box and label); also the file name.
        label: CXR-LT class.
        state: "unreviewed", "accepted" or "rejected".
        file: Absolute path of the PNG.
        width: Crop width in pixels (lesion box plus margin).
        height: Crop height in pixels.
        box: Lesion box inside the crop, (x0, y0, x1, y1) in crop pixels (x1, y1 exclusive).
        size_mm: Lesion box (width, height) in mm, None when the source spacing is unknown.
        spacing_mm: Source (row, column) spacing, None when unknown.
        image_size: Source image (width, height) in pixels.
        rel_center: Lesion centre as fractions of the source image (x, y).
        rating: Quality rating 1-5, None when not rated.
        notes: Free-text notes.
        tags: Tags, sorted.
        edited: Whether the box or class was edited by hand (see ``PatchLibrary.edits``).
        deleted: Soft-deleted (hidden from queries and plans; undo brings it back).
        created: Creation time (Unix seconds).
        updated: Time of the last change (Unix seconds).
        dataset: Source data set of the patch's box.
        image_id: Source image id.
        image_path: Source image file as recorded at import ('' when unknown).
        source_box: The lesion box in source image pixels (x0, y0, x1, y1).
        readers: Distinct readers whose boxes produced this patch.
    """

    id: int
    sha256: str
    label: str
    state: str
    file: Path
    width: int
    height: int
    box: tuple[int, int, int, int]
    size_mm: tuple[float, float] | None
    spacing_mm: tuple[float, float] | None
    image_size: tuple[int, int]
    rel_center: tuple[float, float]
    rating: int | None = None
    notes: str = ""
    tags: tuple[str, ...] = ()
    edited: bool = False
    deleted: bool = False
    created: float = 0.0
    updated: float = 0.0
    dataset: str = ""
    image_id: str = ""
    image_path: str = ""
    source_box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    readers: int = 1

    @property
    def size_px(self) -> tuple[int, int]:
        """Lesion box (width, height) in pixels."""
        return (self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Provenance:
    """Where a patch came from: one source box (``id`` is the provenance row's id)."""

    patch_id: int
    dataset: str
    image_id: str
    image_path: str
    reader: str
    source_label: str
    box: tuple[float, float, float, float]
    id: int = 0


PATCH_COLUMNS = (
    "id, sha256, label, state, file, width, height, box_x0, box_y0, box_x1, box_y1, "
    "width_mm, height_mm, spacing_row, spacing_col, image_width, image_height, rel_cx, rel_cy, "
    "rating, notes, edited, deleted, created, updated, dataset, image_id, image_path, "
    "src_x0, src_y0, src_x1, src_y1, n_readers"
)


class PatchLibrary:
    """A patch library folder; open with ``PatchLibrary(folder)`` (created when absent).

    Use as a context manager or call :meth:`close`. Several processes may read and write one
    library at the same time (WAL; a writer waits up to ``timeout`` seconds for another's lock).
    One instance is one curation session: :meth:`undo` and :meth:`redo` walk its own changes.
    A connection belongs to the thread that opened it: a worker thread opens its own instance.

    Raises:
        DadamError: the folder holds no library (``create=False``), or its ``library.sqlite`` is
            empty, corrupt, locked, or from a newer schema (see ``fpsm_core.dadam.schema``).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        create: bool = True,
        readonly: bool = False,
        timeout: float = DEFAULT_BUSY_TIMEOUT_S,
        user: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        if not readonly and create and not self.db_path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
        self._db = open_database(self.db_path, create=create, readonly=readonly, timeout=timeout)
        self.readonly = readonly
        self.user = user or current_user()
        self._in_tx = False
        self._undo: list[int] = []
        self._redo: list[int] = []

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PatchLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (for the library's own modules and benchmarks)."""
        return self._db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group writes: all committed at the end, or none if an exception escapes.

        ``BEGIN IMMEDIATE`` takes the write lock first, so what is read inside is what is
        changed (no lost update between processes). Nested use joins the outer transaction.

        Raises:
            DadamError: another process held the lock longer than the busy timeout.
        """
        if self._in_tx:
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise DadamError(
                self.db_path, f"is locked by another process; nothing was changed ({exc})"
            ) from None
        self._in_tx = True
        try:
            yield self._db
        except BaseException:
            self._db.rollback()
            raise
        else:
            self._db.commit()
        finally:
            self._in_tx = False

    # -- writing ---------------------------------------------------------------------------
    def has_provenance(
        self,
        dataset: str,
        image_id: str,
        reader: str | None,
        source_label: str,
        box: Sequence[float],
    ) -> bool:
        """Whether this exact source box was already imported (imports resume with it)."""
        row = self._db.execute(
            "SELECT 1 FROM provenance WHERE dataset=? AND image_id=? AND reader=? "
            "AND source_label=? AND x0=? AND y0=? AND x1=? AND y1=?",
            (dataset, image_id, reader or "", source_label, *map(float, box)),
        ).fetchone()
        return row is not None

    def add_patch(
        self,
        pixels: np.ndarray,
        box: Sequence[int],
        label: str,
        *,
        dataset: str,
        image_id: str,
        source_box: Sequence[float],
        image_size: tuple[int, int],
        rel_center: tuple[float, float],
        spacing_mm: tuple[float, float] | None = None,
        reader: str | None = None,
        source_label: str = "",
        image_path: str = "",
    ) -> tuple[int, bool]:
        """Store a crop and its provenance.

        Args:
            pixels: (h, w) uint8 crop in display sense.
            box: Lesion box inside the crop (x0, y0, x1, y1), x1/y1 exclusive.
            label: CXR-LT class.
            dataset: Source data set name.
            image_id: Source image id.
            source_box: The box in source pixels (x0, y0, x1, y1).
            image_size: Source (width, height).
            rel_center: Lesion centre as fractions of the source image.
            spacing_mm: Source (row, column) spacing, if known.
            reader: Source reader id.
            source_label: The class as the source names it.
            image_path: Source image file, for the record.

        Returns:
            (patch id, True when the crop was new; False when an identical crop existed).
        """
        pix = np.ascontiguousarray(pixels, dtype=np.uint8)
        if pix.ndim != 2 or pix.size == 0:
            raise ValueError(f"a patch must be a non-empty 2-D array, got shape {pix.shape}")
        bx = tuple(int(v) for v in box)
        sha = content_hash(pix, bx, label)
        with self.transaction() as db:
            row = db.execute("SELECT id FROM patches WHERE sha256=?", (sha,)).fetchone()
            added = row is None
            if added:
                rel = Path("patches") / sha[:2] / f"{sha}.png"
                write_png_atomic(self.root / rel, pix)
                geometry = patch_geometry(
                    pix, bx, rel.as_posix(), sha, spacing_mm, source_box, image_size, rel_center
                )
                now = time.time()
                cols = {
                    **geometry,
                    "label": label,
                    "created": now,
                    "updated": now,
                    "dataset": dataset,
                    "image_id": image_id,
                    "image_path": image_path,
                }
                cur = db.execute(
                    f"INSERT INTO patches({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    list(cols.values()),
                )
                patch_id = int(cur.lastrowid or 0)
            else:
                patch_id = int(row[0])
            cur = db.execute(
                "INSERT OR IGNORE INTO provenance(patch_id, dataset, image_id, image_path, reader, "
                "source_label, x0, y0, x1, y1) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    patch_id,
                    dataset,
                    image_id,
                    image_path,
                    reader or "",
                    source_label,
                    *map(float, source_box),
                ),
            )
            if cur.rowcount:
                self.refresh_readers([patch_id])
        return patch_id, added

    def refresh_readers(self, ids: Iterable[int]) -> None:
        """Recount the distinct readers of patches from their provenance (inside a write)."""
        for pid in ids:
            names = [
                str(r[0])
                for r in self._db.execute("SELECT reader FROM provenance WHERE patch_id=?", (pid,))
            ]
            self._db.execute(
                "UPDATE patches SET n_readers=? WHERE id=?", (reader_count(names), int(pid))
            )

    # -- curation (fpsm_core.dadam.curation) --------------------------------------------------
    def set_state(self, ids: Iterable[int], state: str) -> ChangeSet:
        """Set the curation state ("unreviewed", "accepted", "rejected") of patches.

        Returns:
            The change set (``changed`` = patches whose state changed; ``missing`` = unknown ids).

        Raises:
            ValueError: an unknown state.
        """
        if state not in STATES:
            raise ValueError(f"Unknown curation state {state!r}; expected one of {STATES}.")
        return curation.change(self, "set_state", ids, "state", lambda _old: state)

    def set_rating(self, ids: Iterable[int], rating: int | None) -> ChangeSet:
        """Rate patches 1-5 (None clears the rating).

        Raises:
            ValueError: a rating outside 1-5.
        """
        if rating is not None and (isinstance(rating, bool) or int(rating) not in range(1, 6)):
            raise ValueError(f"A rating is 1 to 5 or None, got {rating!r}.")
        value = None if rating is None else int(rating)
        return curation.change(self, "set_rating", ids, "rating", lambda _old: value)

    def set_notes(self, patch_id: int | Iterable[int], text: str) -> ChangeSet:
        """Replace the notes of a patch (or of several patches)."""
        ids = [patch_id] if isinstance(patch_id, int) else patch_id
        return curation.change(self, "set_notes", ids, "notes", lambda _old: str(text))

    def add_tags(self, ids: Iterable[int], tags: Iterable[str]) -> ChangeSet:
        """Add tags (stripped, empty ones ignored) to patches."""
        new = curation.clean_tags(tags)
        return curation.change(
            self, "add_tags", ids, "tags", lambda old: sorted(set(old or []) | new)
        )

    def remove_tags(self, ids: Iterable[int], tags: Iterable[str]) -> ChangeSet:
        """Remove tags from patches."""
        gone = curation.clean_tags(tags)
        return curation.change(
            self, "remove_tags", ids, "tags", lambda old: sorted(set(old or []) - gone)
        )

    def set_label(self, ids: Iterable[int], label: str) -> ChangeSet:
        """Change the class of patches to one of the 26 CXR-LT labels (e.g. split "Nodule/Mass").

        Raises:
            DadamError: not a CXR-LT label.
        """
        name = editing.check_label(label)
        return curation.change(self, "set_label", ids, "label", lambda _old: name)

    def delete_patch(self, ids: int | Iterable[int]) -> ChangeSet:
        """Soft-delete patches: hidden from queries, counts and plans; undo brings them back.

        Soft, because provenance and history name the row: a re-import still skips the deleted
        box (a real delete would bring it back), and undo needs nothing but a flag.
        """
        id_list = [ids] if isinstance(ids, int) else ids
        return curation.change(self, "delete", id_list, "deleted", lambda _old: True)

    def merge(self, ids: Iterable[int], keep: int | None = None) -> ChangeSet:
        """Merge duplicates: keep one patch, move the others' provenance to it, reject them.

        Args:
            ids: The duplicate patches.
            keep: The one to keep (default: the best rated, then accepted, then the lowest id).
        """
        return curation.merge(self, ids, keep)

    def undo(self) -> ChangeSet | None:
        """Undo this session's last change (None when there is nothing to undo)."""
        return curation.undo(self)

    def redo(self) -> ChangeSet | None:
        """Redo the last undone change (None when there is nothing to redo)."""
        return curation.redo(self)

    def apply_inverse(self, batch: int) -> ChangeSet:
        """Restore the values a recorded change (any session, any process) replaced.

        Fields changed since by someone else are left alone and named in ``conflicts``.
        """
        return curation.apply_batch(self, batch, inverse=True)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def history(self, patch_id: int | None = None, limit: int = 100) -> list[HistoryEntry]:
        """Recorded changes, newest first (of one patch, or of the library)."""
        return curation.history(self, patch_id, limit)

    # -- queries -------------------------------------------------------------------------------
    def query(self, query: PatchQuery | None = None, /, **filters: Any) -> list[Patch]:
        """Patches matching a :class:`PatchQuery` (or its fields as keywords), in its order."""
        return self.get_many(self.query_ids(query, **filters))

    def query_ids(self, query: PatchQuery | None = None, /, **filters: Any) -> list[int]:
        """Only the ids of :meth:`query`, in order: fast enough for a 50,000-patch gallery."""
        return curation.query_ids(self, query or PatchQuery(**filters))

    def query_count(self, query: PatchQuery | None = None, /, **filters: Any) -> int:
        """How many patches match (limit and offset ignored)."""
        return curation.query_count(self, query or PatchQuery(**filters))

    def duplicate_groups(
        self,
        *,
        iou: float = 0.5,
        max_distance: int = 4,
        states: Sequence[str] = USABLE_STATES,
    ) -> list[DuplicateGroup]:
        """Groups of duplicate patches: the same source box from several readers (boxes on one
        image and label with IoU >= ``iou``) and near-identical crops (dHash within
        ``max_distance`` bits, same label). See ``fpsm_core.dadam.duplicates``."""
        return duplicates.duplicate_groups(self, iou=iou, max_distance=max_distance, states=states)

    # -- box editing (fpsm_core.dadam.editing) ----------------------------------------------
    def update_box(
        self,
        patch_id: int,
        box: Sequence[float],
        new_label: str | None = None,
        *,
        image: XRayImage | np.ndarray | None = None,
        margin: float | None = None,
    ) -> ChangeSet:
        """Move or resize a patch's box (source pixels) and re-cut it from the displayed image.

        Args:
            patch_id: The patch.
            box: New box (x0, y0, x1, y1) in source image pixels.
            new_label: Also change the class (a CXR-LT label).
            image: The displayed image (an ``XRayImage``, or the (H, W) uint8 pixels the viewer
                shows); default: the source file recorded at import, loaded as import does.
            margin: Context margin (default: the importer's).

        Raises:
            DadamError: the image cannot be loaded, the box lies outside it, or the label is not
                a CXR-LT label.
        """
        return editing.update_box(self, patch_id, box, new_label, image=image, margin=margin)

    def add_box(
        self,
        image_path: str | Path,
        dataset: str,
        box: Sequence[float],
        label: str,
        *,
        reader: str = "editor",
        image: XRayImage | np.ndarray | None = None,
        image_id: str | None = None,
        spacing_mm: tuple[float, float] | None = None,
        margin: float | None = None,
    ) -> ChangeSet:
        """Add a new patch from a box drawn on any image (``patch_ids[0]`` is the new patch)."""
        return editing.add_box(
            self,
            image_path,
            dataset,
            box,
            label,
            reader=reader,
            image=image,
            image_id=image_id,
            spacing_mm=spacing_mm,
            margin=margin,
        )

    def source_boxes(
        self,
        dataset: str | None = None,
        image_id: str | None = None,
        *,
        image_path: str | Path | None = None,
    ) -> list[SourceBox]:
        """Every box on one source image, from every reader, for drawing."""
        return editing.source_boxes(self, dataset, image_id, image_path=image_path)

    def edits(self, patch_id: int) -> list[Edit]:
        """The hand edits of a patch's box and class (who, when, old -> new), oldest first."""
        return editing.edits(self, patch_id)

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM patches WHERE deleted=0").fetchone()[0])

    def patches(
        self,
        label: str | None = None,
        *,
        states: Sequence[str] = USABLE_STATES,
        min_mm: float | None = None,
        max_mm: float | None = None,
        limit: int | None = None,
    ) -> list[Patch]:
        """Patches, in insertion order (soft-deleted ones never).

        Args:
            label: Only this CXR-LT class.
            states: Curation states to include (default: all but rejected).
            min_mm: Only lesions whose larger side is at least this many mm (needs the spacing).
            max_mm: Only lesions whose larger side is at most this many mm (needs the spacing).
            limit: At most this many.

        Returns:
            The matching patches.
        """
        return self.query(
            labels=None if label is None else (label,),
            states=tuple(states),
            min_size=min_mm,
            max_size=max_mm,
            size_unit="mm",
            limit=limit,
        )

    def get(self, patch_id: int) -> Patch:
        """The patch with this id, soft-deleted or not (KeyError when absent)."""
        got = self.get_many([int(patch_id)])
        if not got:
            raise KeyError(patch_id)
        return got[0]

    def get_many(self, ids: Sequence[int]) -> list[Patch]:
        """Patches by id, in the order given (unknown ids left out)."""
        out: dict[int, Patch] = {}
        id_list = [int(i) for i in ids]
        for start in range(0, len(id_list), 900):  # SQLite's bound-parameter limit
            chunk = id_list[start : start + 900]
            marks = ",".join("?" * len(chunk))
            tags: dict[int, list[str]] = {}
            for pid, tag in self._db.execute(
                f"SELECT patch_id, tag FROM patch_tags WHERE patch_id IN ({marks}) ORDER BY tag",
                chunk,
            ):
                tags.setdefault(int(pid), []).append(str(tag))
            for r in self._db.execute(
                f"SELECT {PATCH_COLUMNS} FROM patches WHERE id IN ({marks})", chunk
            ):
                out[int(r[0])] = self._patch(r, tuple(tags.get(int(r[0]), ())))
        return [out[i] for i in id_list if i in out]

    def counts(self, states: Sequence[str] = USABLE_STATES) -> dict[str, int]:
        """CXR-LT label -> number of patches in the given states."""
        rows = self._db.execute(
            f"SELECT label, count(*) FROM patches WHERE deleted=0 AND "
            f"state IN ({','.join('?' * len(states))}) GROUP BY label ORDER BY label",
            list(states),
        )
        return {label: int(n) for label, n in rows}

    def state_counts(self) -> dict[str, dict[str, int]]:
        """Label -> state -> number of patches (soft-deleted ones left out)."""
        out: dict[str, dict[str, int]] = {}
        for label, state, n in self._db.execute(
            "SELECT label, state, count(*) FROM patches WHERE deleted=0 GROUP BY label, state"
        ):
            out.setdefault(label, {s: 0 for s in STATES})[state] = int(n)
        return out

    def datasets(self) -> dict[str, int]:
        """Source data set -> number of patches (for the gallery's filter)."""
        rows = self._db.execute(
            "SELECT dataset, count(*) FROM patches WHERE deleted=0 GROUP BY dataset ORDER BY 1"
        )
        return {str(d): int(n) for d, n in rows}

    def tags(self) -> dict[str, int]:
        """Tag -> number of patches carrying it."""
        rows = self._db.execute(
            "SELECT tag, count(*) FROM patch_tags t JOIN patches p ON p.id=t.patch_id "
            "WHERE p.deleted=0 GROUP BY tag ORDER BY tag"
        )
        return {str(t): int(n) for t, n in rows}

    def provenance(self, patch_id: int) -> list[Provenance]:
        """Every source box that produced this patch."""
        return [
            Provenance(
                int(r[0]), r[1], r[2], r[3], r[4], r[5], (r[6], r[7], r[8], r[9]), int(r[10])
            )
            for r in self._db.execute(
                "SELECT patch_id, dataset, image_id, image_path, reader, source_label, x0, y0, "
                "x1, y1, id FROM provenance WHERE patch_id=? ORDER BY id",
                (int(patch_id),),
            )
        ]

    def provenance_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM provenance").fetchone()[0])

    def load_pixels(self, patch: Patch) -> np.ndarray:
        """The crop as (h, w) uint8.

        Raises:
            DadamError: the patch file is missing or unreadable (one sentence naming the patch;
                the rest of the library stays usable).
        """
        try:
            return read_patch_png(patch.file)
        except DadamError as exc:
            raise DadamError(
                patch.file, f"patch {patch.id} ({patch.label}): {exc.reason}"
            ) from None

    def _patch(self, r: Sequence[Any], tags: tuple[str, ...] = ()) -> Patch:
        spacing = None if r[13] is None else (float(r[13]), float(r[14]))
        size_mm = None if r[11] is None else (float(r[11]), float(r[12]))
        src = (r[28], r[29], r[30], r[31])
        return Patch(
            id=int(r[0]),
            sha256=str(r[1]),
            label=str(r[2]),
            state=str(r[3]),
            file=self.root / str(r[4]),
            width=int(r[5]),
            height=int(r[6]),
            box=(int(r[7]), int(r[8]), int(r[9]), int(r[10])),
            size_mm=size_mm,
            spacing_mm=spacing,
            image_size=(int(r[15]), int(r[16])),
            rel_center=(float(r[17]), float(r[18])),
            rating=None if r[19] is None else int(r[19]),
            notes=str(r[20] or ""),
            tags=tags,
            edited=bool(r[21]),
            deleted=bool(r[22]),
            created=float(r[23]),
            updated=float(r[24] if r[24] is not None else r[23]),
            dataset=str(r[25]),
            image_id=str(r[26]),
            image_path=str(r[27]),
            source_box=(0.0, 0.0, 0.0, 0.0)
            if src[0] is None
            else (float(src[0]), float(src[1]), float(src[2]), float(src[3])),
            readers=int(r[32]),
        )
