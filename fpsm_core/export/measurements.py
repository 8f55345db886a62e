"""The reader's measurements as a Grayscale Softcopy Presentation State, layer "MEASUREMENTS".

Each annotation becomes GSPS graphic objects in image pixel units (PS3.3 C.10.5): a length, an
angle and an arrow are polylines (the arrow with a two-stroke head at its tip), a Cobb angle and a
CTR two polylines, a rectangle a closed polyline, an ellipse an ELLIPSE (the ends of its major
then minor axis); each measurement's value goes with it as a text object (its bounding box just
beside the shape), so a PACS viewer shows the numbers the reader saw. A text annotation is a text
object anchored at its point. The window is the source's own, as for the AI presentation state;
a calibration drawn by the reader goes out as the displayed area's Presentation Pixel Spacing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fpsm_core.annotations.measure import measure, original_values, resolve_spacing
from fpsm_core.annotations.model import Annotation, Sheet
from fpsm_core.export.common import MANUFACTURER, finish, series_number
from fpsm_core.export.errors import ExportError
from fpsm_core.export.gsps import _lab, _voi
from fpsm_core.export.source import ExportSource

LAYER = "MEASUREMENTS"
COLOUR = (240, 192, 64)  # the viewer's measurement yellow
PIXEL = hd.pr.AnnotationUnitsValues.PIXEL
# The labels' few non-ASCII signs, spelled out: a text value then needs no character set, which
# many PACS viewers and validators handle badly.
_ASCII = str.maketrans({"·": "-", "²": "2", "°": " deg", "…": "..."})


def _plain(text: str) -> str:
    return text.translate(_ASCII).encode("ascii", "replace").decode("ascii")


def _poly(points: Any, closed: bool = False) -> hd.pr.GraphicObject:
    data = np.asarray(points, dtype=np.float64)
    if closed:
        data = np.vstack([data, data[:1]])
    return hd.pr.GraphicObject(
        graphic_type=hd.pr.GraphicTypeValues.POLYLINE, graphic_data=data, units=PIXEL
    )


def _arrow_head(tail: tuple[float, float], tip: tuple[float, float]) -> list[list[float]]:
    dx, dy = tip[0] - tail[0], tip[1] - tail[1]
    size = max(4.0, 0.15 * math.hypot(dx, dy))
    angle = math.atan2(dy, dx)
    wings = [
        [tip[0] - size * math.cos(angle + s), tip[1] - size * math.sin(angle + s)]
        for s in (0.45, -0.45)
    ]
    return [wings[0], list(tip), wings[1]]


def graphics_of(annotation: Annotation) -> list[hd.pr.GraphicObject]:
    """The graphic objects drawing one annotation (none for a text annotation)."""
    p = [list(q) for q in annotation.points]
    kind = annotation.kind
    if kind in ("length", "angle"):
        return [_poly(p)]
    if kind == "arrow":
        return [_poly(p), _poly(_arrow_head(annotation.points[0], annotation.points[1]))]
    if kind in ("cobb", "ctr"):
        return [_poly(p[:2]), _poly(p[2:])]
    if kind not in ("rectangle", "ellipse"):
        return []
    (x0, y0), (x1, y1) = annotation.points
    if kind == "rectangle":
        return [_poly([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], closed=True)]
    if kind == "ellipse":
        cx, cy, a, b = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        if a >= b:
            axes = [[cx - a, cy], [cx + a, cy], [cx, cy - b], [cx, cy + b]]
        else:
            axes = [[cx, cy - b], [cx, cy + b], [cx - a, cy], [cx + a, cy]]
        return [
            hd.pr.GraphicObject(
                graphic_type=hd.pr.GraphicTypeValues.ELLIPSE,
                graphic_data=np.asarray(axes, dtype=np.float64),
                units=PIXEL,
            )
        ]
    return []


def _text_box(annotation: Annotation, text: str, rows: int, cols: int) -> hd.pr.TextObject:
    """The value beside the shape: a box right of (else left of) its rightmost point."""
    xs = [x for x, _ in annotation.points]
    ys = [y for _, y in annotation.points]
    lines = text.split("\n")
    width = max(8.0, 0.6 * 12 * max(len(line) for line in lines) * max(1.0, cols / 1024))
    height = 14.0 * len(lines) * max(1.0, rows / 1024)
    left = max(xs) + 6
    if left + width > cols - 1:
        left = max(1.0, min(xs) - 6 - width)
    top = min(max(1.0, min(ys)), max(1.0, rows - 1 - height))
    box = (left, top, min(cols - 1.0, left + width), min(rows - 1.0, top + height))
    return hd.pr.TextObject(
        text_value=_plain(" ".join(lines))[:1024],
        units=PIXEL,
        bounding_box=box,
        text_justification=hd.pr.TextJustificationValues.LEFT,
    )


def measurements_presentation_state(sheet: Sheet, source: ExportSource) -> Dataset:
    """The GSPS data set drawing every annotation of ``sheet`` on the source image.

    Raises:
        ExportError: the sheet has nothing to draw.
    """
    if not sheet.annotations:
        raise ExportError(f"{source.image.path} has no measurements or annotations to export.")
    image = source.image
    rows, cols = source.rows, source.columns
    spacing = resolve_spacing(image, sheet.calibration)
    values = (
        original_values(image)
        if any(a.kind in ("ellipse", "rectangle") for a in sheet.annotations)
        else None
    )
    graphics: list[hd.pr.GraphicObject] = []
    texts: list[hd.pr.TextObject] = []
    for annotation in sheet.annotations:
        graphics.extend(graphics_of(annotation))
        if annotation.kind == "text":
            x, y = annotation.points[0]
            texts.append(
                hd.pr.TextObject(
                    text_value=_plain(annotation.text or "text")[:1024],
                    units=PIXEL,
                    anchor_point=(min(max(x, 1.0), cols - 1.0), min(max(y, 1.0), rows - 1.0)),
                    anchor_point_visible=False,
                )
            )
            continue
        text = measure(annotation, values, spacing).text
        if annotation.kind == "arrow":
            text = annotation.text
        if text:
            texts.append(_text_box(annotation, text, rows, cols))
    layer = hd.pr.GraphicLayer(
        layer_name=LAYER,
        order=1,
        description="Reader's measurements and annotations",
        display_color=hd.color.CIELabColor(*_lab(COLOUR)),
    )
    annotation_item = hd.pr.GraphicAnnotation(
        referenced_images=[source.dataset],
        graphic_layer=layer,
        graphic_objects=graphics or None,
        text_objects=texts or None,
    )
    photometric = str(source.dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    shape = (
        hd.PresentationLUTShapeValues.INVERSE
        if photometric == "MONOCHROME1"
        else hd.PresentationLUTShapeValues.IDENTITY
    )
    from fpsm_core import __version__

    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source.dataset],
        series_instance_uid=generate_uid(),
        series_number=series_number(source, "gsps") + 10,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="fpsm viewer",
        software_versions=f"fpsm {__version__}",
        device_serial_number="0",
        content_label="MEASUREMENTS",
        content_description="Reader's measurements",
        graphic_annotations=[annotation_item],
        graphic_layers=[layer],
        voi_lut_transformations=_voi(source) or None,
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape=shape
        ),
    )
    pr.Laterality = source.laterality() or ""
    if sheet.calibration is not None:
        # The reader's calibration goes with the measurements: a receiving viewer then measures
        # in the same millimetres (PS3.3 C.10.4: Presentation Pixel Spacing instead of the ratio).
        mm = f"{sheet.calibration.mm_per_px:.10g}"[:16]
        for area in pr.DisplayedAreaSelectionSequence:
            if "PresentationPixelAspectRatio" in area:
                del area.PresentationPixelAspectRatio
            area.PresentationPixelSpacing = [mm, mm]
    return finish(pr, source, "Measurements (GSPS)", image=False)


def write_measurements_gsps(sheet: Sheet, image: Any, path: str | Path) -> Path:
    """Write the measurements' presentation state for a loaded image to ``path``.

    Raises:
        ExportError: nothing to export, or the file cannot be written.
    """
    from fpsm_core.export.source import export_source

    ds = measurements_presentation_state(sheet, export_source(image))
    out = Path(path)
    try:
        ds.save_as(str(out), enforce_file_format=True)
    except OSError as exc:
        raise ExportError(f"{out}: cannot be written ({exc.strerror}).") from None
    return out
