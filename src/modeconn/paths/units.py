"""The hidden units of a plain feed-forward ReLU network, as rows and columns of its weights.

Kuditipudi et al. 2019 move networks unit by unit: a hidden unit of layer j has
*incoming* weights (its row of layer j's weight, and its bias) and *outgoing*
weights (its column block of the next layer's weight; a flattened conv channel
spans several columns). :class:`UnitChain` reads this layout from the permutation
groups that ``align.groups`` traces, checks that the network is a chain their
construction applies to, and reads and writes units of a state dict.

The construction rescales units by 1/keep, which passes through a layer only if
the layer is positively homogeneous: ReLU, max/average pooling, flattening and
(eval-mode) dropout are; normalisation layers, residual sums and saturating
activations are not, so those networks are refused with the reason.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from modeconn.align.groups import PermutationSpec, UnsupportedGraph, permutation_spec

# Leaf layers through which zeroing a unit, or scaling it by r > 0, passes unchanged.
HOMOGENEOUS_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d,
                      nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.Flatten,
                      nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity, nn.Sequential)  # an empty head


class NotAChain(ValueError):
    """The network is not a plain feed-forward chain of homogeneous layers."""


@dataclass(frozen=True)
class HiddenLayer:
    """One hidden layer: ``size`` units, rows of ``weight`` (and ``bias``); their outgoing
    weights are ``block`` consecutive columns each of ``out_weight`` (the next layer)."""

    name: str
    size: int
    weight: str
    bias: str | None
    out_weight: str
    block: int


def expand(units: torch.Tensor, block: int) -> torch.Tensor:
    """Column indices of ``units`` when each spans ``block`` consecutive columns."""
    return (units[:, None] * block + torch.arange(block, device=units.device)).reshape(-1)


class UnitChain:
    """Hidden layers input side first, then the top (output) layer."""

    def __init__(self, layers: Sequence[HiddenLayer], top_weight: str, top_bias: str | None):
        self.layers = list(layers)
        self.top_weight = top_weight
        self.top_bias = top_bias

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def top_keys(self) -> list[str]:
        return [k for k in (self.top_weight, self.top_bias) if k is not None]

    @classmethod
    def from_model(cls, model: nn.Module, input_shape: tuple[int, ...], method: str = "dropout",
                   reason: str = "rescaling a unit by 1/keep must pass through every layer") -> UnitChain:
        """The chain of ``model``; :class:`NotAChain` saying why (``reason``) when ``method`` does not apply."""
        for name, module in model.named_modules():
            if not list(module.children()) and not isinstance(module, HOMOGENEOUS_LAYERS):
                raise NotAChain(
                    f"method={method} needs a feed-forward net of Linear/Conv, ReLU, pooling and dropout layers "
                    f"({reason}); {name or 'the model'} is "
                    f"{type(module).__name__}"
                    + (" (mlp, convnet and vgg16 build without it: arch.params.batchnorm=false)"
                       if isinstance(module, nn.modules.batchnorm._BatchNorm) else ""))
        try:
            spec = permutation_spec(model, input_shape)
        except UnsupportedGraph as error:
            raise NotAChain(f"method={method}: {error}") from error
        return cls.from_spec(spec, dict(model.named_parameters()), method)

    @classmethod
    def from_spec(cls, spec: PermutationSpec, params: Mapping[str, torch.Tensor],
                  method: str = "dropout") -> UnitChain:
        by_weight: dict[str, HiddenLayer] = {}
        for group in spec.groups:
            rows = [a for a in group.axes if a.dim == 0]
            cols = [a for a in group.axes if a.dim == 1]
            weights = [a.key for a in rows if a.key.endswith("weight")]
            if len(weights) != 1 or len(cols) != 1 or any(a.offset or a.block != 1 for a in rows) \
                    or cols[0].offset or len(rows) > 2:
                raise NotAChain(f"method={method} needs each hidden layer to feed exactly the next one; units of "
                                f"{group.name} appear in {sorted({a.key for a in group.axes})} (a residual sum, "
                                "a concatenation or a normalisation layer)")
            bias = next((a.key for a in rows if a.key != weights[0]), None)
            by_weight[weights[0]] = HiddenLayer(group.name, group.size, weights[0], bias, cols[0].key,
                                                cols[0].block)
        consumed = {layer.out_weight for layer in by_weight.values()}
        first = [w for w in by_weight if w not in consumed]
        if len(first) != 1:
            raise NotAChain(f"method={method} needs one chain of hidden layers; it starts at {first or 'none'}")
        layers, weight = [], first[0]
        while weight in by_weight:
            layers.append(by_weight[weight])
            weight = layers[-1].out_weight
        top_weight = weight
        top_bias = top_weight[: -len("weight")] + "bias"
        top_bias = top_bias if top_bias in params else None
        known = {k for layer in layers for k in (layer.weight, layer.bias, top_weight, top_bias) if k}
        extra = sorted(set(params) - known)
        if len(layers) != len(by_weight) or extra:
            raise NotAChain(f"method={method} needs one chain of hidden layers; parameters outside it: "
                            f"{extra or sorted(set(by_weight) - {layer.weight for layer in layers})}")
        return cls(layers, top_weight, top_bias)

    # ------------------------------------------------------------------------------------------
    def in_block(self, j: int) -> int:
        """Columns per unit of layer j - 1 in layer j's weight (layer 0 reads the input)."""
        return self.layers[j - 1].block if j > 0 else 1

    def incoming(self, state: Mapping[str, torch.Tensor], j: int, rows: torch.Tensor,
                 cols: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weights of layer j's units ``rows`` from the units ``cols`` of layer j - 1 (all inputs
        when None), and their biases."""
        layer = self.layers[j]
        w = state[layer.weight].index_select(0, rows)
        if cols is not None:
            w = w.index_select(1, expand(cols, self.in_block(j)))
        bias = state[layer.bias].index_select(0, rows) if layer.bias else None
        return w, bias

    def set_incoming(self, state: dict[str, torch.Tensor], j: int, rows: torch.Tensor,
                     cols: torch.Tensor | None, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        """Layer j's units ``rows`` read ``weight`` from units ``cols`` of layer j - 1 and nothing
        else (``cols`` None: the whole input); in place on ``state``'s tensors."""
        layer = self.layers[j]
        w = state[layer.weight]
        if cols is None:
            w[rows] = weight
        else:
            w[rows] = 0
            w[rows[:, None], expand(cols, self.in_block(j))[None, :]] = weight
        if layer.bias:
            state[layer.bias][rows] = bias

    def top(self, state: Mapping[str, torch.Tensor], cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The output layer's weights from the last hidden layer's units ``cols``, and its bias."""
        w = state[self.top_weight].index_select(1, expand(cols, self.layers[-1].block))
        return w, state[self.top_bias] if self.top_bias else None

    def set_top(self, state: dict[str, torch.Tensor], cols: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> None:
        """The output layer reads ``weight`` from units ``cols`` and nothing else."""
        w = state[self.top_weight]
        w.zero_()
        w[:, expand(cols, self.layers[-1].block)] = weight
        if self.top_bias:
            state[self.top_bias].copy_(bias)

    def scale_outgoing(self, state: dict[str, torch.Tensor], j: int, factors: torch.Tensor) -> None:
        """Multiply each unit's outgoing weights of layer j by ``factors[unit]``."""
        layer = self.layers[j]
        w = state[layer.out_weight]
        per_col = factors.to(w).repeat_interleave(layer.block)
        state[layer.out_weight] = w * per_col.view(1, -1, *([1] * (w.dim() - 2)))
