"""Batch-norm statistics for a weight vector that was never trained as is.

A point on a path has no running statistics of its own, so before measuring it
we reset every BN layer and recompute its statistics with one pass over the
training data without augmentation, as Garipov et al. do. Only the BN layers are
put in train mode (dropout stays off), so the statistics belong to the same
network that is then evaluated.

The statistics are the cumulative average (momentum=None) over batches of
`batch_size` examples in a fixed order: Garipov's protocol. With `batch_size` at
least the training-set size it is the exact full-data statistic.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


@torch.no_grad()
def recompute_bn(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, batch_size: int) -> None:
    """Reset and recompute the running statistics of `model`'s BN layers in place."""
    layers = batchnorm_layers(model)
    if not layers:
        return
    was_training = model.training
    saved = [(m, m.momentum) for m in layers]
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    for start in range(0, x.shape[0], batch_size):
        functional_call(model, dict(params), (x[start:start + batch_size],))
    for m, momentum in saved:
        m.momentum = momentum
    model.train(was_training)
