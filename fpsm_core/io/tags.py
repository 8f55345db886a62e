"""A DICOM header as plain rows: every element (file meta first), nested sequences, search.

:func:`read_tag_rows` reads the header through :func:`fpsm_core.io.dicom_header.read_dataset` (so a
broken file gives the same one-sentence :class:`~fpsm_core.io.ImageLoadError` as everywhere else)
and flattens it into frozen :class:`TagRow` records; bulk data shows as its length. The viewer's tag
browser and anything else that lists tags only ever see these rows, never a pydicom data set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class TagRow:
    """One header element; ``depth`` > 0 inside sequences, ``children`` for sequence items."""

    tag: str
    name: str
    vr: str
    value: str
    depth: int = 0
    children: tuple[TagRow, ...] = ()


def _value_text(element: Any) -> str:
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or element.tag == 0x7FE00010:
        length = getattr(element, "length", None) or len(element.value or b"")
        return f"<{length} bytes>"
    text = str(element.value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _rows(dataset: Any, depth: int) -> tuple[TagRow, ...]:
    out = []
    for element in dataset:
        tag = f"({element.tag.group:04X},{element.tag.element:04X})"
        name = element.keyword or element.name
        if element.VR == "SQ":
            items = tuple(
                TagRow(
                    tag="",
                    name=f"Item {i + 1}",
                    vr="",
                    value="",
                    depth=depth + 1,
                    children=_rows(item, depth + 2),
                )
                for i, item in enumerate(element.value)
            )
            out.append(TagRow(tag, name, "SQ", f"{len(items)} item(s)", depth, items))
        else:
            out.append(TagRow(tag, name, str(element.VR), _value_text(element), depth))
    return tuple(out)


def read_tag_rows(path: str | Path) -> tuple[TagRow, ...]:
    """All header elements (file meta first) of a DICOM file as rows.

    Raises:
        ImageLoadError: the file is not readable DICOM (one sentence naming it).
    """
    from fpsm_core.io.dicom_header import read_dataset  # pydicom: not before the first film

    dataset, _notes = read_dataset(Path(path), stop_before_pixels=True)
    meta = getattr(dataset, "file_meta", None)
    rows = _rows(meta, 0) if meta is not None else ()
    return rows + _rows(dataset, 0)


def image_rows(image: Any) -> tuple[TagRow, ...]:
    """What a non-DICOM image offers instead of tags (format, size, window, identifiers)."""
    fields = [
        ("Source format", getattr(image, "source_format", "")),
        ("Rows x Columns", "x".join(str(x) for x in image.pixels.shape)),
        ("Window (center, width)", str(tuple(round(v, 3) for v in image.window))),
        ("Pixel spacing (mm)", str(getattr(image, "spacing_mm", None))),
        ("Patient ID", getattr(image, "patient_id", None)),
        ("Study UID", getattr(image, "study_uid", None)),
        ("Instance UID", getattr(image, "instance_uid", None)),
        ("View position", getattr(image, "view_position", None)),
    ]
    return tuple(TagRow("", name, "", str(value or "")) for name, value in fields)


def matches(row: TagRow, needle: str) -> bool:
    """Case-insensitive search over tag, name, VR and value, or any child's."""
    if not needle:
        return True
    n = needle.lower()
    if any(n in x.lower() for x in (row.tag, row.name, row.vr, row.value)):
        return True
    return any(matches(child, needle) for child in row.children)
