"""train/evaluate.py reports calibration before and after, on the demo ensemble (issue 17 item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fpsm_core.resources import default_model_path
from train.evaluate import evaluate


def test_evaluate_reports_ece_and_reliability_before_and_after_calibration(
    tmp_path: Path,
) -> None:
    from fpsm_core.data.records import read_dataset
    from fpsm_core.sim.config import SimConfig
    from fpsm_core.sim.writer import write_dataset

    labels = write_dataset(
        tmp_path / "sim", 48, seed=13, format="png", config=SimConfig(size=256, min_prevalence=0.05)
    )
    records = read_dataset("cxrlt", labels)
    outcome = evaluate(
        default_model_path(), records, tmp_path / "eval", device="cpu", batch_size=16
    )
    cal = json.loads((outcome.out_dir / "calibration.json").read_text())
    assert set(cal) == {"before", "after"}
    for key in ("before", "after"):
        assert len(cal[key]["per_class"]) == 26
        assert sum(cal[key]["overall"]["counts"]) == 48 * 26
    # The demo's raw probabilities run far above prevalence (ASL); calibrated ones do not.
    assert cal["after"]["ece"] < cal["before"]["ece"]
    assert cal["after"]["mean_probability"] == pytest.approx(cal["after"]["prevalence"], abs=0.08)
    report = (outcome.out_dir / "report.md").read_text()
    assert "## Calibration" in report and "| after |" in report
    assert (outcome.out_dir / "reliability.png").stat().st_size > 0
    assert (outcome.out_dir / "reliability_per_class.png").stat().st_size > 0
