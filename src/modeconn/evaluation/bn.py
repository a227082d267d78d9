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
statistics are the same batch-size-weighted average over the same batches.

Less work for the last BN layer when a Linear feeds it (an MLP's last hidden layer): its
statistics are moments of h = a W^T + bias over each batch, so the pass stops at that Linear
and keeps the moments of its input a instead: the batches' summed mean of a gives the mean
W m + bias, and their summed centred second moments S = sum_b b/(b-1) A_b^T A_b (A_b: batch b
of a less its batch mean) give each unbiased variance as w_j^T S w_j. S is symmetric, so only
its upper blocks are multiplied (~60% of the products of computing h), and nothing after that
Linear runs. Same statistics up to float rounding (tests/test_eval_speed.py).
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


class _StopForward(Exception):
    """Raised where the BN pass has what it needs: nothing after this point changes a statistic."""


class _LinearInputMoments:
    """A replacement `forward` for the Linear feeding the last BN layer: per run of `group`
    examples, accumulate b x the batch mean of its input and b/(b-1) x the centred second
    moment (upper blocks only), then stop the forward."""

    BLOCKS = 4

    def __init__(self, group: int):
        self.group = group
        self.mean_sum: torch.Tensor | None = None
        self.second: torch.Tensor | None = None
        self.batches = self.examples = 0

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        n, d = a.shape
        b = self.group if n % self.group == 0 else n
        if b < 2:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {(b, d)}")
        runs = a.reshape(n // b, b, d)
        means = runs.mean(1, keepdim=True)
        centred = (runs - means).reshape(n, d)
        if self.second is None:
            self.second, self.mean_sum = a.new_zeros(d, d), a.new_zeros(d)
        self.mean_sum.add_(means.sum((0, 1)), alpha=b)
        edges = [round(i * d / self.BLOCKS) for i in range(self.BLOCKS + 1)]
        for i, (r0, r1) in enumerate(zip(edges, edges[1:])):
            for c0, c1 in zip(edges[i:], edges[i + 1:]):
                block = self.second[r0:r1, c0:c1]
                block.addmm_(centred[:, r0:r1].t(), centred[:, c0:c1], alpha=b / (b - 1))
        self.batches += n // b
        self.examples += n
        raise _StopForward

    def finish(self, bn: nn.modules.batchnorm._BatchNorm, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        upper = torch.triu(self.second)
        second = upper + torch.triu(self.second, 1).t()
        mean = weight @ (self.mean_sum / self.examples)
        bn.running_mean.copy_(mean if bias is None else mean + bias)
        bn.running_var.copy_(((weight @ second) * weight).sum(1) / self.examples)
        bn.num_batches_tracked.fill_(self.batches)


def _linear_feeding_last_bn(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor):
    """(linear's name, linear, last BN) where the last BN layer to run is a BatchNorm1d on a
    (N, C) input that is the output of an unmodified nn.Linear called once, and runs once;
    else None. Found by running the model on `x` (a few examples, eval mode)."""
    calls: list[tuple[nn.Module, object, object]] = []  # (module, its first input, its output)
    names = {m: n for n, m in model.named_modules()}

    def record(module, inputs, output):
        calls.append((module, inputs[0] if inputs else None, output))

    handles = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        functional_call(model, dict(params), (x,))
    finally:
        for h in handles:
            h.remove()
    bn_calls = [i for i, (m, _, _) in enumerate(calls) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bn_calls or bn_calls[-1] == 0:
        return None
    bn, bn_input, _ = calls[bn_calls[-1]]
    linear, _, linear_output = calls[bn_calls[-1] - 1]
    if (not isinstance(bn, nn.BatchNorm1d) or not isinstance(linear, nn.Linear) or linear_output is not bn_input
            or "forward" in linear.__dict__ or sum(m is bn for m, _, _ in calls) != 1
            or sum(m is linear for m, _, _ in calls) != 1 or linear_output.dim() != 2):
        return None
    return names[linear], linear, bn


@torch.no_grad()
def recompute_bn(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, batch_size: int,
                 *, chunk: int | None = None, moments: bool = True) -> None:
    """Reset and recompute the running statistics of `model`'s BN layers in place.

    The result is that of Garipov's `update_bn` (train-mode passes over
    consecutive batches of `batch_size`, momentum b / (n + b)); `chunk` (default BN_CHUNK) only sets how many
    examples go through the network at once; `moments=False` computes the last BN layer's
    statistics from its input like the others' (see the module doc).
    """
    layers = batchnorm_layers(model)
    if not layers:
        return
    was_training = model.training
    saved = [(m, m.momentum) for m in layers]
    model.eval()
    params = dict(params)
    tail = _linear_feeding_last_bn(model, params, x[:2]) if moments and x.shape[0] >= 2 else None
    if tail is not None and not tail[2].track_running_stats:
        tail = None
    ghosts, patched = [], []
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
        if tail is not None and m is tail[2]:
            continue
        if m.track_running_stats and "forward" not in m.__dict__:
            ghost = _GhostBatchStats(m, batch_size)
            m.forward = ghost
            ghosts.append(ghost)
            patched.append(m)
    moments_of = None
    if tail is not None:
        moments_of = _LinearInputMoments(batch_size)
        tail[1].forward = moments_of
        patched.append(tail[1])
    n = x.shape[0]
    per_chunk = batch_size * max(1, (chunk or BN_CHUNK) // batch_size)
    full = (n // batch_size) * batch_size
    try:
        for start in range(0, full, per_chunk):
            _forward(model, params, x[start:min(start + per_chunk, full)])
        if full < n:
            _forward(model, params, x[full:])
        for ghost in ghosts:
            ghost.finish()
        if moments_of is not None and moments_of.batches:
            name = tail[0]
            weight = params.get(f"{name}.weight", tail[1].weight)
            bias = params.get(f"{name}.bias", tail[1].bias)
            moments_of.finish(tail[2], weight, bias)
    finally:
        for m in patched:
            del m.forward
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)


def _forward(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> None:
    try:
        functional_call(model, params, (x,))
    except _StopForward:
        pass
