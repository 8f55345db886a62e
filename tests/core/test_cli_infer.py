"""``fpsm infer``: JSON lines for DICOM and PNG, tables, and a broken file beside good ones."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import pytest

from fpsm_core.cli.main import main
from fpsm_core.labels import LABELS
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ensemble(tmp_path_factory.mktemp("model") / "ens", n=2)


@pytest.fixture()
def images(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "study"
    folder.mkdir()
    dcm = write_dicom(folder / "chest.dcm", chest_like(96, 80, seed=1))
    png = folder / "chest.png"
    cv2.imwrite(str(png), (chest_like(70, 90, seed=2) // 16).astype("uint8"))
    return {"dcm": dcm, "png": png, "folder": folder}


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_output_for_a_dicom_and_a_png(
    model_dir: Path, images: dict[str, Path], capsys
) -> None:
    status = main(
        ["infer", str(images["dcm"]), str(images["png"]), "--model", str(model_dir), "--json"]
    )
    records = _json_lines(capsys.readouterr().out)
    assert status == 0
    assert [Path(r["path"]).name for r in records] == ["chest.dcm", "chest.png"]
    for record in records:
        probs = [f["probability"] for f in record["findings"]]
        assert sorted(f["label"] for f in record["findings"]) == sorted(LABELS)
        assert probs == sorted(probs, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probs)
        top = record["findings"][0]
        members = top["members"]
        assert set(members) == {"m0", "m1"}
        assert top["probability"] == pytest.approx(sum(members.values()) / 2, abs=1e-5)
        assert set(top["level_logits"]["m0"]) == {"4", "3", "2"}
        assert (
            set(record["levels"]["m1"]) == {"4", "3", "2"}
            and len(record["levels"]["m1"]["4"]) == 26
        )
        assert record["untrained"] is True and record["model"]["untrained"] is True
        assert record["timing_ms"]["total"] > 0


def test_level_logits_sum_to_the_member_probability(
    model_dir: Path, images: dict[str, Path], capsys
) -> None:
    import math

    main(["infer", str(images["dcm"]), "--model", str(model_dir), "--json"])
    record = _json_lines(capsys.readouterr().out)[0]
    for finding in record["findings"]:
        for member, p in finding["members"].items():
            logit = sum(finding["level_logits"][member].values())
            assert 1 / (1 + math.exp(-logit)) == pytest.approx(p, abs=1e-4)


def test_broken_file_is_reported_and_the_rest_go_on(
    model_dir: Path, images: dict[str, Path], tmp_path: Path, capsys
) -> None:
    broken = images["folder"] / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    out = tmp_path / "out"
    status = main(
        ["infer", str(images["folder"]), "--model", str(model_dir), "--json", "--out", str(out)]
    )
    records = _json_lines(capsys.readouterr().out)
    assert status == 1
    by_name = {Path(r["path"]).name: r for r in records}
    assert set(by_name) == {"broken.dcm", "chest.dcm", "chest.png"}
    error = by_name["broken.dcm"]["error"]
    assert "broken.dcm" in error and "\n" not in error
    assert "findings" in by_name["chest.png"]
    rows = list(csv.reader((out / "predictions.csv").open()))
    assert rows[0] == ["dicom_id", *LABELS]
    assert sorted(r[0] for r in rows[1:]) == ["chest", "chest"]
    assert len((out / "results.jsonl").read_text().splitlines()) == 3


def test_table_output_marks_an_untrained_model(
    model_dir: Path, images: dict[str, Path], capsys
) -> None:
    status = main(["infer", str(images["png"]), "--model", str(model_dir), "--top", "5"])
    text = capsys.readouterr().out
    assert status == 0
    assert "UNTRAINED" in text
    ranked = [line for line in text.splitlines() if re.match(r"\s+\d+\. ", line)]
    assert len(ranked) == 5
    assert any(label in ranked[0] for label in LABELS)


def test_bad_model_path_is_one_line(images: dict[str, Path], tmp_path: Path, capsys) -> None:
    status = main(["infer", str(images["png"]), "--model", str(tmp_path / "nope.json")])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("fpsm infer:") and "nope.json" in err and "\n" not in err


def test_missing_file_is_reported(model_dir: Path, tmp_path: Path, capsys) -> None:
    status = main(["infer", str(tmp_path / "absent.png"), "--model", str(model_dir), "--json"])
    record = _json_lines(capsys.readouterr().out)[0]
    assert status == 1 and "absent.png" in record["error"]
