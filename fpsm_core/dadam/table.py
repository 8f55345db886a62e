"""Labels CSVs for DADAM: the project's one labels-table reader and writer, with DADAM's errors.

The layout and the value rule live in :mod:`fpsm_core.labels_table` (six metadata columns, the 26
labels, the ``synthetic`` column of DADAM output; empty -> 0, a number in [0, 1] kept, anything else
refused). DADAM plans on positives: :attr:`LabelTable.y` is 1 where a label is at least 0.5, the
same threshold training uses to count positives. Errors come out as :class:`DadamError`, so
``fpsm dadam`` reports them like its other input problems.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from fpsm_core.dadam.errors import DadamError
from fpsm_core.labels_table import (
    META_COLUMNS,
    SYNTHETIC_COLUMN,
    LabelsTable,
    LabelsTableError,
    read_labels_table,
    write_labels_table,
)

LabelTable = LabelsTable
"""The table DADAM reads (``y``: positives, ``values``: label values as written)."""

__all__ = [
    "META_COLUMNS",
    "SYNTHETIC_COLUMN",
    "LabelTable",
    "read_labels_csv",
    "write_labels_csv",
]


def read_labels_csv(path: str | Path) -> LabelTable:
    """Read a CXR-LT-layout labels CSV (``.gz`` fine) for DADAM.

    Raises:
        DadamError: the file is missing, lacks ``dicom_id`` or any of the 26 label columns, or
            breaks the value rule (the message names the row and the column).
    """
    try:
        return read_labels_table(path, require=("dicom_id",))
    except LabelsTableError as exc:
        raise DadamError(None, str(exc)) from None


def write_labels_csv(
    path: str | Path,
    rows: Iterable[tuple[Mapping[str, str], Sequence[float] | np.ndarray, float]],
) -> int:
    """Write a labels CSV with the ``synthetic`` column, atomically (temporary file, then rename).

    Args:
        path: Destination.
        rows: (meta with the six ``META_COLUMNS``, 26 label values, synthetic 0/1) per row.

    Returns:
        Number of rows written.
    """
    return write_labels_table(path, rows, synthetic=True)
