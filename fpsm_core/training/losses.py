"""Multi-label losses for FPSM training: each pyramid level's own loss, summed, as the paper trains.

Kept apart from the architecture (as timm keeps ``timm/loss/``): the model says what it computes,
the trainer says what it minimises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F


def per_level_loss(
    level_logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    loss: Literal["bce", "asl"] = "bce",
    **loss_kwargs: float,
) -> torch.Tensor:
    """Sum of each level's own multi-label loss, as the paper trains FPSM.

    Args:
        level_logits: per-level logits from :meth:`FPSM.forward_levels`.
        targets: (B, C) float 0/1 (soft labels allowed).
        loss: ``"bce"`` or ``"asl"`` (asymmetric loss; ``gamma_neg``, ``gamma_pos``, ``clip``).
    """
    if loss == "bce":
        fn = lambda z: F.binary_cross_entropy_with_logits(z.float(), targets.float())  # noqa: E731
    elif loss == "asl":
        fn = lambda z: asymmetric_loss(z, targets, **loss_kwargs)  # noqa: E731
    else:
        raise ValueError(f"loss must be 'bce' or 'asl', not {loss!r}.")
    return torch.stack([fn(z) for z in level_logits]).sum()


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 0.0,
    clip: float = 0.05,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., 2021), the loss TResNet's authors use for multi-label.

    Returns the mean over batch and classes, so it is on the same scale as BCE.
    """
    targets = targets.float()
    p = torch.sigmoid(logits.float())
    p_neg = (p - clip).clamp(min=0) if clip > 0 else p
    loss_pos = targets * torch.log(p.clamp(min=eps)) * (1 - p) ** gamma_pos
    loss_neg = (1 - targets) * torch.log((1 - p_neg).clamp(min=eps)) * p_neg**gamma_neg
    return -(loss_pos + loss_neg).mean()
