"""Annotations of one image (a :class:`Sheet`) and the undoable document the viewer edits.

An :class:`Annotation` is a kind, its defining points in image pixels and a free text (the text
of a text or arrow annotation, a note on a measurement). Points by kind:

- ``length``: two ends; ``arrow``: tail, then the tip the head points at; ``text``: the anchor.
- ``angle``: first arm end, vertex, second arm end.
- ``cobb``: two ends of the first line (e.g. an upper end plate), two of the second.
- ``ellipse`` / ``rectangle``: two opposite corners of the bounding box.
- ``ctr``: the cardiac span's two ends, then the internal thoracic span's; each span is kept
  horizontal (its second end takes the first end's row), as the ratio is of horizontal widths.

A :class:`Calibration` says how many mm one pixel is, from a known length drawn on the film; it
is part of the sheet, so it is stored and undone with it. :class:`AnnotationDocument` keeps the
sheet and its history (whole sheets, which are small and immutable, so undo is exact), and calls
its listeners after every change so the viewer can redraw and save at once.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fpsm_core.errors import FpsmError

KINDS = ("length", "angle", "cobb", "ellipse", "rectangle", "arrow", "text", "ctr")
N_POINTS = {
    "length": 2,
    "angle": 3,
    "cobb": 4,
    "ellipse": 2,
    "rectangle": 2,
    "arrow": 2,
    "text": 1,
    "ctr": 4,
}
FORMAT = "fpsm-annotations/1"
Point = tuple[float, float]


class AnnotationError(FpsmError):
    """A stored or imported annotation sheet cannot be read (one sentence)."""


@dataclass(frozen=True)
class Annotation:
    """One measurement or mark; ``points`` in image pixels (x, y)."""

    id: str
    kind: str
    points: tuple[Point, ...]
    text: str = ""

    def moved(self, dx: float, dy: float) -> Annotation:
        """The same annotation shifted by (dx, dy) pixels."""
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))

    def with_point(self, index: int, point: Point) -> Annotation:
        """One point moved (the kind's constraints re-applied)."""
        points = list(self.points)
        points[index] = (float(point[0]), float(point[1]))
        if self.kind == "ctr" and index % 2 == 0:  # a span's first end carries its row
            points[index + 1] = (points[index + 1][0], points[index][1])
        return replace(self, points=constrain(self.kind, points))

    def with_text(self, text: str) -> Annotation:
        return replace(self, text=str(text))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "points": [[x, y] for x, y in self.points],
            "text": self.text,
        }


def constrain(kind: str, points: Sequence[Point]) -> tuple[Point, ...]:
    """Points with the kind's rule applied (CTR spans horizontal: an end takes its start's row)."""
    pts = [(float(x), float(y)) for x, y in points]
    if kind == "ctr":
        for i in range(1, len(pts), 2):
            pts[i] = (pts[i][0], pts[i - 1][1])
    return tuple(pts)


def new_annotation(kind: str, points: Sequence[Point], text: str = "") -> Annotation:
    """A new annotation with a fresh id; raises ValueError for an unknown kind or point count."""
    if kind not in N_POINTS:
        raise ValueError(f"unknown annotation kind {kind!r}")
    if len(points) != N_POINTS[kind]:
        raise ValueError(f"a {kind} needs {N_POINTS[kind]} points, not {len(points)}")
    return Annotation(uuid.uuid4().hex[:12], kind, constrain(kind, points), str(text))


@dataclass(frozen=True)
class Calibration:
    """``mm_per_px`` from a line of ``pixels`` length the user said is ``known_mm`` long."""

    mm_per_px: float
    points: tuple[Point, Point]
    known_mm: float

    @staticmethod
    def from_line(points: Sequence[Point], known_mm: float) -> Calibration:
        """Calibration from a drawn line and its true length; ValueError when either is zero."""
        (x0, y0), (x1, y1) = points
        pixels = math.hypot(x1 - x0, y1 - y0)
        if not (math.isfinite(known_mm) and known_mm > 0):
            raise ValueError("the known length must be a positive number of millimetres")
        if pixels < 1.0:
            raise ValueError("the calibration line must be at least one pixel long")
        p0, p1 = (float(x0), float(y0)), (float(x1), float(y1))
        return Calibration(float(known_mm) / pixels, (p0, p1), float(known_mm))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mm_per_px": self.mm_per_px,
            "points": [list(p) for p in self.points],
            "known_mm": self.known_mm,
        }


