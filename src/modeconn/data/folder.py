"""Your own images: ``dataset=folder dataset.root=DIR`` in torchvision's ImageFolder layout.

::

    DIR/train/<class>/*.png|jpg|...     the training split (dataset.train)
    DIR/test/<class>/...  or  DIR/val/<class>/...   the test split (dataset.test, default: test, else val)

Classes are the training split's subfolders in sorted order (ImageFolder's rule); the test
split may lack a class but not add one. Every image is converted to ``dataset.channels``
(3: RGB, 1: greyscale), resized to ``dataset.size`` (H, W; antialiased) and standardised per
channel by ``dataset.mean``/``dataset.std`` (null: measured on the training examples used).

Where it lives: when the decoded float32 tensors of both splits fit in
``dataset.memory_limit_gb`` (4 GiB by default) they are decoded once and held on the
device like every other dataset; above that the files are streamed: decoded with a
DataLoader (``dataset.workers`` processes) each time a batch is read
(:class:`modeconn.data.streamed.StreamedImages`), with the same numbers.

The endpoint store and training checkpoints know a folder by its path and a digest of its
file list (names and sizes, :func:`folder_identity`), not by hashing the pixels.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .base import Dataset, DatasetNotFound, cfg_get, subset
from .streamed import StreamedImages

log = logging.getLogger("modeconn")
GIB = 2 ** 30
TEST_NAMES = ("test", "val")


def _root(cfg: Mapping[str, Any]) -> Path:
    root = cfg_get(cfg, "root")
    if root is None:
        raise DatasetNotFound("folder: set dataset.root=DIR (a folder with train/<class>/ and test/ or val/ images)")
    return Path(str(root)).expanduser().resolve()


def split_dirs(cfg: Mapping[str, Any]) -> tuple[Path, Path]:
    """The training and test split folders the config names (checked to exist)."""
    root = _root(cfg)
    train = root / cfg_get(cfg, "train", "train")
    if not train.is_dir():
        raise DatasetNotFound(f"folder: no training split {train} (dataset.train); expected {root}/train/<class>/*.png")
    names = [cfg_get(cfg, "test")] if cfg_get(cfg, "test") else list(TEST_NAMES)
    test = next((root / n for n in names if (root / n).is_dir()), None)
    if test is None:
        raise DatasetNotFound(f"folder: no test split in {root}: looked for {' or '.join(names)}/ (dataset.test)")
    return train, test


def image_files(train: Path, test: Path) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """(classes, train samples, test samples) as ImageFolder lists them: (path, class index)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    classes, index = find_classes(str(train))
    extra = sorted(d.name for d in test.iterdir() if d.is_dir() and d.name not in index)
    if extra:
        raise DatasetNotFound(f"folder: {test} has classes the training split lacks: {', '.join(extra[:5])}")
    train_samples = make_dataset(str(train), index, extensions=IMG_EXTENSIONS)
    test_samples = make_dataset(str(test), index, extensions=IMG_EXTENSIONS, allow_empty=True)
    if not test_samples:
        raise DatasetNotFound(f"folder: no images in {test}")
    return classes, train_samples, test_samples


@functools.lru_cache(maxsize=16)
def _identity(root: str, train: str, test: str) -> dict:
    h = hashlib.sha256()
    count = 0
    for split in (train, test):
        base = Path(root) / split
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            h.update(f"{path.relative_to(root)}\t{path.stat().st_size}\n".encode())
            count += 1
    return {"root": root, "files": count, "digest": h.hexdigest()[:20]}


def folder_identity(cfg: Mapping[str, Any]) -> dict:
    """What a folder dataset is for store keys: its absolute path, file count and a digest of
    its files' relative names and sizes (cheap for any size; editing an image in place without
    changing its size is not seen)."""
    train, test = split_dirs(cfg)
    return _identity(str(train.parent), train.name, test.name)


