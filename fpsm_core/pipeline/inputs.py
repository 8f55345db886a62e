"""Input lists: a CXR-LT or MIMIC-CXR-JPG CSV stands for the images it names.

Columns are found by name, never by position (``DATA.md``):

- **CXR-LT** (``train.csv``, ``development.csv``, ``test.csv``; also ``fpsm sim``'s ``labels.csv``):
  ``path`` (2023) or ``fpath`` (2024), relative to the MIMIC-CXR-JPG root.
- **MIMIC-CXR-JPG** (``mimic-cxr-2.0.0-metadata.csv``, ``split.csv``, ``chexpert.csv`` with
  ``dicom_id``): ``dicom_id``, ``subject_id``, ``study_id`` give
  ``files/p<first 2 digits>/p<subject_id>/s<study_id>/<dicom_id>.jpg``.

Relative paths are taken from ``root`` (``--root``), by default the CSV's own folder. Rows keep the
CSV's order; a row naming a file twice is kept once.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from fpsm_core.errors import FpsmError

PATH_COLUMNS = ("path", "fpath")
MIMIC_COLUMNS = ("dicom_id", "subject_id", "study_id")


class InputListError(FpsmError):
    """A CSV given as the input list that names no images."""


def is_input_list(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and path.is_file()


def read_input_list(csv_path: Path, root: Path | None = None) -> list[Path]:
    """The image paths a CXR-LT or MIMIC-CXR-JPG CSV names, in row order.

    Raises:
        InputListError: the CSV cannot be read or has neither layout's columns.
    """
    base = root if root is not None else csv_path.parent
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputListError(f"input list '{csv_path}' cannot be read ({exc}).") from None
    path_column = next((c for c in PATH_COLUMNS if c in columns), None)
    if path_column is None and not all(c in columns for c in MIMIC_COLUMNS):
        raise InputListError(
            f"input list '{csv_path}' has no 'path' or 'fpath' column (CXR-LT) and no "
            "'dicom_id', 'subject_id', 'study_id' columns (MIMIC-CXR-JPG)."
        )
    out: list[Path] = []
    for number, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        relative = row.get(path_column, "") if path_column else _mimic_path(row)
        if not relative:
            raise InputListError(
                f"input list '{csv_path}' line {number} names no image "
                f"(empty {path_column or 'dicom_id/subject_id/study_id'})."
            )
        path = Path(relative)
        out.append(path if path.is_absolute() else base / path)
    return _unique(out)


def _mimic_path(row: dict[str, str]) -> str:
    dicom_id, subject, study = (row.get(c, "") for c in MIMIC_COLUMNS)
    if not (dicom_id and subject and study):
        return ""
    subject = subject.split(".")[0]  # pandas-written CSVs can carry '10000032.0'
    study = study.split(".")[0]
    return f"files/p{subject[:2]}/p{subject}/s{study}/{dicom_id}.jpg"


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out
