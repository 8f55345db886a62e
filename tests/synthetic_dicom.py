"""Small chest-like pictures written as DICOM with pydicom, shared by the core and viewer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPACING_MM = (0.25, 0.2)


def chest_like(rows: int = 96, cols: int = 80, seed: int = 0) -> np.ndarray:
    """A uint16 picture with two dark 'lungs' in a bright body, some noise: not flat, not random."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    body = 2600 + 600 * np.cos((x - cols / 2) / cols * np.pi)
    for cx in (cols * 0.3, cols * 0.7):
        lung = ((x - cx) / (cols * 0.16)) ** 2 + ((y - rows * 0.5) / (rows * 0.3)) ** 2 < 1
        body[lung] -= 1800
    body += rng.normal(0, 40, size=body.shape)
    return np.clip(body, 0, 4095).astype(np.uint16)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    spacing: tuple[float, float] | None = SPACING_MM,
    window: tuple[float, float] | None = (2000.0, 3000.0),
    photometric: str = "MONOCHROME2",
    patient: str = "TEST^ONE",
    study_uid: str | None = None,
) -> Path:
    """A minimal valid DX DICOM file with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient
    ds.PatientID = patient.split("^")[0]
    ds.Modality = "DX"
    ds.ViewPosition = "PA"
    ds.StudyDate = "20240102"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if spacing is not None:
        ds.PixelSpacing = [f"{spacing[0]:g}", f"{spacing[1]:g}"]
    if window is not None:
        ds.WindowCenter = f"{window[0]:g}"
        ds.WindowWidth = f"{window[1]:g}"
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
