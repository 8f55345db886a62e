"""The patch library's SQLite schema, how a library is opened, and how an old one is upgraded.

Schema 1 held patches and their provenance. Schema 2 adds what curation needs: per patch a 1-5
rating, notes, tags (table ``patch_tags``), a soft-delete flag, an ``edited`` flag, the time of the
last change, the patch's current box in source pixels with its source image (so a gallery filters
and sorts on indexed columns without joining provenance), the number of distinct readers and a
64-bit dHash of the crop; a ``batches`` + ``history`` pair (who, when, which field, old -> new, as
JSON) that undo and redo read; and ``edits``, the provenance of hand-edited boxes. Schema 3 adds
``efficacy``: per patch, model (identity hash and name), seed, number of compositions and image set,
the patch's efficacy score with its interval and in-box CAM energy (``fpsm dadam score``).

Opening is careful because the file is the user's data: the version is read before anything is
written (setting WAL rewrites the header, so a library from a newer fpsm is refused untouched); an
empty (0-byte) or corrupt file is reported, never taken for a new library; a schema-1 library is
copied with SQLite's backup API to ``library.sqlite.schema1.bak`` and then upgraded in place inside
one ``BEGIN IMMEDIATE`` transaction, so a crash leaves either the old or the new schema (a
schema-2 library likewise, to ``library.sqlite.schema2.bak``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from fpsm_core.dadam.errors import DadamError

SCHEMA_VERSION = 3
DB_NAME = "library.sqlite"
DEFAULT_BUSY_TIMEOUT_S = 10.0

SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS patches(
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'unreviewed'
        CHECK (state IN ('unreviewed', 'accepted', 'rejected')),
    file TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    box_x0 INTEGER NOT NULL, box_y0 INTEGER NOT NULL,
    box_x1 INTEGER NOT NULL, box_y1 INTEGER NOT NULL,
    width_mm REAL, height_mm REAL,
    spacing_row REAL, spacing_col REAL,
    image_width INTEGER NOT NULL, image_height INTEGER NOT NULL,
    rel_cx REAL NOT NULL, rel_cy REAL NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS patches_label_state ON patches(label, state);
CREATE TABLE IF NOT EXISTS provenance(
    id INTEGER PRIMARY KEY,
    patch_id INTEGER NOT NULL REFERENCES patches(id),
    dataset TEXT NOT NULL,
    image_id TEXT NOT NULL,
    image_path TEXT NOT NULL DEFAULT '',
    reader TEXT NOT NULL DEFAULT '',
    source_label TEXT NOT NULL DEFAULT '',
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    UNIQUE (dataset, image_id, reader, source_label, x0, y0, x1, y1)
);
CREATE INDEX IF NOT EXISTS provenance_patch ON provenance(patch_id);
"""

