"""AdamW, the learning-rate schedules and the weight EMA used by the trainer.

The schedule is a pure function of the optimizer step, so resuming needs only the step number, and
the learning rate after a resume is exactly the one an uninterrupted run would have used. Biases and
normalisation weights get no weight decay (the usual AdamW practice for CNNs).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from fpsm_core.training.config import OptimConfig


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters, without decay on 1-D tensors (bias, norms)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=config.lr, betas=(config.betas[0], config.betas[1])
    )


def lr_factor(step: int, total_steps: int, warmup_steps: int, config: OptimConfig) -> float:
    """Multiplier of ``config.lr`` at optimizer step ``step`` (0-based).

    * ``cosine``: linear warm-up from 1% over ``warmup_steps``, then cosine down to
      ``min_lr_ratio``.
    * ``onecycle``: Smith's one-cycle shape: cosine rise from 1/25 over the first 30% (or the
      warm-up, when longer), cosine fall to 1/25 000.
    * ``constant``: warm-up, then 1.
    """
    total_steps = max(1, total_steps)
    step = min(max(step, 0), total_steps)
    if config.schedule == "onecycle":
        peak = max(warmup_steps, int(0.3 * total_steps), 1)
        start, end = 1.0 / 25.0, 1.0 / 25_000.0
        if step < peak:
            return start + (1.0 - start) * (1 - math.cos(math.pi * step / peak)) / 2
        t = (step - peak) / max(1, total_steps - peak)
        return end + (1.0 - end) * (1 + math.cos(math.pi * t)) / 2
    if warmup_steps > 0 and step < warmup_steps:
        return 0.01 + 0.99 * step / warmup_steps
    if config.schedule == "constant":
        return 1.0
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    low = config.min_lr_ratio
    return low + (1.0 - low) * (1 + math.cos(math.pi * t)) / 2


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class ModelEma:
    """Exponential moving average of a model's weights (buffers are copied as they are).

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates, so
    an early EMA is not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_state = self.module.state_dict()
        for key, value in model.state_dict().items():
            target = ema_state[key]
            if value.is_floating_point():
                target.mul_(d).add_(value.detach().to(target.dtype), alpha=1 - d)
            else:
                target.copy_(value)
