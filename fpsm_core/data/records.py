"""Label tables users bring, read into one shape: a :class:`RecordSet` of image paths and targets.

Readers exist for the CXR-LT 2023/2024 CSVs over a MIMIC-CXR-JPG root, NIH ChestX-ray14's
``Data_Entry_2017.csv``, the DADAM output (CXR-LT layout plus a ``synthetic`` 0/1 column), MURA's
path lists and any generic CSV with a path column and label columns. Columns are found by name,
never by position. Targets are always laid out in the order of ``labels``; for the chest formats
that is the 26 CXR-LT labels, with ``known`` marking the classes the source actually annotates
(NIH labels 15 of them: the rest are unknown, not negative, and training must not learn them as 0).

Images listed but absent on disk are dropped and summarised once (``RecordSet.missing``), never
fatal: a MIMIC mirror with a few missing JPEGs still trains.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fpsm_core.errors import FpsmError
from fpsm_core.io.studies import image_files
from fpsm_core.labels import LABEL_INDEX, LABELS, UnknownLabelError, to_cxrlt
from fpsm_core.labels_table import LabelsTableError, label_value, read_labels_table

FORMATS = ("auto", "cxrlt", "dadam", "nih", "generic", "mura")
PATH_COLUMNS = ("path", "fpath", "Path", "image", "filename", "file", "Image Index")
PATIENT_COLUMNS = ("subject_id", "patient_id", "Patient ID", "patient", "PatientID")
IMAGE_ID_COLUMNS = ("dicom_id", "image_id", "Image Index")
MIMIC_PATTERN = re.compile(r"p(\d+)[/\\]s(\d+)[/\\]([^/\\]+?)(?:\.\w+)?$")
MURA_PATTERN = re.compile(r"(patient\d+)[/\\](study\d+)_(positive|negative)", re.IGNORECASE)


class DatasetError(FpsmError):
    """A label table that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class RecordSet:
    """Images with their targets, in one table.

    Attributes:
        paths: image file paths (absolute, or relative to the working directory).
        targets: (N, C) float32 in [0, 1], columns in ``labels`` order.
        labels: class names of the target columns.
        known: (C,) bool, the classes the source annotates (unknown ones are excluded from losses
            and metrics).
        patient_ids: one per image; the default split keeps a patient's images together.
        image_ids: e.g. the MIMIC ``dicom_id`` (submission files are keyed by it).
        synthetic: (N,) bool, images made by DADAM (fed to the synthetic embedding).
        source: the CSV the records came from.
        missing: listed images that were not found on disk (already left out).
    """

    paths: tuple[str, ...]
    targets: np.ndarray
    labels: tuple[str, ...]
    known: np.ndarray
    patient_ids: tuple[str, ...]
    image_ids: tuple[str, ...]
    synthetic: np.ndarray
    source: str = ""
    missing: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def subset(self, indices: Sequence[int] | np.ndarray) -> RecordSet:
        """The records at ``indices`` (in that order); ``missing`` is kept."""
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            paths=tuple(self.paths[i] for i in idx),
            targets=self.targets[idx],
            patient_ids=tuple(self.patient_ids[i] for i in idx),
            image_ids=tuple(self.image_ids[i] for i in idx),
            synthetic=self.synthetic[idx],
        )

    def sample(self, n: int | None, seed: int = 0) -> RecordSet:
        """A random subset of at most ``n`` records (all when ``n`` is None), order kept."""
        if n is None or n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        return self.subset(np.sort(rng.choice(len(self), size=int(n), replace=False)))

    def positives(self) -> np.ndarray:
        """(C,) positive count per class (soft labels counted when >= 0.5)."""
        return (self.targets >= 0.5).sum(axis=0).astype(np.int64)

    def missing_summary(self) -> str | None:
        """One sentence about missing images, or None when every listed image was found."""
        if not self.missing:
            return None
        n = len(self.missing)
        total = n + len(self)
        return (
            f"{n} of {total} images listed in {self.source} were not found and are left out "
            f"(first: {self.missing[0]})."
        )


