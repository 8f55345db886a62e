"""DICOM headers: reading a file into a data set, and reading values out of it without surprises.

Read policy: a Part 10 file (the 'DICM' marker at byte 128) is read as such; a file without a
preamble is handed to pydicom's ``force=True`` only when it starts like a raw data set (group 0002
or 0008 first), because ``force`` otherwise 'parses' any bytes. A missing TransferSyntaxUID is
filled in from the encoding pydicom found, for native pixel data only. Warnings raised while
reading become notes on the image instead of being printed.

Value policy: a malformed value never raises; :func:`header_value` and its typed variants return
None (and, where it matters, append a note). :func:`check_geometry` validates the Image Pixel module
against the size limits before any pixel buffer is allocated.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fpsm_core.io.errors import ImageLoadError

# One frame may hold at most this many samples (rows * columns * samples per pixel), and a file at
# most MAX_TOTAL_SAMPLES over all frames: 2**28 is a 16384 x 16384 frame, 1 GiB as float32.
MAX_FRAME_SAMPLES = 2**28
MAX_TOTAL_SAMPLES = 2**32
# catch_warnings swaps process-wide state, so loads that record warnings take turns.
_WARN_LOCK = threading.RLock()


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[str]]:
    """Collect the warnings pydicom and numpy raise while reading, instead of printing them."""
    notes: list[str] = []
    with _WARN_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield notes
        finally:
            for w in caught:
                text = " ".join(str(w.message).split())
                if text and text not in notes:
                    notes.append(text)


def is_dicom_preamble(head: bytes) -> bool:
    """True when the first 132 bytes carry the 'DICM' marker of a Part 10 file."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def looks_like_metaless(head: bytes) -> bool:
    """True when a file starts like a raw data set (no preamble): group 0002 or 0008 first.

    Only such files are handed to pydicom's ``force=True``, which otherwise 'parses' any bytes.
    """
    if len(head) < 12:
        return False
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    element_le = int.from_bytes(head[2:4], "little")
    element_be = int.from_bytes(head[2:4], "big")
    return (group_le in (0x0002, 0x0008) and element_le < 0x0100) or (
        group_be == 0x0008 and element_be < 0x0100
    )


