"""CIFAR ResNet (He et al. 2016, Sec. 4.2): ResNet-20 by default, the net Git
Re-Basin (Ainsworth et al. 2023) aligns.

Stem conv3x3-BN-ReLU, three stages of n = (depth-2)/6 post-activation basic
blocks with 16/32/64 channels (x ``width``), global average pool, Linear. The
downsampling shortcut is a strided 1x1 conv + BN (He's option B, as in the usual
PyTorch permutation-alignment ports), not option A's zero padding, because padding
ties channels together and breaks free channel permutations. Git Re-Basin's own
JAX net uses LayerNorm and a 3x3 shortcut; here ``batchnorm=False`` simply drops
normalisation (convs then get biases). Init: Kaiming-normal (fan_in) for convs and
the Linear, as in akamaster/pytorch_resnet_cifar10.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import ConvOps, conv_ops


def _norm(ops: ConvOps, channels: int, batchnorm: bool) -> nn.Module:
    return ops.bn(channels) if batchnorm else nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, ops: ConvOps, in_planes: int, planes: int, stride: int, batchnorm: bool):
        super().__init__()
        bias = not batchnorm
        self.conv1 = ops.conv(in_planes, planes, 3, stride=stride, padding=1, bias=bias)
        self.bn1, self.relu1 = _norm(ops, planes, batchnorm), nn.ReLU()
        self.conv2 = ops.conv(planes, planes, 3, padding=1, bias=bias)
        self.bn2 = _norm(ops, planes, batchnorm)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(ops.conv(in_planes, planes, 1, stride=stride, bias=bias),
                                          _norm(ops, planes, batchnorm))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 20, width: float = 1,
                 batchnorm: bool = True):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"cifar resnet depth must be 6n+2 (n >= 1), got {depth}")
        n = (depth - 2) // 6
        in_ch, ops, _ = conv_ops(input_shape)
        planes = [max(1, int(round(p * width))) for p in (16, 32, 64)]
        self.conv1 = ops.conv(in_ch, planes[0], 3, padding=1, bias=not batchnorm)
        self.bn1, self.relu = _norm(ops, planes[0], batchnorm), nn.ReLU()
        in_planes, stages = planes[0], []
        for i, p in enumerate(planes):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(ops, in_planes, p, 2 if (i > 0 and j == 0) else 1, batchnorm))
                in_planes = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = ops.global_pool(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.pool(x)))


def resnet(input_shape: Sequence[int], num_classes: int, depth: int = 20, width: float = 1,
           batchnorm: bool = True) -> ResNet:
    return ResNet(input_shape, num_classes, depth=depth, width=width, batchnorm=batchnorm)
