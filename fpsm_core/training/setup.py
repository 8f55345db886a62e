"""What a run is made of, built from its config: record sets, the model, the metrics log.

Kept apart from the training loop so that evaluation, ablation and HPO build data and models the
same way the trainer does.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpsm_core.data.records import DatasetError, RecordSet, concat_records, read_dataset
from fpsm_core.data.split import split_records
from fpsm_core.model.checkpoint import CheckpointError, load_checkpoint
from fpsm_core.model.fpsm import FPSM, ModelConfigError, create_fpsm
from fpsm_core.preprocess import Preprocessing
from fpsm_core.training.config import ConfigError, DataConfig, TrainConfig


@dataclass(frozen=True, eq=False)
class RunData:
    """The record sets of a run and what was noticed while reading them."""

    train: RecordSet
    val: RecordSet | None
    notes: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.train.labels

    @property
    def known(self) -> np.ndarray:
        known = self.train.known.copy()
        if self.val is not None:
            known &= self.val.known
        return known


def read_table(data: DataConfig, csv_path: str, image_root: str | None, fmt: str) -> RecordSet:
    """Read one label table as the data section describes."""
    return read_dataset(
        fmt,
        csv_path,
        image_root,
        check_files=data.check_files,
        path_column=data.path_column,
        label_columns=data.label_columns,
        patient_column=data.patient_column,
    )


def load_run_data(config: TrainConfig) -> RunData:
    """Training and validation records: read, split (by patient by default), extended, capped.

    Raises:
        ConfigError: no training table is configured.
        DatasetError: a table is unusable (the message names the file).
    """
    data = config.data
    if not data.train_csv:
        raise ConfigError("data.train_csv is not set; name the training label table.")
    notes: list[str] = []
    train = read_table(data, data.train_csv, data.image_root, data.format)
    _note_missing(train, notes)
    val: RecordSet | None = None
    if data.val_csv:
        val = read_table(data, data.val_csv, data.val_image_root or data.image_root, data.format)
        _note_missing(val, notes)
    elif data.val_fraction > 0:
        train, val = split_records(train, data.val_fraction, data.split, data.split_seed)
        notes.append(
            f"split {data.train_csv} by {data.split}: {len(train)} train / {len(val)} val images."
        )
    if data.extra_train_csv:
        extra = read_table(data, data.extra_train_csv, data.extra_image_root, data.extra_format)
        _note_missing(extra, notes)
        train = concat_records([train, extra])
        notes.append(f"added {len(extra)} images from {data.extra_train_csv} to training.")
    train = train.sample(data.max_train_images, seed=config.run.seed)
    if val is not None and not data.synthetic_in_val and val.synthetic.any():
        notes.append(f"left {int(val.synthetic.sum())} synthetic images out of validation.")
        val = val.subset(np.flatnonzero(~val.synthetic))
    if val is not None:
        val = val.sample(data.max_val_images, seed=config.run.seed)
        if val.labels != train.labels:
            raise DatasetError(
                f"{val.source} has labels different from {train.source}; they must match."
            )
    if len(train) == 0:
        raise DatasetError(f"{data.train_csv} leaves no training images.")
    return RunData(train=train, val=val, notes=tuple(notes))


def _note_missing(records: RecordSet, notes: list[str]) -> None:
    summary = records.missing_summary()
    if summary:
        notes.append(summary)


def preprocessing_of(config: TrainConfig) -> Preprocessing:
    i = config.input
    return Preprocessing(
        input_size=i.input_size,
        resize=i.resize,  # type: ignore[arg-type]
        mean=tuple(i.mean),
        std=tuple(i.std),
    )


def build_model(config: TrainConfig, num_classes: int) -> tuple[FPSM, list[str]]:
    """The configured FPSM, started from ``model.init_from`` when given.

    Returns:
        The model and notes about the initialisation (what was loaded, what was skipped).
    """
    m = config.model
    try:
        model = create_fpsm(
            m.backbone,
            levels=m.levels,
            aggregation=m.aggregation,  # type: ignore[arg-type]
            num_classes=num_classes,
            synthetic_embedding=m.synthetic_embedding,
            in_chans=m.in_chans,
            drop_rate=m.drop_rate,
            backbone_weights=m.backbone_weights,
        )
    except ModelConfigError as exc:
        raise ConfigError(f"model section: {exc}") from None
    except CheckpointError as exc:
        raise ConfigError(f"model.backbone_weights: {exc}") from None
    notes: list[str] = []
    if m.init_from:
        notes.append(init_from_checkpoint(model, m.init_from))
    return model, notes


def init_from_checkpoint(model: FPSM, path: str | Path) -> str:
    """Copy every tensor of an FPSM checkpoint whose name and shape fit; returns a summary."""
    try:
        source = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"model.init_from: {exc}") from None
    theirs = source.model.state_dict()
    ours = model.state_dict()
    taken = {k: v for k, v in theirs.items() if k in ours and ours[k].shape == v.shape}
    # a conv kernel must fit: BatchNorm step counters share names and shapes across backbones
    backbone_taken = sum(1 for k, v in taken.items() if k.startswith("backbone.") and v.ndim >= 2)
    if backbone_taken == 0:
        raise ConfigError(
            f"model.init_from: {path} has no backbone tensors that fit {model.backbone_name} "
            f"(it is a {source.meta.architecture.get('backbone')} model)."
        )
    model.load_state_dict({**ours, **taken})
    fresh = sorted(k for k in ours if k not in taken)
    detail = f"; fresh: {', '.join(fresh[:4])}{'...' if len(fresh) > 4 else ''}" if fresh else ""
    return f"initialised {len(taken)} of {len(ours)} tensors from {path}{detail}."


def known_thresholds(
    thresholds: np.ndarray, known: np.ndarray, default: float = 0.5
) -> list[float]:
    """Full-length thresholds: tuned ones for known classes, ``default`` elsewhere."""
    out = np.full(known.shape[0], default, dtype=np.float64)
    out[known] = thresholds
    return [float(t) for t in out]


def json_safe(value: Any) -> Any:
    """NaN/inf to None and numpy scalars to Python, recursively (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    return value


class MetricsLog:
    """``metrics.jsonl`` (every record) and ``metrics.csv`` (one row per epoch) in a run folder."""

    def __init__(self, out_dir: Path) -> None:
        self.jsonl = out_dir / "metrics.jsonl"
        self.csv = out_dir / "metrics.csv"

    def write(self, record: Mapping[str, Any]) -> None:
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(json_safe(record)) + "\n")

    def write_epochs(self, history: Sequence[Mapping[str, Any]]) -> None:
        columns: list[str] = []
        for row in history:
            for key, value in row.items():
                if key not in columns and not isinstance(value, (dict, list)):
                    columns.append(key)
        tmp = self.csv.with_suffix(".csv.tmp")
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in history:
                writer.writerow({k: _fmt(row.get(k)) for k in columns})
        tmp.replace(self.csv)


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
