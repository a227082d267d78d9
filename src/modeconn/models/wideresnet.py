"""WideResNet (Zagoruyko & Komodakis 2016) as ported in Garipov et al. 2018
(models/wide_resnet.py, from meliketoy/wide-resnet.pytorch).

Kept from that port: pre-activation blocks BN-ReLU-conv3x3-Dropout-BN-ReLU-conv3x3
with conv biases, the stride on the block's second conv, a 1x1 conv (with bias)
shortcut whenever the shape changes, stages 16k/32k/64k after a 16-channel stem,
final BN-ReLU-global-pool-Linear, and PyTorch's default init (the port sets none).
Changed: the final BN uses PyTorch's default momentum instead of the port's 0.9
(the evaluation recomputes BN statistics anyway), and the pool is global
(AvgPool(8) at CIFAR size). Depth must be 6n+4 (28 -> 4 blocks per stage).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import ConvOps, conv_ops


class WideBasic(nn.Module):
    def __init__(self, ops: ConvOps, in_planes: int, planes: int, dropout: float, stride: int = 1):
        super().__init__()
        self.bn1, self.relu1 = ops.bn(in_planes), nn.ReLU()
        self.conv1 = ops.conv(in_planes, planes, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.bn2, self.relu2 = ops.bn(planes), nn.ReLU()
        self.conv2 = ops.conv(planes, planes, 3, stride=stride, padding=1)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(ops.conv(in_planes, planes, 1, stride=stride))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.conv1(self.relu1(self.bn1(x))))
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 28, widen: int = 10,
                 dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wide resnet depth must be 6n+4 (n >= 1), got {depth}")
        n = (depth - 4) // 6
        in_ch, ops, _ = conv_ops(input_shape)
        stages = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = ops.conv(in_ch, stages[0], 3, padding=1)
        in_planes, layers = stages[0], []
        for i, planes in enumerate(stages[1:]):
            blocks = []
            for j in range(n):
                blocks.append(WideBasic(ops, in_planes, planes, dropout, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.bn = ops.bn(in_planes)
        self.relu = nn.ReLU()
        self.pool = ops.global_pool(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.linear(self.flatten(self.pool(self.relu(self.bn(x)))))


def wideresnet(input_shape: Sequence[int], num_classes: int, depth: int = 28, widen: int = 10,
               dropout: float = 0.0) -> WideResNet:
    return WideResNet(input_shape, num_classes, depth=depth, widen=widen, dropout=dropout)
