"""A small CNN for quick CPU experiments (Fashion-MNIST, MNIST-1D, digits).

Stage ``i`` is ``features[i]`` = conv3x3 (pad 1) (+ ``bn``) + ``relu`` (+ ``pool``,
a 2x max-pool kept only while the spatial size is >= 2) (+ ``dropout``: channel
dropout, which drops the units Kuditipudi et al.'s dropout stability counts). The head flattens
(default) or global-average-pools, then an optional hidden Linear (``hidden``)
and the ``classifier``. With ``channels=[32, 32, 32], bias=False, hidden=0`` it
is the three-conv-layer net Kuditipudi et al. 2019 use for dropout paths.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import conv_ops, kaiming_fan_out_


class ConvNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64),
                 bias: bool = True, batchnorm: bool = False, hidden: int = 128, global_pool: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        in_ch, ops, spatial = conv_ops(input_shape)
        if not channels:
            raise ValueError("convnet needs at least one conv stage (channels is empty)")
        stages = []
        for out_ch in channels:
            parts = OrderedDict(conv=ops.conv(in_ch, int(out_ch), 3, padding=1, bias=bias))
            if batchnorm:
                parts["bn"] = ops.bn(int(out_ch))
            parts["relu"] = nn.ReLU()
            if spatial.can_halve():
                parts["pool"] = ops.max_pool(2)
                spatial.pool()
            if dropout > 0:
                parts["dropout"] = ops.dropout(dropout)
            stages.append(nn.Sequential(parts))
            in_ch = int(out_ch)
        self.features = nn.Sequential(*stages)
        if global_pool:
            self.pool = ops.global_pool(1)
            flat = in_ch
        else:
            self.pool = nn.Identity()
            flat = in_ch * spatial.numel
        self.flatten = nn.Flatten()
        head = OrderedDict()
        if hidden:
            head["linear"] = nn.Linear(flat, hidden, bias=bias)
            head["relu"] = nn.ReLU()
            if dropout > 0:
                head["dropout"] = nn.Dropout(dropout)
            flat = hidden
        self.head = nn.Sequential(head)
        self.classifier = nn.Linear(flat, num_classes, bias=bias)
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.head(self.flatten(self.pool(self.features(x)))))


def convnet(input_shape: Sequence[int], num_classes: int, channels: Sequence[int] = (32, 64), bias: bool = True,
            batchnorm: bool = False, hidden: int = 128, global_pool: bool = False, dropout: float = 0.0) -> ConvNet:
    return ConvNet(input_shape, num_classes, channels=channels, bias=bias, batchnorm=batchnorm,
                   hidden=hidden, global_pool=global_pool, dropout=dropout)
