"""Header-only reading for the study index: one `HeaderRecord` per file, never the pixels.

A DICOM file is parsed up to its pixel data element, whose length is then checked against the
header (so truncated files are flagged at index time); a raster file is opened lazily by Pillow
for its size. Every problem becomes a record with ``status == "error"`` and a one-sentence reason,
so one bad file never stops an index.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from PIL import Image

from fpsm_core.io.dicom import (
    captured_warnings,
    check_geometry,
    header_int,
    header_str,
    is_dicom_preamble,
    looks_like_metaless,
)
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.loader import DICOM_SUFFIXES, RASTER_SUFFIXES, sniff
from fpsm_core.io.raster import RASTER_FORMATS, mimic_ids

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_LONG_VRS = (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN")


@dataclass(frozen=True)
class HeaderRecord:
    """What the index keeps about one file (also one row of the SQLite cache).

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


RECORD_FIELDS = tuple(f.name for f in fields(HeaderRecord))


def read_header(path: str, mtime_ns: int, size: int) -> HeaderRecord:
    """Read what the index needs from one file.

    Args:
        path: Absolute path as a string.
        mtime_ns: Modification time from the walk's stat.
        size: Size in bytes from the walk's stat.

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
                return _dicom_header(fp, path, base, head)
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


def _dicom_header(fp: BinaryIO, path: str, base: dict[str, Any], head: bytes) -> HeaderRecord:
    preamble = is_dicom_preamble(head)
    if not preamble and not looks_like_metaless(head):
        raise ImageLoadError(path, "it is not a DICOM file")
    with captured_warnings() as caught:
        try:
            ds = pydicom.dcmread(fp, force=not preamble, stop_before_pixels=True)
        except Exception as exc:
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ImageLoadError(path, f"it is not a readable DICOM file ({text})") from None
        if len(ds) == 0:
            raise ImageLoadError(path, "it is not a DICOM file (no data elements could be read)")
        meta = getattr(ds, "file_meta", None)
        ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
        sop = header_str(ds, "SOPClassUID") or (
            header_str(meta, "MediaStorageSOPClassUID") if meta is not None else None
        )
        record = dict(
            base,
            source_format="dicom",
            patient_id=header_str(ds, "PatientID"),
            patient_name=header_str(ds, "PatientName"),
            study_uid=header_str(ds, "StudyInstanceUID"),
            study_date=header_str(ds, "StudyDate"),
            study_time=header_str(ds, "StudyTime"),
            study_description=header_str(ds, "StudyDescription"),
            accession_number=header_str(ds, "AccessionNumber"),
            series_uid=header_str(ds, "SeriesInstanceUID"),
            series_number=header_int(ds, "SeriesNumber"),
            series_description=header_str(ds, "SeriesDescription"),
            modality=header_str(ds, "Modality"),
            instance_uid=header_str(ds, "SOPInstanceUID"),
            instance_number=header_int(ds, "InstanceNumber"),
            view_position=header_str(ds, "ViewPosition"),
            laterality=header_str(ds, "ImageLaterality") or header_str(ds, "Laterality"),
            rows=header_int(ds, "Rows"),
            columns=header_int(ds, "Columns"),
            frames=header_int(ds, "NumberOfFrames") or 1,
            photometric=header_str(ds, "PhotometricInterpretation"),
            transfer_syntax=ts or None,
            sop_class_uid=sop,
        )
        if sop == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
            return HeaderRecord(**record, status="other")
        pixel = _pixel_element(fp, ds, ts)
        if pixel is None:
            return HeaderRecord(**record, status="other")
        try:
            geo = check_geometry(Path(path), ds, [], has_pixel_data=True)
            _check_pixel_length(path, geo, ds, pixel, int(base["size"]))
        except ImageLoadError as exc:
            return HeaderRecord(**record, status="error", error=str(exc))
    del caught
    return HeaderRecord(**record, status="image")


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
    path: str, geo: dict[str, int], ds: pydicom.Dataset, pixel: tuple[int, int], size: int
) -> None:
    length, offset = pixel
    if length in (-1, 0xFFFFFFFF):
        return
    if offset + length > size:
        raise ImageLoadError(
            path,
            f"the pixel data are truncated ({max(size - offset, 0)} of {length} bytes present)",
        )
    photometric = header_str(ds, "PhotometricInterpretation") or ""
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
