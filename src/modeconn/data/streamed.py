"""Image files too many to hold as one tensor: a tensor-like view that decodes on demand.

Every part of modeconn reads a dataset's inputs as ``x[a:b]`` (evaluation, BN passes),
``x[index_tensor]`` (the training loader's shuffled batches), ``len(x)``, ``x.shape`` and
``x.device``. :class:`StreamedImages` answers exactly these, decoding the files of each
request with a ``torch.utils.data.DataLoader`` (``workers`` processes; 0 decodes in this
one) and normalising them, so the same training and evaluation code runs on a folder of
any size at the cost of decoding every epoch. ``dataset=folder`` switches to it above
``dataset.memory_limit_gb`` (:mod:`modeconn.data.folder`).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset


class _Files(TorchDataset):
    def __init__(self, paths: Sequence[str], decode: Callable[[str], Tensor]):
        self.paths, self.decode = paths, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        return self.decode(self.paths[i])


class StreamedImages:
    """``len(paths)`` images of ``shape`` (C, H, W), decoded by ``decode(path) -> [0, 1] tensor``
    and standardised by per-channel ``mean``/``std`` when indexed; results land on ``device``."""

    dtype = torch.float32

    def __init__(self, paths: Sequence[str], decode: Callable[[str], Tensor], shape: Sequence[int],
                 mean: Tensor, std: Tensor, *, device: str | torch.device = "cpu", workers: int = 0,
                 chunk: int = 256):
        self.paths = list(paths)
        self.decode = decode
        self.item_shape = tuple(int(s) for s in shape)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, *([1] * (len(self.item_shape) - 1)))
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(self.mean.shape)
        self.device = torch.device(device)
        self.workers, self.chunk = int(workers), int(chunk)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.item_shape))

    def __len__(self) -> int:
        return len(self.paths)

    def dim(self) -> int:
        return 1 + len(self.item_shape)

    def to(self, target) -> "StreamedImages":
        """A view that delivers to ``target`` (a device; float32 is what it holds already)."""
        if isinstance(target, torch.dtype):
            if target != torch.float32:
                raise TypeError(f"streamed images are float32, not {target}")
            return self
        out = copy.copy(self)
        out.device = torch.device(target)
        return out

    def float(self) -> "StreamedImages":
        return self

    def contiguous(self) -> "StreamedImages":
        return self

    def subset(self, index: Tensor) -> "StreamedImages":
        """The view of the examples at ``index`` (nothing decoded)."""
        out = copy.copy(self)
        out.paths = [self.paths[i] for i in index.tolist()]
        return out

    def __getitem__(self, key) -> Tensor:
        if isinstance(key, slice):
            index = range(len(self.paths))[key]
        elif isinstance(key, Tensor):
            index = key.reshape(-1).tolist() if key.dtype != torch.bool else key.nonzero().reshape(-1).tolist()
        elif isinstance(key, int):
            return self[key:key + 1 if key != -1 else None][0]
        else:
            index = list(key)
        return self.load([self.paths[i] for i in index])

    def load(self, paths: Sequence[str]) -> Tensor:
        """Decode, stack and standardise ``paths`` (in order) onto the device."""
        if not paths:
            return torch.empty((0, *self.item_shape), device=self.device)
        loader = DataLoader(_Files(paths, self.decode), batch_size=self.chunk, shuffle=False,
                            num_workers=self.workers)
        x = torch.cat([batch for batch in loader])
        return ((x - self.mean) / self.std).to(self.device)

    def __repr__(self) -> str:
        return f"StreamedImages({len(self)} x {self.item_shape}, device={self.device})"