def read_dataset(path: Path, *, stop_before_pixels: bool = False) -> tuple[Dataset, list[str]]:
    """Read a DICOM file (Part 10, or a known meta-less raw data set) with clear errors.

    Args:
        path: The file.
        stop_before_pixels: Read the header only.

    Returns:
        The data set and the notes (warnings) gathered while reading.

    Raises:
        ImageLoadError: Not DICOM, unreadable, or cut short before any element.
    """
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError as exc:
        raise ImageLoadError(path, f"the file cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise ImageLoadError(path, "the file is empty")
    preamble = is_dicom_preamble(head)
    if not preamble and not looks_like_metaless(head):
        raise ImageLoadError(path, "it is not a DICOM file (no 'DICM' marker at byte 128)")
    notes: list[str] = []
    with captured_warnings() as caught:
        try:
            ds = pydicom.dcmread(path, force=not preamble, stop_before_pixels=stop_before_pixels)
        except Exception as exc:  # pydicom raises many types for broken bytes
            raise ImageLoadError(
                path, f"it is not a readable DICOM file ({short_error(exc)})"
            ) from None
    notes.extend(caught)
    if any("End of file reached" in n for n in notes):
        if "PixelData" not in ds and not stop_before_pixels:
            raise ImageLoadError(path, "the file is truncated (it ends inside a data element)")
        notes.append("The file ends before its last element is complete (truncated).")
    if len(ds) == 0:
        raise ImageLoadError(path, "it is not a DICOM file (no data elements could be read)")
    if not preamble:
        notes.append("The file has no DICOM preamble and was read as a raw data set.")
    _ensure_transfer_syntax(path, ds, notes)
    return ds, notes


def _ensure_transfer_syntax(path: Path, ds: Dataset, notes: list[str]) -> None:
    """Fill in a missing TransferSyntaxUID from the encoding pydicom found, for native data only."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = ds.original_encoding
    if implicit is None:
        return
    if "PixelData" in ds and is_encapsulated(ds):
        raise ImageLoadError(
            path, "the file meta has no transfer syntax and the pixel data are compressed"
        )
    ts = (
        ImplicitVRLittleEndian
        if implicit
        else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    )
    meta.TransferSyntaxUID = ts
    notes.append(f"No transfer syntax in the file meta; assumed {ts.name} from the data.")


def is_encapsulated(ds: Dataset) -> bool:
    """True when PixelData has undefined length (compressed fragments)."""
    try:
        return bool(ds["PixelData"].is_undefined_length)
    except Exception:
        return False


def header_value(
    ds: Dataset | Mapping[str, Any], keyword: str, notes: list[str] | None = None
) -> Any:
    """``ds.get(keyword)`` that turns a malformed value into None (and a note) instead of raising."""
    try:
        value = ds.get(keyword)
    except Exception:
        if notes is not None:
            notes.append(f"{keyword} has an unreadable value and was ignored.")
        return None
    return value


def header_str(ds: Dataset | Mapping[str, Any], keyword: str) -> str | None:
    """A header value as a stripped string, None when absent or empty (first of several)."""
    value = header_value(ds, keyword)
    if value is None:
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
        if value is None:
            return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def header_int(
    ds: Dataset | Mapping[str, Any], keyword: str, notes: list[str] | None = None
) -> int | None:
    """A header value as int, None when absent; a note when present but not a number."""
    value = header_value(ds, keyword, notes)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        number = float(value)  # IS values may arrive as '1.0' or invalid text like '1A'
        if not math.isfinite(number) or number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        if notes is not None:
            notes.append(f"{keyword} '{value}' is not a whole number.")
        return None


def header_floats(ds: Dataset | Mapping[str, Any], keyword: str) -> list[float] | None:
    """A numeric (multi-)value as a list of finite floats, None when absent or malformed."""
    value = header_value(ds, keyword)
    if value is None or value == "":
        return None
    items = (
        list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    )
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if not numbers or not all(math.isfinite(n) for n in numbers):
        return None
    return numbers


def spacing_from_header(ds: Dataset, notes: list[str]) -> tuple[tuple[float, float] | None, str]:
    """(row, column) spacing in mm from PixelSpacing, else ImagerPixelSpacing, and its source."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword not in ds:
            continue
        values = header_floats(ds, keyword)
        if values and len(values) == 1:
            values = values * 2
            notes.append(f"{keyword} has one value; used for rows and columns.")
        if values and len(values) >= 2 and values[0] > 0 and values[1] > 0:
            return (values[0], values[1]), keyword
        notes.append(
            f"{keyword} {_fmt_value(header_value(ds, keyword))} is not a usable "
            "spacing and was ignored."
        )
    return None, ""


def _fmt_value(value: Any) -> str:
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def short_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def check_geometry(
    path: Path,
    ds: Dataset | Mapping[str, Any],
    notes: list[str],
    has_pixel_data: bool | None = None,
) -> dict[str, int]:
    """Validate the Image Pixel module before any allocation.

    Args:
        path: The file (for messages).
        ds: The data set (or a dict of keyword -> value, as the study index decodes them).
        notes: Notes to append to.
        has_pixel_data: Whether a (non-float) PixelData element exists; None = look in ``ds``
            (pass True for a header read with ``stop_before_pixels``).

    Returns:
        rows, columns, frames, samples, bits_allocated, bits_stored, pixel_representation.

    Raises:
        ImageLoadError: Missing or impossible values, or an image beyond the size limits.
    """
    if has_pixel_data is None:
        has_pixel_data = "PixelData" in ds
        present = has_pixel_data or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
    else:
        present = has_pixel_data
    if not present:
        kind = header_str(ds, "Modality") or ""
        sop = header_value(ds, "SOPClassUID")
        name = getattr(sop, "name", "") if isinstance(sop, UID) else ""
        what = (
            f" (it is a {name} object)"
            if name and not name.startswith("1.")
            else (f" (a {kind} header without an image)" if kind else "")
        )
        raise ImageLoadError(path, f"the file has no pixel data{what}")
    geo: dict[str, int] = {}
    for keyword, low, high in (("Rows", 1, 65535), ("Columns", 1, 65535)):
        value = header_int(ds, keyword, notes)
        if value is None:
            raise ImageLoadError(path, f"the image header is incomplete ({keyword} is missing)")
        if not low <= value <= high:
            raise ImageLoadError(path, f"impossible image dimensions ({keyword} is {value})")
        geo[keyword.lower()] = value
    frames_raw = header_value(ds, "NumberOfFrames")
    frames = header_int(ds, "NumberOfFrames")
    if frames_raw not in (None, "") and (frames is None or frames < 1):
        raise ImageLoadError(path, f"NumberOfFrames '{frames_raw}' is not a positive whole number")
    geo["frames"] = frames or 1
    samples = header_int(ds, "SamplesPerPixel") or 1
    if samples not in (1, 3):
        raise ImageLoadError(path, f"SamplesPerPixel {samples} is not 1 or 3")
    geo["samples"] = samples
    if has_pixel_data:
        allocated = header_int(ds, "BitsAllocated")
        if allocated not in (1, 8, 16, 32, 64):
            raise ImageLoadError(path, f"BitsAllocated {allocated} is not 1, 8, 16, 32 or 64")
        stored = header_int(ds, "BitsStored") or allocated
        if not 1 <= stored <= allocated:
            raise ImageLoadError(
                path, f"BitsStored {stored} does not fit BitsAllocated {allocated}"
            )
        representation = header_int(ds, "PixelRepresentation") or 0
        if representation not in (0, 1):
            raise ImageLoadError(path, f"PixelRepresentation {representation} is not 0 or 1")
        geo.update(
            bits_allocated=allocated, bits_stored=stored, pixel_representation=representation
        )
    else:
        geo.update(bits_allocated=32, bits_stored=32, pixel_representation=1)
    frame_samples = geo["rows"] * geo["columns"] * samples
    if frame_samples > MAX_FRAME_SAMPLES or frame_samples * geo["frames"] > MAX_TOTAL_SAMPLES:
        raise ImageLoadError(
            path,
            f"the image is too large ({geo['rows']} x {geo['columns']} x {samples} samples x "
            f"{geo['frames']} frames; fpsm reads at most {MAX_FRAME_SAMPLES:,} samples per frame "
            f"and {MAX_TOTAL_SAMPLES:,} per file, in every format)",
        )
    if not header_str(ds, "PhotometricInterpretation"):
        raise ImageLoadError(path, "PhotometricInterpretation is missing")
    return geo
