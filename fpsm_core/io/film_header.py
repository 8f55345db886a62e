"""What a reading room shows around a film: the header facts of its corner text and orientation.

:func:`read_film_header` reads one file's header once (no pixels) into a frozen
:class:`FilmHeader`: patient, study, series and acquisition facts, where the pixel spacing came
from (PixelSpacing is spacing at the patient, ImagerPixelSpacing at the detector, so a length
measured on the second is magnified by the source-to-patient geometry), the film's own orientation
labels (PatientOrientation, else a conventional guess from ViewPosition) and the cine rate of a
multi-frame file. Rasters (PNG/JPEG/TIFF) have none of this and get an empty header.

Which facts identify a patient follows the same PS3.15 Basic Profile table as de-identification
(:func:`fpsm_core.io.deid.is_identifying`), so the viewer's "hide PHI" key and ``fpsm info`` agree.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

from fpsm_core.io.deid import is_identifying
from fpsm_core.io.dicom_header import (
    header_floats,
    header_int,
    header_str,
    read_dataset,
    spacing_from_header,
)
from fpsm_core.io.errors import ImageLoadError

# Opposite directions of the patient axes (PS3.3 C.7.6.1.1.1): L/R, A/P, H/F.
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
# The orientation of a film hung the usual way, by ViewPosition, when PatientOrientation is absent:
# frontal films are hung as if facing the patient (their left on the viewer's right), a lateral as
# if standing at the side that was against the detector.
VIEW_ORIENTATION = {
    "PA": ("L", "F"),
    "AP": ("L", "F"),
    "LL": ("P", "F"),
    "LLD": ("P", "F"),
    "RL": ("A", "F"),
    "RLD": ("A", "F"),
}
# The DICOM attribute behind each fact: PHI is decided by that attribute, not by the fact's name.
KEYWORDS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_sex": "PatientSex",
    "patient_age": "PatientAge",
    "birth_date": "PatientBirthDate",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession": "AccessionNumber",
    "modality": "Modality",
    "view_position": "ViewPosition",
    "laterality": "ImageLaterality",
    "institution": "InstitutionName",
    "series_number": "SeriesNumber",
    "instance_number": "InstanceNumber",
    "study_description": "StudyDescription",
    "series_description": "SeriesDescription",
}


@dataclass(frozen=True)
class FilmHeader:
    """The header facts of one film (None: absent or unreadable).

    Attributes:
        orientation: (row direction, column direction): the patient direction towards the
            film's right edge and towards its bottom edge, e.g. ("L", "F") for a PA chest.
        orientation_source: "PatientOrientation", "ViewPosition" or "" (unknown).
        spacing_source: "PixelSpacing", "ImagerPixelSpacing" or "" (uncalibrated).
        frames: NumberOfFrames (1 when absent); frame_ms: the time between frames for cine
            (FrameTime, else 1000 / CineRate, else 1000 / RecommendedDisplayFrameRate).
    """

    patient_name: str | None = None
    patient_id: str | None = None
    patient_sex: str | None = None
    patient_age: str | None = None
    birth_date: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    accession: str | None = None
    modality: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    institution: str | None = None
    series_number: int | None = None
    instance_number: int | None = None
    study_description: str | None = None
    series_description: str | None = None
    orientation: tuple[str, str] | None = None
    orientation_source: str = ""
    spacing_source: str = ""
    frames: int = 1
    frame_ms: float | None = None

    def is_phi(self, name: str) -> bool:
        """True when the fact ``name`` identifies a patient (the Basic Profile's table)."""
        keyword = KEYWORDS.get(name)
        return keyword is not None and is_identifying(keyword)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse_orientation(value: Any) -> tuple[str, str] | None:
    """PatientOrientation's two values as upper-case direction strings; None when malformed."""
    if value is None:
        return None
    items = [str(v).strip().upper() for v in (value if not isinstance(value, str) else [value])]
    if len(items) == 1 and "\\" in items[0]:
        items = items[0].split("\\")
    if len(items) != 2 or not all(items) or not all(set(v) <= set(OPPOSITE) for v in items):
        return None
    return (items[0], items[1])


def opposite(direction: str) -> str:
    """The opposite of a direction string, letter by letter ("LF" -> "RH")."""
    return "".join(OPPOSITE.get(c, c) for c in direction)


def age_text(age: str | None, birth: str | None, on: str | None) -> str | None:
    """PatientAge as stored ("045Y" -> "45Y"), else the age on the study date from the birth date."""
    if age:
        digits = age[:-1].lstrip("0") or "0"
        return f"{digits}{age[-1]}" if age[:-1].isdigit() else age
    try:
        b = date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))  # type: ignore[index]
        d = date(int(on[:4]), int(on[4:6]), int(on[6:8]))  # type: ignore[index]
    except (TypeError, ValueError):
        return None
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    return f"{years}Y" if years >= 0 else None


def _frame_ms(ds: Any) -> float | None:
    frame_time = header_floats(ds, "FrameTime")
    if frame_time and frame_time[0] > 0:
        return frame_time[0]
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = header_floats(ds, keyword)
        if rate and rate[0] > 0:
            return 1000.0 / rate[0]
    return None


def header_from_dataset(ds: Any) -> FilmHeader:
    """A :class:`FilmHeader` from a pydicom data set (malformed values become None)."""
    values: dict[str, Any] = {}
    for name, keyword in KEYWORDS.items():
        if name in ("series_number", "instance_number"):
            values[name] = header_int(ds, keyword)
        else:
            values[name] = header_str(ds, keyword)
    values["laterality"] = header_str(ds, "ImageLaterality") or header_str(ds, "Laterality")
    values["patient_age"] = age_text(
        values["patient_age"], values["birth_date"], values["study_date"]
    )
    orientation = parse_orientation(ds.get("PatientOrientation"))
    source = "PatientOrientation" if orientation else ""
    if orientation is None:
        orientation = VIEW_ORIENTATION.get((values["view_position"] or "").upper())
        source = "ViewPosition" if orientation else ""
    _spacing, spacing_source = spacing_from_header(ds, [])
    return FilmHeader(
        **values,
        orientation=orientation,
        orientation_source=source,
        spacing_source=spacing_source,
        frames=max(1, header_int(ds, "NumberOfFrames") or 1),
        frame_ms=_frame_ms(ds),
    )


def read_film_header(path: str | Path) -> FilmHeader:
    """The header facts of one file; an empty header for rasters.

    Raises:
        ImageLoadError: the file is DICOM-like but its header cannot be read.
    """
    p = Path(path)
    try:
        with p.open("rb") as fp:
            head = fp.read(132)
    except OSError as exc:
        raise ImageLoadError(p, f"it cannot be read ({exc.strerror or exc})") from None
    from fpsm_core.io.loader import sniff

    if sniff(head) not in ("dicom", "dicom-raw"):
        return FilmHeader()
    ds, _notes = read_dataset(p, stop_before_pixels=True)
    return header_from_dataset(ds)
