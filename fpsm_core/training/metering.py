"""Step metering for the trainer: how many batches and optimizer steps a run takes, and what an
epoch measured (losses, images seen, time spent waiting for data, unreadable files).

The learning rate is a pure function of the optimizer step (:func:`fpsm_core.training.optim.lr_factor`),
so the plan is computed once from the data size and is the same on resume.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpsm_core.data.records import DatasetError
from fpsm_core.training.distributed import DistInfo, gather_objects, mean_scalar, sum_scalar


@dataclass(frozen=True)
class StepPlan:
    """Batches and optimizer steps of a run (per rank).

    Attributes:
        batches_per_epoch: micro-batches each rank sees per epoch.
        steps_per_epoch: optimizer steps per epoch (one per ``accumulate`` micro-batches, and one
            for a shorter last group).
        total_steps, warmup_steps: what the learning-rate schedule spans.
        drop_last: a short last batch is dropped (only when a rank has a full batch at all).
    """

    batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    drop_last: bool


def plan_steps(
    samples_per_rank: int, batch_size: int, accumulate: int, epochs: int, warmup_epochs: float
) -> StepPlan:
    """The run's :class:`StepPlan`."""
    drop_last = samples_per_rank >= batch_size
    batches = (
        samples_per_rank // batch_size if drop_last else math.ceil(samples_per_rank / batch_size)
    )
    batches_per_epoch = max(1, batches)
    steps_per_epoch = math.ceil(batches_per_epoch / accumulate)
    return StepPlan(
        batches_per_epoch=batches_per_epoch,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * epochs,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        drop_last=drop_last,
    )


@dataclass(frozen=True)
class EpochStats:
    """One finished epoch, summed or averaged over ranks."""

    train_loss: float
    level_losses: list[float]
    images: int
    time_s: float
    data_wait: float
    unreadable: list[str]


class EpochMeter:
    """Accumulates one epoch on one rank: call :meth:`batch_arrived` when a batch comes out of the
    loader, :meth:`add` with what its pass measured and :meth:`batch_done` before asking for the
    next, so that the time between the two is the time spent waiting for data."""

    def __init__(self, levels: int) -> None:
        self.losses: list[float] = []
        self.level_losses = np.zeros(levels)
        self.seen = 0
        self.errors: list[str] = []
        self.wait_s = 0.0
        self.started = time.perf_counter()
        self._ready = self.started

    def batch_arrived(self) -> None:
        self.wait_s += time.perf_counter() - self._ready

    def batch_done(self) -> None:
        self._ready = time.perf_counter()

    def add(self, loss: float, per_level: np.ndarray, images: int, errors: Sequence[str]) -> None:
        """One micro-batch: its loss (NaN when it had too few readable images) and its errors."""
        self.errors.extend(e for e in errors if e)
        self.seen += images
        if not math.isnan(loss):
            self.losses.append(loss)
            self.level_losses += per_level

    def recent_loss(self, n: int = 50) -> float:
        """Mean loss of the last ``n`` micro-batches (NaN before the first)."""
        return float(np.mean(self.losses[-n:])) if self.losses else float("nan")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def finish(self, info: DistInfo, source: str, ran: bool, elapsed: float) -> EpochStats:
        """The epoch over all ranks (collective: every rank calls it, in the same order).

        Raises:
            DatasetError: the epoch ran batches but no rank could read a single image.
        """
        total_seen = int(sum_scalar(info, self.seen))
        if total_seen == 0 and ran:
            first = self.errors[0] if self.errors else "no readable image"
            raise DatasetError(f"no training image of {source} could be read (first: {first}).")
        return EpochStats(
            train_loss=mean_scalar(
                info, float(np.mean(self.losses)) if self.losses else float("nan")
            ),
            level_losses=(self.level_losses / max(1, len(self.losses))).tolist(),
            images=total_seen,
            time_s=elapsed,
            data_wait=self.wait_s / max(elapsed, 1e-9),
            unreadable=[e for part in gather_objects(info, self.errors) for e in part],
        )


def epoch_record(
    epoch: int, step: int, levels: Sequence[int], stats: EpochStats, lr: float
) -> dict[str, Any]:
    """The epoch's row of ``metrics.jsonl``/``metrics.csv`` before validation is added."""
    return {
        "type": "epoch",
        "epoch": epoch,
        "step": step,
        "train_loss": stats.train_loss,
        **{f"loss_level{lv}": float(v) for lv, v in zip(levels, stats.level_losses, strict=True)},
        "lr": lr,
        "epoch_time_s": round(stats.time_s, 2),
        "train_images_seen": stats.images,
        "train_images_per_s": round(stats.images / max(stats.time_s, 1e-9), 2),
        "data_wait_fraction": round(stats.data_wait, 3),
        "unreadable_images": len(stats.unreadable),
    }


def epoch_line(record: Mapping[str, Any], epochs: int) -> str:
    """The progress line printed after each epoch."""
    line = (
        f"epoch {record['epoch']}/{epochs}  loss {record['train_loss']:.4f}  "
        f"{record['train_images_per_s']:.1f} img/s  time {record['epoch_time_s']:.1f} s "
        f"(data wait {100 * record['data_wait_fraction']:.0f}%)"
    )
    if "val_mAP" in record:
        line += (
            f"  val mAP {100 * record['val_mAP']:.2f} AUC {100 * record['val_AUC']:.2f} "
            f"F1 {100 * record['val_F1']:.2f}{' *' if record.get('best') else ''}"
        )
    return line
