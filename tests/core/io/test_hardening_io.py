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


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims a size (no pixel data): PIL opens it lazily."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.mark.slow
def test_valid_12000_square_png_loads(tmp_path: Path) -> None:
    from PIL import Image

    from fpsm_core.io import load_image

    path = tmp_path / "big.png"
    Image.new("1", (12000, 12000), 1).save(path)  # 1-bit: a few kB on disk
    img = load_image(path)
    assert img.shape == (12000, 12000)


def test_too_large_raster_names_the_one_limit(tmp_path: Path) -> None:
    from fpsm_core.io import ImageLoadError, load_image

    path = _png_header_only(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(ImageLoadError) as exc:
        load_image(path)
    text = str(exc.value)
    assert "huge.png" in text and "268,435,456 samples per frame, in every format" in text
    assert "impossible" not in text
