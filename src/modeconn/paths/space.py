"""A flat-vector view of a network's parameters.

Paths combine whole weight vectors (sums of control points, distances, volumes),
while the network wants named tensors; this class converts between the two.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class ParameterSpace:
    """The ordered parameter names and shapes of one architecture."""

    def __init__(self, model: nn.Module):
        named = list(model.named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.dim = sum(self.numels)

    def flatten(self, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the parameters of a state dict (buffers are ignored)."""
        missing = [n for n in self.names if n not in state]
        if missing:
            raise KeyError(f"state lacks parameters {missing[:5]}")
        return torch.cat([state[n].detach().reshape(-1).float() for n in self.names])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of `vector` shaped as the named parameters (gradients flow through)."""
        if vector.shape[-1] != self.dim:
            raise ValueError(f"vector has {vector.shape[-1]} entries, the model {self.dim}")
        chunks = torch.split(vector, self.numels, dim=-1)
        lead = vector.shape[:-1]
        return {n: c.reshape(*lead, *s) for n, c, s in zip(self.names, chunks, self.shapes)}
