"""What the loader sees in a file, for ``fpsm info``: header facts next to the loaded result.

The first thing to run when an image looks wrong: it shows the stored encoding (photometric,
bits, rescale, VOI, transfer syntax) beside what ``load_image`` made of it (size, display sense,
window, spacing, decoder, warnings). Patient identifiers are left out unless asked for, so the
output can be pasted into a bug report: every fact whose DICOM attribute PS3.15's Basic Profile
removes, empties, dummies or remaps (the table ``fpsm_core.io.deid`` applies) is hidden without
``show_phi``.
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from fpsm_core.io.deid import is_identifying
from fpsm_core.io.dicom_header import (
    header_floats,
    header_int,
    header_str,
    header_value,
    read_dataset,
)
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage
from fpsm_core.io.loader import load_image, sniff

# The DICOM attribute behind each fact that could identify someone; hidden when the Basic Profile
# table names it (``is_identifying``), so a fact added later is hidden by adding its keyword here.
_KEYWORDS = {
    "Patient ID": "PatientID",
    "Patient name": "PatientName",
    "Patient": "PatientName",
    "Study UID": "StudyInstanceUID",
}
HIDDEN = "(hidden; --show-phi shows it)"


def _hidden(label: str) -> bool:
    return is_identifying(_KEYWORDS.get(label, ""))


@dataclass(frozen=True)
class FileReport:
    """``describe``'s answer.

    Attributes:
        path: The file.
        size_bytes: File size (None when it cannot be stat'ed).
        kind: "dicom", "dicom-raw" (no preamble), "png", "jpeg", "tiff" or None (unknown).
        header: (label, value) facts read from the stored header, in display order.
        image: The loaded image, None when loading failed.
        error: The ImageLoadError message when loading failed.
    """

    path: Path
    size_bytes: int | None
    kind: str | None
    header: tuple[tuple[str, str], ...]
    image: XRayImage | None
    error: str | None

    def lines(self, show_phi: bool = False) -> list[str]:
        """Human-readable lines: header block, loader block, warnings, error.

        Args:
            show_phi: Include patient ID and name.
        """
        out = [f"File: {self.path}"]
        size = "?" if self.size_bytes is None else f"{self.size_bytes:,} bytes"
        out.append(f"  {'Format':<26}{self.kind or 'unknown'} ({size})")
        for label, value in self.header:
            if _hidden(label) and not show_phi:
                value = HIDDEN
            out.append(f"  {label:<26}{value}")
        if self.image is not None:
            out.append("Loader:")
            out.extend(
                f"  {label:<26}{value}" for label, value in _image_facts(self.image, show_phi)
            )
            for note in self.image.warnings:
                out.append(f"  warning: {note}")
        if self.error:
            out.append(f"Error: {self.error}")
        return out

    def as_dict(self, show_phi: bool = False) -> dict[str, Any]:
        """A JSON-ready dict of the same facts."""
        header = {k: v for k, v in self.header if show_phi or not _hidden(k)}
        result: dict[str, Any] = {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "kind": self.kind,
            "header": header,
            "error": self.error,
        }
        if self.image is not None:
            result["loader"] = dict(_image_facts(self.image, show_phi))
            result["warnings"] = list(self.image.warnings)
        return result


def describe(path: str | PathLike[str], frame: int = 0) -> FileReport:
    """Read a file's header and load it, collecting everything ``fpsm info`` shows.

    Args:
        path: The file.
        frame: Frame to load.

    Returns:
        The report; a file that cannot be loaded gives a report with ``error`` set.
    """
    p = Path(path)
    try:
        size: int | None = p.stat().st_size
        with open(p, "rb") as fp:
            kind = sniff(fp.read(132))
    except OSError:
        size, kind = None, None
    header: tuple[tuple[str, str], ...] = ()
    if kind in ("dicom", "dicom-raw"):
        try:
            ds, _ = read_dataset(p, stop_before_pixels=True)
            header = tuple(_dicom_facts(ds))
        except ImageLoadError:
            header = ()
    try:
        image: XRayImage | None = load_image(p, frame)
        error = None
    except ImageLoadError as exc:
        image, error = None, str(exc)
    return FileReport(path=p, size_bytes=size, kind=kind, header=header, image=image, error=error)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _dicom_facts(ds: Dataset) -> list[tuple[str, str]]:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    sop = header_value(ds, "SOPClassUID")
    facts = [
        ("SOP class", UID(str(sop)).name if sop else "-"),
        ("Modality", _fmt(header_str(ds, "Modality"))),
        ("Transfer syntax", f"{UID(str(ts)).name} ({ts})" if ts else "- (not in file meta)"),
        ("Patient ID", _fmt(header_str(ds, "PatientID"))),
        ("Patient name", _fmt(header_str(ds, "PatientName"))),
        (
            "View / laterality",
            f"{_fmt(header_str(ds, 'ViewPosition'))} / "
            f"{_fmt(header_str(ds, 'ImageLaterality') or header_str(ds, 'Laterality'))}",
        ),
        ("Rows x Columns", f"{_fmt(header_int(ds, 'Rows'))} x {_fmt(header_int(ds, 'Columns'))}"),
        ("Frames", _fmt(header_value(ds, "NumberOfFrames") or 1)),
        ("Photometric", _fmt(header_str(ds, "PhotometricInterpretation"))),
        ("Samples per pixel", _fmt(header_int(ds, "SamplesPerPixel"))),
        (
            "Bits alloc/stored/high",
            "/".join(_fmt(header_int(ds, k)) for k in ("BitsAllocated", "BitsStored", "HighBit")),
        ),
        (
            "Pixel representation",
            {0: "unsigned", 1: "signed"}.get(header_int(ds, "PixelRepresentation") or 0, "?"),
        ),
        (
            "Rescale slope/intercept",
            f"{_fmt(header_floats(ds, 'RescaleSlope'))} / "
            f"{_fmt(header_floats(ds, 'RescaleIntercept'))}",
        ),
        ("Modality LUT sequence", "yes" if "ModalityLUTSequence" in ds else "no"),
        (
            "Window center/width",
            f"{_fmt(header_value(ds, 'WindowCenter'))} / {_fmt(header_value(ds, 'WindowWidth'))}",
        ),
        ("VOI LUT function", _fmt(header_str(ds, "VOILUTFunction"))),
        ("VOI LUT sequence", f"{len(header_value(ds, 'VOILUTSequence') or [])} item(s)"),
        ("Presentation LUT shape", _fmt(header_str(ds, "PresentationLUTShape"))),
        ("Pixel spacing", _fmt(header_value(ds, "PixelSpacing"))),
        ("Imager pixel spacing", _fmt(header_value(ds, "ImagerPixelSpacing"))),
        ("Burned-in annotation", _fmt(header_str(ds, "BurnedInAnnotation"))),
    ]
    return facts


def _image_facts(img: XRayImage, show_phi: bool) -> list[tuple[str, str]]:
    finite = img.pixels[np.isfinite(img.pixels)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    sense = "inverted for display" if img.inverted else "as stored"
    spacing = (
        "none (no usable spacing)"
        if img.spacing_mm is None
        else f"{img.spacing_mm[0]:g} x {img.spacing_mm[1]:g} mm"
    )
    facts = [
        ("Size", f"{img.shape[0]} x {img.shape[1]} (rows x columns)"),
        ("Frame", f"{img.frame + 1} of {img.n_frames}"),
        ("Display sense", f"{img.photometric}, {sense} (higher = brighter)"),
        ("Bits stored", _fmt(img.bits_stored)),
        ("Pixel range", f"{lo:g} .. {hi:g}"),
        (
            "Window",
            f"center {img.window[0]:g}, width {img.window[1]:g} ({img.voi_function}, "
            f"from {img.window_source})",
        ),
        ("Spacing", spacing),
        ("Transfer syntax", _fmt(img.transfer_syntax)),
        ("Decoder", _fmt(img.decoder)),
        ("View / laterality", f"{_fmt(img.view_position)} / {_fmt(img.laterality)}"),
        ("Study UID", _fmt(img.study_uid)),
        ("Patient", f"{_fmt(img.patient_id)} {_fmt(img.patient_name)}"),
    ]
    return [(k, v) for k, v in facts if show_phi or not _hidden(k)]
