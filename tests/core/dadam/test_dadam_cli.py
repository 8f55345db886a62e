"""``fpsm dadam``: the whole pipeline from the command line, the report, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dadam_support import DATA, correlated_labels, table_from_y, write_dataset

from fpsm_core.cli.main import main
from fpsm_core.dadam.report import compare, render_matrices, write_report
from fpsm_core.dadam.table import read_labels_csv, write_labels_csv

LESIONS = {
    0: ["Nodule"],
    1: ["Nodule", "Mass"],
    2: ["Pneumothorax"],
    3: ["Mass"],
    4: ["Cardiomegaly"],
}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


def test_pipeline_import_plan_generate_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels, boxes = write_dataset(tmp_path / "base", n=14, size=96, lesions=LESIONS)
    lib, plan, out, rep = (
        tmp_path / "lib",
        tmp_path / "plan.jsonl",
        tmp_path / "aug",
        tmp_path / "rep",
    )
    assert (
        main(
            [
                "dadam",
                "import",
                "--library",
                str(lib),
                "--boxes",
                str(boxes),
                "--images",
                str(images),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "6 new patches" in text and "library" in text
    assert main(["dadam", "library", str(lib), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["Nodule"]["unreviewed"] == 2
    assert main(["dadam", "library", str(lib), "--accept", "1", "--reject", "2"]) == 0
    assert "1 patches accepted" in capsys.readouterr().out
    assert (
        main(
            [
                "dadam",
                "cooc",
                str(labels),
                "--out",
                str(tmp_path / "cooc.json"),
                "--png",
                str(tmp_path / "c.png"),
            ]
        )
        == 0
    )
    assert "Mass" in capsys.readouterr().out
    cooc = json.loads((tmp_path / "cooc.json").read_text())
    assert cooc["partners"]["Nodule"] == "Mass" and len(cooc["matrix"]) == 26
    assert cv2.imread(str(tmp_path / "c.png")) is not None
    assert main(["dadam", "plan", "--labels", str(labels), "--library", str(lib), "--out", str(plan),
                 "--target", "6", "--target-class", "Pneumothorax=4", "--budget", "30", "--seed", "1"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "synthetic images planned" in text and "no patches in the library" in text
    assert main(["dadam", "generate", "--plan", str(plan), "--library", str(lib), "--images",
                 str(images.parent), "--out", str(out), "--workers", "1", "--base-boxes", str(boxes)]) == 0  # fmt: skip
    assert "images made" in capsys.readouterr().out
    assert (
        main(
            [
                "dadam",
                "report",
                "--original",
                str(labels),
                "--augmented",
                str(out / "labels.csv"),
                "--out",
                str(rep),
            ]
        )
        == 0
    )
    assert "co-occurrence distance" in capsys.readouterr().out
    report = json.loads((rep / "report.json").read_text())
    assert report["counts_after"]["Nodule"] >= 6 and report["counts_after"]["Pneumothorax"] >= 4
    png = cv2.imread(str(rep / "dadam_cooc.png"))
    assert png is not None and png.shape[1] > png.shape[0]
    assert "| Nodule |" in (rep / "report.md").read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["dadam", "cooc", "missing.csv"],
        ["dadam", "library", "no_library_here"],
        ["dadam", "import", "--library", "L", "--boxes", "missing.csv", "--images", "."],
        [
            "dadam",
            "generate",
            "--plan",
            "missing.jsonl",
            "--library",
            "L",
            "--images",
            ".",
            "--out",
            "o",
        ],
    ],
)
def test_user_errors_are_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsm dadam:") and "\n" not in err


def test_plan_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, labels, boxes = write_dataset(tmp_path / "b", n=4, size=64, lesions={0: ["Nodule"]})
    main(
        [
            "dadam",
            "import",
            "--library",
            str(tmp_path / "lib"),
            "--boxes",
            str(boxes),
            "--images",
            str(images),
        ]
    )
    capsys.readouterr()
    base = [
        "dadam",
        "plan",
        "--labels",
        str(labels),
        "--library",
        str(tmp_path / "lib"),
        "--out",
        str(tmp_path / "p.jsonl"),
        "--budget",
        "5",
    ]
    assert main([*base, "--target-class", "Nodules=5"]) == 2
    assert "Nodules" in capsys.readouterr().err
    assert main(base) == 2
    assert "--target" in capsys.readouterr().err


def test_report_distance_zero_for_same_table_and_counts(tmp_path: Path) -> None:
    t = table_from_y(correlated_labels(300, seed=2))
    rep = compare(t, t)
    assert rep.distance.frobenius == 0.0 and rep.counts_before == rep.counts_after
    csv = tmp_path / "t.csv"
    write_labels_csv(csv, ((m, y, 0) for m, y in zip(t.meta, t.y, strict=True)))
    back = read_labels_csv(csv)
    assert np.array_equal(back.y, t.y) and back.ids == t.ids
    out = write_report(csv, csv, tmp_path / "r")
    assert all(p.is_file() for p in out.files.values())
    img = render_matrices(rep.corr_before, rep.corr_after)
    assert img.ndim == 3 and img.dtype == np.uint8


def test_labels_csv_errors(tmp_path: Path) -> None:
    from fpsm_core.dadam.errors import DadamError

    f = tmp_path / "x.csv"
    f.write_text("dicom_id,Atelectasis\n1,0\n")
    with pytest.raises(DadamError, match="missing columns"):
        read_labels_csv(f)


def test_data_readme_names_sources() -> None:
    text = (DATA / "README.md").read_text()
    for name in (
        "nih_bbox_list_2017_extract.csv.gz",
        "vinbigdata_train_extract.csv.gz",
        "torchxrayvision",
    ):
        assert name in text
