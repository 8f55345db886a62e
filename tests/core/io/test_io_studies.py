"""index_folder: grouping and order, broken files, DICOMDIR, MIMIC-CXR-JPG, and the SQLite cache."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_fixtures import PYDICOM_FILES, data_file, make_dataset, ramp, write_dicom
from PIL import Image

from fpsm_core.io import ImageLoadError, StudyIndex, index_folder, load_image
from fpsm_core.io.index_cache import default_cache_path


def _tree(root: Path) -> dict[str, Path]:
    """Two patients, three studies, a lateral and a PA, plus junk and broken files."""
    files = {}
    for patient, name, study, date, series_list in [
        ("P1", "Alpha^Ann", "1.2.3.1", "20240105", [(1, "PA", 2), (2, "LL", 1)]),
        ("P1", "Alpha^Ann", "1.2.3.2", "20230101", [(1, "AP", 1)]),
        ("P2", "Beta^Bob", "1.2.3.3", "20240301", [(1, "PA", 3)]),
    ]:
        for number, view, count in series_list:
            series_uid = f"{study}.{number}"
            for i in reversed(range(count)):  # written out of order on purpose
                path = root / patient / study[-1] / f"{view}_{i + 1}.dcm"
                write_dicom(
                    path,
                    PatientID=patient,
                    PatientName=name,
                    StudyInstanceUID=study,
                    StudyDate=date,
                    SeriesInstanceUID=series_uid,
                    SeriesNumber=number,
                    ViewPosition=view,
                    InstanceNumber=i + 1,
                    SOPInstanceUID=f"{series_uid}.{i + 1}",
                )
                files[f"{patient}/{study}/{view}{i + 1}"] = path
    (root / "README.txt").write_text("not an image")
    (root / "LICENSE").write_text("no suffix, not DICOM")
    (root / "broken.dcm").write_bytes(b"\x00" * 300)
    (root / "broken.png").write_bytes(b"not a png at all")
    shutil.copy(data_file("MR_truncated.dcm"), root / "trunc.dcm")
    shutil.copy(data_file("test-SR.dcm"), root / "report.dcm")
    (root / ".hidden").mkdir()
    write_dicom(root / ".hidden" / "skip.dcm")
    return files


def test_index_groups_and_sorts(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    index = index_folder(tmp_path / "data", cache=tmp_path / "c.sqlite3")
    assert isinstance(index, StudyIndex)
    assert [p.patient_id for p in index.patients] == ["P1", "P2", "4MR1"]  # by name
    p1 = index.patients[0]
    assert p1.patient_name == "Alpha^Ann"
    assert [s.study_date for s in p1.studies] == ["20240105", "20230101"]  # newest first
    first = p1.studies[0]
    assert [s.series_number for s in first.series] == [1, 2]
    assert [i.instance_number for i in first.series[0].images] == [1, 2]
    assert [i.view_position for i in first.images] == ["PA", "PA", "LL"]
    entry = first.series[0].images[0]
    assert (entry.rows, entry.columns, entry.frames, entry.source_format) == (64, 48, 1, "dicom")
    assert entry.error is None and entry.path.name == "PA_1.dcm"
    assert len(index.patients[1].studies[0].images) == 3
    assert all(not str(i.path).count("/.hidden/") for i in index.images)


def test_broken_files_are_listed_and_the_rest_load(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    index = index_folder(tmp_path / "data", cache=False)
    names = {e.path.name: e.error for e in index.errors}
    assert set(names) == {"broken.dcm", "broken.png", "trunc.dcm"}
    assert "not a DICOM file" in names["broken.dcm"]
    assert "truncated" in names["trunc.dcm"]
    assert all(str(tmp_path) in msg for msg in names.values())
    # the truncated MR has a readable header, so it is also placed in its series, flagged
    placed = [i for i in index.images if i.path.name == "trunc.dcm"]
    assert placed and placed[0].error
    assert [p.name for p in index.non_images] == ["report.dcm"]
    assert len([i for i in index.images if i.error is None]) == 7
    for img in index.images:
        if img.error is None:
            load_image(img.path)


def test_cache_reuses_and_notices_edits(tmp_path: Path) -> None:
    files = _tree(tmp_path / "data")
    cache = tmp_path / "c.sqlite3"
    cold = index_folder(tmp_path / "data", cache=cache)
    assert cold.n_cached == 0 and cold.n_read == 12 and cold.cache_path == cache
    warm = index_folder(tmp_path / "data", cache=cache)
    assert warm.n_read == 0 and warm.n_cached == 12
    assert warm == cold.__class__(**{**cold.__dict__, "n_cached": 12, "n_read": 0})

    # edit one file (new view), add one, delete one
    edited = files["P2/1.2.3.3/PA1"]
    ds = pydicom.dcmread(edited)
    ds.ViewPosition = "AP"
    ds.save_as(edited)
    st = edited.stat()
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    write_dicom(tmp_path / "data/P3/new.dcm", PatientID="P3", PatientName="Gamma^Gus")
    files["P1/1.2.3.2/AP1"].unlink()
    again = index_folder(tmp_path / "data", cache=cache)
    assert again.n_read == 2 and again.n_cached == 10
    assert again.find(edited).view_position == "AP"  # type: ignore[union-attr]
    assert "P3" in [p.patient_id for p in again.patients]
    assert len(again.patients[0].studies) == 1  # P1's older study is gone
    with sqlite3.connect(cache) as con:
        paths = {row[0] for row in con.execute("SELECT path FROM files")}
    assert str(files["P1/1.2.3.2/AP1"]) not in paths
    assert con.execute  # connection closed by context


def test_cache_is_wal_private_and_versioned(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    cache = tmp_path / "sub" / "c.sqlite3"
    index_folder(tmp_path / "data", cache=cache)
    assert cache.stat().st_mode & 0o077 == 0
    with sqlite3.connect(cache) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.execute("PRAGMA user_version=999")
    index = index_folder(tmp_path / "data", cache=cache)  # schema mismatch: rebuilt
    assert index.n_read == 12


def test_corrupt_cache_is_reported_not_fatal(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    cache = tmp_path / "c.sqlite3"
    cache.write_bytes(b"this is not sqlite" * 100)
    index = index_folder(tmp_path / "data", cache=cache)
    assert index.cache_path is None and index.warnings
    assert len(index.images) == 8


def test_default_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CACHE_DIR", str(tmp_path / "cachedir"))
    write_dicom(tmp_path / "data/a.dcm")
    index = index_folder(tmp_path / "data")
    assert index.cache_path == default_cache_path() == tmp_path / "cachedir/study_index.sqlite3"
    assert index.cache_path.exists()


def test_dicomdir_and_its_tree() -> None:
    tiny = PYDICOM_FILES / "test_files/dicomdirtests/TINY_ALPHA/DICOMDIR"
    index = index_folder(tiny, cache=False)
    assert index.root == tiny.parent
    assert len(index.non_images) == 50 and not index.errors  # those files carry no pixels
    tree = index_folder(PYDICOM_FILES / "test_files/dicomdirtests", cache=False)
    crs = [i for i in tree.images if i.modality == "CR"]
    assert len(crs) == 3 and all(i.photometric == "MONOCHROME1" for i in crs)
    assert len(tree.patients) == 2 and len(tree.images) == 31


def test_dicomdir_missing_reference(tmp_path: Path) -> None:
    src = PYDICOM_FILES / "test_files/dicomdirtests/TINY_ALPHA"
    shutil.copytree(src, tmp_path / "tiny")
    victim = next((tmp_path / "tiny").rglob("IM00000J"))
    victim.unlink()
    index = index_folder(tmp_path / "tiny/DICOMDIR", cache=False)
    assert [e.path.name for e in index.errors] == ["IM00000J"]
    assert "listed in the DICOMDIR but missing" in (index.errors[0].error or "")


def test_mimic_cxr_jpg_layout(tmp_path: Path) -> None:
    root = tmp_path / "mimic"
    ids = [
        ("p10", "p10000032", "s50414267", "02aa804e"),
        ("p10", "p10000032", "s53189527", "2a2277a9"),
        ("p10", "p10000032", "s53189527", "e084de3b"),
        ("p11", "p11000011", "s51029426", "1cbe8ccc"),
    ]
    for top, subject, study, dicom_id in ids:
        path = root / "files" / top / subject / study / f"{dicom_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ramp(32, 32, high=255).astype(np.uint8)).save(path)
    (root / "mimic-cxr-2.0.0-metadata.csv").write_text(
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,"
        "Columns,StudyDate,StudyTime\n"
        "02aa804e,10000032,50414267,CHEST,PA,32,32,21800506,213014.531\n"
        "2a2277a9,10000032,53189527,CHEST,PA,32,32,21800626,165500.312\n"
        "e084de3b,10000032,53189527,CHEST,LATERAL,32,32,21800626,165500.312\n"
    )
    index = index_folder(root, cache=False)
    assert [p.patient_id for p in index.patients] == ["10000032", "11000011"]
    studies = index.patients[0].studies
    assert [s.study_uid for s in studies] == ["53189527", "50414267"]  # newest first
    assert sorted(i.view_position for i in studies[0].images) == ["LATERAL", "PA"]
    assert {i.instance_uid for i in studies[0].images} == {"2a2277a9", "e084de3b"}


def test_plain_raster_folder_is_a_study_per_folder(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        for i in range(2):
            path = tmp_path / folder / f"img{i}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(ramp(16, 16, high=255).astype(np.uint8)).save(path)
    index = index_folder(tmp_path, cache=False)
    assert len(index.studies) == 2 and {s.description for s in index.studies} == {"a", "b"}


def test_progress_and_missing_root(tmp_path: Path) -> None:
    _tree(tmp_path / "data")
    seen: list[tuple[int, int]] = []
    index_folder(tmp_path / "data", cache=False, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (12, 12)
    with pytest.raises(ImageLoadError, match="no such file or folder"):
        index_folder(tmp_path / "missing")


def test_uid_named_files_and_dicom_without_suffix(tmp_path: Path) -> None:
    write_dicom(tmp_path / "1.2.840.113619.2.55.3.604688119.868.1249343483.504", ds=make_dataset())
    write_dicom(tmp_path / "IM0001", ds=make_dataset())
    index = index_folder(tmp_path, cache=False)
    assert len(index.images) == 2 and not index.errors


def test_lean_scanner_agrees_with_pydicom_on_real_files() -> None:
    """The fast header path gives exactly the records pydicom's full parse gives."""
    from fpsm_core.io.headers import read_header

    files = [p for p in PYDICOM_FILES.rglob("*") if p.is_file() and p.suffix != ".py"]
    files += list(data_file("RG1_UNCR.dcm").parent.glob("*.dcm"))
    assert len(files) > 200
    for path in files:
        st = path.stat()
        fast = read_header(str(path), st.st_mtime_ns, st.st_size)
        full = read_header(str(path), st.st_mtime_ns, st.st_size, fast_path=False)
        assert fast == full, path
