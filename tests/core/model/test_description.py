"""A model described once: training positives, the trainer's typed record, ``describe()``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from fpsm_core.labels import LABELS
from fpsm_core.model import (
    CheckpointError,
    describe,
    import_state_dict,
    load_backbone_weights,
    load_model,
    read_checkpoint_meta,
    update_checkpoint_meta,
    write_ensemble,
)
from fpsm_core.model.provenance import TrainingProvenance
from tests.core.helpers import tiny_checkpoint


def _record(**changes: object) -> TrainingProvenance:
    base = dict(
        trainer="fpsm_core.training.fit",
        kind="best",
        epoch=3,
        step=42,
        weights="ema",
        config={"model": {"backbone": "resnet18", "levels": [4, 3, 2]}},
        world_size=1,
        train_images=120,
        val_images=30,
        train_positives={"Atelectasis": 7, "Edema": 0},
        known_labels=("Atelectasis", "Edema"),
        thresholds="F1-optimal on the validation set",
        init_from=None,
        val_metrics={"mAP": 0.5, "AUC": 0.75},
        val_per_class={"Atelectasis": {"AP": 0.5}},
        val_excluded=("Edema",),
    )
    base.update(changes)
    return TrainingProvenance(**base)  # type: ignore[arg-type]


def test_training_record_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    record = _record()
    path = tiny_checkpoint(tmp_path / "m", provenance=record.to_json())
    meta = read_checkpoint_meta(path)
    assert meta.training == record
    assert meta.train_positives == {"Atelectasis": 7, "Edema": 0}
    # save_checkpoint's own keys sit beside the record and do not disturb it
    assert "created" in meta.provenance and "code_version" in meta.provenance


def test_training_record_without_validation_writes_no_validation_keys() -> None:
    data = _record(val_metrics=None, val_per_class=None, val_excluded=None).to_json()
    assert not {"val_metrics", "val_per_class", "val_excluded"} & set(data)
    assert TrainingProvenance.from_json(json.loads(json.dumps(data))) == _record(
        val_metrics=None, val_per_class=None, val_excluded=None
    )


def test_checkpoints_not_made_by_the_trainer_have_no_training_record(tmp_path: Path) -> None:
    meta = read_checkpoint_meta(tiny_checkpoint(tmp_path / "m", provenance={"epochs": 0}))
    assert meta.training is None
    assert meta.train_positives is None


def test_train_positives_reads_the_legacy_key(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "old", provenance={"train_counts": {"Edema": "12"}})
    assert read_checkpoint_meta(path).train_positives == {"Edema": 12}


def test_malformed_train_positives_read_as_unrecorded(tmp_path: Path) -> None:
    path = tiny_checkpoint(tmp_path / "bad", provenance={"train_positives": {"Edema": "many"}})
    assert read_checkpoint_meta(path).train_positives is None
    update_checkpoint_meta(path, provenance={"train_positives": [1, 2]})
    assert read_checkpoint_meta(path).train_positives is None


def test_describe_a_single_checkpoint(tmp_path: Path) -> None:
    path = tiny_checkpoint(
        tmp_path / "solo",
        levels=(4, 2),
        aggregation="concat",
        size=96,
        untrained=True,
        provenance={"train_positives": {"Edema": 5}},
        thresholds=[0.25] * len(LABELS),
    )
    model = describe(load_model(path))
    assert model.name == "solo"
    assert model.labels == LABELS
    assert model.thresholds == (0.25,) * len(LABELS)
    assert model.untrained is True
    assert model.disclaimer == "Research software, not for clinical use."
    assert model.train_positives == {"Edema": 5}
    (member,) = model.members
    assert (member.backbone, member.levels, member.aggregation, member.input_size) == (
        "resnet18",
        (4, 2),
        "concat",
        96,
    )
    assert model.summary() == "solo [solo (resnet18 levels 4+2)]"


def test_describe_an_ensemble_takes_positives_from_the_first_member_that_has_them(
    tmp_path: Path,
) -> None:
    tiny_checkpoint(tmp_path / "a", seed=0, provenance={"epochs": 1})
    tiny_checkpoint(tmp_path / "b", seed=1, levels=(4,), provenance={"train_counts": {"Mass": 3}})
    write_ensemble(tmp_path, ["a.json", "b.json"], name="pair", member_names=["first", "second"])
    ensemble = load_model(tmp_path)
    model = ensemble.describe()
    assert model == describe(ensemble)
    assert [m.name for m in model.members] == ["first", "second"]
    assert model.members[1].levels == (4,)
    assert model.train_positives == {"Mass": 3}
    assert model.summary() == ("pair [first (resnet18 levels 4+3+2), second (resnet18 levels 4)]")
    identity = ensemble.identity()
    assert identity == model.identity()
    assert identity["members"][1] == {
        "name": "second",
        "checkpoint": "b.json",
        "backbone": "resnet18",
        "levels": [4],
        "aggregation": "sum",
        "input_size": 64,
        "weights_sha256": ensemble.members[1].meta.weights_sha256,
        "untrained": False,
    }


class _Probe(nn.Module):
    """Not an FPSM: a small head on a trunk called ``backbone``."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)


def test_backbone_weights_load_into_any_module_with_a_backbone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = _Probe()
    buffer = io.BytesIO()
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.backbone.state_dict().items()}}, buffer
    )
    (tmp_path / "trunk.pth").write_bytes(buffer.getvalue())
    torch.manual_seed(1)
    target = _Probe()
    assert not torch.equal(target.backbone[0].weight, source.backbone[0].weight)
    assert load_backbone_weights(target, tmp_path / "trunk.pth") == []
    assert torch.equal(target.backbone[0].weight, source.backbone[0].weight)
    assert set(import_state_dict(tmp_path / "trunk.pth")) == {
        f"module.{k}" for k in source.backbone.state_dict()
    }


def test_backbone_weights_that_fit_nothing_name_the_file(tmp_path: Path) -> None:
    torch.save({"other.weight": torch.zeros(2, 2)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"foreign\.pth has no tensors that fit"):
        load_backbone_weights(_Probe(), tmp_path / "foreign.pth")
