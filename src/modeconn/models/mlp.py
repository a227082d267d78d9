"""Fully-connected ReLU network.

Hidden layers are ``features[i]``, each a small ``nn.Sequential`` with named
parts ``linear`` (+ ``bn``) + ``relu`` (+ ``dropout``), followed by
``classifier``. Hidden unit ``j`` of layer ``i`` is therefore the row
``features[i].linear.weight[j]`` / ``.bias[j]`` together with the column ``[:, j]`` of
the next Linear: the unit-level view Kuditipudi's dropout paths and Anokhin's
neuron rows work with.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import check_shape


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = 512, depth: int = 2,
                 bias: bool = True, batchnorm: bool = False, dropout: float = 0.0):
        super().__init__()
        if depth < 0 or width < 1:
            raise ValueError(f"mlp needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
        self.flatten = nn.Flatten()
        blocks, fan_in = [], in_features
        for _ in range(depth):
            parts = OrderedDict(linear=nn.Linear(fan_in, width, bias=bias))
            if batchnorm:
                parts["bn"] = nn.BatchNorm1d(width)
            parts["relu"] = nn.ReLU()
            if dropout > 0:
                parts["dropout"] = nn.Dropout(dropout)
            blocks.append(nn.Sequential(parts))
            fan_in = width
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(fan_in, num_classes, bias=bias)

    def hidden_linears(self) -> list[nn.Linear]:
        """The Linear of each hidden layer, input side first."""
        return [block.linear for block in self.features]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(self.flatten(x)))


def mlp(input_shape: Sequence[int], num_classes: int, width: int = 512, depth: int = 2,
        bias: bool = True, batchnorm: bool = False, dropout: float = 0.0) -> MLP:
    """Flattens any input; PyTorch's default Linear init."""
    shape = check_shape(input_shape, conv=False)
    return MLP(math.prod(shape), num_classes, width=width, depth=depth, bias=bias,
               batchnorm=batchnorm, dropout=dropout)
