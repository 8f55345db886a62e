"""Ground-truth boxes beside the maps: which boxes belong to an open image, and how well each map points.

A researcher who opens a study with a box file (VinDr-CXR, NIH ChestX-ray14, ChestX-Det, COCO,
the simulator's ``boxes.csv``, the bundled sample's ``ground_truth.csv``) wants to see the boxes on
the film and, for the finding under study, whether each level's map peaks inside them (pointing
game) and what fraction of its energy lies inside (energy in box). :func:`load_ground_truth` reads
the file through :func:`fpsm_core.dadam.boxes.read_boxes` (the sample's ``file,class_name,...``
layout is read here, with the same corner check); :meth:`GroundTruth.boxes_for` matches an image by
file name, stem or SOP instance UID; :func:`level_scores` computes the metrics with
:mod:`fpsm_core.explain.metrics` on the maps the viewer draws, boxes scaled to the maps' grid.
Boxes are in the source image's pixels, (x0, y0, x1, y1) corners.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.errors import FpsmError
from fpsm_core.explain.metrics import energy_in_box, pointing_game, scale_boxes
from fpsm_core.explain.result_cams import FUSED, LevelKey, ResultCams

FORMATS = ("auto", "fpsm", "vindr", "nih", "chestxdet", "coco", "sample")


class GroundTruthError(FpsmError):
    """A box file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class GroundTruthBox:
    """One ground-truth box: the image key it names, its CXR-LT label, corners in image pixels."""

    image_id: str
    label: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def corners(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """The boxes of a file, by image key.

    Attributes:
        path: the file read; format: the layout it was read as.
        boxes: every usable box, in file order.
        skipped: one sentence per row or class that could not be used.
    """

    path: Path
    format: str
    boxes: tuple[GroundTruthBox, ...]
    skipped: tuple[str, ...] = ()
    _by_key: dict[str, list[GroundTruthBox]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for box in self.boxes:  # by the name as written, and by its stem when it has a suffix
            key = box.image_id.lower()
            for name in {key, Path(key).stem if Path(key).suffix else key}:
                self._by_key.setdefault(name, []).append(box)

    def boxes_for(self, path: str | Path, instance_uid: str | None = None) -> list[GroundTruthBox]:
        """The boxes of an image, matched by file name, then stem, then SOP instance UID."""
        p = Path(path)
        for key in (p.name, p.stem, instance_uid):
            if key and key.lower() in self._by_key:
                return list(self._by_key[key.lower()])
        return []

    def summary(self) -> str:
        images = len({b.image_id for b in self.boxes})
        text = f"{self.path.name}: {len(self.boxes)} box(es) on {images} image(s) ({self.format})"
        return text + (f", {len(self.skipped)} row(s) not used" if self.skipped else "")


def _detect(path: Path) -> str:
    if path.is_dir():
        return "yolo" if (path / "labels").is_dir() else "voc"
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return "chestxdet"
        return "coco" if isinstance(data, dict) and "annotations" in data else "chestxdet"
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = [h.strip() for h in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError):
        return "fpsm"
    if "Image Index" in header:
        return "nih"
    if "file" in header and "class_name" in header:
        return "sample"
    return "fpsm"


def _read_sample(path: Path) -> tuple[list[GroundTruthBox], list[str]]:
    """The bundled sample's ``file,class_name,x_min,y_min,x_max,y_max`` (CXR-LT names)."""
    from fpsm_core.dadam.box_types import parse_corners
    from fpsm_core.labels import to_cxrlt

    boxes, skipped = [], []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for number, row in enumerate(csv.DictReader(fh), start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
            label = to_cxrlt(row.get("class_name", ""), "cxrlt")
            coords = [row.get(k) for k in ("x_min", "y_min", "x_max", "y_max")]
            if not any(coords):
                continue  # an image-level label without a box ("No Finding")
            corners = parse_corners(coords)
            if isinstance(corners, str):
                skipped.append(f"row {number} {corners}")
            elif label is None:
                skipped.append(f"row {number} names {row.get('class_name')!r}, not a CXR-LT label")
            elif not (corners[2] > corners[0] and corners[3] > corners[1]):
                skipped.append(f"row {number} has an empty box")
            else:
                boxes.append(GroundTruthBox(row.get("file", ""), label, *corners))
    return boxes, skipped


def load_ground_truth(path: str | Path, format: str = "auto") -> GroundTruth:
    """Read a box file (``format`` one of :data:`FORMATS`; ``auto`` looks at the file).

    Raises:
        GroundTruthError: the file is missing, unreadable or not in the format.
    """
    from fpsm_core.dadam.boxes import read_boxes
    from fpsm_core.dadam.errors import DadamError

    source = Path(path)
    if format not in FORMATS:
        raise GroundTruthError(f"'{source}': unknown box format {format!r}; use one of {FORMATS}.")
    if not source.exists():
        raise GroundTruthError(f"'{source}': no such box file.")
    kind = _detect(source) if format == "auto" else format
    try:
        if kind == "sample":
            boxes, skipped = _read_sample(source)
        else:
            found = read_boxes(source, kind)
            boxes = [
                GroundTruthBox(b.image_id, b.label, b.x0, b.y0, b.x1, b.y1) for b in found.boxes
            ]
            skipped = list(found.invalid) + [
                f"{n} box(es) of {name!r}, which has no CXR-LT counterpart"
                for name, n in found.unmapped.items()
            ]
    except DadamError as exc:
        raise GroundTruthError(str(exc)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GroundTruthError(f"'{source}' cannot be read as a {kind} box file ({exc}).") from None
    if not boxes:
        raise GroundTruthError(f"'{source}' holds no usable box ({kind} layout).")
    return GroundTruth(source, kind, tuple(boxes), tuple(skipped))


def _at_least_one_cell(box: Sequence[float]) -> tuple[float, float, float, float]:
    """A box narrower than one map cell becomes the cell holding its centre (a small nodule on
    a coarse grid must still be a region, not an empty one)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 - x0 < 1:
        x0 = float(np.floor((x0 + x1) / 2))
        x1 = x0 + 1
    if y1 - y0 < 1:
        y0 = float(np.floor((y0 + y1) / 2))
        y1 = y0 + 1
    return x0, y0, x1, y1


@dataclass(frozen=True)
class LevelScore:
    """The pointing game and energy in box of one map (``level`` a level number or FUSED)."""

    level: LevelKey
    hit: bool
    energy: float


def level_scores(
    cams: ResultCams,
    class_index: int,
    boxes: Sequence[GroundTruthBox | Sequence[float]],
    member: int,
    grid: tuple[int, int],
    image_shape: Sequence[int] | None = None,
) -> list[LevelScore]:
    """Pointing hit and energy in box of the finding's fused map and each level's, for a member.

    Raises:
        fpsm_core.explain.ExplainError: the boxes lie outside the image.

    Args:
        cams: the result's maps; class_index: the finding.
        boxes: the finding's ground-truth boxes on this image (their union is the region).
        member: a member index or ``ENSEMBLE``.
        grid: (rows, cols) the maps are computed on (the viewer's overlay grid).
        image_shape: (rows, cols) of the image the boxes are in (default the result's).
    """
    shape = tuple(image_shape or cams.result.image_shape)
    corners = [b.corners if isinstance(b, GroundTruthBox) else tuple(b) for b in boxes]
    region = [_at_least_one_cell(box) for box in scale_boxes(corners, shape, grid)]
    out = []
    keys: list[LevelKey] = [FUSED, *cams.levels_of(member)]
    for key in keys:
        values: np.ndarray[Any, Any] = cams.map(class_index, key, grid, member=member)
        hit = bool(pointing_game(values, region))
        energy = float(energy_in_box(values, region))
        out.append(LevelScore(key, hit, energy))
    return out
