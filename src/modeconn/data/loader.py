"""A minimal batch iterator over in-memory tensors, replacing DataLoader for small data.

``DataLoader(TensorDataset)`` indexes and collates one sample at a time in
Python; here a batch is one ``x[idx]`` on the tensors' own device, and
augmentation is one vectorised call. All randomness for an epoch (permutation
and augmentation draws) comes from a CPU generator seeded from ``(seed, epoch)``,
so epoch ``e`` yields the same batches whether or not training was resumed, and
on any device.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from .augment import AUGMENTATIONS, crop_flip, draw_crop_flip


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on ``(seed, epoch)`` (well mixed)."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


class TensorLoader:
    """Shuffles indices and slices batches of in-memory (on-device) tensors; augments on the device.

    Epochs: iteration uses the current epoch (0 initially, or whatever
    :meth:`set_epoch` set) and, after a *complete* pass, advances it by one, so
    both ``for e in ...: loader.set_epoch(e); for b in loader`` and plain repeated
    iteration work. A pass abandoned midway does not advance the epoch.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        augment: str | None = None,
        seed: int = 0,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if augment is not None and augment not in AUGMENTATIONS:
            raise ValueError(f"unknown augment {augment!r}; known: {AUGMENTATIONS}")
        if augment == "crop_flip" and x.dim() != 4:
            raise ValueError(f"crop_flip needs (N, C, H, W) images, got shape {tuple(x.shape)}")
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (its draws are a pure function of (seed, epoch))."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.x)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        n, bs, dev = len(self.x), self.batch_size, self.x.device
        g = epoch_generator(self.seed, epoch)
        perm = torch.randperm(n, generator=g).to(dev) if self.shuffle else None
        if self.augment == "crop_flip":
            offsets, flips = draw_crop_flip(n, g)
            offsets, flips = offsets.to(dev), flips.to(dev)
        for b in range(len(self)):
            lo, hi = b * bs, min((b + 1) * bs, n)
            if perm is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = perm[lo:hi]
                xb, yb = self.x[idx], self.y[idx]
            if self.augment == "crop_flip":
                xb = crop_flip(xb, offsets[lo:hi], flips[lo:hi])
            yield xb, yb
        self.epoch = epoch + 1
