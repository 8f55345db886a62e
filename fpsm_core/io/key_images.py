"""Key image marks, kept beside the study index in its SQLite file.

A reader flags the films that matter ("key images") while reading; the mark belongs to the image
(its SOPInstanceUID where it has one, else its path), so it is found again when the same file is
reopened from another folder. The marks live in their own table, ``key_images``, of the study
index's database (:func:`fpsm_core.io.index_cache.default_cache_path` by default), so they travel
with the index and never touch its ``files`` table. A database that cannot be opened is one
:class:`KeyImageError` sentence.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from fpsm_core.errors import FpsmError


class KeyImageError(FpsmError):
    """The key image table cannot be read or written."""


def image_key(path: str | Path, instance_uid: str | None) -> str:
    """The mark's key: ``uid:<SOPInstanceUID>``, else ``path:<absolute path>``."""
    return f"uid:{instance_uid}" if instance_uid else f"path:{Path(path).absolute()}"


class KeyImageStore:
    """The ``key_images`` table of one database file (``":memory:"`` for none on disk)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                if not Path(self.path).exists():  # it holds patients' file names: private
                    os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS key_images "
                "(key TEXT PRIMARY KEY, path TEXT, marked_at REAL) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            raise KeyImageError(
                f"The key image table in '{self.path}' cannot be opened: {exc}."
            ) from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._con.close()

    def is_key(self, path: str | Path, instance_uid: str | None = None) -> bool:
        row = self._run("SELECT 1 FROM key_images WHERE key = ?", (image_key(path, instance_uid),))
        return row is not None

    def set_key(self, path: str | Path, instance_uid: str | None, marked: bool) -> None:
        """Mark (or unmark) one image, stored at once."""
        key = image_key(path, instance_uid)
        if marked:
            self._run(
                "INSERT OR REPLACE INTO key_images VALUES (?, ?, ?)",
                (key, str(Path(path).absolute()), time.time()),
            )
        else:
            self._run("DELETE FROM key_images WHERE key = ?", (key,))

    def marked_paths(self) -> list[str]:
        """Paths of every marked image, oldest mark first."""
        try:
            rows = self._con.execute("SELECT path FROM key_images ORDER BY marked_at").fetchall()
        except sqlite3.Error as exc:
            raise KeyImageError(
                f"The key image table in '{self.path}' is unreadable: {exc}."
            ) from None
        return [str(r[0]) for r in rows]

    def _run(self, sql: str, args: tuple[object, ...]) -> tuple[object, ...] | None:
        try:
            row = self._con.execute(sql, args).fetchone()
        except sqlite3.Error as exc:
            raise KeyImageError(
                f"The key image table in '{self.path}' cannot be used: {exc}."
            ) from None
        return None if row is None else tuple(row)
