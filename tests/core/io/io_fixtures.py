"""Test helpers for fpsm_core.io: DICOMs written with pydicom, rasters, the real test files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
PYDICOM_FILES = Path(pydicom.__file__).parent / "data"


def data_file(name: str) -> Path:
    """A file from pydicom / pydicom-data by name (charset files included)."""
    found = get_testdata_file(name)
    if found is None:
        candidate = PYDICOM_FILES / "charset_files" / name
        if candidate.exists():
            return candidate
        raise FileNotFoundError(name)
    return Path(str(found))


def ramp(rows: int = 64, cols: int = 48, low: int = 0, high: int = 4095) -> np.ndarray:
    """A horizontal ramp with a bright square: left dark, right bright, asymmetric."""
    x = np.linspace(low, high, cols)
    arr = np.tile(x, (rows, 1))
    arr[rows // 4 : rows // 2, cols // 4 : cols // 2] = high
    return np.round(arr).astype(np.int64)


def make_dataset(
    pixels: np.ndarray | None = None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    signed: bool = False,
    sop_class: str = DX_STORAGE,
    **attrs: Any,
) -> Dataset:
    """A minimal valid radiograph data set; ``attrs`` are set by keyword (None deletes)."""
    pixels = ramp() if pixels is None else pixels
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Patient"
    ds.PatientID = "TEST001"
    ds.Modality = "DX"
    ds.ViewPosition = "PA"
    ds.ImageLaterality = "U"
    ds.InstanceNumber = 1
    ds.SeriesNumber = 1
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    frames = pixels.shape[0] if pixels.ndim == 3 and pixels.shape[-1] != 3 else 1
    rgb = pixels.ndim == 3 and pixels.shape[-1] == 3
    ds.Rows, ds.Columns = pixels.shape[-3 if rgb else -2], pixels.shape[-2 if rgb else -1]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3 if rgb else 1
    if rgb:
        ds.PlanarConfiguration = 0
    allocated = 8 if bits_stored <= 8 else 16
    ds.BitsAllocated = allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.PhotometricInterpretation = photometric
    dtype = {
        (8, False): np.uint8,
        (8, True): np.int8,
        (16, False): np.uint16,
        (16, True): np.int16,
    }[(allocated, signed)]
    ds.PixelData = pixels.astype(dtype).tobytes()
    for key, value in attrs.items():
        if value is None:
            if key in ds:
                delattr(ds, key)
        else:
            setattr(ds, key, value)
    return ds


def write_dicom(path: Path, ds: Dataset | None = None, **kwargs: Any) -> Path:
    """Write ``ds`` (or ``make_dataset(**kwargs)``) as a Part 10 file."""
    ds = make_dataset(**kwargs) if ds is None else ds
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def phi_dataset() -> tuple[Dataset, list[str]]:
    """A radiograph carrying PHI in every place the Basic Profile covers, and the PHI strings."""
    ds = make_dataset(photometric="MONOCHROME1")
    phi = {
        "PatientName": "Smithson^Johanna^Q",
        "PatientID": "MRN7731942",
        "PatientBirthDate": "19570314",
        "PatientAddress": "42 Wallaby Way Sydney",
        "PatientTelephoneNumbers": "555-867-5309",
        "OtherPatientIDs": "SSN-078-05-1120",
        "PatientMotherBirthName": "Kowalczyk^Maria",
        "AccessionNumber": "ACC99118822",
        "StudyID": "STUDY4471",
        "ReferringPhysicianName": "Houseman^Gregory",
        "PerformingPhysicianName": "Quinzel^Harleen",
        "OperatorsName": "Techson^Terry",
        "InstitutionName": "Saint Elsewhere Hospital",
        "InstitutionAddress": "1 Hospital Plaza Springfield",
        "StationName": "XRAYROOM7",
        "DeviceSerialNumber": "SN-554433",
        "StudyDescription": "Chest for Johanna Smithson",
        "SeriesDescription": "PA Smithson",
        "ImageComments": "Patient Smithson fell on ice",
        "RequestingPhysician": "Doolittle^John",
        "AdditionalPatientHistory": "smoker, Johanna",
        "StudyDate": "20230517",
        "SeriesDate": "20230517",
        "AcquisitionDate": "20230517",
        "ContentDate": "20230517",
        "AcquisitionDateTime": "20230517103000",
        "PatientAge": "066Y",
        "PatientSex": "F",
        "PatientWeight": "71.5",
    }
    for key, value in phi.items():
        setattr(ds, key, value)
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.77.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.77.2"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.2.1125.77.3"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.77.4"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CR_STORAGE
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.77.5"
    ds.SourceImageSequence = [ref]
    req = Dataset()
    req.RequestedProcedureID = "RP-Smithson-1"
    req.ScheduledProcedureStepID = "SPS-MRN7731942"
    ds.RequestAttributesSequence = [req]
    other = Dataset()
    other.PatientID = "ALT-MRN-5521"
    ds.OtherPatientIDsSequence = [other]
    ds.add_new(0x00091010, "LO", "ACME private Smithson")
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    ds.add_new(0x60004000, "LT", "overlay note Smithson")
    strings = [v for v in phi.values() if v not in ("F", "066Y", "71.5")]
    strings += [
        "1.2.826.0.1.3680043.2.1125.77",
        "RP-Smithson-1",
        "ALT-MRN-5521",
        "ACME private",
        "overlay note",
        "Smithson",
        "Johanna",
        "MRN7731942",
    ]
    return ds, strings
