"""The disease-patch library: lesion crops with their provenance, in SQLite plus PNG files.

A library is a folder holding ``library.sqlite`` and ``patches/<ab>/<sha256>.png``. Each patch is
the lesion box with a margin of context, cut from the *displayed* image (modality LUT, VOI and
MONOCHROME1 inversion applied by ``fpsm_core.io``), stored as 8-bit grey. A patch row records the
lesion box inside the crop, its CXR-LT label, its size in pixels and (when the spacing is known) in
mm, where it sat in its source image, and a curation state (unreviewed / accepted / rejected). Each
source box is a provenance row (data set, image, reader, box); identical crops (same pixels, box and
label) are stored once and gain provenance rows.

Writes are transactional: a patch file is written (temporary name, then rename) before the row that
names it is committed, and an import commits image by image, so a crash loses at most the image in
hand, and re-running the import skips every box already recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.dadam.errors import DadamError

STATES = ("unreviewed", "accepted", "rejected")
USABLE_STATES = ("unreviewed", "accepted")
DB_NAME = "library.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
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


@dataclass(frozen=True)
class Patch:
    """One library patch.

    Attributes:
        id: Row id.
        sha256: Content hash (pixels, lesion box and label); also the file name.
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


@dataclass(frozen=True)
class Provenance:
    """Where a patch came from: one source box."""

    patch_id: int
    dataset: str
    image_id: str
    image_path: str
    reader: str
    source_label: str
    box: tuple[float, float, float, float]


_PATCH_COLUMNS = (
    "id, sha256, label, state, file, width, height, box_x0, box_y0, box_x1, box_y1, "
    "width_mm, height_mm, spacing_row, spacing_col, image_width, image_height, rel_cx, rel_cy"
)


def content_hash(pixels: np.ndarray, box: Sequence[int], label: str) -> str:
    """SHA-256 of a crop's pixels and shape, its lesion box and its label."""
    h = hashlib.sha256()
    h.update(f"{pixels.shape[0]}x{pixels.shape[1]}|{','.join(map(str, box))}|{label}|".encode())
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return h.hexdigest()


