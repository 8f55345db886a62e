"""DICOM radiographs to `XRayImage`: reading, decoding, Modality LUT, VOI and display sense.

Decode policy: native, deflated, big-endian and RLE data are decoded by pydicom itself; JPEG
(baseline, extended, lossless, SV1) and JPEG-LS/JPEG 2000/HTJ2K go through the pydicom 3 decoder
plugins in the order ``PLUGIN_ORDER``, each tried in turn so the one that worked can be reported.
Window policy: a VOI LUT Sequence is applied to the pixels (its output range becomes the window);
otherwise the first WindowCenter/Width pair is used as is; otherwise robust percentiles.
MONOCHROME1 (or PresentationLUTShape INVERSE) pixels are mirrored about the window centre so the
header's window keeps its numbers; see ``fpsm_core.io.image.mirror_about_window``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage, mirror_about_window, percentile_window

# One frame may hold at most this many samples (rows * columns * samples per pixel), and a file at
# most MAX_TOTAL_SAMPLES over all frames: 2**28 is a 16384 x 16384 frame, 1 GiB as float32.
MAX_FRAME_SAMPLES = 2**28
MAX_TOTAL_SAMPLES = 2**32
# Plugins are tried in this order; the first that decodes the frame is reported as the decoder.
PLUGIN_ORDER = ("pydicom", "pylibjpeg", "pyjpegls", "gdcm", "pillow")
# The package a user would install to decode a transfer syntax (names from DATA.md).
DECODER_PACKAGES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg with pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg with pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg with pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls",
    "1.2.840.10008.1.2.4.81": "pyjpegls",
    "1.2.840.10008.1.2.4.90": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg with pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg with pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.202": "pylibjpeg with pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.4.203": "pylibjpeg with pylibjpeg-openjpeg>=2.2",
    "1.2.840.10008.1.2.5": "pydicom (built in)",
}
_NATIVE = {
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    "1.2.840.10008.1.2.1.99",
}
_COLOUR = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
    "PALETTE COLOR",
)
_ALL_PLUGINS_FAILED = "Unable to decode as exceptions were raised by all available plugins: "
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
            raise ImageLoadError(path, f"it is not a readable DICOM file ({_short(exc)})") from None
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
    if "PixelData" in ds and _is_encapsulated(ds):
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


def _is_encapsulated(ds: Dataset) -> bool:
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


def _short(exc: BaseException) -> str:
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


def _check_native_length(path: Path, ds: Dataset, geo: dict[str, int]) -> None:
    """Compare native PixelData length with what the header promises."""
    if _is_encapsulated(ds):
        return
    try:
        actual = len(ds["PixelData"].value or b"")
    except Exception as exc:
        raise ImageLoadError(path, f"the pixel data cannot be read ({_short(exc)})") from None
    photometric = header_str(ds, "PhotometricInterpretation") or ""
    per_frame_bits = geo["rows"] * geo["columns"] * geo["samples"] * geo["bits_allocated"]
    if photometric == "YBR_FULL_422" and geo["samples"] == 3:
        per_frame_bits = per_frame_bits * 2 // 3
    expected = (per_frame_bits * geo["frames"] + 7) // 8
    if actual < expected:
        raise ImageLoadError(path, f"the pixel data are truncated ({actual} of {expected} bytes)")


def _decode(path: Path, ds: Dataset, frame: int) -> tuple[np.ndarray, str]:
    """Decode one frame, returning the array and the name of the decoder that did it."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if "PixelData" not in ds or ts in _NATIVE:
        try:
            return pydicom.pixels.pixel_array(ds, index=frame), "native"
        except Exception as exc:
            raise ImageLoadError(path, f"the pixel data cannot be read ({_short(exc)})") from None
    try:
        decoder = pydicom.pixels.get_decoder(ts)
    except NotImplementedError:
        name = ts.name if ts.is_valid and ts.name != ts else ts
        raise ImageLoadError(
            path, f"unsupported transfer syntax {name} (no decoder exists in pydicom for it)"
        ) from None
    if not decoder.is_available:
        package = DECODER_PACKAGES.get(ts, ", ".join(decoder.missing_dependencies))
        raise ImageLoadError(
            path, f"unsupported transfer syntax {ts.name}; install {package} to decode it"
        )
    available = decoder.available_plugins
    order = [p for p in PLUGIN_ORDER if p in available] + [
        p for p in available if p not in PLUGIN_ORDER
    ]
    failures: list[str] = []
    for plugin in order:
        try:
            return pydicom.pixels.pixel_array(ds, index=frame, decoding_plugin=plugin), plugin
        except Exception as exc:
            text = _short(exc).replace(_ALL_PLUGINS_FAILED, "")
            failures.append(text if text.startswith(f"{plugin}:") else f"{plugin}: {text}")
    raise ImageLoadError(
        path,
        f"the {ts.name} pixel data cannot be decoded, the data may be "
        f"corrupt ({failures[0] if failures else 'no decoder'})",
    )


