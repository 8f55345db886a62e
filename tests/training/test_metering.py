"""The trainer's step plan and epoch meter, apart from the loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fpsm_core.data.records import DatasetError
from fpsm_core.training.distributed import DistInfo
from fpsm_core.training.metering import EpochMeter, epoch_line, epoch_record, plan_steps


def _single() -> DistInfo:
    import torch

    return DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))


def test_step_plan_drops_a_short_last_batch_and_counts_a_short_last_group() -> None:
    plan = plan_steps(10, batch_size=4, accumulate=3, epochs=2, warmup_epochs=0.5)
    assert (plan.batches_per_epoch, plan.drop_last) == (2, True)
    assert (plan.steps_per_epoch, plan.total_steps, plan.warmup_steps) == (1, 2, 0)
    plan = plan_steps(25, batch_size=4, accumulate=2, epochs=3, warmup_epochs=1.0)
    assert (plan.batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (6, 3, 9)
    assert plan.warmup_steps == 3


def test_step_plan_keeps_a_rank_with_less_than_a_batch() -> None:
    plan = plan_steps(3, batch_size=8, accumulate=1, epochs=1, warmup_epochs=0.0)
    assert (plan.batches_per_epoch, plan.drop_last) == (1, False)


def test_epoch_meter_leaves_unreadable_batches_out_of_the_loss() -> None:
    meter = EpochMeter(levels=2)
    meter.add(1.0, np.array([0.25, 0.75]), 4, ["", ""])
    meter.add(float("nan"), np.zeros(2), 0, ["a.png: unreadable", ""])
    meter.add(3.0, np.array([1.0, 2.0]), 4, [])
    assert meter.recent_loss(1) == 3.0
    stats = meter.finish(_single(), "train.csv", ran=True, elapsed=2.0)
    assert stats.train_loss == 2.0
    assert stats.level_losses == [0.625, 1.375]
    assert stats.images == 8
    assert stats.unreadable == ["a.png: unreadable"]
    record = epoch_record(1, 5, (4, 3), stats, lr=0.001)
    assert record["loss_level4"] == 0.625 and record["train_images_per_s"] == 4.0
    assert epoch_line(record, 3).startswith("epoch 1/3  loss 2.0000  4.0 img/s")


def test_an_epoch_without_one_readable_image_names_the_table() -> None:
    meter = EpochMeter(levels=1)
    meter.add(float("nan"), np.zeros(1), 0, ["x.dcm: not a DICOM file"])
    assert math.isnan(meter.recent_loss())
    with pytest.raises(DatasetError, match=r"no training image of train\.csv .*x\.dcm"):
        meter.finish(_single(), "train.csv", ran=True, elapsed=1.0)
