"""Dimension-generic building blocks shared by the conv families.

Every conv builder calls :func:`conv_ops` once with the input shape and gets the
1-D layers for (C, L) signals (MNIST-1D) or the 2-D layers for (C, H, W) images,
plus a :class:`Spatial` tracker. The tracker lets a builder decide at
construction which pools and strides still make sense for small inputs, so
``forward`` stays free of shape-dependent Python branches (``torch.fx``
traceable).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

SHAPE_CHOICES = "(C, L) for 1-D signals or (C, H, W) for images, all sizes positive integers"


def check_shape(input_shape: Sequence[int], *, conv: bool) -> tuple[int, ...]:
    """``input_shape`` as a tuple of ints; ValueError naming the accepted forms if bad."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    ok = len(shape) in (2, 3) if conv else len(shape) >= 1
    if not ok or any(s < 1 for s in shape):
        expected = SHAPE_CHOICES if conv else "a non-empty shape of positive integers"
        raise ValueError(f"bad input_shape {tuple(input_shape)!r}: expected {expected} (no batch dimension)")
    return shape


@dataclass(frozen=True)
class ConvOps:
    """The layer classes of one spatial dimensionality."""

    ndim: int
    conv: type[nn.Module]
    bn: type[nn.Module]
    max_pool: type[nn.Module]
    global_pool: type[nn.Module]  # adaptive average pool; call with output_size=1
    dropout: type[nn.Module]      # channel dropout (whole feature maps)


_OPS = {
    1: ConvOps(1, nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d, nn.Dropout1d),
    2: ConvOps(2, nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Dropout2d),
}


class Spatial:
    """The spatial size of the activations while a network is being built."""

    def __init__(self, size: Sequence[int]):
        self.size = tuple(int(s) for s in size)

    @property
    def numel(self) -> int:
        return math.prod(self.size)

    def can_halve(self) -> bool:
        """Pooling/striding by 2 is only worth it while every side is >= 2."""
        return min(self.size) >= 2

    def conv(self, kernel: int, stride: int = 1, padding: int = 0) -> None:
        self.size = tuple((s + 2 * padding - kernel) // stride + 1 for s in self.size)
        if min(self.size) < 1:
            raise ValueError(f"input too small: a conv{kernel}x{kernel} leaves size {self.size}")

    def pool(self) -> None:
        self.size = tuple(s // 2 for s in self.size)


def conv_ops(input_shape: Sequence[int]) -> tuple[int, ConvOps, Spatial]:
    """(in_channels, layer classes, spatial tracker) for a channels-first ``input_shape``."""
    shape = check_shape(input_shape, conv=True)
    return shape[0], _OPS[len(shape) - 1], Spatial(shape[1:])


def kaiming_fan_out_(module: nn.Module) -> None:
    """Garipov's conv init, N(0, 2 / (k^d * out_channels)), zero bias; BN to (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
