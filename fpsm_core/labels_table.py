"""The one reader and writer of labels CSVs in the CXR-LT layout, and its one value rule.

The layout is the six metadata columns of ``fpsm_core.labels.CXRLT_META_COLUMNS`` (``path`` may be
``fpath``, as CXR-LT 2024 calls it), the 26 labels of ``LABELS``, and, in DADAM output, a
``synthetic`` column. Columns are found by name (case and surrounding spaces forgiven), never by
position; other columns are kept as they are. Training (:mod:`fpsm_core.data.records`), DADAM
(co-occurrence, planning, reports, generation), the simulator and the DADAM control all read and
write through here, so a cell means the same everywhere.

The value rule, for label and ``synthetic`` cells alike: an empty cell is 0; a number in [0, 1] is
kept as it is (a soft label; it counts as positive from 0.5 on); anything else (``true``, ``-1``,
``nan``, ``yes``, ``2``) is a :class:`LabelsTableError` naming the file, the row and the column.
So is a row with fewer cells than the header, a row with a non-empty cell beyond it (an empty
trailing cell, from a trailing comma, is ignored), a header naming a column twice, and a file that
is not UTF-8 text. Rows are streamed and label values kept as float32, so memory grows with the
rows, not with Python strings per label cell.
"""

from __future__ import annotations

import array
import csv
import gzip
import io
import math
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO, overload

import numpy as np

from fpsm_core.errors import FpsmError, one_sentence, shorten
from fpsm_core.labels import CXRLT_META_COLUMNS, LABELS

META_COLUMNS = CXRLT_META_COLUMNS
SYNTHETIC_COLUMN = "synthetic"
_ALIASES = {"fpath": "path"}  # CXR-LT 2024 spelling -> the canonical name


class LabelsTableError(FpsmError):
    """A labels CSV that breaks the layout or the value rule; names the file, row and column."""

    def where(self) -> str:
        return f"{self.path} " if self.path is not None else ""


def label_value(text: str | None, *, path: Path | None, row: int, column: str) -> float:
    """One cell under the value rule: empty -> 0, a number in [0, 1] kept, anything else refused.

    Args:
        text: The cell (None counts as empty).
        path: The file, for the message.
        row: The row's line number in the file, for the message.
        column: The column's name, for the message.

    Raises:
        LabelsTableError: the cell is neither empty nor a number in [0, 1].
    """
    cell = (text or "").strip()
    if not cell:
        return 0.0
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and 0.0 <= value <= 1.0:
        return value
    hint = " (map uncertain -1 labels before training)" if value < 0 else ""
    raise LabelsTableError(
        f"row {row}: column {column!r} holds {shorten(cell)}; a label must be empty (0) or a "
        f"number from 0 to 1{hint}",
        path=path,
    )


