"""The maths of measurements: spacing and its source, lengths, angles, ROI statistics, CTR.

Everything takes points in image pixels (x = column, y = row) and returns numbers; no Qt.

**Spacing.** A length is in mm when the film's spacing is known, and every length says where that
spacing came from: ``PixelSpacing`` (calibrated at the patient by the modality), ``ImagerPixelSpacing``
(at the detector: includes the geometric magnification, ~10% on a PA chest), or ``calibrated``
(the user drew a line of known length; it takes precedence over the header, as the user asked for
it). Without any of these, lengths and areas are in pixels and say ``uncalibrated``.

**ROI statistics** are computed on the *original* pixel values (after the Modality LUT, i.e. the
stored values a PACS viewer reports), never on the windowed display: a MONOCHROME1 film is kept
mirrored in display sense by the loader, and :func:`original_values` undoes that exactly (or reads
the file again where the loader's mirror point is not recorded). A pixel belongs to an ROI when its
centre lies inside; the area is the shape's geometric area (pi/4 w h for an ellipse).

**CTR**: the ratio of two horizontal widths, the maximal cardiac width over the maximal internal
thoracic width; each width is the horizontal distance between its span's ends (with square or
anisotropic pixels alike, in mm when known).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.annotations.model import Annotation, Calibration, Point

SOURCES = ("PixelSpacing", "ImagerPixelSpacing", "calibrated")


@dataclass(frozen=True)
class Spacing:
    """(row, column) mm per pixel and where it came from (one of :data:`SOURCES`)."""

    row_mm: float
    col_mm: float
    source: str


@dataclass(frozen=True)
class Measurement:
    """What an annotation measures: a headline ``value`` in ``unit``, the label ``text``.

    ``details`` holds every number shown (ROI mean, SD..., CTR widths), for the panel and JSON.
    """

    kind: str
    value: float | None
    unit: str
    text: str
    details: dict[str, float | str]


def header_spacing(image: Any) -> Spacing | None:
    """The film's own spacing and its source keyword, None when missing or zero.

    Reads the keyword from the image (``spacing_source``) when the loader recorded it, else from
    the DICOM header (PixelSpacing first, as the loader does); a raster with a spacing is taken as
    ``PixelSpacing``.
    """
    spacing = getattr(image, "spacing_mm", None)
    if not spacing or not (spacing[0] > 0 and spacing[1] > 0):
        return None
    source = str(getattr(image, "spacing_source", "") or "")
    if source not in SOURCES:
        source = _header_source(image)
    return Spacing(float(spacing[0]), float(spacing[1]), source)


def _header_source(image: Any) -> str:
    if getattr(image, "source_format", "dicom") != "dicom":
        return "PixelSpacing"
    try:
        import pydicom

        from fpsm_core.io.dicom_header import spacing_from_header

        ds = pydicom.dcmread(
            str(image.path),
            stop_before_pixels=True,
            specific_tags=["PixelSpacing", "ImagerPixelSpacing"],
        )
        _, source = spacing_from_header(ds, [])
    except Exception:  # the loader read this header once already; fall back to the usual one
        source = ""
    return source or "PixelSpacing"


def resolve_spacing(image: Any, calibration: Calibration | None) -> Spacing | None:
    """The spacing measurements use: the user's calibration, else the header's, else None."""
    if calibration is not None:
        return Spacing(calibration.mm_per_px, calibration.mm_per_px, "calibrated")
    return header_spacing(image)


def length(p0: Point, p1: Point, spacing: Spacing | None) -> tuple[float, str]:
    """Length of a segment: (value, "mm") with a spacing, else (value, "px")."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    if spacing is None:
        return math.hypot(dx, dy), "px"
    return math.hypot(dx * spacing.col_mm, dy * spacing.row_mm), "mm"


def _vec(p0: Point, p1: Point, spacing: Spacing | None) -> np.ndarray:
    sx, sy = (spacing.col_mm, spacing.row_mm) if spacing is not None else (1.0, 1.0)
    return np.array([(p1[0] - p0[0]) * sx, (p1[1] - p0[1]) * sy])


