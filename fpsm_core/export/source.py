"""The source image of an export: its DICOM header (or a made-up one) and its display pixels.

Every output object copies the patient and study modules from the source and references its
study, series and instance UIDs, so they are read once here. ``--deidentify`` runs the header
through :func:`fpsm_core.io.deid.deidentify` before anything is copied from it, so the outputs
reference the de-identified UIDs (the same salted mapping a de-identified copy of the source gets).
A PNG or JPEG has no header: a minimal one is made with new study, series and instance UIDs and a
warning says so; the outputs are still valid objects, referencing an instance no PACS holds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from fpsm_core.export.errors import ExportError
from fpsm_core.io.image import XRayImage, apply_window

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
)


@dataclass(frozen=True, eq=False)
class ExportSource:
    """What the exporters take from the source image.

    Attributes:
        dataset: the source header without pixel data (de-identified when asked); a made-up
            one for rasters.
        image: the loaded image (pixels in display sense, window).
        synthetic: True when ``dataset`` was made up (PNG/JPEG/TIFF source).
        warnings: one sentence each, for the CLI to print.
    """

    dataset: Dataset
    image: XRayImage
    synthetic: bool
    warnings: tuple[str, ...]

    @property
    def rows(self) -> int:
        return int(self.image.pixels.shape[0])

    @property
    def columns(self) -> int:
        return int(self.image.pixels.shape[1])

    def film(self) -> np.ndarray:
        """The film as the reader sees it with its own window: uint8 (rows, cols)."""
        center, width = self.image.window
        return apply_window(self.image.pixels, center, width, self.image.voi_function)

    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row, column) spacing in mm when the source gives a positive one, else None."""
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            value = self.dataset.get(keyword)
            try:
                spacing = (float(value[0]), float(value[1])) if value is not None else None
            except (TypeError, ValueError, IndexError):
                spacing = None
            if spacing and spacing[0] > 0 and spacing[1] > 0:
                return spacing
        return None

    def patient_orientation(self) -> tuple[str, str]:
        """The source's PatientOrientation, else the usual one for its view (PA: L F)."""
        value = self.dataset.get("PatientOrientation")
        if value is not None and len(value) == 2 and all(str(v) for v in value):
            return (str(value[0]), str(value[1]))
        view = str(self.dataset.get("ViewPosition", "") or "").upper()
        return ("R", "F") if view == "AP" else ("L", "F")

    def laterality(self) -> str | None:
        """R or L when the source says so (a chest is unpaired: usually None)."""
        for keyword in ("Laterality", "ImageLaterality"):
            value = str(self.dataset.get(keyword, "") or "").upper()
            if value in ("R", "L"):
                return value
        return None


def _read_header(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError):
        return None


def _made_up_header(image: XRayImage) -> Dataset:
    now = dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for keyword in _PATIENT_STUDY:
        setattr(ds, keyword, "")
    ds.StudyDate = now.strftime("%Y%m%d")
    ds.StudyTime = now.strftime("%H%M%S")
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = (int(n) for n in image.pixels.shape[:2])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PatientOrientation = ["L", "F"]
    ds.BodyPartExamined = "CHEST"
    return ds


def export_source(
    image: XRayImage, *, deidentify: bool = False, salt: str | bytes | None = None
) -> ExportSource:
    """Read the header of ``image``'s file (or make one up) and de-identify it when asked.

    Raises:
        ExportError: the header cannot be de-identified (e.g. BurnedInAnnotation YES).
    """
    warnings: list[str] = []
    header = _read_header(Path(image.path)) if image.source_format == "dicom" else None
    synthetic = header is None
    if header is None:
        header = _made_up_header(image)
        warnings.append(
            f"{image.path} has no DICOM header: its DICOM outputs get a new study, series and "
            "instance UID, and no patient or study details."
        )
    elif "Rows" not in header or "Columns" not in header:
        raise ExportError(f"{image.path} has no Rows/Columns in its header; nothing to export.")
    if deidentify:
        from fpsm_core.io.deid import DeidentificationError
        from fpsm_core.io.deid import deidentify as deid

        try:
            header = deid(header, salt=salt)
        except DeidentificationError as exc:
            raise ExportError(str(exc)) from None
    source = ExportSource(
        dataset=header, image=image, synthetic=synthetic, warnings=tuple(warnings)
    )
    _tidy(source)
    return source


def _tidy(source: ExportSource) -> None:
    """Fix, in our copy of the header, what highdicom would copy wrongly or trip over.

    A PixelSpacing of 0 (common in CR exports) would be copied into the SR's image library and
    the SEG's pixel measures; a missing PatientOrientation breaks highdicom's image library, and
    missing type 2 patient/study attributes its presentation states (they are written empty).
    """
    ds = source.dataset
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            bad = value is not None and (float(value[0]) <= 0 or float(value[1]) <= 0)
        except (TypeError, ValueError, IndexError):
            bad = True
        if value is not None and bad:
            del ds[keyword]
    value = ds.get("PatientOrientation")
    if value is None or len(value) != 2:
        ds.PatientOrientation = list(source.patient_orientation())
    for keyword in _PATIENT_STUDY:
        if keyword not in ds:
            setattr(ds, keyword, "")


def describe_model(result: Any) -> tuple[str, str, tuple[str, ...], str]:
    """(name, version, member names, disclaimer) from a result's public model identity."""
    from fpsm_core import __version__

    model = dict(getattr(result, "model", {}) or {})
    name = str(model.get("name") or "FPSM model")
    members = tuple(str(m) for m in (getattr(result, "member_names", ()) or ()))
    disclaimer = str(model.get("disclaimer") or "")
    return name, f"fpsm {__version__}", members, disclaimer
