"""Simulated data sets on disk: CSV layouts, determinism, valid DICOM DX, PNG and ``fpsm sim``."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from fpsm_core.cli.main import main
from fpsm_core.labels import LABELS
from fpsm_core.sim import BOX_COLUMNS, META_COLUMNS, SimConfig, case_ids, simulate_case
from fpsm_core.sim.writer import SimWriteError, read_dicom_pixels, write_dataset

SIZE = 96


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def dicom_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim_dicom")
    write_dataset(out, 8, seed=21, format="dicom", size=SIZE)
    return out


def test_labels_csv_has_the_cxrlt_layout(dicom_set: Path) -> None:
    with (dicom_set / "labels.csv").open(newline="") as fh:
        header = next(csv.reader(fh))
    assert header == [*META_COLUMNS, *LABELS]
    rows = _rows(dicom_set / "labels.csv")
    assert len(rows) == 8
    for i, row in enumerate(rows):
        assert (dicom_set / row["path"]).is_file()
        assert row["dicom_id"] == case_ids(21, i).dicom_id
        assert row["ViewPosition"] in ("PA", "AP")
        assert row["ViewCodeSequence_CodeMeaning"] in ("postero-anterior", "antero-posterior")
        case = simulate_case((21, i), SimConfig(size=SIZE))
        assert [int(row[name]) for name in LABELS] == [int(v) for v in case.labels]


def test_boxes_csv_has_the_vindr_layout(dicom_set: Path) -> None:
    with (dicom_set / "boxes.csv").open(newline="") as fh:
        assert next(csv.reader(fh)) == list(BOX_COLUMNS)
    labels = {r["dicom_id"]: r for r in _rows(dicom_set / "labels.csv")}
    boxes = _rows(dicom_set / "boxes.csv")
    assert {b["image_id"] for b in boxes} == set(labels)
    for b in boxes:
        assert b["class_name"] in LABELS
        if b["x_min"] == "":
            assert b["class_name"] == "No Finding" and b["y_max"] == ""
            continue
        assert labels[b["image_id"]][b["class_name"]] == "1"
        x0, y0, x1, y1 = (int(b[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE


def test_dicoms_hold_the_simulated_pixels_and_spacing(dicom_set: Path) -> None:
    kinds = set()
    for i, row in enumerate(_rows(dicom_set / "labels.csv")):
        path = dicom_set / row["path"]
        ds = pydicom.dcmread(path)
        case = simulate_case((21, i), SimConfig(size=SIZE))
        kinds.add((ds.PhotometricInterpretation, int(ds.BitsStored)))
        assert ds.Modality == "DX" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
        assert float(ds.PixelSpacing[0]) == pytest.approx(case.spacing_mm[0], rel=1e-5)
        assert float(ds.ImagerPixelSpacing[1]) == pytest.approx(case.spacing_mm[1], rel=1e-5)
        assert ds.ViewPosition == case.view
        maxval = (1 << int(ds.BitsStored)) - 1
        assert np.abs(read_dicom_pixels(path) - case.image).max() <= 0.5 / maxval + 1e-6
    assert {k[0] for k in kinds} == {"MONOCHROME1", "MONOCHROME2"}
    assert {k[1] for k in kinds} == {12, 15}


def test_dicoms_load_in_display_sense(dicom_set: Path) -> None:
    io = pytest.importorskip("fpsm_core.io")
    for i, row in enumerate(_rows(dicom_set / "labels.csv")):
        image = io.load_image(dicom_set / row["path"])
        case = simulate_case((21, i), SimConfig(size=SIZE))
        center, width = image.window
        shown = (image.pixels - (center - width / 2)) / width
        assert np.abs(shown - case.image).max() < 1e-3
        assert image.spacing_mm == pytest.approx(case.spacing_mm, rel=1e-5)
        assert image.view_position == case.view
        assert not image.warnings


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None,
    reason="dciodvfy is not installed (Debian package dicom3tools); DICOM validity not checked",
)
def test_dicoms_pass_dciodvfy(dicom_set: Path) -> None:
    for path in sorted((dicom_set / "images").glob("*.dcm")):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        report = result.stdout + result.stderr
        assert "DXImageForPresentation" in report
        problems = [line for line in report.splitlines() if line.startswith(("Error", "Warning"))]
        assert not problems, f"{path.name}: {problems}"


def test_same_seed_same_files_whatever_the_workers(tmp_path: Path) -> None:
    one = write_dataset(tmp_path / "one", 6, seed=5, format="png", size=64, workers=1)
    two = write_dataset(tmp_path / "two", 6, seed=5, format="png", size=64, workers=2)
    assert one.read_text() == two.read_text()
    assert (one.parent / "boxes.csv").read_text() == (two.parent / "boxes.csv").read_text()
    for row in _rows(one):
        assert (one.parent / row["path"]).read_bytes() == (two.parent / row["path"]).read_bytes()
    other = write_dataset(tmp_path / "other", 6, seed=6, format="png", size=64)
    assert other.read_text() != one.read_text()


def test_png_is_the_8bit_display_image(tmp_path: Path) -> None:
    labels = write_dataset(tmp_path, 2, seed=3, format="png", size=64)
    for i, row in enumerate(_rows(labels)):
        png = cv2.imread(str(tmp_path / row["path"]), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.shape == (64, 64)
        case = simulate_case((3, i), SimConfig(size=64))
        assert np.abs(png / 255.0 - case.image).max() <= 0.5 / 255 + 1e-6
    assert '"seed": 3' in (tmp_path / "sim_config.json").read_text()


def test_bad_requests_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(SimWriteError, match="format"):
        write_dataset(tmp_path, 1, format="jpeg")
    with pytest.raises(SimWriteError, match="at least 1"):
        write_dataset(tmp_path, 0)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SimWriteError, match="cannot create the output folder"):
        write_dataset(blocker / "sub", 1, size=64)


def test_cli_writes_a_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    rc = main(
        [
            "sim",
            "--n",
            "3",
            "--seed",
            "2",
            "--out",
            str(out),
            "--size",
            "64",
            "--format",
            "png",
            "--workers",
            "1",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "labels.csv")
    assert "img/s" in captured.err
    assert len(_rows(out / "labels.csv")) == 3
    assert len(list((out / "images").glob("*.png"))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--n", "1", "--size", "16"], "--size must be between"),
        (["--n", "1", "--min-prevalence", "2"], "--min-prevalence must be between"),
    ],
)
def test_cli_rejects_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["sim", "--out", str(tmp_path), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsm sim: ") and message in err and "\n" not in err
