"""Small builders shared by the core tests: tiny models and radiographs written to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble


def tiny_checkpoint(
    path: Path,
    *,
    seed: int = 0,
    levels: tuple[int, ...] = (4, 3, 2),
    aggregation: str = "sum",
    size: int = 64,
    backbone: str = "resnet18",
    **kwargs: object,
) -> Path:
    torch.manual_seed(seed)
    model = create_fpsm(backbone, levels=levels, aggregation=aggregation)  # type: ignore[arg-type]
    return save_checkpoint(
        model,
        path,
        preprocessing=Preprocessing(input_size=size),
        **kwargs,  # type: ignore[arg-type]
    )


def tiny_ensemble(directory: Path, n: int = 2, size: int = 64) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    members = [
        tiny_checkpoint(directory / f"m{i}", seed=i, size=size, untrained=True) for i in range(n)
    ]
    write_ensemble(
        directory, [m.name for m in members], name="tiny", member_names=[f"m{i}" for i in range(n)]
    )
    return directory


def chest_like(h: int = 96, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth uint16 image with two dark 'lungs', enough to exercise the pipeline."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 2500 + 300 * rng.standard_normal((h, w))
    for cx in (w * 0.3, w * 0.7):
        img -= 1500 * np.exp(-(((xx - cx) / (w * 0.15)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2))
    return np.clip(img, 0, 4095).astype(np.uint16)


def write_dicom(path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> Path:
    """A minimal but valid DX image (explicit VR little endian)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray for Presentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientID = "TEST"
    ds.PatientName = "Test^Patient"
    ds.ViewPosition = "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.5, 0.5]
    ds.WindowCenter = 2000
    ds.WindowWidth = 4000
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
