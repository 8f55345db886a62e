"""Train, evaluate, ensemble, and load the result in ``fpsm infer``: the whole chain, tiny."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fpsm_core.cli.main import main as fpsm_main
from fpsm_core.data import read_cxrlt
from fpsm_core.labels import LABEL_INDEX
from fpsm_core.metrics import multilabel_report
from tests.training.helpers import make_dataset, tiny_config
from train import ensemble as ensemble_script
from train import evaluate as evaluate_script


@pytest.mark.slow
def test_train_evaluate_ensemble_infer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = make_dataset(tmp_path / "real", n=48, seed=1)
    dadam = make_dataset(tmp_path / "dadam", n=48, seed=1, synthetic=True)
    cfg_a = tmp_path / "a.yaml"
    cfg_a.write_text(
        yaml.safe_dump(tiny_config(real, tmp_path / "runs" / "a", **{"optim.epochs": 4})),
        encoding="utf-8",
    )
    assert fpsm_main(["train", str(cfg_a), "--quiet"]) == 0
    member_a = tmp_path / "runs" / "a" / "tiny.json"
    assert member_a.is_file()

    # member B: fine-tuned from A on the DADAM-layout table, with the synthetic embedding
    cfg_b = tiny_config(
        dadam, tmp_path / "runs" / "b", **{"optim.epochs": 1, "data.format": "dadam"}
    )
    cfg_b["model"]["synthetic_embedding"] = True  # type: ignore[index]
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(cfg_b), encoding="utf-8")
    code = fpsm_main(["train", str(tmp_path / "b.yaml"), "--init-from", str(member_a), "--quiet"])
    assert code == 0
    member_b = tmp_path / "runs" / "b" / "tiny.json"
    capsys.readouterr()

    # evaluate A on its own validation split (read from the checkpoint's config)
    eval_dir = tmp_path / "eval_a"
    assert (
        evaluate_script.main(["--model", str(member_a), "--out", str(eval_dir), "--workers", "0"])
        == 0
    )
    report = (eval_dir / "report.md").read_text()
    assert "| Model | mAP | AUC | F1 | Recall | Precision |" in report
    assert "Left out of the macro averages" in report and "Pneumothorax" in report
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    # the numbers in metrics.json are those of the written predictions
    records = read_cxrlt(real)
    truth = dict(zip(records.image_ids, records.targets, strict=True))
    with open(eval_dir / "predictions.csv", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    y = np.array([truth[r[0]] for r in rows[1:]])
    p = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    thresholds = json.loads(member_a.read_text())["thresholds"]
    again = multilabel_report(y, p, thresholds)
    assert again["mAP"] == pytest.approx(metrics["report"]["mAP"], abs=1e-5)
    assert metrics["report"]["per_class"]["Cardiomegaly"]["AUC"] > 0.8  # it learned the disc
    assert (eval_dir / "pr_curves.png").stat().st_size > 1000
    assert (eval_dir / "ap_vs_count.png").is_file()

    # the ensemble: copied members, mean probabilities, compared with its members
    ens_dir = tmp_path / "ens"
    code = ensemble_script.main(
        [
            "--out", str(ens_dir), "--name", "tiny ensemble",
            "--member", f"{member_a}:FPSM", "--member", f"{member_b}:FPSM DADAM",
            "--csv", str(real), "--tune-thresholds", "--workers", "0",
        ]
    )  # fmt: skip
    assert code == 0
    comparison = (ens_dir / "evaluation" / "ensemble.md").read_text()
    assert "| tiny ensemble (mean ensemble) |" in comparison
    assert "| FPSM |" in comparison and "| FPSM DADAM |" in comparison
    ens_json = json.loads((ens_dir / "ensemble.json").read_text())
    assert len(ens_json["members"]) == 2 and len(ens_json["thresholds"]) == 26
    assert {p.name for p in ens_dir.glob("*.safetensors")} == {
        "fpsm.safetensors",
        "fpsm_dadam.safetensors",
    }
    capsys.readouterr()

    # fpsm infer loads the ensemble directory and ranks a clear Cardiomegaly case high
    idx = [i for i, t in enumerate(records.targets) if t[LABEL_INDEX["Cardiomegaly"]] == 1]
    image = records.paths[idx[0]]
    assert fpsm_main(["infer", image, "--model", str(ens_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["untrained"] is False
    assert [m["name"] for m in result["members"]] == ["FPSM", "FPSM DADAM"]
    cardio = next(f for f in result["findings"] if f["label"] == "Cardiomegaly")
    assert cardio["probability"] == pytest.approx(
        np.mean(list(cardio["members"].values())), abs=1e-5
    )
    ranks = [f["label"] for f in result["findings"]]
    assert ranks.index("Cardiomegaly") < 3