def concat_records(sets: Sequence[RecordSet]) -> RecordSet:
    """Stack record sets with the same labels (e.g. CXR-LT train plus DADAM images)."""
    if not sets:
        raise DatasetError("no record sets to combine.")
    first = sets[0]
    for other in sets[1:]:
        if other.labels != first.labels:
            raise DatasetError(
                f"{other.source} has labels that differ from {first.source}; cannot combine them."
            )
    return RecordSet(
        paths=tuple(p for s in sets for p in s.paths),
        targets=np.concatenate([s.targets for s in sets]),
        labels=first.labels,
        known=np.logical_and.reduce([s.known for s in sets]),
        patient_ids=tuple(p for s in sets for p in s.patient_ids),
        image_ids=tuple(p for s in sets for p in s.image_ids),
        synthetic=np.concatenate([s.synthetic for s in sets]),
        source=" + ".join(s.source for s in sets),
        missing=tuple(m for s in sets for m in s.missing),
    )


# -- CSV plumbing ------------------------------------------------------------------------------


def _read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path} cannot be read as a CSV file ({exc}).") from None
    if not rows:
        raise DatasetError(f"{path} is empty.")
    header = [h.strip() for h in rows[0]]
    body = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    return header, body


def _column(header: Sequence[str], candidates: Iterable[str]) -> int | None:
    lowered = {h.lower(): i for i, h in enumerate(header)}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def _label_value(cell: str, path: Path, row: int, column: str) -> float:
    """The one value rule of :mod:`fpsm_core.labels_table`, raising :class:`DatasetError`."""
    try:
        return label_value(cell, path=path, row=row, column=column)
    except LabelsTableError as exc:
        raise DatasetError(str(exc)) from None


def _resolve(root: Path, raw: str) -> str:
    raw = raw.strip()
    return raw if os.path.isabs(raw) else str(root / raw)


def _finish(
    *,
    source: Path,
    paths: list[str],
    targets: np.ndarray,
    labels: tuple[str, ...],
    known: np.ndarray,
    patients: list[str],
    image_ids: list[str],
    synthetic: np.ndarray,
    check_files: bool,
) -> RecordSet:
    if not paths:
        raise DatasetError(f"{source} lists no images.")
    missing: tuple[str, ...] = ()
    if check_files:
        exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
        missing = tuple(p for p, ok in zip(paths, exists, strict=True) if not ok)
        if exists.sum() == 0:
            raise DatasetError(
                f"none of the {len(paths)} images listed in {source} exist (first: {paths[0]}); "
                "check the image root."
            )
        keep = np.flatnonzero(exists)
        if missing:
            paths = [paths[i] for i in keep]
            patients = [patients[i] for i in keep]
            image_ids = [image_ids[i] for i in keep]
            targets, synthetic = targets[keep], synthetic[keep]
    return RecordSet(
        paths=tuple(paths),
        targets=targets.astype(np.float32, copy=False),
        labels=labels,
        known=known,
        patient_ids=tuple(patients),
        image_ids=tuple(image_ids),
        synthetic=synthetic.astype(bool, copy=False),
        source=str(source),
        missing=missing,
    )


# -- readers -----------------------------------------------------------------------------------


def read_cxrlt(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
    require_synthetic: bool = False,
) -> RecordSet:
    """Read a CXR-LT 2023/2024 label CSV (or a DADAM output CSV in the same layout).

    Args:
        csv_path: ``train.csv`` / ``development.csv`` or a DADAM ``labels.csv``.
        image_root: the MIMIC-CXR-JPG root that ``path`` (2024: ``fpath``) is relative to;
            default the CSV's folder.
        check_files: drop (and summarise) listed images that do not exist.
        require_synthetic: demand the DADAM ``synthetic`` column.
    """
    path = Path(csv_path)
    try:
        table = read_labels_table(path, require=("path",), require_synthetic=require_synthetic)
    except LabelsTableError as exc:
        raise DatasetError(str(exc)) from None
    root = Path(image_root) if image_root is not None else path.parent
    rels = table.column("path")
    paths = [_resolve(root, rel) for rel in rels]
    matches = [MIMIC_PATTERN.search(rel) for rel in rels]
    if table.has("dicom_id"):
        image_ids = list(table.column("dicom_id"))
    else:
        image_ids = [m.group(3) if m else rel for m, rel in zip(matches, rels, strict=True)]
    subjects = table.column("subject_id")
    patients = [
        s if s else (m.group(1) if m else image_id)
        for s, m, image_id in zip(subjects, matches, image_ids, strict=True)
    ]
    targets = table.values
    synthetic = table.synthetic_values >= 0.5
    return _finish(
        source=path,
        paths=paths,
        targets=targets,
        labels=LABELS,
        known=np.ones(len(LABELS), dtype=bool),
        patients=patients,
        image_ids=image_ids,
        synthetic=synthetic,
        check_files=check_files,
    )


