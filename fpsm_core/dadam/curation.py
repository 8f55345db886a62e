"""Curation of a patch library: changes recorded field by field, undo/redo, and gallery queries.

Every curation call is one change set: one ``BEGIN IMMEDIATE`` transaction that reads each field it
changes under the write lock, computes the new value from the old (so adding a tag in one process
while another rates the same patch loses neither), writes it, and records a ``history`` row per
(patch, field) with the OS user, the time and the old and new values as JSON, all under one
``batches`` row. Undo applies the old values of a batch, redo the new ones, each again as a recorded
batch; a field somebody else has changed since is left alone and reported as a conflict, so an
undo never overwrites another person's later work.

The fields a change can touch: ``state``, ``rating``, ``notes``, ``tags``, ``label``, ``deleted``,
``geometry`` (the crop: file, boxes, sizes, source box, dHash, the ``edited`` flag; written by box
editing) and ``provenance`` (which provenance rows a patch owns; written by merge).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fpsm_core.dadam.errors import DadamError

if TYPE_CHECKING:
    from fpsm_core.dadam.library import PatchLibrary

SORT_KEYS = ("id", "size", "label", "date", "source", "rating", "updated", "readers")
_SORT_SQL = {
    "id": "id",
    "size": "size_px",
    "size_mm": "size_mm",
    "label": "label",
    "date": "created",
    "updated": "updated",
    "source": "dataset, image_id",
    "rating": "rating",
    "readers": "n_readers",
}

GEOMETRY_COLUMNS = (
    "sha256", "file", "width", "height", "box_x0", "box_y0", "box_x1", "box_y1", "width_mm",
    "height_mm", "spacing_row", "spacing_col", "image_width", "image_height", "rel_cx", "rel_cy",
    "src_x0", "src_y0", "src_x1", "src_y1", "size_px", "size_mm", "dhash", "edited",
)  # fmt: skip
_SCALAR_FIELDS = {"state", "rating", "notes", "label", "deleted"}


@dataclass(frozen=True)
class ChangeSet:
    """What one curation call (or an undo / redo) changed.

    Attributes:
        batch: The recorded batch id (None when nothing changed and nothing was recorded).
        action: What was done ("set_state", "add_tags", "update_box", "undo", ...).
        patch_ids: Patches with at least one changed field, in request order.
        changes: Number of (patch, field) values changed.
        missing: Requested ids that are not in the library.
        conflicts: For undo / redo: one sentence per field left alone because it was changed
            again since (by this or another process).
        kept: For merge: the patch kept.
    """

    batch: int | None
    action: str
    patch_ids: tuple[int, ...] = ()
    changes: int = 0
    missing: tuple[int, ...] = ()
    conflicts: tuple[str, ...] = ()
    kept: int | None = None

    @property
    def changed(self) -> int:
        """Number of patches changed."""
        return len(self.patch_ids)


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded change of one field of one patch."""

    id: int
    batch: int
    patch_id: int
    user: str
    time: float
    action: str
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PatchQuery:
    """A gallery filter and order; every filter is optional.

    Attributes:
        labels: Only these CXR-LT classes.
        states: Only these curation states.
        datasets: Only patches from these source data sets.
        min_size: Least lesion size (the larger side), in ``size_unit``.
        max_size: Largest lesion size (the larger side), in ``size_unit``.
        size_unit: "px" or "mm" (patches without a known spacing fail a mm bound).
        min_readers: Least number of distinct readers behind the patch (reader agreement).
        max_readers: Largest number of distinct readers.
        text: Case-insensitive substring of the notes or of a tag.
        tags: Only patches carrying all these tags.
        min_rating: Least rating (unrated patches fail it).
        edited: Only edited (True) or unedited (False) patches.
        image_id: Only patches from this source image.
        include_deleted: Include soft-deleted patches.
        sort: One of ``SORT_KEYS`` (ties broken by id).
        descending: Reverse the order.
        limit: At most this many.
        offset: Skip this many first.
    """

    labels: Sequence[str] | None = None
    states: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    min_size: float | None = None
    max_size: float | None = None
    size_unit: str = "px"
    min_readers: int | None = None
    max_readers: int | None = None
    text: str | None = None
    tags: Sequence[str] | None = None
    min_rating: int | None = None
    edited: bool | None = None
    image_id: str | None = None
    include_deleted: bool = False
    sort: str = "id"
    descending: bool = False
    limit: int | None = None
    offset: int = 0

    def where(self) -> tuple[str, list[Any]]:
        """The SQL WHERE clause and its parameters."""
        where: list[str] = []
        params: list[Any] = []

        def among(column: str, values: Sequence[Any] | None) -> None:
            if values is not None:
                vals = [values] if isinstance(values, str) else list(values)
                where.append(f"{column} IN ({','.join('?' * len(vals))})" if vals else "0")
                params.extend(vals)

        if not self.include_deleted:
            where.append("deleted=0")
        among("label", self.labels)
        among("state", self.states)
        among("dataset", self.datasets)
        if self.size_unit not in ("px", "mm"):
            raise ValueError(f"size_unit must be 'px' or 'mm', got {self.size_unit!r}.")
        size_col = "size_px" if self.size_unit == "px" else "size_mm"
        if self.min_size is not None:
            where.append(f"{size_col} >= ?")
            params.append(float(self.min_size))
        if self.max_size is not None:
            where.append(f"{size_col} <= ?")
            params.append(float(self.max_size))
        if self.min_readers is not None:
            where.append("n_readers >= ?")
            params.append(int(self.min_readers))
        if self.max_readers is not None:
            where.append("n_readers <= ?")
            params.append(int(self.max_readers))
        if self.min_rating is not None:
            where.append("rating >= ?")
            params.append(int(self.min_rating))
        if self.edited is not None:
            where.append("edited=?")
            params.append(int(self.edited))
        if self.image_id is not None:
            where.append("image_id=?")
            params.append(self.image_id)
        if self.text:
            pattern = (
                "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            where.append(
                "(notes LIKE ? ESCAPE '\\' OR id IN "
                "(SELECT patch_id FROM patch_tags WHERE tag LIKE ? ESCAPE '\\'))"
            )
            params.extend([pattern, pattern])
        for tag in self.tags or ():
            where.append("id IN (SELECT patch_id FROM patch_tags WHERE tag=?)")
            params.append(tag)
        return (" AND ".join(where) or "1"), params

    def order(self) -> str:
        """The SQL ORDER BY clause."""
        if self.sort not in _SORT_SQL:
            raise ValueError(f"Unknown sort key {self.sort!r}; expected one of {SORT_KEYS}.")
        direction = " DESC" if self.descending else ""
        cols = [f"{c}{direction}" for c in _SORT_SQL[self.sort].split(", ")]
        if self.sort != "id":
            cols.append(f"id{direction}")
        return ", ".join(cols)


