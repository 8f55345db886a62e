"""Opening a patch library: schema-1 upgrade with a backup, and files that must be refused."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.dadam import schema
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.library import PatchLibrary, content_hash


def _schema1_library(root: Path) -> Path:
    """A library as schema-1 fpsm wrote it: two patches, one seen by two readers."""
    root.mkdir(parents=True)
    db_path = root / "library.sqlite"
    db = sqlite3.connect(db_path)
    db.executescript(schema.SCHEMA_1)
    db.execute("INSERT INTO meta(key, value) VALUES ('schema', '1')")
    rng = np.random.default_rng(1)
    for n, (label, mm) in enumerate((("Nodule", (0.2, 0.2)), ("Mass", None)), start=1):
        pix = rng.integers(0, 255, (20, 24), dtype=np.uint8)
        box = (4, 4, 20 if n == 1 else 18, 16)
        sha = content_hash(pix, box, label)
        rel = f"patches/{sha[:2]}/{sha}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), pix)
        w_mm = h_mm = None
        if mm is not None:
            w_mm, h_mm = (box[2] - box[0]) * mm[1], (box[3] - box[1]) * mm[0]
        db.execute(
            "INSERT INTO patches(sha256, label, file, width, height, box_x0, box_y0, box_x1, "
            "box_y1, width_mm, height_mm, spacing_row, spacing_col, image_width, image_height, "
            "rel_cx, rel_cy, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (sha, label, rel, 24, 20, *box, w_mm, h_mm, *(mm or (None, None)), 200, 100, 0.3,
             0.4, time.time()),
        )  # fmt: skip
    rows = [
        (1, "vindr", "img_a", "/data/img_a.dicom", "R8", "Nodule/Mass", 50.0, 40.0, 66.0, 52.0),
        (1, "vindr", "img_a", "/data/img_a.dicom", "R9", "Nodule/Mass", 51.0, 41.0, 66.0, 52.0),
        (2, "nih", "0001.png", "/nih/0001.png", "", "Mass", 10.0, 10.0, 24.0, 22.0),
    ]
    db.executemany(
        "INSERT INTO provenance(patch_id, dataset, image_id, image_path, reader, source_label, "
        "x0, y0, x1, y1) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    db.execute("UPDATE patches SET state='accepted' WHERE id=2")
    db.commit()
    db.close()
    return db_path


def test_schema1_library_is_backed_up_then_upgraded_in_place(tmp_path: Path) -> None:
    db_path = _schema1_library(tmp_path / "lib")
    with PatchLibrary(tmp_path / "lib") as lib:
        a, b = lib.get(1), lib.get(2)
        assert (a.dataset, a.image_id, a.image_path) == ("vindr", "img_a", "/data/img_a.dicom")
        assert a.source_box == (50.0, 40.0, 66.0, 52.0)  # the first reader's box
        assert a.readers == 2 and b.readers == 1
        assert a.size_px == (16, 12) and a.size_mm == pytest.approx((3.2, 2.4))
        assert b.state == "accepted" and b.rating is None and b.tags == () and b.notes == ""
        assert lib.query_ids(sort="size", descending=True) == [1, 2]
        assert lib.query_ids(min_readers=2) == [1]
        # Curation works on the upgraded library.
        assert lib.set_rating([1], 5).changed == 1 and lib.get(1).rating == 5
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(
            schema.SCHEMA_VERSION
        )
    backup = tmp_path / "lib" / "library.sqlite.schema1.bak"
    with sqlite3.connect(backup) as old:
        assert old.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "1"
        assert old.execute("SELECT count(*) FROM patches").fetchone()[0] == 2
        assert old.execute("SELECT count(*) FROM provenance").fetchone()[0] == 3
        cols = {r[1] for r in old.execute("PRAGMA table_info(patches)")}
        assert "rating" not in cols
    # Opening again neither upgrades nor backs up a second time.
    with PatchLibrary(tmp_path / "lib") as lib:
        assert lib.get(1).rating == 5
    assert sorted(p.name for p in (tmp_path / "lib").glob("*.bak")) == [backup.name]


def test_failed_upgrade_leaves_schema1_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = _schema1_library(tmp_path / "lib")

    def crash(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated during the upgrade)")

    monkeypatch.setattr(schema, "_backfill_2", crash)
    with pytest.raises(DadamError, match=r"could not be upgraded from library schema 1 \(disk"):
        PatchLibrary(tmp_path / "lib")
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "1"
        cols = {r[1] for r in db.execute("PRAGMA table_info(patches)")}
        assert (
            "rating" not in cols and db.execute("SELECT count(*) FROM patches").fetchone()[0] == 2
        )
    monkeypatch.undo()
    with PatchLibrary(tmp_path / "lib") as lib:  # the next open upgrades
        assert len(lib) == 2 and lib.get(1).readers == 2


def test_newer_schema_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    with PatchLibrary(tmp_path / "lib"):
        pass
    db_path = tmp_path / "lib" / "library.sqlite"
    with sqlite3.connect(db_path) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("UPDATE meta SET value='7' WHERE key='schema'")
    before = db_path.read_bytes()
    for kwargs in ({}, {"readonly": True}):
        with pytest.raises(DadamError, match=r"newer fpsm \(library schema 7; .*reads up to 3\)"):
            PatchLibrary(tmp_path / "lib", **kwargs)
    assert db_path.read_bytes() == before  # not even switched to WAL
    assert not list((tmp_path / "lib").glob("*.bak"))


def test_empty_and_corrupt_files_are_one_sentence_never_a_new_library(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "library.sqlite").write_bytes(b"")
    for create in (True, False):
        with pytest.raises(DadamError, match=r"is empty \(0 bytes\), not a patch library"):
            PatchLibrary(tmp_path / "empty", create=create)
    assert (tmp_path / "empty" / "library.sqlite").stat().st_size == 0
    (tmp_path / "bad").mkdir()
    junk = b"SQLite format 3\x00" + bytes(range(256)) * 20
    (tmp_path / "bad" / "library.sqlite").write_bytes(junk)
    with pytest.raises(DadamError, match="is not a usable patch library database") as err:
        PatchLibrary(tmp_path / "bad")
    assert "\n" not in str(err.value) and "library.sqlite" in str(err.value)
    assert (tmp_path / "bad" / "library.sqlite").read_bytes() == junk
    other = tmp_path / "other" / "library.sqlite"
    other.parent.mkdir()
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t(x)")
    with pytest.raises(DadamError, match="SQLite file but not a patch library"):
        PatchLibrary(tmp_path / "other")


def test_a_locked_library_gives_a_sentence_and_changes_nothing(tmp_path: Path) -> None:
    with PatchLibrary(tmp_path / "lib") as lib:
        lib.add_patch(np.full((8, 8), 9, np.uint8), (2, 2, 6, 6), "Nodule", dataset="t",
                      image_id="a", source_box=(1, 1, 5, 5), image_size=(50, 50),
                      rel_center=(0.1, 0.1))  # fmt: skip
    holder = sqlite3.connect(tmp_path / "lib" / "library.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    try:
        with PatchLibrary(tmp_path / "lib", timeout=0.2) as lib:
            assert len(lib) == 1  # reading goes on (WAL)
            with pytest.raises(DadamError, match="is locked by another process; nothing was"):
                lib.set_state([1], "accepted")
            assert lib.get(1).state == "unreviewed" and lib.history() == []
    finally:
        holder.rollback()
        holder.close()


def test_missing_patch_file_names_the_patch_and_the_rest_works(tmp_path: Path) -> None:
    with PatchLibrary(tmp_path / "lib") as lib:
        for v in (10, 20):
            lib.add_patch(np.full((8, 8), v, np.uint8), (2, 2, 6, 6), "Nodule", dataset="t",
                          image_id=f"i{v}", source_box=(1, 1, 5, 5), image_size=(50, 50),
                          rel_center=(0.1, 0.1))  # fmt: skip
        lib.get(1).file.unlink()
        with pytest.raises(DadamError, match=r"patch 1 \(Nodule\): patch file is missing"):
            lib.load_pixels(lib.get(1))
        assert lib.load_pixels(lib.get(2))[0, 0] == 20
        assert lib.query_ids() == [1, 2] and lib.set_state([1, 2], "accepted").changed == 2
