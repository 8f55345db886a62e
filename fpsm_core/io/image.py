"""The loaded image (`XRayImage`) and the window maths every viewer and exporter shares.

Pixels are kept in *display sense* (higher = brighter) and in the units of the Modality LUT output,
so a MONOCHROME1 film is mirrored about its window centre rather than rescaled: the header's window
(e.g. 15000/30000) still applies unchanged, and ``display_uint8`` reproduces DICOM's VOI functions
(PS3.3 C.11.2.1.2) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True, eq=False)
class XRayImage:
    """One radiograph frame, ready to display or to feed a model.

    Attributes:
        pixels: float32 array (rows, columns) after the Modality LUT, in display sense (higher =
            brighter). Treat it as read-only; copy before modifying.
        window: (center, width) in the units of ``pixels``; from the file's VOI when it has one,
            else from robust percentiles. Use with ``voi_function``.
        spacing_mm: (row, column) pixel spacing in mm, from PixelSpacing else ImagerPixelSpacing;
            None when absent, zero or malformed.
        path: The source file.
        study_uid: StudyInstanceUID (for MIMIC-CXR-JPG files: the study id from the path).
        series_uid: SeriesInstanceUID.
        instance_uid: SOPInstanceUID (for MIMIC-CXR-JPG files: the dicom_id, i.e. the file stem).
        view_position: ViewPosition, e.g. "PA", "AP", "LL".
        laterality: ImageLaterality, else Laterality.
        patient_id: PatientID (for MIMIC-CXR-JPG files: the subject id from the path).
        patient_name: PatientName as stored (components separated by "^"), for display only.
        photometric: PhotometricInterpretation of the source ("MONOCHROME2" for rasters).
        warnings: Things the loader noticed and worked around, one sentence each.
        source_format: "dicom", "png", "jpeg" or "tiff".
        voi_function: How ``window`` maps to grey: "LINEAR" (DICOM default), "LINEAR_EXACT" (used
            for windows the loader derived itself) or "SIGMOID".
        window_source: "window" (the file's first window), "voi_lut" (a VOI LUT Sequence was
            applied to ``pixels``; the window spans its output), "percentile" or "full_range".
        frame: Index of this frame; n_frames: frames in the file.
        modality: Modality ("CR", "DX", ...) or None.
        transfer_syntax: Transfer syntax name of a DICOM source, else None.
        decoder: The pixel decoder that was used ("native", "pylibjpeg", "pyjpegls", "pillow"...).
        bits_stored: BitsStored (8 or 16 for rasters).
        inverted: True when the stored values were mirrored (MONOCHROME1 or INVERSE shape).
        burned_in_annotation: BurnedInAnnotation of a DICOM source (None when absent); exporters
            pass the image to ``fpsm_core.io.deid.check_exportable``.
    """

    pixels: np.ndarray
    window: tuple[float, float]
    spacing_mm: tuple[float, float] | None
    path: Path
    study_uid: str | None = None
    series_uid: str | None = None
    instance_uid: str | None = None
    view_position: str | None = None
    laterality: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    photometric: str = "MONOCHROME2"
    warnings: tuple[str, ...] = ()
    source_format: str = "dicom"
    voi_function: str = "LINEAR"
    window_source: str = "window"
    frame: int = 0
    n_frames: int = 1
    modality: str | None = None
    transfer_syntax: str | None = None
    decoder: str | None = None
    bits_stored: int | None = None
    inverted: bool = False
    burned_in_annotation: bool | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of ``pixels``."""
        return (int(self.pixels.shape[0]), int(self.pixels.shape[1]))

    def display_uint8(self, window: tuple[float, float] | None = None) -> np.ndarray:
        """Window the pixels to 8-bit grey for display.

        Args:
            window: (center, width) overriding ``self.window`` (e.g. the user's level/width drag).

        Returns:
            uint8 array (rows, columns), 0 = black, 255 = white.
        """
        center, width = self.window if window is None else window
        return apply_window(self.pixels, center, width, self.voi_function)


def apply_window(
    pixels: np.ndarray, center: float, width: float, function: str = "LINEAR"
) -> np.ndarray:
    """Map pixel values to uint8 grey with a DICOM VOI function (PS3.3 C.11.2.1.2).

    Args:
        pixels: Array of any shape.
        center: Window center.
        width: Window width (values below 1 are treated as 1).
        function: "LINEAR", "LINEAR_EXACT" or "SIGMOID".

    Returns:
        uint8 array of the same shape.
    """
    x = np.asarray(pixels, dtype=np.float32)
    c = np.float32(center)
    if function == "SIGMOID":
        w = np.float32(max(float(width), 1e-6))
        with np.errstate(over="ignore"):
            y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif function == "LINEAR_EXACT":
        w = np.float32(max(float(width), 1e-6))
        y = (x - c) / w + np.float32(0.5)
    else:
        w1 = np.float32(max(float(width), 1.0) - 1.0)
        if w1 <= 0:  # width 1: a pure threshold at the centre
            y = (x > c - np.float32(0.5)).astype(np.float32)
        else:
            y = (x - (c - np.float32(0.5))) / w1 + np.float32(0.5)
    out = np.clip(y * np.float32(255.0) + np.float32(0.5), 0.0, 255.0)
    return out.astype(np.uint8)


def mirror_about_window(pixels: np.ndarray, center: float, function: str = "LINEAR") -> np.ndarray:
    """Invert display sense so that the same (center, width) window gives the inverted picture.

    For LINEAR the mirror is ``2c - 1 - x``: DICOM's LINEAR function is centred on ``c - 0.5``,
    so this makes ``apply_window(mirror(x)) == 255 - apply_window(x)`` to the rounding.

    Args:
        pixels: Modality values (float32).
        center: Window center.
        function: VOI function the window will be used with.

    Returns:
        The mirrored float32 array.
    """
    pivot = 2.0 * float(center) - (1.0 if function == "LINEAR" else 0.0)
    return np.subtract(np.float32(pivot), pixels, dtype=np.float32)


def percentile_window(
    pixels: np.ndarray, low: float = 0.5, high: float = 99.5, exclude: float | None = None
) -> tuple[float, float]:
    """A robust (center, width) for LINEAR_EXACT from percentiles of a subsample.

    Args:
        pixels: 2-D float array.
        low: Lower percentile.
        high: Upper percentile.
        exclude: A value to ignore (e.g. PixelPaddingValue after the modality LUT).

    Returns:
        (center, width); a flat image gets width 1.
    """
    step = max(1, int(np.sqrt(pixels.size / 250_000)))
    sample = pixels[::step, ::step].ravel()
    sample = sample[np.isfinite(sample)]
    if exclude is not None:
        kept = sample[sample != exclude]
        sample = kept if kept.size else sample
    if sample.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(sample, [low, high])
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return (lo, 1.0)
    return ((lo + hi) / 2.0, hi - lo)
