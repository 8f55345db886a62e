"""De-identification of everything the project exports: the one module all exporters use.

``deidentify`` applies the DICOM PS3.15 Basic Application Confidentiality Profile (Table E.1-1) as
it bears on radiographs, by keyword, then safety nets by VR so nothing slips through attributes
the table does not name: every non-standard UID is remapped (``2.25.`` UIDs derived from a secret
salt, so the same source UID maps to the same new UID across files and runs), every person name
emptied, every date removed or shifted, private and curve/overlay groups dropped, sequences
cleaned recursively. Patient ID and name become one salted pseudonym, so a patient's images stay
linked (train/test splits by patient keep working). Images whose header says burned-in
annotation are refused unless the caller opts in. ``deidentify_metadata`` applies the same rules
to the dicts that non-DICOM exports (patches, data sets, reports) write.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from fpsm_core.errors import FpsmError
from fpsm_core.io.image import XRayImage

METHOD = "DICOM PS3.15 Basic Profile (fpsm_core.io.deid)"
_EMPTY_DATE = "19000101"

# PS3.15 Table E.1-1, the whole table, as data (``ps315_e1_1.csv``, release and source in its
# header; ``tools/make_ps315_table.py`` regenerates it). Why a data file and not a dependency:
# the well-kept PyPI implementations (dicom-anonymizer, dicognito, pydicom's deid) each bring
# their own replacement policy (random dummies, random UIDs, recipe files), while the project
# needs its own (salted pseudonyms and UIDs consistent across files, runs and the metadata of
# patches, date shifts per patient); what they share with us is the table itself. So the table is
# taken from dicom-anonymizer's copy of the standard (a text file read once, nothing of that
# package runs here), checked into the repository where a change shows in review, pinned to one
# release, and tested attribute by attribute (tests/core/test_io_deid.py).
TABLE_FILE = Path(__file__).with_name("ps315_e1_1.csv")
# The standard's combined actions leave the choice to the IOD's attribute type. Resolved here for
# the radiograph and derived objects this project writes: X/Z, X/D, X/Z/D -> X (in those IODs
# these attributes are Type 3, where the standard's choice is X); Z/D -> D for dates and times (a
# dummy keeps a Type 1 Content Date valid) and for PatientID the pseudonym, else Z; X/Z/U* -> C
# (a reference sequence is kept with every UID inside remapped, so references stay consistent).
_RESOLVE = {"X/Z": "X", "X/D": "X", "X/Z/D": "X", "X/Z/U*": "C"}


@dataclass(frozen=True)
class TableRow:
    """One attribute of PS3.15 Table E.1-1.

    Attributes:
        tag: ``gggg,eeee`` in hex, ``x`` for a nibble a repeating group leaves free (``60xx``).
        keyword: pydicom's keyword ("" when the tag is newer than pydicom's dictionary).
        name: The standard's attribute name.
        action: The Basic Profile action as the standard writes it (D, Z, X, U, Z/D, X/Z, ...).
    """

    tag: str
    keyword: str
    name: str
    action: str


def _read_table(path: Path) -> tuple[dict[str, str], tuple[TableRow, ...]]:
    header: dict[str, str] = {}
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip() if value else "title"] = (value or key).strip()
        elif line.strip():
            lines.append(line)
    rows = tuple(
        TableRow(r["tag"], r["keyword"], r["name"], r["action"]) for r in csv.DictReader(lines)
    )
    return header, rows


TABLE_HEADER, TABLE_ROWS = _read_table(TABLE_FILE)
_BY_TAG: dict[int, str] = {}
_MASKED: list[tuple[int, int, str]] = []  # (value, mask, action) for the repeating groups
for _row in TABLE_ROWS:
    _hex = _row.tag.replace(",", "")
    if "x" in _hex:
        _mask = int("".join("0" if c == "x" else "F" for c in _hex), 16)
        _MASKED.append((int(_hex.replace("x", "0"), 16), _mask, _row.action))
    else:
        _BY_TAG[int(_hex, 16)] = _row.action
_TABLE: dict[str, str] = {r.keyword: r.action for r in TABLE_ROWS if r.keyword}


def table_action(tag: int) -> str | None:
    """The standard's Basic Profile action for a tag (None: the table does not name it)."""
    action = _BY_TAG.get(int(tag))
    if action is None:
        for value, mask, masked_action in _MASKED:
            if int(tag) & mask == value:
                return masked_action
    return action


