"""Header-only reading for the study index: one `HeaderRecord` per file, never the pixels.

A DICOM file is parsed up to its pixel data element, whose length is then checked against the
header (so truncated files are flagged at index time); a raster file is opened lazily by Pillow
for its size. Every problem becomes a record with ``status == "error"`` and a one-sentence reason,
so one bad file never stops an index.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import pydicom
from PIL import Image
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from fpsm_core.errors import one_sentence
from fpsm_core.io.dicom_header import (
    captured_warnings,
    check_geometry,
    header_int,
    header_str,
    header_value,
    is_dicom_preamble,
    looks_like_metaless,
)
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.fast_header import FastHeader, scan
from fpsm_core.io.loader import DICOM_SUFFIXES, RASTER_SUFFIXES, sniff
from fpsm_core.io.raster import RASTER_FORMATS, mimic_ids

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")


class HeaderRecord(NamedTuple):
    """What the index keeps about one file: one row of the SQLite cache (a tuple, cheap to load).

    ``status`` is "image" (has pixels), "other" (a DICOM object without pixels: SR, PR, KO,
    DICOMDIR...), "error" (``error`` says why) or "skip" (not an image file at all).
    """

    path: str
    mtime_ns: int
    size: int
    status: str
    source_format: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_description: str | None = None
    accession_number: str | None = None
    series_uid: str | None = None
    series_number: int | None = None
    series_description: str | None = None
    modality: str | None = None
    instance_uid: str | None = None
    instance_number: int | None = None
    view_position: str | None = None
    laterality: str | None = None
    rows: int | None = None
    columns: int | None = None
    frames: int | None = None
    photometric: str | None = None
    transfer_syntax: str | None = None
    sop_class_uid: str | None = None
    error: str | None = None


RECORD_FIELDS: tuple[str, ...] = HeaderRecord._fields


def read_header(path: str, mtime_ns: int, size: int, *, fast_path: bool = True) -> HeaderRecord:
    """Read what the index needs from one file.

    Args:
        path: Absolute path as a string.
        mtime_ns: Modification time from the walk's stat.
        size: Size in bytes from the walk's stat.
        fast_path: Try the lean scanner (``fast_header``) before pydicom.

    Returns:
        The record; problems are in ``status == "error"`` records, never raised.
    """
    base: dict[str, Any] = {"path": path, "mtime_ns": mtime_ns, "size": size}
    suffix = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
            kind = sniff(head)
            if kind in ("dicom", "dicom-raw"):
                fp.seek(0)
                return _dicom_header(fp, path, base, head, fast_path)
    except ImageLoadError as exc:
        return HeaderRecord(**base, status="error", error=str(exc))
    except OSError as exc:
        return HeaderRecord(
            **base,
            status="error",
            error=str(ImageLoadError(path, f"the file cannot be read ({exc.strerror or exc})")),
        )
    if kind in ("png", "jpeg", "tiff"):
        return _raster_header(path, base)
    if suffix in DICOM_SUFFIXES or suffix in RASTER_SUFFIXES:
        reason = (
            "the file is empty"
            if size == 0
            else "it is not a DICOM file (no 'DICM' marker at byte 128)"
            if suffix in DICOM_SUFFIXES
            else f"it is not a readable {suffix.lstrip('.').upper()} image"
        )
        return HeaderRecord(**base, status="error", error=str(ImageLoadError(path, reason)))
    return HeaderRecord(**base, status="skip")


# Fields the index reads. Values are decoded straight from pydicom's raw elements (several
# times faster than pydicom's validated conversion); anything unusual falls back to pydicom.
_FIELDS = (
    "SpecificCharacterSet",
    "PatientID",
    "PatientName",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "AccessionNumber",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
)
_FIELD_TAGS = {kw: (Tag(kw), dictionary_VR(kw)) for kw in _FIELDS}
_WANTED = frozenset(int(tag) for tag, _ in _FIELD_TAGS.values())
_SIMPLE_CHARSETS = {"", "ISO_IR 6", "ISO_IR 100", "ISO 2022 IR 6"}
_CHARSET_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC"}
_TEXT_VRS = {
    "AE",
    "AS",
    "CS",
    "DA",
    "DS",
    "DT",
    "IS",
    "LO",
    "LT",
    "PN",
    "SH",
    "ST",
    "TM",
    "UI",
    "UC",
    "UT",
}


_FALLBACK = object()


def _decode_raw(keyword: str, raw: bytes, little: bool, charset: str) -> Any:
    """One raw value as int/str (first of several), or _FALLBACK when pydicom must decode it."""
    vr = _FIELD_TAGS[keyword][1]
    if vr == "US":
        if len(raw) < 2:
            return _FALLBACK
        return struct.unpack("<H" if little else ">H", raw[:2])[0]
    if vr not in _TEXT_VRS:
        return _FALLBACK
    if vr in _CHARSET_VRS and charset not in _SIMPLE_CHARSETS and charset != "ISO_IR 192":
        return _FALLBACK
    encoding = "utf-8" if charset == "ISO_IR 192" else "latin-1"
    return raw.decode(encoding, "replace").split("\\")[0].strip(" \x00")


def _keep(values: dict[str, Any], keyword: str, value: Any) -> None:
    if value is None or value == "":
        return
    if keyword in ("SeriesNumber", "InstanceNumber"):
        value = header_int({keyword: value}, keyword)
        if value is None:
            return
    values[keyword] = value if isinstance(value, int) else str(value)


def _decode_fields(ds: pydicom.Dataset) -> dict[str, Any]:
    """The index's fields from a pydicom data set, decoding raw elements directly."""
    little = ds.original_encoding[1] is not False
    values: dict[str, Any] = {}
    charset = ""
    for keyword in _FIELDS:
        elem = ds.get_item(_FIELD_TAGS[keyword][0])
        if elem is None:
            continue
        value: Any = _FALLBACK
        if isinstance(elem, RawDataElement) and elem.value is not None:
            value = _decode_raw(keyword, elem.value, little, charset)
        if value is _FALLBACK:
            value = header_value(ds, keyword)
        if keyword == "SpecificCharacterSet":
            charset = str(value or "").upper()
            continue
        _keep(values, keyword, value)
    return values


