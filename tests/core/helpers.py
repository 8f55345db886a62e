"""Small builders shared by the core tests: tiny models and radiographs written to disk."""

from __future__ import annotations

from pathlib import Path

import torch

from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble
from tests.synthetic_dicom import chest_like, write_dicom

__all__ = ["chest_like", "tiny_checkpoint", "tiny_ensemble", "write_dicom"]


def tiny_checkpoint(
    path: Path,
    *,
    seed: int = 0,
    levels: tuple[int, ...] = (4, 3, 2),
    aggregation: str = "sum",
    size: int = 64,
    backbone: str = "resnet18",
    **kwargs: object,
) -> Path:
    torch.manual_seed(seed)
    model = create_fpsm(backbone, levels=levels, aggregation=aggregation)  # type: ignore[arg-type]
    return save_checkpoint(
        model,
        path,
        preprocessing=Preprocessing(input_size=size),
        **kwargs,  # type: ignore[arg-type]
    )


def tiny_ensemble(directory: Path, n: int = 2, size: int = 64) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    members = [
        tiny_checkpoint(directory / f"m{i}", seed=i, size=size, untrained=True) for i in range(n)
    ]
    write_ensemble(
        directory, [m.name for m in members], name="tiny", member_names=[f"m{i}" for i in range(n)]
    )
    return directory
