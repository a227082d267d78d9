"""The in-memory dataset record and the helpers every source shares.

All sources return whole datasets as tensors (they are small enough to live on the
accelerator), so training never goes through a per-sample Python pipeline.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

# Fixed generator seed for `train_size`/`test_size` subsets: the subset is part of
# what determines trained weights, so it must not depend on any run seed.
SUBSET_SEED = 0
log = logging.getLogger("modeconn")


class DatasetNotFound(FileNotFoundError):
    """Raised when a dataset's files are absent; ``str(e)`` is one line naming the
    path looked at and the remedy (so it reads well at the end of a traceback)."""


@dataclass
class Dataset:
    """A whole train/test split as tensors: ``x_*`` float32 (normalised), ``y_*`` int64.

    ``input_shape`` is one example's shape without the batch dimension, channels
    first. ``augment`` names the training augmentation the recipe expects
    ("crop_flip" for CIFAR, otherwise None); :class:`TensorLoader` applies it.
    """

    name: str
    x_train: Tensor = field(repr=False)
    y_train: Tensor = field(repr=False)
    x_test: Tensor = field(repr=False)
    y_test: Tensor = field(repr=False)
    num_classes: int
    input_shape: tuple[int, ...]
    augment: str | None = None

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != self.input_shape or len(x) != len(y):
                raise ValueError(
                    f"{self.name}: x_{split} {tuple(x.shape)} / y_{split} {tuple(y.shape)} "
                    f"do not match input_shape {self.input_shape}"
                )

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device: str | torch.device) -> "Dataset":
        """A copy with all four tensors on ``device`` (no copy if already there)."""
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"num_classes={self.num_classes}, input_shape={self.input_shape}, "
            f"augment={self.augment!r}, device={self.device})"
        )


def one_line(e: BaseException) -> str:
    """The first line of an exception message (torchvision's are multi-line)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def torchvision_splits(cls, name: str, root, download: bool, missing: str, remedy: str) -> tuple[Any, Any]:
    """The train and test splits of a torchvision dataset class, its errors turned into one line.

    torchvision raises multi-line RuntimeErrors for absent files and failed downloads;
    a researcher needs the folder it looked in and what to do about it.
    """
    splits = []
    for train in (True, False):
        try:
            splits.append(cls(str(root), train=train, download=download))
        except RuntimeError as e:
            why = f"download failed: {one_line(e)}" if download else missing
            raise DatasetNotFound(f"{name}: {remedy.format(why=why)}") from e
    return splits[0], splits[1]


def cfg_get(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``cfg[key]`` for dicts and OmegaConf nodes alike, ``default`` when missing or null."""
    value = cfg.get(key, default) if hasattr(cfg, "get") else default
    return default if value is None else value


def subset(x: Tensor, y: Tensor, size: int | None, key: str = "size") -> tuple[Tensor, Tensor]:
    """A deterministic random subset of ``size`` examples (original order kept).

    ``None`` (or a size >= len) keeps everything. The draw uses the fixed
    :data:`SUBSET_SEED`, so the same config always selects the same examples.
    """
    n = len(x)
    if size is not None and int(size) > n:
        log.warning("%s=%d is larger than the %d examples there are: using all %d", key, int(size), n, n)
    if size is None or int(size) >= n:
        return x, y
    size = int(size)
    if size <= 0:
        raise ValueError(f"subset size must be positive, got {size}")
    g = torch.Generator().manual_seed(SUBSET_SEED)
    idx = torch.randperm(n, generator=g)[:size].sort().values
    return x[idx], y[idx]


def standardise(
    x: Tensor, mean: float | Sequence[float], std: float | Sequence[float]
) -> Tensor:
    """``(x - mean) / std`` per channel (dim 1) in float32; scalars apply to all channels."""
    x = x.to(torch.float32)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    m = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    s = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    return (x - m) / s


def finish(
    name: str,
    cfg: Mapping[str, Any],
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    *,
    num_classes: int,
    augment: str | None = None,
) -> Dataset:
    """Apply the config's ``train_size``/``test_size`` subsets and build the record.

    Normalisation happens before this (on the full split), so subsetting never
    changes the normalisation constants.
    """
    x_train, y_train = subset(x_train, y_train, cfg_get(cfg, "train_size"), "dataset.train_size")
    x_test, y_test = subset(x_test, y_test, cfg_get(cfg, "test_size"), "dataset.test_size")
    return Dataset(
        name=name,
        x_train=x_train.to(torch.float32).contiguous(),
        y_train=y_train.to(torch.int64).contiguous(),
        x_test=x_test.to(torch.float32).contiguous(),
        y_test=y_test.to(torch.int64).contiguous(),
        num_classes=num_classes,
        input_shape=tuple(x_train.shape[1:]),
        augment=augment,
    )
