"""Pre-activation ResNet as in Garipov et al. 2018 (models/preresnet.py, itself from
bearpaw/pytorch-classification).

Blocks are BN-ReLU-conv (no conv bias); the shortcut is the identity or, when the
shape changes, a bare 1x1 (strided) conv applied to the block's raw input. Stages
have 16/32/64 planes (x ``width``; x4 outputs for bottleneck blocks), then BN, ReLU,
global average pool, Linear. Basic blocks need depth = 6n+2 (PreResNet-110),
bottlenecks depth = 9n+2 (PreResNet-164); ``block=None`` picks by depth like the
reference (bottleneck from 44 on). Init as the reference: conv N(0, 2/fan_out), BN
(1, 0). Global pooling replaces AvgPool(8) (same at CIFAR size).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import ConvOps, conv_ops, kaiming_fan_out_

BLOCKS = ("basic", "bottleneck")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, ops: ConvOps, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1, self.relu1 = ops.bn(inplanes), nn.ReLU()
        self.conv1 = ops.conv(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2, self.relu2 = ops.bn(planes), nn.ReLU()
        self.conv2 = ops.conv(planes, planes, 3, padding=1, bias=False)
        self.downsample = _shortcut(ops, inplanes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + self.downsample(x)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, ops: ConvOps, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1, self.relu1 = ops.bn(inplanes), nn.ReLU()
        self.conv1 = ops.conv(inplanes, planes, 1, bias=False)
        self.bn2, self.relu2 = ops.bn(planes), nn.ReLU()
        self.conv2 = ops.conv(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3, self.relu3 = ops.bn(planes), nn.ReLU()
        self.conv3 = ops.conv(planes, planes * 4, 1, bias=False)
        self.downsample = _shortcut(ops, inplanes, planes * 4, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        out = self.conv3(self.relu3(self.bn3(out)))
        return out + self.downsample(x)


def _shortcut(ops: ConvOps, inplanes: int, outplanes: int, stride: int) -> nn.Module:
    if stride == 1 and inplanes == outplanes:
        return nn.Identity()
    return nn.Sequential(ops.conv(inplanes, outplanes, 1, stride=stride, bias=False))


class PreResNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 110,
                 width: float = 1, block: str | None = None):
        super().__init__()
        block = block or ("bottleneck" if depth >= 44 else "basic")
        if block not in BLOCKS:
            raise ValueError(f"preresnet block must be one of {BLOCKS}, got {block!r}")
        cls, per = (Bottleneck, 9) if block == "bottleneck" else (BasicBlock, 6)
        if depth < per + 2 or (depth - 2) % per:
            raise ValueError(f"preresnet with {block} blocks needs depth = {per}n+2 (n >= 1), got {depth}")
        n = (depth - 2) // per
        in_ch, ops, _ = conv_ops(input_shape)
        planes = [max(1, int(round(p * width))) for p in (16, 32, 64)]
        self.conv1 = ops.conv(in_ch, planes[0], 3, padding=1, bias=False)
        inplanes = planes[0]
        stages = []
        for i, p in enumerate(planes):
            blocks = []
            for j in range(n):
                blocks.append(cls(ops, inplanes, p, stride=2 if (i > 0 and j == 0) else 1))
                inplanes = p * cls.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = ops.bn(inplanes)
        self.relu = nn.ReLU()
        self.pool = ops.global_pool(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(inplanes, num_classes)
        kaiming_fan_out_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


def preresnet(input_shape: Sequence[int], num_classes: int, depth: int = 110, width: float = 1,
              block: str | None = None) -> PreResNet:
    return PreResNet(input_shape, num_classes, depth=depth, width=width, block=block)