def query_ids(lib: PatchLibrary, q: PatchQuery) -> list[int]:
    """Ids matching ``q`` in its order (see :meth:`PatchLibrary.query_ids`)."""
    where, params = q.where()
    sql = f"SELECT id FROM patches WHERE {where} ORDER BY {q.order()}"
    if q.limit is not None or q.offset:
        sql += " LIMIT ? OFFSET ?"
        params += [-1 if q.limit is None else int(q.limit), int(q.offset)]
    return [int(r[0]) for r in lib.connection.execute(sql, params)]


def query_count(lib: PatchLibrary, q: PatchQuery) -> int:
    """Number of patches matching ``q`` (limit and offset ignored)."""
    where, params = q.where()
    return int(
        lib.connection.execute(f"SELECT count(*) FROM patches WHERE {where}", params).fetchone()[0]
    )


def clean_tags(tags: Iterable[str]) -> set[str]:
    """Tags stripped of surrounding space, empty ones dropped (a lone string is one tag)."""
    items = [tags] if isinstance(tags, str) else list(tags)
    return {t.strip() for t in items if t and t.strip()}


# -- field access -----------------------------------------------------------------------------
def read_field(db: sqlite3.Connection, patch_id: int, field: str) -> Any:
    """The current value of a field, as JSON-able data."""
    if field in _SCALAR_FIELDS:
        row = db.execute(f"SELECT {field} FROM patches WHERE id=?", (patch_id,)).fetchone()
        value = row[0]
        return bool(value) if field == "deleted" else value
    if field == "tags":
        return [
            str(r[0])
            for r in db.execute(
                "SELECT tag FROM patch_tags WHERE patch_id=? ORDER BY tag", (patch_id,)
            )
        ]
    if field == "geometry":
        row = db.execute(
            f"SELECT {', '.join(GEOMETRY_COLUMNS)} FROM patches WHERE id=?", (patch_id,)
        ).fetchone()
        return dict(zip(GEOMETRY_COLUMNS, row, strict=True))
    if field == "provenance":
        return [
            int(r[0])
            for r in db.execute(
                "SELECT id FROM provenance WHERE patch_id=? ORDER BY id", (patch_id,)
            )
        ]
    raise ValueError(f"unknown patch field {field!r}")


