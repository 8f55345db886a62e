"""The simulator's promises: determinism, ground truth that lies on the lesions, label statistics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fpsm_core.labels import LABEL_INDEX, LABELS
from fpsm_core.sim import SimConfig, default_prevalences, draw_labels, simulate_case
from fpsm_core.sim.assets import lung_templates
from fpsm_core.sim.config import LabelModel

FINDINGS = [name for name in LABELS if name != "No Finding"]
# Findings drawn as a local change, whose pixels must move only inside their boxes.
LOCAL = [
    "Nodule",
    "Mass",
    "Lung Lesion",
    "Pneumothorax",
    "Pleural Effusion",
    "Fracture",
    "Consolidation",
    "Pneumoperitoneum",
    "Calcification of the Aorta",
    "Hernia",
]


@pytest.fixture(scope="module")
def config() -> SimConfig:
    return SimConfig(size=128)


def test_same_seed_same_case(config: SimConfig) -> None:
    a = simulate_case((5, 3), config)
    b = simulate_case((5, 3), config)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels and a.boxes == b.boxes
    assert a.masks.keys() == b.masks.keys()
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    c = simulate_case((5, 4), config)
    assert not np.array_equal(a.image, c.image)


def test_case_shape_range_and_spacing(config: SimConfig) -> None:
    case = simulate_case(11, config)
    assert case.image.shape == (128, 128) and case.image.dtype == np.float32
    assert 0.0 <= case.image.min() and case.image.max() <= 1.0
    fov = case.spacing_mm[0] * 128
    assert config.fov_mm[0] <= fov <= config.fov_mm[1]
    assert case.view in ("PA", "AP")
    assert len(case.labels) == len(LABELS)


def test_drawn_labels_are_the_case_labels(config: SimConfig) -> None:
    for i in range(10):
        labels, _ = draw_labels((2, i), config)
        assert simulate_case((2, i), config).labels == tuple(bool(v) for v in labels)


@pytest.mark.parametrize("name", FINDINGS)
def test_every_finding_has_tight_boxes_on_its_mask(config: SimConfig, name: str) -> None:
    case = simulate_case((1, LABEL_INDEX[name]), config, labels=[name])
    assert set(case.positive()) == {name} | ({"No Finding"} if name == "Support Devices" else set())
    boxes = [b for b in case.boxes if b.label == name]
    assert boxes, f"{name} produced no box"
    mask = case.masks[name]
    for b in boxes:
        assert 0 <= b.x0 < b.x1 <= 128 and 0 <= b.y0 < b.y1 <= 128
        inside = mask[b.y0 : b.y1, b.x0 : b.x1]
        # Tight: each edge row and column of the box touches the finding's pixels.
        assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    assert not mask[:, :1].any() or min(b.x0 for b in boxes) == 0


@pytest.mark.parametrize("name", LOCAL)
def test_finding_changes_pixels_inside_its_boxes(name: str) -> None:
    config = SimConfig(size=160)
    seed = (4, LABEL_INDEX[name])
    with_it = simulate_case(seed, config, labels=[name])
    without = simulate_case(seed, config, labels=[])
    assert without.boxes == ()
    diff = np.abs(with_it.image - without.image)
    near = np.zeros(diff.shape, bool)
    for b in with_it.boxes:
        near[max(0, b.y0 - 6) : b.y1 + 6, max(0, b.x0 - 6) : b.x1 + 6] = True
    mask = with_it.masks[name]
    assert diff[mask].mean() > 0.01, "the finding is not visible"
    assert diff[mask].mean() > 4 * diff[~near].mean(), (
        "the finding changed pixels away from its box"
    )


def test_cardiomegaly_means_ctr_above_half() -> None:
    config = SimConfig(size=96)
    for i in range(8):
        assert simulate_case((3, i), config, labels=["Cardiomegaly"]).ctr > 0.5
        assert simulate_case((3, i), config, labels=[]).ctr < 0.5


def test_no_finding_iff_nothing_but_devices(config: SimConfig) -> None:
    assert simulate_case(0, config, labels=[]).positive() == ["No Finding"]
    assert simulate_case(0, config, labels=["Support Devices"]).positive() == [
        "No Finding",
        "Support Devices",
    ]
    assert "No Finding" not in simulate_case(0, config, labels=["Nodule"]).positive()
    with pytest.raises(ValueError, match="Unknown labels"):
        simulate_case(0, config, labels=["Nodules"])


def test_random_cases_box_every_positive_finding() -> None:
    config = SimConfig(size=96, min_prevalence=0.12)
    for i in range(40):
        case = simulate_case((9, i), config)
        boxed = {b.label for b in case.boxes}
        assert set(case.positive()) - {"No Finding"} <= boxed
        assert set(case.masks) == boxed


def _label_matrix(config: SimConfig, n: int) -> np.ndarray:
    model = LabelModel.from_config(config)
    rng = np.random.default_rng(123)
    return np.array([model.sample(rng)[0] for _ in range(n)])


def test_label_frequencies_follow_the_prevalences() -> None:
    config = SimConfig()
    n = 20_000
    labels = _label_matrix(config, n)
    for name, p in default_prevalences().items():
        observed = labels[:, LABEL_INDEX[name]].mean()
        sigma = np.sqrt(p * (1 - p) / n)
        assert abs(observed - p) < 4.5 * sigma + 1e-4, f"{name}: {observed:.4f} vs {p:.4f}"
    # Long tail: the commonest finding is over a hundred times the rarest.
    rates = labels.mean(axis=0)
    assert rates[LABEL_INDEX["Support Devices"]] > 100 * rates[LABEL_INDEX["Pneumoperitoneum"]]
    assert 0.15 < rates[LABEL_INDEX["No Finding"]] < 0.4


def test_label_correlations_have_the_clinical_signs() -> None:
    labels = _label_matrix(SimConfig(min_prevalence=0.05), 8_000).astype(float)
    corr = np.corrcoef(labels.T)

    def c(a: str, b: str) -> float:
        return float(corr[LABEL_INDEX[a], LABEL_INDEX[b]])

    assert c("Cardiomegaly", "Edema") > 0.15
    assert c("Fracture", "Subcutaneous Emphysema") > 0.15
    assert c("Pneumonia", "Consolidation") > 0.15
    assert c("Support Devices", "Pleural Effusion") > 0.1
    assert abs(c("Calcification of the Aorta", "Pneumothorax")) < 0.05
    no_finding = labels[:, LABEL_INDEX["No Finding"]] > 0
    others = np.delete(labels, [LABEL_INDEX["No Finding"], LABEL_INDEX["Support Devices"]], axis=1)
    assert np.array_equal(no_finding, others.sum(axis=1) == 0)


def test_min_prevalence_thins_the_tail() -> None:
    labels = _label_matrix(SimConfig(min_prevalence=0.1), 5_000)
    rates = labels.mean(axis=0)
    drawn = [LABEL_INDEX[name] for name in FINDINGS]
    assert rates[drawn].min() > 0.08


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="size"):
        SimConfig(size=8)
    with pytest.raises(ValueError, match="Unknown"):
        SimConfig(prevalences={"Nodules": 0.1})
    with pytest.raises(ValueError, match="probability"):
        SimConfig(prevalences={"Nodule": 1.5})
    with pytest.raises(ValueError, match="squared sum"):
        SimConfig(loadings={"Nodule": {"tumour": 0.8, "age": 0.8}})
    with pytest.raises(ValueError, match="Unknown or underived"):
        SimConfig(prevalences={"No Finding": 0.3})


def test_config_changes_only_what_it_says() -> None:
    config = SimConfig(size=96)
    bigger = dataclasses.replace(config, size=128)
    assert simulate_case(1, bigger).image.shape == (128, 128)
    assert simulate_case(1, bigger).labels == simulate_case(1, config).labels


def test_bundled_lung_outlines_are_real_two_lung_templates() -> None:
    templates = lung_templates()
    assert len(templates) >= 20
    for right, left in templates:
        assert right.shape == left.shape == (64, 2)
        assert 0.0 <= right.min() and max(right.max(), left.max()) <= 1.0
        assert right[:, 0].mean() < left[:, 0].mean()  # image-left lung first
