"""``results.jsonl`` and ``predictions.csv`` (the CXR-LT submission layout), written from the store.

Both list the run's inputs in input order, whatever order the files finished in, and whichever run
or rank finished them. ``predictions.csv`` is ``dicom_id`` (the file name without its extension, as
MIMIC-CXR-JPG names its images) and one probability column per label; a file that could not be read
has no row there and an ``{"path", "error"}`` record in ``results.jsonl``. Each file is written
beside the final name and renamed into place, so a kill never leaves half a file.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fpsm_core.pipeline.store import Row


def trimmed(record: Mapping[str, Any], top: int | None) -> dict[str, Any]:
    """The record with only the ``top`` most probable findings (all when None)."""
    out = dict(record)
    if top is not None and "findings" in out:
        out["findings"] = list(out["findings"])[:top]
    return out


def write_jsonl(
    path: Path, keys: Sequence[str], rows: Mapping[str, Row], *, top: int | None = None
) -> int:
    """One record per input that has a row; returns how many were written."""
    written = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for key in keys:
            row = rows.get(key)
            if row is not None:
                fh.write(json.dumps(trimmed(row.record, top)) + "\n")
                written += 1
    os.replace(tmp, path)
    return written


def write_predictions(
    path: Path, keys: Sequence[str], rows: Mapping[str, Row], labels: Sequence[str]
) -> int:
    """The CXR-LT submission: ``dicom_id`` + one column per label; returns the data rows."""
    written = 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dicom_id", *labels])
        for key in keys:
            row = rows.get(key)
            if row is None or row.probabilities is None:
                continue
            dicom_id = Path(str(row.record.get("path") or key)).stem
            writer.writerow([dicom_id, *[f"{p:.6f}" for p in row.probabilities]])
            written += 1
    os.replace(tmp, path)
    return written
