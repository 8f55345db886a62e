"""The studio's model check: per member and level, the pasted class before and after pasting."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from test_dadam_support import add_lesion, chest

from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.model_check import ENSEMBLE_NAME, as_service, check_composition, grey_image
from fpsm_core.explain.metrics import energy_in_box, scale_boxes
from fpsm_core.explain.result_cams import FUSED
from tests.core.helpers import tiny_ensemble


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    return as_service(tiny_ensemble(tmp_path_factory.mktemp("ens"), n=2, size=64), device="cpu")


def _pair() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    original, _ = chest(96, seed=4)
    composite = original.copy()
    box = add_lesion(composite, 30, 40, 8, value=230)
    return original, composite, box


def test_check_reads_every_member_and_level_as_inference_does(service) -> None:
    original, composite, box = _pair()
    res = check_composition(service, original, composite, box, "Nodule")
    c = service.labels.index("Nodule")
    assert res.label == "Nodule" and res.class_index == c
    assert res.members == ("m0", "m1")
    keys = {(r.member, r.level) for r in res.rows}
    for who in ("m0", "m1", ENSEMBLE_NAME):
        assert {(who, lv) for lv in (4, 3, 2, FUSED)} <= keys
    # the probabilities are the inference service's own, image by image
    alone_before, alone_after = service.predict([grey_image(original), grey_image(composite)])
    assert res.probability_before == pytest.approx(float(alone_before.probabilities[c]), abs=1e-6)
    assert res.probability_after == pytest.approx(float(alone_after.probabilities[c]), abs=1e-6)
    for m, name in enumerate(res.members):
        fused = res.row(name, FUSED)
        assert fused.prob_after == pytest.approx(alone_after.member_probabilities[m, c], abs=1e-6)
        levels = [res.row(name, lv).logit_after for lv in (4, 3, 2)]
        assert sum(levels) == pytest.approx(fused.logit_after, abs=1e-4)  # levels add up
        assert fused.delta_logit == pytest.approx(fused.logit_after - fused.logit_before)
    # energy is the in-box share of the maps the studio shows
    for r in res.rows:
        before, after = res.maps[r.member][r.level]
        assert before.shape == after.shape == res.map_shape == (96, 96)
        region = scale_boxes([box], (96, 96), res.map_shape)[0]
        for value, cam in ((r.energy_before, before), (r.energy_after, after)):
            expect = float(energy_in_box(cam, region))
            assert (math.isnan(value) and math.isnan(expect)) or value == pytest.approx(expect)
            assert math.isnan(value) or 0.0 <= value <= 1.0
    best = res.best_level()
    assert best.level != FUSED and best.member == ENSEMBLE_NAME
    assert res.to_json()["rows"][0]["member"] == "m0"


def test_pasting_nothing_changes_nothing(service) -> None:
    original, _, box = _pair()
    res = check_composition(service, original, original.copy(), box, "Mass")
    for r in res.rows:
        assert r.delta_prob == pytest.approx(0.0, abs=1e-6)
        assert r.delta_logit == pytest.approx(0.0, abs=1e-5)


def test_check_accepts_a_path_and_refuses_mistakes_in_one_sentence(service, tmp_path: Path) -> None:
    original, composite, box = _pair()
    with pytest.raises(DadamError, match="model not found") as err:
        check_composition(tmp_path / "nope", original, composite, box, "Nodule")
    assert "\n" not in str(err.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DadamError, match="cannot load the model"):
        check_composition(bad, original, composite, box, "Nodule")
    with pytest.raises(DadamError, match="does not predict"):
        check_composition(service, original, composite, box, "Nonsense")
    with pytest.raises(DadamError, match="not inside"):
        check_composition(service, original, composite, (90, 90, 120, 120), "Nodule")
    with pytest.raises(DadamError, match="differ in size"):
        check_composition(service, original, composite[:50], box, "Nodule")
