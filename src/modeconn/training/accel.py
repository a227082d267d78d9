"""The speed options of `trainer=` (made for `trainer=gpu`, each also runs on a CPU):

- `precision`: Lightning's (`bf16-mixed` is bf16 autocast for the training steps;
  evaluation always runs in float32, so the protocol's numbers do not depend on it);
- `channels_last`: conv nets and their image tensors in NHWC memory order, the layout
  tensor cores' convolutions want (the data stay resident on the device, as always);
- `compile`: `true` (inductor) or a backend name: each training step (the forward and
  loss of endpoints, curves, simplexes) goes through `torch.compile`; evaluation stays eager.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, CONV) for m in model.modules())


def prepare(model: nn.Module, data, trainer_cfg: Mapping) -> nn.Module:
    """Apply `channels_last` to a conv net and its 4-D data in place; returns the model."""
    if trainer_cfg.get("channels_last") and has_conv(model):
        model.to(memory_format=torch.channels_last)
        if data is not None:
            for split in ("x_train", "x_test"):
                x = getattr(data, split)
                if x.dim() == 4:
                    setattr(data, split, x.contiguous(memory_format=torch.channels_last))
    return model


def compile_backend(trainer_cfg: Mapping) -> str | None:
    """The torch.compile backend `trainer.compile` asks for (None: no compilation)."""
    setting = trainer_cfg.get("compile", False)
    if not setting:
        return None
    return "inductor" if setting is True else str(setting)


def compile_step(module, trainer_cfg: Mapping) -> None:
    """Route `module.training_step` through torch.compile when `trainer.compile` asks for it."""
    backend = compile_backend(trainer_cfg)
    if backend is not None:
        module.training_step = torch.compile(module.training_step, backend=backend)