def write_field(db: sqlite3.Connection, patch_id: int, field: str, value: Any) -> None:
    """Set a field (inside the caller's transaction)."""
    if field in _SCALAR_FIELDS:
        db.execute(
            f"UPDATE patches SET {field}=? WHERE id=?",
            (int(value) if field == "deleted" else value, patch_id),
        )
    elif field == "tags":
        db.execute("DELETE FROM patch_tags WHERE patch_id=?", (patch_id,))
        db.executemany(
            "INSERT INTO patch_tags(patch_id, tag) VALUES (?, ?)", [(patch_id, t) for t in value]
        )
    elif field == "geometry":
        cols = [c for c in GEOMETRY_COLUMNS if c in value]
        db.execute(
            f"UPDATE patches SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?",
            [value[c] for c in cols] + [patch_id],
        )
    elif field == "provenance":
        # Taking rows back is enough: the patch that lost them records its own list too.
        db.executemany(
            "UPDATE provenance SET patch_id=? WHERE id=?", [(patch_id, int(i)) for i in value]
        )
    else:
        raise ValueError(f"unknown patch field {field!r}")


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- change sets ------------------------------------------------------------------------------
Update = tuple[int, str, Callable[[Any], Any]]


def change(
    lib: PatchLibrary,
    action: str,
    ids: Iterable[int],
    field: str,
    new_value: Callable[[Any], Any],
) -> ChangeSet:
    """Set one field of many patches, the new value computed from the old under the lock."""
    return apply_updates(lib, action, [(int(i), field, new_value) for i in _unique(ids)])


