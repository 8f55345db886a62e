"""What a checkpoint records about the training run that made it, as one typed record.

The trainer writes a :class:`TrainingProvenance` into the checkpoint's ``provenance``; readers go
through the same record (or through :attr:`CheckpointMeta.train_positives`, which uses
:func:`train_positives_of`), so writer and readers share one schema and one set of key names.
``provenance`` also carries keys that are not the trainer's (``code_version`` and ``created`` from
:func:`~fpsm_core.model.checkpoint.save_checkpoint`, ``thresholds`` rewritten by calibration,
``demo`` from the demo bundler); the record ignores them when reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

TRAIN_POSITIVES = "train_positives"
# Checkpoints made before the trainer named the record wrote it under this key; read, never written.
LEGACY_TRAIN_POSITIVES = "train_counts"
_OPTIONAL = ("val_metrics", "val_per_class", "val_excluded")


@dataclass(frozen=True)
class TrainingProvenance:
    """The trainer's part of a checkpoint's provenance.

    Attributes:
        trainer: the module that trained (``fpsm_core.training.fit``).
        kind: ``"best"`` (by validation mAP) or ``"last"``.
        epoch, step: epochs finished and optimizer steps taken when the weights were saved.
        weights: ``"ema"`` or ``"raw"``.
        config: the full training config (``TrainConfig.to_dict()``).
        world_size: processes that trained.
        train_images, val_images: sizes of the two record sets.
        train_positives: label -> positive training images (soft labels counted as the data set
            counts them); what the viewer's prevalence badges and the reports' tables show.
        known_labels: labels the training data annotate (the others were left out of the loss).
        thresholds: how the thresholds were chosen.
        init_from: the checkpoint the weights started from (path and hash), if any.
        val_metrics, val_per_class, val_excluded: the validation report, when there was one.
    """

    trainer: str
    kind: str
    epoch: int
    step: int
    weights: str
    config: Mapping[str, Any]
    world_size: int
    train_images: int
    val_images: int
    train_positives: Mapping[str, int]
    known_labels: Sequence[str]
    thresholds: str
    init_from: Mapping[str, Any] | None = None
    val_metrics: Mapping[str, Any] | None = None
    val_per_class: Mapping[str, Any] | None = None
    val_excluded: Sequence[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object written under ``provenance`` (the validation keys only when present)."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            if isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, (list, tuple)):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, provenance: Mapping[str, Any]) -> TrainingProvenance | None:
        """The record in a checkpoint's provenance; None when the trainer did not write one.

        Checkpoints from other tools (the placeholder maker, imports) have a provenance without
        the trainer's fields; they read as None rather than as an error.
        """
        if "trainer" not in provenance:
            return None
        try:
            return cls(
                trainer=str(provenance["trainer"]),
                kind=str(provenance.get("kind", "")),
                epoch=int(provenance.get("epoch", 0)),
                step=int(provenance.get("step", 0)),
                weights=str(provenance.get("weights", "")),
                config=dict(provenance.get("config") or {}),
                world_size=int(provenance.get("world_size", 1)),
                train_images=int(provenance.get("train_images", 0)),
                val_images=int(provenance.get("val_images", 0)),
                train_positives=train_positives_of(provenance) or {},
                known_labels=tuple(str(x) for x in provenance.get("known_labels", ())),
                thresholds=str(provenance.get("thresholds", "")),
                init_from=_mapping_or_none(provenance.get("init_from")),
                val_metrics=_mapping_or_none(provenance.get("val_metrics")),
                val_per_class=_mapping_or_none(provenance.get("val_per_class")),
                val_excluded=(
                    tuple(str(x) for x in provenance["val_excluded"])
                    if isinstance(provenance.get("val_excluded"), (list, tuple))
                    else None
                ),
            )
        except (TypeError, ValueError):
            return None


def train_positives_of(provenance: Mapping[str, Any]) -> dict[str, int] | None:
    """Positive training images per label; None when not recorded or not a label -> count map.

    The one reader of that record: ``train_positives`` as the trainer writes it, else the legacy
    ``train_counts``.
    """
    counts = provenance.get(TRAIN_POSITIVES) or provenance.get(LEGACY_TRAIN_POSITIVES)
    if not isinstance(counts, Mapping) or not counts:
        return None
    try:
        return {str(k): int(v) for k, v in counts.items()}
    except (TypeError, ValueError):
        return None


def _mapping_or_none(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None
