"""What a loaded model says about itself, described once for every screen and report.

The viewer's model panel, ``fpsm infer``'s banner, ``train/evaluate.py``'s reports and
``train/compare.py``'s tables all show the same facts: the model's name, each member's backbone,
levels, aggregation and input size, the labels and thresholds, whether it is untrained, its
disclaimer and how many positive images each label had in training. :func:`describe` gathers them
from an :class:`~fpsm_core.model.ensemble.Ensemble` into a frozen :class:`ModelDescription`
(no tensors, safe to hand to another thread); the result's ``identity()`` is built from it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fpsm_core.model.checkpoint import LoadedCheckpoint


class _Describable(Protocol):
    """What :func:`describe` reads: the fields of an ``Ensemble`` (kept structural, so that the
    ensemble module can build its identity from this one without an import cycle)."""

    @property
    def name(self) -> str: ...
    @property
    def members(self) -> tuple[LoadedCheckpoint, ...]: ...
    @property
    def member_names(self) -> tuple[str, ...]: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def thresholds(self) -> tuple[float, ...]: ...
    @property
    def untrained(self) -> bool: ...
    @property
    def disclaimer(self) -> str: ...
    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class MemberDescription:
    """One member checkpoint of a model.

    Attributes:
        name: the member's short name in the ensemble.
        checkpoint: its JSON file name.
        backbone: the timm backbone name.
        levels: pyramid levels in output order (paper numbering, 1..4).
        aggregation: ``"sum"`` or ``"concat"``.
        input_size: side of the square model input in pixels.
        untrained: the member's weights are random.
        weights_sha256: hash of the member's weights file.
    """

    name: str
    checkpoint: str
    backbone: str
    levels: tuple[int, ...]
    aggregation: str
    input_size: int
    untrained: bool
    weights_sha256: str

    def summary(self) -> str:
        """``name (backbone levels 4+3+2)``, as the banner and the viewer show a member."""
        return f"{self.name} ({self.backbone} levels {'+'.join(map(str, self.levels))})"


@dataclass(frozen=True)
class ModelDescription:
    """A model (an ensemble, or one checkpoint as an ensemble of one) as the user sees it.

    Attributes:
        name: shown in the UI and in every output.
        path: the directory or checkpoint it came from.
        members: one description per member, in ``ensemble.json`` order.
        labels: the label list of the mean probabilities.
        thresholds: per-class thresholds of the mean probability.
        untrained: true when any member is untrained; outputs must say so.
        disclaimer: the text every output carries.
        train_positives: label -> positive training images, from the first member whose
            checkpoint records them; None when none does.
    """

    name: str
    path: Path
    members: tuple[MemberDescription, ...]
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    untrained: bool
    disclaimer: str
    train_positives: Mapping[str, int] | None

    def summary(self) -> str:
        """``name [member (backbone levels ...), ...]``, the one-line name of the model."""
        return f"{self.name} [{', '.join(m.summary() for m in self.members)}]"

    def identity(self) -> dict[str, Any]:
        """What a result records about the model that made it (JSON-ready)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "untrained": self.untrained,
            "disclaimer": self.disclaimer,
            "members": [
                {
                    "name": m.name,
                    "checkpoint": m.checkpoint,
                    "backbone": m.backbone,
                    "levels": list(m.levels),
                    "aggregation": m.aggregation,
                    "input_size": m.input_size,
                    "weights_sha256": m.weights_sha256,
                    "untrained": m.untrained,
                }
                for m in self.members
            ],
        }


def describe(ensemble: _Describable) -> ModelDescription:
    """The description of a loaded model (see the module docstring)."""
    members = tuple(
        _describe_member(name, member)
        for name, member in zip(ensemble.member_names, ensemble.members, strict=True)
    )
    return ModelDescription(
        name=str(ensemble.name),
        path=Path(ensemble.path),
        members=members,
        labels=tuple(ensemble.labels),
        thresholds=tuple(float(t) for t in ensemble.thresholds),
        untrained=bool(ensemble.untrained),
        disclaimer=str(ensemble.disclaimer or ""),
        train_positives=_first_train_positives(ensemble.members),
    )


def _describe_member(name: str, member: LoadedCheckpoint) -> MemberDescription:
    return MemberDescription(
        name=name,
        checkpoint=member.json_path.name,
        backbone=str(member.meta.architecture.get("backbone")),
        levels=tuple(int(level) for level in member.model.levels),
        aggregation=str(member.model.aggregation),
        input_size=int(member.meta.preprocessing.input_size),
        untrained=bool(member.meta.untrained),
        weights_sha256=member.meta.weights_sha256,
    )


def _first_train_positives(members: Sequence[LoadedCheckpoint]) -> Mapping[str, int] | None:
    for member in members:
        counts = member.meta.train_positives
        if counts:
            return counts
    return None