def is_identifying(keyword: str) -> bool:
    """True for every attribute the Basic Profile removes, empties, dummies or remaps.

    This is what ``fpsm info`` hides without ``--show-phi``, from the same table ``deidentify``
    applies.
    """
    return keyword in _TABLE or keyword in _IDENTITY


# Retain Patient Characteristics Option (DCM 113108).
PATIENT_CHARACTERISTICS = (
    "PatientAge",
    "PatientSex",
    "PatientSize",
    "PatientWeight",
    "PatientSexNeutered",
    "SmokingStatus",
    "PregnancyStatus",
)
_IDENTITY = ("PatientID", "PatientName")
# Identify software and object types, never a patient.
_KEEP = {
    "SOPClassUID",
    "MediaStorageSOPClassUID",
    "ReferencedSOPClassUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
    "CodingSchemeUID",
    "SpecificCharacterSet",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "BurnedInAnnotation",
}


class DeidentificationError(FpsmError):
    """An export that cannot be de-identified safely (one sentence, naming the object)."""


@dataclass(frozen=True)
class DeidOptions:
    """Choices beyond the Basic Profile.

    Attributes:
        dates: "remove" (Basic Profile: dates emptied or dummied) or "shift" (Retain
            Longitudinal Temporal Information with Modified Dates: every date moved back by a
            per-patient number of days derived from the salt, so intervals survive).
        keep_patient_characteristics: Keep age, sex, size, weight, smoking and pregnancy status
            (Retain Patient Characteristics Option).
        allow_burned_in: Export images whose BurnedInAnnotation is YES (their pixels may show
            names or IDs; the caller takes responsibility for cleaning them).
        clean_structured_content: Keep SR content (ContentSequence), cleaned like the rest
            instead of removed (Clean Structured Content Option); for the project's own reports,
            whose text holds findings, not identities.
        clean_graphics: Keep presentation-state graphics (GraphicAnnotationSequence), cleaned
            instead of emptied (Clean Graphics Option); for the project's own annotations.
    """

    dates: Literal["remove", "shift"] = "remove"
    keep_patient_characteristics: bool = False
    allow_burned_in: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False


def _config_dir() -> Path:
    base = os.environ.get("FPSM_CONFIG_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "fpsm"


def default_salt() -> bytes:
    """The per-user secret that keys pseudonyms and UIDs (created once, mode 0600).

    Kept in ``$FPSM_CONFIG_DIR/deid_salt`` (else ``~/.config/fpsm/deid_salt``) so exports made
    on one machine stay consistent; without the secret pseudonyms cannot be reversed by guessing.
    """
    path = _config_dir() / "deid_salt"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _key(salt: str | bytes | None) -> bytes:
    if salt is None:
        return default_salt()
    return salt.encode() if isinstance(salt, str) else bytes(salt)


def _digest(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()


def pseudonym(value: str, salt: str | bytes | None = None) -> str:
    """A stable pseudonym ``ANON-XXXXXXXXXX`` for a patient identifier.

    Args:
        value: The identifier (PatientID, or PatientName when there is no ID).
        salt: Secret key; None = ``default_salt()``.

    Returns:
        The pseudonym (same value and salt, same pseudonym).
    """
    return "ANON-" + _digest(_key(salt), "patient", value.strip()).hex()[:10].upper()


def remap_uid(uid: str, salt: str | bytes | None = None) -> str:
    """A new ``2.25.`` UID derived from the original and the salt (consistent across files).

    Args:
        uid: The original UID.
        salt: Secret key; None = ``default_salt()``.

    Returns:
        The replacement UID.
    """
    # A name-based UUID (version bits of v5) keyed by the salt, in the 2.25 arc (PS3.5 B.2).
    digest = _digest(_key(salt), "uid", uid.strip())
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=5).int}"


def _is_standard_uid(uid: str) -> bool:
    """Registered UIDs (SOP classes, transfer syntaxes, coding schemes) carry no identity."""
    u = UID(uid)
    return u.name != uid or uid.startswith("1.2.840.10008.")


