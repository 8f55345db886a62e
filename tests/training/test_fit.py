"""The trainer on CPU: learning, checkpoints, exact resume, fine-tuning and unreadable files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fpsm_core.data import RadiographDataset, normalise_batch, read_cxrlt
from fpsm_core.labels import LABEL_INDEX, NUM_CLASSES
from fpsm_core.model import load_checkpoint
from fpsm_core.training import ResumeError, config_from_dict, fit
from fpsm_core.training.losses import per_level_loss
from fpsm_core.training.optim import build_optimizer, lr_factor
from fpsm_core.training.setup import build_model
from tests.training.helpers import make_dataset, tiny_config


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), n=32, broken=1)


def test_two_steps_lower_the_loss(data_csv: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_config(data_csv, tmp_path, **{"optim.lr": 1e-3}))
    torch.manual_seed(0)
    model, _ = build_model(config, NUM_CLASSES)
    records = read_cxrlt(data_csv)
    ds = RadiographDataset(records, 64)
    batch = [ds[i] for i in range(1, 9)]
    x = normalise_batch(torch.stack([b["image"] for b in batch]), (0.5,), (0.25,), 3)
    y = torch.stack([b["target"] for b in batch])
    optimizer = build_optimizer(model, config.optim)
    model.train()
    losses = []
    for _ in range(3):
        loss = per_level_loss(model.forward_levels(x), y, loss="bce")
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[1] < losses[0] and losses[2] < losses[1]


def test_fit_writes_a_checkpoint_with_thresholds_and_metrics(
    data_csv: Path, tmp_path: Path
) -> None:
    config = config_from_dict(tiny_config(data_csv, tmp_path / "run", **{"optim.epochs": 2}))
    lines: list[str] = []
    result = fit(config, log=lines.append)
    assert not result.interrupted and result.epochs_done == 2
    assert result.checkpoint == tmp_path / "run" / "tiny.json"
    loaded = load_checkpoint(result.checkpoint)
    meta = loaded.meta
    assert meta.architecture["levels"] == [4, 3, 2]
    assert meta.preprocessing.input_size == 64
    assert not meta.untrained
    tuned = meta.thresholds[LABEL_INDEX["Cardiomegaly"]]
    assert tuned != 0.5 and 0 < tuned < 1  # F1-optimal on validation
    prov = meta.provenance
    assert prov["config"]["model"]["backbone"] == "resnet18"
    assert 0 <= prov["val_metrics"]["mAP"] <= 1
    assert prov["train_positives"]["Cardiomegaly"] > 0
    assert prov["epoch"] == result.best_epoch
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("type,epoch,step,train_loss,loss_level4,loss_level3,loss_level2")
    assert len(rows) == 3
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]
    # the corrupt PNG is skipped and reported once per epoch, not fatal
    assert all(r["unreadable_images"] == 1 for r in result.history)
    assert any("could not be read" in line for line in lines)
    assert any(line.startswith("epoch 2/2") and "time" in line for line in lines)
    assert (tmp_path / "run" / "tiny_last.json").is_file()
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_resume_after_interruption_reproduces_the_uninterrupted_run(
    data_csv: Path, tmp_path: Path
) -> None:
    knobs = {
        "optim.epochs": 2,
        "optim.ema": True,
        "model.drop_rate": 0.3,
        "data.class_balanced": True,
        "optim.warmup_epochs": 0.5,
    }
    straight = config_from_dict(tiny_config(data_csv, tmp_path / "a", **knobs))
    ra = fit(straight, log=None)
    # the interrupted run also uses a loader worker: augmentation must not depend on workers
    broken = config_from_dict(
        tiny_config(data_csv, tmp_path / "b", **knobs, **{"data.num_workers": 1})
    )
    stop_at = 2  # mid-way through the first epoch (3 steps per epoch)
    rb = fit(broken, step_callback=lambda step: step == stop_at, log=None)
    assert rb.interrupted and rb.steps == stop_at and rb.last_checkpoint is None
    state = json.loads((tmp_path / "b" / "train_state.json").read_text())
    assert state["step"] == stop_at and state["batches_in_epoch"] == stop_at
    rc = fit(broken, resume=True, log=None)
    assert not rc.interrupted and rc.steps == ra.steps
    a = load_file(str(tmp_path / "a" / "tiny_last.safetensors"))
    c = load_file(str(tmp_path / "b" / "tiny_last.safetensors"))
    assert a.keys() == c.keys()
    for key in a:
        assert torch.equal(a[key], c[key]), key
    sa = load_file(str(next((tmp_path / "a").glob("train_state-*.safetensors"))))
    sc = load_file(str(next((tmp_path / "b").glob("train_state-*.safetensors"))))
    for key in sa:
        if key.startswith(("model.", "ema.", "optim.")):
            assert torch.equal(sa[key], sc[key]), key
    assert ra.history[-1]["val_mAP"] == rc.history[-1]["val_mAP"]
    last_a = json.loads((tmp_path / "a" / "tiny_last.json").read_text())
    last_c = json.loads((tmp_path / "b" / "tiny_last.json").read_text())
    assert last_a["thresholds"] == last_c["thresholds"]


def test_resume_refuses_a_different_run(data_csv: Path, tmp_path: Path) -> None:
    config = config_from_dict(tiny_config(data_csv, tmp_path, **{"optim.epochs": 1}))
    with pytest.raises(ResumeError, match="no run to resume"):
        fit(config, resume=True, log=None)
    fit(config, log=None)
    other = config.replace({"optim.batch_size": 4})
    with pytest.raises(ResumeError, match="optim.batch_size was 8, now 4"):
        fit(other, resume=True, log=None)


def test_init_from_fine_tunes_an_existing_checkpoint(data_csv: Path, tmp_path: Path) -> None:
    first = fit(
        config_from_dict(tiny_config(data_csv, tmp_path / "a", **{"optim.epochs": 1})), log=None
    )
    source = load_checkpoint(first.checkpoint).model.state_dict()
    tuned = config_from_dict(
        tiny_config(
            data_csv,
            tmp_path / "b",
            **{"model.init_from": str(first.checkpoint), "model.synthetic_embedding": True},
        )
    )
    model, notes = build_model(tuned, NUM_CLASSES)
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in source.items())
    assert "fresh: synthetic.0.weight" in notes[0]
    wrong = tuned.replace({"model.backbone": "mobilenetv3_small_050"})
    with pytest.raises(Exception, match="no backbone tensors that fit"):
        build_model(wrong, NUM_CLASSES)


def test_schedules_warm_up_and_decay() -> None:
    config = config_from_dict({"optim": {"schedule": "cosine", "min_lr_ratio": 0.1}})
    values = [lr_factor(s, 100, 10, config.optim) for s in range(101)]
    assert values[0] == pytest.approx(0.01) and values[10] == pytest.approx(1.0)
    assert values[100] == pytest.approx(0.1)
    assert all(b <= a + 1e-12 for a, b in zip(values[10:], values[11:], strict=False))
    one = config.replace({"optim.schedule": "onecycle"}).optim
    ones = [lr_factor(s, 100, 0, one) for s in range(101)]
    assert ones[0] == pytest.approx(1 / 25) and max(ones) == pytest.approx(1.0)
    assert ones[100] == pytest.approx(1 / 25_000)
