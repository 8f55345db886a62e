"""train.cam_pointing: per-level pointing game by lesion size, with its chance level."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.explain import pointing_game, pointing_region
from fpsm_core.io import load_image
from tests.core.helpers import tiny_checkpoint
from tests.training.helpers import make_dataset
from train import cam_pointing


def test_pointing_region_grows_the_box_and_gives_the_chance_level() -> None:
    box = (10, 10, 20, 20)
    exact = pointing_region((100, 100), box)
    assert exact.sum() == 100 and exact.mean() == pytest.approx(0.01)
    grown = pointing_region((100, 100), box, tolerance=5)
    assert grown.sum() > exact.sum() and grown[exact].all() and not grown[0, 0]
    # a peak on the box edge hits; one 6 px away hits only with the tolerance
    maps = np.zeros((2, 100, 100), dtype=np.float32)
    maps[0, 15, 15] = 1
    maps[1, 15, 26] = 1
    assert pointing_game(maps, box).tolist() == [True, False]
    assert pointing_game(maps, box, tolerance=7).tolist() == [True, True]


def test_report_has_every_level_fused_and_chance(tmp_path: Path) -> None:
    labels = make_dataset(tmp_path / "data", n=6)
    rows = list(csv.DictReader(labels.open()))
    boxes = tmp_path / "boxes.csv"
    with boxes.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
        writer.writerow([rows[0]["dicom_id"], "R1", "Nodule", 4, 4, 9, 9])  # 5 px of 64: small
        writer.writerow([rows[1]["dicom_id"], "R1", "Cardiomegaly", 8, 8, 56, 64])  # large
        writer.writerow([rows[2]["dicom_id"], "R1", "No Finding", "", "", "", ""])
    model = tiny_checkpoint(tmp_path / "m", levels=(4, 3, 2))
    out, js = tmp_path / "cams.md", tmp_path / "cams.json"
    argv = ["--model", str(model), "--labels", str(labels), "--boxes", str(boxes),
            "--out", str(out), "--json", str(js)]  # fmt: skip
    assert cam_pointing.main(argv) == 0
    report = json.loads(js.read_text())
    assert report["images"] == 2 and report["levels"] == [4, 3, 2]
    assert set(report["by_bucket"]) == {"small", "large"}
    h, w = load_image(tmp_path / "data" / rows[0]["path"]).pixels.shape
    small = report["by_bucket"]["small"]
    assert small["boxes"] == 1 and small["chance"] == pytest.approx(25 / (h * w))
    for column in ("L4", "L3", "L2", "fused"):
        assert small[column] in (0.0, 1.0)
    text = out.read_text()
    assert "| L4 | L3 | L2 | fused | chance |" in text and "| Nodule | 1 |" in text
