"""A patch's files and the columns its cut determines: hash, geometry, atomic PNG writes, reads.

Kept below :mod:`fpsm_core.dadam.library` so that the modules the library delegates to (editing,
duplicates) and the generator use them without importing the library back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.schema import dhash


def content_hash(pixels: np.ndarray, box: Sequence[int], label: str) -> str:
    """SHA-256 of a crop's pixels and shape, its lesion box and its label."""
    h = hashlib.sha256()
    h.update(f"{pixels.shape[0]}x{pixels.shape[1]}|{','.join(map(str, box))}|{label}|".encode())
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return h.hexdigest()


def patch_geometry(
    pixels: np.ndarray,
    box: Sequence[int],
    file: str,
    sha: str,
    spacing_mm: tuple[float, float] | None,
    source_box: Sequence[float],
    image_size: tuple[int, int],
    rel_center: tuple[float, float],
) -> dict[str, Any]:
    """The patch columns a cut determines (everything but label, curation and source image)."""
    bx = [int(v) for v in box]
    if spacing_mm is not None:
        sr, sc = float(spacing_mm[0]), float(spacing_mm[1])
        w_mm, h_mm = (bx[2] - bx[0]) * sc, (bx[3] - bx[1]) * sr
        size_mm: float | None = max(w_mm, h_mm)
    else:
        sr = sc = w_mm = h_mm = size_mm = None  # type: ignore[assignment]
    sx = [float(v) for v in source_box]
    return {
        "sha256": sha,
        "file": file,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "box_x0": bx[0],
        "box_y0": bx[1],
        "box_x1": bx[2],
        "box_y1": bx[3],
        "width_mm": w_mm,
        "height_mm": h_mm,
        "spacing_row": sr,
        "spacing_col": sc,
        "image_width": int(image_size[0]),
        "image_height": int(image_size[1]),
        "rel_cx": float(rel_center[0]),
        "rel_cy": float(rel_center[1]),
        "src_x0": sx[0],
        "src_y0": sx[1],
        "src_x1": sx[2],
        "src_y1": sx[3],
        "size_px": max(bx[2] - bx[0], bx[3] - bx[1]),
        "size_mm": size_mm,
        "dhash": dhash(pixels),
    }


def write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    """Write a PNG under a temporary name, fsync it, and rename it into place."""
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
