"""Measurements and annotations drawn on a film, free of Qt: the model, the maths, the store.

Geometry lives in IMAGE pixel coordinates (x = column, y = row, pixel centres at +0.5), so an
annotation means the same thing whatever the zoom, rotation or flip of the view that drew it.
:mod:`~fpsm_core.annotations.model` holds the annotation types and an undoable document,
:mod:`~fpsm_core.annotations.measure` the numpy maths (lengths, angles, ROI statistics on the
original pixel values, the cardiothoracic ratio, spacing and calibration), and
:mod:`~fpsm_core.annotations.store` keeps each image's sheet in the study index's SQLite file.
"""

from fpsm_core.annotations.measure import (
    Measurement,
    Spacing,
    header_spacing,
    measure,
    original_values,
    resolve_spacing,
)
from fpsm_core.annotations.model import (
    KINDS,
    Annotation,
    AnnotationDocument,
    AnnotationError,
    Calibration,
    Sheet,
    new_annotation,
)
from fpsm_core.annotations.store import AnnotationStore, export_json, image_key

__all__ = [
    "KINDS",
    "Annotation",
    "AnnotationDocument",
    "AnnotationError",
    "AnnotationStore",
    "Calibration",
    "Measurement",
    "Sheet",
    "Spacing",
    "export_json",
    "header_spacing",
    "image_key",
    "measure",
    "new_annotation",
    "original_values",
    "resolve_spacing",
]