def _fast_fields(fast: FastHeader) -> dict[str, Any] | None:
    """The index's fields from the lean scanner; None when pydicom must decode something."""
    values: dict[str, Any] = {}
    charset = ""
    for keyword in _FIELDS:
        raw = fast.values.get(int(_FIELD_TAGS[keyword][0]))
        if raw is None:
            continue
        value = _decode_raw(keyword, raw, True, charset)
        if value is _FALLBACK:
            return None
        if keyword == "SpecificCharacterSet":
            charset = str(value).upper()
            if "\\" in raw.decode("latin-1"):
                return None  # several character sets: code extensions need pydicom
            continue
        _keep(values, keyword, value)
    return values


def _record(base: dict[str, Any], v: dict[str, Any], ts: str, sop: str | None) -> dict[str, Any]:
    return dict(
        base,
        source_format="dicom",
        patient_id=v.get("PatientID"),
        patient_name=v.get("PatientName"),
        study_uid=v.get("StudyInstanceUID"),
        study_date=v.get("StudyDate"),
        study_time=v.get("StudyTime"),
        study_description=v.get("StudyDescription"),
        accession_number=v.get("AccessionNumber"),
        series_uid=v.get("SeriesInstanceUID"),
        series_number=v.get("SeriesNumber"),
        series_description=v.get("SeriesDescription"),
        modality=v.get("Modality"),
        instance_uid=v.get("SOPInstanceUID"),
        instance_number=v.get("InstanceNumber"),
        view_position=v.get("ViewPosition"),
        laterality=v.get("ImageLaterality") or v.get("Laterality"),
        rows=header_int(v, "Rows"),
        columns=header_int(v, "Columns"),
        frames=header_int(v, "NumberOfFrames") or 1,
        photometric=v.get("PhotometricInterpretation"),
        transfer_syntax=ts or None,
        sop_class_uid=sop,
    )


def _classify(
    record: dict[str, Any], v: dict[str, Any], pixel: tuple[int, int] | None, path: str
) -> HeaderRecord:
    if record["sop_class_uid"] == MEDIA_STORAGE_DIRECTORY or pixel is None:
        return HeaderRecord(**record, status="other")
    try:
        geo = check_geometry(Path(path), v, [], has_pixel_data=True)
        _check_pixel_length(path, geo, v, pixel, int(record["size"]))
    except ImageLoadError as exc:
        return HeaderRecord(**record, status="error", error=str(exc))
    return HeaderRecord(**record, status="image")


