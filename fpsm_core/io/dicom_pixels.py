"""DICOM pixels: decoding a frame and turning stored values into display-sense values.

Decode policy: native, deflated, big-endian and RLE data are decoded by pydicom itself; JPEG
(baseline, extended, lossless, SV1) and JPEG-LS/JPEG 2000/HTJ2K go through the pydicom 3 decoder
plugins in the order ``PLUGIN_ORDER``, each tried in turn so the one that worked can be reported.
A transfer syntax whose decoder is missing names the package to install (``DECODER_PACKAGES``).
Value policy: the Modality LUT (LUT Sequence, else RescaleSlope/Intercept) is applied in float32;
colour images become BT.601 luma. Window policy: a VOI LUT Sequence is applied to the pixels (its
output range becomes the window); otherwise the first WindowCenter/Width pair is used as is;
otherwise robust percentiles, computed later with the PixelPaddingValue left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fpsm_core.io.dicom_header import (
    header_floats,
    header_int,
    header_str,
    header_value,
    is_encapsulated,
    short_error,
)
from fpsm_core.io.errors import ImageLoadError

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
COLOUR_PHOTOMETRICS = (
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_ICT",
    "YBR_RCT",
    "YBR_PARTIAL_420",
    "PALETTE COLOR",
)
_NATIVE = {
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    "1.2.840.10008.1.2.1.99",
}
_ALL_PLUGINS_FAILED = "Unable to decode as exceptions were raised by all available plugins: "
# What a window choice returns: (pixels, window or None for 'compute later', function, source).
Window = tuple[np.ndarray, tuple[float, float] | None, str, str]


def check_native_length(path: Path, ds: Dataset, geo: dict[str, int]) -> None:
    """Compare native PixelData length with what the header promises."""
    if is_encapsulated(ds):
        return
    try:
        actual = len(ds["PixelData"].value or b"")
    except Exception as exc:
        raise ImageLoadError(path, f"the pixel data cannot be read ({short_error(exc)})") from None
    photometric = header_str(ds, "PhotometricInterpretation") or ""
    per_frame_bits = geo["rows"] * geo["columns"] * geo["samples"] * geo["bits_allocated"]
    if photometric == "YBR_FULL_422" and geo["samples"] == 3:
        per_frame_bits = per_frame_bits * 2 // 3
    expected = (per_frame_bits * geo["frames"] + 7) // 8
    if actual < expected:
        raise ImageLoadError(path, f"the pixel data are truncated ({actual} of {expected} bytes)")


def decode_frame(path: Path, ds: Dataset, frame: int) -> tuple[np.ndarray, str]:
    """Decode one frame, returning the array and the name of the decoder that did it."""
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if "PixelData" not in ds or ts in _NATIVE:
        try:
            return pydicom.pixels.pixel_array(ds, index=frame), "native"
        except Exception as exc:
            raise ImageLoadError(
                path, f"the pixel data cannot be read ({short_error(exc)})"
            ) from None
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
            text = short_error(exc).replace(_ALL_PLUGINS_FAILED, "")
            failures.append(text if text.startswith(f"{plugin}:") else f"{plugin}: {text}")
    raise ImageLoadError(
        path,
        f"the {ts.name} pixel data cannot be decoded, the data may be "
        f"corrupt ({failures[0] if failures else 'no decoder'})",
    )


def to_grey(ds: Dataset, arr: np.ndarray, photometric: str, notes: list[str]) -> np.ndarray:
    """Colour pixels (RGB, YBR already converted by pydicom, palette) to BT.601 luma."""
    if photometric == "PALETTE COLOR":
        arr = pydicom.pixels.apply_color_lut(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        rgb = arr.astype(np.float32)
        notes.append(f"{photometric} colour image converted to grey (BT.601 luma).")
        return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return arr.astype(np.float32)


def modality_lut(ds: Dataset, arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """Apply the Modality LUT: LUT Sequence, else RescaleSlope/Intercept, in float32."""
    if "ModalityLUTSequence" in ds:
        try:
            return np.asarray(pydicom.pixels.apply_modality_lut(arr, ds), dtype=np.float32)
        except Exception as exc:
            notes.append(
                f"The Modality LUT Sequence is unusable and was ignored ({short_error(exc)})."
            )
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


def choose_window(ds: Dataset, values: np.ndarray, notes: list[str]) -> Window:
    """Pick the VOI: (pixels, window or None for 'compute later', function, source)."""
    if "VOILUTSequence" in ds and len(header_value(ds, "VOILUTSequence") or []) > 0:
        try:
            out, lo, hi = _voi_lut(ds, values, notes)
            if hi > lo:
                return out, ((lo + hi) / 2.0, hi - lo), "LINEAR_EXACT", "voi_lut"
            notes.append("The VOI LUT is flat and was ignored.")
        except Exception as exc:
            notes.append(f"The VOI LUT Sequence is unusable and was ignored ({short_error(exc)}).")
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


def colour_window(values: np.ndarray, geo: dict[str, int]) -> Window:
    """Colour images carry no VOI: 8-bit ones use the full range, others percentiles."""
    if geo["bits_stored"] <= 8:
        return values, (127.5, 255.0), "LINEAR_EXACT", "full_range"
    return values, None, "LINEAR_EXACT", "percentile"


def padding_value(ds: Dataset, raw: np.ndarray, values: np.ndarray) -> float | None:
    """PixelPaddingValue after the Modality LUT, to keep it out of percentile windows."""
    padding = header_int(ds, "PixelPaddingValue")
    if padding is None or raw.ndim != 2:
        return None
    hits = np.flatnonzero(raw.ravel() == padding)
    return float(values.ravel()[hits[0]]) if hits.size else None
