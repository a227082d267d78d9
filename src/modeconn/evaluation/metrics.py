"""The papers' measurements of one weight vector: train loss, NLL, error; test NLL, error."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from modeconn.evaluation.bn import recompute_bn
from modeconn.evaluation.predictions import predictions
from modeconn.results import METRICS  # noqa: F401  (the schema's names; re-exported here)


@dataclass
class PointMetrics:
    """Losses in nats, errors in percent (as the papers print them)."""

    train_loss: float
    train_nll: float
    train_err: float
    test_nll: float
    test_err: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def nll_and_error(model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                  batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy (nats) and error (%) of the eval-mode network over (x, y), per
    prediction: per example, or per token for a sequence model ((N, C, T) logits, (N, T) targets)."""
    model.eval()
    params = dict(params)
    nll = torch.zeros((), dtype=torch.float64, device=x.device)
    wrong = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, x.shape[0], batch_size):
        logits = functional_call(model, params, (x[start:start + batch_size],))
        target = y[start:start + batch_size]
        nll += F.cross_entropy(logits.float(), target, reduction="sum").double()
        wrong += (logits.argmax(1) != target).sum()
    n = predictions(y)
    return nll.item() / n, 100.0 * wrong.item() / n


@torch.no_grad()
def evaluate_point(model: nn.Module, params: Mapping[str, torch.Tensor], data, *, wd: float,
                   batch_size: int, bn_batch_size: int, inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
                   sq_norm: float | None = None, buffers: Mapping[str, torch.Tensor] | None = None) -> PointMetrics:
    """Recompute BN statistics for `params`, then measure it on train and test data.

    train_loss adds Garipov's weight-decay term 0.5 * wd * ||w||^2 to the train NLL.
    `inputs` replaces (data.x_train, data.x_test) by what the network is fed instead
    (first-layer outputs, evaluation/first_layer.py); the same train inputs serve the
    BN pass and the train pass. `sq_norm` is ||w||^2 when the caller has it.
    `buffers` (BN running statistics) are used as given instead of recomputed: the
    no-RESET baseline of Jordan et al. 2023, whose BN statistics are interpolated.
    """
    x_train, x_test = inputs if inputs is not None else (data.x_train, data.x_test)
    net = dict(params)
    if buffers is None:
        recompute_bn(model, params, x_train, bn_batch_size)
    else:
        net.update(buffers)
    train_nll, train_err = nll_and_error(model, net, x_train, data.y_train, batch_size)
    test_nll, test_err = nll_and_error(model, net, x_test, data.y_test, batch_size)
    if sq_norm is None:
        sq_norm = sum(p.double().pow(2).sum() for p in params.values()).item()
    return PointMetrics(train_nll + 0.5 * wd * sq_norm, train_nll, train_err, test_nll, test_err)