# Schema 1 -> 2, statement by statement (ALTER TABLE cannot run inside executescript's implicit
# commit handling, and we want all of it inside one explicit transaction).
_UPGRADE_1_TO_2 = (
    "ALTER TABLE patches ADD COLUMN rating INTEGER "
    "CHECK (rating IS NULL OR rating BETWEEN 1 AND 5)",
    "ALTER TABLE patches ADD COLUMN notes TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE patches ADD COLUMN edited INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE patches ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE patches ADD COLUMN updated REAL",
    "ALTER TABLE patches ADD COLUMN dataset TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE patches ADD COLUMN image_id TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE patches ADD COLUMN image_path TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE patches ADD COLUMN src_x0 REAL",
    "ALTER TABLE patches ADD COLUMN src_y0 REAL",
    "ALTER TABLE patches ADD COLUMN src_x1 REAL",
    "ALTER TABLE patches ADD COLUMN src_y1 REAL",
    "ALTER TABLE patches ADD COLUMN size_px INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE patches ADD COLUMN size_mm REAL",
    "ALTER TABLE patches ADD COLUMN n_readers INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE patches ADD COLUMN dhash INTEGER",
    """CREATE TABLE IF NOT EXISTS patch_tags(
        patch_id INTEGER NOT NULL REFERENCES patches(id),
        tag TEXT NOT NULL,
        PRIMARY KEY (patch_id, tag)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS patch_tags_tag ON patch_tags(tag)",
    """CREATE TABLE IF NOT EXISTS batches(
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        ts REAL NOT NULL,
        action TEXT NOT NULL,
        inverse_of INTEGER REFERENCES batches(id)
    )""",
    """CREATE TABLE IF NOT EXISTS history(
        id INTEGER PRIMARY KEY,
        batch INTEGER NOT NULL REFERENCES batches(id),
        patch_id INTEGER NOT NULL REFERENCES patches(id),
        user TEXT NOT NULL,
        ts REAL NOT NULL,
        field TEXT NOT NULL,
        old TEXT,
        new TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS history_patch ON history(patch_id, id)",
    "CREATE INDEX IF NOT EXISTS history_batch ON history(batch, id)",
    """CREATE TABLE IF NOT EXISTS edits(
        id INTEGER PRIMARY KEY,
        patch_id INTEGER NOT NULL REFERENCES patches(id),
        batch INTEGER NOT NULL REFERENCES batches(id),
        user TEXT NOT NULL,
        ts REAL NOT NULL,
        old_box TEXT NOT NULL,
        new_box TEXT NOT NULL,
        old_label TEXT NOT NULL,
        new_label TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS edits_patch ON edits(patch_id)",
    # What the gallery filters and sorts on; ``deleted`` leads so that "deleted=0 ORDER BY x"
    # walks one index (the rowid rides along in every index, so id-only queries are covered).
    "CREATE INDEX IF NOT EXISTS patches_live_label ON patches(deleted, label, state)",
    "CREATE INDEX IF NOT EXISTS patches_live_state ON patches(deleted, state)",
    "CREATE INDEX IF NOT EXISTS patches_live_size ON patches(deleted, size_px)",
    "CREATE INDEX IF NOT EXISTS patches_live_size_mm ON patches(deleted, size_mm)",
    "CREATE INDEX IF NOT EXISTS patches_live_created ON patches(deleted, created)",
    "CREATE INDEX IF NOT EXISTS patches_live_rating ON patches(deleted, rating)",
    "CREATE INDEX IF NOT EXISTS patches_live_source ON patches(deleted, dataset, image_id)",
    "CREATE INDEX IF NOT EXISTS patches_image ON patches(image_id)",
    "CREATE INDEX IF NOT EXISTS provenance_image ON provenance(dataset, image_id)",
)


# Schema 2 -> 3: patch efficacy scores. One row per (patch, model, seed, compositions, image set),
# so re-scoring with another model, seed or image set keeps the earlier scores.
_UPGRADE_2_TO_3 = (
    """CREATE TABLE IF NOT EXISTS efficacy(
        patch_id INTEGER NOT NULL REFERENCES patches(id),
        model_id TEXT NOT NULL,
        model_name TEXT NOT NULL,
        seed INTEGER NOT NULL,
        n INTEGER NOT NULL,
        images_key TEXT NOT NULL,
        label TEXT NOT NULL,
        efficacy REAL NOT NULL,
        lo REAL NOT NULL,
        hi REAL NOT NULL,
        energy REAL,
        best_level INTEGER,
        n_images INTEGER NOT NULL,
        scored REAL NOT NULL,
        PRIMARY KEY (patch_id, model_id, seed, n, images_key)
    )""",
    "CREATE INDEX IF NOT EXISTS efficacy_model ON efficacy(model_id, model_name)",
)


def reader_count(readers: list[str]) -> int:
    """Distinct readers behind provenance rows ("R8+R9" is two readers; none counts as one)."""
    names = {part for r in readers for part in r.split("+") if part}
    return max(len(names), 1)


def _backfill_2(db: sqlite3.Connection) -> None:
    """Fill schema 2's columns of patches written under schema 1, from their first source box."""
    db.execute(
        "UPDATE patches SET updated=created, "
        "size_px=max(box_x1-box_x0, box_y1-box_y0), "
        "size_mm=CASE WHEN width_mm IS NULL THEN NULL ELSE max(width_mm, height_mm) END"
    )
    db.execute(
        """UPDATE patches SET
            dataset=p.dataset, image_id=p.image_id, image_path=p.image_path,
            src_x0=p.x0, src_y0=p.y0, src_x1=p.x1, src_y1=p.y1
        FROM (SELECT patch_id, dataset, image_id, image_path, x0, y0, x1, y1,
                     row_number() OVER (PARTITION BY patch_id ORDER BY id) AS n
              FROM provenance) AS p
        WHERE p.patch_id = patches.id AND p.n = 1"""
    )
    readers: dict[int, list[str]] = {}
    for pid, reader in db.execute("SELECT patch_id, reader FROM provenance"):
        readers.setdefault(int(pid), []).append(str(reader))
    db.executemany(
        "UPDATE patches SET n_readers=? WHERE id=?",
        [(reader_count(r), pid) for pid, r in readers.items()],
    )


def _version(db: sqlite3.Connection) -> int | None:
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
    ).fetchone()
    if has_meta is None:
        return None
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return None if row is None else int(row[0])


def _backup_path(db_path: Path, version: int) -> Path:
    candidate = db_path.with_name(f"{db_path.name}.schema{version}.bak")
    n = 1
    while candidate.exists():  # never overwrite an earlier backup
        candidate = db_path.with_name(f"{db_path.name}.schema{version}.{n}.bak")
        n += 1
    return candidate


def backup(db: sqlite3.Connection, target: Path) -> None:
    """Copy a live database to ``target`` with SQLite's online backup API (WAL content included)."""
    dest = sqlite3.connect(target)
    try:
        db.backup(dest)
    finally:
        dest.close()


def _explain(db_path: Path, exc: sqlite3.Error) -> DadamError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return DadamError(db_path, "is locked by another process; try again when it has finished")
    return DadamError(db_path, f"is not a usable patch library database ({text})")


def open_database(
    db_path: Path,
    *,
    create: bool,
    readonly: bool,
    timeout: float = DEFAULT_BUSY_TIMEOUT_S,
) -> sqlite3.Connection:
    """Open (and when needed create or upgrade) a library database.

    Args:
        db_path: The ``library.sqlite`` file.
        create: Create the file when it does not exist.
        readonly: Open without writing anything (a schema-1 library is then refused).
        timeout: Seconds to wait for another process's write lock (SQLite busy timeout).

    Returns:
        A connection in autocommit mode (transactions are explicit), WAL unless read-only.

    Raises:
        DadamError: missing, empty, corrupt, locked, or from a newer schema; one sentence.
    """
    exists = db_path.exists()
    if not exists and (readonly or not create):
        raise DadamError(db_path.parent, "is not a DADAM patch library (no library.sqlite)")
    if exists and db_path.is_file() and db_path.stat().st_size == 0:
        raise DadamError(
            db_path,
            "is empty (0 bytes), not a patch library; restore it from a backup or delete it",
        )
    try:
        if readonly:
            db = sqlite3.connect(
                f"file:{db_path}?mode=ro", uri=True, timeout=timeout, isolation_level=None
            )
        else:
            db = sqlite3.connect(db_path, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _explain(db_path, exc) from None
    try:
        db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        version = _version(db) if exists else None
        if exists and version is None:
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise DadamError(db_path, "is an SQLite file but not a patch library (no schema)")
        if version is not None and version > SCHEMA_VERSION:
            raise DadamError(
                db_path,
                f"was written by a newer fpsm (library schema {version}; this version reads up "
                f"to {SCHEMA_VERSION}); it was left unchanged",
            )
        if readonly:
            if version is not None and version < SCHEMA_VERSION:
                raise DadamError(
                    db_path,
                    f"has library schema {version}; open it once for writing to upgrade it",
                )
        else:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if version is None:
                _create(db)
            elif version < SCHEMA_VERSION:
                _upgrade(db, db_path, version)
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("SELECT count(*) FROM patches").fetchone()
    except DadamError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        raise _explain(db_path, exc) from None
    return db


def _create(db: sqlite3.Connection) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        if _version(db) is None:  # another process may have created it meanwhile
            for stmt in SCHEMA_1.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            for stmt in (*_UPGRADE_1_TO_2, *_UPGRADE_2_TO_3):
                db.execute(stmt)
            db.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
    except BaseException:
        db.rollback()
        raise
    db.commit()


def _upgrade(db: sqlite3.Connection, db_path: Path, version: int) -> None:
    saved = _backup_path(db_path, version)
    backup(db, saved)
    db.execute("BEGIN IMMEDIATE")
    try:
        now = _version(db)  # re-read under the write lock: another process may have done it
        if now == 1:
            for stmt in _UPGRADE_1_TO_2:
                db.execute(stmt)
            _backfill_2(db)
        if now is not None and now < 3:
            for stmt in _UPGRADE_2_TO_3:
                db.execute(stmt)
        if now is not None and now < SCHEMA_VERSION:
            db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
    except sqlite3.Error as exc:
        db.rollback()
        raise DadamError(
            db_path,
            f"could not be upgraded from library schema {version} ({exc}); it is unchanged, "
            f"and a copy is at {saved.name}",
        ) from None
    except BaseException:
        db.rollback()
        raise
    db.commit()


def dhash(pixels: np.ndarray) -> int:
    """64-bit difference hash of a grey crop, as a signed SQLite integer.

    The crop is shrunk to 9x8 (area interpolation) and each bit says whether a pixel is brighter
    than its right neighbour: near-identical crops (re-encoded, shifted by a pixel, a reader's
    slightly different box) differ in a few bits only.
    """
    import cv2

    small = cv2.resize(np.ascontiguousarray(pixels), (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value - (1 << 64) if value >= (1 << 63) else value
