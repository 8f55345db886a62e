"""Coded concepts of the outputs: SNOMED CT where a finding has a code, a local scheme otherwise.

The CXR-LT label is always written as text too (the SR's tracking identifier, the segment label,
the graphic's text), so a finding without a SNOMED CT code is still named. Local codes use the
private coding scheme designator ``99FPSM`` (PS3.16 8.2: "99" prefixes are for local schemes).
"""

from __future__ import annotations

import re

from highdicom.sr import CodedConcept

LOCAL = "99FPSM"

# SNOMED CT concepts of CXR-LT findings (see DATA.md); others get a local code.
SNOMED: dict[str, tuple[str, str]] = {
    "cardiomegaly": ("287272002", "Cardiomegaly"),
    "pleural effusion": ("60046008", "Pleural effusion"),
    "effusion": ("60046008", "Pleural effusion"),
    "pneumothorax": ("36118008", "Pneumothorax"),
    "nodule": ("27925004", "Nodule"),
    "mass": ("4147007", "Mass"),
    "edema": ("79654002", "Edema"),
}

PROBABILITY = CodedConcept("122157", "DCM", "Probability")
AI = CodedConcept("123110", "DCM", "Artificial Intelligence")
NO_UNITS = CodedConcept("1", "UCUM", "no units")
LOGIT = CodedConcept("{logit}", "UCUM", "logit")
FINDING = CodedConcept("121071", "DCM", "Finding")
YES = CodedConcept("373066001", "SCT", "Yes")
NO = CodedConcept("373067005", "SCT", "No")
THRESHOLD = CodedConcept("THRESHOLD", LOCAL, "Decision threshold")
ABOVE = CodedConcept("ABOVE", LOCAL, "Above decision threshold")
INPUT_VALIDITY = CodedConcept("INPUTVALID", LOCAL, "Input validity")
CHEST_XRAY = CodedConcept("399208008", "SCT", "Plain chest X-ray")


def local_code(text: str) -> str:
    """A code value (SH, at most 16 characters) made from a label."""
    return (re.sub(r"[^A-Z0-9]+", "", text.upper()) or "FINDING")[:16]


def finding_code(label: str) -> CodedConcept:
    """SNOMED CT for the label when there is one, else a local code meaning the label."""
    known = SNOMED.get(label.strip().lower())
    if known is not None:
        return CodedConcept(known[0], "SCT", known[1])
    return CodedConcept(local_code(label), LOCAL, label[:64])


def level_logit(level: int, index: int, member: str) -> CodedConcept:
    """Level ``level``'s logit of ensemble member ``index`` (named ``member``)."""
    return CodedConcept(f"L{level}LOGITM{index}", LOCAL, f"Level {level} logit ({member})"[:64])


def level_share(level: int) -> CodedConcept:
    return CodedConcept(f"L{level}SHARE", LOCAL, f"Level {level} share of positive evidence")


def member_probability(index: int, member: str) -> CodedConcept:
    return CodedConcept(f"PROBM{index}", LOCAL, f"Probability ({member})"[:64])


DEVICE = CodedConcept("121007", "DCM", "Device")
MEASUREMENT_REPORT = CodedConcept("126000", "DCM", "Imaging Measurement Report")
