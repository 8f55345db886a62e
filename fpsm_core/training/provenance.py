"""The trainer's provenance record: what a checkpoint says about the run that made it.

Built from the run's config, data and position into the typed
:class:`~fpsm_core.model.provenance.TrainingProvenance`, which the checkpoint readers
(:attr:`CheckpointMeta.training`, :attr:`CheckpointMeta.train_positives`) share with this writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fpsm_core.model.checkpoint import sha256_file
from fpsm_core.model.provenance import TrainingProvenance
from fpsm_core.training.config import TrainConfig
from fpsm_core.training.setup import RunData

TRAINER = "fpsm_core.training.fit"
VAL_METRICS = ("mAP", "AUC", "F1", "recall", "precision", "n_samples")


def training_provenance(
    config: TrainConfig,
    data: RunData,
    *,
    kind: str,
    epoch: int,
    step: int,
    ema: bool,
    world_size: int,
    report: Mapping[str, Any] | None,
    tuned_thresholds: bool,
) -> TrainingProvenance:
    """The record for a checkpoint saved at ``epoch``/``step``.

    Args:
        kind: ``"best"`` (by validation mAP) or ``"last"``.
        ema: the weights saved are the EMA's.
        report: the validation report of these weights, None without validation.
        tuned_thresholds: the thresholds saved are F1-optimal on the validation set.
    """
    train = data.train
    return TrainingProvenance(
        trainer=TRAINER,
        kind=kind,
        epoch=epoch,
        step=step,
        weights="ema" if ema else "raw",
        config=config.to_dict(),
        world_size=world_size,
        train_images=len(train),
        val_images=len(data.val) if data.val is not None else 0,
        train_positives={
            label: int(n) for label, n in zip(data.labels, train.positives(), strict=True)
        },
        known_labels=tuple(lab for lab, k in zip(data.labels, data.known, strict=True) if k),
        thresholds="F1-optimal on the validation set" if tuned_thresholds else "default 0.5",
        init_from=init_from_provenance(config.model.init_from),
        val_metrics={k: report[k] for k in VAL_METRICS} if report is not None else None,
        val_per_class=report["per_class"] if report is not None else None,
        val_excluded=report["excluded"] if report is not None else None,
    )


def init_from_provenance(path: str | Path | None) -> dict[str, Any] | None:
    """The checkpoint a run started from and its weights' hash, None for a fresh start."""
    if not path:
        return None
    json_path = Path(path).with_suffix(".json") if Path(path).suffix != ".json" else Path(path)
    weights = json_path.with_suffix(".safetensors")
    return {
        "checkpoint": str(path),
        "weights_sha256": sha256_file(weights) if weights.is_file() else None,
    }
