"""The bundled demo ensemble: it loads, says what it is, and sees simulated lesions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpsm_core.resources import resources_dir

DEMO = resources_dir() / "models" / "demo"
pytestmark = pytest.mark.skipif(
    not (DEMO / "ensemble.json").is_file(),
    reason="no demo ensemble bundled in resources/models/demo",
)


@pytest.fixture(scope="module")
def service():
    from fpsm_core.inference import InferenceService

    return InferenceService(DEMO, device="cpu")


def test_demo_is_the_default_model_marked_as_demo_and_small() -> None:
    from fpsm_core.model import load_model
    from fpsm_core.resources import default_model_path

    assert default_model_path() == DEMO
    ens = load_model(DEMO)
    assert len(ens.members) == 3
    assert not ens.untrained
    assert "simulated radiographs" in ens.disclaimer and "not for clinical use" in ens.disclaimer
    assert any(m.model.uses_synthetic_embedding for m in ens.members)
    weights = sum(f.stat().st_size for f in DEMO.glob("*.safetensors"))
    assert weights <= 40e6
    for member in ens.members:
        assert member.meta.weights_dtype == "float16"
        assert member.meta.provenance.get("train_positives")


def _rank(result, label: str) -> int:
    return [f.label for f in result.findings].index(label)


def test_demo_ranks_nodule_above_the_median_finding_on_a_simulated_nodule_case(service) -> None:
    from fpsm_core.io import load_image

    sample = resources_dir() / "samples" / "case2_Nodule.dcm"
    result = service.predict([load_image(sample)])[0]
    assert _rank(result, "Nodule") < len(result.findings) // 2


@pytest.mark.parametrize("label", ["Nodule", "Pleural Effusion", "Cardiomegaly"])
def test_demo_ranks_a_simulated_finding_above_the_median_on_fresh_cases(
    service, label: str, tmp_path: Path
) -> None:
    """Fresh simulator seeds (not the training set's): the finding is above the median on most."""
    from fpsm_core.io import load_image
    from fpsm_core.sim import SimConfig, simulate_case
    from fpsm_core.sim.writer import write_png

    config = SimConfig(size=512)
    images = []
    for seed in range(5):
        case = simulate_case((909, seed), config, labels=[label])
        write_png(tmp_path / f"{seed}.png", case)
        images.append(load_image(tmp_path / f"{seed}.png"))
    ranks = [_rank(r, label) for r in service.predict(images)]
    assert np.median(ranks) < 13, ranks