def read_nih(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
) -> RecordSet:
    """Read NIH ChestX-ray14 ``Data_Entry_2017.csv`` into the 26-label CXR-LT layout.

    ``Finding Labels`` is split on ``|`` and mapped with ``to_cxrlt(name, "nih")``; only the
    classes NIH annotates are ``known``. Images are looked up as ``root/<Image Index>`` and, when
    absent there, anywhere below the root (NIH ships them in ``images_001/images/...``).
    """
    path = Path(csv_path)
    header, rows = _read_table(path)
    index_col = _column(header, ("Image Index",))
    finding_col = _column(header, ("Finding Labels",))
    if index_col is None or finding_col is None:
        raise DatasetError(
            f"{path} lacks the 'Image Index' and 'Finding Labels' columns of Data_Entry_2017.csv."
        )
    patient_col = _column(header, ("Patient ID",))
    root = Path(image_root) if image_root is not None else path.parent
    known = np.zeros(len(LABELS), dtype=bool)
    for cxrlt in {to_cxrlt(name, "nih") for name in _NIH_CLASSES}:
        if cxrlt is not None:
            known[LABEL_INDEX[cxrlt]] = True
    n = len(rows)
    targets = np.zeros((n, len(LABELS)), dtype=np.float32)
    names = [row[index_col].strip() for row in rows]
    for r, row in enumerate(rows):
        for finding in row[finding_col].split("|"):
            finding = finding.strip()
            if not finding:
                continue
            try:
                mapped = to_cxrlt(finding, "nih")
            except UnknownLabelError:
                raise DatasetError(
                    f"{path} row {r + 2}: {finding!r} is not an NIH ChestX-ray14 finding."
                ) from None
            if mapped is not None:
                targets[r, LABEL_INDEX[mapped]] = 1.0
    paths = [str(root / name) for name in names]
    if check_files and paths and not os.path.isfile(paths[0]):
        found = {p.name: str(p) for p in image_files(root) if p.suffix.lower() == ".png"}
        paths = [found.get(name, str(root / name)) for name in names]
    patients = [
        row[patient_col].strip() if patient_col is not None else names[r]
        for r, row in enumerate(rows)
    ]
    return _finish(
        source=path,
        paths=paths,
        targets=targets,
        labels=LABELS,
        known=known,
        patients=patients,
        image_ids=[Path(name).stem for name in names],
        synthetic=np.zeros(n, dtype=bool),
        check_files=check_files,
    )


_NIH_CLASSES = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Effusion",
    "Emphysema",
    "Fibrosis",
    "Hernia",
    "Infiltration",
    "Mass",
    "No Finding",
    "Nodule",
    "Pleural_Thickening",
    "Pneumonia",
    "Pneumothorax",
)


def read_generic(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    path_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    patient_column: str | None = None,
    check_files: bool = True,
) -> RecordSet:
    """Read any CSV with an image path column and 0/1 label columns.

    Args:
        path_column: default the first of ``path, fpath, image, filename, file, Image Index``.
        label_columns: default every column named like a CXR-LT label. When all label columns are
            CXR-LT labels, targets use the 26-label layout (the rest unknown); otherwise the
            columns themselves are the classes (e.g. a binary ``abnormal`` column).
        patient_column: default the first of ``subject_id, patient_id, Patient ID, patient``;
            without one every image is its own patient.
    """
    path = Path(csv_path)
    header, rows = _read_table(path)
    path_col = _column(header, (path_column,) if path_column else PATH_COLUMNS)
    if path_col is None:
        wanted = path_column or " / ".join(PATH_COLUMNS[:4])
        raise DatasetError(f"{path} has no image path column ({wanted}).")
    if label_columns is None:
        label_columns = [h for h in header if h.lower() in {x.lower() for x in LABELS}]
        if not label_columns:
            raise DatasetError(
                f"{path} has no column named like a CXR-LT label; name the label columns "
                "(label_columns) for a custom task."
            )
    cols = []
    for name in label_columns:
        col = _column(header, (name,))
        if col is None:
            raise DatasetError(f"{path} has no label column {name!r}.")
        cols.append(col)
    canonical = []
    for name in label_columns:
        try:
            canonical.append(to_cxrlt(name, "cxrlt"))
        except UnknownLabelError:
            canonical.append(None)
    chest = all(c is not None for c in canonical)
    labels: tuple[str, ...] = LABELS if chest else tuple(label_columns)
    known = np.zeros(len(labels), dtype=bool)
    out_index = [LABEL_INDEX[c] for c in canonical] if chest else list(range(len(labels)))  # type: ignore[index]
    known[out_index] = True
    patient_col = _column(header, (patient_column,) if patient_column else PATIENT_COLUMNS)
    if patient_column and patient_col is None:
        raise DatasetError(f"{path} has no patient column {patient_column!r}.")
    id_col = _column(header, IMAGE_ID_COLUMNS)
    syn_col = _column(header, ("synthetic",))
    root = Path(image_root) if image_root is not None else path.parent
    n = len(rows)
    targets = np.zeros((n, len(labels)), dtype=np.float32)
    synthetic = np.zeros(n, dtype=bool)
    paths, patients, image_ids = [], [], []
    for r, row in enumerate(rows):
        if len(row) < len(header):
            raise DatasetError(
                f"{path} row {r + 2} has {len(row)} cells for {len(header)} columns."
            )
        rel = row[path_col].strip()
        paths.append(_resolve(root, rel))
        image_ids.append(row[id_col].strip() if id_col is not None else Path(rel).stem)
        patients.append(row[patient_col].strip() if patient_col is not None else rel)
        for out, col, name in zip(out_index, cols, label_columns, strict=True):
            targets[r, out] = _label_value(row[col], path, r + 2, name)
        if syn_col is not None:
            synthetic[r] = _label_value(row[syn_col], path, r + 2, "synthetic") >= 0.5
    return _finish(
        source=path,
        paths=paths,
        targets=targets,
        labels=labels,
        known=known,
        patients=patients,
        image_ids=image_ids,
        synthetic=synthetic,
        check_files=check_files,
    )