class _Cleaner:
    """One de-identification pass over a data set (and its sequences)."""

    def __init__(
        self,
        key: bytes,
        options: DeidOptions,
        uid_map: MutableMapping[str, str] | None,
        patient_key: str,
    ) -> None:
        self.key = key
        self.options = options
        self.uid_map = uid_map
        self.patient = pseudonym(patient_key, key) if patient_key else "ANONYMOUS"
        days = int.from_bytes(_digest(key, "shift", patient_key)[:4], "big") % 3650 + 1
        self.shift = dt.timedelta(days=-days)

    def uid(self, value: str) -> str:
        if not value or _is_standard_uid(value):
            return value
        new = remap_uid(value, self.key)
        if self.uid_map is not None:
            self.uid_map[value] = new
        return new

    def date(self, value: str, vr: str) -> str | None:
        """Shift a DA/DT value; None when it cannot be parsed (then it is removed)."""
        text = value.strip()
        try:
            day = dt.datetime.strptime(text[:8], "%Y%m%d")
        except ValueError:
            return None
        shifted = (day + self.shift).strftime("%Y%m%d")
        if vr == "DT":
            rest = re.split(r"[+-]", text[8:], maxsplit=1)[0]  # drop the UTC offset
            return shifted + rest
        return shifted

    def clean(self, ds: Dataset) -> None:
        for elem in list(ds):
            tag = elem.tag
            group = tag.group
            if tag.is_private or 0x5000 <= group <= 0x501E or 0x6000 <= group <= 0x601E:
                del ds[tag]
                continue
            keyword = elem.keyword
            if keyword in _IDENTITY:
                elem.value = self.patient
                continue
            if keyword == "PatientBirthDate":  # never shifted: a shifted birth date still dates
                elem.value = ""
                continue
            if keyword in _KEEP:
                continue
            vr = elem.VR
            action = self._resolve(table_action(tag), vr)
            if (keyword == "ContentSequence" and self.options.clean_structured_content) or (
                keyword == "GraphicAnnotationSequence" and self.options.clean_graphics
            ):
                action = "C"
            if (
                action in ("Z", "X", "D")
                and self.options.keep_patient_characteristics
                and (keyword in PATIENT_CHARACTERISTICS)
            ):
                action = "K"
            if action is None:
                action = self._action_by_vr(vr)
            elif self.options.dates == "shift" and vr in ("DA", "DT", "TM") and action in "XZD":
                # Retain Longitudinal Temporal Information with Modified Dates: every date the
                # table names is shifted (times kept), not removed.
                action = "K" if vr == "TM" else "S"
            self._apply(ds, elem, action, vr)

    @staticmethod
    def _resolve(action: str | None, vr: str) -> str | None:
        """One action from the standard's, combined ones resolved as ``_RESOLVE`` says."""
        if action is None:
            return None
        if action == "Z/D":
            return "D" if vr in ("DA", "DT", "TM") else "Z"
        return _RESOLVE.get(action, action)

    def _action_by_vr(self, vr: str) -> str:
        if vr == "SQ":
            return "C"
        if vr == "UI":
            return "U"
        if vr == "PN":
            return "Z"
        if vr in ("DA", "DT"):
            return "S"
        if vr == "TM":
            return "K" if self.options.dates == "shift" else "X"
        return "K"

    def _apply(self, ds: Dataset, elem: Any, action: str, vr: str) -> None:
        if action == "K":
            if vr == "SQ":
                for item in elem.value or []:
                    self.clean(item)
            return
        if action == "X":
            del ds[elem.tag]
        elif action == "C" or (action == "U" and vr == "SQ"):
            for item in elem.value or []:
                self.clean(item)
        elif action == "U":
            values = elem.value if elem.VM > 1 else [elem.value]
            new = [self.uid(str(v)) for v in values if v]
            elem.value = new if elem.VM > 1 else (new[0] if new else "")
        elif action in ("Z", "D") and vr in ("DA", "DT", "TM"):
            self._date_like(ds, elem, vr, dummy=action == "D")
        elif action == "S":
            self._date_like(ds, elem, vr, dummy=False, remove_if_empty=True)
        elif vr == "SQ":
            elem.value = Sequence()
        elif vr == "UI":  # a dummy UID is a remapped one; an emptied one is empty
            if action == "D":
                self._apply(ds, elem, "U", vr)
            else:
                elem.value = ""
        elif action == "D" and vr in ("LO", "SH", "PN", "LT", "ST", "UT", "CS"):
            elem.value = "ANONYMIZED" if vr != "CS" else ""
        else:
            elem.value = None if vr not in ("LO", "SH", "PN", "LT", "ST", "UT", "CS", "AE") else ""

    def _date_like(
        self, ds: Dataset, elem: Any, vr: str, *, dummy: bool, remove_if_empty: bool = False
    ) -> None:
        if self.options.dates == "shift":
            if vr == "TM":
                return
            values = elem.value if elem.VM > 1 else [elem.value]
            shifted = [self.date(str(v), vr) for v in values if v]
            if shifted and all(s is not None for s in shifted):
                elem.value = shifted if elem.VM > 1 else shifted[0]
                return
        if remove_if_empty:
            del ds[elem.tag]
        elif dummy:
            elem.value = (
                _EMPTY_DATE if vr == "DA" else ("000000" if vr == "TM" else _EMPTY_DATE + "000000")
            )
        else:
            elem.value = ""


