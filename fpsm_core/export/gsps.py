"""The Grayscale Softcopy Presentation State: the findings' regions as toggleable graphics.

A reader's viewer applying it shows the source image with, on a graphic layer named "AI", each
above-threshold finding's outline (a closed polyline in the finding's colour) and a label with
its name and probability, plus a text line naming the model. It does not change what the reader
sees of the film: the source's own window (and VOI function) is copied, and the presentation LUT
follows the source's photometric interpretation (INVERSE for MONOCHROME1).
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fpsm_core.export.common import (
    COLOURS,
    MANUFACTURER,
    disclaimer_text,
    finish,
    series_number,
)
from fpsm_core.export.evidence import Region
from fpsm_core.export.source import ExportSource, describe_model

LAYER = "AI"


def _voi(source: ExportSource) -> list[hd.pr.SoftcopyVOILUTTransformation]:
    """The source's first window (header), else the loader's window when it is in stored sense."""
    ds = source.dataset
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    function = str(ds.get("VOILUTFunction", "") or "LINEAR")
    if center is None and not source.image.inverted and source.image.window_source != "voi_lut":
        center, width = (float(v) for v in source.image.window)
        function = "LINEAR" if source.image.voi_function == "LINEAR_EXACT" else function
    if center is None or width is None or width <= 0:
        return []
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    return [
        hd.pr.SoftcopyVOILUTTransformation(
            window_center=center,
            window_width=width,
            voi_lut_function=hd.VOILUTFunctionValues(function),
        )
    ]


def presentation_state(result: Any, source: ExportSource, regions: dict[str, Region]) -> Dataset:
    """The GSPS data set for one result."""
    name, version, _, disclaimer = describe_model(result)
    ref = source.dataset
    graphics: list[hd.pr.GraphicObject] = []
    texts: list[hd.pr.TextObject] = []
    rank = {f.label: i for i, f in enumerate(result.findings)}
    for label, reg in regions.items():
        f = result.findings[rank[label]]
        graphics.append(
            hd.pr.GraphicObject(
                graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                graphic_data=reg.polygon.astype(np.float64),
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                tracking_id=label,
                tracking_uid=generate_uid(),
            )
        )
        x0, y0, x1, _ = reg.box
        anchor = (max(x0, 1.0), max(y0 - 4.0, 1.0))
        texts.append(
            hd.pr.TextObject(
                text_value=f"{label} {f.probability:.2f}"[:64],
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=anchor,
                anchor_point_visible=False,
            )
        )
    texts.append(
        hd.pr.TextObject(
            text_value=f"AI: {name} ({version}). {disclaimer_text(disclaimer)}"[:1024],
            units=hd.pr.AnnotationUnitsValues.DISPLAY,
            bounding_box=(0.01, 0.01, 0.99, 0.05),
        )
    )
    layer = hd.pr.GraphicLayer(
        layer_name=LAYER,
        order=1,
        description=f"Findings of {name}"[:64],
        display_color=hd.color.CIELabColor(*_lab(COLOURS[0])),
    )
    annotation = hd.pr.GraphicAnnotation(
        referenced_images=[ref],
        graphic_layer=layer,
        graphic_objects=graphics or None,
        text_objects=texts,
    )
    photometric = str(ref.get("PhotometricInterpretation", "MONOCHROME2"))
    shape = (
        hd.PresentationLUTShapeValues.INVERSE
        if photometric == "MONOCHROME1"
        else hd.PresentationLUTShapeValues.IDENTITY
    )
    pr = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[ref],
        series_instance_uid=generate_uid(),
        series_number=series_number(source, "gsps"),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=name[:64],
        software_versions=version,
        device_serial_number="0",
        content_label="AI_FINDINGS",
        content_description=f"Findings of {name}"[:64],
        graphic_annotations=[annotation],
        graphic_layers=[layer],
        voi_lut_transformations=_voi(source) or None,
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape=shape
        ),
    )
    # General Series' Laterality is type 2C; dciodvfy wants it present (empty for a chest).
    pr.Laterality = source.laterality() or ""
    return finish(pr, source, f"AI result {name} (GSPS)", image=False)


def _first(value: Any) -> float | None:
    """The first value of a (possibly multi-valued) DS, or None."""
    if value is None or value == "":
        return None
    try:
        return float(
            value[0] if isinstance(value, list | tuple) or hasattr(value, "append") else value
        )
    except (TypeError, ValueError, IndexError):
        return None


def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """CIELab (L 0-100, a and b -128..127) of an sRGB colour, D65."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return (116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))