def angle_deg(a: Point, vertex: Point, c: Point, spacing: Spacing | None = None) -> float:
    """The angle at ``vertex`` between the arms to ``a`` and ``c``, 0..180 degrees.

    Computed in mm space, so anisotropic pixels give the true angle.
    """
    u, v = _vec(vertex, a, spacing), _vec(vertex, c, spacing)
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    if nu == 0 or nv == 0:
        return 0.0
    cos = float(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def cobb_deg(points: Sequence[Point], spacing: Spacing | None = None) -> float:
    """The Cobb angle: the angle between two lines (0..90 degrees), whichever way each was drawn."""
    u, v = _vec(points[0], points[1], spacing), _vec(points[2], points[3], spacing)
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    if nu == 0 or nv == 0:
        return 0.0
    cos = abs(float(np.dot(u, v))) / (nu * nv)
    return math.degrees(math.acos(min(1.0, cos)))


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the original pixel values inside an ROI; area in ``area_unit``."""

    mean: float
    sd: float
    minimum: float
    maximum: float
    n: int
    area: float
    area_unit: str


def roi_mask(
    shape: tuple[int, int], kind: str, p0: Point, p1: Point
) -> tuple[tuple[slice, slice], np.ndarray]:
    """The ROI's pixels: (row slice, column slice) of the image and a bool mask over that crop."""
    x0, x1 = sorted((p0[0], p1[0]))
    y0, y1 = sorted((p0[1], p1[1]))
    rows, cols = shape
    # Pixel (r, c) has its centre at (c + 0.5, r + 0.5): the centres inside [x0, x1].
    c0, c1 = max(0, math.ceil(x0 - 0.5)), min(cols, math.floor(x1 - 0.5) + 1)
    r0, r1 = max(0, math.ceil(y0 - 0.5)), min(rows, math.floor(y1 - 0.5) + 1)
    c1, r1 = max(c0, c1), max(r0, r1)
    yy = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    if kind == "ellipse":
        a, b = (x1 - x0) / 2, (y1 - y0) / 2
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if a <= 0 or b <= 0:
            mask = np.zeros((r1 - r0, c1 - c0), bool)
        else:
            mask = ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1.0
    else:
        mask = np.ones((r1 - r0, c1 - c0), bool)
    return (slice(r0, r1), slice(c0, c1)), mask


def roi_stats(
    values: np.ndarray, kind: str, p0: Point, p1: Point, spacing: Spacing | None
) -> RoiStats:
    """Mean, SD (population), min, max and pixel count of ``values`` inside, and the area."""
    where, mask = roi_mask((int(values.shape[0]), int(values.shape[1])), kind, p0, p1)
    inside = np.asarray(values[where], dtype=np.float64)[mask]
    w, h = abs(p1[0] - p0[0]), abs(p1[1] - p0[1])
    area = w * h * (math.pi / 4 if kind == "ellipse" else 1.0)
    unit = "px²"
    if spacing is not None:
        area *= spacing.row_mm * spacing.col_mm
        unit = "mm²"
    if inside.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, 0, area, unit)
    return RoiStats(
        float(inside.mean()),
        float(inside.std()),
        float(inside.min()),
        float(inside.max()),
        int(inside.size),
        float(area),
        unit,
    )


def ctr(points: Sequence[Point], spacing: Spacing | None) -> tuple[float, float, float]:
    """(cardiac width, thoracic width, ratio) from the four ends of the two horizontal spans."""
    scale = spacing.col_mm if spacing is not None else 1.0
    cardiac = abs(points[1][0] - points[0][0]) * scale
    thoracic = abs(points[3][0] - points[2][0]) * scale
    return cardiac, thoracic, (cardiac / thoracic if thoracic > 0 else float("nan"))


def spacing_tag(spacing: Spacing | None) -> str:
    """How a length was scaled, shown next to it: the header keyword, calibrated, uncalibrated."""
    return "uncalibrated" if spacing is None else spacing.source


