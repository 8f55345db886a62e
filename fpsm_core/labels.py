"""The 26 CXR-LT 2023 findings and the name mappings from box-annotated data sets.

``LABELS`` is the challenge's column order and spelling; every model, CSV and report of the project
uses it. The mappings translate the class names of NIH ChestX-ray14, VinDr-CXR and ChestX-Det into
CXR-LT names. A source class with no faithful CXR-LT counterpart maps to nothing and is reported by
callers, never silently folded into a neighbouring class.
"""

from __future__ import annotations

from collections.abc import Mapping

from fpsm_core.errors import FpsmError

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Calcification of the Aorta",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged Cardiomediastinum",
    "Fibrosis",
    "Fracture",
    "Hernia",
    "Infiltration",
    "Lung Lesion",
    "Lung Opacity",
    "Mass",
    "No Finding",
    "Nodule",
    "Pleural Effusion",
    "Pleural Other",
    "Pleural Thickening",
    "Pneumomediastinum",
    "Pneumonia",
    "Pneumoperitoneum",
    "Pneumothorax",
    "Subcutaneous Emphysema",
    "Support Devices",
    "Tortuous Aorta",
)

NUM_CLASSES = len(LABELS)
# The identifying columns of a CXR-LT (MIMIC-CXR-JPG) labels CSV, before the label columns.
CXRLT_META_COLUMNS: tuple[str, ...] = (
    "dicom_id",
    "subject_id",
    "study_id",
    "ViewPosition",
    "ViewCodeSequence_CodeMeaning",
    "path",
)
LABEL_INDEX: Mapping[str, int] = {name: i for i, name in enumerate(LABELS)}

# Findings a triage list puts first: free air and collapsed lung need action within the hour.
URGENT_DEFAULT: tuple[str, ...] = ("Pneumothorax", "Pneumomediastinum", "Pneumoperitoneum")

NIH_TO_CXRLT: Mapping[str, str | None] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Effusion": "Pleural Effusion",
    "Emphysema": "Emphysema",
    "Fibrosis": "Fibrosis",
    "Hernia": "Hernia",
    "Infiltrate": "Infiltration",
    "Infiltration": "Infiltration",
    "Mass": "Mass",
    "No Finding": "No Finding",
    "Nodule": "Nodule",
    "Pleural_Thickening": "Pleural Thickening",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
}

# VinDr-CXR local and global labels (PhysioNet 22+6 names, Kaggle's 14 are a subset).
# "Nodule/Mass" is one VinDr class; ``resolve_nodule_mass`` splits it by size.
VINDR_TO_CXRLT: Mapping[str, str | None] = {
    "Aortic enlargement": None,  # an enlarged aorta is neither "Tortuous" nor "Calcification of the Aorta"
    "Atelectasis": "Atelectasis",
    "Calcification": None,  # any calcification (granuloma, nodes), not specifically the aortic knob
    "Cardiomegaly": "Cardiomegaly",
    "Clavicle fracture": "Fracture",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Emphysema": "Emphysema",
    "Enlarged PA": None,
    "ILD": None,
    "Infiltration": "Infiltration",
    "Lung Opacity": "Lung Opacity",
    "Lung cavity": "Lung Lesion",
    "Lung cyst": "Lung Lesion",
    "Mediastinal shift": None,
    "Nodule/Mass": "Nodule/Mass",
    "Pleural effusion": "Pleural Effusion",
    "Pleural thickening": "Pleural Thickening",
    "Pneumothorax": "Pneumothorax",
    "Pulmonary fibrosis": "Fibrosis",
    "Rib fracture": "Fracture",
    "Other lesion": None,
    "COPD": None,
    "Lung tumor": "Lung Lesion",
    "Pneumonia": "Pneumonia",
    "Tuberculosis": None,
    "Other diseases": None,
    "Other disease": None,
    "No finding": "No Finding",
}

CHESTXDET_TO_CXRLT: Mapping[str, str | None] = {
    "Atelectasis": "Atelectasis",
    "Calcification": None,
    "Cardiomegaly": "Cardiomegaly",
    "Consolidation": "Consolidation",
    "Diffuse Nodule": "Nodule",
    "Effusion": "Pleural Effusion",
    "Emphysema": "Emphysema",
    "Fibrosis": "Fibrosis",
    "Fracture": "Fracture",
    "Mass": "Mass",
    "Nodule": "Nodule",
    "Pleural Thickening": "Pleural Thickening",
    "Pneumothorax": "Pneumothorax",
}

MAPPINGS: Mapping[str, Mapping[str, str | None]] = {
    "nih": NIH_TO_CXRLT,
    "vindr": VINDR_TO_CXRLT,
    "chestxdet": CHESTXDET_TO_CXRLT,
}

# Fleischner glossary: a nodule is at most 3 cm; a larger opacity is a mass.
NODULE_MAX_DIAMETER_MM = 30.0


class UnknownLabelError(FpsmError):
    """A class name that the named source's mapping does not know."""


def to_cxrlt(name: str, source: str) -> str | None:
    """Translate a source data set's class name into a CXR-LT label.

    Args:
        name: the class name as the source spells it (case and surrounding spaces are forgiven).
        source: ``"nih"``, ``"vindr"``, ``"chestxdet"`` or ``"cxrlt"``.

    Returns:
        The CXR-LT label, ``"Nodule/Mass"`` for VinDr's combined class (see
        :func:`resolve_nodule_mass`), or ``None`` when the class has no faithful CXR-LT counterpart.

    Raises:
        UnknownLabelError: the name is not a class of that source.
    """
    cleaned = name.strip()
    if source == "cxrlt":
        for label in LABELS:
            if label.lower() == cleaned.lower():
                return label
        raise UnknownLabelError(f"{name!r} is not one of the 26 CXR-LT labels.")
    try:
        mapping = MAPPINGS[source]
    except KeyError:
        raise UnknownLabelError(
            f"Unknown label source {source!r}; expected one of {sorted(MAPPINGS)} or 'cxrlt'."
        ) from None
    for key, value in mapping.items():
        if key.lower() == cleaned.lower():
            return value
    raise UnknownLabelError(f"{name!r} is not a {source} class name.")


def resolve_nodule_mass(diameter_mm: float) -> str:
    """Split VinDr's "Nodule/Mass" by the radiological size rule (nodule up to 3 cm)."""
    return "Nodule" if diameter_mm <= NODULE_MAX_DIAMETER_MM else "Mass"
