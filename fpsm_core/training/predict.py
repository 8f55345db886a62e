"""Batch prediction over a record set, with the exact inference preprocessing.

Used for validation during training, for ``train/evaluate.py`` and for mean ensembles (each member
with its own preprocessing, as the inference service does). Under DDP every
rank predicts a shard and the probabilities are reassembled in dataset order on every rank.
Images that cannot be read are marked invalid (and left out of the metrics by the callers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fpsm_core.data.dataset import EpochSampler, RadiographDataset, make_loader, normalise_batch
from fpsm_core.data.records import RecordSet
from fpsm_core.model.ensemble import Ensemble, mean_probabilities
from fpsm_core.preprocess import Preprocessing
from fpsm_core.training.distributed import DistInfo, gather_rows


@dataclass(frozen=True, eq=False)
class Predictions:
    """Probabilities of one model (or ensemble) on one record set.

    Attributes:
        probabilities: (N, C) float64 sigmoid outputs (zeros for unreadable images).
        valid: (N,) bool, False where the image could not be read.
        errors: one sentence per unreadable image.
    """

    probabilities: np.ndarray
    valid: np.ndarray
    errors: tuple[str, ...]


def autocast_dtype(
    device: torch.device, amp: bool, amp_dtype: str = "bfloat16"
) -> torch.dtype | None:
    """The autocast dtype for this device, or None for full precision (CPU, MPS, amp off)."""
    if not amp or device.type != "cuda":
        return None
    if amp_dtype == "bfloat16" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@torch.no_grad()
def predict_records(
    model: nn.Module,
    records: RecordSet,
    preprocessing: Preprocessing,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
    cache_dir: str | Path | None = None,
    amp: bool = True,
    info: DistInfo | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Sigmoid probabilities of ``model`` (an FPSM, in eval mode) for every record.

    Args:
        preprocessing: the model's checkpoint preprocessing (size, resize policy, mean/std).
        info: DDP placement; None for a single process.
        progress: ``progress(done, total)`` after each batch (this rank's counts).
    """
    device = torch.device(device)
    rank, world = (info.rank, info.world_size) if info else (0, 1)
    dataset = RadiographDataset(
        records, preprocessing.input_size, preprocessing.resize, cache_dir=cache_dir
    )
    sampler = EpochSampler(len(records), shuffle=False, rank=rank, world_size=world)
    loader = make_loader(
        dataset,
        batch_size,
        sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    in_chans = int(getattr(model, "in_chans", 3))
    dtype = autocast_dtype(device, amp)
    was_training = model.training
    model.eval()
    indices: list[torch.Tensor] = []
    rows: list[torch.Tensor] = []
    valid_rows: list[torch.Tensor] = []
    errors: list[str] = []
    done = 0
    try:
        for batch in loader:
            x = normalise_batch(
                batch["image"].to(device, non_blocking=True),
                preprocessing.mean,
                preprocessing.std,
                in_chans,
            )
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(
                device.type, dtype=dtype or torch.float32, enabled=dtype is not None
            ):
                logits = model(x, batch["synthetic"].to(device))
            probs = torch.sigmoid(logits.float()).cpu()
            valid = batch["valid"]
            probs[~valid] = 0.0
            indices.append(batch["index"])
            rows.append(probs)
            valid_rows.append(valid)
            errors.extend(e for e in batch["error"] if e)
            done += len(valid)
            if progress is not None:
                progress(done, len(sampler))
    finally:
        del loader
        model.train(was_training)
    n = len(records)
    num_classes = int(getattr(model, "num_classes", 1))
    idx = torch.cat(indices) if indices else torch.zeros(0, dtype=torch.int64)
    prob = torch.cat(rows) if rows else torch.zeros((0, num_classes))
    ok = torch.cat(valid_rows) if valid_rows else torch.zeros(0, dtype=torch.bool)
    all_probs = gather_rows(info, idx, prob.double(), n) if info else _place(idx, prob.double(), n)
    flags = ok.to(torch.uint8)
    all_valid = gather_rows(info, idx, flags, n) if info else _place(idx, flags, n)
    if info is not None and info.distributed:
        from fpsm_core.training.distributed import gather_objects

        errors = [e for part in gather_objects(info, errors) for e in part]
    return Predictions(
        probabilities=all_probs.numpy(),
        valid=all_valid.numpy().astype(bool),
        errors=tuple(dict.fromkeys(errors)),
    )


def _place(indices: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
    out[indices] = rows
    return out


def predict_ensemble(
    ensemble: Ensemble,
    records: RecordSet,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    num_workers: int = 0,
    cache_dir: str | Path | None = None,
    amp: bool = True,
) -> tuple[Predictions, list[Predictions]]:
    """The mean-probability ensemble and each member, every member with its own preprocessing.

    Returns:
        (ensemble predictions, member predictions in ensemble order). An image is valid for the
        ensemble only when every member could read it.
    """
    members = []
    for member in ensemble.members:
        model = member.model.to(device)
        members.append(
            predict_records(
                model,
                records,
                member.meta.preprocessing,
                device=device,
                batch_size=batch_size,
                num_workers=num_workers,
                cache_dir=cache_dir,
                amp=amp,
            )
        )
    valid = np.logical_and.reduce([m.valid for m in members])
    mean = mean_probabilities([m.probabilities for m in members])
    errors = tuple(dict.fromkeys(e for m in members for e in m.errors))
    return Predictions(probabilities=mean, valid=valid, errors=errors), members