class Decoder:
    """path -> float tensor (C, H, W) in [0, 1]: converted to the channel count, resized."""

    def __init__(self, channels: int, size: tuple[int, int]):
        self.mode = {1: "L", 3: "RGB"}[channels]
        self.size = size

    def __call__(self, path: str) -> Tensor:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor, resize

        with Image.open(path) as image:
            x = pil_to_tensor(image.convert(self.mode))
        return resize(x.float() / 255.0, list(self.size), antialias=True)


def recipe(cfg: Mapping[str, Any]) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) of the config's resize recipe, checked."""
    channels = int(cfg_get(cfg, "channels", 3))
    if channels not in (1, 3):
        raise ValueError(f"dataset.channels={channels}: must be 1 (greyscale) or 3 (RGB)")
    size = cfg_get(cfg, "size", 32)
    size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"dataset.size={list(size)}: must be one positive size or [H, W]")
    return channels, size


def load_folder(cfg: Mapping[str, Any]) -> Dataset:
    """The folder the config names as a :class:`Dataset` (tensors, or streamed above the limit)."""
    channels, size = recipe(cfg)
    train_dir, test_dir = split_dirs(cfg)
    classes, train_samples, test_samples = image_files(train_dir, test_dir)
    decode = Decoder(channels, size)
    splits = {}
    for split, samples in (("train", train_samples), ("test", test_samples)):
        y = torch.tensor([c for _, c in samples], dtype=torch.int64)
        index, y = subset(torch.arange(len(samples)), y, cfg_get(cfg, f"{split}_size"), f"dataset.{split}_size")
        splits[split] = ([samples[i][0] for i in index.tolist()], y)
    item_bytes = channels * size[0] * size[1] * 4
    need = item_bytes * (len(splits["train"][0]) + len(splits["test"][0]))
    limit = float(cfg_get(cfg, "memory_limit_gb", 4.0)) * GIB
    workers = int(cfg_get(cfg, "workers", 0))
    raw = {s: StreamedImages(p, decode, (channels, *size), torch.zeros(channels), torch.ones(channels),
                             workers=workers) for s, (p, _) in splits.items()}
    mean, std = cfg_get(cfg, "mean"), cfg_get(cfg, "std")
    streamed = need > limit
    held = {} if streamed else {s: raw[s][:] for s in raw}
    if mean is None or std is None:
        mean_m, std_m = _channel_stats(held.get("train"), raw["train"])
        mean = mean_m if mean is None else mean
        std = std_m if std is None else std
    mean = torch.as_tensor(mean, dtype=torch.float32).expand(channels).clone()
    std = torch.as_tensor(std, dtype=torch.float32).expand(channels).clone()
    if streamed:
        log.info("folder: %d + %d images need %.2f GiB as tensors, above dataset.memory_limit_gb=%g: streaming them",
                 len(splits["train"][0]), len(splits["test"][0]), need / GIB, limit / GIB)
        xs = {s: StreamedImages(raw[s].paths, decode, (channels, *size), mean, std, workers=workers) for s in raw}
    else:
        shape = (1, channels, 1, 1)
        xs = {s: ((held[s] - mean.reshape(shape)) / std.reshape(shape)).contiguous() for s in held}
    return Dataset(name="folder", x_train=xs["train"], y_train=splits["train"][1], x_test=xs["test"],
                   y_test=splits["test"][1], num_classes=len(classes), input_shape=(channels, *size))


def _channel_stats(x: Tensor | None, files: StreamedImages) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std of the training images (in [0, 1]), in one pass (float64 sums)."""
    total = sq = None
    count = 0
    batches = [x] if x is not None else (files[i:i + 1024] for i in range(0, len(files), 1024))
    for b in batches:
        b = b.double().transpose(0, 1).reshape(b.shape[1], -1)
        total = b.sum(1) if total is None else total + b.sum(1)
        sq = (b * b).sum(1) if sq is None else sq + (b * b).sum(1)
        count += b.shape[1]
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt()
    return mean.float(), torch.where(std > 1e-6, std, torch.ones_like(std)).float()


def estimate_gib(cfg: Mapping[str, Any], examples: int) -> float:
    """GiB that ``examples`` decoded images of the config's recipe take as float32 tensors."""
    channels, size = recipe(cfg)
    return examples * channels * math.prod(size) * 4 / GIB