@dataclass(frozen=True)
class Sheet:
    """Everything drawn on one image: annotations in drawing order, and the calibration."""

    annotations: tuple[Annotation, ...] = ()
    calibration: Calibration | None = None

    def get(self, annotation_id: str) -> Annotation | None:
        return next((a for a in self.annotations if a.id == annotation_id), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "annotations": [a.to_dict() for a in self.annotations],
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @staticmethod
    def from_json(text: str, where: str = "annotation sheet") -> Sheet:
        """Parse :meth:`to_json`'s output; AnnotationError (naming ``where``) when malformed."""
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r} is not {FORMAT}")
            items = []
            for item in doc["annotations"]:
                kind = str(item["kind"])
                points = [(float(x), float(y)) for x, y in item["points"]]
                if kind not in N_POINTS or len(points) != N_POINTS[kind]:
                    raise ValueError(f"a {kind!r} annotation with {len(points)} points")
                if not all(math.isfinite(v) for p in points for v in p):
                    raise ValueError("a point that is not a finite number")
                items.append(
                    Annotation(str(item["id"]), kind, constrain(kind, points), str(item["text"]))
                )
            cal = doc.get("calibration")
            calibration = None
            if cal is not None:
                (a, b), (c, d) = cal["points"]
                calibration = Calibration(
                    float(cal["mm_per_px"]),
                    ((float(a), float(b)), (float(c), float(d))),
                    float(cal["known_mm"]),
                )
                if not calibration.mm_per_px > 0:
                    raise ValueError("a calibration of zero mm per pixel")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise AnnotationError(f"cannot be read ({exc})", path=where) from None
        return Sheet(tuple(items), calibration)


Listener = Callable[["Sheet"], None]


@dataclass
class AnnotationDocument:
    """The sheet of the image on screen, with undo and redo of every change.

    Each change replaces the sheet, pushes the old one on the undo stack, clears the redo stack
    and calls the listeners with the new sheet. :meth:`reset` (another image opened) starts a new
    history and calls the listeners too, but is not itself undoable.
    """

    sheet: Sheet = field(default_factory=Sheet)
    limit: int = 200
    _undo: list[Sheet] = field(default_factory=list)
    _redo: list[Sheet] = field(default_factory=list)
    _listeners: list[Listener] = field(default_factory=list)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener(self.sheet)

    def reset(self, sheet: Sheet) -> None:
        self.sheet = sheet
        self._undo.clear()
        self._redo.clear()
        self._notify()

    def _change(self, sheet: Sheet) -> None:
        if sheet == self.sheet:
            return
        self._undo.append(self.sheet)
        del self._undo[: -self.limit]
        self._redo.clear()
        self.sheet = sheet
        self._notify()

    def add(self, annotation: Annotation) -> None:
        self._change(replace(self.sheet, annotations=(*self.sheet.annotations, annotation)))

    def update(self, annotation: Annotation) -> None:
        """Replace the annotation with the same id (nothing when it is gone)."""
        items = tuple(annotation if a.id == annotation.id else a for a in self.sheet.annotations)
        self._change(replace(self.sheet, annotations=items))

    def remove(self, annotation_id: str) -> None:
        items = tuple(a for a in self.sheet.annotations if a.id != annotation_id)
        self._change(replace(self.sheet, annotations=items))

    def clear(self) -> None:
        self._change(replace(self.sheet, annotations=()))

    def set_calibration(self, calibration: Calibration | None) -> None:
        self._change(replace(self.sheet, calibration=calibration))

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.sheet)
        self.sheet = self._undo.pop()
        self._notify()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.sheet)
        self.sheet = self._redo.pop()
        self._notify()
        return True
