"""The 16-run ablation grid and its table, and the Optuna search with pruning."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fpsm_core.training import config_from_dict, load_config
from tests.training.helpers import make_dataset, tiny_config
from train import ablate, hpo


def test_grid_is_the_papers_sixteen_variants(tmp_path: Path) -> None:
    variants = ablate.grid()
    assert len({v.name for v in variants}) == 16
    assert {v.levels for v in variants} == {(4,), (4, 2), (4, 3, 2), (4, 3, 2, 1)}
    assert variants[2].name == "l432_sum_enc0" and variants[2].pyramid == "4th + 3rd + 2nd"
    base = config_from_dict({"optim": {"epochs": 3}})
    config = ablate.variant_config(base, variants[-1], tmp_path)
    assert config.model.levels == (4, 3, 2, 1)
    assert config.model.aggregation == "concat" and not config.model.synthetic_embedding
    assert config.run.out_dir == str(tmp_path / "l4321_concat_enc0")
    assert config.optim.epochs == 3


def test_ablation_table_has_the_four_panels() -> None:
    rows = [
        ablate.AblationRow(
            v,
            {"F1": 0.27, "mAP": 0.30 + 0.001 * i, "recall": 0.76, "precision": 0.2, "AUC": 0.82},
            None,
        )
        for i, v in enumerate(ablate.grid()[:15])
    ]
    rows.append(ablate.AblationRow(ablate.grid()[15], None, None))
    text = ablate.ablation_markdown(rows)
    for caption in (
        "(a) use_binary_enc=0, use_concatenate=0",
        "(d) use_binary_enc=0, use_concatenate=1",
    ):
        assert caption in text
    assert "| 4th + 3rd + 2nd | 27.00 | 30.20 | 76.00 | 20.00 | 82.00 |" in text
    assert "**31.40**" in text  # the best mAP is bold
    assert "Not trained yet: l4321_concat_enc0." in text


def test_ablation_runs_skips_finished_variants_and_writes_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = make_dataset(tmp_path / "data", n=32)
    base = tmp_path / "base.yaml"
    base.write_text(
        yaml.safe_dump(tiny_config(csv_path, tmp_path / "unused", **{"optim.epochs": 1}))
    )
    out = tmp_path / "ablation"
    args = [str(base), "--out", str(out), "--only", "l4_sum_enc0", "--only", "l42_concat_enc1"]
    assert ablate.main(args) == 0
    text = (out / "ablation.md").read_text()
    assert "| 4th | " in text and "| 4th + 2nd | " in text
    assert (out / "l42_concat_enc1" / "l42_concat_enc1.json").is_file()
    rows = (out / "ablation.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith(
        "name,levels,aggregation,synthetic_encoding,F1,mAP"
    )
    capsys.readouterr()
    assert ablate.main(args) == 0
    assert capsys.readouterr().out.count("done, skipped") == 2
    assert ablate.main([str(base), "--out", str(out), "--only", "l9_sum_enc0"]) == 2


def test_hpo_search_writes_trials_and_best_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    optuna = pytest.importorskip("optuna")
    csv_path = make_dataset(tmp_path / "data", n=32)
    base_path = tmp_path / "base.yaml"
    base_path.write_text(
        yaml.safe_dump(tiny_config(csv_path, tmp_path / "unused", **{"loss.type": "asl"}))
    )
    out = tmp_path / "hpo"
    code = hpo.main(
        [
            str(base_path),
            "--out",
            str(out),
            "--trials",
            "2",
            "--epochs",
            "1",
            "--sizes",
            "64",
            "96",
            "--quiet",
        ]
    )
    assert code == 0
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 3
    assert (
        rows[0]
        == "number,state,val_mAP,epochs_reported,clip,gamma_neg,gamma_pos,input_size,lr,weight_decay"
    )
    best = load_config(out / "best.yaml")
    study_best = [r.split(",") for r in rows[1:]]
    winner = max(study_best, key=lambda r: float(r[2]))
    assert best.optim.lr == pytest.approx(float(winner[8]))
    assert best.input.input_size == int(winner[7])
    assert best.optim.epochs == 1
    # only the best trial keeps its weights
    kept = {p.parent.name for p in out.glob("trial_*/*.safetensors")}
    assert kept == {f"trial_{int(winner[0]):04d}"}

    # pruning: a trial that reports below the pruner's floor is stopped after its first epoch
    base = load_config(base_path, ["epochs=3"])
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5)
    )
    study.optimize(hpo.make_objective(base, tmp_path / "pruned", [64], log=False), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
