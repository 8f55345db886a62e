"""Input checks that need no model: is this plainly not a frontal chest radiograph?

Each check looks at the header or the pixels and, when the answer is clear, gives a named
:class:`Reason` with one sentence a radiologist can read. What a header does not say is never a
reason by itself: PNG and JPEG files (MIMIC-CXR-JPG) carry no header at all, and many archives
leave BodyPartExamined or ViewPosition empty. The checks are:

``modality``      a DICOM Modality that is not projection radiography (CR, DX, RG pass; CT, MR,
                  US, NM, PT, MG, XA, RF, XC, OT, SC... do not).
``secondary_capture``  a Secondary Capture object or a ConversionType of a workstation or a
                  synthetic picture: a screenshot or a converted photograph, with burned-in text.
``view``          ViewPosition lateral or oblique (LL, RL, LAT, LATERAL, LAO...): the models
                  learned frontal (PA/AP) films.
``body_part``     BodyPartExamined naming another body part (TIBIA, KNEE, HAND, EXTREMITY...).
``colour``        a colour image (RGB/YBR/palette DICOM, or a raster whose channels differ).
``too_small``     the shorter side is under ``MIN_SIDE`` pixels (CT and MR slices, thumbnails).
``constant``      at least ``CONSTANT_FRACTION`` of the pixels share one grey level (a blank or
                  nearly blank frame).

``BurnedInAnnotation = YES`` alone is not a reason: real CR/DX films often carry a burned-in side
marker. The learned gate (:mod:`fpsm_core.trust.gate`) catches what no header says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MIN_SIDE = 256
CONSTANT_FRACTION = 0.9
PROJECTION_MODALITIES = frozenset({"CR", "DX", "RG", "DR", "DF"})
MODALITY_NAMES = {
    "CT": "a CT slice",
    "MR": "an MR image",
    "US": "an ultrasound image",
    "NM": "a nuclear medicine image",
    "PT": "a PET image",
    "MG": "a mammogram",
    "XA": "an angiography (fluoroscopy) frame",
    "RF": "a fluoroscopy frame",
    "XC": "an external camera photograph",
    "ES": "an endoscopy image",
    "OP": "an ophthalmic photograph",
    "SM": "a slide microscopy image",
    "GM": "a general microscopy image",
    "OT": "an 'other' modality object (often a screenshot or a converted picture)",
    "SC": "a secondary capture (a screenshot or a converted picture)",
    "IO": "an intra-oral radiograph",
    "PX": "a panoramic dental radiograph",
    "BMD": "a bone densitometry image",
    "OCT": "an optical coherence tomography image",
    "IVUS": "an intravascular ultrasound image",
    "SEG": "a segmentation",
    "RTIMAGE": "a radiotherapy portal image",
}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
CONVERSION_TYPES = {
    "WSD": "a workstation screenshot",
    "SYN": "a synthetic image",
    "SD": "a scanned document",
    "DRW": "a drawing",
    "VID": "a video frame",
    "DI": "a digital interface capture",
}
NON_FRONTAL_VIEWS = {
    "LL": "left lateral",
    "RL": "right lateral",
    "LAT": "lateral",
    "LATERAL": "lateral",
    "LLO": "left lateral oblique",
    "RLO": "right lateral oblique",
    "LAO": "left anterior oblique",
    "RAO": "right anterior oblique",
    "LPO": "left posterior oblique",
    "RPO": "right posterior oblique",
    "OBL": "oblique",
}
CHEST_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "RIB", "RIBS", "CHESTABDOMEN"})
OTHER_PARTS = frozenset(
    {
        "EXTREMITY",
        "TIBIA",
        "FIBULA",
        "LEG",
        "LOWERLEG",
        "KNEE",
        "FEMUR",
        "THIGH",
        "HIP",
        "ANKLE",
        "FOOT",
        "TOE",
        "HEEL",
        "CALCANEUS",
        "HAND",
        "FINGER",
        "THUMB",
        "WRIST",
        "FOREARM",
        "RADIUS",
        "ULNA",
        "ELBOW",
        "ARM",
        "UPPERARM",
        "HUMERUS",
        "SHOULDER",
        "CLAVICLE",
        "SCAPULA",
        "SKULL",
        "HEAD",
        "BRAIN",
        "FACE",
        "SINUS",
        "MANDIBLE",
        "JAW",
        "ORBIT",
        "NECK",
        "CSPINE",
        "TSPINE",
        "LSPINE",
        "SSPINE",
        "SPINE",
        "COCCYX",
        "SACRUM",
        "PELVIS",
        "ABDOMEN",
        "KUB",
        "BREAST",
        "TEETH",
        "TOOTH",
        "HEART",
    }
)
COLOUR_PHOTOMETRICS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR"}
)
# Header fields the checks read; XRayImage carries Modality, ViewPosition and photometric, the
# rest is read again from the file header (pixels are not read twice).
HEADER_FIELDS = ("BodyPartExamined", "SOPClassUID", "ConversionType", "ImageType")


@dataclass(frozen=True)
class Reason:
    """Why an input is not what the model knows.

    Attributes:
        code: stable identifier (``modality``, ``view``, ``outside_distribution``...).
        sentence: one sentence for the user.
    """

    code: str
    sentence: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "sentence": self.sentence}


@dataclass(frozen=True)
class HeaderFacts:
    """The header fields the checks need beyond what :class:`XRayImage` carries (None = absent)."""

    body_part: str | None = None
    sop_class_uid: str | None = None
    conversion_type: str | None = None
    image_type: tuple[str, ...] = ()


def read_header_facts(path: str | Path | None) -> HeaderFacts:
    """Read the extra header fields of a DICOM file; anything else (or unreadable) gives none."""
    if path is None:
        return HeaderFacts()
    try:
        import pydicom

        ds = pydicom.dcmread(
            str(path), stop_before_pixels=True, specific_tags=list(HEADER_FIELDS), force=True
        )
    except Exception:  # noqa: BLE001 - a header we cannot read says nothing; the loader decided
        return HeaderFacts()
    return HeaderFacts(
        body_part=_text(ds.get("BodyPartExamined")),
        sop_class_uid=_text(ds.get("SOPClassUID")),
        conversion_type=_text(ds.get("ConversionType")),
        image_type=tuple(str(v).upper() for v in _values(ds.get("ImageType"))),
    )


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)):
        return [value] if value else []
    try:
        return list(value)
    except TypeError:
        return [value]


def _text(value: Any) -> str | None:
    values = _values(value)
    if not values:
        return None
    text = str(values[0]).strip()
    return text or None


def check_image(image: Any, facts: HeaderFacts | None = None) -> tuple[Reason, ...]:
    """All reasons why ``image`` (an :class:`~fpsm_core.io.XRayImage`) is not a frontal chest film.

    Args:
        image: the loaded image.
        facts: extra header fields; read from ``image.path`` for DICOM sources when None.

    Returns:
        The reasons, in the order of the checks; empty when nothing is plainly wrong.
    """
    if facts is None:
        is_dicom = getattr(image, "source_format", "") == "dicom"
        facts = read_header_facts(getattr(image, "path", None)) if is_dicom else HeaderFacts()
    reasons: list[Reason] = []
    for check in (
        _modality,
        _secondary_capture,
        _view,
        _body_part,
        _colour,
        _too_small,
        _constant,
    ):
        reason = check(image, facts)
        if reason is not None:
            reasons.append(reason)
    return tuple(reasons)


def _modality(image: Any, facts: HeaderFacts) -> Reason | None:
    modality = (getattr(image, "modality", None) or "").strip().upper()
    if not modality or modality in PROJECTION_MODALITIES or modality not in MODALITY_NAMES:
        return None
    return Reason(
        "modality",
        f"Modality is {modality}: {MODALITY_NAMES[modality]}, not a chest radiograph (CR/DX).",
    )


def _secondary_capture(image: Any, facts: HeaderFacts) -> Reason | None:
    sop = facts.sop_class_uid or ""
    conversion = (facts.conversion_type or "").upper()
    if sop.startswith(SECONDARY_CAPTURE_PREFIX):
        kind = CONVERSION_TYPES.get(conversion)
        detail = f" ({kind}, ConversionType {conversion})" if kind else ""
        return Reason(
            "secondary_capture",
            f"It is a Secondary Capture object{detail}: a screenshot or converted picture, "
            "often with burned-in text, not an original radiograph.",
        )
    if conversion in CONVERSION_TYPES:
        return Reason(
            "secondary_capture",
            f"ConversionType {conversion} marks {CONVERSION_TYPES[conversion]}, "
            "not an original radiograph.",
        )
    return None


def _view(image: Any, facts: HeaderFacts) -> Reason | None:
    view = (getattr(image, "view_position", None) or "").strip().upper()
    if view not in NON_FRONTAL_VIEWS:
        return None
    return Reason(
        "view",
        f"ViewPosition is {view} ({NON_FRONTAL_VIEWS[view]}); the model knows frontal "
        "(PA/AP) chest films only.",
    )


def _body_part(image: Any, facts: HeaderFacts) -> Reason | None:
    raw = (facts.body_part or "").strip().upper()
    part = raw.replace(" ", "").replace("_", "").replace("-", "")
    if not part or part in CHEST_PARTS or part not in OTHER_PARTS:
        return None
    return Reason("body_part", f"BodyPartExamined is {raw}, not the chest.")


def _colour(image: Any, facts: HeaderFacts) -> Reason | None:
    photometric = (getattr(image, "photometric", "") or "").upper()
    if getattr(image, "source_format", "") == "dicom" and photometric in COLOUR_PHOTOMETRICS:
        return Reason(
            "colour",
            f"It is a colour image (PhotometricInterpretation {photometric}); radiographs are "
            "greyscale.",
        )
    # The raster loader notes a colour conversion only when the channels really differ.
    if any("colour image converted to grey" in w for w in getattr(image, "warnings", ())):
        return Reason("colour", "It is a colour image; radiographs are greyscale.")
    return None


def _too_small(image: Any, facts: HeaderFacts) -> Reason | None:
    rows, cols = (int(s) for s in np.asarray(image.pixels).shape[:2])
    if min(rows, cols) >= MIN_SIDE:
        return None
    return Reason(
        "too_small",
        f"It is {cols} x {rows} pixels; a chest radiograph has at least {MIN_SIDE} pixels on its "
        "shorter side.",
    )


def _constant(image: Any, facts: HeaderFacts) -> Reason | None:
    pixels = np.asarray(image.pixels)
    step = max(1, min(pixels.shape[:2]) // 256)  # a 256-ish sample decides as well as the whole
    grey = image.display_uint8()[::step, ::step] if hasattr(image, "display_uint8") else None
    if grey is None or grey.size == 0:
        return None
    counts = np.bincount(grey.ravel(), minlength=256)
    # one grey level and its two neighbours: display rounding splits a flat area over adjacent levels
    share = float(np.convolve(counts, np.ones(3), mode="same").max() / grey.size)
    if share < CONSTANT_FRACTION:
        return None
    return Reason(
        "constant",
        f"{share:.0%} of the image is one grey level; it is blank or nearly blank.",
    )
