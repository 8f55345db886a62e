"""fpsm_core.io.tags: a DICOM header as plain, searchable rows."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from fpsm_core.io import ImageLoadError, load_image
from fpsm_core.io.tags import MAX_VALUE_CHARS, image_rows, matches, read_tag_rows
from tests.synthetic_dicom import chest_like, write_dicom


@pytest.fixture
def dicom_file(tmp_path: Path) -> Path:
    path = write_dicom(tmp_path / "chest.dcm", chest_like())
    ds = pydicom.dcmread(path)
    code = Dataset()
    code.CodeValue = "R-10214"
    code.CodeMeaning = "postero-anterior"
    ds.ViewCodeSequence = [code]
    ds.ImageComments = "x" * 500
    ds.ICCProfile = b"\x00" * 64
    ds.save_as(path)
    return path


def test_rows_cover_meta_elements_sequences_and_bulk_data(dicom_file: Path) -> None:
    rows = read_tag_rows(dicom_file)
    names = [r.name for r in rows]
    # file meta first, then the data set
    assert names.index("TransferSyntaxUID") < names.index("PatientName")
    assert {"PatientName", "PixelSpacing", "WindowCenter"} <= set(names)
    assert "PixelData" not in names  # the header only: the pixels are never read for it
    assert next(r for r in rows if r.name == "PatientName").value == "TEST^ONE"
    icc = next(r for r in rows if r.name == "ICCProfile")
    assert (icc.tag, icc.vr, icc.value) == ("(0028,2000)", "OB", "<64 bytes>")
    long = next(r for r in rows if r.name == "ImageComments")
    assert len(long.value) == MAX_VALUE_CHARS and long.value.endswith("…")
    seq = next(r for r in rows if r.name == "ViewCodeSequence")
    assert seq.vr == "SQ" and seq.value == "1 item(s)" and seq.children[0].name == "Item 1"
    inner = seq.children[0].children
    assert [(r.name, r.value, r.depth) for r in inner if r.name == "CodeMeaning"] == [
        ("CodeMeaning", "postero-anterior", 2)
    ]


def test_search_is_case_blind_and_looks_into_sequences(dicom_file: Path) -> None:
    rows = read_tag_rows(dicom_file)
    assert [r.name for r in rows if matches(r, "patientname")] == ["PatientName"]
    assert [r.name for r in rows if matches(r, "0028,0030")] == ["PixelSpacing"]
    assert [r.name for r in rows if matches(r, "POSTERO")] == ["ViewCodeSequence"]
    assert all(matches(r, "") for r in rows)


def test_a_broken_file_is_named_in_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not a dicom")
    with pytest.raises(ImageLoadError, match="bad.dcm"):
        read_tag_rows(bad)


def test_a_raster_image_offers_its_size_and_window(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    png = tmp_path / "film.png"
    cv2.imwrite(str(png), np.full((40, 30), 128, np.uint8))
    rows = {r.name: r.value for r in image_rows(load_image(png))}
    assert rows["Rows x Columns"] == "40x30"
    assert rows["Source format"]
