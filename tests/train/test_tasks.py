"""Other tasks and switches: a binary (MURA-like) task end to end, partly labelled data (NIH),
gradient accumulation, and a label table without the expected columns through the CLI."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.main import main as fpsm_main
from fpsm_core.data import DatasetError
from fpsm_core.labels import LABELS
from fpsm_core.model import load_checkpoint
from fpsm_core.training import config_from_dict, fit
from tests.training.helpers import make_dataset, tiny_config
from train import evaluate as evaluate_script


def _binary_set(root: Path, n: int = 32) -> Path:
    """Bright-square 'abnormal' studies against plain ones, two images per patient."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        img = (80 + 20 * rng.standard_normal((64, 64))).clip(0, 255)
        abnormal = i % 2
        if abnormal:
            img[20:40, 20:40] += 120
        cv2.imwrite(str(root / f"{i}.png"), img.clip(0, 255).astype(np.uint8))
        rows.append([f"{i}.png", f"patient{i // 2}", abnormal])
    path = root / "labels.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["image", "patient_id", "abnormal"], *rows])
    return path


def test_binary_task_trains_and_reports_table3(tmp_path: Path) -> None:
    csv_path = _binary_set(tmp_path / "data")
    config = tiny_config(
        csv_path,
        tmp_path / "run",
        **{"data.format": "generic", "optim.epochs": 2, "data.split": "random"},
    )
    config["data"]["label_columns"] = ["abnormal"]  # type: ignore[index]
    result = fit(config_from_dict(config), log=None)
    meta = load_checkpoint(result.checkpoint).meta
    assert meta.labels == ("abnormal",)
    assert len(meta.thresholds) == 1
    out = tmp_path / "eval"
    assert (
        evaluate_script.main(
            ["--model", str(result.checkpoint), "--out", str(out), "--workers", "0"]
        )
        == 0
    )
    report = (out / "report.md").read_text()
    assert "| Model | CK score | Acc | AUPRC | AUC |" in report
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "binary"
    assert set(metrics["report"]) >= {"kappa", "accuracy", "AUPRC", "AUC"}


def test_unknown_classes_stay_out_of_loss_and_metrics(tmp_path: Path) -> None:
    """An NIH-style table annotates 15 classes; the other 11 are unknown, not negative."""
    src = make_dataset(tmp_path / "data", n=24)
    with open(src, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    entries = []
    for r in rows:
        found = [lab for lab in ("Cardiomegaly", "Nodule") if r[lab] == "1"] or ["No Finding"]
        entries.append([r["path"], "|".join(found), r["subject_id"]])
    nih = tmp_path / "data" / "Data_Entry_2017.csv"
    with open(nih, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["Image Index", "Finding Labels", "Patient ID"], *entries])
    config = tiny_config(nih, tmp_path / "run", **{"data.format": "nih", "optim.epochs": 1})
    result = fit(config_from_dict(config), log=None)
    prov = load_checkpoint(result.checkpoint).meta.provenance
    assert len(prov["known_labels"]) == 15 and "Support Devices" not in prov["known_labels"]
    assert "Support Devices" not in prov["val_per_class"]
    thresholds = load_checkpoint(result.checkpoint).meta.thresholds
    assert thresholds[LABELS.index("Support Devices")] == 0.5  # untouched default


def test_gradient_accumulation_steps_every_k_batches(tmp_path: Path) -> None:
    csv_path = make_dataset(tmp_path / "data", n=32)
    config = tiny_config(
        csv_path,
        tmp_path / "run",
        **{"optim.batch_size": 4, "optim.accumulate": 2, "optim.epochs": 1},
    )
    result = fit(config_from_dict(config), log=None)
    # 24 training images: 6 batches of 4, one optimizer step per 2 batches
    assert result.steps == 3
    assert result.history[0]["train_images_seen"] == 24


def test_cli_names_a_table_without_the_expected_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text("image,label\na.png,1\n", encoding="utf-8")
    code = fpsm_main(["train", "--train-csv", str(bad), "--set", "data.format=cxrlt", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fpsm train: {bad} has no 'path' (or 'fpath') column; it is not a CXR-LT CSV."


def test_a_table_of_unreadable_images_stops_with_one_sentence(tmp_path: Path) -> None:
    csv_path = make_dataset(tmp_path / "data", n=16, broken=16)
    config = config_from_dict(tiny_config(csv_path, tmp_path / "run", **{"optim.epochs": 1}))
    with pytest.raises(DatasetError, match=r"no training image of .*labels\.csv could be read"):
        fit(config, log=None)


def test_warm_cache_fills_the_cache_that_training_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = make_dataset(tmp_path / "data", n=12, broken=1)
    cache = tmp_path / "cache"
    args = ["train", "--train-csv", str(csv_path), "--set", f"data.cache_dir={cache}"]
    args += ["--input-size", "64", "--warm-cache", "1"]
    assert fpsm_main(args) == 0
    out = capsys.readouterr().out
    counts = [int(n) for n in re.findall(r"cached (\d+) images", out)]
    assert len(counts) == 2 and sum(counts) == 11  # train and validation; one file is corrupt
    assert "1 images could not be read" in out
    assert len(list(cache.rglob("*.png"))) == 11
    assert fpsm_main(["train", "--warm-cache", "0"]) == 2
    assert "needs data.cache_dir" in capsys.readouterr().err
