"""Batch-norm statistics for a weight vector that was never trained as is.

A point on a path has no running statistics of its own, so before measuring it
we reset every BN layer and recompute its statistics with one pass over the
training data without augmentation, as Garipov et al. do. Only the BN layers are
put in train mode (dropout stays off), so the statistics belong to the same
network that is then evaluated.

The statistics are those of Garipov's `update_bn`: consecutive batches of
`batch_size` examples in a fixed order, each weighted by its size (his momentum
b / (n + b) for a batch of b after n examples), i.e. sum_i b_i stat_i / sum_i b_i
with each batch's mean and unbiased variance. An equal-weight average
(`momentum=None`) is not the same when the last batch is short (10,000 examples
in batches of 128: up to 6e-3 apart in a running mean). With `batch_size` at
least the training-set size it is the exact full-data statistic.

Speed: small BN batches (Garipov's 128) starve the matrix products, so the pass
feeds `chunk` examples at a time (a multiple of `batch_size`) and every BN layer
normalises each run of `batch_size` examples within the chunk by that run's own
statistics ("ghost" batches). Every layer but BN acts example by example, so the
network computes exactly what it would on the separate batches, and the running
statistics are the same equal-weight average over the same batches.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)

#: Examples per forward pass of the BN pass (rounded down to a multiple of the BN batch size).
BN_CHUNK = 2048


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


class _GhostBatchStats:
    """A replacement `forward` for one BN layer: train-mode BN over each run of
    `group` examples, accumulating each batch's size x mean and size x unbiased variance."""

    def __init__(self, module: nn.modules.batchnorm._BatchNorm, group: int):
        self.m, self.group = module, group
        self.mean_sum: torch.Tensor | None = None
        self.var_sum: torch.Tensor | None = None
        self.batches = 0
        self.examples = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m, n = self.m, x.shape[0]
        b = self.group if n % self.group == 0 else n  # examples per batch: its weight (Garipov's update_bn)
        if b * math.prod(x.shape[2:]) < 2:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        # One fused train-mode batch_norm per batch (a strided var_mean over the batches of the
        # chunk at once was 4x slower here); momentum 1 leaves that batch's mean and unbiased
        # variance in the scratch buffers.
        c = x.shape[1]
        mean, var = x.new_zeros(c), x.new_ones(c)
        outs = []
        for start in range(0, n, b):
            outs.append(F.batch_norm(x[start:start + b], mean, var, m.weight, m.bias, True, 1.0, m.eps))
            self.mean_sum = mean * b if self.mean_sum is None else self.mean_sum.add_(mean, alpha=b)
            self.var_sum = var * b if self.var_sum is None else self.var_sum.add_(var, alpha=b)
            self.batches += 1
            self.examples += b
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def finish(self) -> None:
        m = self.m
        if self.batches:
            m.running_mean.copy_(self.mean_sum / self.examples)
            m.running_var.copy_(self.var_sum / self.examples)
            m.num_batches_tracked.fill_(self.batches)


@torch.no_grad()
def recompute_bn(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, batch_size: int,
                 *, chunk: int | None = None) -> None:
    """Reset and recompute the running statistics of `model`'s BN layers in place.

    The result is that of Garipov's `update_bn` (train-mode passes over
    consecutive batches of `batch_size`, momentum b / (n + b)); `chunk` (default BN_CHUNK) only sets how many
    examples go through the network at once.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return
    was_training = model.training
    saved = [(m, m.momentum) for m in layers]
    model.eval()
    ghosts = []
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
        if m.track_running_stats and "forward" not in m.__dict__:
            ghost = _GhostBatchStats(m, batch_size)
            m.forward = ghost
            ghosts.append(ghost)
    params = dict(params)
    n = x.shape[0]
    per_chunk = batch_size * max(1, (chunk or BN_CHUNK) // batch_size)
    full = (n // batch_size) * batch_size
    try:
        for start in range(0, full, per_chunk):
            functional_call(model, params, (x[start:min(start + per_chunk, full)],))
        if full < n:
            functional_call(model, params, (x[full:],))
        for ghost in ghosts:
            ghost.finish()
    finally:
        for ghost in ghosts:
            del ghost.m.forward
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
