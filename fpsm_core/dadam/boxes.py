"""Lesion boxes from the box-annotated chest X-ray data sets, in CXR-LT class names.

``read_boxes`` understands NIH ChestX-ray14's ``BBox_List_2017.csv`` (malformed header, x,y,w,h at
1024 px), VinDr-CXR's PhysioNet and Kaggle layouts (one row per reader and lesion), ChestX-Det's JSON
and the project's own box files (the VinDr layout with CXR-LT class names, as ``fpsm sim`` writes).
Coordinates come back as corners ``x0, y0, x1, y1`` in the source's pixels. A class with no faithful
CXR-LT counterpart is counted in ``BoxSet.unmapped`` and a row that cannot be used is named in
``BoxSet.invalid``: nothing is dropped without a trace.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from fpsm_core.dadam.box_types import Box, BoxSet, parse_corners
from fpsm_core.dadam.errors import DadamError
from fpsm_core.labels import UnknownLabelError, resolve_nodule_mass, to_cxrlt

FORMATS = ("nih", "vindr", "chestxdet", "fpsm", "coco", "yolo", "voc")
EXCHANGE_FORMATS = ("coco", "yolo", "voc")  # read by fpsm_core.dadam.exchange
READER_POLICIES = ("keep", "mean", "union")

# VinDr's CSVs carry no pixel spacing; its DICOMs mostly lie near 0.14 mm. Used only to split
# "Nodule/Mass" before the image is opened; the library import re-splits with the real spacing.
VINDR_NOMINAL_SPACING_MM = 0.14
NODULE_MASS = "Nodule/Mass"


class _Collector:
    """Accumulates boxes and the reasons rows were not used."""

    def __init__(self, source: str, spacing: float | Mapping[str, float] | None) -> None:
        self.source = source
        self.spacing = spacing
        self.boxes: list[Box] = []
        self.unmapped: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.invalid: list[str] = []
        self.no_box_rows = 0

    def add(
        self,
        row: int,
        image_id: str,
        name: str,
        coords: tuple[Any, Any, Any, Any],
        reader: str | None,
        label_source: str,
    ) -> None:
        label = _map_label(name, label_source)
        if label is _UNKNOWN:
            self.unknown[name.strip()] += 1
            return
        if label is None:
            self.unmapped[name.strip()] += 1
            return
        corners = parse_corners(coords)
        if isinstance(corners, str):
            self.invalid.append(f"row {row} ({image_id}, {name}) {corners}")
            return
        x0, y0, x1, y1 = corners
        if not (x1 > x0 and y1 > y0) or min(x0, y0) < -1.0:
            self.invalid.append(f"row {row} ({image_id}, {name}) has an empty or negative box")
            return
        assert isinstance(label, str)
        # "Nodule/Mass" is split after reader merging, so one lesion never straddles two labels.
        self.boxes.append(Box(image_id, label, x0, y0, x1, y1, self.source, reader, name.strip()))

    def result(self, path: Path, policy: str, iou: float, min_readers: int) -> BoxSet:
        merged = [
            resolve_box_nodule_mass(b, _spacing_for(self.spacing, b.image_id))
            if b.label == NODULE_MASS
            else b
            for b in merge_readers(self.boxes, policy, iou=iou, min_readers=min_readers)
        ]
        return BoxSet(
            path=path,
            source=self.source,
            boxes=tuple(merged),
            unmapped=dict(self.unmapped),
            unknown=dict(self.unknown),
            no_box_rows=self.no_box_rows,
            invalid=tuple(self.invalid),
            reader_boxes=len(self.boxes),
        )


_UNKNOWN: Any = object()


def _map_label(name: str, source: str) -> str | None | Any:
    """CXR-LT name, None (unmappable) or _UNKNOWN (not a class of the source)."""
    try:
        return to_cxrlt(name, source)
    except UnknownLabelError:
        pass
    if source in ("vindr", "fpsm"):  # the project's own files use CXR-LT names in the VinDr layout
        try:
            return to_cxrlt(name, "cxrlt")
        except UnknownLabelError:
            pass
    return _UNKNOWN


def _spacing_for(spacing: float | Mapping[str, float] | None, image_id: str) -> float:
    if spacing is None:
        return VINDR_NOMINAL_SPACING_MM
    if isinstance(spacing, Mapping):
        return float(spacing.get(image_id, VINDR_NOMINAL_SPACING_MM))
    return float(spacing)


def resolve_box_nodule_mass(box: Box, spacing_mm: float) -> Box:
    """Split VinDr's "Nodule/Mass" by the box's mean side in mm (nodule up to 3 cm).

    Args:
        box: A box whose ``source_label`` is "Nodule/Mass" (others are returned unchanged).
        spacing_mm: Pixel spacing of the box's image.

    Returns:
        The box labelled "Nodule" or "Mass".
    """
    if box.source_label != NODULE_MASS and box.label != NODULE_MASS:
        return box
    diameter = 0.5 * (box.width + box.height) * spacing_mm
    return replace(box, label=resolve_nodule_mass(diameter), source_label=NODULE_MASS)


def merge_readers(
    boxes: list[Box], policy: str = "mean", *, iou: float = 0.4, min_readers: int = 1
) -> list[Box]:
    """Combine several readers' boxes of one lesion.

    Boxes of the same image and label whose IoU reaches ``iou`` are linked (single linkage); a
    linked group is one lesion. ``"keep"`` returns every reader's box; ``"mean"`` one box per
    lesion with the readers' mean corners (VinDr's own averaging fusion); ``"union"`` one box
    enclosing all of them. Groups seen by fewer than ``min_readers`` readers are left out.

    Args:
        boxes: Boxes in file order.
        policy: "keep", "mean" or "union".
        iou: Linking threshold.
        min_readers: Minimum distinct readers per lesion (1 keeps single-reader lesions).

    Returns:
        Boxes in the order of each group's first member.
    """
    if policy not in READER_POLICIES:
        raise ValueError(f"Unknown reader policy {policy!r}; expected one of {READER_POLICIES}.")
    if policy == "keep" and min_readers <= 1:
        return list(boxes)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, b in enumerate(boxes):
        groups.setdefault((b.image_id, b.label), []).append(i)
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in groups.values():
        for pos, ia in enumerate(members):
            for ib in members[pos + 1 :]:
                if boxes[ia].iou(boxes[ib]) >= iou:
                    parent[find(ib)] = find(ia)
    clusters: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        clusters.setdefault(find(i), []).append(i)
    out: list[tuple[int, Box]] = []
    for members_idx in clusters.values():
        members_b = [boxes[i] for i in sorted(members_idx)]
        readers = sorted({m.reader for m in members_b if m.reader is not None})
        if max(len(readers), 1) < min_readers:
            continue
        first = min(members_idx)
        if policy == "keep":
            out.extend((i, boxes[i]) for i in sorted(members_idx))
        else:
            out.append((first, _fuse(members_b, policy, readers)))
    out.sort(key=lambda t: t[0])
    return [box for _, box in out]


def _fuse(members: list[Box], policy: str, readers: list[str]) -> Box:
    if len(members) == 1:
        return members[0]
    if policy == "mean":
        n = float(len(members))
        x0 = sum(b.x0 for b in members) / n
        y0 = sum(b.y0 for b in members) / n
        x1 = sum(b.x1 for b in members) / n
        y1 = sum(b.y1 for b in members) / n
    else:
        x0 = min(b.x0 for b in members)
        y0 = min(b.y0 for b in members)
        x1 = max(b.x1 for b in members)
        y1 = max(b.y1 for b in members)
    first = members[0]
    return replace(
        first,
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        reader="+".join(readers) if readers else first.reader,
        readers=max(len(readers), 1),
    )


def read_boxes(
    path: str | Path,
    format: str = "fpsm",
    *,
    readers: str = "mean",
    iou: float = 0.4,
    min_readers: int = 1,
    spacing_mm: float | Mapping[str, float] | None = None,
    image_sizes: Callable[[str], tuple[int, int] | None] | None = None,
) -> BoxSet:
    """Read a box file into CXR-LT-labelled boxes.

    Args:
        path: The file (``.gz`` is decompressed on the fly).
        format: "nih" (BBox_List_2017.csv), "vindr" (PhysioNet ``annotations_*.csv`` or Kaggle
            ``train.csv``; CXR-LT class names are accepted too), "chestxdet" (JSON) or "fpsm" (the
            VinDr layout with CXR-LT class names, as ``fpsm sim`` writes); or "coco" (the JSON
            file), "yolo" or "voc" (the folder), as ``fpsm dadam export`` and CVAT write them
            (see ``fpsm_core.dadam.exchange``; their boxes are kept as they are).
        readers: What to do with several readers' boxes of one lesion: "keep" all, "mean" (one
            box, mean corners; default) or "union" (enclosing box). See :func:`merge_readers`.
        iou: IoU from which two readers' boxes count as the same lesion.
        min_readers: Lesions marked by fewer readers are left out (1 keeps them all).
        spacing_mm: Pixel spacing (one value or image id -> value) used to split VinDr's
            "Nodule/Mass" (nodule up to 3 cm); default ``VINDR_NOMINAL_SPACING_MM``.
        image_sizes: For a YOLO folder without ``images.csv``: image id -> (width, height).

    Returns:
        The boxes and what could not be used.

    Raises:
        DadamError: the file is missing, or is not in the named format.
    """
    path = Path(path)
    if format not in FORMATS:
        raise DadamError(path, f"unknown box format {format!r}; expected one of {list(FORMATS)}")
    if format in EXCHANGE_FORMATS:
        from fpsm_core.dadam.exchange import read_exchange

        return read_exchange(path, format, image_sizes=image_sizes)
    if not path.is_file():
        raise DadamError(path, "box file not found")
    col = _Collector(format, spacing_mm)
    try:
        if format == "nih":
            _read_nih(path, col)
        elif format == "chestxdet":
            _read_chestxdet(path, col)
        else:
            _read_vindr(path, col)
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error, EOFError, OSError) as exc:
        raise DadamError(path, f"cannot be read as a {format} box file ({exc})") from None
    return col.result(path, readers if format != "nih" else "keep", iou, min_readers)


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


def _rows(path: Path) -> Iterator[list[str]]:
    with _open_text(path) as fh:
        yield from csv.reader(fh)


def _read_nih(path: Path, col: _Collector) -> None:
    # The header says "Bbox [x,y,w,h],,," so parse by position after checking it is the NIH file.
    rows = _rows(path)
    header = next(rows, None)
    if header is None or not header or header[0].strip() != "Image Index":
        raise DadamError(
            path, "is not NIH BBox_List_2017.csv (its header must start 'Image Index')"
        )
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 6:
            col.invalid.append(f"row {number} has {len(row)} fields instead of 6")
            continue
        image_id, name = row[0].strip(), row[1].strip()
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError:
            col.invalid.append(f"row {number} ({image_id}, {name}) has non-numeric coordinates")
            continue
        col.add(number, image_id, name, (x, y, x + w, y + h), None, "nih")


def _read_vindr(path: Path, col: _Collector) -> None:
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        fields = {f.strip() for f in (reader.fieldnames or [])}
        needed = {"image_id", "class_name", "x_min", "y_min", "x_max", "y_max"}
        missing = sorted(needed - fields)
        if missing:
            raise DadamError(path, f"lacks the VinDr box columns {', '.join(missing)}")
        label_source = "vindr" if col.source == "vindr" else "cxrlt"
        for number, raw in enumerate(reader, start=2):
            if None in raw:  # more cells than the header has columns: the row is misaligned
                extra = len(raw[None])  # type: ignore[index]
                col.invalid.append(f"row {number} has {extra} cell(s) more than the header")
                continue
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            coords = (row["x_min"], row["y_min"], row["x_max"], row["y_max"])
            if not any(coords):
                if _map_label(row["class_name"], label_source) is _UNKNOWN:
                    col.unknown[row["class_name"]] += 1
                else:
                    col.no_box_rows += 1
                continue
            col.add(
                number,
                row["image_id"],
                row["class_name"],
                coords,
                row.get("rad_id") or None,
                label_source,
            )


def _read_chestxdet(path: Path, col: _Collector) -> None:
    try:
        with _open_text(path) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise DadamError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DadamError(path, "nests its JSON too deeply to be a ChestX-Det file") from None
    if not isinstance(data, list):
        raise DadamError(path, "is not a ChestX-Det file (expected a JSON list of images)")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "file_name" not in item:
            col.invalid.append(f"entry {number} has no file_name")
            continue
        image_id = str(item["file_name"])
        syms = item.get("syms") or []
        boxes = item.get("boxes") or []
        if not isinstance(syms, list) or not isinstance(boxes, list):
            col.invalid.append(f"entry {number} ({image_id}) has syms or boxes that are not lists")
            continue
        if len(syms) != len(boxes):
            col.invalid.append(
                f"entry {number} ({image_id}) has {len(syms)} names for {len(boxes)} boxes"
            )
            continue
        for name, coords in zip(syms, boxes, strict=True):
            if not isinstance(coords, (list, tuple)) or len(coords) != 4:
                col.invalid.append(f"entry {number} ({image_id}, {name}) has a malformed box")
                continue
            col.add(number, image_id, str(name), tuple(coords), None, "chestxdet")  # type: ignore[arg-type]


def nih_spacing(data_entry_csv: str | Path, size: int = 1024) -> dict[str, tuple[float, float]]:
    """Pixel spacing of NIH's 1024 px PNGs, from ``Data_Entry_2017*.csv``.

    The PNGs were resized (stretched) from the original films, so the spacing at 1024 px is the
    original spacing times the original size over 1024, per axis.

    Args:
        data_entry_csv: ``Data_Entry_2017.csv`` or ``Data_Entry_2017_v2020.csv`` (``.gz`` fine).
        size: Side of the PNGs.

    Returns:
        Image file name -> (row, column) spacing in mm.
    """
    path = Path(data_entry_csv)
    try:
        return _nih_spacing(path, size)
    except (UnicodeDecodeError, gzip.BadGzipFile, csv.Error, EOFError, OSError) as exc:
        raise DadamError(path, f"cannot be read as NIH Data_Entry_2017.csv ({exc})") from None


def _nih_spacing(path: Path, size: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    rows = _rows(path)
    header = next(rows, None)
    if header is None or header[0].strip() != "Image Index":
        raise DadamError(
            path, "is not NIH Data_Entry_2017.csv (its header must start 'Image Index')"
        )
    # Header: ..., OriginalImage[Width, Height] (2 cells), OriginalImagePixelSpacing[x, y] (2 cells).
    names = [h.strip() for h in header]
    try:
        w_col = next(i for i, h in enumerate(names) if h.startswith("OriginalImage[Width"))
        s_col = next(i for i, h in enumerate(names) if h.startswith("OriginalImagePixelSpacing"))
    except StopIteration:
        raise DadamError(
            path, "lacks the OriginalImage and OriginalImagePixelSpacing columns"
        ) from None
    for row in rows:
        try:
            width, height = float(row[w_col]), float(row[w_col + 1])
            sx, sy = float(row[s_col]), float(row[s_col + 1])
        except (ValueError, IndexError):
            continue
        out[row[0].strip()] = (sy * height / size, sx * width / size)
    return out
