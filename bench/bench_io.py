"""Benchmark of fpsm_core.io: header indexing (cold and warm) and image load times.

Targets (issue 3, two CPU cores): cold indexing >= 1,000 files/s on a tree of 2,000 small DICOMs;
reopening 10,000 indexed files in <= 1 s. Load times of RG1 (1955 x 1841 CR) uncompressed and
JPEG 2000 are printed beside plain pydicom (``dcmread`` + ``pixel_array``) measured in the same
run. "Cold" means no index cache; the files themselves sit in the OS page cache, having just been
written.

Run: ``python bench/bench_io.py`` (``--small`` for a quick check with smaller trees).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from fpsm_core.io import index_folder, load_image


def make_tree(root: Path, n: int) -> None:
    """n small DX files: 25 files per series, 1 series per study, 4 studies per patient."""
    pixels = np.zeros((32, 32), np.uint16).tobytes()
    for i in range(n):
        study, patient = i // 25, i // 100
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientName = f"Bench^Patient{patient}"
        ds.PatientID = f"B{patient:05d}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.1.{study}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.1.{study}.1"
        ds.StudyDate, ds.StudyTime = f"2024{1 + study % 12:02d}01", "101500"
        ds.StudyDescription, ds.SeriesDescription = "CHEST PA/LAT", "PA"
        ds.AccessionNumber, ds.SeriesNumber, ds.InstanceNumber = f"A{study}", 1, i % 25 + 1
        ds.Modality, ds.ViewPosition, ds.BodyPartExamined = "DX", "PA", "CHEST"
        ds.Manufacturer, ds.InstitutionName = "Bench", "Bench Hospital"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.Rows = ds.Columns = 32
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.ImagerPixelSpacing = [0.15, 0.15]
        ds.PixelData = pixels
        folder = root / ds.PatientID / f"s{study}"
        folder.mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)


def time_call(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median wall time and median CPU time of this process over ``repeat`` calls.

    CPU time is printed too because the benchmark machine is shared: with other jobs running,
    wall time overstates what an idle machine would take (indexing is single-threaded).
    """
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="200 / 1,000 files instead")
    args = parser.parse_args()
    n_cold, n_warm = (200, 1000) if args.small else (2000, 10000)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        make_tree(base / "cold", n_cold)
        cold = base / "cold.sqlite3"
        wall, cpu = time_call(lambda: index_folder(base / "cold", cache=cold), 1)
        index = index_folder(base / "cold", cache=False)
        assert index.n_read == n_cold and len(index.images) == n_cold
        rows.append(
            (
                f"cold index, {n_cold} files",
                f"{n_cold / wall:,.0f} files/s wall, {n_cold / cpu:,.0f} cpu",
                f"{n_cold / wall / 1000:.2f}x ({n_cold / cpu / 1000:.2f}x cpu) of >= 1,000 files/s",
            )
        )

        make_tree(base / "warm", n_warm)
        warm = base / "warm.sqlite3"
        wall, cpu = time_call(lambda: index_folder(base / "warm", cache=warm), 1)
        rows.append(
            (
                f"cold index, {n_warm} files",
                f"{n_warm / wall:,.0f} files/s wall, {n_warm / cpu:,.0f} cpu",
                f"{n_warm / wall / 1000:.2f}x ({n_warm / cpu / 1000:.2f}x cpu) of >= 1,000 files/s",
            )
        )
        wall, cpu = time_call(lambda: index_folder(base / "warm", cache=warm), 3)
        again = index_folder(base / "warm", cache=warm)
        assert again.n_read == 0 and again.n_cached == n_warm
        scale = 10000 / n_warm
        rows.append(
            (
                f"warm reopen, {n_warm} files",
                f"{wall:.3f} s wall, {cpu:.3f} s cpu",
                f"{1.0 / (wall * scale):.2f}x ({1.0 / (cpu * scale):.2f}x cpu) of <= 1 s "
                "per 10,000 files",
            )
        )

    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm"):
        path = str(get_testdata_file(name))
        ours, ours_cpu = time_call(lambda p=path: load_image(p), 5)
        plain, _ = time_call(lambda p=path: pydicom.dcmread(p).pixel_array, 5)
        rows.append(
            (
                f"load {name}",
                f"{ours * 1000:.0f} ms wall, {ours_cpu * 1000:.0f} ms cpu",
                f"{ours / plain:.2f}x plain pydicom ({plain * 1000:.0f} ms)",
            )
        )

    width = max(len(r[0]) for r in rows)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"fpsm_core.io benchmark (python {sys.version.split()[0]}, pydicom "
        f"{pydicom.__version__}, {os.cpu_count()} CPUs, load average {load})"
    )
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value:<36}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
