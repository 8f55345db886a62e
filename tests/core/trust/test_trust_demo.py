"""Trust on the bundled demo ensemble: held-out films pass, what it does not know is flagged.

The held-out films come from simulator seed 12, never used by the demo (training seed 0, test 1,
boxes 2, docs/trust.md's measurement 11). The false-alarm check compares the count flagged with
the gate's stated rate (1 - quantile) through a two-sided 95 % Clopper-Pearson interval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpsm_core.cli.main import main
from fpsm_core.resources import resources_dir
from fpsm_core.trust.calibration import expected_calibration_error
from fpsm_core.trust.stats import clopper_pearson
from tests.core.trust.test_trust_checks import photo_png

DEMO = resources_dir() / "models" / "demo"
HELDOUT_SEED = 12
N_HELDOUT = 60
pytestmark = pytest.mark.skipif(
    not (DEMO / "fpsm.trust.safetensors").is_file(), reason="the demo's trust data are not bundled"
)
pydicom_data = pytest.importorskip("pydicom.data")


def _testfile(name: str) -> str:
    path = pydicom_data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return str(path)


@pytest.fixture(scope="module")
def service():
    from fpsm_core.inference import InferenceService

    return InferenceService(DEMO, device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray]:
    from fpsm_core.data.records import read_dataset
    from fpsm_core.sim.writer import write_dataset

    out = tmp_path_factory.mktemp("sim_heldout")
    labels = write_dataset(
        out, N_HELDOUT, seed=HELDOUT_SEED, format="png", config=_demo_sim_config()
    )
    records = read_dataset("cxrlt", labels)
    return [Path(p) for p in records.paths], records.targets


def _demo_sim_config():
    from fpsm_core.sim.config import SimConfig

    return SimConfig(size=256, min_prevalence=0.05)  # as train/make_demo.sh made the training set


@pytest.fixture(scope="module")
def heldout_results(service, heldout):
    return list(service.predict_paths(heldout[0]))


def test_the_demo_is_calibrated_and_has_a_gate(service) -> None:
    assert service.trust.calibrated and service.trust.has_gate
    assert service.trust.gate_threshold == pytest.approx(
        json.loads((DEMO / "ensemble.json").read_text())["trust"]["gate"]["threshold"]
    )


def test_heldout_films_pass_at_the_stated_false_alarm_rate(service, heldout_results) -> None:
    quantile = json.loads((DEMO / "ensemble.json").read_text())["trust"]["gate"]["quantile"]
    flagged = sum(r.input.in_distribution is False for r in heldout_results)
    n = len(heldout_results)
    low, high = clopper_pearson(flagged, n)
    assert low <= 1 - quantile <= high, f"{flagged} of {n} held-out films flagged"
    passed = [r for r in heldout_results if r.input.in_distribution]
    assert all(r.input.reasons == () and r.input.ood_score <= r.input.threshold for r in passed)


def test_calibration_brings_heldout_ece_to_005(service, heldout, heldout_results) -> None:
    targets = heldout[1]
    calibrated = np.stack([r.probabilities for r in heldout_results])
    assert all(r.calibrated for r in heldout_results)
    # The same films through the members' raw sigmoid, for the before figure.
    from fpsm_core.trust.calibration import logit

    raw = []
    for r in heldout_results:
        member_raw = []
        for m, member_trust in enumerate(service.trust.members):
            cal = member_trust.calibration
            z = (logit(r.member_probabilities[m]) - cal.bias) / cal.slope
            member_raw.append(1 / (1 + np.exp(-z)))
        raw.append(np.mean(member_raw, axis=0))
    before = expected_calibration_error(np.stack(raw), targets)
    after = expected_calibration_error(calibrated, targets)
    assert before > 0.2
    assert after <= 0.05


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("RG1_UNCR.dcm", {"outside_distribution"}),
        ("RG3_UNCR.dcm", {"body_part", "outside_distribution"}),
        ("CT_small.dcm", {"modality", "too_small", "outside_distribution"}),
        ("MR_small.dcm", {"modality", "too_small", "outside_distribution"}),
        ("US1_UNCR.dcm", {"modality", "colour", "outside_distribution"}),
    ],
)
def test_real_files_the_demo_does_not_know_are_flagged_with_reasons(
    service, name: str, codes: set[str]
) -> None:
    from fpsm_core.io import load_image

    verdict = service.predict([load_image(_testfile(name))])[0].input
    assert verdict.in_distribution is False
    assert {r.code for r in verdict.reasons} == codes
    assert verdict.ood_score > verdict.threshold


def test_a_colour_photograph_is_flagged_by_the_check_and_the_gate(service, tmp_path) -> None:
    result = next(iter(service.predict_paths([photo_png(tmp_path / "photo.png")])))
    assert {r.code for r in result.input.reasons} == {"colour", "outside_distribution"}


@pytest.mark.parametrize("change", ["rot90", "invert"])
def test_a_rotated_or_inverted_simulated_film_is_flagged_by_the_gate(
    service, heldout, heldout_results, tmp_path, change: str
) -> None:
    # Films the gate passed as they are, changed: only the gate can tell (no header).
    passed = [
        p for p, r in zip(heldout[0], heldout_results, strict=True) if r.input.in_distribution
    ][:5]
    paths = []
    for i, path in enumerate(passed):
        grey = np.asarray(Image.open(path).convert("L"))
        changed = np.rot90(grey) if change == "rot90" else 255 - grey
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.ascontiguousarray(changed)).save(paths[-1])
    verdicts = [r.input for r in service.predict_paths(paths)]
    assert all(v.in_distribution is False for v in verdicts)
    assert all([r.code for r in v.reasons] == ["outside_distribution"] for v in verdicts)


def test_infer_json_carries_the_input_block(capsys) -> None:
    status = main(["infer", _testfile("RG3_UNCR.dcm"), "--json", "--top", "1"])
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0
    block = record["input"]
    assert block["in_distribution"] is False
    assert block["ood_score"] > block["threshold"]
    assert [r["code"] for r in block["reasons"]] == ["body_part", "outside_distribution"]
    assert record["calibrated"] is True and record["model"]["calibrated"] is True


def test_infer_table_warns_above_the_findings(capsys) -> None:
    main(["infer", _testfile("RG1_UNCR.dcm"), "--top", "2"])
    out = capsys.readouterr().out
    assert "probabilities: calibrated" in out
    warning = out.index("outside the model's training distribution: findings not reliable")
    assert warning < out.index(" 1. ")
    assert "gate score" in out
