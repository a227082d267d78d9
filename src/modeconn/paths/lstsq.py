"""Least squares for one layer: the weights that make a layer reproduce given outputs.

Anokhin & Yarotsky's weight adjustment refits a layer so that, reading the features
it is given, it produces a target network's pre-activations. A Linear layer is
fitted on (examples x features); a convolution on its patches (every output
position an example, the unfolded receptive field its features).

The objective, with n rows, H the features (a column of ones appended for a bias)
and Z the targets:

    J(W) = ||H W^T - Z||^2 / n + lam ||W - W_ref||^2,   lam = ridge * tr(H^T H / n) / p

The small ridge, pulled towards a reference W_ref (the layer's own weights in the
net being reproduced), keeps the normal equations well posed when features are
rank deficient (dead ReLUs, fewer rows than features) and makes the solution
exactly W_ref whenever W_ref already fits perfectly.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


@dataclass
class LayerFit:
    weight: torch.Tensor          # shaped as the layer's weight
    bias: torch.Tensor | None
    relative_residual: float      # ||H W^T - Z||^2 / ||Z - mean(Z)||^2 at the solution


def module_of(key: str) -> str:
    return key.rsplit(".", 1)[0]


@torch.no_grad()
def layer_io(model: nn.Module, weights: Mapping[str, torch.Tensor], x: torch.Tensor,
             modules: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of each named module when ``model`` runs ``x`` with ``weights`` (eval mode)."""
    captured: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name in modules:
        hook = lambda m, args, out, name=name: captured.__setitem__(name, (args[0], out))  # noqa: E731
        handles.append(model.get_submodule(name).register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        functional_call(model, dict(weights), (x,))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return captured


def as_rows(module: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, targets) as rows: a Linear's examples, or a convolution's patches."""
    if isinstance(module, nn.Linear):
        return inputs.reshape(-1, inputs.shape[-1]), outputs.reshape(-1, outputs.shape[-1])
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if isinstance(module, nn.Conv1d):   # a height-1 image
            inputs, outputs = inputs.unsqueeze(2), outputs.unsqueeze(2)
            pair = lambda v: (1, v[0])  # noqa: E731
        else:
            pair = tuple
        if module.groups != 1 or isinstance(module.padding, str):
            raise ValueError(f"least squares on patches supports ungrouped, explicitly padded convolutions; "
                             f"{module} is not")
        patches = F.unfold(inputs, pair(module.kernel_size), dilation=pair(module.dilation),
                           padding=pair(module.padding), stride=pair(module.stride))
        return patches.transpose(1, 2).reshape(-1, patches.shape[1]), \
            outputs.flatten(2).transpose(1, 2).reshape(-1, outputs.shape[1])
    raise ValueError(f"least squares supports Linear and Conv1d/Conv2d layers, not {type(module).__name__}")


def solve_layer(features: torch.Tensor, targets: torch.Tensor, ref_weight: torch.Tensor,
                ref_bias: torch.Tensor | None, ridge: float) -> LayerFit:
    """argmin_W J(W) (module docstring) by the normal equations in float64."""
    h = features.double()
    if ref_bias is not None:
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
    z = targets.double()
    ref = ref_weight.reshape(ref_weight.shape[0], -1).double()
    if ref_bias is not None:
        ref = torch.cat([ref, ref_bias.double().reshape(-1, 1)], 1)
    n, p = h.shape
    gram = h.T @ h / n
    lam = ridge * float(gram.diagonal().mean()) if ridge > 0 else 0.0
    rhs = h.T @ z / n + lam * ref.T
    solution = torch.linalg.solve(gram + lam * torch.eye(p, dtype=gram.dtype, device=gram.device), rhs).T
    residual = float(((h @ solution.T - z) ** 2).sum() / ((z - z.mean(0)) ** 2).sum().clamp_min(1e-30))
    dtype = ref_weight.dtype
    if ref_bias is not None:
        return LayerFit(solution[:, :-1].reshape(ref_weight.shape).to(dtype), solution[:, -1].to(dtype), residual)
    return LayerFit(solution.reshape(ref_weight.shape).to(dtype), None, residual)


def objective_gradient(features, targets, weight, bias, ref_weight, ref_bias, ridge) -> torch.Tensor:
    """dJ/dW at (weight, bias): zero at the optimum (for tests and checks)."""
    h = features.double()
    w = weight.reshape(weight.shape[0], -1).double()
    ref = ref_weight.reshape(ref_weight.shape[0], -1).double()
    if bias is not None:
        h = torch.cat([h, h.new_ones(h.shape[0], 1)], 1)
        w = torch.cat([w, bias.double().reshape(-1, 1)], 1)
        ref = torch.cat([ref, ref_bias.double().reshape(-1, 1)], 1)
    n = h.shape[0]
    lam = ridge * float((h * h).sum(0).mean() / n) if ridge > 0 else 0.0
    return 2 * (h @ w.T - targets.double()).T @ h / n + 2 * lam * (w - ref)
