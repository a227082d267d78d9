"""Datasets as whole in-memory tensors, and a fast on-device batch loader.

``load_dataset(cfg)`` takes the ``dataset`` config node (``name``, ``root``,
``download``, ``train_size``, ``test_size``) and returns a :class:`Dataset`.
Sources: mnist1d (default, generated offline), digits (sklearn), fashion_mnist
(IDX files, Debian's package by default), mnist, cifar10, cifar100 (torchvision), folder
(your own images in ImageFolder layout; streamed above ``dataset.memory_limit_gb``),
text (characters of a UTF-8 corpus, Debian's fortunes by default).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .base import Dataset, DatasetNotFound, cfg_get
from .cache import home_for_data
from .cifar import load_cifar10, load_cifar100
from .folder import load_folder
from .loader import TensorLoader
from .mnist import load_fashion_mnist, load_mnist
from .synthetic import load_digits, load_mnist1d
from .text import load_text

DATASETS: dict[str, Callable[[Mapping[str, Any]], Dataset]] = {
    "mnist1d": load_mnist1d,
    "digits": load_digits,
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "folder": load_folder,
    "text": load_text,
}


def load_dataset(cfg: Mapping[str, Any], device: str | torch.device = "cpu", home: str | Path | None = None) -> Dataset:
    """Load the dataset the config node names and put it on ``device``; generated and downloaded
    files are cached under ``home``/data (a run passes its store_dir; default $MODECONN_HOME).

    Raises :class:`DatasetNotFound` (one-line message with path and remedy) when
    the files are absent, ``ValueError`` for an unknown name.
    """
    name = cfg_get(cfg, "name", "mnist1d")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    with home_for_data(home):
        return DATASETS[name](cfg).to(device)


__all__ = ["DATASETS", "Dataset", "DatasetNotFound", "TensorLoader", "load_dataset"]