def read_mura(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
) -> RecordSet:
    """Read a MURA v1.1 ``*_image_paths.csv`` (one path a line) as a binary ``Abnormal`` task.

    The label comes from the study folder (``study1_positive``), the patient from ``patientNNNNN``.
    The default root is the folder above ``MURA-v1.1`` (the paths start with it).
    """
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.")
    lines = [ln.split(",")[0].strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DatasetError(f"{path} is empty.")
    if image_root is None:
        first = Path(lines[0]).parts[0] if Path(lines[0]).parts else ""
        root = path.parent.parent if first == path.parent.name else path.parent
    else:
        root = Path(image_root)
    targets = np.zeros((len(lines), 1), dtype=np.float32)
    patients = []
    for r, line in enumerate(lines):
        match = MURA_PATTERN.search(line)
        if match is None:
            raise DatasetError(
                f"{path} line {r + 1}: {line!r} has no patientNNNNN/studyN_positive|negative part."
            )
        targets[r, 0] = 1.0 if match.group(3).lower() == "positive" else 0.0
        patients.append(match.group(1))
    return _finish(
        source=path,
        paths=[_resolve(root, ln) for ln in lines],
        targets=targets,
        labels=("Abnormal",),
        known=np.ones(1, dtype=bool),
        patients=patients,
        image_ids=[ln.replace("/", "_") for ln in lines],
        synthetic=np.zeros(len(lines), dtype=bool),
        check_files=check_files,
    )


def detect_format(csv_path: str | Path) -> str:
    """Guess a label table's format from its header: nih, dadam, cxrlt, mura or generic."""
    path = Path(csv_path)
    header, _ = _read_table(path)
    lowered = {h.lower() for h in header}
    if "finding labels" in lowered and "image index" in lowered:
        return "nih"
    has_labels = all(label.lower() in lowered for label in LABELS)
    if has_labels and ("path" in lowered or "fpath" in lowered):
        return "dadam" if "synthetic" in lowered else "cxrlt"
    if len(header) <= 2 and MURA_PATTERN.search(",".join(header)):
        return "mura"
    return "generic"


def read_dataset(
    fmt: str,
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_files: bool = True,
    path_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    patient_column: str | None = None,
) -> RecordSet:
    """Read a label table of the named format (``auto`` guesses it from the header)."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown data format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    if fmt == "auto":
        fmt = detect_format(csv_path)
    if fmt in ("cxrlt", "dadam"):
        return read_cxrlt(
            csv_path, image_root, check_files=check_files, require_synthetic=fmt == "dadam"
        )
    if fmt == "nih":
        return read_nih(csv_path, image_root, check_files=check_files)
    if fmt == "mura":
        return read_mura(csv_path, image_root, check_files=check_files)
    return read_generic(
        csv_path,
        image_root,
        path_column=path_column,
        label_columns=label_columns,
        patient_column=patient_column,
        check_files=check_files,
    )
