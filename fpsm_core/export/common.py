"""What every output object shares: series numbering, descriptions, the source reference.

Outputs go in one new series per kind (SC, SR, PR, SEG) of the source's study, numbered after
the source's series so they sort after it in a PACS browser; each names the model in its series
description and references the source instance (SourceImageSequence or the object's own
referenced-series module, which highdicom writes).
"""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from fpsm_core.export.codes import LOCAL
from fpsm_core.export.source import ExportSource

MANUFACTURER = "fpsm"
NOT_CLINICAL = "Research software, not for clinical use."
# Series numbers after the source's (which PACS browsers sort by): SC, SR, PR, SEG.
SERIES_OFFSET = {"sc": 9001, "sr": 9002, "gsps": 9003, "seg": 9004}
# Colours (RGB) of the top findings, in rank order, shared by the SC, the GSPS and the SEG.
COLOURS = ((255, 64, 64), (255, 200, 0), (0, 200, 255), (160, 255, 80), (255, 120, 255))


def series_number(source: ExportSource, kind: str) -> int:
    return SERIES_OFFSET[kind]


def source_reference(source: ExportSource) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = source.dataset.SOPClassUID
    item.ReferencedSOPInstanceUID = source.dataset.SOPInstanceUID
    return item


def disclaimer_text(disclaimer: str) -> str:
    """The model's disclaimer, or the project's before it when it does not say so itself."""
    text = (disclaimer or "").strip()
    if not text:
        return NOT_CLINICAL
    return text if "not for clinical use" in text.lower() else f"{NOT_CLINICAL} {text}"


def finish(
    ds: Dataset, source: ExportSource, description: str, *, image: bool, disclaimer: str = ""
) -> Dataset:
    """Stamp what highdicom leaves out: descriptions, and for images content date and body part.

    Args:
        image: the object is an image (SC, SEG), whose IODs have a General Image module; its
            Image Comments carry the model's disclaimer (:func:`disclaimer_text`).
    """
    now = dt.datetime.now()
    ds.SeriesDescription = description[:64]
    if image:
        ds.ImageComments = disclaimer_text(disclaimer)[:10240]
        if "ContentDate" not in ds:
            ds.ContentDate = now.strftime("%Y%m%d")
            ds.ContentTime = now.strftime("%H%M%S")
        # Our models read chests only; a known unpaired body part is what lets Laterality be absent.
        if "BodyPartExamined" not in ds:
            ds.BodyPartExamined = source.dataset.get("BodyPartExamined") or "CHEST"
        if "PatientOrientation" not in ds or not ds.PatientOrientation:
            ds.PatientOrientation = list(source.patient_orientation())
    if any(LOCAL in str(v) for v in _scheme_values(ds)):
        item = Dataset()
        item.CodingSchemeDesignator = LOCAL
        item.CodingSchemeName = "FPSM local codes"
        item.CodingSchemeResponsibleOrganization = MANUFACTURER
        ds.CodingSchemeIdentificationSequence = Sequence([item])
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if keyword in source.dataset and keyword not in ds:
            setattr(ds, keyword, source.dataset.get(keyword))
    if "DeidentificationMethodCodeSequence" in source.dataset:
        ds.DeidentificationMethodCodeSequence = source.dataset.DeidentificationMethodCodeSequence
    return ds


def _scheme_values(ds: Dataset) -> list[str]:
    """Every CodingSchemeDesignator in the data set, recursively."""
    found: list[str] = []

    def visit(d: Dataset) -> None:
        for elem in d:
            if elem.keyword == "CodingSchemeDesignator":
                found.append(str(elem.value))
            elif elem.VR == "SQ":
                for child in elem.value:
                    visit(child)

    visit(ds)
    return found


def source_image_sequence(source: ExportSource) -> Sequence:
    return Sequence([source_reference(source)])