class PatchLibrary:
    """A patch library folder; open with ``PatchLibrary(folder)`` (created when absent).

    Use as a context manager or call :meth:`close`. Reads may run in other processes at the same
    time (SQLite WAL); one process writes at a time.
    """

    def __init__(self, root: str | Path, *, create: bool = True, readonly: bool = False) -> None:
        self.root = Path(root)
        db = self.root / DB_NAME
        if not db.exists() and (readonly or not create):
            raise DadamError(self.root, "is not a DADAM patch library (no library.sqlite)")
        if not readonly:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30.0)
            else:
                self._db = sqlite3.connect(db, timeout=30.0)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(_SCHEMA)
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
                self._db.commit()
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("SELECT count(*) FROM patches").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DadamError(db, f"is not a usable patch library database ({exc})") from None
        self._in_tx = False

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PatchLibrary:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are committed at the end, or none if an exception escapes."""
        if self._in_tx:
            yield
            return
        self._in_tx = True
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
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
        with self.transaction():
            row = self._db.execute("SELECT id FROM patches WHERE sha256=?", (sha,)).fetchone()
            added = row is None
            if added:
                rel = Path("patches") / sha[:2] / f"{sha}.png"
                _write_png_atomic(self.root / rel, pix)
                if spacing_mm is not None:
                    sr, sc = float(spacing_mm[0]), float(spacing_mm[1])
                    w_mm, h_mm = (bx[2] - bx[0]) * sc, (bx[3] - bx[1]) * sr
                else:
                    sr = sc = w_mm = h_mm = None  # type: ignore[assignment]
                cur = self._db.execute(
                    "INSERT INTO patches(sha256, label, file, width, height, box_x0, box_y0, "
                    "box_x1, box_y1, width_mm, height_mm, spacing_row, spacing_col, image_width, "
                    "image_height, rel_cx, rel_cy, created) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        sha,
                        label,
                        rel.as_posix(),
                        pix.shape[1],
                        pix.shape[0],
                        *bx,
                        w_mm,
                        h_mm,
                        sr,
                        sc,
                        int(image_size[0]),
                        int(image_size[1]),
                        float(rel_center[0]),
                        float(rel_center[1]),
                        time.time(),
                    ),
                )
                patch_id = int(cur.lastrowid or 0)
            else:
                patch_id = int(row[0])
            self._db.execute(
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
        return patch_id, added

    def set_state(self, ids: Iterable[int], state: str) -> int:
        """Set the curation state of patches; returns how many rows changed."""
        if state not in STATES:
            raise ValueError(f"Unknown curation state {state!r}; expected one of {STATES}.")
        id_list = [int(i) for i in ids]
        with self.transaction():
            cur = self._db.executemany(
                "UPDATE patches SET state=? WHERE id=?", [(state, i) for i in id_list]
            )
        return int(cur.rowcount if cur.rowcount >= 0 else len(id_list))

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM patches").fetchone()[0])

    def patches(
        self,
        label: str | None = None,
        *,
        states: Sequence[str] = USABLE_STATES,
        min_mm: float | None = None,
        max_mm: float | None = None,
        limit: int | None = None,
    ) -> list[Patch]:
        """Patches, in insertion order.

        Args:
            label: Only this CXR-LT class.
            states: Curation states to include (default: all but rejected).
            min_mm: Only lesions whose larger side is at least this many mm (needs the spacing).
            max_mm: Only lesions whose larger side is at most this many mm (needs the spacing).
            limit: At most this many.

        Returns:
            The matching patches.
        """
        where = [f"state IN ({','.join('?' * len(states))})"]
        params: list[object] = list(states)
        if label is not None:
            where.append("label=?")
            params.append(label)
        if min_mm is not None:
            where.append("max(width_mm, height_mm) >= ?")
            params.append(float(min_mm))
        if max_mm is not None:
            where.append("max(width_mm, height_mm) <= ?")
            params.append(float(max_mm))
        sql = f"SELECT {_PATCH_COLUMNS} FROM patches WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._patch(r) for r in self._db.execute(sql, params)]

    def get(self, patch_id: int) -> Patch:
        """The patch with this id (KeyError when absent)."""
        row = self._db.execute(
            f"SELECT {_PATCH_COLUMNS} FROM patches WHERE id=?", (int(patch_id),)
        ).fetchone()
        if row is None:
            raise KeyError(patch_id)
        return self._patch(row)

    def counts(self, states: Sequence[str] = USABLE_STATES) -> dict[str, int]:
        """CXR-LT label -> number of patches in the given states."""
        rows = self._db.execute(
            f"SELECT label, count(*) FROM patches WHERE state IN ({','.join('?' * len(states))}) "
            "GROUP BY label ORDER BY label",
            list(states),
        )
        return {label: int(n) for label, n in rows}

    def state_counts(self) -> dict[str, dict[str, int]]:
        """Label -> state -> number of patches."""
        out: dict[str, dict[str, int]] = {}
        for label, state, n in self._db.execute(
            "SELECT label, state, count(*) FROM patches GROUP BY label, state"
        ):
            out.setdefault(label, {s: 0 for s in STATES})[state] = int(n)
        return out

    def provenance(self, patch_id: int) -> list[Provenance]:
        """Every source box that produced this patch."""
        return [
            Provenance(int(r[0]), r[1], r[2], r[3], r[4], r[5], (r[6], r[7], r[8], r[9]))
            for r in self._db.execute(
                "SELECT patch_id, dataset, image_id, image_path, reader, source_label, x0, y0, "
                "x1, y1 FROM provenance WHERE patch_id=? ORDER BY id",
                (int(patch_id),),
            )
        ]

    def provenance_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM provenance").fetchone()[0])

    def load_pixels(self, patch: Patch) -> np.ndarray:
        """The crop as (h, w) uint8."""
        return read_patch_png(patch.file)

    def _patch(self, r: Sequence[object]) -> Patch:
        spacing = None if r[13] is None else (float(r[13]), float(r[14]))  # type: ignore[arg-type]
        size_mm = None if r[11] is None else (float(r[11]), float(r[12]))  # type: ignore[arg-type]
        return Patch(
            id=int(r[0]),  # type: ignore[call-overload]
            sha256=str(r[1]),
            label=str(r[2]),
            state=str(r[3]),
            file=self.root / str(r[4]),
            width=int(r[5]),  # type: ignore[call-overload]
            height=int(r[6]),  # type: ignore[call-overload]
            box=(int(r[7]), int(r[8]), int(r[9]), int(r[10])),  # type: ignore[call-overload]
            size_mm=size_mm,
            spacing_mm=spacing,
            image_size=(int(r[15]), int(r[16])),  # type: ignore[call-overload]
            rel_center=(float(r[17]), float(r[18])),  # type: ignore[arg-type]
        )


def _write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DadamError(path, "could not be encoded as PNG")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(buf.tobytes())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_patch_png(path: Path) -> np.ndarray:
    """Read a patch file as (h, w) uint8; DadamError when missing or unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data is not None and data.size else None
    if img is None:
        raise DadamError(path, "patch file is missing or unreadable")
    return img
