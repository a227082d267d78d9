"""Predictions of sequence models as rows of a classifier's (issue 17).

Every model returns its class scores along dim 1: (N, C) for an image classifier,
(N, C, T) for a language model (one prediction per token, targets (N, T)). Cross-entropy
and argmax along dim 1 already work for both; what needs the count of predictions --
means, calibration, Brier -- reads them as rows here: a token is an example.
"""
from __future__ import annotations

import torch


def as_rows(scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, T...) scores and (N, T...) targets -> (N*T..., C) and (N*T...,); (N, C) unchanged."""
    if scores.dim() == 2:
        return scores, y
    if tuple(scores.shape[:1] + scores.shape[2:]) != tuple(y.shape):
        raise ValueError(f"scores {tuple(scores.shape)} do not match targets {tuple(y.shape)} (class dim 1)")
    return scores.movedim(1, -1).reshape(-1, scores.shape[1]), y.reshape(-1)


def predictions(y: torch.Tensor) -> int:
    """How many predictions targets ``y`` hold (examples, or tokens for sequences)."""
    return y.numel()
