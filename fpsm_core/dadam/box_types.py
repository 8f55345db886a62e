"""A lesion box and a box file's contents: the types every box reader and writer shares.

Below both :mod:`fpsm_core.dadam.boxes` (the data sets' readers) and
:mod:`fpsm_core.dadam.exchange` (COCO / YOLO / VOC), so neither imports the other at run time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Box:
    """One lesion box.

    Attributes:
        image_id: The image as the source names it (NIH and ChestX-Det: the file name; VinDr and
            fpsm: the image id without extension).
        label: CXR-LT class name.
        x0: Left edge in source pixels.
        y0: Top edge in source pixels.
        x1: Right edge (x0 + width) in source pixels.
        y1: Bottom edge (y0 + height) in source pixels.
        source: "nih", "vindr", "chestxdet" or "fpsm".
        reader: The radiologist id (VinDr ``rad_id``; merged boxes join the ids with "+"), else None.
        source_label: The class as the source spells it (VinDr "Nodule/Mass" stays visible here).
        readers: How many readers' boxes this box stands for.
    """

    image_id: str
    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    source: str
    reader: str | None = None
    source_label: str = ""
    readers: int = 1

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def iou(self, other: Box) -> float:
        """Intersection over union with another box (0 when they do not touch)."""
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class BoxSet:
    """What a box file holds, and what could not be used from it.

    Attributes:
        path: The file read.
        source: Its format.
        boxes: Usable boxes, in file order (merged boxes at the position of their first member).
        unmapped: Source class -> number of boxes whose class has no CXR-LT counterpart.
        unknown: Name -> number of boxes whose class is not a class of the source at all.
        no_box_rows: Rows that name a finding without a box (VinDr "No finding").
        invalid: One sentence per unusable row (bad or empty coordinates), with its row number.
        reader_boxes: Mapped boxes before reader merging (equal to ``len(boxes)`` under "keep").
            Readers' boxes are linked by source class, so a VinDr "Nodule/Mass" lesion is merged
            before it is split into "Nodule" or "Mass".
    """

    path: Path
    source: str
    boxes: tuple[Box, ...]
    unmapped: Mapping[str, int] = field(default_factory=dict)
    unknown: Mapping[str, int] = field(default_factory=dict)
    no_box_rows: int = 0
    invalid: tuple[str, ...] = ()
    reader_boxes: int = 0

    def label_counts(self) -> dict[str, int]:
        """CXR-LT label -> number of boxes."""
        return dict(Counter(b.label for b in self.boxes))

    def summary(self) -> str:
        """A few lines for a terminal: what was read and what was left out, and why."""
        lines = [f"{self.path}: {len(self.boxes)} boxes ({self.source})"]
        if self.reader_boxes != len(self.boxes):
            lines.append(f"  merged from {self.reader_boxes} readers' boxes")
        for name, n in sorted(self.label_counts().items()):
            lines.append(f"  {name}: {n}")
        for name, n in sorted(self.unmapped.items()):
            lines.append(f"  not used (no CXR-LT counterpart): {name}: {n}")
        for name, n in sorted(self.unknown.items()):
            lines.append(f"  not used (unknown class for {self.source}): {name}: {n}")
        if self.no_box_rows:
            lines.append(f"  rows without a box: {self.no_box_rows}")
        if self.invalid:
            lines.append(f"  invalid rows: {len(self.invalid)} (first: {self.invalid[0]})")
        return "\n".join(lines)


def parse_corners(
    coords: Sequence[Any], digits: int | None = None
) -> tuple[float, float, float, float] | str:
    """A box's four corners as floats, or why they are unusable (the shared check of every reader).

    Args:
        coords: (x0, y0, x1, y1) as the file has them.
        digits: round to this many decimals (formats whose x + w drifts by 1e-9).

    Returns:
        The corners, or a predicate for the row's sentence ("has non-numeric coordinates").
    """
    try:
        values = [float(v) for v in coords]
    except (TypeError, ValueError):
        return "has non-numeric coordinates"
    if len(values) != 4:
        return "has non-numeric coordinates"
    if not all(math.isfinite(v) for v in values):
        return "has a coordinate that is not finite"
    if digits is not None:
        values = [round(v, digits) for v in values]
    x0, y0, x1, y1 = values
    return x0, y0, x1, y1
