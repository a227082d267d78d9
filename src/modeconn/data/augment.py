"""Batch-vectorised image augmentation that runs where the batch lives.

The random draws are made by the caller (:class:`TensorLoader`, from its seeded
generator) and passed in, so augmentation is a pure function of its inputs and
a resumed run reproduces an uninterrupted one exactly.
"""
from __future__ import annotations

import torch
from torch import Tensor

AUGMENTATIONS = ("crop_flip",)
CROP_PADDING = 4


def crop_flip(x: Tensor, offsets: Tensor, flips: Tensor, padding: int = CROP_PADDING) -> Tensor:
    """Random-crop-with-zero-padding plus horizontal flip, for a whole batch at once.

    ``x``: (B, C, H, W). ``offsets``: (B, 2) integer (dy, dx) in ``[0, 2*padding]``,
    the crop's top-left corner in the zero-padded image (``padding`` = centred,
    i.e. no shift). ``flips``: (B,) bool/0-1, mirror left-right after cropping.
    Equivalent to torchvision's RandomCrop(H, padding) + RandomHorizontalFlip, but
    as one gather over the padded batch instead of a per-sample Python loop.
    """
    b, c, h, w = x.shape
    p = int(padding)
    dev = x.device
    offsets = offsets.to(dev, torch.long)
    flips = flips.to(dev, torch.bool)
    padded = torch.nn.functional.pad(x, (p, p, p, p))  # zeros, once per batch
    hp, wp = h + 2 * p, w + 2 * p
    rows = offsets[:, :1] + torch.arange(h, device=dev)  # (B, H)
    ar_w = torch.arange(w, device=dev)
    cols = offsets[:, 1:] + torch.where(flips[:, None], w - 1 - ar_w, ar_w)  # (B, W)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w)  # (B, 1, H*W)
    out = padded.reshape(b, c, hp * wp).gather(2, flat.expand(b, c, h * w))
    return out.reshape(b, c, h, w)


def draw_crop_flip(n: int, generator: torch.Generator, padding: int = CROP_PADDING) -> tuple[Tensor, Tensor]:
    """``n`` (offsets, flips) draws for :func:`crop_flip` from ``generator`` (on CPU)."""
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    return offsets, flips
