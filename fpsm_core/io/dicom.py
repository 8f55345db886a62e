"""DICOM radiographs to `XRayImage`: reading, decoding, Modality LUT, VOI and display sense.

This module assembles an image from its two halves: :mod:`fpsm_core.io.dicom_header` reads the file
and its values (read policy, size limits), :mod:`fpsm_core.io.dicom_pixels` decodes and maps the
pixels (decode, Modality LUT and window policies). The display-sense policy lives here:
MONOCHROME1 (or PresentationLUTShape INVERSE) pixels are mirrored about the window centre so the
header's window keeps its numbers; see ``fpsm_core.io.image.mirror_about_window``. Overlay planes
are noted, not drawn.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from fpsm_core.io.dicom_header import (
    captured_warnings,
    check_geometry,
    header_str,
    read_dataset,
    short_error,
    spacing_from_header,
)
from fpsm_core.io.dicom_pixels import (
    COLOUR_PHOTOMETRICS,
    check_native_length,
    choose_window,
    colour_window,
    decode_frame,
    modality_lut,
    padding_value,
    to_grey,
)
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage, mirror_about_window, percentile_window


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
        check_native_length(path, ds, geo)
    with captured_warnings() as caught, np.errstate(all="ignore"):
        raw, decoder = decode_frame(path, ds, frame)
        if raw.ndim != 2 and not (raw.ndim == 3 and raw.shape[-1] == 3):
            raise ImageLoadError(path, f"the decoded frame has an unexpected shape {raw.shape}")
        if photometric in COLOUR_PHOTOMETRICS or raw.ndim == 3:
            try:
                values = to_grey(ds, raw, photometric, notes)
            except Exception as exc:
                raise ImageLoadError(
                    path, f"the colour data cannot be converted ({short_error(exc)})"
                ) from None
            window_info = colour_window(values, geo)
        else:
            values = modality_lut(ds, raw, notes)
            window_info = choose_window(ds, values, notes)
        pixels, window, function, source = window_info
        shape = (header_str(ds, "PresentationLUTShape") or "").upper()
        inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
        padding = padding_value(ds, raw, values) if window is None else None
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
