"""The SQLite header cache behind ``index_folder``: one row per file, keyed by path, mtime, size.

Layout: one table ``files`` (``WITHOUT ROWID``, primary key ``path``) whose columns are the fields
of `HeaderRecord`; ``PRAGMA user_version`` holds ``SCHEMA_VERSION`` and a mismatch rebuilds the
table. Schema steps (``SCHEMA_STEPS``) add tables of user data that a rebuild of ``files`` never
drops: version 2 adds ``annotations`` (one JSON sheet of measurements per image, see
:mod:`fpsm_core.annotations.store`). WAL journal, ``synchronous=NORMAL``. The file holds patient names and IDs, so it is created
private to the user (mode 0600). A cache that cannot be opened, or whose pages or rows turn out
junk while reading, is reported (``problem``) and indexing goes on without it; never fatal.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fpsm_core.io.headers import RECORD_FIELDS, HeaderRecord

SCHEMA_VERSION = 2
# The version at which the ``files`` table last changed layout: older (or newer) files rebuild it.
FILES_LAYOUT = 1
# Tables of what users made, created step by step and kept across rebuilds of the header table.
SCHEMA_STEPS = {
    2: "CREATE TABLE IF NOT EXISTS annotations (image_key TEXT PRIMARY KEY, path TEXT, "
    "sheet TEXT NOT NULL, updated_ns INTEGER NOT NULL) WITHOUT ROWID",
}
_INT_FIELDS = {"mtime_ns", "size", "series_number", "instance_number", "rows", "columns", "frames"}


def default_cache_path() -> Path:
    """``$FPSM_CACHE_DIR/study_index.sqlite3``, else under ``$XDG_CACHE_HOME/fpsm`` or ~/.cache."""
    base = os.environ.get("FPSM_CACHE_DIR")
    if base:
        return Path(base) / "study_index.sqlite3"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "fpsm" / "study_index.sqlite3"


def apply_schema_steps(con: sqlite3.Connection) -> None:
    """Create the user-data tables of every schema step (idempotent; never drops them)."""
    for _version, statement in sorted(SCHEMA_STEPS.items()):
        con.execute(statement)


class HeaderCache:
    """A connection to the cache file; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Set when the file turns out damaged after it opened (junk pages, wrong-typed rows): the
        # cache then answers "nothing cached" and stores nothing, and the indexer says so once.
        self.problem: str | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        try:
            self._setup()
        except sqlite3.DatabaseError:
            self._con.close()
            raise

    def _setup(self) -> None:
        con = self._con
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if not FILES_LAYOUT <= version <= SCHEMA_VERSION:
            con.execute("DROP TABLE IF EXISTS files")
        columns = ", ".join(
            f"{name} {'INTEGER' if name in _INT_FIELDS else 'TEXT'}"
            + (" PRIMARY KEY" if name == "path" else "")
            for name in RECORD_FIELDS
        )
        con.execute(f"CREATE TABLE IF NOT EXISTS files ({columns}) WITHOUT ROWID")
        apply_schema_steps(con)
        con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __enter__(self) -> HeaderCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(sqlite3.Error):
            self._con.close()

    def _broken(self, exc: Exception) -> None:
        if self.problem is None:
            self.problem = (
                f"The index cache {self.path} is damaged ({exc}); indexing without it "
                "(delete the file to rebuild it)."
            )

    def load_under(self, root: str) -> dict[str, HeaderRecord]:
        """All cached records whose path lies under ``root`` (a directory, absolute)."""
        if self.problem:
            return {}
        prefix = root.rstrip(os.sep) + os.sep
        upper = prefix[:-1] + chr(ord(os.sep) + 1)
        try:
            rows = self._con.execute(
                f"SELECT {', '.join(RECORD_FIELDS)} FROM files WHERE path >= ? AND path < ?",
                (prefix, upper),
            ).fetchall()
        except sqlite3.Error as exc:
            self._broken(exc)
            return {}
        return self._records(rows)

    def load_paths(self, paths: Iterable[str]) -> dict[str, HeaderRecord]:
        """Cached records for explicit paths (DICOMDIR references)."""
        if self.problem:
            return {}
        query = f"SELECT {', '.join(RECORD_FIELDS)} FROM files WHERE path = ?"
        rows = []
        try:
            for path in paths:
                row = self._con.execute(query, (path,)).fetchone()
                if row:
                    rows.append(row)
        except sqlite3.Error as exc:
            self._broken(exc)
            return {}
        return self._records(rows)

    def _records(self, rows: Iterable[tuple[Any, ...]]) -> dict[str, HeaderRecord]:
        """Rows as records; a row whose key fields have the wrong type is damage, not a hit."""
        out: dict[str, HeaderRecord] = {}
        for row in rows:
            rec = HeaderRecord._make(row)
            if not (
                isinstance(rec.path, str)
                and all(isinstance(getattr(rec, f), int) for f in ("mtime_ns", "size"))
                and all(isinstance(getattr(rec, f), (int, type(None))) for f in _INT_FIELDS)
            ):
                self._broken(ValueError(f"a row of wrong-typed fields for {str(rec.path)[:80]}"))
                return {}
            out[rec.path] = rec
        return out

    def store(self, records: Iterable[HeaderRecord]) -> None:
        """Insert or replace records in one transaction."""
        marks = ", ".join("?" for _ in RECORD_FIELDS)
        rows = [tuple(r) for r in records]
        if not rows or self.problem:
            return
        try:
            with self._transaction():
                self._con.executemany(f"INSERT OR REPLACE INTO files VALUES ({marks})", rows)
        except sqlite3.Error as exc:
            self._broken(exc)

    def delete(self, paths: Iterable[str]) -> None:
        """Forget files that are gone."""
        rows = [(p,) for p in paths]
        if rows and not self.problem:
            try:
                with self._transaction():
                    self._con.executemany("DELETE FROM files WHERE path = ?", rows)
            except sqlite3.Error as exc:
                self._broken(exc)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._con.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._con.execute("ROLLBACK")
            raise
        self._con.execute("COMMIT")
