"""Ensembles of weight vectors: the mean of the members' softmax outputs on the test set.

Each member gets its own BatchNorm statistics (the protocol of
``modeconn.evaluation.bn``) before its test predictions are taken. Metrics
follow Garipov et al.'s FGE comparison: accuracy (%), NLL (nats), plus the
expected calibration error (15 bins, l1, as a fraction) and the Brier score
(mean over examples of sum_c (p_c - onehot_c)^2).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from modeconn.evaluation.bn import recompute_bn
from modeconn.evaluation.predictions import as_rows

ENSEMBLE_METRICS = ("test_acc", "test_nll", "test_ece", "test_brier")
ECE_BINS = 15


@torch.no_grad()
def member_probs(model: nn.Module, params: Mapping[str, Tensor], data, *, batch_size: int,
                 bn_batch_size: int) -> Tensor:
    """Test-set softmax probabilities (N, C; float64, on the data's device) of one weight vector,
    with BN statistics recomputed for it on the training data."""
    recompute_bn(model, params, data.x_train, bn_batch_size)
    model.eval()
    out = []
    for start in range(0, data.x_test.shape[0], batch_size):
        logits = functional_call(model, dict(params), (data.x_test[start:start + batch_size],))
        out.append(F.softmax(logits.double(), dim=1))
    return torch.cat(out)


@torch.no_grad()
def ensemble_metrics(probs: Tensor, y: Tensor) -> dict[str, float]:
    """Accuracy (%), NLL, ECE and Brier score of predicted probabilities `probs` (N, C) for labels `y`
    (a sequence model's (N, C, T) and (N, T): every token a row)."""
    probs, y = as_rows(probs, y)
    if probs.dim() != 2 or probs.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be (N, C) with N = {y.shape[0]}, got {tuple(probs.shape)}")
    probs = probs.double()
    y = y.long().to(probs.device)
    num_classes = probs.shape[1]
    p_true = probs.gather(1, y[:, None]).squeeze(1)
    nll = -torch.log(p_true.clamp_min(torch.finfo(probs.dtype).tiny)).mean()
    acc = 100.0 * (probs.argmax(1) == y).double().mean()
    onehot = F.one_hot(y, num_classes).double()
    brier = (probs - onehot).pow(2).sum(1).mean()
    # imported here: torchmetrics pulls in torchvision's models and torch._dynamo (~2.7 s of
    # every process's start-up, a parallel sweep's workers' included)
    from torchmetrics.functional.classification import multiclass_calibration_error

    ece = multiclass_calibration_error(probs.float(), y, num_classes=num_classes, n_bins=ECE_BINS, norm="l1")
    return {"test_acc": acc.item(), "test_nll": nll.item(), "test_ece": float(ece), "test_brier": brier.item()}


def growing_ensemble(member_probs_list: Sequence[Tensor], y: Tensor) -> list[dict[str, float]]:
    """Metrics of the ensembles of the first 1, 2, ..., N members (each dict has `members`)."""
    curve, total = [], None
    for k, probs in enumerate(member_probs_list, start=1):
        total = probs.double().clone() if total is None else total + probs.double()
        curve.append({"members": k, **ensemble_metrics(total / k, y)})
    return curve


def diversity(member_probs_list: Sequence[Tensor], y: Tensor) -> dict[str, float]:
    """How differently members predict, and what averaging them buys (Fort et al.'s diversity view):
    mean pairwise disagreement of their argmax (%), mean member error, the ensemble's error and
    NLL, and the gain = mean member error - ensemble error."""
    if len(member_probs_list) < 2:
        raise ValueError("diversity needs at least two members")
    labels = [p.argmax(1) for p in member_probs_list]
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    disagreement = 100.0 * sum(float((a != b).double().mean()) for a, b in pairs) / len(pairs)
    member_err = [100.0 - ensemble_metrics(p, y)["test_acc"] for p in member_probs_list]
    ensemble = ensemble_metrics(sum(p.double() for p in member_probs_list) / len(member_probs_list), y)
    mean_err = sum(member_err) / len(member_err)
    return {"members": len(member_probs_list), "disagreement": disagreement, "member_test_err_mean": mean_err,
            "ensemble_test_err": 100.0 - ensemble["test_acc"], "ensemble_test_nll": ensemble["test_nll"],
            "gain": mean_err - (100.0 - ensemble["test_acc"])}