def burned_in_annotation(source: Dataset | XRayImage) -> bool:
    """True when the header says the pixels carry burned-in annotation."""
    if isinstance(source, Dataset):
        return str(source.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"
    # An XRayImage, or an image-like object of pixels: only a header can say "burned in".
    return bool(getattr(source, "burned_in_annotation", False))


def check_exportable(
    source: Dataset | XRayImage, options: DeidOptions = DeidOptions(), name: str = ""
) -> None:
    """Refuse data whose pixels may identify the patient (BurnedInAnnotation YES).

    Exporters of pixels taken from an `XRayImage` (patches, augmented images) call this with
    the image; ``deidentify`` calls it with the data set.

    Args:
        source: The source data set (or header), or a loaded image.
        options: ``allow_burned_in`` overrides the refusal.
        name: How to name the object in the message (e.g. its file).

    Raises:
        DeidentificationError: Burned-in annotation without ``allow_burned_in``.
    """
    if burned_in_annotation(source) and not options.allow_burned_in:
        if not name and isinstance(source, XRayImage):
            name = str(source.path)
        what = f"'{name}'" if name else "the image"
        raise DeidentificationError(
            f"Cannot export {what}: its BurnedInAnnotation is YES, so the pixels may show the "
            "patient's identity (pass allow_burned_in=True only after cleaning them)."
        )


def deidentify(
    ds: Dataset,
    *,
    salt: str | bytes | None = None,
    options: DeidOptions = DeidOptions(),
    uid_map: MutableMapping[str, str] | None = None,
) -> Dataset:
    """A de-identified copy of a data set (the input is left untouched).

    Args:
        ds: The source data set (with or without file meta).
        salt: Secret keying pseudonyms, UIDs and date shifts; None = ``default_salt()``. Use one
            salt per project so exports stay consistent.
        options: Date handling, patient characteristics, burned-in annotation.
        uid_map: Filled with original -> new UID for every UID replaced (for an export log kept
            as securely as the originals).

    Returns:
        The de-identified copy, with PatientIdentityRemoved YES and the method recorded.

    Raises:
        DeidentificationError: BurnedInAnnotation is YES and ``options.allow_burned_in`` is off.
    """
    check_exportable(ds, options)
    key = _key(salt)
    out = copy.deepcopy(ds)
    patient_key = (
        str(ds.get("PatientID", "") or "").strip() or str(ds.get("PatientName", "") or "").strip()
    )
    cleaner = _Cleaner(key, options, uid_map, patient_key)
    cleaner.clean(out)
    meta = getattr(out, "file_meta", None)
    if meta is not None:
        cleaner.clean(meta)
        if "SOPInstanceUID" in out:
            meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    for keyword in _IDENTITY:
        if keyword not in out:
            setattr(out, keyword, cleaner.patient)
    out.PatientIdentityRemoved = "YES"
    out.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.dates == "shift" else "REMOVED"
    )
    out.DeidentificationMethod = METHOD
    out.DeidentificationMethodCodeSequence = Sequence(
        [_code(c, m) for c, m in _method_codes(options)]
    )
    return out


def _method_codes(options: DeidOptions) -> list[tuple[str, str]]:
    codes = [("113100", "Basic Application Confidentiality Profile")]
    if options.dates == "shift":
        codes.append(("113107", "Retain Longitudinal Temporal Information Modified Dates Option"))
    if options.keep_patient_characteristics:
        codes.append(("113108", "Retain Patient Characteristics Option"))
    if options.clean_graphics:
        codes.append(("113103", "Clean Graphics Option"))
    if options.clean_structured_content:
        codes.append(("113104", "Clean Structured Content Option"))
    return codes


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


_PATH_KEYS = {
    "path",
    "paths",
    "file",
    "files",
    "filename",
    "filepath",
    "fpath",
    "sourcepath",
    "source",
    "imagepath",
    "dicompath",
    "sourcefile",
    "originalpath",
}
_DATE_WORDS = ("date", "datetime", "birth")
_ID_KEYS = {"patientid", "patientname", "patient", "patientsname"}


