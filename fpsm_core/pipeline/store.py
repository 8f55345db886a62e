"""The output store of a resumable run: one SQLite row per finished file.

A row records the file (path, size, mtime), the run it belongs to (the model's identity and the
options that change outputs, each as a digest) and its outcome: the ``--json`` record and the
probabilities, or the failure's sentence. ``results.jsonl`` and ``predictions.csv`` are written
from the rows at the end, so a run killed at any point (SIGKILL included) resumes with the files it
has not finished and never writes a file twice.

SQLite rather than Parquet: the store is appended to a batch at a time and must survive being
killed mid-write. SQLite commits are atomic and durable (WAL journal), rows are replaced by primary
key (no duplicates by construction), and a resumed run asks "is this file done?" through an index;
Parquet files are immutable once written, so appending means one file per batch and a compaction
step, and a file cut off by a kill is unreadable. Under torchrun every rank writes its own store
(``results.rank<N>.sqlite``): SQLite locking across machines on a network file system is not
trustworthy, and separate files need no locking at all.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpsm_core.errors import FpsmError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    model TEXT NOT NULL,
    options TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT,
    record TEXT NOT NULL,
    probabilities TEXT
);
"""


class StoreError(FpsmError):
    """An output store that cannot be used (not ours, a newer schema, damaged)."""


@dataclass(frozen=True)
class FileStamp:
    """What identifies one version of a file: a changed size or mtime means it must be redone."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(size=int(st.st_size), mtime_ns=int(st.st_mtime_ns))


_MISSING = FileStamp(size=-1, mtime_ns=-1)


@dataclass(frozen=True)
class Row:
    """One finished file."""

    path: str
    ok: bool
    error: str | None
    record: dict[str, Any]
    probabilities: tuple[float, ...] | None


class ResultStore:
    """One SQLite output store (one per process of a run).

    Args:
        path: the database file (created with its folder's permissions).
        model: digest of the model's identity; options: digest of the output options.
    """

    def __init__(self, path: Path, *, model: str, options: str) -> None:
        self.path = path
        self.model = model
        self.options = options
        self._db = _connect(path)

    def close(self) -> None:
        self._db.close()

    def add(
        self,
        path: str,
        stamp: FileStamp | None,
        *,
        record: dict[str, Any],
        error: str | None = None,
        probabilities: Sequence[float] | None = None,
    ) -> None:
        """Record a finished file (replacing an older row of the same path). Not yet committed."""
        if stamp is None:  # vanished or never there: matched again only while it stays missing
            stamp = _MISSING
        self._db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                path,
                stamp.size,
                stamp.mtime_ns,
                self.model,
                self.options,
                int(error is None),
                error,
                json.dumps(record),
                None if probabilities is None else json.dumps([float(p) for p in probabilities]),
            ),
        )

    def commit(self) -> None:
        self._db.commit()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        db = sqlite3.connect(str(path), timeout=30.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a kill loses nothing committed
        db.executescript(_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.commit()
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"'{path}' was written by a newer fpsm (store schema {row[0]}); "
                "use another --out folder or upgrade."
            )
        db.execute(
            "SELECT path, size, mtime_ns, model, options, ok, error, record FROM files LIMIT 1"
        )
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"'{path}' is not an fpsm output store ({exc}); use another --out folder."
        ) from None
    return db


def _open_read(path: Path) -> sqlite3.Connection | None:
    """A store opened read-only (another rank may be writing it); None while it has no table yet."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        db.execute(
            "SELECT path, size, mtime_ns, model, options, ok, error, record FROM files LIMIT 1"
        )
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None  # a rank has just created it
        raise StoreError(
            f"'{path}' is not an fpsm output store ({exc}); use another --out folder."
        ) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"'{path}' is not an fpsm output store ({exc}); use another --out folder."
        ) from None
    return db


def store_files(out: Path) -> list[Path]:
    """Every output store in ``out`` (the single-process one and every rank's)."""
    return sorted(p for p in out.glob("results*.sqlite") if p.is_file())


def finished(out: Path, paths: Iterable[str], *, model: str, options: str) -> dict[str, Row]:
    """The rows, across every store in ``out``, that still hold for ``paths``.

    A row holds when the file's size and mtime are what they were (a file that is still missing
    matches the failure recorded when it was missing), and it was made by the same model with the
    same output options.
    """
    wanted = {p: FileStamp.of(p) for p in paths}
    found: dict[str, Row] = {}
    for db_path in store_files(out):
        db = _open_read(db_path)
        if db is None:
            continue
        try:
            for row in _rows(db, model, options):
                path, size, mtime_ns = row[0], row[1], row[2]
                if path not in wanted:
                    continue
                stamp = wanted[path] or _MISSING  # a file still missing matches its failure
                if (size, mtime_ns) != (stamp.size, stamp.mtime_ns):
                    continue
                found.setdefault(path, _row(row))
        finally:
            db.close()
    return found


def _rows(db: sqlite3.Connection, model: str, options: str) -> Iterator[tuple[Any, ...]]:
    yield from db.execute(
        "SELECT path, size, mtime_ns, ok, error, record, probabilities FROM files "
        "WHERE model = ? AND options = ?",
        (model, options),
    )


def _row(row: tuple[Any, ...]) -> Row:
    probs = row[6]
    return Row(
        path=row[0],
        ok=bool(row[3]),
        error=row[4],
        record=json.loads(row[5]),
        probabilities=None if probs is None else tuple(json.loads(probs)),
    )