def _to_grey(ds: Dataset, arr: np.ndarray, photometric: str, notes: list[str]) -> np.ndarray:
    """Colour pixels (RGB, YBR already converted by pydicom, palette) to BT.601 luma."""
    if photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        rgb = arr.astype(np.float32)
        notes.append(f"{photometric} colour image converted to grey (BT.601 luma).")
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return arr.astype(np.float32)


def _modality(ds: Dataset, arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """Apply the Modality LUT: LUT Sequence, else RescaleSlope/Intercept, in float32."""
    if "ModalityLUTSequence" in ds:
        try:
            return np.asarray(pydicom.pixels.apply_modality_lut(arr, ds), dtype=np.float32)
        except Exception as exc:
            notes.append(f"The Modality LUT Sequence is unusable and was ignored ({_short(exc)}).")
    slope = header_floats(ds, "RescaleSlope")
    intercept = header_floats(ds, "RescaleIntercept")
    out = arr.astype(np.float32)
    if slope is None and "RescaleSlope" in ds:
        notes.append("RescaleSlope is malformed and was ignored.")
    if intercept is None and "RescaleIntercept" in ds:
        notes.append("RescaleIntercept is malformed and was ignored.")
    s = slope[0] if slope else 1.0
    b = intercept[0] if intercept else 0.0
    if s == 0:
        notes.append("RescaleSlope is 0 and was ignored.")
        s = 1.0
    if s != 1.0:
        out *= np.float32(s)
    if b != 0.0:
        out += np.float32(b)
    return out


def _voi_lut(ds: Dataset, values: np.ndarray, notes: list[str]) -> tuple[np.ndarray, float, float]:
    """Apply the first VOI LUT; returns the output and its (low, high) range."""
    item = ds.VOILUTSequence[0]
    out = np.asarray(
        pydicom.pixels.apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float32
    )
    lut = item.LUTData if "LUTData" in item else None
    if isinstance(lut, (bytes, bytearray)):  # pydicom leaves OW LUT data as raw bytes
        bits = int(item.LUTDescriptor[2])
        lut = np.frombuffer(lut, dtype="<u2" if bits > 8 else "u1")
    lut_arr = np.asarray(lut, dtype=np.float64).ravel()
    if lut_arr.size == 0:
        raise ValueError("empty LUT Data")
    return out, float(lut_arr.min()), float(lut_arr.max())


def _choose_window(
    ds: Dataset, values: np.ndarray, notes: list[str]
) -> tuple[np.ndarray, tuple[float, float] | None, str, str]:
    """Pick the VOI: (pixels, window or None for 'compute later', function, source)."""
    if "VOILUTSequence" in ds and len(header_value(ds, "VOILUTSequence") or []) > 0:
        try:
            out, lo, hi = _voi_lut(ds, values, notes)
            if hi > lo:
                return out, ((lo + hi) / 2.0, hi - lo), "LINEAR_EXACT", "voi_lut"
            notes.append("The VOI LUT is flat and was ignored.")
        except Exception as exc:
            notes.append(f"The VOI LUT Sequence is unusable and was ignored ({_short(exc)}).")
    centers = header_floats(ds, "WindowCenter")
    widths = header_floats(ds, "WindowWidth")
    if centers and widths:
        function = (header_str(ds, "VOILUTFunction") or "LINEAR").upper()
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            notes.append(f"VOILUTFunction '{function}' is unknown; LINEAR used.")
            function = "LINEAR"
        center, width = centers[0], widths[0]
        minimum = 1.0 if function == "LINEAR" else 0.0
        if width > minimum:
            return values, (center, width), function, "window"
        notes.append(f"WindowWidth {width:g} is not positive and was ignored.")
    elif "WindowCenter" in ds or "WindowWidth" in ds:
        notes.append("WindowCenter/WindowWidth are incomplete or malformed and were ignored.")
    return values, None, "LINEAR_EXACT", "percentile"


def load_dicom(path: Path, frame: int = 0) -> XRayImage:
    """Load one frame of a DICOM file as an `XRayImage` (see the module docstring for policy).

    Args:
        path: The file.
        frame: Frame index for multi-frame files.

    Returns:
        The image in display sense with its window, spacing and identifiers.

    Raises:
        ImageLoadError: For any problem with the file.
    """
    ds, notes = read_dataset(path)
    return image_from_dataset(ds, path, frame, notes)


def image_from_dataset(
    ds: Dataset, path: Path, frame: int = 0, notes: list[str] | None = None
) -> XRayImage:
    """Build an `XRayImage` from a data set already read (e.g. by ``read_dataset``).

    Args:
        ds: The data set, with file_meta carrying the transfer syntax.
        path: The file it came from (for messages and ``XRayImage.path``).
        frame: Frame index.
        notes: Notes gathered so far; new ones are appended.

    Returns:
        The image.

    Raises:
        ImageLoadError: For any problem with the data set.
    """
    notes = [] if notes is None else notes
    with captured_warnings() as caught:
        image = _build_image(ds, path, frame, notes)
    if caught:
        image = replace(image, warnings=tuple(dict.fromkeys(image.warnings + tuple(caught))))
    return image


def _build_image(ds: Dataset, path: Path, frame: int, notes: list[str]) -> XRayImage:
    geo = check_geometry(path, ds, notes)
    if not 0 <= frame < geo["frames"]:
        raise ImageLoadError(
            path,
            f"frame {frame} does not exist (the file has {geo['frames']} "
            f"frame{'s' if geo['frames'] != 1 else ''})",
        )
    photometric = (header_str(ds, "PhotometricInterpretation") or "").upper()
    if "PixelData" in ds:
        _check_native_length(path, ds, geo)
    with captured_warnings() as caught, np.errstate(all="ignore"):
        raw, decoder = _decode(path, ds, frame)
        if raw.ndim != 2 and not (raw.ndim == 3 and raw.shape[-1] == 3):
            raise ImageLoadError(path, f"the decoded frame has an unexpected shape {raw.shape}")
        if photometric in _COLOUR or raw.ndim == 3:
            try:
                values = _to_grey(ds, raw, photometric, notes)
            except Exception as exc:
                raise ImageLoadError(
                    path, f"the colour data cannot be converted ({_short(exc)})"
                ) from None
            window_info = _colour_window(values, geo)
        else:
            values = _modality(ds, raw, notes)
            window_info = _choose_window(ds, values, notes)
        pixels, window, function, source = window_info
        shape = (header_str(ds, "PresentationLUTShape") or "").upper()
        inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
        padding = _padding_value(ds, raw, values) if window is None else None
        if inverted:
            if window is None:
                lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
                pixels = mirror_about_window(pixels, (lo + hi) / 2.0, "LINEAR_EXACT")
                padding = None if padding is None else lo + hi - padding
            else:
                pixels = mirror_about_window(pixels, window[0], function)
        if window is None:
            window = percentile_window(pixels, exclude=padding)
    notes.extend(caught)
    if any(0x6000 <= tag >> 16 <= 0x601E for tag in ds.keys()):
        notes.append("The file has overlay planes; they are not drawn into the pixels.")
    spacing, _source = spacing_from_header(ds, notes)
    ts = ds.file_meta.get("TransferSyntaxUID")
    return XRayImage(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        window=(float(window[0]), float(window[1])),
        spacing_mm=spacing,
        path=path,
        study_uid=header_str(ds, "StudyInstanceUID"),
        series_uid=header_str(ds, "SeriesInstanceUID"),
        instance_uid=header_str(ds, "SOPInstanceUID"),
        view_position=header_str(ds, "ViewPosition"),
        laterality=header_str(ds, "ImageLaterality") or header_str(ds, "Laterality"),
        patient_id=header_str(ds, "PatientID"),
        patient_name=header_str(ds, "PatientName"),
        photometric=photometric,
        warnings=tuple(dict.fromkeys(notes)),
        source_format="dicom",
        voi_function=function,
        window_source=source,
        frame=frame,
        n_frames=geo["frames"],
        modality=header_str(ds, "Modality"),
        transfer_syntax=UID(str(ts)).name if ts else None,
        decoder=decoder,
        bits_stored=geo["bits_stored"],
        inverted=inverted,
        burned_in_annotation=_yes_no(header_str(ds, "BurnedInAnnotation")),
    )


def _yes_no(value: str | None) -> bool | None:
    if value is None:
        return None
    return {"YES": True, "NO": False}.get(value.upper())


def _colour_window(
    values: np.ndarray, geo: dict[str, int]
) -> tuple[np.ndarray, tuple[float, float] | None, str, str]:
    """Colour images carry no VOI: 8-bit ones use the full range, others percentiles."""
    if geo["bits_stored"] <= 8:
        return values, (127.5, 255.0), "LINEAR_EXACT", "full_range"
    return values, None, "LINEAR_EXACT", "percentile"


def _padding_value(ds: Dataset, raw: np.ndarray, values: np.ndarray) -> float | None:
    """PixelPaddingValue after the Modality LUT, to keep it out of percentile windows."""
    padding = header_int(ds, "PixelPaddingValue")
    if padding is None or raw.ndim != 2:
        return None
    hits = np.flatnonzero(raw.ravel() == padding)
    return float(values.ravel()[hits[0]]) if hits.size else None


def empty_meta_dataset() -> Dataset:
    """A data set with an empty file meta (helper for tests and writers)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    return ds
