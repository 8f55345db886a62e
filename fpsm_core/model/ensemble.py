"""Mean ensembles of FPSM checkpoints, as the paper's challenge submission.

An ensemble is a directory with ``ensemble.json`` naming member checkpoints (paths relative to the
directory). Its output is the mean of the members' probabilities; each member keeps its own
preprocessing, levels and thresholds. A single checkpoint loads as an ensemble of one, so every
caller handles one kind of model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fpsm_core.model import validate
from fpsm_core.model.checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    read_checkpoint_meta,
)
from fpsm_core.model.description import ModelDescription, describe

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "fpsm-ensemble"


@dataclass(frozen=True)
class Ensemble:
    """Loaded members plus the ensemble's own description.

    Attributes:
        name: shown in the UI and in every output.
        members: loaded checkpoints, in ``ensemble.json`` order.
        member_names: a short name per member.
        labels: the common label list (members must agree).
        thresholds: per-class thresholds of the mean probability (the ensemble's own, else the
            mean of the members' thresholds).
        untrained: true when any member is untrained; outputs must say so.
        path: the directory or checkpoint it came from.
    """

    name: str
    members: tuple[LoadedCheckpoint, ...]
    member_names: tuple[str, ...]
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    untrained: bool
    path: Path
    description: str = ""
    disclaimer: str = ""
    info: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> ModelDescription:
        """The model as screens and reports show it (see :mod:`fpsm_core.model.description`)."""
        return describe(self)

    def identity(self) -> dict[str, Any]:
        """What a result records about the model that made it."""
        return describe(self).identity()

    def to(self, device: torch.device | str) -> Ensemble:
        for member in self.members:
            member.model.to(device)
        return self


def mean_probabilities(member_probs: Sequence[np.ndarray]) -> np.ndarray:
    """The paper's mean ensemble: arithmetic mean of member probabilities (not of logits)."""
    return np.mean(np.stack(member_probs, axis=0), axis=0)


def write_ensemble(
    directory: str | Path,
    members: Sequence[str | Path],
    *,
    name: str,
    member_names: Sequence[str] | None = None,
    description: str = "",
    thresholds: Sequence[float] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``ensemble.json`` for checkpoints that already lie in (or under) ``directory``."""
    directory = Path(directory)
    entries = []
    for i, member in enumerate(members):
        member_path = Path(member)
        if member_path.is_absolute():
            member_path = (
                member_path.relative_to(directory.resolve())
                if member_path.is_relative_to(directory.resolve())
                else member_path
            )
        meta = read_checkpoint_meta(directory / member_path)
        entries.append(
            {
                "checkpoint": str(member_path.with_suffix(".json")),
                "name": member_names[i] if member_names else meta.name,
            }
        )
    data: dict[str, Any] = {
        "format": ENSEMBLE_FORMAT,
        "format_version": 1,
        "name": name,
        "description": description,
        "combine": "mean_probability",
        "members": entries,
        **(dict(extra) if extra else {}),
    }
    if thresholds is not None:
        data["thresholds"] = [float(t) for t in thresholds]
    path = directory / ENSEMBLE_FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Ensemble:
    """Load an ensemble directory, an ``ensemble.json`` or a single checkpoint (an ensemble of one).

    An ensemble is for inference: members stored in float16 stay float16 in memory and compute in
    float32 (``keep_stored_dtype``), so it holds what its files hold and gives the same outputs.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ENSEMBLE_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{path.parent} has no {ENSEMBLE_FILE}; it is not an FPSM ensemble."
            )
    if path.name == ENSEMBLE_FILE or (path.suffix == ".json" and _is_ensemble_json(path)):
        return _load_ensemble_json(path, device)
    loaded = load_checkpoint(path, device=device, keep_stored_dtype=True)
    return Ensemble(
        name=loaded.meta.name,
        members=(loaded,),
        member_names=(loaded.meta.name,),
        labels=loaded.meta.labels,
        thresholds=loaded.meta.thresholds,
        untrained=loaded.meta.untrained,
        path=loaded.json_path,
        disclaimer=loaded.meta.disclaimer,
    )


def _is_ensemble_json(path: Path) -> bool:
    try:
        return validate.read_json_bounded(path).get("format") == ENSEMBLE_FORMAT  # type: ignore[no-any-return]
    except (CheckpointError, AttributeError):
        return False


def _load_ensemble_json(path: Path, device: str | torch.device) -> Ensemble:
    data = validate.read_json_bounded(path, "ensemble description")
    entries = validate.check_ensemble_json(data, path)
    members: list[LoadedCheckpoint] = []
    names: list[str] = []
    for rel, name in entries:
        member_file = validate.confined_file(path.parent, rel, path, "member")
        member = load_checkpoint(member_file, device=device, keep_stored_dtype=True)
        members.append(member)
        names.append(name if name is not None else member.meta.name)
    labels = members[0].meta.labels
    for member in members[1:]:
        if member.meta.labels != labels:
            raise CheckpointError(
                f"{path}: member {member.json_path.name} predicts different labels from "
                f"{members[0].json_path.name}; a mean ensemble needs the same label list."
            )
    if "thresholds" in data:
        thresholds = tuple(float(t) for t in data["thresholds"])
        if len(thresholds) != len(labels):
            raise CheckpointError(
                f"{path} has {len(thresholds)} thresholds for {len(labels)} labels."
            )
    else:
        thresholds = tuple(
            float(np.mean([m.meta.thresholds[i] for m in members])) for i in range(len(labels))
        )
    untrained = bool(data.get("untrained", False)) or any(m.meta.untrained for m in members)
    disclaimer = str(data.get("disclaimer", members[0].meta.disclaimer))
    return Ensemble(
        name=str(data.get("name", path.parent.name)),
        members=tuple(members),
        member_names=tuple(names),
        labels=labels,
        thresholds=thresholds,
        untrained=untrained,
        path=path.parent,
        description=str(data.get("description", "")),
        disclaimer=disclaimer,
        info={k: v for k, v in data.items() if k not in ("members", "thresholds")},
    )