def _fmt(value: float) -> str:
    return f"{value:.6g}" if abs(value) < 1e5 else f"{value:.4g}"


def measure(
    annotation: Annotation, values: np.ndarray | None, spacing: Spacing | None
) -> Measurement:
    """What an annotation measures on an image (``values``: original pixel values, for ROIs)."""
    kind, pts, note = annotation.kind, annotation.points, annotation.text
    tag = spacing_tag(spacing)
    unit_len = "mm" if spacing is not None else "px"
    if kind == "length":
        value, unit = length(pts[0], pts[1], spacing)
        text = f"{value:.1f} {unit} · {tag}"
        return Measurement(kind, value, unit, _noted(text, note), {"length": value, "spacing": tag})
    if kind == "angle":
        value = angle_deg(pts[0], pts[1], pts[2], spacing)
        return Measurement(kind, value, "deg", _noted(f"{value:.1f}°", note), {"angle": value})
    if kind == "cobb":
        value = cobb_deg(pts, spacing)
        return Measurement(kind, value, "deg", _noted(f"Cobb {value:.1f}°", note), {"cobb": value})
    if kind in ("ellipse", "rectangle"):
        if values is None:
            return Measurement(kind, None, "", note, {})
        s = roi_stats(values, kind, pts[0], pts[1], spacing)
        text = (
            f"mean {_fmt(s.mean)}  SD {_fmt(s.sd)}\nmin {_fmt(s.minimum)}  max {_fmt(s.maximum)}"
            f"\narea {s.area:.1f} {s.area_unit} · {tag}"
        )
        details: dict[str, float | str] = {
            "mean": s.mean,
            "sd": s.sd,
            "min": s.minimum,
            "max": s.maximum,
            "pixels": s.n,
            "area": s.area,
            "area_unit": s.area_unit,
            "spacing": tag,
        }
        return Measurement(kind, s.area, s.area_unit, _noted(text, note), details)
    if kind == "ctr":
        cardiac, thoracic, ratio = ctr(pts, spacing)
        text = f"CTR {ratio:.2f}  (heart {cardiac:.1f} / thorax {thoracic:.1f} {unit_len})"
        details = {"ctr": ratio, "cardiac": cardiac, "thoracic": thoracic, "unit": unit_len}
        return Measurement(kind, ratio, "", _noted(text, note), details)
    return Measurement(kind, None, "", note, {})  # arrow, text: their text is the mark


def _noted(text: str, note: str) -> str:
    return f"{note}: {text}" if note else text


def original_values(image: Any) -> np.ndarray:
    """The film's original pixel values (after the Modality LUT), for ROI statistics.

    The loader keeps pixels in display sense; where it mirrored a MONOCHROME1 (or INVERSE) film
    about the header's window centre, the mirror is undone here exactly. Where the mirror point
    is not recorded (no header window) or a VOI LUT was applied, the frame is decoded again from
    the file; a raster's pixels are its values.
    """
    pixels = np.asarray(image.pixels)
    inverted = bool(getattr(image, "inverted", False))
    source = str(getattr(image, "window_source", "window"))
    if not inverted and source != "voi_lut":
        return pixels
    function = str(getattr(image, "voi_function", "LINEAR"))
    if inverted and source == "window":
        pivot = 2.0 * float(image.window[0]) - (1.0 if function == "LINEAR" else 0.0)
        return np.subtract(np.float32(pivot), pixels, dtype=np.float32)
    return _decode_again(Path(image.path), int(getattr(image, "frame", 0)), pixels)


def _decode_again(path: Path, frame: int, fallback: np.ndarray) -> np.ndarray:
    try:
        import pydicom

        from fpsm_core.io.dicom_pixels import decode_frame, modality_lut

        ds = pydicom.dcmread(str(path))
        raw, _ = decode_frame(path, ds, frame)
        values = modality_lut(ds, raw, [])
    except Exception:  # the loader decoded this file a moment ago; keep what it gave
        return fallback
    return values if values.shape == fallback.shape else fallback
