"""Labels CSVs in the CXR-LT layout, read and written by column name.

The layout is ``dicom_id, subject_id, study_id, ViewPosition, ViewCodeSequence_CodeMeaning, path``
then the 26 labels of ``fpsm_core.labels.LABELS`` as 0/1; DADAM output adds a ``synthetic`` 0/1
column. CXR-LT 2024 calls the path column ``fpath``; both are accepted. Extra columns are ignored.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from fpsm_core.dadam.errors import DadamError
from fpsm_core.labels import CXRLT_META_COLUMNS, LABELS

META_COLUMNS = CXRLT_META_COLUMNS
SYNTHETIC_COLUMN = "synthetic"
_POSITIVE = {"1", "1.0", "true", "True"}


@dataclass(frozen=True, eq=False)
class LabelTable:
    """A labels CSV in memory.

    Attributes:
        path: The file read (None for tables built in memory).
        meta: Per row, the six metadata columns as strings (``path`` under that name even when the
            file said ``fpath``).
        y: (N, 26) uint8 0/1 labels in ``LABELS`` order.
        synthetic: (N,) uint8, 1 for DADAM-made rows (0 when the file has no such column).
    """

    path: Path | None
    meta: tuple[Mapping[str, str], ...]
    y: np.ndarray
    synthetic: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def ids(self) -> list[str]:
        """The ``dicom_id`` of each row."""
        return [m["dicom_id"] for m in self.meta]

    def counts(self) -> dict[str, int]:
        """Label -> number of positive rows."""
        return {name: int(n) for name, n in zip(LABELS, self.y.sum(axis=0), strict=True)}


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def read_labels_csv(path: str | Path) -> LabelTable:
    """Read a CXR-LT-layout labels CSV.

    Args:
        path: The CSV (``.gz`` fine). Label cells "1"/"1.0" are positive, anything else negative.

    Returns:
        The table.

    Raises:
        DadamError: the file is missing or lacks ``dicom_id`` or any of the 26 label columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DadamError(path, "labels CSV not found")
    try:
        with _open(path) as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            index = {h: i for i, h in enumerate(header)}
            if "path" not in index and "fpath" in index:
                index["path"] = index["fpath"]
            missing = [c for c in ("dicom_id", *LABELS) if c not in index]
            if missing:
                shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
                raise DadamError(path, f"is not a CXR-LT labels CSV (missing columns {shown})")
            meta_idx = [(c, index.get(c)) for c in META_COLUMNS]
            label_idx = [index[c] for c in LABELS]
            syn_idx = index.get(SYNTHETIC_COLUMN)
            metas: list[dict[str, str]] = []
            ys: list[list[int]] = []
            syn: list[int] = []
            for row in reader:
                if not row:
                    continue
                metas.append(
                    {c: (row[i] if i is not None and i < len(row) else "") for c, i in meta_idx}
                )
                ys.append(
                    [1 if i < len(row) and row[i].strip() in _POSITIVE else 0 for i in label_idx]
                )
                syn.append(1 if syn_idx is not None and row[syn_idx].strip() in _POSITIVE else 0)
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error, OSError) as exc:
        raise DadamError(path, f"cannot be read as a labels CSV ({exc})") from None
    y = np.array(ys, dtype=np.uint8).reshape(-1, len(LABELS))
    return LabelTable(path, tuple(metas), y, np.array(syn, dtype=np.uint8))


def write_labels_csv(
    path: str | Path,
    rows: Iterable[tuple[Mapping[str, str], Sequence[int] | np.ndarray, int]],
) -> int:
    """Write a labels CSV with the ``synthetic`` column, atomically (temporary file, then rename).

    Args:
        path: Destination.
        rows: (meta with the six ``META_COLUMNS``, 26 labels 0/1, synthetic 0/1) per row.

    Returns:
        Number of rows written.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*META_COLUMNS, *LABELS, SYNTHETIC_COLUMN])
        for meta, labels, synthetic in rows:
            writer.writerow(
                [meta.get(c, "") for c in META_COLUMNS]
                + [int(v) for v in labels]
                + [int(synthetic)]
            )
            n += 1
    os.replace(tmp, path)
    return n
