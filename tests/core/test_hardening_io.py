"""Study index cache with junk pages, and the one pixel limit for every format (issue 22, 10, 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from io_fixtures import write_dicom

from fpsm_core.io import index_folder


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "studies"
    for i in range(40):
        write_dicom(root / f"s{i % 3}" / f"{i}.dcm", PatientID=f"P{i % 3}", InstanceNumber=i)
    return root


@pytest.mark.parametrize("where", ["pages", "everything"])
def test_cache_with_junk_pages_warns_and_indexes_without_it(tmp_path: Path, where: str) -> None:
    root = _folder(tmp_path)
    cache = tmp_path / "cache.sqlite3"
    first = index_folder(root, cache=cache)
    assert first.n_read == 40
    for extra in ("-wal", "-shm"):
        Path(str(cache) + extra).unlink(missing_ok=True)
    data = bytearray(cache.read_bytes())
    start = 0 if where == "everything" else 4096  # "pages": keep page 1 (header and schema)
    rng = np.random.default_rng(0)
    data[start:] = rng.integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    cache.write_bytes(bytes(data))
    again = index_folder(root, cache=cache)
    assert len(again.images) == 40 and again.n_read == 40
    assert any("index cache" in w and "indexing without it" in w for w in again.warnings)
