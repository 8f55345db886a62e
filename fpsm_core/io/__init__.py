"""Image and study I/O: radiographs a radiologist can trust, study indexing, de-identification.

``load_image`` turns a DICOM/PNG/JPEG/TIFF file into an `XRayImage` (float32 pixels in display
sense after the Modality LUT, a window in the same units, spacing and identifiers); every problem
with a user's file is an `ImageLoadError`. ``index_folder`` groups a tree of files into patients,
studies, series and images with a SQLite header cache. ``deidentify`` / ``deidentify_metadata``
are the one de-identification path every exporter uses.
"""

from typing import TYPE_CHECKING

from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage, apply_window, percentile_window
from fpsm_core.lazy import lazy_exports

if TYPE_CHECKING:  # pydicom-bearing: imported on first use (the viewer's window needs none of it)
    from fpsm_core.io.loader import (
        DICOM_SUFFIXES,
        RASTER_SUFFIXES,
        SUPPORTED_SUFFIXES,
        is_image_path,
        load_image,
    )
    from fpsm_core.io.studies import (
        ImageEntry,
        PatientEntry,
        SeriesEntry,
        StudyEntry,
        StudyIndex,
        image_files,
        index_folder,
    )

__getattr__ = lazy_exports(
    __name__,
    {
        "fpsm_core.io.loader": (
            "DICOM_SUFFIXES",
            "RASTER_SUFFIXES",
            "SUPPORTED_SUFFIXES",
            "is_image_path",
            "load_image",
        ),
        "fpsm_core.io.studies": (
            "ImageEntry",
            "PatientEntry",
            "SeriesEntry",
            "StudyEntry",
            "StudyIndex",
            "image_files",
            "index_folder",
        ),
    },
)

__all__ = [
    "DICOM_SUFFIXES",
    "ImageEntry",
    "ImageLoadError",
    "PatientEntry",
    "RASTER_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "SeriesEntry",
    "StudyEntry",
    "StudyIndex",
    "XRayImage",
    "apply_window",
    "image_files",
    "index_folder",
    "is_image_path",
    "load_image",
    "percentile_window",
]
