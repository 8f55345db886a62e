"""The Feature Pyramid Sum Model (FPSM) of Kim et al. on any timm backbone.

A backbone built with ``features_only=True`` yields a pyramid of feature maps. For each chosen level
the map is global-average-pooled to a vector and fed to a linear classifier; the levels' logits are
summed (``aggregation="sum"``, the paper's model) or the pooled vectors are concatenated before a
single linear layer (``aggregation="concat"``). Levels are numbered as in the paper: 1st..4th are the
feature maps at strides 4, 8, 16 and 32, whatever the backbone calls them.

Because every head is ``pool -> linear`` with nothing in between, each level's logit is linear in its
own feature map; :mod:`fpsm_core.explain` relies on this for exact Grad-CAM without a backward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

# isort: off
from fpsm_core.model.timm_import import timm  # first: timm without torch._dynamo (~160 MiB)
from timm.models import FeatureInfo, FeatureListNet

# isort: on
from fpsm_core.errors import FpsmError
from fpsm_core.labels import NUM_CLASSES
from fpsm_core.model.validate import ensure_offline_plain_backbone
from fpsm_core.model.weights import load_backbone_weights

Aggregation = Literal["sum", "concat"]
LEVEL_STRIDES: dict[int, int] = {1: 4, 2: 8, 3: 16, 4: 32}


class ModelConfigError(FpsmError):
    """A model configuration that cannot be built (unknown backbone, bad levels...)."""


@dataclass(frozen=True)
class FPSMOutput:
    """Everything one forward pass yields.

    Attributes:
        logits: summed logits, (B, C).
        level_logits: one (B, C) tensor per entry of ``model.levels``; they sum to ``logits``.
        features: the level feature maps, (B, K_l, H_l, W_l), same order.
    """

    logits: torch.Tensor
    level_logits: list[torch.Tensor]
    features: list[torch.Tensor]


class FPSM(nn.Module):
    """Feature Pyramid Sum Model.

    Args:
        backbone: timm model name; it must support ``features_only``.
        levels: paper level numbers (1..4), any non-empty subset, in the order the outputs use.
        aggregation: ``"sum"`` (a linear head per level, logits summed) or ``"concat"``.
        num_classes: number of output classes.
        synthetic_embedding: add a learned "this image is synthetic" vector to each pooled feature.
        in_chans: input channels (3 replicates the grey image, which keeps ImageNet weights usable).
        drop_rate: dropout on pooled features during training.
    """

    def __init__(
        self,
        backbone: str = "tresnet_m",
        levels: Sequence[int] = (4, 3, 2),
        aggregation: Aggregation = "sum",
        num_classes: int = NUM_CLASSES,
        synthetic_embedding: bool = False,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        levels = tuple(int(level) for level in levels)
        if not levels:
            raise ModelConfigError("levels must name at least one pyramid level (1..4).")
        if len(set(levels)) != len(levels):
            raise ModelConfigError(f"levels {levels} repeat a level.")
        bad = [level for level in levels if level not in LEVEL_STRIDES]
        if bad:
            raise ModelConfigError(
                f"levels {bad} are not pyramid levels; use 1..4 (strides 4, 8, 16, 32)."
            )
        if aggregation not in ("sum", "concat"):
            raise ModelConfigError(f"aggregation must be 'sum' or 'concat', not {aggregation!r}.")
        if num_classes < 1:
            raise ModelConfigError("num_classes must be at least 1.")

        # One build with every stage timm offers; its feature_info says each stage's stride and
        # channels. The deepest stage at each stride is that stride's level.
        self.backbone = _create_backbone(backbone, in_chans=in_chans)
        info = _feature_info(self.backbone, backbone)
        by_stride: dict[int, int] = {}
        for index in info.out_indices:
            by_stride[int(info.reduction(index))] = int(index)
        out_indices = []
        for level in levels:
            stride = LEVEL_STRIDES[level]
            if stride not in by_stride:
                raise ModelConfigError(
                    f"backbone {backbone!r} has no feature map at stride {stride} (level {level}); "
                    f"its strides are {sorted(by_stride)}."
                )
            out_indices.append(by_stride[stride])
        channels = [int(info.channels(index)) for index in out_indices]
        _keep_stages(self.backbone, sorted(out_indices))
        # timm returns features in ascending index order; remember where each level's map is.
        returned = list(_feature_info(self.backbone, backbone).out_indices)
        self._order = [returned.index(i) for i in out_indices]

        self.backbone_name = backbone
        self.levels: tuple[int, ...] = levels
        self.aggregation: Aggregation = aggregation
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.level_channels: tuple[int, ...] = tuple(channels)
        # One identity per level: its output *is* the level's feature map, whatever the backbone's
        # module names are. These are the Grad-CAM target layers.
        self.level_taps = nn.ModuleList(nn.Identity() for _ in levels)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.synthetic = (
            nn.ModuleList(nn.Embedding(2, ch) for ch in self.level_channels)
            if synthetic_embedding
            else None
        )
        if synthetic_embedding:
            for emb in self.synthetic:  # type: ignore[union-attr]
                assert isinstance(emb, nn.Embedding)
                nn.init.zeros_(emb.weight)
        if aggregation == "sum":
            self.heads = nn.ModuleList(nn.Linear(ch, num_classes) for ch in self.level_channels)
        else:
            self.heads = nn.ModuleList([nn.Linear(sum(self.level_channels), num_classes)])

    @property
    def level_modules(self) -> list[nn.Module]:
        """The modules whose outputs are the level feature maps, in ``levels`` order."""
        return list(self.level_taps)

    @property
    def uses_synthetic_embedding(self) -> bool:
        return self.synthetic is not None

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Level feature maps in ``levels`` order."""
        feats = self.backbone(x)
        return [tap(feats[i]) for tap, i in zip(self.level_taps, self._order, strict=True)]

    def head_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each level's own linear map, as (weight (C, K_l), bias (C,)).

        In concat mode the single head is split by columns and its bias shared equally, so that the
        level logits still add up to the model's output.
        """
        if self.aggregation == "sum":
            return [(head.weight, head.bias) for head in self.heads]  # type: ignore[misc]
        head = self.heads[0]
        assert isinstance(head, nn.Linear)
        weights = torch.split(head.weight, list(self.level_channels), dim=1)
        share = head.bias / len(self.levels)
        return [(w, share) for w in weights]

    def forward_head(
        self, features: list[torch.Tensor], synthetic: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level logits from level feature maps."""
        pooled = [f.mean(dim=(2, 3)) for f in features]
        if self.synthetic is not None:
            flag = (
                torch.zeros(pooled[0].shape[0], dtype=torch.long, device=pooled[0].device)
                if synthetic is None
                else synthetic.to(device=pooled[0].device, dtype=torch.long).reshape(-1)
            )
            pooled = [
                p + emb(flag).to(p.dtype) for p, emb in zip(pooled, self.synthetic, strict=True)
            ]
        pooled = [self.drop(p) for p in pooled]
        return [
            F.linear(p, w.to(p.dtype), b.to(p.dtype))
            for p, (w, b) in zip(pooled, self.head_weights(), strict=True)
        ]

    def forward_all(self, x: torch.Tensor, synthetic: torch.Tensor | None = None) -> FPSMOutput:
        """One pass returning summed logits, per-level logits and the level feature maps."""
        features = self.forward_features(x)
        level_logits = self.forward_head(features, synthetic)
        logits = torch.stack(level_logits, dim=0).sum(dim=0)
        return FPSMOutput(logits=logits, level_logits=level_logits, features=features)

    def forward_levels(
        self, x: torch.Tensor, synthetic: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Per-level logits (B, C), one per entry of ``levels``, summing to :meth:`forward`."""
        return self.forward_head(self.forward_features(x), synthetic)

    def forward(self, x: torch.Tensor, synthetic: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, synthetic).logits

    def config(self) -> dict[str, Any]:
        """The arguments that rebuild this architecture."""
        return {
            "backbone": self.backbone_name,
            "levels": list(self.levels),
            "aggregation": self.aggregation,
            "num_classes": self.num_classes,
            "synthetic_embedding": self.uses_synthetic_embedding,
            "in_chans": self.in_chans,
        }


def _create_backbone(name: str, in_chans: int) -> nn.Module:
    if why := ensure_offline_plain_backbone(name):  # hardening: no hub, no local-dir
        raise ModelConfigError(why)
    kwargs: dict[str, Any] = {"features_only": True, "pretrained": False, "in_chans": in_chans}
    try:
        return timm.create_model(name, **kwargs)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ModelConfigError(f"timm has no backbone {name!r}: {exc}") from None
    except (TypeError, AssertionError, NotImplementedError) as exc:
        raise ModelConfigError(f"backbone {name!r} does not support features_only: {exc}") from None


def _feature_info(backbone: nn.Module, name: str) -> FeatureInfo:
    info = getattr(backbone, "feature_info", None)
    if not isinstance(info, FeatureInfo):
        raise ModelConfigError(f"backbone {name!r} does not describe its feature pyramid.")
    return info


def _keep_stages(backbone: nn.Module, indices: Sequence[int]) -> None:
    """Return only the chosen stages and drop the modules past the deepest one.

    This is what timm's ``out_indices`` builds, obtained from the one build: the weights file and
    the compute of a model that stops at a shallower stage stay as they were. timm's own feature
    classes other than ``FeatureListNet`` (e.g. MobileNetV3's) run every stage whatever the
    indices, so they keep all modules and only the returned maps are chosen by ``_order``.
    """
    if not isinstance(backbone, FeatureListNet):
        return
    info = _feature_info(backbone, "")
    # FeatureListNet names a module as its dotted path with "_" (flatten_sequential).
    keep = {str(info.module_name(i)).replace(".", "_"): str(i) for i in indices}
    names = list(backbone.keys())
    if not set(keep) <= set(names):
        return
    last = max(names.index(n) for n in keep)
    for name in names[last + 1 :]:
        del backbone[name]
    backbone.return_layers = keep
    backbone.feature_info = info.from_other(tuple(indices))


def create_fpsm(
    backbone: str = "tresnet_m",
    levels: Sequence[int] = (4, 3, 2),
    aggregation: Aggregation = "sum",
    num_classes: int = NUM_CLASSES,
    synthetic_embedding: bool = False,
    in_chans: int = 3,
    drop_rate: float = 0.0,
    backbone_weights: str | Path | None = None,
) -> FPSM:
    """Build an FPSM; backbone weights come only from a local file, never from a hub.

    Args:
        backbone_weights: a ``.safetensors`` file or a plain state_dict ``.pth`` (read with
            ``torch.load(weights_only=True)``) of the timm backbone, e.g. ImageNet TResNet weights.
            Classifier weights in it are ignored.
    """
    model = FPSM(
        backbone=backbone,
        levels=levels,
        aggregation=aggregation,
        num_classes=num_classes,
        synthetic_embedding=synthetic_embedding,
        in_chans=in_chans,
        drop_rate=drop_rate,
    )
    if backbone_weights is not None:
        load_backbone_weights(model, backbone_weights)
    return model