def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


_TABLE_NORM = {_norm(k): v for k, v in _TABLE.items()}
_CHAR_NORM = {_norm(k) for k in PATIENT_CHARACTERISTICS}


def deidentify_metadata(
    meta: Mapping[str, Any],
    *,
    salt: str | bytes | None = None,
    options: DeidOptions = DeidOptions(),
    uid_map: MutableMapping[str, str] | None = None,
    keep_keys: Collection[str] = (),
    patient_key: str | None = None,
) -> dict[str, Any]:
    """De-identify the metadata dict of a non-DICOM export (patch, data set row, report).

    Keys are matched case- and punctuation-blind against DICOM keywords, so ``patient_id``,
    ``PatientID`` and ``patientId`` are the same: patient ID/name become the same pseudonym as
    in ``deidentify``; keys ending in ``uid`` are remapped as there; keys of the profile table
    are dropped; date-like keys are dropped or shifted; path-like keys keep only a pseudonymous
    file name. Nested dicts and lists are cleaned too; other keys are kept.

    Args:
        meta: The metadata (not modified).
        salt: As for ``deidentify`` (use the same salt to keep the two consistent).
        options: As for ``deidentify``.
        uid_map: As for ``deidentify``.
        keep_keys: Keys known to be anonymous already (e.g. MIMIC's ``subject_id``,
            ``study_id``, ``dicom_id``), kept as they are.
        patient_key: Original patient ID that keys the date shift (defaults to the dict's own
            patient id or name).

    Returns:
        A new, de-identified dict.
    """
    key = _key(salt)
    keep = {_norm(k) for k in keep_keys}
    if patient_key is None:
        patient_key = _find_patient(meta) or ""
    cleaner = _Cleaner(key, options, uid_map, patient_key)
    return _clean_mapping(meta, cleaner, keep)


def _find_patient(meta: Mapping[str, Any]) -> str | None:
    by_norm = {_norm(str(k)): v for k, v in meta.items()}
    for name in ("patientid", "patientname"):
        value = by_norm.get(name)
        if value not in (None, ""):
            return str(value).strip()
    return None


def _clean_mapping(meta: Mapping[str, Any], cleaner: _Cleaner, keep: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, value in meta.items():
        norm = _norm(str(k))
        if norm in keep:
            out[k] = value
            continue
        cleaned = _clean_value(norm, value, cleaner, keep)
        if cleaned is not _DROP:
            out[k] = cleaned
    return out


_DROP = object()


def _clean_value(norm: str, value: Any, cleaner: _Cleaner, keep: set[str]) -> Any:
    if isinstance(value, Mapping):
        return _clean_mapping(value, cleaner, keep)
    is_uid = norm.endswith("uid") or norm.endswith("uids")
    if isinstance(value, (list, tuple)) and not is_uid and norm not in _PATH_KEYS:
        return type(value)(_clean_value(norm, v, cleaner, keep) for v in value)
    if norm in _ID_KEYS:
        return cleaner.patient
    if norm in _CHAR_NORM and cleaner.options.keep_patient_characteristics:
        return value
    if is_uid:
        if isinstance(value, (list, tuple)):
            return type(value)(cleaner.uid(str(v)) for v in value)
        return cleaner.uid(str(value)) if value else value
    if norm in _PATH_KEYS or isinstance(value, PurePath):
        return _clean_path(value, cleaner)
    if isinstance(value, (dt.date, dt.datetime)):
        if cleaner.options.dates == "shift":
            return value + cleaner.shift
        return _DROP
    if any(word in norm for word in _DATE_WORDS) or norm.endswith("time"):
        if cleaner.options.dates == "shift" and isinstance(value, str) and "birth" not in norm:
            shifted = cleaner.date(value, "DT" if len(value.strip()) > 8 else "DA")
            return shifted if shifted is not None else _DROP
        return _DROP
    if _TABLE_NORM.get(norm) not in (None, "U", "X/Z/U*"):
        return _DROP
    return value


def _clean_path(value: Any, cleaner: _Cleaner) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_clean_path(v, cleaner) for v in value)
    if value in (None, ""):
        return value
    p = PurePath(str(value))
    token = _digest(cleaner.key, "path", str(value)).hex()[:16]
    suffix = p.suffix.lower()
    keep_suffix = suffix and len(suffix) <= 6 and not suffix[1:].isdigit()
    return token + suffix if keep_suffix else token
