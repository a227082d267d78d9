"""TinyTen, following Tatro et al. 2020's code (IBM/NeuronAlignment, models/tiny_ten.py,
``TinyTenBase``), layer for layer.

``layers[i]`` is conv (+ bias) -> BN -> ReLU (submodules ``conv``/``bn``/``act``,
the reference's names, so its state dicts map one to one):
16, 16 (3x3 pad 1), 32 (3x3 stride 2), 32, 32, 64 (3x3 stride 2), 64 (3x3, no
padding), 64 (1x1); then a global average pool and ``dense`` = Linear(64, classes).
That is 8 convs + 1 Linear (the reference's 10/100-class branch; its 200-class
branch is identical). Init as the reference: Xavier-normal weights, zero biases, BN
(1, 0). One adaptation for small inputs: the unpadded 3x3 conv gets padding 1 when
fewer than 3 positions remain (e.g. 8x8 digits), so every input size works.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import Tensor, nn

from modeconn.models.layers import conv_ops

# (out_channels, kernel, stride, padding); padding None = "0, or 1 if the input is too small".
LAYERS = [(16, 3, 1, 1), (16, 3, 1, 1), (32, 3, 2, 1), (32, 3, 1, 1), (32, 3, 1, 1), (64, 3, 2, 1),
          (64, 3, 1, None), (64, 1, 1, 0)]


class TinyTen(nn.Module):
    def __init__(self, input_shape: Sequence[int], num_classes: int, bias: bool = True):
        super().__init__()
        in_ch, ops, spatial = conv_ops(input_shape)
        blocks = []
        for out_ch, kernel, stride, padding in LAYERS:
            if padding is None:
                padding = 0 if min(spatial.size) >= kernel else 1
            spatial.conv(kernel, stride, padding)
            blocks.append(nn.Sequential(OrderedDict(
                conv=ops.conv(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=bias),
                bn=ops.bn(out_ch),
                act=nn.ReLU(),
            )))
            in_ch = out_ch
        self.layers = nn.Sequential(*blocks)
        self.pool = ops.global_pool(1)
        self.flatten = nn.Flatten()
        self.dense = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.dense(self.flatten(self.pool(self.layers(x))))


def tinyten(input_shape: Sequence[int], num_classes: int, bias: bool = True) -> TinyTen:
    return TinyTen(input_shape, num_classes, bias=bias)
