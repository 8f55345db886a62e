"""Mean ensembles: the paper's mean of probabilities, and their description file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fpsm_core.model import CheckpointError, load_model
from tests.core.helpers import tiny_checkpoint, tiny_ensemble


def test_ensemble_output_is_the_mean_of_member_probabilities(tmp_path: Path) -> None:
    ens = load_model(tiny_ensemble(tmp_path / "ens", n=3))
    assert len(ens.members) == 3 and ens.member_names == ("m0", "m1", "m2")
    assert ens.untrained
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        probs = [torch.sigmoid(m.model(x)).numpy() for m in ens.members]
    from fpsm_core.model import mean_probabilities

    np.testing.assert_allclose(
        mean_probabilities(probs), (probs[0] + probs[1] + probs[2]) / 3, rtol=1e-6
    )
    assert not np.allclose(probs[0], probs[1])  # members really differ


def test_single_checkpoint_loads_as_an_ensemble_of_one(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "one", thresholds=[0.25] * 26)
    ens = load_model(path)
    assert len(ens.members) == 1 and ens.thresholds == tuple([0.25] * 26)


def test_ensemble_thresholds_default_to_the_member_mean(tmp_path: Path) -> None:
    d = tmp_path / "ens"
    d.mkdir()
    tiny_checkpoint(d / "a", thresholds=[0.2] * 26)
    tiny_checkpoint(d / "b", thresholds=[0.4] * 26)
    from fpsm_core.model import write_ensemble

    write_ensemble(d, ["a.json", "b.json"], name="pair")
    ens = load_model(d)
    assert ens.thresholds == pytest.approx([0.3] * 26)


def test_broken_ensembles_give_clear_errors(tmp_path: Path) -> None:
    d = tiny_ensemble(tmp_path / "ens", n=2)
    with pytest.raises(CheckpointError, match="has no ensemble.json"):
        load_model(tmp_path)
    data = json.loads((d / "ensemble.json").read_text())
    data["members"].append({"checkpoint": "missing.json"})
    (d / "ensemble.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(d)
    data["members"] = []
    (d / "ensemble.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="names no members"):
        load_model(d)
