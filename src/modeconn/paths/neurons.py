"""Anokhin & Yarotsky 2020's neuron view: a layer is a set of neurons.

Neuron i of hidden layer j is the vector [incoming weights (a row of the layer's
weight; a conv channel's whole kernel), bias, outgoing weights (its column block
of the next layer's weight)]. For a one-hidden-layer net this is the paper's row
[W1[i, :], b1[i], W2[:, i]], whose distribution over i is what the
distribution-based connections (Arc, Gaussianisation, the flow) transport.

Every weight tensor has *unit axes* (the hidden-unit indices it carries: rows of
a layer, columns of the next one) and *coordinate axes* (input pixels, output
classes, kernel positions, the spatial block of a flattened channel).
:meth:`NeuronView.samples` lays a tensor out as (samples over its unit axes) x
(coordinates): the per-coordinate statistics of the paper's neurons are column
statistics of that matrix. A weight between two hidden layers has two unit axes
(it is outgoing for one layer's neurons and incoming for the next one's): both are
exchangeable, so both index samples. For one hidden layer this reproduces the
paper's per-coordinate neuron statistics exactly.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from modeconn.paths.units import UnitChain

NEURON_REASON = "the neuron view reads every hidden unit's incoming and outgoing weights"


def _layout(shape: tuple[int, ...], axes: Mapping[int, int]) -> tuple[list[int], list[int], int]:
    """Split each unit dim d (``axes[d]`` = its block) into (units, block); the order that puts the
    unit sub-dims first; the number of samples."""
    split, units, coords = [], [], []
    for d, n in enumerate(shape):
        if d in axes:
            block = axes[d]
            units.append(len(split))
            split += [n // block, block]
            coords.append(len(split) - 1)
        else:
            coords.append(len(split))
            split.append(n)
    return split, units + coords, math.prod(split[u] for u in units)


class NeuronView:
    """The neurons of a feed-forward chain (mlp, convnet, VGG without normalisation)."""

    def __init__(self, chain: UnitChain, shapes: Mapping[str, tuple[int, ...]]):
        self.chain = chain
        self.shapes = dict(shapes)
        self.unit_axes: dict[str, dict[int, int]] = {k: {} for k in self.shapes}
        for j, layer in enumerate(chain.layers):
            self.unit_axes[layer.weight][0] = 1
            if layer.bias:
                self.unit_axes[layer.bias][0] = 1
            self.unit_axes[layer.out_weight][1] = layer.block

    @classmethod
    def from_model(cls, model: nn.Module, input_shape: tuple[int, ...], method: str) -> NeuronView:
        chain = UnitChain.from_model(model, input_shape, method=method, reason=NEURON_REASON)
        return cls(chain, {k: tuple(p.shape) for k, p in model.named_parameters()})

    @property
    def depth(self) -> int:
        return self.chain.depth

    # ---- a tensor as samples x coordinates -----------------------------------------------------
    def samples(self, key: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (parameter ``key``) as a (samples, coordinates) matrix: one row per index
        of its unit axes (one row in all for a tensor without any, the output bias)."""
        split, order, n = _layout(self.shapes[key], self.unit_axes[key])
        return tensor.reshape(split).permute(order).reshape(n, -1)

    def unsamples(self, key: str, matrix: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`samples`."""
        split, order, _ = _layout(self.shapes[key], self.unit_axes[key])
        inverse = [order.index(i) for i in range(len(order))]
        return matrix.reshape([split[i] for i in order]).permute(inverse).reshape(self.shapes[key])

    def neuron_mean(self, key: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Arc's mu for parameter ``key``: the per-coordinate mean over both nets' samples,
        broadcast back to the tensor's shape (for the output bias: the midpoint of a and b)."""
        mean = torch.cat([self.samples(key, a), self.samples(key, b)]).mean(0, keepdim=True)
        n = self.samples(key, a).shape[0]
        return self.unsamples(key, mean.expand(n, -1))

    # ---- neurons of one hidden layer -----------------------------------------------------------
    def _out_block(self, j: int, tensor: torch.Tensor) -> torch.Tensor:
        layer = self.chain.layers[j]
        shape = tensor.shape
        split = (shape[0], layer.size, layer.block, *shape[2:])
        return tensor.reshape(split).transpose(0, 1).reshape(layer.size, -1)

    def neurons(self, state: Mapping[str, torch.Tensor], j: int, outgoing: bool = True) -> torch.Tensor:
        """Hidden layer j's neurons, one row each: [incoming weights, bias, outgoing weights]
        (without the outgoing weights when ``outgoing`` is False)."""
        layer = self.chain.layers[j]
        parts = [state[layer.weight].reshape(layer.size, -1)]
        if layer.bias:
            parts.append(state[layer.bias].reshape(layer.size, 1))
        if outgoing:
            parts.append(self._out_block(j, state[layer.out_weight]))
        return torch.cat(parts, 1)

    def neuron_parts(self, j: int, outgoing: bool = True) -> list[tuple[str, int]]:
        """(parameter, columns) of each part of layer j's neuron vector, in order."""
        layer = self.chain.layers[j]
        incoming = math.prod(self.shapes[layer.weight][1:])
        out_shape = self.shapes[layer.out_weight]
        parts = [(layer.weight, incoming)] + ([(layer.bias, 1)] if layer.bias else [])
        return parts + ([(layer.out_weight, out_shape[0] * layer.block * math.prod(out_shape[2:]))] if outgoing else [])

    def set_neurons(self, state: Mapping[str, torch.Tensor], j: int, neurons: torch.Tensor,
                    outgoing: bool = True) -> dict[str, torch.Tensor]:
        """A copy of ``state`` whose hidden layer j has the given neurons (rows, as :meth:`neurons`)."""
        layer = self.chain.layers[j]
        out = dict(state)
        pieces = torch.split(neurons, [n for _, n in self.neuron_parts(j, outgoing)], dim=1)
        out[layer.weight] = pieces[0].reshape(self.shapes[layer.weight])
        if layer.bias:
            out[layer.bias] = pieces[1].reshape(-1)
        if outgoing:
            shape = self.shapes[layer.out_weight]
            block = pieces[-1].reshape(layer.size, shape[0], layer.block, *shape[2:]).transpose(0, 1)
            out[layer.out_weight] = block.reshape(shape)
        return out

    # ---- a partition of the weights into neurons -------------------------------------------------
    def owns_outgoing(self, j: int) -> bool:
        """Whether layer j's neurons carry their outgoing weights in :meth:`partition`: only the
        last hidden layer's (the others' outgoing weights are the next layer's incoming ones)."""
        return j == self.depth - 1

    def partition(self, state: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Every hidden layer's neurons such that each weight lies in exactly one neuron (the
        output bias in none): layer j's [incoming, bias], the last layer's with its outgoing
        weights. For one hidden layer these are the paper's rows [W1[i], b1[i], W2[:, i]]."""
        return [self.neurons(state, j, self.owns_outgoing(j)) for j in range(self.depth)]

    def from_partition(self, state: Mapping[str, torch.Tensor], layers: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """A copy of ``state`` with every hidden layer's neurons (as :meth:`partition`) replaced."""
        out = dict(state)
        for j, rows in enumerate(layers):
            out = self.set_neurons(out, j, rows, self.owns_outgoing(j))
        return out