def _dicom_header(
    fp: BinaryIO, path: str, base: dict[str, Any], head: bytes, fast_path: bool = True
) -> HeaderRecord:
    preamble = is_dicom_preamble(head)
    if not preamble and not looks_like_metaless(head):
        raise ImageLoadError(path, "it is not a DICOM file")
    if fast_path and preamble:
        fast = scan(fp, _WANTED, int(base["size"]))
        fields = _fast_fields(fast) if fast is not None else None
        if fast is not None and fields is not None:
            sop = fields.get("SOPClassUID") or fast.sop_class_uid or None
            record = _record(base, fields, fast.transfer_syntax, sop)
            return _classify(record, fields, fast.pixel, path)
        fp.seek(0)
    with captured_warnings():
        try:
            ds = pydicom.dcmread(fp, force=not preamble, stop_before_pixels=True)
        except Exception as exc:
            text = one_sentence(exc, 200)
            raise ImageLoadError(path, f"it is not a readable DICOM file ({text})") from None
        if len(ds) == 0:
            raise ImageLoadError(path, "it is not a DICOM file (no data elements could be read)")
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        v = _decode_fields(ds)
        sop = v.get("SOPClassUID") or (
            header_str(meta, "MediaStorageSOPClassUID") if meta is not None else None
        )
        record = _record(base, v, ts, sop)
        if 0x00041220 in ds:  # DirectoryRecordSequence: a DICOMDIR without the usual meta
            return HeaderRecord(**record, status="other")
        return _classify(record, v, _pixel_element(fp, ds, ts), path)


def _pixel_element(fp: BinaryIO, ds: pydicom.Dataset, ts: str) -> tuple[int, int] | None:
    """(value length, value offset) of the pixel data element at the reader's position, or None.

    pydicom leaves the file positioned at the pixel data tag when ``stop_before_pixels`` stops.
    For a deflated data set the position is inside the inflated stream, so the length check is
    skipped (returns a length of -1) as long as some pixel element exists.
    """
    _implicit, little = ds.original_encoding
    if ts == "1.2.840.10008.1.2.1.99":
        return (-1, 0)
    try:
        start = fp.tell()
        raw = fp.read(12)
    except (OSError, ValueError):
        return None
    if len(raw) < 8:
        return None
    order = "<" if little in (True, None) else ">"
    group, element = struct.unpack(order + "HH", raw[:4])
    if (group << 16 | element) not in _PIXEL_TAGS:
        return None
    # Trust the bytes over the transfer syntax: some writers switch to implicit VR mid-file.
    if raw[4:6] not in _LONG_VRS or len(raw) < 12:
        (length,) = struct.unpack(order + "I", raw[4:8])
        return length, start + 8
    (length,) = struct.unpack(order + "I", raw[8:12])
    return length, start + 12


def _check_pixel_length(
    path: str, geo: dict[str, int], fields: dict[str, Any], pixel: tuple[int, int], size: int
) -> None:
    length, offset = pixel
    if length in (-1, 0xFFFFFFFF):
        return
    if offset + length > size:
        raise ImageLoadError(
            path,
            f"the pixel data are truncated ({max(size - offset, 0)} of {length} bytes present)",
        )
    photometric = str(fields.get("PhotometricInterpretation", ""))
    per_frame = geo["rows"] * geo["columns"] * geo["samples"] * geo["bits_allocated"]
    if photometric == "YBR_FULL_422" and geo["samples"] == 3:
        per_frame = per_frame * 2 // 3
    expected = (per_frame * geo["frames"] + 7) // 8
    if length < expected:
        raise ImageLoadError(path, f"the pixel data are truncated ({length} of {expected} bytes)")


def _raster_header(path: str, base: dict[str, Any]) -> HeaderRecord:
    try:
        with Image.open(path) as im:
            fmt = RASTER_FORMATS.get(im.format or "")
            if fmt is None:
                raise ImageLoadError(path, f"{im.format} images are not supported")
            width, height = im.size
            mode = im.mode
    except ImageLoadError as exc:
        return HeaderRecord(**base, status="error", error=str(exc))
    except Exception:  # Pillow raises many types for broken headers
        return HeaderRecord(
            **base,
            status="error",
            error=str(ImageLoadError(path, "it is not a readable PNG, JPEG or TIFF image")),
        )
    ids = mimic_ids(Path(path))
    return HeaderRecord(
        **base,
        status="image",
        source_format=fmt,
        patient_id=ids[0] if ids else None,
        study_uid=ids[1] if ids else None,
        instance_uid=ids[2] if ids else None,
        rows=height,
        columns=width,
        frames=1,
        photometric="MONOCHROME2" if mode in ("L", "I", "I;16", "I;16B", "F", "1") else mode,
    )
