"""Learning-rate schedules: Garipov et al.'s (endpoints, curves) and the cosine one Benton et al.
use for each new simplex vertex."""
from __future__ import annotations

import math


def garipov_factor(progress: float) -> float:
    """LR multiplier at `progress` in [0, 1] of the budget: 1 for the first half,
    linear down to 0.01 by 90%, then 0.01 (dnn-mode-connectivity's train.py)."""
    if progress <= 0.5:
        return 1.0
    if progress <= 0.9:
        return 1.0 - (progress - 0.5) / 0.4 * 0.99
    return 0.01


def lr_lambda(schedule: str, total_steps: int):
    """A per-step multiplier for torch's LambdaLR (`constant`, `garipov` or `cosine`)."""
    total = max(total_steps, 1)
    if schedule == "garipov":
        return lambda step: garipov_factor(step / total)
    if schedule == "cosine":
        # torch's CosineAnnealingLR with T_max = the budget and eta_min = 0, stepped per iteration.
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"unknown lr schedule {schedule!r}; choose garipov, cosine or constant")
