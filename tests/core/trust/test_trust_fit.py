"""Calibration and gate maths, their storage, and ``fpsm calibrate`` on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.cli.main import main
from fpsm_core.trust.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_platt,
    reliability,
    sigmoid,
)
from fpsm_core.trust.gate import fit_member_gate
from fpsm_core.trust.stats import clopper_pearson
from tests.core.helpers import tiny_checkpoint, tiny_ensemble


def test_platt_recovers_the_slope_and_bias_that_made_the_labels() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, size=(20000, 2))
    true = np.array([[0.5, -2.0], [2.0, 1.0]])  # (a, b) per class
    y = rng.random(z.shape) < sigmoid(z * true[:, 0] + true[:, 1])
    cal = fit_platt(z, y)
    assert cal.slope == pytest.approx(true[:, 0], abs=0.06)
    assert cal.bias == pytest.approx(true[:, 1], abs=0.06)
    assert expected_calibration_error(cal.probabilities(z), y) < 0.01
    assert expected_calibration_error(sigmoid(z), y) > 0.05


def test_platt_stays_finite_for_a_class_without_positives() -> None:
    z = np.linspace(-3, 3, 200)[:, None]
    cal = fit_platt(z, np.zeros_like(z))
    p = cal.probabilities(z)
    assert np.isfinite(cal.slope).all() and np.isfinite(cal.bias).all()
    assert p.max() < 0.05  # close to Platt's smoothed target 1 / (N + 2)


def test_ece_of_a_known_example() -> None:
    # Two bins used: 0.1 with 1 positive in 10, 0.9 with 5 positives in 10 -> (0 + 0.4) / 2.
    p = np.array([0.1] * 10 + [0.9] * 10)
    y = np.array([1] + [0] * 9 + [1] * 5 + [0] * 5)
    rel = reliability(p, y)
    assert rel.ece == pytest.approx(0.2)
    assert rel.counts.sum() == 20 and len(rel.counts) == 15
    report = calibration_report(np.stack([p, p], 1), np.stack([y, y], 1), ("a", "b"), [0.5, 0.5])
    assert report.overall.ece == pytest.approx(0.2)
    assert report.flagged_per_image == pytest.approx(1.0)
    assert json.loads(json.dumps(report.to_json()))["per_class"]["a"]["ece"] == pytest.approx(0.2)


def test_the_gate_flags_about_its_quantile_in_distribution_and_shifted_inputs() -> None:
    rng = np.random.default_rng(1)
    d = (32, 8)
    targets = rng.random((2000, 3)) < 0.3

    def draw(n: int, shift: float = 0.0) -> list[np.ndarray]:
        return [rng.normal(shift, 1.0, (n, k)) * np.linspace(0.5, 2, k) for k in d]

    gate, held = fit_member_gate((4, 3), draw(2000), targets, draw(1000), quantile=0.95, rank=4)
    assert np.mean(held > gate.threshold) == pytest.approx(0.05, abs=0.01)
    fresh = gate.score(draw(2000))
    low, high = clopper_pearson(int((fresh > gate.threshold).sum()), 2000, level=0.999)
    assert low <= 0.05 <= high
    assert np.mean(gate.score(draw(200, shift=1.5)) > gate.threshold) == 1.0


def test_a_checkpoint_without_trust_loads_and_says_the_gate_is_unavailable(
    tmp_path: Path,
) -> None:
    from fpsm_core.inference import InferenceService
    from tests.core.helpers import chest_like

    ckpt = tiny_checkpoint(tmp_path / "old")
    assert "trust" not in json.loads(ckpt.read_text())
    service = InferenceService(ckpt, device="cpu")
    assert not service.trust.has_gate and not service.trust.calibrated

    class Image:
        pixels = chest_like(300, 300).astype(np.float32)
        window = (2000.0, 3000.0)
        path = None

    verdict = service.predict([Image()])[0].input
    assert verdict.in_distribution is None
    assert verdict.ood_score is None and verdict.threshold is None and verdict.reasons == ()
    assert "the gate is unavailable" in verdict.note
    assert service.identity()["calibrated"] is False


@pytest.fixture(scope="module")
def sim_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fpsm_core.sim.writer import write_dataset

    return write_dataset(tmp_path_factory.mktemp("sim"), 60, seed=5, format="png", size=64)


def test_fpsm_calibrate_writes_trust_beside_a_copy_and_inference_uses_it(
    tmp_path: Path, sim_table: Path, capsys
) -> None:
    from fpsm_core.inference import InferenceService

    model = tiny_ensemble(tmp_path / "ens", n=2)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    status = main(
        ["calibrate", str(model), "--data", str(sim_table), "--out", str(tmp_path / "out"),
         "--quantile", "0.9", "--json"]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    assert summary["n_heldout"] + summary["n_train"] == 60
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before  # the original untouched
    copy = tmp_path / "out" / "ens"
    section = json.loads((copy / "m0.json").read_text())["trust"]
    assert section["version"] == 1 and (copy / section["file"]).is_file()
    assert json.loads((copy / "ensemble.json").read_text())["trust"]["gate"]["quantile"] == 0.9
    service = InferenceService(copy, device="cpu")
    assert service.trust.has_gate and service.trust.calibrated
    result = next(iter(service.predict_paths([next((sim_table.parent / "images").iterdir())])))
    assert result.calibrated and result.input.ood_score is not None
    assert result.input.threshold == pytest.approx(service.trust.gate_threshold)
    assert [f.threshold for f in result.findings] == [
        service.thresholds[f.index] for f in result.findings
    ]


def test_an_altered_sidecar_makes_the_gate_unavailable_with_a_reason(
    tmp_path: Path, sim_table: Path, capsys
) -> None:
    from fpsm_core.inference import InferenceService

    ckpt = tiny_checkpoint(tmp_path / "one")
    assert main(["calibrate", str(ckpt), "--data", str(sim_table)]) == 0
    assert "calibrated" in capsys.readouterr().out
    side = tmp_path / "one.trust.safetensors"
    data = bytearray(side.read_bytes())
    data[-1] ^= 0xFF
    side.write_bytes(bytes(data))
    service = InferenceService(ckpt, device="cpu")
    assert not service.trust.has_gate and not service.trust.calibrated
    assert "does not match the SHA-256" in service.trust.note


def test_fpsm_calibrate_names_a_bad_option_or_table(tmp_path: Path, capsys) -> None:
    ckpt = tiny_checkpoint(tmp_path / "m")
    assert main(["calibrate", str(ckpt), "--data", str(tmp_path / "none.csv")]) == 2
    err = capsys.readouterr().err
    assert "none.csv" in err and "Traceback" not in err
    assert main(["calibrate", str(ckpt), "--data", "x.csv", "--quantile", "1.5"]) == 2
    assert "--quantile" in capsys.readouterr().err


def test_infer_json_has_a_null_input_block_for_a_model_without_a_gate(
    tmp_path: Path, sim_table: Path, capsys
) -> None:
    ckpt = tiny_checkpoint(tmp_path / "plain")
    image = next((sim_table.parent / "images").iterdir())
    assert main(["infer", str(image), "--model", str(ckpt), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    block = record["input"]
    # No gate: no score and no threshold; the 64 px film still fails a check, so it is flagged.
    assert block["ood_score"] is None and block["threshold"] is None
    assert [r["code"] for r in block["reasons"]] == ["too_small"]
    assert block["in_distribution"] is False
    assert "the gate is unavailable" in block["note"]
    assert record["calibrated"] is False