def apply_updates(
    lib: PatchLibrary,
    action: str,
    updates: Sequence[Update],
    *,
    inverse_of: int | None = None,
    extra: Callable[[sqlite3.Connection, int], None] | None = None,
    record_session: bool = True,
) -> ChangeSet:
    """Apply (patch, field, old -> new) updates as one recorded batch; the engine of every edit.

    Args:
        lib: The library.
        action: Name recorded for the batch.
        updates: (patch id, field, function of the old value giving the new one).
        inverse_of: The batch an undo / redo replays.
        extra: Called inside the transaction with (connection, batch id) for writes that are
            not fields (the ``edits`` record of a box edit).
        record_session: Push the batch on this session's undo stack.

    Returns:
        The change set (no batch is kept when nothing changed).
    """
    db = lib.connection
    now = time.time()
    with lib.transaction():
        cur = db.execute(
            "INSERT INTO batches(user, ts, action, inverse_of) VALUES (?, ?, ?, ?)",
            (lib.user, now, action, inverse_of),
        )
        batch = int(cur.lastrowid or 0)
        existing = _existing(db, {pid for pid, _, _ in updates})
        cache = _prefetch(db, updates)
        changed: list[int] = []
        n = 0
        rows = []
        for pid, field, fn in updates:
            if pid not in existing:
                continue
            key = (pid, field)
            old = cache[key] if key in cache else read_field(db, pid, field)
            new = fn(old)
            if _same(old, new):
                continue
            try:
                write_field(db, pid, field, new)
            except sqlite3.IntegrityError as exc:  # e.g. a re-cut equal to a crop stored since
                raise DadamError(
                    lib.db_path,
                    f"{action} of patch {pid} conflicts with another patch ({exc}); "
                    "nothing was changed",
                ) from None
            if key in cache:
                cache[key] = new
            rows.append((batch, pid, lib.user, now, field, json.dumps(old), json.dumps(new)))
            n += 1
            if pid not in changed:
                changed.append(pid)
        if extra is not None and n:
            extra(db, batch)
        if n:
            db.executemany(
                "INSERT INTO history(batch, patch_id, user, ts, field, old, new) "
                "VALUES (?,?,?,?,?,?,?)",
                rows,
            )
            db.executemany("UPDATE patches SET updated=? WHERE id=?", [(now, p) for p in changed])
            if any(r[4] == "provenance" for r in rows):
                lib.refresh_readers(changed)
        else:
            db.execute("DELETE FROM batches WHERE id=?", (batch,))
    missing = tuple(sorted({pid for pid, _, _ in updates} - existing))
    if not n:
        return ChangeSet(None, action, missing=missing)
    if record_session:
        lib._undo.append(batch)
        lib._redo.clear()
    return ChangeSet(batch, action, tuple(changed), n, missing)


