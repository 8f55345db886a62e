"""``fpsm info``: what the loader sees, PHI hidden by default, one-line errors with exit 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from io_fixtures import data_file, write_dicom

from fpsm_core.cli.main import main
from fpsm_core.io.info import describe


def test_describe_rg1() -> None:
    report = describe(data_file("RG1_J2KR.dcm"))
    header = dict(report.header)
    assert report.kind == "dicom" and report.error is None and report.image is not None
    assert header["Photometric"] == "MONOCHROME1"
    assert header["Transfer syntax"].startswith("JPEG 2000 Image Compression (Lossless Only)")
    assert header["Bits alloc/stored/high"] == "16/15/14"
    text = "\n".join(report.lines())
    for expected in (
        "inverted for display",
        "center 15000, width 30000",
        "Decoder",
        "pylibjpeg",
        "none (no usable spacing)",
        "PixelSpacing",
    ):
        assert expected in text


def test_cli_file_hides_phi_unless_asked(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_dicom(
        tmp_path / "a.dcm",
        PatientName="Secret^Sam",
        PatientID="ID-4242",
        PixelSpacing=[0.143, 0.143],
        WindowCenter=2000,
        WindowWidth=4000,
    )
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Secret" not in out and "ID-4242" not in out and "0.143 x 0.143 mm" in out
    assert main(["info", str(path), "--show-phi"]) == 0
    assert "Secret^Sam" in capsys.readouterr().out
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["loader"]["Window"].startswith("center 2000, width 4000")
    assert "Patient ID" not in data["header"]


def test_cli_broken_file_prints_header_then_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "MR_truncated.dcm"
    shutil.copy(data_file("MR_truncated.dcm"), path)
    assert main(["info", str(path)]) == 2
    captured = capsys.readouterr()
    assert "Rows x Columns" in captured.out and "64 x 64" in captured.out
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "pixel data are truncated" in err[0] and str(path) in err[0]


def test_cli_folder_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    same = {"PatientID": "P1", "StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4"}
    write_dicom(tmp_path / "a/1.dcm", **same)
    write_dicom(tmp_path / "a/2.dcm", ViewPosition="LL", InstanceNumber=2, **same)
    (tmp_path / "a/bad.dcm").write_bytes(b"garbage" * 40)
    assert main(["info", str(tmp_path), "--no-cache"]) == 1
    out = capsys.readouterr().out
    assert (
        "1 study(ies), 1 series, 2 image(s)" in out
        and "1 broken file(s)" in out
        and "views LL, PA" in out
    )
    # found paths are identifiers too (issue 22): numbered without --show-phi
    assert "bad.dcm" not in out and "broken file 1" in out and "P1" not in out
    assert main(["info", str(tmp_path), "--no-cache", "--show-phi"]) == 1
    assert "bad.dcm" in capsys.readouterr().out


def test_cli_missing_path(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "/definitely/not/here.dcm"]) == 2
    assert "does not exist" in capsys.readouterr().err
