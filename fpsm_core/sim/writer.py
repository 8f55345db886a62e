"""Write simulated data sets: DICOM DX or PNG images, a CXR-LT labels CSV and a VinDr boxes CSV.

:func:`write_dataset` renders ``n`` cases, case ``i`` from the seed ``(seed, i)``, so the same seed
always gives the same images, labels and boxes, whatever the number of worker processes. DICOM
files are Digital X-Ray "for presentation" objects that pass ``dciodvfy``: half MONOCHROME1, half
MONOCHROME2, 12 or 15 bits stored, with pixel spacing and a window. PNGs are 8-bit, display sense.
The labels CSV has the CXR-LT layout (six metadata columns, then the 26 labels as 0/1); the boxes
CSV the VinDr layout, with CXR-LT class names and one empty-box "No Finding" row per normal image.
``measurements.csv`` gives each film's true cardiothoracic ratio (measured on the film, and the
ratio that was drawn) and the ends of its cardiac and internal thoracic spans in image pixels.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from fpsm_core import __version__
from fpsm_core.errors import FpsmError
from fpsm_core.labels import CXRLT_META_COLUMNS
from fpsm_core.labels_table import LabelRow, write_labels_table
from fpsm_core.sim.config import SimConfig
from fpsm_core.sim.simulate import SimCase, simulate_case

META_COLUMNS = CXRLT_META_COLUMNS
BOX_COLUMNS = ("image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max")
LABELS_CSV, BOXES_CSV, CONFIG_JSON = "labels.csv", "boxes.csv", "sim_config.json"
MEASUREMENTS_CSV = "measurements.csv"
# The true cardiothoracic ratio of each film and where its two spans lie (image pixels).
MEASUREMENT_COLUMNS = (
    "image_id",
    "ctr",
    "ctr_drawn",
    "cardiac_x0",
    "cardiac_y0",
    "cardiac_x1",
    "cardiac_y1",
    "thoracic_x0",
    "thoracic_y0",
    "thoracic_x1",
    "thoracic_y1",
)
DX_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.1")
VIEW_CODES = {"PA": ("399066004", "postero-anterior"), "AP": ("399348003", "antero-posterior")}
FORMATS = ("dicom", "png")


class SimWriteError(FpsmError):
    """A data set cannot be written where or how it was asked."""


@dataclass(frozen=True)
class CaseIds:
    """Identifiers of one simulated image, derived from ``(seed, index)``."""

    dicom_id: str
    subject_id: int
    study_id: int
    photometric: str
    bits_stored: int


def case_ids(seed: int, index: int) -> CaseIds:
    """MIMIC-style identifiers and the DICOM encoding of case ``index`` of data set ``seed``."""
    digest = hashlib.sha256(f"fpsm-sim:{seed}:{index}".encode()).hexdigest()
    dicom_id = "-".join(digest[i : i + 8] for i in range(0, 40, 8))
    subject = 10_000_000 + int(digest[40:47], 16) % 90_000_000
    study = 50_000_000 + int(digest[47:54], 16) % 50_000_000
    photometric = "MONOCHROME1" if int(digest[54], 16) % 2 else "MONOCHROME2"
    bits = 15 if int(digest[55], 16) % 2 else 12
    return CaseIds(dicom_id, subject, study, photometric, bits)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def write_dicom(path: Path, case: SimCase, ids: CaseIds, seed: int, index: int) -> None:
    """Write one case as a DX "for presentation" image."""
    maxval = (1 << ids.bits_stored) - 1
    stored = np.rint(case.image * maxval).astype(np.uint16)
    if ids.photometric == "MONOCHROME1":
        stored = (maxval - stored).astype(np.uint16)
    uid = lambda kind: generate_uid(entropy_srcs=[f"fpsm-sim:{seed}:{index}:{kind}"])  # noqa: E731
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = uid("sop")
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["fpsm-sim implementation"])
    meta.ImplementationVersionName = f"FPSM_SIM_{__version__}"[:16]
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = DX_FOR_PRESENTATION, meta.MediaStorageSOPInstanceUID
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20000101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = str(ids.study_id)
    ds.Modality = "DX"
    ds.Manufacturer = "fpsm simulator"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Simulated chest radiograph (not a patient)"
    ds.SeriesDescription = f"CHEST {case.view}"
    ds.PatientName = f"SIM^{ids.subject_id}"
    ds.PatientID = str(ids.subject_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.BodyPartExamined = "CHEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid("series")
    ds.StudyID = str(ids.study_id)[-8:]
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PatientOrientation = ["L", "F"]  # image left = patient right, as in a PA film viewed
    ds.ImageLaterality = "U"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.AnatomicRegionSequence = DicomSequence([_code("43799004", "SCT", "Chest")])
    ds.ViewPosition = case.view
    code, meaning = VIEW_CODES[case.view]
    view = _code(code, "SCT", meaning)
    view.ViewModifierCodeSequence = DicomSequence([])
    ds.ViewCodeSequence = DicomSequence([view])
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.PositionerType = ""
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = [f"{case.spacing_mm[0]:.6f}", f"{case.spacing_mm[1]:.6f}"]
    ds.PixelSpacing = list(ds.ImagerPixelSpacing)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = ids.photometric
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, ids.bits_stored, ids.bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if ids.photometric == "MONOCHROME1" else -1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    ds.PresentationLUTShape = "INVERSE" if ids.photometric == "MONOCHROME1" else "IDENTITY"
    ds.WindowCenter = f"{(maxval + 1) / 2:.1f}"
    ds.WindowWidth = f"{maxval + 1:d}"
    ds.VOILUTFunction = "LINEAR"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_png(path: Path, case: SimCase) -> None:
    """Write one case as an 8-bit PNG in display sense."""
    pixels = np.rint(case.image * 255).astype(np.uint8)
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise SimWriteError(f"{path}: the PNG could not be written.")


Rendered = tuple[LabelRow, list[list[object]], list[object]]


def _render(job: tuple[SimConfig, int, str, str]) -> Rendered:
    """Worker: simulate case ``index`` and write its image; its labels, boxes, measurements."""
    config, index, out, fmt = job
    seed = config.seed
    case = simulate_case((seed, index), config)
    ids = case_ids(seed, index)
    rel = Path("images") / f"{ids.dicom_id}.{'dcm' if fmt == 'dicom' else 'png'}"
    if fmt == "dicom":
        write_dicom(Path(out) / rel, case, ids, seed, index)
    else:
        write_png(Path(out) / rel, case)
    values = (ids.dicom_id, ids.subject_id, ids.study_id, case.view, VIEW_CODES[case.view][1])
    meta: dict[str, object] = dict(zip(META_COLUMNS, (*values, rel.as_posix()), strict=True))
    row: LabelRow = (meta, [float(v) for v in case.labels], 0.0)
    boxes: list[list[object]] = [
        [ids.dicom_id, "SIM", b.label, b.x0, b.y0, b.x1, b.y1] for b in case.boxes
    ]
    if not case.boxes:
        boxes.append([ids.dicom_id, "SIM", "No Finding", "", "", "", ""])
    (c0, c1), (t0, t1) = case.cardiac_span, case.thoracic_span
    spans = [round(v, 3) for v in (*c0, *c1, *t0, *t1)]
    measured: list[object] = [ids.dicom_id, round(case.film_ctr, 5), round(case.ctr, 5), *spans]
    return row, boxes, measured


def _single_thread() -> None:
    """Worker initialiser: one OpenCV thread per process, so workers do not oversubscribe cores."""
    cv2.setNumThreads(1)


def _jobs(
    config: SimConfig, n: int, out: Path, fmt: str
) -> Iterator[tuple[SimConfig, int, str, str]]:
    for index in range(n):
        yield config, index, str(out), fmt


def write_dataset(
    out: str | os.PathLike[str],
    n: int,
    seed: int = 0,
    format: str = "dicom",
    size: int = 512,
    config: SimConfig | None = None,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Simulate ``n`` radiographs into ``out`` and return the path of the labels CSV.

    Args:
        out: output folder (created; its ``images/`` and CSVs are overwritten).
        n: number of images.
        seed: data set seed; case ``i`` depends only on ``(seed, i)`` and the config.
        format: ``"dicom"`` or ``"png"``.
        size: image side in pixels (ignored when ``config`` is given).
        config: full simulation settings; its ``seed`` is replaced by ``seed``.
        workers: processes to render with (1 = in this process).
        progress: show a tqdm bar and the rate on stderr.

    Raises:
        SimWriteError: bad arguments or an output folder that cannot be written.
    """
    if format not in FORMATS:
        raise SimWriteError(f"Unknown format {format!r}; expected one of {', '.join(FORMATS)}.")
    if n < 1:
        raise SimWriteError(f"The number of images must be at least 1, not {n}.")
    base = config if config is not None else SimConfig(size=size)
    config = dataclasses.replace(base, seed=seed)
    root = Path(out)
    try:
        (root / "images").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimWriteError(f"{root}: cannot create the output folder ({exc.strerror}).") from None
    start = time.perf_counter()
    jobs = _jobs(config, n, root, format)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="img", file=sys.stderr, desc="fpsm sim")
    rows: list[LabelRow] = []
    boxes: list[list[object]] = []
    measurements: list[list[object]] = []
    if workers > 1:
        # "spawn": forking a process whose OpenCV/OpenMP thread pools are running can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
            results: Iterator[Rendered] = pool.map(
                _render, jobs, chunksize=max(1, min(32, n // (workers * 8) or 1))
            )
            for row, case_boxes, measured in results:
                rows.append(row)
                boxes.extend(case_boxes)
                measurements.append(measured)
                if bar is not None:
                    bar.update(1)
    else:
        for job in jobs:
            row, case_boxes, measured = _render(job)
            rows.append(row)
            boxes.extend(case_boxes)
            measurements.append(measured)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    labels_csv = root / LABELS_CSV
    write_labels_table(labels_csv, rows, synthetic=False)  # the CXR-LT layout, no synthetic column
    with (root / BOXES_CSV).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOX_COLUMNS)
        writer.writerows(boxes)
    with (root / MEASUREMENTS_CSV).open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(MEASUREMENT_COLUMNS)
        writer.writerows(measurements)
    doc = {
        "generator": f"fpsm_core.sim {__version__}",
        "n": n,
        "format": format,
        **{k: v for k, v in _config_fields(config).items()},
    }
    (root / CONFIG_JSON).write_text(json.dumps(doc, indent=1, default=_json_default))
    if progress:
        elapsed = time.perf_counter() - start
        print(
            f"fpsm sim: {n} images in {elapsed:.1f} s ({n / elapsed:.1f} img/s, "
            f"{elapsed / n * 1000:.0f} ms/img, {workers} worker(s))",
            file=sys.stderr,
        )
    return labels_csv


def _config_fields(config: SimConfig) -> dict[str, object]:
    return {k: getattr(config, k) for k in asdict(config)}


def _json_default(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_dicom_pixels(path: Path) -> np.ndarray:
    """Display-sense float pixels of a written DICOM (for checks without ``fpsm_core.io``)."""
    ds = pydicom.dcmread(path)
    maxval = (1 << int(ds.BitsStored)) - 1
    pixels = ds.pixel_array.astype(np.float32) / maxval
    return 1.0 - pixels if ds.PhotometricInterpretation == "MONOCHROME1" else pixels