def _prefetch(db: sqlite3.Connection, updates: Sequence[Update]) -> dict[tuple[int, str], Any]:
    """Current values of the scalar fields in ``updates``, one query per field and 900 ids
    (a batch accept of 1,000 patches would otherwise read them one by one)."""
    by_field: dict[str, set[int]] = {}
    for pid, field, _ in updates:
        if field in _SCALAR_FIELDS:
            by_field.setdefault(field, set()).add(pid)
    out: dict[tuple[int, str], Any] = {}
    for field, id_set in by_field.items():
        id_list = sorted(id_set)
        for start in range(0, len(id_list), 900):
            chunk = id_list[start : start + 900]
            for pid, value in db.execute(
                f"SELECT id, {field} FROM patches WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                out[(int(pid), field)] = bool(value) if field == "deleted" else value
    return out


def _unique(ids: Iterable[int]) -> list[int]:
    seen: dict[int, None] = {}
    for i in ids:
        seen.setdefault(int(i), None)
    return list(seen)


def _existing(db: sqlite3.Connection, ids: set[int]) -> set[int]:
    found: set[int] = set()
    id_list = sorted(ids)
    for start in range(0, len(id_list), 900):
        chunk = id_list[start : start + 900]
        found.update(
            int(r[0])
            for r in db.execute(
                f"SELECT id FROM patches WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        )
    return found


def merge(lib: PatchLibrary, ids: Iterable[int], keep: int | None) -> ChangeSet:
    """Keep one patch of a duplicate group, give it the others' provenance, reject the others."""
    id_list = _unique(ids)
    patches = {p.id: p for p in lib.get_many(id_list)}
    if not patches:
        return ChangeSet(None, "merge", missing=tuple(id_list))
    if keep is None:
        keep = min(
            patches.values(), key=lambda p: (-(p.rating or 0), p.state != "accepted", p.id)
        ).id
    if keep not in patches:
        raise ValueError(f"patch {keep} to keep is not among the merged patches {id_list}")
    others = [i for i in id_list if i != keep and i in patches]
    moved: dict[int, list[int]] = {}

    def take(old: Any) -> Any:
        return sorted(set(old) | {i for ids_ in moved.values() for i in ids_})

    updates: list[Update] = []
    for other in others:
        # Read under the lock (inside apply_updates) and remembered for the keeper's new list.
        def give(old: Any, other: int = other) -> Any:
            moved[other] = list(old)
            return []

        updates.append((other, "provenance", give))
        updates.append((other, "state", lambda _old: "rejected"))
    updates.append((keep, "provenance", take))
    if patches[keep].state == "rejected":
        updates.append((keep, "state", lambda _old: "unreviewed"))
    cs = apply_updates(lib, "merge", updates)
    missing = tuple(sorted(set(id_list) - set(patches)))
    return ChangeSet(cs.batch, cs.action, cs.patch_ids, cs.changes, missing, kept=keep)


def _batch_rows(lib: PatchLibrary, batch: int) -> list[tuple[int, str, Any, Any]]:
    rows = lib.connection.execute(
        "SELECT patch_id, field, old, new FROM history WHERE batch=? ORDER BY id", (batch,)
    ).fetchall()
    return [(int(p), str(f), json.loads(o), json.loads(n)) for p, f, o, n in rows]


def apply_batch(
    lib: PatchLibrary, batch: int, *, inverse: bool, record_session: bool = True
) -> ChangeSet:
    """Re-apply a recorded batch's old values (``inverse``) or new values, as a new batch.

    A field whose current value is no longer the one the batch left (or found) is not touched
    and is named in ``conflicts``.
    """
    rows = _batch_rows(lib, int(batch))
    if not rows:
        raise ValueError(f"no recorded change with batch id {batch}")
    if inverse:
        rows = rows[::-1]
    conflicts: list[str] = []
    updates: list[Update] = []
    for pid, field, old, new in rows:
        expect, target = (new, old) if inverse else (old, new)

        def fn(current: Any, expect: Any = expect, target: Any = target, pid: int = pid,
               field: str = field) -> Any:  # fmt: skip
            if not _same(current, expect):
                conflicts.append(f"patch {pid} {field} was changed since; left as it is")
                return current
            holder = _crop_holder(lib, field, target, pid)
            if holder is not None:
                conflicts.append(
                    f"patch {pid} {field}: its crop is now patch {holder}; left as it is"
                )
                return current
            return target

        updates.append((pid, field, fn))
    action = "undo" if inverse else "redo"
    cs = apply_updates(lib, action, updates, inverse_of=int(batch), record_session=False)
    return ChangeSet(cs.batch, action, cs.patch_ids, cs.changes, cs.missing, tuple(conflicts))


def _crop_holder(lib: PatchLibrary, field: str, target: Any, pid: int) -> int | None:
    """The other patch that now holds the crop a geometry restore would bring back, if any."""
    if field != "geometry" or not isinstance(target, dict):
        return None
    row = lib.connection.execute(
        "SELECT id FROM patches WHERE sha256=? AND id<>?", (target.get("sha256"), pid)
    ).fetchone()
    return None if row is None else int(row[0])


def undo(lib: PatchLibrary) -> ChangeSet | None:
    """Undo the session's last batch; it moves to the redo stack."""
    if not lib._undo:
        return None
    batch = lib._undo.pop()
    cs = apply_batch(lib, batch, inverse=True)
    lib._redo.append(batch)
    return cs


def redo(lib: PatchLibrary) -> ChangeSet | None:
    """Redo the last undone batch; it moves back to the undo stack."""
    if not lib._redo:
        return None
    batch = lib._redo.pop()
    cs = apply_batch(lib, batch, inverse=False)
    lib._undo.append(batch)
    return cs


def history(lib: PatchLibrary, patch_id: int | None, limit: int) -> list[HistoryEntry]:
    """Recorded changes, newest first."""
    sql = (
        "SELECT h.id, h.batch, h.patch_id, h.user, h.ts, b.action, h.field, h.old, h.new "
        "FROM history h JOIN batches b ON b.id=h.batch"
    )
    params: list[Any] = []
    if patch_id is not None:
        sql += " WHERE h.patch_id=?"
        params.append(int(patch_id))
    sql += " ORDER BY h.id DESC LIMIT ?"
    params.append(int(limit))
    return [
        HistoryEntry(
            int(r[0]),
            int(r[1]),
            int(r[2]),
            str(r[3]),
            float(r[4]),
            str(r[5]),
            str(r[6]),
            json.loads(r[7]),
            json.loads(r[8]),
        )  # fmt: skip
        for r in lib.connection.execute(sql, params)
    ]
