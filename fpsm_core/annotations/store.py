"""Each image's annotation sheet in the study index's SQLite file, and the JSON export.

The sheet is written on every change (one small ``INSERT OR REPLACE`` of a JSON document in WAL
mode, well under a millisecond to a few ms), so nothing is lost when the viewer closes or
crashes. Images are keyed by SOPInstanceUID and frame when the file has one (the same film found
again under another folder keeps its measurements), else by absolute path and frame. The table
(``annotations``) is a schema step of :mod:`fpsm_core.io.index_cache`: rebuilding the header
cache never drops it. A damaged or unwritable file is reported as one sentence
(:class:`~fpsm_core.annotations.model.AnnotationError`) and the viewer goes on unsaved.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from fpsm_core.annotations.measure import measure, original_values, resolve_spacing, spacing_tag
from fpsm_core.annotations.model import FORMAT, AnnotationError, Sheet
from fpsm_core.io.index_cache import apply_schema_steps


def image_key(image: Any) -> str:
    """The key of an image's sheet: ``uid:<SOPInstanceUID>:<frame>``, else ``path:<file>:<frame>``."""
    frame = int(getattr(image, "frame", 0) or 0)
    uid = getattr(image, "instance_uid", None)
    if uid and getattr(image, "source_format", "dicom") == "dicom":
        return f"uid:{uid}:{frame}"
    return f"path:{Path(image.path).resolve()}:{frame}"


class AnnotationStore:
    """A connection to the index file's ``annotations`` table."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # it will hold patient data: private to the user
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._con = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            apply_schema_steps(self._con)
        except (OSError, sqlite3.Error) as exc:
            raise AnnotationError(
                f"cannot hold annotations ({exc}); they will not be saved", path=self.path
            ) from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._con.close()

    def __enter__(self) -> AnnotationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, key: str) -> Sheet | None:
        """The stored sheet of an image, None when there is none."""
        try:
            row = self._con.execute(
                "SELECT sheet FROM annotations WHERE image_key = ?", (key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise AnnotationError(f"cannot be read ({exc})", path=self.path) from None
        if row is None:
            return None
        return Sheet.from_json(str(row[0]), where=f"{self.path} ({key})")

    def save(self, key: str, sheet: Sheet, path: str | os.PathLike[str] | None = None) -> None:
        """Store (or, for an empty sheet, forget) an image's sheet."""
        try:
            if not sheet.annotations and sheet.calibration is None:
                self._con.execute("DELETE FROM annotations WHERE image_key = ?", (key,))
            else:
                self._con.execute(
                    "INSERT OR REPLACE INTO annotations VALUES (?, ?, ?, ?)",
                    (key, None if path is None else str(path), sheet.to_json(), time.time_ns()),
                )
        except sqlite3.Error as exc:
            raise AnnotationError(
                f"the annotations could not be saved ({exc})", path=self.path
            ) from None

    def keys(self) -> list[str]:
        return [str(r[0]) for r in self._con.execute("SELECT image_key FROM annotations")]


def export_document(sheet: Sheet, image: Any) -> dict[str, Any]:
    """The sheet with every measurement worked out, as a JSON-ready dict (no patient details)."""
    spacing = resolve_spacing(image, sheet.calibration)
    values = (
        original_values(image)
        if any(a.kind in ("ellipse", "rectangle") for a in sheet.annotations)
        else None
    )
    items = []
    for annotation in sheet.annotations:
        m = measure(annotation, values, spacing)
        item = annotation.to_dict()
        item["measurement"] = {
            "value": _finite(m.value),
            "unit": m.unit,
            "text": m.text,
            **{k: _finite(v) if isinstance(v, float) else v for k, v in m.details.items()},
        }
        items.append(item)
    rows, cols = (int(n) for n in image.pixels.shape[:2])
    return {
        "format": FORMAT,
        "image": {
            "file": Path(image.path).name,
            "sop_instance_uid": getattr(image, "instance_uid", None),
            "frame": int(getattr(image, "frame", 0) or 0),
            "rows": rows,
            "columns": cols,
        },
        "coordinates": "image pixels: x = column, y = row, pixel centres at +0.5",
        "spacing": None
        if spacing is None
        else {"row_mm": spacing.row_mm, "col_mm": spacing.col_mm, "source": spacing_tag(spacing)},
        "calibration": None if sheet.calibration is None else sheet.calibration.to_dict(),
        "annotations": items,
    }


def export_json(path: str | os.PathLike[str], sheet: Sheet, image: Any) -> Path:
    """Write :func:`export_document` to ``path``; AnnotationError when it cannot be written."""
    out = Path(path)
    text = json.dumps(export_document(sheet, image), indent=1, allow_nan=False)
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise AnnotationError(f"cannot be written ({exc.strerror})", path=out) from None
    return out


def _finite(value: float | None) -> float | None:
    """NaN (an empty ROI) as JSON null."""
    return None if value is None or value != value else value
