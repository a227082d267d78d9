"""VGG as in Garipov et al. 2018 (timgaripov/dnn-mode-connectivity, models/vgg.py).

Same layers, order and init as the reference: conv3x3 (pad 1, with bias) (+ BN) +
ReLU, a 2x max-pool closing each stage, then Dropout, Linear(512, 512), ReLU,
Dropout, Linear(512, 512), ReLU, Linear(512, classes); conv weights
N(0, 2 / (9 * out_channels)), zero conv bias, default Linear init.
Differences, all no-ops at CIFAR size: input channels come from the data, a pool is
skipped once the spatial size is 1, and a global average pool precedes the
classifier so smaller/larger inputs still give 512 features. ``width`` scales every
conv and the classifier's hidden width; ``depth`` picks the torchvision configs
(11 and 13 for Kuditipudi's VGG-11, 16 and 19 as in Garipov).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import conv_ops, kaiming_fan_out_

CONFIGS = {
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class VGG(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 16, batchnorm: bool = False,
                 width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        if depth not in CONFIGS:
            raise ValueError(f"vgg depth must be one of {sorted(CONFIGS)}, got {depth}")
        in_ch, ops, spatial = conv_ops(input_shape)
        layers = []  # one block per conv layer; a stage's last block carries the pool
        for stage in CONFIGS[depth]:
            for i, c in enumerate(stage):
                out_ch = _scaled(c, width)
                parts = OrderedDict(conv=ops.conv(in_ch, out_ch, 3, padding=1))
                if batchnorm:
                    parts["bn"] = ops.bn(out_ch)
                parts["relu"] = nn.ReLU()
                if i == len(stage) - 1 and spatial.can_halve():
                    parts["pool"] = ops.max_pool(2)
                    spatial.pool()
                layers.append(nn.Sequential(parts))
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = ops.global_pool(1)
        self.flatten = nn.Flatten()
        hidden = _scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_ch, hidden), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def vgg(input_shape: Sequence[int], num_classes: int, depth: int = 16, batchnorm: bool = False,
        width: float = 1.0, dropout: float = 0.5) -> VGG:
    return VGG(input_shape, num_classes, depth=depth, batchnorm=batchnorm, width=width, dropout=dropout)
