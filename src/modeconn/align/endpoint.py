"""Aligning one endpoint to a reference, with the checks a run records."""
from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from modeconn.align import match
from modeconn.align.groups import PermutationSpec
from modeconn.align.permute import permute_state


@torch.no_grad()
def max_logit_change(model: nn.Module, before: Mapping[str, torch.Tensor], after: Mapping[str, torch.Tensor],
                     x: torch.Tensor) -> float:
    """Largest change of the logits on ``x`` (eval mode): ~0 when ``after`` is a permutation of ``before``."""
    was_training = model.training
    model.eval()
    try:
        return float((functional_call(model, dict(before), (x,)) - functional_call(model, dict(after), (x,)))
                     .abs().max())
    finally:
        model.train(was_training)


def align_endpoint(model: nn.Module, spec: PermutationSpec, reference: Mapping[str, torch.Tensor],
                   state: Mapping[str, torch.Tensor], *, method: str, x_train: torch.Tensor, x_check: torch.Tensor,
                   samples: int = 10_000, batch_size: int = 500, max_iter: int = 100,
                   seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """``state`` permuted to match ``reference`` (both full state dicts), and its report:
    seconds, the fraction of units left in place, and the largest logit change."""
    start = time.perf_counter()
    perms, info = match(method, model, spec, reference, state, x=x_train, samples=samples,
                        batch_size=batch_size, max_iter=max_iter, seed=seed)
    aligned = permute_state(state, spec, perms)
    seconds = time.perf_counter() - start
    in_place = sum(int((p == torch.arange(len(p), device=p.device)).sum()) for p in perms.values())
    return aligned, {
        "seconds": seconds,
        "fraction_in_place": in_place / max(spec.units, 1),
        "max_logit_change": max_logit_change(model, state, aligned, x_check),
        **info,
    }