@dataclass(frozen=True, eq=False, init=False)
class LabelsTable:
    """A labels CSV in memory.

    Built by :func:`read_labels_table`, or in memory from rows: ``LabelsTable(path, meta, values,
    synthetic)`` with one metadata mapping per row.

    Attributes:
        path: The file read (None for tables built in memory).
        columns: Every column that is not a label or ``synthetic``, by name, as strings; the six
            metadata columns under their canonical names (``path`` even when the file said
            ``fpath``).
        values: (N, 26) float32 label values in [0, 1], in ``LABELS`` order.
        synthetic_values: (N,) float32 ``synthetic`` values (zeros without that column).
        has_synthetic: Whether the table has a ``synthetic`` column.
        lines: The line number of each row in the file, for messages (empty in memory).
    """

    path: Path | None
    columns: Mapping[str, tuple[str, ...]]
    values: np.ndarray
    synthetic_values: np.ndarray
    has_synthetic: bool
    lines: tuple[int, ...]

    def __init__(
        self,
        path: str | Path | None,
        meta: Sequence[Mapping[str, str]],
        values: np.ndarray | Sequence[Sequence[float]],
        synthetic: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        names = list(dict.fromkeys(k for row in meta for k in row))
        columns = {n: tuple(str(row.get(n, "")) for row in meta) for n in names}
        v = np.asarray(values, dtype=np.float32).reshape(-1, len(LABELS))
        s = np.zeros(len(v), np.float32) if synthetic is None else np.asarray(synthetic, np.float32)
        self._set(
            Path(path) if path is not None else None, columns, v, s, synthetic is not None, ()
        )

    @classmethod
    def from_columns(
        cls,
        path: Path | None,
        columns: Mapping[str, tuple[str, ...]],
        values: np.ndarray,
        synthetic_values: np.ndarray,
        has_synthetic: bool,
        lines: tuple[int, ...] = (),
    ) -> LabelsTable:
        """A table from whole columns (how the reader builds it)."""
        table = cls.__new__(cls)
        table._set(path, columns, values, synthetic_values, has_synthetic, lines)
        return table

    def _set(
        self,
        path: Path | None,
        columns: Mapping[str, tuple[str, ...]],
        values: np.ndarray,
        synthetic_values: np.ndarray,
        has_synthetic: bool,
        lines: tuple[int, ...],
    ) -> None:
        if values.shape[0] != synthetic_values.shape[0] or any(
            len(c) != values.shape[0] for c in columns.values()
        ):
            raise ValueError("a labels table needs the same number of rows in every column")
        for name, value in (
            ("path", path),
            ("columns", dict(columns)),
            ("values", values),
            ("synthetic_values", synthetic_values),
            ("has_synthetic", has_synthetic),
            ("lines", lines),
        ):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def has(self, name: str) -> bool:
        """Whether the file has column ``name`` (canonical names for the metadata)."""
        return name in self.columns

    def column(self, name: str) -> tuple[str, ...]:
        """The cells of column ``name``; empty strings when the file has no such column."""
        return self.columns.get(name) or ("",) * len(self)

    @property
    def y(self) -> np.ndarray:
        """(N, 26) uint8 positives: 1 where the label value is at least 0.5."""
        return (self.values >= 0.5).astype(np.uint8)

    @property
    def synthetic(self) -> np.ndarray:
        """(N,) uint8, 1 for rows made by DADAM (``synthetic`` at least 0.5)."""
        return (self.synthetic_values >= 0.5).astype(np.uint8)

    @cached_property
    def meta(self) -> Sequence[Mapping[str, str]]:
        """Per row, the six metadata columns (empty when absent) and any other column."""
        return _MetaRows(self)

    @property
    def ids(self) -> list[str]:
        """The ``dicom_id`` of each row."""
        return list(self.column("dicom_id"))

    def counts(self) -> dict[str, int]:
        """Label -> number of positive rows."""
        return {name: int(n) for name, n in zip(LABELS, self.y.sum(axis=0), strict=True)}


class _MetaRows(Sequence[Mapping[str, str]]):
    """Row dictionaries built on access, so a 300k-row table holds columns, not 300k dicts."""

    def __init__(self, table: LabelsTable) -> None:
        self._names = list(dict.fromkeys([*META_COLUMNS, *table.columns]))
        self._cols = [table.column(n) for n in self._names]
        self._n = len(table)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> Mapping[str, str]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, str]]: ...

    def __getitem__(self, index: int | slice) -> Mapping[str, str] | Sequence[Mapping[str, str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        return {name: col[index] for name, col in zip(self._names, self._cols, strict=True)}

    def __iter__(self) -> Iterator[Mapping[str, str]]:
        for i in range(self._n):
            yield self[i]


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _canonical(header: Sequence[str], path: Path) -> list[str]:
    known = {n.lower(): n for n in (*META_COLUMNS, *LABELS, SYNTHETIC_COLUMN)}
    names: list[str] = []
    for raw in header:
        name = raw.strip()
        names.append(known.get(name.lower(), name))
    seen: set[str] = set()
    for name in names:
        if name and name.lower() in seen:
            raise LabelsTableError(f"names the column {name!r} twice", path=path)
        seen.add(name.lower())
    if "path" not in names and "fpath" in {n.lower() for n in names}:
        names = ["path" if n.lower() == "fpath" else n for n in names]
    return names


def read_labels_table(
    path: str | Path, *, require: Sequence[str] = (), require_synthetic: bool = False
) -> LabelsTable:
    """Read a CXR-LT-layout labels CSV (``.gz`` fine) under the one value rule.

    Args:
        path: The CSV.
        require: Metadata columns the caller needs (``path`` is satisfied by ``fpath``).
        require_synthetic: Demand the ``synthetic`` column (DADAM output).

    Raises:
        LabelsTableError: the file is missing, unreadable, not UTF-8, lacks a required column or
            any of the 26 labels, or has a row or cell that breaks the layout or the value rule.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsTableError("does not exist", path=path)
    try:
        with _open(path) as fh:
            return _read(fh, path, require, require_synthetic)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex() if exc.object else "?"
        raise LabelsTableError(
            f"is not UTF-8 text (byte 0x{byte} cannot be decoded); save it as UTF-8", path=path
        ) from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise LabelsTableError(
            f"cannot be read as a gzip file ({one_sentence(exc)})", path=path
        ) from None
    except OSError as exc:
        raise LabelsTableError(f"cannot be read ({one_sentence(exc)})", path=path) from None


def _read(fh: IO[str], path: Path, require: Sequence[str], require_synthetic: bool) -> LabelsTable:
    reader = csv.reader(fh)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise LabelsTableError(f"line 1 is not CSV ({one_sentence(exc)})", path=path) from None
    if not header or not any(h.strip() for h in header):
        raise LabelsTableError("is empty (no header row)", path=path)
    names = _canonical(header, path)
    index = {n: i for i, n in enumerate(names)}
    if "path" in require and "path" not in index:
        raise LabelsTableError(
            "has no 'path' (or 'fpath') column; it is not a CXR-LT CSV", path=path
        )
    lacking = [c for c in require if c not in index]
    if lacking:
        raise LabelsTableError(
            f"has no {lacking[0]!r} column; it is not a CXR-LT labels CSV", path=path
        )
    absent = [label for label in LABELS if label not in index]
    if absent:
        shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
        raise LabelsTableError(
            f"lacks CXR-LT label columns (missing columns: {shown}); expected the 26 CXR-LT "
            "labels by name",
            path=path,
        )
    syn_i = index.get(SYNTHETIC_COLUMN)
    if require_synthetic and syn_i is None:
        raise LabelsTableError("has no 'synthetic' column; it is not DADAM output", path=path)
    label_i = [index[label] for label in LABELS]
    other = [(n, i) for n, i in index.items() if n and n not in LABELS and n != SYNTHETIC_COLUMN]
    cols: dict[str, list[str]] = {n: [] for n, _ in other}
    values = array.array("f")
    synthetic = array.array("f")
    lines: list[int] = []
    width = len(names)
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue  # blank lines
            if len(row) < width:
                raise LabelsTableError(
                    f"row {line} has {len(row)} cells for {width} columns", path=path
                )
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                raise LabelsTableError(
                    f"row {line} has a value beyond the {width} columns of the header "
                    f"({shorten(next(c.strip() for c in row[width:] if c.strip()))})",
                    path=path,
                )
            for name, i in other:
                cols[name].append(row[i].strip())
            values.extend(
                label_value(row[i], path=path, row=line, column=label)
                for i, label in zip(label_i, LABELS, strict=True)
            )
            synthetic.append(
                label_value(row[syn_i], path=path, row=line, column=SYNTHETIC_COLUMN)
                if syn_i is not None
                else 0.0
            )
            lines.append(line)
    except csv.Error as exc:
        raise LabelsTableError(
            f"row {reader.line_num} is not CSV ({one_sentence(exc)})", path=path
        ) from None
    return LabelsTable.from_columns(
        path=path,
        columns={n: tuple(v) for n, v in cols.items()},
        values=np.frombuffer(values, dtype=np.float32).reshape(-1, len(LABELS)).copy(),
        synthetic_values=np.frombuffer(synthetic, dtype=np.float32).copy(),
        has_synthetic=syn_i is not None,
        lines=tuple(lines),
    )


def format_label(value: float) -> str:
    """A label value as the writer spells it: ``0``, ``1``, or the soft value (``0.7``)."""
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"label value {v} is outside [0, 1]")
    return "0" if v == 0.0 else "1" if v == 1.0 else f"{v:.6g}"


LabelRow = tuple[Mapping[str, object], Sequence[float] | np.ndarray, float]
"""(metadata by column name, 26 label values in ``LABELS`` order, synthetic value)."""


def write_labels_table(
    path: str | Path,
    rows: Iterable[LabelRow],
    *,
    synthetic: bool = True,
    extra_columns: Sequence[str] = (),
) -> int:
    """Write a labels CSV atomically (a temporary file beside it, then a rename).

    Args:
        path: Destination.
        rows: One :data:`LabelRow` per image; metadata columns missing from a row are empty.
        synthetic: Write the ``synthetic`` column (DADAM output); without it the third item of
            each row is ignored (the simulator's and the CXR-LT layout).
        extra_columns: Further metadata columns, written after the labels.

    Returns:
        Number of rows written.
    """
    path = Path(path)
    # Unique per writer: two runs into one folder never share a temporary name.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    header = [*META_COLUMNS, *LABELS, *([SYNTHETIC_COLUMN] if synthetic else []), *extra_columns]
    n = 0
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            for meta, labels, syn in rows:
                cells = [str(meta.get(c, "")) for c in META_COLUMNS]
                cells += [format_label(v) for v in labels]
                if synthetic:
                    cells.append(format_label(syn))
                cells += [str(meta.get(c, "")) for c in extra_columns]
                writer.writerow(cells)
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n
