"""The learning-rate schedule and the dendrite loss."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..core import IGNORE

# re-exported: training.CheckpointError, training.load_checkpoint and training.save_checkpoint
# stay part of the API (docs/reliability.md, the tests)


def lr_factor(step: int, warmup: int, total: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up from 1 % to 100 % over ``warmup`` steps, then cosine decay to 2 %.

    ``time_fraction`` (0-1, the share of a time budget spent) moves the decay along when it is
    ahead of the step count.
    """
    if step < warmup:
        return 0.01 + 0.99 * step / max(1, warmup)
    progress = max((step - warmup) / max(1, total - warmup), time_fraction)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def dendrite_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice on the dendrite class over annotated pixels.

    ``logits`` (B, 2, H, W); ``target`` (B, H, W) int64 with 0 background, 1 dendrite and
    :data:`IGNORE` for pixels without annotation. A batch without annotated pixels gives 0.
    """
    known = target != IGNORE
    if not known.any():
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE)
    prob = logits.softmax(1)[:, 1] * known
    tgt = (target == 1).float()
    inter = (prob * tgt).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + tgt.sum() + 1)
    return ce + dice
